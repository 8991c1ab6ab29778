// The event log of a TT-Metal device. A passive graph processor, registered on every thread that
// uses a device, forwards each buffer TT-Metal allocates or frees on the device, whoever asks for
// it, to the device's log: the log keeps the live set with ids in allocation order, the
// attribution of the buffers tt-memguard asked for, and the peak marks.
//
// Plain C++17 (C++20 with the user's headers); no cxx types.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "peak_marks.hpp"
#include "vocab.hpp"

namespace tt::tt_metal {
class Allocator;
class Buffer;
}  // namespace tt::tt_metal

namespace memguard::ttm {

// A live allocation as the event log knows it.
struct Record {
    std::uint64_t id = 0;
    Pool pool = Pool::Dram;
    std::uint64_t address = 0;
    std::uint64_t size = 0;
    std::uint64_t page_size = 0;
    std::uint64_t per_bank_size = 0;
    std::uint32_t shards = 0;
    std::uint64_t tag = 0;  // 0 for buffers allocated by other code
    std::string label;
};

// An allocation or a free of a buffer that other code made (not one tt-memguard asked for), in
// the order the log saw it: the foreign journal a recording drains.
struct ForeignEvent {
    bool allocate = true;
    std::uint64_t id = 0;
    Pool pool = Pool::Dram;
    std::uint64_t address = 0;
    std::uint64_t size = 0;
    std::uint64_t page_size = 0;
    std::uint64_t per_bank_size = 0;
};

class EventLog {
public:
    explicit EventLog(const tt::tt_metal::Allocator* allocator);

    void on_allocate(const tt::tt_metal::Buffer* buffer);
    void on_deallocate(const tt::tt_metal::Buffer* buffer);
    // Drops the buffer with TT-Metal's `unique_id` from the live set, if it is there.
    void forget(std::size_t unique_id);

    std::vector<Record> live() const;
    std::uint64_t live_count() const;
    std::uint64_t next_id() const;
    std::uint32_t mark_peak();
    // Throws Failure for a mark that is not active.
    PeakMarks::Peaks read_peak(std::uint32_t mark) const;
    void release_peak(std::uint32_t mark);
    // Raises the program figures of the active peak marks (kPeakCbBytes, kPeakL1Total,
    // kPeakHeadroomGap), as the simulated device does at an enqueue that passed.
    void note_program(std::uint64_t cb_bytes, std::uint64_t l1_total, std::uint64_t headroom_gap);

    // The foreign journal: kept while at least one recording has started it (and not stopped
    // it), emptied by each drain.
    void start_journal();
    void stop_journal();
    std::vector<ForeignEvent> drain_journal();

    // The allocator's reservation per bank: TT-Metal's aligned size per bank, rounded up to the
    // allocator granularity (the DRAM alignment, in every pool) and at least one granule.
    std::uint64_t block_size(std::uint64_t aligned_size_per_bank) const;

private:
    std::uint64_t allocated(Pool pool) const;

    const tt::tt_metal::Allocator* allocator_;
    std::uint64_t granularity_;
    mutable std::mutex mutex_;
    std::map<std::uint64_t, Record> live_;  // by id: allocation order
    std::unordered_map<std::size_t, std::uint64_t> by_unique_id_;
    std::uint64_t next_id_ = 1;
    std::uint32_t journals_ = 0;
    std::vector<ForeignEvent> journal_;
    // O(1) per allocation whatever the number of active marks.
    PeakMarks marks_;
};

static_assert(PeakMarks::kPools == kPeakSlots, "one peak per pool and program figure");

// What tt-memguard asked for in the MeshBuffer::create running on this thread: its allocate event
// carries the caller's tag, label and shard count, and reports the id back here.
struct Pending {
    const EventLog* log = nullptr;
    std::uint64_t tag = 0;
    const std::string* label = nullptr;
    std::uint32_t shards = 0;
    std::uint64_t id = 0;  // set by the allocate event
    std::uint64_t per_bank_size = 0;
};

// Makes `pending` this thread's pending request while it lives.
class PendingScope {
public:
    explicit PendingScope(Pending& pending);
    ~PendingScope();
    PendingScope(const PendingScope&) = delete;
    PendingScope& operator=(const PendingScope&) = delete;
};

// The circular-buffer events TT-Metal reports on this thread while a CbCapture is in scope:
// track_allocate_cb (address and size of every CB laid out, in creation order; only when a
// program's layout is computed) and track_deallocate_cb (a compiled program with CBs destroyed).
struct CbCapture {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> allocated;  // (address, size)
    std::uint32_t globally_allocated = 0;                             // backed CBs reported
    std::uint32_t deallocated = 0;
};

class CbCaptureScope {
public:
    explicit CbCaptureScope(CbCapture& capture);
    ~CbCaptureScope();
    CbCaptureScope(const CbCaptureScope&) = delete;
    CbCaptureScope& operator=(const CbCaptureScope&) = delete;
};

// Routes the events of the device whose complete object is at `device` (api::identity) to `log`
// too; a device opened here and adopted again, or adopted twice, has several logs.
void attach(const void* device, std::shared_ptr<EventLog> log);
void detach(const EventLog* log);

// Registers the graph processor on the calling thread, once (TT-Metal's processor stack is
// thread-local). Throws Failure.
void observe_this_thread();

}  // namespace memguard::ttm

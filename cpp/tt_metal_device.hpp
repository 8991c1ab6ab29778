// A TT-Metal device as tt-memguard sees it: a MeshDevice (opened here or adopted), its
// allocator's statistics, the buffers allocated for tests, and the device's event log
// (tt_metal_events.hpp), so that every buffer TT-Metal allocates or frees on the device lands in
// the live set, the attribution and the peaks.
//
// Plain C++17 (C++20 with the user's headers); the cxx shim (tt_metal_bridge.*) is the only code
// that sees Rust. Every TT-Metal exception leaves this file as a Failure (tt_metal_abi.hpp) whose
// what() is TT-Metal's message without its backtrace; an allocation that does not fit is an
// outcome, not an exception.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "circular_buffers.hpp"
#include "tt_metal_events.hpp"
#include "vocab.hpp"

namespace tt::tt_metal {
class Program;
}  // namespace tt::tt_metal

namespace tt::tt_metal::distributed {
class MeshDevice;
class MeshBuffer;
class MeshWorkload;
}  // namespace tt::tt_metal::distributed

namespace memguard::ttm {

// The chip architectures tt-memguard tells apart (mapped to TT-Metal's tt::ARCH in
// tt_metal_device.cpp).
enum class Arch : std::uint8_t { Unknown = 0, WormholeB0 = 1, Blackhole = 2 };

struct OpenOptions {
    int device_id = 0;
    std::uint64_t l1_small_size = 0;
    std::uint64_t trace_region_size = 0;
    std::uint32_t num_command_queues = 1;
    std::uint64_t worker_l1_size = 0;
    // Selects TT-Metal's mock device mode for `mock_chips` chips of `mock_arch`; otherwise an
    // earlier mock registration is cleared.
    bool mock = false;
    Arch mock_arch = Arch::Unknown;
    std::uint32_t mock_chips = 1;
    // Opens a mesh of mesh_rows x mesh_cols chips (0 x 0: the system's whole mesh) instead of the
    // unit mesh of `device_id`.
    bool mesh = false;
    std::uint32_t mesh_rows = 0;
    std::uint32_t mesh_cols = 0;
};

struct Facts {
    Arch arch = Arch::Unknown;
    std::uint32_t grid_x = 0;
    std::uint32_t grid_y = 0;
    int mesh_id = 0;
    std::uint64_t num_devices = 0;
    std::uint32_t rows = 1;  // the mesh's shape
    std::uint32_t cols = 1;
};

// One pool's statistics (per bank) and layout.
struct PoolInfo {
    std::uint32_t banks = 0;
    std::uint64_t base = 0;
    std::uint64_t alignment = 0;
    std::uint64_t allocatable = 0;
    std::uint64_t allocated = 0;
    std::uint64_t free = 0;
    std::uint64_t largest_free = 0;
};

struct Request {
    Pool pool = Pool::Dram;
    std::uint64_t size = 0;
    std::uint64_t page_size = 0;
    std::uint32_t shards = 0;  // 0: interleaved
    Direction direction = Direction::Default;
    bool fixed_address = false;  // not available: TT-Metal would not reserve the range
    std::uint64_t tag = 0;
    std::string label;
};

// What became of a request: a placed buffer, or why none was placed.
struct Outcome {
    AllocStatus status = AllocStatus::Placed;
    std::uint64_t id = 0;
    std::uint32_t slot = 0;  // the handle for deallocate()
    std::uint64_t address = 0;
    std::uint64_t per_bank_size = 0;  // the allocator's reservation in every bank
    // For a request that does not fit: the per-bank need before allocator rounding, the banks it
    // is spread over, and the pool at the time.
    std::uint64_t size_per_bank = 0;
    std::uint32_t banks = 0;
    PoolInfo pool;
};

// What one enqueue of a program found: the simulated device's figures, from TT-Metal's.
using Enqueued = sim::EnqueueResult;

class MeshHandle {
public:
    // Opens device `device_id` as a unit mesh, or a mesh of several chips. Throws Failure.
    static std::unique_ptr<MeshHandle> open(const OpenOptions& options);
    // Observes a MeshDevice the caller opened and keeps open; it is never closed here.
    static std::unique_ptr<MeshHandle> adopt(tt::tt_metal::distributed::MeshDevice* mesh);
    ~MeshHandle();
    MeshHandle(const MeshHandle&) = delete;
    MeshHandle& operator=(const MeshHandle&) = delete;

    Facts facts() const { return facts_; }
    Outcome allocate(const Request& request);
    bool deallocate(std::uint32_t slot, std::uint64_t id);
    std::array<PoolInfo, kPoolCount> snapshot() const;
    std::vector<Record> live() const;
    std::uint64_t live_count() const;
    std::uint64_t next_id() const;
    std::uint32_t mark_peak();
    PeakMarks::Peaks read_peak(std::uint32_t mark) const;
    void release_peak(std::uint32_t mark);
    tt::tt_metal::distributed::MeshDevice* mesh_device() const { return mesh_; }
    // The event log's foreign journal (tt_metal_events.hpp), for recordings.
    void start_journal() { log_->start_journal(); }
    void stop_journal() { log_->stop_journal(); }
    std::vector<ForeignEvent> drain_journal() { return log_->drain_journal(); }

    // Programs (circular buffers). Ids are TT-Metal's own. Throws Failure.
    std::uint64_t create_program();
    // Adds a CB that is not backed by a buffer; an index problem or a compiled program is an
    // outcome (checked on a model of the program's cores before TT-Metal is asked).
    sim::CbCheck add_circular_buffer(std::uint64_t program, const sim::CircularBufferSpec& spec,
                                     std::uint32_t* handle);
    // TT-Metal's compile step (the layout at the first call, then both checks), with the outcome
    // computed from the CB addresses TT-Metal reported, the lowest L1 buffer and the L1 size.
    Enqueued enqueue(std::uint64_t program);
    // Every CB's address in creation order once laid out, else empty.
    std::vector<std::uint64_t> program_addresses(std::uint64_t program) const;
    bool destroy_program(std::uint64_t program);

private:
    struct ProgramEntry {
        ProgramEntry(std::uint64_t id, std::uint32_t max_cbs);
        std::unique_ptr<tt::tt_metal::Program> program;  // until the first enqueue
        std::unique_ptr<tt::tt_metal::distributed::MeshWorkload> workload;  // from then on
        sim::Program model;  // the CBs as added: index checks, merged ranges, region allocators
        std::vector<std::uint64_t> addresses;  // from TT-Metal's track_allocate_cb events
        bool laid_out = false;
        ~ProgramEntry();
    };

    struct Owned {
        std::uint64_t id = 0;
        std::shared_ptr<tt::tt_metal::distributed::MeshBuffer> buffer;
    };

    MeshHandle(std::shared_ptr<tt::tt_metal::distributed::MeshDevice> owned,
               tt::tt_metal::distributed::MeshDevice* mesh);
    void release_owned() noexcept;
    // The out-of-memory outcome when no free block of the pool holds the request (TT-Metal's
    // allocator rule, read from its statistics); a placed outcome when one does.
    Outcome fit(const Request& request) const;

    std::shared_ptr<tt::tt_metal::distributed::MeshDevice> owned_;  // empty when adopted
    tt::tt_metal::distributed::MeshDevice* mesh_;
    std::shared_ptr<EventLog> log_;
    Facts facts_;
    std::vector<Owned> owned_buffers_;
    std::vector<std::uint32_t> free_slots_;
    std::map<std::uint64_t, std::unique_ptr<ProgramEntry>> programs_;
};

// Adopts a device given as an IDevice*; throws Failure when it is not a MeshDevice.
std::unique_ptr<MeshHandle> adopt_idevice(void* idevice);

}  // namespace memguard::ttm

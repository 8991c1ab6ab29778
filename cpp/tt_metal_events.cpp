// The event log of a TT-Metal device and its graph processor (see tt_metal_events.hpp).
#include "tt_metal_events.hpp"

#include <algorithm>
#include <optional>
#include <type_traits>
#include <utility>

#include "tt_metal_abi.hpp"

namespace memguard::ttm {
namespace {

thread_local Pending* t_pending = nullptr;
thread_local CbCapture* t_cb_capture = nullptr;

// Every device's event logs, by the address of its complete object. Never destroyed: graph
// processors held by TT-Metal's thread-local stacks may outlive everything else at exit.
class Hub {
public:
    static Hub& instance() {
        static Hub* hub = new Hub();
        return *hub;
    }

    void add(const void* device, std::shared_ptr<EventLog> log) {
        std::lock_guard<std::mutex> lock(mutex_);
        logs_.emplace_back(device, std::move(log));
    }

    void remove(const EventLog* log) {
        std::lock_guard<std::mutex> lock(mutex_);
        logs_.erase(std::remove_if(logs_.begin(), logs_.end(), [&](const auto& e) { return e.second.get() == log; }),
                    logs_.end());
    }

    std::vector<std::shared_ptr<EventLog>> find(const void* device) {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<std::shared_ptr<EventLog>> out;
        for (const auto& entry : logs_) {
            if (entry.first == device) out.push_back(entry.second);
        }
        return out;
    }

private:
    std::mutex mutex_;
    std::vector<std::pair<const void*, std::shared_ptr<EventLog>>> logs_;
};

// A graph processor that says, where TT-Metal asks (is_capture_processor), that it does not
// capture: it observes without turning graph capture on. Releases without the query get the
// processor as it is.
template <class Base, class = void>
class PassiveProcessor : public Base {};

template <class Base>
class PassiveProcessor<Base, std::void_t<decltype(std::declval<const Base&>().is_capture_processor())>>
    : public Base {
public:
    bool is_capture_processor() const override { return false; }
};

// The graph processor pushed on every thread that uses a device: a passive observer (it does not
// turn graph capture on) that forwards buffer events to the logs of the buffer's device.
class Observer final : public PassiveProcessor<metal::IGraphProcessor> {
public:
    void track_allocate(const metal::Buffer* buffer) override { forward(buffer, true); }
    void track_deallocate(metal::Buffer* buffer) override { forward(buffer, false); }
    void track_allocate_cb(const metal::CoreRangeSet&, std::uint64_t address, std::uint64_t size,
                           bool globally_allocated, const metal::IDevice*) override {
        CbCapture* capture = t_cb_capture;
        if (capture == nullptr) return;
        try {
            if (globally_allocated) {
                ++capture->globally_allocated;
            } else {
                capture->allocated.emplace_back(address, size);
            }
        } catch (...) {
        }
    }
    void track_deallocate_cb(const metal::IDevice*) override {
        if (t_cb_capture != nullptr) ++t_cb_capture->deallocated;
    }

private:
    // An exception must never cross back into TT-Metal.
    static void forward(const metal::Buffer* buffer, bool allocate) noexcept {
        try {
            if (buffer == nullptr) return;
            const metal::IDevice* device = buffer->device();
            if (device == nullptr) return;
            for (const std::shared_ptr<EventLog>& log : Hub::instance().find(api::identity(device))) {
                if (allocate) {
                    log->on_allocate(buffer);
                } else {
                    log->on_deallocate(buffer);
                }
            }
        } catch (...) {
        }
    }
};

ForeignEvent foreign_event(const Record& record, bool allocate) {
    ForeignEvent event;
    event.allocate = allocate;
    event.id = record.id;
    event.pool = record.pool;
    event.address = record.address;
    event.size = record.size;
    event.page_size = record.page_size;
    event.per_bank_size = record.per_bank_size;
    return event;
}

}  // namespace

// ---- the log ------------------------------------------------------------------------------------
EventLog::EventLog(const metal::Allocator* allocator)
    : allocator_(allocator), granularity_(allocator->get_alignment(metal::BufferType::DRAM)) {}

std::uint64_t EventLog::block_size(std::uint64_t aligned_size_per_bank) const {
    return std::max(round_up(aligned_size_per_bank, granularity_), granularity_);
}

std::uint64_t EventLog::allocated(Pool pool) const {
    return allocator_->get_statistics(metal_type(pool)).total_allocated_bytes;
}

void EventLog::on_allocate(const metal::Buffer* buffer) {
    const std::optional<Pool> pool = pool_of(buffer->buffer_type());
    if (!pool || !buffer->is_allocated()) return;
    Record record;
    record.pool = *pool;
    record.address = buffer->address();
    record.size = buffer->size();
    record.page_size = buffer->page_size();
    record.per_bank_size = block_size(buffer->aligned_size_per_bank());
    Pending* pending = t_pending;
    const bool ours = pending && pending->log == this && pending->id == 0;
    if (ours) {
        record.tag = pending->tag;
        if (pending->label) record.label = *pending->label;
        record.shards = pending->shards;
    }
    const std::size_t unique_id = buffer->unique_id();
    std::lock_guard<std::mutex> lock(mutex_);
    record.id = next_id_++;
    if (ours) {
        pending->id = record.id;
        pending->per_bank_size = record.per_bank_size;
    }
    by_unique_id_[unique_id] = record.id;
    if (journals_ != 0 && !ours) journal_.push_back(foreign_event(record, true));
    live_.emplace(record.id, std::move(record));
    if (marks_.active() != 0) marks_.note(pool_index(*pool), allocated(*pool));
}

void EventLog::on_deallocate(const metal::Buffer* buffer) { forget(buffer->unique_id()); }

void EventLog::forget(std::size_t unique_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = by_unique_id_.find(unique_id);
    if (it == by_unique_id_.end()) return;
    auto record = live_.find(it->second);
    if (record != live_.end()) {
        if (journals_ != 0 && record->second.tag == 0) journal_.push_back(foreign_event(record->second, false));
        live_.erase(record);
    }
    by_unique_id_.erase(it);
}

void EventLog::start_journal() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++journals_;
}

void EventLog::stop_journal() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (journals_ > 0) --journals_;
    if (journals_ == 0) journal_.clear();
}

std::vector<ForeignEvent> EventLog::drain_journal() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<ForeignEvent> out;
    out.swap(journal_);
    return out;
}

std::vector<Record> EventLog::live() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Record> out;
    out.reserve(live_.size());
    for (const auto& entry : live_) out.push_back(entry.second);
    return out;
}

std::uint64_t EventLog::live_count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.size();
}

std::uint64_t EventLog::next_id() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return next_id_;
}

std::uint32_t EventLog::mark_peak() {
    PeakMarks::Peaks now{};
    for (const Pool pool : kPools) now[pool_index(pool)] = allocated(pool);
    std::lock_guard<std::mutex> lock(mutex_);
    return marks_.start(now);
}

PeakMarks::Peaks EventLog::read_peak(std::uint32_t mark) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!marks_.is_active(mark)) {
        throw Failure("peak mark " + std::to_string(mark) + " is not active");
    }
    return marks_.read(mark);
}

void EventLog::release_peak(std::uint32_t mark) {
    std::lock_guard<std::mutex> lock(mutex_);
    marks_.release(mark);
}

void EventLog::note_program(std::uint64_t cb_bytes, std::uint64_t l1_total, std::uint64_t headroom_gap) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (marks_.active() == 0) return;
    marks_.note(kPeakCbBytes, cb_bytes);
    marks_.note(kPeakL1Total, l1_total);
    marks_.note(kPeakHeadroomGap, headroom_gap);
}

// ---- routing ------------------------------------------------------------------------------------
PendingScope::PendingScope(Pending& pending) { t_pending = &pending; }

PendingScope::~PendingScope() { t_pending = nullptr; }

CbCaptureScope::CbCaptureScope(CbCapture& capture) { t_cb_capture = &capture; }

CbCaptureScope::~CbCaptureScope() { t_cb_capture = nullptr; }

void attach(const void* device, std::shared_ptr<EventLog> log) { Hub::instance().add(device, std::move(log)); }

void detach(const EventLog* log) { Hub::instance().remove(log); }

void observe_this_thread() {
    thread_local bool observing = false;
    if (observing) return;
    guarded([] { metal::GraphTracker::instance().push_processor(std::make_shared<Observer>()); });
    observing = true;
}

}  // namespace memguard::ttm

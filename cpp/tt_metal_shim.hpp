// A TT-Metal device as tt-memguard sees it: a MeshDevice (opened here or adopted), its
// allocator's statistics, buffers allocated for tests, and an event log fed by a graph
// processor so that every buffer TT-Metal allocates or frees on the device, whoever asks for
// it, lands in the live set, the attribution and the peaks.
//
// Plain C++17; the cxx shim (tt_metal_bridge.*) is the only code that sees Rust. Every TT-Metal
// exception leaves this file as a memguard::ttm::Failure (a std::runtime_error) whose what() is
// TT-Metal's message without its backtrace.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tt::tt_metal::distributed {
class MeshDevice;
class MeshBuffer;
}  // namespace tt::tt_metal::distributed

namespace memguard::ttm {

// Pools in tt-memguard's order (not TT-Metal's BufferType values).
enum Pool : std::uint8_t { kDram = 0, kL1 = 1, kL1Small = 2, kTrace = 3, kPoolCount = 4 };

class Failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct OpenOptions {
    int device_id = 0;
    std::uint64_t l1_small_size = 0;
    std::uint64_t trace_region_size = 0;
    std::uint32_t num_command_queues = 1;
    std::uint64_t worker_l1_size = 0;
    int mock_arch = 0;  // 0: leave mock mode alone; else tt::ARCH (2 Wormhole B0, 3 Blackhole)
    std::uint32_t mock_chips = 1;
};

struct Facts {
    int arch = 0;  // tt::ARCH
    std::uint32_t grid_x = 0;
    std::uint32_t grid_y = 0;
    int mesh_id = 0;
    std::uint64_t num_devices = 0;
};

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
    Pool pool = kDram;
    std::uint64_t size = 0;
    std::uint64_t page_size = 0;
    std::uint32_t shards = 0;   // 0: interleaved
    std::uint8_t direction = 0; // 0 pool default, 1 bottom-up, 2 top-down
    std::uint64_t tag = 0;
    std::string label;
};

struct Placed {
    std::uint64_t id = 0;
    std::uint32_t slot = 0;
    std::uint64_t address = 0;
    std::uint64_t per_bank_size = 0;
};

// A live allocation as the event log knows it.
struct Record {
    std::uint64_t id = 0;
    Pool pool = kDram;
    std::uint64_t address = 0;
    std::uint64_t size = 0;
    std::uint64_t page_size = 0;
    std::uint64_t per_bank_size = 0;
    std::uint32_t shards = 0;
    std::uint64_t tag = 0;  // 0 for buffers allocated by other code
    std::string label;
};

class EventLog;  // per device; fed by the graph processor (tt_metal_shim.cpp)

class MeshHandle {
public:
    // Opens device `device_id` as a unit mesh. Throws Failure.
    static std::unique_ptr<MeshHandle> open(const OpenOptions& options);
    // Observes a MeshDevice the caller opened and keeps open; it is never closed here.
    static std::unique_ptr<MeshHandle> adopt(tt::tt_metal::distributed::MeshDevice* mesh);
    ~MeshHandle();
    MeshHandle(const MeshHandle&) = delete;
    MeshHandle& operator=(const MeshHandle&) = delete;

    Facts facts() const { return facts_; }
    Placed allocate(const Request& request);
    bool deallocate(std::uint32_t slot, std::uint64_t id);
    std::array<PoolInfo, kPoolCount> snapshot() const;
    std::vector<Record> live() const;
    std::uint64_t live_count() const;
    std::uint64_t next_id() const;
    std::uint32_t mark_peak();
    std::array<std::uint64_t, kPoolCount> read_peak(std::uint32_t mark) const;
    void release_peak(std::uint32_t mark);
    // Registers the graph processor on the calling thread (TT-Metal's processor stack is
    // thread-local). Every method above does it too.
    void observe_this_thread() const;
    tt::tt_metal::distributed::MeshDevice* mesh_device() const { return mesh_; }

private:
    struct Owned {
        std::uint64_t id = 0;
        std::shared_ptr<tt::tt_metal::distributed::MeshBuffer> buffer;
    };

    MeshHandle(std::shared_ptr<tt::tt_metal::distributed::MeshDevice> owned,
               tt::tt_metal::distributed::MeshDevice* mesh);
    void release_owned() noexcept;
    // Throws the Failure for a sharded request TT-Metal's shard spec cannot express.
    [[noreturn]] void too_large_for_shard_spec(const Request& request, std::uint64_t pages,
                                               std::uint64_t per_shard) const;

    std::shared_ptr<tt::tt_metal::distributed::MeshDevice> owned_;  // empty when adopted
    tt::tt_metal::distributed::MeshDevice* mesh_;
    std::shared_ptr<EventLog> log_;
    Facts facts_;
    std::vector<Owned> owned_buffers_;
    std::vector<std::uint32_t> free_slots_;
};

// Adopts a device given as an IDevice*; throws Failure when it is not a MeshDevice.
std::unique_ptr<MeshHandle> adopt_idevice(void* idevice);

// TT-Metal's message without the TT_FATAL header and the backtrace.
std::string clean_message(const char* what);

}  // namespace memguard::ttm

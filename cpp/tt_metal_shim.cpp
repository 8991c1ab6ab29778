// The TT-Metal device wrapper and its graph processor (see tt_metal_shim.hpp).
//
// ABI facts the declarations in tt_metal_api.hpp rely on were read from the 0.81.1 binary:
// DeviceLocalBufferConfig (0x20 B) and the MeshBufferConfig variant (0x38 B, index at 0x30) from
// MeshBuffer's constructor; BufferShardingArgs (one pointer to a 0x160 B impl) from its exported
// special members; ShardSpecBuffer (0x38 B, passed by invisible reference) from
// BufferShardingArgs(ShardSpecBuffer, TensorMemoryLayout); Statistics (4 x size_t) from
// AllocatorImpl::get_statistics; DispatchCoreConfig (12 B) from its std::hash; the 15 slots of
// IGraphProcessor's vtable from the relocations of _ZTVN2tt8tt_metal15IGraphProcessorE.
#include "tt_metal_shim.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "peak_marks.hpp"
#include "tt_metal_api.hpp"

#if !defined(MEMGUARD_TT_METAL_HEADERS)
#include <cxxabi.h>
#include <elf.h>
#include <link.h>
#endif

namespace memguard::ttm {

namespace metal = tt::tt_metal;
namespace dist = tt::tt_metal::distributed;

// ---- the TT-Metal API in one vocabulary ----------------------------------------------------------
namespace api {

#if defined(MEMGUARD_TT_METAL_HEADERS)

std::shared_ptr<dist::MeshDevice> create_unit_mesh(int device_id, std::size_t l1_small_size,
                                                   std::size_t trace_region_size, std::size_t num_command_queues,
                                                   std::size_t worker_l1_size) {
    return dist::MeshDevice::create_unit_mesh(device_id, l1_small_size, trace_region_size, num_command_queues,
                                              metal::DispatchCoreConfig{}, {}, worker_l1_size);
}

const void* identity(const metal::IDevice* device) { return dynamic_cast<const void*>(device); }

const void* identity(const dist::MeshDevice* mesh) {
    return dynamic_cast<const void*>(static_cast<const metal::IDevice*>(mesh));
}

dist::MeshDevice* as_mesh_device(metal::IDevice* device) { return dynamic_cast<dist::MeshDevice*>(device); }

std::string check_library() { return {}; }

metal::BufferShardingArgs height_sharded(metal::CoreRangeSet grid, std::uint32_t pages_per_shard,
                                         std::uint32_t pages) {
    metal::ShardSpecBuffer spec(grid, {32 * pages_per_shard, 32}, metal::ShardOrientation::ROW_MAJOR, {32, 32},
                                {pages, 1});
    return metal::BufferShardingArgs(spec, metal::TensorMemoryLayout::HEIGHT_SHARDED);
}

#else

std::shared_ptr<dist::MeshDevice> create_unit_mesh(int device_id, std::size_t l1_small_size,
                                                   std::size_t trace_region_size, std::size_t num_command_queues,
                                                   std::size_t worker_l1_size) {
    return pinned::create_unit_mesh(device_id, l1_small_size, trace_region_size, num_command_queues,
                                 metal::DispatchCoreConfig{}, pinned::SpanU32{nullptr, 0}, worker_l1_size);
}

// Itanium C++ ABI: a vtable's offset-to-top entry sits two slots before the address the vptr
// holds; adding it to a polymorphic subobject's address gives the complete object's address.
const void* complete_object(const void* polymorphic) {
    const std::ptrdiff_t* vptr = *static_cast<const std::ptrdiff_t* const*>(polymorphic);
    return static_cast<const char*>(polymorphic) + vptr[-2];
}

const void* identity(const metal::IDevice* device) { return complete_object(device); }
const void* identity(const dist::MeshDevice* mesh) { return complete_object(mesh); }

dist::MeshDevice* as_mesh_device(metal::IDevice* device) {
    void* mesh = ::abi::__dynamic_cast(
        device, reinterpret_cast<const ::abi::__class_type_info*>(&pinned::idevice_typeinfo),
        reinterpret_cast<const ::abi::__class_type_info*>(&pinned::mesh_device_typeinfo), -1);
    return static_cast<dist::MeshDevice*>(mesh);
}

namespace {

struct BuildIdSearch {
    std::string path;
    std::string build_id;
    bool found = false;
};

int find_build_id(dl_phdr_info* info, std::size_t, void* data) {
    auto* search = static_cast<BuildIdSearch*>(data);
    const char* name = info->dlpi_name ? info->dlpi_name : "";
    const char* base = std::strrchr(name, '/');
    if (std::strcmp(base ? base + 1 : name, "libtt_metal.so") != 0) return 0;
    search->found = true;
    search->path = name;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_NOTE) continue;
        const char* note = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
        const char* end = note + ph.p_memsz;
        while (note + sizeof(ElfW(Nhdr)) <= end) {
            const auto* header = reinterpret_cast<const ElfW(Nhdr)*>(note);
            const char* name_field = note + sizeof(ElfW(Nhdr));
            const char* desc = name_field + ((header->n_namesz + 3) & ~3u);
            if (header->n_type == NT_GNU_BUILD_ID && header->n_namesz == 4 &&
                std::memcmp(name_field, "GNU", 4) == 0) {
                static const char kHex[] = "0123456789abcdef";
                for (std::uint32_t b = 0; b < header->n_descsz; ++b) {
                    const auto byte = static_cast<unsigned char>(desc[b]);
                    search->build_id += kHex[byte >> 4];
                    search->build_id += kHex[byte & 15];
                }
                return 1;
            }
            note = desc + ((header->n_descsz + 3) & ~3u);
        }
    }
    return 1;
}

}  // namespace

std::string check_library() {
    static const std::string problem = [] {
        BuildIdSearch search;
        dl_iterate_phdr(find_build_id, &search);
        if (!search.found) return std::string("libtt_metal.so is not loaded in this process");
        if (search.build_id == pinned::kPinnedBuildId) return std::string();
        return "the loaded " + search.path + " has GNU build-id " +
               (search.build_id.empty() ? std::string("(none)") : search.build_id) +
               ", but tt-memguard's TT-Metal declarations were checked against " + pinned::kPinnedRelease +
               " (build-id " + pinned::kPinnedBuildId +
               "): point TT_MEMGUARD_TTNN_LIB_DIR at that wheel's ttnn/build/lib, or build against your "
               "install's headers with TT_METAL_HOME";
    }();
    return problem;
}

metal::BufferShardingArgs height_sharded(metal::CoreRangeSet grid, std::uint32_t pages_per_shard,
                                         std::uint32_t pages) {
    metal::ShardSpecBuffer spec{metal::ShardSpec{std::move(grid), {32 * pages_per_shard, 32},
                                                 metal::ShardOrientation::ROW_MAJOR},
                                {32, 32},
                                {pages, 1}};
    return metal::BufferShardingArgs(spec, metal::TensorMemoryLayout::HEIGHT_SHARDED);
}

#endif

}  // namespace api

// ---- errors ---------------------------------------------------------------------------------------
std::string clean_message(const char* what) {
    std::string text = what ? what : "";
    // TT_FATAL / TT_THROW: "TT_FATAL @ file:line: cond\ninfo:\n<message>\nbacktrace:\n ..."
    const std::size_t info = text.find("info:\n");
    if (info != std::string::npos) text = text.substr(info + 6);
    const std::size_t trace = text.find("backtrace:");
    if (trace != std::string::npos) text = text.substr(0, trace);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

namespace {

// Runs a TT-Metal call; whatever it throws leaves as a Failure with a clean message.
template <class F>
auto guarded(F&& call) -> decltype(call()) {
    try {
        return call();
    } catch (const Failure&) {
        throw;
    } catch (const std::exception& e) {
        throw Failure(clean_message(e.what()));
    } catch (...) {
        throw Failure("TT-Metal threw an exception that is not a std::exception");
    }
}

metal::BufferType metal_type(Pool pool) {
    switch (pool) {
        case kDram: return metal::BufferType::DRAM;
        case kL1: return metal::BufferType::L1;
        case kL1Small: return metal::BufferType::L1_SMALL;
        case kTrace: return metal::BufferType::TRACE;
        default: break;
    }
    throw Failure("unknown pool index " + std::to_string(int(pool)));
}

std::optional<Pool> pool_of(metal::BufferType type) {
    switch (type) {
        case metal::BufferType::DRAM: return kDram;
        case metal::BufferType::L1: return kL1;
        case metal::BufferType::L1_SMALL: return kL1Small;
        case metal::BufferType::TRACE: return kTrace;
        default: return std::nullopt;
    }
}

// Saturates at 2^64 - 1 (requests are validated on the Rust side so that it never does).
std::uint64_t round_up(std::uint64_t value, std::uint64_t multiple) {
    if (multiple == 0) return value;
    const std::uint64_t rem = value % multiple;
    if (rem == 0) return value;
    const std::uint64_t pad = multiple - rem;
    return value > UINT64_MAX - pad ? UINT64_MAX : value + pad;
}

const char* pool_name(Pool pool) {
    static const char* const kNames[kPoolCount] = {"DRAM", "L1", "L1_SMALL", "TRACE"};
    return pool < kPoolCount ? kNames[pool] : "?";
}

// The request whose MeshBuffer::create is running on this thread, so that its allocate event
// can carry the caller's tag, label and shard count, and report the id back.
struct Pending {
    const EventLog* log = nullptr;
    const Request* request = nullptr;
    std::uint64_t id = 0;
    std::uint64_t per_bank_size = 0;
};
thread_local Pending* t_pending = nullptr;

}  // namespace

// ---- the event log of one device ----------------------------------------------------------------
class EventLog {
public:
    explicit EventLog(const metal::Allocator* allocator)
        : allocator_(allocator), granularity_(allocator->get_alignment(metal::BufferType::DRAM)) {}

    // The allocator's reservation per bank: TT-Metal's aligned size per bank, rounded up to the
    // allocator granularity (the DRAM alignment, in every pool) and at least one granule.
    std::uint64_t block_size(std::uint64_t aligned_size_per_bank) const {
        return std::max(round_up(aligned_size_per_bank, granularity_), granularity_);
    }

    std::uint64_t allocated(Pool pool) const {
        return allocator_->get_statistics(metal_type(pool)).total_allocated_bytes;
    }

    void on_allocate(const metal::Buffer* buffer) {
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
            record.tag = pending->request->tag;
            record.label = pending->request->label;
            record.shards = pending->request->shards;
        }
        const std::size_t unique_id = buffer->unique_id();
        std::lock_guard<std::mutex> lock(mutex_);
        record.id = next_id_++;
        if (ours) {
            pending->id = record.id;
            pending->per_bank_size = record.per_bank_size;
        }
        by_unique_id_[unique_id] = record.id;
        live_.emplace(record.id, std::move(record));
        if (marks_.active() != 0) marks_.note(*pool, allocated(*pool));
    }

    void on_deallocate(const metal::Buffer* buffer) { forget(buffer->unique_id()); }

    void forget(std::size_t unique_id) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = by_unique_id_.find(unique_id);
        if (it == by_unique_id_.end()) return;
        live_.erase(it->second);
        by_unique_id_.erase(it);
    }

    std::vector<Record> live() const {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<Record> out;
        out.reserve(live_.size());
        for (const auto& entry : live_) out.push_back(entry.second);
        return out;
    }

    std::uint64_t live_count() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return live_.size();
    }

    std::uint64_t next_id() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return next_id_;
    }

    std::uint32_t mark_peak() {
        PeakMarks::Peaks now{};
        for (int p = 0; p < kPoolCount; ++p) now[p] = allocated(Pool(p));
        std::lock_guard<std::mutex> lock(mutex_);
        return marks_.start(now);
    }

    std::array<std::uint64_t, kPoolCount> read_peak(std::uint32_t mark) const {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!marks_.is_active(mark)) {
            throw Failure("peak mark " + std::to_string(mark) + " is not active");
        }
        return marks_.read(mark);
    }

    void release_peak(std::uint32_t mark) {
        std::lock_guard<std::mutex> lock(mutex_);
        marks_.release(mark);
    }

private:
    const metal::Allocator* allocator_;
    std::uint64_t granularity_;
    mutable std::mutex mutex_;
    std::map<std::uint64_t, Record> live_;  // by id: allocation order
    std::unordered_map<std::size_t, std::uint64_t> by_unique_id_;
    std::uint64_t next_id_ = 1;
    // O(1) per allocation whatever the number of active marks.
    PeakMarks marks_;
};

static_assert(PeakMarks::kPools == kPoolCount, "one peak per pool");

namespace {

// Every device's event log, by the address of its MeshDevice. Never destroyed: graph processors
// held by TT-Metal's thread-local stacks may outlive everything else at exit.
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

    // The logs of every handle on the device (a device opened here and adopted again, or
    // adopted twice, has several).
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

// The graph processor pushed on every thread that uses a device: a passive observer (it does not
// turn graph capture on) that forwards buffer events to the log of the buffer's device.
class Observer final : public metal::IGraphProcessor {
public:
    bool is_capture_processor() const override { return false; }
    void track_allocate(const metal::Buffer* buffer) override { forward(buffer, true); }
    void track_deallocate(metal::Buffer* buffer) override { forward(buffer, false); }

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

}  // namespace

// ---- the device ----------------------------------------------------------------------------------
std::unique_ptr<MeshHandle> MeshHandle::open(const OpenOptions& options) {
    const std::string problem = api::check_library();
    if (!problem.empty()) throw Failure(problem);
    auto mesh = guarded([&] {
        // Mock mode registered by an earlier open in this process must not leak into this one.
        metal::experimental::disable_mock_mode();
        if (options.mock_arch != 0) {
            metal::experimental::configure_mock_mode(static_cast<tt::ARCH>(options.mock_arch), options.mock_chips);
        }
        return api::create_unit_mesh(options.device_id, options.l1_small_size, options.trace_region_size,
                                     options.num_command_queues, options.worker_l1_size);
    });
    if (!mesh) throw Failure("MeshDevice::create_unit_mesh returned no device");
    dist::MeshDevice* raw = mesh.get();
    return std::unique_ptr<MeshHandle>(new MeshHandle(std::move(mesh), raw));
}

std::unique_ptr<MeshHandle> MeshHandle::adopt(dist::MeshDevice* mesh) {
    const std::string problem = api::check_library();
    if (!problem.empty()) throw Failure(problem);
    if (mesh == nullptr) throw Failure("the MeshDevice pointer is null");
    return std::unique_ptr<MeshHandle>(new MeshHandle(nullptr, mesh));
}

std::unique_ptr<MeshHandle> adopt_idevice(void* idevice) {
    if (idevice == nullptr) throw Failure("the IDevice pointer is null");
    const std::string problem = api::check_library();
    if (!problem.empty()) throw Failure(problem);
    dist::MeshDevice* mesh = guarded([&] { return api::as_mesh_device(static_cast<metal::IDevice*>(idevice)); });
    if (mesh == nullptr) {
        throw Failure(
            "the IDevice is not a MeshDevice (it is one chip of a mesh): pass the MeshDevice that owns it, "
            "whose allocator places the buffers");
    }
    return MeshHandle::adopt(mesh);
}

MeshHandle::MeshHandle(std::shared_ptr<dist::MeshDevice> owned, dist::MeshDevice* mesh)
    : owned_(std::move(owned)), mesh_(mesh) {
    guarded([&] {
        const metal::Allocator* allocator = mesh_->allocator().get();
        if (allocator == nullptr) throw Failure("the MeshDevice has no allocator");
        log_ = std::make_shared<EventLog>(allocator);
        const tt::xy_pair grid = mesh_->compute_with_storage_grid_size();
        facts_.arch = static_cast<int>(mesh_->arch());
        facts_.grid_x = static_cast<std::uint32_t>(grid.x);
        facts_.grid_y = static_cast<std::uint32_t>(grid.y);
        facts_.mesh_id = mesh_->id();
        facts_.num_devices = mesh_->num_devices();
    });
    Hub::instance().add(api::identity(mesh_), log_);
    observe_this_thread();
}

MeshHandle::~MeshHandle() {
    release_owned();
    if (log_) Hub::instance().remove(log_.get());
    if (owned_) {
        try {
            owned_->close();
        } catch (...) {
        }
        try {
            owned_.reset();
        } catch (...) {
        }
    }
}

void MeshHandle::release_owned() noexcept {
    for (Owned& owned : owned_buffers_) {
        if (!owned.buffer) continue;
        try {
            owned.buffer->deallocate();
        } catch (...) {
        }
        try {
            owned.buffer.reset();
        } catch (...) {
        }
    }
    owned_buffers_.clear();
}

void MeshHandle::observe_this_thread() const {
    thread_local bool observing = false;
    if (observing) return;
    guarded([] { metal::GraphTracker::instance().push_processor(std::make_shared<Observer>()); });
    observing = true;
}

Placed MeshHandle::allocate(const Request& request) {
    observe_this_thread();
    dist::DeviceLocalBufferConfig local;
    local.page_size = request.page_size;
    local.buffer_type = metal_type(request.pool);
    if (request.direction == 1) local.bottom_up = true;
    if (request.direction == 2) local.bottom_up = false;
    if (request.shards > 0) {
        // Height-sharded over the first `shards` cores of the grid in row-major order, each
        // core holding ceil(pages / shards) pages.
        const std::uint64_t pages = request.size / request.page_size;
        const std::uint64_t per_shard = pages / request.shards + (pages % request.shards != 0 ? 1 : 0);
        if (pages > UINT32_MAX || 32 * per_shard > UINT32_MAX) too_large_for_shard_spec(request, pages, per_shard);
        const std::size_t grid_x = facts_.grid_x;
        const std::size_t rows = request.shards / grid_x;
        const std::size_t rest = request.shards % grid_x;
        local.sharding_args = guarded([&] {
            std::vector<metal::CoreRange> ranges;
            if (rows > 0) ranges.emplace_back(tt::xy_pair{0, 0}, tt::xy_pair{grid_x - 1, rows - 1});
            if (rest > 0) ranges.emplace_back(tt::xy_pair{0, rows}, tt::xy_pair{rest - 1, rows});
            return api::height_sharded(metal::CoreRangeSet(std::move(ranges)), std::uint32_t(per_shard),
                                       std::uint32_t(pages));
        });
    }

    Pending pending;
    pending.log = log_.get();
    pending.request = &request;
    t_pending = &pending;
    std::shared_ptr<dist::MeshBuffer> buffer;
    try {
        buffer = guarded([&] {
            return dist::MeshBuffer::create(dist::ReplicatedBufferConfig{request.size}, local, mesh_, std::nullopt);
        });
    } catch (...) {
        t_pending = nullptr;
        throw;
    }
    t_pending = nullptr;

    const metal::Buffer* reference = guarded([&] { return buffer->get_reference_buffer(); });
    if (pending.id == 0) {
        // No event came (a graph hook kept the allocator out): record the buffer directly.
        Pending direct;
        direct.log = log_.get();
        direct.request = &request;
        t_pending = &direct;
        log_->on_allocate(reference);
        t_pending = nullptr;
        pending = direct;
    }
    Placed placed;
    placed.id = pending.id;
    placed.address = guarded([&] { return reference->address(); });
    placed.per_bank_size = pending.per_bank_size;
    Owned owned{pending.id, std::move(buffer)};
    if (free_slots_.empty()) {
        placed.slot = static_cast<std::uint32_t>(owned_buffers_.size());
        owned_buffers_.push_back(std::move(owned));
    } else {
        placed.slot = free_slots_.back();
        free_slots_.pop_back();
        owned_buffers_[placed.slot] = std::move(owned);
    }
    return placed;
}

void MeshHandle::too_large_for_shard_spec(const Request& request, std::uint64_t pages,
                                          std::uint64_t per_shard) const {
    // TT-Metal's shard spec counts pages in 32 bits. A buffer past that needs more than any L1
    // bank holds: it is reported as TT-Metal reports every buffer that does not fit, so that both
    // devices give the same out-of-memory error.
    const metal::BufferType type = metal_type(request.pool);
    const auto [stats, alignment] = guarded([&] {
        const metal::Allocator* allocator = mesh_->allocator().get();
        return std::make_pair(allocator->get_statistics(type), std::uint64_t(allocator->get_alignment(type)));
    });
    const std::uint64_t bank_size = stats.total_allocatable_size_bytes;
    std::uint64_t per_bank = 0;
    if (__builtin_mul_overflow(per_shard, round_up(request.page_size, alignment), &per_bank) ||
        per_bank <= bank_size) {
        throw Failure("a sharded buffer of " + std::to_string(pages) +
                      " pages is too large for TT-Metal's shard spec (at most 4294967295 pages, and 134217727 "
                      "per shard)");
    }
    throw Failure("Out of Memory: Not enough space to allocate " + std::to_string(request.size) + " B " +
                  pool_name(request.pool) + " buffer across " + std::to_string(request.shards) +
                  " banks, where each bank needs to store " + std::to_string(per_bank) + " B, but bank size is " +
                  std::to_string(bank_size) + " B (allocated: " + std::to_string(stats.total_allocated_bytes) +
                  " B, free: " + std::to_string(stats.total_free_bytes) +
                  " B, largest free block: " + std::to_string(stats.largest_free_block_bytes) + " B)");
}

bool MeshHandle::deallocate(std::uint32_t slot, std::uint64_t id) {
    if (id == 0 || slot >= owned_buffers_.size() || owned_buffers_[slot].id != id) return false;
    observe_this_thread();
    Owned owned = std::move(owned_buffers_[slot]);
    owned_buffers_[slot] = Owned{};
    free_slots_.push_back(slot);
    guarded([&] {
        const std::size_t unique_id = owned.buffer->get_reference_buffer()->unique_id();
        owned.buffer->deallocate();
        log_->forget(unique_id);  // in case no event came
        owned.buffer.reset();
    });
    return true;
}

std::array<PoolInfo, kPoolCount> MeshHandle::snapshot() const {
    observe_this_thread();
    return guarded([&] {
        const metal::Allocator* allocator = mesh_->allocator().get();
        std::array<PoolInfo, kPoolCount> pools{};
        for (int p = 0; p < kPoolCount; ++p) {
            const metal::BufferType type = metal_type(Pool(p));
            const metal::Statistics stats = allocator->get_statistics(type);
            PoolInfo& info = pools[p];
            info.banks = allocator->get_num_banks(type);
            info.alignment = allocator->get_alignment(type);
            info.allocatable = stats.total_allocatable_size_bytes;
            info.allocated = stats.total_allocated_bytes;
            info.free = stats.total_free_bytes;
            info.largest_free = stats.largest_free_block_bytes;
        }
        // L1_SMALL sits right above the L1 pool, TRACE right above the DRAM pool.
        const metal::HalMemType dram = metal::HalMemType::DRAM;
        const metal::HalMemType l1 = metal::HalMemType::L1;
        pools[kDram].base = allocator->get_base_allocator_addr(dram);
        pools[kL1].base = allocator->get_base_allocator_addr(l1);
        pools[kL1Small].base = pools[kL1].base + pools[kL1].allocatable;
        pools[kTrace].base = pools[kDram].base + pools[kDram].allocatable;
        return pools;
    });
}

std::vector<Record> MeshHandle::live() const { return log_->live(); }
std::uint64_t MeshHandle::live_count() const { return log_->live_count(); }
std::uint64_t MeshHandle::next_id() const { return log_->next_id(); }

std::uint32_t MeshHandle::mark_peak() {
    observe_this_thread();
    return guarded([&] { return log_->mark_peak(); });
}

std::array<std::uint64_t, kPoolCount> MeshHandle::read_peak(std::uint32_t mark) const {
    return log_->read_peak(mark);
}

void MeshHandle::release_peak(std::uint32_t mark) { log_->release_peak(mark); }

}  // namespace memguard::ttm

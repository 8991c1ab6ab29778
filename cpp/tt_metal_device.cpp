// The TT-Metal device handle (see tt_metal_device.hpp).
#include "tt_metal_device.hpp"

#include <utility>

#include "tt_metal_abi.hpp"

namespace memguard::ttm {
namespace {

tt::ARCH metal_arch(Arch arch) {
    switch (arch) {
        case Arch::WormholeB0: return tt::ARCH::WORMHOLE_B0;
        case Arch::Blackhole: return tt::ARCH::BLACKHOLE;
        case Arch::Unknown: break;
    }
    throw Failure("mock mode needs a Wormhole B0 or Blackhole architecture, not architecture value " +
                  std::to_string(static_cast<int>(arch)));
}

Arch arch_of(tt::ARCH arch) {
    switch (arch) {
        case tt::ARCH::WORMHOLE_B0: return Arch::WormholeB0;
        case tt::ARCH::BLACKHOLE: return Arch::Blackhole;
        default: return Arch::Unknown;
    }
}

// Throws when the loaded libtt_metal.so is not the one the declarations were checked against.
void require_pinned_library() {
    const std::string problem = api::check_library();
    if (!problem.empty()) throw Failure(problem);
}

std::uint64_t ceil_div(std::uint64_t value, std::uint64_t divisor) {
    return value / divisor + (value % divisor != 0 ? 1 : 0);
}

}  // namespace

// ---- opening and adopting -----------------------------------------------------------------------
std::unique_ptr<MeshHandle> MeshHandle::open(const OpenOptions& options) {
    require_pinned_library();
    auto mesh = guarded([&] {
        // Mock mode registered by an earlier open in this process must not leak into this one.
        metal::experimental::disable_mock_mode();
        if (options.mock) {
            metal::experimental::configure_mock_mode(metal_arch(options.mock_arch), options.mock_chips);
        }
        return api::create_unit_mesh(options.device_id, options.l1_small_size, options.trace_region_size,
                                     options.num_command_queues, options.worker_l1_size);
    });
    if (!mesh) throw Failure("MeshDevice::create_unit_mesh returned no device");
    dist::MeshDevice* raw = mesh.get();
    return std::unique_ptr<MeshHandle>(new MeshHandle(std::move(mesh), raw));
}

std::unique_ptr<MeshHandle> MeshHandle::adopt(dist::MeshDevice* mesh) {
    require_pinned_library();
    if (mesh == nullptr) throw Failure("the MeshDevice pointer is null");
    return std::unique_ptr<MeshHandle>(new MeshHandle(nullptr, mesh));
}

std::unique_ptr<MeshHandle> adopt_idevice(void* idevice) {
    if (idevice == nullptr) throw Failure("the IDevice pointer is null");
    require_pinned_library();
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
        facts_.arch = arch_of(mesh_->arch());
        facts_.grid_x = static_cast<std::uint32_t>(grid.x);
        facts_.grid_y = static_cast<std::uint32_t>(grid.y);
        facts_.mesh_id = mesh_->id();
        facts_.num_devices = mesh_->num_devices();
    });
    attach(api::identity(mesh_), log_);
    observe_this_thread();
}

MeshHandle::~MeshHandle() {
    release_owned();
    if (log_) detach(log_.get());
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

// ---- buffers ------------------------------------------------------------------------------------
Outcome MeshHandle::allocate(const Request& request) {
    Outcome out;
    if (!is_pool(request.pool) || !is_direction(request.direction) || request.fixed_address || request.size == 0 ||
        request.page_size == 0 || request.size % request.page_size != 0 ||
        (request.pool == Pool::L1Small && request.shards == 0)) {
        // The Rust side validates first and names the problem; this is a backstop so that
        // TT-Metal never sees an impossible request.
        out.status = AllocStatus::Invalid;
        return out;
    }
    observe_this_thread();
    dist::DeviceLocalBufferConfig local;
    local.page_size = request.page_size;
    local.buffer_type = metal_type(request.pool);
    if (request.direction == Direction::BottomUp) local.bottom_up = true;
    if (request.direction == Direction::TopDown) local.bottom_up = false;
    if (request.shards > 0) {
        // Height-sharded over the first `shards` cores of the grid in row-major order, each
        // core holding ceil(pages / shards) pages.
        const std::uint64_t pages = request.size / request.page_size;
        const std::uint64_t per_shard = ceil_div(pages, request.shards);
        if (pages > UINT32_MAX || 32 * per_shard > UINT32_MAX) {
            // TT-Metal's shard spec counts pages in 32 bits. A buffer past that needs more than
            // any L1 bank holds: out of memory, as on the simulated device.
            const Outcome fitted = fit(request);
            if (fitted.status == AllocStatus::OutOfMemory) return fitted;
            throw Failure("a sharded buffer of " + std::to_string(pages) +
                          " pages is too large for TT-Metal's shard spec (at most 4294967295 pages, and 134217727 "
                          "per shard)");
        }
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
    pending.tag = request.tag;
    pending.label = &request.label;
    pending.shards = request.shards;
    std::shared_ptr<dist::MeshBuffer> buffer;
    try {
        PendingScope scope(pending);
        buffer = guarded([&] {
            return dist::MeshBuffer::create(dist::ReplicatedBufferConfig{request.size}, local, mesh_, std::nullopt);
        });
    } catch (const Failure&) {
        // TT-Metal throws for a buffer no free block holds, and leaves its allocator as it was:
        // its statistics tell whether that is why. Anything else keeps TT-Metal's message.
        const Outcome fitted = fit(request);
        if (fitted.status == AllocStatus::OutOfMemory) return fitted;
        throw;
    }

    const metal::Buffer* reference = guarded([&] { return buffer->get_reference_buffer(); });
    if (pending.id == 0) {
        // No event came (a graph hook kept the allocator out): record the buffer directly.
        PendingScope scope(pending);
        guarded([&] { log_->on_allocate(reference); });
    }
    out.id = pending.id;
    out.address = guarded([&] { return reference->address(); });
    out.per_bank_size = pending.per_bank_size;
    Owned owned{pending.id, std::move(buffer)};
    if (free_slots_.empty()) {
        out.slot = static_cast<std::uint32_t>(owned_buffers_.size());
        owned_buffers_.push_back(std::move(owned));
    } else {
        out.slot = free_slots_.back();
        free_slots_.pop_back();
        owned_buffers_[out.slot] = std::move(owned);
    }
    return out;
}

Outcome MeshHandle::fit(const Request& request) const {
    const std::array<PoolInfo, kPoolCount> pools = snapshot();
    Outcome out;
    out.pool = pools[pool_index(request.pool)];
    out.banks = request.shards > 0 ? request.shards : out.pool.banks;
    // TT-Metal's per-bank size: ceil(pages / banks) pages, each rounded up to the pool alignment.
    if (out.banks > 0) {
        const std::uint64_t pages_per_bank = ceil_div(request.size / request.page_size, out.banks);
        if (__builtin_mul_overflow(pages_per_bank, round_up(request.page_size, out.pool.alignment),
                                   &out.size_per_bank)) {
            out.size_per_bank = UINT64_MAX;
        }
    }
    // The allocator rounds it up to its granularity and places it in a free block at least that
    // large.
    if (out.pool.largest_free < log_->block_size(out.size_per_bank)) out.status = AllocStatus::OutOfMemory;
    return out;
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

// ---- statistics and the event log --------------------------------------------------------------
std::array<PoolInfo, kPoolCount> MeshHandle::snapshot() const {
    observe_this_thread();
    return guarded([&] {
        const metal::Allocator* allocator = mesh_->allocator().get();
        std::array<PoolInfo, kPoolCount> pools{};
        for (const Pool pool : kPools) {
            const metal::BufferType type = metal_type(pool);
            const metal::Statistics stats = allocator->get_statistics(type);
            PoolInfo& info = pools[pool_index(pool)];
            info.banks = allocator->get_num_banks(type);
            info.alignment = allocator->get_alignment(type);
            info.allocatable = stats.total_allocatable_size_bytes;
            info.allocated = stats.total_allocated_bytes;
            info.free = stats.total_free_bytes;
            info.largest_free = stats.largest_free_block_bytes;
        }
        // L1_SMALL sits right above the L1 pool, TRACE right above the DRAM pool.
        PoolInfo& dram = pools[pool_index(Pool::Dram)];
        PoolInfo& l1 = pools[pool_index(Pool::L1)];
        dram.base = allocator->get_base_allocator_addr(metal::HalMemType::DRAM);
        l1.base = allocator->get_base_allocator_addr(metal::HalMemType::L1);
        pools[pool_index(Pool::L1Small)].base = l1.base + l1.allocatable;
        pools[pool_index(Pool::Trace)].base = dram.base + dram.allocatable;
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

PeakMarks::Peaks MeshHandle::read_peak(std::uint32_t mark) const {
    return log_->read_peak(mark);
}

void MeshHandle::release_peak(std::uint32_t mark) { log_->release_peak(mark); }

}  // namespace memguard::ttm

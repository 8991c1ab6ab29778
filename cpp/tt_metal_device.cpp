// The TT-Metal device handle (see tt_metal_device.hpp).
#include "tt_metal_device.hpp"

#include <algorithm>
#include <exception>
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
        if (options.mesh) {
            return api::create_mesh(options.mesh_rows, options.mesh_cols, options.l1_small_size,
                                    options.trace_region_size, options.num_command_queues, options.worker_l1_size);
        }
        return api::create_unit_mesh(options.device_id, options.l1_small_size, options.trace_region_size,
                                     options.num_command_queues, options.worker_l1_size);
    });
    if (!mesh) throw Failure("TT-Metal opened no MeshDevice");
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
        facts_.rows = static_cast<std::uint32_t>(mesh_->num_rows());
        facts_.cols = static_cast<std::uint32_t>(mesh_->num_cols());
    });
    attach(api::identity(mesh_), log_);
    observe_this_thread();
}

MeshHandle::~MeshHandle() {
    // Programs first: destroying a compiled one reports its CBs freed to the device.
    try {
        programs_.clear();
    } catch (...) {
    }
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
        (request.pool == Pool::L1Small && request.shards == 0) || (request.pool == Pool::Trace && request.shards > 0)) {
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
        // Height-sharded over the first `shards` cores of the grid in row-major order (L1,
        // L1_SMALL), or over the first `shards` DRAM banks (DRAM: TT-Metal's DRAM shard grid is
        // row 0, one logical core per bank, x = bank id), each holding ceil(pages / shards)
        // pages.
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
        const bool dram = request.pool == Pool::Dram;
        const std::size_t grid_x = dram ? request.shards : facts_.grid_x;
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

namespace memguard::ttm {

// ---- programs and circular buffers -----------------------------------------------------------------
MeshHandle::ProgramEntry::ProgramEntry(std::uint64_t id, std::uint32_t max_cbs) : model(id, max_cbs) {}
MeshHandle::ProgramEntry::~ProgramEntry() = default;

std::uint64_t MeshHandle::create_program() {
    observe_this_thread();
    auto program = guarded([] { return std::make_unique<metal::Program>(metal::CreateProgram()); });
    const std::uint64_t id = guarded([&] { return api::program_id(*program); });
    // 32 circular buffers a core on Wormhole, 64 on Blackhole (TT-Metal's HAL).
    const std::uint32_t max_cbs = facts_.arch == Arch::Blackhole ? 64 : 32;
    auto entry = std::make_unique<ProgramEntry>(id, max_cbs);
    entry->program = std::move(program);
    programs_[id] = std::move(entry);
    return id;
}

sim::CbCheck MeshHandle::add_circular_buffer(std::uint64_t program, const sim::CircularBufferSpec& spec,
                                             std::uint32_t* handle) {
    sim::CbCheck check;
    auto it = programs_.find(program);
    if (it == programs_.end()) {
        check.status = CbStatus::UnknownProgram;
        return check;
    }
    if (spec.backed) throw Failure("a circular buffer backed by a buffer is not supported on a TT-Metal device");
    if (spec.size > UINT32_MAX) {
        throw Failure("a circular buffer of " + std::to_string(spec.size) +
                      " B does not fit TT-Metal's 32-bit circular buffer size");
    }
    ProgramEntry& entry = *it->second;
    // The model answers what TT-Metal would refuse (a compiled program, an index taken or too
    // large), with the numbers of its message; TT-Metal is asked only for what the model accepts.
    if (entry.laid_out) {
        check.status = CbStatus::AlreadyCompiled;
        return check;
    }
    sim::Program trial = entry.model;
    check = trial.add(spec, handle);
    if (check.status != CbStatus::Ok) return check;
    observe_this_thread();
    std::vector<metal::CoreRange> ranges;
    ranges.reserve(spec.ranges.size());
    for (const sim::CoreRange& r : spec.ranges) {
        ranges.emplace_back(tt::xy_pair{r.x0, r.y0}, tt::xy_pair{r.x1, r.y1});
    }
    api::create_circular_buffer(*entry.program, ranges, static_cast<std::uint32_t>(spec.size), spec.indices);
    entry.model = std::move(trial);
    return check;
}

namespace {

// Appends [address, address + size) to a region allocator as TT-Metal's mark_address does.
void mark(sim::CbRegionAllocator& allocator, std::uint64_t address, std::uint64_t size, std::uint64_t base) {
    if (allocator.regions.empty()) allocator.regions.emplace_back(base, base);
    auto& last = allocator.regions.back();
    if (address == last.second) {
        last.second += size;
    } else {
        allocator.regions.emplace_back(address, address + size);
    }
}

}  // namespace

Enqueued MeshHandle::enqueue(std::uint64_t program) {
    Enqueued out;
    auto it = programs_.find(program);
    if (it == programs_.end()) {
        out.check.status = CbStatus::UnknownProgram;
        return out;
    }
    ProgramEntry& entry = *it->second;
    observe_this_thread();
    const bool first = !entry.laid_out;
    if (first) {
        entry.workload = api::make_workload(std::move(*entry.program), mesh_);
        entry.program.reset();
    }
    // The compile step of EnqueueMeshWorkload: nothing is dispatched (a kernel-less program
    // cannot be: TT-Metal crashes assembling its commands).
    CbCapture capture;
    std::string thrown;
    bool threw = false;
    {
        CbCaptureScope scope(capture);
        try {
            api::compile(*entry.workload, mesh_);
        } catch (const std::exception& e) {
            threw = true;
            thrown = clean_message(e.what());
        } catch (...) {
            threw = true;
            thrown = "TT-Metal threw an exception that is not a std::exception";
        }
    }
    const std::vector<sim::CircularBuffer>& cbs = entry.model.circular_buffers();
    if (first) {
        entry.laid_out = true;
        // TT-Metal reports every CB once per chip of the mesh, CB by CB, each chip at the same
        // address: the program is laid out the same way on every chip.
        const std::size_t chips = std::max<std::uint64_t>(facts_.num_devices, 1);
        if (capture.allocated.size() != cbs.size() * chips) {
            throw Failure("TT-Metal reported " + std::to_string(capture.allocated.size()) +
                          " circular buffers laid out for program " + std::to_string(program) + ", which has " +
                          std::to_string(cbs.size()) + " on each of " + std::to_string(chips) + " chips" +
                          (threw ? ": " + thrown : std::string()));
        }
        for (std::size_t i = 0; i < capture.allocated.size(); i += chips) {
            for (std::size_t chip = 1; chip < chips; ++chip) {
                if (capture.allocated[i + chip] != capture.allocated[i]) {
                    throw Failure("TT-Metal laid circular buffer " + std::to_string(i / chips) + " of program " +
                                  std::to_string(program) + " out at different addresses on the chips of the mesh");
                }
            }
            entry.addresses.push_back(capture.allocated[i].first);
        }
    } else if (!capture.allocated.empty()) {
        throw Failure("TT-Metal laid program " + std::to_string(program) + " out again at a later enqueue");
    }

    // What the checks read: the bottom of the L1 pool, one core's L1, the lowest L1 buffer.
    const auto pools = snapshot();
    const std::uint64_t base = pools[pool_index(Pool::L1)].base;
    out.l1_allocated = pools[pool_index(Pool::L1)].allocated + pools[pool_index(Pool::L1Small)].allocated;
    guarded([&] {
        out.l1_size = mesh_->l1_size_per_core();
        out.lowest_l1 = mesh_->lowest_occupied_compute_l1_address();
    });
    out.laid_out_now = first;

    // The program's region allocators (one per distinct merged range, in creation order), marked
    // with the addresses TT-Metal gave: the region ends its two checks compare.
    std::vector<sim::CbRegionAllocator> allocators;
    for (const sim::CbRegionAllocator& a : entry.model.allocators()) allocators.push_back({a.range, {}});
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> ends;  // per core, x then y
    for (std::size_t i = 0; i < cbs.size(); ++i) {
        const std::uint64_t address = entry.addresses[i];
        for (const sim::CoreRange& r : cbs[i].ranges) {
            for (sim::CbRegionAllocator& a : allocators) {
                if (!a.range.intersects(r)) continue;
                if (a.range != r && !a.regions.empty() && address < a.end()) continue;
                mark(a, address, cbs[i].size, base);
            }
            for (std::uint32_t x = r.x0; x <= r.x1; ++x) {
                for (std::uint32_t y = r.y0; y <= r.y1; ++y) {
                    std::uint64_t& end = ends[{x, y}];
                    end = std::max(end, address + cbs[i].size);
                }
            }
        }
    }
    out.layout.base = base;
    for (const auto& [core, end] : ends) {
        ++out.layout.cores_with_cbs;
        if (end > out.layout.max_end) {
            out.layout.max_end = end;
            out.layout.max_x = core.first;
            out.layout.max_y = core.second;
        }
    }
    for (const sim::CbRegionAllocator& a : allocators) {
        if (a.regions.empty()) continue;
        const std::uint64_t end = a.end();
        if (end > out.l1_size) {
            out.check = {CbStatus::BeyondL1, a.range, end, out.l1_size};
            break;
        }
        if (out.lowest_l1 && *out.lowest_l1 < end) {
            out.check = {CbStatus::Clash, a.range, end, *out.lowest_l1};
            break;
        }
    }

    // TT-Metal's own verdict must be the same: it threw exactly when a check failed, and its
    // message carries the region end found here.
    const bool failed = out.check.status != CbStatus::Ok;
    if (threw != failed || (threw && thrown.find(std::to_string(out.check.value)) == std::string::npos)) {
        throw Failure(threw ? "enqueueing program " + std::to_string(program) + ": " + thrown
                            : "TT-Metal accepted program " + std::to_string(program) +
                                  " although its circular buffers end at " + std::to_string(out.check.value) +
                                  " B, beyond " + std::to_string(out.check.limit) + " B on core range " +
                                  out.check.range.str());
    }
    if (!failed && out.layout.max_end > 0) {
        const std::uint64_t cb_bytes = out.layout.max_end - out.layout.base;
        const std::uint64_t limit = std::min(out.lowest_l1.value_or(out.l1_size), out.l1_size);
        log_->note_program(cb_bytes, cb_bytes + out.l1_allocated, UINT64_MAX - (limit - out.layout.max_end));
    }
    return out;
}

std::vector<std::uint64_t> MeshHandle::program_addresses(std::uint64_t program) const {
    auto it = programs_.find(program);
    if (it == programs_.end() || !it->second->laid_out) return {};
    return it->second->addresses;
}

bool MeshHandle::destroy_program(std::uint64_t program) {
    auto it = programs_.find(program);
    if (it == programs_.end()) return false;
    observe_this_thread();
    std::unique_ptr<ProgramEntry> entry = std::move(it->second);
    programs_.erase(it);
    guarded([&] { entry.reset(); });
    return true;
}

}  // namespace memguard::ttm

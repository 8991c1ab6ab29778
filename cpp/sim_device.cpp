#include "sim_device.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

namespace memguard::sim {
namespace {

constexpr Addr kTraceGranule = 8 * 1024;

// `value` rounded up to a multiple of `multiple`; nothing when that does not
// fit in 64 bits.
std::optional<Addr> round_up(Addr value, Addr multiple) {
    const Addr rem = value % multiple;
    if (rem == 0) return value;
    const Addr pad = multiple - rem;
    if (value > std::numeric_limits<Addr>::max() - pad) return std::nullopt;
    return value + pad;
}

Addr ceil_div(Addr value, Addr divisor) { return value / divisor + (value % divisor != 0 ? 1 : 0); }

void require(bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument(what);
}

std::array<PoolAllocator, kPoolCount> make_pools(const Geometry& g) {
    const Layout layout = compute_layout(g);
    const Addr granule = g.dram_alignment;
    return {
        PoolAllocator(g.dram_base, layout.dram_pool_size, granule),
        PoolAllocator(g.l1_base, layout.l1_pool_size, granule),
        PoolAllocator(g.l1_bank_size - layout.l1_small_per_bank, layout.l1_small_per_bank, granule),
        PoolAllocator(g.dram_bank_size - layout.trace_per_bank, layout.trace_per_bank, granule),
    };
}

}  // namespace

Layout compute_layout(const Geometry& g) {
    auto pow2 = [](Addr v) { return v != 0 && (v & (v - 1)) == 0; };
    require(g.dram_banks > 0, "dram_banks must be at least 1");
    require(g.l1_banks > 0, "l1_banks must be at least 1");
    require(g.max_circular_buffers >= 1 && g.max_circular_buffers <= 64, "max_circular_buffers must be from 1 to 64");
    require(pow2(g.dram_alignment), "dram_alignment must be a power of two");
    require(pow2(g.l1_alignment), "l1_alignment must be a power of two");
    require(g.dram_base % g.dram_alignment == 0, "dram_base must be a multiple of dram_alignment");
    require(g.l1_base % g.l1_alignment == 0, "l1_base must be a multiple of l1_alignment");
    require(g.dram_bank_size > g.dram_base, "dram_bank_size must be larger than dram_base");
    require(g.l1_bank_size > g.l1_base, "l1_bank_size must be larger than l1_base");
    require(g.dram_bank_size % g.dram_alignment == 0, "dram_bank_size must be a multiple of dram_alignment");
    require(g.l1_bank_size % g.dram_alignment == 0,
            "l1_bank_size must be a multiple of dram_alignment (the allocator granularity)");

    // Device totals (a per-bank figure times the bank count) must fit in
    // 64 bits: every statistic is at most its bank size.
    constexpr Addr kMax = std::numeric_limits<Addr>::max();
    require(g.dram_bank_size <= kMax / g.dram_banks, "dram_bank_size x dram_banks must fit in 64 bits");
    require(g.l1_bank_size <= kMax / g.l1_banks, "l1_bank_size x l1_banks must fit in 64 bits");

    // A carve-out whose rounding overflows takes more than any bank holds.
    Layout layout;
    const Addr l1_room = g.l1_bank_size - g.l1_base;
    const Addr dram_room = g.dram_bank_size - g.dram_base;
    if (g.l1_small_size > 0) layout.l1_small_per_bank = round_up(g.l1_small_size, g.dram_alignment).value_or(kMax);
    if (g.trace_region_size > 0) {
        layout.trace_per_bank = round_up(ceil_div(g.trace_region_size, g.dram_banks), kTraceGranule).value_or(kMax);
    }
    require(layout.l1_small_per_bank < l1_room, "l1_small_size leaves no room for L1 in the bank");
    require(layout.trace_per_bank < dram_room, "trace_region_size leaves no room for DRAM in the bank");
    layout.dram_pool_size = g.dram_bank_size - layout.trace_per_bank - g.dram_base;
    layout.l1_pool_size = g.l1_bank_size - layout.l1_small_per_bank - g.l1_base;
    require(g.l1_interleaved_limit == 0 ||
                (g.l1_interleaved_limit >= g.l1_base && g.l1_interleaved_limit < g.l1_base + layout.l1_pool_size),
            "l1_interleaved_limit must lie inside the L1 pool");
    return layout;
}

std::optional<Addr> size_per_bank(Addr size, Addr page_size, std::uint32_t banks, Addr alignment) {
    if (page_size == 0 || banks == 0) return 0;
    const Addr pages_per_bank = ceil_div(size / page_size, banks);
    const std::optional<Addr> aligned_page = round_up(page_size, alignment);
    if (!aligned_page) return std::nullopt;
    Addr bytes = 0;
    if (__builtin_mul_overflow(pages_per_bank, *aligned_page, &bytes)) return std::nullopt;
    return bytes;
}

Device::Device(const Geometry& geometry) : geometry_(geometry), pools_(make_pools(geometry)) {
    banks_[pool_index(Pool::Dram)] = geometry.dram_banks;
    banks_[pool_index(Pool::L1)] = geometry.l1_banks;
    banks_[pool_index(Pool::L1Small)] = geometry.l1_small_size == 0 ? 0 : geometry.l1_banks;
    banks_[pool_index(Pool::Trace)] = geometry.dram_banks;
    alignment_[pool_index(Pool::Dram)] = geometry.dram_alignment;
    alignment_[pool_index(Pool::L1)] = geometry.l1_alignment;
    alignment_[pool_index(Pool::L1Small)] = geometry.l1_alignment;
    alignment_[pool_index(Pool::Trace)] = geometry.dram_alignment;
}

AllocOutcome Device::allocate(const AllocRequest& request) {
    AllocOutcome out;
    if (!is_pool(request.pool) || request.size == 0 || request.page_size == 0 ||
        request.size % request.page_size != 0) {
        // The Rust side validates first and names the problem; this is a
        // backstop so that the allocator never sees an impossible request.
        out.status = AllocStatus::Invalid;
        return out;
    }
    const Pool pool = request.pool;
    const bool sharded = request.shards > 0;
    // Shards are cores of the compute grid in L1 and L1_SMALL, DRAM banks in DRAM; TRACE holds
    // interleaved buffers only, and L1_SMALL sharded ones only.
    const bool shards_ok = !sharded || (pool == Pool::Dram ? request.shards <= geometry_.dram_banks
                                                           : pool != Pool::Trace && request.shards <= geometry_.l1_banks);
    if (!shards_ok || (!sharded && pool == Pool::L1Small)) {
        out.status = AllocStatus::Invalid;
        return out;
    }
    out.banks = sharded ? request.shards : banks(pool);
    PoolAllocator& allocator = pools_[pool_index(pool)];
    const std::optional<Addr> per_bank = size_per_bank(request.size, request.page_size, out.banks, alignment(pool));
    if (!per_bank || !allocator.block_size(*per_bank)) {
        // TT-Metal's own arithmetic wraps here; the Rust side refuses these
        // requests first and says why.
        out.status = AllocStatus::TooLarge;
        return out;
    }
    out.size_per_bank = *per_bank;
    bool bottom_up = pool == Pool::Dram || pool == Pool::Trace;
    switch (request.direction) {
        case Direction::Default: break;
        case Direction::BottomUp: bottom_up = true; break;
        case Direction::TopDown: bottom_up = false; break;
        default: out.status = AllocStatus::Invalid; return out;
    }

    std::optional<Addr> address;
    AllocStatus failure = AllocStatus::OutOfMemory;
    bool orphan = false;
    if (banks(pool) == 0) {
        address = std::nullopt;  // region not configured (L1_SMALL with size 0)
    } else if (request.fixed_address) {
        // Every block boundary lies on the allocator's grid from the pool base.
        if (request.address >= allocator.base() &&
            (request.address - allocator.base()) % allocator.granularity() != 0) {
            out.status = AllocStatus::AddressUnaligned;
            out.stats = allocator.statistics();
            return out;
        }
        address = allocator.allocate_at(request.address, out.size_per_bank);
        failure = AllocStatus::AddressNotFree;
    } else {
        Addr limit = 0;
        if (!sharded && pool == Pool::L1) limit = geometry_.l1_interleaved_limit;
        const PoolAllocator::Placement placement = allocator.allocate(out.size_per_bank, bottom_up, limit);
        address = placement.address;
        orphan = placement.below_limit;
    }
    if (!address) {
        out.status = failure;
        out.stats = allocator.statistics();
        return out;
    }

    Record& record = out.record;
    record.id = next_id_++;
    record.pool = pool;
    record.address = *address;
    record.size = request.size;
    record.page_size = request.page_size;
    record.per_bank_size = *allocator.block_size(out.size_per_bank);
    record.shards = request.shards;
    record.tag = request.tag;
    record.orphan = orphan;
    out.slot = add_record(record, request.label);
    note_allocated(pool);
    if (orphan) {
        // Refused below the interleaved limit, as TT-Metal refuses it: after taking the block,
        // which stays allocated under a record of its own (the failed request's size, label
        // and caller) so that leak reports can name it.
        out.status = AllocStatus::BelowAddressLimit;
        out.stats = allocator.statistics();
    }
    return out;
}

std::uint32_t Device::add_record(const Record& record, const std::string& label) {
    if (!label.empty()) labels_.emplace(record.id, label);
    std::uint32_t slot = 0;
    if (free_slots_.empty()) {
        slot = static_cast<std::uint32_t>(records_.size());
        records_.push_back(record);
    } else {
        slot = free_slots_.back();
        free_slots_.pop_back();
        records_[slot] = record;
    }
    records_[slot].labeled = !label.empty();
    ++live_count_;
    return slot;
}

bool Device::deallocate(std::uint32_t slot, std::uint64_t id) {
    if (id == 0 || slot >= records_.size() || records_[slot].id != id || records_[slot].orphan) return false;
    Record& record = records_[slot];
    pools_[pool_index(record.pool)].deallocate(record.address, record.per_bank_size);
    if (record.labeled) labels_.erase(id);
    record.id = 0;
    free_slots_.push_back(slot);
    --live_count_;
    return true;
}

bool Device::reset() {
    if (live_count_ != 0 || marks_.active() != 0 || !programs_.empty()) return false;
    records_.clear();
    free_slots_.clear();
    labels_.clear();
    next_id_ = 1;
    next_program_ = 0;
    return true;
}

const std::string& Device::label(std::uint64_t id) const {
    static const std::string kEmpty;
    auto it = labels_.find(id);
    return it == labels_.end() ? kEmpty : it->second;
}

void Device::note_allocated(Pool pool) { marks_.note(pool_index(pool), allocator(pool).allocated_bytes()); }

PoolView Device::pool(Pool pool) const {
    PoolView view;
    view.banks = banks(pool);
    view.base = allocator(pool).base();
    view.alignment = alignment(pool);
    view.stats = allocator(pool).statistics();
    return view;
}

PoolStatistics Device::scan_statistics(Pool pool) const {
    const PoolAllocator& allocator = this->allocator(pool);
    PoolStatistics stats;
    stats.total_allocatable = allocator.size();
    for (const Record& record : records_) {
        if (record.id != 0 && record.pool == pool) stats.allocated += record.per_bank_size;
    }
    allocator.scan_free(stats.free, stats.largest_free);
    if (stats.allocated == 0) {
        stats.free = allocator.size();
        stats.largest_free = allocator.size();
    }
    return stats;
}

std::vector<Block> Device::blocks(Pool pool) const {
    std::vector<Block> out;
    for (const FreeBlock& block : allocator(pool).free_blocks()) out.push_back({block.address, block.size, false});
    for (const Record& record : records_) {
        if (record.id != 0 && record.pool == pool) out.push_back({record.address, record.per_bank_size, true});
    }
    std::sort(out.begin(), out.end(), [](const Block& a, const Block& b) { return a.address < b.address; });
    return out;
}

std::vector<const Record*> Device::live() const {
    std::vector<const Record*> out;
    out.reserve(live_count_);
    for (const Record& record : records_) {
        if (record.id != 0) out.push_back(&record);
    }
    std::sort(out.begin(), out.end(), [](const Record* a, const Record* b) { return a->id < b->id; });
    return out;
}

std::uint64_t Device::create_program() {
    const std::uint64_t id = next_program_++;
    programs_.emplace(id, Program(id, geometry_.max_circular_buffers));
    return id;
}

CbCheck Device::add_circular_buffer(std::uint64_t program, const CircularBufferSpec& spec, std::uint32_t* handle) {
    auto it = programs_.find(program);
    if (it == programs_.end()) {
        CbCheck check;
        check.status = CbStatus::UnknownProgram;
        return check;
    }
    return it->second.add(spec, handle);
}

EnqueueResult Device::enqueue(std::uint64_t program) {
    EnqueueResult out;
    auto it = programs_.find(program);
    if (it == programs_.end()) {
        out.check.status = CbStatus::UnknownProgram;
        return out;
    }
    // A CB backed by a buffer that was freed would use memory that is no longer its own.
    std::uint32_t handle = 0;
    for (const CircularBuffer& cb : it->second.circular_buffers()) {
        if (cb.backed && (cb.backing_slot >= records_.size() || records_[cb.backing_slot].id != cb.backing_id)) {
            out.check.status = CbStatus::BackingFreed;
            out.check.value = handle;
            out.check.limit = cb.backing_id;
            return out;
        }
        ++handle;
    }
    const PoolAllocator& l1 = allocator(Pool::L1);
    out.lowest_l1 = l1.lowest_allocated();
    out.l1_size = geometry_.l1_bank_size;
    out.l1_allocated = l1.allocated_bytes() + allocator(Pool::L1Small).allocated_bytes();
    out.check = it->second.enqueue(l1.base(), geometry_.dram_alignment, out.l1_size, out.lowest_l1, &out.laid_out_now);
    out.layout = it->second.layout();
    if (out.check.status == CbStatus::Ok && out.layout.max_end > 0) {
        const Addr cb_bytes = out.layout.max_end - out.layout.base;
        const Addr limit = std::min(out.lowest_l1.value_or(out.l1_size), out.l1_size);
        const Addr headroom = limit - out.layout.max_end;
        marks_.note(kPeakCbBytes, cb_bytes);
        marks_.note(kPeakL1Total, cb_bytes + out.l1_allocated);
        marks_.note(kPeakHeadroomGap, UINT64_MAX - headroom);
    }
    return out;
}

const Program* Device::program(std::uint64_t id) const {
    auto it = programs_.find(id);
    return it == programs_.end() ? nullptr : &it->second;
}

bool Device::destroy_program(std::uint64_t id) { return programs_.erase(id) > 0; }

std::uint32_t Device::mark_peak() {
    PeakMarks::Peaks now{};
    for (std::size_t p = 0; p < kPoolCount; ++p) now[p] = pools_[p].allocated_bytes();
    return marks_.start(now);
}

PeakMarks::Peaks Device::read_peak(std::uint32_t mark) const {
    if (!marks_.is_active(mark)) {
        throw std::out_of_range("peak mark " + std::to_string(mark) + " is not active");
    }
    return marks_.read(mark);
}

void Device::release_peak(std::uint32_t mark) { marks_.release(mark); }

}  // namespace memguard::sim

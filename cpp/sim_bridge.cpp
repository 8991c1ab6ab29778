#include "sim_bridge.hpp"

#include "tt-memguard/src/ffi/sim.rs.h"
#include "bridge_convert.hpp"

namespace memguard::ffi {
namespace {

PoolInfo to_bridge(const sim::PoolView& view) {
    PoolInfo out;
    out.banks = view.banks;
    out.base = view.base;
    out.alignment = view.alignment;
    out.total_allocatable = view.stats.total_allocatable;
    out.allocated = view.stats.allocated;
    out.free = view.stats.free;
    out.largest_free = view.stats.largest_free;
    return out;
}

AllocRecord to_bridge(const sim::Record& record, const std::string& label) {
    AllocRecord out;
    out.id = record.id;
    out.pool = record.pool;
    out.address = record.address;
    out.size = record.size;
    out.page_size = record.page_size;
    out.per_bank_size = record.per_bank_size;
    out.shards = record.shards;
    out.tag = record.tag;
    out.label = rust::String(label);
    out.orphan = record.orphan;
    return out;
}

}  // namespace

std::unique_ptr<SimDevice> new_sim_device(const SimGeometry& g) {
    sim::Geometry geometry;
    geometry.dram_banks = g.dram_banks;
    geometry.dram_bank_size = g.dram_bank_size;
    geometry.dram_base = g.dram_base;
    geometry.dram_alignment = g.dram_alignment;
    geometry.l1_banks = g.l1_banks;
    geometry.l1_bank_size = g.l1_bank_size;
    geometry.l1_base = g.l1_base;
    geometry.l1_alignment = g.l1_alignment;
    geometry.l1_small_size = g.l1_small_size;
    geometry.trace_region_size = g.trace_region_size;
    geometry.l1_interleaved_limit = g.l1_interleaved_limit;
    geometry.max_circular_buffers = g.max_circular_buffers;
    return std::make_unique<SimDevice>(geometry);
}

AllocOutcome SimDevice::allocate(const AllocRequest& r, rust::Str label) {
    sim::AllocRequest request;
    request.pool = r.pool;
    request.size = r.size;
    request.page_size = r.page_size;
    request.shards = r.shards;
    request.direction = r.direction;
    request.fixed_address = r.fixed_address;
    request.address = r.address;
    request.tag = r.tag;
    request.label = std::string(label);
    const sim::AllocOutcome outcome = device_.allocate(request);

    AllocOutcome out;
    out.status = outcome.status;
    out.id = outcome.record.id;
    out.slot = outcome.slot;
    out.address = outcome.record.address;
    out.per_bank_size = outcome.record.per_bank_size;
    out.size_per_bank = outcome.size_per_bank;
    out.banks = outcome.banks;
    if (outcome.status != AllocStatus::Placed && is_pool(r.pool)) {
        out.pool = to_bridge(device_.pool(r.pool));
    } else {
        out.pool = PoolInfo{};
    }
    return out;
}

bool SimDevice::deallocate(std::uint32_t slot, std::uint64_t id) { return device_.deallocate(slot, id); }

PoolSnapshot SimDevice::snapshot() const {
    // Field by field straight into the result: copying whole intermediate
    // structs here costs store-forwarding stalls on the hottest path.
    PoolSnapshot out;
    for (std::size_t p = 0; p < kPoolCount; ++p) {
        const Pool pool = static_cast<Pool>(p);
        const sim::PoolAllocator& allocator = device_.allocator(pool);
        PoolInfo& info = out.pools[p];
        info.banks = device_.banks(pool);
        info.base = allocator.base();
        info.alignment = device_.alignment(pool);
        info.total_allocatable = allocator.size();
        info.allocated = allocator.allocated_bytes();
        info.free = allocator.size() - allocator.allocated_bytes();
        info.largest_free = allocator.largest_free();
    }
    return out;
}

PoolSnapshot SimDevice::scan_snapshot() const {
    PoolSnapshot out;
    for (const Pool pool : kPools) {
        sim::PoolView view = device_.pool(pool);
        view.stats = device_.scan_statistics(pool);
        out.pools[pool_index(pool)] = to_bridge(view);
    }
    return out;
}

rust::Vec<AllocRecord> SimDevice::live() const {
    rust::Vec<AllocRecord> out;
    out.reserve(device_.live_count());
    for (const sim::Record* record : device_.live()) {
        out.push_back(to_bridge(*record, device_.label(record->id)));
    }
    return out;
}

std::uint64_t SimDevice::live_count() const { return device_.live_count(); }

std::uint64_t SimDevice::next_id() const { return device_.next_id(); }

bool SimDevice::reset() { return device_.reset(); }

std::uint32_t SimDevice::mark_peak() { return device_.mark_peak(); }

PeakReading SimDevice::read_peak(std::uint32_t mark) const { return to_bridge(device_.read_peak(mark)); }

void SimDevice::release_peak(std::uint32_t mark) { device_.release_peak(mark); }

}  // namespace memguard::ffi

namespace memguard::ffi {

std::uint64_t SimDevice::create_program() { return device_.create_program(); }

CbCheck SimDevice::add_circular_buffer(std::uint64_t program, rust::Slice<const CoreBox> ranges, std::uint64_t size,
                                       rust::Slice<const std::uint8_t> indices, const CbBacking& backing) {
    sim::CircularBufferSpec spec = cb_spec(ranges, size, indices);
    spec.backed = backing.id != 0;
    spec.backed_address = backing.address;
    spec.backing_id = backing.id;
    spec.backing_slot = backing.slot;
    std::uint32_t handle = 0;
    const sim::CbCheck check = device_.add_circular_buffer(program, spec, &handle);
    return to_bridge(check, handle);
}

EnqueueOutcome SimDevice::enqueue_program(std::uint64_t program) { return to_bridge(device_.enqueue(program)); }

rust::Vec<std::uint64_t> SimDevice::program_addresses(std::uint64_t program) const {
    rust::Vec<std::uint64_t> out;
    const sim::Program* p = device_.program(program);
    if (p == nullptr || !p->compiled()) return out;
    for (const sim::CircularBuffer& cb : p->circular_buffers()) out.push_back(cb.address);
    return out;
}

bool SimDevice::destroy_program(std::uint64_t program) { return device_.destroy_program(program); }

}  // namespace memguard::ffi

#include "sim_bridge.hpp"

#include "tt-memguard/src/ffi/sim.rs.h"

namespace memguard::ffi {
namespace {

RawPool to_raw(const sim::PoolView& view) {
    RawPool raw;
    raw.banks = view.banks;
    raw.base = view.base;
    raw.alignment = view.alignment;
    raw.total_allocatable = view.stats.total_allocatable;
    raw.allocated = view.stats.allocated;
    raw.free = view.stats.free;
    raw.largest_free = view.stats.largest_free;
    return raw;
}

RawRecord to_raw(const sim::Record& record, const std::string& label) {
    RawRecord raw;
    raw.id = record.id;
    raw.pool = record.pool;
    raw.address = record.address;
    raw.size = record.size;
    raw.page_size = record.page_size;
    raw.per_bank_size = record.per_bank_size;
    raw.shards = record.shards;
    raw.tag = record.tag;
    raw.label = rust::String(label);
    return raw;
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
    return std::make_unique<SimDevice>(geometry);
}

RawOutcome SimDevice::allocate(const RawRequest& r, rust::Str label) {
    sim::AllocRequest request;
    request.pool = static_cast<sim::Pool>(r.pool);
    request.size = r.size;
    request.page_size = r.page_size;
    request.shards = r.shards;
    request.direction = static_cast<sim::Direction>(r.direction);
    request.fixed_address = r.fixed_address;
    request.address = r.address;
    request.tag = r.tag;
    request.label = std::string(label);
    sim::AllocOutcome outcome = device_.allocate(request);

    RawOutcome raw;
    raw.status = static_cast<std::uint8_t>(outcome.status);
    raw.id = outcome.record.id;
    raw.slot = outcome.slot;
    raw.address = outcome.record.address;
    raw.per_bank_size = outcome.record.per_bank_size;
    raw.size_per_bank = outcome.size_per_bank;
    raw.banks = outcome.banks;
    if (outcome.status != sim::AllocStatus::kOk && r.pool < sim::kPoolCount) {
        raw.pool_at_failure = to_raw(device_.pool(request.pool));
    }
    return raw;
}

bool SimDevice::deallocate(std::uint32_t slot, std::uint64_t id) { return device_.deallocate(slot, id); }

RawSnapshot SimDevice::snapshot() const {
    // Field by field straight into the result: copying whole intermediate
    // structs here costs store-forwarding stalls on the hottest path.
    RawSnapshot raw;
    for (int p = 0; p < sim::kPoolCount; ++p) {
        const auto pool = static_cast<sim::Pool>(p);
        const sim::PoolAllocator& allocator = device_.allocator(pool);
        RawPool& out = raw.pools[p];
        out.banks = device_.banks(pool);
        out.base = allocator.base();
        out.alignment = device_.alignment(pool);
        out.total_allocatable = allocator.size();
        out.allocated = allocator.allocated_bytes();
        out.free = allocator.size() - allocator.allocated_bytes();
        out.largest_free = allocator.largest_free();
    }
    return raw;
}

RawSnapshot SimDevice::scan_snapshot() const {
    RawSnapshot raw;
    for (int p = 0; p < sim::kPoolCount; ++p) {
        const auto pool = static_cast<sim::Pool>(p);
        sim::PoolView view = device_.pool(pool);
        view.stats = device_.scan_statistics(pool);
        raw.pools[p] = to_raw(view);
    }
    return raw;
}

rust::Vec<RawRecord> SimDevice::live() const {
    rust::Vec<RawRecord> out;
    out.reserve(device_.live_count());
    for (const sim::Record* record : device_.live()) out.push_back(to_raw(*record, device_.label(record->id)));
    return out;
}

std::uint64_t SimDevice::live_count() const { return device_.live_count(); }

std::uint64_t SimDevice::next_id() const { return device_.next_id(); }

bool SimDevice::reset() { return device_.reset(); }

std::uint32_t SimDevice::mark_peak() { return device_.mark_peak(); }

std::array<std::uint64_t, 4> SimDevice::read_peak(std::uint32_t mark) const { return device_.read_peak(mark); }

void SimDevice::release_peak(std::uint32_t mark) { device_.release_peak(mark); }

}  // namespace memguard::ffi

#include "tt_metal_bridge.hpp"

#include "tt-memguard/src/ffi/tt_metal.rs.h"
#include "bridge_convert.hpp"
#include "tt_metal_bank.hpp"

namespace memguard::ffi {
namespace {

PoolInfo to_bridge(const ttm::PoolInfo& pool) {
    PoolInfo out;
    out.banks = pool.banks;
    out.base = pool.base;
    out.alignment = pool.alignment;
    out.total_allocatable = pool.allocatable;
    out.allocated = pool.allocated;
    out.free = pool.free;
    out.largest_free = pool.largest_free;
    return out;
}

}  // namespace

std::unique_ptr<TtMetalHandle> tt_open(const TtOpenOptions& o) {
    ttm::OpenOptions options;
    options.device_id = o.device_id;
    options.l1_small_size = o.l1_small_size;
    options.trace_region_size = o.trace_region_size;
    options.num_command_queues = o.num_command_queues;
    options.worker_l1_size = o.worker_l1_size;
    options.mock = o.mock;
    options.mock_arch = o.mock_arch;
    options.mock_chips = o.mock_chips;
    options.mesh = o.mesh;
    options.mesh_rows = o.mesh_rows;
    options.mesh_cols = o.mesh_cols;
    return std::make_unique<TtMetalHandle>(ttm::MeshHandle::open(options));
}

std::unique_ptr<TtMetalHandle> tt_adopt_mesh_device(std::size_t address) {
    auto* mesh = reinterpret_cast<tt::tt_metal::distributed::MeshDevice*>(address);
    return std::make_unique<TtMetalHandle>(ttm::MeshHandle::adopt(mesh));
}

std::unique_ptr<TtMetalHandle> tt_adopt_idevice(std::size_t address) {
    return std::make_unique<TtMetalHandle>(ttm::adopt_idevice(reinterpret_cast<void*>(address)));
}

rust::Vec<TtBankStep> tt_l1_bank_replay(const TtBankGeometry& g, std::uint64_t limit, rust::Slice<const TtBankOp> ops) {
    ttm::BankGeometry geometry;
    geometry.banks = g.banks;
    geometry.base = g.base;
    geometry.size = g.size;
    geometry.alignment = g.alignment;
    geometry.granularity = g.granularity;
    geometry.grid_x = g.grid_x;
    geometry.grid_y = g.grid_y;
    std::vector<ttm::BankOp> plain;
    plain.reserve(ops.size());
    for (const TtBankOp& op : ops) {
        ttm::BankOp p;
        p.free = op.free;
        p.step = op.step;
        p.size = op.size;
        p.page_size = op.page_size;
        p.bottom_up = op.bottom_up;
        p.shards = op.shards;
        plain.push_back(p);
    }
    rust::Vec<TtBankStep> out;
    for (const ttm::BankStep& step : ttm::replay_l1_bank(geometry, limit, plain)) {
        TtBankStep s;
        s.placed = step.placed;
        s.address = step.address;
        s.error = rust::String(step.error);
        s.allocated = step.allocated;
        s.free = step.free;
        s.largest_free = step.largest_free;
        s.has_lowest = step.lowest.has_value();
        s.lowest = step.lowest.value_or(0);
        out.push_back(std::move(s));
    }
    return out;
}

TtFacts TtMetalHandle::facts() const {
    const ttm::Facts f = handle_->facts();
    TtFacts out;
    out.arch = f.arch;
    out.grid_x = f.grid_x;
    out.grid_y = f.grid_y;
    out.mesh_id = f.mesh_id;
    out.num_devices = f.num_devices;
    out.rows = f.rows;
    out.cols = f.cols;
    return out;
}

AllocOutcome TtMetalHandle::allocate(const AllocRequest& r, rust::Str label) {
    ttm::Request request;
    request.pool = r.pool;
    request.size = r.size;
    request.page_size = r.page_size;
    request.shards = r.shards;
    request.direction = r.direction;
    request.fixed_address = r.fixed_address;
    request.tag = r.tag;
    request.label = std::string(label);
    const ttm::Outcome outcome = handle_->allocate(request);
    AllocOutcome out;
    out.status = outcome.status;
    out.id = outcome.id;
    out.slot = outcome.slot;
    out.address = outcome.address;
    out.per_bank_size = outcome.per_bank_size;
    out.size_per_bank = outcome.size_per_bank;
    out.banks = outcome.banks;
    out.pool = to_bridge(outcome.pool);
    return out;
}

bool TtMetalHandle::deallocate(std::uint32_t slot, std::uint64_t id) { return handle_->deallocate(slot, id); }

PoolSnapshot TtMetalHandle::snapshot() const {
    const auto pools = handle_->snapshot();
    PoolSnapshot out;
    for (const Pool pool : kPools) out.pools[pool_index(pool)] = to_bridge(pools[pool_index(pool)]);
    return out;
}

rust::Vec<AllocRecord> TtMetalHandle::live() const {
    rust::Vec<AllocRecord> out;
    for (const ttm::Record& r : handle_->live()) {
        AllocRecord record;
        record.id = r.id;
        record.pool = r.pool;
        record.address = r.address;
        record.size = r.size;
        record.page_size = r.page_size;
        record.per_bank_size = r.per_bank_size;
        record.shards = r.shards;
        record.tag = r.tag;
        record.label = rust::String(r.label);
        record.orphan = false;  // TT-Metal 0.81.1's interleaved L1 limit is the pool's base
        out.push_back(std::move(record));
    }
    return out;
}

std::uint64_t TtMetalHandle::live_count() const { return handle_->live_count(); }
std::uint64_t TtMetalHandle::next_id() const { return handle_->next_id(); }
std::uint32_t TtMetalHandle::mark_peak() { return handle_->mark_peak(); }

PeakReading TtMetalHandle::read_peak(std::uint32_t mark) const { return to_bridge(handle_->read_peak(mark)); }

void TtMetalHandle::release_peak(std::uint32_t mark) { handle_->release_peak(mark); }
std::size_t TtMetalHandle::mesh_device() const { return reinterpret_cast<std::size_t>(handle_->mesh_device()); }

std::uint64_t TtMetalHandle::create_program() { return handle_->create_program(); }

CbCheck TtMetalHandle::add_circular_buffer(std::uint64_t program, rust::Slice<const CoreBox> ranges,
                                           std::uint64_t size, rust::Slice<const std::uint8_t> indices) {
    const sim::CircularBufferSpec spec = cb_spec(ranges, size, indices);
    std::uint32_t handle = 0;
    const sim::CbCheck check = handle_->add_circular_buffer(program, spec, &handle);
    return to_bridge(check, handle);
}

EnqueueOutcome TtMetalHandle::enqueue_program(std::uint64_t program) { return to_bridge(handle_->enqueue(program)); }

rust::Vec<std::uint64_t> TtMetalHandle::program_addresses(std::uint64_t program) const {
    rust::Vec<std::uint64_t> out;
    for (std::uint64_t address : handle_->program_addresses(program)) out.push_back(address);
    return out;
}

bool TtMetalHandle::destroy_program(std::uint64_t program) { return handle_->destroy_program(program); }

void TtMetalHandle::start_journal() { handle_->start_journal(); }
void TtMetalHandle::stop_journal() { handle_->stop_journal(); }

rust::Vec<TtForeignEvent> TtMetalHandle::drain_journal() {
    rust::Vec<TtForeignEvent> out;
    for (const ttm::ForeignEvent& e : handle_->drain_journal()) {
        TtForeignEvent event;
        event.allocate = e.allocate;
        event.id = e.id;
        event.pool = static_cast<std::uint8_t>(e.pool);
        event.address = e.address;
        event.size = e.size;
        event.page_size = e.page_size;
        event.per_bank_size = e.per_bank_size;
        out.push_back(event);
    }
    return out;
}

}  // namespace memguard::ffi

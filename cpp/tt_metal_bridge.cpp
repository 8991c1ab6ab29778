#include "tt_metal_bridge.hpp"

#include "tt-memguard/src/ffi/tt_metal.rs.h"

namespace memguard::ffi {

std::unique_ptr<TtMetalHandle> tt_open(const TtOpenOptions& o) {
    ttm::OpenOptions options;
    options.device_id = o.device_id;
    options.l1_small_size = o.l1_small_size;
    options.trace_region_size = o.trace_region_size;
    options.num_command_queues = o.num_command_queues;
    options.worker_l1_size = o.worker_l1_size;
    options.mock_arch = o.mock_arch;
    options.mock_chips = o.mock_chips;
    return std::make_unique<TtMetalHandle>(ttm::MeshHandle::open(options));
}

std::unique_ptr<TtMetalHandle> tt_adopt_mesh_device(std::size_t address) {
    auto* mesh = reinterpret_cast<tt::tt_metal::distributed::MeshDevice*>(address);
    return std::make_unique<TtMetalHandle>(ttm::MeshHandle::adopt(mesh));
}

std::unique_ptr<TtMetalHandle> tt_adopt_idevice(std::size_t address) {
    return std::make_unique<TtMetalHandle>(ttm::adopt_idevice(reinterpret_cast<void*>(address)));
}

TtFacts TtMetalHandle::facts() const {
    const ttm::Facts f = handle_->facts();
    TtFacts out;
    out.arch = f.arch;
    out.grid_x = f.grid_x;
    out.grid_y = f.grid_y;
    out.mesh_id = f.mesh_id;
    out.num_devices = f.num_devices;
    return out;
}

TtPlaced TtMetalHandle::allocate(const TtRequest& r, rust::Str label) {
    ttm::Request request;
    request.pool = static_cast<ttm::Pool>(r.pool);
    request.size = r.size;
    request.page_size = r.page_size;
    request.shards = r.shards;
    request.direction = r.direction;
    request.tag = r.tag;
    request.label = std::string(label);
    const ttm::Placed placed = handle_->allocate(request);
    TtPlaced out;
    out.id = placed.id;
    out.slot = placed.slot;
    out.address = placed.address;
    out.per_bank_size = placed.per_bank_size;
    return out;
}

bool TtMetalHandle::deallocate(std::uint32_t slot, std::uint64_t id) { return handle_->deallocate(slot, id); }

TtSnapshot TtMetalHandle::snapshot() const {
    const auto pools = handle_->snapshot();
    TtSnapshot out;
    for (std::size_t p = 0; p < pools.size(); ++p) {
        TtPool& raw = out.pools[p];
        raw.banks = pools[p].banks;
        raw.base = pools[p].base;
        raw.alignment = pools[p].alignment;
        raw.total_allocatable = pools[p].allocatable;
        raw.allocated = pools[p].allocated;
        raw.free = pools[p].free;
        raw.largest_free = pools[p].largest_free;
    }
    return out;
}

rust::Vec<TtRecord> TtMetalHandle::live() const {
    rust::Vec<TtRecord> out;
    for (const ttm::Record& r : handle_->live()) {
        TtRecord raw;
        raw.id = r.id;
        raw.pool = r.pool;
        raw.address = r.address;
        raw.size = r.size;
        raw.page_size = r.page_size;
        raw.per_bank_size = r.per_bank_size;
        raw.shards = r.shards;
        raw.tag = r.tag;
        raw.label = rust::String(r.label);
        out.push_back(std::move(raw));
    }
    return out;
}

std::uint64_t TtMetalHandle::live_count() const { return handle_->live_count(); }
std::uint64_t TtMetalHandle::next_id() const { return handle_->next_id(); }
std::uint32_t TtMetalHandle::mark_peak() { return handle_->mark_peak(); }

std::array<std::uint64_t, 4> TtMetalHandle::read_peak(std::uint32_t mark) const { return handle_->read_peak(mark); }

void TtMetalHandle::release_peak(std::uint32_t mark) { handle_->release_peak(mark); }
std::size_t TtMetalHandle::mesh_device() const { return reinterpret_cast<std::size_t>(handle_->mesh_device()); }

}  // namespace memguard::ffi

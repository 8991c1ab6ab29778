#include "circular_buffers.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace memguard::sim {
namespace {

std::uint64_t core_key(std::uint32_t x, std::uint32_t y) { return (std::uint64_t{x} << 32) | y; }

CbAddr align_up(CbAddr value, CbAddr alignment) {
    const CbAddr rem = value % alignment;
    return rem == 0 ? value : value + (alignment - rem);
}

// Appends [address, address + size) to an allocator's regions: extends the last region when
// contiguous, else opens a new one. The layout never marks below the last region's end.
void mark(CbRegionAllocator& allocator, CbAddr address, std::uint64_t size, CbAddr base) {
    if (allocator.regions.empty()) allocator.regions.emplace_back(base, base);
    auto& last = allocator.regions.back();
    if (address == last.second) {
        last.second += size;
    } else {
        allocator.regions.emplace_back(address, address + size);
    }
}

}  // namespace

bool CoreRange::operator<(const CoreRange& o) const {
    return std::tie(x0, y0, x1, y1) < std::tie(o.x0, o.y0, o.x1, o.y1);
}

std::string CoreRange::str() const {
    return "[" + std::to_string(x0) + "-" + std::to_string(y0) + " - " + std::to_string(x1) + "-" +
           std::to_string(y1) + "]";
}

std::vector<CoreRange> merge_ranges(const std::vector<CoreRange>& ranges) {
    if (ranges.size() <= 1) return ranges;
    // Rows of covered cores, each as x-spans; overlapping input ranges simply union.
    std::map<std::uint32_t, std::set<std::uint32_t>> rows;
    for (const CoreRange& r : ranges) {
        for (std::uint32_t y = r.y0; y <= r.y1; ++y) {
            for (std::uint32_t x = r.x0; x <= r.x1; ++x) rows[y].insert(x);
            if (y == r.y1) break;  // y1 may be the largest value of the type
        }
    }
    std::set<CoreRange> done;
    std::vector<CoreRange> open;  // rectangles that end on the previous row
    std::uint32_t previous_row = 0;
    bool first_row = true;
    for (const auto& [y, xs] : rows) {
        const bool continues = !first_row && y == previous_row + 1;
        std::vector<CoreRange> next;
        auto x = xs.begin();
        while (x != xs.end()) {
            const std::uint32_t start = *x;
            std::uint32_t end = start;
            for (++x; x != xs.end() && *x == end + 1; ++x) end = *x;
            // A run extends the rectangle above it only when the x-spans are identical.
            auto above = std::find_if(open.begin(), open.end(), [&](const CoreRange& r) {
                return continues && r.x0 == start && r.x1 == end;
            });
            if (above != open.end()) {
                CoreRange grown = *above;
                grown.y1 = y;
                open.erase(above);
                next.push_back(grown);
            } else {
                next.push_back(CoreRange{start, y, end, y});
            }
        }
        done.insert(open.begin(), open.end());
        open = std::move(next);
        previous_row = y;
        first_row = false;
    }
    done.insert(open.begin(), open.end());
    return {done.begin(), done.end()};
}

CbCheck Program::add(const CircularBufferSpec& spec, std::uint32_t* handle) {
    CbCheck check;
    if (compiled_) {
        check.status = CbStatus::AlreadyCompiled;
        return check;
    }
    CircularBuffer cb;
    cb.ranges = merge_ranges(spec.ranges);
    cb.size = spec.size;
    cb.backed = spec.backed;
    cb.address = spec.backed ? spec.backed_address : 0;
    cb.backing_id = spec.backing_id;
    cb.backing_slot = spec.backing_slot;

    std::uint64_t mask = 0;
    for (std::uint8_t index : spec.indices) {
        if (index >= max_cbs_ || index >= 64) {
            check.status = CbStatus::IndexTooLarge;
            check.value = index;
            check.limit = max_cbs_;
            return check;
        }
        mask |= std::uint64_t{1} << index;
    }
    // Check every core first, so that a refused CB changes nothing.
    for (const CoreRange& r : cb.ranges) {
        for (std::uint32_t x = r.x0;; ++x) {
            for (std::uint32_t y = r.y0;; ++y) {
                auto it = indices_taken_.find(core_key(x, y));
                if (it != indices_taken_.end() && (it->second & mask) != 0) {
                    const std::uint64_t clash = it->second & mask;
                    std::uint64_t index = 0;
                    while (((clash >> index) & 1) == 0) ++index;
                    check.status = CbStatus::IndexTaken;
                    check.range = r;
                    check.value = index;
                    check.limit = max_cbs_;
                    return check;
                }
                if (y == r.y1) break;
            }
            if (x == r.x1) break;
        }
    }
    for (const CoreRange& r : cb.ranges) {
        for (std::uint32_t x = r.x0;; ++x) {
            for (std::uint32_t y = r.y0;; ++y) {
                indices_taken_[core_key(x, y)] |= mask;
                if (y == r.y1) break;
            }
            if (x == r.x1) break;
        }
        const bool known = std::any_of(allocators_.begin(), allocators_.end(),
                                       [&](const CbRegionAllocator& a) { return a.range == r; });
        if (!known) allocators_.push_back(CbRegionAllocator{r, {}});
    }
    if (handle != nullptr) *handle = static_cast<std::uint32_t>(cbs_.size());
    cbs_.push_back(std::move(cb));
    return check;
}

void Program::lay_out(CbAddr base, CbAddr alignment) {
    for (CircularBuffer& cb : cbs_) {
        if (cb.backed) continue;
        // Start above the regions of the allocators whose range equals one of the CB's ranges.
        CbAddr address = base;
        for (const CoreRange& r : cb.ranges) {
            for (const CbRegionAllocator& a : allocators_) {
                if (a.range == r) {
                    address = std::max(address, a.end());
                    break;
                }
            }
        }
        address = align_up(address, alignment);
        // Mark it in every allocator whose range intersects one of its ranges, except one of
        // another range that already holds something at or above this address.
        for (const CoreRange& r : cb.ranges) {
            for (CbRegionAllocator& a : allocators_) {
                if (!a.range.intersects(r)) continue;
                if (a.range != r && !a.regions.empty() && address < a.end()) continue;
                mark(a, address, cb.size, base);
            }
        }
        cb.address = address;
    }
    compiled_ = true;

    layout_ = CbLayout{};
    layout_.base = base;
    for (const CoreFootprint& core : footprint()) {
        ++layout_.cores_with_cbs;
        if (core.end > layout_.max_end) {
            layout_.max_end = core.end;
            layout_.max_x = core.x;
            layout_.max_y = core.y;
        }
    }
}

CbCheck Program::enqueue(CbAddr base, CbAddr alignment, CbAddr l1_size, std::optional<CbAddr> lowest_l1,
                         bool* laid_out_now) {
    const bool first = !compiled_;
    if (first) lay_out(base, alignment);
    if (laid_out_now != nullptr) *laid_out_now = first;
    CbCheck check;
    for (const CbRegionAllocator& a : allocators_) {
        if (a.regions.empty()) continue;
        const CbAddr end = a.end();
        if (end > l1_size) {
            check.status = CbStatus::BeyondL1;
            check.range = a.range;
            check.value = end;
            check.limit = l1_size;
            return check;
        }
        if (lowest_l1 && *lowest_l1 < end) {
            check.status = CbStatus::Clash;
            check.range = a.range;
            check.value = end;
            check.limit = *lowest_l1;
            return check;
        }
    }
    return check;
}

std::vector<CoreFootprint> Program::footprint() const {
    std::map<std::pair<std::uint32_t, std::uint32_t>, CbAddr> ends;
    if (!compiled_) return {};
    for (const CircularBuffer& cb : cbs_) {
        if (cb.backed) continue;
        const CbAddr end = cb.address + cb.size;
        for (const CoreRange& r : cb.ranges) {
            for (std::uint32_t x = r.x0;; ++x) {
                for (std::uint32_t y = r.y0;; ++y) {
                    CbAddr& e = ends[{x, y}];
                    e = std::max(e, end);
                    if (y == r.y1) break;
                }
                if (x == r.x1) break;
            }
        }
    }
    std::vector<CoreFootprint> out;
    out.reserve(ends.size());
    for (const auto& [core, end] : ends) out.push_back(CoreFootprint{core.first, core.second, end});
    return out;
}

}  // namespace memguard::sim

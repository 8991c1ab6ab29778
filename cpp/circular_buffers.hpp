// Circular buffers (CBs) of a program, laid out and checked the way TT-Metal 0.81.1 does it
// (docs/tt-metal-circular-buffers.md has the facts this follows).
//
// A CB is not an allocator buffer: nothing is reserved when it is created. At the first enqueue
// of its program every CB that is not backed by an L1 buffer gets an address in its cores' L1,
// growing up from the bottom of the L1 pool, through one region allocator per distinct core
// range of the program. Every enqueue then checks the regions against the L1 size of a core and
// against the lowest L1 buffer (L1 buffers grow down from the top of every bank).
//
// Plain C++17; the cxx shim (sim_bridge.*) is the only code that sees Rust.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "vocab.hpp"

namespace memguard::sim {

using CbAddr = std::uint64_t;

// An inclusive rectangle of logical worker cores, [x0, x1] x [y0, y1].
struct CoreRange {
    std::uint32_t x0 = 0;
    std::uint32_t y0 = 0;
    std::uint32_t x1 = 0;
    std::uint32_t y1 = 0;

    bool operator==(const CoreRange& o) const { return x0 == o.x0 && y0 == o.y0 && x1 == o.x1 && y1 == o.y1; }
    bool operator!=(const CoreRange& o) const { return !(*this == o); }
    // Start first (x, then y), then end (x, then y): TT-Metal's order of ranges in a set.
    bool operator<(const CoreRange& o) const;
    bool intersects(const CoreRange& o) const { return x0 <= o.x1 && o.x0 <= x1 && y0 <= o.y1 && o.y0 <= y1; }
    bool contains(std::uint32_t x, std::uint32_t y) const { return x0 <= x && x <= x1 && y0 <= y && y <= y1; }
    std::uint64_t cores() const { return std::uint64_t{x1 - x0 + 1} * (y1 - y0 + 1); }
    // TT-Metal's spelling in its messages: "[X0-Y0 - X1-Y1]".
    std::string str() const;
};

// TT-Metal's CoreRangeSet::merge_ranges(): the union of the ranges, cut into rows and stacked
// into rectangles only where consecutive rows have exactly the same x-span, in set order. A set
// of one range is returned as it is.
std::vector<CoreRange> merge_ranges(const std::vector<CoreRange>& ranges);

struct CircularBufferSpec {
    std::vector<CoreRange> ranges;        // as given; merged when added
    std::uint64_t size = 0;               // total size in bytes (TT-Metal's total_size)
    std::vector<std::uint8_t> indices;    // buffer indices it serves on every one of its cores
    bool backed = false;                  // backed by an L1 buffer ("globally allocated")
    CbAddr backed_address = 0;            // that buffer's address plus the offset
    std::uint64_t backing_id = 0;         // that buffer's allocation (registry slot and id)
    std::uint32_t backing_slot = 0;
};

struct CircularBuffer {
    std::vector<CoreRange> ranges;  // merged
    std::uint64_t size = 0;
    bool backed = false;
    std::uint64_t backing_id = 0;
    std::uint32_t backing_slot = 0;
    CbAddr address = 0;  // valid once laid out (or backed)
};

using memguard::CbStatus;  // vocab.hpp

// What an add or an enqueue found. For a failure, `range`, `value` and `limit` carry the
// numbers of TT-Metal's message: the core range, the region end, and the L1 size or the
// address of the lowest L1 buffer (for IndexTaken / IndexTooLarge, `value` is the index and
// `limit` the number of CBs per core).
struct CbCheck {
    CbStatus status = CbStatus::Ok;
    CoreRange range;
    std::uint64_t value = 0;
    std::uint64_t limit = 0;
};

// One core range's region allocator: the address ranges [start, end) its CBs took.
struct CbRegionAllocator {
    CoreRange range;
    std::vector<std::pair<CbAddr, CbAddr>> regions;

    CbAddr end() const { return regions.empty() ? 0 : regions.back().second; }
};

// What one core's L1 holds of a laid-out program.
struct CoreFootprint {
    std::uint32_t x = 0;
    std::uint32_t y = 0;
    CbAddr end = 0;  // end of the highest CB on the core (0: no CB)
};

struct CbLayout {
    CbAddr base = 0;
    // Highest CB end over every core, and the first core (in x, then y order) that has it.
    CbAddr max_end = 0;
    std::uint32_t max_x = 0;
    std::uint32_t max_y = 0;
    // Cores that hold at least one CB laid out by the program.
    std::uint64_t cores_with_cbs = 0;
};

// What an enqueue found, on either device: the check, whether it laid the CBs out, the layout,
// and the L1 it was checked against.
struct EnqueueResult {
    CbCheck check;
    bool laid_out_now = false;
    CbLayout layout;
    std::optional<CbAddr> lowest_l1;  // the lowest L1 buffer, if any
    CbAddr l1_size = 0;               // one core's L1
    CbAddr l1_allocated = 0;          // per bank, L1 and L1_SMALL buffers together
};

class Program {
public:
    // `max_cbs`: circular buffers a core has (32 on Wormhole, 64 on Blackhole; at most 64).
    Program(std::uint64_t id, std::uint32_t max_cbs) : id_(id), max_cbs_(max_cbs) {}

    // Adds a CB; nothing changes when the check fails. The ranges must already have been
    // checked against the device (non-empty, inside the grid); sizes and page sizes likewise.
    CbCheck add(const CircularBufferSpec& spec, std::uint32_t* handle);

    // Lays the CBs out at the first call (the compile step), then checks every region against
    // `l1_size` (one core's L1) and `lowest_l1` (the lowest L1 buffer, if any), allocator by
    // allocator in creation order; the first failure is returned. `laid_out_now` tells whether
    // this call computed the layout (TT-Metal reports the CBs to its graph tracker then, before
    // the checks).
    CbCheck enqueue(CbAddr base, CbAddr alignment, CbAddr l1_size, std::optional<CbAddr> lowest_l1,
                    bool* laid_out_now);

    bool compiled() const { return compiled_; }
    std::uint64_t id() const { return id_; }
    const std::vector<CircularBuffer>& circular_buffers() const { return cbs_; }
    const std::vector<CbRegionAllocator>& allocators() const { return allocators_; }
    const CbLayout& layout() const { return layout_; }
    // Per-core ends of the laid-out CBs, for the cores that have any, in x then y order.
    std::vector<CoreFootprint> footprint() const;

private:
    void lay_out(CbAddr base, CbAddr alignment);


    std::uint64_t id_;
    std::uint32_t max_cbs_;
    bool compiled_ = false;
    std::vector<CircularBuffer> cbs_;
    std::vector<CbRegionAllocator> allocators_;
    // Per core (key x << 32 | y) the buffer indices its CBs took, one bit each.
    std::unordered_map<std::uint64_t, std::uint64_t> indices_taken_;
    CbLayout layout_;
};

}  // namespace memguard::sim

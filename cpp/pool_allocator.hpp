// One pool (DRAM, L1, L1_SMALL or TRACE) of a simulated device: the address
// range that is valid in every bank of the pool, managed in lock-step for all
// banks the way TT-Metal's bank manager does.
//
// Placement is address-ordered first fit: bottom-up takes the lowest free
// block that is large enough and places the buffer at its bottom; top-down
// takes the highest such block and places the buffer at its top. Freeing
// coalesces with both neighbours at once. Statistics are maintained
// incrementally and read in O(1).
//
// An address limit (TT-Metal's interleaved L1 limit) refuses a placement
// below it the way TT-Metal's allocator does: the block is taken first and
// the refusal comes after, so the block stays allocated (an orphan nobody
// can free) and the pool's statistics count it.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "free_block_tree.hpp"

namespace memguard::sim {

// TT-Metal's four per-bank figures.
struct PoolStatistics {
    Addr total_allocatable = 0;
    Addr allocated = 0;
    Addr free = 0;
    Addr largest_free = 0;
};

class PoolAllocator {
public:
    PoolAllocator(Addr base, Addr size, Addr granularity);

    // The size a request of `size_per_bank` occupies: rounded up to the
    // allocator granularity, and at least one granule; nothing when that
    // does not fit in 64 bits.
    std::optional<Addr> block_size(Addr size_per_bank) const;

    // Where a block went: an address, or nothing when no free block is large
    // enough. With `below_limit` set, the address lies below the limit: the
    // request is refused, yet the block at `address` stays taken.
    struct Placement {
        std::optional<Addr> address;
        bool below_limit = false;
    };

    // Places a block (see Placement).
    Placement allocate(Addr size_per_bank, bool bottom_up, Addr address_limit);
    // Places a block at a fixed address when that whole range is free.
    std::optional<Addr> allocate_at(Addr address, Addr size_per_bank);
    // Frees the block [address, address + size) that allocate() or
    // allocate_at() returned (size as given by block_size()). The caller
    // keeps the registry of allocated blocks, so no lookup is needed here.
    void deallocate(Addr address, Addr size);

    PoolStatistics statistics() const;
    // The free blocks' total and largest size by a linear scan.
    void scan_free(Addr& total, Addr& largest) const { free_.scan(total, largest); }
    // The free blocks in address order.
    std::vector<FreeBlock> free_blocks() const;

    Addr base() const { return base_; }
    Addr granularity() const { return granularity_; }
    Addr size() const { return size_; }
    Addr allocated_bytes() const { return allocated_; }
    Addr largest_free() const { return free_.largest(); }
    // TT-Metal's "lowest occupied address" of a bank, which its allocator
    // keeps as a running value rather than reading the blocks: lowered by
    // every placement that is not refused, and recomputed when a block at or
    // below it is freed, as the next allocated block above the freed one.
    // It is the lowest allocated block unless a refused placement left one
    // lower (that block is not counted until a free walks up to it).
    std::optional<Addr> lowest_allocated() const { return lowest_; }

private:
    void take(const FreeBlock& block, Addr address, Addr size);
    void note_placed(Addr address);

    Addr base_;
    Addr size_;
    Addr granularity_;
    Addr allocated_ = 0;
    std::optional<Addr> lowest_;
    FreeBlockTree free_;
};

}  // namespace memguard::sim

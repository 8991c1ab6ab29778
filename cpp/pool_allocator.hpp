// One pool (DRAM, L1, L1_SMALL or TRACE) of a simulated device: the address
// range that is valid in every bank of the pool, managed in lock-step for all
// banks the way TT-Metal's bank manager does.
//
// Placement is address-ordered first fit: bottom-up takes the lowest free
// block that is large enough and places the buffer at its bottom; top-down
// takes the highest such block and places the buffer at its top. Freeing
// coalesces with both neighbours at once. Statistics are maintained
// incrementally and read in O(1).
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
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

struct Block {
    Addr address = 0;
    Addr size = 0;
    bool allocated = false;
};

class PoolAllocator {
public:
    PoolAllocator(Addr base, Addr size, Addr granularity);

    // The size a request of `size_per_bank` occupies: rounded up to the
    // allocator granularity, and at least one granule.
    Addr block_size(Addr size_per_bank) const;

    // Places a block; returns its address, or nothing when no free block is
    // large enough or when the chosen address lies below `address_limit`
    // (then `below_limit` is set, and nothing is changed).
    std::optional<Addr> allocate(Addr size_per_bank, bool bottom_up, Addr address_limit,
                                 bool* below_limit = nullptr);
    // Places a block at a fixed address when that whole range is free.
    std::optional<Addr> allocate_at(Addr address, Addr size_per_bank);
    // Frees the block at `address`; returns its size, or 0 when no block is
    // allocated there (ignored, as TT-Metal does).
    Addr deallocate(Addr address);

    PoolStatistics statistics() const;
    // The same figures computed by scanning every block, as TT-Metal does.
    PoolStatistics scan_statistics() const;
    // Every block (free and allocated) in address order.
    std::vector<Block> blocks() const;

    Addr base() const { return base_; }
    Addr size() const { return size_; }
    Addr allocated_bytes() const { return allocated_; }
    std::size_t allocated_blocks() const { return allocated_blocks_.size(); }

private:
    void take(const FreeBlock& block, Addr address, Addr size);

    Addr base_;
    Addr size_;
    Addr granularity_;
    Addr allocated_ = 0;
    FreeBlockTree free_;
    std::unordered_map<Addr, Addr> allocated_blocks_;
};

}  // namespace memguard::sim

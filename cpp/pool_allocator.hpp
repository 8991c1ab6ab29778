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

    // Places a block; returns its address, or nothing when no free block is
    // large enough or when the chosen address lies below `address_limit`
    // (then `below_limit` is set, and nothing is changed).
    std::optional<Addr> allocate(Addr size_per_bank, bool bottom_up, Addr address_limit,
                                 bool* below_limit = nullptr);
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
    // The lowest address of an allocated block, if any (O(log n)): TT-Metal's
    // "lowest occupied address" of a bank.
    std::optional<Addr> lowest_allocated() const;

private:
    void take(const FreeBlock& block, Addr address, Addr size);

    Addr base_;
    Addr size_;
    Addr granularity_;
    Addr allocated_ = 0;
    FreeBlockTree free_;
};

}  // namespace memguard::sim

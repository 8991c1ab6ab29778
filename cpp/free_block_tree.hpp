// Free blocks of one pool, ordered by address and augmented with the largest
// block size of every subtree, so that address-ordered first fit (lowest or
// highest address whose block is large enough) is a single O(log n) descent.
//
// Implemented as a treap over an index-linked node arena: no per-node heap
// allocation, and host memory proportional to the number of free blocks.
#pragma once

#include <cstdint>
#include <vector>

namespace memguard::sim {

using Addr = std::uint64_t;

struct FreeBlock {
    Addr address = 0;
    Addr size = 0;
};

class FreeBlockTree {
public:
    // Inserts a block; its address must not be present.
    void insert(Addr address, Addr size);
    // Removes the block starting at `address` (which must be present).
    void erase(Addr address);
    // Changes the block starting at `address` in place: new start and size.
    // The new block must keep its position in address order (no other free
    // block may lie between the old and the new start).
    void update(Addr address, Addr new_address, Addr new_size);

    // Lowest-addressed block whose size is at least `size`.
    bool lowest_fit(Addr size, FreeBlock& out) const;
    // Highest-addressed block whose size is at least `size`.
    bool highest_fit(Addr size, FreeBlock& out) const;
    // Block with the greatest start address strictly below `address`.
    bool below(Addr address, FreeBlock& out) const;
    // Block starting exactly at `address`.
    bool at(Addr address, FreeBlock& out) const;

    Addr largest() const { return root_ < 0 ? 0 : nodes_[root_].max_size; }
    std::size_t count() const { return count_; }
    // All blocks in address order (O(n); for memory views and checks).
    void collect(std::vector<FreeBlock>& out) const;
    // Sum and maximum of all block sizes by a linear scan of the node arena
    // (O(n), the way TT-Metal computes its statistics).
    void scan(Addr& total, Addr& largest) const;

private:
    struct Node {
        Addr address;
        Addr size;
        Addr max_size;
        std::uint32_t priority;
        std::int32_t left;
        std::int32_t right;
    };

    std::int32_t new_node(Addr address, Addr size);
    void pull(std::int32_t n);
    Addr max_of(std::int32_t n) const { return n < 0 ? 0 : nodes_[n].max_size; }
    // Splits `n` into keys < address and keys >= address.
    void split(std::int32_t n, Addr address, std::int32_t& lo, std::int32_t& hi);
    std::int32_t merge(std::int32_t a, std::int32_t b);
    void collect_from(std::int32_t n, std::vector<FreeBlock>& out) const;
    // Recomputes the maxima of the nodes in path_, deepest first.
    void refresh_path();

    std::vector<Node> nodes_;
    std::vector<std::int32_t> spare_;
    std::vector<std::int32_t> path_;  // scratch for descents, reused
    std::int32_t root_ = -1;
    std::size_t count_ = 0;
    std::uint32_t rng_ = 0x9E3779B9u;
};

}  // namespace memguard::sim

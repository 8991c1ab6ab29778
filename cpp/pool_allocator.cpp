#include "pool_allocator.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace memguard::sim {

PoolAllocator::PoolAllocator(Addr base, Addr size, Addr granularity)
    : base_(base), size_(size), granularity_(granularity) {
    if (granularity_ == 0) {
        throw std::invalid_argument("simulated allocator: granularity must be positive");
    }
    if (size_ > 0) {
        free_.insert(base_, size_);
    }
}

std::optional<Addr> PoolAllocator::block_size(Addr size_per_bank) const {
    const Addr size = std::max(size_per_bank, granularity_);
    const Addr rem = size % granularity_;
    if (rem == 0) return size;
    const Addr pad = granularity_ - rem;
    if (size > std::numeric_limits<Addr>::max() - pad) return std::nullopt;
    return size + pad;
}

void PoolAllocator::take(const FreeBlock& block, Addr address, Addr size) {
    // Split `block` into [block.address, address) free, [address, address+size)
    // allocated, and the free remainder above.
    const Addr block_end = block.address + block.size;
    const Addr end = address + size;
    const Addr below = address - block.address;
    const Addr above = block_end - end;
    if (below > 0) {
        free_.update(block.address, block.address, below);
        if (above > 0) free_.insert(end, above);
    } else if (above > 0) {
        free_.update(block.address, end, above);
    } else {
        free_.erase(block.address);
    }
    allocated_ += size;
}

void PoolAllocator::note_placed(Addr address) {
    if (!lowest_ || address < *lowest_) lowest_ = address;
}

PoolAllocator::Placement PoolAllocator::allocate(Addr size_per_bank, bool bottom_up, Addr address_limit) {
    Placement out;
    const std::optional<Addr> rounded = block_size(size_per_bank);
    if (!rounded) return out;
    const Addr size = *rounded;
    FreeBlock block;
    bool found = bottom_up ? free_.lowest_fit(size, block) : free_.highest_fit(size, block);
    if (!found) return out;
    const Addr address = bottom_up ? block.address : block.address + block.size - size;
    // TT-Metal takes the block before it checks the limit, and leaves it
    // taken when it refuses: the running lowest address does not see it.
    take(block, address, size);
    out.address = address;
    out.below_limit = address < address_limit;
    if (!out.below_limit) note_placed(address);
    return out;
}

std::optional<Addr> PoolAllocator::allocate_at(Addr address, Addr size_per_bank) {
    const std::optional<Addr> rounded = block_size(size_per_bank);
    if (!rounded) return std::nullopt;
    const Addr size = *rounded;
    if (address < base_ || address - base_ > size_ || size > size_ - (address - base_)) {
        return std::nullopt;
    }
    FreeBlock block;
    if (!free_.at(address, block) && !free_.below(address, block)) return std::nullopt;
    if (block.address > address || block.address + block.size < address + size) return std::nullopt;
    take(block, address, size);
    note_placed(address);
    return address;
}

void PoolAllocator::deallocate(Addr address, Addr size) {
    allocated_ -= size;
    FreeBlock prev;
    FreeBlock next;
    const bool merge_prev = free_.below(address, prev) && prev.address + prev.size == address;
    const bool merge_next = free_.at(address + size, next);
    if (merge_prev && merge_next) {
        free_.erase(next.address);
        free_.update(prev.address, prev.address, prev.size + size + next.size);
    } else if (merge_prev) {
        free_.update(prev.address, prev.address, prev.size + size);
    } else if (merge_next) {
        free_.update(next.address, address, size + next.size);
    } else {
        free_.insert(address, size);
    }
    // Freeing at or below the running lowest address moves it to the next
    // allocated block above: the end of the free block the freed one is now
    // part of.
    if (lowest_ && address <= *lowest_) {
        FreeBlock merged;
        if (!free_.at(address, merged)) free_.below(address, merged);
        const Addr end = merged.address + merged.size;
        lowest_ = end < base_ + size_ ? std::optional<Addr>(end) : std::nullopt;
    }
}

PoolStatistics PoolAllocator::statistics() const {
    PoolStatistics stats;
    stats.total_allocatable = size_;
    stats.allocated = allocated_;
    stats.free = size_ - allocated_;
    stats.largest_free = largest_free();
    return stats;
}

std::vector<FreeBlock> PoolAllocator::free_blocks() const {
    std::vector<FreeBlock> out;
    out.reserve(free_.count());
    free_.collect(out);
    return out;
}

}  // namespace memguard::sim

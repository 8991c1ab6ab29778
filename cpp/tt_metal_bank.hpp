// TT-Metal's own allocator for one L1 pool, driven directly: a BankManager configured like a
// device's L1 pool but with its interleaved address limit above the pool's base, which no device
// of TT-Metal 0.81.1 configures (its limit is the base, so nothing can land below it). It shows
// what the allocator does when an interleaved buffer lands below the limit (the block is taken,
// then the buffer is refused), for the simulator to be compared with. Test support.
//
// Plain C++17; only with this project's pinned declarations (tt_metal_api.hpp): the bank manager
// is not part of TT-Metal's installed headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace memguard::ttm {

// One L1 pool: `banks` banks of `size` bytes from `base`, pages aligned to `alignment`, blocks to
// `granularity` (the DRAM alignment); shards may use the `grid_x` x `grid_y` compute grid.
struct BankGeometry {
    std::uint32_t banks = 0;
    std::uint64_t base = 0;
    std::uint64_t size = 0;
    std::uint32_t alignment = 0;
    std::uint32_t granularity = 0;
    std::uint32_t grid_x = 0;
    std::uint32_t grid_y = 0;
};

// An allocation (interleaved when `shards` is 0), or the free of the buffer step `step` placed.
struct BankOp {
    bool free = false;
    std::size_t step = 0;
    std::uint64_t size = 0;
    std::uint64_t page_size = 0;
    bool bottom_up = false;
    std::uint32_t shards = 0;
};

// What a step did: the address placed, or TT-Metal's message; then the pool's per-bank
// statistics and its lowest occupied address.
struct BankStep {
    bool placed = false;
    std::uint64_t address = 0;
    std::string error;
    std::uint64_t allocated = 0;
    std::uint64_t free = 0;
    std::uint64_t largest_free = 0;
    std::optional<std::uint64_t> lowest;
};

// Runs `ops` on a fresh bank manager of `geometry` with interleaved address limit `limit`; a free
// of a step that placed nothing is that step's error. Throws Failure when built with TT-Metal's
// own headers. The bank manager is left allocated (about 2 KiB): its destructor is not exported.
std::vector<BankStep> replay_l1_bank(const BankGeometry& geometry, std::uint64_t limit, const std::vector<BankOp>& ops);

}  // namespace memguard::ttm

// The words the simulated device, the TT-Metal shim and the Rust side share: pools, placement
// directions and allocation outcomes. Each enum is defined here once; src/ffi/vocab.rs declares
// the same enums, and cxx checks at compile time that every value agrees with this file. The
// records built from them (pool statistics, requests, outcomes, live allocations) are generated
// by cxx from src/ffi/vocab.rs, and only the bridge shims (sim_bridge.*, tt_metal_bridge.*) see
// them.
//
// Plain C++17, no cxx types.
#pragma once

#include <cstddef>
#include <cstdint>

namespace memguard {

// The four allocator pools, in tt-memguard's order (not TT-Metal's BufferType values).
enum class Pool : std::uint8_t { Dram = 0, L1 = 1, L1Small = 2, Trace = 3 };

inline constexpr std::size_t kPoolCount = 4;
inline constexpr Pool kPools[kPoolCount] = {Pool::Dram, Pool::L1, Pool::L1Small, Pool::Trace};

// The pool's index in per-pool arrays.
constexpr std::size_t pool_index(Pool pool) { return static_cast<std::size_t>(pool); }

// Whether a value that crossed a bridge names a pool.
constexpr bool is_pool(Pool pool) { return pool_index(pool) < kPoolCount; }

// Where a pool places a buffer: the pool's own default (bottom-up for DRAM and TRACE, top-down
// for L1 and L1_SMALL), the lowest free block, or the highest.
enum class Direction : std::uint8_t { Default = 0, BottomUp = 1, TopDown = 2 };

// Whether a value that crossed a bridge names a direction.
constexpr bool is_direction(Direction direction) { return static_cast<std::uint8_t>(direction) <= 2; }

// What became of an allocation request.
enum class AllocStatus : std::uint8_t {
    Placed = 0,
    // No free block is large enough (the outcome carries the pool's statistics).
    OutOfMemory = 1,
    // The only free block large enough lies below the interleaved L1 address limit.
    BelowAddressLimit = 2,
    // The fixed address range is not free.
    AddressNotFree = 3,
    // A request the Rust side's validation should have refused.
    Invalid = 4,
    // The per-bank size does not fit in 64 bits.
    TooLarge = 5,
    // A fixed address off the allocator's grid (the granularity from the pool base).
    AddressUnaligned = 6,
};

}  // namespace memguard

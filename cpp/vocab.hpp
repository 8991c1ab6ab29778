// The words the simulated device, the TT-Metal shim and the Rust side share: pools, placement
// directions, allocation outcomes and circular-buffer outcomes. Each enum is defined here once; src/ffi/vocab.rs declares
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
    // The only free block large enough lies below the interleaved L1 address limit: refused,
    // yet the block stays allocated, as TT-Metal leaves it (an orphan; the outcome describes it).
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

// What became of adding a circular buffer to a program, or of enqueueing a program.
enum class CbStatus : std::uint8_t {
    Ok = 0,
    // A CB added after the program's first enqueue.
    AlreadyCompiled = 1,
    // A buffer index already used on one of the CB's cores.
    IndexTaken = 2,
    // A buffer index at or above the number of CBs a core has.
    IndexTooLarge = 3,
    // Enqueue: a CB region ends past the L1 of a core.
    BeyondL1 = 4,
    // Enqueue: a CB region ends above the lowest L1 buffer.
    Clash = 5,
    // No such program on the device.
    UnknownProgram = 6,
    // Enqueue: the L1 buffer backing a CB is no longer allocated.
    BackingFreed = 7,
};

// Peak marks keep, besides the four pools' per-bank allocated bytes, three figures of the
// programs enqueued while they are active, each as a maximum.
inline constexpr std::size_t kPeakCbBytes = kPoolCount;          // CB region bytes of a core
inline constexpr std::size_t kPeakL1Total = kPoolCount + 1;      // that plus L1 buffers per bank
inline constexpr std::size_t kPeakHeadroomGap = kPoolCount + 2;  // UINT64_MAX - headroom
inline constexpr std::size_t kPeakSlots = kPoolCount + 3;

}  // namespace memguard

// A simulated Tenstorrent device: the four allocator pools of one chip, laid
// out from a geometry exactly as TT-Metal lays them out, plus what a memory
// checker needs on top: a registry of live allocations and independent peak
// (high-water) marks.
//
// Plain C++17; the cxx shim (sim_bridge.*) is the only code that sees Rust.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "circular_buffers.hpp"
#include "peak_marks.hpp"
#include "pool_allocator.hpp"
#include "vocab.hpp"

namespace memguard::sim {

struct Geometry {
    std::uint32_t dram_banks = 0;
    Addr dram_bank_size = 0;
    Addr dram_base = 0;
    std::uint32_t dram_alignment = 0;
    std::uint32_t l1_banks = 0;
    Addr l1_bank_size = 0;
    Addr l1_base = 0;
    std::uint32_t l1_alignment = 0;
    Addr l1_small_size = 0;
    Addr trace_region_size = 0;
    // Lowest address an interleaved L1 buffer may take; 0 means the L1 base.
    Addr l1_interleaved_limit = 0;
    // Circular buffers a core has (32 on Wormhole, 64 on Blackhole).
    std::uint32_t max_circular_buffers = 32;
};

struct AllocRequest {
    Pool pool = Pool::Dram;
    Addr size = 0;
    Addr page_size = 0;
    // 0: interleaved over every bank of the pool; else the first `shards` cores (L1, L1_SMALL)
    // or DRAM banks (DRAM) hold the data.
    std::uint32_t shards = 0;
    Direction direction = Direction::Default;
    bool fixed_address = false;
    Addr address = 0;
    std::uint64_t tag = 0;  // opaque caller data, returned with the record
    std::string label;
};

struct Record {
    std::uint64_t id = 0;  // 0: the registry slot is empty
    Addr address = 0;
    Addr size = 0;
    Addr page_size = 0;
    Addr per_bank_size = 0;  // bytes reserved in every bank of the pool
    std::uint64_t tag = 0;
    std::uint32_t shards = 0;
    Pool pool = Pool::Dram;
    bool labeled = false;
    // A block a refused request left allocated (TT-Metal's interleaved L1 limit): live until
    // the device is closed, and never freed by deallocate().
    bool orphan = false;
};

struct Block {
    Addr address = 0;
    Addr size = 0;
    bool allocated = false;
};

struct AllocOutcome {
    AllocStatus status = AllocStatus::Placed;
    // The placed buffer; for BelowAddressLimit, the orphaned block the refusal left.
    Record record;
    std::uint32_t slot = 0;  // registry slot: the handle for deallocate()
    // Per-bank need before allocator rounding, and the pool's statistics at
    // the time of a failure (for TT-Metal's out-of-memory message).
    Addr size_per_bank = 0;
    std::uint32_t banks = 0;
    PoolStatistics stats;
};

struct PoolView {
    std::uint32_t banks = 0;
    Addr base = 0;
    Addr alignment = 0;
    PoolStatistics stats;
};

class Device {
public:
    explicit Device(const Geometry& geometry);

    AllocOutcome allocate(const AllocRequest& request);
    // Frees the live allocation `id` held in registry slot `slot`; false when
    // it is not live there (freeing twice is ignored, as TT-Metal does) or is
    // an orphaned block (nothing in TT-Metal can free one).
    bool deallocate(std::uint32_t slot, std::uint64_t id);

    PoolView pool(Pool pool) const;
    const PoolAllocator& allocator(Pool pool) const { return pools_[pool_index(pool)]; }
    // The pool's statistics computed by scanning every block, the way
    // TT-Metal computes them (O(blocks)).
    PoolStatistics scan_statistics(Pool pool) const;
    // Every block of a pool (free and allocated) in address order.
    std::vector<Block> blocks(Pool pool) const;
    // Live allocations, ordered by id.
    std::vector<const Record*> live() const;
    std::size_t live_count() const { return live_count_; }
    // The id the next allocation will get: ids at or above it are newer.
    std::uint64_t next_id() const { return next_id_; }
    const std::string& label(std::uint64_t id) const;

    // Returns the device to its freshly opened state (allocation ids start
    // again at 1). Only possible when nothing is live and no peak mark is
    // active; returns whether it was done.
    bool reset();

    // Peak marks: each mark reads, per pool, the highest per-bank allocated
    // byte count seen since it was taken. Marks are independent to their
    // readers; any number may be active (even marks never released cost an
    // allocation nothing): see PeakMarks.
    std::uint32_t mark_peak();
    PeakMarks::Peaks read_peak(std::uint32_t mark) const;
    void release_peak(std::uint32_t mark);

    // Programs and their circular buffers (circular_buffers.hpp). Ids count from 0 per device.
    std::uint64_t create_program();
    // Adds a CB to a live program; UnknownProgram when there is none of that id.
    CbCheck add_circular_buffer(std::uint64_t program, const CircularBufferSpec& spec, std::uint32_t* handle);
    // Lays out (first time) and checks a program; a passing enqueue raises the program figures
    // of every peak mark.
    EnqueueResult enqueue(std::uint64_t program);
    const Program* program(std::uint64_t id) const;
    // Destroys a program; false when there is none of that id.
    bool destroy_program(std::uint64_t id);
    std::size_t program_count() const { return programs_.size(); }

    const Geometry& geometry() const { return geometry_; }
    std::uint32_t banks(Pool pool) const { return banks_[pool_index(pool)]; }
    Addr alignment(Pool pool) const { return alignment_[pool_index(pool)]; }

private:
    void note_allocated(Pool pool);
    // Registers a block in the first free slot; returns the slot.
    std::uint32_t add_record(const Record& record, const std::string& label);

    Geometry geometry_;
    std::array<PoolAllocator, kPoolCount> pools_;
    std::array<std::uint32_t, kPoolCount> banks_{};
    std::array<Addr, kPoolCount> alignment_{};
    // Registry of live allocations: a slab indexed by slot, so that neither
    // allocation nor free needs a lookup; labels only for labeled ones.
    std::vector<Record> records_;
    std::vector<std::uint32_t> free_slots_;
    std::size_t live_count_ = 0;
    std::unordered_map<std::uint64_t, std::string> labels_;
    std::uint64_t next_id_ = 1;
    PeakMarks marks_;
    std::unordered_map<std::uint64_t, Program> programs_;
    std::uint64_t next_program_ = 0;
};

static_assert(PeakMarks::kPools == kPeakSlots, "one peak per pool and program figure");

// Derived layout, shared by the device and by geometry validation.
struct Layout {
    Addr l1_small_per_bank = 0;
    Addr trace_per_bank = 0;
    Addr dram_pool_size = 0;
    Addr l1_pool_size = 0;
};

// Computes the pool layout; throws std::invalid_argument naming the field
// when the geometry cannot describe a device.
Layout compute_layout(const Geometry& geometry);

// TT-Metal's per-bank size rule: ceil(pages / banks) pages, each rounded up
// to the pool alignment; nothing when that does not fit in 64 bits (where
// TT-Metal's own arithmetic wraps).
std::optional<Addr> size_per_bank(Addr size, Addr page_size, std::uint32_t banks, Addr alignment);

}  // namespace memguard::sim

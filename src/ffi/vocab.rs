//! The vocabulary both device bridges share (`cpp/vocab.hpp`): pools,
//! directions and allocation outcomes, and the records that carry them.
//! `sim.rs` and `tt_metal.rs` use these types through aliases, so that each
//! is defined once, on both sides of the bridge.

#[cxx::bridge(namespace = "memguard")]
pub(crate) mod bridge {
    // ---- Shared types ----------------------------------------------------
    // The enums are defined in C++ (`cpp/vocab.hpp`, declared below as
    // C++ types): cxx checks that every value agrees with it.

    /// The four allocator pools, in `BufferType` order.
    #[derive(Debug)]
    #[repr(u8)]
    enum Pool {
        Dram = 0,
        L1 = 1,
        L1Small = 2,
        Trace = 3,
    }

    /// Where a pool places a buffer.
    #[derive(Debug)]
    #[repr(u8)]
    enum Direction {
        /// Bottom-up for DRAM and TRACE, top-down for L1 and L1_SMALL.
        Default = 0,
        BottomUp = 1,
        TopDown = 2,
    }

    /// What became of an allocation request.
    #[derive(Debug)]
    #[repr(u8)]
    enum AllocStatus {
        Placed = 0,
        /// No free block is large enough.
        OutOfMemory = 1,
        /// The only free block large enough lies below the interleaved L1
        /// address limit: refused, yet the block stays allocated (TT-Metal
        /// takes it before it checks the limit). The outcome's id, address
        /// and per-bank size describe that orphaned block.
        BelowAddressLimit = 2,
        /// The fixed address range is not free.
        AddressNotFree = 3,
        /// A request validation should have refused.
        Invalid = 4,
        /// The per-bank size does not fit in 64 bits.
        TooLarge = 5,
        /// A fixed address off the allocator's grid.
        AddressUnaligned = 6,
    }

    /// One pool's TT-Metal statistics (per bank) plus its layout.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct PoolInfo {
        banks: u32,
        base: u64,
        alignment: u64,
        total_allocatable: u64,
        allocated: u64,
        free: u64,
        largest_free: u64,
    }

    /// All four pools, in `Pool` order.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct PoolSnapshot {
        pools: [PoolInfo; 4],
    }

    /// An allocation request; `shards` 0 is interleaved over every bank of
    /// the pool, `address` is read when `fixed_address` is set.
    #[derive(Debug, Clone, Copy)]
    struct AllocRequest {
        pool: Pool,
        size: u64,
        page_size: u64,
        shards: u32,
        direction: Direction,
        fixed_address: bool,
        address: u64,
        /// Opaque caller data, returned with the record.
        tag: u64,
    }

    /// A live allocation.
    #[derive(Debug, Clone)]
    struct AllocRecord {
        id: u64,
        pool: Pool,
        address: u64,
        size: u64,
        page_size: u64,
        per_bank_size: u64,
        shards: u32,
        tag: u64,
        label: String,
        /// A block a refused request left allocated (see
        /// `AllocStatus::BelowAddressLimit`); its label is the request's.
        orphan: bool,
    }

    /// What became of an allocation request. `id`, `slot`, `address` and
    /// `per_bank_size` (the allocator's reservation) describe a placed
    /// buffer; `size_per_bank` (before allocator rounding), `banks` and the
    /// pool's statistics at the time describe a failure.
    #[derive(Debug, Clone, Copy)]
    struct AllocOutcome {
        status: AllocStatus,
        id: u64,
        slot: u32,
        address: u64,
        per_bank_size: u64,
        size_per_bank: u64,
        banks: u32,
        pool: PoolInfo,
    }

    /// What became of adding a circular buffer, or of enqueueing a program.
    #[derive(Debug)]
    #[repr(u8)]
    enum CbStatus {
        Ok = 0,
        /// A CB added after the program's first enqueue.
        AlreadyCompiled = 1,
        /// A buffer index already used on one of the CB's cores.
        IndexTaken = 2,
        /// A buffer index at or above the number of CBs a core has.
        IndexTooLarge = 3,
        /// A CB region ends past the L1 of a core.
        BeyondL1 = 4,
        /// A CB region ends above the lowest L1 buffer.
        Clash = 5,
        /// No such program on the device.
        UnknownProgram = 6,
        /// The L1 buffer backing a CB is no longer allocated.
        BackingFreed = 7,
    }

    /// What a peak mark read: per pool, the highest per-bank allocated
    /// bytes since the mark was taken; over the programs enqueued meanwhile,
    /// the highest CB region of a core, that plus the L1 and L1_SMALL
    /// buffers of its bank, and `u64::MAX` minus the least headroom (0: no
    /// program with CBs was enqueued).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct PeakReading {
        pools: [u64; 4],
        cb_per_core: u64,
        l1_per_core: u64,
        headroom_gap: u64,
    }

    /// An inclusive rectangle of worker cores.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct CoreBox {
        x0: u32,
        y0: u32,
        x1: u32,
        y1: u32,
    }

    /// What an add or an enqueue found. For a failure, `range`, `value` and
    /// `limit` carry the numbers of TT-Metal's message (the core range, the
    /// region end, and the L1 size or the lowest L1 buffer's address; for an
    /// index problem, the index and the CBs a core has); `handle` is the
    /// position of an added CB.
    #[derive(Debug, Clone, Copy)]
    struct CbCheck {
        status: CbStatus,
        range: CoreBox,
        value: u64,
        limit: u64,
        handle: u32,
    }

    /// What one enqueue of a program found and took. `max_end` is the
    /// highest CB end over all cores (0 without CBs), first reached on core
    /// (`max_x`, `max_y`); `lowest_l1` is read when `has_lowest_l1`;
    /// `l1_allocated` is the per-bank L1 and L1_SMALL buffer bytes.
    #[derive(Debug, Clone, Copy)]
    struct EnqueueOutcome {
        check: CbCheck,
        laid_out_now: bool,
        base: u64,
        max_end: u64,
        max_x: u32,
        max_y: u32,
        cores_with_cbs: u64,
        has_lowest_l1: bool,
        lowest_l1: u64,
        l1_size: u64,
        l1_allocated: u64,
    }

    // ---- C++ ---------------------------------------------------------------

    unsafe extern "C++" {
        include!("tt-memguard/cpp/vocab.hpp");

        type Pool;
        type Direction;
        type AllocStatus;
        type CbStatus;
    }

    impl Vec<AllocRecord> {}
}

//! Declarations of the simulated device's C++ interface (`cpp/sim_bridge.*`).

#[cxx::bridge(namespace = "memguard::ffi")]
pub(crate) mod bridge {
    // ---- Shared types ----------------------------------------------------

    /// Device geometry handed to the simulator.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct SimGeometry {
        dram_banks: u32,
        dram_bank_size: u64,
        dram_base: u64,
        dram_alignment: u32,
        l1_banks: u32,
        l1_bank_size: u64,
        l1_base: u64,
        l1_alignment: u32,
        l1_small_size: u64,
        trace_region_size: u64,
        l1_interleaved_limit: u64,
    }

    /// One pool's TT-Metal statistics (per bank) plus its layout.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct RawPool {
        banks: u32,
        base: u64,
        alignment: u64,
        total_allocatable: u64,
        allocated: u64,
        free: u64,
        largest_free: u64,
    }

    /// All four pools, indexed DRAM, L1, L1_SMALL, TRACE.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct RawSnapshot {
        pools: [RawPool; 4],
    }

    /// An allocation request; `pool` is the pool index, `direction` is
    /// 0 = the pool's default, 1 = bottom-up, 2 = top-down.
    #[derive(Debug, Clone, Copy)]
    struct RawRequest {
        pool: u8,
        size: u64,
        page_size: u64,
        shards: u32,
        direction: u8,
        fixed_address: bool,
        address: u64,
        tag: u64,
    }

    /// A live allocation.
    #[derive(Debug, Clone)]
    struct RawRecord {
        id: u64,
        pool: u8,
        address: u64,
        size: u64,
        page_size: u64,
        per_bank_size: u64,
        shards: u32,
        tag: u64,
        label: String,
    }

    /// The outcome of an allocation; `status` 0 = placed, 1 = out of memory,
    /// 2 = below the interleaved L1 address limit, 3 = fixed address not
    /// free, 4 = rejected request, 5 = per-bank size past 64 bits, 6 =
    /// fixed address off the allocator's grid.
    #[derive(Debug, Clone)]
    struct RawOutcome {
        status: u8,
        id: u64,
        slot: u32,
        address: u64,
        per_bank_size: u64,
        size_per_bank: u64,
        banks: u32,
        pool_at_failure: RawPool,
    }

    // ---- C++ ---------------------------------------------------------------

    unsafe extern "C++" {
        include!("tt-memguard/cpp/sim_bridge.hpp");

        type SimDevice;

        fn new_sim_device(geometry: &SimGeometry) -> Result<UniquePtr<SimDevice>>;
        fn allocate(
            self: Pin<&mut SimDevice>,
            request: &RawRequest,
            label: &str,
        ) -> Result<RawOutcome>;
        fn deallocate(self: Pin<&mut SimDevice>, slot: u32, id: u64) -> bool;
        fn snapshot(self: &SimDevice) -> RawSnapshot;
        fn scan_snapshot(self: &SimDevice) -> RawSnapshot;
        fn live(self: &SimDevice) -> Result<Vec<RawRecord>>;
        fn live_count(self: &SimDevice) -> u64;
        fn next_id(self: &SimDevice) -> u64;
        fn reset(self: Pin<&mut SimDevice>) -> bool;
        fn mark_peak(self: Pin<&mut SimDevice>) -> Result<u32>;
        fn read_peak(self: &SimDevice, mark: u32) -> Result<[u64; 4]>;
        fn release_peak(self: Pin<&mut SimDevice>, mark: u32);
    }
}

// SAFETY: the C++ SimDevice holds only plain data (no thread affinity, no
// thread-local state); the Rust side never shares it between threads without
// a Mutex, so moving it to another thread is sound.
unsafe impl Send for bridge::SimDevice {}

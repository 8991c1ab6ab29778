//! Declarations of the simulated device's C++ interface (`cpp/sim_bridge.*`).
//! Requests, outcomes, records and snapshots are the shared vocabulary
//! (`vocab.rs`).

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
        max_circular_buffers: u32,
    }

    /// The L1 buffer a circular buffer uses, if any: its allocation (`id`
    /// 0: none) and the CB's address in it.
    #[derive(Debug, Clone, Copy, Default)]
    struct CbBacking {
        id: u64,
        slot: u32,
        address: u64,
    }

    // ---- C++ ---------------------------------------------------------------

    #[namespace = "memguard"]
    unsafe extern "C++" {
        include!("tt-memguard/src/ffi/vocab.rs.h");

        type AllocRequest = crate::ffi::vocab::bridge::AllocRequest;
        type AllocOutcome = crate::ffi::vocab::bridge::AllocOutcome;
        type AllocRecord = crate::ffi::vocab::bridge::AllocRecord;
        type PoolSnapshot = crate::ffi::vocab::bridge::PoolSnapshot;
        type CoreBox = crate::ffi::vocab::bridge::CoreBox;
        type CbCheck = crate::ffi::vocab::bridge::CbCheck;
        type EnqueueOutcome = crate::ffi::vocab::bridge::EnqueueOutcome;
        type PeakReading = crate::ffi::vocab::bridge::PeakReading;
    }

    unsafe extern "C++" {
        include!("tt-memguard/cpp/sim_bridge.hpp");

        type SimDevice;

        fn new_sim_device(geometry: &SimGeometry) -> Result<UniquePtr<SimDevice>>;
        fn allocate(
            self: Pin<&mut SimDevice>,
            request: &AllocRequest,
            label: &str,
        ) -> Result<AllocOutcome>;
        fn deallocate(self: Pin<&mut SimDevice>, slot: u32, id: u64) -> bool;
        fn snapshot(self: &SimDevice) -> PoolSnapshot;
        fn scan_snapshot(self: &SimDevice) -> PoolSnapshot;
        fn live(self: &SimDevice) -> Result<Vec<AllocRecord>>;
        fn live_count(self: &SimDevice) -> u64;
        fn next_id(self: &SimDevice) -> u64;
        fn reset(self: Pin<&mut SimDevice>) -> bool;
        fn mark_peak(self: Pin<&mut SimDevice>) -> Result<u32>;
        fn read_peak(self: &SimDevice, mark: u32) -> Result<PeakReading>;
        fn release_peak(self: Pin<&mut SimDevice>, mark: u32);
        fn create_program(self: Pin<&mut SimDevice>) -> u64;
        fn add_circular_buffer(
            self: Pin<&mut SimDevice>,
            program: u64,
            ranges: &[CoreBox],
            size: u64,
            indices: &[u8],
            backing: &CbBacking,
        ) -> CbCheck;
        fn enqueue_program(self: Pin<&mut SimDevice>, program: u64) -> EnqueueOutcome;
        /// Every CB's address in creation order, once laid out (else empty).
        fn program_addresses(self: &SimDevice, program: u64) -> Vec<u64>;
        fn destroy_program(self: Pin<&mut SimDevice>, program: u64) -> bool;
    }
}

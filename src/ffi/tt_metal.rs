//! Declarations of the TT-Metal shim's C++ interface (`cpp/tt_metal_bridge.*`).
//! Requests, outcomes, records and snapshots are the shared vocabulary
//! (`vocab.rs`). Every call that reaches TT-Metal can throw, so it is
//! declared `-> Result`.

#[cxx::bridge(namespace = "memguard::ffi")]
pub(crate) mod bridge {
    // ---- Shared types ----------------------------------------------------

    /// The chip architectures tt-memguard tells apart; defined in C++
    /// (`cpp/tt_metal_device.hpp`, declared below as a C++ type), which maps
    /// them to TT-Metal's `tt::ARCH`.
    #[derive(Debug)]
    #[namespace = "memguard::ttm"]
    #[repr(u8)]
    enum Arch {
        Unknown = 0,
        WormholeB0 = 1,
        Blackhole = 2,
    }

    /// How to open a device; with `mock` set, TT-Metal's mock mode is
    /// selected for `mock_chips` chips of `mock_arch` first, else cleared.
    /// With `mesh` set, a mesh of `mesh_rows` x `mesh_cols` chips is opened
    /// (0 x 0: the system's whole mesh) instead of chip `device_id` alone.
    #[derive(Debug, Clone, Copy)]
    struct TtOpenOptions {
        device_id: i32,
        l1_small_size: u64,
        trace_region_size: u64,
        num_command_queues: u32,
        worker_l1_size: u64,
        mock: bool,
        mock_arch: Arch,
        mock_chips: u32,
        mesh: bool,
        mesh_rows: u32,
        mesh_cols: u32,
    }

    /// What the opened device is.
    #[derive(Debug, Clone, Copy)]
    struct TtFacts {
        arch: Arch,
        grid_x: u32,
        grid_y: u32,
        mesh_id: i32,
        num_devices: u64,
        rows: u32,
        cols: u32,
    }

    /// An allocation or a free of a buffer other code made, from the
    /// device's foreign journal; `pool` is a `vocab::Pool` value.
    #[derive(Debug, Clone, Copy)]
    struct TtForeignEvent {
        allocate: bool,
        id: u64,
        pool: u8,
        address: u64,
        size: u64,
        page_size: u64,
        per_bank_size: u64,
    }

    /// One geometry of an L1 pool for `tt_l1_bank_replay`.
    #[derive(Debug, Clone, Copy)]
    struct TtBankGeometry {
        banks: u32,
        base: u64,
        size: u64,
        alignment: u32,
        granularity: u32,
        grid_x: u32,
        grid_y: u32,
    }

    /// An allocation (interleaved when `shards` is 0), or with `free` set
    /// the free of the buffer that step `step` placed.
    #[derive(Debug, Clone, Copy)]
    struct TtBankOp {
        free: bool,
        step: usize,
        size: u64,
        page_size: u64,
        bottom_up: bool,
        shards: u32,
    }

    /// What a step did: an address, or TT-Metal's message; then the
    /// pool's per-bank statistics and its lowest occupied address.
    #[derive(Debug, Clone)]
    struct TtBankStep {
        placed: bool,
        address: u64,
        error: String,
        allocated: u64,
        free: u64,
        largest_free: u64,
        has_lowest: bool,
        lowest: u64,
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

    #[namespace = "memguard::ttm"]
    unsafe extern "C++" {
        include!("tt-memguard/cpp/tt_metal_device.hpp");

        type Arch;
    }

    unsafe extern "C++" {
        include!("tt-memguard/cpp/tt_metal_bridge.hpp");

        type TtMetalHandle;

        fn tt_open(options: &TtOpenOptions) -> Result<UniquePtr<TtMetalHandle>>;
        /// `address` is a live `tt::tt_metal::distributed::MeshDevice*`.
        fn tt_adopt_mesh_device(address: usize) -> Result<UniquePtr<TtMetalHandle>>;
        /// `address` is a live `tt::tt_metal::IDevice*`.
        fn tt_adopt_idevice(address: usize) -> Result<UniquePtr<TtMetalHandle>>;
        /// TT-Metal's own L1 bank manager, fresh, with interleaved address
        /// limit `limit`, running `ops` (`cpp/tt_metal_bank.hpp`).
        fn tt_l1_bank_replay(
            geometry: &TtBankGeometry,
            limit: u64,
            ops: &[TtBankOp],
        ) -> Result<Vec<TtBankStep>>;

        fn facts(self: &TtMetalHandle) -> TtFacts;
        /// An allocation that does not fit is an outcome (with the pool's
        /// statistics), not an exception.
        fn allocate(
            self: Pin<&mut TtMetalHandle>,
            request: &AllocRequest,
            label: &str,
        ) -> Result<AllocOutcome>;
        fn deallocate(self: Pin<&mut TtMetalHandle>, slot: u32, id: u64) -> Result<bool>;
        fn snapshot(self: &TtMetalHandle) -> Result<PoolSnapshot>;
        fn live(self: &TtMetalHandle) -> Result<Vec<AllocRecord>>;
        fn live_count(self: &TtMetalHandle) -> u64;
        fn next_id(self: &TtMetalHandle) -> u64;
        fn mark_peak(self: Pin<&mut TtMetalHandle>) -> Result<u32>;
        fn read_peak(self: &TtMetalHandle, mark: u32) -> Result<PeakReading>;
        fn release_peak(self: Pin<&mut TtMetalHandle>, mark: u32);
        /// The `MeshDevice*` observed, as an address.
        fn mesh_device(self: &TtMetalHandle) -> usize;

        /// A TT-Metal program; its id is TT-Metal's own.
        fn create_program(self: Pin<&mut TtMetalHandle>) -> Result<u64>;
        /// An index problem or a compiled program is an outcome; TT-Metal's
        /// other refusals are exceptions.
        fn add_circular_buffer(
            self: Pin<&mut TtMetalHandle>,
            program: u64,
            ranges: &[CoreBox],
            size: u64,
            indices: &[u8],
        ) -> Result<CbCheck>;
        /// TT-Metal's compile step: the layout at the first call, then both
        /// checks; nothing is dispatched.
        fn enqueue_program(self: Pin<&mut TtMetalHandle>, program: u64) -> Result<EnqueueOutcome>;
        fn program_addresses(self: &TtMetalHandle, program: u64) -> Vec<u64>;
        fn destroy_program(self: Pin<&mut TtMetalHandle>, program: u64) -> Result<bool>;
        /// Starts (counted) and stops the foreign journal of the device's
        /// event log; `drain_journal` takes what it holds.
        fn start_journal(self: Pin<&mut TtMetalHandle>) -> Result<()>;
        fn stop_journal(self: Pin<&mut TtMetalHandle>);
        fn drain_journal(self: Pin<&mut TtMetalHandle>) -> Result<Vec<TtForeignEvent>>;
    }
}

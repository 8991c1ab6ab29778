//! Declarations of the TT-Metal shim's C++ interface (`cpp/tt_metal_bridge.*`).
//! Every call that reaches TT-Metal can throw, so it is declared `-> Result`.

#[cxx::bridge(namespace = "memguard::ffi")]
pub(crate) mod bridge {
    // ---- Shared types ----------------------------------------------------

    /// How to open a device; `mock_arch` 0 leaves TT-Metal's mock mode alone,
    /// else it is `tt::ARCH` (2 Wormhole B0, 3 Blackhole).
    #[derive(Debug, Clone, Copy)]
    struct TtOpenOptions {
        device_id: i32,
        l1_small_size: u64,
        trace_region_size: u64,
        num_command_queues: u32,
        worker_l1_size: u64,
        mock_arch: i32,
        mock_chips: u32,
    }

    /// What the opened device is.
    #[derive(Debug, Clone, Copy)]
    struct TtFacts {
        arch: i32,
        grid_x: u32,
        grid_y: u32,
        mesh_id: i32,
        num_devices: u64,
    }

    /// An allocation request; `pool` is the pool index, `direction` is
    /// 0 = the pool's default, 1 = bottom-up, 2 = top-down, `shards` 0 =
    /// interleaved.
    #[derive(Debug, Clone, Copy)]
    struct TtRequest {
        pool: u8,
        size: u64,
        page_size: u64,
        shards: u32,
        direction: u8,
        tag: u64,
    }

    /// A placed buffer.
    #[derive(Debug, Clone, Copy)]
    struct TtPlaced {
        id: u64,
        slot: u32,
        address: u64,
        per_bank_size: u64,
    }

    /// One pool's TT-Metal statistics (per bank) plus its layout.
    #[derive(Debug, Clone, Copy, Default)]
    struct TtPool {
        banks: u32,
        base: u64,
        alignment: u64,
        total_allocatable: u64,
        allocated: u64,
        free: u64,
        largest_free: u64,
    }

    /// All four pools, indexed DRAM, L1, L1_SMALL, TRACE.
    #[derive(Debug, Clone, Copy, Default)]
    struct TtSnapshot {
        pools: [TtPool; 4],
    }

    /// A live allocation seen by the graph processor; `tag` 0 for buffers
    /// allocated by other code.
    #[derive(Debug, Clone)]
    struct TtRecord {
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

    // ---- C++ ---------------------------------------------------------------

    unsafe extern "C++" {
        include!("tt-memguard/cpp/tt_metal_bridge.hpp");

        type TtMetalHandle;

        fn tt_open(options: &TtOpenOptions) -> Result<UniquePtr<TtMetalHandle>>;
        /// `address` is a live `tt::tt_metal::distributed::MeshDevice*`.
        fn tt_adopt_mesh_device(address: usize) -> Result<UniquePtr<TtMetalHandle>>;
        /// `address` is a live `tt::tt_metal::IDevice*`.
        fn tt_adopt_idevice(address: usize) -> Result<UniquePtr<TtMetalHandle>>;

        fn facts(self: &TtMetalHandle) -> TtFacts;
        fn allocate(
            self: Pin<&mut TtMetalHandle>,
            request: &TtRequest,
            label: &str,
        ) -> Result<TtPlaced>;
        fn deallocate(self: Pin<&mut TtMetalHandle>, slot: u32, id: u64) -> Result<bool>;
        fn snapshot(self: &TtMetalHandle) -> Result<TtSnapshot>;
        fn live(self: &TtMetalHandle) -> Result<Vec<TtRecord>>;
        fn live_count(self: &TtMetalHandle) -> u64;
        fn next_id(self: &TtMetalHandle) -> u64;
        fn mark_peak(self: Pin<&mut TtMetalHandle>) -> Result<u32>;
        fn read_peak(self: &TtMetalHandle, mark: u32) -> Result<[u64; 4]>;
        fn release_peak(self: Pin<&mut TtMetalHandle>, mark: u32);
        /// The `MeshDevice*` observed, as an address.
        fn mesh_device(self: &TtMetalHandle) -> usize;
    }
}

// SAFETY: TtMetalHandle owns a MeshDevice handle and a mutex-protected event
// log. TT-Metal's device and allocator calls may come from any thread (the
// graph processor is registered per thread on first use), and the Rust side
// never shares the handle between threads without the Device's Mutex.
unsafe impl Send for bridge::TtMetalHandle {}

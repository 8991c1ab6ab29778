//! A real device through TT-Metal (`libtt_metal.so`): opening one, adopting
//! one the caller opened, and the backend over the C++ shim.
//!
//! Statistics come from TT-Metal's own allocator; the live set, the
//! attribution and the peaks come from a graph processor that sees every
//! buffer TT-Metal allocates or frees on the device, including buffers made
//! by the caller's own C++ code or by ops.
//!
//! Programs and circular buffers: a [`Program`](crate::Program) of this
//! crate becomes a real TT-Metal program whose CBs are created with
//! `CreateCircularBuffer`. Enqueueing it runs TT-Metal's compile step
//! (`MeshWorkloadImpl::compile`, the first thing `EnqueueMeshWorkload`
//! does): the layout at the first enqueue, then both checks (beyond L1,
//! clash with L1 buffers) at every enqueue. Nothing is dispatched: a program
//! without kernels cannot be (TT-Metal 0.81.1 crashes assembling its
//! commands). What TT-Metal reports, and when:
//!
//! - `track_allocate_cb` (address, size, cores) once per CB, in creation
//!   order, only when a layout is computed: at the first enqueue, before the
//!   checks, so also when that enqueue fails; later enqueues report nothing.
//!   The CB addresses the crate shows are these.
//! - `track_deallocate_cb` once when a compiled program with CBs is
//!   destroyed (dropping the [`Program`](crate::Program)); some TT-Metal
//!   versions emit no deallocation events at all, and a program never
//!   enqueued reports neither.
//!
//! The outcome of an enqueue is computed from those addresses, the lowest
//! L1 buffer (`lowest_occupied_compute_l1_address`) and the L1 size of a
//! core (`l1_size_per_core`), with the simulator's rule; TT-Metal must agree
//! (it throws exactly when a check fails, and its message carries the same
//! region end), or the enqueue is an [`Error::TtMetal`] with its message.
//! Buffer-index problems are refused before TT-Metal sees the CB. CBs backed
//! by a buffer are not supported on this backend ([`Error::Unsupported`]).
//! Program ids are TT-Metal's own (a process-wide counter).

use std::path::PathBuf;
use std::sync::Mutex;

use cxx::UniquePtr;

use crate::device::{Device, DeviceKind};
use crate::error::{Error, Result};
use crate::ffi::tt_metal::bridge;
use crate::ffi::vocab::bridge::{AllocOutcome, AllocRecord, PoolSnapshot};
use crate::ffi::vocab::bridge::{CbCheck, EnqueueOutcome, Pool};
use crate::mesh::MeshDevice;
use crate::source::sim::Preset;
use crate::source::{
    Adapter, Bridge, CarveOuts, CbRequest, Foreign, Opened, Peaks, Request, buffer_type_of,
    core_box,
};
use crate::types::{BufferType, MeshShape};

/// Opening, closing and TT-Metal's mock-mode switch are process-wide in
/// TT-Metal (one MetalContext): they are done one at a time.
static OPEN_LOCK: Mutex<()> = Mutex::new(());

/// A cluster for TT-Metal's mock device mode, selected with
/// `experimental::configure_mock_mode` before the device is opened.
///
/// TT-Metal then reads the cluster descriptor
/// `<TT_METAL_RUNTIME_ROOT>/tt_metal/third_party/umd/tests/cluster_descriptor_examples/<name>`
/// (`wormhole_N150.yaml`, `wormhole_N300.yaml`, `t3k_cluster_desc.yaml` or
/// `blackhole_P150.yaml`); the PyPI wheel ships none of them.
/// With [`TtMetalConfig::mock`] at `None` the mock registration is cleared,
/// and TT-Metal opens real hardware, or the cluster described by the file
/// its `TT_METAL_MOCK_CLUSTER_DESC_PATH` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MockCluster {
    /// One Wormhole B0 chip on an n150 board.
    WormholeN150,
    /// The two Wormhole B0 chips of an n300 board.
    WormholeN300,
    /// One Blackhole chip on a p150 board.
    BlackholeP150,
    /// A T3000: the eight Wormhole B0 chips of four n300 boards, a 2x4
    /// mesh.
    WormholeT3000,
}

impl MockCluster {
    /// The simulated preset with the geometry of one chip of the cluster.
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{MockCluster, Preset};
    ///
    /// assert_eq!(MockCluster::WormholeN300.preset(), Preset::WormholeN300);
    /// ```
    pub fn preset(self) -> Preset {
        match self {
            MockCluster::WormholeN150 => Preset::WormholeB0,
            MockCluster::WormholeN300 | MockCluster::WormholeT3000 => Preset::WormholeN300,
            MockCluster::BlackholeP150 => Preset::BlackholeP150,
        }
    }

    /// The chips of the cluster ([`TtMetalDevice::open`] opens the first,
    /// [`TtMetalDevice::open_mesh`] a mesh of them).
    pub fn chips(self) -> u32 {
        match self {
            MockCluster::WormholeT3000 => 8,
            MockCluster::WormholeN300 => 2,
            MockCluster::WormholeN150 | MockCluster::BlackholeP150 => 1,
        }
    }

    /// The chips' architecture.
    fn arch(self) -> bridge::Arch {
        match self.preset() {
            Preset::WormholeB0 | Preset::WormholeN300 => bridge::Arch::WormholeB0,
            Preset::BlackholeP150 => bridge::Arch::Blackhole,
        }
    }
}

/// How to open a TT-Metal device (`MeshDevice::create_unit_mesh`).
///
/// # Examples
///
/// ```
/// use tt_memguard::TtMetalConfig;
///
/// let config = TtMetalConfig {
///     l1_small_size: 32 * 1024,
///     trace_region_size: 8 << 20,
///     ..TtMetalConfig::default()
/// };
/// assert_eq!(config.device_id, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtMetalConfig {
    /// The chip to open (0 is the first).
    pub device_id: i32,
    /// Bytes per L1 bank for the L1_SMALL region (TT-Metal's `l1_small_size`).
    pub l1_small_size: u64,
    /// Bytes in total for the TRACE region (TT-Metal's `trace_region_size`).
    pub trace_region_size: u64,
    /// Hardware command queues (1 or 2).
    pub num_command_queues: u32,
    /// TT-Metal's `worker_l1_size` (0: its default).
    pub worker_l1_size: u64,
    /// Select TT-Metal's mock device mode for this cluster before opening.
    pub mock: Option<MockCluster>,
}

impl Default for TtMetalConfig {
    fn default() -> Self {
        TtMetalConfig {
            device_id: 0,
            l1_small_size: 0,
            trace_region_size: 0,
            num_command_queues: 1,
            worker_l1_size: 0,
            mock: None,
        }
    }
}

/// Opens devices through TT-Metal (cargo feature `tt-metal`).
///
/// The [`Device`] it returns works with guards, macros and the runner
/// exactly as a simulated one does. Run tests on it one at a time (the
/// runner does so for a shared device): TT-Metal has one context per
/// process.
#[derive(Debug)]
pub struct TtMetalDevice {
    _private: (),
}

impl TtMetalDevice {
    /// Opens device `config.device_id` as a 1x1 mesh; it is closed when the
    /// [`Device`] is closed or its last handle is dropped.
    ///
    /// TT-Metal reads its environment here: `TT_METAL_RUNTIME_ROOT` must name
    /// its runtime files (see README.md, "TT-Metal users", also for the
    /// variables that keep its generated files out of the working directory).
    ///
    /// # Errors
    ///
    /// [`Error::TtMetalRuntimeRoot`] when `TT_METAL_RUNTIME_ROOT` is not set or
    /// names a missing directory; [`Error::TtMetalOpen`] with TT-Metal's
    /// message when the device cannot be opened (no device, bad cluster
    /// descriptor, a library other than the one the declarations are pinned
    /// to, ...), and for an `l1_small_size` or `trace_region_size` that
    /// does not fit, which TT-Metal 0.81.1 itself wraps around (the message
    /// is the simulated device's, with the largest value that fits).
    pub fn open(config: TtMetalConfig) -> Result<Device> {
        Self::open_as(&config, None)
    }

    /// Opens a mesh of chips as one `MeshDevice` (TT-Metal's
    /// `MeshDevice::create`): `shape` chips from the first, or the whole
    /// system's mesh in its own shape when `shape` is `None` (a 2x4 on a
    /// T3000). Its buffers are mesh buffers, placed once by the mesh's one
    /// allocator at the same address on every chip; programs enqueued on it
    /// are laid out on every chip. `config.device_id` is not used.
    ///
    /// The [`MeshDevice`] has no chip's own allocator
    /// ([`MeshDevice::chip`] is [`Error::Unsupported`]): check buffers on
    /// one chip alone on a simulated mesh ([`SimMesh`](crate::SimMesh)).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), and [`Error::TtMetalOpen`] with TT-Metal's
    /// message for a shape the system does not have.
    pub fn open_mesh(shape: Option<MeshShape>, config: TtMetalConfig) -> Result<MeshDevice> {
        if let Some(s) = shape
            && s.chips() == 0
        {
            return Err(Error::InvalidMesh {
                reason: format!(
                    "a {s} mesh has no chip: give at least 1 row and 1 column, or no shape for the system's whole mesh"
                ),
            });
        }
        let dims = shape.map_or((0, 0), |s| (s.rows, s.cols));
        let device = Self::open_as(&config, Some(dims))?;
        Ok(MeshDevice::from_parts(device, Vec::new()))
    }

    /// Opens chip `config.device_id` alone, or with `mesh` a mesh of that
    /// many rows and columns ((0, 0): the system's).
    fn open_as(config: &TtMetalConfig, mesh: Option<(u32, u32)>) -> Result<Device> {
        check_runtime_root()?;
        let options = bridge::TtOpenOptions {
            device_id: config.device_id,
            l1_small_size: config.l1_small_size,
            trace_region_size: config.trace_region_size,
            num_command_queues: config.num_command_queues,
            worker_l1_size: config.worker_l1_size,
            mock: config.mock.is_some(),
            mock_arch: config.mock.map_or(bridge::Arch::Unknown, MockCluster::arch),
            mock_chips: config.mock.map_or(1, MockCluster::chips),
            mesh: mesh.is_some(),
            mesh_rows: mesh.map_or(0, |m| m.0),
            mesh_cols: mesh.map_or(0, |m| m.1),
        };
        let handle = {
            let _open = OPEN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            bridge::tt_open(&options).map_err(|e| open_error(config.device_id, e.what()))?
        };
        let device = TtMetalBridge::into_device(handle, config, true, mesh.is_some())?;
        if let Some(message) = carve_out_problem(&device, config)? {
            device.close();
            return Err(Error::TtMetalOpen {
                device_id: config.device_id,
                message,
            });
        }
        Ok(device)
    }

    /// Observes a device the caller opened through TT-Metal and keeps open.
    /// tt-memguard never closes it; its live set starts empty (buffers that
    /// already exist count in the statistics only).
    ///
    /// # Safety
    ///
    /// `mesh_device` must point to a live `tt::tt_metal::distributed::MeshDevice`
    /// of the same TT-Metal library this crate links, and must stay open
    /// until the returned [`Device`] is closed or dropped (with all its
    /// clones and buffers).
    ///
    /// # Errors
    ///
    /// [`Error::TtMetal`] for a null pointer or a library other than the one
    /// the declarations are pinned to.
    pub unsafe fn adopt_mesh_device(mesh_device: *mut std::ffi::c_void) -> Result<Device> {
        let handle = bridge::tt_adopt_mesh_device(mesh_device as usize)
            .map_err(|e| tt_error("adopting a MeshDevice", e))?;
        TtMetalBridge::into_device(handle, &TtMetalConfig::default(), false, false)
    }

    /// Observes a device given as a `tt::tt_metal::IDevice*`, which must be a
    /// `MeshDevice` (checked with TT-Metal's own type information). One chip
    /// of a mesh is refused: its buffers are placed by the mesh's allocator.
    ///
    /// # Safety
    ///
    /// As [`adopt_mesh_device`](Self::adopt_mesh_device): `device` must point
    /// to a live `IDevice` of the linked TT-Metal library that outlives the
    /// returned [`Device`].
    ///
    /// # Errors
    ///
    /// [`Error::TtMetal`] for a null pointer or a device that is not a
    /// `MeshDevice`.
    pub unsafe fn adopt_idevice(device: *mut std::ffi::c_void) -> Result<Device> {
        let handle = bridge::tt_adopt_idevice(device as usize)
            .map_err(|e| tt_error("adopting an IDevice", e))?;
        TtMetalBridge::into_device(handle, &TtMetalConfig::default(), false, false)
    }

    /// Starts observing TT-Metal's allocations made on the calling thread.
    /// TT-Metal reports buffer events only to processors registered on the
    /// thread that allocates; every call through a [`Device`] registers one,
    /// so this is needed only on threads that allocate through TT-Metal
    /// directly and never touch the [`Device`].
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] or [`Error::TtMetal`]; a device that is not a
    /// TT-Metal device is ignored.
    pub fn observe_current_thread(device: &Device) -> Result<()> {
        device.snapshot().map(|_| ())
    }

    /// The `tt::tt_metal::distributed::MeshDevice*` behind a TT-Metal device,
    /// for the caller's own C++ code and ops (whose buffers the device then
    /// observes); `None` for a simulated or closed device. The pointer is
    /// valid while the [`Device`] is open.
    pub fn mesh_device_ptr(device: &Device) -> Option<*mut std::ffi::c_void> {
        device
            .with_backend(|b| b.native_device())
            .map(|address| address as *mut std::ffi::c_void)
    }

    /// The simulated preset whose geometry this device has (pool bank counts
    /// and alignments), if any; the differential test replays on both.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] after the device was closed.
    pub fn matching_preset(device: &Device) -> Result<Option<Preset>> {
        let snapshot = device.snapshot()?;
        let (dram, l1) = (
            snapshot.pool(BufferType::Dram),
            snapshot.pool(BufferType::L1),
        );
        Ok(Preset::ALL.into_iter().find(|preset| {
            let g = preset.geometry();
            g.dram_banks == dram.num_banks
                && u64::from(g.dram_alignment) == dram.alignment
                && g.grid.0.checked_mul(g.grid.1) == Some(l1.num_banks)
        }))
    }
}

/// One step for [`TtMetalDevice::replay_l1_bank_manager`]: an L1 buffer
/// (interleaved when `shards` is `None`), or the free of the buffer an
/// earlier step placed.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L1BankOp {
    /// An L1 buffer of `size` bytes in pages of `page_size`.
    Allocate {
        /// Bytes in all.
        size: u64,
        /// Page size.
        page_size: u64,
        /// Placement direction.
        bottom_up: bool,
        /// Shards, for a sharded buffer.
        shards: Option<u32>,
    },
    /// Frees the buffer step `step` placed.
    Free {
        /// The step that placed it.
        step: usize,
    },
}

/// What one [`L1BankOp`] did on TT-Metal's bank manager.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1BankStep {
    /// The address placed, or TT-Metal's message (`Ok(0)` for a free).
    pub outcome: std::result::Result<u64, String>,
    /// Allocated bytes per bank afterwards.
    pub allocated_per_bank: u64,
    /// Free bytes per bank afterwards.
    pub free_per_bank: u64,
    /// Largest free block per bank afterwards.
    pub largest_free_block_per_bank: u64,
    /// TT-Metal's lowest occupied address of the pool afterwards.
    pub lowest: Option<u64>,
}

impl TtMetalDevice {
    /// Runs `ops` on TT-Metal's own allocator for an L1 pool of `device`'s
    /// geometry (banks, base, size, alignments, compute grid), built fresh
    /// with its interleaved address limit at `limit`. No device of TT-Metal
    /// 0.81.1 sets that limit above the L1 pool's base, so what its
    /// allocator does when an interleaved buffer lands below the limit can
    /// only be seen this way; the differential tests compare it with a
    /// simulated device opened with the same `l1_interleaved_limit`. Test
    /// support: each call leaves TT-Metal's bank manager allocated (about
    /// 2 KiB; its destructor is not exported).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] on a device that is not a TT-Metal device,
    /// [`Error::DeviceClosed`], and [`Error::TtMetal`] with TT-Metal's own
    /// headers (`TT_METAL_HOME`), which do not declare the bank manager. A
    /// free of a step that placed nothing is that step's `Err`.
    #[doc(hidden)]
    pub fn replay_l1_bank_manager(
        device: &Device,
        limit: u64,
        ops: &[L1BankOp],
    ) -> Result<Vec<L1BankStep>> {
        if device.info().kind != DeviceKind::TtMetal {
            return Err(Error::Unsupported {
                what: "driving TT-Metal's bank manager from a simulated device",
                instead: "pass a device opened with TtMetalDevice::open",
            });
        }
        let snapshot = device.snapshot()?;
        let (l1, dram) = (
            snapshot.pool(BufferType::L1),
            snapshot.pool(BufferType::Dram),
        );
        let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let geometry = bridge::TtBankGeometry {
            banks: l1.num_banks,
            base: l1.base_address,
            size: l1.size_per_bank,
            alignment: narrow(l1.alignment),
            granularity: narrow(dram.alignment),
            grid_x: device.info().compute_grid.0,
            grid_y: device.info().compute_grid.1,
        };
        let ops: Vec<bridge::TtBankOp> = ops
            .iter()
            .map(|op| match *op {
                L1BankOp::Allocate {
                    size,
                    page_size,
                    bottom_up,
                    shards,
                } => bridge::TtBankOp {
                    free: false,
                    step: 0,
                    size,
                    page_size,
                    bottom_up,
                    shards: shards.unwrap_or(0),
                },
                L1BankOp::Free { step } => bridge::TtBankOp {
                    free: true,
                    step,
                    size: 0,
                    page_size: 0,
                    bottom_up: false,
                    shards: 0,
                },
            })
            .collect();
        let steps = bridge::tt_l1_bank_replay(&geometry, limit, &ops)
            .map_err(|e| tt_error("driving TT-Metal's L1 bank manager", e))?;
        Ok(steps
            .into_iter()
            .map(|s| L1BankStep {
                outcome: if s.placed || s.error.is_empty() {
                    Ok(s.address)
                } else {
                    Err(s.error)
                },
                allocated_per_bank: s.allocated,
                free_per_bank: s.free,
                largest_free_block_per_bank: s.largest_free,
                lowest: s.has_lowest.then_some(s.lowest),
            })
            .collect())
    }
}

/// Carve-outs TT-Metal accepted although they do not fit: its arithmetic
/// wraps around (an `l1_small_size` near 2^64 opens a device without
/// L1_SMALL; a `trace_region_size` larger than DRAM leaves a DRAM pool of
/// nearly 2^64 bytes). The room in a bank is read back from the opened
/// allocator, which keeps the bank's end right even then; the rule and the
/// message are the simulated device's.
fn carve_out_problem(device: &Device, config: &TtMetalConfig) -> Result<Option<String>> {
    let snapshot = device.snapshot()?;
    let pool = |t: BufferType| *snapshot.pool(t);
    let (dram, l1, l1_small, trace) = (
        pool(BufferType::Dram),
        pool(BufferType::L1),
        pool(BufferType::L1Small),
        pool(BufferType::Trace),
    );
    let carve_outs = CarveOuts {
        l1_small_size: config.l1_small_size,
        trace_region_size: config.trace_region_size,
        granularity: dram.alignment,
        dram_banks: dram.num_banks,
        l1_room: l1.size_per_bank.wrapping_add(l1_small.size_per_bank),
        dram_room: trace
            .base_address
            .wrapping_add(trace.size_per_bank)
            .wrapping_sub(dram.base_address),
    };
    Ok(carve_outs.problem())
}

/// Refuses early, with the fix, what TT-Metal would report as "Root
/// Directory is not set" or a missing descriptor file.
fn check_runtime_root() -> Result<()> {
    let Some(root) = std::env::var_os("TT_METAL_RUNTIME_ROOT").filter(|v| !v.is_empty()) else {
        if std::env::var_os("TT_METAL_HOME").is_some_and(|v| !v.is_empty()) {
            return Ok(()); // TT-Metal falls back to its checkout
        }
        return Err(Error::TtMetalRuntimeRoot {
            path: None,
            reason: "neither TT_METAL_RUNTIME_ROOT nor TT_METAL_HOME is set".into(),
        });
    };
    let root = PathBuf::from(root);
    let reason = if !root.is_dir() {
        "the directory does not exist"
    } else if !root.join("tt_metal").is_dir() {
        "it has no tt_metal/ directory"
    } else {
        return Ok(());
    };
    Err(Error::TtMetalRuntimeRoot {
        path: Some(root),
        reason: reason.into(),
    })
}

fn tt_error(context: &str, source: cxx::Exception) -> Error {
    Error::TtMetal {
        context: context.to_string(),
        source,
    }
}

fn open_error(device_id: i32, message: &str) -> Error {
    if message.contains("Root Directory is not set") {
        return Error::TtMetalRuntimeRoot {
            path: None,
            reason: message.to_string(),
        };
    }
    Error::TtMetalOpen {
        device_id,
        message: message.to_string(),
    }
}

/// The TT-Metal device's C++ half.
struct TtMetalBridge {
    inner: UniquePtr<bridge::TtMetalHandle>,
    /// Whether closing the backend closes the device (opened, not adopted).
    owned: bool,
}

impl TtMetalBridge {
    /// Wraps an opened or adopted handle into a [`Device`]; `mesh` when it
    /// was opened as a mesh of chips.
    fn into_device(
        inner: UniquePtr<bridge::TtMetalHandle>,
        config: &TtMetalConfig,
        owned: bool,
        mesh: bool,
    ) -> Result<Device> {
        let facts = inner.facts();
        let arch = match facts.arch {
            bridge::Arch::WormholeB0 => "wormhole_b0",
            bridge::Arch::Blackhole => "blackhole",
            _ => "unknown_arch",
        };
        let shape = MeshShape::new(facts.rows, facts.cols);
        let name = if mesh {
            format!("tt-metal:{arch}:{shape}")
        } else if owned {
            format!("tt-metal:{arch}#{}", config.device_id)
        } else {
            format!("tt-metal:{arch}:mesh{}", facts.mesh_id)
        };
        let opened = Opened {
            name,
            kind: DeviceKind::TtMetal,
            compute_grid: (facts.grid_x, facts.grid_y),
            l1_small_size: config.l1_small_size,
            trace_region_size: config.trace_region_size,
            l1_interleaved_limit: None,
            mesh_shape: mesh.then_some(shape),
            mesh_chip: None,
        };
        Adapter::into_device(TtMetalBridge { inner, owned }, opened)
    }
}

impl Drop for TtMetalBridge {
    fn drop(&mut self) {
        // Closing the device is process-wide in TT-Metal, like opening it.
        let _close = self
            .owned
            .then(|| OPEN_LOCK.lock().unwrap_or_else(|e| e.into_inner()));
        self.inner = UniquePtr::null();
    }
}

impl Bridge for TtMetalBridge {
    fn allocate(&mut self, request: &Request) -> Result<AllocOutcome> {
        if let Some(address) = request.address {
            return Err(Error::Rejected {
                reason: format!(
                    "a fixed address ({address:#x}) is not available on a TT-Metal device: TT-Metal makes a buffer at a given address without reserving it"
                ),
            });
        }
        // A buffer that does not fit comes back as an outcome with the
        // pool's statistics; any other failure keeps TT-Metal's message.
        self.inner
            .pin_mut()
            .allocate(&request.to_bridge(), request.label_str())
            .map_err(|e| {
                let context = format!(
                    "allocating {} B of {} (page size {})",
                    request.size, request.buffer_type, request.page_size
                );
                tt_error(&context, e)
            })
    }

    fn deallocate(&mut self, id: u64, slot: u32) -> Result<bool> {
        self.inner
            .pin_mut()
            .deallocate(slot, id)
            .map_err(|e| tt_error("freeing a buffer", e))
    }

    fn snapshot<T>(&self, read: impl FnOnce(&PoolSnapshot) -> T) -> Result<T> {
        self.inner
            .snapshot()
            .map(|s| read(&s))
            .map_err(|e| tt_error("reading allocator statistics", e))
    }

    fn live(&self) -> Result<Vec<AllocRecord>> {
        self.inner
            .live()
            .map_err(|e| tt_error("listing live allocations", e))
    }

    fn live_count(&self) -> Result<u64> {
        Ok(self.inner.live_count())
    }

    fn next_id(&self) -> Result<u64> {
        Ok(self.inner.next_id())
    }

    fn mark_peak(&mut self) -> Result<u32> {
        self.inner
            .pin_mut()
            .mark_peak()
            .map_err(|e| tt_error("taking a peak mark", e))
    }

    fn read_peak(&self, mark: u32) -> Result<Peaks> {
        self.inner
            .read_peak(mark)
            .map_err(|e| tt_error("reading a peak mark", e))
    }

    fn release_peak(&mut self, mark: u32) {
        self.inner.pin_mut().release_peak(mark);
    }

    fn native_device(&self) -> Option<usize> {
        Some(self.inner.mesh_device())
    }

    fn create_program(&mut self) -> Result<u64> {
        self.inner
            .pin_mut()
            .create_program()
            .map_err(|e| tt_error("creating a program", e))
    }

    fn add_circular_buffer(&mut self, program: u64, cb: &CbRequest) -> Result<CbCheck> {
        if cb.backing.is_some() {
            return Err(Error::Unsupported {
                what: "circular buffers backed by a buffer on a TT-Metal device",
                instead: "give the circular buffer its own place (no backed_by), or run the check on the simulated device",
            });
        }
        let ranges: Vec<_> = cb.ranges.iter().map(core_box).collect();
        self.inner
            .pin_mut()
            .add_circular_buffer(program, &ranges, cb.size, &cb.indices)
            .map_err(|e| {
                tt_error(
                    &format!(
                        "adding a circular buffer of {} B to program {program}",
                        cb.size
                    ),
                    e,
                )
            })
    }

    fn enqueue_program(&mut self, program: u64) -> Result<EnqueueOutcome> {
        self.inner
            .pin_mut()
            .enqueue_program(program)
            .map_err(|e| tt_error(&format!("enqueueing program {program}"), e))
    }

    fn program_addresses(&self, program: u64) -> Result<Vec<u64>> {
        Ok(self.inner.program_addresses(program))
    }

    fn destroy_program(&mut self, program: u64) -> Result<bool> {
        self.inner
            .pin_mut()
            .destroy_program(program)
            .map_err(|e| tt_error(&format!("destroying program {program}"), e))
    }

    fn start_journal(&mut self) -> Result<()> {
        self.inner
            .pin_mut()
            .start_journal()
            .map_err(|e| tt_error("starting the journal of other code's buffers", e))
    }

    fn stop_journal(&mut self) {
        self.inner.pin_mut().stop_journal();
    }

    fn drain_journal(&mut self) -> Result<Vec<Foreign>> {
        let events = self
            .inner
            .pin_mut()
            .drain_journal()
            .map_err(|e| tt_error("reading the journal of other code's buffers", e))?;
        events
            .into_iter()
            .map(|e| {
                Ok(Foreign {
                    alloc: e.allocate,
                    id: e.id,
                    buffer_type: buffer_type_of(Pool { repr: e.pool })?,
                    address: e.address,
                    size: e.size,
                    page_size: e.page_size,
                    per_bank_size: e.per_bank_size,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mock_cluster_matches_its_preset_and_architecture() {
        let clusters = [
            MockCluster::WormholeN150,
            MockCluster::WormholeN300,
            MockCluster::BlackholeP150,
            MockCluster::WormholeT3000,
        ];
        let presets: Vec<Preset> = clusters.iter().map(|c| c.preset()).collect();
        assert_eq!(presets[..3], Preset::ALL);
        assert_eq!(presets[3], Preset::WormholeN300);
        assert_eq!(
            clusters.map(|c| (c.arch(), c.chips())),
            [
                (bridge::Arch::WormholeB0, 1),
                (bridge::Arch::WormholeB0, 2),
                (bridge::Arch::Blackhole, 1),
                (bridge::Arch::WormholeB0, 8),
            ]
        );
    }
}

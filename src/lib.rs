//! Tenstorrent device memory as test assertions.
//!
//! TT-Metal keeps, on the host, one allocator per device that places every
//! buffer in DRAM, L1 (per-core SRAM), L1_SMALL and TRACE, and can say at any
//! moment how much of each pool is allocated and how large the largest free
//! block is. tt-memguard makes that testable: scopes and macros that fail on
//! leaked bytes or exceeded budgets and name the leaked buffers and the line
//! that allocated them, a test runner that reports every test's memory, and an
//! embedded simulated device whose allocator reproduces TT-Metal's placement
//! and statistics byte for byte, so that all of it runs on any machine.
//!
//! # Checks
//!
//! ```
//! use tt_memguard::prelude::*;
//!
//! let dev = SimDevice::wormhole_b0();
//! let addr = assert_no_leak!(dev, {
//!     let w = dev.allocate(BufferType::Dram, MIB, 2048)?; // 88,064 B in each of 12 banks
//!     w.address()
//! });
//! assert_eq!(addr, 0x100040);
//!
//! assert_memory_budget!(dev, l1 <= "512 KiB", dram <= "64 MiB", {
//!     let _tiles = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
//! });
//! # Ok::<(), tt_memguard::Error>(())
//! ```
//!
//! [`MemoryGuard`] is the RAII form with every option ([`Budget`] per pool,
//! device totals or per bank; warm-up; an allow-list of persistent
//! allocations); every panicking check has a `Result` twin that returns the
//! [`MemoryReport`] (a failed check is [`Error::MemoryCheckFailed`], whose
//! report [`Error::memory_report`] reaches).
//!
//! Byte figures name their unit: `*_per_bank` is one bank's figure (what
//! TT-Metal's allocator reports, and what must fit in every core's L1),
//! `*_total` the figure over all banks of a pool; a buffer's `size` is the
//! size requested, its total.
//!
//! # The runner
//!
//! In `Cargo.toml`:
//!
//! ```toml
//! [[test]]
//! name = "device_memory"
//! harness = false
//! ```
//!
//! In `tests/device_memory.rs`:
//!
//! ```no_run
//! use tt_memguard::prelude::*;
//!
//! fn matmul_fits_in_l1(dev: &Device) -> TestResult {
//!     let _a = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
//!     Ok(())
//! }
//!
//! tt_memguard::main!(matmul_fits_in_l1);
//! ```
//!
//! Each test gets a fresh simulated device and runs inside a guard; budgets
//! come from code, a `memguard.toml` and `TT_MEMGUARD_*` variables; the run
//! ends with a memory table, and can write JSON reports, an HTML page with
//! each test's timeline and address maps ([`html`]), insta snapshots of
//! every report, and a live stream for the memory monitor. See
//! [`Harness`](runner::Harness) for the flags and variables.
//!
//! # The simulated device
//!
//! [`SimDevice`] opens Wormhole B0 (n150), Wormhole n300 and Blackhole p150
//! models with TT-Metal's default geometry, or a custom one, with the
//! `l1_small_size` and `trace_region_size` carve-outs. Allocation is
//! address-ordered first fit, bottom-up (DRAM, TRACE) or top-down (L1,
//! L1_SMALL), in lock-step over all banks of a pool, in O(log n); statistics
//! are read in O(1). [`Trace`] replays a recorded allocation sequence on any
//! model; [`ttnn_capture`] makes one from a ttnn graph capture of a Python
//! model run.
//!
//! # Bring your real workloads
//!
//! [`Device::record`] records everything a device does (on a TT-Metal
//! device also the buffers TT-Metal makes for ops and other code) as a
//! [`Trace`] that names the device model and carve-outs and says where every
//! buffer and circular buffer landed; [`Trace::replay`] on the simulated
//! device checks it lands there too. The runner records every test with
//! `TT_MEMGUARD_RECORD=DIR`. [`Trace::what_if`] replays one trace on other
//! models and carve-outs, side by side:
//!
//! ```
//! use tt_memguard::{BufferType, KIB, MIB, Preset, SimDevice, WhatIfConfig};
//!
//! let dev = SimDevice::wormhole_b0();
//! let rec = dev.record()?;
//! let _w = dev.allocate(BufferType::Dram, 8 * MIB, 2048)?;
//! let _act = dev.allocate_sharded(BufferType::L1, 64 * 1300 * KIB, 2048, 64)?; // 1300 KiB a core
//! let trace = rec.finish()?;
//! trace.replay(&trace.open_sim()?, |_| {})?; // the recorded addresses, checked
//!
//! let table = trace.what_if(&[
//!     WhatIfConfig::new(Preset::WormholeB0).l1_small_size(64 * KIB),
//!     WhatIfConfig::new(Preset::BlackholeP150),
//! ])?;
//! assert_eq!(table.rows[0].first_failure.as_ref().unwrap().summary, "out of memory");
//! assert!(table.rows[1].first_failure.is_none());
//! # Ok::<(), tt_memguard::Error>(())
//! ```
//!
//! # Circular buffers: a kernel's whole L1
//!
//! Most of a kernel's L1 is circular buffers, which TT-Metal's allocator
//! never counts. A [`Program`] holds them; [`Device::enqueue`] lays them out
//! at the bottom of every core's L1 the way TT-Metal does and runs its two
//! checks (no region past a core's L1, none above the lowest L1 buffer),
//! failing with TT-Metal's message and what would make it fit. Guards
//! account one core's L1 over the programs they see:
//!
//! ```
//! use tt_memguard::{Budget, BufferType, CircularBufferConfig, CoreRange, MemoryGuard, SimDevice, KIB};
//!
//! let dev = SimDevice::wormhole_b0();
//! let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak_per_core("1 MiB"));
//! let out = dev.allocate(BufferType::L1, 64 * 256 * KIB, 2048)?; // 256 KiB in every core
//! let mut matmul = dev.create_program()?;
//! let grid = CoreRange::grid(8, 8)?;
//! matmul.add_circular_buffer(grid, CircularBufferConfig::new(128 * KIB).page_size(0, 2048))?;
//! matmul.add_circular_buffer(grid, CircularBufferConfig::new(128 * KIB).page_size(1, 2048))?;
//! let run = dev.enqueue(&mut matmul)?;
//! assert_eq!((run.cb_bytes_per_core, run.l1_total_per_core()), (256 * KIB, 512 * KIB));
//! drop(out);
//! let cores = guard.finish()?.device().cores.clone().unwrap();
//! assert_eq!(cores.l1_peak_per_core, 512 * KIB);
//! # Ok::<(), tt_memguard::Error>(())
//! ```
//!
//! # Meshes
//!
//! Models run on meshes of chips (an n300 as 1x2, a T3000 as 2x4, a Galaxy
//! as 4x8). As in TT-Metal's `MeshDevice`, a [`MeshDevice`] has one
//! allocator for the whole mesh: a mesh buffer is placed once, at the same
//! address on every chip, and the mesh reports one chip's figures. Each
//! chip also keeps its own allocator ([`MeshDevice::chip`]), blind to the
//! mesh's buffers as TT-Metal's is; a buffer of one that would lie on a live
//! buffer of the other is refused ([`Error::MeshOverlap`]). A guard on the
//! mesh reports the mesh, and each chip whose own allocator was used
//! (`sim:t3000[0,1]`):
//!
//! ```
//! use tt_memguard::{BufferType, MemoryGuard, SimMesh, KIB, MIB};
//!
//! let mesh = SimMesh::t3000();
//! let guard = MemoryGuard::new(&mesh);
//! let weights = mesh.allocate(BufferType::Dram, 8 * MIB, 2048)?; // every chip, one place
//! let halo = mesh.chip((0, 1))?.allocate(BufferType::L1, 56 * 4 * KIB, 2048)?; // chip [0,1] only
//! drop((weights, halo));
//! let report = guard.finish()?;
//! assert_eq!(report.devices[1].device, "sim:t3000[0,1]");
//! # Ok::<(), tt_memguard::Error>(())
//! ```
//!
//! A [`DeviceGroup`] is not a mesh: it checks independent devices together
//! (it was called `Mesh`; the old name is a deprecated alias).
//!
//! # Modules
//!
//! - [`prelude`]: what a test file needs, in one `use`.
//! - The crate root: devices, buffers and their statistics, guards, budgets,
//!   reports and errors.
//! - [`runner`]: the test runner behind [`main!`] and its reports.
//! - [`live`]: the live stream of allocations and snapshots a run writes.
//! - [`monitor`]: following a live stream and drawing it.
//! - [`render`]: byte counts, pool tables and usage bars for people.
//! - [`ttnn_capture`]: ttnn graph captures imported as [`Trace`]s.
//! - [`html`]: the memory report as one self-contained HTML page.
//!
//! # Features
//!
//! - `tt-metal`: the backend over a real TT-Metal device (`TtMetalDevice`),
//!   built against a TT-Metal install (`TT_METAL_HOME`) or against this
//!   crate's own declarations of the API pinned to the PyPI `ttnn` 0.81.1
//!   wheel (`TT_MEMGUARD_TTNN_LIB_DIR`); `TtMetalDevice::open_mesh` opens a
//!   multi-chip `MeshDevice`. Everything else works without it.
//!
//! # Known limitations
//!
//! - A sharded buffer is given by its shard count: its shards are the first
//!   S cores of the compute grid (L1, L1_SMALL) or the first S DRAM banks
//!   (DRAM); other shard grids and shard shapes cannot be expressed.
//! - On a real device, allocations made on threads other than the one that
//!   opened the device are not observed by TT-Metal's graph tracking.
//! - On a TT-Metal device, "enqueue" is TT-Metal's compile step (layout and
//!   both checks; nothing is dispatched), and circular buffers backed by an
//!   L1 buffer are refused with [`Error::Unsupported`].
//! - The runner's overhead on trivial tests is 1.3-1.9x plain libtest-mimic
//!   trials on two cores (target 2x, next 1.5x); about half of its work per
//!   test is the guard's (two snapshots and four pool reports).
//! - A program runs on the whole mesh: a workload with different programs
//!   on different chips is checked program by program. A mesh opened
//!   through TT-Metal observes the mesh's allocator only, not a chip's own.
//!   The Galaxy preset's chip geometry (the n150's) is not measured.
#![deny(missing_docs)]

// Dependencies point one way, bottom to top:
//   units, types, cores <- budget, render, cb_failure <- report <- error
//   <- source + device + program (a backend hands out a Device, a Device
//   its Programs) <- group, mesh <- guard <- check <- macros, trace, live
//   <- record (Device::record), what_if (Trace::what_if) <- monitor, harness.
// Only `source` and `ffi` know that C++ exists.
mod budget;
mod cb_failure;
mod check;
mod composition;
mod cores;
mod detail;
mod device;
mod error;
mod ffi;
mod fragmentation;
mod group;
mod guard;
mod mesh;
mod program;
mod record;
pub mod render;
mod report;
mod source;
mod types;
mod units;
#[macro_use]
mod macros;
mod harness;
pub mod html;
pub mod live;
pub mod monitor;
mod trace;
pub mod ttnn_capture;
mod what_if;

pub use budget::{
    Budget, BudgetError, BudgetSource, CheckKind, CoreBudget, Limit, PoolBudget, SizeArg,
};
pub use cb_failure::{
    CircularBufferCheck, CircularBufferFailure, CircularBufferPlacement, ProgramPeak,
};
pub use check::{assert_memory, check};
pub use composition::{PEAK_SHOWN, PeakComposition, PeakEntry};
pub use cores::{CoreCoord, CoreRange, CoreRangeError, CoreRangeSet};
pub use detail::{BankMap, DeviceDetail, Segment, TIMELINE_POINTS, Timeline, TimelinePoint};
pub use device::{Buffer, BufferBuilder, Device, DeviceInfo, DeviceKind, PeakMark, PoolPeaks};
pub use error::{ConfigError, Error, Result};
pub use fragmentation::{
    Fragmentation, FreeBlock, LARGEST_SHOWN, explain_fragmentation, pool_free_blocks,
};
#[allow(deprecated)]
pub use group::Mesh;
pub use group::{DeviceGroup, MemorySource};
pub use guard::{Allow, GuardOptions, MemoryGuard};
pub use mesh::{MeshDevice, MeshPreset, SimMesh, SimMeshBuilder};
pub use program::{CircularBufferConfig, CircularBufferInfo, EnqueueReport, MAX_CB_PAGES, Program};
pub use record::Recording;
pub use report::{CoreReport, DeviceReport, MemoryReport, PoolReport, Verdict};
pub use source::Direction;
pub use source::sim::{Preset, PresetGeometry, SimDevice, SimDeviceBuilder};
#[cfg(feature = "tt-metal")]
#[doc(hidden)]
pub use source::tt_metal::{L1BankOp, L1BankStep};
#[cfg(feature = "tt-metal")]
pub use source::tt_metal::{MockCluster, TtMetalConfig, TtMetalDevice};
pub use trace::{Expect, Trace, TraceOp};
pub use types::{
    Allocation, BufferType, MeshCoord, MeshShape, ParseBufferTypeError, PoolStats, Snapshot,
    SourceLocation,
};
pub use units::{ByteSize, GIB, KIB, MIB, SizeError};
pub use what_if::{WhatIf, WhatIfConfig, WhatIfFailure, WhatIfRow};

/// What a test file needs, in one `use`: devices and buffers, guards and
/// budgets, the assertion macros, the test result type, the size units,
/// and the crate's error and result types.
///
/// # Examples
///
/// ```
/// use tt_memguard::prelude::*;
///
/// fn fits(dev: &Device) -> TestResult {
///     assert_no_leak!(dev, {
///         let _tiles = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
///     });
///     Ok(())
/// }
///
/// fits(&SimDevice::wormhole_b0()).unwrap();
/// ```
pub mod prelude {
    #[allow(deprecated)]
    pub use crate::Mesh;
    pub use crate::runner::TestResult;
    pub use crate::{
        Allow, Budget, Buffer, BufferType, ByteSize, CircularBufferConfig, CoreCoord, CoreRange,
        CoreRangeSet, Device, DeviceGroup, Error, GIB, GuardOptions, KIB, MIB, MemoryGuard,
        MemoryReport, MeshDevice, Preset, Program, Result, SimDevice, SimMesh,
    };
    pub use crate::{
        assert_memory_budget, assert_no_leak, try_assert_memory_budget, try_assert_no_leak,
    };
}

/// The memguard test runner: a libtest-mimic harness in which every test
/// receives a device and runs inside a [`MemoryGuard`].
/// [`main!`](crate::main) builds one; [`Harness`](crate::runner::Harness)
/// documents its flags, variables and reports.
pub mod runner {
    pub use crate::harness::{
        BudgetConfig, DeviceProvider, Harness, RunInfo, RunReport, SharedDevice, SkippedReport,
        Test, TestOutcome, TestRecord, TestResult, TestStatus,
    };
}

/// The README's Rust code blocks, compiled and run as doctests so that they
/// keep up with the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Not public API: used by the crate's benchmarks and macros.
#[doc(hidden)]
pub mod __private {
    pub use crate::check::{macro_assert, macro_guard, macro_try, macro_try_guard};
    pub use crate::harness::harness_false_missing;
    pub use crate::source::sim::scan_snapshot;
    /// `main!` asserts snapshots from the user's test file.
    pub use insta;
}

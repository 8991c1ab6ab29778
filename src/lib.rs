//! tt-memguard turns Tenstorrent device memory into test assertions.
#![deny(missing_docs)]

mod budget;
mod check;
mod device;
mod guard;
mod harness;
mod live;
#[macro_use]
mod macros;
mod error;
mod ffi;
mod mesh;
pub mod monitor;
mod render;
mod report;
mod source;
mod trace;
mod types;
mod units;

pub use budget::{Budget, BudgetSource, CheckKind, Limit, PoolBudget, SizeArg};
pub use check::{assert_memory, check, failure_report};
pub use device::{Buffer, BufferBuilder, Device, DeviceInfo, DeviceKind, PeakMark, PoolPeaks};
pub use error::{Error, Result};
pub use guard::{Allow, GuardOptions, MemoryGuard};
pub use harness::{
    BudgetConfig, DeviceProvider, Glob, Harness, RunReport, SharedDevice, Test, TestOutcome,
    TestRecord, TestResult, TestStatus, load_budget_file,
};
pub use live::{LiveEvent, LiveLine, LiveStream, Watch};
pub use mesh::{MemorySource, Mesh};
pub use render::{ColorChoice, Level, snapshot_table, usage_bar};
pub use report::{DeviceReport, MemoryReport, PoolReport, Verdict};
pub use source::Direction;
pub use source::sim::{Preset, SimDevice, SimDeviceBuilder};
#[cfg(feature = "tt-metal")]
pub use source::tt_metal::{MockCluster, TtMetalConfig, TtMetalDevice};
pub use trace::{Trace, TraceOp};
pub use types::{
    Allocation, BufferType, GIB, KIB, MIB, PoolStats, Snapshot, SourceLocation, format_bytes,
    format_count,
};
pub use units::ByteSize;

/// Not public API: used by the crate's benchmarks and macros.
#[doc(hidden)]
pub mod __private {
    pub use crate::check::{macro_assert, macro_guard, macro_try};
    pub use crate::source::sim::scan_snapshot;
}

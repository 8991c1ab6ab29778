//! tt-memguard turns Tenstorrent device memory into test assertions.
#![deny(missing_docs)]

mod device;
mod error;
mod ffi;
mod render;
mod source;
mod trace;
mod types;

pub use device::{Buffer, BufferBuilder, Device, DeviceInfo, DeviceKind, PeakMark, PoolPeaks};
pub use error::{Error, Result};
pub use render::{ColorChoice, Level, snapshot_table, usage_bar};
pub use source::Direction;
pub use source::sim::{Preset, SimDevice, SimDeviceBuilder};
pub use trace::{Trace, TraceOp};
pub use types::{
    Allocation, BufferType, GIB, KIB, MIB, PoolStats, Snapshot, SourceLocation, format_bytes,
    format_count,
};

/// Not public API: used by the crate's benchmarks and macros.
#[doc(hidden)]
pub mod __private {
    pub use crate::source::sim::scan_snapshot;
}

//! tt-memguard turns Tenstorrent device memory into test assertions.
#![deny(missing_docs)]

mod device;
mod error;
mod ffi;
mod source;
mod types;

pub use device::{Buffer, BufferBuilder, Device, DeviceInfo, DeviceKind};
pub use error::{Error, Result};
pub use source::Direction;
pub use source::sim::{Preset, SimDevice, SimDeviceBuilder};
pub use types::{
    Allocation, BufferType, GIB, KIB, MIB, PoolStats, Snapshot, SourceLocation, format_bytes,
    format_count,
};

//! Memory sources: the backends a [`Device`](crate::Device) talks to.
//!
//! Only this module and the ffi bridges know that C++ exists.

/// Turns a backend's registry record (any bridge's `RawRecord`: the same
/// fields) into an [`Allocation`] and its caller tag.
macro_rules! allocation_from_record {
    ($record:expr, $banks:expr) => {{
        let r = $record;
        let buffer_type =
            crate::types::BufferType::from_index(r.pool).unwrap_or(crate::types::BufferType::Dram);
        let allocation = crate::types::Allocation {
            id: r.id,
            buffer_type,
            address: r.address,
            size: r.size,
            page_size: r.page_size,
            per_bank_size: r.per_bank_size,
            num_banks: $banks[buffer_type.index()],
            shards: (r.shards > 0).then_some(r.shards),
            label: (!r.label.is_empty()).then_some(r.label),
            location: None,
        };
        (allocation, r.tag)
    }};
}

pub(crate) mod sim;
#[cfg(feature = "tt-metal")]
pub(crate) mod tt_metal;

use crate::error::Result;
use crate::types::{Allocation, BufferType, Snapshot};

/// Placement direction inside a pool.
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, Direction, SimDevice};
///
/// let dev = SimDevice::wormhole_b0();
/// // L1 is top-down by default; bottom-up places the buffer at the L1 base.
/// let b = dev.buffer(BufferType::L1, 64 * 2048).page_size(2048).direction(Direction::BottomUp).allocate()?;
/// assert_eq!(b.address(), 0x19D60);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// The pool's default: bottom-up for DRAM and TRACE, top-down for L1 and
    /// L1_SMALL.
    #[default]
    Default,
    /// Lowest free block, bottom of the block.
    BottomUp,
    /// Highest free block, top of the block.
    TopDown,
}

/// A validated allocation request, as backends receive it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub buffer_type: BufferType,
    pub size: u64,
    pub page_size: u64,
    pub shards: Option<u32>,
    pub direction: Direction,
    pub address: Option<u64>,
    pub label: Option<String>,
    /// Opaque caller data stored with the allocation (the source location).
    pub tag: u64,
}

/// What a backend reports for a placed buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub id: u64,
    /// Backend-specific handle that makes the free a direct access.
    pub slot: u32,
    pub address: u64,
    pub per_bank_size: u64,
    pub num_banks: u32,
}

/// Per-pool peak of per-bank allocated bytes since a mark was taken.
pub(crate) type Peaks = [u64; 4];

/// The operations every device backend provides. Calls are serialized by the
/// owning [`Device`](crate::Device).
pub(crate) trait Backend: Send {
    /// Places a buffer, or explains why it cannot be placed.
    fn allocate(&mut self, request: &Request) -> Result<Placed>;
    /// Frees a live allocation (`id` and `slot` as placed); false when it is
    /// not live.
    fn deallocate(&mut self, id: u64, slot: u32) -> Result<bool>;
    /// The allocator statistics of every pool.
    fn snapshot(&self) -> Result<Snapshot>;
    /// Live allocations, ordered by id; `tag`s are returned as given.
    fn live(&self) -> Result<Vec<(Allocation, u64)>>;
    /// Number of live allocations.
    fn live_count(&self) -> Result<u64>;
    /// The id the next allocation will get; ids at or above it are newer.
    fn next_id(&self) -> Result<u64>;
    /// Starts an independent peak mark.
    fn mark_peak(&mut self) -> Result<u32>;
    /// Reads a peak mark.
    fn read_peak(&self, mark: u32) -> Result<Peaks>;
    /// Ends a peak mark.
    fn release_peak(&mut self, mark: u32);
    /// Returns the device to its freshly opened state when nothing is live
    /// and no peak mark is active; false when it cannot (or the backend does
    /// not support it).
    fn reset(&mut self) -> bool {
        false
    }
    /// The native device pointer (a TT-Metal `MeshDevice*`) behind a real
    /// device; `None` for the simulated device.
    #[cfg(feature = "tt-metal")]
    fn native_device(&self) -> Option<usize> {
        None
    }
    /// Statistics computed by scanning every block (simulated device only;
    /// the baseline of the snapshot benchmark).
    fn scan_snapshot(&self) -> Option<Snapshot> {
        None
    }
}

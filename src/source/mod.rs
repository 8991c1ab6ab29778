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
            size_per_bank: r.per_bank_size,
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

/// TRACE banks are carved in whole multiples of this many bytes.
const TRACE_GRANULE: u64 = 8 * 1024;

/// Room in a bank, and the carve-outs a device is opened with: checks the
/// rules both backends share (tt-metal-allocator facts: L1_SMALL takes
/// `round_up(l1_small_size, granularity)` of every core's L1, TRACE takes
/// `round_up(ceil(trace_region_size / dram_banks), 8 KiB)` of every DRAM
/// bank, and each must leave room for its parent pool). The arithmetic is
/// exact where TT-Metal's own wraps around.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CarveOuts {
    pub l1_small_size: u64,
    pub trace_region_size: u64,
    /// The allocator granularity (the DRAM alignment).
    pub granularity: u64,
    pub dram_banks: u32,
    /// Bytes of one core's L1 above the L1 base (L1 and L1_SMALL together).
    pub l1_room: u64,
    /// Bytes of one DRAM bank above the DRAM base (DRAM and TRACE together).
    pub dram_room: u64,
}

impl CarveOuts {
    /// What is wrong and how to fix it, when a carve-out does not fit.
    pub(crate) fn problem(&self) -> Option<String> {
        let round_up = |value: u128, multiple: u64| {
            let m = u128::from(multiple.max(1));
            value.div_ceil(m) * m
        };
        let g = self.granularity.max(1);
        let l1_small = match self.l1_small_size {
            0 => 0,
            s => round_up(u128::from(s), g),
        };
        if l1_small >= u128::from(self.l1_room) {
            let max = self.l1_room.saturating_sub(1) / g * g;
            return Some(format!(
                "l1_small_size {} B leaves no room for L1 in the bank: it takes {l1_small} B of every core's L1 (rounded up to the {g} B DRAM alignment), which has {} B above the L1 base: use at most {max} B",
                self.l1_small_size, self.l1_room
            ));
        }
        let banks = self.dram_banks.max(1);
        let trace = match self.trace_region_size {
            0 => 0,
            t => round_up(u128::from(t.div_ceil(u64::from(banks))), TRACE_GRANULE),
        };
        if trace >= u128::from(self.dram_room) {
            let per_bank = self.dram_room.saturating_sub(1) / TRACE_GRANULE * TRACE_GRANULE;
            let max = u128::from(per_bank) * u128::from(banks);
            return Some(format!(
                "trace_region_size {} B leaves no room for DRAM in the bank: it takes {trace} B of each of the {banks} DRAM banks (its share rounded up to 8 KiB), which have {} B above the DRAM base: use at most {} B",
                self.trace_region_size,
                self.dram_room,
                max.min(u128::from(u64::MAX))
            ));
        }
        None
    }
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

//! Core vocabulary: pools, per-pool statistics, snapshots and live
//! allocations. Byte fields name their unit: `*_per_bank` is one bank's
//! figure, `*_total` the figure over all banks of the pool.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A device memory pool, as TT-Metal's `BufferType` names them.
///
/// # Examples
///
/// ```
/// use tt_memguard::BufferType;
///
/// assert_eq!("L1_SMALL".parse::<BufferType>()?, BufferType::L1Small);
/// assert_eq!(BufferType::Dram.to_string(), "DRAM");
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BufferType {
    /// Device DRAM, one bank per DRAM channel view.
    Dram,
    /// The SRAM of each Tensix worker core, one bank per core.
    L1,
    /// A region carved from the top of every L1 bank; sharded buffers only.
    L1Small,
    /// A region carved from the top of every DRAM bank for command traces.
    Trace,
}

impl BufferType {
    /// All four pools, in report order.
    pub const ALL: [BufferType; 4] = [
        BufferType::Dram,
        BufferType::L1,
        BufferType::L1Small,
        BufferType::Trace,
    ];

    /// TT-Metal's name for the pool (`DRAM`, `L1`, `L1_SMALL`, `TRACE`).
    pub fn name(self) -> &'static str {
        match self {
            BufferType::Dram => "DRAM",
            BufferType::L1 => "L1",
            BufferType::L1Small => "L1_SMALL",
            BufferType::Trace => "TRACE",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for BufferType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for BufferType {
    type Err = ParseBufferTypeError;

    /// Parses `DRAM`, `L1`, `L1_SMALL` or `TRACE`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "DRAM" => Ok(BufferType::Dram),
            "L1" => Ok(BufferType::L1),
            "L1_SMALL" | "L1SMALL" => Ok(BufferType::L1Small),
            "TRACE" => Ok(BufferType::Trace),
            _ => Err(ParseBufferTypeError {
                value: s.to_string(),
            }),
        }
    }
}

/// A pool name that is not one of the four.
///
/// # Examples
///
/// ```
/// use tt_memguard::BufferType;
///
/// let e = "SRAM".parse::<BufferType>().unwrap_err();
/// assert_eq!(e.value(), "SRAM");
/// assert_eq!(e.to_string(), "unknown buffer type \"SRAM\": expected DRAM, L1, L1_SMALL or TRACE");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown buffer type {value:?}: expected DRAM, L1, L1_SMALL or TRACE")]
pub struct ParseBufferTypeError {
    value: String,
}

impl ParseBufferTypeError {
    /// The text that was given.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// The allocator statistics of one pool, as TT-Metal reports them: four
/// per-bank figures (`*_per_bank`), plus the bank count and the pool's layout.
///
/// Device totals (`*_total`) are the per-bank figures times
/// [`num_banks`](Self::num_banks). Reading JSON also accepts the field names
/// of older live streams (`bank_size`, `allocated`, `free`,
/// `largest_free_block`).
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, SimDevice, KIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let _b = dev.allocate(BufferType::L1, 64 * KIB, 2048)?;
/// let l1 = *dev.snapshot()?.pool(BufferType::L1);
/// assert_eq!((l1.num_banks, l1.size_per_bank, l1.allocated_per_bank), (64, 1_393_312, 2048));
/// assert_eq!(l1.allocated_total(), 64 * KIB * 2);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// The pool.
    pub buffer_type: BufferType,
    /// Number of banks (0 for an unconfigured L1_SMALL region).
    pub num_banks: u32,
    /// Lowest address of the pool in every bank.
    pub base_address: u64,
    /// Page alignment of the pool.
    pub alignment: u64,
    /// Size of the pool in one bank (TT-Metal's `total_allocatable_size_bytes`).
    #[serde(alias = "bank_size")]
    pub size_per_bank: u64,
    /// Bytes of one bank covered by allocated blocks (`total_allocated_bytes`).
    #[serde(alias = "allocated")]
    pub allocated_per_bank: u64,
    /// The rest of the bank (`total_free_bytes`).
    #[serde(alias = "free")]
    pub free_per_bank: u64,
    /// Largest contiguous free block of one bank (`largest_free_block_bytes`).
    #[serde(alias = "largest_free_block")]
    pub largest_free_block_per_bank: u64,
}

impl PoolStats {
    /// Size of the pool over all banks. Every device total fits in 64 bits
    /// (the simulated device refuses a geometry where it would not); the
    /// totals saturate at `u64::MAX` rather than wrap.
    pub fn size_total(&self) -> u64 {
        self.size_per_bank.saturating_mul(u64::from(self.num_banks))
    }

    /// Allocated bytes over all banks.
    pub fn allocated_total(&self) -> u64 {
        self.allocated_per_bank
            .saturating_mul(u64::from(self.num_banks))
    }

    /// Free bytes over all banks.
    pub fn free_total(&self) -> u64 {
        self.free_per_bank.saturating_mul(u64::from(self.num_banks))
    }

    /// Allocated share of the pool, 0.0 to 1.0 (0.0 for an empty pool).
    pub fn utilization(&self) -> f64 {
        if self.size_per_bank == 0 {
            0.0
        } else {
            self.allocated_per_bank as f64 / self.size_per_bank as f64
        }
    }
}

/// All pools of one device at one instant.
///
/// # Examples
///
/// ```
/// use tt_memguard::SimDevice;
///
/// let snap = SimDevice::wormhole_b0().snapshot()?;
/// let names: Vec<&str> = snap.iter().map(|p| p.buffer_type.name()).collect();
/// assert_eq!(names, ["DRAM", "L1", "L1_SMALL", "TRACE"]);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// DRAM, L1, L1_SMALL and TRACE, in that order.
    pub pools: [PoolStats; 4],
}

impl Snapshot {
    /// The statistics of one pool.
    pub fn pool(&self, buffer_type: BufferType) -> &PoolStats {
        &self.pools[buffer_type.index()]
    }

    /// The pools in report order.
    pub fn iter(&self) -> impl Iterator<Item = &PoolStats> {
        self.pools.iter()
    }
}

/// Where an allocation was made: the caller of the allocating function.
/// Serialized as `"file:line:column"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SourceLocation {
    /// Source file, as the compiler names it.
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl From<&std::panic::Location<'_>> for SourceLocation {
    fn from(location: &std::panic::Location<'_>) -> Self {
        SourceLocation {
            file: location.file().to_string(),
            line: location.line(),
            column: location.column(),
        }
    }
}

impl From<SourceLocation> for String {
    fn from(location: SourceLocation) -> String {
        location.to_string()
    }
}

impl TryFrom<String> for SourceLocation {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let mut parts = text.rsplitn(3, ':');
        let column = parts.next().and_then(|c| c.parse().ok());
        let line = parts.next().and_then(|l| l.parse().ok());
        match (parts.next(), line, column) {
            (Some(file), Some(line), Some(column)) => Ok(SourceLocation {
                file: file.to_string(),
                line,
                column,
            }),
            _ => Err(format!("expected \"file:line:column\", got {text:?}")),
        }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A live device allocation, as the memory source's registry records it.
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, SimDevice, MIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let _w = dev.buffer(BufferType::Dram, MIB).page_size(2048).label("weights").allocate()?;
/// let live = dev.live_allocations()?;
/// assert_eq!(live[0].label.as_deref(), Some("weights"));
/// assert_eq!(live[0].reserved_total(), 88_064 * 12);
/// assert!(live[0].location.as_ref().unwrap().file.ends_with(".rs"));
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// Identifier, unique per device and increasing in allocation order.
    pub id: u64,
    /// The pool.
    pub buffer_type: BufferType,
    /// Address, valid in every bank of the pool.
    pub address: u64,
    /// Requested size in bytes: the buffer's total over all its banks.
    pub size: u64,
    /// Page size in bytes.
    pub page_size: u64,
    /// Bytes reserved in every bank of the pool (after alignment).
    pub size_per_bank: u64,
    /// Banks the reservation is made in (all banks of the pool).
    pub num_banks: u32,
    /// Number of cores (L1, L1_SMALL) or DRAM banks (DRAM) holding data,
    /// for a sharded buffer.
    pub shards: Option<u32>,
    /// Label given at allocation; for an orphaned block, `orphaned by a
    /// refused allocation`, followed by the refused request's label in
    /// parentheses when it had one.
    pub label: Option<String>,
    /// Where it was allocated, when it was allocated through this crate
    /// (for an orphaned block: where the refused allocation was made).
    pub location: Option<SourceLocation>,
    /// A block that a refused allocation left allocated: TT-Metal takes
    /// the block before it checks the interleaved L1 address limit, and
    /// keeps it when it refuses the buffer
    /// ([`Error::BelowAddressLimit`](crate::Error::BelowAddressLimit)).
    /// Nothing can free it; it is released when the device is closed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub orphaned: bool,
}

/// The label of a block a refused allocation left allocated.
pub(crate) const ORPHAN_LABEL: &str = "orphaned by a refused allocation";

/// An orphaned block's label, naming the refused request's label if any.
pub(crate) fn orphan_label(request_label: Option<&str>) -> String {
    match request_label {
        Some(label) if !label.is_empty() => format!("{ORPHAN_LABEL} ({label})"),
        _ => ORPHAN_LABEL.to_string(),
    }
}

impl Allocation {
    /// Bytes the allocation takes from the pool over all banks (at most the
    /// pool's total size; saturates rather than wraps).
    pub fn reserved_total(&self) -> u64 {
        self.size_per_bank.saturating_mul(u64::from(self.num_banks))
    }
}

/// The shape of a mesh of chips: rows by columns, as TT-Metal's `MeshShape`
/// gives a 2-D mesh (an n300 is 1x2, a T3000 2x4, a Galaxy 4x8).
///
/// # Examples
///
/// ```
/// use tt_memguard::MeshShape;
///
/// let t3000 = MeshShape::new(2, 4);
/// assert_eq!((t3000.chips(), t3000.to_string()), (8, "2x4".to_string()));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MeshShape {
    /// Rows of chips.
    pub rows: u32,
    /// Chips in a row.
    pub cols: u32,
}

impl MeshShape {
    /// A mesh of `rows` by `cols` chips.
    pub const fn new(rows: u32, cols: u32) -> MeshShape {
        MeshShape { rows, cols }
    }

    /// Chips in the mesh (saturating at `u32::MAX`).
    pub const fn chips(&self) -> u32 {
        self.rows.saturating_mul(self.cols)
    }

    /// Whether `coord` names a chip of the mesh.
    pub const fn contains(&self, coord: MeshCoord) -> bool {
        coord.row < self.rows && coord.col < self.cols
    }

    /// Every coordinate, row by row (TT-Metal's row-major order).
    pub fn coords(self) -> impl Iterator<Item = MeshCoord> {
        let cols = self.cols;
        (0..self.rows).flat_map(move |row| (0..cols).map(move |col| MeshCoord { row, col }))
    }
}

impl fmt::Display for MeshShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{}x{}", self.rows, self.cols))
    }
}

/// One chip's place in a mesh: its row and column, counting from 0
/// (TT-Metal's `MeshCoordinate`); shown as `[row,col]`.
///
/// # Examples
///
/// ```
/// use tt_memguard::MeshCoord;
///
/// assert_eq!(MeshCoord::new(0, 1).to_string(), "[0,1]");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MeshCoord {
    /// The chip's row.
    pub row: u32,
    /// The chip's column.
    pub col: u32,
}

impl MeshCoord {
    /// The chip at `row`, `col`.
    pub const fn new(row: u32, col: u32) -> MeshCoord {
        MeshCoord { row, col }
    }
}

impl From<(u32, u32)> for MeshCoord {
    fn from((row, col): (u32, u32)) -> MeshCoord {
        MeshCoord { row, col }
    }
}

impl fmt::Display for MeshCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("[{},{}]", self.row, self.col))
    }
}

//! Why a pool is fragmented: its free blocks and the allocations that split
//! them. Banks of a pool move in lock-step (an allocation reserves the same
//! block at the same address in every bank), so the free blocks of one bank
//! are the gaps between the live allocations of the pool inside
//! `[base_address, base_address + size_per_bank)`; this works the same for
//! every backend, from a snapshot's statistics and the live set.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use crate::types::{Allocation, BufferType, PoolStats};
use crate::units::{format_bytes, format_count};

/// How many of the largest free blocks an explanation names.
pub const LARGEST_SHOWN: usize = 5;

/// The free blocks of one pool (per bank), the largest few named with the
/// allocations either side of them.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragmentation {
    /// The pool.
    pub buffer_type: BufferType,
    /// Number of free blocks in one bank.
    pub free_blocks: u64,
    /// Free bytes of one bank, over all its free blocks.
    pub free_per_bank: u64,
    /// The largest free blocks (at most [`LARGEST_SHOWN`]), largest first,
    /// lower address first among equals.
    pub largest: Vec<FreeBlock>,
}

/// One free block of a bank and the allocations that bound it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeBlock {
    /// Lowest address of the block, in every bank.
    pub address: u64,
    /// Size of the block in one bank.
    pub size_per_bank: u64,
    /// The allocation ending where the block starts (`None` at the bottom
    /// of the pool).
    pub below: Option<Allocation>,
    /// The allocation starting where the block ends (`None` at the top of
    /// the pool).
    pub above: Option<Allocation>,
}

/// The free blocks of one bank of `pool`, by address, as `(address, size)`:
/// the gaps between the pool's allocations in `live` (allocations of other
/// pools are skipped).
pub fn pool_free_blocks(pool: &PoolStats, live: &[Allocation]) -> Vec<(u64, u64)> {
    gaps(pool, live)
        .into_iter()
        .map(|g| (g.address, g.size))
        .collect()
}

/// The free blocks of `pool` and, for the largest few, the allocations in
/// `live` either side of them; `None` when `live` does not list every
/// allocation of the pool (its gaps then do not add up to the pool's free
/// bytes), as on a device adopted after buffers were made on it.
///
/// # Examples
///
/// ```
/// use tt_memguard::{explain_fragmentation, BufferType, SimDevice, KIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let a = dev.buffer(BufferType::L1, 64 * 64 * KIB).page_size(64 * KIB).label("a").allocate()?;
/// let b = dev.buffer(BufferType::L1, 64 * 64 * KIB).page_size(64 * KIB).label("b").allocate()?;
/// drop(a);
/// let pool = *dev.snapshot()?.pool(BufferType::L1);
/// let f = explain_fragmentation(&pool, &dev.live_allocations()?).expect("every allocation is listed");
/// assert_eq!(f.free_blocks, 2);
/// // L1 fills from the top: the block `a` freed is the pool's top, above `b`.
/// let top = f.largest.iter().find(|block| block.above.is_none()).unwrap();
/// assert_eq!(top.size_per_bank, 64 * KIB);
/// assert_eq!(top.below.as_ref().unwrap().label.as_deref(), Some("b"));
/// assert_eq!(top.address + top.size_per_bank, pool.base_address + pool.size_per_bank);
/// # drop(b);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
pub fn explain_fragmentation(pool: &PoolStats, live: &[Allocation]) -> Option<Fragmentation> {
    let all = gaps(pool, live);
    let free_per_bank = all.iter().fold(0u64, |sum, g| sum.saturating_add(g.size));
    // The gaps are the free blocks only when the live set lists every
    // allocation of the pool (a device adopted after buffers were made on it
    // does not): then they add up to the pool's own free bytes.
    if free_per_bank != pool.free_per_bank {
        return None;
    }
    let mut order: Vec<&Gap<'_>> = all.iter().collect();
    order.sort_by(|x, y| y.size.cmp(&x.size).then(x.address.cmp(&y.address)));
    let largest = order
        .into_iter()
        .take(LARGEST_SHOWN)
        .map(|g| FreeBlock {
            address: g.address,
            size_per_bank: g.size,
            below: g.below.cloned(),
            above: g.above.cloned(),
        })
        .collect();
    Some(Fragmentation {
        buffer_type: pool.buffer_type,
        free_blocks: all.len() as u64,
        free_per_bank,
        largest,
    })
}

struct Gap<'a> {
    address: u64,
    size: u64,
    below: Option<&'a Allocation>,
    above: Option<&'a Allocation>,
}

fn gaps<'a>(pool: &PoolStats, live: &'a [Allocation]) -> Vec<Gap<'a>> {
    let start = pool.base_address;
    let end = start.saturating_add(pool.size_per_bank);
    let mut taken: Vec<&Allocation> = live
        .iter()
        .filter(|a| a.buffer_type == pool.buffer_type && a.size_per_bank > 0)
        .collect();
    taken.sort_by_key(|a| (a.address, a.id));
    let mut out = Vec::new();
    let mut cursor = start;
    // The allocation whose end is the cursor (none at the pool's bottom).
    let mut below: Option<&Allocation> = None;
    for a in taken {
        let a_start = a.address.clamp(start, end);
        let a_end = a.address.saturating_add(a.size_per_bank).clamp(start, end);
        if a_start > cursor {
            out.push(Gap {
                address: cursor,
                size: a_start - cursor,
                below,
                above: Some(a),
            });
        }
        if a_end >= cursor {
            cursor = a_end;
            below = Some(a);
        }
    }
    if end > cursor {
        out.push(Gap {
            address: cursor,
            size: end - cursor,
            below,
            above: None,
        });
    }
    out
}

impl Fragmentation {
    /// Writes the explanation, one line per named block, each line starting
    /// with `indent`.
    pub(crate) fn render(&self, out: &mut String, indent: &str) {
        let plural = if self.free_blocks == 1 { "" } else { "s" };
        let _ = write!(
            out,
            "{indent}{} free per bank in {} block{plural}",
            format_bytes(self.free_per_bank),
            format_count(self.free_blocks)
        );
        let _ = writeln!(
            out,
            "{}",
            if self.largest.len() as u64 == self.free_blocks {
                ":"
            } else {
                ", the largest:"
            }
        );
        for block in &self.largest {
            let _ = writeln!(
                out,
                "{indent}  {} B at {:#x}..{:#x}, between {} and {}",
                format_count(block.size_per_bank),
                block.address,
                block.address.saturating_add(block.size_per_bank),
                neighbour(block.below.as_ref(), "the bottom of the pool"),
                neighbour(block.above.as_ref(), "the top of the pool")
            );
        }
    }
}

impl fmt::Display for Fragmentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.render(&mut out, "");
        f.write_str(out.trim_end())
    }
}

/// `"a" (id 3, 64.0 KiB per bank at 0x1000, allocated at file:line:col)`, or
/// `buffer id 3 (...)` without a label.
fn neighbour(a: Option<&Allocation>, edge: &str) -> String {
    let Some(a) = a else {
        return edge.to_string();
    };
    let mut s = match &a.label {
        Some(label) => format!("{label:?} (id {}, ", a.id),
        None => format!("buffer id {} (", a.id),
    };
    let _ = write!(
        s,
        "{} per bank at {:#x}",
        format_bytes(a.size_per_bank),
        a.address
    );
    if let Some(loc) = &a.location {
        let _ = write!(s, ", allocated at {loc}");
    }
    s.push(')');
    s
}

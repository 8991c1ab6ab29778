//! What a scope did over time and where its buffers sat at the peak: the
//! data behind the HTML report and the monitor's address map.
//!
//! A guard asked to explain itself ([`GuardOptions::explain`](crate::GuardOptions::explain),
//! and the runner under `--memory-html`) attaches a [`DeviceDetail`] to
//! every device report: a [`Timeline`] of allocated bytes per pool,
//! downsampled to at most [`TIMELINE_POINTS`] points, and one [`BankMap`]
//! per pool, the live allocations of one bank at the pool's peak.

use serde::{Deserialize, Serialize};

use crate::cb_failure::ProgramPeak;
use crate::composition::{PeakComposition, PeakEntry};
use crate::types::BufferType;

/// The most points a [`Timeline`] keeps, whatever the number of events.
pub const TIMELINE_POINTS: usize = 512;

/// Detail of one device over a scope, for the HTML report.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDetail {
    /// Allocated bytes per pool over the scope's allocations and frees.
    pub timeline: Timeline,
    /// One bank of every pool that has banks, in order DRAM, L1, L1_SMALL,
    /// TRACE.
    pub maps: Vec<BankMap>,
    /// The enqueue with the largest circular-buffer region in the scope,
    /// when a program with circular buffers was enqueued and the device
    /// still remembered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circular_buffers: Option<ProgramPeak>,
}

impl DeviceDetail {
    /// The map of one pool, when the pool has banks.
    pub fn map(&self, buffer_type: BufferType) -> Option<&BankMap> {
        self.maps.iter().find(|m| m.buffer_type == buffer_type)
    }
}

/// Allocated bytes per bank of each pool over a scope's allocations and
/// frees, in event order. Consecutive events are merged into one point
/// (keeping their highest and lowest values, so the pool's peak is never
/// lost) once a scope makes more than [`TIMELINE_POINTS`] events.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// Allocations and frees the device applied in the scope.
    pub events: u64,
    /// Events each point covers: 1 until the scope made more than
    /// [`TIMELINE_POINTS`] events, then a power of two (the last point may
    /// cover fewer).
    pub stride: u64,
    /// Allocated bytes per bank of each pool at the scope's start, in
    /// order DRAM, L1, L1_SMALL, TRACE.
    pub start_per_bank: [u64; 4],
    /// At most [`TIMELINE_POINTS`] points, in event order.
    pub points: Vec<TimelinePoint>,
}

/// Events `first_event..=last_event` of a [`Timeline`] (numbered from 1).
/// Pools are in order DRAM, L1, L1_SMALL, TRACE.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// The first event the point covers.
    pub first_event: u64,
    /// The last event the point covers.
    pub last_event: u64,
    /// Highest allocated bytes per bank of each pool after any covered event.
    pub high_per_bank: [u64; 4],
    /// Lowest allocated bytes per bank of each pool after any covered event.
    pub low_per_bank: [u64; 4],
    /// Allocated bytes per bank of each pool after the last covered event.
    pub end_per_bank: [u64; 4],
}

/// One bank of a pool at the pool's peak.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankMap {
    /// The pool.
    pub buffer_type: BufferType,
    /// Lowest address of the pool in every bank.
    pub base_address: u64,
    /// Size of the pool in one bank.
    pub size_per_bank: u64,
    /// The allocations live at the pool's peak; `None` when the device's
    /// allocation log does not account for the peak (allocations made
    /// outside this crate, or more events than the log keeps).
    pub at_peak: Option<PeakComposition>,
}

/// A stretch of one bank: an allocation or a free gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// An allocation live at the peak.
    Block(&'a PeakEntry),
    /// Free bytes.
    Free {
        /// Lowest address of the gap.
        address: u64,
        /// Bytes in the gap.
        size: u64,
    },
}

impl Segment<'_> {
    /// Lowest address of the segment.
    pub fn address(&self) -> u64 {
        match self {
            Segment::Block(e) => e.address,
            Segment::Free { address, .. } => *address,
        }
    }

    /// Bytes of one bank the segment covers.
    pub fn size(&self) -> u64 {
        match self {
            Segment::Block(e) => e.size_per_bank,
            Segment::Free { size, .. } => *size,
        }
    }
}

impl BankMap {
    /// The bank from its base up at the peak: allocations and the free
    /// gaps between them, by address, covering `base_address ..
    /// base_address + size_per_bank` without overlap. `None` when the peak
    /// is unknown, or an allocation lies outside the pool or overlaps
    /// another (a map that cannot be drawn truthfully).
    pub fn segments(&self) -> Option<Vec<Segment<'_>>> {
        let composition = self.at_peak.as_ref()?;
        let blocks = composition
            .entries
            .iter()
            .map(|e| (e.address, e.size_per_bank, e));
        let laid = lay_out(self.base_address, self.size_per_bank, blocks)?;
        Some(
            laid.into_iter()
                .map(|(address, size, e)| match e {
                    Some(e) => Segment::Block(e),
                    None => Segment::Free { address, size },
                })
                .collect(),
        )
    }
}

/// The bank `base .. base + size` as `(address, size, block)` stretches by
/// address: every block, and a `None` stretch for every gap. `None` when a
/// block lies outside the bank or overlaps another.
pub(crate) fn lay_out<T>(
    base: u64,
    size: u64,
    blocks: impl IntoIterator<Item = (u64, u64, T)>,
) -> Option<Vec<(u64, u64, Option<T>)>> {
    let mut blocks: Vec<(u64, u64, T)> = blocks.into_iter().collect();
    blocks.sort_by_key(|b| (b.0, b.1));
    let end = base.checked_add(size)?;
    let mut out = Vec::with_capacity(blocks.len() * 2 + 1);
    let mut cursor = base;
    for (address, size, block) in blocks {
        let block_end = address.checked_add(size)?;
        if address < cursor || block_end > end {
            return None;
        }
        if address > cursor {
            out.push((cursor, address - cursor, None));
        }
        out.push((address, size, Some(block)));
        cursor = block_end;
    }
    if cursor < end {
        out.push((cursor, end - cursor, None));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, address: u64, size_per_bank: u64) -> PeakEntry {
        PeakEntry {
            id,
            label: None,
            address,
            size: size_per_bank,
            size_per_bank,
            contributed_total: size_per_bank,
            location: None,
            inherited: false,
        }
    }

    fn map(entries: Vec<PeakEntry>) -> BankMap {
        BankMap {
            buffer_type: BufferType::L1,
            base_address: 0x1000,
            size_per_bank: 0x1000,
            at_peak: Some(PeakComposition {
                buffer_type: BufferType::L1,
                peak_per_bank: entries.iter().map(|e| e.size_per_bank).sum(),
                entries,
            }),
        }
    }

    #[test]
    fn segments_cover_the_bank_with_gaps_between_blocks() {
        let m = map(vec![entry(2, 0x1c00, 0x400), entry(1, 0x1200, 0x200)]);
        let got: Vec<(u64, u64, bool)> = m
            .segments()
            .unwrap()
            .iter()
            .map(|s| (s.address(), s.size(), matches!(s, Segment::Block(_))))
            .collect();
        assert_eq!(
            got,
            [
                (0x1000, 0x200, false),
                (0x1200, 0x200, true),
                (0x1400, 0x800, false),
                (0x1c00, 0x400, true),
            ]
        );
    }

    #[test]
    fn overlapping_or_outside_blocks_give_no_map() {
        let m = map(vec![entry(1, 0x1200, 0x200), entry(2, 0x1300, 0x200)]);
        assert_eq!(m.segments(), None);
        let m = map(vec![entry(1, 0x1f00, 0x200)]);
        assert_eq!(m.segments(), None);
        let m = map(vec![entry(1, 0x800, 0x200)]);
        assert_eq!(m.segments(), None);
    }
}

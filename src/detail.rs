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
    /// Allocations and frees the device applied in the scope through this
    /// crate (TT-Metal's own allocations are not seen).
    pub events: u64,
    /// Events each point covers: 1 until the scope made more than
    /// [`TIMELINE_POINTS`] events, then a power of two (the last point may
    /// cover fewer).
    pub stride: u64,
    /// Allocated bytes per bank of each pool when the timeline started, in
    /// order DRAM, L1, L1_SMALL, TRACE: the scope's baseline, or the moment
    /// [`MemoryGuard::explain`](crate::MemoryGuard::explain) was called on
    /// a guard already running.
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

/// Builds a [`Timeline`] event by event, in memory bounded by
/// [`TIMELINE_POINTS`] whatever the number of events: full points cover
/// `stride` events each; when [`TIMELINE_POINTS`] are full and another
/// event comes, adjacent pairs are merged and the stride doubles (a merge
/// of all points per doubling of the events: constant time per event,
/// amortized).
#[derive(Debug, Clone)]
pub(crate) struct TimelineBuilder {
    events: u64,
    stride: u64,
    start: [u64; 4],
    /// Allocated bytes per bank of each pool after the last event.
    current: [u64; 4],
    /// Full points, `stride` events each.
    points: Vec<TimelinePoint>,
    /// Events of the point being filled (fewer than `stride`), and its
    /// highest and lowest values so far.
    open: u64,
    high: [u64; 4],
    low: [u64; 4],
}

impl TimelineBuilder {
    /// A timeline starting from `start_per_bank` (pools in order DRAM, L1,
    /// L1_SMALL, TRACE).
    pub(crate) fn new(start_per_bank: [u64; 4]) -> TimelineBuilder {
        TimelineBuilder {
            events: 0,
            stride: 1,
            start: start_per_bank,
            current: start_per_bank,
            points: Vec::new(),
            open: 0,
            high: start_per_bank,
            low: start_per_bank,
        }
    }

    /// One allocation (`alloc`) or free of `size_per_bank` bytes in every
    /// bank of pool `pool` (its index).
    #[inline]
    pub(crate) fn push(&mut self, pool: usize, alloc: bool, size_per_bank: u64) {
        let value = &mut self.current[pool];
        *value = if alloc {
            value.saturating_add(size_per_bank)
        } else {
            value.saturating_sub(size_per_bank)
        };
        let value = *value;
        self.events += 1;
        if self.open == 0 {
            self.open_next();
        } else {
            // Only this pool moved since the point opened.
            self.high[pool] = self.high[pool].max(value);
            self.low[pool] = self.low[pool].min(value);
        }
        self.open += 1;
        if self.open == self.stride {
            self.close();
        }
    }

    /// Opens a point at the event just counted, making room first.
    #[inline(never)]
    fn open_next(&mut self) {
        if self.points.len() == TIMELINE_POINTS {
            self.halve();
        }
        self.high = self.current;
        self.low = self.current;
    }

    /// Closes the full open point.
    #[inline(never)]
    fn close(&mut self) {
        if self.points.capacity() == 0 {
            self.points.reserve_exact(TIMELINE_POINTS);
        }
        self.points.push(TimelinePoint {
            first_event: self.events + 1 - self.open,
            last_event: self.events,
            high_per_bank: self.high,
            low_per_bank: self.low,
            end_per_bank: self.current,
        });
        self.open = 0;
    }

    /// The point being filled (meaningful when it has events).
    fn open_point(&self) -> TimelinePoint {
        TimelinePoint {
            first_event: self.events + 1 - self.open,
            last_event: self.events,
            high_per_bank: self.high,
            low_per_bank: self.low,
            end_per_bank: self.current,
        }
    }

    /// Merges adjacent pairs of full points and doubles the stride.
    #[cold]
    fn halve(&mut self) {
        let merged = self.points.len() / 2;
        for i in 0..merged {
            let b = self.points[2 * i + 1];
            let a = &mut self.points[2 * i];
            a.last_event = b.last_event;
            for k in 0..4 {
                a.high_per_bank[k] = a.high_per_bank[k].max(b.high_per_bank[k]);
                a.low_per_bank[k] = a.low_per_bank[k].min(b.low_per_bank[k]);
            }
            a.end_per_bank = b.end_per_bank;
            self.points[i] = self.points[2 * i];
        }
        self.points.truncate(merged);
        self.stride *= 2;
    }

    /// The timeline, without a copy of its points.
    pub(crate) fn into_timeline(mut self) -> Timeline {
        if self.open > 0 {
            let point = self.open_point();
            self.points.push(point);
        }
        Timeline {
            events: self.events,
            stride: self.stride,
            start_per_bank: self.start,
            points: self.points,
        }
    }

    /// The timeline so far.
    pub(crate) fn timeline(&self) -> Timeline {
        let mut points = Vec::with_capacity(self.points.len() + 1);
        points.extend_from_slice(&self.points);
        if self.open > 0 {
            points.push(self.open_point());
        }
        Timeline {
            events: self.events,
            stride: self.stride,
            start_per_bank: self.start,
            points,
        }
    }
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

    /// The timeline computed the long way: every value kept, then cut into
    /// runs of the smallest power-of-two stride that gives at most
    /// [`TIMELINE_POINTS`] points.
    fn naive(start: [u64; 4], events: &[(usize, bool, u64)]) -> Timeline {
        let mut now = start;
        let series: Vec<[u64; 4]> = events
            .iter()
            .map(|&(pool, alloc, size)| {
                now[pool] = if alloc {
                    now[pool] + size
                } else {
                    now[pool] - size
                };
                now
            })
            .collect();
        let mut stride = 1usize;
        while series.len().div_ceil(stride) > TIMELINE_POINTS {
            stride *= 2;
        }
        let points = series
            .chunks(stride)
            .enumerate()
            .map(|(i, run)| TimelinePoint {
                first_event: (i * stride + 1) as u64,
                last_event: (i * stride + run.len()) as u64,
                high_per_bank: std::array::from_fn(|k| run.iter().map(|v| v[k]).max().unwrap()),
                low_per_bank: std::array::from_fn(|k| run.iter().map(|v| v[k]).min().unwrap()),
                end_per_bank: *run.last().unwrap(),
            })
            .collect();
        Timeline {
            events: events.len() as u64,
            stride: stride as u64,
            start_per_bank: start,
            points,
        }
    }

    fn build(start: [u64; 4], events: &[(usize, bool, u64)]) -> Timeline {
        let mut b = TimelineBuilder::new(start);
        for &(pool, alloc, size) in events {
            b.push(pool, alloc, size);
            assert!(b.points.len() + usize::from(b.open > 0) <= TIMELINE_POINTS);
            assert!(b.points.capacity() <= TIMELINE_POINTS);
        }
        let t = b.timeline();
        assert_eq!(b.into_timeline(), t);
        t
    }

    /// `n` events: allocations of 32 B in pool `n % 4` while fewer than 3
    /// are live there, frees otherwise.
    fn sawtooth(n: usize) -> Vec<(usize, bool, u64)> {
        let mut live = [0u32; 4];
        (0..n)
            .map(|i| {
                let pool = i % 4;
                let alloc = live[pool] < 3;
                if alloc {
                    live[pool] += 1;
                } else {
                    live[pool] = 0;
                }
                (pool, alloc, if alloc { 32 } else { 3 * 32 })
            })
            .collect()
    }

    #[test]
    fn strides_and_counts_across_the_merges() {
        let start = [1000, 2000, 0, 0];
        for (n, stride, points) in [
            (0, 1, 0),
            (1, 1, 1),
            (511, 1, 511),
            (512, 1, 512),
            (513, 2, 257),
            (1024, 2, 512),
            (1025, 4, 257),
            (100_000, 256, 391),
        ] {
            let got = build(start, &sawtooth(n));
            assert_eq!(
                (got.events, got.stride, got.points.len()),
                (n as u64, stride, points),
                "{n} events"
            );
            assert_eq!(got, naive(start, &sawtooth(n)), "{n} events");
            if let Some(last) = got.points.last() {
                assert_eq!(last.last_event, n as u64);
            }
            // Points tile the events without gaps.
            for pair in got.points.windows(2) {
                assert_eq!(pair[0].last_event + 1, pair[1].first_event);
            }
        }
    }

    #[test]
    fn random_events_match_the_full_series() {
        let mut state = 0x5eed_u64;
        let mut next = move || {
            // xorshift64*: reproducible, no dependency.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for round in 0..40 {
            let n = (next() % 5000) as usize + if round % 5 == 0 { 20_000 } else { 0 };
            let start = [next() % 4096, next() % 4096, 0, next() % 4096];
            let mut live: [Vec<u64>; 4] = Default::default();
            let events: Vec<(usize, bool, u64)> = (0..n)
                .map(|_| {
                    let pool = (next() % 4) as usize;
                    if live[pool].is_empty() || next() % 3 != 0 {
                        let size = 32 * (1 + next() % 64);
                        live[pool].push(size);
                        (pool, true, size)
                    } else {
                        let i = (next() as usize) % live[pool].len();
                        (pool, false, live[pool].swap_remove(i))
                    }
                })
                .collect();
            let got = build(start, &events);
            assert_eq!(got, naive(start, &events), "round {round}, {n} events");
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

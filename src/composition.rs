//! What a pool held at its peak: the live allocations at the moment the
//! pool's per-bank allocated bytes first reached the scope's peak.
//!
//! While a guard with a peak limit is active, a device logs the
//! allocations and frees made through this crate in a bounded ring. A
//! failed peak check replays that log from the guard's start, from the
//! baseline, to find the first event at which the pool reached its peak;
//! live then is what was allocated before that event and is live today or
//! freed after it. Nothing is attached
//! when the log no longer reaches back to the guard's start or does not
//! account for the peak (allocations the crate did not see).

use std::fmt::Write as _;
use std::panic::Location;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::types::{Allocation, BufferType, SourceLocation};
use crate::units::{format_bytes, format_count};

/// How many of the largest allocations at a peak a report's text names;
/// the rest are summed.
pub const PEAK_SHOWN: usize = 5;

/// The live allocations of one pool at the moment of its peak, attached to
/// a [`PoolReport`](crate::PoolReport) whose peak check failed.
///
/// # Examples
///
/// ```
/// use tt_memguard::{Budget, BufferType, Error, MemoryGuard, SimDevice, KIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("64 KiB"));
/// let a = dev.buffer(BufferType::L1, 64 * 8 * KIB).page_size(8 * KIB).label("a").allocate()?;
/// let b = dev.buffer(BufferType::L1, 64 * 4 * KIB).page_size(4 * KIB).label("b").allocate()?;
/// drop((a, b));
/// let Err(Error::MemoryCheckFailed(report)) = guard.finish() else { panic!("over budget") };
/// let c = report.device().pool(BufferType::L1).peak_composition.as_ref().unwrap();
/// let labels: Vec<_> = c.entries.iter().map(|e| e.label.as_deref().unwrap()).collect();
/// assert_eq!((c.peak_per_bank, labels), (12 * KIB, vec!["a", "b"]));
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeakComposition {
    /// The pool.
    pub buffer_type: BufferType,
    /// The pool's peak of allocated bytes per bank (the sum of the
    /// entries' per-bank sizes).
    pub peak_per_bank: u64,
    /// Every allocation live at the peak, largest first, older first
    /// among equals.
    pub entries: Vec<PeakEntry>,
}

/// One allocation live at a pool's peak.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeakEntry {
    /// The allocation's id.
    pub id: u64,
    /// Label given at allocation.
    pub label: Option<String>,
    /// Address, valid in every bank of the pool.
    pub address: u64,
    /// Requested size in bytes.
    pub size: u64,
    /// Bytes reserved in every bank of the pool.
    pub size_per_bank: u64,
    /// Bytes it contributed to the pool's peak, over all banks.
    pub contributed_total: u64,
    /// Where it was allocated.
    pub location: Option<SourceLocation>,
    /// Whether it was already live when the scope started.
    pub inherited: bool,
}

/// One logged allocation (`alloc`) or free, compact: a device writes one
/// for every event while a guard wants the peak composition, and only the
/// allocations at the peak become [`PeakEntry`]s.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub alloc: bool,
    pub buffer_type: BufferType,
    pub id: u64,
    pub address: u64,
    pub size: u64,
    pub size_per_bank: u64,
    pub location: Option<&'static Location<'static>>,
    pub label: Option<Arc<str>>,
}

/// An allocation live at the peak: still live, or freed later (then known
/// from its logged free).
#[derive(Clone, Copy)]
enum AtPeak<'a> {
    Live(&'a Allocation),
    Freed(&'a Event),
}

impl AtPeak<'_> {
    fn id(&self) -> u64 {
        match self {
            AtPeak::Live(a) => a.id,
            AtPeak::Freed(e) => e.id,
        }
    }

    fn size_per_bank(&self) -> u64 {
        match self {
            AtPeak::Live(a) => a.size_per_bank,
            AtPeak::Freed(e) => e.size_per_bank,
        }
    }

    fn entry(&self, pool_banks: u32, first_id: u64) -> PeakEntry {
        let (id, label, address, size, size_per_bank, location) = match *self {
            AtPeak::Live(a) => (
                a.id,
                a.label.clone(),
                a.address,
                a.size,
                a.size_per_bank,
                a.location.clone(),
            ),
            AtPeak::Freed(e) => (
                e.id,
                e.label.as_deref().map(str::to_string),
                e.address,
                e.size,
                e.size_per_bank,
                e.location.map(SourceLocation::from),
            ),
        };
        PeakEntry {
            id,
            label,
            address,
            size,
            size_per_bank,
            contributed_total: crate::report::total(size_per_bank, pool_banks),
            location,
            inherited: id < first_id,
        }
    }
}

/// One pool of a [`Scene`].
pub(crate) struct PoolScene {
    pub pool_banks: u32,
    pub baseline_per_bank: u64,
    pub peak_per_bank: u64,
}

/// The inputs of [`compose`] for one scope.
pub(crate) struct Scene<'a> {
    /// The pools to compose, in order DRAM, L1, L1_SMALL, TRACE.
    pub pools: [Option<PoolScene>; 4],
    /// Allocations with a lower id were live before the scope.
    pub first_id: u64,
    /// The live set now.
    pub live: &'a [Allocation],
    /// Every logged event since the scope started, in device order, ending
    /// at the moment `live` was read.
    pub events: Events<'a>,
}

/// Logged events in device order, in two runs (the halves of a ring).
#[derive(Clone, Copy)]
pub(crate) struct Events<'a>(pub &'a [Event], pub &'a [Event]);

impl<'a> Events<'a> {
    fn iter(self) -> impl Iterator<Item = &'a Event> {
        self.0.iter().chain(self.1)
    }

    /// The events after the first `n`.
    pub(crate) fn after(self, n: usize) -> Events<'a> {
        match self.0.get(n..) {
            Some(front) => Events(front, self.1),
            None => Events(&[], self.1.get(n - self.0.len()..).unwrap_or(&[])),
        }
    }
}

/// One pool's bytes replayed over the events.
struct Replay {
    peak: u64,
    running: u64,
    highest: u64,
    /// Index of the first event after which the pool stood at its peak;
    /// `Some(None)` when it stood there at the start.
    at: Option<Option<usize>>,
    /// Index of the pool's last event.
    last: Option<usize>,
    /// The bytes left the range of a u64: the log cannot be right.
    broken: bool,
}

/// The composition of each pool of the scene at its peak; `None` for a
/// pool the events do not account for. Two passes over the events,
/// whatever the number of pools.
pub(crate) fn compose(s: &Scene<'_>) -> [Option<PeakComposition>; 4] {
    let mut replays = s.pools.each_ref().map(|p| {
        p.as_ref().map(|p| Replay {
            peak: p.peak_per_bank,
            running: p.baseline_per_bank,
            highest: p.baseline_per_bank,
            at: (p.baseline_per_bank == p.peak_per_bank).then_some(None),
            last: None,
            broken: false,
        })
    });
    for (i, e) in s.events.iter().enumerate() {
        let Some(r) = &mut replays[e.buffer_type.index()] else {
            continue;
        };
        let next = if e.alloc {
            r.running.checked_add(e.size_per_bank)
        } else {
            r.running.checked_sub(e.size_per_bank)
        };
        let Some(next) = next else {
            r.broken = true;
            continue;
        };
        r.running = next;
        r.highest = r.highest.max(next);
        if r.at.is_none() && next == r.peak {
            r.at = Some(Some(i));
        }
        r.last = Some(i);
    }
    // The first event after each pool's peak, for the pools whose peak the
    // events account for.
    let from: [Option<usize>; 4] = replays.each_ref().map(|r| {
        let r = r.as_ref().filter(|r| !r.broken && r.highest == r.peak)?;
        Some(r.at?.map_or(0, |i| i + 1))
    });
    // Ids grow in allocation order: everything allocated after a peak has
    // an id at or above the first one allocated after it. Live at the peak
    // is then what is live now or freed later, allocated before.
    let cutoff = from.map(|from| {
        let from = from?;
        Some(
            s.events
                .after(from)
                .iter()
                .find(|e| e.alloc)
                .map_or(u64::MAX, |e| e.id),
        )
    });
    let mut freed: [Vec<&Event>; 4] = Default::default();
    let pending = |t: usize| match (&replays[t], from[t]) {
        (Some(r), Some(from)) => r.last.is_some_and(|last| last >= from),
        _ => false,
    };
    if let Some(lo) = (0..4).filter(|&t| pending(t)).filter_map(|t| from[t]).min() {
        for (i, e) in s.events.after(lo).iter().enumerate() {
            let t = e.buffer_type.index();
            if !e.alloc
                && from[t].is_some_and(|from| lo + i >= from)
                && cutoff[t].is_some_and(|cutoff| e.id < cutoff)
            {
                freed[t].push(e);
            }
        }
    }
    let mut out: [Option<PeakComposition>; 4] = Default::default();
    for (t, freed) in freed.into_iter().enumerate() {
        if let (Some(pool), Some(cutoff)) = (&s.pools[t], cutoff[t]) {
            out[t] = at_peak(s, BufferType::ALL[t], pool, cutoff, freed);
        }
    }
    out
}

/// The allocations of one pool live at its peak: live now or `freed`
/// after it, allocated before `cutoff`; `None` when they do not add up to
/// the peak.
fn at_peak(
    s: &Scene<'_>,
    t: BufferType,
    pool: &PoolScene,
    cutoff: u64,
    freed: Vec<&Event>,
) -> Option<PeakComposition> {
    let mut set: Vec<AtPeak<'_>> = s
        .live
        .iter()
        .filter(|a| a.buffer_type == t && a.id < cutoff)
        .map(AtPeak::Live)
        .chain(freed.into_iter().map(AtPeak::Freed))
        .collect();
    set.sort_unstable_by_key(AtPeak::id);
    // One allocation both live and freed: the log and the live set disagree.
    if set.windows(2).any(|w| w[0].id() == w[1].id()) {
        return None;
    }
    let sum = set
        .iter()
        .try_fold(0u64, |acc, a| acc.checked_add(a.size_per_bank()))?;
    if sum != pool.peak_per_bank {
        return None;
    }
    let mut entries: Vec<PeakEntry> = set
        .iter()
        .map(|a| a.entry(pool.pool_banks, s.first_id))
        .collect();
    entries.sort_by(|a, b| b.size_per_bank.cmp(&a.size_per_bank).then(a.id.cmp(&b.id)));
    Some(PeakComposition {
        buffer_type: t,
        peak_per_bank: pool.peak_per_bank,
        entries,
    })
}

impl PeakComposition {
    /// The text under a failing pool's line: the largest few allocations
    /// and the rest summed.
    pub(crate) fn render(&self, out: &mut String, indent: &str) {
        let n = self.entries.len();
        let plural = if n == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "{indent}at the peak ({} per bank): {} live allocation{plural}",
            format_bytes(self.peak_per_bank),
            format_count(n as u64)
        );
        for e in self.entries.iter().take(PEAK_SHOWN) {
            let label = e.label.as_deref().unwrap_or("(unlabelled)");
            let mut line = format!(
                "{indent}  {:>10}  {label} #{} at {:#x}, {} per bank",
                format_bytes(e.contributed_total),
                e.id,
                e.address,
                format_bytes(e.size_per_bank)
            );
            if e.inherited {
                line.push_str(", inherited");
            }
            if let Some(l) = &e.location {
                let _ = write!(line, " ({l})");
            }
            let _ = writeln!(out, "{line}");
        }
        if n > PEAK_SHOWN {
            let rest: u64 = self.entries[PEAK_SHOWN..]
                .iter()
                .fold(0u64, |acc, e| acc.saturating_add(e.contributed_total));
            let more = n - PEAK_SHOWN;
            let plural = if more == 1 { "" } else { "s" };
            let _ = writeln!(
                out,
                "{indent}  {:>10}  {} more allocation{plural}",
                format_bytes(rest),
                format_count(more as u64)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn alloc(id: u64, per_bank: u64) -> Allocation {
        Allocation {
            id,
            buffer_type: BufferType::L1,
            address: 0x10_0000 + id * 0x1000,
            size: per_bank * 64,
            page_size: per_bank,
            size_per_bank: per_bank,
            num_banks: 64,
            shards: None,
            label: None,
            location: None,
            orphaned: false,
        }
    }

    fn event(alloc_: bool, a: &Allocation) -> Event {
        Event {
            alloc: alloc_,
            buffer_type: a.buffer_type,
            id: a.id,
            address: a.address,
            size: a.size,
            size_per_bank: a.size_per_bank,
            location: None,
            label: a.label.as_deref().map(Arc::from),
        }
    }

    fn scene<'a>(peak: u64, live: &'a [Allocation], events: &'a [Event]) -> Scene<'a> {
        let mut pools: [Option<PoolScene>; 4] = Default::default();
        pools[BufferType::L1.index()] = Some(PoolScene {
            pool_banks: 64,
            baseline_per_bank: 0,
            peak_per_bank: peak,
        });
        Scene {
            pools,
            first_id: 1,
            live,
            events: Events(events, &[]),
        }
    }

    /// The L1 composition of a scene.
    fn compose_l1(s: &Scene<'_>) -> Option<PeakComposition> {
        let [dram, l1, l1_small, trace] = compose(s);
        assert!(dram.is_none() && l1_small.is_none() && trace.is_none());
        l1
    }

    #[test]
    fn the_first_moment_at_the_peak_is_named() {
        let (a, b, c) = (alloc(1, 100), alloc(2, 50), alloc(3, 150));
        // a + b = 150, then b freed, then c alone = 150 as well: the first
        // moment at the peak is a + b.
        let events = [
            event(true, &a),
            event(true, &b),
            event(false, &a),
            event(false, &b),
            event(true, &c),
        ];
        let live = [c.clone()];
        let got = compose_l1(&scene(150, &live, &events)).unwrap();
        let ids: Vec<u64> = got.entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(got.entries[0].contributed_total, 6400);
    }

    #[test]
    fn a_log_in_two_runs_reads_as_one() {
        let (a, b, c) = (alloc(1, 100), alloc(2, 50), alloc(3, 150));
        let events = [
            event(true, &a),
            event(true, &b),
            event(false, &a),
            event(true, &c),
            event(false, &b),
        ];
        let live = [c.clone()];
        let whole = compose_l1(&scene(200, &live, &events)).unwrap();
        let ids: Vec<u64> = whole.entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, [3, 2]);
        for split in 0..=events.len() {
            let (front, back) = events.split_at(split);
            let mut s = scene(200, &live, &events);
            s.events = Events(front, back);
            assert_eq!(compose_l1(&s).as_ref(), Some(&whole), "split at {split}");
            for n in 0..=events.len() + 1 {
                let ids: Vec<u64> = Events(front, back).after(n).iter().map(|e| e.id).collect();
                let want: Vec<u64> = events.iter().skip(n).map(|e| e.id).collect();
                assert_eq!(ids, want, "split at {split}, after {n}");
            }
        }
    }

    #[test]
    fn pools_composed_together_match_a_forward_replay() {
        let mut state = 0x0c0f_fee5_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let types = [BufferType::Dram, BufferType::L1, BufferType::Trace];
        for round in 0..50 {
            let mut live: BTreeMap<u64, Allocation> = BTreeMap::new();
            let mut events = Vec::new();
            let mut running = [0u64; 4];
            let mut peak = [0u64; 4];
            let mut at_peak: [Vec<u64>; 4] = Default::default();
            for id in 1..(20 + next() % 200) {
                if !live.is_empty() && next() % 5 < 2 {
                    let key = *live.keys().nth((next() as usize) % live.len()).unwrap();
                    let a = live.remove(&key).unwrap();
                    running[a.buffer_type.index()] -= a.size_per_bank;
                    events.push(event(false, &a));
                    continue;
                }
                let mut a = alloc(id, 32 * (1 + next() % 8));
                a.buffer_type = types[(next() as usize) % types.len()];
                let t = a.buffer_type.index();
                running[t] += a.size_per_bank;
                events.push(event(true, &a));
                live.insert(id, a);
                if running[t] > peak[t] {
                    peak[t] = running[t];
                    at_peak[t] = live
                        .values()
                        .filter(|a| a.buffer_type.index() == t)
                        .map(|a| a.id)
                        .collect();
                }
            }
            let live: Vec<Allocation> = live.into_values().collect();
            let pool = |t: usize| PoolScene {
                pool_banks: 64,
                baseline_per_bank: 0,
                peak_per_bank: peak[t],
            };
            let mut all = Scene {
                pools: [Some(pool(0)), Some(pool(1)), None, Some(pool(3))],
                first_id: 1,
                live: &live,
                events: Events(&events, &[]),
            };
            let together = compose(&all);
            for t in [0, 1, 3] {
                let mut ids: Vec<u64> = together[t]
                    .as_ref()
                    .unwrap()
                    .entries
                    .iter()
                    .map(|e| e.id)
                    .collect();
                ids.sort_unstable();
                assert_eq!(ids, at_peak[t], "round {round}, pool {t}");
            }
            // Each pool alone gives the same.
            let pools = std::mem::take(&mut all.pools);
            for (t, p) in pools.into_iter().enumerate() {
                all.pools = Default::default();
                all.pools[t] = p;
                assert_eq!(compose(&all)[t], together[t], "round {round}, pool {t}");
            }
        }
    }

    #[test]
    fn a_peak_the_log_does_not_reach_gives_nothing() {
        // The device's peak was made by an allocation the crate did not see.
        let a = alloc(1, 100);
        let events = [event(true, &a), event(false, &a)];
        assert_eq!(compose_l1(&scene(300, &[], &events)), None);
    }

    #[test]
    fn a_live_set_that_does_not_add_up_gives_nothing() {
        // The live set misses an allocation the log says is still live.
        let (a, b) = (alloc(1, 100), alloc(2, 50));
        let events = [event(true, &a), event(true, &b)];
        assert_eq!(
            compose_l1(&scene(150, std::slice::from_ref(&a), &events)),
            None
        );
        // And one it lists that the log never saw adds bytes to the peak.
        let extra = alloc(7, 10);
        let live = [a.clone(), b.clone(), extra];
        assert_eq!(compose_l1(&scene(150, &live, &events)), None);
        // And one the log freed after the peak is listed as live as well.
        let events = [event(true, &a), event(true, &b), event(false, &b)];
        let live = [a.clone(), b.clone()];
        assert_eq!(compose_l1(&scene(150, &live, &events)), None);
        assert!(compose_l1(&scene(150, std::slice::from_ref(&a), &events)).is_some());
    }
}

//! What a pool held at its peak: the live allocations at the moment the
//! pool's per-bank allocated bytes first reached the scope's peak.
//!
//! While a guard with a peak limit is active, a device logs the
//! allocations and frees made through this crate in a bounded ring. A
//! failed peak check replays that log from the guard's start, from the
//! baseline, to find the first event at which the pool reached its peak,
//! and undoes the later events on today's live set. Nothing is attached
//! when the log no longer reaches back to the guard's start or does not
//! account for the peak (allocations the crate did not see).

use std::collections::BTreeMap;
use std::fmt::Write as _;

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

/// One logged event, as the device hands it to [`compose`].
pub(crate) struct Event {
    /// An allocation (`true`) or a free.
    pub alloc: bool,
    /// The allocation made or freed.
    pub allocation: Allocation,
}

/// The inputs of [`compose`] for one pool of one scope.
pub(crate) struct Scene<'a> {
    pub buffer_type: BufferType,
    pub pool_banks: u32,
    pub baseline_per_bank: u64,
    pub peak_per_bank: u64,
    /// Allocations with a lower id were live before the scope.
    pub first_id: u64,
    /// The live set now.
    pub live: &'a [Allocation],
    /// Every logged event since the scope started, in device order, ending
    /// at the moment `live` was read.
    pub events: &'a [Event],
}

/// The composition of the pool at its peak; `None` when the events do not
/// account for the peak.
pub(crate) fn compose(s: &Scene<'_>) -> Option<PeakComposition> {
    let t = s.buffer_type;
    let mut running = s.baseline_per_bank;
    let mut highest = running;
    // Index of the first event after which the pool stood at its peak;
    // `None` when it stood there at the start.
    let mut at: Option<Option<usize>> = (running == s.peak_per_bank).then_some(None);
    for (i, e) in s.events.iter().enumerate() {
        if e.allocation.buffer_type != t {
            continue;
        }
        let per_bank = e.allocation.size_per_bank;
        running = if e.alloc {
            running.checked_add(per_bank)?
        } else {
            running.checked_sub(per_bank)?
        };
        highest = highest.max(running);
        if at.is_none() && running == s.peak_per_bank {
            at = Some(Some(i));
        }
    }
    let at = at?;
    if highest != s.peak_per_bank {
        return None;
    }
    let mut set: BTreeMap<u64, &Allocation> = s
        .live
        .iter()
        .filter(|a| a.buffer_type == t)
        .map(|a| (a.id, a))
        .collect();
    let first_later = at.map_or(0, |i| i + 1);
    for e in s.events[first_later..].iter().rev() {
        if e.allocation.buffer_type != t {
            continue;
        }
        let id = e.allocation.id;
        if e.alloc {
            set.remove(&id)?;
        } else if set.insert(id, &e.allocation).is_some() {
            return None;
        }
    }
    let sum = set
        .values()
        .try_fold(0u64, |acc, a| acc.checked_add(a.size_per_bank))?;
    if sum != s.peak_per_bank {
        return None;
    }
    let mut entries: Vec<PeakEntry> = set
        .values()
        .map(|a| PeakEntry {
            id: a.id,
            label: a.label.clone(),
            address: a.address,
            size: a.size,
            size_per_bank: a.size_per_bank,
            contributed_total: crate::report::total(a.size_per_bank, s.pool_banks),
            location: a.location.clone(),
            inherited: a.id < s.first_id,
        })
        .collect();
    entries.sort_by(|a, b| b.size_per_bank.cmp(&a.size_per_bank).then(a.id.cmp(&b.id)));
    Some(PeakComposition {
        buffer_type: t,
        peak_per_bank: s.peak_per_bank,
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
            allocation: a.clone(),
        }
    }

    fn scene<'a>(peak: u64, live: &'a [Allocation], events: &'a [Event]) -> Scene<'a> {
        Scene {
            buffer_type: BufferType::L1,
            pool_banks: 64,
            baseline_per_bank: 0,
            peak_per_bank: peak,
            first_id: 1,
            live,
            events,
        }
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
        let got = compose(&scene(150, &live, &events)).unwrap();
        let ids: Vec<u64> = got.entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(got.entries[0].contributed_total, 6400);
    }

    #[test]
    fn a_peak_the_log_does_not_reach_gives_nothing() {
        // The device's peak was made by an allocation the crate did not see.
        let a = alloc(1, 100);
        let events = [event(true, &a), event(false, &a)];
        assert_eq!(compose(&scene(300, &[], &events)), None);
    }

    #[test]
    fn a_live_set_that_does_not_add_up_gives_nothing() {
        // The live set misses an allocation the log says is still live.
        let (a, b) = (alloc(1, 100), alloc(2, 50));
        let events = [event(true, &a), event(true, &b)];
        assert_eq!(
            compose(&scene(150, std::slice::from_ref(&a), &events)),
            None
        );
        // And one it lists that the log never saw adds bytes to the peak.
        let extra = alloc(7, 10);
        let live = [a.clone(), b.clone(), extra];
        assert_eq!(compose(&scene(150, &live, &events)), None);
    }
}

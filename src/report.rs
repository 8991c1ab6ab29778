//! What a guarded scope did to device memory: per device and pool, before /
//! after / peak / delta, leaked allocations and budget verdicts. `Display`
//! for people, `Serialize` for JSON and insta snapshots (deterministic: sorted,
//! no timestamps, no host addresses).

use std::fmt::{self, Write as _};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::budget::{BudgetSource, CheckKind};
use crate::cb_failure::ProgramPeak;
use crate::composition::PeakComposition;
use crate::detail::DeviceDetail;
use crate::fragmentation::Fragmentation;
use crate::render::{Level, paint};
use crate::types::{Allocation, BufferType};
use crate::units::{format_bytes, format_count};

/// One budget check and its outcome.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// What was checked.
    pub check: CheckKind,
    /// Whether limit and actual are per bank (else device totals).
    pub per_bank: bool,
    /// The limit, tolerance included.
    pub limit: u64,
    /// The measured value, in the same unit as the limit.
    pub actual: u64,
    /// Whether the check passed.
    pub passed: bool,
    /// Where the limit was set.
    pub source: BudgetSource,
}

impl Verdict {
    /// Share of the limit used (for peak and retained), 0.0 when the limit is 0.
    pub fn usage(&self) -> f64 {
        if self.limit == 0 {
            if self.actual == 0 { 0.0 } else { 1.0 }
        } else {
            self.actual as f64 / self.limit as f64
        }
    }
}

/// What happened in one pool of one device.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolReport {
    /// The pool.
    pub buffer_type: BufferType,
    /// Banks of the pool.
    pub num_banks: u32,
    /// Pool size per bank.
    pub size_per_bank: u64,
    /// Allocated bytes at the start, over all banks.
    pub before_total: u64,
    /// Allocated bytes at the end, over all banks.
    pub after_total: u64,
    /// Highest allocated bytes inside the scope, over all banks.
    pub peak_total: u64,
    /// `after_total - before_total`.
    pub delta_total: i64,
    /// `peak_total - before_total`.
    pub peak_above_baseline_total: u64,
    /// Allocated bytes per bank at the start.
    pub before_per_bank: u64,
    /// Allocated bytes per bank at the end.
    pub after_per_bank: u64,
    /// Highest allocated bytes per bank inside the scope.
    pub peak_per_bank: u64,
    /// Largest free block of one bank at the end.
    pub largest_free_block_after_per_bank: u64,
    /// Bytes per bank of allocations allowed to persist.
    pub persistent_per_bank: u64,
    /// Budget checks of this pool: every limit that was set, and the leak
    /// check (nothing retained) when it failed.
    pub checks: Vec<Verdict>,
    /// The pool's largest free blocks and the allocations that split them,
    /// when its largest-free-block check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragmentation: Option<Fragmentation>,
    /// The allocations live at the pool's peak, when its peak check failed
    /// and the device's allocation log accounts for the peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_composition: Option<PeakComposition>,
}

impl PoolReport {
    /// Whether every check of the pool passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|v| v.passed)
    }

    /// Bytes retained over the baseline, not counting allowed persistent
    /// allocations, over all banks.
    pub fn retained_total(&self) -> u64 {
        total(
            self.after_per_bank
                .saturating_sub(self.before_per_bank)
                .saturating_sub(self.persistent_per_bank),
            self.num_banks,
        )
    }
}

/// A per-bank figure over all banks. Device totals fit in 64 bits (the
/// simulated device refuses a geometry where they would not); this
/// saturates rather than wraps.
pub(crate) fn total(per_bank: u64, banks: u32) -> u64 {
    per_bank.saturating_mul(u64::from(banks))
}

/// `after - before` over all banks, exact up to the `i64` range and
/// saturating beyond it (a device of more than 8 EiB).
pub(crate) fn total_delta(before_per_bank: u64, after_per_bank: u64, banks: u32) -> i64 {
    let delta = (i128::from(after_per_bank) - i128::from(before_per_bank)) * i128::from(banks);
    i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX })
}

/// What happened on one device.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// The device's name.
    pub device: String,
    /// Whether every check on the device passed.
    pub passed: bool,
    /// Allocations that were already live when the scope started.
    pub inherited: u64,
    /// Every pool, in order DRAM, L1, L1_SMALL, TRACE (reading a report
    /// from JSON checks this).
    #[serde(deserialize_with = "four_pools")]
    pub pools: Vec<PoolReport>,
    /// Allocations made in the scope and still live at its end, in
    /// allocation order (when a pool retained more than its budget allows).
    pub leaked: Vec<Allocation>,
    /// Allocations made in the scope, still live, but allowed to persist.
    pub persistent: Vec<Allocation>,
    /// One core's L1 over the programs enqueued in the scope, when any with
    /// circular buffers was (or a per-core limit was set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<CoreReport>,
    /// The timeline and the address maps at the peak, when the guard was
    /// asked to explain itself (the runner does under `--memory-html`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<DeviceDetail>,
}

/// One core's L1 over the programs enqueued in a scope: circular buffers
/// are laid out per core, so every figure is the worst core's, never a sum
/// over cores.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreReport {
    /// Whether a program with circular buffers was enqueued.
    pub enqueued: bool,
    /// Highest CB region of a core.
    pub cb_peak_per_core: u64,
    /// Highest CB region plus the L1 and L1_SMALL buffers of its bank.
    pub l1_peak_per_core: u64,
    /// Least headroom between a CB region's end and the lowest L1 buffer
    /// (or the end of a core's L1), when a program was enqueued.
    pub min_headroom: Option<u64>,
    /// The per-core budget checks.
    pub checks: Vec<Verdict>,
    /// The enqueue that made the CB peak, when a per-core check failed and the
    /// device still remembered it (it keeps its last 1,024 enqueues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_peak: Option<ProgramPeak>,
}

impl CoreReport {
    /// Whether every per-core check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|v| v.passed)
    }
}

impl DeviceReport {
    /// The report of one pool.
    ///
    /// # Panics
    ///
    /// When `pools` lacks the pool. Reports made by a guard and reports
    /// read from JSON always hold the four pools; only one whose `pools`
    /// were edited by hand can lack one.
    #[track_caller]
    pub fn pool(&self, buffer_type: BufferType) -> &PoolReport {
        match self.pools.get(buffer_type.index()) {
            Some(p) if p.buffer_type == buffer_type => p,
            _ => match self.pools.iter().find(|p| p.buffer_type == buffer_type) {
                Some(p) => p,
                None => panic!(
                    "the report of device {} has no {buffer_type} pool: its pools were edited after the report was made",
                    self.device
                ),
            },
        }
    }
}

/// Reads a device's pools, refusing anything but the four in order: the
/// accessors index them by pool.
fn four_pools<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PoolReport>, D::Error> {
    let pools = Vec::<PoolReport>::deserialize(deserializer)?;
    if !pools.iter().map(|p| p.buffer_type).eq(BufferType::ALL) {
        let found: Vec<&str> = pools.iter().map(|p| p.buffer_type.name()).collect();
        return Err(D::Error::custom(format!(
            "a device report lists the pools DRAM, L1, L1_SMALL, TRACE in this order, found [{}]",
            found.join(", ")
        )));
    }
    Ok(pools)
}

/// Reads a report's devices, refusing an empty list: a guard covers at
/// least one device.
fn some_devices<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<DeviceReport>, D::Error> {
    let devices = Vec::<DeviceReport>::deserialize(deserializer)?;
    if devices.is_empty() {
        return Err(D::Error::custom(
            "a memory report lists at least one device, found none",
        ));
    }
    Ok(devices)
}

/// What a guarded scope did to device memory.
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, MemoryGuard, SimDevice, MIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let guard = MemoryGuard::new(&dev).name("leaky");
/// std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048)?);
/// let report = guard.into_report()?;
/// assert!(!report.passed);
/// assert_eq!(report.leaks().count(), 1);
/// assert!(report.to_string().contains("leaked 1 buffer (1.0 MiB DRAM, 88,064 B per bank x 12 banks)"));
/// let json = serde_json::to_string(&report).unwrap();
/// assert!(json.contains("\"passed\":false"));
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// The scope's name (the test's name under the runner).
    pub name: Option<String>,
    /// Where the guard was created.
    pub location: Option<String>,
    /// Whether every check on every device passed.
    pub passed: bool,
    /// Whether the guarded body panicked.
    pub panicked: bool,
    /// One report per device: at least one (reading a report from JSON
    /// checks this).
    #[serde(deserialize_with = "some_devices")]
    pub devices: Vec<DeviceReport>,
}

impl MemoryReport {
    /// The first device's report (the only one for a single device).
    ///
    /// # Panics
    ///
    /// When `devices` is empty. No report made by a guard is (a guard on a
    /// source without devices is [`Error::NoDevice`](crate::Error::NoDevice))
    /// and none read from JSON is (reading refuses it); only a report whose
    /// `devices` were emptied by hand is. `devices.first()` never panics.
    #[track_caller]
    pub fn device(&self) -> &DeviceReport {
        match self.devices.first() {
            Some(device) => device,
            None => panic!(
                "this memory report has no device: its devices were removed after the report was made"
            ),
        }
    }

    /// Every leaked allocation on every device.
    pub fn leaks(&self) -> impl Iterator<Item = &Allocation> {
        self.devices.iter().flat_map(|d| d.leaked.iter())
    }

    /// Every failed check: (device, pool, verdict).
    pub fn failures(&self) -> impl Iterator<Item = (&str, BufferType, &Verdict)> {
        self.devices.iter().flat_map(|d| {
            d.pools.iter().flat_map(move |p| {
                p.checks
                    .iter()
                    .filter(|v| !v.passed)
                    .map(move |v| (d.device.as_str(), p.buffer_type, v))
            })
        })
    }

    /// The report for people, coloured when `color` is on.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        let status = if self.passed {
            paint("passed", Level::Green, color)
        } else {
            paint("FAILED", Level::Red, color)
        };
        let _ = write!(out, "memory check");
        if let Some(name) = &self.name {
            let _ = write!(out, " {name}");
        }
        if let Some(location) = &self.location {
            let _ = write!(out, " at {location}");
        }
        let _ = writeln!(
            out,
            ": {status}{}",
            if self.panicked {
                " (the body panicked)"
            } else {
                ""
            }
        );
        for device in &self.devices {
            render_device(&mut out, device, color);
        }
        out
    }

    /// One line per device: L1 and DRAM peaks (with budgets) and leaked
    /// bytes, as the runner prints after each test.
    pub fn summary_line(&self) -> String {
        self.devices
            .iter()
            .map(|d| {
                let mut parts = Vec::new();
                for t in [BufferType::L1, BufferType::Dram] {
                    let p = d.pool(t);
                    // Against a limit, the figure the limit was checked
                    // against (per bank for a per-bank limit).
                    let figure = match p.checks.iter().find(|v| v.check == CheckKind::Peak) {
                        Some(v) if v.per_bank => format!(
                            "{}/{} per bank",
                            format_bytes(v.actual),
                            format_bytes(v.limit)
                        ),
                        Some(v) => format!("{}/{}", format_bytes(v.actual), format_bytes(v.limit)),
                        None => format_bytes(p.peak_above_baseline_total),
                    };
                    parts.push(format!("{t} peak {figure}"));
                }
                let leaked = d
                    .pools
                    .iter()
                    .fold(0u64, |sum, p| sum.saturating_add(p.retained_total()));
                parts.push(format!("leaked {}", format_bytes(leaked)));
                let line = parts.join("  ");
                if self.devices.len() > 1 {
                    format!("{}: {line}", d.device)
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

fn render_device(out: &mut String, d: &DeviceReport, color: bool) {
    let _ = write!(out, "  device {}", d.device);
    if d.inherited > 0 {
        let plural = if d.inherited == 1 { "" } else { "s" };
        let _ = write!(out, " (inherited {} live allocation{plural})", d.inherited);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "    {:<9}{:>12}{:>12}{:>12}{:>13}  BUDGETS",
        "POOL", "BEFORE", "AFTER", "PEAK", "DELTA"
    );
    for p in d.pools.iter().filter(|p| p.num_banks > 0) {
        let delta = if p.delta_total >= 0 {
            format!("+{}", format_bytes(p.delta_total as u64))
        } else {
            format!("-{}", format_bytes(p.delta_total.unsigned_abs()))
        };
        let checks: Vec<String> = p
            .checks
            .iter()
            .filter(|v| !v.passed || v.source != BudgetSource::Default)
            .map(|v| render_verdict(v, color))
            .collect();
        let line = format!(
            "    {:<9}{:>12}{:>12}{:>12}{:>13}  {}",
            p.buffer_type.name(),
            format_bytes(p.before_total),
            format_bytes(p.after_total),
            format_bytes(p.peak_total),
            delta,
            checks.join("; ")
        );
        let _ = writeln!(out, "{}", line.trim_end());
        if let Some(f) = &p.fragmentation {
            f.render(out, "      ");
        }
        if let Some(c) = &p.peak_composition {
            c.render(out, "      ");
        }
    }
    if let Some(c) = &d.cores {
        let checks: Vec<String> = c.checks.iter().map(|v| render_verdict(v, color)).collect();
        let line = if c.enqueued {
            format!(
                "    per core: CB peak {}, L1 peak {}, least CB headroom {}  {}",
                format_bytes(c.cb_peak_per_core),
                format_bytes(c.l1_peak_per_core),
                c.min_headroom
                    .map(format_bytes)
                    .unwrap_or_else(|| "-".into()),
                checks.join("; ")
            )
        } else {
            format!(
                "    per core: no program with circular buffers enqueued  {}",
                checks.join("; ")
            )
        };
        let _ = writeln!(out, "{}", line.trim_end());
        if let Some(p) = &c.at_peak {
            let over = c
                .checks
                .iter()
                .filter(|v| !v.passed && v.check == CheckKind::CbPeakPerCore)
                .map(|v| v.actual.saturating_sub(v.limit))
                .max();
            let _ = writeln!(
                out,
                "    the CB peak: program {} on core {}, {} B of circular buffers next to {} B of L1 buffers, {} B of headroom:",
                p.program,
                p.core,
                format_count(p.cb_bytes),
                format_count(p.l1_buffers_per_bank),
                format_count(p.headroom)
            );
            for cb in &p.circular_buffers {
                let indices: Vec<String> = cb.indices.iter().map(u8::to_string).collect();
                let _ = writeln!(
                    out,
                    "      CB {} (index {}) on {}: {} B at {:#x}..{:#x}",
                    cb.handle,
                    indices.join(", "),
                    cb.cores,
                    format_count(cb.size),
                    cb.address,
                    cb.address.saturating_add(cb.size)
                );
            }
            if let Some(over) = over {
                let _ = writeln!(
                    out,
                    "    to fit: shrink the circular buffers on core {} by {} B",
                    p.core,
                    format_count(over)
                );
            }
        }
    }
    if !d.leaked.is_empty() {
        let total = d
            .leaked
            .iter()
            .fold(0u64, |sum, a| sum.saturating_add(a.size));
        let plural = if d.leaked.len() == 1 { "" } else { "s" };
        if d.leaked.len() == 1 {
            let _ = writeln!(out, "  leaked 1 buffer {}", describe(&d.leaked[0]));
        } else {
            let _ = writeln!(
                out,
                "  leaked {} buffer{plural} ({} requested):",
                d.leaked.len(),
                format_bytes(total)
            );
            for a in &d.leaked {
                let _ = writeln!(out, "    {}", describe(a));
            }
        }
    }
    if !d.persistent.is_empty() {
        let _ = writeln!(out, "  persistent (allowed, not counted as leaks):");
        for a in &d.persistent {
            let _ = writeln!(out, "    {}", describe(a));
        }
    }
}

/// Both sizes for people; exact byte counts when rounding would make two
/// different values look equal.
fn two_sizes(a: u64, b: u64) -> (String, String) {
    let (fa, fb) = (format_bytes(a), format_bytes(b));
    if fa == fb && a != b {
        (
            format!("{} B", format_count(a)),
            format!("{} B", format_count(b)),
        )
    } else {
        (fa, fb)
    }
}

fn render_verdict(v: &Verdict, color: bool) -> String {
    let text = verdict_text(v);
    if v.passed {
        if v.check.is_usage() {
            paint(&text, Level::of(v.usage()), color)
        } else {
            text
        }
    } else {
        format!(
            "{} {}",
            paint(&text, Level::Red, color),
            paint("FAIL", Level::Red, color)
        )
    }
}

/// A verdict in words, with the source of its limit:
/// `peak 256.0 KiB of 512.0 KiB (50%) [code]`.
pub(crate) fn verdict_text(v: &Verdict) -> String {
    let unit = if v.per_bank { " per bank" } else { "" };
    let (actual, limit) = two_sizes(v.actual, v.limit);
    let text = match v.check {
        CheckKind::Peak => format!("peak {actual} of {limit}{unit} ({:.0}%)", v.usage() * 100.0),
        CheckKind::Retained => format!("retained {actual}{unit}, allowed {limit}"),
        CheckKind::LargestFree => format!("largest free block {actual}{unit}, needs {limit}"),
        CheckKind::CbPeakPerCore => {
            format!(
                "CB peak {actual} of {limit} per core ({:.0}%)",
                v.usage() * 100.0
            )
        }
        CheckKind::L1PeakPerCore => {
            format!(
                "L1 peak {actual} of {limit} per core ({:.0}%)",
                v.usage() * 100.0
            )
        }
        CheckKind::MinCbHeadroom => format!("CB headroom {actual}, needs {limit}"),
    };
    format!("{text} [{}]", v.source)
}

/// `(1.0 MiB DRAM, 88,064 B per bank x 12 banks) at 0x100040, allocated at file:line:col`
fn describe(a: &Allocation) -> String {
    let mut s = format!(
        "({} {}, {} B per bank x {} banks",
        format_bytes(a.size),
        a.buffer_type,
        format_count(a.size_per_bank),
        a.num_banks
    );
    if let Some(shards) = a.shards {
        let over = match a.buffer_type {
            BufferType::Dram => "DRAM banks",
            _ => "cores",
        };
        let _ = write!(s, ", sharded over {shards} {over}");
    }
    let _ = write!(s, ") at {:#x}", a.address);
    if let Some(label) = &a.label {
        let _ = write!(s, ", label {label:?}");
    }
    match &a.location {
        Some(loc) if a.orphaned => {
            let _ = write!(
                s,
                ",\n      kept by TT-Metal after refusing the allocation at {loc}"
            );
        }
        Some(loc) => {
            let _ = write!(s, ",\n      allocated at {loc}");
        }
        None => {
            let _ = write!(s, ", buffer id {}", a.id);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_deltas_saturate_instead_of_wrapping() {
        assert_eq!(total(88_064, 12), 1_056_768);
        assert_eq!(total(u64::MAX / 2, 12), u64::MAX);
        assert_eq!(total_delta(100, 40, 12), -720);
        assert_eq!(total_delta(0, 1 << 62, 12), i64::MAX);
        assert_eq!(total_delta(1 << 62, 0, 12), i64::MIN);
        // Past i64 but exact in i128 on the way: (2^62 - 2^61) x 3 fits.
        assert_eq!(total_delta(1 << 61, 1 << 62, 3), 3 << 61);
    }
}

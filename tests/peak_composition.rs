//! The peak composition: the allocations live at a pool's peak, named in a
//! failing peak check's report.

use tt_memguard::{
    Budget, BufferType, Error, KIB, MemoryGuard, MemoryReport, PeakComposition, SimDevice,
};

fn failed_report(e: Error) -> MemoryReport {
    match e {
        Error::MemoryCheckFailed(report) => *report,
        other => panic!("expected a failed check, got {other}"),
    }
}

fn l1_composition(report: &MemoryReport) -> &PeakComposition {
    report
        .device()
        .pool(BufferType::L1)
        .peak_composition
        .as_ref()
        .expect("a failed L1 peak has a composition")
}

/// Labels of the entries, largest first.
fn labels(c: &PeakComposition) -> Vec<&str> {
    c.entries
        .iter()
        .map(|e| e.label.as_deref().unwrap_or("-"))
        .collect()
}

/// An L1 buffer of `per_bank` bytes in each of the 64 banks of a Wormhole.
#[track_caller]
fn l1(dev: &tt_memguard::Device, label: &str, per_bank: u64) -> tt_memguard::Buffer {
    dev.buffer(BufferType::L1, 64 * per_bank)
        .page_size(per_bank)
        .label(label)
        .allocate()
        .unwrap()
}

#[test]
fn nested_guards_name_their_own_peaks() {
    let dev = SimDevice::wormhole_b0();
    let outer = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("64 KiB"));
    let a = l1(&dev, "a", 8 * KIB);
    let b = l1(&dev, "b", 4 * KIB);
    drop((a, b));
    let inner = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("64 KiB"));
    let c = l1(&dev, "c", 10 * KIB);
    drop(c);
    let inner = failed_report(inner.finish().unwrap_err());
    let outer = failed_report(outer.finish().unwrap_err());
    let ci = l1_composition(&inner);
    assert_eq!((labels(ci), ci.peak_per_bank), (vec!["c"], 10 * KIB));
    assert_eq!(ci.entries[0].contributed_total, 64 * 10 * KIB);
    let co = l1_composition(&outer);
    assert_eq!((labels(co), co.peak_per_bank), (vec!["a", "b"], 12 * KIB));
    assert!(co.entries.iter().all(|e| !e.inherited));
    let text = outer.to_string();
    assert!(
        text.contains("at the peak (12.0 KiB per bank): 2 live allocations"),
        "{text}"
    );
    assert!(text.contains("a #"), "{text}");
    assert!(!text.contains("c #"), "{text}");
}

#[test]
fn display_names_the_largest_five_and_sums_the_rest() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("64 KiB"));
    let sizes = [1, 7, 2, 6, 3, 5, 4];
    let held: Vec<_> = sizes
        .iter()
        .map(|&k| l1(&dev, &format!("k{k}"), k * KIB))
        .collect();
    drop(held);
    let report = failed_report(guard.finish().unwrap_err());
    let c = l1_composition(&report);
    assert_eq!(labels(c), ["k7", "k6", "k5", "k4", "k3", "k2", "k1"]);
    let line = c.entries[0].location.as_ref().unwrap();
    assert!(line.file.ends_with("peak_composition.rs"), "{line}");
    let text = report.to_string();
    for shown in ["k7 #", "k6 #", "k5 #", "k4 #", "k3 #"] {
        assert!(text.contains(shown), "{shown} missing in {text}");
    }
    assert!(!text.contains("k2 #") && !text.contains("k1 #"), "{text}");
    // k2 and k1 summed: 3 KiB per bank over 64 banks.
    assert!(text.contains("192.0 KiB  2 more allocations"), "{text}");
}

#[test]
fn allocations_older_than_the_scope_are_inherited_at_the_peak() {
    let dev = SimDevice::wormhole_b0();
    let old = l1(&dev, "old", 2 * KIB);
    let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("64 KiB"));
    let new = l1(&dev, "new", 3 * KIB);
    // Freed after the peak, in the scope: still part of it.
    drop(old);
    drop(new);
    let report = failed_report(guard.finish().unwrap_err());
    let c = l1_composition(&report);
    assert_eq!(labels(c), ["new", "old"]);
    assert_eq!(
        c.entries.iter().map(|e| e.inherited).collect::<Vec<_>>(),
        [false, true]
    );
    assert!(report.to_string().contains(", inherited"));
}

#[test]
fn passing_reports_carry_no_composition() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("1 MiB").dram_peak("1 MiB"));
    drop(l1(&dev, "small", KIB));
    let report = guard.finish().unwrap();
    assert!(
        report
            .device()
            .pools
            .iter()
            .all(|p| p.peak_composition.is_none())
    );
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("\"peak_composition\""), "{json}");
    assert!(!report.to_string().contains("at the peak"));
}

#[test]
fn only_the_failing_pool_gets_a_composition() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("64 KiB").dram_peak("64 MiB"));
    let d = dev.allocate(BufferType::Dram, 64 * KIB, 2048).unwrap();
    drop((l1(&dev, "big", 4 * KIB), d));
    let report = failed_report(guard.finish().unwrap_err());
    assert!(
        report
            .device()
            .pool(BufferType::Dram)
            .peak_composition
            .is_none()
    );
    assert_eq!(labels(l1_composition(&report)), ["big"]);
}

fn scenario() -> String {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("64 KiB"));
    let a = l1(&dev, "a", 2 * KIB);
    let b = l1(&dev, "b", 2 * KIB);
    drop(a);
    let c = l1(&dev, "c", KIB);
    drop((b, c));
    let report = failed_report(guard.finish().unwrap_err());
    serde_json::to_string_pretty(&report.device().pool(BufferType::L1)).unwrap()
}

#[test]
fn json_carries_the_composition_deterministically() {
    let first = scenario();
    assert_eq!(first, scenario());
    let pool: tt_memguard::PoolReport = serde_json::from_str(&first).unwrap();
    let c = pool.peak_composition.unwrap();
    // Equal sizes: the older first.
    assert_eq!(labels(&c), ["a", "b"]);
    assert!(c.entries[0].id < c.entries[1].id);
}

#[test]
fn nothing_is_attached_when_the_log_no_longer_reaches_the_scope_start() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("64 KiB"));
    drop(l1(&dev, "peak", 8 * KIB));
    // More events than the log keeps (65,536).
    for _ in 0..33_000 {
        drop(dev.allocate(BufferType::Dram, 2048, 2048).unwrap());
    }
    let report = failed_report(guard.finish().unwrap_err());
    assert!(
        report
            .device()
            .pool(BufferType::L1)
            .peak_composition
            .is_none()
    );
}

#[test]
fn a_forgotten_guard_leaves_later_compositions_right() {
    let dev = SimDevice::wormhole_b0();
    std::mem::forget(MemoryGuard::new(&dev).budget(Budget::new().l1_peak("64 KiB")));
    drop(l1(&dev, "before", 6 * KIB));
    // A budget given up front, through the options.
    let options = tt_memguard::GuardOptions::new().budget(Budget::new().l1_peak("64 KiB"));
    let guard = MemoryGuard::with_options(&dev, options).unwrap();
    let x = l1(&dev, "x", 2 * KIB);
    let y = l1(&dev, "y", 3 * KIB);
    drop((x, y));
    let report = failed_report(guard.finish().unwrap_err());
    assert_eq!(labels(l1_composition(&report)), ["y", "x"]);
}

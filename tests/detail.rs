//! The detail of a guard that explains itself: the timeline of allocated
//! bytes per pool, the bank maps at every pool's peak, and the enqueue with
//! the largest CB region.

mod common;

use tt_memguard::{
    Budget, BufferType, Device, DeviceDetail, DeviceGroup, DeviceReport, GuardOptions, KIB,
    MemoryGuard, MemoryReport, PeakComposition, Preset, SimDevice, TIMELINE_POINTS, Timeline,
    check,
};

/// An L1 buffer of `per_bank` bytes in each of the 64 banks of a Wormhole.
#[track_caller]
fn l1(dev: &Device, label: &str, per_bank: u64) -> tt_memguard::Buffer {
    dev.buffer(BufferType::L1, 64 * per_bank)
        .page_size(per_bank)
        .label(label)
        .allocate()
        .unwrap()
}

/// A DRAM buffer of `per_bank` bytes in each of the 12 banks of a Wormhole.
#[track_caller]
fn dram(dev: &Device, label: &str, per_bank: u64) -> tt_memguard::Buffer {
    dev.buffer(BufferType::Dram, 12 * per_bank)
        .page_size(per_bank)
        .label(label)
        .allocate()
        .unwrap()
}

fn detail(report: &DeviceReport) -> &DeviceDetail {
    report
        .detail
        .as_ref()
        .expect("an explaining guard attaches its detail")
}

fn labels(c: &PeakComposition) -> Vec<&str> {
    c.entries
        .iter()
        .map(|e| e.label.as_deref().unwrap_or("-"))
        .collect()
}

fn map_labels(d: &DeviceDetail, t: BufferType) -> Vec<&str> {
    labels(
        d.map(t)
            .and_then(|m| m.at_peak.as_ref())
            .expect("the pool's peak is mapped"),
    )
}

/// Everything a timeline promises about a device's report whose
/// allocations all went through this crate.
fn check_timeline(report: &DeviceReport, events: u64) {
    let t = &detail(report).timeline;
    assert_eq!(t.events, events, "{}", report.device);
    assert!(t.points.len() <= TIMELINE_POINTS);
    assert!(t.stride.is_power_of_two());
    for (i, p) in report.pools.iter().enumerate() {
        assert_eq!(t.start_per_bank[i], p.before_per_bank, "{}", p.buffer_type);
        let highest = t.points.iter().map(|q| q.high_per_bank[i]).max();
        if p.peak_per_bank > t.start_per_bank[i] {
            assert_eq!(highest, Some(p.peak_per_bank), "{}", p.buffer_type);
        } else {
            // The scope never went above its start: its peak is the start.
            assert_eq!(p.peak_per_bank, t.start_per_bank[i], "{}", p.buffer_type);
            assert!(highest.is_none_or(|h| h <= p.peak_per_bank));
        }
        let end = t
            .points
            .last()
            .map_or(t.start_per_bank[i], |q| q.end_per_bank[i]);
        assert_eq!(end, p.after_per_bank, "{}", p.buffer_type);
        for q in &t.points {
            assert!(q.low_per_bank[i] <= q.end_per_bank[i]);
            assert!(q.end_per_bank[i] <= q.high_per_bank[i]);
        }
    }
    let covered: u64 = t
        .points
        .iter()
        .map(|q| q.last_event - q.first_event + 1)
        .sum();
    assert_eq!(covered, events);
}

#[test]
fn nested_guards_map_their_own_peaks() {
    let dev = SimDevice::wormhole_b0();
    let outer = MemoryGuard::new(&dev).explain(true);
    let a = l1(&dev, "a", 8 * KIB);
    let b = l1(&dev, "b", 4 * KIB);
    let w = dram(&dev, "w", 64 * KIB);
    drop((a, b));
    let inner = MemoryGuard::with_options(&dev, GuardOptions::new().explain(true)).unwrap();
    let c = l1(&dev, "c", 10 * KIB);
    drop((c, w));
    let inner = inner.finish().unwrap();
    let outer = outer.finish().unwrap();

    let (di, d_o) = (detail(inner.device()), detail(outer.device()));
    assert_eq!(map_labels(di, BufferType::L1), ["c"]);
    assert_eq!(map_labels(d_o, BufferType::L1), ["a", "b"]);
    // The inner scope started with `w` live: its DRAM peak is the baseline.
    let w_inner = &di.map(BufferType::Dram).unwrap().at_peak.as_ref().unwrap();
    assert_eq!(labels(w_inner), ["w"]);
    assert!(w_inner.entries[0].inherited);
    assert_eq!(map_labels(d_o, BufferType::Dram), ["w"]);
    assert!(
        !d_o.map(BufferType::Dram)
            .unwrap()
            .at_peak
            .as_ref()
            .unwrap()
            .entries[0]
            .inherited
    );
    // Every pool with banks has a map, drawn from the end snapshot.
    let after = dev.snapshot().unwrap();
    for m in &d_o.maps {
        let stats = after.pool(m.buffer_type);
        assert!(stats.num_banks > 0);
        assert_eq!(
            (m.base_address, m.size_per_bank),
            (stats.base_address, stats.size_per_bank)
        );
        assert!(m.segments().is_some(), "{}", m.buffer_type);
    }
    let with_banks = BufferType::ALL
        .iter()
        .filter(|&&t| after.pool(t).num_banks > 0)
        .count();
    assert_eq!(d_o.maps.len(), with_banks);
    // Passing checks keep no composition in the pool reports.
    assert!(
        outer
            .device()
            .pools
            .iter()
            .all(|p| p.peak_composition.is_none())
    );

    check_timeline(inner.device(), 3);
    check_timeline(outer.device(), 8);
    assert_eq!(d_o.timeline.points[1].end_per_bank[1], 12 * KIB);
    assert!(di.circular_buffers.is_none() && d_o.circular_buffers.is_none());
}

#[test]
fn guards_without_explain_attach_nothing() {
    let dev = SimDevice::wormhole_b0();
    let plain = MemoryGuard::new(&dev);
    let off = MemoryGuard::new(&dev).explain(true).explain(false);
    drop(l1(&dev, "a", KIB));
    assert_eq!(plain.finish().unwrap().device().detail, None);
    assert_eq!(off.finish().unwrap().device().detail, None);
    let (_, report) = check(&dev, GuardOptions::new().explain(true), || {
        drop(l1(&dev, "b", KIB))
    })
    .unwrap();
    check_timeline(report.device(), 2);
}

#[test]
fn failed_peak_checks_keep_their_composition_next_to_the_maps() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev)
        .budget(Budget::new().l1_peak("64 KiB"))
        .explain(true);
    drop(l1(&dev, "big", 4 * KIB));
    drop(dram(&dev, "d", KIB));
    let report = guard.into_report().unwrap();
    let d = report.device();
    let l1_pool = d.pool(BufferType::L1);
    assert_eq!(
        l1_pool.peak_composition.as_ref(),
        detail(d).map(BufferType::L1).unwrap().at_peak.as_ref()
    );
    // DRAM passed (no limit): no composition in its pool report, but mapped.
    assert!(d.pool(BufferType::Dram).peak_composition.is_none());
    assert_eq!(map_labels(detail(d), BufferType::Dram), ["d"]);
}

#[test]
fn the_timeline_stays_bounded_across_the_merges() {
    // (allocate/free pairs, allocations kept at the end) -> events, stride
    for (pairs, kept, stride) in [(256, 0, 1), (256, 1, 2), (5_000, 3, 32)] {
        let dev = SimDevice::wormhole_b0();
        let guard = MemoryGuard::new(&dev).explain(true);
        for i in 0..pairs {
            drop(l1(&dev, "t", 2 * KIB * (1 + i % 7)));
        }
        let held: Vec<_> = (0..kept).map(|_| dram(&dev, "k", KIB)).collect();
        let report = guard.into_report().unwrap();
        let events = 2 * pairs + kept;
        check_timeline(report.device(), events);
        let t = &detail(report.device()).timeline;
        assert_eq!(t.stride, stride, "{events} events");
        assert_eq!(t.points.len() as u64, events.div_ceil(stride));
        drop(held);
    }
}

#[test]
fn a_forgotten_guard_does_not_disturb_the_next() {
    let dev = SimDevice::wormhole_b0();
    std::mem::forget(MemoryGuard::new(&dev).explain(true));
    for _ in 0..2_000 {
        drop(l1(&dev, "x", KIB));
    }
    let guard = MemoryGuard::new(&dev).explain(true);
    drop(l1(&dev, "y", 3 * KIB));
    let report = guard.finish().unwrap();
    check_timeline(report.device(), 2);
    assert_eq!(map_labels(detail(report.device()), BufferType::L1), ["y"]);
}

#[test]
fn every_device_of_a_group_has_its_own_detail() {
    let group = DeviceGroup::sim(Preset::WormholeN300, 2).unwrap();
    let guard = MemoryGuard::new(&group).explain(true);
    let (d0, d1) = (group.device(0), group.device(1));
    let a = l1(d0, "a0", 2 * KIB);
    drop(l1(d1, "b1", 6 * KIB));
    drop(l1(d1, "c1", 4 * KIB));
    drop(a);
    let report = guard.finish().unwrap();
    assert_eq!(report.devices.len(), 2);
    check_timeline(&report.devices[0], 2);
    check_timeline(&report.devices[1], 4);
    assert_eq!(
        map_labels(detail(&report.devices[0]), BufferType::L1),
        ["a0"]
    );
    assert_eq!(
        map_labels(detail(&report.devices[1]), BufferType::L1),
        ["b1"]
    );
}

#[test]
fn a_program_in_the_scope_names_its_cb_peak() {
    let dev = SimDevice::wormhole_b0();
    let mut before = common::example_program(&dev);
    dev.enqueue(&mut before).unwrap();
    let guard = MemoryGuard::new(&dev).explain(true);
    let mut program = common::example_program(&dev);
    dev.enqueue(&mut program).unwrap();
    let report = guard.finish().unwrap();
    let cb = detail(report.device())
        .circular_buffers
        .as_ref()
        .expect("a program with CBs ran in the scope");
    assert_eq!(cb.program, program.id());
    assert_eq!(
        Some(cb.cb_bytes),
        report.device().cores.as_ref().map(|c| c.cb_peak_per_core)
    );
    // The earlier program is outside the scope.
    assert_ne!(before.id(), program.id());
}

/// One scenario on a fresh device, with or without explain.
fn scenario(explain: bool) -> MemoryReport {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev)
        .budget(Budget::new().l1_peak("16 KiB"))
        .explain(explain);
    let keep = dram(&dev, "kept", 2 * KIB);
    let a = l1(&dev, "a", 12 * KIB);
    drop(l1(&dev, "b", 8 * KIB));
    drop(a);
    let mut program = common::example_program(&dev);
    dev.enqueue(&mut program).unwrap();
    std::mem::forget(keep);
    guard.into_report().unwrap()
}

#[test]
fn identical_runs_give_identical_json() {
    let (one, two) = (scenario(true), scenario(true));
    let json = serde_json::to_string_pretty(&one).unwrap();
    assert_eq!(json, serde_json::to_string_pretty(&two).unwrap());
    assert!(json.contains("\"detail\""));
    let back: MemoryReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, one);
    let d = detail(back.device());
    assert_eq!(d.timeline.events, 5);
    assert!(d.circular_buffers.is_some());
}

#[test]
fn explain_changes_neither_the_text_nor_the_verdicts() {
    let (with, without) = (scenario(true), scenario(false));
    assert!(!with.passed);
    assert_eq!(with.to_string(), without.to_string());
    let json = serde_json::to_string(&without).unwrap();
    assert!(!json.contains("\"detail\""), "{json}");
    let mut stripped = with.clone();
    stripped.devices[0].detail = None;
    assert_eq!(stripped, without);
}

#[test]
fn a_report_mid_scope_has_the_timeline_so_far() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).explain(true);
    let a = l1(&dev, "a", KIB);
    let mid = guard.report().unwrap();
    check_timeline(mid.device(), 1);
    drop(a);
    let end = guard.finish().unwrap();
    check_timeline(end.device(), 2);
    let t: &Timeline = &detail(end.device()).timeline;
    assert_eq!(t.points[0], detail(mid.device()).timeline.points[0]);
}

/// The position of a pool in the per-pool arrays.
fn pool_index(t: BufferType) -> usize {
    BufferType::ALL.iter().position(|&u| u == t).unwrap()
}

/// High, low and end per pool of one point.
type Point = ([u64; 4], [u64; 4], [u64; 4]);

/// The timeline the long way: every value after every event, cut into runs
/// of the smallest power-of-two stride giving at most TIMELINE_POINTS.
fn naive(series: &[[u64; 4]]) -> (u64, Vec<Point>) {
    let mut stride = 1;
    while series.len().div_ceil(stride) > TIMELINE_POINTS {
        stride *= 2;
    }
    let points = series
        .chunks(stride)
        .map(|run| {
            let high = std::array::from_fn(|k| run.iter().map(|v| v[k]).max().unwrap());
            let low = std::array::from_fn(|k| run.iter().map(|v| v[k]).min().unwrap());
            (high, low, *run.last().unwrap())
        })
        .collect();
    (stride as u64, points)
}

#[test]
fn random_scopes_match_the_full_series() {
    let mut seed = 0x7e11_u64;
    for round in 0..6 {
        let dev = SimDevice::wormhole_b0();
        // Something live before the scope: the timeline starts from it.
        let _before = l1(&dev, "before", 2 * KIB);
        let guard = MemoryGuard::new(&dev).explain(true);
        let start = dev.snapshot().unwrap();
        assert_eq!(
            detail(guard.report().unwrap().device())
                .timeline
                .start_per_bank,
            BufferType::ALL.map(|t| start.pool(t).allocated_per_bank)
        );
        let mut now = BufferType::ALL.map(|t| start.pool(t).allocated_per_bank);
        let mut series = Vec::new();
        let mut held: Vec<tt_memguard::Buffer> = Vec::new();
        let events = 300 + (common::splitmix64(&mut seed) % 1500) as usize;
        while series.len() < events {
            let r = common::splitmix64(&mut seed);
            if !held.is_empty() && (r.is_multiple_of(3) || held.len() > 40) {
                let b = held.swap_remove((r >> 8) as usize % held.len());
                now[pool_index(b.buffer_type())] -= b.size_per_bank();
                drop(b);
            } else {
                let per_bank = 32 * (1 + (r >> 16) % 64);
                let b = if r.is_multiple_of(2) {
                    l1(&dev, "r", per_bank)
                } else {
                    dram(&dev, "r", per_bank)
                };
                now[pool_index(b.buffer_type())] += b.size_per_bank();
                held.push(b);
            }
            series.push(now);
        }
        let report = guard.into_report().unwrap();
        let t = &detail(report.device()).timeline;
        let (stride, points) = naive(&series);
        assert_eq!(
            (t.events, t.stride),
            (events as u64, stride),
            "round {round}"
        );
        let got: Vec<_> = t
            .points
            .iter()
            .map(|p| (p.high_per_bank, p.low_per_bank, p.end_per_bank))
            .collect();
        assert_eq!(got, points, "round {round}");
        check_timeline(report.device(), events as u64);
        drop(held);
    }
}

//! Unit tests of the page: escaping, order, colours, plots, maps, size.

use super::plot::{COLUMNS, axis, columns};
use super::*;
use crate::cb_failure::{CircularBufferPlacement, ProgramPeak};
use crate::composition::{PeakComposition, PeakEntry};
use crate::cores::CoreCoord;
use crate::detail::{BankMap, Timeline};
use crate::detail::{TIMELINE_POINTS, TimelinePoint};
use crate::harness::TestRecord;
use crate::types::SourceLocation;
use crate::units::KIB;

const L1_BASE: u64 = 0x16dc0;
const L1_SIZE: u64 = 1_369_664 - 64 * KIB;

fn verdict(limit: u64, actual: u64) -> Verdict {
    Verdict {
        check: CheckKind::Peak,
        per_bank: false,
        limit,
        actual,
        passed: actual <= limit,
        source: BudgetSource::Code,
    }
}

fn pool(
    t: BufferType,
    banks: u32,
    size: u64,
    peak_per_bank: u64,
    checks: Vec<Verdict>,
) -> PoolReport {
    PoolReport {
        buffer_type: t,
        num_banks: banks,
        size_per_bank: size,
        before_total: 0,
        after_total: 0,
        peak_total: peak_per_bank * u64::from(banks),
        delta_total: 0,
        peak_above_baseline_total: peak_per_bank * u64::from(banks),
        before_per_bank: 0,
        after_per_bank: 0,
        peak_per_bank,
        largest_free_block_after_per_bank: size,
        persistent_per_bank: 0,
        checks,
        fragmentation: None,
        peak_composition: None,
    }
}

fn entry(id: u64, label: &str, address: u64, size_per_bank: u64) -> PeakEntry {
    PeakEntry {
        id,
        label: Some(label.to_string()),
        address,
        size: size_per_bank * 64,
        size_per_bank,
        contributed_total: size_per_bank * 64,
        location: Some(SourceLocation {
            file: "tests/kernels.rs".into(),
            line: 12,
            column: 5,
        }),
        inherited: false,
    }
}

fn map(t: BufferType, base: u64, size: u64, entries: Vec<PeakEntry>) -> BankMap {
    BankMap {
        buffer_type: t,
        base_address: base,
        size_per_bank: size,
        at_peak: Some(PeakComposition {
            buffer_type: t,
            peak_per_bank: entries.iter().map(|e| e.size_per_bank).sum(),
            entries,
        }),
    }
}

/// A timeline of L1 rising by `step` per event to `n` events, then
/// back to 0 at the last.
fn ramp(n: u64, step: u64) -> Timeline {
    let stride = n.div_ceil(TIMELINE_POINTS as u64).next_power_of_two();
    let value = |e: u64| if e == n { 0 } else { e * step };
    let points = (1..=n)
        .step_by(stride as usize)
        .map(|first| {
            let last = (first + stride - 1).min(n);
            let values: Vec<u64> = (first..=last).map(value).collect();
            let at = |v: u64| [0, v, 0, 0];
            TimelinePoint {
                first_event: first,
                last_event: last,
                high_per_bank: at(*values.iter().max().unwrap()),
                low_per_bank: at(*values.iter().min().unwrap()),
                end_per_bank: at(value(last)),
            }
        })
        .collect();
    Timeline {
        events: n,
        stride,
        start_per_bank: [0; 4],
        points,
    }
}

/// A device report: L1 peak `l1_peak` per bank of 64 banks against a
/// 1 MiB total limit, with detail when `detail`.
fn device(l1_peak: u64, label: &str, detail: bool) -> DeviceReport {
    let l1_limit = 64 * 16 * KIB;
    let pools = vec![
        pool(BufferType::Dram, 12, 1 << 30, 0, vec![]),
        pool(
            BufferType::L1,
            64,
            L1_SIZE,
            l1_peak,
            vec![verdict(l1_limit, l1_peak * 64)],
        ),
        pool(BufferType::L1Small, 64, 64 * KIB, 0, vec![]),
        pool(BufferType::Trace, 0, 0, 0, vec![]),
    ];
    let top = L1_BASE + L1_SIZE;
    let detail = detail.then(|| DeviceDetail {
        timeline: ramp(4, l1_peak / 3),
        maps: vec![
            map(BufferType::Dram, 0x40, 1 << 30, vec![]),
            map(
                BufferType::L1,
                L1_BASE,
                L1_SIZE,
                vec![entry(7, label, top - l1_peak, l1_peak)],
            ),
            map(BufferType::L1Small, top, 64 * KIB, vec![]),
        ],
        circular_buffers: Some(ProgramPeak {
            program: 1,
            core: CoreCoord::new(0, 0),
            cb_bytes: 96 * KIB,
            l1_buffers_per_bank: l1_peak,
            headroom: L1_SIZE - 96 * KIB - l1_peak,
            circular_buffers: vec![
                CircularBufferPlacement {
                    handle: 0,
                    indices: vec![0],
                    size: 64 * KIB,
                    address: L1_BASE,
                    cores: "[0-0 - 7-7]".into(),
                },
                CircularBufferPlacement {
                    handle: 1,
                    indices: vec![16],
                    size: 32 * KIB,
                    address: L1_BASE + 64 * KIB,
                    cores: "[0-0 - 7-7]".into(),
                },
            ],
        }),
    });
    DeviceReport {
        device: "wormhole_b0-0".into(),
        passed: l1_peak * 64 <= l1_limit,
        inherited: 0,
        pools,
        leaked: vec![],
        persistent: vec![],
        cores: None,
        detail,
    }
}

fn record(name: &str, l1_peak: u64, label: &str, detail: bool) -> TestRecord {
    let d = device(l1_peak, label, detail);
    let passed = d.passed;
    TestRecord {
        name: name.into(),
        binary: "kernels".into(),
        device: "sim:wormhole_b0".into(),
        status: if passed {
            TestStatus::Passed
        } else {
            TestStatus::Failed
        },
        error: None,
        memory: Some(MemoryReport {
            name: Some(name.into()),
            location: None,
            passed,
            panicked: false,
            devices: vec![d],
        }),
    }
}

fn run(tests: Vec<TestRecord>) -> RunReport {
    RunReport::new(None, tests)
}

/// The body of test section `name`.
fn section_of<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page
        .find(&format!("<span class=\"name\">{name}</span>"))
        .unwrap_or_else(|| panic!("no section {name}"));
    let end = page[start..].find("</section>").unwrap() + start;
    &page[start..end]
}

#[test]
fn user_strings_are_escaped() {
    let evil = "<script>alert(\"x\")</script> & 'quotes'";
    let mut r = record(evil, 8 * KIB, evil, true);
    r.error = Some(format!("panicked: {evil}"));
    r.status = TestStatus::Failed;
    let page = render(&run(vec![r]));
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("'quotes'"));
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;";
    // The name (table, section), the error, and the block's label and title.
    assert!(page.matches(escaped).count() >= 4, "{page}");
    // The page's own two scripts only.
    assert_eq!(page.matches("<script>").count(), 2);
    assert_eq!(Esc("a\u{0}b\nc").to_string(), "a\u{FFFD}b\nc");
}

#[test]
fn failing_tests_come_first_then_by_name() {
    let page = render(&run(vec![
        record("b_ok", 4 * KIB, "x", false),
        record("z_over", 20 * KIB, "x", false),
        record("a_ok", 4 * KIB, "x", false),
        record("c_over", 20 * KIB, "x", false),
    ]));
    let order: Vec<usize> = ["c_over", "z_over", "a_ok", "b_ok"]
        .iter()
        .map(|n| {
            page.find(&format!("<span class=\"name\">{n}</span>"))
                .unwrap()
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    let rows: Vec<usize> = ["c_over", "z_over", "a_ok", "b_ok"]
        .iter()
        .map(|n| page.find(&format!("\">{n}</a>")).unwrap())
        .collect();
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
    assert!(page.contains("<title>memory report: 2 of 4 tests failed</title>"));
    assert!(page.contains("data-tests=\"4\""));
}

#[test]
fn colours_follow_the_share_of_the_limit() {
    // 1 MiB over 64 banks is 16 KiB per bank: 11 KiB is 69 %, 13 KiB
    // 81 %, 15 KiB 94 %, 17 KiB over.
    for (peak, level) in [(11, "green"), (13, "yellow"), (15, "red"), (17, "red")] {
        let page = render(&run(vec![record("t", peak * KIB, "x", true)]));
        let section = section_of(&page, "t");
        assert!(
            section.contains(&format!("<span class=\"chip {level}\">peak ")),
            "{peak} KiB: {section}"
        );
        assert!(
            section.contains(&format!("<path class=\"band {level}\"")),
            "{peak}"
        );
        assert!(
            page.contains(&format!("<td class=\"num {level}\">")),
            "{peak}"
        );
        assert_eq!(section.contains(" FAIL</span>"), peak == 17);
    }
}

#[test]
fn one_plot_per_used_pool_with_the_limit_line() {
    let page = render(&run(vec![record("t", 8 * KIB, "x", true)]));
    let section = section_of(&page, "t");
    // L1 only: DRAM, L1_SMALL and TRACE stayed at 0.
    assert_eq!(section.matches("<figure class=\"plot\">").count(), 1);
    assert!(section.contains("<b>L1</b> allocated per bank"));
    // The total limit of 1 MiB over 64 banks: 16 KiB per bank, at 16 of
    // the axis's 24 KiB (top 10, height 130).
    assert!(section.contains("<g class=\"limit\">"), "{section}");
    assert!(section.contains("limit 1.0 MiB</text>"), "{section}");
    assert!(section.contains("y1=\"53.3\" y2=\"53.3\""), "{section}");
    // Without a limit, no line.
    let mut r = record("t", 8 * KIB, "x", true);
    let memory = r.memory.as_mut().unwrap();
    memory.devices[0].pools[1].checks.clear();
    let page = render(&run(vec![r]));
    assert!(!page.contains("<g class=\"limit\">"));
    assert!(page.contains("<path class=\"band plain\""));
    // A DRAM allocation adds its plot.
    let mut r = record("t", 8 * KIB, "x", true);
    let d = &mut r.memory.as_mut().unwrap().devices[0];
    d.pools[0].peak_per_bank = 4096;
    let page = render(&run(vec![r]));
    assert_eq!(page.matches("<figure class=\"plot\">").count(), 2);
    assert!(page.contains("<b>DRAM</b> allocated per bank"));
}

#[test]
fn bank_maps_show_blocks_carve_outs_and_circular_buffers() {
    let mut r = record("t", 8 * KIB, "x", true);
    let top = L1_BASE + L1_SIZE;
    let detail = r.memory.as_mut().unwrap().devices[0]
        .detail
        .as_mut()
        .unwrap();
    detail.maps[1] = map(
        BufferType::L1,
        L1_BASE,
        L1_SIZE,
        vec![entry(7, "weights", top - 256 * KIB, 256 * KIB)],
    );
    let page = render(&run(vec![r]));
    let section = section_of(&page, "t");
    assert_eq!(
        section.matches("<figure class=\"map\">").count(),
        1,
        "L1 only"
    );
    assert!(section.contains("<rect class=\"blk\""));
    let title = format!(
        "weights #7: 256.0 KiB per bank at {:#x}..{top:#x} (16.0 MiB requested, 16.0 MiB of the pool&#39;s peak), allocated at tests/kernels.rs:12:5",
        top - 256 * KIB
    );
    assert!(section.contains(&title), "{section}");
    assert!(section.contains(">weights</text>"));
    assert!(
        section.contains("<rect class=\"cofree\""),
        "L1_SMALL at the top"
    );
    assert!(section.contains("<line class=\"edge\""));
    assert!(section.contains("<rect class=\"cb\""));
    assert!(section.contains("CB 1 (index 16) on [0-0 - 7-7]: 32.0 KiB at 0x26dc0..0x2edc0"));
    // Free gaps are drawn and titled.
    assert!(section.contains("<rect class=\"free\""));
    // The CB region sits at the bottom: left of the buffer.
    let cb = section
        .find("<rect class=\"cb\" x=\"4\"")
        .expect("at the left edge");
    assert!(cb > 0);
}

#[test]
fn small_allocations_in_a_large_bank_get_a_zoomed_bar() {
    let mut r = record("t", 8 * KIB, "x", true);
    let d = &mut r.memory.as_mut().unwrap().devices[0];
    d.pools[0].peak_per_bank = 88 * KIB;
    let detail = d.detail.as_mut().unwrap();
    detail.maps[0] = map(
        BufferType::Dram,
        0x40,
        1 << 30,
        vec![entry(3, "w", 0x40, 88 * KIB)],
    );
    let page = render(&run(vec![r]));
    assert!(page.contains("<b>DRAM bank</b>"));
    let end = 0x40 + 88 * KIB + 88 * KIB / 20 + 1;
    assert!(
        page.contains(&format!("zoomed on the allocations, 0x40..{end:#x}:")),
        "{page}"
    );
}

#[test]
fn the_same_report_gives_the_same_bytes() {
    let tests = || {
        vec![
            record("b", 8 * KIB, "x", true),
            record("a", 20 * KIB, "y", true),
        ]
    };
    let page = render(&run(tests()));
    assert_eq!(page, render(&run(tests())));
    let mut reversed = tests();
    reversed.reverse();
    assert_eq!(page, render(&run(reversed)));
}

#[test]
fn a_report_without_detail_still_renders() {
    let page = render(&run(vec![
        record("plain", 8 * KIB, "x", false),
        record("over", 20 * KIB, "x", false),
    ]));
    assert!(page.contains("no timeline recorded"));
    assert!(!page.contains("<svg"));
    assert!(
        page.contains("peak 1.2 MiB of 1.0 MiB (125%) [code] FAIL"),
        "{page}"
    );
    assert!(page.contains("the report as text"));
    let empty = render(&RunReport::default());
    assert!(empty.contains("no tests") && empty.contains("data-tests=\"0\""));
    // A test that never ran on a device.
    let mut r = record("nodev", 8 * KIB, "x", false);
    r.memory = None;
    r.error = Some("cannot open the test's device".into());
    let page = render(&run(vec![r]));
    assert!(page.contains("memory not measured"));
}

#[test]
fn plots_are_drawn_for_failures_and_the_largest_passing_peaks() {
    let mut tests: Vec<TestRecord> = (0..DRAWN_PASSING as u64 + 5)
        .map(|i| record(&format!("p{i:03}"), (i % 10 + 1) * KIB, "x", true))
        .collect();
    tests.push(record("over", 20 * KIB, "x", true));
    let page = render(&run(tests));
    assert!(section_of(&page, "over").contains("<svg"));
    // The five smallest peaks (1 KiB) of the first names are left out.
    let left_out: Vec<String> = (0..DRAWN_PASSING as u64 + 5)
        .map(|i| format!("p{i:03}"))
        .filter(|n| !section_of(&page, n).contains("<svg"))
        .collect();
    assert_eq!(left_out.len(), 5, "{left_out:?}");
    assert!(page.contains("plots not drawn"));
}

#[test]
fn long_timelines_fit_in_the_columns() {
    let t = ramp(10_000, 1);
    assert!(t.points.len() <= TIMELINE_POINTS);
    let cols = columns(&t, 1);
    assert_eq!(cols.len(), COLUMNS as usize);
    assert_eq!(cols.iter().map(|c| c.high).max(), Some(9_999));
    assert_eq!(cols.last().unwrap().end, 0);
    assert_eq!(cols[0].low, 0);
    // Three events: four states, one column each.
    let cols = columns(&ramp(3, 10), 1);
    let ends: Vec<u64> = cols.iter().map(|c| c.end).collect();
    assert_eq!(ends, [0, 10, 20, 0]);
    assert_eq!(axis(1000.0), (1024.0, 256.0));
    assert_eq!(axis(0.0), (1.0, 1.0));
}

#[test]
fn guard_reports_are_named_by_scope() {
    let mut a = record("named", 8 * KIB, "x", true).memory.unwrap();
    a.location = Some("tests/k.rs:3:9".into());
    let mut b = a.clone();
    b.name = None;
    let mut c = b.clone();
    c.location = None;
    c.panicked = true;
    let page = render_reports(&[a, b, c]);
    assert!(
        page.contains(
            "<span class=\"name\">named</span> <span class=\"meta\">tests/k.rs:3:9</span>"
        )
    );
    assert!(page.contains("<span class=\"name\">scope at tests/k.rs:3:9</span>"));
    assert!(page.contains("<span class=\"name\">scope 3</span>"));
    assert!(page.contains("the body panicked"));
    assert!(page.contains("3 scopes"));
}

#[test]
fn writing_is_atomic_and_names_a_bad_path() {
    let dir = std::env::temp_dir().join(format!("memguard-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("sub").join("memory.html");
    write(&run(vec![record("t", 8 * KIB, "x", true)]), &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("</html>\n"));
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["memory.html"], "no temporary file is left");
    // A directory in the way.
    let e = write(&RunReport::default(), &dir.join("sub")).unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if path.ends_with("sub")),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A long run's page stays light: 2.3 MB for 1,000 tests with a
/// 512-point timeline each (1.35 KB a test without plots, 9.5 KB more
/// with them).
#[test]
fn a_thousand_tests_make_a_light_page() {
    let tests: Vec<TestRecord> = (0..1000u64)
        .map(|i| {
            let mut r = record(&format!("test_{i:04}"), (i % 15 + 1) * KIB, "x", true);
            let d = &mut r.memory.as_mut().unwrap().devices[0];
            d.detail.as_mut().unwrap().timeline = ramp(5_000 + i, 7);
            r
        })
        .collect();
    let page = render(&run(tests));
    assert!(page.len() < 3 << 20, "{} bytes", page.len());
}

/// A run on the simulated device, with detail recorded step by step: every
/// section renders, with its plots and maps.
#[test]
fn a_sample_run_draws_its_tests() {
    let report = super::sample::run().unwrap();
    let page = render(&report);
    assert!(page.contains("data-tests=\"6\""));
    assert_eq!(page.matches("<section class=\"test").count(), 6);
    // matmul: DRAM, L1, L1_SMALL; conv, attention: L1; leak: DRAM; the
    // escaped one: L1.
    assert_eq!(page.matches("<figure class=\"plot\">").count(), 7);
    assert!(page.contains("<rect class=\"co\""), "an L1_SMALL buffer");
    assert!(page.contains("<rect class=\"cb\""));
    assert!(!page.contains("<script>alert"));
    assert_eq!(page, render(&super::sample::run().unwrap()));
}

/// Writes the sample run's page to the path in `MEMGUARD_HTML_SAMPLE`, for
/// a look in a browser (`.ci/html-check.sh` opens it).
#[test]
#[ignore = "writes a page for the browser check"]
fn sample_page() {
    let path = std::env::var_os("MEMGUARD_HTML_SAMPLE")
        .expect("set MEMGUARD_HTML_SAMPLE to the page's path");
    write(&super::sample::run().unwrap(), Path::new(&path)).unwrap();
}

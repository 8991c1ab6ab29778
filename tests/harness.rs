//! The memguard runner, driven as a subprocess: the demo harness in
//! `examples/custom_harness.rs` has passing, leaking, over-budget, panicking,
//! failing and ignored tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{stderr, stdout};

use tt_memguard::BufferType;
use tt_memguard::runner::{RunReport, TestStatus};

fn demo() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::example_binary("custom_harness"))
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    common::run_clean(demo(), args, envs)
}

fn tmp(name: &str) -> PathBuf {
    common::fresh_dir("memguard-harness", name)
}

#[test]
fn output_and_exit_code_of_a_mixed_run() {
    let out = run(&["--test-threads", "1", "--color", "never"], &[]);
    assert_eq!(out.status.code(), Some(101));
    insta::assert_snapshot!("demo_run", common::redact_locations(&stdout(&out)));
    // Stable across runs.
    let again = run(&["--test-threads", "1", "--color", "never"], &[]);
    assert_eq!(stdout(&out), stdout(&again));
}

#[test]
fn a_passing_selection_exits_zero() {
    let out = run(&["--exact", "fits_in_l1", "--color", "never"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("1 passed; 0 failed; 0 ignored; 0 measured; 6 filtered out"),
        "{text}"
    );
    assert!(
        text.contains("fits_in_l1                               ok         256.0 KiB/512.0 KiB"),
        "{text}"
    );
}

#[test]
fn list_terse_for_nextest_and_ignored_tests() {
    let out = run(&["--list", "--format", "terse"], &[]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("demo_list", stdout(&out));
    let out = run(&["--list", "--format", "terse", "--ignored"], &[]);
    assert_eq!(
        stdout(&out).trim(),
        "needs_hardware: test\nexits_the_process: test"
    );
    let out = run(
        &["--ignored", "--exact", "needs_hardware", "--color", "never"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("test needs_hardware ... ok"));
}

#[test]
fn json_report_of_a_run() {
    let dir = tmp("json");
    let path = dir.join("memory.json");
    let out = run(
        &[
            "--test-threads",
            "2",
            "--memory-report",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(101));
    let report = RunReport::read(&path).unwrap();
    let names: Vec<_> = report
        .tests
        .iter()
        .map(|t| (t.name.as_str(), t.status))
        .collect();
    assert_eq!(
        names,
        [
            ("fits_in_l1", TestStatus::Passed),
            ("leaks_a_buffer", TestStatus::Failed),
            ("over_budget_peak", TestStatus::Failed),
            ("panics_midway", TestStatus::Failed),
            ("returns_an_error", TestStatus::Failed),
        ]
    );
    let text = std::fs::read_to_string(&path).unwrap();
    insta::assert_snapshot!("demo_json", redact_run(&common::redact_locations(&text)));
}

/// The report's start time and process id are the only unstable parts.
fn redact_run(json: &str) -> String {
    json.lines()
        .map(|l| {
            for key in ["\"started_ms\": ", "\"pid\": "] {
                if let Some(i) = l.find(key) {
                    return format!("{}{key}[redacted],", &l[..i]);
                }
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn report_directory_from_several_processes_merges() {
    let dir = tmp("dir");
    let reports = dir.join("parts");
    for test in ["fits_in_l1", "leaks_a_buffer", "over_budget_peak"] {
        let out = run(
            &["--exact", test],
            &[("TT_MEMGUARD_REPORT_DIR", reports.to_str().unwrap())],
        );
        assert!(out.status.code().is_some());
    }
    assert_eq!(std::fs::read_dir(&reports).unwrap().count(), 3);
    let merged = dir.join("merged.json");
    let out = run(
        &[
            "--merge-memory-reports",
            reports.to_str().unwrap(),
            "--memory-report",
            merged.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = RunReport::read(&merged).unwrap();
    let names: Vec<_> = report.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fits_in_l1", "leaks_a_buffer", "over_budget_peak"]);
    assert_eq!(report, RunReport::merge_dir(&reports).unwrap());
    // A stray file that is not a report is named.
    std::fs::write(reports.join("zz.json"), "{not json").unwrap();
    let e = RunReport::merge_dir(&reports).unwrap_err();
    assert!(
        e.to_string().contains("zz.json is not a memguard report"),
        "{e}"
    );
}

/// The names of the tests of an HTML page, in the page's order.
fn page_tests(page: &str) -> Vec<(String, String)> {
    page.match_indices("<span class=\"verdict ")
        .map(|(i, _)| {
            let rest = &page[i..];
            let verdict =
                rest[rest.find('>').unwrap() + 1..rest.find("</span>").unwrap()].to_string();
            let name = rest.split("<span class=\"name\">").nth(1).unwrap();
            (name[..name.find("</span>").unwrap()].to_string(), verdict)
        })
        .collect()
}

/// `--memory-html PATH` (or `TT_MEMGUARD_HTML`) writes one page with every
/// test that ran, failing first; the page is written when the run starts,
/// saying the run has not finished, and replaced at its end.
#[test]
fn html_page_of_a_run() {
    let dir = tmp("html");
    let path = dir.join("pages").join("memory.html");
    let out = run(&["--memory-html", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(101), "{}", stderr(&out));
    let page = std::fs::read_to_string(&path).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
    assert!(page.contains("data-tests=\"5\""), "the five tests that ran");
    let expected = [
        ("leaks_a_buffer", "FAILED"),
        ("over_budget_peak", "FAILED"),
        ("panics_midway", "FAILED"),
        ("returns_an_error", "FAILED"),
        ("fits_in_l1", "ok"),
    ];
    let got = page_tests(&page);
    let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(got, expected);
    // Verdicts, figures, errors and leaks.
    assert!(
        page.contains("peak 256.0 KiB of 512.0 KiB (50%) [code]"),
        "{page}"
    );
    assert!(page.contains("kernel produced wrong results"));
    assert!(page.contains("<b>weights</b> 1.0 MiB DRAM"));
    // The timelines and maps, once guards record them; a note until then.
    assert!(page.contains("<svg") || page.contains("no timeline recorded"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );
    // The same run gives the same page.
    let again = dir.join("again.html");
    let out = run(&[], &[("TT_MEMGUARD_HTML", again.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(101));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), page);
    // A test that ends the process leaves the page written at the start.
    let early = dir.join("early.html");
    let out = run(
        &["--ignored", "--exact", "exits_the_process"],
        &[("TT_MEMGUARD_HTML", early.to_str().unwrap())],
    );
    assert_ne!(out.status.code(), None);
    let text = std::fs::read_to_string(&early).unwrap();
    assert!(
        text.contains(
            "the run of 1 test has not finished: it is still in progress, or it ended early"
        ),
        "{text}"
    );
    // A page that cannot be written stops the run before the first test.
    let blocked = dir.join("blocked");
    std::fs::write(&blocked, "a file").unwrap();
    let out = run(
        &[
            "--memory-html",
            blocked.join("memory.html").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("blocked"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("test fits_in_l1"));
}

/// In a report directory each process writes its part and no page; the
/// merge writes the page of every part.
#[test]
fn html_page_from_a_report_directory() {
    let dir = tmp("html-dir");
    let reports = dir.join("parts");
    let page = dir.join("memory.html");
    for test in ["fits_in_l1", "leaks_a_buffer"] {
        let out = run(
            &["--exact", test],
            &[
                ("TT_MEMGUARD_REPORT_DIR", reports.to_str().unwrap()),
                ("TT_MEMGUARD_HTML", page.to_str().unwrap()),
            ],
        );
        assert!(out.status.code().is_some());
        assert!(
            !page.exists(),
            "a process of a report directory writes no page"
        );
    }
    let out = run(
        &[
            "--merge-memory-reports",
            reports.to_str().unwrap(),
            "--memory-html",
            page.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "",
        "no JSON on stdout when a page is asked for"
    );
    let text = std::fs::read_to_string(&page).unwrap();
    let got = page_tests(&text);
    let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(got, [("leaks_a_buffer", "FAILED"), ("fits_in_l1", "ok")]);
}

#[test]
fn environment_overrides_file_and_code_budgets() {
    let out = run(
        &["--exact", "fits_in_l1", "--color", "never"],
        &[("TT_MEMGUARD_L1_PEAK", "128KiB")],
    );
    assert_eq!(out.status.code(), Some(101));
    let text = stdout(&out);
    assert!(
        text.contains("peak 256.0 KiB of 128.0 KiB (200%) [$TT_MEMGUARD_L1_PEAK] FAIL"),
        "{text}"
    );
}

/// Runs `fits_in_l1` alone with `args` and `envs`, its JSON report in
/// `dir`, and checks the exit code; returns the stdout and the report.
fn fits_in_l1_report(
    dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    code: i32,
) -> (String, RunReport) {
    let path = dir.join("m.json");
    let mut all = vec![
        "--exact",
        "fits_in_l1",
        "--memory-report",
        path.to_str().unwrap(),
    ];
    all.extend(args);
    let out = run(&all, envs);
    assert_eq!(out.status.code(), Some(code), "{envs:?}: {}", stderr(&out));
    (stdout(&out), RunReport::read(&path).unwrap())
}

#[test]
fn device_from_the_environment() {
    let dir = tmp("device");
    let (_, report) = fits_in_l1_report(&dir, &[], &[("TT_MEMGUARD_DEVICE", "sim:bh")], 0);
    let memory = report.tests[0].memory.as_ref().unwrap();
    assert_eq!(memory.devices[0].device, "sim:blackhole_p150");
    // 128 pages of 2 KiB over 110 cores: 2 pages per bank.
    assert_eq!(memory.devices[0].pools[1].peak_per_bank, 4096);
}

/// `sim:t3000` gives every test a fresh simulated T3000: its buffers are mesh buffers, and a
/// test that uses no chip's own allocator is reported as the mesh alone, with one chip's
/// figures; a shared mesh works as a shared device does.
#[test]
fn a_mesh_from_the_environment() {
    let dir = tmp("mesh");
    for device in ["sim:t3000", "sim-shared:t3k"] {
        let (_, report) = fits_in_l1_report(&dir, &[], &[("TT_MEMGUARD_DEVICE", device)], 0);
        assert_eq!(report.tests[0].device, "sim:t3000", "{device}");
        let memory = report.tests[0].memory.as_ref().unwrap();
        let names: Vec<&str> = memory.devices.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["sim:t3000"], "{device}");
        // 128 pages of 2 KiB over the 56 cores of one n300 chip: 3 pages per bank.
        assert_eq!(memory.devices[0].pools[1].peak_per_bank, 6144, "{device}");
    }
}

fn stderr_of_failed_setup(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = run(args, envs);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(out.stdout.is_empty(), "no test may run with a bad setup");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn bad_environment_values_are_named() {
    assert_eq!(
        stderr_of_failed_setup(&[], &[("TT_MEMGUARD_DEVICE", "gpu")]),
        "error: environment variable TT_MEMGUARD_DEVICE=\"gpu\": unknown device; expected sim, sim:wormhole_b0, sim:wormhole_n300, sim:blackhole_p150 (or sim:wh, sim:n300, sim:bh), a simulated mesh sim:n300_mesh, sim:t3000 or sim:galaxy, sim-shared[:PRESET] (one simulated device or mesh shared by all tests, as a real device is), or tt-metal[:ID] or tt-metal:mesh with the tt-metal feature"
    );
    assert_eq!(
        stderr_of_failed_setup(&[], &[("TT_MEMGUARD_DEVICE", "sim:grayskull")]),
        "error: environment variable TT_MEMGUARD_DEVICE=\"sim:grayskull\": unknown simulated device \"grayskull\"; expected sim, sim:wormhole_b0, sim:wormhole_n300, sim:blackhole_p150 (or sim:wh, sim:n300, sim:bh), a simulated mesh sim:n300_mesh, sim:t3000 or sim:galaxy, sim-shared[:PRESET] (one simulated device or mesh shared by all tests, as a real device is), or tt-metal[:ID] or tt-metal:mesh with the tt-metal feature"
    );
    assert!(
        stderr_of_failed_setup(&[], &[("TT_MEMGUARD_L1_PEAK", "12 XB")])
            .starts_with("error: environment variable TT_MEMGUARD_L1_PEAK=\"12 XB\": invalid size \"12 XB\": unknown unit \"XB\"")
    );
    assert_eq!(
        stderr_of_failed_setup(&[], &[("TT_MEMGUARD_SNAPSHOTS", "maybe")]),
        "error: environment variable TT_MEMGUARD_SNAPSHOTS=\"maybe\": expected 1 or 0 (true/false, yes/no)"
    );
}

#[test]
fn bad_flags_are_named() {
    // One parser reads libtest's flags and the runner's: clap names the
    // flag, and the closest one for a misspelt flag.
    assert!(
        stderr_of_failed_setup(&["--memory-report"], &[]).starts_with(
            "error: a value is required for '--memory-report <PATH>' but none was supplied"
        )
    );
    let e = stderr_of_failed_setup(&["--memory-reprot", "m.json"], &[]);
    assert!(
        e.starts_with("error: unexpected argument '--memory-reprot' found")
            && e.contains("tip: a similar argument exists: '--memory-report'"),
        "{e}"
    );
    let e = stderr_of_failed_setup(&["--frobnicate"], &[]);
    assert!(
        e.starts_with("error: unexpected argument '--frobnicate' found"),
        "{e}"
    );
    assert!(
        stderr_of_failed_setup(&["--memguard-config", "no/such.toml"], &[])
            .starts_with("error: cannot access no/such.toml: ")
    );
}

#[test]
fn bad_budget_files_name_file_line_key_and_value() {
    assert_eq!(
        stderr_of_failed_setup(
            &["--memguard-config", "tests/data/bad_unknown_key.toml"],
            &[]
        ),
        "error: tests/data/bad_unknown_key.toml:3: l1_peek = \"1 MiB\": unknown key; expected <pool>_<check> with pool dram, l1, l1_small or trace and check peak, peak_per_bank, retained, retained_per_bank or min_largest_free (e.g. l1_peak), cb_peak_per_core, l1_peak_per_core, min_cb_headroom, or tolerance"
    );
    assert!(
        stderr_of_failed_setup(&["--memguard-config", "tests/data/bad_size.toml"], &[])
            .starts_with("error: tests/data/bad_size.toml:5: l1_peak = \"12 XB\": invalid size \"12 XB\": unknown unit \"XB\"")
    );
    assert_eq!(
        stderr_of_failed_setup(&["--memguard-config", "tests/data/bad_glob.toml"], &[]),
        "error: tests/data/bad_glob.toml:1: tests = \"conv_[a-\": bad glob: the class opened at character 6 is not closed with ']'"
    );
}

#[test]
fn insta_snapshots_of_memory_reports() {
    let dir = tmp("snapshots");
    let snaps = dir.to_str().unwrap();
    // First run outside CI: the snapshot is recorded.
    let out = run(
        &["--exact", "fits_in_l1", "--memory-snapshots"],
        &[
            ("TT_MEMGUARD_SNAPSHOT_DIR", snaps),
            ("CI", "false"),
            ("INSTA_UPDATE", "always"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let file = dir.join("memguard__fits_in_l1.snap");
    let recorded = std::fs::read_to_string(&file).unwrap();
    assert!(
        recorded.contains("L1                0 B         0 B   256.0 KiB"),
        "{recorded}"
    );
    // Same footprint in CI: passes.
    let out = run(
        &["--exact", "fits_in_l1", "--memory-snapshots"],
        &[("TT_MEMGUARD_SNAPSHOT_DIR", snaps), ("CI", "true")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // A changed footprint in CI fails the test and writes nothing.
    std::fs::write(&file, recorded.replace("256.0 KiB", "128.0 KiB")).unwrap();
    let out = run(
        &["--exact", "fits_in_l1", "--memory-snapshots"],
        &[("TT_MEMGUARD_SNAPSHOT_DIR", snaps), ("CI", "true")],
    );
    assert_eq!(out.status.code(), Some(101));
    assert!(
        stdout(&out).contains(
            "memguard__fits_in_l1.snap differs (nothing is written with CI=true or INSTA_UPDATE=no)"
        ),
        "{}",
        stdout(&out)
    );
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

#[test]
fn a_shared_device_serializes_tests_and_reports_inherited_allocations() {
    let dir = tmp("shared");
    let path = dir.join("m.json");
    let inherited = |threads: &str| {
        let out = run(
            &[
                "--test-threads",
                threads,
                "--memory-report",
                path.to_str().unwrap(),
            ],
            &[("TT_MEMGUARD_DEVICE", "sim-shared:wh")],
        );
        assert_eq!(out.status.code(), Some(101));
        let report = RunReport::read(&path).unwrap();
        let fits = report
            .tests
            .iter()
            .find(|t| t.name == "fits_in_l1")
            .unwrap();
        assert_eq!(fits.status, TestStatus::Passed);
        let leak = report
            .tests
            .iter()
            .find(|t| t.name == "leaks_a_buffer")
            .unwrap();
        assert_eq!(leak.memory.as_ref().unwrap().devices[0].leaked.len(), 1);
        report
            .tests
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.memory.as_ref().unwrap().devices[0].inherited,
                )
            })
            .collect::<Vec<_>>()
    };
    // In declaration order: the tests after leaks_a_buffer start from their
    // own baseline, and their reports say they inherited its buffer.
    let serial = inherited("1");
    let counts: Vec<u64> = serial.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [0, 0, 1, 1, 1], "{serial:?}");
    // In parallel the tests still take the device in turn.
    let parallel = inherited("2");
    assert!(parallel.iter().all(|(_, n)| *n <= 1), "{parallel:?}");
}

#[test]
fn terse_and_json_formats() {
    let out = run(
        &[
            "--format",
            "terse",
            "--test-threads",
            "1",
            "--color",
            "never",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(101));
    let text = stdout(&out);
    assert!(
        text.contains("\nrunning 7 tests\n.FFFFii\nfailures:"),
        "{text}"
    );
    assert!(
        text.contains(
            "test result: FAILED. 1 passed; 4 failed; 2 ignored; 0 measured; 0 filtered out"
        ),
        "{text}"
    );
    // JSON lines come from libtest-mimic, one event per line, no memory table.
    let out = run(
        &[
            "--format",
            "json",
            "-Z",
            "unstable-options",
            "--exact",
            "fits_in_l1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.lines().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{text}"
    );
    assert!(
        text.contains(r#"{ "type": "test", "name": "fits_in_l1", "event": "ok" }"#),
        "{text}"
    );
}

/// `--help` lists libtest's flags, the runner's and the
/// environment variables, from one parser.
#[test]
fn help_lists_memory_flags_and_variables() {
    let out = run(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "--exact",
        "--test-threads <TEST_THREADS>",
        "--memory-report <PATH>",
        "--memory-report-dir <DIR>",
        "--merge-memory-reports <DIR>",
        "--memory-html <PATH>",
        "TT_MEMGUARD_HTML=PATH",
        "--memory-snapshots",
        "--memguard-config <PATH>",
        "TT_MEMGUARD_REPORT=PATH",
        "TT_MEMGUARD_DEVICE=DEVICE",
        "TT_MEMGUARD_LIVE_RUN=ID",
        "TT_MEMGUARD_<POOL>_<CHECK>=SIZE",
        "NO_COLOR, CLICOLOR_FORCE",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    insta::assert_snapshot!("demo_help", text);
    // `-h` is the short form, with the same flags and variables.
    let short = stdout(&run(&["-h"], &[]));
    assert!(
        short.contains("--memory-report <PATH>") && short.contains("TT_MEMGUARD_SNAPSHOT_DIR=DIR"),
        "{short}"
    );
}

/// An argument that is not UTF-8 is refused by the parser (exit code 2),
/// not a panic; a path that is not UTF-8 is taken as it is.
#[cfg(unix)]
#[test]
fn arguments_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt as _;
    let filter = std::ffi::OsStr::from_bytes(b"fits\xff");
    let out = common::clean_command(demo()).arg(filter).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: invalid UTF-8 was detected in one or more arguments"),
        "{}",
        stderr(&out)
    );
    let dir = tmp("not-utf8");
    let path = dir.join(std::ffi::OsStr::from_bytes(b"m\xff.json"));
    let out = common::clean_command(demo())
        .args(["--exact", "fits_in_l1", "--memory-report"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(RunReport::read(&path).unwrap().tests.len(), 1);
}

/// Colours come from `--color`, else from anstream's
/// rules: `CLICOLOR_FORCE` colours a pipe, `NO_COLOR` wins over it.
#[test]
fn colours_follow_the_flag_and_the_environment() {
    let green_ok = "... \x1b[32mok     \x1b[0mL1 peak 256.0 KiB/512.0 KiB";
    let colored = |args: &[&str], envs: &[(&str, &str)]| {
        let mut all = vec!["--exact", "fits_in_l1"];
        all.extend(args);
        let out = run(&all, envs);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("fits_in_l1 ... ok") || text.contains(green_ok),
            "{text:?}"
        );
        text.contains(green_ok)
    };
    assert!(colored(&["--color", "always"], &[]));
    assert!(!colored(&[], &[]), "stdout is not a terminal");
    assert!(colored(&[], &[("CLICOLOR_FORCE", "1")]));
    assert!(!colored(&[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]));
    assert!(!colored(&["--color", "never"], &[("CLICOLOR_FORCE", "1")]));
    // The memory table is painted by the same rules.
    let out = run(&["--exact", "fits_in_l1", "--color", "always"], &[]);
    assert!(
        stdout(&out).contains("\x1b[32mok     \x1b[0m \x1b[32m   256.0 KiB/512.0 KiB\x1b[0m"),
        "{:?}",
        stdout(&out)
    );
}

/// A test whose device cannot be opened fails with the reason, and is in
/// the JSON report and the memory table like every test that ran.
#[test]
fn a_test_whose_device_cannot_open_is_reported() {
    let dir = tmp("no-device");
    let (text, report) = fits_in_l1_report(
        &dir,
        &["--color", "never"],
        &[("TT_MEMGUARD_L1_SMALL_SIZE", "100MiB")],
        101,
    );
    assert!(text.contains("test fits_in_l1 ... FAILED\n"), "{text}");
    assert!(
        text.contains("---- fits_in_l1 ----\ncannot open the test's device: invalid device geometry: l1_small_size 104857600 B"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  {:<40} FAILED  {:>22} {:>22} {:>12}",
            "fits_in_l1", "-", "-", "-"
        )),
        "{text}"
    );
    assert_eq!(report.tests.len(), 1, "{report:?}");
    let record = &report.tests[0];
    assert_eq!(
        (record.name.as_str(), record.status),
        ("fits_in_l1", TestStatus::Failed)
    );
    assert!(record.memory.is_none());
    assert!(
        record
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("cannot open the test's device: ")),
        "{record:?}"
    );
}

/// `main!` takes paths; a test is named by its path, as
/// libtest names tests, for listing, filters and `--exact`.
#[test]
fn main_macro_tests_are_named_by_their_path() {
    let exe = test_binary("memguard_suite");
    let list = common::clean_command(&exe)
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap();
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    let names = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        names.contains("\nkernels::sharded_fits_the_budget: test\n"),
        "{names}"
    );
    let out = common::clean_command(&exe)
        .args([
            "--exact",
            "kernels::sharded_fits_the_budget",
            "--color",
            "never",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("test kernels::sharded_fits_the_budget ... ok     L1 peak 1.0 MiB  DRAM peak 0 B/256.0 MiB  leaked 0 B"),
        "{text}"
    );
    assert!(
        text.contains("1 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out"),
        "{text}"
    );
}

/// The carve-out variables apply to `sim-shared` too, and
/// to the harness's own simulated device when `TT_MEMGUARD_DEVICE` is unset.
#[test]
fn carve_outs_apply_to_every_device_kind() {
    let dir = tmp("carve");
    let device_of = |envs: &[(&str, &str)]| {
        let (_, report) = fits_in_l1_report(&dir, &[], envs, 0);
        let test = &report.tests[0];
        let pools = &test.memory.as_ref().unwrap().devices[0].pools;
        (
            test.device.clone(),
            pools[BufferType::L1Small as usize].size_per_bank,
            pools[BufferType::Trace as usize].size_per_bank,
        )
    };
    let carve_outs = [
        ("TT_MEMGUARD_L1_SMALL_SIZE", "64KiB"),
        ("TT_MEMGUARD_TRACE_REGION_SIZE", "1MiB"),
    ];
    let expected = (
        "sim:wormhole_b0 l1_small_size=65536 trace_region_size=1048576".to_string(),
        65536,
        90112, // 1 MiB over 12 DRAM banks, in whole 4 KiB pages
    );
    for device in ["sim:wh", "sim-shared:wh"] {
        let mut envs = vec![("TT_MEMGUARD_DEVICE", device)];
        envs.extend(carve_outs);
        assert_eq!(device_of(&envs), expected, "{device}");
    }
    assert_eq!(device_of(&carve_outs), expected, "the harness's own device");
    assert_eq!(
        device_of(&[("TT_MEMGUARD_DEVICE", "sim-shared:wh")]),
        ("sim:wormhole_b0".to_string(), 0, 0)
    );
}

/// One file per binary, device model and selection of
/// tests; merged records keyed by test, binary and device.
#[test]
fn report_files_and_merges_are_keyed_by_binary_device_and_test() {
    let dir = tmp("keys");
    let parts = dir.join("parts");
    let run_on = |device: &str| {
        let out = run(
            &["--exact", "fits_in_l1"],
            &[
                ("TT_MEMGUARD_REPORT_DIR", parts.to_str().unwrap()),
                ("TT_MEMGUARD_DEVICE", device),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    run_on("sim:wh");
    run_on("sim:bh");
    // A rerun replaces its own file.
    run_on("sim:wh");
    let mut files: Vec<String> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].starts_with("custom_harness-sim_blackhole_p150-"));
    assert!(files[1].starts_with("custom_harness-sim_wormhole_b0-"));
    let merged = RunReport::merge_dir(&parts).unwrap();
    let keys: Vec<_> = merged
        .tests
        .iter()
        .map(|t| (t.name.as_str(), t.binary.as_str(), t.device.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("fits_in_l1", "custom_harness", "sim:blackhole_p150"),
            ("fits_in_l1", "custom_harness", "sim:wormhole_b0"),
        ]
    );
    assert!(merged.skipped.is_empty());
}

/// A report path that cannot be written stops the run
/// before the first test.
#[test]
fn a_bad_report_path_fails_before_any_test() {
    let dir = tmp("badpath");
    let file = dir.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let under = file.join("reports");
    let e = stderr_of_failed_setup(&[], &[("TT_MEMGUARD_REPORT_DIR", under.to_str().unwrap())]);
    assert!(
        e.starts_with(&format!("error: cannot access {}", under.display())),
        "{e}"
    );
    let json = under.join("m.json");
    let e = stderr_of_failed_setup(&["--memory-report", json.to_str().unwrap()], &[]);
    assert!(
        e.starts_with(&format!("error: cannot access {}", under.display())),
        "{e}"
    );
}

/// A merge checks every file (version, pools, a merged
/// report in the directory) naming it, and leaves out, with a word, the
/// files of an earlier build whose tests differ (a renamed test).
#[test]
fn merge_checks_every_file_and_leaves_out_stale_builds() {
    let dir = tmp("stale");
    let parts = dir.join("parts");
    for test in ["fits_in_l1", "leaks_a_buffer"] {
        let out = run(
            &["--exact", test],
            &[("TT_MEMGUARD_REPORT_DIR", parts.to_str().unwrap())],
        );
        assert!(out.status.code().is_some());
    }
    let part = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("\"fits_in_l1\"")
        })
        .unwrap();
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&part).unwrap()).unwrap();
    let write_variant = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut value = original.clone();
        edit(&mut value);
        let path = parts.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
        path
    };

    // An earlier build in which the test had another name.
    let stale = write_variant("custom_harness-old.json", &|v| {
        v["run"]["build"] = "0123456789abcdef".into();
        let started = v["run"]["started_ms"].as_u64().unwrap();
        v["run"]["started_ms"] = (started - 60_000).into();
        v["tests"][0]["name"] = "fits_in_l1_old_name".into();
    });
    let merged_path = dir.join("merged.json");
    let out = run(
        &[
            "--merge-memory-reports",
            parts.to_str().unwrap(),
            "--memory-report",
            merged_path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "warning: left out {}: written by an earlier build of custom_harness whose tests differ from those of its newest report",
            stale.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "merged 2 test records from {} (1 stale file left out)",
            parts.display()
        )),
        "{text}"
    );
    let merged = RunReport::read(&merged_path).unwrap();
    let names: Vec<_> = merged.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fits_in_l1", "leaks_a_buffer"]);
    assert_eq!(merged.skipped.len(), 1);
    assert_eq!(merged.skipped[0].file, stale);
    std::fs::remove_file(&stale).unwrap();

    // Files that are not usable reports are named, with what is wrong.
    let bad = write_variant("custom_harness-v3.json", &|v| v["version"] = 3.into());
    let e = RunReport::merge_dir(&parts).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{} is not a memguard report: report format version 3 is not supported: this tt-memguard reads version 2; read it with the tt-memguard that wrote it",
            bad.display()
        )
    );
    std::fs::remove_file(&bad).unwrap();
    // Version 1 named the byte fields without their unit.
    let bad = write_variant("custom_harness-v1.json", &|v| v["version"] = 1.into());
    let e = RunReport::merge_dir(&parts).unwrap_err().to_string();
    assert!(
        e.ends_with("report format version 1 is not supported: this tt-memguard reads version 2; read it with the tt-memguard that wrote it"),
        "{e}"
    );
    std::fs::remove_file(&bad).unwrap();
    let bad = write_variant("custom_harness-nopools.json", &|v| {
        v["tests"][0]["memory"]["devices"][0]["pools"] = serde_json::json!([]);
    });
    let e = RunReport::merge_dir(&parts).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{} is not a memguard report: a device report lists the pools DRAM, L1, L1_SMALL, TRACE in this order, found []",
            bad.display()
        )
    );
    std::fs::remove_file(&bad).unwrap();
    // A merged report written into the directory is not merged again.
    std::fs::copy(&merged_path, parts.join("merged.json")).unwrap();
    let e = RunReport::merge_dir(&parts).unwrap_err().to_string();
    assert!(
        e.ends_with("merged.json is not a memguard report: it is a merged report, not one process's part: write merged reports outside the report directory"),
        "{e}"
    );
    // An empty directory is an error, not an empty report.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = RunReport::merge_dir(&empty).unwrap_err().to_string();
    assert!(e.contains("no memguard reports (*.json) in it"), "{e}");
}

/// A test that ends the process (`std::process::exit(0)`)
/// fails the run, and leaves its reports unfinished, naming the tests that
/// never reported.
#[test]
fn a_test_that_exits_the_process_fails_the_run() {
    let dir = tmp("exit");
    let parts = dir.join("parts");
    let path = dir.join("m.json");
    let out = run(
        &[
            "--ignored",
            "--test-threads",
            "1",
            "--memory-report",
            path.to_str().unwrap(),
        ],
        &[("TT_MEMGUARD_REPORT_DIR", parts.to_str().unwrap())],
    );
    assert!(
        stdout(&out).contains("test needs_hardware    ... ok"),
        "{}",
        stdout(&out)
    );
    #[cfg(unix)]
    {
        assert_eq!(out.status.code(), Some(101), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("error: the process is exiting in the middle of the memguard run: a test called std::process::exit (or something else ended the process); 1 of 2 tests never reported: exits_the_process"),
            "{}",
            stderr(&out)
        );
    }
    // Reading or merging its reports fails, naming the test.
    let e = RunReport::read(&path).unwrap_err().to_string();
    assert!(
        e.contains("is unfinished: process ")
            && e.contains("of custom_harness never reached the end of its run"),
        "{e}"
    );
    let out = run(&["--merge-memory-reports", parts.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("1 test never reported: exits_the_process; rerun the tests, or delete the file to go on without them"),
        "{e}"
    );
    // A run without the test is whole again.
    let out = run(
        &["--exact", "fits_in_l1"],
        &[("TT_MEMGUARD_REPORT_DIR", parts.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0));
}

/// A `TT_MEMGUARD_*` variable that is not one of ours
/// stops the run (listing too), naming the closest one.
#[test]
fn unknown_memguard_variables_stop_the_run() {
    for args in [&[][..], &["--list"][..]] {
        let e = stderr_of_failed_setup(args, &[("TT_MEMGUARD_L1_PEEK", "1 MiB")]);
        assert!(
            e.starts_with("error: environment variable TT_MEMGUARD_L1_PEEK=\"1 MiB\": not a tt-memguard variable; did you mean TT_MEMGUARD_L1_PEAK? Fix the name or unset it"),
            "{e}"
        );
    }
}

/// A `[tests."..."]` section that matches none of the
/// target's tests is warned about (whatever the filter), not when listing.
#[test]
fn budget_sections_that_match_no_test_are_warned() {
    let config = "tests/data/unmatched_sections.toml";
    let warnings = |args: &[&str]| {
        let mut all = vec!["--memguard-config", config];
        all.extend(args);
        let out = run(&all, &[]);
        let text = stderr(&out);
        text.lines()
            .filter(|l| l.starts_with("warning:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let expected = [
        format!(
            "warning: {config}:6: [tests.\"fits_in_l2\"] matches no test of this test target (custom_harness): check the name; ignore this if the section is for another test target sharing the file, or give each target its own file (Harness::config_file)"
        ),
        format!(
            "warning: {config}:8: [tests.\"conv_*\"] matches no test of this test target (custom_harness): check the name; ignore this if the section is for another test target sharing the file, or give each target its own file (Harness::config_file)"
        ),
    ];
    assert_eq!(warnings(&["--exact", "fits_in_l1"]), expected);
    // Sections are checked against all the target's tests, not the ones a
    // filter selects: `fits_in_l1` is filtered out here, not misspelt.
    assert_eq!(warnings(&["leaks"]), expected);
    assert!(warnings(&["--list"]).is_empty());
}

/// A test target using `main!` without `harness = false`
/// is built with libtest's harness; its one test then fails naming the
/// fix. Built here with rustc as cargo builds each kind of target.
#[test]
fn a_main_macro_target_without_harness_false_fails_naming_the_fix() {
    let dir = tmp("harness-false");
    let source = dir.join("device_memory.rs");
    std::fs::write(
        &source,
        "fn fits(_dev: &tt_memguard::Device) {}\ntt_memguard::main!(fits);\n",
    )
    .unwrap();
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let rlib = std::fs::read_dir(&deps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("libtt_memguard-") && name.ends_with(".rlib")
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("the tt-memguard library built for these tests");
    let build = |libtest_harness: bool| {
        let exe = dir.join(if libtest_harness {
            "with-libtest"
        } else {
            "harness-false"
        });
        let mut rustc = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
        rustc
            .args(["--edition", "2024", "--crate-name", "device_memory"])
            .arg(&source)
            .arg("-o")
            .arg(&exe)
            .arg("-L")
            .arg(format!("dependency={}", deps.display()))
            .arg("--extern")
            .arg(format!("tt_memguard={}", rlib.display()))
            .env("CARGO_MANIFEST_DIR", &dir)
            .env("CARGO_TARGET_TMPDIR", &dir);
        // What cargo passes: `--test` with libtest's harness, `--cfg test`
        // without it.
        if libtest_harness {
            rustc.arg("--test");
        } else {
            rustc.args(["--cfg", "test"]);
        }
        let out = rustc.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        Command::new(exe).current_dir(&dir).output().unwrap()
    };
    let out = build(true);
    assert_eq!(out.status.code(), Some(101));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("test memguard_runner_needs_harness_false ... FAILED"),
        "{text}"
    );
    assert!(
        text.contains("this test target uses tt_memguard::main! but is built with libtest's own harness, which never calls the memguard runner: none of its memory-checked tests ran. Add `harness = false` to its [[test]] section in Cargo.toml:\n\n[[test]]\nname = \"with-libtest\"\nharness = false"),
        "{text}"
    );
    // With `harness = false` the runner runs the test.
    let out = build(false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("test fits ... ok"),
        "{}",
        stdout(&out)
    );
}

/// A first run with snapshots says what was written and
/// how to accept it; insta's diffs of parallel tests stay whole; the
/// header names the user's test file.
#[test]
fn a_first_snapshot_run_says_how_to_accept_and_keeps_diffs_whole() {
    // Three runs: tests that race in parallel do not always overlap.
    for attempt in 0..3 {
        first_snapshot_run(&tmp(&format!("first-snapshots-{attempt}")));
    }
}

fn first_snapshot_run(dir: &Path) {
    let out = run(
        &[
            "--test-threads",
            "4",
            "--color",
            "never",
            "--memory-snapshots",
        ],
        &[
            ("TT_MEMGUARD_SNAPSHOT_DIR", dir.to_str().unwrap()),
            ("CI", "false"),
        ],
    );
    assert_eq!(out.status.code(), Some(101));
    let text = stdout(&out);
    assert!(
        text.ends_with("3 new memory snapshots written for review: run `cargo insta review` (install with `cargo install cargo-insta`)"),
        "{text}"
    );
    let pending = dir.join("memguard__fits_in_l1.snap.new");
    assert!(
        text.contains(&format!(
            "---- fits_in_l1 ----\nnew memory snapshot written for review to {}: accept it with `cargo insta review`",
            pending.display()
        )),
        "{text}"
    );
    // Each of insta's summaries, from its title to the end of its diff, is
    // whole: no other summary and no result line inside.
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("Snapshot Summary"))
        .collect();
    assert_eq!(starts.len(), 3, "{text}");
    for &start in &starts {
        let end = start
            + lines[start..]
                .iter()
                .position(|l| l.starts_with("────────────┴"))
                .unwrap();
        for line in &lines[start + 1..end] {
            assert!(
                !line.contains("Snapshot Summary") && !line.starts_with("test "),
                "interleaved: {line:?} in\n{text}"
            );
        }
    }
    let header = std::fs::read_to_string(&pending).unwrap();
    assert!(
        header.contains("description: memory report of test fits_in_l1 in examples/custom_harness.rs\ninput_file: examples/custom_harness.rs\n"),
        "{header}"
    );
}

/// The test binary cargo builds for a test target of this package.
fn test_binary(name: &str) -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["build", "-q", "--test", name, "--message-format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("the test binary")
}

/// With `main!`, insta's header names the test file
/// (`source:`), not a file inside tt-memguard.
#[test]
fn snapshots_of_a_main_macro_target_name_its_test_file() {
    let dir = tmp("suite-snapshots");
    let out = common::clean_command(&test_binary("memguard_suite"))
        .args(["--exact", "nothing_allocated", "--memory-snapshots"])
        .env("TT_MEMGUARD_SNAPSHOT_DIR", &dir)
        .env("CI", "false")
        .env("INSTA_UPDATE", "always")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.ends_with(&format!(
            "1 memory snapshot written to {} (INSTA_UPDATE): review them with `git diff`",
            dir.display()
        )),
        "{text}"
    );
    let header = std::fs::read_to_string(dir.join("memguard__nothing_allocated.snap")).unwrap();
    assert!(
        header.starts_with("---\nsource: tests/memguard_suite.rs\n"),
        "{header}"
    );
    assert!(
        header.contains(
            "description: memory report of test nothing_allocated in tests/memguard_suite.rs\n"
        ),
        "{header}"
    );
}

/// Kernel-shaped tests (`examples/kernel_suite.rs`): the result line and the
/// memory table carry the CB peak per core, per-core budgets come from the
/// suite's budget file, and a clash fails with TT-Metal's message and the
/// explanation.
#[test]
fn circular_buffer_peaks_on_result_lines_and_in_the_table() {
    let bin = common::example_binary("kernel_suite");
    let out = common::clean_command(&bin)
        .args(["--test-threads", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(101), "{text}");
    assert!(
        text.contains("test matmul_fits           ... ok     L1 peak 32.0 MiB  DRAM peak 0 B  leaked 0 B  CB peak 192.0 KiB/256.0 KiB per core"),
        "{text}"
    );
    assert!(
        text.contains(
            "CB peak 384.0 KiB of 256.0 KiB per core (150%) [kernel_suite.toml [defaults]] FAIL"
        ),
        "{text}"
    );
    assert!(
        text.contains("Statically allocated circular buffers in program 0 clash with L1 buffers on core range [0-0 - 7-7]. L1 buffer allocated at 679936 and static circular buffer region ends at 892256"),
        "{text}"
    );
    assert!(
        text.contains("    CB 2 (index 2) on {[0-0 - 7-7]}: 262,144 B at 0x99d60..0xd9d60"),
        "{text}"
    );
    // The failed per-core budget names the enqueue that made the peak.
    assert!(
        text.contains("the CB peak: program 0 on core (x=0,y=0), 393,216 B of circular buffers"),
        "{text}"
    );
    assert!(
        text.contains("to fit: shrink the circular buffers on core (x=0,y=0) by 131,072 B"),
        "{text}"
    );
    let header = text.lines().find(|l| l.contains("RESULT")).unwrap();
    assert!(header.ends_with("CB PEAK/CORE"), "{text}");
    let fits = text
        .lines()
        .rfind(|l| l.trim_start().starts_with("matmul_fits"))
        .unwrap();
    assert!(fits.ends_with("192.0 KiB/256.0 KiB"), "{text}");
}

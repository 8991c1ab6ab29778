//! The memguard runner, driven as a subprocess: the demo harness in
//! `examples/custom_harness.rs` has passing, leaking, over-budget, panicking,
//! failing and ignored tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tt_memguard::{RunReport, TestStatus};

fn demo() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::example_binary("custom_harness"))
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(demo());
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("TT_MEMGUARD_") {
            cmd.env_remove(var);
        }
    }
    for var in ["NO_COLOR", "INSTA_UPDATE", "INSTA_FORCE_PASS"] {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied());
    cmd.output().expect("the demo harness runs")
}

fn stdout(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    // The run time is the only unstable part.
    text.lines()
        .map(|l| match l.find("finished in ") {
            Some(i) => format!("{}finished in [time]", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memguard-harness-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

#[test]
fn device_from_the_environment() {
    let dir = tmp("device");
    let path = dir.join("m.json");
    let out = run(
        &[
            "--exact",
            "fits_in_l1",
            "--memory-report",
            path.to_str().unwrap(),
        ],
        &[("TT_MEMGUARD_DEVICE", "sim:bh")],
    );
    assert_eq!(out.status.code(), Some(0));
    let report = RunReport::read(&path).unwrap();
    let memory = report.tests[0].memory.as_ref().unwrap();
    assert_eq!(memory.devices[0].device, "sim:blackhole_p150");
    // 128 pages of 2 KiB over 110 cores: 2 pages per bank.
    assert_eq!(memory.devices[0].pools[1].peak_per_bank, 4096);
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
        "error: environment variable TT_MEMGUARD_DEVICE=\"gpu\": unknown device; expected sim, sim:wormhole_b0, sim:wormhole_n300, sim:blackhole_p150 (or sim:wh, sim:n300, sim:bh), sim-shared[:PRESET] (one simulated device shared by all tests, as a real device is), or tt-metal[:ID] with the tt-metal feature"
    );
    assert_eq!(
        stderr_of_failed_setup(&[], &[("TT_MEMGUARD_DEVICE", "sim:grayskull")]),
        "error: environment variable TT_MEMGUARD_DEVICE=\"sim:grayskull\": unknown simulated device \"grayskull\"; expected sim, sim:wormhole_b0, sim:wormhole_n300, sim:blackhole_p150 (or sim:wh, sim:n300, sim:bh), sim-shared[:PRESET] (one simulated device shared by all tests, as a real device is), or tt-metal[:ID] with the tt-metal feature"
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
    assert_eq!(
        stderr_of_failed_setup(&["--memory-report"], &[]),
        "error: command-line flag --memory-report: expects a path: give it as `--flag PATH` or `--flag=PATH`"
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
        "error: tests/data/bad_unknown_key.toml:3: l1_peek = \"1 MiB\": unknown key; expected <pool>_<check> with pool dram, l1, l1_small or trace and check peak, peak_per_bank, retained, retained_per_bank or min_largest_free (e.g. l1_peak), or tolerance"
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

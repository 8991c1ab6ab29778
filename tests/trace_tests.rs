//! Trace tests (`Harness::traces`), driven as subprocesses: the example
//! `examples/trace_suite.rs` over `examples/traces` (one passing trace, the
//! others failing on purpose) and the test target `tests/trace_suite.rs`
//! over `tests/traces`; and the recorded trace of `tests/traces`, checked
//! against the workload it was recorded from.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::{stderr, stdout};

use tt_memguard::prelude::*;
use tt_memguard::runner::TestStatus;
use tt_memguard::{Preset, Trace, TraceOp};

fn suite() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::example_binary("trace_suite"))
}

/// Runs the example with `args` and `envs` only among the variables that
/// change its output.
fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    common::clean_command(suite())
        .env_remove("TRACE_SUITE_DIR")
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("the trace suite runs")
}

fn tmp(name: &str) -> PathBuf {
    common::fresh_dir("memguard-traces", name)
}

/// The failure message of `test` in a run's output.
fn failure<'a>(text: &'a str, test: &str) -> &'a str {
    let start = text
        .find(&format!("---- {test} ----"))
        .unwrap_or_else(|| panic!("no failure of {test} in:\n{text}"));
    let rest = &text[start..];
    let end = rest[1..].find("\n---- ").map_or(rest.len(), |i| i + 1);
    let end = rest[..end].find("\n\nfailures:").unwrap_or(end);
    &rest[..end]
}

// ---- the recorded trace of tests/traces ----

/// The workload `tests/traces/matmul_recorded.trace` was recorded from: a
/// matmul's inputs in DRAM, a halo in L1_SMALL, three circular buffers on
/// the 8x8 grid and the output in L1, on a Wormhole B0 with 32 KiB of
/// L1_SMALL per bank.
fn matmul_workload(dev: &Device) -> Result<(), Error> {
    let in0 = dev
        .buffer(BufferType::Dram, 2 * MIB)
        .page_size(2048)
        .label("in0")
        .allocate()?;
    let in1 = dev
        .buffer(BufferType::Dram, 2 * MIB)
        .page_size(2048)
        .label("in1")
        .allocate()?;
    let halo = dev
        .buffer(BufferType::L1Small, 64 * 8 * KIB)
        .page_size(2048)
        .sharded(64)
        .label("halo")
        .allocate()?;
    let mut program = dev.create_program()?;
    let grid = CoreRange::grid(8, 8)?;
    for index in [0, 1, 16] {
        program.add_circular_buffer(
            grid,
            CircularBufferConfig::new(64 * KIB).page_size(index, 2048),
        )?;
    }
    let out = dev
        .buffer(BufferType::L1, 64 * 256 * KIB)
        .page_size(2048)
        .label("out")
        .allocate()?;
    dev.enqueue(&mut program)?;
    drop((program, halo, in0, in1));
    drop(out);
    Ok(())
}

const RECORDED: &str = "tests/traces/matmul_recorded.trace";

/// What the file says above the recording.
const RECORDED_HEADER: &str = "\
# Recorded with Device::record from the workload matmul_workload in
# tests/trace_tests.rs, on a Wormhole B0 with 32 KiB of L1_SMALL per bank:
# every expect= is where that device placed a buffer or its circular buffers,
# checked as the trace test replays. MEMGUARD_WRITE_TRACES=1 cargo test
# --test trace_tests writes it again.
";

#[test]
fn the_recorded_trace_is_what_its_workload_records() {
    let dev = SimDevice::builder(Preset::WormholeB0)
        .l1_small_size(32 * KIB)
        .build()
        .unwrap();
    let rec = dev.record().unwrap();
    matmul_workload(&dev).unwrap();
    let recorded = format!("{RECORDED_HEADER}{}", rec.finish().unwrap().to_text());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORDED);
    if std::env::var_os("MEMGUARD_WRITE_TRACES").is_some() {
        std::fs::write(&path, &recorded).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        committed, recorded,
        "{RECORDED} is not what its workload records now: write it again with MEMGUARD_WRITE_TRACES=1 cargo test --test trace_tests"
    );
    // It has expectations, so its test checks placements.
    let trace = Trace::parse(&committed).unwrap();
    assert!(trace.ops.iter().any(|(_, op)| matches!(
        op,
        TraceOp::Alloc {
            expect: Some(_),
            ..
        }
    )));
    assert_eq!(trace.l1_small_size, 32 * KIB);
}

// ---- examples/traces, run by examples/trace_suite.rs ----

#[test]
fn each_trace_file_is_a_test_and_fails_with_the_whole_explanation() {
    let out = run(&["--test-threads", "1", "--color", "never"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(101), "{text}\n{}", stderr(&out));
    // README.md and memguard.toml are not traces.
    assert!(text.contains("running 7 tests"), "{text}");
    assert!(
        text.contains("1 passed; 6 failed; 0 ignored; 0 measured; 0 filtered out"),
        "{text}"
    );
    assert!(
        text.contains("test traces::fits             ... ok "),
        "{text}"
    );

    // A file that does not parse: its file and line; the others still ran.
    assert!(
        failure(&text, "traces::broken").contains(
            "examples/traces/broken.trace: line 4: unknown direction \"sideways\": expected bu, td or def: \"alloc w DRAM 1048576 2048 sideways\""
        ),
        "{text}"
    );
    // A clash: TT-Metal's message, then the explanation and what would fit.
    let clash = failure(&text, "traces::cb_clash");
    for part in [
        "examples/traces/cb_clash.trace: line 11: \"enqueue mm\" was refused: Statically allocated circular buffers in program 0 clash with L1 buffers on core range [0-0 - 7-7]",
        "lowest L1 buffer: 'output' 45,875,200 B L1 buffer",
        "to fit: shrink the circular buffers on [0-0 - 7-7] by 44,384 B",
    ] {
        assert!(clash.contains(part), "{part:?} in {clash}");
    }
    // Out of memory: TT-Metal's message, with the line and the operation.
    assert!(
        failure(&text, "traces::out_of_memory").contains(
            "examples/traces/out_of_memory.trace: line 4: \"alloc act L1 100663296 2048 def label=activations\" was refused: Out of Memory: Not enough space to allocate 100663296 B L1 buffer across 64 banks"
        ),
        "{text}"
    );
    // Leaks: the report names them by label, the message by line; the
    // buffer the trace freed is not among them.
    let leaks = failure(&text, "traces::leaks");
    for part in [
        "leaked 2 buffers (4.2 MiB requested):",
        "(4.0 MiB DRAM, 350,208 B per bank x 12 banks) at 0x100040, label \"kv_cache\", buffer id 1",
        "(256.0 KiB L1, 4,096 B per bank x 64 banks) at 0x16d000, label \"scratch\", buffer id 2",
        "never freed by examples/traces/leaks.trace: \"kv_cache\" (line 4), \"scratch\" (line 5)",
    ] {
        assert!(leaks.contains(part), "{part:?} in {leaks}");
    }
    assert!(!leaks.contains("temporary"), "{leaks}");
    // Over the budget its section of the budget file gives it.
    assert!(
        failure(&text, "traces::over_budget").contains(
            "peak 2.0 MiB of 1.0 MiB (200%) [memguard.toml [tests.\"traces::over_budget\"]] FAIL"
        ),
        "{text}"
    );
    // A recording the device does not reproduce.
    assert!(
        failure(&text, "traces::placed_elsewhere").contains(
            "examples/traces/placed_elsewhere.trace: line 4: the replay differs from the recording: expected 0x100080, the device gave 0x100040"
        ),
        "{text}"
    );
    // Failed replays freed what they had: nothing shows as leaked.
    assert!(
        !failure(&text, "traces::out_of_memory").contains("leaked 1"),
        "{text}"
    );
}

#[test]
fn trace_tests_are_listed_in_file_name_order() {
    let out = run(&["--list"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().take(7).collect::<Vec<_>>(),
        [
            "traces::broken: test",
            "traces::cb_clash: test",
            "traces::fits: test",
            "traces::leaks: test",
            "traces::out_of_memory: test",
            "traces::over_budget: test",
            "traces::placed_elsewhere: test",
        ]
    );
}

#[test]
fn budgets_from_the_environment_apply_to_trace_tests() {
    let out = run(
        &["--exact", "traces::fits", "--color", "never"],
        &[("TT_MEMGUARD_L1_PEAK", "512KiB")],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(101), "{text}");
    assert!(
        failure(&text, "traces::fits")
            .contains("peak 1.0 MiB of 512.0 KiB (200%) [$TT_MEMGUARD_L1_PEAK] FAIL"),
        "{text}"
    );
}

#[test]
fn json_report_html_live_stream_and_recording_of_trace_tests() {
    let dir = tmp("outputs");
    let (report, html, live, rec) = (
        dir.join("memory.json"),
        dir.join("memory.html"),
        dir.join("live.jsonl"),
        dir.join("rec"),
    );
    let out = run(
        &[
            "--test-threads",
            "1",
            "--memory-report",
            report.to_str().unwrap(),
            "--memory-html",
            html.to_str().unwrap(),
        ],
        &[
            ("TT_MEMGUARD_LIVE", live.to_str().unwrap()),
            ("TT_MEMGUARD_RECORD", rec.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(101), "{}", stdout(&out));

    let run_report = tt_memguard::runner::RunReport::read(&report).unwrap();
    let record = |name: &str| {
        run_report
            .tests
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no record of {name}"))
    };
    assert_eq!(record("traces::fits").status, TestStatus::Passed);
    assert_eq!(record("traces::leaks").status, TestStatus::Failed);
    // The leaks, by label, without a Rust location: the trace is their place.
    let leaks = &record("traces::leaks").memory.as_ref().unwrap().devices[0].leaked;
    let labels: Vec<_> = leaks.iter().map(|a| a.label.as_deref()).collect();
    assert_eq!(labels, [Some("kv_cache"), Some("scratch")]);
    assert!(leaks.iter().all(|a| a.location.is_none()));
    // The device each ran on: the one its header names.
    assert_eq!(
        record("traces::cb_clash").device,
        "sim:wormhole_b0 l1_small_size=65536"
    );
    assert_eq!(record("traces::fits").device, "sim:wormhole_b0");
    // A file that does not parse ran on no device.
    let broken = record("traces::broken");
    assert!(broken.memory.is_none());
    assert!(
        broken
            .error
            .as_deref()
            .unwrap()
            .starts_with("examples/traces/broken.trace: line 4: "),
        "{:?}",
        broken.error
    );

    let page = std::fs::read_to_string(&html).unwrap();
    for name in ["traces::fits", "traces::leaks", "kv_cache"] {
        assert!(page.contains(name), "{name} not on the page");
    }

    let stream = std::fs::read_to_string(&live).unwrap();
    for name in ["traces::fits", "traces::leaks"] {
        for event in ["test_start", "test_end"] {
            assert!(
                stream
                    .lines()
                    .any(|l| l.contains(&format!("\"event\":\"{event}\""))
                        && l.contains(&format!("\"test\":\"{name}\""))),
                "no {event} of {name} in the live stream"
            );
        }
    }

    // The replay, recorded: the same operations, named by the recording.
    let recorded = Trace::from_file(rec.join("traces__leaks.trace")).unwrap();
    let original =
        Trace::from_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/traces/leaks.trace"))
            .unwrap();
    assert_eq!(recorded.ops.len(), original.ops.len());
}

#[test]
fn insta_snapshots_of_trace_tests() {
    let dir = tmp("snapshots");
    let snaps = dir.to_str().unwrap();
    let args = ["--exact", "traces::fits", "--memory-snapshots"];
    let out = run(
        &args,
        &[
            ("TT_MEMGUARD_SNAPSHOT_DIR", snaps),
            ("CI", "false"),
            ("INSTA_UPDATE", "always"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let file = dir.join("memguard__traces__fits.snap");
    let recorded = std::fs::read_to_string(&file).unwrap();
    assert!(
        recorded.contains("memory check traces::fits: passed") && recorded.contains("1.0 MiB"),
        "{recorded}"
    );
    // The same footprint in CI passes; another one fails.
    let out = run(
        &args,
        &[("TT_MEMGUARD_SNAPSHOT_DIR", snaps), ("CI", "true")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    std::fs::write(&file, recorded.replace("1.0 MiB", "2.0 MiB")).unwrap();
    let out = run(
        &args,
        &[("TT_MEMGUARD_SNAPSHOT_DIR", snaps), ("CI", "true")],
    );
    assert_eq!(out.status.code(), Some(101), "{}", stdout(&out));
}

// ---- the run's device against the trace's ----

#[test]
fn a_chosen_device_of_another_geometry_fails_traces_with_expectations_only() {
    let report = tmp("chosen").join("memory.json");
    let out = run(
        &[
            "--test-threads",
            "1",
            "--color",
            "never",
            "--memory-report",
            report.to_str().unwrap(),
        ],
        &[("TT_MEMGUARD_DEVICE", "sim:bh")],
    );
    let text = stdout(&out);
    let json = std::fs::read_to_string(&report).unwrap();
    // fits.trace expects a refusal recorded on Wormhole B0.
    let fits = failure(&text, "traces::fits");
    for part in [
        "examples/traces/fits.trace names the device sim:wormhole_b0 and expects what it did (1 expect= option:",
        "this run's device is sim:blackhole_p150 (chosen by TT_MEMGUARD_DEVICE=sim:bh)",
        "run without TT_MEMGUARD_DEVICE",
        "drop its expectations",
        "--skip traces::fits",
    ] {
        assert!(fits.contains(part), "{part:?} in {fits}");
    }
    // Traces without expectations replay on the chosen device, its
    // carve-outs included: the clash of a 64 KiB L1_SMALL region is gone.
    assert!(
        text.contains("test traces::cb_clash         ... ok "),
        "{text}"
    );
    assert!(
        json.contains("\"device\": \"sim:blackhole_p150\""),
        "{json}"
    );
    assert!(!json.contains("l1_small_size=65536"), "{json}");
}

#[test]
fn a_chosen_device_of_the_recorded_geometry_checks_the_expectations() {
    let out = run(
        &["--exact", "traces::fits", "--color", "never"],
        &[("TT_MEMGUARD_DEVICE", "sim:wormhole_b0")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // A carve-out changes the geometry.
    let out = run(
        &["--exact", "traces::fits", "--color", "never"],
        &[("TT_MEMGUARD_L1_SMALL_SIZE", "32KiB")],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(101), "{text}");
    assert!(
        failure(&text, "traces::fits").contains(
            "this run's device is sim:wormhole_b0 l1_small_size=32768 (chosen by TT_MEMGUARD_L1_SMALL_SIZE=32KiB)"
        ),
        "{text}"
    );
}

// ---- bad directories ----

/// A directory named `traces` (the tests' first name) of its own.
fn traces_dir(name: &str) -> PathBuf {
    let dir = tmp(name).join("traces");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_dir(dir: &Path, args: &[&str]) -> Output {
    run(args, &[("TRACE_SUITE_DIR", dir.to_str().unwrap())])
}

#[test]
fn a_missing_or_empty_directory_stops_the_run_naming_it() {
    let dir = tmp("empty");
    let missing = dir.join("nope");
    let out = run_dir(&missing, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "error: trace tests in {}: no such directory",
            missing.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("fix the path given to Harness::traces"),
        "{err}"
    );

    std::fs::write(dir.join("notes.txt"), "not a trace").unwrap();
    let out = run_dir(&dir, &["--list"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("it holds no trace file (*.trace, or a ttnn graph capture *.json) (1 other entry ignored): add traces to it"),
        "{err}"
    );
}

#[test]
fn two_files_that_make_one_test_name_stop_the_run() {
    let dir = traces_dir("duplicate");
    std::fs::write(dir.join("conv.trace"), "device wh\n").unwrap();
    std::fs::write(dir.join("conv.json"), "[]").unwrap();
    let out = run_dir(&dir, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("conv.trace makes the test traces::conv, but ")
            && err.contains("conv.json makes it too: rename the file"),
        "{err}"
    );
}

#[test]
fn a_capture_that_cannot_be_imported_fails_its_test_only() {
    let dir = traces_dir("capture");
    std::fs::write(dir.join("bad.json"), "[{\"counter\": 0, ").unwrap();
    std::fs::write(
        dir.join("good.trace"),
        "alloc w DRAM 2048 2048 def\nfree w\n",
    )
    .unwrap();
    std::fs::create_dir(dir.join("nested")).unwrap();
    std::fs::write(dir.join("nested").join("skipped.trace"), "nonsense\n").unwrap();
    std::fs::write(dir.join(".hidden.trace"), "nonsense\n").unwrap();
    let out = run_dir(&dir, &["--test-threads", "1", "--color", "never"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(101), "{text}");
    assert!(text.contains("running 2 tests"), "{text}");
    assert!(text.contains("test traces::good ... ok "), "{text}");
    let bad = failure(&text, "traces::bad");
    assert!(
        bad.contains("ttnn capture ") && bad.contains("bad.json: "),
        "{bad}"
    );
}

#[test]
fn budgets_and_a_device_from_code_apply_to_trace_tests() {
    use tt_memguard::runner::{DeviceProvider, Harness, RunReport};
    let dir = traces_dir("code");
    std::fs::write(
        dir.join("big.trace"),
        "alloc a L1 1048576 2048 def\nfree a\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("placed.trace"),
        "device wh\nalloc a DRAM 2048 2048 def expect=0x100040\nfree a\n",
    )
    .unwrap();
    let report = dir.with_file_name("memory.json");
    let budgets = dir.with_file_name("budgets.toml");
    std::fs::write(&budgets, "").unwrap();
    // In this process: its TT_MEMGUARD_* variables, if any, apply too.
    let _ = Harness::new()
        .config_file(&budgets)
        .device(DeviceProvider::sim(Preset::BlackholeP150))
        .budget(Budget::new().l1_peak("512 KiB"))
        .traces(&dir)
        .run_with_args(vec![
            "trace_tests".to_string(),
            "-q".to_string(),
            // Its output goes to a file: this process's output is cargo's.
            "--logfile".to_string(),
            dir.with_file_name("log.txt").to_string_lossy().into_owned(),
            "--memory-report".to_string(),
            report.to_string_lossy().into_owned(),
        ]);
    let run = RunReport::read(&report).unwrap();
    let big = run.tests.iter().find(|t| t.name == "traces::big").unwrap();
    assert_eq!(
        (big.status, big.device.as_str()),
        (TestStatus::Failed, "sim:blackhole_p150")
    );
    let l1 = &big.memory.as_ref().unwrap().devices[0].pools[1];
    assert_eq!(l1.buffer_type, BufferType::L1);
    let check = &l1.checks[0];
    // 1 MiB in pages of 2 KiB over Blackhole's 110 L1 banks: 5 pages per bank.
    assert_eq!(
        (check.limit, check.actual, check.passed),
        (512 * KIB, 110 * 5 * 2048, false)
    );
    assert_eq!(check.source.to_string(), "code");
    let placed = run
        .tests
        .iter()
        .find(|t| t.name == "traces::placed")
        .unwrap();
    let error = placed.error.as_deref().unwrap();
    assert!(
        error.contains(
            "this run's device is sim:blackhole_p150 (chosen by Harness::device in the test target)"
        ) && error.contains("run the trace tests from a test target whose Harness sets no device"),
        "{error}"
    );
}

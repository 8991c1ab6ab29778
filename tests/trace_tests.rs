//! Trace tests (`Harness::traces`), driven as subprocesses: the example
//! `examples/trace_suite.rs` over `examples/traces` (one passing trace, the
//! others failing on purpose) and the test target `tests/trace_suite.rs`
//! over `tests/traces`; and the recorded trace of `tests/traces`, checked
//! against the workload it was recorded from.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tt_memguard::prelude::*;
use tt_memguard::{Trace, TraceOp};

fn suite() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::example_binary("trace_suite"))
}

/// Runs the example with `args` and `envs` only among the variables that
/// change its output.
fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(suite());
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (var, _) in std::env::vars_os() {
        let var_text = var.to_string_lossy();
        if var_text.starts_with("TT_MEMGUARD_") || var_text == "TRACE_SUITE_DIR" {
            cmd.env_remove(var);
        }
    }
    for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "INSTA_UPDATE", "INSTA_FORCE_PASS"] {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied());
    cmd.output().expect("the trace suite runs")
}

fn stdout(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| match l.find("finished in ") {
            Some(i) => format!("{}finished in [time]", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memguard-traces-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
    let in0 = dev.buffer(BufferType::Dram, 2 * MIB).page_size(2048).label("in0").allocate()?;
    let in1 = dev.buffer(BufferType::Dram, 2 * MIB).page_size(2048).label("in1").allocate()?;
    let halo = dev
        .buffer(BufferType::L1Small, 64 * 8 * KIB)
        .page_size(2048)
        .sharded(64)
        .label("halo")
        .allocate()?;
    let mut program = dev.create_program()?;
    let grid = CoreRange::grid(8, 8)?;
    for index in [0, 1, 16] {
        program.add_circular_buffer(grid, CircularBufferConfig::new(64 * KIB).page_size(index, 2048))?;
    }
    let out = dev.buffer(BufferType::L1, 64 * 256 * KIB).page_size(2048).label("out").allocate()?;
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
    let dev = SimDevice::builder(Preset::WormholeB0).l1_small_size(32 * KIB).build().unwrap();
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
    assert!(trace.ops.iter().any(|(_, op)| matches!(op, TraceOp::Alloc { expect: Some(_), .. })));
    assert_eq!(trace.l1_small_size, 32 * KIB);
}

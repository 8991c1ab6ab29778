//! The live stream and the memory monitor, on a recorded stream and on a
//! stream written by the runner.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use tt_memguard::monitor::{Follower, MonitorState};
use tt_memguard::{BufferType, Error, LiveEvent, LiveStream, MIB, SimDevice};

const RECORDED: &str = "tests/data/live_demo.jsonl";

fn state_after(lines: usize) -> MonitorState {
    let mut follower = Follower::open(RECORDED).unwrap();
    let mut state = MonitorState::default();
    for line in follower.poll().unwrap().iter().take(lines) {
        state.apply(line);
    }
    state
}

#[test]
fn recorded_stream_mid_run_and_at_the_end() {
    // After line 5, fits_in_l1 holds 256 KiB of L1 and 8 MiB of DRAM.
    let mid = state_after(5);
    let view = &mid.devices["sim:wormhole_b0"];
    assert_eq!(view.test.as_deref(), Some("fits_in_l1"));
    assert_eq!((view.allocs, view.frees), (2, 0));
    let end = state_after(usize::MAX);
    assert_eq!(end.ended, Some((1, 4)));
    assert_eq!(end.devices["sim:wormhole_b0"].finished, (1, 4));
    insta::assert_snapshot!("monitor_plain_end", end.render_plain());
    insta::assert_snapshot!(
        "monitor_screen_end",
        end.render_screen(RECORDED, 500, false)
    );
}

#[test]
fn a_partial_line_waits_for_its_end() {
    let path = std::env::temp_dir().join(format!("memguard-follow-{}.jsonl", std::process::id()));
    let mut file = std::fs::File::create(&path).unwrap();
    write!(file, "{{\"t_ms\":1,\"event\":\"run_st").unwrap();
    file.flush().unwrap();
    let mut follower = Follower::open(&path).unwrap();
    assert!(follower.poll().unwrap().is_empty());
    writeln!(file, "art\",\"pid\":7,\"tests\":2}}").unwrap();
    file.flush().unwrap();
    let lines = follower.poll().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].event, LiveEvent::RunStart { pid: 7, tests: 2 });
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn missing_and_malformed_streams_are_clear_errors() {
    let e = Follower::open("tests/data/no_such_stream.jsonl").unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(
        e.to_string().ends_with(
            "(start the run with TT_MEMGUARD_LIVE=tests/data/no_such_stream.jsonl to create it)"
        ),
        "{e}"
    );
    let path = std::env::temp_dir().join(format!("memguard-bad-{}.jsonl", std::process::id()));
    std::fs::write(&path, "{\"t_ms\":0,\"event\":\"run_start\",\"pid\":1,\"tests\":1}\n\n{\"t_ms\":3,\"event\":\"explode\"}\n").unwrap();
    let e = Follower::open(&path).unwrap().poll().unwrap_err();
    assert!(matches!(e, Error::LiveStream { line: 3, .. }), "{e}");
    assert!(
        e.to_string()
            .contains(":3: not a memguard live event (unknown variant `explode`"),
        "{e}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_watched_device_streams_its_allocations_and_snapshots() {
    let path = std::env::temp_dir().join(format!("memguard-live-{}.jsonl", std::process::id()));
    let live = LiveStream::create(&path, std::time::Duration::from_millis(1)).unwrap();
    let dev = SimDevice::wormhole_b0();
    {
        let _watch = live.watch(&dev, Some("matmul"));
        let a = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        a.free().unwrap();
    }
    // Not watched any more: not streamed.
    drop(dev.allocate(BufferType::Dram, MIB, 2048).unwrap());
    live.finish(1, 0);
    let mut state = MonitorState::default();
    let lines = Follower::open(&path).unwrap().poll().unwrap();
    for line in &lines {
        state.apply(line);
    }
    let allocs = lines
        .iter()
        .filter(|l| matches!(l.event, LiveEvent::Alloc { .. }))
        .count();
    let frees = lines
        .iter()
        .filter(|l| matches!(l.event, LiveEvent::Free { .. }))
        .count();
    assert_eq!((allocs, frees), (1, 1));
    // The periodic thread snapshotted the 1 MiB while it was live.
    assert!(lines.iter().any(
        |l| matches!(&l.event, LiveEvent::Snapshot { pools, .. } if pools[0].allocated == 88_064)
    ));
    assert_eq!(state.ended, Some((1, 0)));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_runner_writes_a_stream_the_monitor_follows() {
    let path = std::env::temp_dir().join(format!("memguard-run-{}.jsonl", std::process::id()));
    let out = Command::new(common::example_binary("custom_harness"))
        .args(["--test-threads", "1"])
        .env("TT_MEMGUARD_LIVE", &path)
        .env("TT_MEMGUARD_LIVE_INTERVAL_MS", "5")
        .env_remove("TT_MEMGUARD_DEVICE")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(101));
    let lines = Follower::open(&path).unwrap().poll().unwrap();
    let starts: Vec<&str> = lines
        .iter()
        .filter_map(|l| match &l.event {
            LiveEvent::TestStart { test, .. } => Some(test.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        [
            "fits_in_l1",
            "leaks_a_buffer",
            "over_budget_peak",
            "panics_midway",
            "returns_an_error"
        ]
    );
    assert!(matches!(
        lines.last().unwrap().event,
        LiveEvent::RunEnd {
            passed: 1,
            failed: 4
        }
    ));

    // The monitor, as a program, on that stream: one plain block, exit 0.
    let out = Command::new(common::example_binary("memory_monitor"))
        .arg(&path)
        .args(["--once", "--plain"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("run ended: 1 passed, 4 failed"), "{text}");
    assert!(
        text.contains("device=sim:wormhole_b0 test=- pool=L1 banks=64 total=85.0MiB"),
        "{text}"
    );
    std::fs::remove_file(&path).unwrap();

    // A missing stream: exit 2 with the fix.
    let out = Command::new(common::example_binary("memory_monitor"))
        .arg(Path::new("no/such.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("start the run with TT_MEMGUARD_LIVE=no/such.jsonl")
    );
}

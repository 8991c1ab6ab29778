//! The live stream and the memory monitor, on a recorded stream and on a
//! stream written by the runner.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tt_memguard::live::{LiveEvent, LiveLine, LiveStream};
use tt_memguard::monitor::{Follower, MonitorState};
use tt_memguard::{BufferType, Error, KIB, MIB, SimDevice};

const RECORDED: &str = "tests/data/live_demo.jsonl";
const SHARED: &str = "tests/data/live_shared.jsonl";

/// A fresh path in the temporary directory, unique to this test process.
fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("memguard-{name}-{}.jsonl", std::process::id()))
}

/// Every line of a stream, polled until nothing more is there.
fn read_all(path: &Path) -> Vec<LiveLine> {
    let mut follower = Follower::open(path).unwrap();
    let mut lines = Vec::new();
    loop {
        let update = follower.poll().unwrap();
        lines.extend(update.lines);
        if !update.more {
            return lines;
        }
    }
}

fn state_of(lines: &[LiveLine]) -> MonitorState {
    let mut state = MonitorState::default();
    lines.iter().for_each(|l| state.apply(l));
    state
}

fn state_after(lines: usize) -> MonitorState {
    let all = read_all(Path::new(RECORDED));
    state_of(&all[..lines.min(all.len())])
}

#[test]
fn recorded_stream_mid_run_and_at_the_end() {
    // A stream written before writer and device ids existed still parses:
    // its device is keyed by name. After line 5, fits_in_l1 holds 256 KiB of
    // L1 and 8 MiB of DRAM.
    let mid = state_after(5);
    let view = &mid.devices["sim:wormhole_b0"];
    assert_eq!(view.test.as_deref(), Some("fits_in_l1"));
    assert_eq!((view.allocs, view.frees), (2, 0));
    let end = state_after(usize::MAX);
    assert_eq!(end.ended, Some((1, 4)));
    assert_eq!(end.devices["sim:wormhole_b0"].finished, (1, 4));
    // Every pool shows, the 0-byte L1_SMALL too (as the screen does).
    let plain = end.render_plain();
    assert!(
        plain.contains("pool=L1_SMALL banks=0 total=0B allocated=0B (0.0%)"),
        "{plain}"
    );
    insta::assert_snapshot!("monitor_plain_end", plain);
    insta::assert_snapshot!(
        "monitor_screen_end",
        end.render_screen(RECORDED, 500, false)
    );
}

#[test]
fn recorded_shared_run_of_two_processes() {
    // Two processes of one nextest run, each with its own sim:wormhole_b0,
    // the second started 40 ms after the first.
    let lines = read_all(Path::new(SHARED));
    let mid = state_of(&lines[..16]);
    assert_eq!(mid.devices.len(), 2);
    let (first, second) = (&mid.devices["6325:1"], &mid.devices["6326:1"]);
    assert_eq!((first.test.as_deref(), first.finished), (None, (1, 0)));
    assert_eq!(second.test.as_deref(), Some("leaks_a_buffer"));
    assert_eq!(second.pools[0].allocated_per_bank, 88_064);
    // One process ended, the other still runs.
    assert_eq!(mid.ended, None);
    let end = state_of(&lines);
    assert_eq!(end.ended, Some((1, 1)));
    assert_eq!(end.shared_run(), Some("0d7f3a52-run"));
    // On the common clock: the second writer's 20 ms plus its 40 ms start.
    assert_eq!(end.t_ms, 60);
    insta::assert_snapshot!(
        "monitor_shared_screen",
        end.render_screen(SHARED, 500, false)
    );
}

#[test]
fn a_partial_line_waits_for_its_end() {
    let path = temp("follow");
    let mut file = std::fs::File::create(&path).unwrap();
    write!(file, "{{\"t_ms\":1,\"event\":\"run_st").unwrap();
    file.flush().unwrap();
    let mut follower = Follower::open(&path).unwrap();
    assert!(follower.poll().unwrap().lines.is_empty());
    writeln!(file, "art\",\"pid\":7,\"tests\":2}}").unwrap();
    file.flush().unwrap();
    let update = follower.poll().unwrap();
    assert!(!update.restarted);
    assert_eq!(update.lines.len(), 1);
    assert_eq!(
        update.lines[0].event,
        LiveEvent::RunStart { pid: 7, tests: 2 }
    );
    std::fs::remove_file(&path).unwrap();
}

/// Streams written before the byte fields carried their
/// unit still parse, into the same events.
#[test]
fn streams_with_the_older_field_names_still_parse() {
    let path = Path::new("old.jsonl");
    let parse = |text: &str| LiveLine::parse(text, 1, path).unwrap();
    let old_alloc = r#"{"t_ms":1,"event":"alloc","device":"sim:wormhole_b0","id":1,"pool":"DRAM","address":1048640,"size":1048576,"per_bank_size":88064,"banks":12}"#;
    let new_alloc = old_alloc.replace("per_bank_size", "size_per_bank");
    assert_eq!(parse(old_alloc), parse(&new_alloc));
    let LiveEvent::Alloc { size_per_bank, .. } = parse(old_alloc).event else {
        panic!("not an alloc event")
    };
    assert_eq!(size_per_bank, 88_064);

    let dev = SimDevice::wormhole_b0();
    let _b = dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap();
    let snapshot = dev.snapshot().unwrap();
    let new_pools = serde_json::to_string(&snapshot.pools.to_vec()).unwrap();
    let old_pools = new_pools
        .replace("\"size_per_bank\"", "\"bank_size\"")
        .replace("\"allocated_per_bank\"", "\"allocated\"")
        .replace("\"free_per_bank\"", "\"free\"")
        .replace("\"largest_free_block_per_bank\"", "\"largest_free_block\"");
    assert!(!old_pools.contains("_per_bank"), "{old_pools}");
    let line = |pools: &str| {
        format!(
            r#"{{"t_ms":2,"event":"snapshot","device":"sim:wormhole_b0","test":null,"pools":{pools}}}"#
        )
    };
    let LiveEvent::Snapshot { pools, .. } = parse(&line(&old_pools)).event else {
        panic!("not a snapshot event")
    };
    assert_eq!(pools, snapshot.pools.to_vec());
    assert_eq!(pools[1].allocated_per_bank, 2048);
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
    let path = temp("bad");
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
    let path = temp("live");
    let live = LiveStream::create(&path, Duration::from_millis(1)).unwrap();
    let dev = SimDevice::wormhole_b0();
    {
        let _watch = live.watch(&dev, Some("matmul"));
        let a = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        a.free().unwrap();
    }
    // Not watched any more: not streamed.
    drop(dev.allocate(BufferType::Dram, MIB, 2048).unwrap());
    live.finish(1, 0);
    let lines = read_all(&path);
    let state = state_of(&lines);
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
        |l| matches!(&l.event, LiveEvent::Snapshot { pools, .. } if pools[0].allocated_per_bank == 88_064)
    ));
    // Every line names its writer; the first one is the writer's start.
    assert!(
        lines
            .iter()
            .all(|l| l.writer.as_deref() == Some(live.writer()))
    );
    assert!(matches!(
        lines[0].event,
        LiveEvent::StreamStart { run: None, .. }
    ));
    assert_eq!(state.ended, Some((1, 0)));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_runner_writes_a_stream_the_monitor_follows() {
    let path = temp("run");
    let out = common::clean_command(&common::example_binary("custom_harness"))
        .args(["--test-threads", "1"])
        .env("TT_MEMGUARD_LIVE", &path)
        .env("TT_MEMGUARD_LIVE_INTERVAL_MS", "5")
        .env_remove("NEXTEST_RUN_ID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(101));
    let lines = read_all(&path);
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
    // Every event that names a device names its instance too.
    assert!(lines.iter().all(|l| match &l.event {
        LiveEvent::TestStart { device_id, .. }
        | LiveEvent::TestEnd { device_id, .. }
        | LiveEvent::Alloc { device_id, .. }
        | LiveEvent::Free { device_id, .. }
        | LiveEvent::Snapshot { device_id, .. } => device_id.is_some(),
        _ => true,
    }));

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
    // The leak left its device unusable, so the runner opened a second
    // one: two devices of one name, told apart by their instance ids.
    let devices: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(1)?.strip_prefix("device="))
        .collect();
    assert_eq!(devices.len(), 2, "{text}");
    assert!(
        devices.iter().all(|d| d.starts_with("sim:wormhole_b0[")),
        "{text}"
    );
    assert!(
        text.contains(" test=- pool=L1 banks=64 total=85.0MiB"),
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

// Extreme values.

#[test]
fn extreme_values_neither_panic_nor_overflow() {
    let path = temp("extreme");
    let max = u64::MAX;
    let pool = |name: &str, banks: u64, size: u64, allocated: u64| {
        format!(
            "{{\"buffer_type\":\"{name}\",\"num_banks\":{banks},\"base_address\":{max},\"alignment\":{max},\"size_per_bank\":{size},\"allocated_per_bank\":{allocated},\"free_per_bank\":0,\"largest_free_block_per_bank\":{max}}}"
        )
    };
    let fits = [
        pool("DRAM", 1, max, max),
        pool("L1", 4_294_967_295, 1, 1),
        pool("L1_SMALL", 0, max, max),
        pool("TRACE", 2, max / 2, max / 2),
    ]
    .join(",");
    let text = [
        format!(
            "{{\"t_ms\":{max},\"writer\":\"1.1\",\"event\":\"stream_start\",\"pid\":4294967295,\"run\":null,\"unix_ms\":{max}}}"
        ),
        format!(
            "{{\"t_ms\":{max},\"writer\":\"2.1\",\"event\":\"stream_start\",\"pid\":1,\"run\":null,\"unix_ms\":0}}"
        ),
        format!(
            "{{\"t_ms\":{max},\"writer\":\"1.1\",\"event\":\"run_start\",\"pid\":1,\"tests\":{max}}}"
        ),
        format!(
            "{{\"t_ms\":{max},\"writer\":\"1.1\",\"event\":\"alloc\",\"device\":\"d\",\"device_id\":\"1:1\",\"id\":{max},\"pool\":\"DRAM\",\"address\":{max},\"size\":{max},\"size_per_bank\":{max},\"banks\":4294967295}}"
        ),
        format!(
            "{{\"t_ms\":{max},\"writer\":\"1.1\",\"event\":\"snapshot\",\"device\":\"d\",\"device_id\":\"1:1\",\"test\":\"t\",\"pools\":[{fits}]}}"
        ),
        format!(
            "{{\"t_ms\":{max},\"writer\":\"1.1\",\"event\":\"run_end\",\"passed\":{max},\"failed\":{max}}}"
        ),
        format!(
            "{{\"t_ms\":{max},\"writer\":\"2.1\",\"event\":\"run_end\",\"passed\":{max},\"failed\":1}}"
        ),
    ]
    .join("\n")
        + "\n";
    std::fs::write(&path, &text).unwrap();
    let lines = read_all(&path);
    assert_eq!(lines.len(), 7);
    let state = state_of(&lines);
    // Sums and the clock saturate instead of wrapping or panicking.
    assert_eq!(state.ended, Some((max, max)));
    assert_eq!(state.t_ms, max);
    let plain = state.render_plain();
    assert!(
        plain.contains("pool=L1 banks=4294967295 total=4.0GiB allocated=4.0GiB (100.0%)"),
        "{plain}"
    );
    assert!(plain.contains("pool=DRAM banks=1 total=16.0EiB"), "{plain}");
    let screen = state.render_screen("x", 1, true);
    assert!(screen.contains("run ended"), "{screen}");

    // A pool whose total over its banks does not fit in 64 bits is an
    // error naming the file and the line.
    let too_big = [pool("DRAM", 2, max, 0), pool("L1", 1, 1, 1)].join(",");
    std::fs::write(
        &path,
        format!(
            "{}\n{{\"t_ms\":1,\"event\":\"snapshot\",\"device\":\"d\",\"test\":null,\"pools\":[{too_big}]}}\n",
            text.lines().next().unwrap()
        ),
    )
    .unwrap();
    let e = Follower::open(&path).unwrap().poll().unwrap_err();
    assert!(matches!(e, Error::LiveStream { line: 2, .. }), "{e}");
    assert!(
        e.to_string().ends_with(&format!(
            ":2: pool DRAM size of {max} B per bank x 2 banks does not fit in 64 bits"
        )),
        "{e}"
    );
    // A count beyond its type: an error naming the line, not a wrap.
    std::fs::write(
        &path,
        "{\"t_ms\":1,\"event\":\"free\",\"device\":\"d\",\"id\":18446744073709551616,\"pool\":\"L1\"}\n",
    )
    .unwrap();
    let e = Follower::open(&path).unwrap().poll().unwrap_err();
    assert!(matches!(e, Error::LiveStream { line: 1, .. }), "{e}");

    // Applied directly, such a snapshot is counted and left out, and the
    // views still render.
    let mut state = MonitorState::default();
    let mut line = lines[4].clone();
    if let LiveEvent::Snapshot { pools, .. } = &mut line.event {
        pools[1].num_banks = 2;
        pools[1].size_per_bank = max;
    }
    state.apply(&line);
    assert_eq!(state.rejected, 1);
    assert!(state.devices["1:1"].pools.is_empty());
    let _ = (state.render_plain(), state.render_screen("x", 1, false));
    std::fs::remove_file(&path).unwrap();
}

// Several writers, one stream.

/// Runs `--exact test` of the example runner, one process per test all at
/// once, every one with the same nextest run id.
fn run_like_nextest(path: &Path, run: &str, tests: &[&str]) {
    let exe = common::example_binary("custom_harness");
    let children: Vec<_> = tests
        .iter()
        .map(|test| {
            common::clean_command(&exe)
                .args(["--exact", test])
                .env("TT_MEMGUARD_LIVE", path)
                .env("TT_MEMGUARD_LIVE_INTERVAL_MS", "1")
                .env("NEXTEST_RUN_ID", run)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        child.wait().unwrap();
    }
}

#[test]
fn processes_of_one_run_share_one_stream() {
    let path = temp("nextest");
    // What an earlier run left: lines of another run, and the NUL bytes a
    // truncating writer used to leave behind.
    let mut stale = b"{\"t_ms\":0,\"writer\":\"1.1\",\"event\":\"stream_start\",\"pid\":1,\"run\":\"old\",\"unix_ms\":0}\n".to_vec();
    stale.extend_from_slice(&[0; 64]);
    std::fs::write(&path, &stale).unwrap();
    let tests = [
        "fits_in_l1",
        "leaks_a_buffer",
        "over_budget_peak",
        "panics_midway",
        "returns_an_error",
    ];
    run_like_nextest(&path, "run-a", &tests);
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.contains(&0), "NUL bytes in the stream");
    let lines = read_all(&path);
    let started: BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| match &l.event {
            LiveEvent::TestStart { test, .. } => Some(test.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(started, tests.into_iter().collect());
    // The stale run is gone; five writers of run-a, each from its start.
    assert!(matches!(&lines[0].event, LiveEvent::StreamStart { run: Some(r), .. } if r == "run-a"));
    let writers: BTreeSet<&str> = lines.iter().filter_map(|l| l.writer.as_deref()).collect();
    assert_eq!(writers.len(), 5);
    assert_eq!(
        lines
            .iter()
            .filter(
                |l| matches!(&l.event, LiveEvent::StreamStart { run: Some(r), .. } if r == "run-a")
            )
            .count(),
        5
    );
    let state = state_of(&lines);
    assert_eq!(state.ended, Some((1, 4)));
    assert_eq!(state.shared_run(), Some("run-a"));
    assert!(
        state
            .render_plain()
            .contains("all 5 writers of run run-a ended so far: 1 passed, 4 failed")
    );

    // The next run starts the file afresh.
    run_like_nextest(&path, "run-b", &tests[..2]);
    let lines = read_all(&path);
    assert!(lines.iter().all(|l| !matches!(&l.event, LiveEvent::StreamStart { run, .. } if run.as_deref() != Some("run-b"))));
    assert_eq!(state_of(&lines).ended, Some((1, 1)));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn writers_of_one_run_interleave_only_whole_lines() {
    let path = temp("threads");
    std::fs::write(&path, "stale bytes of some other file\n").unwrap();
    let long = "x".repeat(20 * 1024);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (path, long) = (&path, &long);
            scope.spawn(move || {
                let live = LiveStream::join(path, Duration::from_secs(60), "threads").unwrap();
                let dev = SimDevice::wormhole_b0();
                for i in 0..300 {
                    live.test_end(&dev, &format!("t{t}-{i}"), true, long.clone());
                }
                live.finish(300, 0);
            });
        }
    });
    let lines = read_all(&path);
    let ends = lines
        .iter()
        .filter(|l| matches!(&l.event, LiveEvent::TestEnd { summary, .. } if summary.len() == long.len()))
        .count();
    assert_eq!(ends, 4 * 300);
    let state = state_of(&lines);
    assert_eq!(state.ended, Some((1200, 0)));
    assert_eq!(state.devices.len(), 4);
    std::fs::remove_file(&path).unwrap();
}

// Device identity.

#[test]
fn two_devices_of_one_name_stay_apart() {
    let path = temp("twins");
    let live = LiveStream::create(&path, Duration::from_secs(60)).unwrap();
    let (a, b, c) = (
        SimDevice::wormhole_b0(),
        SimDevice::wormhole_b0(),
        SimDevice::blackhole_p150(),
    );
    live.test_start(&a, "conv");
    live.test_start(&b, "matmul");
    let (wa, wb, wc) = (
        live.watch(&a, Some("conv")),
        live.watch(&b, Some("matmul")),
        live.watch(&c, None),
    );
    let _x = a.allocate(BufferType::Dram, MIB, 2048).unwrap();
    let _y = b.allocate(BufferType::Dram, 2 * MIB, 2048).unwrap();
    drop((wa, wb, wc));
    live.finish(0, 0);
    let state = state_of(&read_all(&path));
    assert_eq!(state.devices.len(), 3);
    let twins: Vec<_> = state
        .devices
        .values()
        .filter(|v| v.name == "sim:wormhole_b0")
        .collect();
    assert_eq!(twins.len(), 2);
    let by_test: BTreeMap<&str, u64> = twins
        .iter()
        .map(|v| (v.test.as_deref().unwrap(), v.pools[0].allocated_per_bank))
        .collect();
    assert_eq!(
        by_test,
        BTreeMap::from([("conv", 88_064), ("matmul", 176_128)])
    );
    let plain = state.render_plain();
    for twin in &twins {
        let label = format!("device=sim:wormhole_b0[{}] ", twin.id.as_deref().unwrap());
        assert!(plain.contains(&label), "{label} in {plain}");
    }
    // A name of its own carries no suffix.
    assert!(
        plain.contains("device=sim:blackhole_p150 test=-"),
        "{plain}"
    );
    let screen = state.render_screen("x", 1, false);
    assert_eq!(screen.matches("Device sim:wormhole_b0[").count(), 2);
    std::fs::remove_file(&path).unwrap();
}

// Bounded reading, files replaced or truncated.

fn snapshot_line(t_ms: u64, device: &str) -> String {
    let dev = SimDevice::wormhole_b0();
    let line = LiveLine::new(
        t_ms,
        LiveEvent::Snapshot {
            device: device.to_string(),
            device_id: None,
            test: Some("a test name that makes the line longer".to_string()),
            pools: dev.snapshot().unwrap().pools.to_vec(),
        },
    );
    serde_json::to_string(&line).unwrap() + "\n"
}

#[test]
fn a_fast_growing_file_is_read_in_bounded_steps() {
    let path = temp("fast");
    let line = snapshot_line(1, "sim:fast");
    let count = 3 * Follower::POLL_BYTES / line.len() + 7;
    std::fs::write(&path, line.repeat(count)).unwrap();
    let mut follower = Follower::open(&path).unwrap();
    let (mut polls, mut total) = (0, 0);
    loop {
        let update = follower.poll().unwrap();
        polls += 1;
        assert!(update.lines.len() * line.len() <= Follower::POLL_BYTES);
        total += update.lines.len();
        if !update.more {
            break;
        }
    }
    assert_eq!(total, count);
    assert!(polls >= 4, "{polls} polls");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_truncated_or_replaced_file_starts_over() {
    let path = temp("restart");
    let first = snapshot_line(1, "first") + &snapshot_line(2, "first") + &snapshot_line(3, "first");
    std::fs::write(&path, &first).unwrap();
    let mut follower = Follower::open(&path).unwrap();
    let mut state = MonitorState::default();
    let update = follower.poll().unwrap();
    assert_eq!((update.restarted, update.lines.len()), (false, 3));
    state.update(&update);
    assert!(state.devices.contains_key("first"));

    // Truncated (a second run): shorter than what was read.
    std::fs::write(&path, snapshot_line(9, "second")).unwrap();
    let update = follower.poll().unwrap();
    assert_eq!((update.restarted, update.lines.len()), (true, 1));
    state.update(&update);
    assert_eq!(state.devices.keys().collect::<Vec<_>>(), ["second"]);

    // Rewritten past the old offset before the follower looked: starts
    // over at the first line instead of resuming mid-line.
    std::fs::write(&path, snapshot_line(1, "third").repeat(5)).unwrap();
    let update = follower.poll().unwrap();
    assert_eq!((update.restarted, update.lines.len()), (true, 5));

    // Replaced by another file (a new inode).
    let other = temp("restart-new");
    std::fs::write(&other, snapshot_line(1, "fourth").repeat(6)).unwrap();
    std::fs::rename(&other, &path).unwrap();
    let update = follower.poll().unwrap();
    assert_eq!((update.restarted, update.lines.len()), (true, 6));
    state.update(&update);
    assert_eq!(state.devices.keys().collect::<Vec<_>>(), ["fourth"]);

    // Growing as usual: no restart.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(snapshot_line(2, "fourth").as_bytes())
        .unwrap();
    let update = follower.poll().unwrap();
    assert_eq!((update.restarted, update.lines.len()), (false, 1));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn an_overlong_line_is_an_error_not_a_buffer() {
    let path = temp("overlong");
    let mut text = snapshot_line(1, "d");
    text.push_str(&"x".repeat(Follower::MAX_LINE + 1));
    std::fs::write(&path, text).unwrap();
    let e = Follower::open(&path).unwrap().poll().unwrap_err();
    assert!(matches!(e, Error::LiveStream { line: 2, .. }), "{e}");
    assert!(
        e.to_string().contains("a line longer than 1048576 bytes"),
        "{e}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_monitor_keeps_a_bounded_number_of_devices() {
    let mut state = MonitorState::default();
    for i in 0..(MonitorState::MAX_DEVICES as u64 + 500) {
        state.apply(&LiveLine::new(
            i,
            LiveEvent::TestEnd {
                test: format!("t{i}"),
                device: "sim:wormhole_b0".into(),
                device_id: Some(format!("1:{i}")),
                passed: true,
                summary: String::new(),
            },
        ));
    }
    assert_eq!(state.devices.len(), MonitorState::MAX_DEVICES);
    // What left the view still counts.
    assert_eq!(state.retired, (500, 0));
}

// Several watchers of one device.

#[test]
fn every_watch_of_a_device_keeps_streaming_it() {
    let (p1, p2) = (temp("watch-1"), temp("watch-2"));
    let s1 = LiveStream::create(&p1, Duration::from_secs(60)).unwrap();
    let s2 = LiveStream::create(&p2, Duration::from_secs(60)).unwrap();
    let dev = SimDevice::wormhole_b0();
    let allocs = |path: &Path| {
        read_all(path)
            .iter()
            .filter(|l| matches!(l.event, LiveEvent::Alloc { .. }))
            .count()
    };
    let w1 = s1.watch(&dev, None);
    let w2 = s2.watch(&dev, None);
    let again = s2.watch(&dev, Some("inner"));
    drop(dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap());
    // Each stream writes the allocation once, however often it watches.
    assert_eq!((allocs(&p1), allocs(&p2)), (1, 1));
    drop(w1);
    drop(dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap());
    assert_eq!((allocs(&p1), allocs(&p2)), (1, 2));
    drop(again);
    drop(dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap());
    assert_eq!((allocs(&p1), allocs(&p2)), (1, 3));
    drop(w2);
    drop(dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap());
    assert_eq!((allocs(&p1), allocs(&p2)), (1, 3));
    std::fs::remove_file(&p1).unwrap();
    std::fs::remove_file(&p2).unwrap();
}

// The order of events.

#[test]
fn events_are_written_in_the_order_the_device_applied_them() {
    let path = temp("order");
    let live = LiveStream::create(&path, Duration::from_millis(1)).unwrap();
    let dev = SimDevice::wormhole_b0();
    let watch = live.watch(&dev, None);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..3000 {
                    // Same size, so that every block is reused at once.
                    drop(dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap());
                }
            });
        }
    });
    drop(watch);
    live.finish(0, 0);
    // Replayed in file order, no allocation overlaps a live block, and
    // every snapshot matches the allocations before it.
    let mut live_blocks: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let (mut allocs, mut snapshots) = (0, 0);
    for line in read_all(&path) {
        match line.event {
            LiveEvent::Alloc {
                id,
                address,
                size_per_bank,
                ..
            } => {
                let end = address + size_per_bank;
                for (other, &(a, e)) in &live_blocks {
                    assert!(
                        end <= a || e <= address,
                        "allocation {id} written while block {other} still held its memory"
                    );
                }
                live_blocks.insert(id, (address, end));
                allocs += 1;
            }
            LiveEvent::Free { id, .. } => {
                assert!(
                    live_blocks.remove(&id).is_some(),
                    "free of {id} before its allocation"
                );
            }
            LiveEvent::Snapshot { pools, .. } => {
                let replayed: u64 = live_blocks.values().map(|(a, e)| e - a).sum();
                let l1 = pools
                    .iter()
                    .find(|p| p.buffer_type == BufferType::L1)
                    .unwrap();
                assert_eq!(l1.allocated_per_bank, replayed);
                snapshots += 1;
            }
            _ => {}
        }
    }
    assert_eq!(allocs, 4 * 3000);
    assert!(snapshots >= 2);
    std::fs::remove_file(&path).unwrap();
}

// The monitor program.

#[test]
fn the_monitor_program_helps_and_its_demo_fills_every_pool() {
    let exe = common::example_binary("memory_monitor");
    let out = Command::new(&exe).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.starts_with("usage: memory_monitor"), "{help}");
    assert!(out.stderr.is_empty());

    let out = Command::new(&exe)
        .args(["--demo", "--once", "--plain"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for pool in ["DRAM", "L1", "L1_SMALL", "TRACE"] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!(" pool={pool} ")))
            .unwrap_or_else(|| panic!("no {pool} line in {text}"));
        assert!(!line.contains("allocated=0B"), "{line}");
    }

    let out = Command::new(&exe)
        .args(["--demo", "--once", "--plain", "--map"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("address map of one bank"), "{text}");
    for label in ["weights0", "act0", "halo", "trace"] {
        assert!(
            text.contains(&format!(" {label} #")),
            "no {label} in {text}"
        );
    }
}

/// The address map of a watched device: one bar per pool, every cell
/// accounted for, the buffers by label.
#[test]
fn the_address_map_shows_where_the_streamed_buffers_sit() {
    let path = temp("map");
    let live = LiveStream::create(&path, Duration::from_secs(60)).unwrap();
    let dev = SimDevice::builder(tt_memguard::Preset::WormholeB0)
        .l1_small_size(64 * KIB)
        .build()
        .unwrap();
    let watch = live.watch(&dev, Some("conv"));
    // L1 grows down from the top of the pool; the first 32 KiB per bank
    // sit right under L1_SMALL.
    let act = dev
        .buffer(BufferType::L1, 64 * 32 * KIB)
        .page_size(2048)
        .label("act")
        .allocate()
        .unwrap();
    let gone = dev
        .buffer(BufferType::L1, 64 * 16 * KIB)
        .page_size(2048)
        .label("gone")
        .allocate()
        .unwrap();
    gone.free().unwrap();
    watch.snapshot();
    drop(watch);
    let state = state_of(&read_all(&path));
    let view = state.devices.values().next().unwrap();
    assert_eq!(view.live.len(), 1, "the freed buffer leaves the map");
    let map = state.render_map(64, false);
    let l1 = map
        .lines()
        .find(|l| l.trim_start().starts_with("L1 "))
        .unwrap();
    let bar: String = l1
        .split('[')
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|&c| c != ']')
        .collect();
    assert_eq!(bar.len(), 64);
    // 32 KiB of a 1,327,776 B pool (Wormhole less 64 KiB of L1_SMALL) is
    // 1.58 cells: the top cell is full, the one below partly taken.
    let pool = 1_393_312 - 64 * 1024;
    assert_eq!(
        bar,
        format!("{}+#", ".".repeat(62)),
        "pool of {pool} B per bank"
    );
    assert!(
        l1.contains("1 buffer, 32.0 KiB of 1.3 MiB per bank"),
        "{l1}"
    );
    assert!(map.contains("largest: 32.0 KiB act #"), "{map}");
    assert!(map.contains("L1_SMALL  0x"), "{map}");
    assert!(!map.contains("gone"), "{map}");
    drop(act);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_map_that_cannot_be_true_says_so_and_the_live_set_is_bounded() {
    let pools = SimDevice::wormhole_b0().snapshot().unwrap().pools.to_vec();
    let l1 = pools[1];
    let alloc = |id: u64, address: u64| {
        LiveLine::new(
            0,
            LiveEvent::Alloc {
                device: "sim:wormhole_b0".into(),
                device_id: None,
                id,
                pool: BufferType::L1,
                address,
                size: 64 * 4096,
                size_per_bank: 4096,
                banks: 64,
                label: None,
            },
        )
    };
    let mut state = MonitorState::default();
    state.apply(&LiveLine::new(
        0,
        LiveEvent::Snapshot {
            device: "sim:wormhole_b0".into(),
            device_id: None,
            test: None,
            pools,
        },
    ));
    // Two buffers over the same bytes: a stream that mixes two devices.
    state.apply(&alloc(1, l1.base_address));
    state.apply(&alloc(2, l1.base_address + 2048));
    let map = state.render_map(32, false);
    assert!(
        map.contains("L1        no map: the stream's allocations overlap"),
        "{map}"
    );
    // Past the bound, allocations are counted, not held.
    for id in 3..(MonitorState::MAX_LIVE as u64 + 10) {
        state.apply(&alloc(id, l1.base_address));
    }
    let view = &state.devices["sim:wormhole_b0"];
    assert_eq!(view.live.len(), MonitorState::MAX_LIVE);
    assert_eq!(view.untracked, 9);
    assert!(
        state
            .render_map(32, false)
            .contains("9 allocations are left out of the map")
    );
}

//! Recording a device as a trace: a recorded random workload replays line
//! for line on every preset, the trace's text round-trips, a replay that
//! differs from the recording stops at the line, and what cannot be
//! recorded says why.

mod common;

use common::{assert_syntax_errors, pools_text, recorded_workload, replays_line_for_line, sim};
use tt_memguard::{
    BufferType, CircularBufferConfig, CoreRange, Error, Expect, KIB, MIB, Preset, SimDevice, Trace,
    TraceOp,
};

/// Several hundred operations per device, on every preset with and without
/// carve-outs: the recorded trace names the device, and its replay puts
/// every buffer and circular buffer at the recorded address (its
/// expectations) with the same pools after every operation.
#[test]
fn a_recorded_random_workload_replays_line_for_line_on_every_preset() {
    let mut operations = 0;
    for preset in Preset::ALL {
        for (n, (l1_small, trace_region)) in [(0, 0), (64 * KIB, 8 * MIB), (4100, 100_000)]
            .into_iter()
            .enumerate()
        {
            let dev = sim(preset, l1_small, trace_region);
            let fresh = pools_text(&dev.snapshot().unwrap());
            let rec = dev.record().unwrap();
            let seed = 0x7265_636f_7264 ^ (preset as u64) << 8 ^ n as u64;
            let pools = recorded_workload(&dev, None, seed, 600);
            let trace = rec.finish().unwrap();
            assert_eq!(
                (trace.preset, trace.l1_small_size, trace.trace_region_size),
                (preset, l1_small, trace_region)
            );
            let lines = replays_line_for_line(&trace, &fresh, &pools);
            // The workload makes every kind of line.
            let text = trace.to_text();
            for kind in [
                "expect=oom",
                " shards ",
                " td ",
                " bu ",
                "label=step%20",
                "\nprogram ",
                "\ncb ",
                " backed=",
                "\ndestroy ",
                "\nfree ",
            ] {
                assert!(text.contains(kind), "{kind:?} in\n{text}");
            }
            assert!(
                lines.iter().any(|l| l.contains(" ERR:cb_")),
                "a refused enqueue"
            );
            assert!(
                lines.iter().any(|l| l.contains(" cbs:0x")),
                "an enqueue that fits"
            );
            operations += trace.ops.len();
        }
    }
    assert!(operations >= 9 * 500, "{operations} operations");
}

#[test]
fn a_recorded_trace_is_deterministic_and_its_text_round_trips() {
    let record = || {
        let dev = SimDevice::blackhole_p150();
        let rec = dev.record().unwrap();
        recorded_workload(&dev, None, 42, 300);
        rec.finish().unwrap()
    };
    let (a, b) = (record(), record());
    assert_eq!(a.to_text(), b.to_text());
    let parsed = Trace::parse(&a.to_text()).unwrap();
    // The same operations at the same line numbers: errors name the text's lines.
    assert_eq!(parsed, a);
    assert_eq!(a.to_string(), a.to_text());
    assert!(
        a.to_text()
            .starts_with("device bh\nl1_small 0\ntrace 0\nalloc b1 ")
    );
}

#[test]
fn labels_with_spaces_hashes_and_percent_signs_round_trip() {
    let dev = SimDevice::wormhole_b0();
    let rec = dev.record().unwrap();
    let labels = ["my weights", "a#b", "100%", "tab\there", "naïve", "%41"];
    let buffers: Vec<_> = labels
        .iter()
        .map(|l| {
            dev.buffer(BufferType::Dram, 2048)
                .label(*l)
                .allocate()
                .unwrap()
        })
        .collect();
    drop(buffers);
    let trace = rec.finish().unwrap();
    let text = trace.to_text();
    assert!(text.contains(" label=my%20weights\n"), "{text}");
    assert!(text.contains(" label=a%23b\n"), "{text}");
    assert!(text.contains(" label=100%25\n"), "{text}");
    assert!(text.contains(" label=tab%09here\n"), "{text}");
    assert!(text.contains(" label=naïve\n"), "{text}");
    assert!(text.contains(" label=%2541\n"), "{text}");
    let parsed = Trace::parse(&text).unwrap();
    let got: Vec<String> = parsed
        .ops
        .iter()
        .filter_map(|(_, op)| match op {
            TraceOp::Alloc { label, .. } => label.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(got, labels);
}

#[test]
fn buffers_and_programs_from_before_the_recording_are_in_the_trace() {
    let dev = SimDevice::wormhole_b0();
    let early = dev
        .buffer(BufferType::L1, 64 * 4 * KIB)
        .page_size(4 * KIB)
        .label("early")
        .allocate()
        .unwrap();
    let hole = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    let kept = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    drop(hole);
    let mut program = dev.create_program().unwrap();
    program
        .add_circular_buffer(
            CoreRange::grid(8, 8).unwrap(),
            CircularBufferConfig::new(8 * KIB)
                .page_size(3, 2 * KIB)
                .page_size(5, 4 * KIB),
        )
        .unwrap();

    let rec = dev.record().unwrap();
    let late = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    dev.enqueue(&mut program).unwrap();
    drop((early, program));
    let trace = rec.finish().unwrap();
    // The live buffers pinned where they are, in allocation order; the program at its first
    // sight, with its CB (the first index's page size stands for all).
    assert_eq!(
        trace.to_text(),
        "device wh\nl1_small 0\ntrace 0\n\
         alloc b1 L1 262144 4096 def fixed=0x16d000 expect=0x16d000 label=early\n\
         alloc b2 DRAM 1048576 2048 def fixed=0x115840 expect=0x115840\n\
         alloc b3 DRAM 1048576 2048 def expect=0x100040\n\
         program p1\n\
         cb p1 0,0-7,7 8192 index=3,5 page=2048\n\
         enqueue p1 expect=0x19d60\n\
         free b1\n\
         destroy p1\n"
    );
    let mut lines = Vec::new();
    trace
        .replay(&trace.open_sim().unwrap(), |l| lines.push(l.to_string()))
        .unwrap();
    // The pinned DRAM buffer keeps the first megabyte free for the late one.
    assert!(
        lines[3].starts_with("3 0x100040 DRAM:176128/"),
        "{}",
        lines[3]
    );
    drop((kept, late));
}

#[test]
fn a_replay_that_places_a_buffer_elsewhere_stops_at_its_line() {
    let dev = SimDevice::wormhole_b0();
    let rec = dev.record().unwrap();
    let _a = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    let _b = dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap();
    let mut trace = rec.finish().unwrap();

    // On Blackhole the DRAM buffer lands elsewhere: the replay prints the line, then stops.
    trace.preset = Preset::BlackholeP150;
    let mut lines = Vec::new();
    let e = trace
        .replay(&trace.open_sim().unwrap(), |l| lines.push(l.to_string()))
        .unwrap_err();
    assert!(matches!(e, Error::TraceMismatch { line: 4, .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "line 4: the replay differs from the recording: expected 0x100040, the device gave 0x100080: \"alloc b1 DRAM 1048576 2048 def expect=0x100040\" (replay on the device model and carve-outs the trace names, or drop its expectations with Trace::clear_expectations to ask what another device would do)"
    );
    assert_eq!(lines.len(), 2);
    assert!(lines[1].starts_with("1 0x100080 "), "{}", lines[1]);

    // Without its expectations it replays to the end.
    trace.clear_expectations();
    assert!(!trace.to_text().contains("expect="));
    trace.replay(&trace.open_sim().unwrap(), |_| {}).unwrap();
}

#[test]
fn expectations_in_a_trace_file_are_checked() {
    let cases = [
        (
            "alloc a DRAM 2048 2048 def expect=0x100060\n",
            "line 1: the replay differs from the recording: expected 0x100060, the device gave 0x100040",
        ),
        (
            "alloc a DRAM 2048 2048 def expect=oom\n",
            "line 1: the replay differs from the recording: expected oom, the device gave 0x100040",
        ),
        (
            "alloc a DRAM 99999999999999 1 def expect=0x100040\n",
            "line 1: the replay differs from the recording: expected 0x100040, the device gave oom",
        ),
        (
            "alloc a L1 3000 2048 def expect=0x16d800\n",
            "line 1: the replay differs from the recording: expected 0x16d800, the device gave a refusal (size 3000 B is not a multiple of the page size 2048 B",
        ),
        (
            "alloc a L1 2048 2048 def fixed=0x100000\nalloc b L1 2048 2048 def fixed=0x100000 expect=0x100000\n",
            "line 2: the replay differs from the recording: expected 0x100000, the device gave a refusal (",
        ),
        (
            "program p\ncb p 0,0 1024 index=0 page=1024\nenqueue p expect=0x19d70\n",
            "line 3: the replay differs from the recording: expected 0x19d70, the device gave 0x19d60",
        ),
        (
            "program p\nenqueue p expect=clash\n",
            "line 2: the replay differs from the recording: expected clash, the device gave -",
        ),
        (
            "alloc o L1 89128960 2048 def\nprogram p\ncb p 0,0 1024 index=0 page=1024\nenqueue p expect=0x19d60\n",
            "line 4: the replay differs from the recording: expected 0x19d60, the device gave clash",
        ),
        (
            "program p\ncb p 0,0 2000000 index=0 page=1000\nenqueue p expect=clash\n",
            "line 3: the replay differs from the recording: expected clash, the device gave beyond_l1",
        ),
    ];
    for (text, message) in cases {
        let trace = Trace::parse(text).unwrap();
        let e = trace
            .replay(&trace.open_sim().unwrap(), |_| {})
            .expect_err(text);
        assert!(matches!(e, Error::TraceMismatch { .. }), "{text:?}: {e}");
        assert!(e.to_string().starts_with(message), "{text:?}:\n{e}");
    }
    // Met expectations replay quietly.
    let trace = Trace::parse(
        "alloc a DRAM 2048 2048 def expect=0x100040\nalloc b DRAM 99999999999999 1 def expect=oom\n\
         program p\nenqueue p expect=-\ncb p 0,0 1024 index=0 page=1024\nalloc f L1 2048 2048 bu fixed=0x19d80 expect=0x19d80\n",
    )
    .unwrap();
    assert!(trace.replay(&trace.open_sim().unwrap(), |_| {}).is_ok());
}

#[test]
fn malformed_options_name_the_line_and_the_text() {
    let cases = [
        (
            "alloc a L1 2048 2048 def expect=near\n",
            "expected address \"near\" is not a number of bytes (decimal or 0x hex): an alloc line expects an address or oom",
        ),
        (
            "alloc a L1 2048 2048 def fixed=0x10 fixed=0x20\n",
            "fixed= is given twice: give it once",
        ),
        (
            "alloc a L1 2048 2048 def label=a%2\n",
            "label \"a%2\" has a % not followed by two hex digits: write %25 for a % itself",
        ),
        (
            "alloc a L1 2048 2048 def label=%FF\n",
            "label \"%FF\" escapes bytes that are not UTF-8: escape whole characters",
        ),
        (
            "alloc a L1 2048 2048 def label=x shards 2\n",
            "unexpected \"shards\" after the direction: expected \"shards S\" first, then label=NAME, fixed=ADDR or expect=ADDR|oom",
        ),
        (
            "program p\nenqueue p expect=0x10,x\n",
            "circular buffer address \"x\" is not a number of bytes (decimal or 0x hex): an enqueue expects its CBs' addresses, -, clash or beyond_l1",
        ),
        (
            "program p\nenqueue p now\n",
            "unexpected \"now\" after the program: expected expect=ADDR,...|-|clash|beyond_l1 or nothing",
        ),
    ];
    // Each fails at its last line.
    let cases: Vec<_> = cases
        .iter()
        .map(|&(text, reason)| (text, text.lines().count(), reason))
        .collect();
    assert_syntax_errors(&cases);
    // Options in any order.
    let trace =
        Trace::parse("alloc a L1 2048 2048 td shards 2 label=x expect=0x10 fixed=0x20\n").unwrap();
    assert_eq!(
        trace.ops[0].1.to_string(),
        "alloc a L1 2048 2048 td shards 2 fixed=0x20 expect=0x10 label=x"
    );
    assert_eq!(Expect::At(16).to_string(), "0x10");
}

#[test]
fn what_cannot_be_recorded_says_why() {
    let custom = SimDevice::builder(Preset::WormholeB0)
        .grid(4, 4)
        .build()
        .unwrap();
    let e = custom.record().unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot record device sim:wormhole_b0: its geometry is none of the presets a trace can name (wh, n300, bh) with l1_small 0 and trace 0: record a device opened from a preset"
    );
    let closed = SimDevice::wormhole_b0();
    closed.close();
    assert!(matches!(closed.record(), Err(Error::DeviceClosed { .. })));
}

#[test]
fn a_recording_ends_with_its_device_and_others_run_beside_it() {
    let dev = SimDevice::wormhole_b0();
    let outer = dev.record().unwrap();
    let a = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    let inner = dev.record().unwrap();
    drop(a);
    let _b = dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap();
    // The inner one starts with the buffer live then, pinned.
    assert_eq!((outer.len(), inner.len()), (3, 3));
    let inner = inner.finish().unwrap();
    assert!(
        inner.to_text().contains(
            "\nalloc b1 DRAM 1048576 2048 def fixed=0x100040 expect=0x100040\nfree b1\nalloc b2 L1 "
        ),
        "{inner}"
    );
    // A dropped recording records nothing more and costs nothing.
    drop(dev.record().unwrap());
    dev.close();
    let outer = outer.finish().unwrap();
    assert_eq!(outer.ops.len(), 3, "{outer}");
}

#[test]
fn recording_writes_the_file() {
    let dir = std::env::temp_dir().join(format!("tt-memguard-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("one.trace");
    let dev = SimDevice::wormhole_n300();
    let rec = dev.record().unwrap();
    drop(dev.allocate(BufferType::Dram, MIB, 2048).unwrap());
    let trace = rec.write(&path).unwrap();
    assert_eq!(Trace::from_file(&path).unwrap(), trace);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("device n300\n")
    );
    let rec = dev.record().unwrap();
    let e = rec.write(dir.join("missing").join("x.trace")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The demo harness of `examples/custom_harness.rs`, run with `envs`, its
/// own `TT_MEMGUARD_*` environment cleared (see `common::clean_command`).
fn run_demo(envs: &[(&str, &std::path::Path)]) -> std::process::Output {
    common::clean_command(&common::example_binary("custom_harness"))
        .args(["--test-threads", "2", "--color", "never"])
        .envs(envs.iter().copied())
        .output()
        .expect("the demo harness runs")
}

#[test]
fn the_runner_records_each_test_as_a_trace_that_replays() {
    let dir =
        std::env::temp_dir().join(format!("tt-memguard-runner-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let traces = dir.join("traces");
    let out = run_demo(&[("TT_MEMGUARD_RECORD", &traces)]);
    // The verdicts are the run's own: recording changes none.
    assert_eq!(out.status.code(), Some(101));
    let plain = run_demo(&[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("test "))
            .count(),
        String::from_utf8_lossy(&plain.stdout)
            .lines()
            .filter(|l| l.starts_with("test "))
            .count()
    );
    let mut names: Vec<String> = std::fs::read_dir(&traces)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "fits_in_l1.trace",
            "leaks_a_buffer.trace",
            "over_budget_peak.trace",
            "panics_midway.trace",
            "returns_an_error.trace"
        ]
    );
    for name in &names {
        let trace = Trace::from_file(traces.join(name)).unwrap();
        trace
            .replay(&trace.open_sim().unwrap(), |_| {})
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let text = |name: &str| std::fs::read_to_string(traces.join(name)).unwrap();
    assert_eq!(
        text("leaks_a_buffer.trace"),
        "device wh\nl1_small 0\ntrace 0\nalloc b1 DRAM 1048576 2048 def expect=0x100040 label=weights\n"
    );
    // A panicking test's trace ends with the buffers its unwinding freed.
    assert_eq!(
        text("panics_midway.trace"),
        "device wh\nl1_small 0\ntrace 0\nalloc b1 L1 65536 2048 def expect=0x16d800\nfree b1\n"
    );
    // Refused before the device saw it: nothing to record.
    assert_eq!(
        text("returns_an_error.trace"),
        "device wh\nl1_small 0\ntrace 0\n"
    );

    // A directory that cannot be made stops the run before the first test.
    let file = dir.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let out = run_demo(&[("TT_MEMGUARD_RECORD", &file.join("traces"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: cannot access {}",
            file.join("traces").display()
        )),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

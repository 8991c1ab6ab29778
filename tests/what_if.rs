//! What if: a recorded trace replayed on several device models and
//! carve-outs, side by side (`Trace::what_if` and `examples/what_if.rs`).

mod common;

use tt_memguard::{
    BufferType, CircularBufferConfig, CoreRange, Device, Error, KIB, MIB, Preset, SimDevice, Trace,
    WhatIfConfig,
};

const TRACE: &str = "tests/data/what_if.trace";

/// A conv-shaped kernel: weights in DRAM, a sharded input and an
/// interleaved output in L1, and a program whose three circular buffers
/// take 640 KiB of every core's L1, enqueued twice.
fn conv(dev: &Device) -> Result<(), Error> {
    let weights = dev
        .buffer(BufferType::Dram, 8 * MIB)
        .page_size(2048)
        .label("conv.weights")
        .allocate()?;
    let input = dev
        .buffer(BufferType::L1, 64 * 8 * KIB)
        .page_size(2048)
        .sharded(64)
        .label("conv.input")
        .allocate()?;
    let grid = CoreRange::new((0, 0), (7, 7))?;
    let tiles = |n: u64, index: u8| CircularBufferConfig::new(n * 2048).page_size(index, 2048);
    let mut program = dev.create_program()?;
    program.add_circular_buffer(grid, tiles(128, 0))?;
    program.add_circular_buffer(grid, tiles(128, 1))?;
    program.add_circular_buffer(grid, tiles(64, 16))?;
    let output = dev
        .buffer(BufferType::L1, 64 * 700 * KIB)
        .page_size(2048)
        .label("conv.output")
        .allocate()?;
    dev.enqueue(&mut program)?;
    drop(input);
    dev.enqueue(&mut program)?;
    drop((program, output, weights));
    Ok(())
}

#[test]
fn the_trace_in_tests_data_is_the_recorded_workload() {
    let dev = SimDevice::wormhole_b0();
    let rec = dev.record().unwrap();
    conv(&dev).unwrap();
    let trace = rec.finish().unwrap();
    // After a change to the format, write `trace.to_text()` to the file.
    assert_eq!(std::fs::read_to_string(TRACE).unwrap(), trace.to_text());
}

fn configs() -> Vec<WhatIfConfig> {
    let mut configs = Vec::new();
    for preset in Preset::ALL {
        for l1_small in [0, 64 * KIB] {
            configs.push(WhatIfConfig::new(preset).l1_small_size(l1_small));
        }
    }
    configs
}

#[test]
fn what_if_table_of_the_recorded_workload() {
    let trace = Trace::from_file(TRACE).unwrap();
    let table = trace.what_if(&configs()).unwrap();
    // Recorded on Wormhole without carve-outs: it fits there, with 12,960 B to spare.
    let row = &table.rows[0];
    assert_eq!(
        (row.min_cb_headroom, &row.first_failure),
        (Some(12_960), &None)
    );
    // 64 KiB of L1_SMALL lowers the output into the circular buffers.
    let clash = table.rows[1].first_failure.as_ref().unwrap();
    assert_eq!((clash.line, clash.summary.as_str()), (11, "CB clash"));
    assert!(
        clash
            .message
            .starts_with("Statically allocated circular buffers in program 0 clash"),
        "{}",
        clash.message
    );
    // The n300 has 56 cores: the 64-shard input does not fit its grid.
    assert_eq!(table.rows[2].first_failure.as_ref().unwrap().line, 5);
    // Blackhole fits either way.
    assert!(table.rows[4..].iter().all(|r| r.first_failure.is_none()));
    insta::assert_snapshot!("what_if_table", table.to_string());
}

#[test]
fn a_configuration_that_cannot_be_opened_gets_a_row_saying_why() {
    let trace = Trace::from_file(TRACE).unwrap();
    let table = trace
        .what_if(&[WhatIfConfig::new(Preset::WormholeB0).l1_small_size(2 * MIB)])
        .unwrap();
    let row = &table.rows[0];
    let failure = row.first_failure.as_ref().unwrap();
    assert_eq!((failure.line, failure.summary.as_str()), (0, "cannot open"));
    assert!(
        failure
            .message
            .contains("l1_small_size 2097152 B leaves no room for L1"),
        "{}",
        failure.message
    );
    assert_eq!(row.peak_per_bank, [0; 4]);
    let text = table.to_string();
    assert!(text.contains("  cannot open\n"), "{text}");
    assert!(
        text.contains(
            "\nwh l1_small=2.0 MiB trace=0 B: invalid device geometry: l1_small_size 2097152 B"
        ),
        "{text}"
    );
}

#[test]
fn a_replay_that_stops_is_the_first_failure() {
    // The backing buffer was freed: the cb line cannot be replayed, on any device.
    let trace = Trace::parse(
        "alloc w L1 2048 2048 def shards 1\nfree w\nprogram p\ncb p 0,0 1024 index=0 page=1024 backed=w\n",
    )
    .unwrap();
    let table = trace
        .what_if(&[WhatIfConfig::new(Preset::WormholeB0)])
        .unwrap();
    let first = table.rows[0].first_failure.as_ref().unwrap();
    assert_eq!((first.line, first.summary.as_str()), (4, "replay stopped"));
    assert!(
        first.message.contains("is not live here"),
        "{}",
        first.message
    );
    // 1,400,000 B per bank: more than a Wormhole core's L1 holds, less than a Blackhole's.
    let trace = Trace::parse(
        "alloc w L1 1400000 1400000 def shards 1\nprogram p\ncb p 0,0 1024 index=0 page=1024 backed=w\n",
    )
    .unwrap();
    let table = trace
        .what_if(&[
            WhatIfConfig::new(Preset::WormholeB0),
            WhatIfConfig::new(Preset::BlackholeP150),
        ])
        .unwrap();
    let first = table.rows[0].first_failure.as_ref().unwrap();
    assert_eq!((first.line, first.summary.as_str()), (1, "out of memory"));
    assert!(table.rows[1].first_failure.is_none());
    assert_eq!(table.rows[1].peak_per_bank[1], 1_400_000);
}

#[test]
fn the_example_prints_the_table() {
    let stdout = common::example_stdout(
        "what_if",
        ["--preset", "wh,n300,bh", "--l1-small", "0,64KiB", TRACE],
    );
    let trace = Trace::from_file(TRACE).unwrap();
    assert_eq!(stdout, trace.what_if(&configs()).unwrap().to_string());
    // Without flags: the recorded configuration only.
    let stdout = common::example_stdout("what_if", [TRACE]);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    for (args, message) in [
        (
            &["--preset", "gs", TRACE][..],
            "unknown simulated device \"gs\"",
        ),
        (
            &["--l1-small", "12 XB", TRACE][..],
            "invalid size \"12 XB\"",
        ),
        (&["--l1-small"][..], "--l1-small needs a list of sizes"),
        (&[][..], "no trace file given"),
    ] {
        let out = std::process::Command::new(common::example_binary("what_if"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
    }
}

#[test]
fn the_replay_example_checks_a_recorded_trace_on_its_own_model_only() {
    let replay = |args: &[&str]| {
        std::process::Command::new(common::example_binary("replay"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    assert!(replay(&[TRACE]).status.success());
    let out = replay(&["--preset", "bh", TRACE]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A recording the simulator does not reproduce: the line and both addresses.
    let dir = std::env::temp_dir().join(format!("tt-memguard-what-if-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let edited = dir.join("edited.trace");
    let text = std::fs::read_to_string(TRACE)
        .unwrap()
        .replace("expect=0xbd000", "expect=0xbd020");
    std::fs::write(&edited, text).unwrap();
    let out = replay(&[edited.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: line 10: the replay differs from the recording: expected 0xbd020, the device gave 0xbd000: \"alloc b3 L1 45875200 2048 def expect=0xbd020 label=conv.output\""),
        "{stderr}"
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 8);
    std::fs::remove_dir_all(&dir).unwrap();
}

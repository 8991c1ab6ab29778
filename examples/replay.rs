//! Replays an allocation trace on the simulated device (or, with the
//! `tt-metal` feature, on a TT-Metal device) and prints the allocator's state
//! after every step. Both devices print the same lines for the same trace.
//! `--preset wh|n300|bh` replays it on another simulated model than its
//! `device` line names: the same circular buffers, for instance, land at other
//! addresses on Blackhole. A recorded trace (`Device::record`,
//! `TT_MEMGUARD_RECORD`) is checked as it replays: the first operation that
//! does not do what the recorded device did stops the replay with an error
//! naming its line (on another model its expectations are dropped; the
//! `what_if` example compares models side by side).
//!
//! A ttnn graph capture (`--ttnn-capture FILE`, or any `.json` file: the JSON
//! of `ttnn.graph.end_graph_capture()`) is imported first; what the import
//! skipped or had to assume goes to stderr. The capture does not record the
//! device's carve-outs: give them with `--l1-small BYTES` and
//! `--trace-region BYTES`.
//!
//! ```text
//! cargo run --example replay -- tests/data/worked_example.trace
//! cargo run --example replay -- --preset bh tests/data/circular_buffers.trace
//! cargo run --example replay -- --l1-small 32768 tests/data/ttnn/mock_wormhole_no_dispatch.json
//! cargo run --features tt-metal --example replay -- --device tt-metal tests/data/worked_example.trace
//! ```

use std::process::ExitCode;

use tt_memguard::ttnn_capture::ImportOptions;
use tt_memguard::{Device, Preset, Trace};

const USAGE: &str = "usage: replay [--device sim|tt-metal] [--preset wh|n300|bh] [--l1-small BYTES] [--trace-region BYTES] [--device-id N] [--strict] [--ttnn-capture] FILE";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut device, mut preset, mut path) = ("sim".to_string(), None, None);
    let mut capture = false;
    let mut options = ImportOptions::new();
    let (mut l1_small, mut trace_region) = (None, None);
    while let Some(arg) = args.next() {
        match (arg.as_str(), path.is_none()) {
            ("--device", true) => match args.next() {
                Some(d) => device = d,
                None => return usage("--device needs sim or tt-metal"),
            },
            ("--ttnn-capture", true) => capture = true,
            ("--strict", true) => options = options.strict(true),
            ("--l1-small" | "--trace-region" | "--device-id", true) => {
                let Some(n) = args.next().and_then(|v| v.parse::<u64>().ok()) else {
                    return usage(&format!("{arg} needs a whole number"));
                };
                match arg.as_str() {
                    "--l1-small" => l1_small = Some(n),
                    "--trace-region" => trace_region = Some(n),
                    _ => options = options.device_id(n),
                }
            }
            ("--preset", true) => match args.next().as_deref() {
                Some("wh") => preset = Some(Preset::WormholeB0),
                Some("n300") => preset = Some(Preset::WormholeN300),
                Some("bh") => preset = Some(Preset::BlackholeP150),
                Some(other) => {
                    return usage(&format!(
                        "unknown preset {other:?}: expected wh, n300 or bh"
                    ));
                }
                None => return usage("--preset needs wh, n300 or bh"),
            },
            (_, true) if !arg.starts_with("--") => path = Some(arg),
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }
    let Some(path) = path else {
        return usage("no trace or capture file given");
    };
    let capture = capture || path.ends_with(".json");
    let run = || -> tt_memguard::Result<()> {
        let mut trace = if capture {
            let mut options = options.clone();
            if let Some(preset) = preset {
                options = options.preset(preset);
            }
            options = options
                .l1_small_size(l1_small.unwrap_or(0))
                .trace_region_size(trace_region.unwrap_or(0));
            let imported = Trace::from_ttnn_capture_file(&path, &options)?;
            eprint!("{}", imported.report);
            for note in imported.report.notes(&options) {
                eprintln!("  note: {note}");
            }
            imported.trace
        } else {
            Trace::from_file(&path)?
        };
        // A recorded trace's addresses hold for its own device model and
        // carve-outs only.
        let other_model = preset.is_some_and(|p| p != trace.preset)
            || l1_small.is_some_and(|b| b != trace.l1_small_size)
            || trace_region.is_some_and(|b| b != trace.trace_region_size);
        if other_model {
            trace.clear_expectations();
        }
        if let Some(preset) = preset {
            trace.preset = preset;
        }
        if let Some(bytes) = l1_small {
            trace.l1_small_size = bytes;
        }
        if let Some(bytes) = trace_region {
            trace.trace_region_size = bytes;
        }
        let device = match device.as_str() {
            "sim" => trace.open_sim()?,
            "tt-metal" => open_tt_metal(&trace)?,
            other => {
                eprintln!("unknown device {other:?}; {USAGE}");
                std::process::exit(2);
            }
        };
        trace.replay(&device, |line| println!("{line}"))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("{problem}; {USAGE}");
    ExitCode::from(2)
}

/// The TT-Metal device TT-Metal's environment names, with the trace's
/// carve-outs. The trace's `device` line names the simulated preset; a
/// TT-Metal device of another geometry replays it too, with a warning.
#[cfg(feature = "tt-metal")]
fn open_tt_metal(trace: &Trace) -> tt_memguard::Result<Device> {
    use tt_memguard::{TtMetalConfig, TtMetalDevice};
    let device = TtMetalDevice::open(TtMetalConfig {
        l1_small_size: trace.l1_small_size,
        trace_region_size: trace.trace_region_size,
        ..TtMetalConfig::default()
    })?;
    let preset = TtMetalDevice::matching_preset(&device)?;
    if preset != Some(trace.preset) {
        eprintln!(
            "warning: the trace is for {}, the TT-Metal device {} has {}",
            trace.preset,
            device.name(),
            preset.map_or("no simulated preset's geometry".to_string(), |p| format!(
                "the geometry of {p}"
            ))
        );
    }
    Ok(device)
}

#[cfg(not(feature = "tt-metal"))]
fn open_tt_metal(_: &Trace) -> tt_memguard::Result<Device> {
    eprintln!(
        "--device tt-metal needs the `tt-metal` feature: cargo run --features tt-metal --example replay -- ..."
    );
    std::process::exit(2);
}

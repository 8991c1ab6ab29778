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
//! ```text
//! cargo run --example replay -- tests/data/worked_example.trace
//! cargo run --example replay -- --preset bh tests/data/circular_buffers.trace
//! cargo run --features tt-metal --example replay -- --device tt-metal tests/data/worked_example.trace
//! ```

use std::process::ExitCode;

use tt_memguard::{Device, Preset, Trace};

const USAGE: &str = "usage: replay [--device sim|tt-metal] [--preset wh|n300|bh] TRACE_FILE";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut device, mut preset, mut path) = ("sim".to_string(), None, None);
    while let Some(arg) = args.next() {
        match (arg.as_str(), path.is_none()) {
            ("--device", true) => match args.next() {
                Some(d) => device = d,
                None => return usage("--device needs sim or tt-metal"),
            },
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
        return usage("no trace file given");
    };
    let run = || -> tt_memguard::Result<()> {
        let mut trace = Trace::from_file(&path)?;
        if let Some(preset) = preset
            && preset != trace.preset
        {
            // A recorded trace's addresses hold for its own device model only.
            trace.clear_expectations();
            trace.preset = preset;
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

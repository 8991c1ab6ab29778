//! Replays an allocation trace on the simulated device (or, with the
//! `tt-metal` feature, on a TT-Metal device) and prints the allocator's state
//! after every step. Both devices print the same lines for the same trace.
//!
//! ```text
//! cargo run --example replay -- tests/data/worked_example.trace
//! cargo run --features tt-metal --example replay -- --device tt-metal tests/data/worked_example.trace
//! ```

use std::process::ExitCode;

use tt_memguard::{Device, Trace};

const USAGE: &str = "usage: replay [--device sim|tt-metal] TRACE_FILE";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (device, path) = match args.as_slice() {
        [path] => ("sim", path),
        [flag, device, path] if flag == "--device" => (device.as_str(), path),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let run = || -> tt_memguard::Result<()> {
        let trace = Trace::from_file(path)?;
        let device = match device {
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

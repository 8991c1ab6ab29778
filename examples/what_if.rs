//! What if: replays one allocation trace (a recorded one, from
//! `Device::record` or `TT_MEMGUARD_RECORD=DIR`) on several simulated
//! device models and carve-outs, and prints them side by side: the peak per
//! bank of every pool, the least circular-buffer headroom, and the first
//! operation that fails (its line and why).
//!
//! ```text
//! cargo run --example what_if -- tests/data/what_if.trace
//! cargo run --example what_if -- --preset wh,n300,bh --l1-small 0,64KiB tests/data/what_if.trace
//! ```
//!
//! Every combination of `--preset` (default: the trace's), `--l1-small` and
//! `--trace-region` (default: the trace's; sizes as `65536`, `64KiB`,
//! `1.5 MiB`) is one row.

use std::process::ExitCode;

use tt_memguard::{ByteSize, Preset, Trace, WhatIfConfig};

const USAGE: &str = "usage: what_if [--preset wh,n300,bh] [--l1-small SIZE,...] [--trace-region SIZE,...] TRACE_FILE";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut presets, mut l1_small, mut trace_region, mut path) = (None, None, None, None);
    while let Some(arg) = args.next() {
        let mut list = |what: &str| match args.next() {
            Some(value) => Ok(value),
            None => Err(format!("{arg} needs {what}")),
        };
        let parsed = match arg.as_str() {
            "--preset" => list("a list of presets").and_then(|v| {
                presets = Some(each(&v, |p| {
                    p.parse::<Preset>().map_err(|e| e.to_string())
                })?);
                Ok(())
            }),
            "--l1-small" => list("a list of sizes").and_then(|v| {
                l1_small = Some(each(&v, size)?);
                Ok(())
            }),
            "--trace-region" => list("a list of sizes").and_then(|v| {
                trace_region = Some(each(&v, size)?);
                Ok(())
            }),
            _ if !arg.starts_with("--") && path.is_none() => {
                path = Some(arg.clone());
                Ok(())
            }
            _ => Err(format!("unexpected argument {arg:?}")),
        };
        if let Err(problem) = parsed {
            return usage(&problem);
        }
    }
    let Some(path) = path else {
        return usage("no trace file given");
    };
    let run = || -> tt_memguard::Result<()> {
        let trace = Trace::from_file(&path)?;
        let mut configs = Vec::new();
        for &preset in presets.as_deref().unwrap_or(&[trace.preset]) {
            for &l1 in l1_small.as_deref().unwrap_or(&[trace.l1_small_size]) {
                for &tr in trace_region
                    .as_deref()
                    .unwrap_or(&[trace.trace_region_size])
                {
                    configs.push(
                        WhatIfConfig::new(preset)
                            .l1_small_size(l1)
                            .trace_region_size(tr),
                    );
                }
            }
        }
        print!("{}", trace.what_if(&configs)?);
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every comma-separated item of `list`, parsed.
fn each<T>(list: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    list.split(',').map(|item| parse(item.trim())).collect()
}

fn size(text: &str) -> Result<u64, String> {
    ByteSize::parse(text)
        .map(|s| s.bytes())
        .map_err(|e| e.to_string())
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("{problem}; {USAGE}");
    ExitCode::from(2)
}

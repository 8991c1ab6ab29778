//! Replays an allocation trace on the simulated device and prints the
//! allocator's state after every step.
//!
//! ```text
//! cargo run --example replay -- tests/data/worked_example.trace
//! ```

use std::process::ExitCode;

use tt_memguard::Trace;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: replay TRACE_FILE");
        return ExitCode::from(2);
    };
    let run = || -> tt_memguard::Result<()> {
        let trace = Trace::from_file(path)?;
        let device = trace.open_sim()?;
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

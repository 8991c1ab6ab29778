//! Trace files as memory-checked tests: every `*.trace` file (and ttnn graph
//! capture `*.json`) of `examples/traces` becomes the test
//! `traces::<file name>`, replayed on the device its header names inside the
//! test's guard, with the budgets of `examples/traces/memguard.toml`. One
//! trace fits; the others fail on purpose: over budget, a circular-buffer
//! clash, leaked buffers, out of memory, a recording this device does not
//! reproduce, and a file that does not parse.
//!
//! ```text
//! cargo run --example trace_suite -- --test-threads 1
//! TRACE_SUITE_DIR=path/to/traces cargo run --example trace_suite   # your own directory
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use tt_memguard::runner::Harness;

fn main() -> ExitCode {
    let dir = std::env::var_os("TRACE_SUITE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("examples/traces"));
    Harness::new()
        .manifest_dir(env!("CARGO_MANIFEST_DIR"))
        .config_file("examples/traces/memguard.toml")
        .traces(dir)
        .run()
}

//! The memguard runner on kernel-shaped tests: each enqueues a program whose
//! circular buffers are most of a core's L1. The result line and the memory
//! table show the CB peak per core; a per-core budget fails a test that
//! outgrows it, and a clash fails with TT-Metal's message and the
//! explanation. Two tests fail on purpose.
//!
//! ```text
//! cargo run --example kernel_suite -- --test-threads 1
//! ```

use tt_memguard::prelude::*;
use tt_memguard::runner::{Harness, Test};

/// in0, in1 and out circular buffers of `cb` bytes each on the whole grid,
/// under an L1 output of `out` bytes per core.
fn matmul(dev: &Device, cb: u64, out: u64) -> TestResult {
    let mut program = dev.create_program()?;
    let grid = CoreRange::grid(8, 8)?;
    for index in 0..3 {
        program.add_circular_buffer(grid, CircularBufferConfig::new(cb).page_size(index, 2048))?;
    }
    let _out = dev.allocate(BufferType::L1, 64 * out, 2048)?;
    dev.enqueue(&mut program)?;
    Ok(())
}

fn matmul_fits(dev: &Device) -> TestResult {
    matmul(dev, 64 * KIB, 512 * KIB)
}

fn matmul_over_cb_budget(dev: &Device) -> TestResult {
    matmul(dev, 128 * KIB, 512 * KIB)
}

fn matmul_clashes(dev: &Device) -> TestResult {
    matmul(dev, 256 * KIB, 800 * KIB)
}

fn main() -> std::process::ExitCode {
    // Per-core budgets from its own file: `cb_peak_per_core`, `min_cb_headroom`.
    Harness::new()
        .manifest_dir(env!("CARGO_MANIFEST_DIR"))
        .config_file("examples/kernel_suite.toml")
        .add_test(Test::new("matmul_fits", matmul_fits))
        .add_test(Test::new("matmul_over_cb_budget", matmul_over_cb_budget))
        .add_test(Test::new("matmul_clashes", matmul_clashes))
        .run()
}

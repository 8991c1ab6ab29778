//! A memguard test harness with one test of each kind the runner reports:
//! passing, leaking, over budget (from `memguard.toml`), panicking, failing
//! with an error, and ignored. Several of them fail on purpose.
//!
//! ```text
//! cargo run --example custom_harness -- --test-threads 1
//! cargo run --example custom_harness -- --help   # libtest's flags, the runner's, the variables
//! ```
//!
//! The ignored `exits_the_process` ends the process in the middle of the
//! run, as a test calling `std::process::exit(0)` does; the runner fails the
//! run anyway (`-- --ignored` shows it).

use tt_memguard::prelude::*;
use tt_memguard::runner::{Harness, Test};

fn fits_in_l1(dev: &Device) -> TestResult {
    let a = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
    let b = dev.allocate(BufferType::Dram, 8 * MIB, 2048)?;
    drop((a, b));
    Ok(())
}

fn leaks_a_buffer(dev: &Device) -> TestResult {
    let weights = dev
        .buffer(BufferType::Dram, MIB)
        .page_size(2048)
        .label("weights")
        .allocate()?;
    std::mem::forget(weights);
    Ok(())
}

fn over_budget_peak(dev: &Device) -> TestResult {
    let _scratch = dev.allocate(BufferType::L1, MIB, 2048)?;
    Ok(())
}

fn panics_midway(dev: &Device) {
    let _a = dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap();
    panic!("kernel produced wrong results");
}

fn returns_an_error(dev: &Device) -> TestResult {
    dev.allocate(BufferType::L1, 3000, 2048)?;
    Ok(())
}

fn needs_hardware(_dev: &Device) -> TestResult {
    Ok(())
}

fn exits_the_process(_dev: &Device) -> TestResult {
    std::process::exit(0);
}

fn main() -> std::process::ExitCode {
    Harness::new()
        .manifest_dir(env!("CARGO_MANIFEST_DIR"))
        .add_test(Test::new("fits_in_l1", fits_in_l1).budget(Budget::new().l1_peak("512 KiB")))
        .test("leaks_a_buffer", leaks_a_buffer)
        .test("over_budget_peak", over_budget_peak)
        .test("panics_midway", panics_midway)
        .test("returns_an_error", returns_an_error)
        .add_test(Test::new("needs_hardware", needs_hardware).ignore())
        .add_test(Test::new("exits_the_process", exits_the_process).ignore())
        .run()
}

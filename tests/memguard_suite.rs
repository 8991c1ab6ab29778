//! A suite run by the memguard runner itself (`harness = false`): what a
//! kernel developer's test file looks like. Runs under `cargo test` and
//! `cargo nextest run`.

use tt_memguard::prelude::*;
use tt_memguard::runner::Harness;

fn matmul_fits_in_l1(dev: &Device) -> TestResult {
    let a = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
    let b = dev.allocate(BufferType::Dram, 8 * MIB, 2048)?;
    assert_eq!(a.address(), 0x16_D000); // the top of every core's L1
    drop((a, b));
    Ok(())
}

fn conv_does_not_leak(dev: &Device) -> TestResult {
    let addr = assert_no_leak!(dev, {
        let w = dev.allocate(BufferType::Dram, MIB, 2048)?;
        w.address()
    });
    assert_eq!(addr, 0x10_0040);
    Ok(())
}

/// A test in a module is named by its path, as libtest names it:
/// `main!(kernels::sharded_fits_the_budget)` runs the test
/// `kernels::sharded_fits_the_budget`.
mod kernels {
    use tt_memguard::prelude::*;

    pub fn sharded_fits_the_budget(dev: &Device) -> TestResult {
        assert_memory_budget!(dev, l1_per_bank <= "16 KiB", {
            let _s = dev.allocate_sharded(BufferType::L1, 64 * 16 * KIB, 4 * KIB, 64)?;
        });
        Ok(())
    }
}

fn nothing_allocated(_dev: &Device) {}

// Its own budget file: the package's memguard.toml holds the budgets of the
// custom_harness example.
tt_memguard::main! {
    harness = Harness::new().config_file("tests/data/memguard_suite.toml");
    tests = matmul_fits_in_l1, conv_does_not_leak, kernels::sharded_fits_the_budget, nothing_allocated
}

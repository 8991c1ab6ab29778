//! Budgets, one idea at a time: device totals and per-bank limits, leaks
//! allowed up to a size, a fragmentation floor, a tolerance, and how a
//! `memguard.toml` and environment variables layer over the budget in code.
//!
//! ```text
//! cargo run --example budgets
//! ```

use std::path::Path;

use tt_memguard::render::format_bytes;
use tt_memguard::runner::BudgetConfig;
use tt_memguard::{Allow, Budget, BufferType, KIB, MIB, MemoryGuard, SimDevice};

fn main() -> tt_memguard::Result<()> {
    let dev = SimDevice::wormhole_b0();

    // Device totals and per bank: an L1 kernel must fit in every core.
    let guard = MemoryGuard::new(&dev).name("per_bank").budget(
        Budget::new()
            .l1_peak("1 MiB") // over all 64 banks
            .l1_peak_per_bank("8 KiB") // and in each core
            .min_largest_free(BufferType::L1, "1 MiB") // no fragmentation below 1 MiB
            .tolerance("4 KiB"),
    );
    let tiles = dev.allocate_sharded(BufferType::L1, 64 * 12 * KIB, 4 * KIB, 64)?; // 12 KiB per core
    drop(tiles);
    match guard.finish() {
        Ok(report) => println!("{report}"),
        Err(e) => println!(
            "{}",
            e.memory_report()
                .map(|r| r.to_string())
                .unwrap_or_else(|| e.to_string())
        ),
    }

    // Caches that outlive the scope: allowed by label, reported apart.
    let guard = MemoryGuard::new(&dev)
        .name("program_cache")
        .allow(Allow::label("cache*"));
    std::mem::forget(
        dev.buffer(BufferType::Dram, 4 * MIB)
            .page_size(4096)
            .label("cache.kernels")
            .allocate()?,
    );
    println!("{}", guard.finish()?);

    // CI budgets: a file overrides code, the environment overrides the file.
    let file = BudgetConfig::parse(
        "[defaults]\nl1_peak = \"512 KiB\"\n\n[tests.\"conv_*\"]\nl1_peak = \"2 MiB\"\n",
        Path::new("memguard.toml"),
    )?;
    let code = Budget::new().l1_peak("256 KiB").dram_peak("64 MiB");
    for test in ["matmul_small", "conv_3x3"] {
        let budget = file.budget_for(test, &code);
        let l1 = budget.pool(BufferType::L1).peak.clone().expect("set");
        let dram = budget.pool(BufferType::Dram).peak.clone().expect("set");
        println!(
            "{test:<13} L1 peak {:>8} from {:<30} DRAM peak {:>8} from {}",
            format_bytes(l1.bytes),
            l1.source.to_string(),
            format_bytes(dram.bytes),
            dram.source
        );
    }
    let env = BudgetConfig::from_env([("TT_MEMGUARD_L1_PEAK".to_string(), "128KiB".to_string())])?;
    let budget = file.budget_for("conv_3x3", &code).overlay(&env);
    let l1 = budget.pool(BufferType::L1).peak.clone().expect("set");
    println!(
        "with TT_MEMGUARD_L1_PEAK=128KiB: conv_3x3 L1 peak {} from {}",
        format_bytes(l1.bytes),
        l1.source
    );

    // A bad size is an error that names it.
    if let Err(e) = Budget::new().l1_peak("12 XB").validate() {
        println!("\n{e}");
    }
    Ok(())
}

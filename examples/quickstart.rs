//! The main job in miniature: a small memory-checked suite on the default
//! simulated Wormhole, with the reports a kernel developer would read.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use tt_memguard::render::{ColorChoice, format_bytes, snapshot_table};
use tt_memguard::{
    Budget, BufferType, Device, KIB, MIB, MemoryGuard, SimDevice, try_assert_no_leak,
};

/// A matmul that keeps its tiles in L1 and its weights in DRAM.
fn matmul(dev: &Device) -> tt_memguard::Result<()> {
    let _a = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
    let _b = dev.allocate(BufferType::L1, 128 * KIB, 2048)?;
    let _w = dev.allocate(BufferType::Dram, 8 * MIB, 2048)?;
    Ok(())
}

/// A conv that forgets its weights buffer.
fn leaky_conv(dev: &Device) -> tt_memguard::Result<()> {
    let w = dev
        .buffer(BufferType::Dram, MIB)
        .page_size(2048)
        .label("conv_weights")
        .allocate()?;
    std::mem::forget(w);
    Ok(())
}

fn main() -> tt_memguard::Result<()> {
    let color = ColorChoice::Auto.for_stdout();
    let dev = SimDevice::wormhole_b0();
    println!("{}", snapshot_table(dev.name(), &dev.snapshot()?, color));

    // 1. A budgeted scope: L1 peak within 512 KiB, DRAM within 64 MiB.
    let guard = MemoryGuard::new(&dev)
        .name("matmul_fits_in_l1")
        .budget(Budget::new().l1_peak("512 KiB").dram_peak("64 MiB"));
    matmul(&dev)?;
    let report = guard.finish()?;
    println!("{}", report.render(color));

    // 2. The same kernel against a tighter budget: it fails, and says why.
    let guard = MemoryGuard::new(&dev)
        .name("matmul_fits_in_256k")
        .budget(Budget::new().l1_peak("256 KiB"));
    matmul(&dev)?;
    if let Err(e) = guard.finish() {
        println!(
            "{}",
            e.memory_report()
                .map(|r| r.render(color))
                .unwrap_or_else(|| e.to_string())
        );
    }

    // 3. A leak, named with its size, banks, address and the line that
    //    allocated it.
    let result = try_assert_no_leak!(dev, { leaky_conv(&dev)? });
    if let Err(e) = &result {
        println!(
            "{}",
            e.memory_report()
                .map(|r| r.render(color))
                .unwrap_or_else(|| e.to_string())
        );
    }

    println!("What is still live on the device:");
    for a in dev.live_allocations()? {
        println!(
            "  {:<4} {:>9} at {:#09x}  {} per bank x {} banks  {}",
            a.buffer_type,
            format_bytes(a.size),
            a.address,
            format_bytes(a.size_per_bank),
            a.num_banks,
            a.location.map(|l| l.to_string()).unwrap_or_default()
        );
    }
    println!();
    println!("{}", snapshot_table(dev.name(), &dev.snapshot()?, color));
    Ok(())
}

//! The quickstart on a TT-Metal device (real, or TT-Metal's mock device
//! mode): open it, allocate a few buffers inside a leak check, show every
//! pool, and show which buffers TT-Metal itself reported.
//!
//! ```text
//! # TT_METAL_RUNTIME_ROOT and, for mock mode, TT_METAL_MOCK_CLUSTER_DESC_PATH
//! # set as README.md ("TT-Metal users") describes
//! cargo run --features tt-metal --example tt_metal_device
//! ```

use tt_memguard::render::{ColorChoice, format_bytes, snapshot_table};
use tt_memguard::{BufferType, KIB, MIB, TtMetalConfig, TtMetalDevice, assert_no_leak};

fn main() -> tt_memguard::Result<()> {
    let color = ColorChoice::Auto.for_stdout();
    let dev = TtMetalDevice::open(TtMetalConfig {
        l1_small_size: 32 * KIB,
        trace_region_size: 8 * MIB,
        ..TtMetalConfig::default()
    })?;
    println!("{}", snapshot_table(dev.name(), &dev.snapshot()?, color));

    assert_no_leak!(dev, {
        let buffers = vec![
            dev.allocate(BufferType::Dram, MIB, 2048)?,
            dev.allocate(BufferType::Dram, 8 * MIB, 2048)?,
            dev.allocate(BufferType::L1, 256 * KIB, 2048)?,
            dev.allocate_sharded(BufferType::L1Small, 8 * KIB, 2 * KIB, 4)?,
        ];
        println!("Live allocations, as TT-Metal's graph tracker reported them:");
        for a in dev.live_allocations()? {
            println!(
                "  #{:<3} {:<8} {:>9} at {:#011x}  {:>10} per bank x {} banks",
                a.id,
                a.buffer_type,
                format_bytes(a.size),
                a.address,
                format_bytes(a.size_per_bank),
                a.num_banks
            );
        }
        println!();
        println!("{}", snapshot_table(dev.name(), &dev.snapshot()?, color));
        drop(buffers);
    });
    println!("After the leak check: nothing left allocated.");
    Ok(())
}

//! The main job in miniature: open the default simulated Wormhole, allocate a
//! few DRAM and L1 buffers, show every pool, free them and show it again.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use tt_memguard::{BufferType, ColorChoice, KIB, MIB, SimDevice, format_bytes, snapshot_table};

fn main() -> tt_memguard::Result<()> {
    let color = ColorChoice::Auto.for_stdout();
    let dev = SimDevice::wormhole_b0();
    println!("{}", snapshot_table(dev.name(), &dev.snapshot()?, color));

    let buffers = vec![
        dev.allocate(BufferType::Dram, MIB, 2048)?,
        dev.allocate(BufferType::Dram, 3 * MIB, 2048)?,
        dev.allocate(BufferType::Dram, 8 * MIB, 2048)?,
        dev.allocate(BufferType::L1, 64 * KIB, 2048)?,
        dev.allocate(BufferType::L1, 256 * KIB, 2048)?,
        dev.allocate_sharded(BufferType::L1, 512 * KIB, 4096, 8)?,
    ];
    println!("Allocated:");
    for b in &buffers {
        println!(
            "  {:<4} {:>9} at {:#09x}  {:>10} per bank x {} banks{}",
            b.buffer_type(),
            format_bytes(b.size()),
            b.address(),
            format_bytes(b.per_bank_size()),
            b.num_banks(),
            b.shards()
                .map(|s| format!(" (sharded over {s} cores)"))
                .unwrap_or_default()
        );
    }
    println!();
    println!("{}", snapshot_table(dev.name(), &dev.snapshot()?, color));

    drop(buffers);
    println!("After freeing everything:");
    println!("{}", snapshot_table(dev.name(), &dev.snapshot()?, color));
    Ok(())
}

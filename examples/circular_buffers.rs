//! Circular buffers: a kernel's whole L1. A matmul-shaped program (in0, in1
//! and out CBs on every core of the 8x8 grid) next to its output tensor in
//! L1 fits on a Wormhole, then clashes once the device is opened with a
//! 64 KiB `l1_small_size`: L1 buffers grow down from below L1_SMALL, CBs grow
//! up from the bottom of L1, and the carve-out pushes the output into the CB
//! region. The failure prints TT-Metal's message and what would make it fit,
//! which the last run follows.
//!
//! ```text
//! cargo run --example circular_buffers
//! ```

use tt_memguard::render::format_count;
use tt_memguard::{
    BufferType, CircularBufferConfig, CoreRange, Device, Error, KIB, Preset, SimDevice,
};

/// 2 KiB tiles (bfloat16 32x32).
const TILE: u64 = 2048;

/// `tiles` tiles serving buffer index `index`.
fn tiles(tiles: u64, index: u8) -> CircularBufferConfig {
    CircularBufferConfig::new(tiles * TILE).page_size(index, TILE)
}

/// One matmul block on every core: 128 tiles of in0 (activations), 128 of
/// in1 (weights), 64 of out, and the output tensor, 700 KiB per bank, in L1.
fn matmul(dev: &Device) -> Result<(), Error> {
    let grid = CoreRange::new((0, 0), (7, 7))?;
    let mut program = dev.create_program()?;
    program.add_circular_buffer(grid, tiles(128, 0))?; // in0
    program.add_circular_buffer(grid, tiles(128, 1))?; // in1
    program.add_circular_buffer(grid, tiles(64, 16))?; // out
    let output = dev
        .buffer(BufferType::L1, 64 * 700 * KIB)
        .page_size(TILE)
        .label("matmul output")
        .allocate()?;
    let run = dev.enqueue(&mut program)?;
    for (cb, name) in program.circular_buffers().iter().zip(["in0", "in1", "out"]) {
        println!(
            "  CB {name:<3} (index {:>2}) {:>7} B at {:#x}",
            cb.indices[0],
            format_count(cb.size),
            cb.address.unwrap_or_default()
        );
    }
    println!(
        "  CB region {:#x}..{:#x} ({} B per core), output at {:#x}: {} B to spare",
        run.base,
        run.cb_end,
        format_count(run.cb_bytes_per_core),
        output.address(),
        format_count(run.headroom)
    );
    Ok(())
}

fn open(l1_small_size: u64) -> Result<Device, Error> {
    SimDevice::builder(Preset::WormholeB0)
        .l1_small_size(l1_small_size)
        .build()
}

fn main() -> Result<(), Error> {
    println!("Wormhole, default carve-out:");
    matmul(&open(0)?)?;

    println!("\nWormhole opened with l1_small_size = 64 KiB:");
    let failure = match matmul(&open(64 * KIB)?) {
        Err(Error::CircularBuffers(failure)) => failure,
        other => panic!("expected a circular-buffer clash, got {other:?}"),
    };
    println!("{failure}");

    // The explanation's last suggestion, followed: the largest carve-out
    // that still lifts the output above the CB region.
    let step = failure.overlap().div_ceil(failure.granularity) * failure.granularity;
    let fitting = failure.l1_small_size - step;
    println!(
        "\nWormhole opened with l1_small_size = {} B:",
        format_count(fitting)
    );
    matmul(&open(fitting)?)
}

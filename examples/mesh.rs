//! A model's memory on a T3000, TT-Metal's 2x4 mesh of n300 chips: the
//! weights are mesh buffers (one place, every chip), a halo buffer lives on
//! one chip alone, and a per-chip buffer that TT-Metal would put on top of
//! the weights is refused, naming both.
//!
//! ```text
//! cargo run --example mesh
//! TT_MEMGUARD_DEVICE=sim:galaxy cargo run --example custom_harness   # the runner on a mesh
//! ```

use tt_memguard::{BufferType, Direction, KIB, MIB, MemoryGuard, SimMesh};

fn main() -> Result<(), tt_memguard::Error> {
    let mesh = SimMesh::t3000();
    println!(
        "{} is a {} mesh of {} chips",
        mesh.name(),
        mesh.shape(),
        mesh.shape().chips()
    );
    let guard = MemoryGuard::new(&mesh).name("decoder_layer");

    // Mesh buffers: placed once, by one allocator, at the same address on all 8 chips.
    let weights = mesh
        .buffer(BufferType::Dram, 64 * MIB)
        .page_size(2048)
        .label("weights")
        .allocate()?;
    let activations = mesh
        .buffer(BufferType::L1, 56 * 96 * KIB)
        .page_size(2048)
        .label("activations")
        .allocate()?;
    println!(
        "weights at {:#x}, activations at {:#x} on every chip",
        weights.address(),
        activations.address()
    );

    // Chip [0,1]'s own allocator does not see the mesh's buffers: TT-Metal would place this
    // one at the DRAM base, on the weights.
    let chip = mesh.chip((0, 1))?;
    match chip
        .buffer(BufferType::Dram, MIB)
        .page_size(2048)
        .label("halo")
        .allocate()
    {
        Ok(_) => unreachable!("it lies on the weights"),
        Err(e) => println!("refused: {e}"),
    }
    // From the other end of DRAM it lands clear of them, on chip [0,1] alone.
    let halo = chip
        .buffer(BufferType::Dram, MIB)
        .page_size(2048)
        .label("halo")
        .direction(Direction::TopDown)
        .allocate()?;
    println!("halo at {:#x} on chip [0,1] only", halo.address());

    drop((weights, activations, halo));
    // The mesh as one device (one chip's figures, every chip's), and the chip that was used.
    let report = guard.finish()?;
    println!("{report}");
    Ok(())
}

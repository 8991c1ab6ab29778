//! The TT-Metal backend on the real library next to the simulated device, in
//! the same run (cargo feature `tt-metal`; TT-Metal's environment as in
//! README.md, "TT-Metal users"):
//! - snapshot of all pools with 10 / 1,000 / 10,000 live buffers: TT-Metal's
//!   statistics scan every block, the simulator keeps them up to date;
//! - allocate + free pairs per second through the crate's `Device` (the
//!   real one runs `MeshBuffer::create` + `deallocate` and the graph
//!   processor's events), with 100 live buffers.
//!
//! Run with `cargo bench --features tt-metal --bench tt_metal`.

mod common;

use std::hint::black_box;

use tt_memguard::{Buffer, BufferType, Device, SimDevice, TtMetalConfig, TtMetalDevice};

/// `live` single-page DRAM buffers with a free hole after each.
fn populate(dev: &Device, live: usize) -> Vec<Buffer> {
    let mut keep = Vec::with_capacity(live);
    let mut holes = Vec::with_capacity(live);
    for i in 0..2 * live {
        let b = dev.allocate(BufferType::Dram, 2048, 2048).unwrap();
        if i % 2 == 0 {
            keep.push(b)
        } else {
            holes.push(b)
        }
    }
    drop(holes);
    keep
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing.
    let quick = !std::env::args().any(|a| a == "--bench");
    let real = TtMetalDevice::open(TtMetalConfig::default()).expect("opening the TT-Metal device");
    let preset = TtMetalDevice::matching_preset(&real)
        .unwrap()
        .expect("a device with a simulated preset's geometry");
    let sim = SimDevice::preset(preset);
    println!("{} (libtt_metal.so) next to sim:{preset}", real.name());

    let sizes: &[usize] = if quick {
        &[10, 1_000]
    } else {
        &[10, 1_000, 10_000]
    };
    for &live in sizes {
        let (keep_real, keep_sim) = (populate(&real, live), populate(&sim, live));
        let iters = if quick {
            200
        } else {
            (2_000_000 / (live as u32 + 100)).max(200)
        };
        let t_real = common::time_per_call(iters, || {
            black_box(real.snapshot().unwrap());
        });
        let t_sim = common::time_per_call(iters, || {
            black_box(sim.snapshot().unwrap());
        });
        println!(
            "snapshot, {live:>6} live buffers:  tt-metal {:>9.3} us   sim {:>9.3} us   sim is {:>6.1}x faster",
            t_real.as_secs_f64() * 1e6,
            t_sim.as_secs_f64() * 1e6,
            t_real.as_secs_f64() / t_sim.as_secs_f64()
        );
        drop((keep_real, keep_sim));
    }

    let (keep_real, keep_sim) = (populate(&real, 100), populate(&sim, 100));
    let iters = if quick { 1_000 } else { 50_000 };
    let pair = |dev: &Device| {
        common::time_per_call(iters, || {
            black_box(dev.allocate(BufferType::Dram, 2048, 2048).unwrap());
        })
    };
    let (t_real, t_sim) = (pair(&real), pair(&sim));
    println!(
        "allocate + free, 100 live buffers: tt-metal {:>9.0} pairs/s   sim {:>9.0} pairs/s   sim is {:>6.1}x faster",
        1.0 / t_real.as_secs_f64(),
        1.0 / t_sim.as_secs_f64(),
        t_real.as_secs_f64() / t_sim.as_secs_f64()
    );
    drop((keep_real, keep_sim));
}

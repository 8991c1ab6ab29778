//! Trace throughput, each figure next to a baseline measured in the same
//! run: parsing and replaying a generated 1,000,000-operation trace
//! (allocations and frees of DRAM and L1, interleaved and sharded, both
//! directions, about 1,000 buffers live), in operations per second, against
//! the bare allocate + free pairs of `benches/sim.rs` (one pair is two
//! operations); and allocate + free pairs while the device is recorded
//! ([`Device::record`](tt_memguard::Device::record)) against the same pairs
//! unrecorded.
//!
//! Run with `cargo bench --bench replay`.

mod common;

use std::hint::black_box;
use std::time::Instant;

use tt_memguard::{BufferType, SimDevice, Trace};

/// SplitMix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A trace of `ops` allocations and frees hovering around 1,000 live
/// buffers on a Wormhole (at most 2 KiB of L1 per bank each, so that every
/// one fits), without expected addresses (generated, not recorded).
fn generated(ops: usize) -> String {
    let mut state = 0x7265_706c_6179;
    let mut text = String::with_capacity(ops * 40);
    text.push_str("device wh\n");
    let mut live: Vec<u64> = Vec::new();
    let mut next_id = 0u64;
    for _ in 0..ops {
        let r = next(&mut state);
        if !live.is_empty() && r % 2000 < (live.len() as u64).min(1999) {
            let i = (r >> 16) as usize % live.len();
            text.push_str(&format!("free b{}\n", live.swap_remove(i)));
            continue;
        }
        let pages = 1 + (r >> 20) % 64;
        let line = match (r >> 8) % 4 {
            0 | 1 => format!("alloc b{next_id} DRAM {} 2048 def", pages * 2048 * 12),
            2 => format!("alloc b{next_id} L1 {} 2048 td", pages * 2048),
            _ => format!(
                "alloc b{next_id} L1 {} 2048 bu shards 8",
                pages.min(8) * 2048
            ),
        };
        text.push_str(&line);
        text.push('\n');
        live.push(next_id);
        next_id += 1;
    }
    text
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing:
    // then run a quick smoke pass only.
    let quick = !std::env::args().any(|a| a == "--bench");
    let ops = if quick { 10_000 } else { 1_000_000 };

    // The baseline: bare allocate + free pairs with 1,000 live buffers.
    let dev = SimDevice::wormhole_b0();
    let _keep: Vec<_> = (0..1_000)
        .map(|_| dev.allocate(BufferType::Dram, 12 * 64, 64).unwrap())
        .collect();
    let pair = common::time_per_call(20_000, || {
        black_box(dev.allocate(BufferType::Dram, 12 * 64, 64).unwrap());
    });
    let bare_ops = 2.0 / pair.as_secs_f64();

    let text = generated(ops);
    let start = Instant::now();
    let trace = Trace::parse(&text).unwrap();
    let parse = start.elapsed().as_secs_f64();
    let replay_dev = trace.open_sim().unwrap();
    let (mut lines, mut refused) = (0usize, 0usize);
    let start = Instant::now();
    trace
        .replay(&replay_dev, |line| {
            lines += 1;
            refused += usize::from(line.contains(" ERR:"));
            black_box(line);
        })
        .unwrap();
    let replay = start.elapsed().as_secs_f64();
    assert_eq!(lines, ops + 1);
    // Every allocation fits: refusals (and their explanations) are not what is measured.
    assert_eq!(refused, 0);

    println!("trace throughput ({ops} operations, about 1,000 buffers live)");
    println!(
        "{:>34} {:>14} {:>32} {:>8}",
        "", "ops/s", "bare allocate + free (base)", "ratio"
    );
    let row = |what: &str, seconds: f64| {
        let rate = ops as f64 / seconds;
        println!(
            "{what:>34} {:>10.0} k/s {:>28.0} k/s {:>7.2}x",
            rate / 1e3,
            bare_ops / 1e3,
            rate / bare_ops
        );
    };
    row("parse", parse);
    row("replay (a printed line per step)", replay);
    row("parse + replay", parse + replay);
    println!("  (bare: one allocate or free through Device, with 1,000 live buffers)");

    println!();
    println!("allocate + free pairs while the device is recorded (1,000 live buffers)");
    let recording = dev.record().unwrap();
    let recorded = common::time_per_call(if quick { 2_000 } else { 20_000 }, || {
        black_box(dev.allocate(BufferType::Dram, 12 * 64, 64).unwrap());
    });
    let trace = recording.finish().unwrap();
    black_box(trace.ops.len());
    println!(
        "{:>13.1} ns recorded {:>13.1} ns unrecorded (base) {:>7.2}x",
        recorded.as_secs_f64() * 1e9,
        pair.as_secs_f64() * 1e9,
        recorded.as_secs_f64() / pair.as_secs_f64()
    );
}

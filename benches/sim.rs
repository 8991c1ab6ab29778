//! Simulated-device performance, each figure next to a baseline measured in
//! the same run:
//! - snapshot of all pools with 10 / 1,000 / 100,000 live buffers, against a
//!   full block scan (what TT-Metal does for its statistics);
//! - allocate + free pairs per second with the same live sets, against a
//!   linear first-fit free list;
//! - enqueue validation of a 32-CB program over five core ranges, enqueued
//!   again after its first layout, against a bare snapshot;
//! - host memory of a 100,000-buffer workload.
//!
//! Run with `cargo bench --bench sim`.

mod common;

use std::hint::black_box;

use tt_memguard::{
    __private::scan_snapshot, Buffer, BufferType, CircularBufferConfig, CoreRange, Device, KIB,
    Program, SimDevice,
};

/// A device with `live` DRAM buffers and as many free holes between them.
fn populated(live: usize) -> (Device, Vec<Buffer>) {
    let dev = SimDevice::wormhole_b0();
    let mut keep = Vec::with_capacity(live);
    let mut holes = Vec::with_capacity(live);
    for i in 0..2 * live {
        let b = dev.allocate(BufferType::Dram, 12 * 64, 64).unwrap();
        if i % 2 == 0 {
            keep.push(b)
        } else {
            holes.push(b)
        }
    }
    drop(holes);
    (dev, keep)
}

/// Baseline allocator: free blocks in a sorted Vec, first fit by linear
/// search, coalescing by neighbour checks.
struct LinearFirstFit {
    free: Vec<(u64, u64)>,
}

impl LinearFirstFit {
    fn allocate(&mut self, size: u64) -> Option<u64> {
        let i = self.free.iter().position(|&(_, s)| s >= size)?;
        let (addr, s) = self.free[i];
        if s == size {
            self.free.remove(i);
        } else {
            self.free[i] = (addr + size, s - size);
        }
        Some(addr)
    }

    fn deallocate(&mut self, addr: u64, size: u64) {
        let i = self.free.partition_point(|&(a, _)| a < addr);
        let joins_prev = i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == addr;
        let joins_next = i < self.free.len() && addr + size == self.free[i].0;
        match (joins_prev, joins_next) {
            (true, true) => {
                self.free[i - 1].1 += size + self.free[i].1;
                self.free.remove(i);
            }
            (true, false) => self.free[i - 1].1 += size,
            (false, true) => self.free[i] = (addr, size + self.free[i].1),
            (false, false) => self.free.insert(i, (addr, size)),
        }
    }
}

fn linear_populated(live: usize) -> LinearFirstFit {
    let mut a = LinearFirstFit {
        free: vec![(0, 1 << 30)],
    };
    let addrs: Vec<u64> = (0..2 * live).map(|_| a.allocate(64).unwrap()).collect();
    for (i, addr) in addrs.into_iter().enumerate() {
        if i % 2 == 1 {
            a.deallocate(addr, 64);
        }
    }
    a
}

/// 32 circular buffers of 4 KiB: indices 0-7 on the whole 8x8 grid, then
/// indices 8-13 on each quadrant (five core ranges, one region each).
fn program_of_32_cbs(dev: &Device) -> Program {
    let range = |x0, y0, x1, y1| CoreRange::new((x0, y0), (x1, y1)).unwrap();
    let cb = |index| CircularBufferConfig::new(4 * KIB).page_size(index, 2 * KIB);
    let mut program = dev.create_program().unwrap();
    for index in 0..8 {
        program
            .add_circular_buffer(range(0, 0, 7, 7), cb(index))
            .unwrap();
    }
    for quadrant in [
        range(0, 0, 3, 3),
        range(4, 0, 7, 3),
        range(0, 4, 3, 7),
        range(4, 4, 7, 7),
    ] {
        for index in 8..14 {
            program.add_circular_buffer(quadrant, cb(index)).unwrap();
        }
    }
    assert_eq!(program.circular_buffers().len(), 32);
    program
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing:
    // then run a quick smoke pass only.
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if quick {
        &[10, 1_000]
    } else {
        &[10, 1_000, 100_000]
    };

    println!("snapshot of all pools (simulated Wormhole)");
    println!(
        "{:>10} {:>14} {:>18} {:>8}",
        "live", "snapshot", "block scan (base)", "ratio"
    );
    for &live in sizes {
        let (dev, _keep) = populated(live);
        let iters = if live >= 100_000 { 50 } else { 20_000 };
        let fast = common::time_per_call(20_000, || {
            black_box(dev.snapshot().unwrap());
        });
        let scan = common::time_per_call(iters, || {
            black_box(scan_snapshot(&dev).unwrap());
        });
        println!(
            "{live:>10} {:>11.1} ns {:>15.1} ns {:>7.1}x",
            fast.as_secs_f64() * 1e9,
            scan.as_secs_f64() * 1e9,
            scan.as_secs_f64() / fast.as_secs_f64()
        );
    }

    println!();
    println!("allocate + free pairs (DRAM, 12 pages of 64 B)");
    println!(
        "{:>10} {:>16} {:>22} {:>8}",
        "live", "simulated", "linear list (base)", "ratio"
    );
    for &live in sizes {
        let (dev, _keep) = populated(live);
        let pairs = common::time_per_call(20_000, || {
            black_box(dev.allocate(BufferType::Dram, 12 * 64, 64).unwrap());
        });
        let mut linear = linear_populated(live);
        let base_iters = if live >= 100_000 { 200 } else { 20_000 };
        let base = common::time_per_call(base_iters, || {
            // Allocate at the end of the free list: the worst case of a
            // linear search, as a steady state with many holes is.
            let addr = linear.allocate(128).unwrap();
            linear.deallocate(black_box(addr), 128);
        });
        println!(
            "{live:>10} {:>11.0} k/s {:>17.0} k/s {:>7.1}x",
            1e-3 / pairs.as_secs_f64(),
            1e-3 / base.as_secs_f64(),
            base.as_secs_f64() / pairs.as_secs_f64()
        );
    }
    println!(
        "  (TT-Metal's MeshBuffer create + deallocate measured 350-585 k pairs/s; target: 5x that)"
    );

    println!();
    println!(
        "enqueue validation for a 32-CB program (simulated Wormhole, 5 core ranges, 100 live L1 buffers)"
    );
    println!(
        "{:>16} {:>22} {:>8}",
        "enqueue", "bare snapshot (base)", "ratio"
    );
    {
        let dev = SimDevice::wormhole_b0();
        // Live L1 buffers, so that the clash check has a lowest one to find.
        let _l1: Vec<Buffer> = (0..100)
            .map(|_| dev.allocate(BufferType::L1, 64 * 2 * KIB, 2048).unwrap())
            .collect();
        let mut program = program_of_32_cbs(&dev);
        assert!(dev.enqueue(&mut program).unwrap().laid_out_now);
        let enqueue = common::time_per_call(20_000, || {
            black_box(dev.enqueue(&mut program).unwrap());
        });
        let snapshot = common::time_per_call(20_000, || {
            black_box(dev.snapshot().unwrap());
        });
        println!(
            "{:>13.1} ns {:>19.1} ns {:>7.1}x",
            enqueue.as_secs_f64() * 1e9,
            snapshot.as_secs_f64() * 1e9,
            enqueue.as_secs_f64() / snapshot.as_secs_f64()
        );
        println!("  (ratio: an enqueue's validation over one snapshot of all pools)");
    }

    println!();
    let count = if quick { 1_000 } else { 100_000 };
    let before = resident_bytes();
    let dev = SimDevice::wormhole_b0();
    let keep: Vec<Buffer> = (0..count)
        .map(|_| dev.allocate(BufferType::Dram, 12 * 64, 64).unwrap())
        .collect();
    let after = resident_bytes();
    println!(
        "host memory: {count} live buffers add {:.1} MiB resident, Buffer handles included (target: under 50 MiB for 100,000)",
        (after.saturating_sub(before)) as f64 / (1 << 20) as f64
    );
    drop(keep);
    drop(dev);
}

//! The differential test: seeded random traces of allocations and frees,
//! replayed on the simulated device and on TT-Metal's real allocator, must
//! print identical lines (addresses and the statistics of every pool after
//! every step). A difference is a simulator bug, never a tolerance.
#![cfg(feature = "tt-metal")]

mod common;

use tt_memguard::{Preset, SimDevice, Trace, TtMetalConfig, TtMetalDevice};

/// Traces per device kind and operations per trace: 12,000 operations.
const TRACES: u64 = 6;
const OPS_PER_TRACE: usize = 2_000;

/// SplitMix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        common::splitmix64(&mut self.0)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// Log-uniform in `1..=2^max_log2`.
    fn pages(&mut self, max_log2: u64) -> u64 {
        let bits = self.range(0, max_log2);
        self.range(1 << bits >> 1, 1 << bits).max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.next() as usize % items.len()]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.range(1, 100) <= percent
    }
}

/// A random trace for `preset` with `cores` compute cores: DRAM, L1 and
/// TRACE interleaved, L1 and L1_SMALL sharded, both directions, with
/// carve-outs, some refused requests, and frees of live and unknown ids.
fn random_trace(seed: u64, preset: Preset, cores: u32) -> String {
    let mut rng = Rng(seed);
    let device = match preset {
        Preset::WormholeB0 => "wh",
        Preset::WormholeN300 => "n300",
        Preset::BlackholeP150 => "bh",
    };
    let l1_small = rng.pick(&[0, 1000, 4100, 32 * 1024, 64 * 1024, 100_000]);
    let trace = rng.pick(&[0, 100_000, 3 << 20 | 5, 8 << 20, 64 << 20]);
    let mut text = format!(
        "# tt_metal_diff seed {seed}\ndevice {device}\nl1_small {l1_small}\ntrace {trace}\n"
    );
    // Free more often as the live set grows, so that it hovers around `target` buffers: a
    // small live set, a medium one, or a crowded and fragmented device.
    let target = rng.pick(&[20, 60, 250]);
    let mut live: Vec<u64> = Vec::new();
    let mut next_id = 0u64;
    for _ in 0..OPS_PER_TRACE {
        let free_percent = (live.len() as u64 * 100 / (live.len() as u64 + target)).min(70);
        if !live.is_empty() && rng.chance(free_percent) {
            let index = rng.range(0, live.len() as u64 - 1) as usize;
            text.push_str(&format!("free b{}\n", live.swap_remove(index)));
            continue;
        }
        if rng.chance(1) {
            text.push_str("free never_allocated\n");
            continue;
        }
        let direction = rng.pick(&["def", "def", "def", "bu", "td"]);
        let page = rng.pick(&[16, 32, 64, 100, 1000, 1024, 2048, 2048, 4096, 6000]);
        let (pool, pages, shards) = match rng.range(1, 100) {
            1..=30 => ("DRAM", rng.pages(16), None),
            31..=58 => ("L1", rng.pages(11), None),
            59..=70 => {
                let shards = rng.range(1, u64::from(cores));
                (
                    "L1",
                    shards * rng.range(1, 6) - rng.range(0, shards - 1),
                    Some(shards),
                )
            }
            71..=86 => {
                let shards = rng.range(1, u64::from(cores));
                ("L1_SMALL", rng.range(1, shards * 3), Some(shards))
            }
            87..=96 => ("TRACE", rng.pages(9), None),
            97..=98 => ("L1_SMALL", rng.pages(4), None), // refused: interleaved L1_SMALL
            _ => ("DRAM", rng.pages(20) + 1, None),      // often out of memory
        };
        let mut size = pages * page;
        if rng.chance(1) {
            size += 1; // refused: not a whole number of pages
        }
        let id = next_id;
        next_id += 1;
        text.push_str(&format!("alloc b{id} {pool} {size} {page} {direction}"));
        if let Some(shards) = shards {
            text.push_str(&format!(" shards {shards}"));
        }
        text.push('\n');
        live.push(id);
    }
    text
}

#[test]
fn random_traces_give_identical_lines_on_sim_and_tt_metal() {
    let probe = TtMetalDevice::open(TtMetalConfig::default()).expect("opening the TT-Metal device");
    let preset = TtMetalDevice::matching_preset(&probe)
        .unwrap()
        .expect("the TT-Metal device has the geometry of a simulated preset");
    probe.close();
    let cores = SimDevice::preset(preset).info().compute_cores();
    let trace_dir = std::env::var_os("TT_MEMGUARD_DIFF_TRACE_DIR");

    let (mut operations, mut differences, mut refused) = (0usize, 0usize, 0usize);
    for n in 0..TRACES {
        let seed = 0x7474_6d65_7461_6c00 ^ (n * 7919) ^ preset as u64;
        let text = random_trace(seed, preset, cores);
        if let Some(dir) = &trace_dir {
            let path = std::path::Path::new(dir).join(format!("diff-{n}.trace"));
            std::fs::write(&path, &text).unwrap();
        }
        let trace = Trace::parse(&text).unwrap();

        let sim = trace.open_sim().unwrap();
        let real = TtMetalDevice::open(TtMetalConfig {
            l1_small_size: trace.l1_small_size,
            trace_region_size: trace.trace_region_size,
            ..TtMetalConfig::default()
        })
        .unwrap();
        assert_eq!(
            real.snapshot().unwrap(),
            sim.snapshot().unwrap(),
            "fresh device, seed {seed:#x}"
        );
        let (mut on_sim, mut on_real) = (Vec::new(), Vec::new());
        trace.replay(&sim, |l| on_sim.push(l.to_string())).unwrap();
        trace
            .replay(&real, |l| on_real.push(l.to_string()))
            .unwrap();
        assert_eq!(on_sim.len(), trace.ops.len() + 1);
        assert_eq!(on_real.len(), on_sim.len());
        for (step, (s, r)) in on_sim.iter().zip(&on_real).enumerate() {
            if s != r {
                differences += 1;
                if differences <= 5 {
                    let op = step.checked_sub(1).map(|i| &trace.ops[i]);
                    eprintln!(
                        "seed {seed:#x} step {step} {op:?}\n  sim:      {s}\n  tt-metal: {r}"
                    );
                }
            }
        }
        refused += on_real.iter().filter(|l| l.contains(" ERR:")).count();
        operations += trace.ops.len();
        // Replay frees what is still live: both devices are fresh again.
        assert_eq!(real.snapshot().unwrap(), sim.snapshot().unwrap());
        assert_eq!(real.live_count().unwrap(), 0);
        real.close();
    }
    println!(
        "differential: {preset}: {operations} operations ({refused} refused on both), {differences} differences"
    );
    assert_eq!(differences, 0, "the simulator differs from TT-Metal");
    assert!(operations >= 10_000);
}

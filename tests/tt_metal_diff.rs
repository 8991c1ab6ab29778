//! The differential test: seeded random traces of allocations and frees,
//! replayed on the simulated device and on TT-Metal's real allocator, must
//! print identical lines (addresses and the statistics of every pool after
//! every step). A difference is a simulator bug, never a tolerance.
#![cfg(feature = "tt-metal")]

mod common;

use serial_test::serial;

use tt_memguard::{
    Buffer, BufferType, CircularBufferConfig, CoreRange, CoreRangeSet, Device, Direction, Error,
    KIB, L1BankOp, L1BankStep, Preset, Program, SimDevice, SimMesh, Trace, TtMetalConfig,
    TtMetalDevice,
};

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

/// A random trace for `preset` with `cores` compute cores and `dram_banks`
/// DRAM banks: DRAM, L1 and TRACE interleaved, DRAM, L1 and L1_SMALL
/// sharded, both directions, with carve-outs, some refused requests, and
/// frees of live and unknown ids.
fn random_trace(seed: u64, preset: Preset, cores: u32, dram_banks: u32, ops: usize) -> String {
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
    for _ in 0..ops {
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
            1..=21 => ("DRAM", rng.pages(16), None),
            // DRAM-sharded over 1 to all DRAM banks, sometimes with more
            // pages than the shards hold evenly.
            22..=30 => {
                let shards = rng.range(1, u64::from(dram_banks));
                (
                    "DRAM",
                    shards * rng.pages(12) - rng.range(0, shards - 1),
                    Some(shards),
                )
            }
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

/// Replays `trace` on the fresh simulated and TT-Metal devices (`what` names them in
/// messages): both start and end with the same pools, every step prints the same line on both
/// (each difference counts in `differences`, the first five are printed), and the replay
/// frees all it made. Returns how many requests TT-Metal refused.
fn replay_on_both(
    trace: &Trace,
    sim: &Device,
    real: &Device,
    what: &str,
    differences: &mut usize,
) -> usize {
    assert_eq!(
        real.snapshot().unwrap(),
        sim.snapshot().unwrap(),
        "fresh, {what}"
    );
    let (mut on_sim, mut on_real) = (Vec::new(), Vec::new());
    trace.replay(sim, |l| on_sim.push(l.to_string())).unwrap();
    trace.replay(real, |l| on_real.push(l.to_string())).unwrap();
    assert_eq!(on_sim.len(), trace.ops.len() + 1, "{what}");
    assert_eq!(on_real.len(), on_sim.len(), "{what}");
    for (step, (s, r)) in on_sim.iter().zip(&on_real).enumerate() {
        if s != r {
            *differences += 1;
            if *differences <= 5 {
                let op = step.checked_sub(1).map(|i| &trace.ops[i]);
                eprintln!("{what} step {step} {op:?}\n  sim:      {s}\n  tt-metal: {r}");
            }
        }
    }
    // Replay frees what is still live: both devices are fresh again.
    assert_eq!(real.snapshot().unwrap(), sim.snapshot().unwrap(), "{what}");
    assert_eq!(real.live_count().unwrap(), 0, "{what}");
    on_real.iter().filter(|l| l.contains(" ERR:")).count()
}

// TT-Metal has one context per process: one device at a time.
#[test]
#[serial]
fn random_traces_give_identical_lines_on_sim_and_tt_metal() {
    let probe = TtMetalDevice::open(TtMetalConfig::default()).expect("opening the TT-Metal device");
    let preset = TtMetalDevice::matching_preset(&probe)
        .unwrap()
        .expect("the TT-Metal device has the geometry of a simulated preset");
    probe.close();
    let cores = SimDevice::preset(preset).info().compute_cores();
    let dram_banks = SimDevice::preset(preset)
        .snapshot()
        .unwrap()
        .pool(BufferType::Dram)
        .num_banks;
    let trace_dir = std::env::var_os("TT_MEMGUARD_DIFF_TRACE_DIR");

    let (mut operations, mut differences, mut refused) = (0usize, 0usize, 0usize);
    let mut dram_sharded = 0usize;
    for n in 0..TRACES {
        let seed = 0x7474_6d65_7461_6c00 ^ (n * 7919) ^ preset as u64;
        let text = random_trace(seed, preset, cores, dram_banks, OPS_PER_TRACE);
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
        let what = format!("seed {seed:#x}");
        refused += replay_on_both(&trace, &sim, &real, &what, &mut differences);
        dram_sharded += text
            .lines()
            .filter(|l| l.contains(" DRAM ") && l.contains(" shards "))
            .count();
        operations += trace.ops.len();
        real.close();
    }
    println!(
        "differential: {preset}: {operations} operations ({refused} refused on both, {dram_sharded} DRAM-sharded), {differences} differences"
    );
    assert_eq!(differences, 0, "the simulator differs from TT-Metal");
    assert!(operations >= 10_000);
    assert!(dram_sharded >= 400, "{dram_sharded} DRAM-sharded requests");
}

/// Devices per kind and steps per device of the circular-buffer differential test.
const CB_DEVICES: u64 = 4;
const CB_STEPS: usize = 400;

/// What an enqueue found, as both devices must report it: the CB addresses and the report
/// (without TT-Metal's own program id), or the failed check with its numbers.
fn enqueue_outcome(dev: &Device, program: &mut Program) -> String {
    let result = dev.enqueue(program);
    let addresses: Vec<String> = program
        .circular_buffers()
        .iter()
        .map(|cb| cb.address.map_or("-".into(), |a| format!("{a:#x}")))
        .collect();
    let outcome = match result {
        Ok(mut report) => {
            report.program = 0;
            format!("ok {report:?}")
        }
        Err(Error::CircularBuffers(f)) => format!(
            "{:?} range {} end {} limit {} base {}",
            f.check, f.range, f.region_end, f.limit, f.base
        ),
        Err(e) => format!("error {e}"),
    };
    format!("[{}] {outcome}", addresses.join(" "))
}

/// A random rectangle of the grid: often small, sometimes the whole grid.
fn random_range(rng: &mut Rng, grid: (u32, u32)) -> CoreRange {
    let (gx, gy) = (u64::from(grid.0), u64::from(grid.1));
    let pick = |rng: &mut Rng, n: u64| {
        let a = rng.range(0, n - 1);
        let b = rng.range(0, n - 1);
        (a.min(b) as u32, a.max(b) as u32)
    };
    if rng.chance(10) {
        return CoreRange::new((0, 0), (grid.0 - 1, grid.1 - 1)).unwrap();
    }
    let (x0, x1) = pick(rng, gx.min(8));
    let (y0, y1) = pick(rng, gy.min(8));
    CoreRange::new((x0, y0), (x1, y1)).unwrap()
}

/// What the circular-buffer differential found: enqueues, those refused beyond L1 and by a
/// clash on both devices, and the differences.
#[derive(Debug, Default)]
struct CbDiff {
    enqueues: usize,
    beyond: usize,
    clash: usize,
    differences: usize,
}

/// Random programs of 1 to 8 CBs mixed with L1 buffers, enqueued and re-enqueued on `devices`
/// pairs of devices (`open` gives the TT-Metal and the simulated one for an `l1_small_size`),
/// `steps` steps each.
fn cb_differential(
    seed: u64,
    devices: u64,
    steps: usize,
    open: impl Fn(u64) -> (Device, Device),
) -> CbDiff {
    let mut diff = CbDiff::default();
    for n in 0..devices {
        let mut rng = Rng(seed ^ (n * 104_729));
        let l1_small = rng.pick(&[0, 32 * KIB, 64 * KIB, 100_000]);
        let (real, sim) = open(l1_small);
        let grid = real.info().compute_grid;
        let banks = u64::from(real.snapshot().unwrap().pool(BufferType::L1).num_banks);
        let mut buffers: Vec<(Buffer, Buffer)> = Vec::new();
        let mut programs: Vec<(Program, Program)> = Vec::new();
        for step in 0..steps {
            let mut compare = |what: String, s: String, r: String| {
                if s != r {
                    diff.differences += 1;
                    if diff.differences <= 5 {
                        eprintln!(
                            "device {n} step {step} {what}\n  sim:      {s}\n  tt-metal: {r}"
                        );
                    }
                }
            };
            match rng.range(1, 100) {
                // An L1 buffer, interleaved or sharded, usually top-down: it lowers the limit.
                1..=30 => {
                    let per_bank = rng.range(1, 200) * 2 * KIB;
                    let (shards, size) = if rng.chance(25) {
                        let shards = rng.range(1, banks);
                        (Some(shards as u32), shards * per_bank)
                    } else {
                        (None, banks * per_bank)
                    };
                    let allocate = |dev: &Device| match shards {
                        Some(k) => dev.allocate_sharded(BufferType::L1, size, 2048, k),
                        None => dev.allocate(BufferType::L1, size, 2048),
                    };
                    let (s, r) = (allocate(&sim), allocate(&real));
                    let show = |b: &tt_memguard::Result<Buffer>| match b {
                        Ok(b) => format!("at {:#x}", b.address()),
                        Err(e) => format!("error {}", e.to_string().lines().next().unwrap_or("")),
                    };
                    compare(format!("L1 {size} B shards {shards:?}"), show(&s), show(&r));
                    if let (Ok(s), Ok(r)) = (s, r) {
                        buffers.push((s, r));
                    }
                }
                31..=45 if !buffers.is_empty() => {
                    let i = rng.range(0, buffers.len() as u64 - 1) as usize;
                    drop(buffers.swap_remove(i));
                }
                // Enqueue a kept program again: a clash may have appeared, or gone.
                46..=60 if !programs.is_empty() => {
                    let i = rng.range(0, programs.len() as u64 - 1) as usize;
                    let (s, r) = &mut programs[i];
                    let (s, r) = (enqueue_outcome(&sim, s), enqueue_outcome(&real, r));
                    diff.beyond += usize::from(r.contains("] BeyondL1 "));
                    diff.clash += usize::from(r.contains("] Clash "));
                    diff.enqueues += 1;
                    compare("re-enqueue".into(), s, r);
                }
                61..=65 if !programs.is_empty() => {
                    let i = rng.range(0, programs.len() as u64 - 1) as usize;
                    drop(programs.swap_remove(i));
                }
                // A new program of 1 to 8 CBs over random ranges, enqueued.
                _ => {
                    let cbs: Vec<(CoreRangeSet, u64)> = (0..rng.range(1, 8))
                        .map(|_| {
                            let cores = CoreRangeSet::from(random_range(&mut rng, grid));
                            // Mostly small; now and then large enough to pass the end of L1.
                            let size = if rng.chance(5) {
                                rng.range(300, 900) * KIB
                            } else {
                                rng.pages(13) * 32 + rng.range(0, 31) * u64::from(rng.chance(30))
                            };
                            (cores, size)
                        })
                        .collect();
                    let build = |dev: &Device| {
                        let mut p = dev.create_program().unwrap();
                        for (i, (cores, size)) in cbs.iter().enumerate() {
                            let config = CircularBufferConfig::new(*size).page_size(i as u8, *size);
                            p.add_circular_buffer(cores.clone(), config).unwrap();
                        }
                        p
                    };
                    let (mut s, mut r) = (build(&sim), build(&real));
                    let (so, ro) = (
                        enqueue_outcome(&sim, &mut s),
                        enqueue_outcome(&real, &mut r),
                    );
                    diff.beyond += usize::from(ro.contains("] BeyondL1 "));
                    diff.clash += usize::from(ro.contains("] Clash "));
                    diff.enqueues += 1;
                    compare(format!("program {cbs:?}"), so, ro);
                    if programs.len() < 6 && rng.chance(60) {
                        programs.push((s, r));
                    }
                }
            }
        }
        drop(programs);
        drop(buffers);
        assert_eq!(real.live_count().unwrap(), 0);
        real.close();
    }
    diff
}

#[test]
#[serial]
fn random_programs_get_identical_circular_buffers_and_outcomes_on_sim_and_tt_metal() {
    let probe = TtMetalDevice::open(TtMetalConfig::default()).expect("opening the TT-Metal device");
    let preset = TtMetalDevice::matching_preset(&probe)
        .unwrap()
        .expect("the TT-Metal device has the geometry of a simulated preset");
    probe.close();
    let diff = cb_differential(
        0x6362_6469_6666_0000 ^ preset as u64,
        CB_DEVICES,
        CB_STEPS,
        |l1_small| {
            let real = TtMetalDevice::open(TtMetalConfig {
                l1_small_size: l1_small,
                ..TtMetalConfig::default()
            })
            .unwrap();
            (real, common::sim(preset, l1_small, 0))
        },
    );
    let CbDiff {
        enqueues,
        beyond,
        clash,
        differences,
    } = diff;
    println!(
        "differential: {preset}: circular buffers: {enqueues} enqueues ({beyond} beyond L1, {clash} clashes on both), {differences} differences"
    );
    assert_eq!(
        differences, 0,
        "the simulator's circular buffers differ from TT-Metal's"
    );
    assert!(enqueues >= 500, "{enqueues} enqueues");
    assert!(beyond > 0 && clash > 0, "both checks fail at times");
}

/// Traces and operations per trace of the mesh differential test, and devices and steps of its
/// circular-buffer part: a few thousand operations, kept short for CI.
const MESH_TRACES: u64 = 4;
const MESH_OPS_PER_TRACE: usize = 1_500;
const MESH_CB_DEVICES: u64 = 2;
const MESH_CB_STEPS: usize = 120;

/// The system's whole mesh (a 1x2 on an n300, a 2x4 on a T3000) against a simulated mesh of the
/// same shape: random traces of mesh buffers replayed on both must print identical lines (one
/// allocator for every chip, the same addresses and statistics after every step), and random
/// programs enqueued on the whole mesh must get identical circular buffers and outcomes. On a
/// single chip there is no mesh to compare, and the test says so.
#[test]
#[serial]
fn random_traces_on_a_mesh_give_identical_lines_on_sim_and_tt_metal() {
    let probe = TtMetalDevice::open_mesh(None, TtMetalConfig::default())
        .expect("opening the TT-Metal system mesh");
    let shape = probe.shape();
    let preset = TtMetalDevice::matching_preset(&probe)
        .unwrap()
        .expect("every chip of the TT-Metal mesh has the geometry of a simulated preset");
    assert_eq!(probe.info().mesh_shape, Some(shape));
    probe.close();
    if shape.chips() < 2 {
        println!("differential: mesh: the system has one chip ({shape}): nothing to compare");
        return;
    }
    let sim_mesh = |l1_small: u64, trace: u64| {
        SimMesh::with_chip(
            SimDevice::builder(preset)
                .l1_small_size(l1_small)
                .trace_region_size(trace),
            shape,
        )
        .build()
        .unwrap()
    };
    let real_mesh = |l1_small: u64, trace: u64| {
        TtMetalDevice::open_mesh(
            Some(shape),
            TtMetalConfig {
                l1_small_size: l1_small,
                trace_region_size: trace,
                ..TtMetalConfig::default()
            },
        )
        .unwrap()
    };
    let sample = SimDevice::preset(preset);
    let cores = sample.info().compute_cores();
    let dram_banks = sample.snapshot().unwrap().pool(BufferType::Dram).num_banks;

    let (mut operations, mut differences, mut refused) = (0usize, 0usize, 0usize);
    for n in 0..MESH_TRACES {
        let seed = 0x6d65_7368_6469_6600 ^ (n * 7919) ^ u64::from(shape.chips()) << 8;
        let text = random_trace(seed, preset, cores, dram_banks, MESH_OPS_PER_TRACE);
        let trace = Trace::parse(&text).unwrap();
        let sim = sim_mesh(trace.l1_small_size, trace.trace_region_size);
        let real = real_mesh(trace.l1_small_size, trace.trace_region_size);
        assert_eq!(real.shape(), sim.shape());
        let what = format!("mesh {shape} seed {seed:#x}");
        refused += replay_on_both(&trace, &sim, &real, &what, &mut differences);
        operations += trace.ops.len();
        real.close();
    }
    let cbs = cb_differential(
        0x6d65_7368_6362_0000 ^ u64::from(shape.chips()),
        MESH_CB_DEVICES,
        MESH_CB_STEPS,
        |l1_small| {
            let real = real_mesh(l1_small, 0);
            let sim = sim_mesh(l1_small, 0);
            (real.device().clone(), sim.device().clone())
        },
    );
    println!(
        "differential: mesh {shape} of {preset}: {operations} operations ({refused} refused on both), {differences} differences"
    );
    println!(
        "differential: mesh {shape} of {preset}: circular buffers: {} enqueues ({} beyond L1, {} clashes on both), {} differences",
        cbs.enqueues, cbs.beyond, cbs.clash, cbs.differences
    );
    assert_eq!(differences, 0, "the simulated mesh differs from TT-Metal's");
    assert_eq!(
        cbs.differences, 0,
        "the simulated mesh's circular buffers differ from TT-Metal's"
    );
    assert!(operations >= 3_000, "{operations} operations");
    assert!(cbs.enqueues >= 100, "{} enqueues", cbs.enqueues);
}

/// Workloads per device kind and operations per workload of the recording test.
const RECORDED: u64 = 2;
const RECORDED_STEPS: usize = 500;

/// Recorded on TT-Metal, replayed on the simulator: a random workload with
/// buffers of every pool, programs and enqueues, and buffers that other
/// code (a second handle on the same MeshDevice, as an op's or the caller's
/// own C++ would) makes and frees. The trace names the device's preset and
/// carve-outs, every recorded address and CB layout is met on the
/// simulator (its expectations), and the pools are the same after every
/// operation.
#[test]
#[serial]
fn a_recorded_tt_metal_workload_replays_line_for_line_on_the_simulator() {
    let (mut operations, mut foreign) = (0usize, 0usize);
    let mut preset = None;
    for n in 0..RECORDED {
        let (l1_small, trace_region) = [(0, 0), (64 * KIB, 8 << 20)][n as usize];
        let dev = TtMetalDevice::open(TtMetalConfig {
            l1_small_size: l1_small,
            trace_region_size: trace_region,
            ..TtMetalConfig::default()
        })
        .unwrap();
        preset = TtMetalDevice::matching_preset(&dev).unwrap();
        let mesh = TtMetalDevice::mesh_device_ptr(&dev).unwrap();
        // SAFETY: `dev` keeps the MeshDevice open for longer than `other` lives.
        let other = unsafe { TtMetalDevice::adopt_mesh_device(mesh) }.unwrap();
        let fresh = common::pools_text(&dev.snapshot().unwrap());
        let rec = dev.record().unwrap();
        let seed = 0x7265_636f_7264_7474 ^ n ^ (preset.unwrap() as u64) << 8;
        let pools = common::recorded_workload(&dev, Some(&other), seed, RECORDED_STEPS);
        let trace = rec.finish().unwrap();
        assert_eq!(
            (
                Some(trace.preset),
                trace.l1_small_size,
                trace.trace_region_size
            ),
            (preset, l1_small, trace_region)
        );
        common::replays_line_for_line(&trace, &fresh, &pools);
        // Other code's buffers have no label; ours mostly do.
        let text = trace.to_text();
        foreign += text
            .lines()
            .filter(|l| l.starts_with("alloc ") && !l.contains(" label="))
            .count();
        assert!(text.contains(" shards "), "{text}");
        // Every buffer of other code placed by its direction: none had to be pinned.
        assert!(!text.contains(" fixed="), "{text}");
        assert!(text.contains("\nenqueue "), "{text}");
        operations += trace.ops.len();
        other.close();
        assert_eq!(dev.live_count().unwrap(), 0);
        dev.close();
    }
    println!(
        "record: {}: {operations} recorded operations replayed line for line on the simulator, {foreign} allocations without a label (most by other code)",
        preset.map_or("?", |p| p.name())
    );
    assert!(operations >= 800, "{operations} operations");
    assert!(foreign >= 50, "{foreign} allocations by other code");
}

/// Runs and steps of the interleaved-limit differential test.
const LIMIT_RUNS: u64 = 8;
const LIMIT_STEPS: usize = 800;

/// The first line of an allocation error, without the simulator's
/// explanation after TT-Metal's out-of-memory figures (and TT-Metal's
/// closing full stop, which only some of its messages have).
fn tt_message(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    let line = match line.find("B)") {
        Some(at) if line.starts_with("Out of Memory: Not enough space") => &line[..at + 2],
        _ => line,
    };
    line.trim_end_matches('.').to_string()
}

/// A step as both sides must report it.
fn show_step(step: &L1BankStep) -> String {
    let outcome = match &step.outcome {
        Ok(address) => format!("{address:#x}"),
        Err(e) => tt_message(e),
    };
    format!(
        "{outcome} | allocated {} free {} largest {} lowest {:?}",
        step.allocated_per_bank, step.free_per_bank, step.largest_free_block_per_bank, step.lowest
    )
}

// TT-Metal 0.81.1 opens every device with its interleaved L1 limit at the L1 pool's base, so the
// refusal below the limit cannot happen through a device; its own bank manager, configured like
// the device's L1 pool with the limit higher up, shows what its allocator then does (it keeps the
// block). The simulator with the same limit must do the same, step by step.
#[test]
#[serial]
fn interleaved_l1_limit_refusals_match_tt_metals_bank_manager() {
    let real = TtMetalDevice::open(TtMetalConfig::default()).expect("opening the TT-Metal device");
    let preset = TtMetalDevice::matching_preset(&real)
        .unwrap()
        .expect("the TT-Metal device has the geometry of a simulated preset");
    let l1 = *real.snapshot().unwrap().pool(BufferType::L1);
    let cores = u64::from(real.info().compute_cores());
    let (mut operations, mut differences, mut orphans) = (0usize, 0usize, 0usize);
    for n in 0..LIMIT_RUNS {
        let mut rng = Rng(0x6c69_6d69_7400_0000 ^ (n * 7_919) ^ preset as u64);
        let limit = l1.base_address + rng.pick(&[16, 64, 256, 700]) * KIB;
        let sim = SimDevice::builder(preset)
            .l1_interleaved_limit(limit)
            .build()
            .unwrap();
        let mut probe = sim.create_program().unwrap();
        let mut ops: Vec<L1BankOp> = Vec::new();
        let mut on_sim: Vec<L1BankStep> = Vec::new();
        let mut live: Vec<(usize, Buffer)> = Vec::new();
        for step in 0..LIMIT_STEPS {
            let free_percent = (live.len() as u64 * 100 / (live.len() as u64 + 40)).min(60);
            let outcome = if !live.is_empty() && rng.chance(free_percent) {
                let (placed_at, buffer) =
                    live.swap_remove(rng.range(0, live.len() as u64 - 1) as usize);
                ops.push(L1BankOp::Free { step: placed_at });
                drop(buffer);
                Ok(0)
            } else {
                let page = rng.pick(&[16, 32, 48, 64, 100, 1000, 1024, 2048, 4096]);
                let bottom_up = rng.chance(55);
                let shards = rng.chance(20).then(|| rng.range(1, cores) as u32);
                let banks = shards.map_or(u64::from(l1.num_banks), u64::from);
                let log2 = if rng.chance(10) { 9 } else { 5 };
                let per_bank = rng.pages(log2);
                let size = banks * per_bank * page - rng.range(0, banks - 1) * page;
                ops.push(L1BankOp::Allocate {
                    size,
                    page_size: page,
                    bottom_up,
                    shards,
                });
                let mut request =
                    sim.buffer(BufferType::L1, size)
                        .page_size(page)
                        .direction(if bottom_up {
                            Direction::BottomUp
                        } else {
                            Direction::TopDown
                        });
                if let Some(shards) = shards {
                    request = request.sharded(shards);
                }
                match request.allocate() {
                    Ok(buffer) => {
                        let address = buffer.address();
                        live.push((step, buffer));
                        Ok(address)
                    }
                    Err(e) => {
                        orphans += usize::from(matches!(e, Error::BelowAddressLimit { .. }));
                        Err(e.to_string())
                    }
                }
            };
            let pool = *sim.snapshot().unwrap().pool(BufferType::L1);
            on_sim.push(L1BankStep {
                outcome,
                allocated_per_bank: pool.allocated_per_bank,
                free_per_bank: pool.free_per_bank,
                largest_free_block_per_bank: pool.largest_free_block_per_bank,
                lowest: sim.enqueue(&mut probe).unwrap().lowest_l1_buffer,
            });
        }
        let on_real = TtMetalDevice::replay_l1_bank_manager(&real, limit, &ops).unwrap();
        assert_eq!(on_real.len(), on_sim.len());
        for (step, (s, r)) in on_sim.iter().zip(&on_real).enumerate() {
            let (s, r) = (show_step(s), show_step(r));
            if s != r {
                differences += 1;
                if differences <= 5 {
                    eprintln!(
                        "run {n} limit {limit:#x} step {step} {:?}\n  sim:      {s}\n  tt-metal: {r}",
                        ops[step]
                    );
                }
            }
        }
        operations += ops.len();
    }
    real.close();
    println!(
        "differential: {preset}: interleaved L1 limit: {operations} operations ({orphans} refused below the limit, their blocks kept), {differences} differences"
    );
    assert_eq!(
        differences, 0,
        "the simulator differs from TT-Metal's bank manager"
    );
    assert!(orphans >= 50, "{orphans} refusals below the limit");
}

//! Randomized differential test of the simulated allocator against a plain
//! reference model written here from the facts in `tt-metal-allocator.md`.
//!
//! The model takes only each preset's raw figures from the crate
//! ([`Preset::geometry`], pinned to TT-Metal's by `sim_geometry.rs`): pool
//! layout, per-bank sizes, the placement rule (address-ordered first fit,
//! bottom-up or top-down, split, immediate coalescing) and the four per-bank
//! statistics are all re-derived below. Every step is checked: the address
//! (or the out-of-memory error and its figures), the statistics of all four
//! pools; every `CHECK_EVERY` steps the model's own invariants, the live set
//! and the peak mark.
//!
//! A simulated mesh is its device, whose one allocator places every mesh
//! buffer for all chips, and each chip's own allocator: the model has one
//! reference per allocator, independent of each other, and a guard on the
//! mesh must report the mesh and exactly the chips whose own allocator was
//! used.
//!
//! Seeds and step counts can be overridden with `SIM_REFERENCE_SEED` and
//! `SIM_REFERENCE_STEPS` to chase a failure.

mod common;

use std::fmt::Debug;
use std::time::Instant;

use tt_memguard::{
    Buffer, BufferType, Device, Direction, Error, KIB, MIB, MemoryGuard, MeshShape, Preset,
    SimDevice, SimMesh,
};

/// Operations per run (at least).
const STEPS: u64 = 100_000;
/// Operations per run on a mesh, spread over its allocators.
const MESH_STEPS: u64 = 40_000;
/// Full checks (invariants, live set, peak) every this many steps.
const CHECK_EVERY: u64 = 1_000;
/// TRACE granule: the per-bank trace region is a multiple of 8 KiB.
const TRACE_GRANULE: u64 = 8 * KIB;

// ---------------------------------------------------------------------------
// Seeded PRNG (splitmix64)
// ---------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        common::splitmix64(&mut self.0)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Log-uniform in `lo..=hi` (both > 0).
    fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let (lo, hi) = (lo.max(1), hi.max(lo.max(1)));
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        let v = (a + (b - a) * self.unit()).exp() as u64;
        v.clamp(lo, hi)
    }
}

// ---------------------------------------------------------------------------
// Geometry: the preset's figures; the layout, from tt-metal-allocator.md
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Geometry {
    dram_banks: u32,
    dram_bank_size: u64,
    dram_base: u64,
    dram_alignment: u64,
    /// One L1 bank per core of the compute grid.
    cores: u32,
    l1_bank_size: u64,
    l1_base: u64,
    l1_alignment: u64,
}

/// The preset's raw figures (banks, bank sizes, bases, alignments), from
/// the crate's one preset table; everything derived from them is the model's.
fn geometry(preset: Preset) -> Geometry {
    let g = preset.geometry();
    Geometry {
        dram_banks: g.dram_banks,
        dram_bank_size: g.dram_bank_size,
        dram_base: g.dram_base,
        dram_alignment: u64::from(g.dram_alignment),
        cores: g.grid.0 * g.grid.1,
        l1_bank_size: g.l1_bank_size,
        l1_base: g.l1_base,
        l1_alignment: u64::from(g.l1_alignment),
    }
}

fn round_up(value: u64, multiple: u64) -> u64 {
    value.div_ceil(multiple) * multiple
}

/// One pool's layout, per bank.
#[derive(Debug, Clone, Copy)]
struct PoolGeometry {
    banks: u32,
    base: u64,
    size: u64,
    alignment: u64,
}

/// The four pools in `BufferType::ALL` order, and the allocator granularity.
fn layout(g: &Geometry, l1_small_size: u64, trace_region_size: u64) -> ([PoolGeometry; 4], u64) {
    let l1_small = if l1_small_size == 0 {
        0
    } else {
        round_up(l1_small_size, g.dram_alignment)
    };
    let trace = if trace_region_size == 0 {
        0
    } else {
        round_up(
            trace_region_size.div_ceil(u64::from(g.dram_banks)),
            TRACE_GRANULE,
        )
    };
    let pools = [
        PoolGeometry {
            banks: g.dram_banks,
            base: g.dram_base,
            size: g.dram_bank_size - trace - g.dram_base,
            alignment: g.dram_alignment,
        },
        PoolGeometry {
            banks: g.cores,
            base: g.l1_base,
            size: g.l1_bank_size - l1_small - g.l1_base,
            alignment: g.l1_alignment,
        },
        PoolGeometry {
            banks: if l1_small == 0 { 0 } else { g.cores },
            base: g.l1_bank_size - l1_small,
            size: l1_small,
            alignment: g.l1_alignment,
        },
        PoolGeometry {
            banks: g.dram_banks,
            base: g.dram_bank_size - trace,
            size: trace,
            alignment: g.dram_alignment,
        },
    ];
    (pools, g.dram_alignment)
}

/// TT-Metal's per-bank size: `ceil(pages / banks) * round_up(page, alignment)`.
fn size_per_bank(size: u64, page_size: u64, banks: u32, alignment: u64) -> u64 {
    let pages = size / page_size;
    pages.div_ceil(u64::from(banks)) * round_up(page_size, alignment)
}

/// What the pool allocator reserves: rounded up to the granularity, at least one granule.
fn block_size(per_bank: u64, granule: u64) -> u64 {
    round_up(per_bank, granule).max(granule)
}

fn default_bottom_up(pool: usize) -> bool {
    matches!(BufferType::ALL[pool], BufferType::Dram | BufferType::Trace)
}

// ---------------------------------------------------------------------------
// Reference pool: blocks in address order, first fit, split, coalesce
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    address: u64,
    size: u64,
    allocated: bool,
}

/// The four per-bank figures plus the bank count, as compared with the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    num_banks: u32,
    size_per_bank: u64,
    allocated_per_bank: u64,
    free_per_bank: u64,
    largest_free_block_per_bank: u64,
}

struct ModelPool {
    geometry: PoolGeometry,
    blocks: Vec<Block>,
    /// Allocated bytes, kept as a running count for the peak (the
    /// statistics themselves are computed by scanning).
    allocated: u64,
    /// Highest allocated per-bank byte count seen.
    peak: u64,
}

impl ModelPool {
    fn new(geometry: PoolGeometry) -> ModelPool {
        let blocks = if geometry.size == 0 {
            Vec::new()
        } else {
            vec![Block {
                address: geometry.base,
                size: geometry.size,
                allocated: false,
            }]
        };
        ModelPool {
            geometry,
            blocks,
            allocated: 0,
            peak: 0,
        }
    }

    /// Places `size` bytes (already a multiple of the granule); the flag
    /// tells a placement below `limit`, which is refused after the block was
    /// taken (TT-Metal's interleaved L1 limit): the block stays allocated.
    fn allocate(&mut self, size: u64, bottom_up: bool, limit: u64) -> Option<(u64, bool)> {
        let fits = |b: &Block| !b.allocated && b.size >= size;
        let index = if bottom_up {
            self.blocks.iter().position(fits)?
        } else {
            self.blocks.iter().rposition(fits)?
        };
        let block = self.blocks[index];
        let rest = block.size - size;
        let address = if bottom_up {
            block.address
        } else {
            block.address + rest
        };
        let taken = Block {
            address,
            size,
            allocated: true,
        };
        if rest == 0 {
            self.blocks[index] = taken;
        } else if bottom_up {
            self.blocks[index] = taken;
            self.blocks.insert(
                index + 1,
                Block {
                    address: address + size,
                    size: rest,
                    allocated: false,
                },
            );
        } else {
            self.blocks[index].size = rest;
            self.blocks.insert(index + 1, taken);
        }
        self.allocated += size;
        self.peak = self.peak.max(self.allocated);
        Some((address, address < limit))
    }

    /// Frees the allocated block at `address`; returns its size.
    fn free(&mut self, address: u64) -> u64 {
        let index = self
            .blocks
            .binary_search_by_key(&address, |b| b.address)
            .unwrap_or_else(|_| panic!("model: no block at {address:#x}"));
        assert!(
            self.blocks[index].allocated,
            "model: block at {address:#x} is not allocated"
        );
        let size = self.blocks[index].size;
        self.blocks[index].allocated = false;
        if index + 1 < self.blocks.len() && !self.blocks[index + 1].allocated {
            self.blocks[index].size += self.blocks[index + 1].size;
            self.blocks.remove(index + 1);
        }
        if index > 0 && !self.blocks[index - 1].allocated {
            self.blocks[index - 1].size += self.blocks[index].size;
            self.blocks.remove(index);
        }
        self.allocated -= size;
        size
    }

    /// TT-Metal's statistics, by scanning every block.
    fn stats(&self) -> Stats {
        let mut allocated = 0;
        let mut largest = 0;
        for b in &self.blocks {
            if b.allocated {
                allocated += b.size;
            } else {
                largest = largest.max(b.size);
            }
        }
        let (free, largest_free_block) = if allocated == 0 {
            (self.geometry.size, self.geometry.size)
        } else {
            (self.geometry.size - allocated, largest)
        };
        Stats {
            num_banks: self.geometry.banks,
            size_per_bank: self.geometry.size,
            allocated_per_bank: allocated,
            free_per_bank: free,
            largest_free_block_per_bank: largest_free_block,
        }
    }

    /// The model's own invariants; an error names the first violation.
    fn check_invariants(&self) -> Result<(), String> {
        let mut next = self.geometry.base;
        let mut total = 0;
        let mut previous_free = false;
        for (i, b) in self.blocks.iter().enumerate() {
            if b.size == 0 {
                return Err(format!("block {i} {b:?} is empty"));
            }
            if b.address != next {
                return Err(format!(
                    "block {i} {b:?} starts at {:#x}, expected {next:#x} (overlap or gap)",
                    b.address
                ));
            }
            if !b.allocated && previous_free {
                return Err(format!(
                    "block {i} {b:?} follows a free block (not coalesced)"
                ));
            }
            previous_free = !b.allocated;
            next = b.address + b.size;
            total += b.size;
        }
        let allocated = self.stats().allocated_per_bank;
        if allocated != self.allocated {
            return Err(format!(
                "scanned allocated {allocated} B, running count {} B",
                self.allocated
            ));
        }
        if total != self.geometry.size {
            return Err(format!(
                "blocks sum to {total} B, pool size is {} B",
                self.geometry.size
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/// One step, as failure messages name it (its fields are read through `Debug`).
#[allow(dead_code)]
#[derive(Debug, Clone)]
enum Op {
    Allocate {
        buffer_type: BufferType,
        size: u64,
        page_size: u64,
        shards: Option<u32>,
        direction: Direction,
    },
    Free {
        buffer_type: BufferType,
        address: Hex,
        size_per_bank: u64,
        by_drop: bool,
    },
    /// Periodic and final checks.
    Check,
}

struct Live {
    buffer: Buffer,
    address: u64,
    size_per_bank: u64,
    size: u64,
    page_size: u64,
    shards: Option<u32>,
}

/// An address, printed in hex in failure messages.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Hex(u64);

impl Debug for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// What the live-set check compares.
/// (pool, address, per-bank size, size, page size, shards, banks).
type LiveKey = (BufferType, Hex, u64, u64, u64, Option<u32>, u32);

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    ok: u64,
    oom: u64,
    /// Refused below the interleaved L1 limit, leaving an orphaned block.
    orphaned: u64,
    /// Out-of-memory failures with enough free bytes in total (fragmentation).
    fragmented: u64,
    freed: u64,
    /// Refused on a mesh: the buffer would lie on a live buffer of another allocator of the
    /// mesh (a chip's own on a mesh buffer, or the reverse).
    overlap: u64,
}

struct Config {
    name: &'static str,
    preset: Preset,
    l1_small_size: u64,
    trace_region_size: u64,
    /// Lowest address of an interleaved L1 buffer (None: the L1 base).
    l1_interleaved_limit: Option<u64>,
    /// A simulated mesh of this shape instead of one device.
    mesh: Option<MeshShape>,
    seed: u64,
}

struct Run {
    name: &'static str,
    seed: u64,
    step: u64,
    op: Op,
}

impl Run {
    #[track_caller]
    fn fail(&self, what: &str, sim: impl Debug, model: impl Debug) -> ! {
        panic!(
            "sim_reference {}: mismatch at seed {:#x}, step {}, operation {:?}: {what}\n  simulator: {sim:?}\n  model:     {model:?}\n(rerun with SIM_REFERENCE_SEED={:#x})",
            self.name, self.seed, self.step, self.op, self.seed
        );
    }

    #[track_caller]
    fn check_eq<T: PartialEq + Debug>(&self, what: &str, sim: T, model: T) {
        if sim != model {
            self.fail(what, sim, model);
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number")))
}

fn sim_stats(dev: &Device, buffer_type: BufferType) -> Stats {
    let snapshot = dev.snapshot().expect("snapshot of an open device");
    let p = snapshot.pool(buffer_type);
    Stats {
        num_banks: p.num_banks,
        size_per_bank: p.size_per_bank,
        allocated_per_bank: p.allocated_per_bank,
        free_per_bank: p.free_per_bank,
        largest_free_block_per_bank: p.largest_free_block_per_bank,
    }
}

const PAGE_SIZES: [u64; 16] = [
    16, 32, 48, 64, 100, 256, 1_000, 1_024, 1_088, 2_048, 2_080, 4_096, 8_192, 65_536, 100_000, MIB,
];

/// A random valid request for `pool`, sized relative to the pool so that it
/// fills up and runs out of memory regularly.
fn random_request(rng: &mut Rng, pool: usize, geometry: &PoolGeometry, cores: u32) -> Op {
    let buffer_type = BufferType::ALL[pool];
    // A pool that is not configured still gets requests sized as if it were.
    let pool_size = if geometry.size == 0 {
        64 * KIB
    } else {
        geometry.size
    };
    let r = rng.unit();
    let target = if r < 0.80 {
        rng.log_uniform(16, pool_size / 400)
    } else if r < 0.97 {
        rng.log_uniform(pool_size / 400, pool_size / 20)
    } else {
        rng.range(pool_size / 20, pool_size + pool_size / 8)
    }
    .max(1);

    let mut index = rng.below(PAGE_SIZES.len() as u64) as usize;
    while index > 0 && round_up(PAGE_SIZES[index], geometry.alignment) > target {
        index = rng.below(index as u64) as usize;
    }
    let page_size = PAGE_SIZES[index];
    let aligned_page = round_up(page_size, geometry.alignment);

    // Shards are cores in L1 and L1_SMALL, DRAM banks in DRAM.
    let shards = match buffer_type {
        BufferType::L1Small => Some(cores),
        BufferType::L1 if rng.chance(0.4) => Some(cores),
        BufferType::Dram if rng.chance(0.3) => Some(geometry.banks),
        _ => None,
    }
    .map(|max| match rng.below(4) {
        0 => 1,
        1 => max,
        _ => rng.range(1, u64::from(max)) as u32,
    });
    // The per-bank size counts pages over the shards of a sharded buffer,
    // over every bank of the pool otherwise (at least one, for sizing).
    let banks = u64::from(shards.unwrap_or(geometry.banks).max(1));
    let pages_per_bank = (target / aligned_page).max(1);
    let pages = rng.range((pages_per_bank - 1) * banks + 1, pages_per_bank * banks);
    let direction = match rng.below(3) {
        0 => Direction::Default,
        1 => Direction::BottomUp,
        _ => Direction::TopDown,
    };
    Op::Allocate {
        buffer_type,
        size: pages * page_size,
        page_size,
        shards,
        direction,
    }
}

/// One allocator under test with its reference: a device (or a mesh's device, or one chip's
/// own allocator in a mesh) and the model of its four pools.
struct Target {
    dev: Device,
    model: Vec<ModelPool>,
    stats: Vec<Stats>,
    live: Vec<Vec<Live>>,
    /// Blocks refused below the interleaved limit, which stay allocated.
    orphans: Vec<LiveKey>,
    counts: [Counts; 4],
    max_live: [usize; 4],
    fresh: tt_memguard::Snapshot,
    mark: tt_memguard::PeakMark,
}

impl Target {
    fn new(dev: Device, pools: &[PoolGeometry; 4]) -> Target {
        let model: Vec<ModelPool> = pools.iter().map(|p| ModelPool::new(*p)).collect();
        let stats = model.iter().map(ModelPool::stats).collect();
        let fresh = dev.snapshot().expect("snapshot");
        let mark = dev.peak_mark().expect("peak mark");
        Target {
            dev,
            model,
            stats,
            live: (0..4).map(|_| Vec::new()).collect(),
            orphans: Vec::new(),
            counts: [Counts::default(); 4],
            max_live: [0; 4],
            fresh,
            mark,
        }
    }

    /// Every pool's statistics against the model's.
    fn check_stats(&self, run: &Run) {
        let snapshot = self.dev.snapshot().expect("snapshot");
        for (i, t) in BufferType::ALL.into_iter().enumerate() {
            let p = snapshot.pool(t);
            let got = Stats {
                num_banks: p.num_banks,
                size_per_bank: p.size_per_bank,
                allocated_per_bank: p.allocated_per_bank,
                free_per_bank: p.free_per_bank,
                largest_free_block_per_bank: p.largest_free_block_per_bank,
            };
            if got != self.stats[i] {
                run.fail(
                    &format!("{} {t} statistics", self.dev.name()),
                    got,
                    self.stats[i],
                );
            }
        }
    }
}

fn run(config: Config) {
    let seed = env_u64("SIM_REFERENCE_SEED").unwrap_or(config.seed);
    let steps = env_u64("SIM_REFERENCE_STEPS").unwrap_or(if config.mesh.is_some() {
        MESH_STEPS
    } else {
        STEPS
    });
    let started = Instant::now();
    let g = geometry(config.preset);
    let (pools, granule) = layout(&g, config.l1_small_size, config.trace_region_size);

    let mut builder = SimDevice::builder(config.preset)
        .l1_small_size(config.l1_small_size)
        .trace_region_size(config.trace_region_size);
    if let Some(limit) = config.l1_interleaved_limit {
        builder = builder.l1_interleaved_limit(limit);
    }
    // A mesh is its device, whose one allocator places every mesh buffer for all chips, and
    // each chip's own allocator, which knows nothing of it: one model each, independent.
    let mesh = config.mesh.map(|shape| {
        SimMesh::with_chip(builder.clone(), shape)
            .build()
            .expect("valid mesh")
    });
    let devices: Vec<Device> = match &mesh {
        Some(mesh) => std::iter::once(mesh.device().clone())
            .chain(mesh.chips().map(|(_, chip)| chip.clone()))
            .collect(),
        None => vec![builder.build().expect("valid carve-outs")],
    };
    let guard = mesh.as_ref().map(MemoryGuard::new);
    let mut run = Run {
        name: config.name,
        seed,
        step: 0,
        op: Op::Check,
    };

    // Layout of the fresh devices: every chip of a mesh has the chip's geometry.
    let mut targets: Vec<Target> = devices
        .into_iter()
        .map(|dev| Target::new(dev, &pools))
        .collect();
    for target in &targets {
        for (i, buffer_type) in BufferType::ALL.into_iter().enumerate() {
            let p = target.fresh.pool(buffer_type);
            run.check_eq(
                &format!("{} {buffer_type} fresh statistics", target.dev.name()),
                sim_stats(&target.dev, buffer_type),
                target.stats[i],
            );
            if pools[i].size > 0 {
                run.check_eq(
                    &format!("{buffer_type} base address and alignment"),
                    (p.base_address, p.alignment),
                    (pools[i].base, pools[i].alignment),
                );
            }
        }
    }

    // Pools are picked by weight; an unconfigured pool only rarely (it can
    // only run out of memory).
    let weights: Vec<u64> = [30, 35, 15, 20]
        .iter()
        .zip(&pools)
        .map(|(w, p)| if p.size == 0 { 1 } else { *w })
        .collect();
    let total_weight: u64 = weights.iter().sum();

    let mut rng = Rng(seed);
    let mut live_sum = 0u64;
    let mut used = vec![false; targets.len()];

    for step in 1..=steps {
        run.step = step;
        // On a mesh, most operations are mesh buffers; the rest go to one chip's own allocator.
        let which = if targets.len() > 1 && rng.chance(0.3) {
            1 + rng.below(targets.len() as u64 - 1) as usize
        } else {
            0
        };
        used[which] = true;
        // The allocators whose buffers a new one must not lie on: for a mesh buffer every chip's
        // own, for a chip's own buffer the mesh's.
        let (head, tail) = targets.split_at_mut(which);
        let (target, tail) = tail.split_first_mut().expect("a target");
        let others: Vec<&Target> = if which == 0 {
            tail.iter().collect()
        } else {
            vec![&head[0]]
        };
        let mut pick = rng.below(total_weight);
        let mut pool = 0;
        while pick >= weights[pool] {
            pick -= weights[pool];
            pool += 1;
        }
        let buffer_type = BufferType::ALL[pool];
        let n = target.live[pool].len();
        // Grow while few are live, drift towards full otherwise, and shrink
        // back when very many are live.
        let p_allocate = if n < 32 {
            0.8
        } else if n > 1_500 {
            0.3
        } else {
            0.55
        };
        if n == 0 || rng.chance(p_allocate) {
            run.op = random_request(&mut rng, pool, &pools[pool], g.cores);
            // A chip's own allocator starts where the mesh's does and would mostly be refused
            // for lying on mesh buffers: its buffers mostly grow from the other end of the pool.
            if which > 0
                && rng.chance(0.8)
                && let Op::Allocate { direction, .. } = &mut run.op
            {
                *direction = if default_bottom_up(pool) {
                    Direction::TopDown
                } else {
                    Direction::BottomUp
                };
            }
            let Op::Allocate {
                size,
                page_size,
                shards,
                direction,
                ..
            } = run.op.clone()
            else {
                unreachable!()
            };
            let banks = shards.unwrap_or(pools[pool].banks);
            let per_bank = size_per_bank(size, page_size, banks, pools[pool].alignment);
            let reserve = block_size(per_bank, granule);
            let bottom_up = match direction {
                Direction::Default => default_bottom_up(pool),
                Direction::BottomUp => true,
                Direction::TopDown => false,
            };
            let mut builder = target
                .dev
                .buffer(buffer_type, size)
                .page_size(page_size)
                .direction(direction);
            if let Some(shards) = shards {
                builder = builder.sharded(shards);
            }
            let got = builder.allocate();
            let before = target.stats[pool];
            let limit = match (buffer_type, shards, config.l1_interleaved_limit) {
                (BufferType::L1, None, Some(limit)) => limit,
                _ => 0,
            };
            let expected = target.model[pool].allocate(reserve, bottom_up, limit);
            let overlap = match expected {
                Some((address, false)) => lies_on(&others, buffer_type, address, reserve),
                _ => false,
            };
            match (got, expected) {
                (Err(Error::MeshOverlap { address: a, .. }), Some((address, false))) if overlap => {
                    run.check_eq("refused overlap address", Hex(a), Hex(address));
                    // Refused: the block goes back.
                    target.model[pool].free(address);
                    target.counts[pool].overlap += 1;
                }
                (Ok(buffer), Some((address, false))) if !overlap => {
                    run.check_eq("address", Hex(buffer.address()), Hex(address));
                    run.check_eq("per-bank size", buffer.size_per_bank(), reserve);
                    run.check_eq("buffer bank count", buffer.num_banks(), pools[pool].banks);
                    target.counts[pool].ok += 1;
                    target.live[pool].push(Live {
                        buffer,
                        address,
                        size_per_bank: reserve,
                        size,
                        page_size,
                        shards,
                    });
                    target.max_live[pool] = target.max_live[pool].max(target.live[pool].len());
                }
                (
                    Err(Error::OutOfMemory {
                        buffer_type: t,
                        size: s,
                        banks: b,
                        needed_per_bank: pb,
                        size_per_bank,
                        allocated_per_bank,
                        free_per_bank,
                        largest_free_block_per_bank,
                        ..
                    }),
                    None,
                ) => {
                    run.check_eq(
                        "out-of-memory error (buffer type, size, banks, per bank)",
                        (t, s, b, pb),
                        (buffer_type, size, banks, per_bank),
                    );
                    run.check_eq(
                        "out-of-memory error (bank size, allocated, free, largest free block)",
                        (
                            size_per_bank,
                            allocated_per_bank,
                            free_per_bank,
                            largest_free_block_per_bank,
                        ),
                        (
                            before.size_per_bank,
                            before.allocated_per_bank,
                            before.free_per_bank,
                            before.largest_free_block_per_bank,
                        ),
                    );
                    target.counts[pool].oom += 1;
                    if before.free_per_bank >= reserve {
                        target.counts[pool].fragmented += 1;
                    }
                }
                (
                    Err(Error::BelowAddressLimit {
                        size: s,
                        limit: l,
                        address: a,
                        size_per_bank: pb,
                        ..
                    }),
                    Some((address, true)),
                ) => {
                    run.check_eq(
                        "refusal below the limit (size, limit, address, per bank)",
                        (s, l, Hex(a), pb),
                        (size, limit, Hex(address), reserve),
                    );
                    target.counts[pool].orphaned += 1;
                    target.orphans.push((
                        buffer_type,
                        Hex(address),
                        reserve,
                        size,
                        page_size,
                        None,
                        pools[pool].banks,
                    ));
                }
                (got, expected) => run.fail(
                    "allocation outcome",
                    got.map(|b| format!("{:#x}", b.address())),
                    expected.map(|(a, below)| {
                        format!("{a:#x} ({reserve} B per bank, below the limit: {below})")
                    }),
                ),
            }
        } else {
            let index = rng.below(n as u64) as usize;
            let entry = target.live[pool].swap_remove(index);
            let by_drop = rng.chance(0.5);
            run.op = Op::Free {
                buffer_type,
                address: Hex(entry.address),
                size_per_bank: entry.size_per_bank,
                by_drop,
            };
            if by_drop {
                drop(entry.buffer);
            } else if let Err(e) = entry.buffer.free() {
                run.fail("free", format!("Err({e})"), "Ok(())");
            }
            let freed = target.model[pool].free(entry.address);
            run.check_eq("model freed size", freed, entry.size_per_bank);
            target.counts[pool].freed += 1;
        }
        target.stats[pool] = target.model[pool].stats();
        target.check_stats(&run);
        live_sum += targets
            .iter()
            .flat_map(|t| &t.live)
            .map(|l| l.len() as u64)
            .sum::<u64>();

        if step % CHECK_EVERY == 0 || step == steps {
            // Every allocator at once: what one was asked changed no other.
            for target in &targets {
                target.check_stats(&run);
                full_check(
                    &run,
                    &target.dev,
                    &target.model,
                    &target.live,
                    &target.orphans,
                    &target.mark,
                );
            }
        }
    }

    // A guard on the mesh covered every allocator: it reports the mesh and exactly the chips
    // whose own allocator was used, each with its own peaks.
    if let Some(guard) = guard {
        let report = guard.into_report().expect("report");
        let expected: Vec<&str> = targets
            .iter()
            .zip(&used)
            .enumerate()
            .filter(|(i, (_, used))| *i == 0 || **used)
            .map(|(_, (t, _))| t.dev.name())
            .collect();
        let reported: Vec<&str> = report.devices.iter().map(|d| d.device.as_str()).collect();
        run.check_eq("devices in the mesh's report", reported, expected);
        for (device, target) in report.devices.iter().zip(
            targets
                .iter()
                .zip(&used)
                .filter(|(_, u)| **u)
                .map(|(t, _)| t),
        ) {
            for (i, t) in BufferType::ALL.into_iter().enumerate() {
                run.check_eq(
                    &format!("{} {t} peak in the report", device.device),
                    device.pool(t).peak_per_bank,
                    target.model[i].peak,
                );
            }
        }
    }

    // The last step's full check has compared the peaks. Free everything
    // (alternating drop and free), then the fresh statistics.
    run.op = Op::Check;
    for target in &mut targets {
        for (pool, entries) in target.live.iter_mut().enumerate() {
            for (k, entry) in entries.drain(..).enumerate() {
                target.model[pool].free(entry.address);
                if k % 2 == 0 {
                    drop(entry.buffer);
                } else {
                    entry.buffer.free().expect("free");
                }
            }
        }
        run.check_eq(
            "live count after freeing everything (the orphaned blocks stay)",
            target.dev.live_count().expect("live count"),
            target.orphans.len() as u64,
        );
        if target.orphans.is_empty() {
            run.check_eq(
                "fresh snapshot after freeing everything",
                target.dev.snapshot().expect("snapshot"),
                target.fresh,
            );
        }
        for (i, t) in BufferType::ALL.into_iter().enumerate() {
            run.check_eq(
                &format!("{t} statistics after freeing everything"),
                sim_stats(&target.dev, t),
                target.model[i].stats(),
            );
            if !target.orphans.iter().any(|o| o.0 == t) {
                run.check_eq(
                    &format!("{t} model after freeing everything"),
                    target.model[i].stats(),
                    ModelPool::new(pools[i]).stats(),
                );
            }
            if let Err(e) = target.model[i].check_invariants() {
                run.fail(&format!("{t} model invariants"), "-", e);
            }
        }
    }

    let mut counts = [Counts::default(); 4];
    let mut max_live = [0usize; 4];
    for target in &targets {
        for i in 0..4 {
            let (c, t) = (&mut counts[i], target.counts[i]);
            c.ok += t.ok;
            c.oom += t.oom;
            c.orphaned += t.orphaned;
            c.fragmented += t.fragmented;
            c.freed += t.freed;
            c.overlap += t.overlap;
            max_live[i] = max_live[i].max(target.max_live[i]);
        }
    }
    if config.l1_interleaved_limit.is_some() {
        assert!(
            counts[1].orphaned > 0,
            "no interleaved L1 buffer was refused below the limit"
        );
    }
    let ops: u64 = counts
        .iter()
        .map(|c| c.ok + c.oom + c.orphaned + c.freed + c.overlap)
        .sum();
    if config.mesh.is_some() {
        assert!(
            counts.iter().map(|c| c.overlap).sum::<u64>() > 0,
            "no buffer of the mesh was refused for lying on another allocator's"
        );
    }
    assert_eq!(ops, steps);
    let mix: Vec<String> = BufferType::ALL
        .iter()
        .zip(&counts)
        .zip(&max_live)
        .zip(&targets[0].model)
        .map(|(((t, c), m), pool)| {
            let peak = if pool.geometry.size == 0 {
                0.0
            } else {
                100.0 * pool.peak as f64 / pool.geometry.size as f64
            };
            format!(
                "{t}: {} ok / {} oom ({} fragmented) / {} orphaned / {} overlapping / {} freed, max live {m}, peak {peak:.1}%",
                c.ok, c.oom, c.fragmented, c.orphaned, c.overlap, c.freed
            )
        })
        .collect();
    let allocators = match config.mesh {
        Some(shape) => format!(
            ", the mesh's allocator and {} of its {} chips' own",
            used.iter().skip(1).filter(|u| **u).count(),
            shape.chips()
        ),
        None => String::new(),
    };
    println!(
        "sim_reference {} (seed {seed:#x}): {steps} operations in {:.2?}, mean live {:.0}{allocators}; {}",
        config.name,
        started.elapsed(),
        live_sum as f64 / steps as f64,
        mix.join("; ")
    );
}

/// Whether `size` bytes at `address` in `buffer_type`'s address space (DRAM and TRACE share
/// one, L1 and L1_SMALL the other) lie on a live buffer or a kept block of `others`.
fn lies_on(others: &[&Target], buffer_type: BufferType, address: u64, size: u64) -> bool {
    let dram = |t: BufferType| matches!(t, BufferType::Dram | BufferType::Trace);
    let meets = |t: BufferType, a: u64, s: u64| {
        dram(t) == dram(buffer_type) && a < address + size && address < a + s
    };
    others.iter().any(|o| {
        o.live
            .iter()
            .zip(BufferType::ALL)
            .any(|(entries, t)| entries.iter().any(|e| meets(t, e.address, e.size_per_bank)))
            || o.orphans.iter().any(|k| meets(k.0, k.1.0, k.2))
    })
}

fn full_check(
    run: &Run,
    dev: &Device,
    model: &[ModelPool],
    live: &[Vec<Live>],
    orphans: &[LiveKey],
    mark: &tt_memguard::PeakMark,
) {
    for (i, t) in BufferType::ALL.into_iter().enumerate() {
        if let Err(e) = model[i].check_invariants() {
            run.fail(&format!("{t} model invariants"), "-", e);
        }
    }
    let mut expected: Vec<LiveKey> = live
        .iter()
        .zip(model.iter())
        .zip(BufferType::ALL)
        .flat_map(|((entries, pool), t)| {
            entries.iter().map(move |e| {
                (
                    t,
                    Hex(e.address),
                    e.size_per_bank,
                    e.size,
                    e.page_size,
                    e.shards,
                    pool.geometry.banks,
                )
            })
        })
        .chain(orphans.iter().copied())
        .collect();
    let mut got: Vec<LiveKey> = dev
        .live_allocations()
        .expect("live allocations")
        .into_iter()
        .map(|a| {
            (
                a.buffer_type,
                Hex(a.address),
                a.size_per_bank,
                a.size,
                a.page_size,
                a.shards,
                a.num_banks,
            )
        })
        .collect();
    expected.sort();
    got.sort();
    if got != expected {
        let first = got
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        run.fail(
            &format!(
                "live set ({} live in the simulator, {} in the model; first difference at sorted index {first})",
                got.len(),
                expected.len()
            ),
            got.get(first),
            expected.get(first),
        );
    }
    // Every allocated model block is a live buffer and vice versa.
    for (i, t) in BufferType::ALL.into_iter().enumerate() {
        let blocks = model[i].blocks.iter().filter(|b| b.allocated).count();
        run.check_eq(
            &format!("{t} allocated model blocks vs live buffers and orphaned blocks"),
            blocks,
            live[i].len() + orphans.iter().filter(|o| o.0 == t).count(),
        );
    }
    let peaks = mark.read().expect("peak mark");
    for (i, t) in BufferType::ALL.into_iter().enumerate() {
        run.check_eq(
            &format!("{t} peak per-bank allocated"),
            peaks.per_bank(t),
            model[i].peak,
        );
    }
}

#[test]
fn wormhole_b0_matches_reference() {
    run(Config {
        name: "wormhole_b0",
        preset: Preset::WormholeB0,
        l1_small_size: 64 * KIB,
        trace_region_size: 8 * MIB,
        l1_interleaved_limit: None,
        mesh: None,
        seed: 0x5EED_0001,
    });
}

#[test]
fn wormhole_n300_matches_reference() {
    // Carve-outs that are not multiples of the granules exercise the rounding.
    run(Config {
        name: "wormhole_n300",
        preset: Preset::WormholeN300,
        l1_small_size: 65_000,
        trace_region_size: 8 * MIB + 12_345,
        l1_interleaved_limit: None,
        mesh: None,
        seed: 0x5EED_0002,
    });
}

#[test]
fn blackhole_p150_matches_reference() {
    run(Config {
        name: "blackhole_p150",
        preset: Preset::BlackholeP150,
        l1_small_size: 64 * KIB,
        trace_region_size: 8 * MIB,
        l1_interleaved_limit: None,
        mesh: None,
        seed: 0x5EED_0003,
    });
}

#[test]
fn wormhole_b0_without_carve_outs_matches_reference() {
    run(Config {
        name: "wormhole_b0 (no carve-outs)",
        preset: Preset::WormholeB0,
        l1_small_size: 0,
        trace_region_size: 0,
        l1_interleaved_limit: None,
        mesh: None,
        seed: 0x5EED_0004,
    });
}

#[test]
fn wormhole_b0_with_an_interleaved_l1_limit_matches_reference() {
    // Interleaved L1 buffers placed in the bottom 64 KiB of the pool are
    // refused, and their blocks stay allocated as in TT-Metal.
    run(Config {
        name: "wormhole_b0 (interleaved L1 limit)",
        preset: Preset::WormholeB0,
        l1_small_size: 64 * KIB,
        trace_region_size: 8 * MIB,
        l1_interleaved_limit: Some(0x1_9D60 + 64 * KIB),
        mesh: None,
        seed: 0x5EED_0005,
    });
}

#[test]
fn an_n300_mesh_matches_reference() {
    // One allocator for the mesh's buffers, and each chip's own: independent models.
    run(Config {
        name: "n300 mesh 1x2",
        preset: Preset::WormholeN300,
        l1_small_size: 32 * KIB,
        trace_region_size: 8 * MIB,
        l1_interleaved_limit: None,
        mesh: Some(MeshShape::new(1, 2)),
        seed: 0x5EED_0006,
    });
}

#[test]
fn a_t3000_mesh_matches_reference() {
    run(Config {
        name: "t3000 mesh 2x4",
        preset: Preset::WormholeN300,
        l1_small_size: 0,
        trace_region_size: 0,
        l1_interleaved_limit: None,
        mesh: Some(MeshShape::new(2, 4)),
        seed: 0x5EED_0007,
    });
}

#[test]
fn a_galaxy_mesh_matches_reference() {
    run(Config {
        name: "galaxy mesh 4x8",
        preset: Preset::WormholeB0,
        l1_small_size: 64 * KIB,
        trace_region_size: 8 * MIB,
        l1_interleaved_limit: None,
        mesh: Some(MeshShape::new(4, 8)),
        seed: 0x5EED_0008,
    });
}

#[test]
fn a_blackhole_mesh_with_an_interleaved_l1_limit_matches_reference() {
    run(Config {
        name: "blackhole mesh 2x2 (interleaved L1 limit)",
        preset: Preset::BlackholeP150,
        l1_small_size: 0,
        trace_region_size: 0,
        l1_interleaved_limit: Some(0x1_B480 + 64 * KIB),
        mesh: Some(MeshShape::new(2, 2)),
        seed: 0x5EED_0009,
    });
}

//! A sample run for looking at the page: kernels on a simulated Wormhole
//! B0 under explaining guards. Each scene also records, step by step and
//! independently of the guard, the allocated bytes after every allocation
//! and free, the live set at each pool's peak and the circular buffers of
//! its largest enqueue; the guard's detail must equal that record.

use std::collections::HashMap;

use crate::budget::Budget;
use crate::cb_failure::{CircularBufferPlacement, ProgramPeak};
use crate::composition::{PeakComposition, PeakEntry};
use crate::detail::{BankMap, DeviceDetail, TIMELINE_POINTS, Timeline, TimelinePoint};
use crate::device::{Buffer, Device};
use crate::guard::MemoryGuard;
use crate::harness::{RunReport, TestRecord, TestStatus};
use crate::program::CircularBufferConfig;
use crate::report::MemoryReport;
use crate::source::sim::{Preset, SimDevice};
use crate::types::{Allocation, BufferType};
use crate::units::{KIB, MIB};
use crate::{CoreRange, Result};

/// A guarded scope and what it recorded.
struct Scene {
    dev: Device,
    guard: Option<MemoryGuard>,
    start: [u64; 4],
    values: Vec<[u64; 4]>,
    peaks: [u64; 4],
    at_peak: [Vec<Allocation>; 4],
    cbs: Option<ProgramPeak>,
    buffers: HashMap<String, Buffer>,
}

fn per_bank(dev: &Device) -> [u64; 4] {
    let s = dev.snapshot().unwrap();
    BufferType::ALL.map(|t| s.pool(t).allocated_per_bank)
}

impl Scene {
    fn new(dev: Device, budget: Budget) -> Scene {
        let start = per_bank(&dev);
        let guard = MemoryGuard::new(&dev).budget(budget).explain(true);
        Scene {
            dev,
            guard: Some(guard),
            start,
            values: Vec::new(),
            peaks: start,
            at_peak: Default::default(),
            cbs: None,
            buffers: HashMap::new(),
        }
    }

    /// Records the state after an allocation or a free.
    fn step(&mut self) {
        let v = per_bank(&self.dev);
        let live = self.dev.live_allocations().unwrap();
        for (i, t) in BufferType::ALL.iter().enumerate() {
            if v[i] > self.peaks[i] {
                self.peaks[i] = v[i];
                self.at_peak[i] = live
                    .iter()
                    .filter(|a| a.buffer_type == *t)
                    .cloned()
                    .collect();
            }
        }
        self.values.push(v);
    }

    fn alloc(&mut self, key: &str, t: BufferType, size: u64, page: u64) {
        let b = self
            .dev
            .buffer(t, size)
            .page_size(page)
            .label(key)
            .allocate()
            .unwrap();
        self.buffers.insert(key.to_string(), b);
        self.step();
    }

    fn sharded(&mut self, key: &str, t: BufferType, size: u64, page: u64, shards: u32) {
        let b = self
            .dev
            .buffer(t, size)
            .page_size(page)
            .sharded(shards)
            .label(key)
            .allocate()
            .unwrap();
        self.buffers.insert(key.to_string(), b);
        self.step();
    }

    fn free(&mut self, key: &str) {
        drop(self.buffers.remove(key));
        self.step();
    }

    fn leak(&mut self, key: &str) {
        std::mem::forget(self.buffers.remove(key));
    }

    /// Enqueues a program with CBs of `sizes` on the 8x8 grid.
    fn enqueue(&mut self, sizes: &[(u64, u8)]) {
        let grid = CoreRange::grid(8, 8).unwrap();
        let mut p = self.dev.create_program().unwrap();
        for &(size, index) in sizes {
            p.add_circular_buffer(grid, CircularBufferConfig::new(size).page_size(index, 2048))
                .unwrap();
        }
        let run = self.dev.enqueue(&mut p).unwrap();
        let placements = p
            .circular_buffers()
            .iter()
            .map(|cb| CircularBufferPlacement {
                handle: cb.handle,
                indices: cb.indices.clone(),
                size: cb.size,
                address: cb.address.unwrap(),
                cores: cb.cores.to_string(),
            })
            .collect();
        if self
            .cbs
            .as_ref()
            .is_none_or(|c| run.cb_bytes_per_core > c.cb_bytes)
        {
            self.cbs = Some(ProgramPeak {
                program: run.program,
                core: run.cb_peak_core,
                cb_bytes: run.cb_bytes_per_core,
                l1_buffers_per_bank: run.l1_buffers_per_bank,
                headroom: run.headroom,
                circular_buffers: placements,
            });
        }
    }

    /// The guard's report, after checking its detail against the one the
    /// scene recorded.
    fn finish(mut self, name: &str) -> MemoryReport {
        let first_id = self
            .at_peak
            .iter()
            .flatten()
            .map(|a| a.id)
            .min()
            .unwrap_or(0);
        let mut report = self.guard.take().unwrap().into_report().unwrap();
        report.name = Some(name.to_string());
        let snapshot = self.dev.snapshot().unwrap();
        let maps = BufferType::ALL
            .iter()
            .enumerate()
            .filter(|(_, t)| snapshot.pool(**t).num_banks > 0)
            .map(|(i, &t)| {
                let pool = snapshot.pool(t);
                let mut entries: Vec<PeakEntry> = self.at_peak[i]
                    .iter()
                    .map(|a| PeakEntry {
                        id: a.id,
                        label: a.label.clone(),
                        address: a.address,
                        size: a.size,
                        size_per_bank: a.size_per_bank,
                        contributed_total: a.size_per_bank * u64::from(pool.num_banks),
                        location: a.location.clone(),
                        inherited: a.id < first_id && name.contains("inherit"),
                    })
                    .collect();
                entries.sort_by(|a, b| b.size_per_bank.cmp(&a.size_per_bank).then(a.id.cmp(&b.id)));
                BankMap {
                    buffer_type: t,
                    base_address: pool.base_address,
                    size_per_bank: pool.size_per_bank,
                    at_peak: Some(PeakComposition {
                        buffer_type: t,
                        peak_per_bank: self.peaks[i],
                        entries,
                    }),
                }
            })
            .collect();
        let n = self.values.len() as u64;
        let mut stride = 1u64;
        while n.div_ceil(stride) > TIMELINE_POINTS as u64 {
            stride *= 2;
        }
        let points = self
            .values
            .chunks(stride as usize)
            .enumerate()
            .map(|(k, chunk)| {
                let first = k as u64 * stride + 1;
                let pick = |f: fn(u64, u64) -> u64| {
                    std::array::from_fn(|i| chunk.iter().map(|v| v[i]).reduce(f).unwrap())
                };
                TimelinePoint {
                    first_event: first,
                    last_event: first + chunk.len() as u64 - 1,
                    high_per_bank: pick(u64::max),
                    low_per_bank: pick(u64::min),
                    end_per_bank: *chunk.last().unwrap(),
                }
            })
            .collect();
        let recorded = DeviceDetail {
            timeline: Timeline {
                events: n,
                stride,
                start_per_bank: self.start,
                points,
            },
            maps,
            circular_buffers: self.cbs.take(),
        };
        let explained = report.devices[0].detail.as_ref();
        assert_eq!(
            explained,
            Some(&recorded),
            "the guard's detail of {name} differs from the scene's own record"
        );
        report
    }
}

fn record(report: MemoryReport, error: Option<&str>) -> TestRecord {
    let passed = report.passed && error.is_none();
    TestRecord {
        name: report.name.clone().unwrap(),
        binary: "kernels".into(),
        device: "sim:wormhole_b0 l1_small_size=65536".into(),
        status: if passed {
            TestStatus::Passed
        } else {
            TestStatus::Failed
        },
        error: error.map(str::to_string),
        memory: Some(report),
    }
}

fn device() -> Device {
    SimDevice::builder(Preset::WormholeB0)
        .l1_small_size(64 * KIB)
        .build()
        .unwrap()
}

/// Six tests: a matmul that fits, a conv over its L1 budget after many
/// events, an attention kernel near its limit, a leak, a name and label
/// that need escaping, and a test without detail.
pub(super) fn run() -> Result<RunReport> {
    let mut tests = Vec::new();

    let mut s = Scene::new(
        device(),
        Budget::new().l1_peak("48 MiB").dram_peak("64 MiB"),
    );
    s.alloc("in0 weights", BufferType::Dram, 8 * MIB, 2048);
    s.alloc("in1 activations", BufferType::Dram, 4 * MIB, 2048);
    s.alloc("output", BufferType::L1, 64 * 420 * KIB, 2048);
    s.sharded("semaphores", BufferType::L1Small, 64 * 16 * KIB, 2048, 64);
    s.enqueue(&[(256 * KIB, 0), (256 * KIB, 1), (128 * KIB, 16)]);
    s.free("in1 activations");
    s.free("semaphores");
    s.free("output");
    s.free("in0 weights");
    tests.push(record(s.finish("kernels::matmul_fits_in_l1"), None));

    let mut s = Scene::new(device(), Budget::new().l1_peak("40 MiB"));
    let mut state = 0x5eedu64;
    for i in 0..1500u64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = format!("tile {}", i % 24);
        if s.buffers.contains_key(&key) {
            s.free(&key);
        } else {
            let kib = 8 + (state >> 33) % 9 * 8;
            s.alloc(&key, BufferType::L1, 64 * kib * KIB, 2048);
        }
    }
    let keys: Vec<String> = {
        let mut k: Vec<String> = s.buffers.keys().cloned().collect();
        k.sort();
        k
    };
    for k in keys {
        s.free(&k);
    }
    tests.push(record(s.finish("kernels::conv_over_budget"), None));

    let mut s = Scene::new(device(), Budget::new().l1_peak_per_bank("700 KiB"));
    s.enqueue(&[(192 * KIB, 0), (64 * KIB, 1)]);
    s.alloc("q", BufferType::L1, 64 * 160 * KIB, 2048);
    s.alloc("k", BufferType::L1, 64 * 160 * KIB, 2048);
    s.alloc("scores", BufferType::L1, 64 * 240 * KIB, 2048);
    s.free("scores");
    s.free("k");
    s.free("q");
    tests.push(record(s.finish("kernels::attention_near_its_limit"), None));

    let mut s = Scene::new(device(), Budget::new());
    s.alloc("weights", BufferType::Dram, MIB, 2048);
    s.alloc("bias", BufferType::Dram, 64 * KIB, 2048);
    s.free("bias");
    s.leak("weights");
    tests.push(record(s.finish("kernels::leaks_weights"), None));

    let mut s = Scene::new(device(), Budget::new().l1_peak("8 MiB"));
    s.alloc(
        "<script>alert(\"label\")</script> 'q'",
        BufferType::L1,
        64 * 96 * KIB,
        2048,
    );
    s.free("<script>alert(\"label\")</script> 'q'");
    tests.push(record(
        s.finish("kernels::<script>alert(\"name\")</script>"),
        Some("panicked: expected <b>1</b> & got '2'"),
    ));

    let mut s = Scene::new(device(), Budget::new().l1_peak("1 MiB"));
    s.alloc("x", BufferType::L1, 64 * 4 * KIB, 2048);
    s.free("x");
    let mut plain = s.finish("kernels::without_detail");
    plain.devices[0].detail = None;
    tests.push(record(plain, None));

    Ok(RunReport::new(None, tests))
}

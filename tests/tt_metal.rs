//! The TT-Metal backend against the real `libtt_metal.so` (CI: the PyPI
//! wheel ttnn 0.81.1 in TT-Metal's mock device mode, see `.ci/tt-metal.sh`).
//! Needs TT-Metal's environment: `TT_METAL_RUNTIME_ROOT`, and a mock
//! cluster descriptor in `TT_METAL_MOCK_CLUSTER_DESC_PATH` (or hardware).
#![cfg(feature = "tt-metal")]

mod common;

use serial_test::serial;
use tt_memguard::{
    BufferType, CircularBufferCheck, CircularBufferConfig, Device, DeviceKind, Direction,
    EnqueueReport, Error, KIB, MIB, MemoryGuard, MeshDevice, MeshShape, MockCluster, Preset,
    SimDevice, SimMesh, TtMetalConfig, TtMetalDevice, assert_no_leak, try_assert_no_leak,
};

const L1_SMALL: u64 = 32 * KIB;
const TRACE: u64 = 8 * MIB;

fn config() -> TtMetalConfig {
    TtMetalConfig {
        l1_small_size: L1_SMALL,
        trace_region_size: TRACE,
        ..TtMetalConfig::default()
    }
}

fn open() -> Device {
    TtMetalDevice::open(config()).expect("opening the TT-Metal device")
}

/// The simulated twin of a TT-Metal device, with the same carve-outs.
fn sim_twin(dev: &Device) -> Device {
    let preset = TtMetalDevice::matching_preset(dev)
        .unwrap()
        .expect("the mock device has a simulated preset");
    SimDevice::builder(preset)
        .l1_small_size(dev.info().l1_small_size)
        .trace_region_size(dev.info().trace_region_size)
        .build()
        .unwrap()
}

/// The device kind CI says it configured (`n150`, `p150`, `n300`, `t3000`), and its
/// simulated preset.
fn expected_kind() -> Option<(Preset, MockCluster)> {
    let cluster = match std::env::var("TT_MEMGUARD_EXPECT_MOCK").ok()?.as_str() {
        "n150" => MockCluster::WormholeN150,
        "n300" => MockCluster::WormholeN300,
        "p150" => MockCluster::BlackholeP150,
        "t3000" => MockCluster::WormholeT3000,
        other => panic!("unknown TT_MEMGUARD_EXPECT_MOCK {other:?}"),
    };
    Some((cluster.preset(), cluster))
}

#[test]
#[serial]
fn opens_with_the_simulated_presets_geometry() {
    let dev = open();
    assert_eq!(dev.info().kind, DeviceKind::TtMetal);
    assert!(dev.name().starts_with("tt-metal:"), "{}", dev.name());
    let preset = TtMetalDevice::matching_preset(&dev).unwrap();
    if let Some((expected, _)) = expected_kind() {
        assert_eq!(preset, Some(expected));
    }
    let snapshot = dev.snapshot().unwrap();
    for pool in snapshot.iter() {
        assert_eq!(pool.allocated_per_bank, 0, "{pool:?}");
        assert_eq!(pool.free_per_bank, pool.size_per_bank, "{pool:?}");
        assert_eq!(
            pool.largest_free_block_per_bank, pool.size_per_bank,
            "{pool:?}"
        );
    }
    // Every figure of every pool, the layout included, equals the simulator's.
    assert_eq!(snapshot, sim_twin(&dev).snapshot().unwrap());
    let cores = dev.info().compute_cores();
    assert_eq!(cores, snapshot.pool(BufferType::L1).num_banks);
    assert_eq!(cores, snapshot.pool(BufferType::L1Small).num_banks);
}

#[test]
#[serial]
fn worked_example_gives_the_simulators_addresses() {
    let dev = TtMetalDevice::open(TtMetalConfig::default()).unwrap();
    let sim = sim_twin(&dev);
    let steps = [
        (BufferType::Dram, MIB),
        (BufferType::Dram, 3 * MIB),
        (BufferType::Dram, 8 * MIB),
        (BufferType::L1, 64 * KIB),
        (BufferType::L1, 256 * KIB),
    ];
    let mut live = Vec::new();
    for (pool, size) in steps {
        let real = dev.allocate(pool, size, 2048).unwrap();
        let twin = sim.allocate(pool, size, 2048).unwrap();
        assert_eq!(
            (real.address(), real.size_per_bank(), real.num_banks()),
            (twin.address(), twin.size_per_bank(), twin.num_banks())
        );
        assert_eq!(dev.snapshot().unwrap(), sim.snapshot().unwrap());
        live.push((real, twin));
    }
    if TtMetalDevice::matching_preset(&dev).unwrap() == Some(Preset::WormholeB0) {
        let addresses: Vec<u64> = live.iter().map(|(b, _)| b.address()).collect();
        assert_eq!(
            addresses,
            [0x100040, 0x115840, 0x155840, 0x16D800, 0x16C800]
        );
    }
    drop(live);
    let fresh = dev.snapshot().unwrap();
    assert_eq!(fresh, sim.snapshot().unwrap());
    assert_eq!(fresh.pool(BufferType::Dram).allocated_per_bank, 0);
}

#[test]
#[serial]
fn sharded_l1_small_trace_and_directions() {
    let dev = open();
    let snapshot = dev.snapshot().unwrap();
    let small = snapshot.pool(BufferType::L1Small);
    let sharded = dev
        .allocate_sharded(BufferType::L1Small, 8 * KIB, 2 * KIB, 4)
        .unwrap();
    assert_eq!(
        sharded.address(),
        small.base_address + small.size_per_bank - 2 * KIB
    );
    assert_eq!(
        dev.snapshot()
            .unwrap()
            .pool(BufferType::L1Small)
            .allocated_per_bank,
        2 * KIB
    );
    // More shards than a grid row: the shard grid spans two core ranges.
    let grid_x = u64::from(dev.info().compute_grid.0);
    let wide = dev
        .allocate_sharded(
            BufferType::L1,
            (grid_x + 3) * 4 * KIB,
            4 * KIB,
            (grid_x + 3) as u32,
        )
        .unwrap();
    assert_eq!(wide.size_per_bank(), 4 * KIB);
    let banks = u64::from(snapshot.pool(BufferType::Dram).num_banks);
    let trace = dev.allocate(BufferType::Trace, banks * 4096, 4096).unwrap();
    assert_eq!(
        trace.address(),
        snapshot.pool(BufferType::Trace).base_address
    );
    let top = dev
        .buffer(BufferType::Dram, MIB)
        .page_size(2048)
        .direction(Direction::TopDown)
        .allocate()
        .unwrap();
    let dram = snapshot.pool(BufferType::Dram);
    assert_eq!(
        top.address(),
        dram.base_address + dram.size_per_bank - top.size_per_bank()
    );
    let low = dev
        .buffer(BufferType::L1, 64 * KIB)
        .page_size(2048)
        .direction(Direction::BottomUp)
        .allocate()
        .unwrap();
    assert_eq!(low.address(), snapshot.pool(BufferType::L1).base_address);
    drop((sharded, wide, trace, top, low));
    assert_eq!(dev.snapshot().unwrap(), snapshot);
}

#[test]
#[serial]
fn dram_sharded_buffers_get_the_simulators_addresses() {
    let dev = TtMetalDevice::open(TtMetalConfig::default()).unwrap();
    let sim = sim_twin(&dev);
    let banks = dev.snapshot().unwrap().pool(BufferType::Dram).num_banks;
    // One shard per DRAM bank, 1 to all of them, both directions; page
    // sizes that the DRAM alignment rounds up, and page counts the shards
    // do not hold evenly.
    let mut live = Vec::new();
    for (i, shards) in (1..=banks).enumerate() {
        let page = [2048, 1000, 100, 64][i % 4];
        let pages = 100 + i as u64;
        let direction = if i % 3 == 2 {
            Direction::TopDown
        } else {
            Direction::Default
        };
        let allocate = |d: &Device| {
            d.buffer(BufferType::Dram, pages * page)
                .page_size(page)
                .sharded(shards)
                .direction(direction)
                .label("weights")
                .allocate()
                .unwrap()
        };
        let (real, twin) = (allocate(&dev), allocate(&sim));
        assert_eq!(
            (real.address(), real.size_per_bank(), real.num_banks()),
            (twin.address(), twin.size_per_bank(), twin.num_banks()),
            "{shards} shards of {pages} x {page} B"
        );
        assert_eq!(dev.snapshot().unwrap(), sim.snapshot().unwrap());
        live.push((real, twin));
    }
    if TtMetalDevice::matching_preset(&dev).unwrap() == Some(Preset::WormholeB0) {
        // 100 pages of 2 KiB on 1 bank, then 101 pages of 1,000 B (1,024 B
        // in DRAM) over 2 banks: 51 pages each.
        assert_eq!(
            (live[0].0.address(), live[0].0.size_per_bank()),
            (0x10_0040, 204_800)
        );
        assert_eq!(
            (live[1].0.address(), live[1].0.size_per_bank()),
            (0x13_2040, 52_224)
        );
    }
    // The event log knows them as sharded, with their labels.
    let listed = dev.live_allocations().unwrap();
    assert_eq!(listed.len(), banks as usize);
    for (a, shards) in listed.iter().zip(1..) {
        assert_eq!(
            (a.shards, a.label.as_deref(), a.num_banks),
            (Some(shards), Some("weights"), banks)
        );
    }
    // More shards than DRAM banks: refused before TT-Metal sees it.
    let e = dev
        .allocate_sharded(BufferType::Dram, 4096, 64, banks + 1)
        .unwrap_err();
    assert!(matches!(e, Error::DramShards { .. }), "{e}");
    drop(live);
    assert_eq!(dev.snapshot().unwrap(), sim.snapshot().unwrap());
    assert_eq!(dev.live_count().unwrap(), 0);
}

#[test]
#[serial]
fn live_set_attribution_and_peaks_come_from_events() {
    let dev = open();
    let first = dev.next_allocation_id().unwrap();
    let mark = dev.peak_mark().unwrap();
    let a = dev
        .buffer(BufferType::Dram, MIB)
        .page_size(2048)
        .label("weights")
        .allocate()
        .unwrap();
    let line = line!() - 2;
    let b = dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap();
    assert!(a.id() >= first && b.id() > a.id());
    let live = dev.live_allocations().unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(dev.live_count().unwrap(), 2);
    assert_eq!(live[0].label.as_deref(), Some("weights"));
    assert_eq!(live[0].address, a.address());
    assert_eq!(live[0].size_per_bank, a.size_per_bank());
    let location = live[0]
        .location
        .as_ref()
        .expect("allocated through the crate");
    assert!(location.file.ends_with("tt_metal.rs"), "{location}");
    assert_eq!(location.line, line);
    let l1_peak = b.size_per_bank();
    drop(b);
    let peaks = mark.read().unwrap();
    assert_eq!(peaks.per_bank(BufferType::L1), l1_peak);
    assert_eq!(peaks.per_bank(BufferType::Dram), a.size_per_bank());
    drop(a);
    assert_eq!(dev.live_count().unwrap(), 0);
}

#[test]
#[serial]
fn guards_and_macros_work_unchanged() {
    let dev = open();
    let address = assert_no_leak!(dev, {
        let b = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
        b.address()
    });
    assert_eq!(
        address,
        dev.snapshot().unwrap().pool(BufferType::Dram).base_address
    );

    let result = try_assert_no_leak!(dev, {
        std::mem::forget(dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap());
    });
    let report = result
        .as_ref()
        .unwrap_err()
        .memory_report()
        .expect("a memory report");
    let leaked: Vec<_> = report.leaks().collect();
    assert_eq!(leaked.len(), 1);
    assert_eq!(leaked[0].buffer_type, BufferType::L1);
    assert!(leaked[0].location.is_some());
    // A forgotten buffer keeps its device handle alive: close the device explicitly.
    dev.close();
}

#[test]
#[serial]
fn buffers_allocated_by_other_code_are_observed() {
    let dev = open();
    let mesh = TtMetalDevice::mesh_device_ptr(&dev).expect("a TT-Metal device");
    assert!(TtMetalDevice::mesh_device_ptr(&SimDevice::wormhole_b0()).is_none());
    // "Other code": a second handle on the same MeshDevice, which allocates through TT-Metal
    // as the caller's own C++ would, on this thread and on another one.
    // SAFETY: `dev` keeps the MeshDevice open for longer than `other` lives.
    let other = unsafe { TtMetalDevice::adopt_mesh_device(mesh) }.unwrap();
    let result = try_assert_no_leak!(dev, {
        std::mem::forget(other.allocate(BufferType::Dram, 2 * MIB, 2048).unwrap());
        let handle = other.clone();
        std::thread::spawn(move || {
            std::mem::forget(handle.allocate(BufferType::L1, 32 * KIB, 2048).unwrap());
        })
        .join()
        .unwrap();
    });
    let report = result
        .as_ref()
        .unwrap_err()
        .memory_report()
        .expect("a memory report");
    let leaked: Vec<_> = report.leaks().collect();
    assert_eq!(leaked.len(), 2, "{}", report.render(false));
    for allocation in &leaked {
        // Seen through events only: no location, no label, as TT-Metal reported it.
        assert_eq!(
            (allocation.location.as_ref(), allocation.label.as_ref()),
            (None, None)
        );
    }
    assert_eq!(leaked[0].size, 2 * MIB);
    assert_eq!(leaked[1].size, 32 * KIB);
    let theirs = other.live_allocations().unwrap();
    assert_eq!(theirs.len(), 2);
    assert!(theirs.iter().all(|a| a.location.is_some()));
    // Closing the second handle releases the buffers it made (the MeshDevice stays open),
    // and those frees are events too.
    other.close();
    assert_eq!(dev.live_count().unwrap(), 0);
    assert_eq!(
        dev.snapshot()
            .unwrap()
            .pool(BufferType::Dram)
            .allocated_per_bank,
        0
    );
}

#[test]
#[serial]
fn an_idevice_pointer_to_a_mesh_device_is_adopted() {
    let dev = open();
    let mesh = TtMetalDevice::mesh_device_ptr(&dev).unwrap();
    // SAFETY: the MeshDevice is an IDevice at the same address, and `dev` keeps it open.
    let adopted = unsafe { TtMetalDevice::adopt_idevice(mesh) }.unwrap();
    assert_eq!(adopted.snapshot().unwrap(), dev.snapshot().unwrap());
    let b = adopted.allocate(BufferType::Dram, MIB, 2048).unwrap();
    assert_eq!(dev.live_count().unwrap(), 1);
    drop(b);
    // SAFETY: a null pointer is refused before it is used.
    let e = unsafe { TtMetalDevice::adopt_idevice(std::ptr::null_mut()) }.unwrap_err();
    assert!(matches!(e, Error::TtMetal { .. }), "{e}");
    assert!(e.to_string().contains("null"), "{e}");
}

#[test]
#[serial]
fn tt_metal_errors_become_typed_errors() {
    let dev = open();
    let snapshot = dev.snapshot().unwrap();
    let dram = snapshot.pool(BufferType::Dram);
    // Out of memory: TT-Metal refuses the buffer, and the figures are its
    // allocator's at the time (per bank: 2^36 B over 12 banks of 2 KiB pages).
    let e = dev.allocate(BufferType::Dram, 64 << 30, 2048).unwrap_err();
    let Error::OutOfMemory {
        banks,
        needed_per_bank,
        size_per_bank,
        allocated_per_bank,
        free_per_bank,
        largest_free_block_per_bank,
        ..
    } = e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (
            banks,
            size_per_bank,
            allocated_per_bank,
            free_per_bank,
            largest_free_block_per_bank
        ),
        (
            dram.num_banks,
            dram.size_per_bank,
            dram.allocated_per_bank,
            dram.free_per_bank,
            dram.largest_free_block_per_bank
        )
    );
    let pages = (64u64 << 30) / 2048;
    assert_eq!(
        needed_per_bank,
        pages.div_ceil(u64::from(banks)) * 2048,
        "{e}"
    );
    // Bad input is refused before TT-Metal sees it (page size 0 would kill the process).
    assert!(matches!(
        dev.allocate(BufferType::Dram, 4096, 0),
        Err(Error::ZeroPageSize { .. })
    ));
    assert!(matches!(
        dev.allocate(BufferType::L1Small, 4096, 1024),
        Err(Error::L1SmallInterleaved)
    ));
    assert!(matches!(
        dev.allocate(BufferType::Dram, 3000, 2048),
        Err(Error::SizeNotPageMultiple { .. })
    ));
    assert!(matches!(
        dev.buffer(BufferType::Dram, 4096)
            .at_address(0x200000)
            .allocate(),
        Err(Error::Rejected { .. })
    ));
    // A TRACE buffer on a device opened without a TRACE region.
    let bare = {
        drop(dev);
        TtMetalDevice::open(TtMetalConfig::default()).unwrap()
    };
    let e = bare.allocate(BufferType::Trace, 4096, 4096).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfMemory {
                size_per_bank: 0,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("trace_region_size"), "{e}");
    // Nothing was left allocated by the failures.
    assert_eq!(bare.live_count().unwrap(), 0);
    bare.close();
    assert!(matches!(bare.snapshot(), Err(Error::DeviceClosed { .. })));
}

#[test]
#[serial]
fn fragmented_out_of_memory_is_typed_as_on_the_simulator() {
    let dev = open();
    let sim = sim_twin(&dev);
    let fragment = |d: &Device| {
        let l1 = *d.snapshot().unwrap().pool(BufferType::L1);
        // Nine blocks of a tenth of the pool from the top, every other one
        // freed: about half the pool is free, in holes of one block.
        let block = l1.size_per_bank / 10 / 2048 * 2048;
        let size = block * u64::from(l1.num_banks);
        let blocks: Vec<_> = (0..9)
            .map(|_| d.allocate(BufferType::L1, size, 2048).unwrap())
            .collect();
        let kept: Vec<_> = blocks.into_iter().step_by(2).collect();
        let e = d.allocate(BufferType::L1, 2 * size, 2048).unwrap_err();
        (e, kept)
    };
    let ((real, _real_kept), (simulated, _sim_kept)) = (fragment(&dev), fragment(&sim));
    let Error::OutOfMemory {
        needed_per_bank,
        free_per_bank,
        largest_free_block_per_bank,
        ..
    } = real
    else {
        panic!("{real:?}")
    };
    assert!(
        largest_free_block_per_bank < needed_per_bank && needed_per_bank <= free_per_bank,
        "{real}"
    );
    assert!(real.to_string().contains("fragmented"), "{real}");
    assert_eq!(real.to_string(), simulated.to_string());
}

#[test]
#[serial]
fn opening_a_missing_device_is_an_error() {
    // No mock cluster of CI has 64 chips (a T3000 has 8).
    let e = TtMetalDevice::open(TtMetalConfig {
        device_id: 64,
        ..TtMetalConfig::default()
    })
    .unwrap_err();
    assert!(matches!(e, Error::TtMetalOpen { device_id: 64, .. }), "{e}");
    assert!(!e.to_string().contains("backtrace"), "{e}");
    // The process is fine: the next open works.
    open().close();
}

#[test]
#[serial]
fn a_missing_runtime_root_is_an_error() {
    let saved = std::env::var_os("TT_METAL_RUNTIME_ROOT");
    let restore = |value: Option<std::ffi::OsString>| match value {
        // SAFETY: the tests of this file run one at a time (`serial`), and no other thread of
        // this process reads the environment meanwhile.
        Some(v) => unsafe { std::env::set_var("TT_METAL_RUNTIME_ROOT", v) },
        None => unsafe { std::env::remove_var("TT_METAL_RUNTIME_ROOT") },
    };
    restore(Some("/nonexistent/tt-metal-root".into()));
    let e = TtMetalDevice::open(config()).unwrap_err();
    restore(saved);
    let Error::TtMetalRuntimeRoot { path, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(
        path.as_deref(),
        Some(std::path::Path::new("/nonexistent/tt-metal-root"))
    );
    assert!(e.to_string().contains("set TT_METAL_RUNTIME_ROOT"), "{e}");
    open().close();
}

#[test]
#[serial]
fn mock_mode_can_be_selected_by_the_config() {
    let (preset, cluster) = expected_kind().unwrap_or((
        MockCluster::WormholeN150.preset(),
        MockCluster::WormholeN150,
    ));
    let dev = TtMetalDevice::open(TtMetalConfig {
        mock: Some(cluster),
        ..config()
    })
    .unwrap();
    assert_eq!(TtMetalDevice::matching_preset(&dev).unwrap(), Some(preset));
    drop(dev);
    // The registration does not outlive that open: this one follows the environment again.
    let dev = open();
    if let Some((expected, _)) = expected_kind() {
        assert_eq!(
            TtMetalDevice::matching_preset(&dev).unwrap(),
            Some(expected)
        );
    }
}

#[test]
#[serial]
fn reopening_gives_a_fresh_device() {
    for _ in 0..3 {
        let dev = open();
        let b = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
        assert_eq!(
            b.address(),
            dev.snapshot().unwrap().pool(BufferType::Dram).base_address
        );
        std::mem::forget(b); // closing the device releases it
        dev.close();
    }
}

#[test]
#[serial]
fn sizes_past_64_bits_are_refused_as_on_the_simulator() {
    let dev = open();
    let sim = sim_twin(&dev);
    let before = dev.snapshot().unwrap();
    // TT-Metal 0.81.1 itself places the first three as 32 B buffers: its
    // per-bank arithmetic wraps around. Both devices refuse them instead.
    let requests: [(BufferType, u64, u64, Option<u32>); 6] = [
        (BufferType::Dram, u64::MAX, u64::MAX, None),
        (BufferType::Dram, 1 << 63, 1, None),
        (BufferType::L1, u64::MAX - 15, u64::MAX - 15, None),
        // Too large for TT-Metal's shard spec, and for any L1 bank.
        (BufferType::L1, 1 << 59, 1, Some(1)),
        (BufferType::L1Small, 1 << 40, 16, Some(3)),
        // TT-Metal's own out-of-memory answer.
        (BufferType::Dram, 1 << 63, 1 << 63, None),
    ];
    for (buffer_type, size, page_size, shards) in requests {
        let attempt = |d: &Device| {
            let mut request = d.buffer(buffer_type, size).page_size(page_size);
            if let Some(shards) = shards {
                request = request.sharded(shards);
            }
            request.allocate().unwrap_err()
        };
        let (real, simulated) = (attempt(&dev), attempt(&sim));
        assert_eq!(real.to_string(), simulated.to_string());
        assert!(
            matches!(
                real,
                Error::BufferTooLarge { .. } | Error::OutOfMemory { .. }
            ),
            "{real:?}"
        );
    }
    assert!(matches!(
        dev.allocate(BufferType::Dram, u64::MAX, u64::MAX),
        Err(Error::BufferTooLarge {
            needed_per_bank: 18_446_744_073_709_551_616,
            ..
        })
    ));
    assert_eq!(dev.snapshot().unwrap(), before);
    assert_eq!(dev.live_count().unwrap(), 0);
}

#[test]
#[serial]
fn carve_outs_tt_metal_would_wrap_are_refused_as_on_the_simulator() {
    let probe = TtMetalDevice::open(TtMetalConfig::default()).unwrap();
    let preset = TtMetalDevice::matching_preset(&probe).unwrap().unwrap();
    probe.close();
    // TT-Metal 0.81.1 opens all of these: without L1_SMALL, or with a DRAM
    // pool of nearly 2^64 bytes.
    for (l1_small_size, trace_region_size) in [(u64::MAX, 0), (0, 1 << 40), (0, u64::MAX)] {
        let config = TtMetalConfig {
            l1_small_size,
            trace_region_size,
            ..TtMetalConfig::default()
        };
        let Err(Error::TtMetalOpen { message, .. }) = TtMetalDevice::open(config) else {
            panic!(
                "opened with l1_small_size {l1_small_size}, trace_region_size {trace_region_size}"
            )
        };
        let sim = SimDevice::builder(preset)
            .l1_small_size(l1_small_size)
            .trace_region_size(trace_region_size)
            .build()
            .unwrap_err();
        assert_eq!(
            sim.to_string(),
            format!("invalid device geometry: {message}")
        );
        // The largest value the message names opens, with the simulator's layout.
        let at_most: u64 = message
            .rsplit("use at most ")
            .next()
            .and_then(|t| t.strip_suffix(" B"))
            .unwrap()
            .parse()
            .unwrap();
        let (l1_small_size, trace_region_size) = if l1_small_size > 0 {
            (at_most, 0)
        } else {
            (0, at_most)
        };
        let dev = TtMetalDevice::open(TtMetalConfig {
            l1_small_size,
            trace_region_size,
            ..TtMetalConfig::default()
        })
        .unwrap();
        assert_eq!(dev.snapshot().unwrap(), sim_twin(&dev).snapshot().unwrap());
        dev.close();
    }
}

#[test]
#[serial]
fn forgotten_guards_cost_allocations_nothing_and_peaks_stay_right() {
    let dev = open();
    let outer = dev.peak_mark().unwrap();
    for _ in 0..5_000 {
        std::mem::forget(tt_memguard::MemoryGuard::new(&dev));
    }
    let big = dev.allocate(BufferType::Dram, 8 * MIB, 2048).unwrap();
    let big_per_bank = big.size_per_bank();
    drop(big);
    let inner = dev.peak_mark().unwrap();
    let small = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    assert_eq!(
        inner.read().unwrap().per_bank(BufferType::Dram),
        small.size_per_bank()
    );
    drop((inner, small));
    assert_eq!(
        outer.read().unwrap().per_bank(BufferType::Dram),
        big_per_bank
    );
    // The forgotten guards hold the device: close it explicitly.
    drop(outer);
    dev.close();
}

// ---- programs and circular buffers (TT-Metal's compile step: layout, events, both checks) ----

use common::{cb, cb_addresses, corner, example_program, range};

/// An enqueue report without the program id (TT-Metal's ids are its own).
fn without_id(report: &EnqueueReport) -> EnqueueReport {
    let mut report = report.clone();
    report.program = 0;
    report
}

#[test]
#[serial]
fn circular_buffers_get_tt_metals_addresses_and_the_simulators_report() {
    let dev = open();
    let sim = sim_twin(&dev);
    let mut real = example_program(&dev);
    let mut twin = example_program(&sim);
    assert!(real.circular_buffers()[0].address.is_none());
    let run = dev.enqueue(&mut real).unwrap();
    let expected = if dev.name().contains("blackhole") {
        [0x1B480, 0x1C480, 0x1C880, 0x1C880, 0x1C880]
    } else {
        [0x19D60, 0x1AD60, 0x1B160, 0x1B160, 0x1B160]
    };
    assert_eq!(cb_addresses(&real), expected);
    assert!(run.laid_out_now);
    assert_eq!(run.cb_peak_core, (4, 4).into());
    let (x, y) = corner(&dev);
    assert_eq!(run.cores_with_cbs, u64::from((x + 1) * (y + 1)));
    assert_eq!(
        without_id(&run),
        without_id(&sim.enqueue(&mut twin).unwrap())
    );
    // Later enqueues validate the cached layout: TT-Metal reports no CB again.
    let again = dev.enqueue(&mut real).unwrap();
    assert!(!again.laid_out_now);
    assert_eq!(cb_addresses(&real), expected);
    // Adding after the first enqueue is refused, as TT-Metal refuses it.
    let e = real
        .add_circular_buffer(range(0, 0, 0, 0), cb(64, 9))
        .unwrap_err();
    assert!(matches!(e, Error::ProgramCompiled { .. }), "{e:?}");
    // Program ids are TT-Metal's own (a process-wide counter): distinct and increasing.
    let next = dev.create_program().unwrap();
    assert!(next.id() > real.id(), "{} then {}", real.id(), next.id());
}

#[test]
#[serial]
fn an_index_taken_or_too_large_is_refused_before_tt_metal_sees_it() {
    let dev = open();
    let mut program = dev.create_program().unwrap();
    program
        .add_circular_buffer(range(0, 0, 3, 3), cb(KIB, 0))
        .unwrap();
    let e = program
        .add_circular_buffer(range(2, 2, 5, 5), cb(KIB, 0))
        .unwrap_err();
    assert!(
        matches!(e, Error::CircularBufferIndexTaken { index: 0, .. }),
        "{e:?}"
    );
    let e = program
        .add_circular_buffer(range(0, 0, 0, 0), cb(KIB, 64))
        .unwrap_err();
    assert!(
        matches!(e, Error::CircularBufferIndexTooLarge { index: 64, .. }),
        "{e:?}"
    );
    // The refused CBs left nothing behind: the program lays out its one CB.
    dev.enqueue(&mut program).unwrap();
    assert_eq!(program.circular_buffers().len(), 1);
}

#[test]
#[serial]
fn a_region_beyond_l1_is_tt_metals_error_with_the_simulators_numbers() {
    let dev = open();
    let sim = sim_twin(&dev);
    let program_on = |dev: &Device| {
        let mut p = dev.create_program().unwrap();
        p.add_circular_buffer(range(0, 0, 3, 3), cb(800 * KIB, 0))
            .unwrap();
        p.add_circular_buffer(range(0, 0, 3, 3), cb(800 * KIB, 1))
            .unwrap();
        p
    };
    let real = dev.enqueue(&mut program_on(&dev)).unwrap_err();
    let twin = sim.enqueue(&mut program_on(&sim)).unwrap_err();
    let (Error::CircularBuffers(r), Error::CircularBuffers(t)) = (&real, &twin) else {
        panic!("{real:?} / {twin:?}")
    };
    assert_eq!(r.check, CircularBufferCheck::BeyondL1);
    assert_eq!(
        (r.check, r.range, r.region_end, r.limit, r.base),
        (t.check, t.range, t.region_end, t.limit, t.base)
    );
    assert_eq!(r.circular_buffers, t.circular_buffers);
    assert_eq!(
        real.to_string().lines().next(),
        twin.to_string().lines().next(),
        "TT-Metal's message"
    );
}

#[test]
#[serial]
fn a_clash_between_two_enqueues_is_tt_metals_error_until_the_buffer_is_freed() {
    let dev = open();
    let sim = sim_twin(&dev);
    let banks = u64::from(dev.snapshot().unwrap().pool(BufferType::L1).num_banks);
    let (x, y) = corner(&dev);
    let program_on = |dev: &Device| {
        let mut p = dev.create_program().unwrap();
        p.add_circular_buffer(range(0, 0, x, y), cb(512 * KIB, 0))
            .unwrap();
        p
    };
    let (mut real, mut twin) = (program_on(&dev), program_on(&sim));
    dev.enqueue(&mut real).unwrap();
    sim.enqueue(&mut twin).unwrap();
    let big = dev
        .allocate(BufferType::L1, banks * 900 * KIB, 2048)
        .unwrap();
    let big_twin = sim
        .allocate(BufferType::L1, banks * 900 * KIB, 2048)
        .unwrap();
    assert_eq!(big.address(), big_twin.address());
    let e = dev.enqueue(&mut real).unwrap_err();
    let Error::CircularBuffers(failure) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(failure.check, CircularBufferCheck::Clash);
    assert_eq!(failure.limit, big.address());
    assert_eq!(failure.region_end, failure.base + 512 * KIB);
    assert!(
        e.to_string().lines().next().unwrap().starts_with(&format!(
            "Statically allocated circular buffers in program {} clash with L1 buffers on core range [0-0 - {x}-{y}]",
            real.id()
        )),
        "{e}"
    );
    assert_eq!(
        failure.lowest_buffer.as_ref().map(|b| b.address),
        Some(big.address())
    );
    // It throws again at the next enqueue, and passes once the buffer is freed.
    assert!(dev.enqueue(&mut real).is_err());
    drop(big);
    let run = dev.enqueue(&mut real).unwrap();
    assert!(!run.laid_out_now);
    assert_eq!(run.lowest_l1_buffer, None);
}

#[test]
#[serial]
fn a_backed_circular_buffer_is_unsupported_on_tt_metal() {
    let dev = open();
    let shard = dev
        .allocate_sharded(BufferType::L1, 8 * 8 * KIB, 2048, 8)
        .unwrap();
    let mut program = dev.create_program().unwrap();
    let e = program
        .add_circular_buffer(
            range(0, 0, 7, 0),
            CircularBufferConfig::new(4 * KIB)
                .page_size(0, 2048)
                .backed_by(&shard, 0),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("backed by a buffer"), "{e}");
}

#[test]
#[serial]
fn an_enqueue_raises_the_peak_marks_program_figures_as_on_the_simulator() {
    let dev = open();
    let sim = sim_twin(&dev);
    let banks = u64::from(dev.snapshot().unwrap().pool(BufferType::L1).num_banks);
    let mut figures = Vec::new();
    for d in [&dev, &sim] {
        let mark = d.peak_mark().unwrap();
        let _weights = d.allocate(BufferType::L1, banks * 64 * KIB, 2048).unwrap();
        let mut program = example_program(d);
        d.enqueue(&mut program).unwrap();
        let peaks = mark.read().unwrap();
        figures.push((
            peaks.cb_per_core(),
            peaks.l1_total_per_core(),
            peaks.min_headroom(),
        ));
    }
    assert_eq!(figures[0], figures[1]);
    let (cb, total, headroom) = figures[0];
    assert!(cb > 0 && total > cb && headroom.is_some(), "{figures:?}");
}

#[test]
#[serial]
fn a_device_adopted_after_its_buffers_were_made_cannot_be_recorded() {
    let dev = open();
    let b = dev
        .buffer(BufferType::Dram, MIB)
        .page_size(2048)
        .label("early weights")
        .allocate()
        .unwrap();
    let address = b.address();
    let mesh = TtMetalDevice::mesh_device_ptr(&dev).unwrap();
    // SAFETY: `dev` keeps the MeshDevice open for longer than `adopted` lives.
    let adopted = unsafe { TtMetalDevice::adopt_mesh_device(mesh) }.unwrap();
    let e = adopted.record().unwrap_err();
    // It knows its carve-outs from its layout, but not the buffer.
    assert!(matches!(e, Error::Recording { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!(
            ": DRAM has {} B per bank allocated, of which its live buffers account for 0 B (buffers made before the device was observed): a trace of it would not replay; record a device from its opening",
            b.size_per_bank()
        )),
        "{e}"
    );
    // The device that made them records them, pinned where they are, with the carve-outs.
    let rec = dev.record().unwrap();
    drop(b);
    let trace = rec.finish().unwrap();
    assert_eq!(
        (trace.l1_small_size, trace.trace_region_size),
        (L1_SMALL, TRACE)
    );
    assert!(
        trace.to_text().ends_with(&format!(
            "trace {TRACE}\nalloc b1 DRAM 1048576 2048 def fixed={address:#x} expect={address:#x} label=early%20weights\nfree b1\n"
        )),
        "{trace}"
    );
    trace.replay(&trace.open_sim().unwrap(), |_| {}).unwrap();
    // With the buffer gone the adopted handle records: it has the carve-outs from the layout
    // (as the allocator rounded them), which opens the same simulated device.
    let rec = adopted.record().unwrap();
    let trace = rec.finish().unwrap();
    let snapshot = dev.snapshot().unwrap();
    let trace_bytes = snapshot.pool(BufferType::Trace).size_per_bank
        * u64::from(snapshot.pool(BufferType::Dram).num_banks);
    assert_eq!(
        (trace.l1_small_size, trace.trace_region_size),
        (L1_SMALL, trace_bytes)
    );
    assert_eq!(trace.open_sim().unwrap().snapshot().unwrap(), snapshot);
    adopted.close();
}

/// A mesh of every chip of the system: one allocator, whose figures are one chip's; each mesh
/// buffer lands where the simulated mesh of the same shape puts it (the worked example); a guard
/// on it reports it as one device; a row of every chip opens too; a TT-Metal mesh has no chip's
/// own allocator here; and a shape the system does not have is TT-Metal's error.
#[test]
#[serial]
fn a_mesh_of_every_chip_places_buffers_as_the_simulated_mesh() {
    let mesh = TtMetalDevice::open_mesh(None, config()).expect("opening the system mesh");
    let shape = mesh.shape();
    if let Some((_, cluster)) = expected_kind() {
        assert_eq!(shape.chips(), cluster.chips(), "{shape}");
    }
    assert!(MeshDevice::of(&mesh).is_some());
    assert!(
        mesh.name().ends_with(&format!(":{shape}")),
        "{}",
        mesh.name()
    );
    let preset = TtMetalDevice::matching_preset(&mesh).unwrap().unwrap();
    let sim = SimMesh::with_chip(
        SimDevice::builder(preset)
            .l1_small_size(L1_SMALL)
            .trace_region_size(TRACE),
        shape,
    )
    .build()
    .unwrap();
    assert_eq!(mesh.snapshot().unwrap(), sim.snapshot().unwrap());
    let guard = MemoryGuard::new(&mesh);
    let place = |dev: &Device| {
        let sizes = [
            (BufferType::Dram, MIB),
            (BufferType::Dram, 3 * MIB),
            (BufferType::Dram, 8 * MIB),
            (BufferType::L1, 64 * KIB),
            (BufferType::L1, 256 * KIB),
        ];
        sizes
            .map(|(t, size)| dev.allocate(t, size, 2048).unwrap())
            .map(|b| (b.address(), b.size_per_bank()))
    };
    assert_eq!(place(&mesh), place(&sim));
    assert_eq!(mesh.snapshot().unwrap(), sim.snapshot().unwrap());
    let report = guard.finish().unwrap();
    assert_eq!(report.devices.len(), 1, "{report}");
    let e = mesh.chip((0, 0)).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    mesh.close();

    // A row of every chip.
    let row = MeshShape::new(1, shape.chips());
    let mesh = TtMetalDevice::open_mesh(Some(row), config()).unwrap();
    assert_eq!(mesh.shape(), row);
    mesh.close();

    // A shape the system does not have, and one with no chip.
    let e =
        TtMetalDevice::open_mesh(Some(MeshShape::new(shape.chips() + 1, 1)), config()).unwrap_err();
    assert!(matches!(e, Error::TtMetalOpen { .. }), "{e}");
    let e = TtMetalDevice::open_mesh(Some(MeshShape::new(0, 2)), config()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid mesh: a 0x2 mesh has no chip: give at least 1 row and 1 column, or no shape for the system's whole mesh"
    );
    // The system is usable again after the refused shape.
    TtMetalDevice::open_mesh(None, config()).unwrap().close();
}

//! Every way an allocation or a device can be refused, with its message.

use tt_memguard::{BufferType, Error, KIB, MIB, Preset, SimDevice};

fn message<T: std::fmt::Debug>(r: tt_memguard::Result<T>) -> (Error, String) {
    let e = r.unwrap_err();
    let m = e.to_string();
    (e, m)
}

#[test]
fn zero_size() {
    let dev = SimDevice::wormhole_b0();
    let (e, m) = message(dev.allocate(BufferType::L1, 0, 2048));
    assert!(matches!(
        e,
        Error::ZeroSize {
            buffer_type: BufferType::L1
        }
    ));
    assert_eq!(
        m,
        "cannot allocate a L1 buffer of size 0: give a size of at least one page"
    );
}

#[test]
fn zero_page_size() {
    let dev = SimDevice::wormhole_b0();
    let (e, m) = message(dev.allocate(BufferType::Dram, 4096, 0));
    assert!(matches!(e, Error::ZeroPageSize { size: 4096, .. }));
    assert_eq!(
        m,
        "page size 0 is invalid for a DRAM buffer of 4096 B: give a page size that divides the size"
    );
}

#[test]
fn size_not_a_multiple_of_the_page_size() {
    let dev = SimDevice::wormhole_b0();
    let (e, m) = message(dev.allocate(BufferType::Dram, 5000, 2048));
    assert!(matches!(
        e,
        Error::SizeNotPageMultiple {
            size: 5000,
            page_size: 2048
        }
    ));
    assert_eq!(
        m,
        "size 5000 B is not a multiple of the page size 2048 B: round the size up to 6144 B or choose a page size that divides it"
    );
}

#[test]
fn shard_counts() {
    let dev = SimDevice::wormhole_b0();
    let (e, m) = message(dev.allocate_sharded(BufferType::L1, 65 * 1024, 1024, 65));
    assert!(matches!(
        e,
        Error::TooManyShards {
            shards: 65,
            cores: 64
        }
    ));
    assert_eq!(
        m,
        "65 shards requested but the compute grid has 64 cores: use at most 64 shards"
    );
    let (e, m) = message(dev.allocate_sharded(BufferType::L1, 1024, 1024, 0));
    assert!(matches!(e, Error::ZeroShards { cores: 64 }));
    assert_eq!(
        m,
        "a sharded buffer needs at least 1 shard: give a shard count from 1 to 64"
    );
    let (e, m) = message(dev.allocate_sharded(BufferType::Dram, 1024, 1024, 2));
    assert!(matches!(
        e,
        Error::ShardingUnsupported {
            buffer_type: BufferType::Dram
        }
    ));
    assert_eq!(
        m,
        "sharded buffers are supported in L1 and L1_SMALL, not in DRAM: allocate it interleaved"
    );
    // n300's grid is smaller.
    let n300 = SimDevice::wormhole_n300();
    let (e, _) = message(n300.allocate_sharded(BufferType::L1, 57 * 1024, 1024, 57));
    assert!(matches!(
        e,
        Error::TooManyShards {
            shards: 57,
            cores: 56
        }
    ));
}

#[test]
fn interleaved_l1_small() {
    let dev = SimDevice::builder(Preset::WormholeB0)
        .l1_small_size(64 * KIB)
        .build()
        .unwrap();
    let (e, m) = message(dev.allocate(BufferType::L1Small, 4096, 1024));
    assert!(matches!(e, Error::L1SmallInterleaved));
    assert_eq!(
        m,
        "L1_SMALL only supports sharded allocations: allocate it sharded, or in L1"
    );
}

#[test]
fn out_of_memory_carries_tt_metals_message() {
    let dev = SimDevice::wormhole_b0();
    let (e, m) = message(dev.allocate(BufferType::L1, 100 * MIB, 2048));
    assert!(matches!(
        e,
        Error::OutOfMemory {
            buffer_type: BufferType::L1,
            banks: 64,
            ..
        }
    ));
    assert_eq!(
        m,
        "Out of Memory: Not enough space to allocate 104857600 B L1 buffer across 64 banks, where each bank needs to store 1638400 B, but bank size is 1393312 B (allocated: 0 B, free: 1393312 B, largest free block: 1393312 B)"
    );
}

#[test]
fn out_of_memory_names_fragmentation() {
    let dev = SimDevice::wormhole_b0();
    // Fill L1 with 64 KiB-per-bank buffers, then free every other one: lots
    // of free bytes, no block larger than 64 KiB.
    let mut keep = Vec::new();
    let mut holes = Vec::new();
    let mut i = 0;
    while let Ok(b) = dev.allocate(BufferType::L1, 64 * 64 * KIB, 64 * KIB) {
        if i % 2 == 0 {
            holes.push(b)
        } else {
            keep.push(b)
        }
        i += 1;
    }
    drop(holes);
    let (e, m) = message(dev.allocate(BufferType::L1, 64 * 128 * KIB, 64 * KIB));
    let Error::OutOfMemory {
        free,
        largest_free_block,
        per_bank,
        ..
    } = e
    else {
        panic!("{e}")
    };
    assert!(free >= per_bank && largest_free_block < per_bank);
    assert!(
        m.contains("but fragmented: no single free block holds 131,072 B"),
        "{m}"
    );
}

#[test]
fn unconfigured_regions_are_out_of_memory_and_say_so() {
    let dev = SimDevice::wormhole_b0();
    let (e, m) = message(dev.allocate(BufferType::Trace, 12 * 2048, 2048));
    assert!(matches!(
        e,
        Error::OutOfMemory {
            buffer_type: BufferType::Trace,
            bank_size: 0,
            ..
        }
    ));
    assert_eq!(
        m,
        "Out of Memory: Not enough space to allocate 24576 B TRACE buffer across 12 banks, where each bank needs to store 2048 B, but bank size is 0 B (allocated: 0 B, free: 0 B, largest free block: 0 B); the TRACE region is not configured: open the device with trace_region_size > 0"
    );
    let (e, m) = message(dev.allocate_sharded(BufferType::L1Small, 4096, 1024, 4));
    assert!(matches!(
        e,
        Error::OutOfMemory {
            buffer_type: BufferType::L1Small,
            bank_size: 0,
            ..
        }
    ));
    assert!(
        m.ends_with(
            "the L1_SMALL region is not configured: open the device with l1_small_size > 0"
        ),
        "{m}"
    );
}

#[test]
fn a_refused_allocation_changes_nothing() {
    let dev = SimDevice::wormhole_b0();
    let _a = dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap();
    let before = dev.snapshot().unwrap();
    assert!(dev.allocate(BufferType::L1, 100 * MIB, 2048).is_err());
    assert!(dev.allocate(BufferType::L1, 0, 2048).is_err());
    assert_eq!(dev.snapshot().unwrap(), before);
    assert_eq!(dev.live_count().unwrap(), 1);
}

#[test]
fn invalid_geometry_names_the_field() {
    let cases: [(tt_memguard::SimDeviceBuilder, &str); 5] = [
        (
            SimDevice::builder(Preset::WormholeB0).dram_banks(0),
            "dram_banks must be at least 1",
        ),
        (
            SimDevice::builder(Preset::WormholeB0).grid(0, 8),
            "l1_banks must be at least 1",
        ),
        (
            SimDevice::builder(Preset::WormholeB0).dram_alignment(48),
            "dram_alignment must be a power of two",
        ),
        (
            SimDevice::builder(Preset::WormholeB0).l1_small_size(2 * MIB),
            "l1_small_size leaves no room for L1 in the bank",
        ),
        (
            SimDevice::builder(Preset::WormholeB0).trace_region_size(13 * 1024 * MIB),
            "trace_region_size leaves no room for DRAM in the bank",
        ),
    ];
    for (builder, reason) in cases {
        let e = builder.build().unwrap_err();
        assert!(matches!(e, Error::InvalidGeometry { .. }));
        assert_eq!(e.to_string(), format!("invalid device geometry: {reason}"));
    }
}

#[test]
fn unknown_preset_and_pool_names() {
    let e = "grayskull".parse::<Preset>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown simulated device \"grayskull\": expected wormhole_b0 (wh, n150), wormhole_n300 (n300) or blackhole_p150 (bh, p150)"
    );
    assert_eq!("bh".parse::<Preset>().unwrap(), Preset::BlackholeP150);
    let e = "L2".parse::<BufferType>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown buffer type \"L2\": expected DRAM, L1, L1_SMALL or TRACE"
    );
}

#[test]
fn buffers_outliving_a_closed_device() {
    let dev = SimDevice::wormhole_b0();
    let a = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    let b = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    dev.close();
    assert!(dev.is_closed());
    let e = b.free().unwrap_err();
    assert!(matches!(e, Error::DeviceClosed { .. }));
    assert_eq!(
        e.to_string(),
        "device sim:wormhole_b0 is closed: keep the device open while its buffers are used"
    );
    drop(a); // inert: no panic
    assert!(matches!(dev.snapshot(), Err(Error::DeviceClosed { .. })));
    assert!(matches!(
        dev.allocate(BufferType::Dram, MIB, 2048),
        Err(Error::DeviceClosed { .. })
    ));
    assert!(dev.peak_mark().is_err());
    dev.close(); // twice is harmless
}

#[test]
fn freeing_twice_is_impossible_and_free_is_explicit() {
    let dev = SimDevice::wormhole_b0();
    let a = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    a.free().unwrap(); // consumes the handle: a second free does not compile
    assert_eq!(dev.live_count().unwrap(), 0);
    assert_eq!(dev.snapshot().unwrap().pool(BufferType::Dram).allocated, 0);
}

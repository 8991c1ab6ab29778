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
    // DRAM shards are DRAM banks: 1 to 12 on Wormhole.
    assert!(
        dev.allocate_sharded(BufferType::Dram, 1024, 1024, 12)
            .is_ok()
    );
    let (e, m) = message(dev.allocate_sharded(BufferType::Dram, 13 * 1024, 1024, 13));
    assert!(matches!(
        e,
        Error::DramShards {
            shards: 13,
            banks: 12
        }
    ));
    assert_eq!(
        m,
        "13 DRAM shards requested but the device has 12 DRAM banks: a DRAM-sharded buffer takes one shard per DRAM bank, from 1 to 12"
    );
    let (e, _) = message(dev.allocate_sharded(BufferType::Dram, 1024, 1024, 0));
    assert!(matches!(
        e,
        Error::DramShards {
            shards: 0,
            banks: 12
        }
    ));
    // Blackhole has 8 DRAM banks.
    let bh = SimDevice::blackhole_p150();
    assert!(bh.allocate_sharded(BufferType::Dram, 8 * 64, 64, 8).is_ok());
    let (e, _) = message(bh.allocate_sharded(BufferType::Dram, 9 * 64, 64, 9));
    assert!(matches!(
        e,
        Error::DramShards {
            shards: 9,
            banks: 8
        }
    ));
    // TRACE takes interleaved buffers only.
    let traced = SimDevice::builder(Preset::WormholeB0)
        .trace_region_size(MIB)
        .build()
        .unwrap();
    let (e, m) = message(traced.allocate_sharded(BufferType::Trace, 1024, 1024, 2));
    assert!(matches!(
        e,
        Error::ShardingUnsupported {
            buffer_type: BufferType::Trace
        }
    ));
    assert_eq!(
        m,
        "sharded buffers are supported in DRAM, L1 and L1_SMALL, not in TRACE: allocate it interleaved"
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
        free_per_bank,
        largest_free_block_per_bank,
        needed_per_bank,
        ..
    } = e
    else {
        panic!("{e}")
    };
    assert!(free_per_bank >= needed_per_bank && largest_free_block_per_bank < needed_per_bank);
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
            size_per_bank: 0,
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
            size_per_bank: 0,
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
            "l1_small_size 2097152 B leaves no room for L1 in the bank: it takes 2097152 B of every core's L1 (rounded up to the 32 B DRAM alignment), which has 1393312 B above the L1 base: use at most 1393280 B",
        ),
        (
            SimDevice::builder(Preset::WormholeB0).trace_region_size(13 * 1024 * MIB),
            "trace_region_size 13958643712 B leaves no room for DRAM in the bank: it takes 1163223040 B of each of the 12 DRAM banks (its share rounded up to 8 KiB), which have 1072693184 B above the DRAM base: use at most 12872220672 B",
        ),
    ];
    for (builder, reason) in cases {
        let e = builder.build().unwrap_err();
        assert!(matches!(e, Error::InvalidGeometry { .. }));
        assert_eq!(e.to_string(), format!("invalid device geometry: {reason}"));
    }
}

#[test]
fn carve_outs_past_64_bits_are_refused_not_wrapped() {
    // TT-Metal 0.81.1 opens these: l1_small_size near 2^64 rounds up past
    // 2^64 to a device without L1_SMALL, and a TRACE region larger than DRAM
    // leaves a DRAM pool of nearly 2^64 bytes.
    let cases = [
        (
            SimDevice::builder(Preset::WormholeB0).l1_small_size(u64::MAX),
            "l1_small_size 18446744073709551615 B leaves no room for L1 in the bank: it takes 18446744073709551616 B of every core's L1 (rounded up to the 32 B DRAM alignment), which has 1393312 B above the L1 base: use at most 1393280 B",
        ),
        (
            SimDevice::builder(Preset::BlackholeP150).l1_small_size(u64::MAX - 40),
            "l1_small_size 18446744073709551575 B leaves no room for L1 in the bank: it takes 18446744073709551616 B of every core's L1 (rounded up to the 64 B DRAM alignment), which has 1461120 B above the L1 base: use at most 1461056 B",
        ),
        (
            SimDevice::builder(Preset::WormholeB0).trace_region_size(u64::MAX),
            "trace_region_size 18446744073709551615 B leaves no room for DRAM in the bank: it takes 1537228672809132032 B of each of the 12 DRAM banks (its share rounded up to 8 KiB), which have 1072693184 B above the DRAM base: use at most 12872220672 B",
        ),
        (
            SimDevice::builder(Preset::WormholeB0).trace_region_size(12_872_220_673),
            "trace_region_size 12872220673 B leaves no room for DRAM in the bank: it takes 1072693248 B of each of the 12 DRAM banks (its share rounded up to 8 KiB), which have 1072693184 B above the DRAM base: use at most 12872220672 B",
        ),
        (
            SimDevice::builder(Preset::WormholeB0).dram_bank(1 << 62, 0x10_0040),
            "dram_bank_size x dram_banks must fit in 64 bits",
        ),
        (
            SimDevice::builder(Preset::WormholeB0)
                .grid(1 << 16, 1 << 15)
                .l1_bank(1 << 34, 0x1_9D60),
            "l1_bank_size x l1_banks must fit in 64 bits",
        ),
    ];
    for (builder, reason) in cases {
        let e = builder.build().unwrap_err();
        assert!(matches!(e, Error::InvalidGeometry { .. }), "{e}");
        assert_eq!(e.to_string(), format!("invalid device geometry: {reason}"));
    }
    // The largest values the messages name fit, as on TT-Metal: 32 B of L1
    // and 8,128 B of DRAM are left.
    let dev = SimDevice::builder(Preset::WormholeB0)
        .l1_small_size(1_393_280)
        .trace_region_size(12_872_220_672)
        .build()
        .unwrap();
    let snap = dev.snapshot().unwrap();
    assert_eq!(snap.pool(BufferType::L1).size_per_bank, 32);
    assert_eq!(snap.pool(BufferType::L1Small).size_per_bank, 1_393_280);
    assert_eq!(snap.pool(BufferType::Dram).size_per_bank, 8128);
    assert_eq!(snap.pool(BufferType::Trace).size_per_bank, 1_072_685_056);
}

#[test]
fn sizes_past_64_bits_per_bank_are_refused_not_wrapped() {
    let dev = SimDevice::wormhole_b0();
    let before = dev.snapshot().unwrap();
    // TT-Metal 0.81.1 places this one as a 32 B buffer: its page size,
    // rounded up to the DRAM alignment, wraps around to 0.
    let (e, m) = message(dev.allocate(BufferType::Dram, u64::MAX, u64::MAX));
    assert!(
        matches!(
            e,
            Error::BufferTooLarge {
                buffer_type: BufferType::Dram,
                banks: 12,
                needed_per_bank: 18_446_744_073_709_551_616,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        m,
        "cannot allocate 18446744073709551615 B DRAM buffer with page size 18446744073709551615 B: each of its 12 banks would need 18446744073709551616 B, more than 64-bit addresses reach (16 EiB): no device has room for it"
    );
    // 2^63 one-byte pages: each page takes 32 B, so every bank needs
    // ceil(2^63 / 12) x 32 B (TT-Metal wraps that to 32 B too).
    let (e, _) = message(dev.allocate(BufferType::Dram, 1 << 63, 1));
    assert!(
        matches!(e, Error::BufferTooLarge { needed_per_bank, .. } if needed_per_bank == (1u128 << 63).div_ceil(12) * 32),
        "{e:?}"
    );
    // One shard of 2^63 one-byte pages of 16 B each.
    let (e, _) = message(dev.allocate_sharded(BufferType::L1, 1 << 63, 1, 1));
    assert!(
        matches!(e, Error::BufferTooLarge { banks: 1, needed_per_bank, .. } if needed_per_bank == 1u128 << 67),
        "{e:?}"
    );
    // Huge but representable: out of memory, with TT-Metal's message (its answer too).
    let (e, m) = message(dev.allocate(BufferType::Dram, 1 << 63, 1 << 63));
    assert!(
        matches!(e, Error::OutOfMemory { needed_per_bank, .. } if needed_per_bank == 1 << 63),
        "{e:?}"
    );
    assert!(
        m.starts_with("Out of Memory: Not enough space to allocate 9223372036854775808 B DRAM buffer across 12 banks, where each bank needs to store 9223372036854775808 B"),
        "{m}"
    );
    let (e, _) = message(dev.allocate_sharded(BufferType::L1, 1 << 59, 1, 1));
    assert!(
        matches!(e, Error::OutOfMemory { banks: 1, needed_per_bank, .. } if needed_per_bank == 1 << 63),
        "{e:?}"
    );
    // A size within a granule of 2^64 whose pages fit, but whose block
    // (rounded up to the 32 B granularity) does not.
    let (e, _) = message(dev.allocate(BufferType::L1, u64::MAX - 15, u64::MAX - 15));
    assert!(
        matches!(e, Error::BufferTooLarge { banks: 64, needed_per_bank, .. } if needed_per_bank == 1u128 << 64),
        "{e:?}"
    );
    assert_eq!(dev.snapshot().unwrap(), before);
    assert_eq!(dev.live_count().unwrap(), 0);
}

#[test]
fn page_size_messages_never_overflow() {
    let dev = SimDevice::wormhole_b0();
    // Rounding u64::MAX up to whole pages would pass 2^64: the hint rounds down.
    let (e, m) = message(dev.allocate(BufferType::Dram, u64::MAX, 2));
    assert!(matches!(e, Error::SizeNotPageMultiple { .. }));
    assert_eq!(
        m,
        "size 18446744073709551615 B is not a multiple of the page size 2 B: round the size down to 18446744073709551614 B or choose a page size that divides it"
    );
    let (_, m) = message(dev.allocate(BufferType::Dram, u64::MAX, u64::MAX - 1));
    assert!(
        m.contains("round the size down to 18446744073709551614 B"),
        "{m}"
    );
}

#[test]
fn fixed_addresses_off_the_allocator_grid_are_refused() {
    let dev = SimDevice::wormhole_b0();
    let (e, m) = message(
        dev.buffer(BufferType::Dram, 12 * 2048)
            .page_size(2048)
            .at_address(0x20_0010)
            .allocate(),
    );
    assert!(
        matches!(
            e,
            Error::AddressUnaligned {
                buffer_type: BufferType::Dram,
                address: 0x20_0010,
                granularity: 32,
                base: 0x10_0040,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        m,
        "cannot place 24576 B DRAM buffer at 0x200010: the address is not a multiple of 32 B above the pool base 0x100040: use 0x200000 or 0x200020"
    );
    // Blackhole: 64 B from the L1 base 0x1B480.
    let bh = SimDevice::blackhole_p150();
    let (e, m) = message(
        bh.buffer(BufferType::L1, 110 * 1024)
            .page_size(1024)
            .at_address(0x2_0010)
            .allocate(),
    );
    assert!(
        matches!(
            e,
            Error::AddressUnaligned {
                granularity: 64,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(m.ends_with(": use 0x20000 or 0x20040"), "{m}");
    assert_eq!(bh.live_count().unwrap(), 0);
    // On the grid it is placed, and the free blocks around it stay on the grid.
    let b = dev
        .buffer(BufferType::Dram, 12 * 2048)
        .page_size(2048)
        .at_address(0x20_0020)
        .allocate()
        .unwrap();
    assert_eq!(b.address(), 0x20_0020);
    let c = dev.allocate(BufferType::Dram, 12 * 32, 32).unwrap();
    assert_eq!(c.address(), 0x10_0040);
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
    assert_eq!(
        dev.snapshot()
            .unwrap()
            .pool(BufferType::Dram)
            .allocated_per_bank,
        0
    );
}

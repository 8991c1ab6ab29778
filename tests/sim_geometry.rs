//! Every geometry, carve-out and worked-example number of TT-Metal's
//! allocator, reproduced by the simulated device for all three presets.

mod common;

use tt_memguard::{BufferType, Device, Error, KIB, MIB, Preset, SimDevice};

struct Expected {
    preset: Preset,
    dram_banks: u32,
    dram_base: u64,
    dram_per_bank: u64,
    dram_alignment: u64,
    l1_banks: u32,
    l1_base: u64,
    l1_per_bank: u64,
}

const EXPECTED: [Expected; 3] = [
    Expected {
        preset: Preset::WormholeB0,
        dram_banks: 12,
        dram_base: 0x10_0040,
        dram_per_bank: 1_072_693_184,
        dram_alignment: 32,
        l1_banks: 64,
        l1_base: 0x1_9D60,
        l1_per_bank: 1_393_312,
    },
    Expected {
        preset: Preset::WormholeN300,
        dram_banks: 12,
        dram_base: 0x10_0040,
        dram_per_bank: 1_072_693_184,
        dram_alignment: 32,
        l1_banks: 56,
        l1_base: 0x1_9D60,
        l1_per_bank: 1_393_312,
    },
    Expected {
        preset: Preset::BlackholeP150,
        dram_banks: 8,
        dram_base: 0x10_0080,
        dram_per_bank: 4_277_141_376,
        dram_alignment: 64,
        l1_banks: 110,
        l1_base: 0x1_B480,
        l1_per_bank: 1_461_120,
    },
];

#[test]
fn default_geometry_of_every_preset() {
    for e in &EXPECTED {
        let snap = SimDevice::preset(e.preset).snapshot().unwrap();
        let dram = snap.pool(BufferType::Dram);
        assert_eq!(dram.num_banks, e.dram_banks, "{}", e.preset);
        assert_eq!(dram.base_address, e.dram_base, "{}", e.preset);
        assert_eq!(dram.size_per_bank, e.dram_per_bank, "{}", e.preset);
        assert_eq!(dram.alignment, e.dram_alignment, "{}", e.preset);
        assert_eq!(
            (
                dram.allocated_per_bank,
                dram.free_per_bank,
                dram.largest_free_block_per_bank
            ),
            (0, e.dram_per_bank, e.dram_per_bank)
        );

        let l1 = snap.pool(BufferType::L1);
        assert_eq!(l1.num_banks, e.l1_banks, "{}", e.preset);
        assert_eq!(l1.base_address, e.l1_base, "{}", e.preset);
        assert_eq!(l1.size_per_bank, e.l1_per_bank, "{}", e.preset);
        assert_eq!(l1.alignment, 16, "{}", e.preset);
        assert_eq!(
            (
                l1.allocated_per_bank,
                l1.free_per_bank,
                l1.largest_free_block_per_bank
            ),
            (0, e.l1_per_bank, e.l1_per_bank)
        );

        // No carve-outs by default: no L1_SMALL bank at all, TRACE with the
        // DRAM bank count and size 0.
        let small = snap.pool(BufferType::L1Small);
        assert_eq!(
            (small.num_banks, small.size_per_bank),
            (0, 0),
            "{}",
            e.preset
        );
        let trace = snap.pool(BufferType::Trace);
        assert_eq!(
            (trace.num_banks, trace.size_per_bank),
            (e.dram_banks, 0),
            "{}",
            e.preset
        );
        assert_eq!(
            (trace.free_per_bank, trace.largest_free_block_per_bank),
            (0, 0)
        );
    }
}

#[test]
fn preset_geometry_is_tt_metals_table() {
    // tt-metal-allocator.md, "Default device geometry": DRAM banks, bank view
    // size, base and alignment; compute grid; L1 size per core, base and
    // alignment.
    let table = [
        (
            Preset::WormholeB0,
            (12, 1_073_741_824, 0x10_0040, 32),
            (8, 8),
            (1_499_136, 0x1_9D60, 16),
        ),
        (
            Preset::WormholeN300,
            (12, 1_073_741_824, 0x10_0040, 32),
            (8, 7),
            (1_499_136, 0x1_9D60, 16),
        ),
        (
            Preset::BlackholeP150,
            (8, 4_278_190_080, 0x10_0080, 64),
            (11, 10),
            (1_572_864, 0x1_B480, 16),
        ),
    ];
    for (preset, dram, grid, l1) in table {
        let g = preset.geometry();
        assert_eq!(
            (
                g.dram_banks,
                g.dram_bank_size,
                g.dram_base,
                g.dram_alignment
            ),
            dram,
            "{preset}"
        );
        assert_eq!(g.grid, grid, "{preset}");
        assert_eq!((g.l1_bank_size, g.l1_base, g.l1_alignment), l1, "{preset}");
        // The simulator opens exactly that geometry.
        let dev = SimDevice::preset(preset);
        assert_eq!(dev.info().compute_grid, g.grid, "{preset}");
        let snap = dev.snapshot().unwrap();
        let (d, l) = (snap.pool(BufferType::Dram), snap.pool(BufferType::L1));
        assert_eq!(
            d.base_address + d.size_per_bank,
            g.dram_bank_size,
            "{preset}"
        );
        assert_eq!(l.base_address + l.size_per_bank, g.l1_bank_size, "{preset}");
        assert_eq!(l.num_banks, grid.0 * grid.1, "{preset}");
    }
}

#[test]
fn l1_small_carve_out_is_rounded_to_the_dram_alignment() {
    for e in &EXPECTED {
        let big = if e.dram_alignment == 32 { 4128 } else { 4160 };
        for (requested, carved) in [(1000, 1024), (4100, big)] {
            let snap = common::sim(e.preset, requested, 0).snapshot().unwrap();
            let small = snap.pool(BufferType::L1Small);
            assert_eq!(small.num_banks, e.l1_banks, "{} S={requested}", e.preset);
            assert_eq!(small.size_per_bank, carved, "{} S={requested}", e.preset);
            assert_eq!(small.free_per_bank, carved);
            assert_eq!(small.largest_free_block_per_bank, carved);
            // The region sits at the top of every core's L1.
            assert_eq!(small.base_address, e.l1_base + e.l1_per_bank - carved);
            let l1 = snap.pool(BufferType::L1);
            assert_eq!(
                l1.size_per_bank,
                e.l1_per_bank - carved,
                "{} S={requested}",
                e.preset
            );
        }
    }
}

#[test]
fn trace_carve_out_matches_tt_metal() {
    // (preset, T, per bank, base)
    let cases = [
        (Preset::WormholeB0, 8 * MIB, 704_512, Some(0x3FF5_4000)),
        (Preset::WormholeN300, 8 * MIB, 704_512, Some(0x3FF5_4000)),
        (Preset::BlackholeP150, 8 * MIB, 1_048_576, Some(0xFEF0_0000)),
        (Preset::WormholeB0, 100_000, 16_384, None),
        (Preset::BlackholeP150, 100_000, 16_384, None),
    ];
    for (preset, t, per_bank, base) in cases {
        let e = EXPECTED.iter().find(|e| e.preset == preset).unwrap();
        let snap = common::sim(preset, 0, t).snapshot().unwrap();
        let trace = snap.pool(BufferType::Trace);
        assert_eq!(trace.num_banks, e.dram_banks);
        assert_eq!(trace.size_per_bank, per_bank, "{preset} T={t}");
        assert_eq!(trace.largest_free_block_per_bank, per_bank);
        if let Some(base) = base {
            assert_eq!(trace.base_address, base, "{preset} T={t}");
        }
        assert_eq!(trace.base_address + per_bank, e.dram_base + e.dram_per_bank);
        let dram = snap.pool(BufferType::Dram);
        assert_eq!(
            dram.size_per_bank,
            e.dram_per_bank - per_bank,
            "{preset} T={t}"
        );
    }
}

#[test]
fn worked_example_addresses_and_statistics() {
    let dev = SimDevice::wormhole_b0();
    let fresh = dev.snapshot().unwrap();
    let expected = [
        (BufferType::Dram, MIB, 88_064, 0x10_0040),
        (BufferType::Dram, 3 * MIB, 262_144, 0x11_5840),
        (BufferType::Dram, 8 * MIB, 700_416, 0x15_5840),
        (BufferType::L1, 64 * KIB, 2_048, 0x16_D800),
        (BufferType::L1, 256 * KIB, 4_096, 0x16_C800),
    ];
    let mut buffers = Vec::new();
    for (buffer_type, size, per_bank, address) in expected {
        let b = dev.allocate(buffer_type, size, 2048).unwrap();
        assert_eq!(
            (b.size_per_bank(), b.address()),
            (per_bank, address),
            "{buffer_type} {size}"
        );
        buffers.push(b);
    }
    let snap = dev.snapshot().unwrap();
    assert_eq!(snap.pool(BufferType::Dram).allocated_per_bank, 1_050_624);
    assert_eq!(snap.pool(BufferType::L1).allocated_per_bank, 6_144);
    assert_eq!(
        snap.pool(BufferType::Dram).free_per_bank,
        1_072_693_184 - 1_050_624
    );
    assert_eq!(
        snap.pool(BufferType::L1).largest_free_block_per_bank,
        1_393_312 - 6_144
    );
    drop(buffers);
    assert_eq!(dev.snapshot().unwrap(), fresh);
}

#[test]
fn l1_buffers_sit_below_an_l1_small_region() {
    let dev = common::sim(Preset::WormholeB0, 32 * KIB, 0);
    let a = dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap();
    let b = dev.allocate(BufferType::L1, 256 * KIB, 2048).unwrap();
    assert_eq!((a.address(), b.address()), (0x16_5800, 0x16_4800));
    // A sharded L1_SMALL buffer takes the top of the region.
    let s = dev
        .allocate_sharded(BufferType::L1Small, 16 * KIB, 1024, 4)
        .unwrap();
    assert_eq!(s.size_per_bank(), 4096);
    assert_eq!(s.address(), 0x16_E000 - 4096);
    assert_eq!(s.num_banks(), 64);
    let small = dev.snapshot().unwrap();
    assert_eq!(small.pool(BufferType::L1Small).allocated_per_bank, 4096);
}

#[test]
fn sharded_buffers_reserve_in_every_bank_with_the_shard_size_rule() {
    let dev = SimDevice::wormhole_b0();
    // 10 pages of 1000 B over 3 shards: ceil(10/3) = 4 pages of 1008 B.
    let b = dev
        .allocate_sharded(BufferType::L1, 10_000, 1000, 3)
        .unwrap();
    assert_eq!(b.size_per_bank(), 4 * 1008);
    assert_eq!(b.num_banks(), 64);
    let l1 = *dev.snapshot().unwrap().pool(BufferType::L1);
    assert_eq!(l1.allocated_per_bank, 4032);
    assert_eq!(l1.allocated_total(), 4032 * 64);
}

#[test]
fn allocations_are_rounded_to_the_allocator_granularity() {
    // L1 pages align to 16 B, but the allocator works in DRAM-alignment
    // granules (32 B on Wormhole, 64 B on Blackhole), at least one granule.
    let wh = SimDevice::wormhole_b0();
    let b = wh.allocate_sharded(BufferType::L1, 16, 16, 1).unwrap();
    assert_eq!(b.size_per_bank(), 32);
    let bh = SimDevice::blackhole_p150();
    let b = bh.allocate_sharded(BufferType::L1, 48, 16, 1).unwrap();
    assert_eq!(b.size_per_bank(), 64);
    let b = bh.allocate(BufferType::Dram, 8 * 100, 100).unwrap();
    // 8 pages over 8 banks: one page of round_up(100, 64) = 128 B.
    assert_eq!(b.size_per_bank(), 128);
}

#[test]
fn directions_and_first_fit_over_holes() {
    use tt_memguard::Direction;
    let dev = SimDevice::wormhole_b0();
    let a = dev.allocate(BufferType::Dram, 12 * 2048, 2048).unwrap(); // 2 KiB per bank
    let b = dev.allocate(BufferType::Dram, 12 * 4096, 2048).unwrap(); // 4 KiB
    let c = dev.allocate(BufferType::Dram, 12 * 2048, 2048).unwrap(); // 2 KiB
    let (a_addr, b_addr) = (a.address(), b.address());
    drop(a);
    drop(b);
    // [a+b coalesced: 6 KiB free][c][rest]: a 4 KiB request fits the hole.
    let d = dev.allocate(BufferType::Dram, 12 * 4096, 2048).unwrap();
    assert_eq!(d.address(), a_addr);
    // Top-down in DRAM takes the top of the highest free block.
    let top = dev
        .buffer(BufferType::Dram, 12 * 2048)
        .page_size(2048)
        .direction(Direction::TopDown)
        .allocate()
        .unwrap();
    assert_eq!(top.address(), 0x10_0040 + 1_072_693_184 - 2048);
    // Bottom-up in L1 takes the bottom of the lowest free block.
    let low = dev
        .buffer(BufferType::L1, 64 * 2048)
        .page_size(2048)
        .direction(Direction::BottomUp)
        .allocate()
        .unwrap();
    assert_eq!(low.address(), 0x1_9D60);
    assert!(b_addr > a_addr && c.address() > b_addr);
}

#[test]
fn fixed_address_allocation() {
    let dev = SimDevice::wormhole_b0();
    let b = dev
        .buffer(BufferType::Dram, 12 * 2048)
        .page_size(2048)
        .at_address(0x20_0000)
        .allocate()
        .unwrap();
    assert_eq!(b.address(), 0x20_0000);
    let err = dev
        .buffer(BufferType::Dram, 12 * 2048)
        .page_size(2048)
        .at_address(0x20_0400)
        .allocate()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::AddressNotFree {
                address: 0x20_0400,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "cannot place 24576 B DRAM buffer at 0x200400: the range is not free in the pool"
    );
    // The next bottom-up allocation fills the hole below the fixed one.
    let c = dev.allocate(BufferType::Dram, 12 * 2048, 2048).unwrap();
    assert_eq!(c.address(), 0x10_0040);
}

/// DRAM-sharded buffers as TT-Metal 0.81.1 places them, measured on its
/// real allocator in mock mode (Wormhole n150 and Blackhole p150): a shard
/// of `ceil(pages / shards)` pages of the page size rounded up to the DRAM
/// alignment, reserved at the same address in every DRAM bank.
#[test]
fn dram_sharded_buffers_match_tt_metal() {
    use tt_memguard::Direction;
    // (shards, pages, page size, top-down) and, per preset, (address, bytes
    // per bank) or None where TT-Metal refuses the shard grid.
    type Case = (u32, u64, u64, bool);
    /// Where TT-Metal put each case (address, bytes per bank), and the
    /// DRAM bytes allocated per bank after all of them.
    type Places = ([Option<(u64, u64)>; 9], u64);
    const CASES: [Case; 9] = [
        (1, 100, 2048, false),
        (2, 100, 2048, false),
        (3, 100, 2048, false),
        (5, 100, 2048, false),
        (8, 100, 2048, false),
        (12, 100, 2048, false),
        (4, 37, 1000, false),
        (4, 8, 100, false),
        (3, 9, 64, true),
    ];
    let expected: [(Preset, Places); 2] = [
        (
            Preset::WormholeB0,
            (
                [
                    Some((0x10_0040, 204_800)),
                    Some((0x13_2040, 102_400)),
                    Some((0x14_B040, 69_632)),
                    Some((0x15_C040, 40_960)),
                    Some((0x16_6040, 26_624)),
                    Some((0x16_C840, 18_432)),
                    Some((0x17_1040, 10_240)),
                    Some((0x17_3840, 256)),
                    Some((0x3FFF_FF40, 192)),
                ],
                473_536,
            ),
        ),
        (
            Preset::BlackholeP150,
            (
                [
                    Some((0x10_0080, 204_800)),
                    Some((0x13_2080, 102_400)),
                    Some((0x14_B080, 69_632)),
                    Some((0x15_C080, 40_960)),
                    Some((0x16_6080, 26_624)),
                    None, // 12 shards, 8 DRAM banks
                    Some((0x16_C880, 10_240)),
                    Some((0x16_F080, 256)),
                    Some((0xFEFF_FF40, 192)),
                ],
                455_104,
            ),
        ),
    ];
    for (preset, (places, allocated)) in expected {
        let dev = SimDevice::preset(preset);
        let banks = dev.snapshot().unwrap().pool(BufferType::Dram).num_banks;
        let mut keep = Vec::new();
        for ((shards, pages, page, top_down), place) in CASES.into_iter().zip(places) {
            let direction = if top_down {
                Direction::TopDown
            } else {
                Direction::Default
            };
            let got = dev
                .buffer(BufferType::Dram, pages * page)
                .page_size(page)
                .sharded(shards)
                .direction(direction)
                .allocate();
            match (got, place) {
                (Ok(b), Some((address, per_bank))) => {
                    assert_eq!(
                        (b.address(), b.size_per_bank(), b.num_banks(), b.shards()),
                        (address, per_bank, banks, Some(shards)),
                        "{preset} {shards} shards of {pages} x {page} B"
                    );
                    keep.push(b);
                }
                (
                    Err(Error::DramShards {
                        shards: s,
                        banks: b,
                    }),
                    None,
                ) => {
                    assert_eq!((s, b), (shards, banks));
                }
                (got, place) => panic!("{preset} {shards} shards: {got:?}, expected {place:?}"),
            }
        }
        let dram = *dev.snapshot().unwrap().pool(BufferType::Dram);
        assert_eq!(dram.allocated_per_bank, allocated, "{preset}");
        assert_eq!(dram.allocated_total(), allocated * u64::from(banks));
        let live = dev.live_allocations().unwrap();
        assert!(
            live.iter()
                .all(|a| a.shards.is_some() && a.num_banks == banks)
        );
        drop(keep);
        assert_eq!(
            dev.snapshot().unwrap(),
            SimDevice::preset(preset).snapshot().unwrap()
        );
    }
}

/// TT-Metal's allocator takes the block it chose before it checks the
/// interleaved L1 limit, and leaves it taken when it refuses the buffer.
/// The figures were measured on TT-Metal 0.81.1's own L1 bank manager in
/// mock mode, configured as a Wormhole n150's L1 pool with its limit
/// 0x1000 above the base.
#[test]
fn a_refusal_below_the_interleaved_l1_limit_keeps_its_block_as_tt_metal_does() {
    use tt_memguard::Direction;
    let dev = SimDevice::builder(Preset::WormholeB0)
        .l1_interleaved_limit(0x1_9D60 + 0x1000)
        .build()
        .unwrap();
    let l1 = |dev: &Device| {
        let p = *dev.snapshot().unwrap().pool(BufferType::L1);
        (
            p.allocated_per_bank,
            p.free_per_bank,
            p.largest_free_block_per_bank,
        )
    };
    // The lowest occupied address TT-Metal keeps, as an enqueue reads it.
    let lowest = |dev: &Device| {
        let mut program = dev.create_program().unwrap();
        dev.enqueue(&mut program).unwrap().lowest_l1_buffer
    };
    let bottom_up = |size: u64, page: u64| {
        dev.buffer(BufferType::L1, size)
            .page_size(page)
            .direction(Direction::BottomUp)
            .label("act")
            .allocate()
    };
    let (err, line) = (
        dev.buffer(BufferType::L1, 64 * 2048)
            .page_size(2048)
            .direction(Direction::BottomUp)
            .label("act")
            .allocate()
            .unwrap_err(),
        line!() - 2,
    );
    assert!(
        matches!(
            err,
            Error::BelowAddressLimit {
                size: 131_072,
                limit: 0x1_AD60,
                address: 0x1_9D60,
                size_per_bank: 2048,
                orphan_id: 1,
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert_eq!(
        text.lines().next().unwrap(),
        "Out of Memory: Cannot allocate at an address below 109920. Allocation at 105824"
    );
    assert!(
        text.contains("2,048 B stay allocated in every L1 bank until the device is closed"),
        "{text}"
    );
    // The block stays allocated; TT-Metal's running lowest address does not see it.
    assert_eq!(l1(&dev), (2048, 1_391_264, 1_391_264));
    assert_eq!(lowest(&dev), None);
    let live = dev.live_allocations().unwrap();
    assert_eq!(live.len(), 1);
    let orphan = &live[0];
    assert!(orphan.orphaned);
    assert_eq!(
        (
            orphan.id,
            orphan.address,
            orphan.size_per_bank,
            orphan.num_banks
        ),
        (1, 0x1_9D60, 2048, 64)
    );
    assert_eq!(
        orphan.label.as_deref(),
        Some("orphaned by a refused allocation (act)")
    );
    let at = orphan.location.as_ref().unwrap();
    assert_eq!((at.file.as_str(), at.line), (file!(), line));

    // Page 1000: 1,008 B per bank, 1,024 B reserved, right above the first.
    let err = bottom_up(64 * 1000, 1000).unwrap_err();
    assert!(err.to_string().starts_with(
        "Out of Memory: Cannot allocate at an address below 109920. Allocation at 107872\n"
    ));
    assert_eq!(l1(&dev), (3072, 1_390_240, 1_390_240));
    // Sharded buffers may go below the limit.
    let sharded = dev
        .buffer(BufferType::L1, 8 * 2048)
        .page_size(2048)
        .sharded(8)
        .direction(Direction::BottomUp)
        .allocate()
        .unwrap();
    assert_eq!(sharded.address(), 0x1_A960);
    assert_eq!(l1(&dev), (5120, 1_388_192, 1_388_192));
    assert_eq!(lowest(&dev), Some(0x1_A960));
    let top = dev.allocate(BufferType::L1, 64 * 2048, 2048).unwrap();
    assert_eq!(top.address(), 0x16_D800);
    let above = bottom_up(64 * 2048, 2048).unwrap();
    assert_eq!(above.address(), 0x1_B160);
    let small = bottom_up(64 * 64, 64).unwrap();
    assert_eq!(small.address(), 0x1_B960);
    assert_eq!(l1(&dev), (9280, 1_384_032, 1_384_032));
    // Freeing the lowest buffer moves TT-Metal's lowest address up to the
    // next allocated block above it: the orphans below stay unseen.
    drop(sharded);
    assert_eq!(l1(&dev), (7232, 1_386_080, 1_384_032));
    assert_eq!(lowest(&dev), Some(0x1_B160));
    drop((top, above, small));
    // Nothing frees the orphans: 2 blocks, 3,072 B per bank.
    assert_eq!(l1(&dev).0, 3072);
    let live = dev.live_allocations().unwrap();
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|a| a.orphaned));
    assert_eq!(dev.live_count().unwrap(), 2);
}

#[test]
fn the_live_stream_shows_an_orphaned_block_as_an_allocation_never_freed() {
    use std::time::Duration;
    use tt_memguard::Direction;
    use tt_memguard::live::{LiveEvent, LiveStream};
    use tt_memguard::monitor::Follower;
    let path = std::env::temp_dir().join(format!("memguard-orphan-{}.jsonl", std::process::id()));
    let live = LiveStream::create(&path, Duration::from_secs(60)).unwrap();
    let dev = SimDevice::builder(Preset::WormholeB0)
        .l1_interleaved_limit(0x1_AD60)
        .build()
        .unwrap();
    {
        let _watch = live.watch(&dev, None);
        let refused = dev
            .buffer(BufferType::L1, 64 * 2048)
            .page_size(2048)
            .direction(Direction::BottomUp)
            .allocate();
        assert!(refused.is_err());
    }
    live.finish(1, 0);
    let mut follower = Follower::open(&path).unwrap();
    let mut lines = Vec::new();
    loop {
        let update = follower.poll().unwrap();
        lines.extend(update.lines);
        if !update.more {
            break;
        }
    }
    let allocs: Vec<_> = lines
        .iter()
        .filter_map(|l| match &l.event {
            LiveEvent::Alloc {
                address,
                size_per_bank,
                label,
                ..
            } => Some((*address, *size_per_bank, label.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        allocs,
        [(
            0x1_9D60,
            2048,
            Some("orphaned by a refused allocation".to_string())
        )]
    );
    assert!(
        !lines
            .iter()
            .any(|l| matches!(l.event, LiveEvent::Free { .. }))
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn live_allocations_name_size_label_and_location() {
    let dev = SimDevice::wormhole_b0();
    let _a = dev
        .buffer(BufferType::Dram, MIB)
        .page_size(2048)
        .label("weights")
        .allocate()
        .unwrap();
    let line = line!() - 2; // the `.allocate()` call above
    let live = dev.live_allocations().unwrap();
    assert_eq!(live.len(), 1);
    let a = &live[0];
    assert_eq!(
        (
            a.buffer_type,
            a.address,
            a.size,
            a.size_per_bank,
            a.num_banks
        ),
        (BufferType::Dram, 0x10_0040, MIB, 88_064, 12)
    );
    assert_eq!(a.label.as_deref(), Some("weights"));
    let loc = a.location.as_ref().unwrap();
    assert_eq!(
        (loc.file.as_str(), loc.line),
        ("tests/sim_geometry.rs", line)
    );
    assert_eq!(a.reserved_total(), 88_064 * 12);
}

#[test]
fn nested_peak_marks_are_independent() {
    let dev = SimDevice::wormhole_b0();
    let outer = dev.peak_mark().unwrap();
    let big = dev.allocate(BufferType::Dram, 8 * MIB, 2048).unwrap();
    drop(big);
    let inner = dev.peak_mark().unwrap();
    let small = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    assert_eq!(inner.read().unwrap().per_bank(BufferType::Dram), 88_064);
    drop(inner);
    drop(small);
    assert_eq!(outer.read().unwrap().per_bank(BufferType::Dram), 700_416);
    assert_eq!(outer.read().unwrap().per_bank(BufferType::L1), 0);
}

#[test]
fn peak_marks_match_a_naive_model_whatever_the_order_of_release() {
    // Marks are started, released in any order, or forgotten (active for
    // good), among random allocations and frees; every live mark must read
    // the highest per-bank allocated bytes since it started.
    struct Model {
        mark: tt_memguard::PeakMark,
        peaks: [u64; 4],
    }
    let dev = SimDevice::wormhole_b0();
    let mut state = 0x5eed_u64;
    let mut next = move || common::splitmix64(&mut state);
    let mut marks: Vec<Model> = Vec::new();
    let mut buffers = Vec::new();
    let pools = [BufferType::Dram, BufferType::L1];
    for step in 0..20_000 {
        match next() % 8 {
            0 => marks.push(Model {
                mark: dev.peak_mark().unwrap(),
                peaks: dev.snapshot().unwrap().pools.map(|p| p.allocated_per_bank),
            }),
            1 if !marks.is_empty() => {
                let i = (next() % marks.len() as u64) as usize;
                let model = marks.swap_remove(i);
                if next() % 4 == 0 {
                    std::mem::forget(model.mark);
                }
            }
            2..=4 => {
                let pool = pools[(next() % 2) as usize];
                let pages = 1 + next() % 64;
                if let Ok(b) = dev.allocate(pool, pages * 64 * 2048, 2048) {
                    buffers.push(b);
                }
            }
            _ if !buffers.is_empty() => {
                let i = (next() % buffers.len() as u64) as usize;
                drop(buffers.swap_remove(i));
            }
            _ => {}
        }
        let now = dev.snapshot().unwrap().pools.map(|p| p.allocated_per_bank);
        for model in &mut marks {
            for (peak, now) in model.peaks.iter_mut().zip(now) {
                *peak = (*peak).max(now);
            }
            let read = model.mark.read().unwrap();
            let read = BufferType::ALL.map(|t| read.per_bank(t));
            assert_eq!(read, model.peaks, "step {step}");
        }
    }
}

#[test]
fn reports_of_a_device_past_8_eib_saturate_instead_of_overflowing() {
    // 12 DRAM banks of 2^60 bytes: 13.8 EB in all, more than i64 holds.
    let dev = SimDevice::builder(Preset::WormholeB0)
        .dram_bank(1 << 60, 0x10_0040)
        .build()
        .unwrap();
    let per_bank = (1u64 << 60) - 0x10_0040;
    let guard = tt_memguard::MemoryGuard::new(&dev);
    let b = dev
        .allocate(BufferType::Dram, 12 * per_bank, per_bank)
        .unwrap();
    let report = guard.into_report().unwrap();
    let dram = report.device().pool(BufferType::Dram);
    assert_eq!(dram.after_total, 12 * per_bank);
    assert_eq!(dram.delta_total, i64::MAX);
    assert_eq!(dram.peak_above_baseline_total, 12 * per_bank);
    assert_eq!(
        report.leaks().next().unwrap().reserved_total(),
        12 * per_bank
    );
    drop(b);
}

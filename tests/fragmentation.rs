//! Fragmentation explained: a failed `min_largest_free` check and an
//! out-of-memory error with enough free bytes name the free blocks and the
//! allocations that split them.

use tt_memguard::{
    Budget, Buffer, BufferType, Device, Error, KIB, MIB, MemoryGuard, SimDevice,
    explain_fragmentation, pool_free_blocks,
};

/// L1 of a simulated Wormhole B0 filled with "weights" and five 64 KiB
/// per-bank buffers "a".."e" (from the top down: "e" at the pool's bottom),
/// then "b" and "d" freed: 128 KiB free per bank, in two 64 KiB holes.
fn fragmented_l1(dev: &Device) -> (Buffer, Vec<Buffer>) {
    let l1 = *dev.snapshot().unwrap().pool(BufferType::L1);
    let filler = l1.size_per_bank - 5 * 64 * KIB;
    let weights = dev
        .buffer(BufferType::L1, filler * 64)
        .page_size(filler)
        .label("weights")
        .allocate()
        .unwrap();
    let mut small: Vec<Buffer> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(|name| {
            dev.buffer(BufferType::L1, 64 * 64 * KIB)
                .page_size(64 * KIB)
                .label(name)
                .allocate()
                .unwrap()
        })
        .collect();
    drop(small.remove(3));
    drop(small.remove(1));
    (weights, small)
}

fn label(a: Option<&tt_memguard::Allocation>) -> Option<&str> {
    a.and_then(|a| a.label.as_deref())
}

#[test]
fn a_failed_min_largest_free_names_the_free_blocks_and_what_splits_them() {
    let dev = SimDevice::wormhole_b0();
    // Fragmented before the scope: the only failure is the largest free
    // block (no pool grew, so the live set is listed for the explanation).
    let _kept = fragmented_l1(&dev);
    let guard =
        MemoryGuard::new(&dev).budget(Budget::new().min_largest_free(BufferType::L1, "128 KiB"));
    let report = guard.into_report().unwrap();
    assert_eq!(report.failures().count(), 1, "{report}");
    let l1 = report.device().pool(BufferType::L1);
    let f = l1.fragmentation.as_ref().expect("a fragmentation section");
    assert_eq!(
        (f.buffer_type, f.free_blocks, f.free_per_bank),
        (BufferType::L1, 2, 128 * KIB)
    );
    let blocks: Vec<_> = f
        .largest
        .iter()
        .map(|b| {
            (
                b.address,
                b.size_per_bank,
                label(b.below.as_ref()),
                label(b.above.as_ref()),
            )
        })
        .collect();
    assert_eq!(
        blocks,
        [
            (0x29d60, 64 * KIB, Some("e"), Some("c")),
            (0x49d60, 64 * KIB, Some("c"), Some("a")),
        ]
    );
    // The explanation agrees with the pool's own statistics.
    assert_eq!(
        f.largest[0].size_per_bank,
        l1.largest_free_block_after_per_bank
    );
    let c = f.largest[0].above.as_ref().unwrap();
    assert_eq!(
        (c.address, c.size_per_bank, c.size),
        (0x39d60, 64 * KIB, 64 * 64 * KIB)
    );
    assert_eq!(c.location.as_ref().unwrap().file, "tests/fragmentation.rs");
    let text = report.to_string();
    assert!(
        text.contains("      128.0 KiB free per bank in 2 blocks:\n        65,536 B at 0x29d60..0x39d60, between \"e\" (id "),
        "{text}"
    );
    assert!(
        text.contains("65,536 B at 0x49d60..0x59d60, between \"c\" (id "),
        "{text}"
    );
    // It travels through JSON.
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"fragmentation\":{"), "{json}");
    let back: tt_memguard::MemoryReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn passing_and_other_failing_reports_have_no_fragmentation_section() {
    let dev = SimDevice::wormhole_b0();
    let kept = fragmented_l1(&dev);
    let guard =
        MemoryGuard::new(&dev).budget(Budget::new().min_largest_free(BufferType::L1, "64 KiB"));
    let report = guard.into_report().unwrap();
    assert!(report.passed, "{report}");
    assert!(
        report
            .device()
            .pools
            .iter()
            .all(|p| p.fragmentation.is_none())
    );
    assert!(
        !serde_json::to_string(&report)
            .unwrap()
            .contains("\"fragmentation\"")
    );
    assert!(!report.to_string().contains("free per bank in"));
    // A leak fails the report, but names no free blocks.
    let guard =
        MemoryGuard::new(&dev).budget(Budget::new().min_largest_free(BufferType::Dram, "1 MiB"));
    std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048).unwrap());
    let report = guard.into_report().unwrap();
    assert!(!report.passed);
    assert!(
        report
            .device()
            .pools
            .iter()
            .all(|p| p.fragmentation.is_none())
    );
    assert!(!report.to_string().contains("free per bank in"), "{report}");
    drop(kept);
}

#[test]
fn out_of_memory_with_enough_free_bytes_names_the_free_blocks() {
    let dev = SimDevice::wormhole_b0();
    let _kept = fragmented_l1(&dev);
    let e = dev
        .allocate(BufferType::L1, 64 * 128 * KIB, 64 * KIB)
        .unwrap_err();
    let text = e.to_string();
    let Error::OutOfMemory {
        fragmentation: Some(f),
        ..
    } = e
    else {
        panic!("{text}")
    };
    let blocks: Vec<_> = f
        .largest
        .iter()
        .map(|b| (b.address, b.size_per_bank))
        .collect();
    assert_eq!(blocks, [(0x29d60, 64 * KIB), (0x49d60, 64 * KIB)]);
    assert_eq!(label(f.largest[1].below.as_ref()), Some("c"));
    assert_eq!(label(f.largest[1].above.as_ref()), Some("a"));
    let mut lines = text.lines();
    // The first line is TT-Metal's message (and the crate's hint), unchanged.
    assert_eq!(
        lines.next(),
        Some(
            "Out of Memory: Not enough space to allocate 8388608 B L1 buffer across 64 banks, where each bank needs to store 131072 B, but bank size is 1393312 B (allocated: 1262240 B, free: 131072 B, largest free block: 65536 B); 131,072 B are free in total but fragmented: no single free block holds 131,072 B"
        )
    );
    assert_eq!(lines.next(), Some("  128.0 KiB free per bank in 2 blocks:"));
    let block = lines.next().unwrap();
    assert!(
        block.starts_with("    65,536 B at 0x29d60..0x39d60, between \"e\" (id ")
            && block.contains("64.0 KiB per bank at 0x19d60, allocated at tests/fragmentation.rs:"),
        "{block}"
    );
}

#[test]
fn out_of_memory_without_enough_free_bytes_has_no_explanation() {
    let dev = SimDevice::wormhole_b0();
    let _kept = fragmented_l1(&dev);
    let e = dev
        .allocate(BufferType::L1, 64 * 256 * KIB, 64 * KIB)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfMemory {
                fragmentation: None,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.to_string().lines().count(), 1, "{e}");
    let e = SimDevice::wormhole_b0()
        .allocate(BufferType::L1, 100 * MIB, 2048)
        .unwrap_err();
    assert!(matches!(
        e,
        Error::OutOfMemory {
            fragmentation: None,
            ..
        }
    ));
}

#[test]
fn free_blocks_are_the_gaps_between_live_allocations_at_the_pool_edges() {
    let dev = SimDevice::wormhole_b0();
    let l1 = *dev.snapshot().unwrap().pool(BufferType::L1);
    let end = l1.base_address + l1.size_per_bank;
    // An empty pool is one free block with nothing either side.
    let empty = explain_fragmentation(&l1, &[]).unwrap();
    assert_eq!(
        pool_free_blocks(&l1, &[]),
        [(l1.base_address, l1.size_per_bank)]
    );
    assert_eq!(empty.free_blocks, 1);
    assert!(empty.largest[0].below.is_none() && empty.largest[0].above.is_none());
    // Twenty-one 64 KiB buffers from the top, every other one freed: the
    // rest at the bottom and ten 64 KiB holes, of which five are named,
    // lowest address first among equal sizes.
    let all: Vec<Buffer> = (0..21)
        .map(|i| {
            dev.buffer(BufferType::L1, 64 * 64 * KIB)
                .page_size(64 * KIB)
                .label(format!("t{i}"))
                .allocate()
                .unwrap()
        })
        .collect();
    let kept: Vec<Buffer> = all.into_iter().step_by(2).collect();
    let pool = *dev.snapshot().unwrap().pool(BufferType::L1);
    let live = dev.live_allocations().unwrap();
    let gaps = pool_free_blocks(&pool, &live);
    assert_eq!(gaps.len(), 11);
    assert_eq!(gaps.iter().map(|g| g.1).sum::<u64>(), pool.free_per_bank);
    assert_eq!(
        gaps.iter().map(|g| g.1).max(),
        Some(pool.largest_free_block_per_bank)
    );
    assert!(
        gaps.windows(2).all(|w| w[0].0 + w[0].1 < w[1].0),
        "{gaps:?}"
    );
    let rest = l1.size_per_bank - 21 * 64 * KIB;
    assert_eq!(gaps[0], (l1.base_address, rest));
    assert!(gaps[1..].iter().all(|g| g.1 == 64 * KIB && g.0 + g.1 < end));
    let f = explain_fragmentation(&pool, &live).unwrap();
    assert_eq!((f.free_blocks, f.largest.len()), (11, 5));
    let named: Vec<_> = f.largest.iter().map(|b| b.address).collect();
    assert_eq!(named, gaps[1..6].iter().map(|g| g.0).collect::<Vec<_>>());
    // Each named hole lies between two kept buffers, the freed one's
    // neighbours: t(2k) above, t(2k + 2) below (the buffers go top down).
    for b in &f.largest {
        let (below, above) = (
            label(b.below.as_ref()).unwrap(),
            label(b.above.as_ref()).unwrap(),
        );
        let n = |l: &str| l[1..].parse::<u32>().unwrap();
        assert_eq!(
            (n(below) % 2, n(below), b.address + b.size_per_bank),
            (0, n(above) + 2, b.above.as_ref().unwrap().address)
        );
    }
    let text = f.to_string();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with(" free per bank in 11 blocks, the largest:"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 6, "{text}");
    drop(kept);
}

#[test]
fn an_incomplete_live_set_explains_nothing_rather_than_something_wrong() {
    let dev = SimDevice::wormhole_b0();
    let _a = dev
        .allocate(BufferType::L1, 64 * 64 * KIB, 64 * KIB)
        .unwrap();
    let l1 = *dev.snapshot().unwrap().pool(BufferType::L1);
    // The live set without `_a`: the gap would be the whole pool, more than is free.
    assert!(explain_fragmentation(&l1, &[]).is_none());
    assert!(explain_fragmentation(&l1, &dev.live_allocations().unwrap()).is_some());
}

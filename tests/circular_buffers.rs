//! Programs and circular buffers on the simulated device: TT-Metal's layout, its two enqueue
//! checks with its messages, the explanation of a failure, and bad input.

mod common;

use tt_memguard::{
    BufferType, CircularBufferCheck, CircularBufferConfig, CoreRange, CoreRangeSet, Device, Error,
    KIB, Preset, SimDevice,
};

use common::{cb, cb_addresses as addresses, example_program, range};

#[test]
fn layout_matches_tt_metal_on_wormhole_and_blackhole() {
    // Wormhole: CB starts aligned to 32 B from the L1 base 0x19D60.
    let dev = SimDevice::wormhole_b0();
    let mut program = example_program(&dev);
    assert!(program.circular_buffers()[0].address.is_none());
    let run = dev.enqueue(&mut program).unwrap();
    assert_eq!(
        addresses(&program),
        [0x19D60, 0x1AD60, 0x1B160, 0x1B160, 0x1B160]
    );
    assert!(run.laid_out_now);
    assert_eq!(run.base, 0x19D60);
    // The highest CB end over all cores is C's, on (4,4)-(7,7): 0x1B160 + 2048.
    assert_eq!(run.cb_end, 0x1B160 + 2048);
    assert_eq!(run.cb_peak_core, (4, 4).into());
    assert_eq!(run.cb_bytes_per_core, 0x1B160 + 2048 - 0x19D60);
    assert_eq!(run.cores_with_cbs, 64);
    assert_eq!(run.lowest_l1_buffer, None);
    assert_eq!(run.headroom, 1_499_136 - (0x1B160 + 2048));
    // Later enqueues keep the layout.
    assert!(!dev.enqueue(&mut program).unwrap().laid_out_now);

    // Blackhole: base 0x1B480, starts aligned to 64 B.
    let dev = SimDevice::blackhole_p150();
    let mut program = example_program(&dev);
    dev.enqueue(&mut program).unwrap();
    assert_eq!(
        addresses(&program),
        [0x1B480, 0x1C480, 0x1C880, 0x1C880, 0x1C880]
    );
}

#[test]
fn every_program_starts_at_the_base_and_programs_do_not_add_up() {
    let dev = SimDevice::wormhole_b0();
    let mut first = dev.create_program().unwrap();
    first
        .add_circular_buffer(range(0, 0, 7, 7), cb(64 * KIB, 0))
        .unwrap();
    let mut second = dev.create_program().unwrap();
    second
        .add_circular_buffer(range(0, 0, 7, 7), cb(32 * KIB, 0))
        .unwrap();
    dev.enqueue(&mut first).unwrap();
    dev.enqueue(&mut second).unwrap();
    assert_eq!(first.circular_buffers()[0].address, Some(0x19D60));
    assert_eq!(second.circular_buffers()[0].address, Some(0x19D60));
    assert_eq!((first.id(), second.id()), (0, 1));
}

#[test]
fn a_region_beyond_l1_is_tt_metals_error_with_the_explanation() {
    let dev = SimDevice::wormhole_b0();
    let mut program = dev.create_program().unwrap();
    program
        .add_circular_buffer(range(0, 0, 3, 3), cb(800 * KIB, 0))
        .unwrap();
    program
        .add_circular_buffer(range(0, 0, 3, 3), cb(800 * KIB, 1))
        .unwrap();
    let e = dev.enqueue(&mut program).unwrap_err();
    let end = 0x19D60 + 1_638_400;
    let text = e.to_string();
    assert_eq!(
        text.lines().next().unwrap(),
        format!(
            "Statically allocated circular buffers on core range [0-0 - 3-3] grow to {end} B which is beyond max L1 size of 1499136 B"
        )
    );
    let Error::CircularBuffers(failure) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(failure.check, CircularBufferCheck::BeyondL1);
    assert_eq!(failure.overlap(), end - 1_499_136);
    assert_eq!(failure.circular_buffers.len(), 2);
    assert!(
        text.contains("to fit: shrink the circular buffers on [0-0 - 3-3] by 245,088 B"),
        "{text}"
    );
}

#[test]
fn a_clash_names_both_sides_the_overlap_and_what_would_fit() {
    // l1_small_size pushes L1 buffers down into the CB region: the classic trap.
    let program_on = |dev: &Device| {
        let mut p = dev.create_program().unwrap();
        p.add_circular_buffer(range(0, 0, 7, 7), cb(600 * KIB, 0))
            .unwrap();
        p
    };
    let weights = |dev: &Device| {
        dev.buffer(BufferType::L1, 64 * 700 * KIB)
            .page_size(2048)
            .label("weights")
            .allocate()
            .unwrap()
    };
    // Fits with the default carve-out.
    let dev = SimDevice::wormhole_b0();
    let _w = weights(&dev);
    dev.enqueue(&mut program_on(&dev)).unwrap();

    // 64 KiB of L1_SMALL lowers the weights by 64 KiB: they now clash.
    let dev = SimDevice::builder(Preset::WormholeB0)
        .l1_small_size(64 * KIB)
        .build()
        .unwrap();
    let w = weights(&dev);
    let mut program = program_on(&dev);
    let e = dev.enqueue(&mut program).unwrap_err();
    let end = 0x19D60 + 600 * KIB;
    let text = e.to_string();
    assert_eq!(
        text.lines().next().unwrap(),
        format!(
            "Statically allocated circular buffers in program 0 clash with L1 buffers on core range [0-0 - 7-7]. L1 buffer allocated at {} and static circular buffer region ends at {end}",
            w.address()
        )
    );
    let Error::CircularBuffers(failure) = &e else {
        panic!("{e:?}")
    };
    let overlap = end - w.address();
    assert_eq!(failure.overlap(), overlap);
    let lowest = failure.lowest_buffer.as_ref().unwrap();
    assert_eq!(lowest.label.as_deref(), Some("weights"));
    assert!(
        lowest
            .location
            .as_ref()
            .unwrap()
            .file
            .ends_with("circular_buffers.rs")
    );
    assert!(text.contains("lowest L1 buffer: 'weights'"), "{text}");
    assert!(
        text.contains(&format!(
            "overlap: {} B",
            tt_memguard::render::format_count(overlap)
        )),
        "{text}"
    );
    // 64 KiB less L1_SMALL would lift the weights back above the region.
    let step = overlap.div_ceil(32) * 32;
    assert!(
        text.contains(&format!(
            "open the device with l1_small_size at most {} B",
            tt_memguard::render::format_count(64 * KIB - step)
        )),
        "{text}"
    );
    let lowered = SimDevice::builder(Preset::WormholeB0)
        .l1_small_size(64 * KIB - step)
        .build()
        .unwrap();
    let _w = weights(&lowered);
    dev.enqueue(&mut program_on(&lowered))
        .expect_err("a program of another device is refused");
    lowered.enqueue(&mut program_on(&lowered)).unwrap();
}

#[test]
fn a_clash_appears_when_an_l1_buffer_is_allocated_between_two_enqueues() {
    let dev = SimDevice::wormhole_b0();
    let mut program = dev.create_program().unwrap();
    program
        .add_circular_buffer(range(0, 0, 7, 7), cb(512 * KIB, 0))
        .unwrap();
    dev.enqueue(&mut program).unwrap();
    let big = dev.allocate(BufferType::L1, 64 * 900 * KIB, 2048).unwrap();
    let e = dev.enqueue(&mut program).unwrap_err();
    assert!(e.to_string().contains("clash with L1 buffers"), "{e}");
    // It throws again at the next enqueue, and passes once the buffer is freed.
    assert!(dev.enqueue(&mut program).is_err());
    drop(big);
    dev.enqueue(&mut program).unwrap();
}

#[test]
fn cbs_backed_by_a_buffer_take_its_address_and_skip_the_layout() {
    let dev = SimDevice::wormhole_b0();
    let shard = dev
        .allocate_sharded(BufferType::L1, 64 * 8 * KIB, 2048, 64)
        .unwrap();
    let mut program = dev.create_program().unwrap();
    program
        .add_circular_buffer(
            range(0, 0, 7, 7),
            CircularBufferConfig::new(4 * KIB)
                .page_size(0, 2048)
                .backed_by(&shard, 2 * KIB),
        )
        .unwrap();
    program
        .add_circular_buffer(range(0, 0, 7, 7), cb(KIB, 1))
        .unwrap();
    let run = dev.enqueue(&mut program).unwrap();
    assert_eq!(
        addresses(&program),
        [shard.address() + 2 * KIB, 0x19D60],
        "the backed CB takes no room in the region"
    );
    assert_eq!(run.cb_bytes_per_core, KIB);
    // A freed backing buffer is refused at the next enqueue.
    drop(shard);
    let e = dev.enqueue(&mut program).unwrap_err();
    assert!(
        matches!(e, Error::CircularBufferBackingFreed { handle: 0, .. }),
        "{e:?}"
    );
}

#[test]
fn bad_circular_buffers_are_clear_errors() {
    let dev = SimDevice::wormhole_b0();
    let mut program = dev.create_program().unwrap();
    let all = range(0, 0, 7, 7);

    let e = program
        .add_circular_buffer(CoreRangeSet::new([]).unwrap(), cb(KIB, 0))
        .unwrap_err();
    assert!(matches!(e, Error::EmptyCoreRangeSet), "{e}");

    let e = program
        .add_circular_buffer(range(0, 0, 8, 7), cb(KIB, 0))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "core range [0-0 - 8-7] lies outside the 8x8 compute grid of sim:wormhole_b0: use cores from [0-0 - 7-7]"
    );

    let e = program
        .add_circular_buffer(all, CircularBufferConfig::new(0).page_size(0, 32))
        .unwrap_err();
    assert!(matches!(e, Error::CircularBufferSizeZero), "{e}");

    let e = program
        .add_circular_buffer(all, CircularBufferConfig::new(3000).page_size(2, 2048))
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "Failed allocation attempt on buffer index 2. Total circular buffer size 3000 B must be divisible by page size 2048 B"
        ),
        "{e}"
    );

    let e = program
        .add_circular_buffer(all, CircularBufferConfig::new(4096))
        .unwrap_err();
    assert!(matches!(e, Error::CircularBufferWithoutIndex { .. }), "{e}");

    let e = program.add_circular_buffer(all, cb(KIB, 32)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Buffer index (32) exceeds max number of circular buffers per core (32)"),
        "{e}"
    );

    // A duplicate index on one shared core, and nothing is added.
    program
        .add_circular_buffer(range(0, 0, 3, 3), cb(KIB, 5))
        .unwrap();
    let e = program
        .add_circular_buffer(range(3, 3, 4, 4), cb(KIB, 5))
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "Invalid circular buffer index: Cannot add circular buffer at index 5, another circular buffer already exists"
        ),
        "{e}"
    );
    assert_eq!(program.circular_buffers().len(), 1);
    // The same index on disjoint cores is fine.
    program
        .add_circular_buffer(range(4, 4, 7, 7), cb(KIB, 5))
        .unwrap();

    // Backing buffers must be L1 and hold the CB.
    let dram = dev.allocate(BufferType::Dram, 64 * KIB, 2048).unwrap();
    let e = program
        .add_circular_buffer(all, cb(KIB, 6).backed_by(&dram, 0))
        .unwrap_err();
    assert!(
        e.to_string().contains("only L1 and L1_SMALL buffers"),
        "{e}"
    );
    let l1 = dev.allocate(BufferType::L1, 64 * 2 * KIB, 2048).unwrap();
    let e = program
        .add_circular_buffer(all, cb(4 * KIB, 6).backed_by(&l1, 0))
        .unwrap_err();
    assert!(e.to_string().contains("do not fit"), "{e}");
    let e = program
        .add_circular_buffer(all, cb(KIB, 6).backed_by(&l1, 8))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("not a multiple of the L1 alignment 16 B"),
        "{e}"
    );

    // Core ranges themselves.
    assert!(CoreRange::new((3, 0), (2, 0)).is_err());
    assert!(CoreRangeSet::new([range(0, 0, 3, 3), range(3, 3, 4, 4)]).is_err());

    // After the first enqueue nothing can be added.
    dev.enqueue(&mut program).unwrap();
    let e = program.add_circular_buffer(all, cb(KIB, 7)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "Cannot add circular buffer to an already compiled program {}: add every circular buffer before the first enqueue",
            program.id()
        )
    );
}

#[test]
fn adjacent_ranges_are_merged_the_way_tt_metal_merges_them() {
    // Two 4x8 halves merge into the whole grid: one region, so a later CB on the whole grid
    // stacks above the first.
    let dev = SimDevice::wormhole_b0();
    let mut program = dev.create_program().unwrap();
    let halves = CoreRangeSet::new([range(0, 0, 3, 7), range(4, 0, 7, 7)]).unwrap();
    program.add_circular_buffer(halves, cb(KIB, 0)).unwrap();
    program
        .add_circular_buffer(range(0, 0, 7, 7), cb(KIB, 1))
        .unwrap();
    dev.enqueue(&mut program).unwrap();
    assert_eq!(addresses(&program), [0x19D60, 0x19D60 + 1024]);
}

#[test]
fn guards_keep_per_core_peaks_nested_correctly_and_never_sum_cores() {
    use tt_memguard::{Budget, MemoryGuard};
    let dev = SimDevice::wormhole_b0();
    let outer = MemoryGuard::new(&dev).budget(Budget::new().cb_peak_per_core("300 KiB"));
    // 256 KiB on the left half and 256 KiB on the right half: 256 KiB per core, not 512.
    let mut halves = dev.create_program().unwrap();
    halves
        .add_circular_buffer(range(0, 0, 3, 7), cb(256 * KIB, 0))
        .unwrap();
    halves
        .add_circular_buffer(range(4, 0, 7, 7), cb(256 * KIB, 0))
        .unwrap();
    let _l1 = dev.allocate(BufferType::L1, 64 * 100 * KIB, 2048).unwrap();
    dev.enqueue(&mut halves).unwrap();
    {
        let inner = MemoryGuard::new(&dev);
        let mut small = dev.create_program().unwrap();
        small
            .add_circular_buffer(range(0, 0, 0, 0), cb(8 * KIB, 0))
            .unwrap();
        dev.enqueue(&mut small).unwrap();
        let report = inner.finish().unwrap();
        let cores = report.device().cores.as_ref().unwrap();
        // The inner scope saw only the small program.
        assert_eq!(cores.cb_peak_per_core, 8 * KIB);
        assert_eq!(cores.l1_peak_per_core, 8 * KIB + 100 * KIB);
        assert_eq!(
            cores.min_headroom,
            Some(1_499_136 - 100 * KIB - (0x19D60 + 8 * KIB))
        );
    }
    drop(_l1);
    let report = outer.finish().unwrap();
    let cores = report.device().cores.as_ref().unwrap();
    assert_eq!(cores.cb_peak_per_core, 256 * KIB);
    assert_eq!(cores.l1_peak_per_core, 356 * KIB);
    assert_eq!(
        cores.min_headroom,
        Some(1_499_136 - 100 * KIB - (0x19D60 + 256 * KIB))
    );
    assert!(cores.passed(), "{report}");
    assert!(
        report.to_string().contains("per core: CB peak 256.0 KiB"),
        "{report}"
    );
}

#[test]
fn per_core_budgets_fail_with_the_numbers() {
    use tt_memguard::{Budget, CheckKind, MemoryGuard};
    let dev = SimDevice::blackhole_p150();
    let guard = MemoryGuard::new(&dev).budget(
        Budget::new()
            .cb_peak_per_core("128 KiB")
            .l1_peak_per_core("1 MiB")
            .min_cb_headroom("1.25 MiB"),
    );
    let mut program = dev.create_program().unwrap();
    program
        .add_circular_buffer(range(0, 0, 10, 9), cb(200 * KIB, 0))
        .unwrap();
    dev.enqueue(&mut program).unwrap();
    let e = guard.finish().unwrap_err();
    let report = e.memory_report().unwrap();
    let cores = report.device().cores.as_ref().unwrap();
    let failed: Vec<CheckKind> = cores
        .checks
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.check)
        .collect();
    // 200 KiB of CBs is over 128 KiB; 1,572,864 - 0x1B480 - 200 KiB of headroom is under 1.25 MiB.
    assert_eq!(failed, [CheckKind::CbPeakPerCore, CheckKind::MinCbHeadroom]);
    let text = e.to_string();
    assert!(
        text.contains("CB peak 200.0 KiB of 128.0 KiB per core"),
        "{text}"
    );
    assert!(text.contains("FAIL"), "{text}");

    // A scope without programs passes its per-core limits and says so.
    let guard = MemoryGuard::new(&dev).budget(Budget::new().cb_peak_per_core("1 KiB"));
    let report = guard.finish().unwrap();
    assert!(!report.device().cores.as_ref().unwrap().enqueued);
    // Bad sizes name the limit.
    let e = Budget::new()
        .min_cb_headroom("lots")
        .validate()
        .unwrap_err();
    assert_eq!(e.limit(), "min_cb_headroom budget");
}

#[test]
fn the_budget_macro_takes_per_core_limits() {
    use tt_memguard::try_assert_memory_budget;
    let dev = SimDevice::wormhole_b0();
    let run = |cb_size: u64| {
        try_assert_memory_budget!(
            dev,
            l1 <= "1 MiB",
            cb_per_core <= "64 KiB",
            cb_headroom >= "1 MiB",
            {
                let mut program = dev.create_program()?;
                program.add_circular_buffer(range(0, 0, 7, 7), cb(cb_size, 0))?;
                dev.enqueue(&mut program)?.cb_bytes_per_core
            }
        )
    };
    assert_eq!(run(32 * KIB).unwrap(), 32 * KIB);
    let e = run(128 * KIB).unwrap_err();
    assert!(
        e.to_string()
            .contains("CB peak 128.0 KiB of 64.0 KiB per core"),
        "{e}"
    );
}

#[test]
fn per_core_limits_come_from_budget_files_and_the_environment() {
    use std::path::Path;
    use tt_memguard::runner::BudgetConfig;
    use tt_memguard::{Budget, BudgetSource, CheckKind};
    let config = BudgetConfig::parse(
        "[defaults]\ncb_peak_per_core = \"96 KiB\"\n[tests.\"matmul*\"]\nmin_cb_headroom = \"16 KiB\"\n",
        Path::new("memguard.toml"),
    )
    .unwrap();
    let budget = config.budget_for("matmul_8x8", &Budget::new().l1_peak_per_core("1 MiB"));
    let cores = budget.cores();
    assert_eq!(cores.get(CheckKind::CbPeakPerCore).unwrap().bytes, 96 * KIB);
    assert_eq!(cores.get(CheckKind::MinCbHeadroom).unwrap().bytes, 16 * KIB);
    assert_eq!(
        cores.get(CheckKind::L1PeakPerCore).unwrap().source,
        BudgetSource::Code
    );
    assert!(matches!(
        cores.get(CheckKind::CbPeakPerCore).unwrap().source,
        BudgetSource::File(_)
    ));

    let env = BudgetConfig::from_env([(
        "TT_MEMGUARD_L1_PEAK_PER_CORE".to_string(),
        "512KiB".to_string(),
    )])
    .unwrap();
    assert_eq!(
        env.cores().get(CheckKind::L1PeakPerCore).unwrap().source,
        BudgetSource::Env("TT_MEMGUARD_L1_PEAK_PER_CORE".into())
    );
    let e = BudgetConfig::parse(
        "[defaults]\ncb_peak_per_kore = 1\n",
        Path::new("memguard.toml"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("cb_peak_per_core"), "{e}");
}

#[test]
fn a_clash_lists_the_circular_buffers_of_the_failing_range() {
    let dev = SimDevice::wormhole_b0();
    let mut program = dev.create_program().unwrap();
    for index in 0..3 {
        program
            .add_circular_buffer(CoreRange::grid(8, 8).unwrap(), cb(256 * KIB, index))
            .unwrap();
    }
    let _out = dev.allocate(BufferType::L1, 64 * 800 * KIB, 2048).unwrap();
    let e = dev.enqueue(&mut program).unwrap_err();
    let Error::CircularBuffers(failure) = &e else {
        panic!("{e:?}")
    };
    let listed: Vec<(u32, u64)> = failure
        .circular_buffers
        .iter()
        .map(|c| (c.handle, c.address))
        .collect();
    assert_eq!(
        listed,
        [
            (0, 0x19D60),
            (1, 0x19D60 + 256 * KIB),
            (2, 0x19D60 + 512 * KIB)
        ],
        "{e}"
    );
}

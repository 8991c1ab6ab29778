//! MemoryGuard, budgets, leak attribution and the assertion macros.

mod common;

use std::sync::OnceLock;

use common::redact_locations;
use serial_test::serial;
use tt_memguard::{
    Allow, Budget, BufferType, CheckKind, Device, DeviceGroup, Error, GuardOptions, KIB, MIB,
    MemoryGuard, Preset, Result, SimDevice, assert_memory_budget, assert_no_leak, check,
    try_assert_memory_budget, try_assert_no_leak,
};

fn failed_report(e: Error) -> tt_memguard::MemoryReport {
    match e {
        Error::MemoryCheckFailed(report) => *report,
        other => panic!("expected a failed check, got {other}"),
    }
}

#[test]
fn a_forgotten_buffer_is_named_with_its_bytes_and_location() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).name("conv_does_not_leak");
    let w = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    let line = line!() - 1;
    std::mem::forget(w);
    let report = failed_report(guard.finish().unwrap_err());
    let leak = report.leaks().next().unwrap();
    assert_eq!(
        (leak.size, leak.size_per_bank, leak.num_banks, leak.address),
        (MIB, 88_064, 12, 0x10_0040)
    );
    let loc = leak.location.as_ref().unwrap();
    assert_eq!(
        (loc.file.as_str(), loc.line, loc.column),
        ("tests/guard.rs", line, 17)
    );
    let dram = report.device().pool(BufferType::Dram);
    assert_eq!(
        (dram.delta_total, dram.retained_total()),
        (88_064 * 12, 88_064 * 12)
    );
    insta::assert_snapshot!("forgotten_buffer", redact_locations(&report.to_string()));
}

#[test]
fn a_block_orphaned_by_a_refused_allocation_is_a_leak_named_by_that_allocation() {
    // TT-Metal keeps the block of an interleaved L1 buffer it refuses below
    // its interleaved limit: the guard sees retained memory and names the
    // refused call as the leak's site.
    let dev = SimDevice::builder(Preset::WormholeB0)
        .l1_interleaved_limit(0x1_AD60)
        .build()
        .unwrap();
    let guard = MemoryGuard::new(&dev).name("refused");
    let err = dev
        .buffer(BufferType::L1, 64 * 2048)
        .page_size(2048)
        .direction(tt_memguard::Direction::BottomUp)
        .label("act")
        .allocate()
        .unwrap_err();
    let line = line!() - 2;
    assert!(matches!(err, Error::BelowAddressLimit { .. }), "{err}");
    let report = failed_report(guard.finish().unwrap_err());
    let leak = report.leaks().next().unwrap();
    assert!(leak.orphaned);
    assert_eq!(
        (leak.address, leak.size_per_bank, leak.num_banks),
        (0x1_9D60, 2048, 64)
    );
    assert_eq!(
        leak.label.as_deref(),
        Some("orphaned by a refused allocation (act)")
    );
    assert_eq!(leak.location.as_ref().unwrap().line, line);
    let l1 = report.device().pool(BufferType::L1);
    assert_eq!(l1.retained_total(), 2048 * 64);
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "at 0x19d60, label \"orphaned by a refused allocation (act)\",\n      kept by TT-Metal after refusing the allocation at tests/guard.rs:{line}:"
        )),
        "{text}"
    );
}

#[test]
fn peak_over_budget_fails_although_nothing_leaks() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev)
        .name("matmul_fits_in_l1")
        .budget(Budget::new().l1_peak("512 KiB").dram_peak("64 MiB"));
    let a = dev.allocate(BufferType::L1, 1024 * KIB, 2048).unwrap(); // 8 pages x 2 KiB per bank
    let b = dev.allocate(BufferType::Dram, 8 * MIB, 2048).unwrap();
    drop((a, b));
    let report = failed_report(guard.finish().unwrap_err());
    assert_eq!(report.leaks().count(), 0);
    let failures: Vec<_> = report
        .failures()
        .map(|(_, t, v)| (t, v.check, v.actual, v.limit))
        .collect();
    assert_eq!(
        failures,
        [(BufferType::L1, CheckKind::Peak, 1024 * KIB, 512 * KIB)]
    );
    insta::assert_snapshot!("peak_over_budget", redact_locations(&report.to_string()));
}

#[test]
fn per_bank_peak_budget() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak_per_bank("4 KiB"));
    // Sharded over 2 cores, 16 pages of 1 KiB: 8 KiB in each of the 64 banks.
    let a = dev
        .allocate_sharded(BufferType::L1, 16 * KIB, KIB, 2)
        .unwrap();
    drop(a);
    let report = failed_report(guard.finish().unwrap_err());
    let v = &report.device().pool(BufferType::L1).checks[0];
    assert_eq!(
        (v.per_bank, v.actual, v.limit, v.passed),
        (true, 8 * KIB, 4 * KIB, false)
    );
}

#[test]
fn retained_budget_allows_some_bytes() {
    let dev = SimDevice::wormhole_b0();
    let keep = MIB; // 88,064 B per bank x 12
    let guard =
        MemoryGuard::new(&dev).budget(Budget::new().retained(BufferType::Dram, 88_064 * 12));
    let a = dev.allocate(BufferType::Dram, keep, 2048).unwrap();
    let report = guard.finish().unwrap();
    assert!(report.passed);
    assert_eq!(report.leaks().count(), 0);
    let guard = MemoryGuard::new(&dev).budget(Budget::new().retained(BufferType::Dram, "1 MiB"));
    let b = dev.allocate(BufferType::Dram, keep, 2048).unwrap();
    let report = failed_report(guard.finish().unwrap_err());
    assert_eq!(report.device().leaked.len(), 1);
    assert_eq!(report.device().inherited, 1);
    insta::assert_snapshot!("retained_budget", redact_locations(&report.to_string()));
    drop((a, b));
}

#[test]
fn fragmentation_budget_on_the_largest_free_block() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).budget(
        Budget::new()
            .min_largest_free(BufferType::L1, "1 MiB")
            .retained(BufferType::L1, "1 MiB"),
    );
    // Pin a small buffer in the middle of L1: the largest free block halves.
    let low = dev.allocate(BufferType::L1, 64 * 600 * KIB, 2048).unwrap();
    let pin = dev.allocate(BufferType::L1, 64 * 2 * KIB, 2048).unwrap();
    drop(low);
    let report = failed_report(guard.finish().unwrap_err());
    let v = report
        .device()
        .pool(BufferType::L1)
        .checks
        .iter()
        .find(|v| v.check == CheckKind::LargestFree)
        .unwrap()
        .clone();
    assert!(!v.passed && v.actual < MIB && v.limit == MIB, "{v:?}");
    insta::assert_snapshot!("fragmentation", redact_locations(&report.to_string()));
    drop(pin);
}

#[test]
fn nested_guards_each_get_their_own_peak() {
    let dev = SimDevice::wormhole_b0();
    let outer = MemoryGuard::new(&dev);
    let big = dev.allocate(BufferType::Dram, 8 * MIB, 2048).unwrap();
    drop(big);
    let inner = MemoryGuard::new(&dev);
    let small = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
    drop(small);
    let inner = inner.finish().unwrap();
    let outer = outer.finish().unwrap();
    assert_eq!(
        inner
            .device()
            .pool(BufferType::Dram)
            .peak_above_baseline_total,
        88_064 * 12
    );
    assert_eq!(
        outer
            .device()
            .pool(BufferType::Dram)
            .peak_above_baseline_total,
        700_416 * 12
    );
}

#[test]
fn an_inner_guard_does_not_reset_the_outer_peak() {
    let dev = SimDevice::wormhole_b0();
    let outer = MemoryGuard::new(&dev);
    let inner = MemoryGuard::new(&dev);
    let big = dev.allocate(BufferType::L1, 256 * KIB, 2048).unwrap();
    drop(big);
    inner.finish().unwrap();
    let again = MemoryGuard::new(&dev);
    again.finish().unwrap();
    assert_eq!(
        outer
            .finish()
            .unwrap()
            .device()
            .pool(BufferType::L1)
            .peak_above_baseline_total,
        4096 * 64
    );
}

#[test]
fn a_panicking_body_still_yields_its_numbers_without_a_double_panic() {
    let dev = SimDevice::wormhole_b0();
    let result = std::panic::catch_unwind(|| {
        let _guard = MemoryGuard::new(&dev).name("panics");
        let leaked = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
        std::mem::forget(leaked);
        panic!("kernel failed");
    });
    // The body's panic came through; the guard printed its report to
    // standard error instead of panicking again (which would abort).
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"kernel failed"));

    // The runner's way: catch the body, then take the report.
    let mut guard = MemoryGuard::new(&dev);
    let body = std::panic::catch_unwind(|| {
        let _b = dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap();
        panic!("again");
    });
    assert!(body.is_err());
    guard.mark_panicked();
    let report = guard.into_report().unwrap();
    assert!(report.panicked && !report.passed);
    assert_eq!(
        report
            .device()
            .pool(BufferType::L1)
            .peak_above_baseline_total,
        2048 * 64
    );
    assert_eq!(report.device().pool(BufferType::L1).after_total, 0);
}

#[test]
fn dropping_a_failed_guard_panics_with_the_report() {
    let dev = SimDevice::wormhole_b0();
    let result = std::panic::catch_unwind(|| {
        let _guard = MemoryGuard::new(&dev);
        std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048).unwrap());
    });
    let payload = result.unwrap_err();
    let message = payload.downcast_ref::<String>().unwrap();
    assert!(
        message
            .contains("leaked 1 buffer (1.0 MiB DRAM, 88,064 B per bank x 12 banks) at 0x100040"),
        "{message}"
    );
}

/// A kernel that allocates a program cache on its first run only.
fn run_kernel(dev: &Device, cache: &mut Option<tt_memguard::Buffer>) -> Result<u64> {
    if cache.is_none() {
        *cache = Some(
            dev.buffer(BufferType::Dram, 12 * 4096)
                .page_size(4096)
                .label("program_cache")
                .allocate()?,
        );
    }
    let scratch = dev.allocate(BufferType::L1, 64 * 4 * KIB, 4 * KIB)?;
    Ok(scratch.address())
}

#[test]
fn warmup_moves_a_first_run_cache_into_the_baseline() {
    let dev = SimDevice::wormhole_b0();
    let mut cache = None;
    // Without warm-up the cache is a leak.
    let e = check(&dev, GuardOptions::new(), || {
        run_kernel(&dev, &mut cache).unwrap()
    })
    .unwrap_err();
    assert_eq!(
        failed_report(e).device().leaked[0].label.as_deref(),
        Some("program_cache")
    );

    let dev = SimDevice::wormhole_b0();
    let mut cache = None;
    let (_, report) = check(&dev, GuardOptions::new().warmup(1), || {
        run_kernel(&dev, &mut cache).unwrap()
    })
    .unwrap();
    assert!(report.passed);
    assert_eq!(report.device().inherited, 1);
    assert_eq!(
        report
            .device()
            .pool(BufferType::L1)
            .peak_above_baseline_total,
        4096 * 64
    );

    // The macro form.
    let dev = SimDevice::wormhole_b0();
    let mut cache = None;
    let addr = assert_no_leak!(dev, warmup = 2, { run_kernel(&dev, &mut cache).unwrap() });
    assert_eq!(addr, 0x16_E000 - 4096);
}

#[test]
fn allow_listed_persistent_allocations_are_reported_not_leaked() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev)
        .allow(Allow::label("kv_cache*"))
        .allow(Allow::Pool(BufferType::Trace));
    let cache = dev
        .buffer(BufferType::Dram, MIB)
        .page_size(2048)
        .label("kv_cache.layer0")
        .allocate()
        .unwrap();
    std::mem::forget(cache);
    let report = guard.finish().unwrap();
    assert!(report.passed);
    assert_eq!(report.device().persistent.len(), 1);
    assert_eq!(report.device().pool(BufferType::Dram).retained_total(), 0);
    insta::assert_snapshot!("persistent_allowed", redact_locations(&report.to_string()));

    // Without the allow-list the same allocation is a leak.
    let guard = MemoryGuard::new(&dev).allow(Allow::label("kv_cache"));
    std::mem::forget(
        dev.buffer(BufferType::Dram, MIB)
            .page_size(2048)
            .label("kv_cache.layer1")
            .allocate()
            .unwrap(),
    );
    assert_eq!(
        failed_report(guard.finish().unwrap_err())
            .device()
            .leaked
            .len(),
        1
    );
}

#[test]
fn a_device_group_reports_each_device_and_fails_on_the_leaking_one() {
    let group = DeviceGroup::sim(Preset::WormholeN300, 2).unwrap();
    let guard = MemoryGuard::new(&group).name("all_gather");
    let a = group
        .device(0)
        .allocate(BufferType::Dram, MIB, 2048)
        .unwrap();
    std::mem::forget(
        group
            .device(1)
            .allocate(BufferType::L1, 56 * 2 * KIB, 2048)
            .unwrap(),
    );
    drop(a);
    let report = failed_report(guard.finish().unwrap_err());
    assert!(report.devices[0].passed);
    assert!(!report.devices[1].passed);
    assert_eq!(report.devices[1].leaked.len(), 1);
    insta::assert_snapshot!("group_leak", redact_locations(&report.to_string()));
}

#[test]
fn macros_return_the_block_value_and_propagate_question_marks() -> Result<()> {
    let dev = SimDevice::wormhole_b0();
    let addr = assert_no_leak!(dev, {
        let b = dev.allocate(BufferType::Dram, MIB, 2048)?;
        b.address()
    });
    assert_eq!(addr, 0x10_0040);
    let v = assert_memory_budget!(dev, l1 <= "512 KiB", dram <= 64 * MIB, {
        let _a = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
        7
    });
    assert_eq!(v, 7);
    // `?` leaves the enclosing function: the error is the allocation's.
    fn failing(dev: &Device) -> Result<()> {
        assert_no_leak!(dev, {
            let _b = dev.allocate(BufferType::Dram, 0, 2048)?;
        });
        Ok(())
    }
    assert!(matches!(failing(&dev), Err(Error::ZeroSize { .. })));
    Ok(())
}

#[test]
fn try_macros_return_the_failure_with_its_report() -> Result<()> {
    let dev = SimDevice::wormhole_b0();
    let r = try_assert_no_leak!(dev, {
        std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048)?)
    });
    let report = r.as_ref().unwrap_err().memory_report().unwrap();
    assert_eq!(report.leaks().count(), 1);

    let dev = SimDevice::wormhole_b0();
    let r = try_assert_memory_budget!(dev, l1_per_bank <= "1 KiB", {
        dev.allocate(BufferType::L1, 64 * 2 * KIB, 2048)?.size()
    });
    let report = r.as_ref().unwrap_err().memory_report().unwrap();
    let (_, t, v) = report.failures().next().unwrap();
    assert_eq!((t, v.per_bank, v.actual), (BufferType::L1, true, 2048));
    let ok = try_assert_memory_budget!(dev, dram <= "1 MiB", { 5 });
    assert_eq!(ok?, 5);
    Ok(())
}

#[test]
fn a_guard_on_no_device_is_an_error_not_a_passing_report() {
    let none: Vec<Device> = Vec::new();
    let e = MemoryGuard::try_new(&none).unwrap_err();
    assert!(matches!(e, Error::NoDevice { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "the guarded memory source has no device: a device group or guarded memory source needs at least one device"
    );
    // The closure and `try_` forms return the error, and the body does not
    // run guarded.
    let mut ran = false;
    let e = check(&none, GuardOptions::new(), || ran = true).unwrap_err();
    assert!(matches!(e, Error::NoDevice { .. }) && !ran, "{e}");
    let r = try_assert_no_leak!(none, { 1 });
    assert!(matches!(r, Err(Error::NoDevice { .. })));
    let r = try_assert_memory_budget!(none, l1 <= "1 MiB", { 1 });
    assert!(matches!(r, Err(Error::NoDevice { .. })));
    // The panicking forms say why.
    for payload in [
        std::panic::catch_unwind(|| assert_no_leak!(none, {})).unwrap_err(),
        std::panic::catch_unwind(|| drop(MemoryGuard::new(&none))).unwrap_err(),
    ] {
        let message = payload.downcast_ref::<String>().unwrap();
        assert!(
            message
                .contains("cannot start a memory guard: the guarded memory source has no device"),
            "{message}"
        );
    }
}

#[test]
fn groups_and_sources_hold_each_device_once_and_at_least_one() {
    let e = DeviceGroup::new(Vec::new()).unwrap_err();
    assert!(matches!(e, Error::NoDevice { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("the list given to DeviceGroup::new is empty"),
        "{e}"
    );
    let e = DeviceGroup::sim(Preset::WormholeB0, 0).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("DeviceGroup::sim was asked for 0 devices"),
        "{e}"
    );

    let dev = SimDevice::wormhole_b0();
    let twice = vec![dev.clone(), SimDevice::blackhole_p150(), dev.clone()];
    let e = DeviceGroup::new(twice.clone()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the list given to DeviceGroup::new lists device sim:wormhole_b0 more than once: list each device once (its allocations would be counted once per listing)"
    );
    let e = MemoryGuard::try_new(&twice).unwrap_err();
    assert!(matches!(e, Error::DuplicateDevice { ref device, .. } if device == "sim:wormhole_b0"));

    // Out of range: `get` says so, `device` panics naming the index.
    let group = DeviceGroup::new(vec![dev, SimDevice::blackhole_p150()]).unwrap();
    assert!(group.get(1).is_some() && group.get(2).is_none());
    let payload = std::panic::catch_unwind(|| group.device(2).name().len()).unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().unwrap(),
        "device index 2 is out of range: the group has 2 devices (0 to 1)"
    );
}

#[test]
#[allow(deprecated)]
fn the_old_name_mesh_still_opens_a_device_group() {
    let group: tt_memguard::Mesh = tt_memguard::Mesh::sim(Preset::WormholeB0, 2).unwrap();
    let named: &DeviceGroup = &group;
    assert_eq!(named.device(1).name(), "sim:wormhole_b0#1");
}

#[test]
fn reports_without_a_device_or_a_pool_are_refused_when_read() {
    let dev = SimDevice::wormhole_b0();
    let report = MemoryGuard::new(&dev).finish().unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let read = |value: &serde_json::Value| {
        serde_json::from_value::<tt_memguard::MemoryReport>(value.clone())
            .map_err(|e| e.to_string())
    };
    assert_eq!(read(&json).unwrap(), report);

    let mut no_device = json.clone();
    no_device["devices"] = serde_json::json!([]);
    assert_eq!(
        read(&no_device).unwrap_err(),
        "a memory report lists at least one device, found none"
    );
    let mut three_pools = json.clone();
    three_pools["devices"][0]["pools"]
        .as_array_mut()
        .unwrap()
        .remove(2);
    assert_eq!(
        read(&three_pools).unwrap_err(),
        "a device report lists the pools DRAM, L1, L1_SMALL, TRACE in this order, found [DRAM, L1, TRACE]"
    );

    // A report emptied by hand: the accessors' panics name the problem.
    let mut emptied = report.clone();
    emptied.devices[0].pools.remove(0);
    let payload = std::panic::catch_unwind(|| emptied.device().pool(BufferType::Dram).after_total)
        .unwrap_err();
    assert!(
        payload
            .downcast_ref::<String>()
            .unwrap()
            .starts_with("the report of device sim:wormhole_b0 has no DRAM pool"),
    );
    // The other pools are still found by type, not by position.
    assert_eq!(
        emptied.device().pool(BufferType::L1).buffer_type,
        BufferType::L1
    );
    emptied.devices.clear();
    let payload = std::panic::catch_unwind(|| emptied.device().passed).unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(
            &"this memory report has no device: its devices were removed after the report was made"
        )
    );
}

/// Set in the child processes that run the `child_*` fixtures below.
const CHILD: &str = "TT_MEMGUARD_GUARD_TEST_CHILD";

/// Runs one `#[ignore]`d fixture of this test binary in a child process, as
/// libtest runs a failing test, and returns what it printed.
fn run_child(test: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("RUST_TEST_NOCAPTURE")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{test} was expected to fail:\n{text}"
    );
    assert!(text.contains(&format!("---- {test} stdout ----")), "{text}");
    text
}

#[test]
#[ignore = "a fixture: question_mark_after_a_leak_keeps_the_error_and_prints_the_report runs it"]
fn child_question_mark_after_a_leak() -> Result<()> {
    if std::env::var_os(CHILD).is_none() {
        return Ok(());
    }
    let dev = SimDevice::wormhole_b0();
    assert_no_leak!(dev, {
        std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048)?);
        dev.allocate(BufferType::Dram, 0, 2048)?;
    });
    Ok(())
}

#[test]
fn question_mark_after_a_leak_keeps_the_error_and_prints_the_report() {
    // In process: the error comes back; nothing panics.
    fn leaks_then_fails(dev: &Device) -> Result<u64> {
        let v = assert_no_leak!(dev, {
            std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048)?);
            dev.allocate(BufferType::Dram, 0, 2048)?.size()
        });
        Ok(v)
    }
    let dev = SimDevice::wormhole_b0();
    let r = std::panic::catch_unwind(|| leaks_then_fails(&dev)).expect("no panic");
    assert!(matches!(r, Err(Error::ZeroSize { .. })), "{r:?}");

    // The other macros, and an error type of the caller's own.
    fn budget(dev: &Device) -> std::result::Result<(), Box<dyn std::error::Error>> {
        assert_memory_budget!(dev, l1 <= "1 KiB", {
            let _big = dev.allocate(BufferType::L1, 64 * 64 * KIB, 2048)?;
            "not a number".parse::<u32>()?;
        });
        Ok(())
    }
    let dev = SimDevice::wormhole_b0();
    let r = std::panic::catch_unwind(|| budget(&dev).map_err(|e| e.to_string())).expect("no panic");
    assert_eq!(
        r.unwrap_err(),
        "not a number".parse::<u32>().unwrap_err().to_string()
    );
    fn try_form(dev: &Device) -> Result<Result<()>> {
        Ok(try_assert_no_leak!(dev, {
            std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048)?);
            dev.allocate(BufferType::L1Small, 2048, 2048)?;
        }))
    }
    let dev = SimDevice::wormhole_b0();
    let r = std::panic::catch_unwind(|| try_form(&dev)).expect("no panic");
    assert!(matches!(r, Err(Error::L1SmallInterleaved)), "{r:?}");

    // A block that completes still panics on its leak.
    let dev = SimDevice::wormhole_b0();
    assert!(
        std::panic::catch_unwind(|| {
            assert_no_leak!(dev, {
                std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048))
            })
        })
        .is_err()
    );

    // As a #[test]: the test fails with the error, and prints the report.
    let out = run_child("child_question_mark_after_a_leak");
    let error = Error::ZeroSize {
        buffer_type: BufferType::Dram,
    };
    let notice = out
        .find("assert_no_leak! at tests/guard.rs:")
        .unwrap_or_else(|| panic!("no early-exit notice in:\n{out}"));
    let leak = out
        .find("leaked 1 buffer (1.0 MiB DRAM, 88,064 B per bank x 12 banks) at 0x100040")
        .unwrap_or_else(|| panic!("no leak report in:\n{out}"));
    let failure = out
        .find(&format!("Error: {error}"))
        .unwrap_or_else(|| panic!("no error in:\n{out}"));
    assert!(notice < leak && leak < failure, "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
#[ignore = "a fixture: a_failed_check_returned_by_a_test_prints_the_report runs it"]
fn child_returns_a_failed_check() -> Result<()> {
    if std::env::var_os(CHILD).is_none() {
        return Ok(());
    }
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).name("returned");
    std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048)?);
    guard.finish()?;
    Ok(())
}

#[test]
fn a_failed_check_returned_by_a_test_prints_the_report() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).name("returned");
    std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048).unwrap());
    let e = guard.finish().unwrap_err();
    let debug = format!("{e:?}");
    assert_eq!(debug, e.to_string().trim_end());
    assert!(
        debug.lines().count() > 4 && !debug.contains("MemoryCheckFailed"),
        "{debug}"
    );

    // An error with a cause shows it once.
    let io = std::io::Error::other("disk on fire");
    let e = Error::Io {
        path: "memory.json".into(),
        source: io,
    };
    assert_eq!(format!("{e:?}").matches("disk on fire").count(), 1, "{e:?}");

    // What libtest prints for a #[test] that returns it.
    let out = run_child("child_returns_a_failed_check");
    let expected = "Error: memory check returned at tests/guard.rs:";
    let at = out
        .find(expected)
        .unwrap_or_else(|| panic!("no readable report in:\n{out}"));
    let printed = &out[at..];
    for line in [
        ": FAILED\n  device sim:wormhole_b0\n    POOL ",
        "\n    DRAM              0 B     1.0 MiB     1.0 MiB     +1.0 MiB  retained 1.0 MiB, allowed 0 B [default] FAIL\n",
        "\n  leaked 1 buffer (1.0 MiB DRAM, 88,064 B per bank x 12 banks) at 0x100040,\n      allocated at tests/guard.rs:",
    ] {
        assert!(printed.contains(line), "{line:?} not in:\n{out}");
    }
    assert!(!out.contains("MemoryCheckFailed"), "{out}");
}

#[test]
fn tolerance_adds_slack() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).budget(Budget::new().tolerance(12 * 2048));
    std::mem::forget(dev.allocate(BufferType::Dram, 12 * 2048, 2048).unwrap());
    assert!(guard.finish().unwrap().passed);
}

#[test]
fn bad_budget_text_is_an_error_naming_it() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("12 XB"));
    let e = guard.finish().unwrap_err();
    assert!(matches!(e, Error::InvalidBudget(_)));
    assert!(
        e.to_string()
            .starts_with("invalid L1 peak budget: invalid size \"12 XB\": unknown unit \"XB\""),
        "{e}"
    );
}

#[test]
fn report_serializes_deterministically() {
    let run = || {
        let dev = SimDevice::wormhole_b0();
        let guard = MemoryGuard::new(&dev)
            .name("json")
            .budget(Budget::new().l1_peak("1 MiB"));
        std::mem::forget(
            dev.buffer(BufferType::L1, 64 * 4 * KIB)
                .page_size(4096)
                .label("w")
                .allocate()
                .unwrap(),
        );
        serde_json::to_string_pretty(&guard.into_report().unwrap()).unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    insta::assert_snapshot!("report_json", redact_locations(&a));
}

// Several #[test]s sharing one device must not run at the same time, or one
// test's allocations would show up in another's guard: serial_test orders them.
fn shared_device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(SimDevice::wormhole_b0)
}

#[test]
#[serial(shared_device)]
fn shared_device_first() {
    let dev = shared_device();
    assert_no_leak!(dev, {
        let _a = dev.allocate(BufferType::Dram, 4 * MIB, 2048).unwrap();
    });
}

#[test]
#[serial(shared_device)]
fn shared_device_second() {
    let dev = shared_device();
    assert_memory_budget!(dev, dram <= "5 MiB", {
        let _a = dev.allocate(BufferType::Dram, 4 * MIB, 2048).unwrap();
    });
}

#[test]
fn budget_size_errors_name_the_text_and_what_is_accepted() {
    use tt_memguard::ByteSize;
    let accepted = "a plain number of bytes, or a number with B, kB, MB, GB, TB, PB (powers of 1000) or KiB, MiB, GiB, TiB, PiB (powers of 1024), e.g. \"512 KiB\", \"1.5 MiB\", \"2GB\", \"4096\"";
    let cases = [
        (
            "12 XB",
            format!("invalid size \"12 XB\": unknown unit \"XB\"; expected {accepted}"),
        ),
        (
            "-1 MiB",
            "invalid size \"-1 MiB\": sizes cannot be negative".to_string(),
        ),
        (
            "",
            format!("invalid size \"\": the size is empty; expected {accepted}"),
        ),
        (
            "1.5.5 MiB",
            format!("invalid size \"1.5.5 MiB\": \"1.5.5\" is not a number; expected {accepted}"),
        ),
        (
            "99999999 PiB",
            "invalid size \"99999999 PiB\": the size does not fit in 64 bits (at most 16 EiB)"
                .to_string(),
        ),
        (
            "0.5 B",
            "invalid size \"0.5 B\": the size is not a whole number of bytes".to_string(),
        ),
    ];
    for (text, message) in cases {
        let e = ByteSize::parse(text).unwrap_err();
        assert_eq!(e.input(), text);
        assert_eq!(e.to_string(), message, "{text:?}");
        let e = Error::from(e);
        assert!(matches!(e, Error::InvalidSize(_)));
        assert_eq!(e.to_string(), message, "{text:?}");
    }
    for (text, bytes) in [
        ("512 KiB", 524_288),
        ("1.5 MiB", 1_572_864),
        ("2GB", 2_000_000_000),
        ("2 gb", 2_000_000_000),
        ("4096", 4096),
        ("1_000 B", 1000),
        ("16 EiB", 0),
    ] {
        if bytes == 0 {
            assert!(ByteSize::parse(text).is_err());
        } else {
            assert_eq!(ByteSize::parse(text).unwrap().bytes(), bytes, "{text}");
        }
    }
}

#[test]
fn a_total_and_a_per_bank_limit_of_one_pool_are_both_checked() {
    let dev = SimDevice::wormhole_b0();
    let guard =
        MemoryGuard::new(&dev).budget(Budget::new().l1_peak("1 MiB").l1_peak_per_bank("8 KiB"));
    // 12 KiB in each of the 64 cores: 768 KiB in total.
    drop(
        dev.allocate_sharded(BufferType::L1, 64 * 12 * KIB, 4 * KIB, 64)
            .unwrap(),
    );
    let report = failed_report(guard.finish().unwrap_err());
    let checks: Vec<_> = report
        .device()
        .pool(BufferType::L1)
        .checks
        .iter()
        .map(|v| (v.per_bank, v.actual, v.limit, v.passed))
        .collect();
    assert_eq!(
        checks,
        [
            (false, 768 * KIB, MIB, true),
            (true, 12 * KIB, 8 * KIB, false)
        ]
    );
}

#[test]
fn forgotten_guards_keep_allocations_working_and_peaks_right() {
    let dev = SimDevice::wormhole_b0();
    let outer = MemoryGuard::new(&dev).name("outer");
    // 50,000 guards that never end: each keeps its peak mark active for
    // good. Between them, DRAM buffers of 1 to 5 MiB come and go.
    for i in 0..50_000u64 {
        std::mem::forget(MemoryGuard::new(&dev));
        if i % 10_000 == 9_999 {
            drop(
                dev.allocate(BufferType::Dram, (i / 10_000 + 1) * MIB, 2048)
                    .unwrap(),
            );
        }
    }
    let inner = MemoryGuard::new(&dev).name("inner");
    drop(dev.allocate(BufferType::L1, 256 * KIB, 2048).unwrap()); // 4,096 B per bank
    let kept = dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap(); // 2,048 B per bank
    let inner = inner.into_report().unwrap();
    let l1 = inner.device().pool(BufferType::L1);
    assert_eq!((l1.peak_per_bank, l1.after_per_bank), (4096, 2048));
    assert_eq!(inner.device().pool(BufferType::Dram).peak_per_bank, 0);
    drop(kept);
    // The outer guard saw everything, through all the forgotten marks: the
    // 5 MiB buffer (214 pages of 2 KiB per bank) and the L1 peak.
    let outer = outer.into_report().unwrap();
    let peak = |t: BufferType| outer.device().pool(t).peak_per_bank;
    assert_eq!(
        (peak(BufferType::Dram), peak(BufferType::L1)),
        (214 * 2048, 4096)
    );
    assert!(outer.passed, "{outer}");
}

#[test]
fn the_summary_line_puts_a_per_bank_peak_against_its_per_bank_limit() {
    let dev = SimDevice::wormhole_b0();
    let guard = MemoryGuard::new(&dev).budget(
        Budget::new()
            .l1_peak_per_bank("700 KiB")
            .dram_peak("64 MiB"),
    );
    drop(dev.allocate(BufferType::L1, 64 * 160 * KIB, 2048).unwrap());
    drop(dev.allocate(BufferType::Dram, 12 * MIB, 2048).unwrap());
    let line = guard.finish().unwrap().summary_line();
    assert_eq!(
        line,
        "L1 peak 160.0 KiB/700.0 KiB per bank  DRAM peak 12.0 MiB/64.0 MiB  leaked 0 B"
    );
}

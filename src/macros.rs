//! The assertion macros. They only capture the caller's location and block,
//! and forward to functions in `check`. Their guards are marked as owned by
//! the macro, so that a block left early by `?` keeps its error (see
//! `assert_no_leak!`, "Leaving the block early").

/// Fails (panics with the report) when the block leaves device memory
/// allocated: any pool whose allocated bytes at the end exceed those at the
/// start. Evaluates to the block's value; `?` inside the block returns from
/// the enclosing function as usual.
///
/// `assert_no_leak!(dev, warmup = 2, { ... })` runs the block twice
/// unguarded first, so that caches filled on first use are not leaks.
///
/// # Panics
///
/// When the block leaves memory allocated (the message is the report), and
/// when the guard cannot start or check: a closed device, a source without
/// devices ([`Error::NoDevice`](crate::Error::NoDevice)) or with one device
/// twice. [`try_assert_no_leak!`](crate::try_assert_no_leak) returns all of
/// these as errors.
///
/// # Leaving the block early
///
/// `?` in the block returns from the enclosing function, as everywhere. A
/// macro can neither catch that nor change the error it returns: it would
/// have to run the block in a closure, which would change what `return` and
/// `?` mean inside it and fix the error's type. What the guard does see is
/// that the block did not complete. It still checks, and when the check
/// fails it does not panic, which would replace the error with the report:
/// it prints the report to standard error, under a line naming the macro
/// and where it was called, and the error goes on to the caller unchanged,
/// whatever its type (`tt_memguard::Error`, `anyhow::Error`,
/// `Box<dyn Error>`, ...). A test that returns the error fails with it, and
/// its captured output holds the report.
///
/// The same holds for a `return` or `break` out of the block: a leak there
/// is printed, not panicked on. To fail on it, return after the macro, or
/// end a [`MemoryGuard`](crate::MemoryGuard) with `finish()`.
///
/// # Examples
///
/// ```
/// use tt_memguard::{assert_no_leak, BufferType, SimDevice, MIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let addr = assert_no_leak!(dev, {
///     let b = dev.allocate(BufferType::Dram, MIB, 2048)?;
///     b.address()
/// });
/// assert_eq!(addr, 0x100040);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[macro_export]
macro_rules! assert_no_leak {
    ($source:expr, warmup = $runs:expr, $body:block) => {{
        for _ in 0..$runs {
            let _ = $body;
        }
        $crate::assert_no_leak!($source, $body)
    }};
    ($source:expr, $body:block) => {{
        let __memguard = $crate::__private::macro_guard(
            &$source,
            $crate::GuardOptions::new(),
            "assert_no_leak!",
        );
        let __memguard_value = $body;
        $crate::__private::macro_assert(__memguard);
        __memguard_value
    }};
}

/// The `Result` form of [`assert_no_leak!`](crate::assert_no_leak):
/// `Ok(value)`, or `Err(Error::MemoryCheckFailed)` carrying the report, or
/// the error that kept the guard from starting (then the block does not
/// run) or from checking. A block that leaves early by `?` behaves as in
/// [`assert_no_leak!`](crate::assert_no_leak#leaving-the-block-early).
///
/// # Examples
///
/// ```
/// use tt_memguard::{try_assert_no_leak, BufferType, SimDevice, MIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let result = try_assert_no_leak!(dev, {
///     std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048)?);
/// });
/// let report = result.as_ref().unwrap_err().memory_report().unwrap();
/// assert_eq!(report.device().leaked.len(), 1);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[macro_export]
macro_rules! try_assert_no_leak {
    ($source:expr, warmup = $runs:expr, $body:block) => {{
        for _ in 0..$runs {
            let _ = $body;
        }
        $crate::try_assert_no_leak!($source, $body)
    }};
    ($source:expr, $body:block) => {{
        match $crate::__private::macro_try_guard(
            &$source,
            $crate::GuardOptions::new(),
            "try_assert_no_leak!",
        ) {
            ::core::result::Result::Ok(__memguard) => {
                let __memguard_value = $body;
                $crate::__private::macro_try(__memguard, __memguard_value)
            }
            ::core::result::Result::Err(__memguard_error) => {
                ::core::result::Result::Err(__memguard_error)
            }
        }
    }};
}

/// Fails when the block's peak above its baseline exceeds a limit, or when
/// it leaks. Limits are device totals per pool (`dram`, `l1`, `l1_small`,
/// `trace`) or per bank (`dram_per_bank`, `l1_per_bank`, ...), or per core
/// over the programs the block enqueues (`cb_per_core <= ..` for the
/// circular-buffer region, `l1_per_core <= ..` for that plus the L1 buffers,
/// `cb_headroom >= ..` for the least room left between them), as byte counts
/// or text such as `"512 KiB"`.
///
/// # Panics
///
/// When a check fails (the message is the report), when the guard cannot
/// start (as [`assert_no_leak!`](crate::assert_no_leak)), or when a
/// limit's text is not a size.
/// [`try_assert_memory_budget!`](crate::try_assert_memory_budget) returns
/// all of these as errors. A block that leaves early by `?` behaves as in
/// [`assert_no_leak!`](crate::assert_no_leak#leaving-the-block-early).
///
/// # Examples
///
/// ```
/// use tt_memguard::{assert_memory_budget, BufferType, SimDevice, KIB};
///
/// let dev = SimDevice::wormhole_b0();
/// assert_memory_budget!(dev, l1 <= "512 KiB", dram <= "64 MiB", {
///     let a = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
/// });
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[macro_export]
macro_rules! assert_memory_budget {
    ($source:expr, $($pool:ident $op:tt $limit:expr),+ , $body:block) => {{
        let __memguard = $crate::__private::macro_guard(
            &$source,
            $crate::__memguard_budget_options!($($pool $op $limit),+),
            "assert_memory_budget!",
        );
        let __memguard_value = $body;
        $crate::__private::macro_assert(__memguard);
        __memguard_value
    }};
}

/// The `Result` form of [`assert_memory_budget!`](crate::assert_memory_budget):
/// `Ok(value)`, or the failure, as
/// [`try_assert_no_leak!`](crate::try_assert_no_leak).
#[macro_export]
macro_rules! try_assert_memory_budget {
    ($source:expr, $($pool:ident $op:tt $limit:expr),+ , $body:block) => {{
        match $crate::__private::macro_try_guard(
            &$source,
            $crate::__memguard_budget_options!($($pool $op $limit),+),
            "try_assert_memory_budget!",
        ) {
            ::core::result::Result::Ok(__memguard) => {
                let __memguard_value = $body;
                $crate::__private::macro_try(__memguard, __memguard_value)
            }
            ::core::result::Result::Err(__memguard_error) => {
                ::core::result::Result::Err(__memguard_error)
            }
        }
    }};
}

/// The guard options of a budget macro, from its `pool <= limit` list.
#[doc(hidden)]
#[macro_export]
macro_rules! __memguard_budget_options {
    ($($pool:ident $op:tt $limit:expr),+) => {{
        let __memguard_budget = $crate::Budget::new();
        $(let __memguard_budget = $crate::__memguard_limit!(__memguard_budget, $pool $op, $limit);)+
        $crate::GuardOptions::new().budget(__memguard_budget)
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __memguard_limit {
    ($b:expr, dram <=, $l:expr) => {
        $b.peak($crate::BufferType::Dram, $l)
    };
    ($b:expr, l1 <=, $l:expr) => {
        $b.peak($crate::BufferType::L1, $l)
    };
    ($b:expr, l1_small <=, $l:expr) => {
        $b.peak($crate::BufferType::L1Small, $l)
    };
    ($b:expr, trace <=, $l:expr) => {
        $b.peak($crate::BufferType::Trace, $l)
    };
    ($b:expr, dram_per_bank <=, $l:expr) => {
        $b.peak_per_bank($crate::BufferType::Dram, $l)
    };
    ($b:expr, l1_per_bank <=, $l:expr) => {
        $b.peak_per_bank($crate::BufferType::L1, $l)
    };
    ($b:expr, l1_small_per_bank <=, $l:expr) => {
        $b.peak_per_bank($crate::BufferType::L1Small, $l)
    };
    ($b:expr, trace_per_bank <=, $l:expr) => {
        $b.peak_per_bank($crate::BufferType::Trace, $l)
    };
    ($b:expr, cb_per_core <=, $l:expr) => {
        $b.cb_peak_per_core($l)
    };
    ($b:expr, l1_per_core <=, $l:expr) => {
        $b.l1_peak_per_core($l)
    };
    ($b:expr, cb_headroom >=, $l:expr) => {
        $b.min_cb_headroom($l)
    };
}

/// Generates the `main` of a `[[test]] harness = false` target: every listed
/// function `fn(&Device) -> TestResult` (or `-> ()`) becomes a memory-checked
/// test on a fresh simulated Wormhole B0.
///
/// A test is named by its path as written, as libtest names a `#[test]` by
/// its module path: `main!(kernels::matmul)` runs the test
/// `kernels::matmul` (a leading `crate::` or `self::` is left out), which
/// filters, `--exact`, `memguard.toml` sections and reports use.
///
/// A test target without `harness = false` is built with libtest's own
/// harness, which never calls this `main`: its tests would silently not
/// run. `main!` makes that build fail, naming the fix.
///
/// ```no_run
/// use tt_memguard::prelude::*;
///
/// fn fits_in_l1(dev: &Device) -> TestResult {
///     let _a = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
///     Ok(())
/// }
///
/// mod kernels {
///     use tt_memguard::prelude::*;
///
///     pub fn matmul(dev: &Device) -> TestResult {
///         let _a = dev.allocate(BufferType::Dram, MIB, 2048)?;
///         Ok(())
///     }
/// }
///
/// tt_memguard::main!(fits_in_l1, kernels::matmul);
/// ```
///
/// The full form takes a configured [`Harness`](crate::runner::Harness):
///
/// ```no_run
/// # use tt_memguard::prelude::*;
/// # use tt_memguard::runner::{DeviceProvider, Harness};
/// # fn a(_: &Device) -> TestResult { Ok(()) }
/// # fn b(_: &Device) -> TestResult { Ok(()) }
/// tt_memguard::main! {
///     harness = Harness::new()
///         .device(DeviceProvider::sim(Preset::BlackholeP150))
///         .budget(Budget::new().l1_peak("1 MiB"));
///     tests = a, b
/// }
/// ```
///
/// Trace tests ([`Harness::traces`](crate::runner::Harness::traces)): one
/// memory-checked test per trace file (`*.trace`, ttnn captures `*.json`) of
/// a directory, named `traces::<file stem>` for `tests/traces`. With the
/// full form, tests and traces mix:
///
/// ```no_run
/// tt_memguard::main!(traces = "tests/traces");
/// ```
///
/// ```no_run
/// # use tt_memguard::prelude::*;
/// # use tt_memguard::runner::Harness;
/// # fn a(_: &Device) -> TestResult { Ok(()) }
/// tt_memguard::main! {
///     harness = Harness::new().config_file("tests/traces.toml");
///     traces = "tests/traces";
///     tests = a
/// }
/// ```
///
/// ```no_run
/// # use tt_memguard::prelude::*;
/// # fn a(_: &Device) -> TestResult { Ok(()) }
/// # mod kernels { use tt_memguard::prelude::*; pub fn b(_: &Device) {} }
/// tt_memguard::main!(traces = "tests/traces"; tests = a, kernels::b);
/// ```
#[macro_export]
macro_rules! main {
    (harness = $harness:expr; traces = $dir:expr; tests = $($test:path),+ $(,)?) => {
        $crate::main! { @main ($harness).traces($dir); $($test),+ }
    };
    (harness = $harness:expr; traces = $dir:expr $(;)?) => {
        $crate::main! { @main ($harness).traces($dir); }
    };
    (harness = $harness:expr; tests = $($test:path),+ $(,)?) => {
        $crate::main! { @main $harness; $($test),+ }
    };
    (traces = $dir:expr; tests = $($test:path),+ $(,)?) => {
        $crate::main! { @main $crate::runner::Harness::new().traces($dir); $($test),+ }
    };
    (traces = $dir:expr $(;)?) => {
        $crate::main! { @main $crate::runner::Harness::new().traces($dir); }
    };
    (@main $harness:expr; $($test:path),*) => {
        // Built with libtest's harness (`harness = false` forgotten), this
        // `main` is never called; libtest runs this test instead, which
        // fails naming the fix in a test target (cargo sets
        // CARGO_TARGET_TMPDIR for test targets and benches only). A
        // `harness = false` build compiles no `#[test]` function.
        #[test]
        fn memguard_runner_needs_harness_false() {
            $crate::__private::harness_false_missing(::core::option_env!("CARGO_TARGET_TMPDIR"));
        }
        fn main() -> ::std::process::ExitCode {
            let harness: $crate::runner::Harness = $harness;
            harness
                .manifest_dir(env!("CARGO_MANIFEST_DIR"))
                .__snapshot_assertion(|name, text| {
                    $crate::__private::insta::assert_snapshot!(name, text)
                })
                $(.__test_at_path(stringify!($test), $test))*
                .run()
        }
    };
    ($($test:path),+ $(,)?) => {
        $crate::main! { harness = $crate::runner::Harness::new(); tests = $($test),+ }
    };
}

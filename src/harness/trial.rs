//! One test, in two steps: [`run`] runs it on its device inside its guard
//! and says what happened ([`Outcome`]); [`record`] turns that into the
//! test's verdict, its row of the memory table, its JSON record, its
//! snapshot assertion and its end in the live stream. With
//! `TT_MEMGUARD_RECORD=DIR`, [`run`] also records the test's device
//! activity as `DIR/<test>.trace`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use super::exec::Finished;
use super::output::{self, Row, TestRecord, TestStatus};
use super::provider::Lease;
use super::{Context, Test};
use crate::guard::{GuardOptions, LeanOutcome, MemoryGuard};
use crate::live::Watch;
use crate::report::MemoryReport;

/// What running a test gave.
pub(crate) struct Outcome<'a> {
    /// The device it ran on, held until the test is recorded (`None` when
    /// none could be opened).
    lease: Option<Lease<'a>>,
    watch: Option<Watch>,
    /// Why it failed before its memory was checked: the body's error or
    /// panic, its warm-up's, or no device or guard.
    error: Option<String>,
    memory: Memory,
}

/// What the guard made of the test's memory.
enum Memory {
    /// Every check passed and nobody asked for the report: the table row.
    Clean(Row),
    /// The full report.
    Report(MemoryReport),
    /// The checks could not be made: why.
    Error(String),
    /// The test never ran on a device.
    None,
}

impl<'a> Outcome<'a> {
    fn not_run(error: String, lease: Option<Lease<'a>>) -> Outcome<'a> {
        Outcome {
            lease,
            watch: None,
            error: Some(error),
            memory: Memory::None,
        }
    }
}

/// Runs `test`: device, guard, warm-up, body (panics caught), checks.
pub(crate) fn run<'a>(context: &'a Context, test: &Test) -> Outcome<'a> {
    let lease = match context.provider.acquire() {
        Ok(lease) => lease,
        Err(e) => return Outcome::not_run(format!("cannot open the test's device: {e}"), None),
    };
    let device = &lease.device;
    // Recorded from before the warm-up: its buffers are the state the
    // guarded run starts from.
    let recording = match context.record_dir.as_deref().map(|_| device.record()) {
        Some(Err(e)) => {
            return Outcome::not_run(format!("cannot record the test's device: {e}"), Some(lease));
        }
        Some(Ok(recording)) => Some(recording),
        None => None,
    };
    let watch = context.live.as_ref().map(|live| {
        live.test_start(device, &test.name);
        live.watch(device, Some(&test.name))
    });
    // The guard is not named: a clean test's name is never read, and a
    // report is named below, when one is made.
    let mut options = GuardOptions::new();
    if let Some(budget) = context.budget_of(test) {
        options = options.budget(budget);
    }
    for allow in &test.allow {
        options = options.allow(allow.clone());
    }
    if context.explain {
        options = options.explain(true);
    }
    // The body's failure message, and whether it was a panic.
    let run_body = || match catch_unwind(AssertUnwindSafe(|| (test.body)(device))) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some((e, false)),
        Err(payload) => Some((super::panic_message(payload.as_ref()), true)),
    };
    let mut error = None;
    for _ in 0..test.warmup {
        if let Some((e, _)) = run_body() {
            error = Some(format!("warm-up run failed: {e}"));
            break;
        }
    }
    let mut guard = match MemoryGuard::start(std::iter::once(device.clone()), options, None) {
        Ok(guard) => guard,
        Err(e) => {
            let mut outcome =
                Outcome::not_run(format!("cannot start the memory guard: {e}"), Some(lease));
            outcome.watch = watch;
            return outcome;
        }
    };
    if error.is_none()
        && let Some((e, panicked)) = run_body()
    {
        error = Some(e);
        if panicked {
            guard.mark_panicked();
        }
    }
    // The trace ends with the body, failed or not.
    if let (Some(recording), Some(dir)) = (recording, &context.record_dir) {
        let path = dir.join(trace_file_name(&test.name));
        if let Err(e) = recording.write(&path) {
            let e = format!("cannot record the test's device activity: {e}");
            error = Some(match error {
                Some(body) => format!("{body}\n{e}"),
                None => e,
            });
        }
    }
    // The lean path: a clean test whose report nobody asked for is kept as
    // a table row only, without building its report.
    let named = |mut report: MemoryReport| {
        report.name = Some(test.name.to_string());
        Memory::Report(report)
    };
    let memory = if error.is_none() && !context.wants_reports() {
        match guard.finish_lean(|pools| Row::from_pools(false, pools)) {
            Ok(LeanOutcome::Clean(row)) => Memory::Clean(row),
            Ok(LeanOutcome::Report(report)) => named(report),
            Err(e) => Memory::Error(e.to_string()),
        }
    } else {
        match guard.into_report() {
            Ok(report) => named(report),
            Err(e) => Memory::Error(e.to_string()),
        }
    };
    Outcome {
        lease: Some(lease),
        watch,
        error,
        memory,
    }
}

/// The directory `TT_MEMGUARD_RECORD` names, created if needed.
pub(crate) fn record_dir_from_env() -> crate::Result<Option<PathBuf>> {
    let Some(dir) = std::env::var_os("TT_MEMGUARD_RECORD").filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).map_err(|source| crate::Error::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(Some(dir))
}

/// `<test>.trace`, with every character of the name other than a letter,
/// a digit, `-` or `.` written as `_` (`kernels::matmul` becomes
/// `kernels__matmul.trace`).
pub(crate) fn trace_file_name(test: &str) -> PathBuf {
    let name: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!("{name}.trace"))
}

/// Records the outcome of test `index`, run by `worker`: its row, its
/// record in the JSON report, its snapshot and its end in the live stream.
/// Returns its failure message when it failed (the body's error or panic,
/// with the memory report when a check failed, else its summary line),
/// and the summary of its memory for its result line when asked for.
pub(crate) fn record(
    context: &Context,
    index: usize,
    worker: usize,
    summary: bool,
    outcome: Outcome<'_>,
) -> Finished {
    let test = &context.tests[index];
    let Outcome {
        lease,
        watch,
        error,
        memory,
    } = outcome;
    let (memory, memory_error) = match memory {
        Memory::Clean(row) => {
            // Only a test without error takes the lean path.
            drop(watch);
            if let Some(lease) = lease {
                lease.release();
            }
            return Finished {
                result: Ok(()),
                summary: context.keep(index, worker, row, summary),
            };
        }
        Memory::Report(report) => (Some(report), None),
        Memory::Error(e) => (None, Some(e)),
        Memory::None => (None, None),
    };
    let mut message = String::new();
    if let Some(e) = &error {
        message.push_str(e);
        message.push('\n');
    }
    if let Some(e) = &memory_error {
        message.push_str(&format!("memory check error: {e}\n"));
    }
    if let Some(report) = &memory {
        if report.devices.iter().any(|d| !d.passed) {
            message.push_str(&report.to_string());
        } else if error.is_some() {
            message.push_str(&format!("memory: {}\n", report.summary_line()));
        }
        if context.snapshots && error.is_none() {
            let outcome = output::assert_snapshot(
                context.snapshot_assertion,
                &context.snapshot_dir,
                context
                    .source_file
                    .as_ref()
                    .map(|(path, shown)| (path.as_path(), shown.as_str())),
                &test.name,
                report,
            );
            if let Some(failure) = outcome.failure() {
                message.push_str(&failure);
                message.push('\n');
            }
            context
                .snapshot_outcomes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(outcome);
        }
    }
    let status = if message.is_empty() {
        TestStatus::Passed
    } else {
        TestStatus::Failed
    };
    drop(watch);
    if let (Some(live), Some(lease)) = (&context.live, &lease) {
        live.test_end(
            &lease.device,
            &test.name,
            status == TestStatus::Passed,
            memory
                .as_ref()
                .map(|m| m.summary_line())
                .unwrap_or_default(),
        );
    }
    // The device goes back (a simulated one is reused when left clean).
    if let Some(lease) = lease {
        lease.release();
    }
    let row = Row::of(status == TestStatus::Failed, memory.as_ref());
    let summary = context.keep(index, worker, row, summary);
    if context.keep_reports {
        context
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(TestRecord {
                name: test.name.to_string(),
                binary: context.binary.clone(),
                device: context.device.clone(),
                status,
                error,
                memory,
            });
    }
    Finished {
        result: if message.is_empty() {
            Ok(())
        } else {
            Err(message.trim_end().to_string())
        },
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_files_are_named_by_the_test_in_one_word() {
        let name = |test: &str| trace_file_name(test).to_string_lossy().into_owned();
        assert_eq!(name("kernels::matmul"), "kernels__matmul.trace");
        assert_eq!(name("conv v2.1 [fast]"), "conv_v2.1__fast_.trace");
        assert_eq!(name("naïve/x"), "na_ve_x.trace");
    }
}

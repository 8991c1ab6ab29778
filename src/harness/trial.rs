//! One test, in two steps: [`run`] runs it on its device inside its guard
//! and says what happened ([`Outcome`]); [`record`] turns that into the
//! test's verdict, its row of the memory table, its JSON record, its
//! snapshot assertion and its end in the live stream. With
//! `TT_MEMGUARD_RECORD=DIR`, [`run`] also records the test's device
//! activity as `DIR/<test>.trace`. A trace test ([`super::traces`]) reads
//! its file before its device is chosen, and keeps the buffers its trace
//! never frees until it is recorded, so that its report shows them leaked.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use super::exec::Finished;
use super::output::{self, Row, TestRecord, TestStatus};
use super::provider::{DeviceProvider, Lease, acquire_sim};
use super::{Context, Run, Test, traces};
use crate::device::Buffer;
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
    /// A trace test's buffers still live at the trace's end, kept until
    /// the test is recorded.
    leftovers: Vec<(usize, Buffer)>,
    /// The device's key in reports, when the test ran on another device
    /// than the run's (a trace test on the device its header names).
    device_key: Option<String>,
    /// Said after a failed test's message (a trace test's leaks, a
    /// capture's import notes).
    note: Option<String>,
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
            leftovers: Vec::new(),
            device_key: None,
            note: None,
        }
    }
}

/// Runs `test`: device, guard, warm-up, body (panics caught), checks.
pub(crate) fn run<'a>(context: &'a Context, test: &Test) -> Outcome<'a> {
    // A trace test reads its file first: its header names its device.
    let loaded = match &test.run {
        Run::Trace(file) => {
            let options =
                traces::import_options(&context.provider, context.device_choice.is_some());
            match file.load(&options) {
                Ok(loaded) => Some((file, loaded)),
                Err(e) => return Outcome::not_run(e, None),
            }
        }
        Run::Body(_) => None,
    };
    let own = loaded
        .as_ref()
        .filter(|_| context.device_choice.is_none())
        .map(|(_, loaded)| traces::own_device(&loaded.trace));
    let lease = match own {
        Some(key) => acquire_sim(key).map_err(|e| {
            format!(
                "cannot open the device {} names ({}): {e}",
                loaded.as_ref().map_or("", |(file, _)| file.shown()),
                DeviceProvider::key_of(key)
            )
        }),
        None => context
            .provider
            .acquire()
            .map_err(|e| format!("cannot open the test's device: {e}")),
    };
    let lease = match lease {
        Ok(lease) => lease,
        Err(e) => return Outcome::not_run(e, None),
    };
    let device = &lease.device;
    let device_key = own.map(DeviceProvider::key_of);
    if let (Some((file, loaded)), Some(choice)) = (&loaded, &context.device_choice)
        && let Err(e) = traces::check_device(
            file,
            &test.name,
            &loaded.trace,
            device,
            &context.device,
            choice,
        )
    {
        return Outcome::not_run(e, Some(lease));
    }
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
    // A trace's buffers still live at its end: kept past the guard's check.
    let leftovers: RefCell<Vec<(usize, Buffer)>> = RefCell::new(Vec::new());
    let body = || match (&test.run, &loaded) {
        (Run::Body(body), _) => body(device),
        (Run::Trace(_), Some((file, loaded))) => {
            // A warm-up's leftovers go before the next replay.
            leftovers.borrow_mut().clear();
            let key = device_key.as_deref().unwrap_or(&context.device);
            let live = traces::replay(file, loaded, device, key)?;
            *leftovers.borrow_mut() = live;
            Ok(())
        }
        (Run::Trace(_), None) => unreachable!("a trace test's file is read before it runs"),
    };
    // The body's failure message, and whether it was a panic.
    let run_body = || match catch_unwind(AssertUnwindSafe(body)) {
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
    // Nothing of the warm-up stays for the checked run.
    leftovers.borrow_mut().clear();
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
    let leftovers = leftovers.into_inner();
    let mut notes = Vec::new();
    if let Some((file, loaded)) = &loaded {
        if !leftovers.is_empty() {
            notes.push(traces::leaks_text(file, &loaded.trace, &leftovers));
        }
        // A failed replay's message has the import's notes already.
        if !loaded.notes.is_empty() && error.is_none() {
            notes.push(traces::notes_text(loaded).trim_start().to_string());
        }
    }
    Outcome {
        lease: Some(lease),
        watch,
        error,
        memory,
        leftovers,
        device_key,
        note: (!notes.is_empty()).then(|| notes.join("\n")),
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
        leftovers,
        device_key,
        note,
    } = outcome;
    let (memory, memory_error) = match memory {
        Memory::Clean(row) => {
            // Only a test without error takes the lean path.
            drop(watch);
            drop(leftovers);
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
    if let Some(note) = note.filter(|_| !message.is_empty()) {
        message.push_str(&note);
        message.push('\n');
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
    // A trace's leftovers are freed once checked and reported, and the
    // device goes back (a simulated one is reused when left clean).
    drop(leftovers);
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
                device: device_key.unwrap_or_else(|| context.device.clone()),
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

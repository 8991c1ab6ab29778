//! A test that ends the process in the middle of a run
//! (`std::process::exit(0)`, or a library that calls `exit`).
//!
//! libtest cannot see it: the process ends with the code the test chose, a
//! run of 100 tests can end green after 3, and no report is written. The
//! runner does not try to intercept the call; it makes the early end loud:
//!
//! - Every report (`--memory-report`, `--memory-report-dir`) is written
//!   before the first test, unfinished and naming the tests to run, and
//!   replaced by the finished report at the end. Reading or merging an
//!   unfinished report fails naming its tests that never reported
//!   ([`Error::UnfinishedReport`](crate::Error::UnfinishedReport)). This also
//!   catches a process that was killed, on every platform.
//! - On Unix, a C `atexit` handler runs when the process exits. While a run
//!   is in progress it prints which tests never reported, rewrites the
//!   unfinished reports with them, and ends the process with exit code 101
//!   (a test failure) instead of the code the test chose. A run that reaches
//!   its end disarms it first.

// Without `atexit`, only the unfinished reports are left of this module.
#![cfg_attr(not(unix), allow(dead_code))]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::Context;
use super::output::RunReport;

/// The run in progress, for the exit handler.
pub(crate) struct ActiveRun {
    /// The run's tests, its plan and what has been recorded.
    pub context: Arc<Context>,
    /// The unfinished reports written at the start, to rewrite.
    pub placeholders: Vec<(PathBuf, RunReport)>,
}

static ACTIVE: Mutex<Option<ActiveRun>> = Mutex::new(None);

/// Disarms the handler when dropped: the run reached its end (or left
/// before running tests, with an error).
#[must_use = "the guard disarms the exit handler when dropped: bind it for the run"]
pub(crate) struct Armed(());

impl Drop for Armed {
    fn drop(&mut self) {
        ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Arms the exit handler for `run` (installing it the first time).
pub(crate) fn arm(run: ActiveRun) -> Armed {
    install();
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(run);
    Armed(())
}

/// What the process's early end leaves: the message, and the unfinished
/// reports rewritten with the tests that never reported.
fn on_early_exit() {
    let Some(run) = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let context = &run.context;
    let reported = context.reported();
    let selected = || context.plan.to_run(|i| context.tests[i].ignored);
    let pending: Vec<String> = selected()
        .filter(|&index| !reported[index])
        .map(|index| context.tests[index].name.to_string())
        .collect();
    let mut reports = Vec::new();
    for (path, mut report) in run.placeholders {
        if let Some(info) = report.run.as_mut() {
            info.pending = pending.clone();
        }
        let _ = report.write(&path);
        reports.push(path.display().to_string());
    }
    let shown: Vec<&str> = pending.iter().take(20).map(String::as_str).collect();
    let more = match pending.len().saturating_sub(shown.len()) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let mut message = format!(
        "\nerror: the process is exiting in the middle of the memguard run: a test called std::process::exit (or something else ended the process); {} of {} tests never reported: {}{more}\n",
        pending.len(),
        selected().count(),
        shown.join(", ")
    );
    if !reports.is_empty() {
        message.push_str(&format!(
            "error: the memory reports stay unfinished and fail to merge: {}\n",
            reports.join(", ")
        ));
    }
    message.push_str("error: the run fails with exit code 101\n");
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(message.as_bytes());
}

#[cfg(unix)]
mod sys {
    unsafe extern "C" {
        /// C: registers a function to run when the process exits through
        /// `exit` (which `std::process::exit` and a return from `main` call).
        pub fn atexit(callback: extern "C" fn()) -> core::ffi::c_int;
        /// POSIX: ends the process at once with `status`; allowed in an
        /// `atexit` handler, unlike `exit`.
        pub fn _exit(status: core::ffi::c_int) -> !;
    }
}

/// The `atexit` handler: fails the process when a run is in progress.
#[cfg(unix)]
extern "C" fn at_exit() {
    let armed = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).is_some();
    if !armed {
        return;
    }
    let _ = std::panic::catch_unwind(on_early_exit);
    // SAFETY: `_exit` takes no pointers and never returns; calling it from
    // an `atexit` handler is allowed (unlike `exit`).
    unsafe { sys::_exit(101) }
}

#[cfg(unix)]
fn install() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: `at_exit` is a plain `extern "C" fn()` that lives as long
        // as the program; registering it has no other precondition.
        unsafe {
            sys::atexit(at_exit);
        }
    });
}

/// Elsewhere the unfinished reports alone record an early end.
#[cfg(not(unix))]
fn install() {}

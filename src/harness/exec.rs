//! The runner's own test loop, used for libtest's pretty and terse formats:
//! the same lines, filters, ignoring rules, failure section and summary as
//! libtest-mimic, with each test's memory summary on its result line
//! (`test conv ... ok     L1 peak 256.0 KiB/512.0 KiB  DRAM peak ...`).
//! Listing, JSON output and log files go through libtest-mimic itself.

use std::io::Write;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Instant;

use libtest_mimic::{Arguments, Conclusion, FormatSetting, Trial};

use crate::render::{Level, paint};

/// One test to run.
pub(crate) struct Job<T> {
    /// Index among all the harness's tests (for the memory summary).
    pub index: usize,
    pub name: std::sync::Arc<str>,
    pub ignored: bool,
    /// What the runner function needs to run the test.
    pub payload: T,
}

enum Status {
    Passed,
    Failed(String),
    Ignored,
}

/// Whether libtest-mimic's arguments leave this job out (name filter,
/// `--skip`, `--ignored`), exactly as libtest-mimic decides it.
fn filtered_out<T>(args: &Arguments, job: &Job<T>) -> bool {
    let probe = Trial::test(job.name.to_string(), || Ok(())).with_ignored_flag(job.ignored);
    args.is_filtered_out(&probe)
}

/// Whether the job is ignored rather than run: libtest-mimic's rule for
/// plain (non-bench) tests.
fn ignored<T>(args: &Arguments, job: &Job<T>) -> bool {
    (job.ignored && !args.ignored && !args.include_ignored) || args.bench
}

/// Whether the job runs: neither filtered out nor ignored.
pub(crate) fn selected<T>(args: &Arguments, job: &Job<T>) -> bool {
    let filters = args.filter.is_some() || !args.skip.is_empty() || args.ignored;
    if ignored(args, job) {
        return false;
    }
    !filters || !filtered_out(args, job)
}

/// Runs the jobs and prints libtest's lines; `annotate` gives the memory
/// summary of a finished test by its index.
pub(crate) fn run<T: Send>(
    args: &Arguments,
    mut jobs: Vec<Job<T>>,
    runner: &(dyn Fn(usize, T) -> Result<(), String> + Sync),
    color: bool,
    annotate: &(dyn Fn(usize) -> Option<String> + Sync),
) -> Conclusion {
    let start = Instant::now();
    let mut conclusion = Conclusion {
        num_filtered_out: 0,
        num_passed: 0,
        num_failed: 0,
        num_ignored: 0,
        num_measured: 0,
    };
    if args.filter.is_some() || !args.skip.is_empty() || args.ignored {
        let before = jobs.len();
        jobs.retain(|job| !filtered_out(args, job));
        conclusion.num_filtered_out = (before - jobs.len()) as u64;
    }
    let terse = args.quiet || matches!(args.format, Some(FormatSetting::Terse));
    let width = jobs
        .iter()
        .map(|j| j.name.chars().count())
        .max()
        .unwrap_or(0);
    // Stdout is locked per write only (a test body may print too). It is
    // line-buffered: terse dots are not flushed one by one.
    let emit = |text: &str| {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    };
    let flush = || {
        let _ = std::io::stdout().lock().flush();
    };
    let plural = if jobs.len() == 1 { "" } else { "s" };
    emit(&format!("\nrunning {} test{plural}\n", jobs.len()));

    let mut failures: Vec<(std::sync::Arc<str>, String)> = Vec::new();
    let mut report = |prefix: String, index: usize, name: &str, status: Status| {
        let (word, level) = match &status {
            Status::Passed => ("ok", Level::Green),
            Status::Failed(_) => ("FAILED", Level::Red),
            Status::Ignored => ("ignored", Level::Yellow),
        };
        if terse {
            let c = match status {
                Status::Passed => ".",
                Status::Failed(_) => "F",
                Status::Ignored => "i",
            };
            emit(&paint(c, level, color));
        } else {
            let summary = match status {
                Status::Ignored => None,
                _ => annotate(index),
            };
            let line = match summary {
                Some(summary) => format!(
                    "{prefix}{}{summary}\n",
                    paint(&format!("{word:<7}"), level, color)
                ),
                None => format!("{prefix}{}\n", paint(word, level, color)),
            };
            emit(&line);
        }
        match status {
            Status::Passed => conclusion.num_passed += 1,
            Status::Failed(message) => {
                conclusion.num_failed += 1;
                failures.push((std::sync::Arc::from(name), message));
            }
            Status::Ignored => conclusion.num_ignored += 1,
        }
    };
    let prefix = |name: &str| {
        if terse {
            String::new()
        } else {
            format!("test {name:<width$} ... ")
        }
    };
    let execute = |job: Job<T>| -> (usize, std::sync::Arc<str>, Status) {
        if ignored(args, &job) {
            return (job.index, job.name, Status::Ignored);
        }
        let status = match runner(job.index, job.payload) {
            Ok(()) => Status::Passed,
            Err(message) => Status::Failed(message),
        };
        (job.index, job.name, status)
    };

    let threads = args
        .test_threads
        .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
        .unwrap_or(1)
        .max(1);
    if threads == 1 {
        for job in jobs {
            // Sequential: announce the test before it runs, as libtest does.
            if !terse {
                emit(&prefix(&job.name));
                flush();
            }
            let (index, name, status) = execute(job);
            report(String::new(), index, &name, status);
        }
    } else {
        // Workers take the next job; results are printed as they finish,
        // a whole line at a time.
        let total = jobs.len();
        let queue = Mutex::new(jobs.into_iter());
        let (sender, receiver) = mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..threads.min(total.max(1)) {
                let sender = sender.clone();
                let queue = &queue;
                let execute = &execute;
                scope.spawn(move || {
                    loop {
                        let Some(job) = queue.lock().unwrap_or_else(|e| e.into_inner()).next()
                        else {
                            break;
                        };
                        if sender.send(execute(job)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            for (index, name, status) in receiver.iter().take(total) {
                report(prefix(&name), index, &name, status);
            }
        });
    }

    let mut tail = String::new();
    if !failures.is_empty() {
        tail.push_str("\nfailures:\n\n");
        for (name, message) in &failures {
            tail.push_str(&format!("---- {name} ----\n{message}\n\n"));
        }
        tail.push_str("\nfailures:\n");
        for (name, _) in &failures {
            tail.push_str(&format!("    {name}\n"));
        }
    }
    let verdict = if conclusion.has_failed() {
        paint("FAILED", Level::Red, color)
    } else {
        paint("ok", Level::Green, color)
    };
    tail.push_str(&format!(
        "\ntest result: {verdict}. {} passed; {} failed; {} ignored; {} measured; {} filtered out; finished in {:.2}s\n\n",
        conclusion.num_passed,
        conclusion.num_failed,
        conclusion.num_ignored,
        conclusion.num_measured,
        conclusion.num_filtered_out,
        start.elapsed().as_secs_f64()
    ));
    emit(&tail);
    flush();
    conclusion
}

//! The runner's own test loop, used for libtest's pretty and terse formats:
//! the same lines, filters, ignoring rules, failure section and summary as
//! libtest-mimic, with each test's memory summary on its result line
//! (`test conv ... ok     L1 peak 256.0 KiB/512.0 KiB  DRAM peak ...`).
//! Listing, JSON output and log files go through libtest-mimic itself.
//!
//! Which tests run is decided once ([`Plan`]); workers take the next test
//! from a counter, write its whole result line themselves (no line is
//! split, no result waits for another thread to print it) and count it.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use libtest_mimic::{Arguments, Conclusion, FormatSetting};

use crate::render::{Level, Stdout, painted};

/// The tests of a run, by index.
pub(crate) trait Suite: Sync {
    /// The test's name.
    fn name(&self, index: usize) -> &str;
    /// Whether the test is marked ignored.
    fn marked_ignored(&self, index: usize) -> bool;
    /// Runs the test on `worker` (0 to the number of workers): `Err`
    /// holds its failure message; the memory summary for its result line
    /// comes with it when `summary` is asked for.
    fn run(&self, index: usize, worker: usize, summary: bool) -> Finished;
}

/// How a test ended, for its result line.
pub(crate) struct Finished {
    pub result: Result<(), String>,
    pub summary: Option<String>,
}

/// The tests a run goes through, in declaration order, and how many the
/// filters left out: libtest-mimic's rules for plain (non-bench) tests.
/// Without a filter every test is in it, and nothing is listed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The tests that passed the filters; `None`: all `count` tests.
    selected: Option<Vec<usize>>,
    count: usize,
    pub filtered_out: u64,
    /// Marked tests are shown ignored (no `--ignored`/`--include-ignored`).
    ignore_marked: bool,
    /// Every test is shown ignored (`--bench`: there are no benchmarks).
    ignore_all: bool,
}

impl Plan {
    /// The plan for tests given as (name, marked ignored).
    pub(crate) fn new<'a>(
        args: &Arguments,
        tests: impl ExactSizeIterator<Item = (&'a str, bool)>,
    ) -> Plan {
        let count = tests.len();
        let selected =
            (args.filter.is_some() || !args.skip.is_empty() || args.ignored).then(|| {
                tests
                    .enumerate()
                    .filter(|(_, (name, ignored))| !filtered_out(args, name, *ignored))
                    .map(|(index, _)| index)
                    .collect::<Vec<_>>()
            });
        Plan {
            filtered_out: selected.as_ref().map_or(0, |s| (count - s.len()) as u64),
            selected,
            count,
            ignore_marked: !args.ignored && !args.include_ignored,
            ignore_all: args.bench,
        }
    }

    /// How many tests passed the filters.
    pub(crate) fn len(&self) -> usize {
        self.selected.as_ref().map_or(self.count, Vec::len)
    }

    /// The test at `position` among those that passed the filters.
    fn get(&self, position: usize) -> Option<usize> {
        match &self.selected {
            Some(selected) => selected.get(position).copied(),
            None => (position < self.count).then_some(position),
        }
    }

    /// The tests that passed the filters.
    pub(crate) fn tests(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter_map(|position| self.get(position))
    }

    /// Whether a test that passed the filters is shown ignored, not run.
    pub(crate) fn ignores(&self, marked_ignored: bool) -> bool {
        self.ignore_all || (marked_ignored && self.ignore_marked)
    }

    /// The tests that run (neither filtered out nor ignored), given
    /// whether each is marked ignored.
    pub(crate) fn to_run<'a>(
        &'a self,
        marked_ignored: impl Fn(usize) -> bool + 'a,
    ) -> impl Iterator<Item = usize> + 'a {
        self.tests()
            .filter(move |&index| !self.ignores(marked_ignored(index)))
    }
}

/// Whether the name filter, `--skip` or `--ignored` leave a test out,
/// as `Arguments::is_filtered_out` decides it for a test without a kind
/// (checked against it in this module's tests).
fn filtered_out(args: &Arguments, name: &str, ignored: bool) -> bool {
    if let Some(filter) = &args.filter {
        let matches = if args.exact {
            name == filter
        } else {
            name.contains(filter.as_str())
        };
        if !matches {
            return true;
        }
    }
    let skipped = |skip: &String| {
        if args.exact {
            name == skip
        } else {
            name.contains(skip.as_str())
        }
    };
    args.skip.iter().any(skipped) || (args.ignored && !ignored)
}

enum Status {
    Passed,
    Failed(String),
    Ignored,
}

/// Writes the run's lines and keeps its tally, from any thread.
struct Printer {
    terse: bool,
    color: bool,
    /// The longest name, in characters.
    width: usize,
    out: Stdout,
    passed: AtomicU64,
    failed: AtomicU64,
    ignored: AtomicU64,
    /// (test, message), in the order they finished.
    failures: Mutex<Vec<(usize, String)>>,
}

impl Printer {
    /// `test NAME ... `, as a pretty line starts.
    fn prefix(&self, name: &str) -> String {
        format!("test {name:<width$} ... ", width = self.width)
    }

    /// Writes a finished test's result, after its `test NAME ... ` unless
    /// that was `announced` before it ran, and counts it.
    fn report(
        &self,
        suite: &impl Suite,
        index: usize,
        announced: bool,
        status: Status,
        summary: Option<String>,
    ) {
        let (word, level) = match &status {
            Status::Passed => ("ok", Level::Green),
            Status::Failed(_) => ("FAILED", Level::Red),
            Status::Ignored => ("ignored", Level::Yellow),
        };
        if self.terse {
            let c = match status {
                Status::Passed => ".",
                Status::Failed(_) => "F",
                Status::Ignored => "i",
            };
            if self.color {
                self.out
                    .write(&painted(c, level, self.color).to_string(), false);
            } else {
                self.out.write(c, false);
            }
        } else {
            let mut line = if announced {
                String::new()
            } else {
                self.prefix(suite.name(index))
            };
            let _ = match summary {
                Some(summary) => writeln!(
                    line,
                    "{}{summary}",
                    painted(format_args!("{word:<7}"), level, self.color)
                ),
                None => writeln!(line, "{}", painted(word, level, self.color)),
            };
            self.out.write(&line, false);
        }
        let count = match status {
            Status::Passed => &self.passed,
            Status::Failed(message) => {
                self.failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((index, message));
                &self.failed
            }
            Status::Ignored => &self.ignored,
        };
        count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The number of workers for `args`: `--test-threads`, else one per CPU.
pub(crate) fn threads(args: &Arguments) -> usize {
    args.test_threads
        .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
        .unwrap_or(1)
        .max(1)
}

/// Runs the plan's tests on `threads` workers (see [`threads`]) and prints
/// libtest's lines.
pub(crate) fn run(
    args: &Arguments,
    plan: &Plan,
    suite: &impl Suite,
    threads: usize,
    color: bool,
) -> Conclusion {
    let start = Instant::now();
    let terse = args.quiet || matches!(args.format, Some(FormatSetting::Terse));
    let printer = Printer {
        terse,
        color,
        width: if terse {
            0
        } else {
            plan.tests()
                .map(|index| suite.name(index).chars().count())
                .max()
                .unwrap_or(0)
        },
        out: Stdout::new(color),
        passed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        ignored: AtomicU64::new(0),
        failures: Mutex::new(Vec::new()),
    };
    let plural = if plan.len() == 1 { "" } else { "s" };
    printer
        .out
        .write(&format!("\nrunning {} test{plural}\n", plan.len()), false);
    let execute = |index: usize, worker: usize| {
        if plan.ignores(suite.marked_ignored(index)) {
            return (Status::Ignored, None);
        }
        let finished = suite.run(index, worker, !terse);
        let status = match finished.result {
            Ok(()) => Status::Passed,
            Err(message) => Status::Failed(message),
        };
        (status, finished.summary)
    };

    if threads == 1 {
        for index in plan.tests() {
            // Sequential: announce the test before it runs, as libtest does.
            if !terse {
                printer.out.write(&printer.prefix(suite.name(index)), true);
            }
            let (status, summary) = execute(index, 0);
            printer.report(suite, index, true, status, summary);
        }
    } else {
        // Workers take the next test and print its line when it finishes.
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for worker in 0..threads.min(plan.len()) {
                let (next, printer, execute) = (&next, &printer, &execute);
                scope.spawn(move || {
                    while let Some(index) = plan.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let (status, summary) = execute(index, worker);
                        printer.report(suite, index, false, status, summary);
                    }
                });
            }
        });
    }

    let conclusion = Conclusion {
        num_filtered_out: plan.filtered_out,
        num_passed: printer.passed.into_inner(),
        num_failed: printer.failed.into_inner(),
        num_ignored: printer.ignored.into_inner(),
        num_measured: 0,
    };
    let failures = printer
        .failures
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let mut tail = String::new();
    if !failures.is_empty() {
        tail.push_str("\nfailures:\n\n");
        for (index, message) in &failures {
            let _ = write!(tail, "---- {} ----\n{message}\n\n", suite.name(*index));
        }
        tail.push_str("\nfailures:\n");
        for (index, _) in &failures {
            let _ = writeln!(tail, "    {}", suite.name(*index));
        }
    }
    let verdict = if conclusion.has_failed() {
        painted("FAILED", Level::Red, color)
    } else {
        painted("ok", Level::Green, color)
    };
    let _ = write!(
        tail,
        "\ntest result: {verdict}. {} passed; {} failed; {} ignored; {} measured; {} filtered out; finished in {:.2}s\n\n",
        conclusion.num_passed,
        conclusion.num_failed,
        conclusion.num_ignored,
        conclusion.num_measured,
        conclusion.num_filtered_out,
        start.elapsed().as_secs_f64()
    );
    printer.out.write(&tail, true);
    conclusion
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The plan leaves out and ignores exactly the tests libtest-mimic
    /// would, for every kind of filter.
    #[test]
    fn plans_follow_libtest_mimic() {
        let tests = [
            ("kernels::matmul", false),
            ("kernels::conv", true),
            ("matmul_large", false),
            ("conv", false),
        ];
        let cases: &[&[&str]] = &[
            &[],
            &["matmul"],
            &["--exact", "conv"],
            &["--exact", "kernels::conv"],
            &["--skip", "kernels"],
            &["--exact", "--skip", "conv"],
            &["--ignored"],
            &["--include-ignored", "conv"],
            &["--ignored", "--exact", "kernels::conv"],
            &["--bench"],
        ];
        for args in cases {
            let arguments =
                Arguments::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
                    .unwrap();
            let plan = Plan::new(&arguments, tests.into_iter());
            let entries: Vec<(usize, bool)> = plan
                .tests()
                .map(|index| (index, plan.ignores(tests[index].1)))
                .collect();
            let expected: Vec<(usize, bool)> = tests
                .iter()
                .enumerate()
                .filter_map(|(index, &(name, ignored))| {
                    let trial =
                        libtest_mimic::Trial::test(name, || Ok(())).with_ignored_flag(ignored);
                    let filters = arguments.filter.is_some()
                        || !arguments.skip.is_empty()
                        || arguments.ignored;
                    (!filters || !arguments.is_filtered_out(&trial))
                        .then(|| (index, arguments.is_ignored(&trial)))
                })
                .collect();
            assert_eq!(entries, expected, "{args:?}");
            assert_eq!(plan.len(), expected.len(), "{args:?}");
            assert_eq!(
                plan.filtered_out as usize,
                tests.len() - expected.len(),
                "{args:?}"
            );
        }
    }
}

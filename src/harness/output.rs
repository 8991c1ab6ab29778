//! What the runner writes: the per-test memory table, JSON reports (one file,
//! or a directory several processes write into and that can be merged), and
//! insta snapshots of each test's report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::render::{Level, painted};
use crate::report::{MemoryReport, PoolReport};
use crate::types::BufferType;
use crate::units::format_bytes;

/// The report format this tt-memguard writes and reads.
const REPORT_VERSION: u32 = 2;

/// How a test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    /// Body and memory checks passed.
    Passed,
    /// The body failed or panicked, or a memory check failed.
    Failed,
}

/// One test's entry in a run report.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRecord {
    /// The test's name.
    pub name: String,
    /// The test binary (test target) that ran it, e.g. `device_memory`.
    pub binary: String,
    /// The device model and carve-outs it ran on, e.g. `sim:wormhole_b0`
    /// or `sim:wormhole_b0 l1_small_size=65536`.
    pub device: String,
    /// How it ended.
    pub status: TestStatus,
    /// The body's error or panic message, if any.
    pub error: Option<String>,
    /// What the test did to device memory (absent when no device could be
    /// opened).
    pub memory: Option<MemoryReport>,
}

/// The process that wrote a report.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The test binary, without cargo's hash suffix.
    pub binary: String,
    /// The device model and carve-outs.
    pub device: String,
    /// A digest of the names of all the binary's tests: a build in which a
    /// test was added, removed or renamed has another one.
    pub build: String,
    /// A digest of the names of the tests this process ran.
    pub selection: String,
    /// When the run started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// The process id.
    pub pid: u32,
    /// Whether the process reached the end of its run. The runner writes
    /// every report when a run starts, unfinished, naming the tests to run:
    /// if a test ends the process (`std::process::exit`) or the process is
    /// killed, the report stays unfinished and reading or merging it fails.
    pub finished: bool,
    /// The tests that have not reported (all of them while the run is in
    /// progress).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
}

/// A report file that a merge left out, and why.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedReport {
    /// The file.
    pub file: PathBuf,
    /// Why it was left out.
    pub reason: String,
}

/// The memory reports of a test run, sorted by test name, binary and
/// device.
///
/// Written by the runner with `--memory-report PATH`; several processes'
/// parts (`--memory-report-dir DIR`) merge with [`RunReport::merge_dir`].
///
/// ```no_run
/// let report = tt_memguard::runner::RunReport::merge_dir(std::path::Path::new("target/memory"))?;
/// for test in &report.tests {
///     println!("{} {} {:?}", test.name, test.device, test.status);
/// }
/// for skipped in &report.skipped {
///     eprintln!("skipped {}: {}", skipped.file.display(), skipped.reason);
/// }
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// Report format version (2; version 1 named the byte fields without
    /// their unit).
    pub version: u32,
    /// The process that wrote the report (none in a merged report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
    /// One record per test that ran.
    pub tests: Vec<TestRecord>,
    /// The files a merge left out, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedReport>,
}

impl RunReport {
    /// A finished report of `run` (pass `run.pending` empty).
    pub(crate) fn new(run: Option<RunInfo>, mut tests: Vec<TestRecord>) -> RunReport {
        tests.sort_by(|a, b| (&a.name, &a.binary, &a.device).cmp(&(&b.name, &b.binary, &b.device)));
        RunReport {
            version: REPORT_VERSION,
            run,
            tests,
            skipped: Vec::new(),
        }
    }

    /// Writes the report as JSON, atomically (a temporary file, then a
    /// rename), so that a reader never sees half a report.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path.
    pub fn write(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let json = serde_json::to_string_pretty(self).expect("reports serialize");
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, json + "\n").map_err(|source| Error::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads and checks a JSON report: its version, that the run that
    /// wrote it finished, and that every record is whole.
    ///
    /// # Errors
    ///
    /// [`Error::Io`]; [`Error::ReportFormat`] naming the file and what is
    /// wrong (not JSON, another format version, a record without its
    /// pools); [`Error::UnfinishedReport`] naming the tests that never
    /// reported when the process that wrote it did not reach its end.
    pub fn read(path: &Path) -> Result<RunReport> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |reason: String| Error::ReportFormat {
            path: path.to_path_buf(),
            reason,
            source: None,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()).with_source(e))?;
        match value.get("version").map(|v| v.as_u64()) {
            Some(Some(v)) if v == u64::from(REPORT_VERSION) => {}
            Some(Some(v)) => {
                return Err(bad(format!(
                    "report format version {v} is not supported: this tt-memguard reads version {REPORT_VERSION}; read it with the tt-memguard that wrote it"
                )));
            }
            _ => {
                return Err(bad(format!(
                    "no report format version: expected a JSON object with \"version\": {REPORT_VERSION}"
                )));
            }
        }
        let report: RunReport =
            serde_json::from_value(value).map_err(|e| bad(e.to_string()).with_source(e))?;
        if let Some(run) = report.run.as_ref().filter(|r| !r.finished) {
            return Err(Error::UnfinishedReport {
                path: path.to_path_buf(),
                binary: run.binary.clone(),
                pid: run.pid,
                pending: run.pending.clone(),
            });
        }
        for record in &report.tests {
            record.check().map_err(|reason| {
                bad(format!(
                    "test {:?} ({}, {}): {reason}",
                    record.name, record.binary, record.device
                ))
            })?;
        }
        Ok(report)
    }

    /// Writes this report as the part of a report directory that belongs
    /// to its run: one file per binary, device and selection of tests, so
    /// that concurrent processes (nextest runs one per test) and runs on
    /// other device models never collide, and a rerun replaces its own
    /// file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file.
    pub(crate) fn write_into_dir(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(self.part_name());
        self.write(&path)?;
        Ok(path)
    }

    /// `<binary>-<device>-<selection>.json`.
    fn part_name(&self) -> String {
        let slug = |s: &str| {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        };
        match &self.run {
            Some(run) => format!(
                "{}-{}-{}.json",
                slug(&run.binary),
                slug(&run.device),
                run.selection
            ),
            None => "merged.json".to_string(),
        }
    }

    /// Merges every `*.json` report of a directory into one report.
    ///
    /// Records are keyed by test, binary and device: the same test run on
    /// two device models keeps both records; a test reported by several
    /// files keeps the record of the run that started last. Files left by
    /// an earlier build of a binary whose tests differ from its newest
    /// report (a test added, removed or renamed since) are left out and
    /// listed in [`skipped`](Self::skipped), with the reason.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be read or holds no report;
    /// [`Error::ReportFormat`] naming a file that is not a report of this
    /// format version, or is a merged report; [`Error::UnfinishedReport`]
    /// naming a file whose process never finished, and its tests that never
    /// reported.
    pub fn merge_dir(dir: &Path) -> Result<RunReport> {
        let io = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no memguard reports (*.json) in it: run the tests with --memory-report-dir DIR (or TT_MEMGUARD_REPORT_DIR=DIR) first",
            )));
        }
        let mut parts = Vec::with_capacity(files.len());
        for file in files {
            let report = RunReport::read(&file)?;
            let Some(run) = report.run.clone() else {
                return Err(Error::ReportFormat {
                    path: file,
                    reason: "it is a merged report, not one process's part: write merged reports outside the report directory".to_string(),
                    source: None,
                });
            };
            parts.push((file, run, report.tests));
        }
        // The newest build of each binary: the one that started last.
        let mut newest: BTreeMap<&str, (u64, &str, &Path)> = BTreeMap::new();
        for (file, run, _) in &parts {
            let entry = newest.entry(run.binary.as_str()).or_insert((
                run.started_ms,
                run.build.as_str(),
                file.as_path(),
            ));
            if run.started_ms > entry.0 {
                *entry = (run.started_ms, run.build.as_str(), file.as_path());
            }
        }
        let mut skipped = Vec::new();
        let mut current = Vec::new();
        for (file, run, tests) in &parts {
            let (_, build, newest_file) = newest[run.binary.as_str()];
            if run.build == build {
                current.push((run.started_ms, tests));
            } else {
                skipped.push(SkippedReport {
                    file: file.clone(),
                    reason: format!(
                        "written by an earlier build of {} whose tests differ from those of its newest report {} (a test was added, removed or renamed since); delete the report directory before a run to merge that run only",
                        run.binary,
                        newest_file.file_name().unwrap_or_default().to_string_lossy()
                    ),
                });
            }
        }
        // Oldest first: a later run's record of the same test replaces it.
        current.sort_by_key(|(started, _)| *started);
        let mut merged = BTreeMap::new();
        for (_, tests) in current {
            for record in tests {
                let key = (
                    record.name.clone(),
                    record.binary.clone(),
                    record.device.clone(),
                );
                merged.insert(key, record.clone());
            }
        }
        let mut report = RunReport::new(None, merged.into_values().collect());
        report.skipped = skipped;
        Ok(report)
    }
}

impl TestRecord {
    /// What makes the record unusable, if anything.
    fn check(&self) -> std::result::Result<(), String> {
        if self.name.is_empty() {
            return Err("the test has no name".to_string());
        }
        // Reports without a device or without the four pools are refused
        // when the file is read (`MemoryReport`'s deserializer).
        match (&self.memory, self.status) {
            (None, TestStatus::Passed) => Err("it passed but has no memory report".to_string()),
            _ => Ok(()),
        }
    }
}

/// FNV-1a over names, as 16 hex digits: a stable digest of a list of tests.
pub(crate) fn digest<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        for b in name.bytes().chain([0]) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// One cell of the memory table: a peak above baseline and its budget.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PeakCell {
    peak: u64,
    /// The peak budget (meaningful when `budget` is not `NO_BUDGET`).
    limit_bytes: u64,
    budget: u8,
    /// The peak and the limit are per bank.
    per_bank: bool,
}

const NO_BUDGET: u8 = 0;
const WITHIN_BUDGET: u8 = 1;
const OVER_BUDGET: u8 = 2;

impl PeakCell {
    const EMPTY: PeakCell = PeakCell {
        peak: 0,
        limit_bytes: 0,
        budget: NO_BUDGET,
        per_bank: false,
    };

    /// (limit, passed, share of the limit used) of a peak budget.
    fn limit(&self) -> Option<(u64, bool, f64)> {
        if self.budget == NO_BUDGET {
            return None;
        }
        let usage = match self.limit_bytes {
            0 if self.peak == 0 => 0.0,
            0 => 1.0,
            limit => self.peak as f64 / limit as f64,
        };
        Some((self.limit_bytes, self.budget == WITHIN_BUDGET, usage))
    }
}

/// One test's row of the memory table (its name is the test's).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    failed: bool,
    /// Whether the test ran on a device and its memory was measured.
    measured: bool,
    l1: PeakCell,
    dram: PeakCell,
    leaked: u64,
    /// One core's CB peak over the programs the test enqueued, with its
    /// budget (limit, passed) when one was set.
    cb: Option<(u64, Option<(u64, bool)>)>,
}

impl Row {
    /// The row of a test that ran on one device, from its pools.
    pub(crate) fn from_pools(failed: bool, pools: &[PoolReport]) -> Row {
        let cell = |t: BufferType| {
            let p = &pools[t.index()];
            // The total peak budget when set, else the per-bank one.
            let verdict = p
                .checks
                .iter()
                .find(|v| v.check == crate::budget::CheckKind::Peak);
            let per_bank = verdict.is_some_and(|v| v.per_bank);
            PeakCell {
                peak: if per_bank {
                    p.peak_per_bank - p.before_per_bank
                } else {
                    p.peak_above_baseline_total
                },
                per_bank,
                limit_bytes: verdict.map_or(0, |v| v.limit),
                budget: match verdict {
                    None => NO_BUDGET,
                    Some(v) if v.passed => WITHIN_BUDGET,
                    Some(_) => OVER_BUDGET,
                },
            }
        };
        Row {
            failed,
            measured: true,
            l1: cell(BufferType::L1),
            dram: cell(BufferType::Dram),
            leaked: pools.iter().map(PoolReport::retained_total).sum(),
            cb: None,
        }
    }

    /// The row of a test from its report: the runner's guard covers one
    /// device (no report: the test's memory was not measured).
    pub(crate) fn of(failed: bool, memory: Option<&MemoryReport>) -> Row {
        match memory.and_then(|m| m.devices.first()) {
            Some(device) => Row {
                cb: device.cores.as_ref().filter(|c| c.enqueued).map(|c| {
                    let limit = c
                        .checks
                        .iter()
                        .find(|v| v.check == crate::budget::CheckKind::CbPeakPerCore)
                        .map(|v| (v.limit, v.passed));
                    (c.cb_peak_per_core, limit)
                }),
                ..Row::from_pools(failed, &device.pools)
            },
            None => Row {
                failed,
                measured: false,
                l1: PeakCell::EMPTY,
                dram: PeakCell::EMPTY,
                leaked: 0,
                cb: None,
            },
        }
    }

    /// The memory summary printed on the test's result line, when its
    /// memory was measured:
    /// `L1 peak 256.0 KiB/512.0 KiB  DRAM peak 8.0 MiB  leaked 0 B`.
    pub(crate) fn summary(&self) -> Option<String> {
        if !self.measured {
            return None;
        }
        let cell = |c: &PeakCell| match c.limit() {
            Some((limit, _, _)) => format!(
                "{}/{}{}",
                format_bytes(c.peak),
                format_bytes(limit),
                if c.per_bank { " per bank" } else { "" }
            ),
            None => format_bytes(c.peak),
        };
        let cb = match self.cb {
            Some((peak, Some((limit, _)))) => {
                format!(
                    "  CB peak {}/{} per core",
                    format_bytes(peak),
                    format_bytes(limit)
                )
            }
            Some((peak, None)) => format!("  CB peak {} per core", format_bytes(peak)),
            None => String::new(),
        };
        Some(format!(
            "L1 peak {}  DRAM peak {}  leaked {}{cb}",
            cell(&self.l1),
            cell(&self.dram),
            format_bytes(self.leaked)
        ))
    }
}

/// Up to this many rows the memory table shows every test.
const FULL_UP_TO: usize = 100;
/// Past [`FULL_UP_TO`] rows it shows the failures and this many of the
/// largest peaks.
const TOP: usize = 20;

/// What one worker recorded: the tests that reported, and the rows the
/// memory table can show. A worker that saw more than [`FULL_UP_TO`] rows
/// keeps its failures and its [`TOP`] largest peaks only: the table then
/// shows no other (its memory stays small however many tests run).
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    /// The tests that reported, by index.
    pub reported: Vec<usize>,
    failed: Vec<(usize, Row)>,
    passed: Vec<(usize, Row)>,
    /// Past FULL_UP_TO rows: `passed` holds the largest peaks only, in the
    /// table's order.
    top_only: bool,
}

/// The table's order of passed rows: largest peak first, then by name, so
/// that a run shows the same rows whatever order its tests finish in.
fn by_peak<'a>(
    name: &'a (dyn Fn(usize) -> &'a str + 'a),
) -> impl Fn(&(usize, Row), &(usize, Row)) -> std::cmp::Ordering + 'a {
    move |a, b| {
        let peak = |r: &Row| r.l1.peak + r.dram.peak;
        peak(&b.1)
            .cmp(&peak(&a.1))
            .then_with(|| name(a.0).cmp(name(b.0)))
    }
}

impl Recorded {
    /// Records test `index` and its row; `name` gives a test's name.
    pub(crate) fn push<'a>(
        &mut self,
        index: usize,
        row: Row,
        name: &'a (dyn Fn(usize) -> &'a str + 'a),
    ) {
        self.reported.push(index);
        if row.failed {
            self.failed.push((index, row));
            return;
        }
        let order = by_peak(name);
        let row = (index, row);
        if self.reported.len() <= FULL_UP_TO {
            self.passed.push(row);
        } else {
            if !self.top_only {
                self.passed.sort_by(&order);
                self.passed.truncate(TOP);
                self.top_only = true;
            }
            // Most rows are compared with the smallest peak kept only.
            if self.passed.len() < TOP
                || self
                    .passed
                    .last()
                    .is_some_and(|last| order(&row, last).is_lt())
            {
                let at = self
                    .passed
                    .partition_point(|kept| order(kept, &row).is_lt());
                self.passed.insert(at, row);
                self.passed.truncate(TOP);
            }
        }
    }
}

/// The table printed after a run, from what the workers recorded: one row
/// per test with its verdict, L1 and DRAM peaks above baseline (with budget
/// use) and leaked bytes (`-` where the test's memory was not measured).
/// Long runs show the failures and the largest peaks only.
pub(crate) fn table<'a>(
    recorded: &[&Recorded],
    name: &'a (dyn Fn(usize) -> &'a str + 'a),
    color: bool,
) -> String {
    let total: usize = recorded.iter().map(|r| r.reported.len()).sum();
    let mut failed: Vec<&(usize, Row)> = recorded.iter().flat_map(|r| &r.failed).collect();
    let mut passed: Vec<&(usize, Row)> = recorded.iter().flat_map(|r| &r.passed).collect();
    let order = by_peak(name);
    failed.sort_by(|a, b| name(a.0).cmp(name(b.0)));
    let mut note = String::new();
    let rows: Vec<&(usize, Row)> = if total > FULL_UP_TO {
        passed.sort_by(|a, b| order(a, b));
        passed.truncate(TOP);
        note = format!(
            "  ({total} rows: showing {} failed and the {} largest peaks; the JSON report (--memory-report) has all)\n",
            failed.len(),
            passed.len()
        );
        failed.into_iter().chain(passed).collect()
    } else {
        let mut all: Vec<_> = failed.into_iter().chain(passed).collect();
        all.sort_by(|a, b| name(a.0).cmp(name(b.0)));
        all
    };
    // The CB column appears when a shown test enqueued programs.
    let with_cb = rows.iter().any(|(_, r)| r.cb.is_some());
    let mut out = String::new();
    let _ = writeln!(out, "\nmemory summary:");
    let header = format!(
        "  {:<40} {:<7} {:>22} {:>22} {:>12}",
        "TEST", "RESULT", "L1 PEAK", "DRAM PEAK", "LEAKED"
    );
    let _ = if with_cb {
        writeln!(out, "{header} {:>22}", "CB PEAK/CORE")
    } else {
        writeln!(out, "{header}")
    };
    let cb_cell = |cb: Option<(u64, Option<(u64, bool)>)>| match cb {
        Some((peak, Some((limit, passed)))) => {
            let text = format!("{}/{}", format_bytes(peak), format_bytes(limit));
            let usage = if limit == 0 {
                1.0
            } else {
                peak as f64 / limit as f64
            };
            let level = if passed { Level::of(usage) } else { Level::Red };
            format!(" {}", painted(format!("{text:>22}"), level, color))
        }
        Some((peak, None)) => format!(" {:>22}", format_bytes(peak)),
        None => format!(" {:>22}", "-"),
    };
    let cell = |c: &PeakCell| match c.limit() {
        Some((limit, passed, usage)) => {
            let text = format!(
                "{}/{}{}",
                format_bytes(c.peak),
                format_bytes(limit),
                if c.per_bank { "/bank" } else { "" }
            );
            let level = if passed { Level::of(usage) } else { Level::Red };
            painted(format!("{text:>22}"), level, color).to_string()
        }
        None => format!("{:>22}", format_bytes(c.peak)),
    };
    for (index, r) in rows {
        let name = name(*index);
        let (word, level) = if r.failed {
            ("FAILED", Level::Red)
        } else {
            ("ok", Level::Green)
        };
        let result = painted(format!("{word:<7}"), level, color);
        let cb = if with_cb {
            cb_cell(r.cb)
        } else {
            String::new()
        };
        let _ = if r.measured {
            writeln!(
                out,
                "  {name:<40} {result} {} {} {:>12}{cb}",
                cell(&r.l1),
                cell(&r.dram),
                format_bytes(r.leaked)
            )
        } else {
            writeln!(
                out,
                "  {name:<40} {result} {:>22} {:>22} {:>12}{cb}",
                "-", "-", "-"
            )
        };
    }
    out.push_str(&note);
    out
}

/// The insta assertion of a snapshot: `(name, text)`. The runner's own is
/// made in this crate; [`main!`](crate::main) makes one in the user's test
/// file, so that insta's header (`source:`) and tool configuration are the
/// user's.
pub(crate) type SnapshotAssertion = fn(&str, &str);

/// The insta assertion made in this crate.
pub(crate) fn own_assertion(name: &str, text: &str) {
    insta::assert_snapshot!(name, text);
}

/// How a test's snapshot assertion ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SnapshotOutcome {
    /// The stored snapshot matches.
    Matched,
    /// insta wrote the snapshot in place (`INSTA_UPDATE=always`): the test
    /// passes.
    Written { new: bool },
    /// insta wrote `<name>.snap.new` for `cargo insta review`: the test
    /// fails until it is accepted.
    Pending { new: bool, path: PathBuf },
    /// No snapshot, or a different one, and nothing written (`CI=true`,
    /// `INSTA_UPDATE=no`).
    Differs { new: bool, path: PathBuf },
    /// insta failed otherwise.
    Failed(String),
}

impl SnapshotOutcome {
    /// The line a failing test shows, if it fails.
    pub(crate) fn failure(&self) -> Option<String> {
        match self {
            SnapshotOutcome::Matched | SnapshotOutcome::Written { .. } => None,
            SnapshotOutcome::Pending { new: true, path } => Some(format!(
                "new memory snapshot written for review to {}: accept it with `cargo insta review`",
                path.display()
            )),
            SnapshotOutcome::Pending { new: false, path } => Some(format!(
                "memory snapshot changed: the new one is written for review to {}: accept or reject it with `cargo insta review`",
                path.display()
            )),
            SnapshotOutcome::Differs { new: true, path } => Some(format!(
                "no memory snapshot {} (nothing is written with CI=true or INSTA_UPDATE=no): record it in a local run and commit it",
                path.display()
            )),
            SnapshotOutcome::Differs { new: false, path } => Some(format!(
                "memory snapshot {} differs (nothing is written with CI=true or INSTA_UPDATE=no): review the change in a local run",
                path.display()
            )),
            SnapshotOutcome::Failed(message) => {
                Some(format!("memory snapshot assertion failed: {message}"))
            }
        }
    }
}

/// Asserts a test's memory report as the insta snapshot `memguard__<test>`
/// in `dir`, so that a footprint change shows up in `cargo insta review`.
/// With `CI=true` insta writes nothing and a mismatch fails. `source` is
/// the user's test file (its path, and how to show it), named in the
/// snapshot's header.
///
/// One assertion at a time, holding stdout and stderr: insta prints its
/// diff line by line, and parallel tests' diffs (and result lines) would
/// interleave.
pub(crate) fn assert_snapshot(
    assertion: SnapshotAssertion,
    dir: &Path,
    source: Option<(&Path, &str)>,
    test: &str,
    report: &MemoryReport,
) -> SnapshotOutcome {
    let name = format!("memguard__{}", sanitize(test));
    let file = dir.join(format!("{name}.snap"));
    let pending = file.with_extension("snap.new");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    match source {
        Some((path, shown)) => {
            settings.set_description(format!("memory report of test {test} in {shown}"));
            settings.set_input_file(path);
        }
        None => settings.set_description(format!("memory report of test {test}")),
    }
    let text = report.to_string();

    let _out = std::io::stdout().lock();
    let _err = std::io::stderr().lock();
    let before = std::fs::read_to_string(&file).ok();
    let pending_before = modified(&pending);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.bind(|| assertion(&name, &text));
    }));
    let new = before.is_none();
    match result {
        Ok(()) => match std::fs::read_to_string(&file).ok() {
            after if after == before => SnapshotOutcome::Matched,
            _ => SnapshotOutcome::Written { new },
        },
        Err(_) if modified(&pending).is_some() && modified(&pending) != pending_before => {
            SnapshotOutcome::Pending { new, path: pending }
        }
        Err(payload) => {
            let message = crate::harness::panic_message(payload.as_ref());
            if message.contains("snapshot assertion for") {
                SnapshotOutcome::Differs { new, path: file }
            } else {
                SnapshotOutcome::Failed(message)
            }
        }
    }
}

/// When a file was last written, if it exists.
fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The line printed after a run with snapshots, if any was written or
/// differs: what happened and what to do.
pub(crate) fn snapshot_summary(outcomes: &[SnapshotOutcome], dir: &Path) -> Option<String> {
    let count = |f: &dyn Fn(&SnapshotOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let pending_new = count(&|o| matches!(o, SnapshotOutcome::Pending { new: true, .. }));
    let pending_changed = count(&|o| matches!(o, SnapshotOutcome::Pending { new: false, .. }));
    let written = count(&|o| matches!(o, SnapshotOutcome::Written { .. }));
    let differs = count(&|o| matches!(o, SnapshotOutcome::Differs { .. }));
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut lines = Vec::new();
    if pending_new + pending_changed > 0 {
        let what = match (pending_new, pending_changed) {
            (n, 0) => format!("{n} new memory snapshot{}", plural(n)),
            (0, c) => format!("{c} changed memory snapshot{}", plural(c)),
            (n, c) => format!("{n} new and {c} changed memory snapshots"),
        };
        lines.push(format!(
            "{what} written for review: run `cargo insta review` (install with `cargo install cargo-insta`)"
        ));
    }
    if written > 0 {
        lines.push(format!(
            "{written} memory snapshot{} written to {} (INSTA_UPDATE): review them with `git diff`",
            plural(written),
            dir.display()
        ));
    }
    if differs > 0 {
        lines.push(format!(
            "{differs} memory snapshot{} missing or different in {} (nothing is written with CI=true or INSTA_UPDATE=no): run the tests locally with TT_MEMGUARD_SNAPSHOTS=1, then `cargo insta review`",
            plural(differs),
            dir.display()
        ));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(failed: bool, l1_peak: u64) -> Row {
        Row {
            failed,
            measured: true,
            l1: PeakCell {
                peak: l1_peak,
                ..PeakCell::EMPTY
            },
            dram: PeakCell::EMPTY,
            leaked: 0,
            cb: None,
        }
    }

    fn names(table: &str) -> Vec<&str> {
        table
            .lines()
            .skip(3)
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| !n.starts_with('('))
            .collect()
    }

    /// The table of `tests` recorded in `order` by `workers` workers.
    fn table_of(tests: &[(String, Row)], order: &[usize], workers: usize) -> String {
        let name = |i: usize| tests[i].0.as_str();
        let mut recorded: Vec<Recorded> = (0..workers).map(|_| Recorded::default()).collect();
        for (n, &i) in order.iter().enumerate() {
            recorded[n % workers].push(i, tests[i].1.clone(), &name);
        }
        table(&recorded.iter().collect::<Vec<_>>(), &name, false)
    }

    /// The CB peak per core is on the result line and in a table column of
    /// its own, which appears only when a shown test enqueued programs.
    #[test]
    fn circular_buffer_peaks_show_where_programs_ran() {
        let plain = row(false, 1024);
        let with_cb = Row {
            cb: Some((256 * 1024, Some((512 * 1024, true)))),
            ..row(false, 2048)
        };
        assert_eq!(
            with_cb.summary().unwrap(),
            "L1 peak 2.0 KiB  DRAM peak 0 B  leaked 0 B  CB peak 256.0 KiB/512.0 KiB per core"
        );
        assert!(!plain.summary().unwrap().contains("CB"));
        let without = table_of(&[("a".into(), plain.clone())], &[0], 1);
        assert!(!without.contains("CB PEAK/CORE"), "{without}");
        let tests = [("a".to_string(), plain), ("b".to_string(), with_cb)];
        let table = table_of(&tests, &[0, 1], 1);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[2].ends_with("CB PEAK/CORE"), "{table}");
        assert!(lines[3].trim_end().ends_with(" -"), "{table}");
        assert!(lines[4].ends_with("256.0 KiB/512.0 KiB"), "{table}");
    }

    /// A long run's table shows its failures by name, then the 20 largest
    /// peaks (ties by name): the same rows whatever order tests finish in
    /// and however many workers ran them.
    #[test]
    fn long_tables_show_failures_and_the_largest_peaks() {
        // Failed: t0007, t0100 (the 101st row), t0407, t0807.
        let tests: Vec<(String, Row)> = (0..1000u64)
            .map(|i| {
                let failed = i % 400 == 7 || i == 100;
                (format!("t{i:04}"), row(failed, (i * 37) % 50))
            })
            .collect();
        let forward: Vec<usize> = (0..tests.len()).collect();
        let backward: Vec<usize> = forward.iter().rev().copied().collect();
        let table = table_of(&tests, &forward, 1);
        assert_eq!(table, table_of(&tests, &backward, 3));
        assert_eq!(table, table_of(&tests, &forward, 2));
        let shown = names(&table);
        let mut expected = vec!["t0007", "t0100", "t0407", "t0807"];
        let mut passed: Vec<&(String, Row)> = tests.iter().filter(|(_, r)| !r.failed).collect();
        passed.sort_by(|a, b| b.1.l1.peak.cmp(&a.1.l1.peak).then(a.0.cmp(&b.0)));
        expected.extend(passed.iter().take(20).map(|(n, _)| n.as_str()));
        assert_eq!(shown, expected, "{table}");
        assert!(
            table.ends_with("  (1000 rows: showing 4 failed and the 20 largest peaks; the JSON report (--memory-report) has all)\n"),
            "{table}"
        );
        // A worker past 100 rows with few passed rows among them still
        // keeps the right ones: 15 passed, 90 failed, then 30 passed.
        let mixed: Vec<(String, Row)> = (0..135u64)
            .map(|i| {
                let failed = (15..105).contains(&i);
                (format!("m{i:03}"), row(failed, (i * 7919) % 97))
            })
            .collect();
        let order: Vec<usize> = (0..mixed.len()).collect();
        let shown_mixed = table_of(&mixed, &order, 1);
        let mut passed: Vec<&(String, Row)> = mixed.iter().filter(|(_, r)| !r.failed).collect();
        passed.sort_by(|a, b| b.1.l1.peak.cmp(&a.1.l1.peak).then(a.0.cmp(&b.0)));
        let expected: Vec<&str> = mixed
            .iter()
            .filter(|(_, r)| r.failed)
            .chain(passed.into_iter().take(20))
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names(&shown_mixed), expected, "{shown_mixed}");
        // Up to 100 rows, all of them by name.
        let short = table_of(&tests[..100], &backward[900..], 2);
        let shown = names(&short);
        assert_eq!(shown.len(), 100);
        assert!(shown.windows(2).all(|w| w[0] < w[1]), "{short}");
    }
}

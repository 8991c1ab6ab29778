//! What the runner writes: the per-test memory table, JSON reports (one file,
//! or a directory several processes write into and that can be merged), and
//! insta snapshots of each test's report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::render::{Level, paint};
use crate::report::{MemoryReport, PoolReport};
use crate::types::{BufferType, format_bytes};

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
    /// How it ended.
    pub status: TestStatus,
    /// The body's error or panic message, if any.
    pub error: Option<String>,
    /// What the test did to device memory (absent when no device could be
    /// opened).
    pub memory: Option<MemoryReport>,
}

/// The memory reports of a test run, sorted by test name.
///
/// Written by the runner with `--memory-report PATH`; several processes'
/// parts (`--memory-report-dir DIR`) merge with [`RunReport::merge_dir`].
///
/// ```no_run
/// let report = tt_memguard::RunReport::merge_dir(std::path::Path::new("target/memory"))?;
/// for test in &report.tests {
///     println!("{} {:?}", test.name, test.status);
/// }
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// Report format version.
    pub version: u32,
    /// One record per test that ran.
    pub tests: Vec<TestRecord>,
}

impl RunReport {
    pub(crate) fn new(mut tests: Vec<TestRecord>) -> RunReport {
        tests.sort_by(|a, b| a.name.cmp(&b.name));
        RunReport { version: 1, tests }
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

    /// Reads a JSON report.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], or [`Error::ReportFormat`] naming the file.
    pub fn read(path: &Path) -> Result<RunReport> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::ReportFormat {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Writes this process's part of a report directory: one file per
    /// process, named after the test binary and the tests it ran, so that
    /// concurrent processes (nextest runs one per test) never collide.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file.
    pub fn write_into_dir(&self, dir: &Path) -> Result<PathBuf> {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tests".to_string());
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a over the test names
        for t in &self.tests {
            for b in t.name.bytes().chain([0]) {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        let path = dir.join(format!("{exe}-{hash:016x}.json"));
        self.write(&path)?;
        Ok(path)
    }

    /// Merges every `*.json` report of a directory into one report. A test
    /// reported by several files keeps the record of the last file in name
    /// order.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be read, [`Error::ReportFormat`]
    /// naming a file that is not a report.
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
        let mut merged = std::collections::BTreeMap::new();
        for file in files {
            for record in RunReport::read(&file)?.tests {
                merged.insert(record.name.clone(), record);
            }
        }
        Ok(RunReport::new(merged.into_values().collect()))
    }
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

/// One row of the memory table (one per test and device).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    name: std::sync::Arc<str>,
    failed: bool,
    l1: PeakCell,
    dram: PeakCell,
    leaked: u64,
}

impl Row {
    /// The row of a test that passed on one device, from its pools.
    pub(crate) fn from_pools(name: std::sync::Arc<str>, failed: bool, pools: &[PoolReport]) -> Row {
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
                    p.peak_above_baseline
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
            name,
            failed,
            l1: cell(BufferType::L1),
            dram: cell(BufferType::Dram),
            leaked: pools.iter().map(PoolReport::retained).sum(),
        }
    }

    /// The memory summary printed on the test's result line:
    /// `L1 peak 256.0 KiB/512.0 KiB  DRAM peak 8.0 MiB  leaked 0 B`.
    pub(crate) fn summary(&self) -> String {
        let cell = |c: &PeakCell| match c.limit() {
            Some((limit, _, _)) => format!(
                "{}/{}{}",
                format_bytes(c.peak),
                format_bytes(limit),
                if c.per_bank { " per bank" } else { "" }
            ),
            None => format_bytes(c.peak),
        };
        format!(
            "L1 peak {}  DRAM peak {}  leaked {}",
            cell(&self.l1),
            cell(&self.dram),
            format_bytes(self.leaked)
        )
    }

    /// The row of a test from its report: the runner's guard covers one
    /// device (an empty row when there is no report).
    pub(crate) fn of(
        name: &std::sync::Arc<str>,
        failed: bool,
        memory: Option<&MemoryReport>,
    ) -> Row {
        match memory.and_then(|m| m.devices.first()) {
            Some(device) => Row::from_pools(name.clone(), failed, &device.pools),
            None => Row {
                name: name.clone(),
                failed,
                l1: PeakCell::EMPTY,
                dram: PeakCell::EMPTY,
                leaked: 0,
            },
        }
    }
}

/// The table printed after a run: one row per test with its verdict, L1
/// and DRAM peaks above baseline (with budget use) and leaked bytes. Long
/// runs show the failures and the largest peaks only.
pub(crate) fn table(mut rows: Vec<Row>, color: bool) -> String {
    const FULL_UP_TO: usize = 100;
    const TOP: usize = 20;
    let mut note = String::new();
    if rows.len() > FULL_UP_TO {
        // Pick before sorting: only the rows shown are put in order.
        let total = rows.len();
        let (mut failed, mut passed): (Vec<Row>, Vec<Row>) =
            rows.into_iter().partition(|r| r.failed);
        let peak = |r: &Row| std::cmp::Reverse(r.l1.peak + r.dram.peak);
        if passed.len() > TOP {
            passed.select_nth_unstable_by_key(TOP, peak);
            passed.truncate(TOP);
        }
        passed.sort_by(|a, b| peak(a).cmp(&peak(b)).then_with(|| a.name.cmp(&b.name)));
        failed.sort_by(|a, b| a.name.cmp(&b.name));
        note = format!(
            "  ({total} rows: showing {} failed and the {} largest peaks; the JSON report (--memory-report) has all)\n",
            failed.len(),
            passed.len()
        );
        failed.extend(passed);
        rows = failed;
    } else {
        rows.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut out = String::new();
    let _ = writeln!(out, "\nmemory summary:");
    let _ = writeln!(
        out,
        "  {:<40} {:<7} {:>22} {:>22} {:>12}",
        "TEST", "RESULT", "L1 PEAK", "DRAM PEAK", "LEAKED"
    );
    let cell = |c: &PeakCell| match c.limit() {
        Some((limit, passed, usage)) => {
            let text = format!(
                "{:>22}",
                format!(
                    "{}/{}{}",
                    format_bytes(c.peak),
                    format_bytes(limit),
                    if c.per_bank { "/bank" } else { "" }
                )
            );
            paint(
                &text,
                if passed { Level::of(usage) } else { Level::Red },
                color,
            )
        }
        None => format!("{:>22}", format_bytes(c.peak)),
    };
    for r in &rows {
        let result = if r.failed {
            paint(&format!("{:<7}", "FAILED"), Level::Red, color)
        } else {
            paint(&format!("{:<7}", "ok"), Level::Green, color)
        };
        let _ = writeln!(
            out,
            "  {:<40} {} {} {} {:>12}",
            r.name,
            result,
            cell(&r.l1),
            cell(&r.dram),
            format_bytes(r.leaked)
        );
    }
    out.push_str(&note);
    out
}

/// Asserts a test's memory report as the insta snapshot `memguard__<test>`
/// in `dir`, so that a footprint change shows up in `cargo insta review`.
/// With `CI=true` insta writes nothing and a mismatch fails.
pub(crate) fn assert_snapshot(dir: &Path, test: &str, report: &MemoryReport) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(format!("memory report of test {test}"));
    let name = format!("memguard__{}", sanitize(test));
    let text = report.to_string();
    settings.bind(|| insta::assert_snapshot!(name, text));
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

//! The memory report as one HTML page, for people who would rather look
//! than read.
//!
//! The page lists every test (or guarded scope) with its verdict, failing
//! first, then by name; each one's budget verdicts and figures per pool;
//! and, when its guard was asked to explain itself
//! ([`GuardOptions::explain`](crate::GuardOptions::explain), which the
//! runner turns on under `--memory-html`), one plot per pool it used of
//! the allocated bytes per bank over its allocations and frees, with the
//! peak limit as a line, and the address map of one L1 bank and one DRAM
//! bank at their peaks: the buffers, the free gaps, the L1_SMALL and TRACE
//! carve-outs at the top and the circular buffers at the bottom of L1.
//!
//! The page is one self-contained file: inline CSS and SVG, no network, no
//! fonts to fetch, and two short scripts that only mark the page rendered
//! (or record a script error) for automated checks. It is deterministic:
//! the same report gives the same bytes. It stays light for long runs: the
//! plots and maps are drawn for every failing test and the
//! [`DRAWN_PASSING`] passing tests with the largest peaks; every test keeps
//! its verdicts and figures.
//!
//! # Examples
//!
//! ```
//! use tt_memguard::{BufferType, MemoryGuard, SimDevice, KIB};
//!
//! let dev = SimDevice::wormhole_b0();
//! let guard = MemoryGuard::new(&dev).name("tiles").explain(true);
//! drop(dev.allocate(BufferType::L1, 256 * KIB, 2048)?);
//! let report = guard.into_report()?;
//! let path = std::env::temp_dir().join("tt-memguard-doc-memory.html");
//! tt_memguard::html::write_reports(&[report], &path)?;
//! assert!(std::fs::read_to_string(&path)?.contains("tiles"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::{self, Write as _};
use std::path::Path;

use crate::budget::{BudgetSource, CheckKind};
use crate::cb_failure::{CircularBufferPlacement, ProgramPeak};
use crate::composition::PeakEntry;
use crate::detail::{BankMap, DeviceDetail, Segment, Timeline};
use crate::error::{Error, Result};
use crate::harness::{RunReport, TestStatus};
use crate::render::Level;
use crate::report::{DeviceReport, MemoryReport, PoolReport, Verdict, verdict_text};
use crate::types::{Allocation, BufferType};
use crate::units::{format_bytes, format_count};

/// How many passing tests get their plots and address maps drawn: those
/// with the largest L1 plus DRAM peaks. Failing tests always do.
pub const DRAWN_PASSING: usize = 100;

/// A run's page: every test of `run`, failing first, then by name.
///
/// # Examples
///
/// ```
/// use tt_memguard::runner::RunReport;
///
/// let page = tt_memguard::html::render(&RunReport::default());
/// assert!(page.starts_with("<!DOCTYPE html>"));
/// assert!(page.contains("no tests"));
/// ```
pub fn render(run: &RunReport) -> String {
    let entries = run
        .tests
        .iter()
        .map(|t| Entry {
            name: t.name.clone(),
            meta: format!("{} · {}", t.binary, t.device),
            passed: t.status == TestStatus::Passed,
            error: t.error.as_deref(),
            memory: t.memory.as_ref(),
        })
        .collect();
    let notes: Vec<String> = run
        .skipped
        .iter()
        .map(|s| format!("left out {}: {}", s.file.display(), s.reason))
        .collect();
    page(entries, &notes, "test")
}

/// Writes a run's page ([`render`]) to `path`, atomically (a temporary
/// file, then a rename), creating its directory.
///
/// # Errors
///
/// [`Error::Io`] naming the path.
pub fn write(run: &RunReport, path: &Path) -> Result<()> {
    write_page(path, &render(run))
}

/// The page of reports made by guards ([`MemoryGuard::into_report`](crate::MemoryGuard::into_report),
/// [`check`](crate::check), an [`Error::MemoryCheckFailed`]): a scope is
/// named by its name, else where its guard was created. Ask the guards to
/// explain themselves for the plots and maps.
pub fn render_reports(reports: &[MemoryReport]) -> String {
    let entries = reports
        .iter()
        .enumerate()
        .map(|(i, r)| Entry {
            name: match (&r.name, &r.location) {
                (Some(name), _) => name.clone(),
                (None, Some(location)) => format!("scope at {location}"),
                (None, None) => format!("scope {}", i + 1),
            },
            meta: match (&r.name, &r.location) {
                (Some(_), Some(location)) => location.clone(),
                _ => String::new(),
            },
            passed: r.passed && !r.panicked,
            error: r.panicked.then_some("the body panicked"),
            memory: Some(r),
        })
        .collect();
    page(entries, &[], "scope")
}

/// Writes the page of guards' reports ([`render_reports`]) to `path`,
/// atomically, creating its directory.
///
/// # Errors
///
/// [`Error::Io`] naming the path.
pub fn write_reports(reports: &[MemoryReport], path: &Path) -> Result<()> {
    write_page(path, &render_reports(reports))
}

/// One test or scope on the page.
struct Entry<'a> {
    name: String,
    /// Binary and device, or where the guard was created.
    meta: String,
    passed: bool,
    error: Option<&'a str>,
    memory: Option<&'a MemoryReport>,
}

/// The whole page. `what` names an entry ("test", "scope").
fn page(mut entries: Vec<Entry<'_>>, notes: &[String], what: &str) -> String {
    entries.sort_by(|a, b| {
        a.passed
            .cmp(&b.passed)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.meta.cmp(&b.meta))
    });
    // Plots for every failure and the passing entries with the largest peaks.
    let mut passing: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].passed).collect();
    passing.sort_by(|&a, &b| weight(&entries[b]).cmp(&weight(&entries[a])).then(a.cmp(&b)));
    let mut drawn: Vec<bool> = entries.iter().map(|e| !e.passed).collect();
    for &i in passing.iter().take(DRAWN_PASSING) {
        drawn[i] = true;
    }
    let failed = entries.iter().filter(|e| !e.passed).count();
    let total = entries.len();
    let plural = |n: usize| if n == 1 { "" } else { "s" };

    let mut out = String::with_capacity(16 * 1024 + total * 2048);
    let title = if total == 0 {
        format!("memory report: no {what}s")
    } else if failed == 0 {
        format!("memory report: {total} {what}{} passed", plural(total))
    } else {
        format!("memory report: {failed} of {total} {what}{} failed", plural(total))
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\" data-tests=\"{total}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
         <script>window.onerror=function(m){{document.documentElement.setAttribute(\"data-page-error\",String(m))}};</script>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>Device memory</h1>\n<p class=\"totals\">",
        Esc(&title)
    );
    if total == 0 {
        let _ = write!(out, "no {what}s");
    } else {
        if failed > 0 {
            let _ = write!(out, "<b class=\"red\">{failed} failed</b>, ");
        }
        let _ = write!(
            out,
            "{} passed, {total} {what}{}",
            total - failed,
            plural(total)
        );
    }
    out.push_str(
        "</p>\n<p class=\"legend\">Limits used: <span class=\"chip green\">under 75 %</span>\
         <span class=\"chip yellow\">75 to 89 %</span><span class=\"chip red\">90 % and over, or failed</span></p>\n",
    );
    for note in notes {
        let _ = writeln!(out, "<p class=\"warn\">{}</p>", Esc(note));
    }
    out.push_str("</header>\n<main>\n");
    if total > 0 {
        overview(&mut out, &entries);
    }
    let open = total <= 20;
    let not_drawn = drawn.iter().filter(|d| !**d).count();
    for (i, entry) in entries.iter().enumerate() {
        section(&mut out, i, entry, drawn[i], open || !entry.passed, not_drawn);
    }
    let _ = write!(
        out,
        "</main>\n<footer>tt-memguard {}</footer>\n\
         <script>(function(){{var e=document.documentElement,n=document.querySelectorAll(\"section.test\").length;\
         if(String(n)!==e.getAttribute(\"data-tests\"))e.setAttribute(\"data-page-error\",\"found \"+n+\" sections, expected \"+e.getAttribute(\"data-tests\"));\
         e.setAttribute(\"data-rendered\",\"true\")}})();</script>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    out
}

/// Writes the page a run leaves at `path` until it ends: a run that never
/// reaches its end (a test that ends the process) leaves it, saying so.
pub(crate) fn write_unfinished(path: &Path, to_run: usize) -> Result<()> {
    let note = format!(
        "the run has not finished: it is in progress, or ended before its {to_run} test{} reported (a test that ends the process, or a killed process)",
        if to_run == 1 { "" } else { "s" }
    );
    write_page(path, &page(Vec::new(), &[note], "test"))
}

/// Writes `page` to `path` through a temporary file and a rename.
fn write_page(path: &Path, page: &str) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, page).map_err(|source| Error::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// L1 plus DRAM peak above the start, over devices: the order of passing
/// entries for drawing.
fn weight(entry: &Entry<'_>) -> u64 {
    entry.memory.map_or(0, |m| {
        m.devices.iter().fold(0u64, |sum, d| {
            sum.saturating_add(d.pool(BufferType::L1).peak_above_baseline_total)
                .saturating_add(d.pool(BufferType::Dram).peak_above_baseline_total)
        })
    })
}

/// Text escaped for HTML text and attribute values; control characters
/// other than white space become U+FFFD.
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut last = 0;
        for (i, c) in s.char_indices() {
            let replacement = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                '\n' | '\t' | '\r' => continue,
                c if c.is_control() => "\u{FFFD}",
                _ => continue,
            };
            f.write_str(&s[last..i])?;
            f.write_str(replacement)?;
            last = i + c.len_utf8();
        }
        f.write_str(&s[last..])
    }
}

/// The CSS class of a level.
fn class(level: Level) -> &'static str {
    match level {
        Level::Green => "green",
        Level::Yellow => "yellow",
        Level::Red => "red",
    }
}

/// The level of a verdict: red when it failed, else its share of the
/// limit for a ceiling on a peak; `None` for other passed checks.
fn verdict_level(v: &Verdict) -> Option<Level> {
    if !v.passed {
        Some(Level::Red)
    } else if v.check.is_usage() {
        Some(Level::of(v.usage()))
    } else {
        None
    }
}

/// A verdict as a coloured chip.
fn chip(out: &mut String, v: &Verdict) {
    let level = verdict_level(v).map_or("plain", class);
    let fail = if v.passed { "" } else { " FAIL" };
    let _ = write!(
        out,
        "<span class=\"chip {level}\">{}{fail}</span>",
        Esc(&verdict_text(v))
    );
}

/// A number with at most one decimal, for SVG coordinates.
fn num(v: f64) -> String {
    let s = format!("{v:.1}");
    match s.strip_suffix(".0") {
        Some(whole) if whole != "-0" => whole.to_string(),
        Some(_) => "0".to_string(),
        None => s,
    }
}

// ---- the overview table ----

/// One table row per entry: verdict, L1 and DRAM peaks with their limits,
/// leaked bytes, and the CB peak per core where programs ran.
fn overview(out: &mut String, entries: &[Entry<'_>]) {
    fn first<'a>(e: &Entry<'a>) -> Option<&'a DeviceReport> {
        e.memory.and_then(|m| m.devices.first())
    }
    let with_cb = entries
        .iter()
        .any(|e| first(e).is_some_and(|d| d.cores.as_ref().is_some_and(|c| c.enqueued)));
    out.push_str(
        "<table class=\"overview\">\n<thead><tr><th>Test</th><th>Result</th><th class=\"num\">L1 peak</th>\
         <th class=\"num\">DRAM peak</th><th class=\"num\">Leaked</th>",
    );
    if with_cb {
        out.push_str("<th class=\"num\">CB peak per core</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (i, e) in entries.iter().enumerate() {
        let (word, level) = if e.passed {
            ("ok", "green")
        } else {
            ("FAILED", "red")
        };
        let _ = write!(
            out,
            "<tr><td><a href=\"#t{i}\">{}</a></td><td class=\"{level}\">{word}</td>",
            Esc(&e.name)
        );
        match first(e) {
            Some(d) => {
                peak_cell(out, d.pool(BufferType::L1));
                peak_cell(out, d.pool(BufferType::Dram));
                let leaked = d
                    .pools
                    .iter()
                    .fold(0u64, |s, p| s.saturating_add(p.retained_total()));
                let red = if leaked > 0 { " red" } else { "" };
                let _ = write!(
                    out,
                    "<td class=\"num{red}\">{}</td>",
                    format_bytes(leaked)
                );
                if with_cb {
                    match d.cores.as_ref().filter(|c| c.enqueued) {
                        Some(c) => {
                            let verdict = c
                                .checks
                                .iter()
                                .find(|v| v.check == CheckKind::CbPeakPerCore);
                            let text = match verdict {
                                Some(v) => format!(
                                    "{} / {}",
                                    format_bytes(c.cb_peak_per_core),
                                    format_bytes(v.limit)
                                ),
                                None => format_bytes(c.cb_peak_per_core),
                            };
                            let level = verdict.and_then(verdict_level).map_or("", class);
                            let _ = write!(out, "<td class=\"num {level}\">{text}</td>");
                        }
                        None => out.push_str("<td class=\"num\">-</td>"),
                    }
                }
            }
            None => {
                let cells = if with_cb { 4 } else { 3 };
                for _ in 0..cells {
                    out.push_str("<td class=\"num\">-</td>");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// A pool's peak above the start, with its peak limit (the total one when
/// set, else the per-bank one) coloured by its use.
fn peak_cell(out: &mut String, p: &PoolReport) {
    let verdict = p.checks.iter().find(|v| v.check == CheckKind::Peak);
    match verdict {
        Some(v) => {
            let (peak, unit) = if v.per_bank {
                (p.peak_per_bank.saturating_sub(p.before_per_bank), "/bank")
            } else {
                (p.peak_above_baseline_total, "")
            };
            let level = verdict_level(v).map_or("", class);
            let _ = write!(
                out,
                "<td class=\"num {level}\">{} / {}{unit}</td>",
                format_bytes(peak),
                format_bytes(v.limit)
            );
        }
        None => {
            let _ = write!(
                out,
                "<td class=\"num\">{}</td>",
                format_bytes(p.peak_above_baseline_total)
            );
        }
    }
}

// ---- one entry ----

fn section(
    out: &mut String,
    index: usize,
    e: &Entry<'_>,
    drawn: bool,
    open: bool,
    not_drawn: usize,
) {
    let (state, word, level) = if e.passed {
        ("passed", "ok", "green")
    } else {
        ("failed", "FAILED", "red")
    };
    let _ = write!(
        out,
        "<section class=\"test {state}\" id=\"t{index}\">\n<details{}>\n<summary><span class=\"verdict {level}\">{word}</span> \
         <span class=\"name\">{}</span>",
        if open { " open" } else { "" },
        Esc(&e.name)
    );
    if !e.meta.is_empty() {
        let _ = write!(out, " <span class=\"meta\">{}</span>", Esc(&e.meta));
    }
    if let Some(m) = e.memory {
        let _ = write!(out, "<span class=\"sum\">{}</span>", Esc(&m.summary_line()));
    }
    out.push_str("</summary>\n<div class=\"body\">\n");
    if let Some(error) = e.error {
        let _ = writeln!(out, "<pre class=\"error\">{}</pre>", Esc(error.trim_end()));
    }
    match e.memory {
        None => out.push_str("<p class=\"note\">memory not measured: the test did not run on a device</p>\n"),
        Some(m) => {
            let many = m.devices.len() > 1;
            for d in &m.devices {
                device(out, d, many, drawn, not_drawn);
            }
            if !m.passed {
                let _ = writeln!(
                    out,
                    "<details class=\"text\"><summary>the report as text</summary><pre>{}</pre></details>",
                    Esc(m.render(false).trim_end())
                );
            }
        }
    }
    out.push_str("</div>\n</details>\n</section>\n");
}

/// One device: its pool table, per-core figures, leaks, plots and maps.
fn device(out: &mut String, d: &DeviceReport, named: bool, drawn: bool, not_drawn: usize) {
    if named || d.inherited > 0 {
        let _ = write!(out, "<h3>device {}", Esc(&d.device));
        if d.inherited > 0 {
            let plural = if d.inherited == 1 { "" } else { "s" };
            let _ = write!(
                out,
                " <span class=\"meta\">inherited {} live allocation{plural}</span>",
                format_count(d.inherited)
            );
        }
        out.push_str("</h3>\n");
    }
    out.push_str(
        "<table class=\"pools\"><thead><tr><th>Pool</th><th class=\"num\">Before</th><th class=\"num\">After</th>\
         <th class=\"num\">Peak</th><th class=\"num\">Delta</th><th>Budgets</th></tr></thead><tbody>\n",
    );
    for p in d.pools.iter().filter(|p| p.num_banks > 0) {
        let delta = if p.delta_total >= 0 {
            format!("+{}", format_bytes(p.delta_total as u64))
        } else {
            format!("-{}", format_bytes(p.delta_total.unsigned_abs()))
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{delta}</td><td>",
            p.buffer_type,
            format_bytes(p.before_total),
            format_bytes(p.after_total),
            format_bytes(p.peak_total),
        );
        let mut any = false;
        for v in p
            .checks
            .iter()
            .filter(|v| !v.passed || v.source != BudgetSource::Default)
        {
            chip(out, v);
            any = true;
        }
        if !any {
            out.push_str("<span class=\"muted\">-</span>");
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody></table>\n");
    if let Some(c) = &d.cores {
        out.push_str("<p class=\"cores\">per core: ");
        if c.enqueued {
            let _ = write!(
                out,
                "CB peak {}, L1 peak {}, least CB headroom {} ",
                format_bytes(c.cb_peak_per_core),
                format_bytes(c.l1_peak_per_core),
                c.min_headroom.map_or_else(|| "-".to_string(), format_bytes)
            );
        } else {
            out.push_str("no program with circular buffers enqueued ");
        }
        for v in &c.checks {
            chip(out, v);
        }
        out.push_str("</p>\n");
    }
    allocations(out, "leaked", &d.leaked);
    allocations(out, "persistent (allowed, not counted as leaks)", &d.persistent);
    if !drawn {
        let _ = writeln!(
            out,
            "<p class=\"note\">plots not drawn: this page draws every failure and the {DRAWN_PASSING} passing tests with the largest peaks ({not_drawn} not drawn)</p>"
        );
        return;
    }
    match &d.detail {
        None => out.push_str(
            "<p class=\"note\">no timeline recorded: the report was made without GuardOptions::explain (the runner turns it on under --memory-html)</p>\n",
        ),
        Some(detail) => draw(out, d, detail),
    }
}

fn allocations(out: &mut String, title: &str, list: &[Allocation]) {
    if list.is_empty() {
        return;
    }
    let _ = write!(out, "<p class=\"allocs\"><b>{title}</b></p><ul class=\"allocs\">");
    for a in list {
        out.push_str("<li>");
        if let Some(label) = &a.label {
            let _ = write!(out, "<b>{}</b> ", Esc(label));
        }
        let _ = write!(
            out,
            "{} {} ({} B per bank × {} banks) at {:#x}",
            format_bytes(a.size),
            a.buffer_type,
            format_count(a.size_per_bank),
            a.num_banks,
            a.address
        );
        if let Some(shards) = a.shards {
            let _ = write!(out, ", sharded over {shards} cores");
        }
        match &a.location {
            Some(loc) => {
                let _ = write!(out, ", allocated at <code>{}</code>", Esc(&loc.to_string()));
            }
            None => {
                let _ = write!(out, ", buffer id {}", a.id);
            }
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>\n");
}

/// Whether the scope allocated or freed in pool `t`.
fn used(d: &DeviceReport, detail: &DeviceDetail, t: BufferType) -> bool {
    let p = d.pool(t);
    let i = t.index();
    let start = detail.timeline.start_per_bank[i];
    p.num_banks > 0
        && (p.peak_per_bank != p.before_per_bank
            || p.after_per_bank != p.before_per_bank
            || detail.timeline.points.iter().any(|pt| {
                pt.high_per_bank[i] != start
                    || pt.low_per_bank[i] != start
                    || pt.end_per_bank[i] != start
            }))
}

/// The plots of the pools used and the two bank maps.
fn draw(out: &mut String, d: &DeviceReport, detail: &DeviceDetail) {
    let pools: Vec<BufferType> = BufferType::ALL
        .into_iter()
        .filter(|&t| used(d, detail, t))
        .collect();
    if pools.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"note\">no allocations or frees in the scope ({} events)</p>",
            format_count(detail.timeline.events)
        );
    } else {
        out.push_str("<div class=\"plots\">\n");
        for &t in &pools {
            timeline(out, &detail.timeline, d.pool(t));
        }
        out.push_str("</div>\n");
    }
    let cbs = detail.circular_buffers.as_ref();
    let any = |ts: &[BufferType]| ts.iter().any(|t| pools.contains(t));
    let mut maps = String::new();
    if any(&[BufferType::L1, BufferType::L1Small]) || cbs.is_some() {
        bank(&mut maps, d, detail, "L1", &[BufferType::L1, BufferType::L1Small], cbs);
    }
    if any(&[BufferType::Dram, BufferType::Trace]) {
        bank(&mut maps, d, detail, "DRAM", &[BufferType::Dram, BufferType::Trace], None);
    }
    if !maps.is_empty() {
        let _ = writeln!(
            out,
            "<div class=\"maps\">\n{maps}<p class=\"legend\"><i class=\"sw blk\"></i>buffer <i class=\"sw inh\"></i>live before the scope \
             <i class=\"sw co\"></i>L1_SMALL or TRACE buffer <i class=\"sw cb\"></i>circular buffer <i class=\"sw free\"></i>free \
             <i class=\"sw cofree\"></i>free carve-out <i class=\"sw unk\"></i>not known: hover for sizes and sites</p>\n</div>"
        );
    }
}

// ---- the timeline plot ----

const PLOT_LEFT: f64 = 72.0;
const PLOT_WIDTH: f64 = 480.0;
const PLOT_TOP: f64 = 10.0;
const PLOT_HEIGHT: f64 = 130.0;
/// Columns of a plot at most (2 px each).
const COLUMNS: u64 = 240;

/// Allocated bytes per bank over one stretch of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Column {
    high: u64,
    low: u64,
    end: u64,
}

/// The timeline of pool `pool` in at most [`COLUMNS`] columns over events
/// `0..=events` (0 is the start): each column the highest and lowest
/// values of the states it covers and the last state's value.
fn columns(t: &Timeline, pool: usize) -> Vec<Column> {
    let start = t.start_per_bank[pool];
    let domain = t
        .points
        .iter()
        .map(|p| p.last_event.saturating_add(1))
        .fold(t.events.saturating_add(1), u64::max)
        .max(1);
    let n = domain.min(COLUMNS) as usize;
    let mut cols: Vec<Option<Column>> = vec![None; n];
    let states = std::iter::once((0, 1, start, start, start)).chain(t.points.iter().map(|p| {
        (
            p.first_event.min(p.last_event),
            p.last_event.saturating_add(1),
            p.high_per_bank[pool],
            p.low_per_bank[pool],
            p.end_per_bank[pool],
        )
    }));
    for (a, b, high, low, end) in states {
        let scale = |x: u64, up: bool| {
            let v = u128::from(x) * n as u128;
            let d = u128::from(domain);
            (if up { v.div_ceil(d) } else { v / d }).min(n as u128) as usize
        };
        let c0 = scale(a, false).min(n - 1);
        let c1 = scale(b, true).max(c0 + 1);
        for col in &mut cols[c0..c1] {
            *col = Some(match *col {
                None => Column {
                    high: high.max(low),
                    low: low.min(high),
                    end,
                },
                Some(c) => Column {
                    high: c.high.max(high),
                    low: c.low.min(low),
                    end,
                },
            });
        }
    }
    let mut last = Column {
        high: start,
        low: start,
        end: start,
    };
    cols.into_iter()
        .map(|c| {
            let c = c.unwrap_or(Column {
                high: last.end,
                low: last.end,
                end: last.end,
            });
            last = c;
            c
        })
        .collect()
}

/// Runs of equal values: `(first column, past the last, value)`.
fn runs(values: impl Iterator<Item = u64>) -> Vec<(usize, usize, u64)> {
    let mut out: Vec<(usize, usize, u64)> = Vec::new();
    for (i, v) in values.enumerate() {
        match out.last_mut() {
            Some(last) if last.2 == v => last.1 = i + 1,
            _ => out.push((i, i + 1, v)),
        }
    }
    out
}

/// The y axis: a top value rounded up to a few steps of a power of two
/// (so that labels read 256.0 KiB, 512.0 KiB), and the step.
fn axis(highest: f64) -> (f64, f64) {
    let highest = highest.max(1.0);
    let mut step = 1.0f64;
    while highest / step > 4.0 {
        step *= 2.0;
    }
    ((highest / step).ceil() * step, step)
}

/// One pool's plot: allocated bytes per bank by event, the band between
/// the lowest and highest values of merged events, the value after them as
/// a line, and each peak limit as a dashed line.
fn timeline(out: &mut String, t: &Timeline, p: &PoolReport) {
    let pool = p.buffer_type.index();
    let banks = f64::from(p.num_banks.max(1));
    // Peak limits are above the start: total limits are drawn per bank.
    let limits: Vec<(f64, &Verdict)> = p
        .checks
        .iter()
        .filter(|v| v.check == CheckKind::Peak)
        .map(|v| {
            let per_bank = if v.per_bank {
                v.limit as f64
            } else {
                v.limit as f64 / banks
            };
            (p.before_per_bank as f64 + per_bank, v)
        })
        .collect();
    let level = limits
        .iter()
        .filter_map(|(_, v)| verdict_level(v))
        .max_by_key(|l| *l as u8)
        .map_or("plain", class);
    let cols = columns(t, pool);
    let highest = cols.iter().map(|c| c.high).max().unwrap_or(0);
    let top_value = limits
        .iter()
        .map(|(y, _)| *y)
        .fold(highest as f64, f64::max)
        * 1.05;
    let (top, step) = axis(top_value);
    let y = |v: f64| num(PLOT_TOP + PLOT_HEIGHT * (1.0 - v / top));
    let width = PLOT_WIDTH / cols.len() as f64;
    let x = |c: usize| num(PLOT_LEFT + c as f64 * width);

    let stride = if t.stride > 1 {
        format!(
            "; each column covers up to {} events, its band their lowest and highest values",
            format_count(t.stride)
        )
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<figure class=\"plot\"><figcaption><b>{}</b> allocated per bank: peak {} ({} over the start), {} at the end</figcaption>\n\
         <svg viewBox=\"0 0 560 164\" role=\"img\" aria-label=\"{} allocated bytes per bank over {} events\"><title>{} allocated bytes per bank over {} events{stride}</title>\n",
        p.buffer_type,
        format_bytes(p.peak_per_bank),
        format_bytes(p.peak_per_bank.saturating_sub(p.before_per_bank)),
        format_bytes(p.after_per_bank),
        p.buffer_type,
        format_count(t.events),
        p.buffer_type,
        format_count(t.events),
    );
    // Grid and y labels.
    let mut tick = 0.0;
    while tick <= top {
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/><text class=\"ax\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            num(PLOT_LEFT),
            num(PLOT_LEFT + PLOT_WIDTH),
            y(tick),
            y(tick),
            num(PLOT_LEFT - 6.0),
            num(PLOT_TOP + PLOT_HEIGHT * (1.0 - tick / top) + 4.0),
            format_bytes(tick as u64)
        );
        tick += step;
    }
    // The band, then the line.
    let high = runs(cols.iter().map(|c| c.high));
    let low = runs(cols.iter().map(|c| c.low));
    let mut d = format!("M{},{}", x(high[0].0), y(high[0].2 as f64));
    for (k, r) in high.iter().enumerate() {
        let _ = write!(d, "H{}", x(r.1));
        if let Some(next) = high.get(k + 1) {
            let _ = write!(d, "V{}", y(next.2 as f64));
        }
    }
    for r in low.iter().rev() {
        let _ = write!(d, "V{}H{}", y(r.2 as f64), x(r.0));
    }
    d.push('Z');
    let _ = writeln!(out, "<path class=\"band {level}\" d=\"{d}\"/>");
    let end = runs(cols.iter().map(|c| c.end));
    let mut d = format!("M{},{}", x(end[0].0), y(end[0].2 as f64));
    for (k, r) in end.iter().enumerate() {
        let _ = write!(d, "H{}", x(r.1));
        if let Some(next) = end.get(k + 1) {
            let _ = write!(d, "V{}", y(next.2 as f64));
        }
    }
    let _ = writeln!(out, "<path class=\"line {level}\" d=\"{d}\"/>");
    // The peak limits.
    for (value, v) in &limits {
        let unit = if v.per_bank { " per bank" } else { "" };
        let _ = writeln!(
            out,
            "<g class=\"limit\"><title>peak limit {}{unit} above the start ({} per bank in all), {}</title><line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">limit {}{unit}</text></g>",
            format_bytes(v.limit),
            format_bytes(*value as u64),
            Esc(&v.source.to_string()),
            num(PLOT_LEFT),
            num(PLOT_LEFT + PLOT_WIDTH),
            y(*value),
            y(*value),
            num(PLOT_LEFT + PLOT_WIDTH - 4.0),
            num(PLOT_TOP + PLOT_HEIGHT * (1.0 - value / top) - 4.0),
            format_bytes(v.limit)
        );
    }
    // The x axis.
    let _ = write!(
        out,
        "<text class=\"ax\" x=\"{}\" y=\"158\">start</text><text class=\"ax\" x=\"{}\" y=\"158\" text-anchor=\"end\">{} event{}</text>\n</svg></figure>\n",
        num(PLOT_LEFT),
        num(PLOT_LEFT + PLOT_WIDTH),
        format_count(t.events),
        if t.events == 1 { "" } else { "s" }
    );
}

// ---- the bank maps ----

const MAP_LEFT: f64 = 4.0;
const MAP_WIDTH: f64 = 992.0;

/// Something drawn in a bank map.
enum Piece<'a> {
    Block { entry: &'a PeakEntry, carve_out: bool },
    Free { carve_out: bool },
    Unknown(BufferType),
    Cb(&'a CircularBufferPlacement),
}

/// A piece with its address range, `[address, address + size)`.
struct Placed<'a> {
    address: u64,
    size: u64,
    piece: Piece<'a>,
}

/// One bank of the pools `pools` (the main one first, then its carve-out
/// at the top), each at its peak, with the circular buffers at the bottom.
fn bank(
    out: &mut String,
    d: &DeviceReport,
    detail: &DeviceDetail,
    name: &str,
    pools: &[BufferType],
    cbs: Option<&ProgramPeak>,
) {
    let maps: Vec<&BankMap> = pools
        .iter()
        .filter_map(|&t| detail.map(t))
        .filter(|m| m.size_per_bank > 0)
        .collect();
    if maps.is_empty() {
        return;
    }
    let mut pieces = Vec::new();
    let mut cb_pieces = Vec::new();
    for (i, m) in maps.iter().enumerate() {
        let carve_out = i > 0;
        match m.segments() {
            Some(segments) => {
                for s in segments {
                    let piece = match s {
                        Segment::Block(entry) => Piece::Block { entry, carve_out },
                        Segment::Free { .. } => Piece::Free { carve_out },
                    };
                    pieces.push(Placed {
                        address: s.address(),
                        size: s.size(),
                        piece,
                    });
                }
            }
            None => pieces.push(Placed {
                address: m.base_address,
                size: m.size_per_bank,
                piece: Piece::Unknown(m.buffer_type),
            }),
        }
    }
    if let Some(p) = cbs {
        for cb in &p.circular_buffers {
            cb_pieces.push(Placed {
                address: cb.address,
                size: cb.size,
                piece: Piece::Cb(cb),
            });
        }
    }
    let lo = pieces
        .iter()
        .chain(&cb_pieces)
        .map(|p| p.address)
        .min()
        .unwrap_or(0);
    let hi = pieces
        .iter()
        .chain(&cb_pieces)
        .map(|p| p.address.saturating_add(p.size))
        .max()
        .unwrap_or(1)
        .max(lo + 1);

    let _ = write!(out, "<figure class=\"map\"><figcaption><b>{name} bank</b> ");
    for m in &maps {
        let p = d.pool(m.buffer_type);
        let at_peak = m
            .at_peak
            .as_ref()
            .map_or(p.peak_per_bank, |c| c.peak_per_bank);
        let share = at_peak as f64 / m.size_per_bank as f64;
        let _ = write!(
            out,
            "<span class=\"chip {}\">{} at its peak: {} of {} ({:.0}%), {:#x}..{:#x}</span>",
            class(Level::of(share)),
            m.buffer_type,
            format_bytes(at_peak),
            format_bytes(m.size_per_bank),
            share * 100.0,
            m.base_address,
            m.base_address.saturating_add(m.size_per_bank)
        );
    }
    if let Some(p) = cbs {
        let _ = write!(
            out,
            "<span class=\"chip plain\">lower strip: the circular buffers of program {} on core {} at its enqueue, {} with {} of headroom</span>",
            p.program,
            p.core,
            format_bytes(p.cb_bytes),
            format_bytes(p.headroom)
        );
    }
    out.push_str("</figcaption>\n");
    bar(out, lo, hi, &pieces, &cb_pieces, &maps);
    // Small allocations in a large bank: the same again, zoomed on them.
    let hull = pieces
        .iter()
        .chain(&cb_pieces)
        .filter(|p| matches!(p.piece, Piece::Block { .. } | Piece::Cb(_)))
        .fold(None, |acc: Option<(u64, u64)>, p| {
            let end = p.address.saturating_add(p.size);
            Some(acc.map_or((p.address, end), |(a, b)| (a.min(p.address), b.max(end))))
        });
    if let Some((a, b)) = hull
        && (b - a).saturating_mul(5) < hi - lo
    {
        let pad = (b - a) / 20 + 1;
        let (za, zb) = (a.saturating_sub(pad).max(lo), b.saturating_add(pad).min(hi));
        let _ = writeln!(
            out,
            "<p class=\"zoom\">zoomed on the allocations, {za:#x}..{zb:#x}:</p>"
        );
        bar(out, za, zb, &pieces, &cb_pieces, &maps);
    }
    out.push_str("</figure>\n");
}

/// The address range `lo..hi` of a bank as a horizontal bar: the pools'
/// pieces above, the circular buffers below.
fn bar(
    out: &mut String,
    lo: u64,
    hi: u64,
    pieces: &[Placed<'_>],
    cbs: &[Placed<'_>],
    maps: &[&BankMap],
) {
    let span = (hi - lo) as f64;
    let x = |a: u64| MAP_LEFT + (a.clamp(lo, hi) - lo) as f64 / span * MAP_WIDTH;
    let lane_h = 40.0;
    let cb_h = 20.0;
    let height = if cbs.is_empty() { 66.0 } else { 90.0 };
    let axis_y = height - 6.0;
    let _ = writeln!(
        out,
        "<svg viewBox=\"0 0 1000 {}\" role=\"img\" aria-label=\"bank map {lo:#x} to {hi:#x}\">",
        num(height)
    );
    let mut draw = |p: &Placed<'_>, top: f64, h: f64| {
        let end = p.address.saturating_add(p.size);
        if end <= lo || p.address >= hi {
            return;
        }
        let x0 = x(p.address);
        let mut w = x(end) - x0;
        let (class, title, label) = match &p.piece {
            Piece::Block { entry, carve_out } => {
                let class = if entry.inherited {
                    "inh"
                } else if *carve_out {
                    "co"
                } else {
                    "blk"
                };
                let name = entry
                    .label
                    .clone()
                    .unwrap_or_else(|| format!("#{}", entry.id));
                let mut title = format!(
                    "{} #{}: {} per bank at {:#x}..{:#x} ({} requested, {} of the pool's peak)",
                    entry.label.as_deref().unwrap_or("(unlabelled)"),
                    entry.id,
                    format_bytes(entry.size_per_bank),
                    entry.address,
                    end,
                    format_bytes(entry.size),
                    format_bytes(entry.contributed_total)
                );
                if let Some(loc) = &entry.location {
                    let _ = write!(title, ", allocated at {loc}");
                }
                if entry.inherited {
                    title.push_str("; live before the scope");
                }
                (class, title, Some(name))
            }
            Piece::Free { carve_out } => (
                if *carve_out { "cofree" } else { "free" },
                format!(
                    "free: {} at {:#x}..{:#x}",
                    format_bytes(p.size),
                    p.address,
                    end
                ),
                None,
            ),
            Piece::Unknown(t) => (
                "unk",
                format!(
                    "{t}: the allocations at the peak are not known (allocations made outside tt-memguard, or more than its log keeps)"
                ),
                None,
            ),
            Piece::Cb(cb) => {
                let indices: Vec<String> = cb.indices.iter().map(u8::to_string).collect();
                (
                    "cb",
                    format!(
                        "CB {} (index {}) on {}: {} at {:#x}..{:#x}",
                        cb.handle,
                        indices.join(", "),
                        cb.cores,
                        format_bytes(cb.size),
                        cb.address,
                        end
                    ),
                    Some(format!("CB {}", cb.handle)),
                )
            }
        };
        if !matches!(p.piece, Piece::Free { .. }) {
            w = w.max(1.5);
        }
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}</title></rect>",
            num(x0),
            num(top),
            num(w),
            num(h),
            Esc(&title)
        );
        if let Some(label) = label {
            // About 6.5 units a character at 11 px.
            let fits = ((w - 8.0) / 6.5).floor();
            if fits >= 3.0 {
                let fits = fits as usize;
                let shown: String = if label.chars().count() > fits {
                    label
                        .chars()
                        .take(fits - 1)
                        .chain(std::iter::once('…'))
                        .collect()
                } else {
                    label
                };
                let _ = write!(
                    out,
                    "<text class=\"lbl\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                    num(x0 + w / 2.0),
                    num(top + h / 2.0 + 4.0),
                    Esc(&shown)
                );
            }
        }
        out.push('\n');
    };
    // Free gaps first, blocks over them (a block is at least 1.5 units wide).
    for p in pieces.iter().filter(|p| matches!(p.piece, Piece::Free { .. })) {
        draw(p, 4.0, lane_h);
    }
    for p in pieces.iter().filter(|p| !matches!(p.piece, Piece::Free { .. })) {
        draw(p, 4.0, lane_h);
    }
    for p in cbs {
        draw(p, 4.0 + lane_h + 4.0, cb_h);
    }
    // Where a carve-out starts, and the range's ends.
    for m in maps.iter().skip(1) {
        if m.base_address > lo && m.base_address < hi {
            let bx = num(x(m.base_address));
            let _ = writeln!(
                out,
                "<line class=\"edge\" x1=\"{bx}\" x2=\"{bx}\" y1=\"0\" y2=\"{}\"/>",
                num(4.0 + lane_h + 4.0)
            );
        }
    }
    let _ = writeln!(
        out,
        "<text class=\"ax\" x=\"{}\" y=\"{}\">{lo:#x}</text><text class=\"ax\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{hi:#x}</text>\n</svg>",
        num(MAP_LEFT),
        num(axis_y),
        num(MAP_LEFT + MAP_WIDTH),
        num(axis_y)
    );
}

const STYLE: &str = "\
:root{--ink:#1d2430;--muted:#5b6575;--line:#d9dee6;--green:#1b7f3b;--yellow:#9a6700;--red:#c0262d;\
--green-bg:#e2f4e7;--yellow-bg:#fff1cc;--red-bg:#fde3e3}\
*{box-sizing:border-box}\
body{margin:0;background:#f5f6f8;color:var(--ink);font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif}\
header,main,footer{max-width:1180px;margin:0 auto;padding:0 24px}\
h1{font-size:24px;margin:22px 0 2px}h3{font-size:15px;margin:14px 0 6px}\
.totals{font-size:16px;margin:0 0 4px}.legend{color:var(--muted);margin:4px 0}\
.warn{background:var(--yellow-bg);padding:6px 10px;border-radius:4px}\
table{border-collapse:collapse}th{text-align:left;font-weight:600;color:var(--muted)}\
.overview{width:100%;background:#fff;border:1px solid var(--line);border-radius:6px;margin:12px 0 18px}\
.overview td,.overview th{padding:4px 10px;border-bottom:1px solid var(--line)}\
.overview a{color:inherit;text-decoration:none}.overview a:hover{text-decoration:underline}\
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.green{color:var(--green)}.yellow{color:var(--yellow)}.red{color:var(--red)}.muted{color:var(--muted)}\
.chip{display:inline-block;padding:1px 8px;margin:1px 6px 1px 0;border-radius:10px;font-size:12px;background:#eef0f3;color:var(--ink)}\
.chip.green{background:var(--green-bg);color:var(--green)}.chip.yellow{background:var(--yellow-bg);color:var(--yellow)}\
.chip.red{background:var(--red-bg);color:var(--red)}\
section.test{background:#fff;border:1px solid var(--line);border-left:5px solid var(--green);border-radius:6px;margin:10px 0}\
section.test.failed{border-left-color:var(--red)}\
section.test>details>summary{cursor:pointer;padding:9px 14px;display:flex;flex-wrap:wrap;gap:4px 10px;align-items:baseline}\
.verdict{font-weight:700;min-width:4.5em}.name{font-weight:600;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
.meta{color:var(--muted);font-size:12px}.sum{color:var(--muted);font-size:12px;margin-left:auto}\
.body{padding:0 16px 12px}\
.pools td,.pools th{padding:3px 12px 3px 0;border-bottom:1px solid #eef0f3;vertical-align:top}\
pre{white-space:pre-wrap;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;margin:6px 0}\
pre.error{background:var(--red-bg);color:#7a1419;padding:8px 10px;border-radius:4px}\
details.text summary{cursor:pointer;color:var(--muted);font-size:12px;margin-top:8px}details.text pre{background:#f5f6f8;padding:8px 10px}\
.note{color:var(--muted);font-style:italic}.cores{margin:6px 0}ul.allocs{margin:2px 0 6px;padding-left:20px}p.allocs{margin:8px 0 0}\
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
.plots{display:flex;flex-wrap:wrap;gap:4px 24px;margin-top:10px}\
figure{margin:8px 0}figcaption{font-size:12px;color:var(--muted);margin-bottom:2px}figcaption b{color:var(--ink)}\
.plot svg{width:560px;max-width:100%;height:auto}.map svg{width:100%;height:auto;display:block}.zoom{font-size:12px;color:var(--muted);margin:6px 0 0}\
svg text{font:11px system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif;fill:var(--muted)}\
.grid{stroke:#e7eaef}.ax{fill:var(--muted)}\
.band{stroke:none;fill-opacity:.25}.line{fill:none;stroke-width:1.6}\
.band.plain{fill:#3b6fb6}.line.plain{stroke:#3b6fb6}.band.green{fill:var(--green)}.line.green{stroke:var(--green)}\
.band.yellow{fill:#d99a00}.line.yellow{stroke:#d99a00}.band.red{fill:var(--red)}.line.red{stroke:var(--red)}\
.limit line{stroke:var(--red);stroke-width:1.2;stroke-dasharray:5 4}.limit text{fill:var(--red)}\
rect{stroke:#fff;stroke-width:.6}rect.blk,.sw.blk{fill:#3b6fb6;background:#3b6fb6}rect.inh,.sw.inh{fill:#8c99ab;background:#8c99ab}\
rect.co,.sw.co{fill:#2a9d8f;background:#2a9d8f}rect.cb,.sw.cb{fill:#9b5fb0;background:#9b5fb0}\
rect.free,.sw.free{fill:#eef1f5;background:#eef1f5}rect.cofree,.sw.cofree{fill:#dcefed;background:#dcefed}\
rect.unk,.sw.unk{fill:#d5dae2;background:#d5dae2;stroke-dasharray:3 2;stroke:#8c99ab}\
.lbl{fill:#fff;pointer-events:none}.edge{stroke:var(--ink);stroke-width:1;stroke-dasharray:2 2}\
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin:0 4px 0 10px;vertical-align:-1px;border:1px solid #c9ced6}\
footer{color:var(--muted);font-size:12px;padding:16px 24px 32px}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cb_failure::CircularBufferPlacement;
    use crate::composition::PeakComposition;
    use crate::cores::CoreCoord;
    use crate::detail::{TimelinePoint, TIMELINE_POINTS};
    use crate::harness::TestRecord;
    use crate::types::SourceLocation;
    use crate::units::KIB;

    const L1_BASE: u64 = 0x16dc0;
    const L1_SIZE: u64 = 1_369_664 - 64 * KIB;

    fn verdict(limit: u64, actual: u64) -> Verdict {
        Verdict {
            check: CheckKind::Peak,
            per_bank: false,
            limit,
            actual,
            passed: actual <= limit,
            source: BudgetSource::Code,
        }
    }

    fn pool(t: BufferType, banks: u32, size: u64, peak_per_bank: u64, checks: Vec<Verdict>) -> PoolReport {
        PoolReport {
            buffer_type: t,
            num_banks: banks,
            size_per_bank: size,
            before_total: 0,
            after_total: 0,
            peak_total: peak_per_bank * u64::from(banks),
            delta_total: 0,
            peak_above_baseline_total: peak_per_bank * u64::from(banks),
            before_per_bank: 0,
            after_per_bank: 0,
            peak_per_bank,
            largest_free_block_after_per_bank: size,
            persistent_per_bank: 0,
            checks,
            fragmentation: None,
            peak_composition: None,
        }
    }

    fn entry(id: u64, label: &str, address: u64, size_per_bank: u64) -> PeakEntry {
        PeakEntry {
            id,
            label: Some(label.to_string()),
            address,
            size: size_per_bank * 64,
            size_per_bank,
            contributed_total: size_per_bank * 64,
            location: Some(SourceLocation {
                file: "tests/kernels.rs".into(),
                line: 12,
                column: 5,
            }),
            inherited: false,
        }
    }

    fn map(t: BufferType, base: u64, size: u64, entries: Vec<PeakEntry>) -> BankMap {
        BankMap {
            buffer_type: t,
            base_address: base,
            size_per_bank: size,
            at_peak: Some(PeakComposition {
                buffer_type: t,
                peak_per_bank: entries.iter().map(|e| e.size_per_bank).sum(),
                entries,
            }),
        }
    }

    /// A timeline of L1 rising by `step` per event to `n` events, then
    /// back to 0 at the last.
    fn ramp(n: u64, step: u64) -> Timeline {
        let stride = n.div_ceil(TIMELINE_POINTS as u64).next_power_of_two();
        let value = |e: u64| if e == n { 0 } else { e * step };
        let points = (1..=n)
            .step_by(stride as usize)
            .map(|first| {
                let last = (first + stride - 1).min(n);
                let values: Vec<u64> = (first..=last).map(value).collect();
                let at = |v: u64| [0, v, 0, 0];
                TimelinePoint {
                    first_event: first,
                    last_event: last,
                    high_per_bank: at(*values.iter().max().unwrap()),
                    low_per_bank: at(*values.iter().min().unwrap()),
                    end_per_bank: at(value(last)),
                }
            })
            .collect();
        Timeline {
            events: n,
            stride,
            start_per_bank: [0; 4],
            points,
        }
    }

    /// A device report: L1 peak `l1_peak` per bank of 64 banks against a
    /// 1 MiB total limit, with detail when `detail`.
    fn device(l1_peak: u64, label: &str, detail: bool) -> DeviceReport {
        let l1_limit = 64 * 16 * KIB;
        let pools = vec![
            pool(BufferType::Dram, 12, 1 << 30, 0, vec![]),
            pool(
                BufferType::L1,
                64,
                L1_SIZE,
                l1_peak,
                vec![verdict(l1_limit, l1_peak * 64)],
            ),
            pool(BufferType::L1Small, 64, 64 * KIB, 0, vec![]),
            pool(BufferType::Trace, 0, 0, 0, vec![]),
        ];
        let top = L1_BASE + L1_SIZE;
        let detail = detail.then(|| DeviceDetail {
            timeline: ramp(4, l1_peak / 3),
            maps: vec![
                map(BufferType::Dram, 0x40, 1 << 30, vec![]),
                map(
                    BufferType::L1,
                    L1_BASE,
                    L1_SIZE,
                    vec![entry(7, label, top - l1_peak, l1_peak)],
                ),
                map(BufferType::L1Small, top, 64 * KIB, vec![]),
            ],
            circular_buffers: Some(ProgramPeak {
                program: 1,
                core: CoreCoord::new(0, 0),
                cb_bytes: 96 * KIB,
                l1_buffers_per_bank: l1_peak,
                headroom: L1_SIZE - 96 * KIB - l1_peak,
                circular_buffers: vec![
                    CircularBufferPlacement {
                        handle: 0,
                        indices: vec![0],
                        size: 64 * KIB,
                        address: L1_BASE,
                        cores: "[0-0 - 7-7]".into(),
                    },
                    CircularBufferPlacement {
                        handle: 1,
                        indices: vec![16],
                        size: 32 * KIB,
                        address: L1_BASE + 64 * KIB,
                        cores: "[0-0 - 7-7]".into(),
                    },
                ],
            }),
        });
        DeviceReport {
            device: "wormhole_b0-0".into(),
            passed: l1_peak * 64 <= l1_limit,
            inherited: 0,
            pools,
            leaked: vec![],
            persistent: vec![],
            cores: None,
            detail,
        }
    }

    fn record(name: &str, l1_peak: u64, label: &str, detail: bool) -> TestRecord {
        let d = device(l1_peak, label, detail);
        let passed = d.passed;
        TestRecord {
            name: name.into(),
            binary: "kernels".into(),
            device: "sim:wormhole_b0".into(),
            status: if passed {
                TestStatus::Passed
            } else {
                TestStatus::Failed
            },
            error: None,
            memory: Some(MemoryReport {
                name: Some(name.into()),
                location: None,
                passed,
                panicked: false,
                devices: vec![d],
            }),
        }
    }

    fn run(tests: Vec<TestRecord>) -> RunReport {
        RunReport::new(None, tests)
    }

    /// The body of test section `name`.
    fn section_of<'a>(page: &'a str, name: &str) -> &'a str {
        let start = page
            .find(&format!("<span class=\"name\">{name}</span>"))
            .unwrap_or_else(|| panic!("no section {name}"));
        let end = page[start..].find("</section>").unwrap() + start;
        &page[start..end]
    }

    #[test]
    fn user_strings_are_escaped() {
        let evil = "<script>alert(\"x\")</script> & 'quotes'";
        let mut r = record(evil, 8 * KIB, evil, true);
        r.error = Some(format!("panicked: {evil}"));
        r.status = TestStatus::Failed;
        let page = render(&run(vec![r]));
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("'quotes'"));
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;";
        // The name (table, section), the error, and the block's label and title.
        assert!(page.matches(escaped).count() >= 4, "{page}");
        // The page's own two scripts only.
        assert_eq!(page.matches("<script>").count(), 2);
        assert_eq!(Esc("a\u{0}b\nc").to_string(), "a\u{FFFD}b\nc");
    }

    #[test]
    fn failing_tests_come_first_then_by_name() {
        let page = render(&run(vec![
            record("b_ok", 4 * KIB, "x", false),
            record("z_over", 20 * KIB, "x", false),
            record("a_ok", 4 * KIB, "x", false),
            record("c_over", 20 * KIB, "x", false),
        ]));
        let order: Vec<usize> = ["c_over", "z_over", "a_ok", "b_ok"]
            .iter()
            .map(|n| page.find(&format!("<span class=\"name\">{n}</span>")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        let rows: Vec<usize> = ["c_over", "z_over", "a_ok", "b_ok"]
            .iter()
            .map(|n| page.find(&format!("\">{n}</a>")).unwrap())
            .collect();
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
        assert!(page.contains("<title>memory report: 2 of 4 tests failed</title>"));
        assert!(page.contains("data-tests=\"4\""));
    }

    #[test]
    fn colours_follow_the_share_of_the_limit() {
        // 1 MiB over 64 banks is 16 KiB per bank: 11 KiB is 69 %, 13 KiB
        // 81 %, 15 KiB 94 %, 17 KiB over.
        for (peak, level) in [(11, "green"), (13, "yellow"), (15, "red"), (17, "red")] {
            let page = render(&run(vec![record("t", peak * KIB, "x", true)]));
            let section = section_of(&page, "t");
            assert!(
                section.contains(&format!("<span class=\"chip {level}\">peak ")),
                "{peak} KiB: {section}"
            );
            assert!(section.contains(&format!("<path class=\"band {level}\"")), "{peak}");
            assert!(page.contains(&format!("<td class=\"num {level}\">")), "{peak}");
            assert_eq!(section.contains(" FAIL</span>"), peak == 17);
        }
    }

    #[test]
    fn one_plot_per_used_pool_with_the_limit_line() {
        let page = render(&run(vec![record("t", 8 * KIB, "x", true)]));
        let section = section_of(&page, "t");
        // L1 only: DRAM, L1_SMALL and TRACE stayed at 0.
        assert_eq!(section.matches("<figure class=\"plot\">").count(), 1);
        assert!(section.contains("<b>L1</b> allocated per bank"));
        // The total limit of 1 MiB over 64 banks: 16 KiB per bank, at 16 of
        // the axis's 24 KiB (top 10, height 130).
        assert!(section.contains("<g class=\"limit\">"), "{section}");
        assert!(section.contains("limit 1.0 MiB</text>"), "{section}");
        assert!(section.contains("y1=\"53.3\" y2=\"53.3\""), "{section}");
        // Without a limit, no line.
        let mut r = record("t", 8 * KIB, "x", true);
        let memory = r.memory.as_mut().unwrap();
        memory.devices[0].pools[1].checks.clear();
        let page = render(&run(vec![r]));
        assert!(!page.contains("<g class=\"limit\">"));
        assert!(page.contains("<path class=\"band plain\""));
        // A DRAM allocation adds its plot.
        let mut r = record("t", 8 * KIB, "x", true);
        let d = &mut r.memory.as_mut().unwrap().devices[0];
        d.pools[0].peak_per_bank = 4096;
        let page = render(&run(vec![r]));
        assert_eq!(page.matches("<figure class=\"plot\">").count(), 2);
        assert!(page.contains("<b>DRAM</b> allocated per bank"));
    }

    #[test]
    fn bank_maps_show_blocks_carve_outs_and_circular_buffers() {
        let mut r = record("t", 8 * KIB, "x", true);
        let top = L1_BASE + L1_SIZE;
        let detail = r.memory.as_mut().unwrap().devices[0].detail.as_mut().unwrap();
        detail.maps[1] = map(
            BufferType::L1,
            L1_BASE,
            L1_SIZE,
            vec![entry(7, "weights", top - 256 * KIB, 256 * KIB)],
        );
        let page = render(&run(vec![r]));
        let section = section_of(&page, "t");
        assert_eq!(section.matches("<figure class=\"map\">").count(), 1, "L1 only");
        assert!(section.contains("<rect class=\"blk\""));
        let title = format!(
            "weights #7: 256.0 KiB per bank at {:#x}..{top:#x} (16.0 MiB requested, 16.0 MiB of the pool&#39;s peak), allocated at tests/kernels.rs:12:5",
            top - 256 * KIB
        );
        assert!(section.contains(&title), "{section}");
        assert!(section.contains(">weights</text>"));
        assert!(section.contains("<rect class=\"cofree\""), "L1_SMALL at the top");
        assert!(section.contains("<line class=\"edge\""));
        assert!(section.contains("<rect class=\"cb\""));
        assert!(section.contains("CB 1 (index 16) on [0-0 - 7-7]: 32.0 KiB at 0x26dc0..0x2edc0"));
        // Free gaps are drawn and titled.
        assert!(section.contains("<rect class=\"free\""));
        // The CB region sits at the bottom: left of the buffer.
        let cb = section.find("<rect class=\"cb\" x=\"4\"").expect("at the left edge");
        assert!(cb > 0);
    }

    #[test]
    fn small_allocations_in_a_large_bank_get_a_zoomed_bar() {
        let mut r = record("t", 8 * KIB, "x", true);
        let d = &mut r.memory.as_mut().unwrap().devices[0];
        d.pools[0].peak_per_bank = 88 * KIB;
        let detail = d.detail.as_mut().unwrap();
        detail.maps[0] = map(BufferType::Dram, 0x40, 1 << 30, vec![entry(3, "w", 0x40, 88 * KIB)]);
        let page = render(&run(vec![r]));
        assert!(page.contains("<b>DRAM bank</b>"));
        let end = 0x40 + 88 * KIB + 88 * KIB / 20 + 1;
        assert!(
            page.contains(&format!("zoomed on the allocations, 0x40..{end:#x}:")),
            "{page}"
        );
    }

    #[test]
    fn the_same_report_gives_the_same_bytes() {
        let tests = || {
            vec![
                record("b", 8 * KIB, "x", true),
                record("a", 20 * KIB, "y", true),
            ]
        };
        let page = render(&run(tests()));
        assert_eq!(page, render(&run(tests())));
        let mut reversed = tests();
        reversed.reverse();
        assert_eq!(page, render(&run(reversed)));
    }

    #[test]
    fn a_report_without_detail_still_renders() {
        let page = render(&run(vec![
            record("plain", 8 * KIB, "x", false),
            record("over", 20 * KIB, "x", false),
        ]));
        assert!(page.contains("no timeline recorded"));
        assert!(!page.contains("<svg"));
        assert!(page.contains("peak 1.2 MiB of 1.0 MiB (125%) [code] FAIL"), "{page}");
        assert!(page.contains("the report as text"));
        let empty = render(&RunReport::default());
        assert!(empty.contains("no tests") && empty.contains("data-tests=\"0\""));
        // A test that never ran on a device.
        let mut r = record("nodev", 8 * KIB, "x", false);
        r.memory = None;
        r.error = Some("cannot open the test's device".into());
        let page = render(&run(vec![r]));
        assert!(page.contains("memory not measured"));
    }

    #[test]
    fn plots_are_drawn_for_failures_and_the_largest_passing_peaks() {
        let mut tests: Vec<TestRecord> = (0..DRAWN_PASSING as u64 + 5)
            .map(|i| record(&format!("p{i:03}"), (i % 10 + 1) * KIB, "x", true))
            .collect();
        tests.push(record("over", 20 * KIB, "x", true));
        let page = render(&run(tests));
        assert!(section_of(&page, "over").contains("<svg"));
        // The five smallest peaks (1 KiB) of the first names are left out.
        let left_out: Vec<String> = (0..DRAWN_PASSING as u64 + 5)
            .map(|i| format!("p{i:03}"))
            .filter(|n| !section_of(&page, n).contains("<svg"))
            .collect();
        assert_eq!(left_out.len(), 5, "{left_out:?}");
        assert!(page.contains("plots not drawn"));
    }

    #[test]
    fn long_timelines_fit_in_the_columns() {
        let t = ramp(10_000, 1);
        assert!(t.points.len() <= TIMELINE_POINTS);
        let cols = columns(&t, 1);
        assert_eq!(cols.len(), COLUMNS as usize);
        assert_eq!(cols.iter().map(|c| c.high).max(), Some(9_999));
        assert_eq!(cols.last().unwrap().end, 0);
        assert_eq!(cols[0].low, 0);
        // Three events: four states, one column each.
        let cols = columns(&ramp(3, 10), 1);
        let ends: Vec<u64> = cols.iter().map(|c| c.end).collect();
        assert_eq!(ends, [0, 10, 20, 0]);
        assert_eq!(axis(1000.0), (1024.0, 256.0));
        assert_eq!(axis(0.0), (1.0, 1.0));
    }

    #[test]
    fn guard_reports_are_named_by_scope() {
        let mut a = record("named", 8 * KIB, "x", true).memory.unwrap();
        a.location = Some("tests/k.rs:3:9".into());
        let mut b = a.clone();
        b.name = None;
        let mut c = b.clone();
        c.location = None;
        c.panicked = true;
        let page = render_reports(&[a, b, c]);
        assert!(page.contains("<span class=\"name\">named</span> <span class=\"meta\">tests/k.rs:3:9</span>"));
        assert!(page.contains("<span class=\"name\">scope at tests/k.rs:3:9</span>"));
        assert!(page.contains("<span class=\"name\">scope 3</span>"));
        assert!(page.contains("the body panicked"));
        assert!(page.contains("3 scopes"));
    }

    #[test]
    fn writing_is_atomic_and_names_a_bad_path() {
        let dir = std::env::temp_dir().join(format!("memguard-html-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("memory.html");
        write(&run(vec![record("t", 8 * KIB, "x", true)]), &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("</html>\n"));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["memory.html"], "no temporary file is left");
        // A directory in the way.
        let e = write(&RunReport::default(), &dir.join("sub")).unwrap_err();
        assert!(matches!(&e, Error::Io { path, .. } if path.ends_with("sub")), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A long run's page stays light: 2.3 MB for 1,000 tests with a
    /// 512-point timeline each (1.35 KB a test without plots, 9.5 KB more
    /// with them).
    #[test]
    fn a_thousand_tests_make_a_light_page() {
        let tests: Vec<TestRecord> = (0..1000u64)
            .map(|i| {
                let mut r = record(&format!("test_{i:04}"), (i % 15 + 1) * KIB, "x", true);
                let d = &mut r.memory.as_mut().unwrap().devices[0];
                d.detail.as_mut().unwrap().timeline = ramp(5_000 + i, 7);
                r
            })
            .collect();
        let page = render(&run(tests));
        assert!(page.len() < 3 << 20, "{} bytes", page.len());
    }
}

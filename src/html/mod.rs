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
use crate::detail::DeviceDetail;
use crate::error::{Error, Result};
use crate::harness::{RunReport, TestStatus};
use crate::render::Level;
use crate::report::{DeviceReport, MemoryReport, PoolReport, Verdict, verdict_text};
use crate::types::{Allocation, BufferType};
use crate::units::{format_bytes, format_count};

mod map;
mod plot;

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
    passing.sort_by(|&a, &b| {
        weight(&entries[b])
            .cmp(&weight(&entries[a]))
            .then(a.cmp(&b))
    });
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
        format!(
            "memory report: {failed} of {total} {what}{} failed",
            plural(total)
        )
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
        overview(&mut out, &entries, what);
    }
    let open = total <= 20;
    let not_drawn = drawn.iter().filter(|d| !**d).count();
    for (i, entry) in entries.iter().enumerate() {
        section(
            &mut out,
            i,
            entry,
            drawn[i],
            open || !entry.passed,
            not_drawn,
        );
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
        "the run of {to_run} test{} has not finished: it is still in progress, or it ended early (a test ended the process, or the process was killed)",
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
fn overview(out: &mut String, entries: &[Entry<'_>], what: &str) {
    fn first<'a>(e: &Entry<'a>) -> Option<&'a DeviceReport> {
        e.memory.and_then(|m| m.devices.first())
    }
    let with_cb = entries
        .iter()
        .any(|e| first(e).is_some_and(|d| d.cores.as_ref().is_some_and(|c| c.enqueued)));
    let heading: String = what
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .chain(what.chars().skip(1))
        .collect();
    let _ = write!(
        out,
        "<table class=\"overview\">\n<thead><tr><th>{heading}</th><th>Result</th><th class=\"num\">L1 peak</th>\
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
                let leaked = leaked(d);
                let red = if leaked > 0 { " red" } else { "" };
                let _ = write!(out, "<td class=\"num{red}\">{}</td>", format_bytes(leaked));
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
                            number_cell(out, &text, level);
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
/// set, else the per-bank one), and the class of its use (none without a
/// limit).
fn peak_text(p: &PoolReport) -> (String, &'static str) {
    match p.checks.iter().find(|v| v.check == CheckKind::Peak) {
        Some(v) => {
            let (peak, unit) = if v.per_bank {
                (p.peak_per_bank.saturating_sub(p.before_per_bank), "/bank")
            } else {
                (p.peak_above_baseline_total, "")
            };
            let text = format!("{} / {}{unit}", format_bytes(peak), format_bytes(v.limit));
            (text, verdict_level(v).map_or("", class))
        }
        None => (format_bytes(p.peak_above_baseline_total), ""),
    }
}

fn peak_cell(out: &mut String, p: &PoolReport) {
    let (text, level) = peak_text(p);
    number_cell(out, &text, level);
}

/// A right-aligned table cell, coloured by `level` (a class, or empty).
fn number_cell(out: &mut String, text: &str, level: &str) {
    let sep = if level.is_empty() { "" } else { " " };
    let _ = write!(out, "<td class=\"num{sep}{level}\">{text}</td>");
}

/// Bytes retained over the start, not counting allowed persistent ones.
fn leaked(d: &DeviceReport) -> u64 {
    d.pools
        .iter()
        .fold(0u64, |s, p| s.saturating_add(p.retained_total()))
}

/// The figures in a section's heading: L1 and DRAM peaks with their
/// limits, and leaked bytes, per device.
fn summary(out: &mut String, m: &MemoryReport) {
    out.push_str("<span class=\"sum\">");
    for (i, d) in m.devices.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        if m.devices.len() > 1 {
            let _ = write!(out, "{}: ", Esc(&d.device));
        }
        for t in [BufferType::L1, BufferType::Dram] {
            let (text, level) = peak_text(d.pool(t));
            let _ = write!(out, "{t} peak <span class=\"{level}\">{text}</span> · ");
        }
        let _ = write!(out, "leaked {}", format_bytes(leaked(d)));
    }
    out.push_str("</span>");
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
        summary(out, m);
    }
    out.push_str("</summary>\n<div class=\"body\">\n");
    if let Some(error) = e.error {
        let _ = writeln!(out, "<pre class=\"error\">{}</pre>", Esc(error.trim_end()));
    }
    match e.memory {
        None => out.push_str(
            "<p class=\"note\">memory not measured: the test did not run on a device</p>\n",
        ),
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
    // An unconfigured carve-out (no bytes) has nothing to show.
    for p in d
        .pools
        .iter()
        .filter(|p| p.num_banks > 0 && (p.size_per_bank > 0 || !p.checks.is_empty()))
    {
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
    allocations(
        out,
        "persistent (allowed, not counted as leaks)",
        &d.persistent,
    );
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
    let _ = write!(
        out,
        "<p class=\"allocs\"><b>{title}</b></p><ul class=\"allocs\">"
    );
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
            plot::timeline(out, &detail.timeline, d.pool(t));
        }
        out.push_str("</div>\n");
    }
    let cbs = detail.circular_buffers.as_ref();
    let any = |ts: &[BufferType]| ts.iter().any(|t| pools.contains(t));
    let mut maps = String::new();
    if any(&[BufferType::L1, BufferType::L1Small]) || cbs.is_some() {
        map::bank(
            &mut maps,
            d,
            detail,
            "L1",
            &[BufferType::L1, BufferType::L1Small],
            cbs,
        );
    }
    if any(&[BufferType::Dram, BufferType::Trace]) {
        map::bank(
            &mut maps,
            d,
            detail,
            "DRAM",
            &[BufferType::Dram, BufferType::Trace],
            None,
        );
    }
    if !maps.is_empty() {
        let _ = writeln!(
            out,
            "<div class=\"maps\">\n{maps}<p class=\"legend\"><i class=\"sw blk\"></i>buffer <i class=\"sw inh\"></i>from before the scope \
             <i class=\"sw co\"></i>carve-out buffer <i class=\"sw cb\"></i>circular buffer <i class=\"sw free\"></i>free \
             <i class=\"sw cofree\"></i>free carve-out <i class=\"sw unk\"></i>not known · hover for sizes, addresses, sites</p>\n</div>"
        );
    }
}

const STYLE: &str = "\
:root{--ink:#1d2430;--muted:#5b6575;--line:#d9dee6;--green:#1b7f3b;--yellow:#9a6700;--red:#c0262d;\
--green-bg:#e2f4e7;--yellow-bg:#fff1cc;--red-bg:#fde3e3}\
*{box-sizing:border-box}\
body{margin:0;background:#f5f6f8;color:var(--ink);font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif}\
header,main,footer{max-width:1240px;margin:0 auto;padding:0 24px}\
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
.plots{display:flex;flex-wrap:wrap;gap:4px 16px;margin-top:10px}\
figure{margin:8px 0}figcaption{font-size:12px;color:var(--muted);margin-bottom:2px}figcaption b{color:var(--ink)}\
.plot svg{width:552px;max-width:100%;height:auto}.map svg{width:100%;height:auto;display:block}.zoom{font-size:12px;color:var(--muted);margin:6px 0 0}\
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
mod sample;
#[cfg(test)]
mod tests;

//! The timeline plot of one pool: allocated bytes per bank by event.

use std::fmt::Write as _;

use super::{Esc, class, num, verdict_level};
use crate::budget::CheckKind;
use crate::detail::Timeline;
use crate::report::{PoolReport, Verdict};
use crate::units::{format_bytes, format_count};

const PLOT_LEFT: f64 = 62.0;
const PLOT_WIDTH: f64 = 384.0;
const PLOT_TOP: f64 = 10.0;
const PLOT_HEIGHT: f64 = 130.0;
/// Columns of a plot at most (2 px each).
pub(super) const COLUMNS: u64 = 192;

/// Allocated bytes per bank over one stretch of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Column {
    pub high: u64,
    pub low: u64,
    pub end: u64,
}

/// The timeline of pool `pool` in at most [`COLUMNS`] columns over events
/// `0..=events` (0 is the start): each column the highest and lowest
/// values of the states it covers and the last state's value.
pub(super) fn columns(t: &Timeline, pool: usize) -> Vec<Column> {
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
pub(super) fn axis(highest: f64) -> (f64, f64) {
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
pub(super) fn timeline(out: &mut String, t: &Timeline, p: &PoolReport) {
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
         <svg viewBox=\"0 0 552 164\" role=\"img\" aria-label=\"{} allocated bytes per bank over {} events\"><title>{} allocated bytes per bank over {} events{stride}</title>\n",
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
    // The peak limits, labelled right of the plot.
    for (value, v) in &limits {
        let unit = if v.per_bank { " per bank" } else { "" };
        let line_y = PLOT_TOP + PLOT_HEIGHT * (1.0 - value / top);
        let _ = write!(
            out,
            "<g class=\"limit\"><title>peak limit {}{unit} above the start (set in {}): the line is at {} per bank</title>\
             <line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/><text x=\"{}\" y=\"{}\">limit {}</text>",
            format_bytes(v.limit),
            Esc(&v.source.to_string()),
            format_bytes(*value as u64),
            num(PLOT_LEFT),
            num(PLOT_LEFT + PLOT_WIDTH),
            num(line_y),
            num(line_y),
            num(PLOT_LEFT + PLOT_WIDTH + 6.0),
            num(line_y + 3.0),
            format_bytes(v.limit)
        );
        let note = if v.per_bank {
            "per bank"
        } else {
            "in all banks"
        };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\">{note}</text></g>",
            num(PLOT_LEFT + PLOT_WIDTH + 6.0),
            num(line_y + 15.0),
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

//! The address map of one bank at the peak: buffers, free gaps,
//! carve-outs and circular buffers, by address.

use std::fmt::Write as _;

use super::{Esc, class, num};
use crate::cb_failure::{CircularBufferPlacement, ProgramPeak};
use crate::composition::PeakEntry;
use crate::detail::{BankMap, DeviceDetail, Segment};
use crate::render::Level;
use crate::report::DeviceReport;
use crate::types::BufferType;
use crate::units::format_bytes;

const MAP_LEFT: f64 = 4.0;
const MAP_WIDTH: f64 = 992.0;

/// Something drawn in a bank map.
enum Piece<'a> {
    Block {
        entry: &'a PeakEntry,
        carve_out: bool,
    },
    Free {
        carve_out: bool,
    },
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
pub(super) fn bank(
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
        && (b - a).saturating_mul(20) < hi - lo
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
    for p in pieces
        .iter()
        .filter(|p| matches!(p.piece, Piece::Free { .. }))
    {
        draw(p, 4.0, lane_h);
    }
    for p in pieces
        .iter()
        .filter(|p| !matches!(p.piece, Piece::Free { .. }))
    {
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

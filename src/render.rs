//! Text for people: byte counts, the pool table with usage bars, and colour
//! decisions, as reports, the runner and the memory monitor print them.
//!
//! # Examples
//!
//! ```
//! use tt_memguard::render::{format_bytes, snapshot_table};
//! use tt_memguard::SimDevice;
//!
//! let dev = SimDevice::wormhole_b0();
//! print!("{}", snapshot_table(dev.name(), &dev.snapshot()?, false));
//! assert_eq!(format_bytes(1536 * 1024), "1.5 MiB");
//! # Ok::<(), tt_memguard::Error>(())
//! ```

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use crate::types::{PoolStats, Snapshot};
pub use crate::units::{format_bytes, format_count};

/// Width of a usage bar in characters.
const BAR_WIDTH: usize = 40;

/// When to colour output.
///
/// `Auto` follows the rules of the anstream crate (which libtest-mimic and
/// clap use too): colour on a terminal that supports it, never when
/// `NO_COLOR` is set (or `CLICOLOR=0`), always when `CLICOLOR_FORCE` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// Colour when the stream is a colour terminal, `NO_COLOR` is not set
    /// and `CLICOLOR` is not `0`; or when `CLICOLOR_FORCE` is set.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Resolves the choice for standard output.
    pub fn for_stdout(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
            }
        }
    }
}

/// Standard output for text painted when `color` is on (see
/// [`ColorChoice::for_stdout`]), written a whole text at a time from any
/// thread. With colour on it goes through anstream, whose escape codes
/// pass through or become console calls on a Windows console without ANSI
/// support; with colour off nothing is painted, and the text goes straight
/// to standard output.
pub(crate) enum Stdout {
    Plain(std::io::Stdout),
    Painted(std::sync::Mutex<anstream::AutoStream<std::io::Stdout>>),
}

impl Stdout {
    pub(crate) fn new(color: bool) -> Stdout {
        if color {
            Stdout::Painted(std::sync::Mutex::new(anstream::AutoStream::always(
                std::io::stdout(),
            )))
        } else {
            Stdout::Plain(std::io::stdout())
        }
    }

    /// Writes `text` whole (flushed when `flush`); errors are ignored, as
    /// `print!` would panic on them.
    pub(crate) fn write(&self, text: &str, flush: bool) {
        use std::io::Write as _;
        match self {
            Stdout::Plain(out) => {
                let mut out = out.lock();
                let _ = out.write_all(text.as_bytes());
                if flush {
                    let _ = out.flush();
                }
            }
            Stdout::Painted(out) => {
                let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                let _ = out.write_all(text.as_bytes());
                if flush {
                    let _ = out.flush();
                }
            }
        }
    }
}

/// Utilisation level, with the thresholds of the memory monitor: green under
/// 75 %, yellow from 75 % to under 90 %, red from 90 %.
///
/// # Examples
///
/// ```
/// use tt_memguard::render::Level;
///
/// assert_eq!(Level::of(0.74), Level::Green);
/// assert_eq!(Level::of(0.75), Level::Yellow);
/// assert_eq!(Level::of(0.90), Level::Red);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Under 75 %.
    Green,
    /// 75 % to under 90 %.
    Yellow,
    /// 90 % and above.
    Red,
}

impl Level {
    /// The level of a utilisation fraction (0.0 to 1.0).
    pub fn of(fraction: f64) -> Level {
        if fraction >= 0.90 {
            Level::Red
        } else if fraction >= 0.75 {
            Level::Yellow
        } else {
            Level::Green
        }
    }

    /// The level's style: its colour as the text's foreground.
    fn style(self) -> Style {
        let color = match self {
            Level::Green => AnsiColor::Green,
            Level::Yellow => AnsiColor::Yellow,
            Level::Red => AnsiColor::Red,
        };
        Style::new().fg_color(Some(color.into()))
    }
}

/// `text` in the colour of `level` when `color` is on, written where it is
/// formatted (no string of its own).
pub(crate) fn painted<T: std::fmt::Display>(text: T, level: Level, color: bool) -> Painted<T> {
    Painted {
        text,
        style: if color { level.style() } else { Style::new() },
    }
}

/// Text with a style; see [`painted`].
pub(crate) struct Painted<T> {
    text: T,
    style: Style,
}

impl<T: std::fmt::Display> std::fmt::Display for Painted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A plain style writes no escape codes at all. Pad inside the text
        // (`painted(format_args!("{word:<7}"), ..)`): the escape codes
        // count as no width.
        let style = self.style;
        write!(f, "{style}{}{style:#}", self.text)
    }
}

/// `text` in the colour of `level` when `color` is on.
pub(crate) fn paint(text: &str, level: Level, color: bool) -> String {
    painted(text, level, color).to_string()
}

/// A usage bar of 40 cells: `[#####...............]`.
///
/// # Examples
///
/// ```
/// assert_eq!(tt_memguard::render::usage_bar(0.5, false), format!("[{}{}]", "#".repeat(20), ".".repeat(20)));
/// ```
pub fn usage_bar(fraction: f64, color: bool) -> String {
    let fraction = fraction.clamp(0.0, 1.0);
    let mut filled = (fraction * BAR_WIDTH as f64).round() as usize;
    if fraction > 0.0 && filled == 0 {
        filled = 1; // anything allocated shows
    }
    let bar = format!("{}{}", "#".repeat(filled), ".".repeat(BAR_WIDTH - filled));
    format!("[{}]", paint(&bar, Level::of(fraction), color))
}

/// Header of the pool table.
pub(crate) fn pool_header() -> String {
    format!(
        "{:<9}{:>6}{:>13}{:>13}{:>8}{:>13}{:>15}  USAGE",
        "POOL", "BANKS", "TOTAL", "ALLOCATED", "%", "FREE", "LARGEST/BANK"
    )
}

/// One row of the pool table: banks, total, allocated with %, free, largest
/// free block per bank and a usage bar.
pub(crate) fn pool_row(pool: &PoolStats, color: bool) -> String {
    let fraction = pool.utilization();
    let percent = format!("{:.1}%", fraction * 100.0);
    format!(
        "{:<9}{:>6}{:>13}{:>13}{:>8}{:>13}{:>15}  {}",
        pool.buffer_type.name(),
        pool.num_banks,
        format_bytes(pool.size_total()),
        format_bytes(pool.allocated_total()),
        paint(&format!("{percent:>7}"), Level::of(fraction), color),
        format_bytes(pool.free_total()),
        format_bytes(pool.largest_free_block_per_bank),
        usage_bar(fraction, color)
    )
}

/// The whole table for one device.
///
/// # Examples
///
/// ```
/// use tt_memguard::render::snapshot_table;
/// use tt_memguard::SimDevice;
///
/// let dev = SimDevice::wormhole_b0();
/// let table = snapshot_table(dev.name(), &dev.snapshot()?, false);
/// assert!(table.lines().nth(2).unwrap().trim_start().starts_with("DRAM         12     12.0 GiB"));
/// # Ok::<(), tt_memguard::Error>(())
/// ```
pub fn snapshot_table(name: &str, snapshot: &Snapshot, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Device {name}");
    let _ = writeln!(out, "  {}", pool_header());
    for pool in snapshot.iter() {
        let _ = writeln!(out, "  {}", pool_row(pool, color));
    }
    out
}

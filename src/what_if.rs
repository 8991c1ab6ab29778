//! What if: one trace replayed on several device models and carve-outs,
//! side by side ([`Trace::what_if`]): each configuration's peak per bank of
//! every pool, its least circular-buffer headroom, and the first operation
//! that fails on it.

use std::fmt;

use crate::error::Result;
use crate::source::sim::Preset;
use crate::trace::{ReplayMode, Step, Trace, preset_word};
use crate::types::BufferType;
use crate::units::format_bytes;

/// One device configuration a trace is replayed on: a simulated preset and
/// its carve-outs.
///
/// # Examples
///
/// ```
/// use tt_memguard::{KIB, Preset, WhatIfConfig};
///
/// let config = WhatIfConfig::new(Preset::BlackholeP150).l1_small_size(64 * KIB);
/// assert_eq!(config.to_string(), "bh l1_small=64.0 KiB trace=0 B");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WhatIfConfig {
    /// The device model.
    pub preset: Preset,
    /// L1_SMALL bytes per bank.
    pub l1_small_size: u64,
    /// TRACE bytes in total.
    pub trace_region_size: u64,
}

impl WhatIfConfig {
    /// `preset` without carve-outs.
    pub fn new(preset: Preset) -> WhatIfConfig {
        WhatIfConfig {
            preset,
            l1_small_size: 0,
            trace_region_size: 0,
        }
    }

    /// The configuration a trace names (the recorded one).
    pub fn of(trace: &Trace) -> WhatIfConfig {
        WhatIfConfig {
            preset: trace.preset,
            l1_small_size: trace.l1_small_size,
            trace_region_size: trace.trace_region_size,
        }
    }

    /// With `bytes` of L1_SMALL per bank.
    pub fn l1_small_size(mut self, bytes: u64) -> WhatIfConfig {
        self.l1_small_size = bytes;
        self
    }

    /// With `bytes` of TRACE in total.
    pub fn trace_region_size(mut self, bytes: u64) -> WhatIfConfig {
        self.trace_region_size = bytes;
        self
    }
}

impl fmt::Display for WhatIfConfig {
    /// `bh l1_small=64.0 KiB trace=0 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} l1_small={} trace={}",
            preset_word(self.preset),
            format_bytes(self.l1_small_size),
            format_bytes(self.trace_region_size)
        )
    }
}

/// The first operation that failed in one configuration.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatIfFailure {
    /// Its line in the trace (0: the device could not be opened).
    pub line: usize,
    /// The operation, as a trace line (empty when the device could not be
    /// opened).
    pub operation: String,
    /// A few words: `out of memory`, `CB clash`, `CBs beyond L1`,
    /// `interleaved L1_SMALL`, `refused`, `replay stopped` or `cannot open`.
    pub summary: String,
    /// The whole reason: the device's or TT-Metal's message.
    pub message: String,
}

/// What one configuration gave.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatIfRow {
    /// The configuration.
    pub config: WhatIfConfig,
    /// Highest per-bank allocated bytes of each pool over the replay, in
    /// [`BufferType::ALL`] order (0 for a device that could not be opened).
    pub peak_per_bank: [u64; 4],
    /// Bytes of one bank of each pool on this configuration.
    pub bank_size: [u64; 4],
    /// The least headroom between the circular buffers and the lowest L1
    /// buffer over the enqueues that fit; `None` without any.
    pub min_cb_headroom: Option<u64>,
    /// The first operation that failed, if one did.
    pub first_failure: Option<WhatIfFailure>,
}

/// A trace replayed on several configurations; `Display` draws the table.
///
/// # Examples
///
/// ```
/// use tt_memguard::{KIB, Preset, Trace, WhatIfConfig};
///
/// // A matmul's CBs next to its 700 KiB-per-core L1 output.
/// let trace = Trace::parse(
///     "alloc out L1 45875200 2048 def\n\
///      program mm\n\
///      cb mm 0,0-7,7 262144 index=0 page=2048\n\
///      cb mm 0,0-7,7 262144 index=1 page=2048\n\
///      cb mm 0,0-7,7 131072 index=16 page=2048\n\
///      enqueue mm\n",
/// )?;
/// let table = trace.what_if(&[
///     WhatIfConfig::new(Preset::WormholeB0),
///     WhatIfConfig::new(Preset::WormholeB0).l1_small_size(64 * KIB),
/// ])?;
/// assert_eq!(table.rows[0].min_cb_headroom, Some(21_152));
/// let clash = table.rows[1].first_failure.as_ref().unwrap();
/// assert_eq!((clash.line, clash.summary.as_str()), (6, "CB clash"));
/// println!("{table}");
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatIf {
    /// The configuration the trace names (where it was recorded).
    pub recorded: WhatIfConfig,
    /// Operations in the trace.
    pub operations: usize,
    /// One row per configuration, in the order given.
    pub rows: Vec<WhatIfRow>,
}

impl Trace {
    /// Replays the trace on a fresh simulated device of every configuration,
    /// without its expectations (they hold for the recorded device only),
    /// and gathers what each gave: peaks, the least CB headroom, and the
    /// first failing operation. A configuration whose carve-outs do not fit
    /// its device gets a row saying so.
    ///
    /// # Errors
    ///
    /// An error of the device itself (a C++ exception).
    pub fn what_if(&self, configs: &[WhatIfConfig]) -> Result<WhatIf> {
        let mut trace = self.clone();
        trace.clear_expectations();
        let mut rows = Vec::with_capacity(configs.len());
        for &config in configs {
            trace.preset = config.preset;
            trace.l1_small_size = config.l1_small_size;
            trace.trace_region_size = config.trace_region_size;
            rows.push(trace.what_if_row(config)?);
        }
        Ok(WhatIf {
            recorded: WhatIfConfig::of(self),
            operations: self.ops.len(),
            rows,
        })
    }

    fn what_if_row(&self, config: WhatIfConfig) -> Result<WhatIfRow> {
        let mut row = WhatIfRow {
            config,
            peak_per_bank: [0; 4],
            bank_size: [0; 4],
            min_cb_headroom: None,
            first_failure: None,
        };
        let device = match self.open_sim() {
            Ok(device) => device,
            Err(e) => {
                row.first_failure = Some(WhatIfFailure {
                    line: 0,
                    operation: String::new(),
                    summary: "cannot open".into(),
                    message: e.to_string(),
                });
                return Ok(row);
            }
        };
        for pool in device.snapshot()?.iter() {
            row.bank_size[pool.buffer_type.index()] = pool.size_per_bank;
        }
        let mark = device.peak_mark()?;
        let mut first: Option<WhatIfFailure> = None;
        let ops = &self.ops;
        let result = self.replay_steps(&device, ReplayMode::default(), &mut |step: &Step<'_>| {
            if first.is_some() || !step.field.starts_with("ERR:") {
                return;
            }
            let summary = match step.field {
                "ERR:oom" => "out of memory",
                "ERR:l1small_interleaved" => "interleaved L1_SMALL",
                "ERR:cb_clash" => "CB clash",
                "ERR:cb_beyond_l1" => "CBs beyond L1",
                _ => "refused",
            };
            let operation = ops
                .iter()
                .find(|(line, _)| *line == step.line)
                .map(|(_, op)| op.to_string())
                .unwrap_or_default();
            first = Some(WhatIfFailure {
                line: step.line,
                operation,
                summary: summary.to_string(),
                message: step.reason.unwrap_or(summary).to_string(),
            });
        });
        // Buffers still live at the end are freed here.
        if let Err(e) = result.map(drop) {
            if let crate::Error::TraceSyntax { line, text, .. } = &e {
                first.get_or_insert(WhatIfFailure {
                    line: *line,
                    operation: text.clone(),
                    summary: "replay stopped".into(),
                    message: e.to_string(),
                });
            } else {
                return Err(e);
            }
        }
        let peaks = mark.read()?;
        row.peak_per_bank = BufferType::ALL.map(|t| peaks.per_bank(t));
        row.min_cb_headroom = peaks.min_headroom();
        row.first_failure = first;
        Ok(row)
    }
}

impl fmt::Display for WhatIf {
    /// A row per configuration: its peak per bank of every pool out of the
    /// bank's size, its least CB headroom, and its first failure in a few
    /// words; then each failure's line and message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "what if: {} operations, recorded on {}",
            self.operations, self.recorded
        )?;
        let mut table: Vec<[String; 9]> = vec![[
            "DEVICE".into(),
            "L1_SMALL".into(),
            "TRACE".into(),
            "DRAM PEAK/BANK".into(),
            "L1 PEAK/BANK".into(),
            "L1_SMALL PEAK/BANK".into(),
            "TRACE PEAK/BANK".into(),
            "MIN CB HEADROOM".into(),
            "FIRST FAILURE".into(),
        ]];
        for row in &self.rows {
            let peak = |i: usize| {
                format!(
                    "{}/{}",
                    format_bytes(row.peak_per_bank[i]),
                    format_bytes(row.bank_size[i])
                )
            };
            table.push([
                preset_word(row.config.preset).to_string(),
                format_bytes(row.config.l1_small_size),
                format_bytes(row.config.trace_region_size),
                peak(0),
                peak(1),
                peak(2),
                peak(3),
                row.min_cb_headroom.map_or("-".to_string(), |h| {
                    format!("{} B", crate::units::format_count(h))
                }),
                row.first_failure
                    .as_ref()
                    .map_or("-".to_string(), |e| match e.line {
                        0 => e.summary.clone(),
                        line => format!("line {line}: {}", e.summary),
                    }),
            ]);
        }
        let widths: Vec<usize> = (0..9)
            .map(|c| {
                table
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &table {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[c] - cell.chars().count()));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        for row in &self.rows {
            if let Some(e) = &row.first_failure {
                match e.line {
                    0 => writeln!(f, "{}: {}", row.config, e.message)?,
                    line => writeln!(
                        f,
                        "{}: line {line} `{}`: {}",
                        row.config, e.operation, e.message
                    )?,
                }
            }
        }
        Ok(())
    }
}

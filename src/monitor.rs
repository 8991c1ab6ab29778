//! The memory monitor's model: follows a live stream (see [`LiveStream`](crate::LiveStream))
//! and renders, per device and pool, banks, total, allocated with %, free,
//! largest free block and a usage bar (green under 75 %, yellow to 90 %, red
//! above), with the test running on each device. `examples/memory_monitor.rs`
//! is the terminal program around it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::live::{LiveEvent, LiveLine};
use crate::render::{pool_header, pool_row};
use crate::types::{PoolStats, format_bytes};

/// What the monitor knows of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceView {
    /// The latest statistics of every pool.
    pub pools: Vec<PoolStats>,
    /// The test running on the device, if any.
    pub test: Option<String>,
    /// Allocations seen.
    pub allocs: u64,
    /// Frees seen.
    pub frees: u64,
    /// Tests finished on the device: (passed, failed).
    pub finished: (u64, u64),
}

/// Everything the monitor has read so far.
///
/// # Examples
///
/// ```
/// use tt_memguard::monitor::MonitorState;
/// use tt_memguard::{LiveEvent, LiveLine};
///
/// let mut state = MonitorState::default();
/// state.apply(&LiveLine { t_ms: 5, event: LiveEvent::TestStart { test: "conv".into(), device: "sim:wormhole_b0".into() } });
/// assert_eq!(state.devices["sim:wormhole_b0"].test.as_deref(), Some("conv"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorState {
    /// Devices by name.
    pub devices: BTreeMap<String, DeviceView>,
    /// Milliseconds of the last event.
    pub t_ms: u64,
    /// Events read.
    pub events: u64,
    /// Set when the run ended: (passed, failed).
    pub ended: Option<(u64, u64)>,
}

impl MonitorState {
    /// Applies one event.
    pub fn apply(&mut self, line: &LiveLine) {
        self.t_ms = self.t_ms.max(line.t_ms);
        self.events += 1;
        match &line.event {
            LiveEvent::RunStart { .. } => self.ended = None,
            LiveEvent::TestStart { test, device } => {
                self.devices.entry(device.clone()).or_default().test = Some(test.clone());
            }
            LiveEvent::Alloc { device, .. } => {
                self.devices.entry(device.clone()).or_default().allocs += 1
            }
            LiveEvent::Free { device, .. } => {
                self.devices.entry(device.clone()).or_default().frees += 1
            }
            LiveEvent::Snapshot {
                device,
                test,
                pools,
            } => {
                let view = self.devices.entry(device.clone()).or_default();
                view.pools = pools.clone();
                if test.is_some() {
                    view.test = test.clone();
                }
            }
            LiveEvent::TestEnd { device, passed, .. } => {
                let view = self.devices.entry(device.clone()).or_default();
                view.test = None;
                if *passed {
                    view.finished.0 += 1;
                } else {
                    view.finished.1 += 1;
                }
            }
            LiveEvent::RunEnd { passed, failed } => self.ended = Some((*passed, *failed)),
        }
    }

    /// The view for logs and CI: one line per device and pool, `key=value`
    /// fields, easy to grep.
    pub fn render_plain(&self) -> String {
        let mut out = String::new();
        let t = self.t_ms as f64 / 1000.0;
        for (name, view) in &self.devices {
            let test = view.test.as_deref().unwrap_or("-");
            for p in view.pools.iter().filter(|p| p.num_banks > 0) {
                let _ = writeln!(
                    out,
                    "t={t:.3}s device={name} test={test} pool={} banks={} total={} allocated={} ({:.1}%) free={} largest={} level={}",
                    p.buffer_type,
                    p.num_banks,
                    format_bytes(p.total_size()).replace(' ', ""),
                    format_bytes(p.total_allocated()).replace(' ', ""),
                    p.utilization() * 100.0,
                    format_bytes(p.total_free()).replace(' ', ""),
                    format_bytes(p.largest_free_block).replace(' ', ""),
                    match crate::render::Level::of(p.utilization()) {
                        crate::render::Level::Green => "green",
                        crate::render::Level::Yellow => "yellow",
                        crate::render::Level::Red => "red",
                    }
                );
            }
        }
        if let Some((passed, failed)) = self.ended {
            let _ = writeln!(out, "t={t:.3}s run ended: {passed} passed, {failed} failed");
        }
        out
    }

    /// The terminal view: per device a header with the running test and the
    /// pool table with usage bars.
    pub fn render_screen(&self, source: &str, refresh_ms: u64, color: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "tt-memguard memory monitor  {source}  t={:.1}s  refresh {refresh_ms} ms  (Ctrl+C quits)",
            self.t_ms as f64 / 1000.0
        );
        if self.devices.is_empty() {
            let _ = writeln!(out, "\n  waiting for events...");
        }
        for (name, view) in &self.devices {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Device {name}  test: {}  allocs {}  frees {}  tests done {} ok / {} failed",
                view.test.as_deref().unwrap_or("-"),
                view.allocs,
                view.frees,
                view.finished.0,
                view.finished.1
            );
            let _ = writeln!(out, "  {}", pool_header());
            for p in &view.pools {
                let _ = writeln!(out, "  {}", pool_row(p, color));
            }
        }
        if let Some((passed, failed)) = self.ended {
            let _ = writeln!(out, "\nrun ended: {passed} passed, {failed} failed");
        }
        out
    }
}

/// Reads a live stream as it grows (like `tail -f`), line by line.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    reader: BufReader<File>,
    line: usize,
    partial: String,
}

impl Follower {
    /// Opens a stream file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file, with how to create one.
    pub fn open(path: impl AsRef<Path>) -> Result<Follower> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source: std::io::Error::new(
                source.kind(),
                format!(
                    "{source} (start the run with TT_MEMGUARD_LIVE={} to create it)",
                    path.display()
                ),
            ),
        })?;
        Ok(Follower {
            path,
            reader: BufReader::new(file),
            line: 0,
            partial: String::new(),
        })
    }

    /// Every complete line written since the last call (a line still being
    /// written is kept for the next call).
    ///
    /// # Errors
    ///
    /// [`Error::LiveStream`] naming the line of a malformed event;
    /// [`Error::Io`] when the file cannot be read.
    pub fn poll(&mut self) -> Result<Vec<LiveLine>> {
        let mut lines = Vec::new();
        loop {
            let mut chunk = String::new();
            let n = self
                .reader
                .read_line(&mut chunk)
                .map_err(|source| Error::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            self.partial.push_str(&chunk);
            if !self.partial.ends_with('\n') {
                break;
            }
            self.line += 1;
            let text = std::mem::take(&mut self.partial);
            if text.trim().is_empty() {
                continue;
            }
            lines.push(LiveLine::parse(text.trim_end(), self.line, &self.path)?);
        }
        Ok(lines)
    }
}

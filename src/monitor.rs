//! The memory monitor's model: follows a live stream (see [`LiveStream`](crate::live::LiveStream))
//! and renders, per device and pool, banks, total, allocated with %, free,
//! largest free block and a usage bar (green under 75 %, yellow to 90 %, red
//! above), with the test running on each device. `examples/memory_monitor.rs`
//! is the terminal program around it.
//!
//! Memory stays bounded whatever the stream: a [`Follower`] reads at most
//! [`Follower::POLL_BYTES`] per poll and rejects a line longer than
//! [`Follower::MAX_LINE`]; a [`MonitorState`] keeps at most
//! [`MonitorState::MAX_DEVICES`] devices and [`MonitorState::MAX_WRITERS`]
//! writers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::detail::lay_out;
use crate::error::{Error, Result};
use crate::live::{LiveEvent, LiveLine};
use crate::render::{Level, paint, pool_header, pool_row};
use crate::types::{BufferType, PoolStats};
use crate::units::format_bytes;

/// What the monitor knows of one device.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceView {
    /// The device's name.
    pub name: String,
    /// The device instance (`PID:N`), when the stream names it.
    pub id: Option<String>,
    /// The writer that reported it last.
    pub writer: Option<String>,
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
    /// The allocations placed and not yet freed, by id, for the address
    /// map (at most [`MonitorState::MAX_LIVE`] over all devices).
    pub live: BTreeMap<u64, LiveBlock>,
    /// Allocations placed while the monitor held its most, and so left out
    /// of the map.
    pub untracked: u64,
    /// When it was last reported, in events read.
    seen: u64,
}

/// An allocation the monitor saw placed and not yet freed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBlock {
    /// The pool.
    pub pool: BufferType,
    /// Address in every bank of the pool.
    pub address: u64,
    /// Bytes reserved in every bank.
    pub size_per_bank: u64,
    /// The buffer's label, when the stream names it.
    pub label: Option<String>,
}

/// What the monitor knows of one writer of the stream (a process).
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterView {
    /// The writer's process.
    pub pid: Option<u32>,
    /// The run it joined, if any.
    pub run: Option<String>,
    /// When it started, in milliseconds since the Unix epoch.
    pub unix_ms: Option<u64>,
    /// Tests it announced.
    pub tests: usize,
    /// Set when its run ended: (passed, failed).
    pub ended: Option<(u64, u64)>,
    seen: u64,
}

/// Everything the monitor has read so far.
///
/// # Examples
///
/// ```
/// use tt_memguard::monitor::MonitorState;
/// use tt_memguard::live::{LiveEvent, LiveLine};
///
/// let mut state = MonitorState::default();
/// let start = LiveEvent::TestStart {
///     test: "conv".into(),
///     device: "sim:wormhole_b0".into(),
///     device_id: Some("4242:1".into()),
/// };
/// state.apply(&LiveLine::new(5, start));
/// assert_eq!(state.devices["4242:1"].test.as_deref(), Some("conv"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorState {
    /// Devices by instance id (by name in streams without ids).
    pub devices: BTreeMap<String, DeviceView>,
    /// Writers by id (`""` for streams without writer ids).
    pub writers: BTreeMap<String, WriterView>,
    /// Milliseconds since the first writer started, at the last event.
    pub t_ms: u64,
    /// Events read.
    pub events: u64,
    /// Snapshots ignored because their totals do not fit in 64 bits.
    pub rejected: u64,
    /// Set when the run of every writer seen ended: (passed, failed), summed.
    pub ended: Option<(u64, u64)>,
    /// Tests finished on devices no longer shown: (passed, failed).
    pub retired: (u64, u64),
    /// Runs of writers no longer shown: (writers, passed, failed).
    retired_writers: (u64, u64, u64),
    /// Live allocations held over all devices.
    tracked: usize,
}

impl MonitorState {
    /// Devices kept at most; beyond, the longest idle one is dropped.
    pub const MAX_DEVICES: usize = 1024;
    /// Writers kept at most; beyond, the oldest ended one is dropped (its
    /// counts stay in the totals).
    pub const MAX_WRITERS: usize = 4096;
    /// Live allocations held at most, over all devices, for the address
    /// maps; beyond, a device's map says how many it left out.
    pub const MAX_LIVE: usize = 262_144;

    /// Applies what one [`Follower::poll`] read: starts over when the file
    /// was replaced or truncated, then applies its lines.
    pub fn update(&mut self, update: &Update) {
        if update.restarted {
            *self = MonitorState::default();
        }
        for line in &update.lines {
            self.apply(line);
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, line: &LiveLine) {
        self.events = self.events.saturating_add(1);
        let seen = self.events;
        let writer_key = line.writer.clone().unwrap_or_default();
        if !self.writers.contains_key(&writer_key) {
            // A writer not seen before is running: the run has not ended.
            self.evict_writer();
            self.ended = None;
        }
        let writer = self.writers.entry(writer_key.clone()).or_default();
        writer.seen = seen;
        if let LiveEvent::StreamStart { pid, run, unix_ms } = &line.event {
            writer.pid = Some(*pid);
            writer.run = run.clone();
            writer.unix_ms = Some(*unix_ms);
        }
        let t = self.clock(&writer_key, line.t_ms);
        self.t_ms = self.t_ms.max(t);
        let writer = Some(writer_key.clone()).filter(|w| !w.is_empty());
        match &line.event {
            LiveEvent::StreamStart { .. } => self.retire_ended(),
            LiveEvent::RunStart { pid, tests } => {
                let view = self.writers.entry(writer_key).or_default();
                view.pid = Some(*pid);
                view.tests = *tests;
                view.ended = None;
                self.ended = None;
            }
            LiveEvent::TestStart {
                test,
                device,
                device_id,
            } => self.device(device, device_id, writer, seen).test = Some(test.clone()),
            LiveEvent::Alloc {
                device,
                device_id,
                id,
                pool,
                address,
                size_per_bank,
                label,
                ..
            } => {
                let room = self.tracked < Self::MAX_LIVE;
                let view = self.device(device, device_id, writer, seen);
                view.allocs = view.allocs.saturating_add(1);
                let block = LiveBlock {
                    pool: *pool,
                    address: *address,
                    size_per_bank: *size_per_bank,
                    label: label.clone(),
                };
                let added = match view.live.entry(*id) {
                    // An id placed twice: the stream lost a free; the
                    // newer placement holds.
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        e.insert(block);
                        false
                    }
                    std::collections::btree_map::Entry::Vacant(e) if room => {
                        e.insert(block);
                        true
                    }
                    std::collections::btree_map::Entry::Vacant(_) => {
                        view.untracked = view.untracked.saturating_add(1);
                        false
                    }
                };
                if added {
                    self.tracked += 1;
                }
            }
            LiveEvent::Free {
                device,
                device_id,
                id,
                ..
            } => {
                let view = self.device(device, device_id, writer, seen);
                view.frees = view.frees.saturating_add(1);
                if view.live.remove(id).is_some() {
                    self.tracked -= 1;
                }
            }
            LiveEvent::Snapshot {
                device,
                device_id,
                test,
                pools,
            } => {
                let representable = line.event.unrepresentable().is_none();
                let view = self.device(device, device_id, writer, seen);
                if test.is_some() {
                    view.test = test.clone();
                }
                if representable {
                    view.pools = pools.clone();
                } else {
                    self.rejected = self.rejected.saturating_add(1);
                }
            }
            LiveEvent::TestEnd {
                device,
                device_id,
                passed,
                ..
            } => {
                let view = self.device(device, device_id, writer, seen);
                view.test = None;
                let count = if *passed {
                    &mut view.finished.0
                } else {
                    &mut view.finished.1
                };
                *count = count.saturating_add(1);
            }
            LiveEvent::RunEnd { passed, failed } => {
                self.writers.entry(writer_key).or_default().ended = Some((*passed, *failed));
                self.ended = self.all_ended();
            }
        }
    }

    /// The run every writer joined, when the stream is shared by the
    /// processes of one run (more may still join after all seen ended).
    pub fn shared_run(&self) -> Option<&str> {
        self.writers.values().find_map(|w| w.run.as_deref())
    }

    /// Milliseconds since the earliest writer started, for a line at `t_ms`
    /// of `writer` (the line's own time when the start is unknown).
    fn clock(&self, writer: &str, t_ms: u64) -> u64 {
        let origin = self.writers.values().filter_map(|w| w.unix_ms).min();
        match (origin, self.writers.get(writer).and_then(|w| w.unix_ms)) {
            (Some(origin), Some(start)) => start.saturating_sub(origin).saturating_add(t_ms),
            _ => t_ms,
        }
    }

    fn all_ended(&self) -> Option<(u64, u64)> {
        let (_, mut passed, mut failed) = self.retired_writers;
        for writer in self.writers.values() {
            let (p, f) = writer.ended?;
            passed = passed.saturating_add(p);
            failed = failed.saturating_add(f);
        }
        Some((passed, failed))
    }

    /// The view of a device, created (within the bound) when new.
    fn device(
        &mut self,
        name: &str,
        id: &Option<String>,
        writer: Option<String>,
        seen: u64,
    ) -> &mut DeviceView {
        let key = id.as_deref().unwrap_or(name);
        if !self.devices.contains_key(key) && self.devices.len() >= Self::MAX_DEVICES {
            // The longest idle device goes; a busy one only when all are.
            let victim = self
                .devices
                .iter()
                .min_by_key(|(_, v)| (v.test.is_some(), v.seen))
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                self.retire_device(&victim);
            }
        }
        let view = self
            .devices
            .entry(key.to_string())
            .or_insert_with(|| DeviceView {
                name: name.to_string(),
                id: id.clone(),
                ..DeviceView::default()
            });
        view.seen = seen;
        if writer.is_some() {
            view.writer = writer;
        }
        view
    }

    fn retire_device(&mut self, key: &str) {
        if let Some(view) = self.devices.remove(key) {
            self.tracked -= view.live.len();
            self.retired.0 = self.retired.0.saturating_add(view.finished.0);
            self.retired.1 = self.retired.1.saturating_add(view.finished.1);
        }
    }

    /// A new writer started: devices of writers whose run ended leave the
    /// view (one process per test would otherwise pile them up).
    fn retire_ended(&mut self) {
        let done: Vec<String> = self
            .devices
            .iter()
            .filter(|(_, v)| {
                v.writer
                    .as_ref()
                    .and_then(|w| self.writers.get(w))
                    .is_some_and(|w| w.ended.is_some())
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in done {
            self.retire_device(&key);
        }
    }

    /// Makes room for one more writer: the oldest ended one goes, its run
    /// folded into the totals.
    fn evict_writer(&mut self) {
        if self.writers.len() < Self::MAX_WRITERS {
            return;
        }
        let victim = self
            .writers
            .iter()
            .filter(|(_, w)| w.ended.is_some())
            .min_by_key(|(_, w)| w.seen)
            .or_else(|| self.writers.iter().min_by_key(|(_, w)| w.seen))
            .map(|(k, _)| k.clone());
        if let Some(writer) = victim.and_then(|k| self.writers.remove(&k)) {
            let (passed, failed) = writer.ended.unwrap_or_default();
            let r = &mut self.retired_writers;
            *r = (
                r.0.saturating_add(1),
                r.1.saturating_add(passed),
                r.2.saturating_add(failed),
            );
        }
    }

    /// Devices in display order (by name, then instance id), each with its
    /// label: the name, and its instance id when another shown device has
    /// the same name.
    fn shown(&self) -> Vec<(String, &DeviceView)> {
        let mut views: Vec<&DeviceView> = self.devices.values().collect();
        views.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        views
            .iter()
            .map(|view| {
                let twins = views.iter().filter(|v| v.name == view.name).count();
                let label = match &view.id {
                    Some(id) if twins > 1 => format!("{}[{id}]", view.name),
                    _ => view.name.clone(),
                };
                (label, *view)
            })
            .collect()
    }

    fn end_line(&self) -> Option<String> {
        let (passed, failed) = self.ended?;
        Some(match self.shared_run() {
            Some(run) => format!(
                "all {} writers of run {run} ended so far: {passed} passed, {failed} failed",
                (self.writers.len() as u64).saturating_add(self.retired_writers.0)
            ),
            None => format!("run ended: {passed} passed, {failed} failed"),
        })
    }

    /// The view for logs and CI: one line per device and pool, `key=value`
    /// fields, easy to grep. Every pool shows, a 0-byte one too.
    pub fn render_plain(&self) -> String {
        let mut out = String::new();
        let t = self.t_ms as f64 / 1000.0;
        for (label, view) in self.shown() {
            let test = view.test.as_deref().unwrap_or("-");
            for p in &view.pools {
                let _ = writeln!(
                    out,
                    "t={t:.3}s device={label} test={test} pool={} banks={} total={} allocated={} ({:.1}%) free={} largest={} level={}",
                    p.buffer_type,
                    p.num_banks,
                    format_bytes(p.size_total()).replace(' ', ""),
                    format_bytes(p.allocated_total()).replace(' ', ""),
                    p.utilization() * 100.0,
                    format_bytes(p.free_total()).replace(' ', ""),
                    format_bytes(p.largest_free_block_per_bank).replace(' ', ""),
                    match Level::of(p.utilization()) {
                        Level::Green => "green",
                        Level::Yellow => "yellow",
                        Level::Red => "red",
                    }
                );
            }
        }
        if let Some(end) = self.end_line() {
            let _ = writeln!(out, "t={t:.3}s {end}");
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
        for (label, view) in self.shown() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Device {label}  test: {}  allocs {}  frees {}  tests done {} ok / {} failed",
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
        if self.retired != (0, 0) {
            let _ = writeln!(
                out,
                "\ndevices no longer shown: tests done {} ok / {} failed",
                self.retired.0, self.retired.1
            );
        }
        if let Some(end) = self.end_line() {
            let _ = writeln!(out, "\n{end}");
        }
        out
    }
}

impl MonitorState {
    /// The address map of one bank of every device, from the allocations
    /// the stream placed and has not freed: each pool with banks as a bar of
    /// `width` cells from its base address (left) to its top (right), `#`
    /// for a cell fully allocated, `+` partly, `.` free; L1_SMALL follows
    /// L1 (it is the top of the same L1 bank) and TRACE follows DRAM. Under
    /// each bar: the pool's largest buffers with their labels, and its
    /// largest free gap.
    pub fn render_map(&self, width: usize, color: bool) -> String {
        let width = width.clamp(8, 512);
        let mut out = String::new();
        for (label, view) in self.shown() {
            let _ = writeln!(
                out,
                "Device {label}  address map of one bank, low addresses left"
            );
            if view.pools.is_empty() {
                let _ = writeln!(out, "  waiting for the pools' first snapshot");
            }
            for pool in &view.pools {
                render_pool_map(&mut out, view, pool, width, color);
            }
            if view.untracked > 0 {
                let _ = writeln!(
                    out,
                    "  {} allocations are left out of the map: the monitor holds at most {} live allocations",
                    view.untracked,
                    Self::MAX_LIVE
                );
            }
        }
        out
    }
}

/// Buffers named under a pool's bar.
const MAP_NAMED: usize = 4;

fn render_pool_map(
    out: &mut String,
    view: &DeviceView,
    pool: &PoolStats,
    width: usize,
    color: bool,
) {
    let name = pool.buffer_type.name();
    if pool.num_banks == 0 || pool.size_per_bank == 0 {
        let _ = writeln!(out, "  {name:<9} not configured on this device");
        return;
    }
    let blocks = view
        .live
        .iter()
        .filter(|(_, b)| b.pool == pool.buffer_type)
        .map(|(id, b)| (b.address, b.size_per_bank, (*id, b)));
    let Some(laid) = lay_out(pool.base_address, pool.size_per_bank, blocks) else {
        let _ = writeln!(
            out,
            "  {name:<9} no map: the stream's allocations overlap or lie outside the pool (a stream mixing devices of one name?)"
        );
        return;
    };
    let bar = bar_cells(pool.base_address, pool.size_per_bank, &laid, width);
    let used: u64 = laid
        .iter()
        .filter(|s| s.2.is_some())
        .map(|s| s.1)
        .fold(0, u64::saturating_add);
    let count = laid.iter().filter(|s| s.2.is_some()).count();
    let gap = laid
        .iter()
        .filter(|s| s.2.is_none())
        .max_by_key(|s| (s.1, std::cmp::Reverse(s.0)));
    let level = Level::of(used as f64 / pool.size_per_bank as f64);
    let top = pool.base_address.saturating_add(pool.size_per_bank);
    let _ = writeln!(
        out,
        "  {name:<9} {:#010x} [{}] {top:#010x}  {count} buffer{}, {} of {} per bank; largest gap {}",
        pool.base_address,
        paint(&bar, level, color),
        if count == 1 { "" } else { "s" },
        format_bytes(used),
        format_bytes(pool.size_per_bank),
        match gap {
            Some(g) => format!("{} at {:#x}", format_bytes(g.1), g.0),
            None => "none".to_string(),
        }
    );
    // (size, address, id, block) of every buffer, largest first.
    let mut named: Vec<(u64, u64, u64, &LiveBlock)> = laid
        .iter()
        .filter_map(|&(address, size, block)| block.map(|(id, b)| (size, address, id, b)))
        .collect();
    named.sort_by_key(|&(size, address, ..)| (std::cmp::Reverse(size), address));
    if !named.is_empty() {
        let shown: Vec<String> = named
            .iter()
            .take(MAP_NAMED)
            .map(|&(size, address, id, b)| {
                let label = b
                    .label
                    .as_deref()
                    .map_or(String::new(), |l| format!("{l} "));
                format!("{} {label}#{id} at {address:#x}", format_bytes(size))
            })
            .collect();
        let more = named.len().saturating_sub(MAP_NAMED);
        let rest = if more > 0 {
            format!(" | {more} more")
        } else {
            String::new()
        };
        let _ = writeln!(out, "  {:<9} largest: {}{rest}", "", shown.join(" | "));
    }
}

/// One character per cell of `size / width` bytes: `#` fully allocated,
/// `+` partly, `.` free.
fn bar_cells<T>(base: u64, size: u64, laid: &[(u64, u64, Option<T>)], width: usize) -> String {
    let edge = |i: usize| -> u64 {
        let offset = u128::from(size) * i as u128 / width as u128;
        base + offset as u64
    };
    let mut bar = String::with_capacity(width);
    let mut k = 0;
    for i in 0..width {
        let (lo, hi) = (edge(i), edge(i + 1));
        let mut covered = 0u64;
        while k < laid.len() && laid[k].0.saturating_add(laid[k].1) <= lo {
            k += 1;
        }
        let mut j = k;
        while j < laid.len() && laid[j].0 < hi {
            if laid[j].2.is_some() {
                let start = laid[j].0.max(lo);
                let end = laid[j].0.saturating_add(laid[j].1).min(hi);
                covered += end.saturating_sub(start);
            }
            j += 1;
        }
        bar.push(if hi == lo || covered == 0 {
            '.'
        } else if covered >= hi - lo {
            '#'
        } else {
            '+'
        });
    }
    bar
}

/// What one [`Follower::poll`] read.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// The file was replaced or truncated (a new run): the lines start from
    /// its beginning, and what was read before no longer holds.
    pub restarted: bool,
    /// Every complete line read, in order.
    pub lines: Vec<LiveLine>,
    /// The poll stopped at [`Follower::POLL_BYTES`]: more is already there.
    pub more: bool,
}

/// Reads a live stream as it grows (like `tail -f`), line by line, in
/// bounded steps; starts over when the file is replaced or truncated.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: File,
    /// Device and inode of the open file, to notice a replaced one.
    identity: Option<(u64, u64)>,
    /// Bytes of the file read so far (complete lines and `partial`).
    offset: u64,
    /// Complete lines read so far.
    line: usize,
    /// A line still being written.
    partial: Vec<u8>,
    /// The first bytes of the file as read, to notice a file rewritten
    /// past the old offset before a poll could see it shorter.
    head: Vec<u8>,
    buffer: Vec<u8>,
}

impl Follower {
    /// Bytes read at most per [`poll`](Self::poll).
    pub const POLL_BYTES: usize = 4 << 20;
    /// The longest line accepted; a longer one is not a live stream.
    pub const MAX_LINE: usize = 1 << 20;
    const HEAD: usize = 4096;
    const CHUNK: usize = 64 << 10;

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
        let identity = file.metadata().ok().and_then(|m| identity(&m));
        Ok(Follower {
            path,
            file,
            identity,
            offset: 0,
            line: 0,
            partial: Vec::new(),
            head: Vec::new(),
            buffer: Vec::new(),
        })
    }

    /// Every complete line written since the last call, up to
    /// [`POLL_BYTES`](Self::POLL_BYTES) of them (a line still being written
    /// is kept for the next call). When the file was replaced (a new inode
    /// at the path) or truncated, it starts over from the first line.
    ///
    /// # Errors
    ///
    /// [`Error::LiveStream`] naming the line of a malformed event or of a
    /// line longer than [`MAX_LINE`](Self::MAX_LINE); [`Error::Io`] when the
    /// file cannot be read.
    pub fn poll(&mut self) -> Result<Update> {
        let mut update = Update::default();
        if self.changed()? {
            self.restart()?;
            update.restarted = true;
        }
        let io = |path: &Path, source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        self.file
            .seek(SeekFrom::Start(self.offset))
            .map_err(|e| io(&self.path, e))?;
        let mut budget = Self::POLL_BYTES;
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.resize(Self::CHUNK, 0);
        let result = loop {
            if budget == 0 {
                update.more = true;
                break Ok(());
            }
            let want = budget.min(Self::CHUNK);
            let n = match self.file.read(&mut buffer[..want]) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(io(&self.path, e)),
            };
            budget -= n;
            if let Err(e) = self.take(&buffer[..n], &mut update.lines) {
                break Err(e);
            }
        };
        self.buffer = buffer;
        result.map(|()| update)
    }

    /// Splits freshly read bytes into lines.
    fn take(&mut self, bytes: &[u8], lines: &mut Vec<LiveLine>) -> Result<()> {
        if self.head.len() < Self::HEAD {
            let more = (Self::HEAD - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..more]);
        }
        self.offset += bytes.len() as u64;
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.line += 1;
            let text: &[u8] = if self.partial.is_empty() {
                &rest[..end]
            } else {
                self.partial.extend_from_slice(&rest[..end]);
                &self.partial
            };
            self.check_length(text.len(), self.line)?;
            let text = text.trim_ascii();
            if !text.is_empty() {
                lines.push(LiveLine::parse(text, self.line, &self.path)?);
            }
            self.partial.clear();
            rest = &rest[end + 1..];
        }
        self.check_length(self.partial.len() + rest.len(), self.line + 1)?;
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    fn check_length(&self, len: usize, line: usize) -> Result<()> {
        if len > Self::MAX_LINE {
            return Err(Error::LiveStream {
                path: self.path.clone(),
                line,
                reason: format!(
                    "a line longer than {} bytes is not a memguard live event",
                    Self::MAX_LINE
                ),
                source: None,
            });
        }
        Ok(())
    }

    /// Whether the file at the path is no longer the one read so far:
    /// another file (replaced), shorter than what was read (truncated), or
    /// beginning with other bytes (rewritten).
    fn changed(&mut self) -> Result<bool> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        match std::fs::metadata(&self.path) {
            Ok(m) if identity(&m).is_some() && identity(&m) != self.identity => return Ok(true),
            Ok(_) => {}
            // Removed, perhaps to be written again: keep the open file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let len = self.file.metadata().map_err(io)?.len();
        if len < self.offset {
            return Ok(true);
        }
        if self.head.is_empty() {
            return Ok(false);
        }
        let mut head = vec![0; self.head.len()];
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        match self.file.read_exact(&mut head) {
            Ok(()) => Ok(head != self.head),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(true),
            Err(e) => Err(io(e)),
        }
    }

    /// Reopens the path and reads from its first byte.
    fn restart(&mut self) -> Result<()> {
        let file = File::open(&self.path).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        });
        match file {
            Ok(file) => {
                self.identity = file.metadata().ok().and_then(|m| identity(&m));
                self.file = file;
            }
            // Gone between the check and now: read the open file afresh.
            Err(_) if !self.path.exists() => {}
            Err(e) => return Err(e),
        }
        self.offset = 0;
        self.line = 0;
        self.partial.clear();
        self.head.clear();
        Ok(())
    }
}

#[cfg(unix)]
fn identity(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn identity(_metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

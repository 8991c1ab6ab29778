//! The live stream: memory events and periodic snapshots written as JSON
//! lines to a file that another process follows (the memory monitor). A
//! device's allocator lives in the process that uses it, so this stream is how
//! a second process sees it.
//!
//! The runner writes one when `TT_MEMGUARD_LIVE=PATH` is set (snapshot period
//! `TT_MEMGUARD_LIVE_INTERVAL_MS`, default 100); any program can write one
//! with [`LiveStream`].
//!
//! # Format
//!
//! One JSON object per line, each written with a single `write` to a file
//! opened for appending, so that several writers (processes or
//! [`LiveStream`]s) share one file and interleave only between lines:
//!
//! ```text
//! {"t_ms":0,"writer":"4242.1","event":"stream_start","pid":4242,"run":null,"unix_ms":1767225600000}
//! {"t_ms":0,"writer":"4242.1","event":"run_start","pid":4242,"tests":6}
//! {"t_ms":1,"writer":"4242.1","event":"test_start","test":"conv","device":"sim:wormhole_b0","device_id":"4242:7"}
//! {"t_ms":1,"writer":"4242.1","event":"alloc","device":"sim:wormhole_b0","device_id":"4242:7","id":1,"pool":"DRAM","address":1048640,"size":1048576,"size_per_bank":88064,"banks":12}
//! ```
//!
//! - `t_ms`: milliseconds since the writer started (`stream_start`'s
//!   `unix_ms` places them on a common clock).
//! - `writer`: who wrote the line, `PID.N` (the N-th stream of that process).
//! - `event`: `stream_start` (first line of every writer: `pid`, `run`,
//!   `unix_ms`), `run_start` (`pid`, `tests`), `test_start`, `alloc`, `free`,
//!   `snapshot` (`pools`: the four [`PoolStats`]), `test_end` (`passed`,
//!   `summary`), `run_end` (`passed`, `failed`). See [`LiveEvent`].
//! - `device_id`: one device instance, `PID:N`, on every event that names a
//!   device: two devices of the same name (parallel tests, each on its own
//!   `sim:wormhole_b0`) stay apart.
//!
//! Events of one device are written in the order the device applied them
//! (the free of a block before the allocation that reuses it, a snapshot
//! between the events it reflects).
//!
//! Streams written before `writer`, `device_id` and `stream_start` existed
//! still parse: the missing fields read as absent, and the monitor then keys
//! devices by name.
//!
//! # Several processes, one file
//!
//! [`LiveStream::create`] starts the file afresh. [`LiveStream::join`] joins a
//! run by its id: the first writer of the run starts the file afresh, the
//! others append (they agree under an advisory lock of the file, by the run
//! id in the file's first line). The runner joins the run named by
//! `TT_MEMGUARD_LIVE_RUN`, else by `NEXTEST_RUN_ID` (cargo-nextest runs each
//! test in its own process, all with one run id), and otherwise creates.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceEvent, ObserverToken};
use crate::error::{Error, Result};
use crate::types::{BufferType, PoolStats, Snapshot};

/// One event of a live stream.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A writer opened the stream (the first line of every writer).
    StreamStart {
        /// Process id of the writer.
        pid: u32,
        /// The run the writer joined ([`LiveStream::join`]); `None` for a
        /// stream of its own.
        run: Option<String>,
        /// When the writer started, in milliseconds since the Unix epoch.
        unix_ms: u64,
    },
    /// A run started.
    RunStart {
        /// Process id of the writer.
        pid: u32,
        /// Tests to run (0 when not a test run).
        tests: usize,
    },
    /// A test started on a device.
    TestStart {
        /// The test.
        test: String,
        /// The device's name.
        device: String,
        /// The device instance (`PID:N`); absent in older streams.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_id: Option<String>,
    },
    /// A buffer was placed.
    Alloc {
        /// The device's name.
        device: String,
        /// The device instance (`PID:N`); absent in older streams.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_id: Option<String>,
        /// Allocation id on the device.
        id: u64,
        /// The pool.
        pool: BufferType,
        /// Address in every bank.
        address: u64,
        /// Requested size: the buffer's total over all its banks.
        size: u64,
        /// Bytes reserved in every bank (`per_bank_size` in older streams,
        /// still read).
        #[serde(alias = "per_bank_size")]
        size_per_bank: u64,
        /// Banks of the pool.
        banks: u32,
        /// The buffer's label, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// A buffer was freed.
    Free {
        /// The device's name.
        device: String,
        /// The device instance (`PID:N`); absent in older streams.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_id: Option<String>,
        /// Allocation id on the device.
        id: u64,
        /// The pool.
        pool: BufferType,
    },
    /// The statistics of every pool of a device.
    Snapshot {
        /// The device's name.
        device: String,
        /// The device instance (`PID:N`); absent in older streams.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_id: Option<String>,
        /// The test running on it, if any.
        test: Option<String>,
        /// DRAM, L1, L1_SMALL, TRACE.
        pools: Vec<PoolStats>,
    },
    /// A test ended.
    TestEnd {
        /// The test.
        test: String,
        /// The device's name.
        device: String,
        /// The device instance (`PID:N`); absent in older streams.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_id: Option<String>,
        /// Whether it passed (body and memory checks).
        passed: bool,
        /// The memory summary line.
        summary: String,
    },
    /// The writer's run ended.
    RunEnd {
        /// Tests that passed.
        passed: u64,
        /// Tests that failed.
        failed: u64,
    },
}

impl LiveEvent {
    /// Why the monitor cannot represent this event, if it cannot: a pool
    /// whose totals over all banks do not fit in 64 bits.
    pub(crate) fn unrepresentable(&self) -> Option<String> {
        let LiveEvent::Snapshot { pools, .. } = self else {
            return None;
        };
        pools.iter().find_map(|p| {
            let banks = u64::from(p.num_banks);
            [
                ("size", p.size_per_bank),
                ("allocated", p.allocated_per_bank),
                ("free", p.free_per_bank),
            ]
            .into_iter()
            .find(|(_, per_bank)| per_bank.checked_mul(banks).is_none())
            .map(|(what, per_bank)| {
                format!(
                    "pool {} {what} of {per_bank} B per bank x {banks} banks does not fit in 64 bits",
                    p.buffer_type
                )
            })
        })
    }
}

/// A line of the stream: when, who wrote it, and the event.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveLine {
    /// Milliseconds since the writer started.
    pub t_ms: u64,
    /// The writer (`PID.N`); absent in older streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// The event.
    #[serde(flatten)]
    pub event: LiveEvent,
}

impl LiveLine {
    /// A line without a writer.
    pub fn new(t_ms: u64, event: LiveEvent) -> LiveLine {
        LiveLine {
            t_ms,
            writer: None,
            event,
        }
    }

    /// Parses one line of a stream.
    ///
    /// # Errors
    ///
    /// [`Error::LiveStream`] naming the file, the line number and what is
    /// wrong: not an event, or values the monitor cannot represent.
    pub fn parse(text: impl AsRef<[u8]>, line: usize, path: &Path) -> Result<LiveLine> {
        let error = |reason: String| Error::LiveStream {
            path: path.to_path_buf(),
            line,
            reason,
            source: None,
        };
        let parsed: LiveLine = serde_json::from_slice(text.as_ref())
            .map_err(|e| error(format!("not a memguard live event ({e})")).with_source(e))?;
        match parsed.event.unrepresentable() {
            Some(reason) => Err(error(reason)),
            None => Ok(parsed),
        }
    }
}

/// The writer's own view of a line, serialized without copying the event.
#[derive(Serialize)]
struct Outgoing<'a> {
    t_ms: u64,
    writer: &'a str,
    #[serde(flatten)]
    event: &'a LiveEvent,
}

struct Watched {
    device: Device,
    test: Option<String>,
    key: u64,
}

/// The one observer a stream keeps per device, shared by its watches.
struct Tap {
    device: Device,
    token: ObserverToken,
    watches: usize,
}

struct Inner {
    /// Opened for appending: every line is one `write`.
    file: Mutex<File>,
    path: PathBuf,
    writer: String,
    start: Instant,
    watched: Mutex<Vec<Watched>>,
    taps: Mutex<Vec<Tap>>,
    next_key: AtomicU64,
    stop: AtomicBool,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn emit(&self, event: &LiveEvent) {
        let file = lock(&self.file);
        // Taken under the file lock: times never go back within a writer.
        let t_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        write_line(&file, t_ms, &self.writer, event);
    }

    fn snapshot_event(device: &Device, test: Option<&str>, snapshot: &Snapshot) -> LiveEvent {
        LiveEvent::Snapshot {
            device: device.name().to_string(),
            device_id: Some(device_id(device)),
            test: test.map(str::to_string),
            pools: snapshot.pools.to_vec(),
        }
    }

    /// Writes a snapshot of `device` while the device is locked, so that it
    /// lands between the events it reflects.
    fn snapshot(&self, device: &Device, test: Option<&str>) {
        let _ = device.with_snapshot(|s| self.emit(&Self::snapshot_event(device, test, s)));
    }

    fn snapshot_all(&self) {
        let watched: Vec<(Device, Option<String>)> = lock(&self.watched)
            .iter()
            .map(|w| (w.device.clone(), w.test.clone()))
            .collect();
        for (device, test) in watched {
            self.snapshot(&device, test.as_deref());
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The snapshot thread holds the stream weakly: wake it to notice.
        if let Some(ticker) = lock(&self.ticker).take() {
            ticker.thread().unpark();
        }
    }
}

/// Writes one line with a single `write` (the file is in append mode, so
/// concurrent writers interleave only between lines). A write error (disk
/// full, file removed) must not fail the program under test.
fn write_line(mut file: &File, t_ms: u64, writer: &str, event: &LiveEvent) {
    let line = Outgoing {
        t_ms,
        writer,
        event,
    };
    let mut json = serde_json::to_vec(&line).expect("live events serialize");
    json.push(b'\n');
    let _ = file.write_all(&json);
}

/// `PID:N`: the device instance as the stream names it.
fn device_id(device: &Device) -> String {
    format!("{}:{}", std::process::id(), device.instance())
}

/// Streams of this process, for writer ids.
static NEXT_WRITER: AtomicU64 = AtomicU64::new(1);

/// Writes a live stream. Cheap to clone; the snapshot thread stops when the
/// last clone is dropped or [`finish`](Self::finish) is called.
///
/// # Examples
///
/// ```
/// use tt_memguard::live::LiveStream;
/// use tt_memguard::{BufferType, SimDevice, MIB};
///
/// let path = std::env::temp_dir().join(format!("doc-live-{}.jsonl", std::process::id()));
/// let live = LiveStream::create(&path, std::time::Duration::from_millis(50))?;
/// let dev = SimDevice::wormhole_b0();
/// {
///     let _watch = live.watch(&dev, Some("example"));
///     let _b = dev.allocate(BufferType::Dram, MIB, 2048)?;
/// }
/// live.finish(1, 0);
/// let text = std::fs::read_to_string(&path).unwrap();
/// assert!(text.lines().any(|l| l.contains("\"event\":\"alloc\"")));
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Clone)]
pub struct LiveStream {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LiveStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStream")
            .field("path", &self.inner.path)
            .field("writer", &self.inner.writer)
            .finish()
    }
}

impl LiveStream {
    /// Starts the stream file afresh (creating or emptying it) and starts
    /// the snapshot thread. A monitor following the file starts over.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path.
    pub fn create(path: impl AsRef<Path>, interval: Duration) -> Result<LiveStream> {
        Self::open(path.as_ref(), interval, None)
    }

    /// Joins run `run` on a stream file shared by several writers (one
    /// process per test, as cargo-nextest runs them): the first writer of
    /// the run starts the file afresh, every later one appends. Writers
    /// agree under an advisory lock of the file (on Unix), by the run id in
    /// the file's first line.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path.
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::live::LiveStream;
    /// use std::time::Duration;
    ///
    /// let path = std::env::temp_dir().join(format!("doc-join-{}.jsonl", std::process::id()));
    /// let first = LiveStream::join(&path, Duration::from_millis(50), "run-1")?;
    /// let second = LiveStream::join(&path, Duration::from_millis(50), "run-1")?;
    /// first.finish(1, 0);
    /// second.finish(0, 1);
    /// let text = std::fs::read_to_string(&path).unwrap();
    /// assert_eq!(text.matches("\"event\":\"run_end\"").count(), 2);
    /// # std::fs::remove_file(&path).ok();
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub fn join(path: impl AsRef<Path>, interval: Duration, run: &str) -> Result<LiveStream> {
        Self::open(path.as_ref(), interval, Some(run))
    }

    fn open(path: &Path, interval: Duration, run: Option<&str>) -> Result<LiveStream> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let writer = format!(
            "{}.{}",
            std::process::id(),
            NEXT_WRITER.fetch_add(1, Ordering::Relaxed)
        );
        let start = Instant::now();
        {
            // Deciding whether to start afresh and writing the first line is
            // one step for the writers of a run.
            let _lock = file_lock::exclusive(&file);
            let fresh = match run {
                None => true,
                Some(run) => first_run(&file).as_deref() != Some(run),
            };
            if fresh {
                file.set_len(0).map_err(io)?;
            }
            let unix_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let header = LiveEvent::StreamStart {
                pid: std::process::id(),
                run: run.map(str::to_string),
                unix_ms,
            };
            write_line(&file, 0, &writer, &header);
        }
        let inner = Arc::new(Inner {
            file: Mutex::new(file),
            path: path.to_path_buf(),
            writer,
            start,
            watched: Mutex::new(Vec::new()),
            taps: Mutex::new(Vec::new()),
            next_key: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            ticker: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let interval = interval.max(Duration::from_millis(1));
        let ticker = std::thread::Builder::new()
            .name("memguard-live".to_string())
            .spawn(move || {
                // `None`: an interval too long for the clock, never due.
                let due = || Instant::now().checked_add(interval);
                let mut next = due();
                loop {
                    // Parked, so that `finish` and the last drop wake it.
                    match next {
                        Some(at) => {
                            std::thread::park_timeout(at.saturating_duration_since(Instant::now()))
                        }
                        None => std::thread::park(),
                    }
                    let Some(inner) = weak.upgrade() else { break };
                    if inner.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if next.is_none_or(|at| Instant::now() < at) {
                        continue;
                    }
                    next = due();
                    inner.snapshot_all();
                }
            })
            .map_err(|source| Error::Io {
                path: PathBuf::from("<live stream thread>"),
                source,
            })?;
        *lock(&inner.ticker) = Some(ticker);
        Ok(LiveStream { inner })
    }

    /// The stream named by `TT_MEMGUARD_LIVE`, if set, with the period of
    /// `TT_MEMGUARD_LIVE_INTERVAL_MS` (default 100). It joins the run named
    /// by `TT_MEMGUARD_LIVE_RUN`, else by `NEXTEST_RUN_ID` (see
    /// [`join`](Self::join)), and otherwise starts the file afresh.
    ///
    /// # Errors
    ///
    /// [`Error::Env`] for a bad interval, [`Error::Io`] when the file cannot
    /// be created.
    pub fn from_env() -> Result<Option<LiveStream>> {
        let Some(path) = std::env::var_os("TT_MEMGUARD_LIVE").filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let interval = match std::env::var("TT_MEMGUARD_LIVE_INTERVAL_MS") {
            Ok(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&ms| ms > 0)
                .ok_or_else(|| Error::Env {
                    var: "TT_MEMGUARD_LIVE_INTERVAL_MS".to_string(),
                    value: v.clone(),
                    reason: "expected a whole number of milliseconds, at least 1".to_string(),
                    source: None,
                })?,
            Err(_) => 100,
        };
        let run = ["TT_MEMGUARD_LIVE_RUN", "NEXTEST_RUN_ID"]
            .into_iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()));
        let path = PathBuf::from(path);
        let interval = Duration::from_millis(interval);
        match run {
            Some(run) => Self::join(path, interval, run.trim()).map(Some),
            None => Self::create(path, interval).map(Some),
        }
    }

    /// Writes one event.
    pub fn emit(&self, event: LiveEvent) {
        self.inner.emit(&event);
    }

    /// Writes that `test` started on `device`.
    pub fn test_start(&self, device: &Device, test: &str) {
        self.emit(LiveEvent::TestStart {
            test: test.to_string(),
            device: device.name().to_string(),
            device_id: Some(device_id(device)),
        });
    }

    /// Writes that `test` ended on `device`, with its verdict and memory
    /// summary line.
    pub fn test_end(&self, device: &Device, test: &str, passed: bool, summary: String) {
        self.emit(LiveEvent::TestEnd {
            test: test.to_string(),
            device: device.name().to_string(),
            device_id: Some(device_id(device)),
            passed,
            summary,
        });
    }

    /// Streams `device`'s allocations and frees, and snapshots it
    /// periodically, until the returned guard is dropped. A snapshot is
    /// written at the start and at the end. Any number of streams may watch
    /// one device, and one stream may watch it several times (its events
    /// are written once).
    pub fn watch(&self, device: &Device, test: Option<&str>) -> Watch {
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        {
            let mut taps = lock(&self.inner.taps);
            match taps.iter_mut().find(|t| t.device.same_device(device)) {
                Some(tap) => tap.watches += 1,
                None => {
                    let token = device.add_observer(self.observer(device));
                    taps.push(Tap {
                        device: device.clone(),
                        token,
                        watches: 1,
                    });
                }
            }
        }
        lock(&self.inner.watched).push(Watched {
            device: device.clone(),
            test: test.map(str::to_string),
            key,
        });
        let watch = Watch {
            stream: self.clone(),
            device: device.clone(),
            test: test.map(str::to_string),
            key,
        };
        watch.snapshot();
        watch
    }

    /// The observer that writes `device`'s events to this stream. It holds
    /// the stream weakly: a device never keeps a stream alive.
    fn observer(&self, device: &Device) -> crate::device::Observer {
        let name = device.name().to_string();
        let id = device_id(device);
        let weak = Arc::downgrade(&self.inner);
        Arc::new(move |event: &DeviceEvent<'_>| {
            let Some(inner) = weak.upgrade() else { return };
            inner.emit(&match *event {
                DeviceEvent::Alloc {
                    label,
                    id: alloc,
                    buffer_type,
                    address,
                    size,
                    size_per_bank,
                    num_banks,
                } => LiveEvent::Alloc {
                    device: name.clone(),
                    device_id: Some(id.clone()),
                    id: alloc,
                    pool: buffer_type,
                    address,
                    size,
                    size_per_bank,
                    banks: num_banks,
                    label: label.map(str::to_string),
                },
                DeviceEvent::Free {
                    id: alloc,
                    buffer_type,
                } => LiveEvent::Free {
                    device: name.clone(),
                    device_id: Some(id.clone()),
                    id: alloc,
                    pool: buffer_type,
                },
            });
        })
    }

    /// Stops the snapshot thread, writes a last snapshot of every watched
    /// device and the run's end.
    pub fn finish(&self, passed: u64, failed: u64) {
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = lock(&self.inner.ticker).take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
        self.inner.snapshot_all();
        self.emit(LiveEvent::RunEnd { passed, failed });
    }

    /// The stream's file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// This writer's id in the stream (`PID.N`).
    pub fn writer(&self) -> &str {
        &self.inner.writer
    }
}

/// The run id in a stream file's first line, if it is a writer's
/// `stream_start` of a joined run.
fn first_run(mut file: &File) -> Option<String> {
    let mut head = Vec::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64 * 1024).read_to_end(&mut head).ok()?;
    let end = head.iter().position(|&b| b == b'\n')?;
    match serde_json::from_slice::<LiveLine>(&head[..end]).ok()?.event {
        LiveEvent::StreamStart { run, .. } => run,
        _ => None,
    }
}

/// An exclusive advisory lock of a whole file (`File::lock`), held while the
/// value lives. Where the platform or file system has none, writers go
/// unlocked (a run's first writers could then both start the file afresh).
mod file_lock {
    use std::fs::File;

    pub(super) struct Exclusive<'a>(Option<&'a File>);

    pub(super) fn exclusive(file: &File) -> Exclusive<'_> {
        Exclusive(file.lock().ok().map(|()| file))
    }

    impl Drop for Exclusive<'_> {
        fn drop(&mut self) {
            if let Some(file) = self.0 {
                let _ = file.unlock();
            }
        }
    }
}

/// A device being streamed; stops when dropped.
#[must_use = "the device is streamed only while the Watch is alive: bind it with `let _watch = ...`"]
pub struct Watch {
    stream: LiveStream,
    device: Device,
    test: Option<String>,
    key: u64,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("device", &self.device.name())
            .field("test", &self.test)
            .finish()
    }
}

impl Watch {
    /// Writes a snapshot of the device now (besides the periodic ones).
    pub fn snapshot(&self) {
        self.stream
            .inner
            .snapshot(&self.device, self.test.as_deref());
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.snapshot();
        let inner = &self.stream.inner;
        {
            let mut taps = lock(&inner.taps);
            if let Some(at) = taps.iter().position(|t| t.device.same_device(&self.device)) {
                taps[at].watches -= 1;
                if taps[at].watches == 0 {
                    let tap = taps.swap_remove(at);
                    tap.device.remove_observer(tap.token);
                }
            }
        }
        lock(&inner.watched).retain(|w| w.key != self.key);
    }
}

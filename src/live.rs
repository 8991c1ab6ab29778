//! The live stream: memory events and periodic snapshots written as JSON
//! lines to a file that another process follows (the memory monitor). A
//! device's allocator lives in the process that uses it, so this stream is how
//! a second process sees it.
//!
//! The runner writes one when `TT_MEMGUARD_LIVE=PATH` is set (snapshot period
//! `TT_MEMGUARD_LIVE_INTERVAL_MS`, default 100); any program can write one
//! with [`LiveStream`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceEvent};
use crate::error::{Error, Result};
use crate::types::{BufferType, PoolStats};

/// One event of a live stream.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
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
    },
    /// A buffer was placed.
    Alloc {
        /// The device's name.
        device: String,
        /// Allocation id on the device.
        id: u64,
        /// The pool.
        pool: BufferType,
        /// Address in every bank.
        address: u64,
        /// Requested size.
        size: u64,
        /// Bytes per bank.
        per_bank_size: u64,
        /// Banks of the pool.
        banks: u32,
    },
    /// A buffer was freed.
    Free {
        /// The device's name.
        device: String,
        /// Allocation id on the device.
        id: u64,
        /// The pool.
        pool: BufferType,
    },
    /// The statistics of every pool of a device.
    Snapshot {
        /// The device's name.
        device: String,
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
        /// Whether it passed (body and memory checks).
        passed: bool,
        /// The memory summary line.
        summary: String,
    },
    /// The run ended; a follower stops here.
    RunEnd {
        /// Tests that passed.
        passed: u64,
        /// Tests that failed.
        failed: u64,
    },
}

/// A line of the stream: milliseconds since the stream started, and the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveLine {
    /// Milliseconds since the stream was created.
    pub t_ms: u64,
    /// The event.
    #[serde(flatten)]
    pub event: LiveEvent,
}

impl LiveLine {
    /// Parses one line of a stream.
    ///
    /// # Errors
    ///
    /// [`Error::LiveStream`] naming the line number and what is wrong.
    pub fn parse(text: &str, line: usize, path: &Path) -> Result<LiveLine> {
        serde_json::from_str(text).map_err(|e| Error::LiveStream {
            path: path.to_path_buf(),
            line,
            reason: format!("not a memguard live event ({e})"),
        })
    }
}

struct Watched {
    device: Device,
    test: Option<String>,
    key: u64,
}

struct Inner {
    out: Mutex<BufWriter<File>>,
    path: PathBuf,
    start: Instant,
    watched: Mutex<Vec<Watched>>,
    next_key: Mutex<u64>,
    stop: AtomicBool,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn emit(&self, event: LiveEvent) {
        let line = LiveLine {
            t_ms: self.start.elapsed().as_millis() as u64,
            event,
        };
        let json = serde_json::to_string(&line).expect("live events serialize");
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A follower reads line by line: flush every event. A write error
        // (disk full, file removed) must not fail the program under test.
        let _ = writeln!(out, "{json}").and_then(|_| out.flush());
    }

    fn snapshot_all(&self) {
        let watched: Vec<(Device, Option<String>)> = self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|w| (w.device.clone(), w.test.clone()))
            .collect();
        for (device, test) in watched {
            if let Ok(snapshot) = device.snapshot() {
                self.emit(LiveEvent::Snapshot {
                    device: device.name().to_string(),
                    test,
                    pools: snapshot.pools.to_vec(),
                });
            }
        }
    }
}

/// Writes a live stream. Cheap to clone; the snapshot thread stops when the
/// last clone is dropped or [`finish`](Self::finish) is called.
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, LiveStream, SimDevice, MIB};
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
            .finish()
    }
}

impl LiveStream {
    /// Creates (or truncates) the stream file and starts the snapshot thread.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path.
    pub fn create(path: impl AsRef<Path>, interval: Duration) -> Result<LiveStream> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let inner = Arc::new(Inner {
            out: Mutex::new(BufWriter::new(file)),
            path,
            start: Instant::now(),
            watched: Mutex::new(Vec::new()),
            next_key: Mutex::new(0),
            stop: AtomicBool::new(false),
            ticker: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let interval = interval.max(Duration::from_millis(1));
        let ticker = std::thread::Builder::new()
            .name("memguard-live".to_string())
            .spawn(move || {
                loop {
                    std::thread::sleep(interval);
                    let Some(inner) = weak.upgrade() else { break };
                    if inner.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    inner.snapshot_all();
                }
            })
            .map_err(|source| Error::Io {
                path: PathBuf::from("<live stream thread>"),
                source,
            })?;
        *inner.ticker.lock().unwrap_or_else(|e| e.into_inner()) = Some(ticker);
        Ok(LiveStream { inner })
    }

    /// The stream named by `TT_MEMGUARD_LIVE`, if set, with the period of
    /// `TT_MEMGUARD_LIVE_INTERVAL_MS` (default 100).
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
                })?,
            Err(_) => 100,
        };
        Self::create(PathBuf::from(path), Duration::from_millis(interval)).map(Some)
    }

    /// Writes one event.
    pub fn emit(&self, event: LiveEvent) {
        self.inner.emit(event);
    }

    /// Streams `device`'s allocations and frees, and snapshots it
    /// periodically, until the returned guard is dropped. A snapshot is
    /// written at the start and at the end.
    pub fn watch(&self, device: &Device, test: Option<&str>) -> Watch {
        let key = {
            let mut next = self
                .inner
                .next_key
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let name = device.name().to_string();
        let weak = Arc::downgrade(&self.inner);
        device.set_observer(Some(Arc::new(move |event: &DeviceEvent| {
            let Some(inner) = weak.upgrade() else { return };
            inner.emit(match *event {
                DeviceEvent::Alloc {
                    id,
                    buffer_type,
                    address,
                    size,
                    per_bank_size,
                    num_banks,
                } => LiveEvent::Alloc {
                    device: name.clone(),
                    id,
                    pool: buffer_type,
                    address,
                    size,
                    per_bank_size,
                    banks: num_banks,
                },
                DeviceEvent::Free { id, buffer_type } => LiveEvent::Free {
                    device: name.clone(),
                    id,
                    pool: buffer_type,
                },
            });
        })));
        self.inner
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Watched {
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

    /// Writes the run's end and stops the snapshot thread.
    pub fn finish(&self, passed: u64, failed: u64) {
        self.inner.snapshot_all();
        self.emit(LiveEvent::RunEnd { passed, failed });
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self
            .inner
            .ticker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = handle.join();
        }
    }

    /// The stream's file.
    pub fn path(&self) -> &Path {
        &self.inner.path
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
    fn snapshot(&self) {
        if let Ok(snapshot) = self.device.snapshot() {
            self.stream.emit(LiveEvent::Snapshot {
                device: self.device.name().to_string(),
                test: self.test.clone(),
                pools: snapshot.pools.to_vec(),
            });
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.snapshot();
        self.device.set_observer(None);
        self.stream
            .inner
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|w| w.key != self.key);
    }
}

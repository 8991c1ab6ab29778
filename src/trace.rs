//! Allocation traces: a small text format for a sequence of allocations and
//! frees, and a replayer that runs one on a device and prints what the
//! allocator did after every step.
//!
//! ```text
//! # comment lines and blank lines are ignored
//! device wh                 # wh | n300 | bh (default wh)
//! l1_small 65536            # optional, bytes (default 0)
//! trace 8388608             # optional, bytes (default 0)
//! alloc w0 DRAM 1048576 2048 def
//! alloc s0 L1_SMALL 8192 1024 td shards 4
//! free w0
//! ```
//!
//! `DIR` is `bu` (bottom-up), `td` (top-down) or `def` (the pool's default);
//! `shards S` shards the buffer over the first S cores.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::device::{Buffer, Device};
use crate::error::{Error, Result};
use crate::source::Direction;
use crate::source::sim::{Preset, SimDevice};
use crate::types::{BufferType, Snapshot};

/// One operation of a trace.
///
/// # Examples
///
/// ```
/// use tt_memguard::{Trace, TraceOp};
///
/// let trace = Trace::parse("free w\n")?;
/// assert_eq!(trace.ops, [(1, TraceOp::Free { id: "w".to_string() })]);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceOp {
    /// Allocate a buffer and call it `id`.
    Alloc {
        /// The trace's name for the buffer.
        id: String,
        /// The pool.
        buffer_type: BufferType,
        /// Size in bytes.
        size: u64,
        /// Page size in bytes.
        page_size: u64,
        /// Placement direction.
        direction: Direction,
        /// Cores for a sharded buffer.
        shards: Option<u32>,
    },
    /// Free the buffer called `id` (nothing happens when it is not live).
    Free {
        /// The trace's name for the buffer.
        id: String,
    },
}

/// A parsed allocation trace.
/// # Examples
///
/// ```
/// use tt_memguard::Trace;
///
/// let trace = Trace::parse("device bh\nalloc w DRAM 8192 1024 def\nfree w\n")?;
/// let dev = trace.open_sim()?;
/// let mut lines = Vec::new();
/// trace.replay(&dev, |l| lines.push(l.to_string()))?;
/// assert!(lines[1].starts_with("1 0x100080 DRAM:1024/"));
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The device model to replay on.
    pub preset: Preset,
    /// L1_SMALL bytes per bank to open the device with.
    pub l1_small_size: u64,
    /// TRACE bytes in total to open the device with.
    pub trace_region_size: u64,
    /// The operations, each with its line number in the source.
    pub ops: Vec<(usize, TraceOp)>,
}

impl Trace {
    /// Parses a trace.
    ///
    /// # Errors
    ///
    /// [`Error::TraceSyntax`] naming the first malformed line, its text and
    /// what is accepted.
    pub fn parse(text: &str) -> Result<Trace> {
        parse(text, None)
    }

    /// Reads and parses a trace file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read, [`Error::TraceSyntax`]
    /// (with the path) for a malformed line.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Trace> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), &e))?;
        parse(&text, Some(path.to_path_buf()))
    }

    /// Opens the simulated device the trace names, with its carve-outs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidGeometry`] when the carve-outs do not fit the device.
    pub fn open_sim(&self) -> Result<Device> {
        SimDevice::builder(self.preset)
            .l1_small_size(self.l1_small_size)
            .trace_region_size(self.trace_region_size)
            .build()
    }

    /// Replays the trace on `device`, calling `out` with one line for the
    /// fresh device and one per operation:
    ///
    /// ```text
    /// 0 - DRAM:A/F/L L1:A/F/L L1_SMALL:A/F/L TRACE:A/F/L
    /// 1 0x100040 DRAM:88064/1072605120/1072605120 L1:... L1_SMALL:... TRACE:...
    /// ```
    ///
    /// The second field is the new buffer's address, `-` for a free,
    /// `ERR:oom`, `ERR:l1small_interleaved` or `ERR:other` for a refused
    /// allocation; A/F/L are each pool's per-bank allocated, free and
    /// largest-free bytes. An `ERR:other` line ends with `# ` and the
    /// reason (the request's error message), e.g.
    /// `3 ERR:other DRAM:... TRACE:... # size 3000 B is not a multiple of
    /// the page size 2048 B: ...`. Every buffer still live at the end is
    /// freed.
    ///
    /// # Errors
    ///
    /// [`Error::TraceSyntax`] when an `alloc` reuses the name of a live
    /// buffer; errors of the device itself (closed, C++ exception).
    pub fn replay(&self, device: &Device, mut out: impl FnMut(&str)) -> Result<()> {
        let mut live: HashMap<&str, Buffer> = HashMap::new();
        out(&format_line(0, "-", &device.snapshot()?));
        for (step, (line, op)) in self.ops.iter().enumerate() {
            let mut reason = None;
            let field = match op {
                TraceOp::Alloc {
                    id,
                    buffer_type,
                    size,
                    page_size,
                    direction,
                    shards,
                } => {
                    if live.contains_key(id.as_str()) {
                        return Err(Error::TraceSyntax {
                            path: None,
                            line: *line,
                            text: format!("alloc {id}"),
                            reason: format!(
                                "buffer {id:?} is already live: free it first or use another id"
                            ),
                            source: None,
                        });
                    }
                    let mut request = device
                        .buffer(*buffer_type, *size)
                        .page_size(*page_size)
                        .direction(*direction);
                    if let Some(shards) = shards {
                        request = request.sharded(*shards);
                    }
                    match request.label(id.clone()).allocate() {
                        Ok(buffer) => {
                            let field = format!("{:#x}", buffer.address());
                            live.insert(id.as_str(), buffer);
                            field
                        }
                        Err(
                            Error::OutOfMemory { .. }
                            | Error::BelowAddressLimit { .. }
                            | Error::BufferTooLarge { .. },
                        ) => "ERR:oom".to_string(),
                        Err(Error::L1SmallInterleaved) => "ERR:l1small_interleaved".to_string(),
                        Err(e @ (Error::DeviceClosed { .. } | Error::Cpp { .. })) => return Err(e),
                        Err(e) => {
                            reason = Some(e.to_string());
                            "ERR:other".to_string()
                        }
                    }
                }
                TraceOp::Free { id } => {
                    if let Some(buffer) = live.remove(id.as_str()) {
                        buffer.free()?;
                    }
                    "-".to_string()
                }
            };
            let mut text = format_line(step + 1, &field, &device.snapshot()?);
            if let Some(reason) = reason {
                text.push_str(" # ");
                // One line per step, whatever the message.
                text.push_str(&reason.replace('\n', " "));
            }
            out(&text);
        }
        Ok(())
    }
}

fn format_line(step: usize, field: &str, snapshot: &Snapshot) -> String {
    let mut line = format!("{step} {field}");
    for pool in snapshot.iter() {
        line.push_str(&format!(
            " {}:{}/{}/{}",
            pool.buffer_type,
            pool.allocated_per_bank,
            pool.free_per_bank,
            pool.largest_free_block_per_bank
        ));
    }
    line
}

fn parse(text: &str, path: Option<PathBuf>) -> Result<Trace> {
    let mut trace = Trace {
        preset: Preset::WormholeB0,
        l1_small_size: 0,
        trace_region_size: 0,
        ops: Vec::new(),
    };
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let fail = |reason: String| Error::TraceSyntax {
            path: path.clone(),
            line,
            text: raw.to_string(),
            reason,
            source: None,
        };
        let words: Vec<&str> = content.split_whitespace().collect();
        let header = matches!(words[0], "device" | "l1_small" | "trace");
        if header && !trace.ops.is_empty() {
            return Err(fail(format!(
                "{:?} must come before the first alloc or free",
                words[0]
            )));
        }
        match words.as_slice() {
            ["device", name] => {
                trace.preset = match *name {
                    "wh" => Preset::WormholeB0,
                    "n300" => Preset::WormholeN300,
                    "bh" => Preset::BlackholeP150,
                    other => {
                        return Err(fail(format!(
                            "unknown device {other:?}: expected wh, n300 or bh"
                        )));
                    }
                };
            }
            ["l1_small", n] => trace.l1_small_size = number(n, "l1_small size").map_err(fail)?,
            ["trace", n] => trace.trace_region_size = number(n, "trace size").map_err(fail)?,
            ["alloc", id, pool, size, page, dir, rest @ ..] => {
                let buffer_type = pool
                    .parse::<BufferType>()
                    .map_err(|e| fail(e.to_string()).with_source(e))?;
                let size = number(size, "size").map_err(fail)?;
                let page_size = number(page, "page size").map_err(fail)?;
                let direction = match *dir {
                    "bu" => Direction::BottomUp,
                    "td" => Direction::TopDown,
                    "def" => Direction::Default,
                    other => {
                        return Err(fail(format!(
                            "unknown direction {other:?}: expected bu, td or def"
                        )));
                    }
                };
                let shards = match rest {
                    [] => None,
                    ["shards", s] => Some(shard_count(s).map_err(fail)?),
                    _ => {
                        return Err(fail(
                            "unexpected words after the direction: expected nothing or \"shards S\"".into(),
                        ));
                    }
                };
                trace.ops.push((
                    line,
                    TraceOp::Alloc {
                        id: id.to_string(),
                        buffer_type,
                        size,
                        page_size,
                        direction,
                        shards,
                    },
                ));
            }
            ["free", id] => trace.ops.push((line, TraceOp::Free { id: id.to_string() })),
            _ => {
                return Err(fail(
                    "expected one of: device wh|n300|bh, l1_small N, trace N, alloc ID POOL SIZE PAGE DIR [shards S], free ID"
                        .into(),
                ));
            }
        }
    }
    Ok(trace)
}

fn number(text: &str, what: &str) -> std::result::Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse::<u64>(),
    };
    parsed.map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => {
            format!(
                "{what} {text:?} is too large: at most {} (2^64 - 1)",
                u64::MAX
            )
        }
        _ => format!("{what} {text:?} is not a number of bytes (decimal or 0x hex)"),
    })
}

fn shard_count(text: &str) -> std::result::Result<u32, String> {
    text.parse::<u32>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => {
            format!("shard count {text:?} is too large: at most {}", u32::MAX)
        }
        _ => format!("shard count {text:?} is not a whole number"),
    })
}

/// The error for a trace file that is not UTF-8: the line and column of
/// the first bad byte, and the line as far as it can be shown.
fn not_utf8(path: &Path, bytes: &[u8], error: &std::string::FromUtf8Error) -> Error {
    let at = error.utf8_error().valid_up_to();
    let start = bytes[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let end = bytes[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| at + i);
    Error::TraceSyntax {
        path: Some(path.to_path_buf()),
        line: bytes[..start].iter().filter(|&&b| b == b'\n').count() + 1,
        text: String::from_utf8_lossy(&bytes[start..end])
            .trim_end_matches('\r')
            .to_string(),
        reason: format!(
            "byte {:#04x} at column {} is not UTF-8: save the trace as UTF-8 text",
            bytes[at],
            at - start + 1
        ),
        source: Some(Box::new(error.utf8_error())),
    }
}

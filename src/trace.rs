//! Allocation traces: a small text format for a sequence of allocations,
//! frees and program enqueues, and a replayer that runs one on a device and
//! prints what the allocator did after every step.
//!
//! ```text
//! # comment lines and blank lines are ignored
//! device wh                 # wh | n300 | bh (default wh)
//! l1_small 65536            # optional, bytes (default 0)
//! trace 8388608             # optional, bytes (default 0)
//! alloc w0 DRAM 1048576 2048 def
//! alloc s0 L1_SMALL 8192 1024 td shards 4 label=halo
//! free w0
//! alloc out L1 524288 2048 td shards 64
//! program mm                # an empty program (reserves nothing)
//! cb mm 0,0-7,7 65536 index=0 page=2048
//! cb mm 0,0-3,3+4,4-7,7 8192 index=1,2 page=1024
//! cb mm 0,0-7,7 4096 index=16 page=2048 backed=out+2048
//! enqueue mm                # lays the CBs out (first time) and checks them
//! destroy mm
//! ```
//!
//! `DIR` is `bu` (bottom-up), `td` (top-down) or `def` (the pool's default);
//! `shards S` shards the buffer over the first S cores (the first S DRAM
//! banks for DRAM); `label=NAME`, last,
//! names the buffer in reports (the id names it otherwise).
//!
//! A `cb` line adds a circular buffer of `SIZE` bytes on each of its `CORES`
//! to a program: `CORES` is a core `X,Y`, a rectangle `X0,Y0-X1,Y1`, or
//! several joined by `+`; `index=` lists the buffer indices it serves, all
//! with pages of `page=` bytes; `backed=BUFFER+OFFSET` (or `backed=BUFFER`,
//! offset 0) uses the memory of a live L1 buffer of the trace instead of a
//! place in the CB region. A program must be created by a `program` line
//! before its `cb`, `enqueue` and `destroy` lines, and its id is free again
//! after `destroy`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::cb_failure::CircularBufferCheck;
use crate::cores::{CoreRange, CoreRangeSet};
use crate::device::{Buffer, Device};
use crate::error::{Error, Result};
use crate::program::{CircularBufferConfig, Program};
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
#[non_exhaustive]
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
        /// The buffer's label in reports (`label=NAME`; the trace's id when
        /// absent).
        label: Option<String>,
    },
    /// Free the buffer called `id` (nothing happens when it is not live).
    Free {
        /// The trace's name for the buffer.
        id: String,
    },
    /// Create an empty program and call it `id`.
    Program {
        /// The trace's name for the program.
        id: String,
    },
    /// Add a circular buffer to a program.
    Cb {
        /// The trace's name for the program.
        program: String,
        /// The cores it is created on.
        cores: CoreRangeSet,
        /// Total size in bytes, on each of its cores.
        size: u64,
        /// The buffer indices it serves.
        indices: Vec<u8>,
        /// Page size in bytes, for every index.
        page_size: u64,
        /// The trace's name of the L1 buffer backing it, and the offset into
        /// that buffer.
        backed: Option<(String, u64)>,
    },
    /// Enqueue a program: lay its circular buffers out (the first time) and
    /// check them.
    Enqueue {
        /// The trace's name for the program.
        program: String,
    },
    /// Destroy a program.
    Destroy {
        /// The trace's name for the program.
        program: String,
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
    /// the page size 2048 B: ...`.
    ///
    /// `program`, `cb` and `destroy` lines print `-` (a refused `cb` prints
    /// `ERR:other` and the reason). An `enqueue` that fits prints its CBs'
    /// addresses in creation order (`cbs:-` for none), then the pools, then
    /// where the CB region ends on the worst core and the bytes left
    /// between it and the lowest L1 buffer (or the end of L1):
    ///
    /// ```text
    /// 14 cbs:0x19d60,0x59d60,0x99d60 DRAM:... TRACE:... cb_end=0xb9d60 headroom=21152
    /// ```
    ///
    /// One that does not fit prints `ERR:cb_beyond_l1` or `ERR:cb_clash`
    /// and, after `# `, TT-Metal's message (the first line of
    /// [`Error::CircularBuffers`]). Every buffer and program still live at
    /// the end is freed.
    ///
    /// # Errors
    ///
    /// [`Error::TraceSyntax`] when an `alloc` reuses the name of a live
    /// buffer, a `cb` is backed by a buffer that is not live, or an
    /// operation names a program that does not exist (only possible in a
    /// trace built by hand: [`Trace::parse`] refuses it); errors of the
    /// device itself (closed, C++ exception, programs unsupported).
    pub fn replay(&self, device: &Device, mut out: impl FnMut(&str)) -> Result<()> {
        let mut live: HashMap<&str, Buffer> = HashMap::new();
        // Declared after `live`: programs go before the buffers backing them.
        let mut programs: HashMap<&str, Program> = HashMap::new();
        out(&format_line(0, "-", &device.snapshot()?));
        for (step, (line, op)) in self.ops.iter().enumerate() {
            let mut reason = None;
            let mut suffix = None;
            let trace_error = |text: String, reason: String| Error::TraceSyntax {
                path: None,
                line: *line,
                text,
                reason,
                source: None,
            };
            let field = match op {
                TraceOp::Alloc {
                    id,
                    buffer_type,
                    size,
                    page_size,
                    direction,
                    shards,
                    label,
                } => {
                    if live.contains_key(id.as_str()) {
                        return Err(trace_error(
                            format!("alloc {id}"),
                            format!(
                                "buffer {id:?} is already live: free it first or use another id"
                            ),
                        ));
                    }
                    let mut request = device
                        .buffer(*buffer_type, *size)
                        .page_size(*page_size)
                        .direction(*direction);
                    if let Some(shards) = shards {
                        request = request.sharded(*shards);
                    }
                    match request
                        .label(label.clone().unwrap_or_else(|| id.clone()))
                        .allocate()
                    {
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
                        Err(e) if fatal(&e) => return Err(e),
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
                TraceOp::Program { id } => {
                    if programs.contains_key(id.as_str()) {
                        return Err(trace_error(
                            format!("program {id}"),
                            format!(
                                "program {id:?} already exists: destroy it first or use another id"
                            ),
                        ));
                    }
                    programs.insert(id.as_str(), device.create_program()?);
                    "-".to_string()
                }
                TraceOp::Cb {
                    program,
                    cores,
                    size,
                    indices,
                    page_size,
                    backed,
                } => {
                    let Some(p) = programs.get_mut(program.as_str()) else {
                        return Err(trace_error(format!("cb {program}"), no_program(program)));
                    };
                    let mut config = CircularBufferConfig::new(*size);
                    for &index in indices {
                        config = config.page_size(index, *page_size);
                    }
                    if let Some((buffer, offset)) = backed {
                        let Some(b) = live.get(buffer.as_str()) else {
                            return Err(trace_error(
                                format!("cb {program} ... backed={buffer}"),
                                format!(
                                    "buffer {buffer:?} is not live here: allocate it (with an alloc line that succeeds) before the cb line"
                                ),
                            ));
                        };
                        config = config.backed_by(b, *offset);
                    }
                    match p.add_circular_buffer(cores.clone(), config) {
                        Ok(_) => "-".to_string(),
                        Err(e) if fatal(&e) => return Err(e),
                        Err(e) => {
                            reason = Some(e.to_string());
                            "ERR:other".to_string()
                        }
                    }
                }
                TraceOp::Enqueue { program } => {
                    let Some(p) = programs.get_mut(program.as_str()) else {
                        return Err(trace_error(
                            format!("enqueue {program}"),
                            no_program(program),
                        ));
                    };
                    match device.enqueue(p) {
                        Ok(run) => {
                            suffix = Some(format!(
                                " cb_end={:#x} headroom={}",
                                run.cb_end, run.headroom
                            ));
                            cb_addresses(p)
                        }
                        Err(Error::CircularBuffers(failure)) => {
                            reason = Some(failure.tt_metal_message());
                            match failure.check {
                                CircularBufferCheck::BeyondL1 => "ERR:cb_beyond_l1".to_string(),
                                CircularBufferCheck::Clash => "ERR:cb_clash".to_string(),
                            }
                        }
                        Err(e) if fatal(&e) => return Err(e),
                        Err(e) => {
                            reason = Some(e.to_string());
                            "ERR:other".to_string()
                        }
                    }
                }
                TraceOp::Destroy { program } => {
                    if programs.remove(program.as_str()).is_none() {
                        return Err(trace_error(
                            format!("destroy {program}"),
                            no_program(program),
                        ));
                    }
                    "-".to_string()
                }
            };
            let mut text = format_line(step + 1, &field, &device.snapshot()?);
            if let Some(suffix) = suffix {
                text.push_str(&suffix);
            }
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

/// Errors that stop a replay: the device itself failed, or cannot do what
/// the trace asks.
fn fatal(e: &Error) -> bool {
    matches!(
        e,
        Error::DeviceClosed { .. } | Error::Cpp { .. } | Error::Unsupported { .. }
    )
}

fn no_program(program: &str) -> String {
    format!("no program {program:?} exists here: create it with \"program {program}\" first")
}

/// `cbs:ADDR,ADDR,...` in creation order, `cbs:-` for a program without any.
fn cb_addresses(program: &Program) -> String {
    let addresses: Vec<String> = program
        .circular_buffers()
        .iter()
        .map(|cb| cb.address.map_or("-".to_string(), |a| format!("{a:#x}")))
        .collect();
    if addresses.is_empty() {
        "cbs:-".to_string()
    } else {
        format!("cbs:{}", addresses.join(","))
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
    // Programs are created and destroyed unconditionally: which exist at a
    // line is known before the replay.
    let mut programs: HashSet<&str> = HashSet::new();
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
                "{:?} must come before the first operation (alloc, free, program, cb, enqueue, destroy)",
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
                let (rest, label) = match rest {
                    [before @ .., last] if last.starts_with("label=") => {
                        let name = &last["label=".len()..];
                        if name.is_empty() {
                            return Err(fail(
                                "empty label: write label=NAME (no spaces) or leave it out".into(),
                            ));
                        }
                        (before, Some(name.to_string()))
                    }
                    _ => (rest, None),
                };
                let shards = match rest {
                    [] => None,
                    ["shards", s] => Some(shard_count(s).map_err(fail)?),
                    _ => {
                        return Err(fail(
                            "unexpected words after the direction: expected nothing, \"shards S\" or \"label=NAME\" (shards first)".into(),
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
                        label,
                    },
                ));
            }
            ["free", id] => trace.ops.push((line, TraceOp::Free { id: id.to_string() })),
            ["program", id] => {
                if !programs.insert(id) {
                    return Err(fail(format!(
                        "program {id:?} already exists: destroy it first or use another id"
                    )));
                }
                trace
                    .ops
                    .push((line, TraceOp::Program { id: id.to_string() }));
            }
            ["cb", program, cores, size, options @ ..] => {
                if !programs.contains(program) {
                    return Err(fail(no_program(program)));
                }
                let cores = core_set(cores).map_err(fail)?;
                let size = number(size, "size").map_err(fail)?;
                let (indices, page_size, backed) = cb_options(options).map_err(fail)?;
                trace.ops.push((
                    line,
                    TraceOp::Cb {
                        program: program.to_string(),
                        cores,
                        size,
                        indices,
                        page_size,
                        backed,
                    },
                ));
            }
            ["enqueue", program] => {
                if !programs.contains(program) {
                    return Err(fail(no_program(program)));
                }
                trace.ops.push((
                    line,
                    TraceOp::Enqueue {
                        program: program.to_string(),
                    },
                ));
            }
            ["destroy", program] => {
                if !programs.remove(program) {
                    return Err(fail(no_program(program)));
                }
                trace.ops.push((
                    line,
                    TraceOp::Destroy {
                        program: program.to_string(),
                    },
                ));
            }
            _ => {
                return Err(fail(format!("expected one of: {LINE_KINDS}")));
            }
        }
    }
    Ok(trace)
}

/// Every kind of line, as the error for an unknown one lists them.
const LINE_KINDS: &str = "device wh|n300|bh, l1_small N, trace N, alloc ID POOL SIZE PAGE DIR [shards S] [label=NAME], free ID, program P, cb P CORES SIZE index=I[,J...] page=N [backed=ID[+OFFSET]], enqueue P, destroy P";

/// `X,Y`, `X0,Y0-X1,Y1`, or several of them joined by `+`.
fn core_set(text: &str) -> std::result::Result<CoreRangeSet, String> {
    let malformed = || {
        format!(
            "cores {text:?} are not X,Y or X0,Y0-X1,Y1 joined by +: e.g. 0,0-7,7 or 0,0-3,3+4,4-7,7"
        )
    };
    let coord = |part: &str| -> std::result::Result<(u32, u32), String> {
        let (x, y) = part.split_once(',').ok_or_else(malformed)?;
        let n = |v: &str| v.parse::<u32>().map_err(|_| malformed());
        Ok((n(x)?, n(y)?))
    };
    let mut ranges = Vec::new();
    for part in text.split('+') {
        let range = match part.split_once('-') {
            Some((start, end)) => {
                CoreRange::new(coord(start)?, coord(end)?).map_err(|e| e.to_string())?
            }
            None => CoreRange::core(coord(part)?),
        };
        ranges.push(range);
    }
    CoreRangeSet::new(ranges).map_err(|e| e.to_string())
}

/// The circular buffer's index list, page size and backing buffer, from
/// `index=I[,J...] page=N [backed=ID[+OFFSET]]` in any order.
type CbOptions = (Vec<u8>, u64, Option<(String, u64)>);

fn cb_options(words: &[&str]) -> std::result::Result<CbOptions, String> {
    let (mut indices, mut page, mut backed) = (None, None, None);
    for word in words {
        let expected = || {
            format!(
                "unexpected {word:?} after the size: expected index=I[,J...] page=N [backed=ID[+OFFSET]]"
            )
        };
        let (key, value) = word.split_once('=').ok_or_else(expected)?;
        let twice = || format!("{key}= is given twice: give it once");
        match key {
            "index" => {
                let list = value
                    .split(',')
                    .map(|i| {
                        i.parse::<u8>().map_err(|_| {
                            format!("buffer index {i:?} is not a whole number from 0 to 255")
                        })
                    })
                    .collect::<std::result::Result<Vec<u8>, String>>()?;
                if indices.replace(list).is_some() {
                    return Err(twice());
                }
            }
            "page" => {
                if page.replace(number(value, "page size")?).is_some() {
                    return Err(twice());
                }
            }
            "backed" => {
                let (id, offset) = match value.rsplit_once('+') {
                    Some((id, offset)) => (id, number(offset, "backing offset")?),
                    None => (value, 0),
                };
                if id.is_empty() {
                    return Err(format!(
                        "backed={value} names no buffer: give backed=ID or backed=ID+OFFSET"
                    ));
                }
                if backed.replace((id.to_string(), offset)).is_some() {
                    return Err(twice());
                }
            }
            _ => return Err(expected()),
        }
    }
    match (indices, page) {
        (Some(indices), Some(page)) => Ok((indices, page, backed)),
        _ => Err("a cb line needs index=I[,J...] and page=N after the size".to_string()),
    }
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

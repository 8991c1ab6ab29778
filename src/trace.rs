//! Allocation traces: a small text format for a sequence of allocations,
//! frees and program enqueues, a replayer that runs one on a device and
//! prints what the allocator did after every step, and the writer that
//! [`Device::record`](crate::Device::record) uses.
//!
//! ```text
//! # comment lines and blank lines are ignored
//! device wh                 # wh | n300 | bh (default wh)
//! l1_small 65536            # optional, bytes (default 0)
//! trace 8388608             # optional, bytes (default 0)
//! alloc w0 DRAM 1048576 2048 def expect=0x100040
//! alloc s0 L1_SMALL 8192 1024 td shards 4 label=halo
//! free w0
//! alloc out L1 524288 2048 td shards 64
//! alloc big DRAM 4294967296 2048 def expect=oom
//! alloc pinned L1 2048 2048 def fixed=0x100000
//! program mm                # an empty program (reserves nothing)
//! cb mm 0,0-7,7 65536 index=0 page=2048
//! cb mm 0,0-3,3+4,4-7,7 8192 index=1,2 page=1024
//! cb mm 0,0-7,7 4096 index=16 page=2048 backed=out+2048
//! enqueue mm expect=0x19d60,0x29d60,0x15c800  # lays the CBs out (first time) and checks them
//! destroy mm
//! ```
//!
//! `DIR` is `bu` (bottom-up), `td` (top-down) or `def` (the pool's default);
//! `shards S` shards the buffer over the first S cores (the first S DRAM
//! banks for DRAM). Options follow, in
//! any order, each at most once: `label=NAME` names the buffer in reports
//! (the id names it otherwise; `%XX` escapes a byte, so that a label may
//! hold spaces, `#` or `%`); `fixed=ADDR` places the buffer at that address
//! instead of where the allocator would (the simulated device's
//! [`at_address`](crate::BufferBuilder::at_address); a TT-Metal device
//! refuses it); `expect=ADDR` or
//! `expect=oom` says where the recorded device placed it, or that it
//! refused it as out of memory.
//!
//! A `cb` line adds a circular buffer of `SIZE` bytes on each of its `CORES`
//! to a program: `CORES` is a core `X,Y`, a rectangle `X0,Y0-X1,Y1`, or
//! several joined by `+`; `index=` lists the buffer indices it serves, all
//! with pages of `page=` bytes; `backed=BUFFER+OFFSET` (or `backed=BUFFER`,
//! offset 0) uses the memory of a live L1 buffer of the trace instead of a
//! place in the CB region. A program must be created by a `program` line
//! before its `cb`, `enqueue` and `destroy` lines, and its id is free again
//! after `destroy`. An `enqueue` line may say what the recorded device did:
//! `expect=ADDR,ADDR,...` (its CBs' addresses in creation order; `expect=-`
//! for a program without CBs), `expect=clash` or `expect=beyond_l1` (the
//! check that refused it).
//!
//! # Expectations
//!
//! [`Trace::replay`] checks every `expect=`: a buffer placed elsewhere, an
//! allocation refused (or placed) against the recording, or circular
//! buffers laid out at other addresses stop the replay with
//! [`Error::TraceMismatch`] naming the line, after printing that line.
//! Expectations hold for the device model and carve-outs the trace names;
//! replaying on another one ([`Trace::what_if`], `--preset` of the `replay`
//! example) first drops them with [`Trace::clear_expectations`].
//!
//! # Writing
//!
//! [`Trace::to_text`] (and `Display`) writes a trace back in this format,
//! one line per operation after the three header lines (`device`,
//! `l1_small`, `trace`): parsing the text gives the same operations, and a
//! trace [`Device::record`](crate::Device::record) made carries exactly the
//! line numbers its text has.

use std::collections::{HashMap, HashSet};
use std::fmt;
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
        /// A fixed address to place the buffer at (`fixed=ADDR`) instead of
        /// where the allocator would.
        fixed: Option<u64>,
        /// What the recorded device did (`expect=ADDR` or `expect=oom`):
        /// [`Expect::At`] or [`Expect::OutOfMemory`].
        expect: Option<Expect>,
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
        /// What the recorded device did (`expect=...`):
        /// [`Expect::CircularBuffers`], [`Expect::Clash`] or
        /// [`Expect::BeyondL1`].
        expect: Option<Expect>,
    },
    /// Destroy a program.
    Destroy {
        /// The trace's name for the program.
        program: String,
    },
}

/// What the recorded device did at an operation (`expect=` in the text),
/// checked by [`Trace::replay`].
///
/// # Examples
///
/// ```
/// use tt_memguard::{Expect, Trace, TraceOp};
///
/// let trace = Trace::parse("alloc w DRAM 8192 1024 def expect=0x100040\n")?;
/// let TraceOp::Alloc { expect, .. } = &trace.ops[0].1 else { unreachable!() };
/// assert_eq!(expect, &Some(Expect::At(0x100040)));
/// assert_eq!(Expect::CircularBuffers(vec![0x19d60, 0x1ad60]).to_string(), "0x19d60,0x1ad60");
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// An allocation placed at this address (`expect=0x100040`).
    At(u64),
    /// An allocation refused: no free block large enough (`expect=oom`).
    OutOfMemory,
    /// An enqueue that fit, its circular buffers at these addresses in
    /// creation order (`expect=0x19d60,0x1ad60`; `expect=-` for none).
    CircularBuffers(Vec<u64>),
    /// An enqueue refused: a CB region ends above the lowest L1 buffer
    /// (`expect=clash`).
    Clash,
    /// An enqueue refused: a CB region ends past a core's L1
    /// (`expect=beyond_l1`).
    BeyondL1,
}

impl fmt::Display for Expect {
    /// The text after `expect=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::At(address) => write!(f, "{address:#x}"),
            Expect::OutOfMemory => f.write_str("oom"),
            Expect::CircularBuffers(addresses) if addresses.is_empty() => f.write_str("-"),
            Expect::CircularBuffers(addresses) => {
                for (i, a) in addresses.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{a:#x}")?;
                }
                Ok(())
            }
            Expect::Clash => f.write_str("clash"),
            Expect::BeyondL1 => f.write_str("beyond_l1"),
        }
    }
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

    /// The trace in its text form: the three header lines, then one line
    /// per operation (see the module documentation). [`Trace::parse`] reads
    /// it back to the same operations; the writer does not check them, so
    /// ids and labels of a trace built by hand must be single words (labels
    /// are escaped).
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::Trace;
    ///
    /// let trace = Trace::parse("device bh\nalloc w DRAM 8192 1024 def label=my%20weights\n")?;
    /// assert_eq!(
    ///     trace.to_text(),
    ///     "device bh\nl1_small 0\ntrace 0\nalloc w DRAM 8192 1024 def label=my%20weights\n"
    /// );
    /// assert_eq!(Trace::parse(&trace.to_text())?.ops[0].1, trace.ops[0].1);
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// Writes [`to_text`](Self::to_text) to a file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be written.
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_text()).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Drops every expectation (`expect=`), for a replay on another device
    /// model or other carve-outs than the recorded ones, where buffers may
    /// land elsewhere.
    pub fn clear_expectations(&mut self) {
        for (_, op) in &mut self.ops {
            match op {
                TraceOp::Alloc { expect, .. } | TraceOp::Enqueue { expect, .. } => *expect = None,
                _ => {}
            }
        }
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
    /// An operation with an expectation (`expect=`) must do what the
    /// recorded device did: the replay prints its line, then stops with
    /// [`Error::TraceMismatch`] when it did not.
    ///
    /// # Errors
    ///
    /// [`Error::TraceMismatch`] at the first expectation the device does not
    /// meet; [`Error::TraceSyntax`] when an `alloc` reuses the name of a live
    /// buffer, a `cb` is backed by a buffer that is not live, or an
    /// operation names a program that does not exist (only possible in a
    /// trace built by hand: [`Trace::parse`] refuses it); errors of the
    /// device itself (closed, C++ exception, programs unsupported).
    pub fn replay(&self, device: &Device, mut out: impl FnMut(&str)) -> Result<()> {
        self.replay_steps(device, ReplayMode::default(), &mut |step| out(step.text))?;
        Ok(())
    }

    /// [`replay`](Self::replay), handing `out` every step's parts; returns
    /// the buffers still live at the end, each with its line, for the
    /// caller to keep or drop.
    pub(crate) fn replay_steps(
        &self,
        device: &Device,
        mode: ReplayMode,
        out: &mut dyn FnMut(&Step<'_>),
    ) -> Result<Vec<(usize, Buffer)>> {
        let mut live: HashMap<&str, (usize, Buffer)> = HashMap::new();
        // Declared after `live`: programs go before the buffers backing them.
        let mut programs: HashMap<&str, Program> = HashMap::new();
        out(&Step {
            line: 0,
            field: "-",
            reason: None,
            error: None,
            text: &format_line(0, "-", &device.snapshot()?),
        });
        for (step, (line, op)) in self.ops.iter().enumerate() {
            let mut reason = None;
            let mut suffix = None;
            // A refusal other than out of memory, and an expectation the
            // device did not meet (what it did instead).
            let mut refused: Option<String> = None;
            let mut mismatch: Option<(&Expect, Expect)> = None;
            // The device's error for a refused operation, and whether the
            // trace says the recorded device refused it too.
            let mut error: Option<Error> = None;
            let mut expected_refusal = false;
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
                    fixed,
                    expect,
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
                    if let Some(address) = fixed {
                        request = request.at_address(*address);
                    }
                    let request = request.label(label.clone().unwrap_or_else(|| id.clone()));
                    let allocated = if mode.unlocated {
                        request.allocate_unlocated()
                    } else {
                        request.allocate()
                    };
                    let (field, got) = match allocated {
                        Ok(buffer) => {
                            let address = buffer.address();
                            live.insert(id.as_str(), (*line, buffer));
                            (format!("{address:#x}"), Expect::At(address))
                        }
                        Err(
                            e @ (Error::OutOfMemory { .. }
                            | Error::BelowAddressLimit { .. }
                            | Error::BufferTooLarge { .. }),
                        ) => {
                            expected_refusal = *expect == Some(Expect::OutOfMemory);
                            error = Some(e);
                            ("ERR:oom".to_string(), Expect::OutOfMemory)
                        }
                        Err(e) if fatal(&e) => return Err(e),
                        Err(e) => {
                            let field = match e {
                                Error::L1SmallInterleaved => "ERR:l1small_interleaved",
                                _ => {
                                    reason = Some(e.to_string());
                                    "ERR:other"
                                }
                            };
                            refused = Some(e.to_string());
                            error = Some(e);
                            (field.to_string(), Expect::OutOfMemory)
                        }
                    };
                    if let Some(expect) = expect
                        && (refused.is_some() || *expect != got)
                    {
                        mismatch = Some((expect, got));
                    }
                    field
                }
                TraceOp::Free { id } => {
                    if let Some((_, buffer)) = live.remove(id.as_str()) {
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
                        let Some((_, b)) = live.get(buffer.as_str()) else {
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
                            error = Some(e);
                            "ERR:other".to_string()
                        }
                    }
                }
                TraceOp::Enqueue { program, expect } => {
                    let Some(p) = programs.get_mut(program.as_str()) else {
                        return Err(trace_error(
                            format!("enqueue {program}"),
                            no_program(program),
                        ));
                    };
                    let (field, got) = match device.enqueue(p) {
                        Ok(run) => {
                            suffix = Some(format!(
                                " cb_end={:#x} headroom={}",
                                run.cb_end, run.headroom
                            ));
                            let addresses = p.circular_buffers().iter().map(|cb| cb.address);
                            let got = addresses.collect::<Option<Vec<u64>>>();
                            if got.is_none() {
                                refused = Some("a circular buffer without an address".into());
                            }
                            (
                                cb_addresses(p),
                                Expect::CircularBuffers(got.unwrap_or_default()),
                            )
                        }
                        Err(Error::CircularBuffers(failure)) => {
                            reason = Some(failure.tt_metal_message());
                            let outcome = match failure.check {
                                CircularBufferCheck::BeyondL1 => {
                                    ("ERR:cb_beyond_l1".to_string(), Expect::BeyondL1)
                                }
                                CircularBufferCheck::Clash => {
                                    ("ERR:cb_clash".to_string(), Expect::Clash)
                                }
                            };
                            expected_refusal = expect.as_ref() == Some(&outcome.1);
                            error = Some(Error::CircularBuffers(failure));
                            outcome
                        }
                        Err(e) if fatal(&e) => return Err(e),
                        Err(e) => {
                            reason = Some(e.to_string());
                            refused = Some(e.to_string());
                            error = Some(e);
                            ("ERR:other".to_string(), Expect::Clash)
                        }
                    };
                    if let Some(expect) = expect
                        && (refused.is_some() || *expect != got)
                    {
                        mismatch = Some((expect, got));
                    }
                    field
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
            // One line per step, whatever the message.
            let reason = reason.map(|r| r.replace('\n', " "));
            if let Some(reason) = &reason {
                text.push_str(" # ");
                text.push_str(reason);
            }
            out(&Step {
                line: *line,
                field: &field,
                reason: reason.as_deref(),
                error: error.as_ref(),
                text: &text,
            });
            if let Some((expected, got)) = mismatch {
                return Err(Error::TraceMismatch {
                    line: *line,
                    text: op.to_string(),
                    expected: expected.to_string(),
                    found: match refused {
                        Some(reason) => format!("a refusal ({reason})"),
                        None => got.to_string(),
                    },
                });
            }
            if mode.stop_on_refusal
                && !expected_refusal
                && let Some(e) = error
            {
                return Err(e);
            }
        }
        Ok(live.into_values().collect())
    }
}

/// How [`Trace::replay_steps`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplayMode {
    /// Stop at the first operation the device refuses that the trace does
    /// not say the recorded device refused too (`expect=oom`,
    /// `expect=clash`, `expect=beyond_l1`), with the device's error, after
    /// handing out that step.
    pub stop_on_refusal: bool,
    /// Allocate without a source location: reports name the buffers by
    /// their labels and ids, not by a line of the replayer.
    pub unlocated: bool,
}

/// One step of a replay: the fresh device (line 0), then one per operation.
pub(crate) struct Step<'a> {
    /// The operation's line in the trace; 0 for the fresh device.
    pub line: usize,
    /// The address, `-`, `cbs:...` or `ERR:...` field.
    pub field: &'a str,
    /// Why a request was refused, on one line.
    pub reason: Option<&'a str>,
    /// The device's error for a refused operation, whole.
    pub error: Option<&'a Error>,
    /// The whole line [`Trace::replay`] prints.
    pub text: &'a str,
}

/// The first line of the text form of a trace: its header comes first.
pub(crate) const FIRST_OP_LINE: usize = 4;

impl fmt::Display for Trace {
    /// The text form (see [`Trace::to_text`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "device {}", preset_word(self.preset))?;
        writeln!(f, "l1_small {}", self.l1_small_size)?;
        writeln!(f, "trace {}", self.trace_region_size)?;
        for (_, op) in &self.ops {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TraceOp {
    /// The operation's line, without a line break.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceOp::Alloc {
                id,
                buffer_type,
                size,
                page_size,
                direction,
                shards,
                label,
                fixed,
                expect,
            } => {
                let dir = match direction {
                    Direction::Default => "def",
                    Direction::BottomUp => "bu",
                    Direction::TopDown => "td",
                };
                write!(f, "alloc {id} {buffer_type} {size} {page_size} {dir}")?;
                if let Some(shards) = shards {
                    write!(f, " shards {shards}")?;
                }
                if let Some(address) = fixed {
                    write!(f, " fixed={address:#x}")?;
                }
                if let Some(expect) = expect {
                    write!(f, " expect={expect}")?;
                }
                if let Some(label) = label {
                    write!(f, " label={}", escape_label(label))?;
                }
                Ok(())
            }
            TraceOp::Free { id } => write!(f, "free {id}"),
            TraceOp::Program { id } => write!(f, "program {id}"),
            TraceOp::Cb {
                program,
                cores,
                size,
                indices,
                page_size,
                backed,
            } => {
                write!(f, "cb {program} ")?;
                for (i, r) in cores.ranges().iter().enumerate() {
                    if i > 0 {
                        f.write_str("+")?;
                    }
                    write!(f, "{},{}", r.start.x, r.start.y)?;
                    if r.end != r.start {
                        write!(f, "-{},{}", r.end.x, r.end.y)?;
                    }
                }
                write!(f, " {size} index=")?;
                for (i, index) in indices.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{index}")?;
                }
                write!(f, " page={page_size}")?;
                if let Some((buffer, offset)) = backed {
                    write!(f, " backed={buffer}+{offset}")?;
                }
                Ok(())
            }
            TraceOp::Enqueue { program, expect } => {
                write!(f, "enqueue {program}")?;
                if let Some(expect) = expect {
                    write!(f, " expect={expect}")?;
                }
                Ok(())
            }
            TraceOp::Destroy { program } => write!(f, "destroy {program}"),
        }
    }
}

/// The trace's word for a preset (its `device` line).
pub(crate) fn preset_word(preset: Preset) -> &'static str {
    match preset {
        Preset::WormholeB0 => "wh",
        Preset::WormholeN300 => "n300",
        Preset::BlackholeP150 => "bh",
    }
}

/// A label as one word: `%XX` for every byte of a space, a control
/// character, `#` or `%`.
fn escape_label(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_whitespace() || c.is_control() || c == '#' || c == '%' {
            let mut bytes = [0; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The label `escape_label` wrote.
fn unescape_label(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).unwrap_or("");
            let byte = u8::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() == 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    format!(
                        "label {text:?} has a % not followed by two hex digits: write %25 for a % itself"
                    )
                })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        format!("label {text:?} escapes bytes that are not UTF-8: escape whole characters")
    })
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
    use std::fmt::Write as _;
    let mut line = String::with_capacity(160);
    // Writing to a String cannot fail.
    let _ = write!(line, "{step} {field}");
    for pool in snapshot.iter() {
        let _ = write!(
            line,
            " {}:{}/{}/{}",
            pool.buffer_type.name(),
            pool.allocated_per_bank,
            pool.free_per_bank,
            pool.largest_free_block_per_bank
        );
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
                let (shards, options) = match rest {
                    ["shards", s, options @ ..] => (Some(shard_count(s).map_err(fail)?), options),
                    _ => (None, rest),
                };
                let (label, fixed, expect) = alloc_options(options).map_err(fail)?;
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
                        fixed,
                        expect,
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
            ["enqueue", program, rest @ ..] if rest.len() <= 1 => {
                if !programs.contains(program) {
                    return Err(fail(no_program(program)));
                }
                let expect = match rest {
                    [] => None,
                    [word] => Some(enqueue_expect(word).map_err(fail)?),
                    _ => unreachable!("at most one word after the program"),
                };
                trace.ops.push((
                    line,
                    TraceOp::Enqueue {
                        program: program.to_string(),
                        expect,
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
const LINE_KINDS: &str = "device wh|n300|bh, l1_small N, trace N, alloc ID POOL SIZE PAGE DIR [shards S] [label=NAME] [fixed=ADDR] [expect=ADDR|oom], free ID, program P, cb P CORES SIZE index=I[,J...] page=N [backed=ID[+OFFSET]], enqueue P [expect=ADDR,...|-|clash|beyond_l1], destroy P";

/// The label, fixed address and expectation of an `alloc` line, from
/// `label=NAME fixed=ADDR expect=ADDR|oom` in any order, each at most once.
type AllocOptions = (Option<String>, Option<u64>, Option<Expect>);

fn alloc_options(words: &[&str]) -> std::result::Result<AllocOptions, String> {
    let (mut label, mut fixed, mut expect) = (None, None, None);
    for word in words {
        let unexpected = || {
            format!(
                "unexpected {word:?} after the direction: expected \"shards S\" first, then label=NAME, fixed=ADDR or expect=ADDR|oom"
            )
        };
        let (key, value) = word.split_once('=').ok_or_else(unexpected)?;
        match key {
            "label" => {
                if value.is_empty() {
                    return Err("empty label: write label=NAME (no spaces) or leave it out".into());
                }
                set_once(&mut label, key, unescape_label(value)?)?;
            }
            "fixed" => {
                set_once(&mut fixed, key, number(value, "fixed address")?)?;
            }
            "expect" => {
                let e = match value {
                    "oom" => Expect::OutOfMemory,
                    _ => Expect::At(
                        number(value, "expected address")
                            .map_err(|e| format!("{e}: an alloc line expects an address or oom"))?,
                    ),
                };
                set_once(&mut expect, key, e)?;
            }
            _ => return Err(unexpected()),
        }
    }
    Ok((label, fixed, expect))
}

/// Sets the option `key=` of a line, which may be given once.
fn set_once<T>(slot: &mut Option<T>, key: &str, value: T) -> std::result::Result<(), String> {
    match slot.replace(value) {
        Some(_) => Err(format!("{key}= is given twice: give it once")),
        None => Ok(()),
    }
}

/// `expect=ADDR,ADDR,...`, `expect=-`, `expect=clash` or `expect=beyond_l1`
/// after an `enqueue`.
fn enqueue_expect(word: &str) -> std::result::Result<Expect, String> {
    let Some(value) = word.strip_prefix("expect=") else {
        return Err(format!(
            "unexpected {word:?} after the program: expected expect=ADDR,...|-|clash|beyond_l1 or nothing"
        ));
    };
    Ok(match value {
        "-" => Expect::CircularBuffers(Vec::new()),
        "clash" => Expect::Clash,
        "beyond_l1" => Expect::BeyondL1,
        _ => Expect::CircularBuffers(
            value
                .split(',')
                .map(|a| number(a, "circular buffer address"))
                .collect::<std::result::Result<Vec<u64>, String>>()
                .map_err(|e| {
                    format!("{e}: an enqueue expects its CBs' addresses, -, clash or beyond_l1")
                })?,
        ),
    })
}

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
                set_once(&mut indices, key, list)?;
            }
            "page" => {
                set_once(&mut page, key, number(value, "page size")?)?;
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
                set_once(&mut backed, key, (id.to_string(), offset))?;
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

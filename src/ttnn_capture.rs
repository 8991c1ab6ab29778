//! Importing ttnn graph captures: the JSON that `ttnn.graph.end_graph_capture()`
//! returns (or the report `ttnn.graph.end_graph_capture_to_file()` writes),
//! turned into a [`Trace`] that replays on the simulated device, so that a
//! Python model run can be checked for placement, out-of-memory and
//! circular-buffer clashes by the same allocator model as everything else.
//!
//! ```
//! use tt_memguard::Trace;
//! use tt_memguard::ttnn_capture::ImportOptions;
//!
//! let capture = r#"[
//!   {"counter": 0, "node_type": "capture_start", "params": null, "connections": [1]},
//!   {"counter": 1, "node_type": "function_start", "params": {"name": "ttnn.add", "inputs": "2"}, "connections": []},
//!   {"counter": 2, "node_type": "buffer", "params": {"size": 8192, "type": "L1", "layout": "INTERLEAVED"}, "connections": []},
//!   {"counter": 3, "node_type": "buffer_allocate", "params": {"size": 8192, "address": 0, "type": "L1",
//!       "buffer_type": 1, "layout": "INTERLEAVED", "page_size": 2048, "num_cores": 0, "device_id": 0}, "connections": [2]},
//!   {"counter": 4, "node_type": "circular_buffer_deallocate_all", "params": {"device_id": 0}, "connections": [1]},
//!   {"counter": 5, "node_type": "circular_buffer_allocate", "params": {"size": 4096, "address": 0,
//!       "core_range_set": "{[0-0 - 7-7]}", "globally_allocated": "0", "device_id": 0}, "connections": []},
//!   {"counter": 6, "node_type": "function_end", "params": {"name": "ttnn.add"}, "connections": []},
//!   {"counter": 7, "node_type": "capture_end", "params": null, "connections": []}
//! ]"#;
//! let imported = Trace::from_ttnn_capture(capture.as_bytes(), &ImportOptions::new())?;
//! assert_eq!(imported.report.allocations, 1);
//! assert_eq!(imported.report.circular_buffers, 1);
//! let dev = imported.trace.open_sim()?;
//! let mut lines = Vec::new();
//! imported.trace.replay(&dev, |l| lines.push(l.to_string()))?;
//! assert!(lines[1].starts_with("1 0x16d800 ")); // the L1 buffer, placed as TT-Metal places it
//! assert!(lines[4].starts_with("4 cbs:0x19d60 ")); // the program's circular buffer, at its enqueue
//! # Ok::<(), tt_memguard::Error>(())
//! ```
//!
//! # The capture format
//!
//! A capture is a JSON array of nodes in execution order, each
//! `{"counter", "node_type", "params", "connections", ...}`; `counter` is the
//! node's index. `params` maps names to values that are strings in older
//! captures and numbers in newer ones (both are read); it is `null` on the
//! capture markers. Fields other than these four (`arguments`,
//! `input_tensors`, `stacking_level`, `duration_ns`, `stack_trace`, ...) are
//! skipped without being kept. The report file form, an object whose
//! `"graph"` key holds the array, is read too, and its `"devices"` entry
//! names the architecture.
//!
//! # What becomes what
//!
//! | node | trace operation |
//! | --- | --- |
//! | `buffer_allocate` | `alloc b<N>` where N is the counter of its `buffer` node (its first connection): pool, size, page size, shards |
//! | `buffer_deallocate` | `free b<N>` |
//! | `circular_buffer_allocate` | a `cb` line in the current program (`program p<C>`, C the counter of its first CB, created at the first CB after a `circular_buffer_deallocate_all`) |
//! | the next `buffer_*` node, `function_start`/`function_end`, `circular_buffer_deallocate_all` or the end | `enqueue` of the current program: its CBs are laid out and checked against the L1 buffers live then |
//! | `circular_buffer_deallocate_all` | `destroy` of every program whose CBs it ends |
//! | `function_start`/`function_end` | the op names: a buffer's label is the outermost op and its direct child, e.g. `ttnn.add/BinaryNgDeviceOperation` (spaces become `_`) |
//! | `capture_start`, `capture_end`, `tensor`, `buffer` | nothing (counted) |
//! | `error` | nothing; its message is kept in the report |
//! | any other type | skipped and counted by type, or an error with [`ImportOptions::strict`] |
//!
//! TT-Metal lays circular buffers out per program, from the bottom of L1,
//! when the program is first compiled, checks them against the live L1
//! buffers at every enqueue, and frees them with the program; ttnn's graph
//! processor reports one `circular_buffer_deallocate_all` before every
//! program run (and when a compiled program is destroyed). One program per
//! run of CBs, enqueued right after its last CB and destroyed at the next
//! `circular_buffer_deallocate_all`, is that behaviour.
//!
//! # What a capture does not say, and what the importer does about it
//!
//! - **Pool.** `exact_buffer_type` (newest) or the numeric `buffer_type` /
//!   `buffer_type_value` (0 DRAM, 1 L1, 2 SYSTEM_MEMORY, 3 L1_SMALL, 4 TRACE)
//!   name it exactly. Older captures have only `type`, `DRAM` or `L1`, which
//!   cannot tell L1_SMALL from L1 nor TRACE from DRAM: those are imported as
//!   L1 and DRAM and counted in [`ImportReport::pool_from_type`].
//!   SYSTEM_MEMORY buffers are host memory: skipped and counted.
//! - **Page size.** Read from `page_size` when present. Older captures lack
//!   it: the page size becomes the greatest common divisor of the size and
//!   [`ImportOptions::default_page_size`] (2048 B, a bfloat16 tile), counted
//!   in [`ImportReport::page_size_inferred`]. Per-bank sizes follow from the
//!   page size, so an interleaved buffer's per-bank footprint can then differ
//!   by up to one page from the real one.
//! - **Shards.** A `*_SHARDED` layout is sharded over `num_cores` cores (the
//!   first cores of the grid: the capture has no shard grid or shard shape).
//!   Without `num_cores` the buffer is sharded over the whole compute grid,
//!   counted in [`ImportReport::shards_inferred`]. DRAM-sharded buffers are
//!   imported interleaved ([`ImportReport::dram_sharded`]): the simulator
//!   shards in L1 and L1_SMALL only. `SINGLE_BANK` buffers are imported
//!   interleaved with one page of the whole size, which puts all of it in
//!   every bank, as a single-bank buffer reserves it.
//! - **Direction.** Not recorded: every buffer takes its pool's default
//!   (DRAM bottom-up, L1 top-down), as ttnn's tensors do unless an op asks
//!   otherwise.
//! - **Addresses.** Not used for placement: the simulator places every
//!   buffer itself (in NO_DISPATCH mode every address in a capture is 0).
//! - **Carve-outs.** The capture does not record the `l1_small_size` and
//!   `trace_region_size` the device was opened with: give them in the
//!   options, or L1_SMALL and TRACE buffers fail as out of memory
//!   ([`ImportReport::notes`] says so).
//! - **Device.** Only one device is imported: [`ImportOptions::device_id`],
//!   or the first `device_id` met. Nodes of other devices are counted in
//!   [`ImportReport::other_devices`]. The model is [`ImportOptions::preset`],
//!   else the report file's `devices[].arch`, else Wormhole B0.
//! - **Circular buffers.** The capture gives each CB's total size and its
//!   core range set, not its buffer indices or page sizes: each CB gets the
//!   lowest index no earlier CB of its program uses on any of its cores, and
//!   one page of its whole size (layout and checks depend on neither).
//!   Globally allocated CBs live inside an L1 buffer: the importer backs them
//!   by the live L1 buffer whose captured address range holds the CB's
//!   address; when the address is 0 (NO_DISPATCH mode) or no buffer holds
//!   it, the CB is left out (it takes no CB-region space either way),
//!   counted in [`ImportReport::backed_cbs_skipped`]. With the program cache
//!   on, a program compiled before (in or before the capture) reports no CBs
//!   in NORMAL mode: capture with the cache off or in NO_DISPATCH mode to
//!   see every op's CBs.
//! - **Buffers from before the capture.** A `buffer_deallocate` of a buffer
//!   the capture never allocated (tensors created before
//!   `begin_graph_capture`) is skipped and counted in
//!   [`ImportReport::unknown_frees`] (an error with
//!   [`ImportOptions::strict`]); the memory such buffers held during the
//!   capture is not modelled. Begin the capture before creating the inputs.
//!
//! # Bad input
//!
//! Errors are [`Error::TtnnCapture`] naming the
//! input, the node's counter and the field: a node without `counter` or
//! `node_type`, a counter that does not increase (the nodes were reordered),
//! a required field missing or of the wrong kind (`size` of an allocation,
//! `core_range_set` of a CB, the buffer node of a deallocation), a
//! `function_end` that closes no open function or another one, a buffer
//! allocated twice without a deallocation, and malformed or truncated JSON
//! (with its line and column). The input is read as a stream, node by node:
//! memory stays proportional to the trace produced and the buffers live at
//! once, not to the size of the capture.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::cores::{CoreRange, CoreRangeSet};
use crate::error::{Error, Result};
use crate::source::Direction;
use crate::source::sim::Preset;
use crate::trace::{Trace, TraceOp};
use crate::types::BufferType;

/// The error underneath a capture error, when there is one (a JSON error).
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a capture is imported.
///
/// # Examples
///
/// ```
/// use tt_memguard::Preset;
/// use tt_memguard::ttnn_capture::ImportOptions;
///
/// let options = ImportOptions::new()
///     .preset(Preset::BlackholeP150)
///     .l1_small_size(32 * 1024)
///     .device_id(0)
///     .strict(true);
/// assert_eq!(options.default_page_size, 2048);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The simulated model to replay on; `None`: the report file's
    /// architecture, else Wormhole B0.
    pub preset: Option<Preset>,
    /// L1_SMALL bytes per bank the device was opened with (`l1_small_size`
    /// of `ttnn.open_device`).
    pub l1_small_size: u64,
    /// TRACE bytes the device was opened with (`trace_region_size`).
    pub trace_region_size: u64,
    /// The device whose nodes are imported; `None`: the first one met.
    pub device_id: Option<u64>,
    /// The page size to assume for captures that do not record one (the
    /// greatest common divisor of it and the buffer's size is used).
    pub default_page_size: u64,
    /// Unknown node types and deallocations of buffers the capture never
    /// allocated are errors instead of being skipped and counted.
    pub strict: bool,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            preset: None,
            l1_small_size: 0,
            trace_region_size: 0,
            device_id: None,
            default_page_size: 2048,
            strict: false,
        }
    }
}

impl ImportOptions {
    /// The defaults: the capture's model or Wormhole B0, no carve-outs, the
    /// first device, 2048-byte pages where none is recorded, lenient.
    pub fn new() -> ImportOptions {
        ImportOptions::default()
    }

    /// Replays on this model.
    pub fn preset(mut self, preset: Preset) -> Self {
        self.preset = Some(preset);
        self
    }

    /// L1_SMALL bytes per bank the device was opened with.
    pub fn l1_small_size(mut self, bytes: u64) -> Self {
        self.l1_small_size = bytes;
        self
    }

    /// TRACE bytes the device was opened with.
    pub fn trace_region_size(mut self, bytes: u64) -> Self {
        self.trace_region_size = bytes;
        self
    }

    /// Imports this device's nodes only.
    pub fn device_id(mut self, id: u64) -> Self {
        self.device_id = Some(id);
        self
    }

    /// The page size assumed where the capture records none.
    pub fn default_page_size(mut self, bytes: u64) -> Self {
        self.default_page_size = bytes;
        self
    }

    /// Whether unknown node types and unknown deallocations are errors.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
}

/// A buffer still allocated when the capture ended (a leak, or a tensor the
/// program still held).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveBuffer {
    /// The trace's name for it (`b<N>`, N the counter of its buffer node).
    pub id: String,
    /// The op that allocated it, when any.
    pub label: Option<String>,
    /// The pool.
    pub buffer_type: BufferType,
    /// Size in bytes.
    pub size: u64,
}

/// What an import read, produced, skipped and inferred.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Nodes read.
    pub nodes: u64,
    /// The device imported, when the capture names devices.
    pub device_id: Option<u64>,
    /// `function_start` nodes (ops and their inner calls).
    pub functions: u64,
    /// Buffer allocations imported.
    pub allocations: u64,
    /// Buffer deallocations imported.
    pub frees: u64,
    /// Programs made from the circular buffers.
    pub programs: u64,
    /// Circular buffers imported (backed ones included).
    pub circular_buffers: u64,
    /// Circular buffers backed by an L1 buffer of the trace.
    pub backed_cbs: u64,
    /// Globally allocated circular buffers left out: no live L1 buffer holds
    /// their address (0 in NO_DISPATCH mode).
    pub backed_cbs_skipped: u64,
    /// `tensor` and `buffer` nodes (descriptions, no memory event).
    pub metadata_nodes: u64,
    /// Nodes of devices other than the one imported.
    pub other_devices: u64,
    /// Deallocations of buffers the capture never allocated (allocated before
    /// it began).
    pub unknown_frees: u64,
    /// Host (SYSTEM_MEMORY) buffer events, skipped.
    pub system_memory: u64,
    /// Allocations whose pool came from `type` alone (L1_SMALL would read as
    /// L1, TRACE as DRAM).
    pub pool_from_type: u64,
    /// Allocations without a page size (assumed, see the module docs).
    pub page_size_inferred: u64,
    /// Sharded allocations without `num_cores` (sharded over the whole grid).
    pub shards_inferred: u64,
    /// DRAM-sharded allocations imported interleaved.
    pub dram_sharded: u64,
    /// SINGLE_BANK allocations (imported as one page in every bank).
    pub single_bank: u64,
    /// L1_SMALL allocations imported.
    pub l1_small_buffers: u64,
    /// TRACE allocations imported.
    pub trace_buffers: u64,
    /// Nodes of types the importer does not know, by type.
    pub skipped: BTreeMap<String, u64>,
    /// The messages of the capture's `error` nodes (the first 16).
    pub capture_errors: Vec<String>,
    /// Buffers allocated in the capture and never deallocated, in allocation
    /// order.
    pub live_at_end: Vec<LiveBuffer>,
}

/// Error messages kept from a capture's `error` nodes.
const ERRORS_KEPT: usize = 16;
/// Distinct unknown node types counted by name (the rest under one key).
const SKIPPED_TYPES_KEPT: usize = 32;
/// Live buffers named by [`ImportReport`]'s `Display`.
const LIVE_SHOWN: usize = 10;

impl ImportReport {
    /// What the replay of this import will miss or get only approximately,
    /// and what to do about it, one sentence each (empty when nothing).
    pub fn notes(&self, options: &ImportOptions) -> Vec<String> {
        let mut notes = Vec::new();
        if self.l1_small_buffers > 0 && options.l1_small_size == 0 {
            notes.push(format!(
                "{} L1_SMALL buffer(s) but no L1_SMALL region: give the l1_small_size the device was opened with (ImportOptions::l1_small_size, --l1-small)",
                self.l1_small_buffers
            ));
        }
        if self.trace_buffers > 0 && options.trace_region_size == 0 {
            notes.push(format!(
                "{} TRACE buffer(s) but no TRACE region: give the trace_region_size the device was opened with (ImportOptions::trace_region_size, --trace-region)",
                self.trace_buffers
            ));
        }
        if self.unknown_frees > 0 {
            notes.push(format!(
                "{} deallocation(s) of buffers allocated before the capture began: their memory is not modelled; begin the capture before creating the inputs",
                self.unknown_frees
            ));
        }
        if self.backed_cbs_skipped > 0 {
            notes.push(format!(
                "{} globally allocated circular buffer(s) left out: no live L1 buffer holds their address (0 in NO_DISPATCH mode); they take no CB-region space",
                self.backed_cbs_skipped
            ));
        }
        if self.pool_from_type > 0 {
            notes.push(format!(
                "{} allocation(s) name only DRAM or L1 (an older capture): L1_SMALL is read as L1 and TRACE as DRAM",
                self.pool_from_type
            ));
        }
        if self.page_size_inferred > 0 {
            notes.push(format!(
                "{} allocation(s) without a page size: assumed from the default page size {} B; per-bank sizes can differ by up to a page",
                self.page_size_inferred, options.default_page_size
            ));
        }
        if self.shards_inferred > 0 {
            notes.push(format!(
                "{} sharded allocation(s) without num_cores: sharded over the whole compute grid",
                self.shards_inferred
            ));
        }
        if self.dram_sharded > 0 {
            notes.push(format!(
                "{} DRAM-sharded allocation(s) imported interleaved: per-bank sizes differ when the shards cover fewer banks than the device has",
                self.dram_sharded
            ));
        }
        if self.other_devices > 0 {
            notes.push(format!(
                "{} node(s) of other devices skipped: import them with ImportOptions::device_id",
                self.other_devices
            ));
        }
        notes
    }
}

impl fmt::Display for ImportReport {
    /// A summary for people: what was imported, skipped and still live.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ttnn capture: {} nodes", self.nodes)?;
        if let Some(id) = self.device_id {
            write!(f, ", device {id}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  imported: {} allocations, {} frees, {} programs with {} circular buffers ({} backed by L1 buffers), {} function calls",
            self.allocations,
            self.frees,
            self.programs,
            self.circular_buffers,
            self.backed_cbs,
            self.functions
        )?;
        let mut skipped = vec![format!(
            "{} tensor/buffer descriptions",
            self.metadata_nodes
        )];
        for (count, what) in [
            (self.other_devices, "nodes of other devices"),
            (
                self.unknown_frees,
                "frees of buffers from before the capture",
            ),
            (self.system_memory, "host-memory buffer events"),
            (self.backed_cbs_skipped, "unplaced globally allocated CBs"),
        ] {
            if count > 0 {
                skipped.push(format!("{count} {what}"));
            }
        }
        for (kind, count) in &self.skipped {
            skipped.push(format!("{count} {kind:?} nodes"));
        }
        writeln!(f, "  skipped: {}", skipped.join(", "))?;
        for message in &self.capture_errors {
            writeln!(f, "  capture error: {message}")?;
        }
        if !self.live_at_end.is_empty() {
            write!(
                f,
                "  still allocated at the end: {} buffers",
                self.live_at_end.len()
            )?;
            let shown: Vec<String> = self
                .live_at_end
                .iter()
                .take(LIVE_SHOWN)
                .map(|b| {
                    format!(
                        "{} {} {} B{}",
                        b.id,
                        b.buffer_type,
                        b.size,
                        b.label
                            .as_ref()
                            .map(|l| format!(" ({l})"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            write!(f, ": {}", shown.join(", "))?;
            if self.live_at_end.len() > LIVE_SHOWN {
                write!(f, ", ...")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// An imported capture: the trace to replay and what the import did.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The trace; each operation's line number is the counter of the node
    /// that produced it.
    pub trace: Trace,
    /// What was read, skipped and inferred.
    pub report: ImportReport,
}

/// A capture that cannot be imported: which input, which node, what is wrong
/// and what to do. Boxed in [`Error::TtnnCapture`].
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{reason}", describe_input(path.as_deref()), counter.map(|c| format!("node {c}: ")).unwrap_or_default())]
pub struct CaptureError {
    /// The capture file, when read from a file.
    pub path: Option<PathBuf>,
    /// The counter of the node at fault, when one is.
    pub counter: Option<u64>,
    /// What is wrong and what to do.
    pub reason: String,
    /// The error underneath, when there is one (a JSON syntax error).
    #[source]
    pub source: Option<Cause>,
}

fn describe_input(path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("ttnn capture {}", p.display()),
        None => "ttnn capture".to_string(),
    }
}

impl Trace {
    /// Imports a ttnn graph capture read from `reader` (a JSON array of
    /// nodes, or a report object with a `"graph"` key), node by node.
    ///
    /// # Errors
    ///
    /// [`Error::TtnnCapture`] naming the node counter and the field for
    /// malformed input (see the [module docs](crate::ttnn_capture)), or the
    /// line and column of a JSON syntax error.
    pub fn from_ttnn_capture(reader: impl Read, options: &ImportOptions) -> Result<Imported> {
        import(reader, options, None)
    }

    /// Imports a ttnn graph capture file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::TtnnCapture`]
    /// (with the path) as [`Trace::from_ttnn_capture`].
    pub fn from_ttnn_capture_file(
        path: impl AsRef<Path>,
        options: &ImportOptions,
    ) -> Result<Imported> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        import(file, options, Some(path.to_path_buf()))
    }
}

fn import(reader: impl Read, options: &ImportOptions, path: Option<PathBuf>) -> Result<Imported> {
    let mut importer = Importer::new(options, path);
    if options.default_page_size == 0 {
        return Err(importer.fail(
            None,
            "the default page size is 0: give ImportOptions::default_page_size a size of at least 1 B (2048 B is a bfloat16 tile)",
        ));
    }
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(reader));
    let outcome = TopSeed(&mut importer).deserialize(&mut de);
    let outcome = outcome.and_then(|()| de.end());
    if let Err(e) = outcome {
        if let Some(stop) = importer.stop.take() {
            return Err(Error::TtnnCapture(Box::new(stop)));
        }
        return Err(importer.json_error(e));
    }
    importer.finish()
}

/// One node as read: the four fields the importer uses, every other field
/// skipped while parsing.
#[derive(serde::Deserialize)]
struct RawNode {
    #[serde(default)]
    counter: Option<Param>,
    #[serde(default)]
    node_type: Option<Param>,
    #[serde(default)]
    params: Option<Params>,
    #[serde(default)]
    connections: Option<FirstConnection>,
}

/// The params the importer reads; any other key is skipped.
#[derive(serde::Deserialize, Default)]
struct Params {
    name: Option<Param>,
    size: Option<Param>,
    address: Option<Param>,
    #[serde(rename = "type")]
    kind: Option<Param>,
    exact_buffer_type: Option<Param>,
    buffer_type: Option<Param>,
    buffer_type_value: Option<Param>,
    layout: Option<Param>,
    page_size: Option<Param>,
    num_cores: Option<Param>,
    device_id: Option<Param>,
    core_range_set: Option<Param>,
    globally_allocated: Option<Param>,
    error_message: Option<Param>,
    error_type: Option<Param>,
}

/// A param as written: text in older captures, numbers in newer ones.
#[derive(Debug, Clone, PartialEq)]
enum Param {
    Text(String),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
    /// An object or an array: no param the importer reads is one.
    Nested(&'static str),
}

impl<'de> serde::Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Param, D::Error> {
        struct ParamVisitor;
        impl<'de> Visitor<'de> for ParamVisitor {
            type Value = Param;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Param, E> {
                Ok(Param::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Param, E> {
                Ok(Param::Text(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Param, E> {
                Ok(Param::Unsigned(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Param, E> {
                Ok(if v >= 0 {
                    Param::Unsigned(v as u64)
                } else {
                    Param::Signed(v)
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Param, E> {
                Ok(Param::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Param, E> {
                Ok(Param::Bool(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Param, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Param::Nested("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Param, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Param::Nested("an object"))
            }
        }
        d.deserialize_any(ParamVisitor)
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Text(s) => write!(f, "{s:?}"),
            Param::Unsigned(n) => write!(f, "{n}"),
            Param::Signed(n) => write!(f, "{n}"),
            Param::Float(n) => write!(f, "{n}"),
            Param::Bool(b) => write!(f, "{b}"),
            Param::Nested(kind) => f.write_str(kind),
        }
    }
}

/// The first element of `connections` (the buffer node of a buffer event);
/// the rest are skipped without being kept.
struct FirstConnection(Option<Param>);

impl<'de> serde::Deserialize<'de> for FirstConnection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct FirstVisitor;
        impl<'de> Visitor<'de> for FirstVisitor {
            type Value = FirstConnection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of node counters")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<FirstConnection, A::Error> {
                let first = seq.next_element::<Param>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstConnection(first))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<FirstConnection, E> {
                Ok(FirstConnection(None))
            }
        }
        d.deserialize_any(FirstVisitor)
    }
}

/// The `devices` entry of a report file: the architecture only.
#[derive(serde::Deserialize)]
struct DeviceInfo {
    #[serde(default)]
    arch: Option<Param>,
}

/// The top level: an array of nodes, or a report object holding one.
struct TopSeed<'a, 'o>(&'a mut Importer<'o>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of graph nodes (what ttnn.graph.end_graph_capture() returns) or a report object with a \"graph\" key (what end_graph_capture_to_file writes)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<(), A::Error> {
        GraphSeed(self.0).visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut graph = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "graph" => {
                    map.next_value_seed(GraphSeed(&mut *self.0))?;
                    graph = true;
                }
                "devices" => {
                    let devices: Option<Vec<DeviceInfo>> = map.next_value()?;
                    self.0.devices(devices.unwrap_or_default());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !graph {
            return Err(self.0.stop_with(
                None,
                "the report object has no \"graph\" key: give the array ttnn.graph.end_graph_capture() returns, or the report end_graph_capture_to_file writes"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

/// The array of nodes, fed to the importer one at a time.
struct GraphSeed<'a, 'o>(&'a mut Importer<'o>);

impl<'de> DeserializeSeed<'de> for GraphSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for GraphSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of graph nodes")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(node) = seq.next_element::<RawNode>()? {
            if let Err(stop) = self.0.node(node) {
                self.0.stop = Some(stop);
                return Err(de::Error::custom("the capture cannot be imported"));
            }
        }
        Ok(())
    }
}

/// A buffer of the trace that is live.
struct Live {
    id: String,
    label: Option<String>,
    buffer_type: BufferType,
    size: u64,
    /// The capture's address (0 when it placed nothing).
    address: u64,
    /// Allocation order, for the report.
    order: u64,
}

/// The program being filled with CBs.
struct OpenProgram {
    id: String,
    /// The core sets and indices of its CBs so far.
    cbs: Vec<(CoreRangeSet, u8)>,
}

struct Importer<'o> {
    options: &'o ImportOptions,
    path: Option<PathBuf>,
    ops: Vec<(usize, TraceOp)>,
    report: ImportReport,
    /// Counter of the last node read.
    last: Option<u64>,
    /// The device imported, once known.
    device: Option<u64>,
    /// The report file's model, when it names one.
    arch: Option<Preset>,
    /// Names of the open functions, outermost first.
    functions: Vec<String>,
    /// Live buffers by the counter of their buffer node.
    live: HashMap<u64, Live>,
    /// Live L1 and L1_SMALL buffers with a captured address: address ->
    /// buffer node.
    by_address: BTreeMap<u64, u64>,
    /// The program receiving CBs, not yet enqueued.
    open: Option<OpenProgram>,
    /// Programs enqueued and not yet destroyed.
    programs: Vec<String>,
    allocations: u64,
    /// The error that stopped the import inside the parser.
    stop: Option<CaptureError>,
}

impl<'o> Importer<'o> {
    fn new(options: &'o ImportOptions, path: Option<PathBuf>) -> Importer<'o> {
        Importer {
            options,
            path,
            ops: Vec::new(),
            report: ImportReport::default(),
            last: None,
            device: options.device_id,
            arch: None,
            functions: Vec::new(),
            live: HashMap::new(),
            by_address: BTreeMap::new(),
            open: None,
            programs: Vec::new(),
            allocations: 0,
            stop: None,
        }
    }

    fn error(&self, counter: Option<u64>, reason: impl Into<String>) -> CaptureError {
        CaptureError {
            path: self.path.clone(),
            counter,
            reason: reason.into(),
            source: None,
        }
    }

    fn fail(&self, counter: Option<u64>, reason: impl Into<String>) -> Error {
        Error::TtnnCapture(Box::new(self.error(counter, reason)))
    }

    /// Records an error found at the top level and returns the parser's
    /// stand-in for it.
    fn stop_with<E: de::Error>(&mut self, counter: Option<u64>, reason: String) -> E {
        self.stop = Some(self.error(counter, reason));
        E::custom("the capture cannot be imported")
    }

    fn json_error(&self, e: serde_json::Error) -> Error {
        let after = self
            .last
            .map(|c| format!(" (after node {c})"))
            .unwrap_or_default();
        let reason = match e.classify() {
            serde_json::error::Category::Eof => format!(
                "the JSON ends early at line {} column {}{after}: the file is cut short; capture it again or copy all of it",
                e.line(),
                e.column()
            ),
            serde_json::error::Category::Io => format!("cannot read it: {e}"),
            _ => format!(
                "not a graph capture at line {} column {}{after}: {e}; give the JSON that ttnn.graph.end_graph_capture() returns (json.dump of the list)",
                e.line(),
                e.column()
            ),
        };
        Error::TtnnCapture(Box::new(CaptureError {
            path: self.path.clone(),
            counter: None,
            reason,
            source: Some(Box::new(e)),
        }))
    }

    fn devices(&mut self, devices: Vec<DeviceInfo>) {
        let arch = devices.iter().find_map(|d| match &d.arch {
            Some(Param::Text(a)) => Some(a.to_ascii_uppercase()),
            _ => None,
        });
        self.arch = match arch.as_deref() {
            Some(a) if a.starts_with("WORMHOLE") => Some(Preset::WormholeB0),
            Some(a) if a.starts_with("BLACKHOLE") => Some(Preset::BlackholeP150),
            _ => self.arch,
        };
    }

    fn preset(&self) -> Preset {
        self.options
            .preset
            .or(self.arch)
            .unwrap_or(Preset::WormholeB0)
    }

    fn push(&mut self, counter: u64, op: TraceOp) {
        self.ops.push((counter as usize, op));
    }

    fn node(&mut self, node: RawNode) -> std::result::Result<(), CaptureError> {
        let counter = match node.counter {
            Some(Param::Unsigned(c)) => c,
            Some(other) => {
                return Err(self.error(
                    None,
                    format!(
                        "a node{} has counter {other}: counters are whole numbers from 0, as end_graph_capture() writes them",
                        self.after()
                    ),
                ));
            }
            None => {
                return Err(self.error(
                    None,
                    format!(
                        "a node{} has no \"counter\": every node of a capture has its index there",
                        self.after()
                    ),
                ));
            }
        };
        if let Some(last) = self.last
            && counter <= last
        {
            return Err(self.error(
                Some(counter),
                format!(
                    "counter {counter} follows counter {last}: nodes must be in execution order with increasing counters; keep the order end_graph_capture() returned them in (do not sort or merge captures)"
                ),
            ));
        }
        self.last = Some(counter);
        self.report.nodes += 1;
        let kind = match node.node_type {
            Some(Param::Text(kind)) => kind,
            Some(other) => {
                return Err(self.error(
                    Some(counter),
                    format!(
                        "\"node_type\" is {other}: expected a node type such as \"buffer_allocate\""
                    ),
                ));
            }
            None => {
                return Err(self.error(
                    Some(counter),
                    "no \"node_type\": every node names its type (\"buffer_allocate\", \"function_start\", ...)",
                ));
            }
        };
        let params = node.params.unwrap_or_default();
        let first = node.connections.and_then(|c| c.0);
        match kind.as_str() {
            "capture_start" => {}
            "capture_end" => self.enqueue_open(counter),
            "function_start" => {
                self.enqueue_open(counter);
                self.report.functions += 1;
                let name = match &params.name {
                    Some(Param::Text(name)) => name.clone(),
                    Some(other) => other.to_string(),
                    None => "?".to_string(),
                };
                self.functions.push(name);
            }
            "function_end" => {
                self.enqueue_open(counter);
                let Some(open) = self.functions.pop() else {
                    return Err(self.error(
                        Some(counter),
                        "function_end closes no open function: a function_start is missing (was the capture cut at its start?)",
                    ));
                };
                if let Some(Param::Text(name)) = &params.name
                    && *name != open
                {
                    return Err(self.error(
                        Some(counter),
                        format!(
                            "function_end of {name:?} while {open:?} is the innermost open function: the nodes are out of order or from two captures"
                        ),
                    ));
                }
            }
            "buffer" | "tensor" => self.report.metadata_nodes += 1,
            "buffer_allocate" => self.allocate(counter, &params, first)?,
            "buffer_deallocate" => self.deallocate(counter, &params, first)?,
            "circular_buffer_allocate" => self.circular_buffer(counter, &params)?,
            "circular_buffer_deallocate_all" => {
                if self.on_device(counter, &params)? {
                    self.enqueue_open(counter);
                    for program in std::mem::take(&mut self.programs) {
                        self.push(counter, TraceOp::Destroy { program });
                    }
                }
            }
            "error" => {
                if self.report.capture_errors.len() < ERRORS_KEPT {
                    let text = |p: &Option<Param>| match p {
                        Some(Param::Text(t)) => Some(t.clone()),
                        Some(other) => Some(other.to_string()),
                        None => None,
                    };
                    let message = match (text(&params.error_type), text(&params.error_message)) {
                        (Some(t), Some(m)) => format!("{t}: {m}"),
                        (None, Some(m)) => m,
                        (Some(t), None) => t,
                        (None, None) => "(no message)".to_string(),
                    };
                    self.report
                        .capture_errors
                        .push(format!("node {counter}: {message}"));
                }
            }
            other => {
                if self.options.strict {
                    return Err(self.error(
                        Some(counter),
                        format!(
                            "unknown node type {other:?}: known are capture_start, capture_end, function_start, function_end, buffer, buffer_allocate, buffer_deallocate, circular_buffer_allocate, circular_buffer_deallocate_all, tensor, error; import without strict to skip it"
                        ),
                    ));
                }
                let key = if self.report.skipped.len() < SKIPPED_TYPES_KEPT
                    || self.report.skipped.contains_key(other)
                {
                    other.to_string()
                } else {
                    "(other types)".to_string()
                };
                *self.report.skipped.entry(key).or_insert(0) += 1;
            }
        }
        Ok(())
    }

    fn after(&self) -> String {
        self.last
            .map(|c| format!(" after node {c}"))
            .unwrap_or_default()
    }

    /// Whether the node belongs to the device imported (the first one met
    /// when none was chosen); counts it otherwise.
    fn on_device(
        &mut self,
        counter: u64,
        params: &Params,
    ) -> std::result::Result<bool, CaptureError> {
        let Some(param) = &params.device_id else {
            return Ok(true);
        };
        let id = self.number(counter, "device_id", param)?;
        match self.device {
            None => {
                self.device = Some(id);
                self.report.device_id = Some(id);
                Ok(true)
            }
            Some(d) if d == id => {
                self.report.device_id = Some(id);
                Ok(true)
            }
            Some(_) => {
                self.report.other_devices += 1;
                Ok(false)
            }
        }
    }

    fn number(
        &self,
        counter: u64,
        field: &str,
        param: &Param,
    ) -> std::result::Result<u64, CaptureError> {
        match param {
            Param::Unsigned(n) => Ok(*n),
            Param::Text(t) => t.trim().parse::<u64>().map_err(|_| {
                self.error(
                    Some(counter),
                    format!("{field} is {t:?}: expected a whole number of at least 0 (as text or a number)"),
                )
            }),
            other => Err(self.error(
                Some(counter),
                format!("{field} is {other}: expected a whole number of at least 0 (as text or a number)"),
            )),
        }
    }

    fn required(
        &self,
        counter: u64,
        kind: &str,
        field: &str,
        param: &Option<Param>,
    ) -> std::result::Result<u64, CaptureError> {
        match param {
            Some(p) => self.number(counter, field, p),
            None => Err(self.error(
                Some(counter),
                format!("{kind} has no \"{field}\" in its params: every {kind} node records it; was the capture edited?"),
            )),
        }
    }

    /// The trace's name for the buffer a buffer event connects to.
    fn buffer_node(
        &self,
        counter: u64,
        kind: &str,
        first: Option<Param>,
    ) -> std::result::Result<u64, CaptureError> {
        match first {
            Some(p) => self.number(counter, "its first connection", &p),
            None => Err(self.error(
                Some(counter),
                format!("{kind} has no connection to its buffer node: \"connections\" must start with the counter of the buffer node"),
            )),
        }
    }

    /// The pool, from the most precise field present (`None` for host
    /// memory), and whether it came from `type` alone.
    fn pool(
        &self,
        counter: u64,
        kind: &str,
        params: &Params,
    ) -> std::result::Result<(Option<BufferType>, bool), CaptureError> {
        let by_name = |text: &str| -> Option<Option<BufferType>> {
            let name = text
                .trim()
                .rsplit("::")
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match name.as_str() {
                "SYSTEM_MEMORY" => Some(None),
                other => other.parse::<BufferType>().ok().map(Some),
            }
        };
        let by_value = |value: u64| -> Option<Option<BufferType>> {
            match value {
                0 => Some(Some(BufferType::Dram)),
                1 => Some(Some(BufferType::L1)),
                2 => Some(None),
                3 => Some(Some(BufferType::L1Small)),
                4 => Some(Some(BufferType::Trace)),
                _ => None,
            }
        };
        for (field, param) in [
            ("exact_buffer_type", &params.exact_buffer_type),
            ("buffer_type_value", &params.buffer_type_value),
            ("buffer_type", &params.buffer_type),
        ] {
            let Some(param) = param else { continue };
            let pool = match param {
                Param::Text(t) => {
                    by_name(t).or_else(|| t.trim().parse::<u64>().ok().and_then(by_value))
                }
                Param::Unsigned(v) => by_value(*v),
                _ => None,
            };
            return pool.map(|p| (p, false)).ok_or_else(|| {
                self.error(
                    Some(counter),
                    format!("{field} is {param}: expected DRAM, L1, L1_SMALL, TRACE or SYSTEM_MEMORY (0 to 4)"),
                )
            });
        }
        match &params.kind {
            Some(Param::Text(t)) if t.eq_ignore_ascii_case("DRAM") => {
                Ok((Some(BufferType::Dram), true))
            }
            Some(Param::Text(t)) if t.eq_ignore_ascii_case("L1") => Ok((Some(BufferType::L1), true)),
            Some(other) => Err(self.error(
                Some(counter),
                format!("type is {other}: expected \"DRAM\" or \"L1\""),
            )),
            None => Err(self.error(
                Some(counter),
                format!("{kind} has no \"type\" (nor buffer_type) in its params: it names the buffer's pool; was the capture edited?"),
            )),
        }
    }

    fn allocate(
        &mut self,
        counter: u64,
        params: &Params,
        first: Option<Param>,
    ) -> std::result::Result<(), CaptureError> {
        const KIND: &str = "buffer_allocate";
        if !self.on_device(counter, params)? {
            return Ok(());
        }
        self.enqueue_open(counter);
        let node = self.buffer_node(counter, KIND, first)?;
        let size = self.required(counter, KIND, "size", &params.size)?;
        let (pool, from_type) = self.pool(counter, KIND, params)?;
        let Some(pool) = pool else {
            self.report.system_memory += 1;
            return Ok(());
        };
        if let Some(earlier) = self.live.get(&node) {
            return Err(self.error(
                Some(counter),
                format!(
                    "buffer node {node} ({}) is allocated again while still live: a buffer_deallocate connected to node {node} must come between; the nodes are out of order or from two captures",
                    earlier.id
                ),
            ));
        }
        let layout = match &params.layout {
            Some(Param::Text(t)) => t.to_ascii_uppercase(),
            Some(other) => {
                return Err(self.error(
                    Some(counter),
                    format!("layout is {other}: expected INTERLEAVED, SINGLE_BANK, HEIGHT_SHARDED, WIDTH_SHARDED or BLOCK_SHARDED"),
                ));
            }
            None => String::new(),
        };
        let num_cores = match &params.num_cores {
            Some(p) => Some(self.number(counter, "num_cores", p)?),
            None => None,
        };
        let mut page_size = match &params.page_size {
            Some(p) => self.number(counter, "page_size", p)?,
            None => 0,
        };
        if page_size == 0 {
            self.report.page_size_inferred += 1;
            page_size = gcd(size, self.options.default_page_size).max(1);
        }
        let sharded = match layout.as_str() {
            "HEIGHT_SHARDED" | "WIDTH_SHARDED" | "BLOCK_SHARDED" => true,
            "INTERLEAVED" => false,
            "SINGLE_BANK" => {
                self.report.single_bank += 1;
                page_size = size.max(1);
                false
            }
            // No layout, or one this version does not name: sharded when it
            // says over how many cores.
            _ => num_cores.is_some_and(|n| n > 0),
        };
        let shards = if !sharded {
            None
        } else if matches!(pool, BufferType::Dram | BufferType::Trace) {
            self.report.dram_sharded += 1;
            None
        } else {
            match num_cores {
                Some(n) if n > 0 => Some(u32::try_from(n).map_err(|_| {
                    self.error(
                        Some(counter),
                        format!("num_cores is {n}: more cores than any device has"),
                    )
                })?),
                _ => {
                    self.report.shards_inferred += 1;
                    let (x, y) = self.preset().geometry().grid;
                    Some(x * y)
                }
            }
        };
        let address = match &params.address {
            Some(p) => self.number(counter, "address", p)?,
            None => 0,
        };
        let id = format!("b{node}");
        let label = self.label();
        match pool {
            BufferType::L1Small => self.report.l1_small_buffers += 1,
            BufferType::Trace => self.report.trace_buffers += 1,
            _ => {}
        }
        if address != 0 && matches!(pool, BufferType::L1 | BufferType::L1Small) {
            self.by_address.insert(address, node);
        }
        if from_type {
            self.report.pool_from_type += 1;
        }
        self.allocations += 1;
        self.live.insert(
            node,
            Live {
                id: id.clone(),
                label: label.clone(),
                buffer_type: pool,
                size,
                address,
                order: self.allocations,
            },
        );
        self.report.allocations += 1;
        self.push(
            counter,
            TraceOp::Alloc {
                id,
                buffer_type: pool,
                size,
                page_size,
                direction: Direction::Default,
                shards,
                label,
                fixed: None,
                expect: None,
            },
        );
        Ok(())
    }

    fn deallocate(
        &mut self,
        counter: u64,
        params: &Params,
        first: Option<Param>,
    ) -> std::result::Result<(), CaptureError> {
        const KIND: &str = "buffer_deallocate";
        if !self.on_device(counter, params)? {
            return Ok(());
        }
        self.enqueue_open(counter);
        let node = self.buffer_node(counter, KIND, first)?;
        match self.live.remove(&node) {
            Some(live) => {
                if live.address != 0 && self.by_address.get(&live.address) == Some(&node) {
                    self.by_address.remove(&live.address);
                }
                self.report.frees += 1;
                self.push(counter, TraceOp::Free { id: live.id });
            }
            None => {
                if matches!(self.pool(counter, KIND, params), Ok((None, _))) {
                    self.report.system_memory += 1;
                } else if self.options.strict {
                    return Err(self.error(
                        Some(counter),
                        format!(
                            "buffer_deallocate of buffer node {node}, which the capture never allocated (or freed already): begin the capture before creating the tensors it frees, or import without strict to skip it"
                        ),
                    ));
                } else {
                    self.report.unknown_frees += 1;
                }
            }
        }
        Ok(())
    }

    fn circular_buffer(
        &mut self,
        counter: u64,
        params: &Params,
    ) -> std::result::Result<(), CaptureError> {
        const KIND: &str = "circular_buffer_allocate";
        if !self.on_device(counter, params)? {
            return Ok(());
        }
        let size = self.required(counter, KIND, "size", &params.size)?;
        let cores = match &params.core_range_set {
            Some(Param::Text(text)) => parse_core_range_set(text).map_err(|reason| {
                self.error(Some(counter), format!("core_range_set {text:?}: {reason}"))
            })?,
            Some(other) => {
                return Err(self.error(
                    Some(counter),
                    format!("core_range_set is {other}: expected text such as \"{{[0-0 - 7-7]}}\""),
                ));
            }
            None => {
                return Err(self.error(
                    Some(counter),
                    "circular_buffer_allocate has no \"core_range_set\" in its params: it says which cores hold the CB; was the capture edited?",
                ));
            }
        };
        let globally = match &params.globally_allocated {
            None => false,
            Some(Param::Bool(b)) => *b,
            Some(Param::Unsigned(n)) => *n != 0,
            Some(Param::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => {
                    return Err(self.error(
                        Some(counter),
                        format!("globally_allocated is {t:?}: expected 0, 1, true or false"),
                    ));
                }
            },
            Some(other) => {
                return Err(self.error(
                    Some(counter),
                    format!("globally_allocated is {other}: expected 0, 1, true or false"),
                ));
            }
        };
        let backed = if globally {
            let address = match &params.address {
                Some(p) => self.number(counter, "address", p)?,
                None => 0,
            };
            match self.backing(address) {
                Some(backing) => Some(backing),
                None => {
                    self.report.backed_cbs_skipped += 1;
                    return Ok(());
                }
            }
        } else {
            None
        };
        if self.open.is_none() {
            let id = format!("p{counter}");
            self.report.programs += 1;
            self.push(counter, TraceOp::Program { id: id.clone() });
            self.open = Some(OpenProgram {
                id,
                cbs: Vec::new(),
            });
        }
        let program = self.open.as_ref().expect("opened above");
        let index = (0..=u8::MAX).find(|i| {
            !program
                .cbs
                .iter()
                .any(|(set, used)| used == i && sets_intersect(set, &cores))
        });
        let Some(index) = index else {
            return Err(self.error(
                Some(counter),
                format!(
                    "program {} has more than 256 circular buffers on one core: no device has that many buffer indices",
                    program.id
                ),
            ));
        };
        let program = self.open.as_mut().expect("opened above");
        program.cbs.push((cores.clone(), index));
        let program = program.id.clone();
        self.report.circular_buffers += 1;
        if backed.is_some() {
            self.report.backed_cbs += 1;
        }
        self.push(
            counter,
            TraceOp::Cb {
                program,
                cores,
                size,
                indices: vec![index],
                page_size: size,
                backed,
            },
        );
        Ok(())
    }

    /// The live L1 buffer whose captured address range holds `address`, and
    /// the offset into it.
    fn backing(&self, address: u64) -> Option<(String, u64)> {
        if address == 0 {
            return None;
        }
        let (&start, node) = self.by_address.range(..=address).next_back()?;
        let live = self.live.get(node)?;
        (address - start < live.size).then(|| (live.id.clone(), address - start))
    }

    /// Enqueues the program being filled: its CBs are complete.
    fn enqueue_open(&mut self, counter: u64) {
        if let Some(program) = self.open.take() {
            self.push(
                counter,
                TraceOp::Enqueue {
                    program: program.id.clone(),
                    expect: None,
                },
            );
            self.programs.push(program.id);
        }
    }

    /// The label of a buffer allocated now: the outermost open function and
    /// its direct child.
    fn label(&self) -> Option<String> {
        let label = match self.functions.as_slice() {
            [] => return None,
            [op] => op.clone(),
            [op, inner, ..] => format!("{op}/{inner}"),
        };
        Some(label.split_whitespace().collect::<Vec<_>>().join("_"))
    }

    fn finish(mut self) -> Result<Imported> {
        let end = self.last.unwrap_or(0);
        self.enqueue_open(end);
        for program in std::mem::take(&mut self.programs) {
            self.push(end, TraceOp::Destroy { program });
        }
        let mut live: Vec<Live> = self.live.into_values().collect();
        live.sort_by_key(|l| l.order);
        self.report.live_at_end = live
            .into_iter()
            .map(|l| LiveBuffer {
                id: l.id,
                label: l.label,
                buffer_type: l.buffer_type,
                size: l.size,
            })
            .collect();
        let mut trace = Trace::parse("")?;
        trace.preset = self
            .options
            .preset
            .or(self.arch)
            .unwrap_or(Preset::WormholeB0);
        trace.l1_small_size = self.options.l1_small_size;
        trace.trace_region_size = self.options.trace_region_size;
        trace.ops = self.ops;
        Ok(Imported {
            trace,
            report: self.report,
        })
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn sets_intersect(a: &CoreRangeSet, b: &CoreRangeSet) -> bool {
    a.ranges()
        .iter()
        .any(|r| b.ranges().iter().any(|s| r.intersects(s)))
}

/// A core range set as TT-Metal prints it: `{[0-0 - 7-7], [0-8 - 3-8]}` (a
/// range is `[X0-Y0 - X1-Y1]`), or in older releases
/// `{[(x=0,y=0) - (x=7,y=7)]}`; a range of one core may be written `[X-Y]`
/// or `[(x=X,y=Y)]`.
fn parse_core_range_set(text: &str) -> std::result::Result<CoreRangeSet, String> {
    let expected =
        "expected ranges such as {[0-0 - 7-7], [0-8 - 3-8]} or {[(x=0,y=0) - (x=7,y=7)]}";
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("not enclosed in {{}}: {expected}"))?;
    let mut ranges = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let open = rest
            .strip_prefix('[')
            .ok_or_else(|| format!("a range does not start with [: {expected}"))?;
        let close = open
            .find(']')
            .ok_or_else(|| format!("a range is not closed with ]: {expected}"))?;
        let body = &open[..close];
        rest = open[close + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        let (start, end) = match body.split_once(" - ") {
            Some((a, b)) => (coord(a.trim(), expected)?, coord(b.trim(), expected)?),
            None => {
                let c = coord(body.trim(), expected)?;
                (c, c)
            }
        };
        ranges.push(CoreRange::new(start, end).map_err(|e| e.to_string())?);
    }
    if ranges.is_empty() {
        return Err(format!("no core: {expected}"));
    }
    CoreRangeSet::new(ranges).map_err(|e| e.to_string())
}

/// `X-Y`, `(x=X,y=Y)` or `(X, Y)`.
fn coord(text: &str, expected: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || format!("core {text:?} is not X-Y or (x=X,y=Y): {expected}");
    let (x, y) = match text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        Some(inner) => {
            let (x, y) = inner.split_once(',').ok_or_else(bad)?;
            let x = x.trim();
            let y = y.trim();
            (
                x.strip_prefix("x=").unwrap_or(x),
                y.strip_prefix("y=").unwrap_or(y),
            )
        }
        None => text.split_once('-').ok_or_else(bad)?,
    };
    let n = |v: &str| v.trim().parse::<u32>().map_err(|_| bad());
    Ok((n(x)?, n(y)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_range_sets_in_both_spellings() {
        let new = parse_core_range_set("{[0-0 - 7-7], [0-8 - 3-8]}").unwrap();
        assert_eq!(new.cores(), 68);
        let old =
            parse_core_range_set("{[(x=0,y=0) - (x=0,y=7)], [(x=1,y=0) - (x=1,y=3)]}").unwrap();
        assert_eq!(old.cores(), 12);
        assert_eq!(parse_core_range_set("{[2-3]}").unwrap().cores(), 1);
        assert!(parse_core_range_set("{}").unwrap_err().contains("no core"));
        assert!(
            parse_core_range_set("[0-0 - 7-7]")
                .unwrap_err()
                .contains("{}")
        );
        assert!(
            parse_core_range_set("{[0-0 - 7-x]}")
                .unwrap_err()
                .contains("\"7-x\"")
        );
        assert!(parse_core_range_set("{[7-7 - 0-0]}").is_err());
        assert!(parse_core_range_set("{[0-0 - 3-3], [2-2 - 4-4]}").is_err());
    }

    #[test]
    fn page_size_inference_divides_the_size() {
        assert_eq!(gcd(8192, 2048), 2048);
        assert_eq!(gcd(3000, 2048), 8);
        assert_eq!(gcd(7, 2048), 1);
    }
}

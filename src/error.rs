//! The crate's error type. It sits above the vocabulary it names (pools,
//! sizes, budgets, reports) and below everything that can fail: the small
//! errors of parsing ([`SizeError`], [`ParseBufferTypeError`],
//! [`BudgetError`]) are defined with their types and wrapped here.

use std::fmt;
use std::path::PathBuf;

use crate::budget::BudgetError;
use crate::cb_failure::CircularBufferFailure;
use crate::cores::{CoreRange, CoreRangeError};
use crate::fragmentation::Fragmentation;
use crate::report::MemoryReport;
use crate::ttnn_capture::CaptureError;
use crate::types::{Allocation, BufferType, MeshCoord, MeshShape, ParseBufferTypeError};
use crate::units::{SizeError, format_count};

/// The error underneath a problem in a file, variable or stream, when there
/// is one (a size that cannot be read, a JSON or TOML syntax error).
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong outside an assertion: bad input, an
/// allocation the device refuses, a device that is gone, a C++ exception.
///
/// `Debug` prints what `Display` prints, followed by the chain of causes
/// (as `anyhow` does), so that a `#[test]` returning `Result<(), Error>`
/// shows a failed check's full report, one line per pool, rather than a
/// one-line dump of its fields.
#[non_exhaustive]
#[derive(thiserror::Error)]
pub enum Error {
    /// An allocation of zero bytes.
    #[error("cannot allocate a {buffer_type} buffer of size 0: give a size of at least one page")]
    ZeroSize {
        /// The pool asked for.
        buffer_type: BufferType,
    },

    /// A page size of zero.
    #[error(
        "page size 0 is invalid for a {buffer_type} buffer of {size} B: give a page size that divides the size"
    )]
    ZeroPageSize {
        /// The pool asked for.
        buffer_type: BufferType,
        /// The requested size.
        size: u64,
    },

    /// A size that is not a whole number of pages.
    #[error(
        "size {size} B is not a multiple of the page size {page_size} B: {} or choose a page size that divides it",
        round_to_pages(*size, *page_size)
    )]
    SizeNotPageMultiple {
        /// The requested size.
        size: u64,
        /// The requested page size.
        page_size: u64,
    },

    /// A sharded buffer over zero cores.
    #[error("a sharded buffer needs at least 1 shard: give a shard count from 1 to {cores}")]
    ZeroShards {
        /// Cores of the compute grid.
        cores: u32,
    },

    /// More shards than the compute grid has cores.
    #[error(
        "{shards} shards requested but the compute grid has {cores} cores: use at most {cores} shards"
    )]
    TooManyShards {
        /// Shards asked for.
        shards: u32,
        /// Cores of the compute grid.
        cores: u32,
    },

    /// A DRAM-sharded buffer over no DRAM bank, or over more banks than the
    /// device has (TT-Metal refuses a DRAM shard grid past the last bank).
    #[error(
        "{shards} DRAM shards requested but the device has {banks} DRAM banks: a DRAM-sharded buffer takes one shard per DRAM bank, from 1 to {banks}"
    )]
    DramShards {
        /// Shards asked for.
        shards: u32,
        /// DRAM banks of the device.
        banks: u32,
    },

    /// A sharded buffer in a pool that holds interleaved buffers only.
    #[error(
        "sharded buffers are supported in DRAM, L1 and L1_SMALL, not in {buffer_type}: allocate it interleaved"
    )]
    ShardingUnsupported {
        /// The pool asked for.
        buffer_type: BufferType,
    },

    /// An interleaved buffer in L1_SMALL, which TT-Metal rejects.
    #[error("L1_SMALL only supports sharded allocations: allocate it sharded, or in L1")]
    L1SmallInterleaved,

    /// No free block is large enough; the message is TT-Metal's.
    #[error(
        "Out of Memory: Not enough space to allocate {size} B {buffer_type} buffer across {banks} banks, where each bank needs to store {needed_per_bank} B, but bank size is {size_per_bank} B (allocated: {allocated_per_bank} B, free: {free_per_bank} B, largest free block: {largest_free_block_per_bank} B){}{}",
        oom_hint(*buffer_type, *size_per_bank, *free_per_bank, *largest_free_block_per_bank, *needed_per_bank),
        oom_fragmentation(fragmentation.as_deref())
    )]
    OutOfMemory {
        /// The pool asked for.
        buffer_type: BufferType,
        /// The requested size (the buffer's total).
        size: u64,
        /// Banks the buffer is spread over (shards for a sharded buffer).
        banks: u32,
        /// Bytes each bank would need.
        needed_per_bank: u64,
        /// Size of the pool in one bank.
        size_per_bank: u64,
        /// Allocated bytes per bank at the time.
        allocated_per_bank: u64,
        /// Free bytes per bank at the time.
        free_per_bank: u64,
        /// Largest free block per bank at the time.
        largest_free_block_per_bank: u64,
        /// When the pool had enough free bytes but no block large enough:
        /// its largest free blocks and the allocations that split them
        /// (shown on the lines after TT-Metal's message).
        fragmentation: Option<Box<Fragmentation>>,
    },

    /// A request whose size per bank does not fit in 64 bits: no device
    /// holds it (TT-Metal's own arithmetic wraps around on such requests).
    #[error(
        "cannot allocate {size} B {buffer_type} buffer with page size {page_size} B: each of its {banks} banks would need {needed_per_bank} B, more than 64-bit addresses reach (16 EiB): no device has room for it"
    )]
    BufferTooLarge {
        /// The pool asked for.
        buffer_type: BufferType,
        /// The requested size.
        size: u64,
        /// The requested page size.
        page_size: u64,
        /// Banks the buffer is spread over (shards for a sharded buffer).
        banks: u32,
        /// Bytes each bank would need, after alignment.
        needed_per_bank: u128,
    },

    /// An interleaved L1 buffer whose place lies below the interleaved limit.
    /// The first line is TT-Metal's message. Like TT-Metal, the device took
    /// the block before it refused the buffer, and the block stays allocated
    /// until the device is closed: it is listed by
    /// [`Device::live_allocations`](crate::Device::live_allocations) (and
    /// named by leak reports) as allocation `orphan_id`, labelled
    /// `orphaned by a refused allocation`, with this call's location.
    #[error(
        "Out of Memory: Cannot allocate at an address below {limit}. Allocation at {address}\n  the {size} B interleaved L1 buffer landed at {address:#x}, below the interleaved limit {limit:#x}; TT-Metal refuses it after taking the block, so {} B stay allocated in every L1 bank until the device is closed (allocation {orphan_id}, 'orphaned by a refused allocation'): free L1 buffers above the limit first, or allocate the buffer sharded (sharded buffers may lie below the limit)",
        format_count(*size_per_bank)
    )]
    BelowAddressLimit {
        /// The requested size.
        size: u64,
        /// The lowest address interleaved L1 buffers may take.
        limit: u64,
        /// Where the refused buffer was placed, and its block stays.
        address: u64,
        /// Bytes the orphaned block holds in every bank.
        size_per_bank: u64,
        /// The allocation id of the orphaned block.
        orphan_id: u64,
    },

    /// A fixed-address allocation whose range is not free.
    #[error(
        "cannot place {size} B {buffer_type} buffer at {address:#x}: the range is not free in the pool"
    )]
    AddressNotFree {
        /// The pool asked for.
        buffer_type: BufferType,
        /// The requested address.
        address: u64,
        /// The requested size.
        size: u64,
    },

    /// A fixed address that is not on the pool allocator's grid: every
    /// block of a pool starts a whole number of granules (the DRAM
    /// alignment) above the pool's base, as in TT-Metal.
    #[error(
        "cannot place {size} B {buffer_type} buffer at {address:#x}: the address is not a multiple of {granularity} B above the pool base {base:#x}{}",
        nearest_on_grid(*address, *base, *granularity)
    )]
    AddressUnaligned {
        /// The pool asked for.
        buffer_type: BufferType,
        /// The requested address.
        address: u64,
        /// The requested size.
        size: u64,
        /// The pool allocator's granularity in bytes.
        granularity: u64,
        /// The pool's lowest address.
        base: u64,
    },

    /// A core range or core range set that cannot be.
    #[error(transparent)]
    InvalidCores(#[from] CoreRangeError),

    /// A core range set with no core.
    #[error("a circular buffer needs at least one core: give a core range set that is not empty")]
    EmptyCoreRangeSet,

    /// Cores outside the device's compute grid.
    #[error(
        "core range {range} lies outside the {}x{} compute grid of {device}: use cores from [0-0 - {}-{}]",
        grid.0, grid.1, grid.0.saturating_sub(1), grid.1.saturating_sub(1)
    )]
    CoresOutsideGrid {
        /// The range given.
        range: CoreRange,
        /// The device.
        device: String,
        /// Its compute grid (x, y).
        grid: (u32, u32),
    },

    /// A circular buffer of size 0.
    #[error("a circular buffer of size 0 holds nothing: give it at least one page")]
    CircularBufferSizeZero,

    /// A circular buffer that serves no buffer index.
    #[error(
        "the circular buffer of {total_size} B serves no buffer index: give it one with .page_size(index, page_size)"
    )]
    CircularBufferWithoutIndex {
        /// Its size.
        total_size: u64,
    },

    /// A page size that does not divide the circular buffer (TT-Metal's message).
    #[error(
        "Failed allocation attempt on buffer index {index}. Total circular buffer size {total_size} B must be divisible by page size {page_size} B: choose a page size that divides it"
    )]
    CircularBufferPageSize {
        /// The buffer index.
        index: u8,
        /// The CB's size.
        total_size: u64,
        /// The page size given.
        page_size: u64,
    },

    /// More pages than TT-Metal's CB counters hold.
    #[error(
        "For buffer index {index}, number of CB pages {pages} is greater than 65535: use larger pages or a smaller circular buffer"
    )]
    CircularBufferTooManyPages {
        /// The buffer index.
        index: u8,
        /// Pages asked for.
        pages: u64,
    },

    /// A buffer index the device's cores do not have (TT-Metal's message).
    #[error(
        "Buffer index ({index}) exceeds max number of circular buffers per core ({max}): use indices 0 to {}",
        max.saturating_sub(1)
    )]
    CircularBufferIndexTooLarge {
        /// The index given.
        index: u8,
        /// Circular buffers a core has.
        max: u32,
    },

    /// A buffer index already served on one of the cores (TT-Metal's message).
    #[error(
        "Invalid circular buffer index: Cannot add circular buffer at index {index}, another circular buffer already exists (on core range {range}): use another index, or cores that do not hold one"
    )]
    CircularBufferIndexTaken {
        /// The index given.
        index: u8,
        /// The core range (as TT-Metal merged it) where it is taken.
        range: CoreRange,
    },

    /// A backing buffer that cannot back a circular buffer.
    #[error("buffer {buffer_id} cannot back this circular buffer: {problem}")]
    CircularBufferBacking {
        /// The buffer's id.
        buffer_id: u64,
        /// What is wrong and what would do.
        problem: String,
    },

    /// A circular buffer whose backing buffer was freed before the enqueue.
    #[error(
        "circular buffer {handle} of program {program} is backed by buffer {buffer_id}, which was freed: keep the buffer alive while the program runs"
    )]
    CircularBufferBackingFreed {
        /// The program.
        program: u64,
        /// The CB's position in it.
        handle: u32,
        /// The freed buffer's id.
        buffer_id: u64,
    },

    /// A circular buffer added after the program's first enqueue (TT-Metal's message).
    #[error(
        "Cannot add circular buffer to an already compiled program {program}: add every circular buffer before the first enqueue"
    )]
    ProgramCompiled {
        /// The program.
        program: u64,
    },

    /// A program enqueued on a device other than its own.
    #[error(
        "program {program} belongs to {device}, not to {other}: create it on the device that runs it"
    )]
    ProgramOnOtherDevice {
        /// The program.
        program: u64,
        /// Its device.
        device: String,
        /// The device it was enqueued on.
        other: String,
    },

    /// A program whose circular buffers do not fit: TT-Metal's message, then the explanation.
    #[error("{0}")]
    CircularBuffers(Box<CircularBufferFailure>),

    /// Something a backend cannot do.
    #[error("{what} is not supported: {instead}")]
    Unsupported {
        /// What was asked.
        what: &'static str,
        /// What to do instead.
        instead: &'static str,
    },

    /// A device geometry that cannot describe a device.
    #[error("invalid device geometry: {reason}")]
    InvalidGeometry {
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A byte size that cannot be read.
    #[error(transparent)]
    InvalidSize(#[from] SizeError),

    /// A budget whose size text cannot be read.
    #[error(transparent)]
    InvalidBudget(#[from] BudgetError),

    /// A memory check failed: leaked bytes or an exceeded budget. The
    /// message is the full report; [`memory_report`](Self::memory_report)
    /// reaches it from any error.
    #[error("{0}")]
    MemoryCheckFailed(Box<MemoryReport>),

    /// A memory source or device group without any device.
    #[error("{context}: a device group or guarded memory source needs at least one device")]
    NoDevice {
        /// What was given no device.
        context: &'static str,
    },

    /// A memory source or device group that lists one device more than once.
    #[error(
        "{context} lists device {device} more than once: list each device once (its allocations would be counted once per listing)"
    )]
    DuplicateDevice {
        /// Where the device was listed twice.
        context: &'static str,
        /// The device's name.
        device: String,
    },

    /// A bad budget file: the file, line, key and value, and what is
    /// wrong.
    #[error(transparent)]
    Config(Box<ConfigError>),

    /// A bad environment variable.
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// What is wrong and what is accepted.
        reason: String,
        /// The error underneath, when there is one (a size that cannot be
        /// read).
        #[source]
        source: Option<Cause>,
    },

    /// A file that is not a memguard JSON report.
    #[error("{} is not a memguard report: {reason}", path.display())]
    ReportFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// The error underneath, when there is one (a JSON error).
        #[source]
        source: Option<Cause>,
    },

    /// A report whose process never reached the end of its run.
    #[error(
        "{} is unfinished: process {pid} of {binary} never reached the end of its run (a test ended the process with std::process::exit, the process was killed, or it is still running); {}; rerun the tests, or delete the file to go on without them",
        path.display(),
        describe_pending(pending)
    )]
    UnfinishedReport {
        /// The report file.
        path: PathBuf,
        /// The test binary that wrote it.
        binary: String,
        /// Its process id.
        pid: u32,
        /// The tests that never reported.
        pending: Vec<String>,
    },

    /// A live stream that cannot be followed.
    #[error("{}:{line}: {reason}", path.display())]
    LiveStream {
        /// The stream file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
        /// The error underneath, when there is one (a JSON error).
        #[source]
        source: Option<Cause>,
    },

    /// A pool name that is not one of the four.
    #[error(transparent)]
    UnknownBufferType(#[from] ParseBufferTypeError),

    /// A simulated-device preset name that is not known.
    #[error(
        "unknown simulated device {value:?}: expected wormhole_b0 (wh, n150), wormhole_n300 (n300) or blackhole_p150 (bh, p150)"
    )]
    UnknownPreset {
        /// The text given.
        value: String,
    },

    /// A mesh preset name that is not known.
    #[error("unknown simulated mesh {value:?}: expected n300_mesh (n300x2), t3000 (t3k) or galaxy")]
    UnknownMeshPreset {
        /// The text given.
        value: String,
    },

    /// A mesh that cannot be opened as asked.
    #[error("invalid mesh: {reason}")]
    InvalidMesh {
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A chip coordinate outside a mesh.
    #[error(
        "mesh {mesh} has no chip {coord}: it is {shape}, rows 0 to {} and columns 0 to {}",
        shape.rows.saturating_sub(1),
        shape.cols.saturating_sub(1)
    )]
    NoSuchChip {
        /// The mesh's name.
        mesh: String,
        /// The coordinate asked for.
        coord: MeshCoord,
        /// The mesh's shape.
        shape: MeshShape,
    },

    /// A buffer of a mesh that would lie on a live buffer of the other kind
    /// on one chip: a chip's own buffer over a mesh buffer, or a mesh buffer
    /// over a chip's own buffer. TT-Metal places each with its own
    /// allocator, which does not see the other's buffers, so it would
    /// place both, and they would overwrite each other; the refused buffer
    /// is not kept.
    #[error("{}", describe_overlap(mesh, *chip, *on_chip, *buffer_type, *size, *address, *size_per_bank, other))]
    MeshOverlap {
        /// The mesh's name.
        mesh: String,
        /// The chip where the two would meet.
        chip: MeshCoord,
        /// Whether the refused buffer is the chip's own (else a mesh buffer).
        on_chip: bool,
        /// The refused buffer's pool.
        buffer_type: BufferType,
        /// Its size.
        size: u64,
        /// Where it was placed.
        address: u64,
        /// Bytes it takes in every bank.
        size_per_bank: u64,
        /// The live buffer it would lie on.
        other: Box<Allocation>,
    },

    /// A request the backend refused for a reason the checks above missed.
    #[error("allocation rejected: {reason}")]
    Rejected {
        /// What the backend said.
        reason: String,
    },

    /// An operation on a device that has been closed.
    #[error("device {device} is closed: keep the device open while its buffers are used")]
    DeviceClosed {
        /// The device's name.
        device: String,
    },

    /// A malformed allocation trace.
    #[error("{}line {line}: {reason}: {text:?}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    TraceSyntax {
        /// The trace file, when read from a file.
        path: Option<PathBuf>,
        /// Line number, from 1.
        line: usize,
        /// The line's text.
        text: String,
        /// What is wrong and what is accepted.
        reason: String,
        /// The error underneath, when there is one (a pool name that cannot
        /// be read).
        #[source]
        source: Option<Cause>,
    },

    /// A ttnn graph capture that cannot be imported: the input, the node's
    /// counter and field, and what to do.
    #[error(transparent)]
    TtnnCapture(Box<CaptureError>),
    /// A replay that does not do what the recorded device did (an
    /// `expect=` of the trace).
    #[error(
        "line {line}: the replay differs from the recording: expected {expected}, the device gave {found}: {text:?} (replay on the device model and carve-outs the trace names, or drop its expectations with Trace::clear_expectations to ask what another device would do)"
    )]
    TraceMismatch {
        /// Line number, from 1.
        line: usize,
        /// The operation, as a trace line.
        text: String,
        /// What the recording says (the text after `expect=`).
        expected: String,
        /// What the device replayed on did instead, in the same words, or
        /// the refusal and its reason.
        found: String,
    },

    /// A directory of trace tests ([`Harness::traces`](crate::runner::Harness::traces))
    /// that cannot be turned into tests: missing, unreadable, without a
    /// trace, or two files that would make tests of the same name.
    #[error("trace tests in {}: {reason}", dir.display())]
    TraceTests {
        /// The directory, as given.
        dir: PathBuf,
        /// What is wrong and what to do.
        reason: String,
        /// The operating system's error, when there is one.
        #[source]
        source: Option<std::io::Error>,
    },

    /// A device whose activity cannot be recorded as a trace, or a
    /// recording that could not be completed.
    #[error("cannot record device {device}: {reason}")]
    Recording {
        /// The device's name.
        device: String,
        /// What is wrong and what to do instead.
        reason: String,
    },

    /// A file that could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// TT-Metal's runtime files (`TT_METAL_RUNTIME_ROOT`) cannot be found.
    #[error(
        "TT-Metal runtime root {}: {reason}: set TT_METAL_RUNTIME_ROOT to a directory holding TT-Metal's runtime files (tt_metal/ and runtime/; see README.md, \"TT-Metal users\")",
        path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "not set".into())
    )]
    TtMetalRuntimeRoot {
        /// The directory named, if any.
        path: Option<PathBuf>,
        /// What is missing.
        reason: String,
    },

    /// TT-Metal could not open the device.
    #[error("cannot open TT-Metal device {device_id}: {message}")]
    TtMetalOpen {
        /// The device id asked for.
        device_id: i32,
        /// TT-Metal's message, without its backtrace.
        message: String,
    },

    /// TT-Metal threw a C++ exception.
    #[error("{context}: TT-Metal: {}", source.what())]
    TtMetal {
        /// What was being done.
        context: String,
        /// The exception; its message is TT-Metal's, without its backtrace.
        #[source]
        source: cxx::Exception,
    },

    /// A value from tt-memguard's C++ half that its Rust half does not know:
    /// the two halves disagree, which is a bug in tt-memguard.
    #[error(
        "the C++ side returned {what} {value}, which the Rust side does not know: the two halves of tt-memguard disagree; please report this bug"
    )]
    UnknownBridgeValue {
        /// What the value should name (a pool, an allocation status).
        what: &'static str,
        /// The value as it crossed the bridge.
        value: u8,
    },

    /// An exception thrown by C++ code.
    #[error("{context}: C++ exception: {source}")]
    Cpp {
        /// What was being done.
        context: &'static str,
        /// The exception.
        #[source]
        source: cxx::Exception,
    },
}

/// A bad budget file: where, what, and the error underneath when there is
/// one. Boxed in [`Error::Config`] so that [`Error`] stays small.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {}{reason}", path.display(), describe_config_item(key, value))]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// The key (empty for a syntax error).
    pub key: String,
    /// The value as written (empty when there is none).
    pub value: String,
    /// What is wrong and what is accepted.
    pub reason: String,
    /// The error underneath, when there is one (a size that cannot be read,
    /// a TOML syntax error).
    #[source]
    pub source: Option<Cause>,
}

impl Error {
    /// The report of a failed memory check
    /// ([`MemoryCheckFailed`](Self::MemoryCheckFailed)); `None` for every
    /// other error.
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{BufferType, MemoryGuard, SimDevice, MIB};
    ///
    /// let dev = SimDevice::wormhole_b0();
    /// let guard = MemoryGuard::new(&dev);
    /// std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048)?);
    /// let error = guard.finish().unwrap_err();
    /// assert_eq!(error.memory_report().unwrap().leaks().count(), 1);
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub fn memory_report(&self) -> Option<&MemoryReport> {
        match self {
            Error::MemoryCheckFailed(report) => Some(report),
            _ => None,
        }
    }
    /// Keeps `cause` as the source of a file, variable, report, stream or
    /// trace error (other errors are returned as they are).
    pub(crate) fn with_source(
        mut self,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        match &mut self {
            Error::Config(config) => config.source = Some(Box::new(cause)),
            Error::Env { source, .. }
            | Error::ReportFormat { source, .. }
            | Error::LiveStream { source, .. }
            | Error::TraceSyntax { source, .. } => *source = Some(Box::new(cause)),
            _ => {}
        }
        self
    }
}

impl fmt::Debug for Error {
    /// The message, then every cause it does not already quote.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.to_string();
        // A report ends its last line with a newline; a message does not.
        f.write_str(message.trim_end_matches('\n'))?;
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                causes.push(text);
            }
            source = cause.source();
        }
        match causes.as_slice() {
            [] => Ok(()),
            [one] => write!(f, "\n\nCaused by:\n    {one}"),
            many => {
                f.write_str("\n\nCaused by:")?;
                for (i, cause) in many.iter().enumerate() {
                    write!(f, "\n    {i}: {cause}")?;
                }
                Ok(())
            }
        }
    }
}

fn describe_pending(pending: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut names = pending
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if pending.len() > SHOWN {
        names.push_str(&format!(" and {} more", pending.len() - SHOWN));
    }
    match pending.len() {
        0 => "no test was left to report".to_string(),
        1 => format!("1 test never reported: {names}"),
        n => format!("{n} tests never reported: {names}"),
    }
}

fn describe_config_item(key: &str, value: &str) -> String {
    match (key.is_empty(), value.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!("{key}: "),
        (false, false) => format!("{key} = {value:?}: "),
    }
}

/// How to make `size` a whole number of pages: up when that still fits in
/// 64 bits, else down.
fn round_to_pages(size: u64, page_size: u64) -> String {
    if page_size == 0 {
        return "give a page size above 0".to_string();
    }
    let up = u128::from(size.div_ceil(page_size)) * u128::from(page_size);
    if up <= u128::from(u64::MAX) {
        format!("round the size up to {up} B")
    } else {
        format!("round the size down to {} B", size / page_size * page_size)
    }
}

/// The grid addresses either side of `address`, as a hint.
fn nearest_on_grid(address: u64, base: u64, granularity: u64) -> String {
    if granularity == 0 || address < base {
        return String::new();
    }
    let below = base + (address - base) / granularity * granularity;
    match below.checked_add(granularity) {
        Some(above) => format!(": use {below:#x} or {above:#x}"),
        None => format!(": use {below:#x}"),
    }
}

fn oom_hint(
    buffer_type: BufferType,
    size_per_bank: u64,
    free_per_bank: u64,
    largest_per_bank: u64,
    needed_per_bank: u64,
) -> String {
    if size_per_bank == 0 {
        let knob = match buffer_type {
            BufferType::L1Small => "l1_small_size",
            BufferType::Trace => "trace_region_size",
            _ => return String::new(),
        };
        return format!(
            "; the {buffer_type} region is not configured: open the device with {knob} > 0"
        );
    }
    if free_per_bank >= needed_per_bank && largest_per_bank < needed_per_bank {
        return format!(
            "; {} B are free in total but fragmented: no single free block holds {} B",
            format_count(free_per_bank),
            format_count(needed_per_bank)
        );
    }
    String::new()
}

/// The free blocks of a fragmented pool, on the lines after the message.
fn oom_fragmentation(fragmentation: Option<&Fragmentation>) -> String {
    let Some(f) = fragmentation else {
        return String::new();
    };
    let mut out = String::from("\n");
    f.render(&mut out, "  ");
    out.truncate(out.trim_end().len());
    out
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of [`Error::MeshOverlap`].
#[allow(clippy::too_many_arguments)]
fn describe_overlap(
    mesh: &str,
    chip: MeshCoord,
    on_chip: bool,
    buffer_type: BufferType,
    size: u64,
    address: u64,
    size_per_bank: u64,
    other: &Allocation,
) -> String {
    let name = match &other.label {
        Some(label) => format!("'{label}' (id {}, ", other.id),
        None => format!("id {} (", other.id),
    };
    let other_text = format!(
        "{name}{} B {}, {} B per bank) at {:#x}..{:#x}{}",
        format_count(other.size),
        other.buffer_type,
        format_count(other.size_per_bank),
        other.address,
        other.address.saturating_add(other.size_per_bank),
        other
            .location
            .as_ref()
            .map(|l| format!(", allocated at {l}"))
            .unwrap_or_default()
    );
    let placed = format!(
        "{address:#x}..{:#x} (per bank)",
        address.saturating_add(size_per_bank)
    );
    let (what, fix) = if on_chip {
        (
            format!(
                "chip {chip} of {mesh}: its own {} B {buffer_type} buffer would be placed at {placed}, on mesh buffer {other_text}",
                format_count(size)
            ),
            "free the mesh buffer first, or allocate this one on the mesh",
        )
    } else {
        (
            format!(
                "mesh {mesh}: a {} B {buffer_type} mesh buffer would be placed at {placed}, on chip {chip}'s own buffer {other_text}",
                format_count(size)
            ),
            "free the chip's own buffer first, or allocate both on the mesh",
        )
    };
    format!(
        "{what}: TT-Metal places the mesh's buffers and each chip's own with separate allocators, blind to each other, so the two would overwrite each other; {fix}"
    )
}

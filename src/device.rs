//! The device handle tests allocate on, and the RAII buffers it hands out.

use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};

use crate::cb_failure::ProgramPeak;
use crate::composition::{Event as LogEntry, Events};
use crate::cores::CoreRangeSet;
use crate::detail::{Timeline, TimelineBuilder};
use crate::error::{Error, Result};
use crate::fragmentation::explain_fragmentation;
use crate::program::CircularBufferConfig;
use crate::program::{EnqueueReport, Program};
use crate::source::{Backend, Direction, Foreign, Peaks, Placed, Request};
use crate::types::{Allocation, BufferType, MeshCoord, MeshShape, SourceLocation, orphan_label};

/// Which kind of backend a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceKind {
    /// The embedded simulated device.
    Simulated,
    /// A device opened through TT-Metal.
    TtMetal,
}

/// What a device is, fixed when it is opened.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Name in reports, e.g. `sim:wormhole_b0`.
    pub name: String,
    /// The backend.
    pub kind: DeviceKind,
    /// Compute grid (x, y); sharded buffers may use at most x*y cores.
    pub compute_grid: (u32, u32),
    /// Bytes per L1 bank requested for L1_SMALL when the device was opened.
    pub l1_small_size: u64,
    /// Bytes requested for TRACE when the device was opened.
    pub trace_region_size: u64,
    /// For the device of a [`MeshDevice`](crate::MeshDevice): the mesh's
    /// shape. Its buffers are placed once, at the same address on every
    /// chip, by one allocator, and its figures are one chip's.
    pub mesh_shape: Option<MeshShape>,
    /// For one chip's own allocator in a mesh
    /// ([`MeshDevice::chip`](crate::MeshDevice::chip)): the chip's place.
    pub mesh_chip: Option<MeshCoord>,
    /// What the per-bank size of a request depends on, pool by pool.
    pub(crate) pools: [PoolLayout; 4],
}

impl DeviceInfo {
    /// Cores of the compute grid.
    pub fn compute_cores(&self) -> u32 {
        self.compute_grid.0.saturating_mul(self.compute_grid.1)
    }
}

/// One pool's bank count and page alignment, and the allocator granularity
/// (the DRAM alignment, in every pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PoolLayout {
    pub banks: u32,
    pub alignment: u64,
    pub granularity: u64,
}

impl PoolLayout {
    /// The bytes a request takes in every bank, computed without overflow:
    /// TT-Metal's `ceil(pages / banks)` pages of `round_up(page_size,
    /// alignment)` bytes, rounded up to the allocator granularity and at
    /// least one granule.
    pub(crate) fn block_size(&self, size: u64, page_size: u64, banks: u32) -> u128 {
        // Saturates at u128::MAX, far above anything a bank holds.
        let round_up = |value: u128, multiple: u64| match multiple {
            0 => value,
            m => value.div_ceil(u128::from(m)).saturating_mul(u128::from(m)),
        };
        if page_size == 0 || banks == 0 {
            return 0;
        }
        let pages_per_bank = (size / page_size).div_ceil(u64::from(banks));
        let per_bank = u128::from(pages_per_bank)
            .saturating_mul(round_up(u128::from(page_size), self.alignment));
        round_up(per_bank.max(u128::from(self.granularity)), self.granularity)
    }
}

/// What a device reports to an observer (the live stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceEvent<'a> {
    /// A buffer was placed.
    Alloc {
        label: Option<&'a str>,
        id: u64,
        buffer_type: BufferType,
        address: u64,
        size: u64,
        size_per_bank: u64,
        num_banks: u32,
    },
    /// A buffer was freed.
    Free { id: u64, buffer_type: BufferType },
}

/// An operation the device applied, as trace recordings ([`Tracer`])
/// receive it: under the device lock, in the device's order.
pub(crate) enum TraceEvent<'a> {
    /// An allocation through the crate: placed, or refused as out of memory
    /// (`None`).
    Alloc {
        request: &'a Request,
        placed: Option<&'a Placed>,
    },
    /// A free of an allocation made through the crate.
    Free { id: u64 },
    /// A program created.
    Program { id: u64 },
    /// A circular buffer added: every CB of the program, the new one last.
    Cb {
        program: u64,
        cbs: &'a [(CoreRangeSet, CircularBufferConfig)],
    },
    /// An enqueue (with every CB of the program), and what it did when a
    /// replay can check that.
    Enqueue {
        program: u64,
        cbs: &'a [(CoreRangeSet, CircularBufferConfig)],
        seen: Option<EnqueueSeen>,
    },
    /// A program destroyed.
    Destroy { program: u64 },
}

/// What an enqueue did, as a recording keeps it.
pub(crate) enum EnqueueSeen {
    /// Its CBs fit, at these addresses in creation order.
    Fit(Vec<u64>),
    /// Refused: a CB region ends above the lowest L1 buffer.
    Clash,
    /// Refused: a CB region ends past a core's L1.
    BeyondL1,
}

/// A trace recording attached to a device (`record.rs`).
pub(crate) trait Tracer: Send {
    /// An operation the device applied.
    fn apply(&mut self, event: &TraceEvent<'_>);
    /// An allocation or a free other code made on the device.
    fn foreign(&mut self, event: &Foreign);
    /// An event that could not be received.
    fn fail(&mut self, reason: String);
}

/// A tracer as the device holds it, next to its owner's handle.
type SharedTracer = Arc<Mutex<dyn Tracer>>;

/// An observer of a device's allocations and frees. It runs while the
/// device is locked, so that events reach it in the order the device applied
/// them: it must not call back into the device.
pub(crate) type Observer = Arc<dyn Fn(&DeviceEvent<'_>) + Send + Sync>;

/// Identifies one attached observer, to detach exactly that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObserverToken(u64);

/// Device instances opened in this process, for [`Device::instance`].
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

struct Shared {
    info: DeviceInfo,
    /// Unique in this process: tells apart two devices of the same name.
    instance: u64,
    /// The backend, and what is written with each of its events.
    backend: Mutex<Locked>,
    /// Set while an observer is attached: a relaxed load is all an
    /// unobserved allocation pays.
    observed: AtomicBool,
    /// Every attached observer with its token; replaced, never mutated in
    /// place, so that a notification clones one `Arc`.
    observers: RwLock<Arc<Vec<(ObserverToken, Observer)>>>,
    next_observer: AtomicU64,
    /// The last enqueues that laid out circular buffers, by sequence number,
    /// so that a guard can name the one that made its CB peak.
    enqueues: Mutex<EnqueueLog>,
    /// The next enqueue's sequence number: read without a lock by guards
    /// starting.
    enqueue_seq: AtomicU64,
    /// Active guards that want the peak composition: allocations and frees
    /// are logged while it is above 0.
    recording: AtomicU64,
    /// Active guards that explain themselves: timelines are fed while it is
    /// above 0.
    explaining: AtomicU64,
    /// Set while a trace recording is attached: a relaxed load is all an
    /// unrecorded operation pays.
    tracing: AtomicBool,
    /// The attached trace recordings, with their tokens. Taken under the
    /// backend lock.
    recorders: Mutex<Vec<(u64, SharedTracer)>>,
    next_recorder: AtomicU64,
    /// For the device of a mesh: each chip's own allocator, row by row.
    chips: OnceLock<Vec<Device>>,
    /// For one chip's own allocator: its mesh's device.
    mesh: OnceLock<Weak<Shared>>,
    /// For the device of a mesh: buffers live on its chips' own allocators
    /// (while there are none, a mesh buffer needs no overlap check).
    chip_buffers: AtomicU64,
}

/// What the device lock guards: the backend (`None` once closed), and the
/// log written with its events, so that one lock orders both.
struct Locked {
    backend: Option<Box<dyn Backend>>,
    /// The last allocations and frees made through this crate while
    /// recording, for the peak composition, and the timelines of the
    /// guards that explain themselves.
    log: AllocLog,
}

/// The timelines being built on a device, one per guard that explains
/// itself, each in bounded memory.
#[derive(Default)]
struct Timelines {
    next: u64,
    active: Vec<(u64, TimelineBuilder)>,
}

/// A bounded log of allocations and frees: sequence numbers count every
/// logged event.
#[derive(Default)]
struct AllocLog {
    /// The events, oldest first; the last has sequence number
    /// `next_seq - 1`.
    entries: std::collections::VecDeque<LogEntry>,
    next_seq: u64,
    /// Fed under the same lock as the log: one lock per event.
    timelines: Timelines,
}

/// Allocation events a device remembers for the peak composition.
const ALLOC_LOG: usize = 65_536;

/// A bounded log of enqueues: sequence numbers count every logged enqueue.
#[derive(Default)]
pub(crate) struct EnqueueLog {
    entries: std::collections::VecDeque<(u64, Arc<ProgramPeak>)>,
}

/// Enqueues a device remembers for guards.
const ENQUEUE_LOG: usize = 1024;

impl Shared {
    /// Counts a chip's own buffer freed on its mesh.
    fn chip_buffer_freed(&self) {
        if let Some(mesh) = self.mesh.get().and_then(Weak::upgrade) {
            mesh.chip_buffers.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Locked> {
        // A panic while the lock was held cannot leave the backend half
        // updated (every backend call is a single C++ call), so a poisoned
        // lock is still usable.
        self.backend.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells every observer about `event`. Called with the backend lock
    /// held, right after the backend applied the change: events are
    /// delivered in the device's own order (a free before the allocation
    /// that reuses its block). Lock order: backend, then observer list, then
    /// whatever the observer takes (the live stream's file); nothing takes
    /// them the other way round.
    fn notify(&self, event: DeviceEvent<'_>) {
        if self.observed.load(Ordering::Relaxed) {
            let observers = Arc::clone(&self.observers.read().unwrap_or_else(|e| e.into_inner()));
            for (_, observer) in observers.iter() {
                observer(&event);
            }
        }
    }

    /// Logs an allocation or a free when a guard wants the peak
    /// composition, and feeds the timelines of the guards that explain
    /// themselves. Called with the backend lock held (`log` is under it),
    /// so that both see the device's own order.
    fn record(
        &self,
        log: &mut AllocLog,
        alloc: bool,
        buffer_type: BufferType,
        size_per_bank: u64,
        make: impl FnOnce() -> LogEntry,
    ) {
        let explaining = self.explaining.load(Ordering::Relaxed) != 0;
        let recording = self.recording.load(Ordering::Relaxed) != 0;
        if !explaining && !recording {
            return;
        }
        if explaining {
            for (_, t) in log.timelines.active.iter_mut() {
                t.push(buffer_type.index(), alloc, size_per_bank);
            }
        }
        if !recording {
            return;
        }
        let entry = make();
        log.next_seq += 1;
        if log.entries.len() == ALLOC_LOG {
            log.entries.pop_front();
        }
        log.entries.push_back(entry);
    }

    /// Hands `event` to every attached trace recording, after the
    /// allocations and frees other code made since the last event (a
    /// TT-Metal device's foreign journal). Called with the backend lock
    /// held, right after the backend applied the event.
    pub(crate) fn trace(&self, backend: &mut dyn Backend, event: Option<&TraceEvent<'_>>) {
        if !self.tracing.load(Ordering::Relaxed) {
            return;
        }
        let recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        let foreign = backend.drain_journal();
        for (_, recorder) in recorders.iter() {
            let mut recorder = recorder.lock().unwrap_or_else(|e| e.into_inner());
            match &foreign {
                Ok(events) => events.iter().for_each(|f| recorder.foreign(f)),
                Err(e) => recorder.fail(format!("reading the buffers other code made: {e}")),
            }
            if let Some(event) = event {
                recorder.apply(event);
            }
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut dyn Backend) -> Result<T>) -> Result<T> {
        self.with_log(|b, _| f(b))
    }

    /// Like [`with`](Self::with), with the log written under the same lock.
    fn with_log<T>(
        &self,
        f: impl FnOnce(&mut dyn Backend, &mut AllocLog) -> Result<T>,
    ) -> Result<T> {
        let mut locked = self.lock();
        let Locked { backend, log } = &mut *locked;
        match backend.as_deref_mut() {
            Some(backend) => f(backend, log),
            None => Err(Error::DeviceClosed {
                device: self.info.name.clone(),
            }),
        }
    }
}

/// A handle to one device (simulated or real). Cheap to clone; all clones
/// refer to the same device, which stays open until [`close`](Self::close)
/// or until the last handle and the last buffer are dropped.
///
/// Open one with [`SimDevice`](crate::SimDevice) (simulated) or, with the
/// `tt-metal` feature, through TT-Metal.
#[derive(Clone)]
pub struct Device {
    shared: Arc<Shared>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.shared.info.name)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Device {
    pub(crate) fn from_backend(info: DeviceInfo, backend: Box<dyn Backend>) -> Device {
        Device {
            shared: Arc::new(Shared {
                info,
                instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
                backend: Mutex::new(Locked {
                    backend: Some(backend),
                    log: AllocLog::default(),
                }),
                observed: AtomicBool::new(false),
                observers: RwLock::new(Arc::new(Vec::new())),
                next_observer: AtomicU64::new(1),
                enqueues: Mutex::new(EnqueueLog::default()),
                enqueue_seq: AtomicU64::new(0),
                recording: AtomicU64::new(0),
                explaining: AtomicU64::new(0),
                tracing: AtomicBool::new(false),
                recorders: Mutex::new(Vec::new()),
                next_recorder: AtomicU64::new(1),
                chips: OnceLock::new(),
                mesh: OnceLock::new(),
                chip_buffers: AtomicU64::new(0),
            }),
        }
    }

    /// Links a mesh's device to its chips' own allocators (once), and each
    /// chip to the mesh.
    pub(crate) fn set_chips(&self, chips: Vec<Device>) {
        for chip in &chips {
            let _ = chip.shared.mesh.set(Arc::downgrade(&self.shared));
        }
        let _ = self.shared.chips.set(chips);
    }

    /// Refuses a buffer just placed on a mesh that lies on a live buffer of
    /// the other kind on some chip: a chip's own buffer over a mesh buffer,
    /// or a mesh buffer over a chip's own buffer. TT-Metal places each with
    /// its own allocator, blind to the other's buffers, and the two would
    /// overwrite each other. Called after the placement, with no lock held.
    fn check_mesh_overlap(&self, buffer: &Buffer) -> Result<()> {
        let hit = |live: Vec<Allocation>| {
            live.into_iter().find(|a| {
                same_address_space(a.buffer_type, buffer.buffer_type)
                    && a.address < buffer.address.saturating_add(buffer.size_per_bank)
                    && buffer.address < a.address.saturating_add(a.size_per_bank)
            })
        };
        if let Some(mesh) = self.shared.mesh.get().and_then(Weak::upgrade) {
            // A chip's own buffer, against the mesh's buffers.
            mesh.chip_buffers.fetch_add(1, Ordering::Relaxed);
            let live = mesh.with(|b| b.live()).map(located).unwrap_or_default();
            if let Some(other) = hit(live) {
                return Err(Error::MeshOverlap {
                    mesh: mesh.info.name.clone(),
                    chip: self.shared.info.mesh_chip.unwrap_or(MeshCoord::new(0, 0)),
                    on_chip: true,
                    buffer_type: buffer.buffer_type,
                    size: buffer.size,
                    address: buffer.address,
                    size_per_bank: buffer.size_per_bank,
                    other: Box::new(other),
                });
            }
        } else if self.shared.chip_buffers.load(Ordering::Relaxed) > 0 {
            // A mesh buffer, against every chip's own buffers.
            for chip in self.chips() {
                let live = chip
                    .shared
                    .with(|b| b.live())
                    .map(located)
                    .unwrap_or_default();
                if let Some(other) = hit(live) {
                    return Err(Error::MeshOverlap {
                        mesh: self.shared.info.name.clone(),
                        chip: chip.shared.info.mesh_chip.unwrap_or(MeshCoord::new(0, 0)),
                        on_chip: false,
                        buffer_type: buffer.buffer_type,
                        size: buffer.size,
                        address: buffer.address,
                        size_per_bank: buffer.size_per_bank,
                        other: Box::new(other),
                    });
                }
            }
        }
        Ok(())
    }

    /// For the device of a mesh, each chip's own allocator, row by row;
    /// empty for any other device.
    pub(crate) fn chips(&self) -> &[Device] {
        self.shared.chips.get().map_or(&[], Vec::as_slice)
    }

    /// What the device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.shared.info
    }

    /// The device's name in reports.
    pub fn name(&self) -> &str {
        &self.shared.info.name
    }

    /// Allocates an interleaved buffer spread over every bank of the pool.
    /// The buffer is freed when the returned handle is dropped.
    ///
    /// # Errors
    ///
    /// Size 0, page size 0, a size that is not a whole number of pages, an
    /// interleaved L1_SMALL buffer, [`Error::BufferTooLarge`] when the size
    /// per bank would pass 64 bits (where TT-Metal's own arithmetic wraps
    /// around), or [`Error::OutOfMemory`] with TT-Metal's message when no
    /// free block is large enough.
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{BufferType, SimDevice, KIB};
    ///
    /// let dev = SimDevice::wormhole_b0();
    /// let l1 = dev.allocate(BufferType::L1, 64 * KIB, 2048)?;
    /// assert_eq!((l1.address(), l1.size_per_bank()), (0x16D800, 2048));
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    #[track_caller]
    pub fn allocate(&self, buffer_type: BufferType, size: u64, page_size: u64) -> Result<Buffer> {
        self.buffer(buffer_type, size)
            .page_size(page_size)
            .allocate()
    }

    /// Allocates a sharded buffer: its pages are spread over `shards` shards
    /// of `ceil(pages / shards)` pages each, on the first `shards` cores of
    /// the compute grid (L1 and L1_SMALL) or the first `shards` DRAM banks
    /// (DRAM). As in TT-Metal, the pool has one allocator for all its
    /// banks: a shard's size (pages times the page size rounded up to the
    /// pool's alignment) is reserved at the same address in every bank of
    /// the pool, also the banks that hold no shard, and the statistics count
    /// it in every bank.
    ///
    /// # Errors
    ///
    /// As [`allocate`](Self::allocate), and 0 shards, more shards than
    /// cores ([`Error::TooManyShards`]) or DRAM banks
    /// ([`Error::DramShards`]), or TRACE, which takes interleaved buffers
    /// only.
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{BufferType, SimDevice};
    ///
    /// let dev = SimDevice::wormhole_b0();
    /// // 100 pages over 3 of the 12 DRAM banks: 34 pages of 2 KiB per bank.
    /// let w = dev.allocate_sharded(BufferType::Dram, 100 * 2048, 2048, 3)?;
    /// assert_eq!((w.address(), w.size_per_bank(), w.num_banks()), (0x100040, 69_632, 12));
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    #[track_caller]
    pub fn allocate_sharded(
        &self,
        buffer_type: BufferType,
        size: u64,
        page_size: u64,
        shards: u32,
    ) -> Result<Buffer> {
        self.buffer(buffer_type, size)
            .page_size(page_size)
            .sharded(shards)
            .allocate()
    }

    /// Starts a buffer request with every option: page size (default the
    /// whole size, one page), sharding, direction, a fixed address, a label.
    pub fn buffer(&self, buffer_type: BufferType, size: u64) -> BufferBuilder<'_> {
        BufferBuilder {
            device: self,
            request: Request {
                buffer_type,
                size,
                page_size: size,
                shards: None,
                direction: Direction::Default,
                address: None,
                label: None,
                tag: 0,
            },
        }
    }

    /// The allocator statistics of every pool.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] after [`close`](Self::close).
    pub fn snapshot(&self) -> Result<crate::Snapshot> {
        self.shared.with(|b| b.snapshot())
    }

    /// Every live allocation, in allocation order, with the place it was
    /// allocated when it was allocated through this crate.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] after [`close`](Self::close).
    pub fn live_allocations(&self) -> Result<Vec<Allocation>> {
        Ok(located(self.shared.with(|b| b.live())?))
    }

    /// Number of live allocations.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] after [`close`](Self::close).
    pub fn live_count(&self) -> Result<u64> {
        self.shared.with(|b| b.live_count())
    }

    /// The id the next allocation will get: allocations with an id at or
    /// above it were made after this call.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] after [`close`](Self::close).
    pub fn next_allocation_id(&self) -> Result<u64> {
        self.shared.with(|b| b.next_id())
    }

    /// Closes the device (for the device of a mesh, its chips too). Buffers
    /// still alive become inert: dropping them does nothing, and
    /// [`Buffer::free`] reports [`Error::DeviceClosed`]. Closing twice is
    /// harmless.
    pub fn close(&self) {
        for chip in self.chips() {
            chip.close();
        }
        self.shared.lock().backend.take();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().backend.is_none()
    }

    /// Attaches the recorder `make` builds, under the device lock: events
    /// from before it are handed to the recorders attached earlier, and the
    /// foreign journal starts before `make` reads the live set.
    pub(crate) fn attach_recorder<T: Tracer + 'static>(
        &self,
        make: impl FnOnce(&mut dyn Backend) -> Result<T>,
    ) -> Result<(u64, Arc<Mutex<T>>)> {
        let shared = &self.shared;
        shared.with(|b| {
            shared.trace(b, None);
            b.start_journal()?;
            let recorder = match make(b) {
                Ok(recorder) => Arc::new(Mutex::new(recorder)),
                Err(e) => {
                    b.stop_journal();
                    return Err(e);
                }
            };
            let token = shared.next_recorder.fetch_add(1, Ordering::Relaxed);
            let mut recorders = shared.recorders.lock().unwrap_or_else(|e| e.into_inner());
            let tracer: SharedTracer = recorder.clone();
            recorders.push((token, tracer));
            shared.tracing.store(true, Ordering::Relaxed);
            Ok((token, recorder))
        })
    }

    /// Detaches recorder `token` after handing it (and the others) the
    /// events of other code so far; on a closed device it just goes.
    pub(crate) fn detach_recorder(&self, token: u64) {
        let shared = &self.shared;
        let mut locked = shared.lock();
        if let Some(b) = locked.backend.as_deref_mut() {
            shared.trace(b, None);
            b.stop_journal();
        }
        let mut recorders = shared.recorders.lock().unwrap_or_else(|e| e.into_inner());
        recorders.retain(|(t, _)| *t != token);
        shared
            .tracing
            .store(!recorders.is_empty(), Ordering::Relaxed);
    }

    /// Hands `event` to the attached trace recordings; call it with the
    /// backend `b` of this device, under its lock.
    pub(crate) fn trace_event(&self, b: &mut dyn Backend, event: &TraceEvent<'_>) {
        self.shared.trace(b, Some(event));
    }

    /// Starts a guarded scope in one step under the device lock: a peak mark,
    /// the baseline snapshot, the next allocation id and the live count,
    /// and, when `explain`, a timeline starting from the baseline.
    pub(crate) fn begin_scope(&self, explain: bool) -> Result<ScopeStart> {
        let (mark, before, first_id, inherited, timeline) = self.shared.with_log(|b, log| {
            // The peak mark starts first: nothing allocated after the
            // snapshot can escape it.
            let mark = b.mark_peak()?;
            let before = b.snapshot()?;
            let timeline = explain.then(|| self.register_timeline(log, &before));
            Ok((mark, before, b.next_id()?, b.live_count()?, timeline))
        })?;
        let mark = PeakMark {
            device: self.clone(),
            mark,
            released: false,
        };
        Ok(ScopeStart {
            mark,
            before,
            first_id,
            inherited,
            timeline,
        })
    }

    /// Starts a timeline from the device's state now, for a guard asked to
    /// explain itself after it started.
    pub(crate) fn start_timeline(&self) -> Result<TimelineHold> {
        self.shared
            .with_log(|b, log| Ok(self.register_timeline(log, &b.snapshot()?)))
    }

    /// Registers a timeline starting from `now`. Called with the backend
    /// lock held, so that no event falls between `now` and the start.
    fn register_timeline(&self, log: &mut AllocLog, now: &crate::Snapshot) -> TimelineHold {
        let start = BufferType::ALL.map(|t| now.pool(t).allocated_per_bank);
        log.timelines.next += 1;
        let id = log.timelines.next;
        log.timelines.active.push((id, TimelineBuilder::new(start)));
        self.shared.explaining.fetch_add(1, Ordering::Relaxed);
        TimelineHold {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// Timelines being built on the device.
    #[cfg(test)]
    pub(crate) fn active_timelines(&self) -> usize {
        let log = &self.shared.lock().log;
        debug_assert_eq!(
            log.timelines.active.len() as u64,
            self.shared.explaining.load(Ordering::Relaxed)
        );
        log.timelines.active.len()
    }

    /// The timeline of `hold` so far, taken out of the device at the
    /// scope's `last` reading. Called with the backend lock held.
    fn read_timeline(log: &mut AllocLog, hold: &TimelineHold, last: bool) -> Option<Timeline> {
        let active = &mut log.timelines.active;
        let i = active.iter().position(|(id, _)| *id == hold.id)?;
        Some(if last {
            // The scope's last reading: nothing more is fed to it.
            active.swap_remove(i).1.into_timeline()
        } else {
            active[i].1.timeline()
        })
    }

    /// Starts logging allocations for a scope that wants the peak
    /// composition; logging goes on until the returned hold is dropped.
    /// Taken just before the scope's baseline (or later, when the budget is
    /// given after the guard started): an event the log and the baseline
    /// disagree on makes the replay miss the peak, and the composition is
    /// then left out, never wrong.
    pub(crate) fn hold_recording(&self) -> Result<RecordingHold> {
        let start = self.shared.with_log(|_, log| {
            self.shared.recording.fetch_add(1, Ordering::Relaxed);
            Ok(log.next_seq)
        })?;
        Ok(RecordingHold {
            shared: Arc::clone(&self.shared),
            start,
        })
    }

    /// Runs `f` on the live set and every logged event since `hold`
    /// started, read in one step (under the device lock, without copying
    /// the log); `None` when the log no longer reaches back that far.
    pub(crate) fn with_events_since<T>(
        &self,
        hold: &RecordingHold,
        f: impl FnOnce(&[Allocation], Events<'_>) -> T,
    ) -> Result<Option<T>> {
        self.shared.with_log(|b, log| {
            let live = located(b.live()?);
            let oldest = log.next_seq - log.entries.len() as u64;
            if oldest > hold.start {
                return Ok(None);
            }
            let skip = usize::try_from(hold.start - oldest).unwrap_or(usize::MAX);
            let (front, back) = log.entries.as_slices();
            Ok(Some(f(&live, Events(front, back).after(skip))))
        })
    }

    /// The end state of a scope in one step: snapshot, peaks and, when
    /// the scope has one, its timeline (taken out of the device at the
    /// `last` reading).
    pub(crate) fn end_scope(
        &self,
        mark: &PeakMark,
        timeline: Option<&TimelineHold>,
        last: bool,
    ) -> Result<ScopeEnd> {
        self.shared.with_log(|b, log| {
            Ok((
                b.snapshot()?,
                PoolPeaks(b.read_peak(mark.mark)?),
                timeline.and_then(|t| Self::read_timeline(log, t, last)),
            ))
        })
    }

    /// Like [`end_scope`](Self::end_scope), and releases the mark in the
    /// same step.
    pub(crate) fn close_scope(
        &self,
        mark: &mut PeakMark,
        timeline: Option<&TimelineHold>,
    ) -> Result<ScopeEnd> {
        let id = mark.mark;
        let out = self.shared.with_log(|b, log| {
            let out = (
                b.snapshot()?,
                PoolPeaks(b.read_peak(id)?),
                timeline.and_then(|t| Self::read_timeline(log, t, true)),
            );
            b.release_peak(id);
            Ok(out)
        })?;
        mark.released = true;
        Ok(out)
    }

    /// The device's instance number, unique among the devices this process
    /// opened (two devices of the same name differ in it).
    pub(crate) fn instance(&self) -> u64 {
        self.shared.instance
    }

    /// Attaches an observer of allocations and frees made through this
    /// crate, next to any others; detach it with
    /// [`remove_observer`](Self::remove_observer) and its token.
    pub(crate) fn add_observer(&self, observer: Observer) -> ObserverToken {
        let token = ObserverToken(self.shared.next_observer.fetch_add(1, Ordering::Relaxed));
        let mut list = self
            .shared
            .observers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let mut next = Vec::with_capacity(list.len() + 1);
        next.extend(list.iter().cloned());
        next.push((token, observer));
        *list = Arc::new(next);
        self.shared.observed.store(true, Ordering::Relaxed);
        token
    }

    /// Detaches the observer `token` names; the others stay attached.
    pub(crate) fn remove_observer(&self, token: ObserverToken) {
        let mut list = self
            .shared
            .observers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let next: Vec<_> = list.iter().filter(|(t, _)| *t != token).cloned().collect();
        self.shared
            .observed
            .store(!next.is_empty(), Ordering::Relaxed);
        *list = Arc::new(next);
    }

    /// Runs `f` on a snapshot while the device is still locked, so that
    /// what `f` writes is ordered with the observers' events.
    pub(crate) fn with_snapshot<T>(&self, f: impl FnOnce(&crate::Snapshot) -> T) -> Result<T> {
        self.shared.with(|b| Ok(f(&b.snapshot()?)))
    }

    /// Resets the device to its freshly opened state when this is the only
    /// handle to it and nothing is live on it (so that a test runner can
    /// reuse it as a fresh device); false otherwise.
    pub(crate) fn reset_if_unshared(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
            && self
                .shared
                .lock()
                .backend
                .as_deref_mut()
                .is_some_and(|b| b.reset())
    }

    /// The sequence number the next enqueue will get.
    pub(crate) fn next_enqueue(&self) -> u64 {
        self.shared.enqueue_seq.load(Ordering::Relaxed)
    }

    /// Records an enqueue that laid out circular buffers.
    pub(crate) fn log_enqueue(&self, peak: ProgramPeak) {
        let mut log = self
            .shared
            .enqueues
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let seq = self.shared.enqueue_seq.fetch_add(1, Ordering::Relaxed);
        if log.entries.len() == ENQUEUE_LOG {
            log.entries.pop_front();
        }
        log.entries.push_back((seq, Arc::new(peak)));
    }

    /// The remembered enqueue since sequence number `since` with the largest
    /// CB region (the first of equals).
    pub(crate) fn cb_peak_since(&self, since: u64) -> Option<Arc<ProgramPeak>> {
        let log = self
            .shared
            .enqueues
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut best: Option<&Arc<ProgramPeak>> = None;
        for (_, p) in log.entries.iter().filter(|(seq, _)| *seq >= since) {
            if best.is_none_or(|b| p.cb_bytes > b.cb_bytes) {
                best = Some(p);
            }
        }
        best.cloned()
    }

    /// Runs `f` on the backend under the device lock.
    pub(crate) fn with_backend_mut<T>(
        &self,
        f: impl FnOnce(&mut dyn Backend) -> Result<T>,
    ) -> Result<T> {
        self.shared.with(f)
    }

    /// Creates an empty program on the device (TT-Metal's `CreateProgram`):
    /// add circular buffers to it, then [`enqueue`](Self::enqueue) it.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] after [`close`](Self::close);
    /// [`Error::Unsupported`] on one chip's own allocator in a mesh
    /// ([`MeshDevice::chip`](crate::MeshDevice::chip)): programs run on the
    /// mesh.
    pub fn create_program(&self) -> Result<Program> {
        if self.shared.info.mesh_chip.is_some() {
            return Err(Error::Unsupported {
                what: "a program on one chip's own allocator in a mesh",
                instead: "create and enqueue it on the MeshDevice: TT-Metal lays a mesh workload's circular buffers out on the chips it runs on and checks them against the mesh's buffers",
            });
        }
        let shared = &self.shared;
        let id = shared.with(|b| {
            let id = b.create_program()?;
            shared.trace(b, Some(&TraceEvent::Program { id }));
            Ok(id)
        })?;
        Ok(Program::new(self.clone(), id))
    }

    /// Enqueues a program: at its first enqueue its circular buffers are laid
    /// out in their cores' L1, and every enqueue checks them the way TT-Metal
    /// does (no region past a core's L1, none above the lowest L1 buffer).
    /// Guards on the device record the enqueue's L1 per core.
    ///
    /// # Errors
    ///
    /// [`Error::CircularBuffers`] with TT-Metal's message and the explanation
    /// when the CBs do not fit, [`Error::CircularBufferBackingFreed`], or
    /// [`Error::ProgramOnOtherDevice`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{BufferType, CircularBufferConfig, CoreRange, SimDevice, KIB};
    ///
    /// let dev = SimDevice::wormhole_b0();
    /// let mut program = dev.create_program()?;
    /// program.add_circular_buffer(CoreRange::grid(8, 8)?, CircularBufferConfig::new(512 * KIB).page_size(0, 2048))?;
    /// let _l1 = dev.allocate(BufferType::L1, 64 * 900 * KIB, 2048)?; // 900 KiB per core, from the top
    /// let e = dev.enqueue(&mut program).unwrap_err();
    /// assert!(e.to_string().starts_with("Statically allocated circular buffers in program 0 clash with L1 buffers"));
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub fn enqueue(&self, program: &mut Program) -> Result<EnqueueReport> {
        if !self.same_device(program.device()) {
            return Err(Error::ProgramOnOtherDevice {
                program: program.id(),
                device: program.device().name().to_string(),
                other: self.name().to_string(),
            });
        }
        program.run()
    }

    pub(crate) fn with_backend<T>(&self, f: impl FnOnce(&dyn Backend) -> Option<T>) -> Option<T> {
        self.shared.lock().backend.as_deref().and_then(f)
    }

    /// Whether two handles refer to the same device.
    pub fn same_device(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Starts a peak (high-water) mark: from now on the device records, per
    /// pool, the highest per-bank allocated byte count until the mark is
    /// dropped. Marks are independent: any number may be live at once, and
    /// none disturbs another. An allocation costs the same however many are
    /// live, forgotten ones ([`std::mem::forget`]) included; reading a mark
    /// costs one step per mark started after it and still live.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] after [`close`](Self::close).
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{BufferType, SimDevice, MIB};
    ///
    /// let dev = SimDevice::wormhole_b0();
    /// let mark = dev.peak_mark()?;
    /// drop(dev.allocate(BufferType::Dram, MIB, 2048)?);
    /// assert_eq!(mark.read()?.per_bank(BufferType::Dram), 88_064);
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub fn peak_mark(&self) -> Result<PeakMark> {
        let mark = self.shared.with(|b| b.mark_peak())?;
        Ok(PeakMark {
            device: self.clone(),
            mark,
            released: false,
        })
    }
}

/// Per-pool peaks of per-bank allocated bytes, read from a [`PeakMark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolPeaks(Peaks);

impl PoolPeaks {
    /// Highest per-bank allocated bytes of one pool since the mark was taken
    /// (including the value at that moment).
    pub fn per_bank(&self, buffer_type: BufferType) -> u64 {
        self.0.pools[buffer_type.index()]
    }

    /// Highest CB region bytes of one core over the programs enqueued since
    /// the mark was taken (0 when none was).
    pub fn cb_per_core(&self) -> u64 {
        self.0.cb_per_core
    }

    /// Highest L1 of one core over those enqueues: its CB region plus the
    /// L1 and L1_SMALL buffer bytes every bank held at the enqueue.
    pub fn l1_total_per_core(&self) -> u64 {
        self.0.l1_per_core
    }

    /// Least headroom over those enqueues, between the CB region's end and
    /// the lowest L1 buffer (or the end of a core's L1); `None` when no
    /// program with CBs was enqueued.
    pub fn min_headroom(&self) -> Option<u64> {
        (self.0.headroom_gap != 0).then(|| u64::MAX - self.0.headroom_gap)
    }

    /// Whether a program with circular buffers was enqueued since the mark
    /// was taken.
    pub fn saw_programs(&self) -> bool {
        self.0.headroom_gap != 0
    }
}

/// The start of a guarded scope on one device.
pub(crate) struct ScopeStart {
    pub mark: PeakMark,
    pub before: crate::Snapshot,
    /// Allocations with a lower id were live before the scope.
    pub first_id: u64,
    /// Allocations live at the start.
    pub inherited: u64,
    pub timeline: Option<TimelineHold>,
}

/// The end state of a scope: snapshot, peaks, and the timeline when the
/// scope has one.
pub(crate) type ScopeEnd = (crate::Snapshot, PoolPeaks, Option<Timeline>);

/// Keeps a device building one guard's timeline; dropped with its guard.
/// A forgotten guard's timeline stays, in bounded memory.
pub(crate) struct TimelineHold {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for TimelineHold {
    fn drop(&mut self) {
        // Never dropped with the device lock held (guards are dropped by
        // their owners, outside any device call).
        let mut locked = self.shared.lock();
        locked.log.timelines.active.retain(|(id, _)| *id != self.id);
        self.shared.explaining.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps a device logging allocations for the peak composition; dropped
/// with its guard (a forgotten guard keeps logging, in bounded memory).
pub(crate) struct RecordingHold {
    shared: Arc<Shared>,
    start: u64,
}

impl Drop for RecordingHold {
    fn drop(&mut self) {
        self.shared.recording.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A live peak mark on a device; released when dropped.
#[must_use = "a peak mark records nothing once dropped: bind it with `let mark = ...`"]
pub struct PeakMark {
    device: Device,
    mark: u32,
    /// Set once the backend has released the mark (a guard's end does it
    /// together with its last reading, under one lock).
    released: bool,
}

impl fmt::Debug for PeakMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeakMark")
            .field("device", &self.device.name())
            .field("mark", &self.mark)
            .finish()
    }
}

impl PeakMark {
    /// The peaks so far.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] when the device was closed.
    pub fn read(&self) -> Result<PoolPeaks> {
        self.device
            .shared
            .with(|b| b.read_peak(self.mark))
            .map(PoolPeaks)
    }

    /// The device the mark is on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

impl Drop for PeakMark {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Some(backend) = self.device.shared.lock().backend.as_deref_mut() {
            backend.release_peak(self.mark);
        }
    }
}

/// Checks a request against the rules every backend shares, so that bad
/// input gets the same error whatever the device.
fn validate(request: &Request, info: &DeviceInfo) -> Result<()> {
    let Request {
        buffer_type,
        size,
        page_size,
        shards,
        ..
    } = *request;
    if size == 0 {
        return Err(Error::ZeroSize { buffer_type });
    }
    if page_size == 0 {
        return Err(Error::ZeroPageSize { buffer_type, size });
    }
    if size % page_size != 0 {
        return Err(Error::SizeNotPageMultiple { size, page_size });
    }
    let cores = info.compute_cores();
    let dram_banks = info.pools[BufferType::Dram.index()].banks;
    match (buffer_type, shards) {
        (BufferType::L1Small, None) => return Err(Error::L1SmallInterleaved),
        (BufferType::Trace, Some(_)) => {
            return Err(Error::ShardingUnsupported { buffer_type });
        }
        // DRAM shards are DRAM banks: TT-Metal's DRAM shard grid is one row,
        // one core per bank.
        (BufferType::Dram, Some(shards)) if shards == 0 || shards > dram_banks => {
            return Err(Error::DramShards {
                shards,
                banks: dram_banks,
            });
        }
        (BufferType::Dram, _) => {}
        (_, Some(0)) => return Err(Error::ZeroShards { cores }),
        (_, Some(shards)) if shards > cores => {
            return Err(Error::TooManyShards { shards, cores });
        }
        _ => {}
    }
    // TT-Metal's per-bank arithmetic wraps around past 64 bits (a u64::MAX
    // page size becomes a 32 B buffer): such a request is refused here, on
    // every backend, instead of placed.
    let layout = info.pools[buffer_type.index()];
    let banks = shards.unwrap_or(layout.banks);
    let per_bank = layout.block_size(size, page_size, banks);
    if per_bank > u128::from(u64::MAX) {
        return Err(Error::BufferTooLarge {
            buffer_type,
            size,
            page_size,
            banks,
            needed_per_bank: per_bank,
        });
    }
    Ok(())
}

/// The source location of the caller travels through the backends as an
/// opaque tag: the address of its `&'static Location`.
fn location_tag(location: &'static Location<'static>) -> u64 {
    (location as *const Location<'static>).expose_provenance() as u64
}

fn location_from_tag(tag: u64) -> Option<&'static Location<'static>> {
    if tag == 0 {
        return None;
    }
    let ptr = std::ptr::with_exposed_provenance::<Location<'static>>(tag as usize);
    // SAFETY: non-zero tags are only ever produced by `location_tag` from a
    // `&'static Location<'static>` (backends return tags unchanged, and
    // allocations they observe on their own carry tag 0), so the pointer is
    // valid and lives for the rest of the program.
    Some(unsafe { &*ptr })
}

/// A backend's live set with the place each allocation was made.
fn located(live: Vec<(Allocation, u64)>) -> Vec<Allocation> {
    live.into_iter()
        .map(|(mut allocation, tag)| {
            allocation.location = location_from_tag(tag).map(SourceLocation::from);
            allocation
        })
        .collect()
}

/// An out-of-memory error with enough free bytes in the pool gets its
/// free blocks and the allocations that split them, read under the same
/// lock as the failed allocation (so they are the state it saw).
fn explain_oom(mut e: Error, b: &mut dyn Backend) -> Error {
    if let Error::OutOfMemory {
        buffer_type,
        needed_per_bank,
        free_per_bank,
        largest_free_block_per_bank,
        fragmentation,
        ..
    } = &mut e
        && *free_per_bank >= *needed_per_bank
        && *largest_free_block_per_bank < *needed_per_bank
        && fragmentation.is_none()
    {
        // Explaining is best effort: the error stays the allocation's.
        if let (Ok(snapshot), Ok(live)) = (b.snapshot(), b.live()) {
            *fragmentation =
                explain_fragmentation(snapshot.pool(*buffer_type), &located(live)).map(Box::new);
        }
    }
    e
}

/// A refusal below the interleaved L1 limit left a block allocated (as
/// TT-Metal's allocator leaves it): observers and the allocation log see it
/// as the allocation it is. Called with the backend lock held.
fn announce_orphan(shared: &Shared, log: &mut AllocLog, request: &Request, e: &Error) {
    let Error::BelowAddressLimit {
        address,
        size_per_bank,
        orphan_id,
        ..
    } = *e
    else {
        return;
    };
    // A block kept on a chip's own allocator: mesh buffers are checked against it from now on.
    if let Some(mesh) = shared.mesh.get().and_then(Weak::upgrade) {
        mesh.chip_buffers.fetch_add(1, Ordering::Relaxed);
    }
    let label: Arc<str> = Arc::from(orphan_label(request.label.as_deref()).as_str());
    let num_banks = shared.info.pools[request.buffer_type.index()].banks;
    shared.notify(DeviceEvent::Alloc {
        label: Some(&label),
        id: orphan_id,
        buffer_type: request.buffer_type,
        address,
        size: request.size,
        size_per_bank,
        num_banks,
    });
    shared.record(log, true, request.buffer_type, size_per_bank, || LogEntry {
        alloc: true,
        buffer_type: request.buffer_type,
        id: orphan_id,
        address,
        size: request.size,
        size_per_bank,
        location: location_from_tag(request.tag),
        label: Some(Arc::clone(&label)),
    });
}

/// Options for one buffer; finish with [`allocate`](Self::allocate).
#[must_use = "a buffer request does nothing until .allocate() is called"]
pub struct BufferBuilder<'d> {
    device: &'d Device,
    request: Request,
}

impl BufferBuilder<'_> {
    /// Page size in bytes (default: the whole size).
    pub fn page_size(mut self, bytes: u64) -> Self {
        self.request.page_size = bytes;
        self
    }

    /// Shards the buffer over the first `shards` cores of the compute grid
    /// (L1, L1_SMALL) or the first `shards` DRAM banks (DRAM); see
    /// [`Device::allocate_sharded`].
    pub fn sharded(mut self, shards: u32) -> Self {
        self.request.shards = Some(shards);
        self
    }

    /// Overrides the pool's default placement direction.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.request.direction = direction;
        self
    }

    /// Places the buffer at a fixed address (simulated device only). The
    /// range must be free, and the address must lie on the pool
    /// allocator's grid, a whole number of granules (the DRAM alignment:
    /// 32 B on Wormhole, 64 B on Blackhole) above the pool's base, as every
    /// address TT-Metal's allocator hands out does; otherwise allocating
    /// gives [`Error::AddressUnaligned`] naming the nearest grid addresses.
    pub fn at_address(mut self, address: u64) -> Self {
        self.request.address = Some(address);
        self
    }

    /// A label shown in reports and usable in allow-lists.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.request.label = Some(label.into());
        self
    }

    /// Allocates the buffer, recording the caller's location.
    ///
    /// # Errors
    ///
    /// See [`Device::allocate`] and [`Device::allocate_sharded`].
    #[track_caller]
    pub fn allocate(self) -> Result<Buffer> {
        self.allocate_tagged(location_tag(Location::caller()))
    }

    /// Allocates the buffer without a source location: reports name it by
    /// its label and id (a replayed trace's buffers, whose place is a line
    /// of the trace, not of Rust code).
    pub(crate) fn allocate_unlocated(self) -> Result<Buffer> {
        self.allocate_tagged(0)
    }

    fn allocate_tagged(mut self, tag: u64) -> Result<Buffer> {
        self.request.tag = tag;
        validate(&self.request, self.device.info())?;
        let shared = &self.device.shared;
        let request = &self.request;
        let label: Option<Arc<str>> = request.label.as_deref().map(Arc::from);
        let placed = shared.with_log(|b, log| {
            let placed = match b.allocate(request) {
                Ok(placed) => placed,
                Err(e) => {
                    if matches!(
                        e,
                        Error::OutOfMemory { .. }
                            | Error::BelowAddressLimit { .. }
                            | Error::BufferTooLarge { .. }
                    ) {
                        let event = TraceEvent::Alloc {
                            request,
                            placed: None,
                        };
                        shared.trace(b, Some(&event));
                    }
                    announce_orphan(shared, log, request, &e);
                    return Err(explain_oom(e, b));
                }
            };
            shared.notify(DeviceEvent::Alloc {
                label: label.as_deref(),
                id: placed.id,
                buffer_type: request.buffer_type,
                address: placed.address,
                size: request.size,
                size_per_bank: placed.per_bank_size,
                num_banks: placed.num_banks,
            });
            shared.record(log, true, request.buffer_type, placed.per_bank_size, || {
                LogEntry {
                    alloc: true,
                    buffer_type: request.buffer_type,
                    id: placed.id,
                    address: placed.address,
                    size: request.size,
                    size_per_bank: placed.per_bank_size,
                    location: location_from_tag(request.tag),
                    label: label.clone(),
                }
            });
            let event = TraceEvent::Alloc {
                request,
                placed: Some(&placed),
            };
            shared.trace(b, Some(&event));
            Ok(placed)
        })?;
        let buffer = Buffer {
            shared: Arc::clone(&self.device.shared),
            id: placed.id,
            slot: placed.slot,
            buffer_type: self.request.buffer_type,
            address: placed.address,
            size: self.request.size,
            page_size: self.request.page_size,
            size_per_bank: placed.per_bank_size,
            num_banks: placed.num_banks,
            shards: self.request.shards,
            label,
            tag: self.request.tag,
        };
        if shared.mesh.get().is_some() || shared.chip_buffers.load(Ordering::Relaxed) > 0 {
            // Refused: the placement is undone (the free reaches observers
            // and recordings like any other).
            self.device.check_mesh_overlap(&buffer)?;
        }
        Ok(buffer)
    }
}

/// Whether two pools share addresses: L1_SMALL is the top of every core's
/// L1, TRACE the top of every DRAM bank.
fn same_address_space(a: BufferType, b: BufferType) -> bool {
    let dram = |t: BufferType| matches!(t, BufferType::Dram | BufferType::Trace);
    dram(a) == dram(b)
}

/// A device buffer; freed when dropped. Freeing twice is impossible: the
/// explicit [`free`](Self::free) consumes the handle. Leak one on purpose
/// with [`std::mem::forget`].
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, SimDevice, KIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let b = dev.allocate_sharded(BufferType::L1, 64 * KIB, 2048, 8)?;
/// assert_eq!((b.shards(), b.size_per_bank(), b.num_banks()), (Some(8), 8192, 64));
/// b.free()?; // or drop it
/// assert_eq!(dev.live_count()?, 0);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
pub struct Buffer {
    shared: Arc<Shared>,
    id: u64,
    slot: u32,
    buffer_type: BufferType,
    address: u64,
    size: u64,
    page_size: u64,
    size_per_bank: u64,
    num_banks: u32,
    shards: Option<u32>,
    /// Label and location tag, for the free's entry in the allocation log.
    label: Option<Arc<str>>,
    tag: u64,
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("id", &self.id)
            .field("buffer_type", &self.buffer_type)
            .field("address", &format_args!("{:#x}", self.address))
            .field("size", &self.size)
            .field("size_per_bank", &self.size_per_bank)
            .field("num_banks", &self.num_banks)
            .field("shards", &self.shards)
            .finish()
    }
}

impl Buffer {
    /// The backend's handle of the allocation.
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// The allocation's id on its device.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The pool.
    pub fn buffer_type(&self) -> BufferType {
        self.buffer_type
    }

    /// Address, valid in every bank of the pool.
    pub fn address(&self) -> u64 {
        self.address
    }

    /// Requested size in bytes: the buffer's total over all its banks.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Bytes reserved in every bank of the pool (after alignment).
    pub fn size_per_bank(&self) -> u64 {
        self.size_per_bank
    }

    /// Banks the reservation is made in.
    pub fn num_banks(&self) -> u32 {
        self.num_banks
    }

    /// Cores (L1, L1_SMALL) or DRAM banks (DRAM) holding data, for a
    /// sharded buffer.
    pub fn shards(&self) -> Option<u32> {
        self.shards
    }

    /// The buffer as an allocation, for the allocation log.
    fn logged(&self, id: u64) -> LogEntry {
        LogEntry {
            alloc: false,
            buffer_type: self.buffer_type,
            id,
            address: self.address,
            size: self.size,
            size_per_bank: self.size_per_bank,
            location: location_from_tag(self.tag),
            label: self.label.clone(),
        }
    }

    /// Frees the buffer now.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] when the device was closed first (its memory
    /// was released with it).
    pub fn free(mut self) -> Result<()> {
        // Id 0 is never allocated: it tells Drop there is nothing left to do.
        let id = std::mem::take(&mut self.id);
        let (shared, slot, buffer_type) = (&self.shared, self.slot, self.buffer_type);
        shared.with_log(|b, log| {
            if b.deallocate(id, slot)? {
                shared.chip_buffer_freed();
                shared.notify(DeviceEvent::Free { id, buffer_type });
                shared.record(log, false, buffer_type, self.size_per_bank, || {
                    self.logged(id)
                });
                shared.trace(b, Some(&TraceEvent::Free { id }));
            }
            Ok(())
        })
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.id == 0 {
            return;
        }
        let mut locked = self.shared.lock();
        let Locked { backend, log } = &mut *locked;
        // A failure here cannot be reported from drop; the allocation stays
        // visible in the live set and in leak reports.
        if let Some(backend) = backend.as_deref_mut()
            && backend.deallocate(self.id, self.slot).unwrap_or(false)
        {
            self.shared.chip_buffer_freed();
            self.shared.notify(DeviceEvent::Free {
                id: self.id,
                buffer_type: self.buffer_type,
            });
            self.shared
                .record(log, false, self.buffer_type, self.size_per_bank, || {
                    self.logged(self.id)
                });
            self.shared
                .trace(backend, Some(&TraceEvent::Free { id: self.id }));
        }
    }
}

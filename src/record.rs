//! Recording what a device sees as an allocation trace: [`Recording`]
//! (started by [`Device::record`]) and the recorder the device hands its
//! events to, under its lock and in its order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::cores::CoreRangeSet;
use crate::device::{Device, DeviceKind, EnqueueSeen, PoolLayout, TraceEvent, Tracer};
use crate::error::{Error, Result};
use crate::program::CircularBufferConfig;
use crate::source::sim::{Preset, SimDevice};
use crate::source::{Backend, Direction, Foreign};
use crate::trace::{Expect, FIRST_OP_LINE, Trace, TraceOp};
use crate::types::{Allocation, BufferType, Snapshot};

/// A recording of a device's activity as a [`Trace`], started by
/// [`Device::record`]: every allocation (with the address it got, or its
/// refusal as out of memory), free, program, circular buffer, enqueue (with
/// its CBs' addresses, or the check that refused it) and program
/// destruction becomes a [`TraceOp`], in the order the device applied them,
/// until [`finish`](Self::finish) hands back the trace. Dropping it stops
/// the recording and discards the trace.
///
/// The trace opens the same geometry on a replay: its `device` line is the
/// preset whose layout the device has, with the device's `l1_small` and
/// `trace` carve-outs. Buffers live when the recording starts come first,
/// pinned where they are (`fixed=`); a program created before it appears at
/// its first circular buffer, enqueue or destruction, with the CBs it had.
/// Names are the recording's own (`b1`, `b2`, ... for buffers, `p1`, ...
/// for programs), labels are kept, and every allocation and enqueue carries
/// what the device did (`expect=`), so that [`Trace::replay`] on the
/// simulated device checks that it reproduces the recording. Requests
/// refused before the device saw them (size 0, a partial page, ...) are not
/// recorded. The page size of a circular buffer is its first index's.
///
/// On a TT-Metal device the recording also receives the buffers TT-Metal
/// allocates and frees for other code (ops, the caller's own C++), from the
/// graph processor that observes them, in the order they happened; they
/// enter the trace at the next operation made through the crate, or at
/// [`finish`](Self::finish). They have no label, and TT-Metal does not say
/// their direction or their shards: the direction is the pool's default
/// when the default puts the buffer where TT-Metal did, else the other one
/// when that does, else the buffer is pinned (`fixed=`); the shard count is
/// the smallest that gives the bytes per bank TT-Metal reserved. A buffer
/// that no equal height sharding describes (padded block sharding, DRAM
/// sharding) is recorded with the same bytes per bank as an interleaved
/// buffer (sharded over one core in L1_SMALL) of whole pages per bank: its
/// size in the trace is then not TT-Metal's.
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, CircularBufferConfig, CoreRange, SimDevice, KIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let rec = dev.record()?;
/// let mut program = dev.create_program()?;
/// program.add_circular_buffer(CoreRange::grid(8, 8)?, CircularBufferConfig::new(64 * KIB).page_size(0, 2048))?;
/// let out = dev.allocate(BufferType::L1, 64 * 64 * KIB, 2048)?;
/// dev.enqueue(&mut program)?;
/// drop((program, out));
/// let trace = rec.finish()?;
/// assert_eq!(
///     trace.to_text(),
///     "device wh\nl1_small 0\ntrace 0\n\
///      program p1\n\
///      cb p1 0,0-7,7 65536 index=0 page=2048\n\
///      alloc b1 L1 4194304 2048 def expect=0x15e000\n\
///      enqueue p1 expect=0x19d60\n\
///      destroy p1\n\
///      free b1\n"
/// );
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[must_use = "a recording stops when dropped: bind it with `let rec = dev.record()?` and end it with `rec.finish()`"]
pub struct Recording {
    device: Device,
    token: u64,
    recorder: Arc<Mutex<Recorder>>,
    attached: bool,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("device", &self.device.name())
            .field("operations", &lock(&self.recorder).len())
            .finish()
    }
}

impl Recording {
    /// Starts recording `device` (see [`Device::record`]).
    pub(crate) fn start(device: &Device) -> Result<Recording> {
        let (token, recorder) = device.attach_recorder(|backend| Recorder::new(device, backend))?;
        Ok(Recording {
            device: device.clone(),
            token,
            recorder,
            attached: true,
        })
    }

    /// The device being recorded.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Operations recorded so far (allocations TT-Metal made for other code
    /// since the last operation through the crate not counted yet).
    pub fn len(&self) -> usize {
        lock(&self.recorder).len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops recording and returns the trace. Works on a device closed
    /// meanwhile: the trace then ends where the device did.
    ///
    /// # Errors
    ///
    /// [`Error::Recording`] when an event could not be recorded (the
    /// foreign journal of a TT-Metal device could not be read, a circular
    /// buffer backed by a buffer the recording never saw).
    pub fn finish(mut self) -> Result<Trace> {
        self.detach();
        let mut recorder = lock(&self.recorder);
        if let Some(reason) = recorder.error.take() {
            return Err(Error::Recording {
                device: self.device.name().to_string(),
                reason,
            });
        }
        Ok(recorder.trace())
    }

    /// Stops recording and writes the trace to `path` (see
    /// [`Trace::to_text`]); returns it too.
    ///
    /// # Errors
    ///
    /// As [`finish`](Self::finish), and [`Error::Io`] when the file cannot
    /// be written.
    pub fn write(self, path: impl AsRef<Path>) -> Result<Trace> {
        let trace = self.finish()?;
        trace.write_to(path)?;
        Ok(trace)
    }

    fn detach(&mut self) {
        if std::mem::take(&mut self.attached) {
            self.device.detach_recorder(self.token);
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.detach();
    }
}

impl Device {
    /// Starts recording everything the device does as an allocation
    /// [`Trace`](crate::Trace): allocations (with the address each got, or
    /// their refusal as out of memory), frees, programs, circular buffers,
    /// enqueues (with their CBs' addresses, or the check that refused them)
    /// and destroyed programs, in the order the device applied them; on a
    /// TT-Metal device also the buffers TT-Metal made for other code. The
    /// trace names the device model and carve-outs, and holds the buffers
    /// live now, pinned where they are. [`Trace::replay`](crate::Trace::replay)
    /// on the simulated device checks that it reproduces every address (see
    /// [`Recording`] for the details). Any number of recordings may run at
    /// once; one costs an allocation or a free about 0.2 us.
    ///
    /// # Errors
    ///
    /// [`Error::Recording`] when a trace cannot describe the device: a
    /// geometry that is none of the presets (a custom
    /// [`SimDeviceBuilder`](crate::SimDeviceBuilder) one), or allocations in
    /// its statistics that no buffer it observed accounts for (a TT-Metal
    /// device adopted after buffers were made on it); [`Error::DeviceClosed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{BufferType, SimDevice, MIB};
    ///
    /// let dev = SimDevice::wormhole_b0();
    /// let rec = dev.record()?;
    /// let w = dev.buffer(BufferType::Dram, MIB).page_size(2048).label("weights").allocate()?;
    /// drop(w);
    /// let trace = rec.finish()?;
    /// assert_eq!(
    ///     trace.to_text(),
    ///     "device wh\nl1_small 0\ntrace 0\n\
    ///      alloc b1 DRAM 1048576 2048 def expect=0x100040 label=weights\nfree b1\n"
    /// );
    /// trace.replay(&trace.open_sim()?, |_| {})?; // the same addresses, checked
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub fn record(&self) -> Result<Recording> {
        Recording::start(self)
    }
}

fn lock(recorder: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    // A recorder is only written through plain pushes: a panic cannot leave
    // it half updated.
    recorder.lock().unwrap_or_else(|e| e.into_inner())
}

/// A live buffer as the recording knows it.
struct Known {
    /// Its number in the trace (`b<n>`).
    number: u64,
    buffer_type: BufferType,
    address: u64,
}

/// An operation as the recorder keeps it, compact: buffers and programs by
/// number, named `b<n>` and `p<n>` when the trace is made.
enum Rec {
    Alloc {
        buffer: u64,
        placement: Placement,
        /// Where it was placed; `None`: refused as out of memory.
        at: Option<u64>,
    },
    Free {
        buffer: u64,
    },
    Program {
        program: u64,
    },
    Cb {
        program: u64,
        cores: CoreRangeSet,
        size: u64,
        indices: Vec<u8>,
        page_size: u64,
        /// The backing buffer's number and the offset into it.
        backed: Option<(u64, u64)>,
    },
    Enqueue {
        program: u64,
        expect: Option<Expect>,
    },
    Destroy {
        program: u64,
    },
}

impl Rec {
    fn to_op(&self) -> TraceOp {
        let buffer_name = |n: &u64| format!("b{n}");
        let program_name = |n: &u64| format!("p{n}");
        match self {
            Rec::Alloc {
                buffer,
                placement: p,
                at,
            } => TraceOp::Alloc {
                id: buffer_name(buffer),
                buffer_type: p.buffer_type,
                size: p.size,
                page_size: p.page_size,
                direction: p.direction,
                shards: p.shards,
                label: p.label.clone(),
                fixed: p.fixed,
                expect: Some(at.map_or(Expect::OutOfMemory, Expect::At)),
            },
            Rec::Free { buffer } => TraceOp::Free {
                id: buffer_name(buffer),
            },
            Rec::Program { program } => TraceOp::Program {
                id: program_name(program),
            },
            Rec::Cb {
                program,
                cores,
                size,
                indices,
                page_size,
                backed,
            } => TraceOp::Cb {
                program: program_name(program),
                cores: cores.clone(),
                size: *size,
                indices: indices.clone(),
                page_size: *page_size,
                backed: backed.map(|(b, offset)| (buffer_name(&b), offset)),
            },
            Rec::Enqueue { program, expect } => TraceOp::Enqueue {
                program: program_name(program),
                expect: expect.clone(),
            },
            Rec::Destroy { program } => TraceOp::Destroy {
                program: program_name(program),
            },
        }
    }
}

/// The trace being recorded, and what it needs to name and place things.
pub(crate) struct Recorder {
    preset: Preset,
    l1_small_size: u64,
    trace_region_size: u64,
    ops: Vec<Rec>,
    /// Live buffers, by the device's id of the allocation.
    buffers: HashMap<u64, Known>,
    /// Programs, by the device's id: their number in the trace.
    programs: HashMap<u64, u64>,
    next_buffer: u64,
    next_program: u64,
    layouts: [PoolLayout; 4],
    cores: u32,
    /// Every live block, on a device where other code allocates: where
    /// the pool's default would put the next buffer.
    blocks: Option<Blocks>,
    /// The first event that could not be recorded.
    pub(crate) error: Option<String>,
}

impl Recorder {
    /// A recorder for `device` (locked: `backend` is its backend), holding
    /// the buffers live now as pinned allocations.
    fn new(device: &Device, backend: &mut dyn Backend) -> Result<Recorder> {
        let info = device.info();
        let snapshot = backend.snapshot()?;
        let refuse = |reason: String| Error::Recording {
            device: info.name.clone(),
            reason,
        };
        // The carve-outs the device was opened with; a device adopted from
        // the caller does not know them, and its layout tells them (rounded
        // as the allocator rounds them, which gives the same layout).
        let (dram, l1_small, trace) = (
            snapshot.pool(BufferType::Dram),
            snapshot.pool(BufferType::L1Small),
            snapshot.pool(BufferType::Trace),
        );
        let from_layout = (
            l1_small.size_per_bank,
            trace
                .size_per_bank
                .saturating_mul(u64::from(dram.num_banks)),
        );
        let (preset, l1_small_size, trace_region_size) = [
            (info.l1_small_size, info.trace_region_size),
            from_layout,
        ]
        .into_iter()
        .find_map(|(l1_small, trace)| {
            matching_preset(&snapshot, info.compute_grid, l1_small, trace)
                .map(|preset| (preset, l1_small, trace))
        })
        .ok_or_else(|| {
            refuse(format!(
                "its geometry is none of the presets a trace can name (wh, n300, bh) with l1_small {} and trace {}: record a device opened from a preset",
                from_layout.0, from_layout.1
            ))
        })?;
        let live: Vec<Allocation> = backend.live()?.into_iter().map(|(a, _)| a).collect();
        for pool in snapshot.iter() {
            let seen: u64 = live
                .iter()
                .filter(|a| a.buffer_type == pool.buffer_type)
                .map(|a| a.size_per_bank)
                .sum();
            if seen != pool.allocated_per_bank {
                return Err(refuse(format!(
                    "{} has {} B per bank allocated, of which its live buffers account for {} B (buffers made before the device was observed): a trace of it would not replay; record a device from its opening",
                    pool.buffer_type, pool.allocated_per_bank, seen
                )));
            }
        }
        let blocks = (info.kind == DeviceKind::TtMetal).then(|| Blocks::new(&snapshot));
        let mut recorder = Recorder {
            preset,
            l1_small_size,
            trace_region_size,
            ops: Vec::new(),
            buffers: HashMap::new(),
            programs: HashMap::new(),
            next_buffer: 1,
            next_program: 1,
            layouts: info.pools,
            cores: info.compute_cores(),
            blocks,
            error: None,
        };
        for a in live {
            let (size, shards) = match a.shards {
                Some(shards) => (a.size, Some(shards)),
                None => recorder.shape(a.buffer_type, a.size, a.page_size, a.size_per_bank),
            };
            let placed = Placement {
                buffer_type: a.buffer_type,
                size,
                page_size: a.page_size,
                direction: Direction::Default,
                shards,
                label: a.label.filter(|l| !l.is_empty()),
                fixed: Some(a.address),
            };
            recorder.push_placed(a.id, placed, a.address, a.size_per_bank);
        }
        Ok(recorder)
    }

    /// Operations recorded so far.
    fn len(&self) -> usize {
        self.ops.len()
    }

    /// The trace so far, its line numbers those of its text.
    fn trace(&self) -> Trace {
        Trace {
            preset: self.preset,
            l1_small_size: self.l1_small_size,
            trace_region_size: self.trace_region_size,
            ops: self
                .ops
                .iter()
                .enumerate()
                .map(|(i, op)| (FIRST_OP_LINE + i, op.to_op()))
                .collect(),
        }
    }
}

impl Tracer for Recorder {
    fn apply(&mut self, event: &TraceEvent<'_>) {
        match *event {
            TraceEvent::Alloc { request, placed } => {
                let placement = Placement {
                    buffer_type: request.buffer_type,
                    size: request.size,
                    page_size: request.page_size,
                    direction: request.direction,
                    shards: request.shards,
                    label: request.label.clone().filter(|l| !l.is_empty()),
                    fixed: request.address,
                };
                match placed {
                    Some(p) => self.push_placed(p.id, placement, p.address, p.per_bank_size),
                    None => {
                        // Refused: a number of its own, never live.
                        let buffer = self.next_buffer;
                        self.next_buffer += 1;
                        self.ops.push(placement.into_rec(buffer, None));
                    }
                }
            }
            TraceEvent::Free { id } => self.push_free(id),
            TraceEvent::Program { id } => {
                let program = self.number_program(id);
                self.ops.push(Rec::Program { program });
            }
            TraceEvent::Cb { program, cbs } => match self.programs.get(&program) {
                Some(&number) => {
                    if let Some((cores, config)) = cbs.last() {
                        let op = self.cb(number, cores, config);
                        self.ops.push(op);
                    }
                }
                None => self.introduce(program, cbs),
            },
            TraceEvent::Enqueue {
                program,
                cbs,
                ref seen,
            } => {
                if !self.programs.contains_key(&program) {
                    self.introduce(program, cbs);
                }
                let program = self.programs[&program];
                let expect = seen.as_ref().map(|seen| match seen {
                    EnqueueSeen::Fit(addresses) => Expect::CircularBuffers(addresses.clone()),
                    EnqueueSeen::Clash => Expect::Clash,
                    EnqueueSeen::BeyondL1 => Expect::BeyondL1,
                });
                self.ops.push(Rec::Enqueue { program, expect });
            }
            TraceEvent::Destroy { program } => {
                // A program the recording never saw changed nothing it holds.
                if let Some(program) = self.programs.remove(&program) {
                    self.ops.push(Rec::Destroy { program });
                }
            }
        }
    }

    fn foreign(&mut self, f: &Foreign) {
        if !f.alloc {
            self.push_free(f.id);
            return;
        }
        if self.buffers.contains_key(&f.id) {
            return; // live when the recording started: already recorded
        }
        let (size, shards) = self.shape(f.buffer_type, f.size, f.page_size, f.per_bank_size);
        let (direction, fixed) = self.placement(f.buffer_type, f.per_bank_size, f.address);
        let placement = Placement {
            buffer_type: f.buffer_type,
            size,
            page_size: f.page_size,
            direction,
            shards,
            label: None,
            fixed,
        };
        self.push_placed(f.id, placement, f.address, f.per_bank_size);
    }

    fn fail(&mut self, reason: String) {
        self.error.get_or_insert(reason);
    }
}

impl Recorder {
    fn number_program(&mut self, id: u64) -> u64 {
        let number = self.next_program;
        self.next_program += 1;
        self.programs.insert(id, number);
        number
    }

    /// Records an allocation of device id `id` placed at `address`.
    fn push_placed(&mut self, id: u64, placement: Placement, address: u64, per_bank: u64) {
        let number = self.next_buffer;
        self.next_buffer += 1;
        if let Some(blocks) = &mut self.blocks {
            blocks.insert(placement.buffer_type, address, per_bank);
        }
        self.buffers.insert(
            id,
            Known {
                number,
                buffer_type: placement.buffer_type,
                address,
            },
        );
        self.ops.push(placement.into_rec(number, Some(address)));
    }

    fn push_free(&mut self, id: u64) {
        if let Some(known) = self.buffers.remove(&id) {
            if let Some(blocks) = &mut self.blocks {
                blocks.remove(known.buffer_type, known.address);
            }
            self.ops.push(Rec::Free {
                buffer: known.number,
            });
        }
    }

    /// A program created before the recording started: its creation and
    /// its circular buffers so far.
    fn introduce(&mut self, program: u64, cbs: &[(CoreRangeSet, CircularBufferConfig)]) {
        let number = self.number_program(program);
        self.ops.push(Rec::Program { program: number });
        for (cores, config) in cbs {
            let op = self.cb(number, cores, config);
            self.ops.push(op);
        }
    }

    fn cb(&mut self, program: u64, cores: &CoreRangeSet, config: &CircularBufferConfig) -> Rec {
        let backed = config
            .backing()
            .map(|b| match self.buffers.get(&b.buffer_id) {
                Some(known) => (known.number, b.offset),
                None => {
                    self.fail(format!(
                        "a circular buffer of program p{program} is backed by buffer {}, which the recording never saw",
                        b.buffer_id
                    ));
                    (0, b.offset)
                }
            });
        Rec::Cb {
            program,
            cores: cores.clone(),
            size: config.total_size(),
            indices: config.indices().collect(),
            // The page size plays no part in the layout: the first index's
            // stands for all.
            page_size: config.pages().first().map_or(config.total_size(), |p| p.1),
            backed,
        }
    }

    /// The size and shard count that give a buffer of `size` bytes in pages
    /// of `page_size` the per-bank reservation `per_bank` on the simulated
    /// device (see the module documentation).
    fn shape(
        &self,
        buffer_type: BufferType,
        size: u64,
        page_size: u64,
        per_bank: u64,
    ) -> (u64, Option<u32>) {
        let layout = self.layouts[buffer_type.index()];
        let fits = |size: u64, banks: u32| {
            layout.block_size(size, page_size, banks) == u128::from(per_bank)
        };
        let sharded = matches!(buffer_type, BufferType::L1 | BufferType::L1Small);
        if page_size == 0 || !size.is_multiple_of(page_size) {
            return (size, None); // the replay refuses it, as the device should have
        }
        if buffer_type != BufferType::L1Small && fits(size, layout.banks) {
            return (size, None);
        }
        if sharded && let Some(shards) = (1..=self.cores).find(|&s| fits(size, s)) {
            return (size, Some(shards));
        }
        // No equal height sharding: whole pages per bank, as many as fill
        // the reservation.
        let alignment = layout.alignment.max(1);
        let aligned = page_size.div_ceil(alignment) * alignment;
        let banks = if buffer_type == BufferType::L1Small {
            1
        } else {
            layout.banks
        };
        let most = per_bank / aligned.max(1);
        for pages in (most.saturating_sub(4)..=most).rev().filter(|&p| p > 0) {
            let Some(total) = pages
                .checked_mul(u64::from(banks))
                .and_then(|p| p.checked_mul(page_size))
            else {
                continue;
            };
            if fits(total, banks) {
                let shards = (buffer_type == BufferType::L1Small).then_some(1);
                return (total, shards);
            }
        }
        (size, None)
    }

    /// The direction (and, when neither direction explains the address, a
    /// fixed address) that places a buffer of `per_bank` bytes where other
    /// code's allocation landed.
    fn placement(
        &self,
        buffer_type: BufferType,
        per_bank: u64,
        address: u64,
    ) -> (Direction, Option<u64>) {
        let Some(blocks) = &self.blocks else {
            return (Direction::Default, None);
        };
        let default_up = matches!(buffer_type, BufferType::Dram | BufferType::Trace);
        if blocks.first_fit(buffer_type, per_bank, default_up) == Some(address) {
            return (Direction::Default, None);
        }
        if blocks.first_fit(buffer_type, per_bank, !default_up) == Some(address) {
            let other = if default_up {
                Direction::TopDown
            } else {
                Direction::BottomUp
            };
            return (other, None);
        }
        (Direction::Default, Some(address))
    }
}

/// What an allocation asked for, as the trace says it.
struct Placement {
    buffer_type: BufferType,
    size: u64,
    page_size: u64,
    direction: Direction,
    shards: Option<u32>,
    label: Option<String>,
    fixed: Option<u64>,
}

impl Placement {
    fn into_rec(self, buffer: u64, at: Option<u64>) -> Rec {
        Rec::Alloc {
            buffer,
            placement: self,
            at,
        }
    }
}

/// The preset whose layout, with these carve-outs, is the one `snapshot`
/// shows (banks, bases, alignments and sizes of every pool) on a grid of
/// `grid` cores.
fn matching_preset(
    snapshot: &Snapshot,
    grid: (u32, u32),
    l1_small: u64,
    trace: u64,
) -> Option<Preset> {
    let layout = |s: &Snapshot| {
        s.iter()
            .map(|p| (p.num_banks, p.base_address, p.alignment, p.size_per_bank))
            .collect::<Vec<_>>()
    };
    let wanted = layout(snapshot);
    Preset::ALL.into_iter().find(|&preset| {
        preset.geometry().grid == grid
            && SimDevice::builder(preset)
                .l1_small_size(l1_small)
                .trace_region_size(trace)
                .build()
                .and_then(|dev| dev.snapshot())
                .is_ok_and(|s| layout(&s) == wanted)
    })
}

/// Every live block of every pool: where an address-ordered first fit
/// places the next buffer.
struct Blocks {
    /// Each pool's first address and one past its last.
    bounds: [(u64, u64); 4],
    /// Each pool's live blocks: address to end.
    live: [BTreeMap<u64, u64>; 4],
}

impl Blocks {
    fn new(snapshot: &Snapshot) -> Blocks {
        Blocks {
            bounds: BufferType::ALL.map(|t| {
                let p = snapshot.pool(t);
                (
                    p.base_address,
                    p.base_address.saturating_add(p.size_per_bank),
                )
            }),
            live: Default::default(),
        }
    }

    fn insert(&mut self, pool: BufferType, address: u64, size: u64) {
        self.live[pool.index()].insert(address, address.saturating_add(size));
    }

    fn remove(&mut self, pool: BufferType, address: u64) {
        self.live[pool.index()].remove(&address);
    }

    /// Where `size` bytes go: the bottom of the lowest free block that holds
    /// them, or the top of the highest.
    fn first_fit(&self, pool: BufferType, size: u64, bottom_up: bool) -> Option<u64> {
        let (base, end) = self.bounds[pool.index()];
        let live = &self.live[pool.index()];
        if bottom_up {
            let mut cursor = base;
            for (&a, &e) in live {
                if a >= cursor && a - cursor >= size {
                    return Some(cursor);
                }
                cursor = cursor.max(e);
            }
            (end >= cursor && end - cursor >= size).then_some(cursor)
        } else {
            let mut cursor = end;
            for (&a, &e) in live.iter().rev() {
                if cursor >= e && cursor - e >= size {
                    return Some(cursor - size);
                }
                cursor = cursor.min(a);
            }
            (cursor >= base && cursor - base >= size).then(|| cursor - size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(dev: &Device) -> Recorder {
        dev.with_backend_mut(|b| Recorder::new(dev, b)).unwrap()
    }

    #[test]
    fn other_codes_buffers_get_a_size_and_shards_with_their_bytes_per_bank() {
        let dev = crate::SimDevice::wormhole_b0();
        let r = recorder(&dev);
        // Interleaved: as reported.
        assert_eq!(
            r.shape(BufferType::Dram, 1 << 20, 2048, 88_064),
            (1 << 20, None)
        );
        // 64 pages, 2 per bank: the fewest shards that give it, 32.
        assert_eq!(
            r.shape(BufferType::L1, 64 * 2048, 2048, 4096),
            (64 * 2048, Some(32))
        );
        assert_eq!(
            r.shape(BufferType::L1Small, 64 * 2048, 2048, 4096),
            (64 * 2048, Some(32))
        );
        // 9 pages in shards of 4 (padded): no equal sharding has 4 per bank; 4 pages in each
        // of the 64 banks, interleaved, do.
        assert_eq!(
            r.shape(BufferType::L1, 9 * 2048, 2048, 8192),
            (4 * 64 * 2048, None)
        );
        assert_eq!(
            r.shape(BufferType::L1Small, 9 * 2048, 2048, 8192),
            (4 * 2048, Some(1))
        );
        // DRAM sharding: 3 pages per bank of 12.
        assert_eq!(
            r.shape(BufferType::Dram, 2048, 2048, 3 * 2048),
            (3 * 12 * 2048, None)
        );
        // A partial page: as reported, for the replay to refuse.
        assert_eq!(r.shape(BufferType::Dram, 3000, 2048, 2048), (3000, None));
    }

    fn blocks() -> Blocks {
        let mut b = Blocks {
            bounds: [(100, 200); 4],
            live: Default::default(),
        };
        b.insert(BufferType::Dram, 110, 10); // 110..120
        b.insert(BufferType::Dram, 150, 30); // 150..180
        b
    }

    #[test]
    fn first_fit_takes_the_lowest_or_highest_block_that_holds_the_size() {
        let b = blocks();
        assert_eq!(b.first_fit(BufferType::Dram, 10, true), Some(100));
        assert_eq!(b.first_fit(BufferType::Dram, 11, true), Some(120));
        assert_eq!(b.first_fit(BufferType::Dram, 30, true), Some(120));
        assert_eq!(b.first_fit(BufferType::Dram, 31, true), None);
        assert_eq!(b.first_fit(BufferType::Dram, 20, false), Some(180));
        assert_eq!(b.first_fit(BufferType::Dram, 21, false), Some(129));
        assert_eq!(b.first_fit(BufferType::Dram, 10, false), Some(190));
        assert_eq!(b.first_fit(BufferType::L1, 100, false), Some(100));
        assert_eq!(b.first_fit(BufferType::L1, 101, true), None);
    }
}

//! Programs and their circular buffers (CBs): most of a kernel's L1 on a core.
//!
//! TT-Metal reserves nothing when a CB is created. At the first enqueue of the program it lays
//! every CB out in its cores' L1, growing up from the bottom of the L1 pool (one region per
//! distinct core range), and on every enqueue it checks two things, in this order, range by
//! range: that no region ends beyond a core's L1, and that no region ends above the lowest L1
//! buffer (L1 buffers grow down from the top of every bank, in lock-step). The simulated device
//! does exactly this; a TT-Metal device does it for real.

use serde::{Deserialize, Serialize};

use crate::cb_failure::{
    CircularBufferCheck, CircularBufferFailure, CircularBufferPlacement, ProgramPeak,
};
use crate::cores::{CoreCoord, CoreRangeSet};
use crate::device::Device;
use crate::device::{EnqueueSeen, TraceEvent};
use crate::error::{Error, Result};
use crate::source::{CbProblem, CbRequest, Enqueued};
use crate::types::BufferType;

/// Most pages a CB may have (TT-Metal: more would wrap its page counters).
pub const MAX_CB_PAGES: u64 = 65_535;

/// The configuration of one circular buffer: its total size and, per buffer index it serves,
/// the page size. Several indices may share one CB's address space.
///
/// # Examples
///
/// ```
/// use tt_memguard::CircularBufferConfig;
///
/// let cb = CircularBufferConfig::new(4 * 2048).page_size(0, 2048);
/// assert_eq!((cb.total_size(), cb.indices().collect::<Vec<_>>()), (8192, vec![0]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct CircularBufferConfig {
    total_size: u64,
    pages: Vec<(u8, u64)>,
    backing: Option<Backing>,
}

/// An L1 buffer whose memory a CB uses instead of a place of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backing {
    pub buffer_id: u64,
    pub slot: u32,
    pub buffer_type: BufferType,
    pub address: u64,
    pub size_per_bank: u64,
    pub offset: u64,
}

impl CircularBufferConfig {
    /// A CB of `total_size` bytes on every core it is created on.
    pub fn new(total_size: u64) -> CircularBufferConfig {
        CircularBufferConfig {
            total_size,
            pages: Vec::new(),
            backing: None,
        }
    }

    /// Serves buffer index `index` with pages of `page_size` bytes (TT-Metal's
    /// `set_page_size`); call once per index.
    pub fn page_size(mut self, index: u8, page_size: u64) -> Self {
        match self.pages.iter_mut().find(|(i, _)| *i == index) {
            Some(entry) => entry.1 = page_size,
            None => self.pages.push((index, page_size)),
        }
        self
    }

    /// Uses the memory of an L1 (or L1_SMALL) buffer, `offset` bytes into it, instead of a place
    /// in the CB region (TT-Metal's globally allocated CB). The buffer must outlive every enqueue
    /// of the program.
    pub fn backed_by(mut self, buffer: &crate::Buffer, offset: u64) -> Self {
        self.backing = Some(Backing {
            buffer_id: buffer.id(),
            slot: buffer.slot(),
            buffer_type: buffer.buffer_type(),
            address: buffer.address(),
            size_per_bank: buffer.size_per_bank(),
            offset,
        });
        self
    }

    /// Total size in bytes.
    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    /// The buffer indices served, in the order they were given.
    pub fn indices(&self) -> impl Iterator<Item = u8> + '_ {
        self.pages.iter().map(|(i, _)| *i)
    }

    /// Whether the CB uses an L1 buffer's memory.
    pub fn is_backed(&self) -> bool {
        self.backing.is_some()
    }

    pub(crate) fn backing(&self) -> Option<Backing> {
        self.backing
    }

    /// The (index, page size) pairs, in the order they were given.
    pub(crate) fn pages(&self) -> &[(u8, u64)] {
        &self.pages
    }

    /// The checks that need no device: a size, at least one index, page sizes that divide the
    /// size into at most [`MAX_CB_PAGES`] pages, and a usable backing buffer.
    pub(crate) fn validate(&self, cores: &CoreRangeSet, l1_alignment: u64) -> Result<()> {
        if cores.is_empty() {
            return Err(Error::EmptyCoreRangeSet);
        }
        if self.total_size == 0 {
            return Err(Error::CircularBufferSizeZero);
        }
        if self.pages.is_empty() {
            return Err(Error::CircularBufferWithoutIndex {
                total_size: self.total_size,
            });
        }
        for &(index, page_size) in &self.pages {
            if page_size == 0 || !self.total_size.is_multiple_of(page_size) {
                return Err(Error::CircularBufferPageSize {
                    index,
                    total_size: self.total_size,
                    page_size,
                });
            }
            if self.total_size / page_size > MAX_CB_PAGES {
                return Err(Error::CircularBufferTooManyPages {
                    index,
                    pages: self.total_size / page_size,
                });
            }
        }
        if let Some(b) = self.backing {
            if !matches!(b.buffer_type, BufferType::L1 | BufferType::L1Small) {
                return Err(Error::CircularBufferBacking {
                    buffer_id: b.buffer_id,
                    problem: format!(
                        "it is a {} buffer: only L1 and L1_SMALL buffers can back a circular buffer (TT-Metal: \"Only L1 buffers can have an associated circular buffer!\")",
                        b.buffer_type
                    ),
                });
            }
            if b.offset > b.size_per_bank {
                return Err(Error::CircularBufferBacking {
                    buffer_id: b.buffer_id,
                    problem: format!(
                        "offset {} B lies past the {} B it holds per bank: use an offset from 0 to {} B",
                        b.offset, b.size_per_bank, b.size_per_bank
                    ),
                });
            }
            if b.offset % l1_alignment != 0 {
                return Err(Error::CircularBufferBacking {
                    buffer_id: b.buffer_id,
                    problem: format!(
                        "offset {} B is not a multiple of the L1 alignment {l1_alignment} B: use {} B or {} B",
                        b.offset,
                        b.offset / l1_alignment * l1_alignment,
                        b.offset.div_ceil(l1_alignment) * l1_alignment
                    ),
                });
            }
            if self.total_size > b.size_per_bank - b.offset {
                return Err(Error::CircularBufferBacking {
                    buffer_id: b.buffer_id,
                    problem: format!(
                        "the circular buffer's {} B do not fit in the {} B it holds per bank from offset {} B: shrink the circular buffer or back it with a larger buffer",
                        self.total_size,
                        b.size_per_bank - b.offset,
                        b.offset
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A circular buffer of a program, as created.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircularBufferInfo {
    /// Position in the program, from 0, in creation order.
    pub handle: u32,
    /// The cores it was created on (as given; TT-Metal merges adjacent rectangles).
    pub cores: CoreRangeSet,
    /// The buffer indices it serves.
    pub indices: Vec<u8>,
    /// Total size in bytes, on every one of its cores.
    pub size: u64,
    /// Address in L1 once laid out (or the backing buffer's address plus offset).
    pub address: Option<u64>,
    /// Whether an L1 buffer's memory backs it.
    pub backed: bool,
}

impl CircularBufferInfo {
    /// One past its last byte, once laid out.
    pub fn end(&self) -> Option<u64> {
        self.address.map(|a| a.saturating_add(self.size))
    }
}

/// What one enqueue of a program took of the L1 of its cores.
///
/// L1 buffers are placed in lock-step, so every core holds the same L1 buffer bytes; the CB
/// region differs per core. The numbers below are the worst core's.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnqueueReport {
    /// The program's id on its device.
    pub program: u64,
    /// Whether this enqueue computed the layout (the first one does).
    pub laid_out_now: bool,
    /// Bottom of the CB region: the L1 pool's base.
    pub base: u64,
    /// Highest CB end over all cores.
    pub cb_end: u64,
    /// The first core (by column, then row) whose CBs end at `cb_end`.
    pub cb_peak_core: CoreCoord,
    /// CB region bytes of that core (`cb_end - base`; 0 without CBs).
    pub cb_bytes_per_core: u64,
    /// Bytes of L1 buffers in every bank at the enqueue.
    pub l1_buffers_per_bank: u64,
    /// Lowest address of an L1 buffer, if any is live.
    pub lowest_l1_buffer: Option<u64>,
    /// Bytes between the CB region's end and the lowest L1 buffer (or the end of a core's L1
    /// when no L1 buffer is live).
    pub headroom: u64,
    /// Cores holding at least one CB of the program.
    pub cores_with_cbs: u64,
}

impl EnqueueReport {
    /// CB region plus L1 buffers on the worst core.
    pub fn l1_total_per_core(&self) -> u64 {
        self.cb_bytes_per_core
            .saturating_add(self.l1_buffers_per_bank)
    }
}

/// A program: circular buffers on sets of cores, laid out and checked when it is enqueued on
/// its device. Dropping it destroys it (TT-Metal then reports its CBs as freed).
///
/// # Examples
///
/// ```
/// use tt_memguard::{CircularBufferConfig, CoreRange, SimDevice, KIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let mut program = dev.create_program()?;
/// program.add_circular_buffer(CoreRange::new((0, 0), (7, 7))?, CircularBufferConfig::new(64 * KIB).page_size(0, 2048))?;
/// let run = dev.enqueue(&mut program)?;
/// assert_eq!((run.base, run.cb_bytes_per_core), (0x19D60, 64 * KIB));
/// # Ok::<(), tt_memguard::Error>(())
/// ```
pub struct Program {
    device: Device,
    id: u64,
    cbs: Vec<CircularBufferInfo>,
    /// The CBs as added, for a trace recording that starts after them.
    configs: Vec<(CoreRangeSet, CircularBufferConfig)>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("device", &self.device.name())
            .field("id", &self.id)
            .field("circular_buffers", &self.cbs.len())
            .finish()
    }
}

impl Program {
    pub(crate) fn new(device: Device, id: u64) -> Program {
        Program {
            device,
            id,
            cbs: Vec::new(),
            configs: Vec::new(),
        }
    }

    /// The program's id on its device (the number TT-Metal's messages show).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The device it belongs to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Its circular buffers in creation order, with their addresses once laid out.
    pub fn circular_buffers(&self) -> &[CircularBufferInfo] {
        &self.cbs
    }

    /// Adds a circular buffer on `cores` (TT-Metal's `CreateCircularBuffer`); returns its
    /// handle, its position in the program. Nothing is reserved until the program is
    /// enqueued.
    ///
    /// # Errors
    ///
    /// Cores outside the device's grid or none at all, a size of 0, no buffer index, a page
    /// size that does not divide the size, an index the cores do not have or already serve, a
    /// backing buffer that is not L1 or that the CB does not fit in, or a program that was
    /// already enqueued: each with TT-Metal's message where it has one.
    pub fn add_circular_buffer(
        &mut self,
        cores: impl Into<CoreRangeSet>,
        config: CircularBufferConfig,
    ) -> Result<u32> {
        let cores = cores.into();
        let info = self.device.info();
        config.validate(&cores, info.pools[BufferType::L1.index()].alignment)?;
        let (x, y) = info.compute_grid;
        if let Some(range) = cores.ranges().iter().find(|r| r.end.x >= x || r.end.y >= y) {
            return Err(Error::CoresOutsideGrid {
                range: *range,
                device: info.name.clone(),
                grid: info.compute_grid,
            });
        }
        let backing = config.backing();
        let request = CbRequest {
            ranges: cores.ranges().to_vec(),
            size: config.total_size(),
            indices: config.indices().collect(),
            backing: backing.map(|b| (b.buffer_id, b.slot, b.address.saturating_add(b.offset))),
        };
        let program = self.id;
        let (device, configs) = (&self.device, &mut self.configs);
        let added = device.with_backend_mut(|b| {
            let added = b.add_circular_buffer(program, &request)?;
            if added.is_ok() {
                configs.push((cores.clone(), config.clone()));
                device.trace_event(
                    b,
                    &TraceEvent::Cb {
                        program,
                        cbs: configs,
                    },
                );
            }
            Ok(added)
        })?;
        let handle = match added {
            Ok(handle) => handle,
            Err(problem) => return Err(self.add_error(problem)),
        };
        self.cbs.push(CircularBufferInfo {
            handle,
            cores,
            indices: request.indices,
            size: request.size,
            address: request.backing.map(|(_, _, address)| address),
            backed: backing.is_some(),
        });
        Ok(handle)
    }

    fn add_error(&self, problem: CbProblem) -> Error {
        match problem {
            CbProblem::AlreadyCompiled => Error::ProgramCompiled { program: self.id },
            CbProblem::IndexTaken { range, index } => {
                Error::CircularBufferIndexTaken { index, range }
            }
            CbProblem::IndexTooLarge { index, max } => {
                Error::CircularBufferIndexTooLarge { index, max }
            }
            other => Error::Rejected {
                reason: format!("adding a circular buffer to program {}: {other:?}", self.id),
            },
        }
    }

    /// Runs the enqueue on the backend and turns what it found into a report or an error.
    pub(crate) fn run(&mut self) -> Result<EnqueueReport> {
        let program = self.id;
        let (device, cbs, configs) = (&self.device, &self.cbs, &self.configs);
        let (run, addresses) = device.with_backend_mut(|b| {
            let run = b.enqueue_program(program)?;
            let addresses = if run.laid_out_now {
                Some(b.program_addresses(program)?)
            } else {
                None
            };
            // What a replay must reproduce: the check that refused it, or
            // where its CBs are.
            let seen = match run.problem {
                Some(CbProblem::Clash { .. }) => Some(EnqueueSeen::Clash),
                Some(CbProblem::BeyondL1 { .. }) => Some(EnqueueSeen::BeyondL1),
                Some(_) => None,
                None => match &addresses {
                    Some(a) if a.len() == cbs.len() => Some(EnqueueSeen::Fit(a.clone())),
                    Some(_) => None,
                    None => cbs
                        .iter()
                        .map(|cb| cb.address)
                        .collect::<Option<Vec<u64>>>()
                        .map(EnqueueSeen::Fit),
                },
            };
            let event = TraceEvent::Enqueue {
                program,
                cbs: configs,
                seen,
            };
            device.trace_event(b, &event);
            Ok((run, addresses))
        })?;
        if let Some(addresses) = addresses {
            for (cb, address) in self.cbs.iter_mut().zip(addresses) {
                cb.address = Some(address);
            }
        }
        if let Some(problem) = run.problem {
            return Err(self.enqueue_error(problem, &run));
        }
        let limit = run.lowest_l1.unwrap_or(run.l1_size).min(run.l1_size);
        let cb_end = run.max_end.max(run.base);
        if run.max_end > 0 {
            // Remembered for guards: the core with the largest region and its CBs.
            let circular_buffers = self.placed_cbs(|cores| cores.contains(run.max_core));
            self.device.log_enqueue(ProgramPeak {
                program,
                core: run.max_core,
                cb_bytes: cb_end - run.base,
                l1_buffers_per_bank: run.l1_allocated,
                headroom: limit.saturating_sub(cb_end),
                circular_buffers,
            });
        }
        Ok(EnqueueReport {
            program,
            laid_out_now: run.laid_out_now,
            base: run.base,
            cb_end,
            cb_peak_core: run.max_core,
            cb_bytes_per_core: cb_end - run.base,
            l1_buffers_per_bank: run.l1_allocated,
            lowest_l1_buffer: run.lowest_l1,
            headroom: limit.saturating_sub(cb_end),
            cores_with_cbs: run.cores_with_cbs,
        })
    }

    /// The laid-out CBs of this program (not backed by a buffer) on the
    /// cores that `on` picks, by address.
    fn placed_cbs(&self, on: impl Fn(&CoreRangeSet) -> bool) -> Vec<CircularBufferPlacement> {
        let mut placed: Vec<CircularBufferPlacement> = self
            .cbs
            .iter()
            .filter(|cb| !cb.backed && on(&cb.cores))
            .filter_map(|cb| {
                Some(CircularBufferPlacement {
                    handle: cb.handle,
                    indices: cb.indices.clone(),
                    size: cb.size,
                    address: cb.address?,
                    cores: cb.cores.to_string(),
                })
            })
            .collect();
        placed.sort_by_key(|cb| (cb.address, cb.handle));
        placed
    }

    fn enqueue_error(&self, problem: CbProblem, run: &Enqueued) -> Error {
        let (check, range, end, limit) = match problem {
            CbProblem::BeyondL1 {
                range,
                end,
                l1_size,
            } => (CircularBufferCheck::BeyondL1, range, end, l1_size),
            CbProblem::Clash { range, end, lowest } => {
                (CircularBufferCheck::Clash, range, end, lowest)
            }
            CbProblem::BackingFreed { handle, buffer } => {
                return Error::CircularBufferBackingFreed {
                    program: self.id,
                    handle,
                    buffer_id: buffer,
                };
            }
            other => {
                return Error::Rejected {
                    reason: format!("enqueueing program {}: {other:?}", self.id),
                };
            }
        };
        // The CBs laid out in the failing range's region: those on cores of that range.
        let circular_buffers =
            self.placed_cbs(|cores| cores.ranges().iter().any(|r| r.intersects(&range)));
        let lowest_buffer = match check {
            CircularBufferCheck::Clash => self.device.live_allocations().ok().and_then(|live| {
                live.into_iter()
                    .find(|a| a.buffer_type == BufferType::L1 && a.address == limit)
            }),
            CircularBufferCheck::BeyondL1 => None,
        };
        let info = self.device.info();
        Error::CircularBuffers(Box::new(CircularBufferFailure {
            check,
            program: self.id,
            device: info.name.clone(),
            range,
            region_end: end,
            limit,
            base: run.base,
            circular_buffers,
            lowest_buffer,
            l1_small_size: info.l1_small_size,
            granularity: info.pools[BufferType::Dram.index()].granularity,
        }))
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let program = self.id;
        let device = &self.device;
        // Nothing to report from drop: a closed device has no programs left.
        let _ = device.with_backend_mut(|b| {
            let destroyed = b.destroy_program(program)?;
            if destroyed {
                device.trace_event(b, &TraceEvent::Destroy { program });
            }
            Ok(destroyed)
        });
    }
}

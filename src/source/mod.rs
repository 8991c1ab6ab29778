//! Memory sources: the backends a [`Device`](crate::Device) talks to.
//!
//! Only this module and the ffi bridges know that C++ exists.

pub(crate) mod sim;
#[cfg(feature = "tt-metal")]
pub(crate) mod tt_metal;

use crate::cores::{CoreCoord, CoreRange};
use crate::device::{Device, DeviceInfo, DeviceKind, PoolLayout};
use crate::error::{Error, Result};
use crate::ffi::vocab::bridge as vocab;
use crate::types::{Allocation, BufferType, MeshCoord, MeshShape, PoolStats, Snapshot};

/// Placement direction inside a pool.
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, Direction, SimDevice};
///
/// let dev = SimDevice::wormhole_b0();
/// // L1 is top-down by default; bottom-up places the buffer at the L1 base.
/// let b = dev.buffer(BufferType::L1, 64 * 2048).page_size(2048).direction(Direction::BottomUp).allocate()?;
/// assert_eq!(b.address(), 0x19D60);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// The pool's default: bottom-up for DRAM and TRACE, top-down for L1 and
    /// L1_SMALL.
    #[default]
    Default,
    /// Lowest free block, bottom of the block.
    BottomUp,
    /// Highest free block, top of the block.
    TopDown,
}

/// A validated allocation request, as backends receive it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub buffer_type: BufferType,
    pub size: u64,
    pub page_size: u64,
    pub shards: Option<u32>,
    pub direction: Direction,
    pub address: Option<u64>,
    pub label: Option<String>,
    /// Opaque caller data stored with the allocation (the source location).
    pub tag: u64,
}

/// What a backend reports for a placed buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub id: u64,
    /// Backend-specific handle that makes the free a direct access.
    pub slot: u32,
    pub address: u64,
    pub per_bank_size: u64,
    pub num_banks: u32,
}

/// An allocation or a free the device observed of a buffer that other code
/// made (on TT-Metal: a buffer an op or the caller's own C++ allocated),
/// as a recording receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Foreign {
    /// An allocation (else a free).
    pub alloc: bool,
    /// The device's id of the allocation.
    pub id: u64,
    pub buffer_type: BufferType,
    pub address: u64,
    pub size: u64,
    pub page_size: u64,
    /// The allocator's reservation in every bank.
    pub per_bank_size: u64,
}

/// TRACE banks are carved in whole multiples of this many bytes.
const TRACE_GRANULE: u64 = 8 * 1024;

/// Room in a bank, and the carve-outs a device is opened with: checks the
/// rules both backends share (tt-metal-allocator facts: L1_SMALL takes
/// `round_up(l1_small_size, granularity)` of every core's L1, TRACE takes
/// `round_up(ceil(trace_region_size / dram_banks), 8 KiB)` of every DRAM
/// bank, and each must leave room for its parent pool). The arithmetic is
/// exact where TT-Metal's own wraps around.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CarveOuts {
    pub l1_small_size: u64,
    pub trace_region_size: u64,
    /// The allocator granularity (the DRAM alignment).
    pub granularity: u64,
    pub dram_banks: u32,
    /// Bytes of one core's L1 above the L1 base (L1 and L1_SMALL together).
    pub l1_room: u64,
    /// Bytes of one DRAM bank above the DRAM base (DRAM and TRACE together).
    pub dram_room: u64,
}

impl CarveOuts {
    /// What is wrong and how to fix it, when a carve-out does not fit.
    pub(crate) fn problem(&self) -> Option<String> {
        let round_up = |value: u128, multiple: u64| {
            let m = u128::from(multiple.max(1));
            value.div_ceil(m) * m
        };
        let g = self.granularity.max(1);
        let l1_small = match self.l1_small_size {
            0 => 0,
            s => round_up(u128::from(s), g),
        };
        if l1_small >= u128::from(self.l1_room) {
            let max = self.l1_room.saturating_sub(1) / g * g;
            return Some(format!(
                "l1_small_size {} B leaves no room for L1 in the bank: it takes {l1_small} B of every core's L1 (rounded up to the {g} B DRAM alignment), which has {} B above the L1 base: use at most {max} B",
                self.l1_small_size, self.l1_room
            ));
        }
        let banks = self.dram_banks.max(1);
        let trace = match self.trace_region_size {
            0 => 0,
            t => round_up(u128::from(t.div_ceil(u64::from(banks))), TRACE_GRANULE),
        };
        if trace >= u128::from(self.dram_room) {
            let per_bank = self.dram_room.saturating_sub(1) / TRACE_GRANULE * TRACE_GRANULE;
            let max = u128::from(per_bank) * u128::from(banks);
            return Some(format!(
                "trace_region_size {} B leaves no room for DRAM in the bank: it takes {trace} B of each of the {banks} DRAM banks (its share rounded up to 8 KiB), which have {} B above the DRAM base: use at most {} B",
                self.trace_region_size,
                self.dram_room,
                max.min(u128::from(u64::MAX))
            ));
        }
        None
    }
}

/// What a peak mark holds (see `vocab::PeakReading`).
pub(crate) type Peaks = vocab::PeakReading;

/// A circular buffer as backends receive it: validated, ranges as given.
#[derive(Debug, Clone)]
pub(crate) struct CbRequest {
    pub ranges: Vec<CoreRange>,
    pub size: u64,
    pub indices: Vec<u8>,
    /// The backing buffer's allocation (id, slot) and the CB's address in it.
    pub backing: Option<(u64, u32, u64)>,
}

/// Why a backend refused to add a CB or to run a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CbProblem {
    AlreadyCompiled,
    IndexTaken {
        range: CoreRange,
        index: u8,
    },
    IndexTooLarge {
        index: u8,
        max: u32,
    },
    BeyondL1 {
        range: CoreRange,
        end: u64,
        l1_size: u64,
    },
    Clash {
        range: CoreRange,
        end: u64,
        lowest: u64,
    },
    UnknownProgram,
    /// The CB at `handle` is backed by buffer `buffer`, which was freed.
    BackingFreed {
        handle: u32,
        buffer: u64,
    },
}

/// What one enqueue found and took (see `vocab::EnqueueOutcome`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Enqueued {
    pub problem: Option<CbProblem>,
    pub laid_out_now: bool,
    pub base: u64,
    pub max_end: u64,
    pub max_core: CoreCoord,
    pub cores_with_cbs: u64,
    pub lowest_l1: Option<u64>,
    pub l1_size: u64,
    pub l1_allocated: u64,
}

/// What a bridged C++ device provides, in the bridge vocabulary
/// (`ffi::vocab`). Each backend implements it as one C++ call per method,
/// mapping that call's C++ exceptions to the crate's errors; everything else
/// is the [`Adapter`]'s.
pub(crate) trait Bridge: Send {
    /// Places a buffer, or says why it could not be placed.
    fn allocate(&mut self, request: &Request) -> Result<vocab::AllocOutcome>;
    /// Frees a live allocation; false when it is not live.
    fn deallocate(&mut self, id: u64, slot: u32) -> Result<bool>;
    /// The allocator statistics and layout of every pool, handed to `read`
    /// where the C++ call left them: no copy on the hottest path.
    fn snapshot<T>(&self, read: impl FnOnce(&vocab::PoolSnapshot) -> T) -> Result<T>;
    /// Live allocations, ordered by id.
    fn live(&self) -> Result<Vec<vocab::AllocRecord>>;
    /// Number of live allocations.
    fn live_count(&self) -> Result<u64>;
    /// The id the next allocation will get.
    fn next_id(&self) -> Result<u64>;
    /// Starts an independent peak mark.
    fn mark_peak(&mut self) -> Result<u32>;
    /// Reads a peak mark.
    fn read_peak(&self, mark: u32) -> Result<Peaks>;
    /// Ends a peak mark.
    fn release_peak(&mut self, mark: u32);
    /// Returns the device to its freshly opened state when nothing is live
    /// and no peak mark is active; false when it cannot (or the backend does
    /// not support it).
    fn reset(&mut self) -> bool {
        false
    }
    /// Creates an empty program; returns its id.
    fn create_program(&mut self) -> Result<u64>;
    /// Adds a circular buffer to a program.
    fn add_circular_buffer(&mut self, program: u64, cb: &CbRequest) -> Result<vocab::CbCheck>;
    /// Lays a program's CBs out at its first enqueue and checks them.
    fn enqueue_program(&mut self, program: u64) -> Result<vocab::EnqueueOutcome>;
    /// Every CB's address in creation order once laid out, else empty.
    fn program_addresses(&self, program: u64) -> Result<Vec<u64>>;
    /// Destroys a program; false when there is none of that id.
    fn destroy_program(&mut self, program: u64) -> Result<bool>;
    /// The native device pointer (a TT-Metal `MeshDevice*`) behind a real
    /// device.
    #[cfg(feature = "tt-metal")]
    fn native_device(&self) -> Option<usize> {
        None
    }
    /// Statistics computed by scanning every block (simulated device only).
    fn scan_snapshot(&self) -> Option<vocab::PoolSnapshot> {
        None
    }
    /// Starts keeping the foreign journal: the allocations and frees of
    /// buffers other code makes on the device (counted: every start needs
    /// its stop). A device where nothing else allocates keeps none.
    fn start_journal(&mut self) -> Result<()> {
        Ok(())
    }
    /// Stops what one [`start_journal`](Self::start_journal) started.
    fn stop_journal(&mut self) {}
    /// Takes the foreign journal's events, oldest first.
    fn drain_journal(&mut self) -> Result<Vec<Foreign>> {
        Ok(Vec::new())
    }
}

/// The operations every device backend provides, in the crate's types.
/// Calls are serialized by the owning [`Device`]. The one implementation is
/// [`Adapter`], over each backend's [`Bridge`].
pub(crate) trait Backend: Send {
    /// Places a buffer, or explains why it cannot be placed.
    fn allocate(&mut self, request: &Request) -> Result<Placed>;
    /// Frees a live allocation (`id` and `slot` as placed); false when it is
    /// not live.
    fn deallocate(&mut self, id: u64, slot: u32) -> Result<bool>;
    /// The allocator statistics of every pool.
    fn snapshot(&self) -> Result<Snapshot>;
    /// Live allocations, ordered by id; `tag`s are returned as given.
    fn live(&self) -> Result<Vec<(Allocation, u64)>>;
    /// Number of live allocations.
    fn live_count(&self) -> Result<u64>;
    /// The id the next allocation will get; ids at or above it are newer.
    fn next_id(&self) -> Result<u64>;
    /// Starts an independent peak mark.
    fn mark_peak(&mut self) -> Result<u32>;
    /// Reads a peak mark.
    fn read_peak(&self, mark: u32) -> Result<Peaks>;
    /// Ends a peak mark.
    fn release_peak(&mut self, mark: u32);
    /// See [`Bridge::reset`].
    fn reset(&mut self) -> bool;
    /// See [`Bridge::create_program`].
    fn create_program(&mut self) -> Result<u64>;
    /// Adds a CB; returns its handle (position in the program) or why not.
    fn add_circular_buffer(
        &mut self,
        program: u64,
        cb: &CbRequest,
    ) -> Result<std::result::Result<u32, CbProblem>>;
    /// See [`Bridge::enqueue_program`].
    fn enqueue_program(&mut self, program: u64) -> Result<Enqueued>;
    /// See [`Bridge::program_addresses`].
    fn program_addresses(&self, program: u64) -> Result<Vec<u64>>;
    /// See [`Bridge::destroy_program`].
    fn destroy_program(&mut self, program: u64) -> Result<bool>;
    /// See [`Bridge::native_device`].
    #[cfg(feature = "tt-metal")]
    fn native_device(&self) -> Option<usize>;
    /// See [`Bridge::scan_snapshot`].
    fn scan_snapshot(&self) -> Option<Snapshot>;
    /// See [`Bridge::start_journal`].
    fn start_journal(&mut self) -> Result<()>;
    /// See [`Bridge::stop_journal`].
    fn stop_journal(&mut self);
    /// See [`Bridge::drain_journal`].
    fn drain_journal(&mut self) -> Result<Vec<Foreign>>;
}

/// What a backend knows of a device it opened, besides what the device's
/// snapshot says.
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    pub name: String,
    pub kind: DeviceKind,
    pub compute_grid: (u32, u32),
    pub l1_small_size: u64,
    pub trace_region_size: u64,
    /// Lowest address an interleaved L1 buffer may take; `None`: the L1 base.
    pub l1_interleaved_limit: Option<u64>,
    /// For the device of a mesh: its shape.
    pub mesh_shape: Option<MeshShape>,
    /// For one chip's own allocator in a mesh: its place.
    pub mesh_chip: Option<MeshCoord>,
}

/// The one adapter between a device's [`Bridge`] and the crate: requests go
/// in as the bridge vocabulary, and outcomes, snapshots and records come
/// back as the crate's types and errors. Generic over the bridge, so that
/// each C++ call and its conversion compile into one function.
pub(crate) struct Adapter<B> {
    bridge: B,
    /// Banks of every pool, for the allocations' `num_banks`.
    banks: [u32; 4],
    /// The allocator granularity of every pool (the DRAM alignment).
    granularity: u64,
    /// Lowest address an interleaved L1 buffer may take.
    l1_limit: u64,
}

impl<B: Bridge + 'static> Adapter<B> {
    /// Reads the layout of a freshly opened device from its bridge and
    /// wraps both into a [`Device`].
    pub(crate) fn into_device(bridge: B, opened: Opened) -> Result<Device> {
        let snapshot = bridge.snapshot(|s| *s)?;
        let pool = |buffer_type: BufferType| snapshot.pools[buffer_type.index()];
        let granularity = pool(BufferType::Dram).alignment;
        let info = DeviceInfo {
            name: opened.name,
            kind: opened.kind,
            compute_grid: opened.compute_grid,
            l1_small_size: opened.l1_small_size,
            trace_region_size: opened.trace_region_size,
            mesh_shape: opened.mesh_shape,
            mesh_chip: opened.mesh_chip,
            pools: snapshot.pools.map(|p| PoolLayout {
                banks: p.banks,
                alignment: p.alignment,
                granularity,
            }),
        };
        let adapter = Adapter {
            bridge,
            banks: snapshot.pools.map(|p| p.banks),
            granularity,
            l1_limit: opened
                .l1_interleaved_limit
                .unwrap_or(pool(BufferType::L1).base),
        };
        Ok(Device::from_backend(info, Box::new(adapter)))
    }
}

impl<B: Bridge> Backend for Adapter<B> {
    fn allocate(&mut self, request: &Request) -> Result<Placed> {
        let outcome = self.bridge.allocate(request)?;
        self.placed(request, &outcome)
    }

    fn deallocate(&mut self, id: u64, slot: u32) -> Result<bool> {
        self.bridge.deallocate(id, slot)
    }

    fn snapshot(&self) -> Result<Snapshot> {
        self.bridge.snapshot(snapshot_from_bridge)
    }

    fn live(&self) -> Result<Vec<(Allocation, u64)>> {
        let records = self.bridge.live()?;
        let mut live = Vec::with_capacity(records.len());
        for record in records {
            live.push(allocation_from_bridge(record, &self.banks)?);
        }
        Ok(live)
    }

    fn live_count(&self) -> Result<u64> {
        self.bridge.live_count()
    }

    fn next_id(&self) -> Result<u64> {
        self.bridge.next_id()
    }

    fn mark_peak(&mut self) -> Result<u32> {
        self.bridge.mark_peak()
    }

    fn read_peak(&self, mark: u32) -> Result<Peaks> {
        self.bridge.read_peak(mark)
    }

    fn release_peak(&mut self, mark: u32) {
        self.bridge.release_peak(mark)
    }

    fn reset(&mut self) -> bool {
        self.bridge.reset()
    }

    fn create_program(&mut self) -> Result<u64> {
        self.bridge.create_program()
    }

    fn add_circular_buffer(
        &mut self,
        program: u64,
        cb: &CbRequest,
    ) -> Result<std::result::Result<u32, CbProblem>> {
        let check = self.bridge.add_circular_buffer(program, cb)?;
        Ok(match cb_problem(&check)? {
            None => Ok(check.handle),
            Some(problem) => Err(problem),
        })
    }

    fn enqueue_program(&mut self, program: u64) -> Result<Enqueued> {
        let out = self.bridge.enqueue_program(program)?;
        Ok(Enqueued {
            problem: cb_problem(&out.check)?,
            laid_out_now: out.laid_out_now,
            base: out.base,
            max_end: out.max_end,
            max_core: CoreCoord::new(out.max_x, out.max_y),
            cores_with_cbs: out.cores_with_cbs,
            lowest_l1: out.has_lowest_l1.then_some(out.lowest_l1),
            l1_size: out.l1_size,
            l1_allocated: out.l1_allocated,
        })
    }

    fn program_addresses(&self, program: u64) -> Result<Vec<u64>> {
        self.bridge.program_addresses(program)
    }

    fn destroy_program(&mut self, program: u64) -> Result<bool> {
        self.bridge.destroy_program(program)
    }

    #[cfg(feature = "tt-metal")]
    fn native_device(&self) -> Option<usize> {
        self.bridge.native_device()
    }

    fn scan_snapshot(&self) -> Option<Snapshot> {
        self.bridge
            .scan_snapshot()
            .map(|s| snapshot_from_bridge(&s))
    }

    fn start_journal(&mut self) -> Result<()> {
        self.bridge.start_journal()
    }

    fn stop_journal(&mut self) {
        self.bridge.stop_journal()
    }

    fn drain_journal(&mut self) -> Result<Vec<Foreign>> {
        self.bridge.drain_journal()
    }
}

impl<B> Adapter<B> {
    /// The placed buffer, or the error an outcome stands for.
    fn placed(&self, request: &Request, out: &vocab::AllocOutcome) -> Result<Placed> {
        let buffer_type = request.buffer_type;
        let pool = &out.pool;
        let address = request.address.unwrap_or(0);
        Err(match out.status {
            vocab::AllocStatus::Placed => {
                return Ok(Placed {
                    id: out.id,
                    slot: out.slot,
                    address: out.address,
                    per_bank_size: out.per_bank_size,
                    num_banks: self.banks[buffer_type.index()],
                });
            }
            vocab::AllocStatus::OutOfMemory => Error::OutOfMemory {
                buffer_type,
                size: request.size,
                banks: out.banks,
                needed_per_bank: out.size_per_bank,
                size_per_bank: pool.total_allocatable,
                allocated_per_bank: pool.allocated,
                free_per_bank: pool.free,
                largest_free_block_per_bank: pool.largest_free,
                fragmentation: None,
            },
            vocab::AllocStatus::BelowAddressLimit => Error::BelowAddressLimit {
                size: request.size,
                limit: self.l1_limit,
                address: out.address,
                size_per_bank: out.per_bank_size,
                orphan_id: out.id,
            },
            vocab::AllocStatus::AddressNotFree => Error::AddressNotFree {
                buffer_type,
                address,
                size: request.size,
            },
            vocab::AllocStatus::TooLarge => {
                let layout = PoolLayout {
                    banks: out.banks,
                    alignment: pool.alignment,
                    granularity: self.granularity,
                };
                Error::BufferTooLarge {
                    buffer_type,
                    size: request.size,
                    page_size: request.page_size,
                    banks: out.banks,
                    needed_per_bank: layout.block_size(request.size, request.page_size, out.banks),
                }
            }
            vocab::AllocStatus::AddressUnaligned => Error::AddressUnaligned {
                buffer_type,
                address,
                size: request.size,
                granularity: self.granularity,
                base: pool.base,
            },
            vocab::AllocStatus::Invalid => Error::Rejected {
                reason: format!(
                    "the device's allocator rejected {request:?}; this is a bug in tt-memguard's validation"
                ),
            },
            other => Error::UnknownBridgeValue {
                what: "allocation status",
                value: other.repr,
            },
        })
    }
}

impl Request {
    /// The request in the bridge vocabulary.
    pub(crate) fn to_bridge(&self) -> vocab::AllocRequest {
        vocab::AllocRequest {
            pool: bridge_pool(self.buffer_type),
            size: self.size,
            page_size: self.page_size,
            shards: self.shards.unwrap_or(0),
            direction: match self.direction {
                Direction::Default => vocab::Direction::Default,
                Direction::BottomUp => vocab::Direction::BottomUp,
                Direction::TopDown => vocab::Direction::TopDown,
            },
            fixed_address: self.address.is_some(),
            address: self.address.unwrap_or(0),
            tag: self.tag,
        }
    }

    /// The label, empty when there is none.
    pub(crate) fn label_str(&self) -> &str {
        self.label.as_deref().unwrap_or("")
    }
}

// ---- the one conversion from the bridge records to the crate's types -------

/// A core range in the bridge vocabulary.
pub(crate) fn core_box(range: &CoreRange) -> vocab::CoreBox {
    vocab::CoreBox {
        x0: range.start.x,
        y0: range.start.y,
        x1: range.end.x,
        y1: range.end.y,
    }
}

fn core_range(b: &vocab::CoreBox) -> CoreRange {
    CoreRange {
        start: CoreCoord::new(b.x0, b.y0),
        end: CoreCoord::new(b.x1, b.y1),
    }
}

/// What a CB check found, in the crate's words.
fn cb_problem(check: &vocab::CbCheck) -> Result<Option<CbProblem>> {
    let range = core_range(&check.range);
    // Indices are below 64 and handles below 2^32 whenever C++ reports one.
    let small = |v: u64| u8::try_from(v).unwrap_or(u8::MAX);
    Ok(Some(match check.status {
        vocab::CbStatus::Ok => return Ok(None),
        vocab::CbStatus::AlreadyCompiled => CbProblem::AlreadyCompiled,
        vocab::CbStatus::IndexTaken => CbProblem::IndexTaken {
            range,
            index: small(check.value),
        },
        vocab::CbStatus::IndexTooLarge => CbProblem::IndexTooLarge {
            index: small(check.value),
            max: u32::try_from(check.limit).unwrap_or(u32::MAX),
        },
        vocab::CbStatus::BeyondL1 => CbProblem::BeyondL1 {
            range,
            end: check.value,
            l1_size: check.limit,
        },
        vocab::CbStatus::Clash => CbProblem::Clash {
            range,
            end: check.value,
            lowest: check.limit,
        },
        vocab::CbStatus::UnknownProgram => CbProblem::UnknownProgram,
        vocab::CbStatus::BackingFreed => CbProblem::BackingFreed {
            handle: u32::try_from(check.value).unwrap_or(u32::MAX),
            buffer: check.limit,
        },
        other => {
            return Err(Error::UnknownBridgeValue {
                what: "circular buffer status",
                value: other.repr,
            });
        }
    }))
}

/// Every pool's statistics as the crate reports them.
fn snapshot_from_bridge(raw: &vocab::PoolSnapshot) -> Snapshot {
    Snapshot {
        pools: BufferType::ALL.map(|buffer_type| {
            let p = &raw.pools[buffer_type.index()];
            PoolStats {
                buffer_type,
                num_banks: p.banks,
                base_address: p.base,
                alignment: p.alignment,
                size_per_bank: p.total_allocatable,
                allocated_per_bank: p.allocated,
                free_per_bank: p.free,
                largest_free_block_per_bank: p.largest_free,
            }
        }),
    }
}

/// A live allocation and its caller tag, from a registry record.
#[inline]
fn allocation_from_bridge(r: vocab::AllocRecord, banks: &[u32; 4]) -> Result<(Allocation, u64)> {
    let buffer_type = buffer_type_of(r.pool)?;
    let allocation = Allocation {
        id: r.id,
        buffer_type,
        address: r.address,
        size: r.size,
        page_size: r.page_size,
        size_per_bank: r.per_bank_size,
        num_banks: banks[buffer_type.index()],
        shards: (r.shards > 0).then_some(r.shards),
        label: if r.orphan {
            Some(crate::types::orphan_label(Some(&r.label)))
        } else {
            (!r.label.is_empty()).then_some(r.label)
        },
        location: None,
        orphaned: r.orphan,
    };
    Ok((allocation, r.tag))
}

/// The bridge's name for a pool.
fn bridge_pool(buffer_type: BufferType) -> vocab::Pool {
    match buffer_type {
        BufferType::Dram => vocab::Pool::Dram,
        BufferType::L1 => vocab::Pool::L1,
        BufferType::L1Small => vocab::Pool::L1Small,
        BufferType::Trace => vocab::Pool::Trace,
    }
}

/// The pool a bridge value names; a value the Rust side does not know is an
/// error, never a default pool.
pub(crate) fn buffer_type_of(pool: vocab::Pool) -> Result<BufferType> {
    match pool {
        vocab::Pool::Dram => Ok(BufferType::Dram),
        vocab::Pool::L1 => Ok(BufferType::L1),
        vocab::Pool::L1Small => Ok(BufferType::L1Small),
        vocab::Pool::Trace => Ok(BufferType::Trace),
        other => Err(Error::UnknownBridgeValue {
            what: "pool",
            value: other.repr,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(buffer_type: BufferType) -> Request {
        Request {
            buffer_type,
            size: 4096,
            page_size: 1024,
            shards: None,
            direction: Direction::Default,
            address: None,
            label: None,
            tag: 0,
        }
    }

    /// A backend whose bridge answers every allocation with `outcome` and
    /// lists `records` as live.
    struct Canned {
        outcome: vocab::AllocOutcome,
        records: Vec<vocab::AllocRecord>,
        /// What every CB add and enqueue answers.
        check: vocab::CbCheck,
    }

    impl Bridge for Canned {
        fn allocate(&mut self, _: &Request) -> Result<vocab::AllocOutcome> {
            Ok(self.outcome)
        }
        fn deallocate(&mut self, _: u64, _: u32) -> Result<bool> {
            Ok(false)
        }
        fn snapshot<T>(&self, read: impl FnOnce(&vocab::PoolSnapshot) -> T) -> Result<T> {
            let pool = vocab::PoolInfo {
                banks: 12,
                alignment: 32,
                total_allocatable: 1 << 20,
                ..Default::default()
            };
            Ok(read(&vocab::PoolSnapshot { pools: [pool; 4] }))
        }
        fn live(&self) -> Result<Vec<vocab::AllocRecord>> {
            Ok(self.records.clone())
        }
        fn live_count(&self) -> Result<u64> {
            Ok(self.records.len() as u64)
        }
        fn next_id(&self) -> Result<u64> {
            Ok(1)
        }
        fn mark_peak(&mut self) -> Result<u32> {
            Ok(0)
        }
        fn read_peak(&self, _: u32) -> Result<Peaks> {
            Ok(Peaks::default())
        }
        fn release_peak(&mut self, _: u32) {}
        fn create_program(&mut self) -> Result<u64> {
            Ok(0)
        }
        fn add_circular_buffer(&mut self, _: u64, _: &CbRequest) -> Result<vocab::CbCheck> {
            Ok(self.check)
        }
        fn enqueue_program(&mut self, _: u64) -> Result<vocab::EnqueueOutcome> {
            Ok(vocab::EnqueueOutcome {
                check: self.check,
                laid_out_now: true,
                base: 0,
                max_end: 0,
                max_x: 0,
                max_y: 0,
                cores_with_cbs: 0,
                has_lowest_l1: false,
                lowest_l1: 0,
                l1_size: 0,
                l1_allocated: 0,
            })
        }
        fn program_addresses(&self, _: u64) -> Result<Vec<u64>> {
            Ok(Vec::new())
        }
        fn destroy_program(&mut self, _: u64) -> Result<bool> {
            Ok(true)
        }
    }

    fn canned(status: vocab::AllocStatus, records: Vec<vocab::AllocRecord>) -> Device {
        let outcome = vocab::AllocOutcome {
            status,
            id: 1,
            slot: 0,
            address: 0x1000,
            per_bank_size: 1024,
            size_per_bank: 1024,
            banks: 12,
            pool: vocab::PoolInfo::default(),
        };
        let opened = Opened {
            name: "canned".into(),
            kind: DeviceKind::Simulated,
            compute_grid: (8, 8),
            l1_small_size: 0,
            trace_region_size: 0,
            l1_interleaved_limit: None,
            mesh_shape: None,
            mesh_chip: None,
        };
        let check = vocab::CbCheck {
            status: vocab::CbStatus::Ok,
            range: vocab::CoreBox::default(),
            value: 0,
            limit: 0,
            handle: 0,
        };
        Adapter::into_device(
            Canned {
                outcome,
                records,
                check,
            },
            opened,
        )
        .unwrap()
    }

    fn record(pool: vocab::Pool) -> vocab::AllocRecord {
        vocab::AllocRecord {
            id: 7,
            pool,
            address: 0x2000,
            size: 4096,
            page_size: 1024,
            per_bank_size: 1024,
            shards: 0,
            tag: 0,
            label: String::new(),
            orphan: false,
        }
    }

    #[test]
    fn bridge_pools_are_in_buffer_type_order() {
        for buffer_type in BufferType::ALL {
            let pool = bridge_pool(buffer_type);
            assert_eq!(usize::from(pool.repr), buffer_type.index());
            assert_eq!(buffer_type_of(pool).unwrap(), buffer_type);
        }
    }

    #[test]
    fn an_unknown_pool_from_cpp_is_an_error_not_dram() {
        let e = buffer_type_of(vocab::Pool { repr: 9 }).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnknownBridgeValue {
                    what: "pool",
                    value: 9
                }
            ),
            "{e}"
        );
        let dev = canned(
            vocab::AllocStatus::Placed,
            vec![record(vocab::Pool::L1), record(vocab::Pool { repr: 4 })],
        );
        let e = dev.live_allocations().unwrap_err();
        assert!(e.to_string().contains("pool 4"), "{e}");
        let dev = canned(vocab::AllocStatus::Placed, vec![record(vocab::Pool::L1)]);
        let live = dev.live_allocations().unwrap();
        assert_eq!(live[0].buffer_type, BufferType::L1);
    }

    #[test]
    fn an_unknown_allocation_status_from_cpp_is_an_error() {
        let dev = canned(vocab::AllocStatus { repr: 200 }, Vec::new());
        let e = dev.allocate(BufferType::Dram, 4096, 1024).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnknownBridgeValue {
                    what: "allocation status",
                    value: 200
                }
            ),
            "{e}"
        );
        let dev = canned(vocab::AllocStatus::Placed, Vec::new());
        let b = dev.allocate(BufferType::Dram, 4096, 1024).unwrap();
        assert_eq!((b.address(), b.num_banks()), (0x1000, 12));
    }

    #[test]
    fn requests_cross_the_bridge_as_enums() {
        let mut r = request(BufferType::L1Small);
        r.direction = Direction::TopDown;
        r.shards = Some(3);
        r.address = Some(0x40);
        let raw = r.to_bridge();
        assert_eq!(raw.pool, vocab::Pool::L1Small);
        assert_eq!(raw.direction, vocab::Direction::TopDown);
        assert_eq!(
            (raw.shards, raw.fixed_address, raw.address),
            (3, true, 0x40)
        );
        assert_eq!(
            request(BufferType::Trace).to_bridge().direction,
            vocab::Direction::Default
        );
    }
}

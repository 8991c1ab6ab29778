//! The simulated device: presets, the geometry builder, and the backend over
//! the C++ allocator.

use std::fmt;
use std::str::FromStr;

use cxx::UniquePtr;

use crate::device::{Device, DeviceInfo, DeviceKind, PoolLayout};
use crate::error::{Error, Result};
use crate::ffi::sim::bridge;
use crate::source::{Backend, CarveOuts, Direction, Peaks, Placed, Request};
use crate::types::{Allocation, BufferType, PoolStats, Snapshot};

/// The device models the simulator reproduces, with TT-Metal's default
/// geometry for each.
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, Preset, SimDevice};
///
/// let preset: Preset = "bh".parse()?;
/// assert_eq!(preset, Preset::BlackholeP150);
/// let l1 = *SimDevice::preset(preset).snapshot()?.pool(BufferType::L1);
/// assert_eq!((l1.num_banks, l1.size_per_bank), (110, 1_461_120));
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Wormhole B0, one n150 chip: 12 DRAM banks, 8x8 compute grid.
    WormholeB0,
    /// Wormhole n300, one of its two chips: 12 DRAM banks, 8x7 compute grid.
    WormholeN300,
    /// Blackhole p150: 8 DRAM banks, 11x10 compute grid.
    BlackholeP150,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 3] = [
        Preset::WormholeB0,
        Preset::WormholeN300,
        Preset::BlackholeP150,
    ];

    /// The preset's canonical name (`wormhole_b0`, `wormhole_n300`, `blackhole_p150`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::WormholeB0 => "wormhole_b0",
            Preset::WormholeN300 => "wormhole_n300",
            Preset::BlackholeP150 => "blackhole_p150",
        }
    }

    fn geometry(self) -> bridge::SimGeometry {
        let wormhole = bridge::SimGeometry {
            dram_banks: 12,
            dram_bank_size: 1_073_741_824,
            dram_base: 0x10_0040,
            dram_alignment: 32,
            l1_banks: 64,
            l1_bank_size: 1_499_136,
            l1_base: 0x1_9D60,
            l1_alignment: 16,
            l1_small_size: 0,
            trace_region_size: 0,
            l1_interleaved_limit: 0,
        };
        match self {
            Preset::WormholeB0 => wormhole,
            Preset::WormholeN300 => bridge::SimGeometry {
                l1_banks: 56,
                ..wormhole
            },
            Preset::BlackholeP150 => bridge::SimGeometry {
                dram_banks: 8,
                dram_bank_size: 4_278_190_080,
                dram_base: 0x10_0080,
                dram_alignment: 64,
                l1_banks: 110,
                l1_bank_size: 1_572_864,
                l1_base: 0x1_B480,
                l1_alignment: 16,
                ..wormhole
            },
        }
    }

    fn grid(self) -> (u32, u32) {
        match self {
            Preset::WormholeB0 => (8, 8),
            Preset::WormholeN300 => (8, 7),
            Preset::BlackholeP150 => (11, 10),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Preset {
    type Err = Error;

    /// Accepts the canonical names and the short forms `wh`, `n150`,
    /// `wormhole`, `n300`, `bh`, `p150`, `blackhole`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wormhole_b0" | "wormhole" | "wh" | "n150" => Ok(Preset::WormholeB0),
            "wormhole_n300" | "n300" => Ok(Preset::WormholeN300),
            "blackhole_p150" | "blackhole" | "bh" | "p150" => Ok(Preset::BlackholeP150),
            _ => Err(Error::UnknownPreset {
                value: s.to_string(),
            }),
        }
    }
}

/// Opens simulated devices: an embedded model of TT-Metal's allocator that
/// needs no hardware and no TT-Metal install.
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, SimDevice, KIB, MIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let dram = dev.allocate(BufferType::Dram, MIB, 2048)?;
/// assert_eq!(dram.address(), 0x100040);
/// assert_eq!(dram.size_per_bank(), 88_064);
///
/// let dev = SimDevice::builder(tt_memguard::Preset::BlackholeP150)
///     .l1_small_size(64 * KIB)
///     .build()?;
/// assert_eq!(dev.snapshot()?.pool(BufferType::L1Small).size_per_bank, 64 * KIB);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug)]
pub struct SimDevice {
    _private: (),
}

impl SimDevice {
    /// A Wormhole B0 (n150) with TT-Metal's defaults (no L1_SMALL, no TRACE).
    pub fn wormhole_b0() -> Device {
        Self::preset(Preset::WormholeB0)
    }

    /// One chip of a Wormhole n300 with TT-Metal's defaults.
    pub fn wormhole_n300() -> Device {
        Self::preset(Preset::WormholeN300)
    }

    /// A Blackhole p150 with TT-Metal's defaults.
    pub fn blackhole_p150() -> Device {
        Self::preset(Preset::BlackholeP150)
    }

    /// A preset with TT-Metal's defaults.
    pub fn preset(preset: Preset) -> Device {
        Self::builder(preset)
            .build()
            .expect("preset geometries are valid")
    }

    /// A builder starting from a preset's geometry.
    pub fn builder(preset: Preset) -> SimDeviceBuilder {
        SimDeviceBuilder {
            name: format!("sim:{}", preset.name()),
            geometry: preset.geometry(),
            grid: preset.grid(),
        }
    }
}

/// Configures a simulated device: carve-outs, or a custom geometry.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct SimDeviceBuilder {
    name: String,
    geometry: bridge::SimGeometry,
    grid: (u32, u32),
}

impl SimDeviceBuilder {
    /// Bytes carved from the top of every L1 bank for L1_SMALL (TT-Metal's
    /// `l1_small_size`; rounded up to the DRAM alignment).
    pub fn l1_small_size(mut self, bytes: u64) -> Self {
        self.geometry.l1_small_size = bytes;
        self
    }

    /// Bytes in total for TRACE, carved from the top of every DRAM bank
    /// (TT-Metal's `trace_region_size`).
    pub fn trace_region_size(mut self, bytes: u64) -> Self {
        self.geometry.trace_region_size = bytes;
        self
    }

    /// Number of DRAM banks.
    pub fn dram_banks(mut self, banks: u32) -> Self {
        self.geometry.dram_banks = banks;
        self
    }

    /// Size of one DRAM bank view, and the unreserved base address in it.
    pub fn dram_bank(mut self, size: u64, base: u64) -> Self {
        self.geometry.dram_bank_size = size;
        self.geometry.dram_base = base;
        self
    }

    /// DRAM alignment; it is also the allocator granularity of every pool.
    pub fn dram_alignment(mut self, bytes: u32) -> Self {
        self.geometry.dram_alignment = bytes;
        self
    }

    /// Compute grid: one L1 bank per core.
    pub fn grid(mut self, x: u32, y: u32) -> Self {
        self.grid = (x, y);
        self
    }

    /// Size of one core's L1, and the unreserved base address in it.
    pub fn l1_bank(mut self, size: u64, base: u64) -> Self {
        self.geometry.l1_bank_size = size;
        self.geometry.l1_base = base;
        self
    }

    /// L1 page alignment.
    pub fn l1_alignment(mut self, bytes: u32) -> Self {
        self.geometry.l1_alignment = bytes;
        self
    }

    /// Lowest address an interleaved L1 buffer may take (default: the L1 base).
    pub fn l1_interleaved_limit(mut self, address: u64) -> Self {
        self.geometry.l1_interleaved_limit = address;
        self
    }

    /// The device's name in reports (default `sim:<preset>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Opens the device.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidGeometry`] naming the field when the geometry cannot
    /// describe a device (no banks, alignments that are not powers of two,
    /// device totals past 64 bits, ...), and for a carve-out that leaves no
    /// room for its parent pool, with the largest value that fits. TT-Metal
    /// 0.81.1 opens some of those (an `l1_small_size` near 2^64 wraps around
    /// to no L1_SMALL at all, a TRACE region larger than DRAM to a DRAM pool
    /// of nearly 2^64 bytes); both backends refuse them.
    pub fn build(self) -> Result<Device> {
        let (x, y) = self.grid;
        let cores = x.checked_mul(y).ok_or_else(|| Error::InvalidGeometry {
            reason: format!("grid {x}x{y} has too many cores"),
        })?;
        let geometry = bridge::SimGeometry {
            l1_banks: cores,
            ..self.geometry
        };
        // The carve-outs, with the numbers and the largest value that fits
        // (the C++ side checks them too, and everything else).
        let g = &geometry;
        if g.l1_bank_size > g.l1_base && g.dram_bank_size > g.dram_base {
            let carve_outs = CarveOuts {
                l1_small_size: g.l1_small_size,
                trace_region_size: g.trace_region_size,
                granularity: u64::from(g.dram_alignment),
                dram_banks: g.dram_banks,
                l1_room: g.l1_bank_size - g.l1_base,
                dram_room: g.dram_bank_size - g.dram_base,
            };
            if let Some(reason) = carve_outs.problem() {
                return Err(Error::InvalidGeometry { reason });
            }
        }
        let inner = bridge::new_sim_device(&geometry).map_err(|e| Error::InvalidGeometry {
            reason: e.what().to_string(),
        })?;
        let raw = inner.snapshot();
        let granularity = u64::from(geometry.dram_alignment);
        let info = DeviceInfo {
            name: self.name,
            kind: DeviceKind::Simulated,
            compute_grid: (x, y),
            l1_small_size: geometry.l1_small_size,
            trace_region_size: geometry.trace_region_size,
            pools: raw.pools.map(|p| PoolLayout {
                banks: p.banks,
                alignment: p.alignment,
                granularity,
            }),
        };
        let banks = raw.pools.map(|p| p.banks);
        let l1_limit = match geometry.l1_interleaved_limit {
            0 => geometry.l1_base,
            limit => limit,
        };
        let backend = SimBackend {
            inner,
            banks,
            l1_limit,
            granularity,
        };
        Ok(Device::from_backend(info, Box::new(backend)))
    }
}

/// The backend over the C++ simulated device.
struct SimBackend {
    inner: UniquePtr<bridge::SimDevice>,
    banks: [u32; 4],
    l1_limit: u64,
    /// The allocator granularity of every pool (the DRAM alignment).
    granularity: u64,
}

impl SimBackend {
    fn device(&mut self) -> std::pin::Pin<&mut bridge::SimDevice> {
        self.inner.pin_mut()
    }
}

pub(crate) fn pool_stats(buffer_type: BufferType, raw: &bridge::RawPool) -> PoolStats {
    PoolStats {
        buffer_type,
        num_banks: raw.banks,
        base_address: raw.base,
        alignment: raw.alignment,
        size_per_bank: raw.total_allocatable,
        allocated_per_bank: raw.allocated,
        free_per_bank: raw.free,
        largest_free_block_per_bank: raw.largest_free,
    }
}

pub(crate) fn snapshot_from_raw(raw: &bridge::RawSnapshot) -> Snapshot {
    Snapshot {
        pools: BufferType::ALL.map(|t| pool_stats(t, &raw.pools[t.index()])),
    }
}

fn cpp(context: &'static str) -> impl FnOnce(cxx::Exception) -> Error {
    move |source| Error::Cpp { context, source }
}

impl Backend for SimBackend {
    fn allocate(&mut self, request: &Request) -> Result<Placed> {
        let raw = bridge::RawRequest {
            pool: request.buffer_type.index() as u8,
            size: request.size,
            page_size: request.page_size,
            shards: request.shards.unwrap_or(0),
            direction: match request.direction {
                Direction::Default => 0,
                Direction::BottomUp => 1,
                Direction::TopDown => 2,
            },
            fixed_address: request.address.is_some(),
            address: request.address.unwrap_or(0),
            tag: request.tag,
        };
        let label = request.label.as_deref().unwrap_or("");
        let out = self
            .device()
            .allocate(&raw, label)
            .map_err(cpp("allocating on the simulated device"))?;
        let pool = &out.pool_at_failure;
        match out.status {
            0 => Ok(Placed {
                id: out.id,
                slot: out.slot,
                address: out.address,
                per_bank_size: out.per_bank_size,
                num_banks: self.banks[request.buffer_type.index()],
            }),
            1 => Err(Error::OutOfMemory {
                buffer_type: request.buffer_type,
                size: request.size,
                banks: out.banks,
                needed_per_bank: out.size_per_bank,
                size_per_bank: pool.total_allocatable,
                allocated_per_bank: pool.allocated,
                free_per_bank: pool.free,
                largest_free_block_per_bank: pool.largest_free,
            }),
            2 => Err(Error::BelowAddressLimit {
                size: request.size,
                limit: self.l1_limit,
            }),
            3 => Err(Error::AddressNotFree {
                buffer_type: request.buffer_type,
                address: request.address.unwrap_or(0),
                size: request.size,
            }),
            5 => {
                let layout = crate::device::PoolLayout {
                    banks: out.banks,
                    alignment: pool.alignment,
                    granularity: self.granularity,
                };
                Err(Error::BufferTooLarge {
                    buffer_type: request.buffer_type,
                    size: request.size,
                    page_size: request.page_size,
                    banks: out.banks,
                    needed_per_bank: layout.block_size(request.size, request.page_size, out.banks),
                })
            }
            6 => Err(Error::AddressUnaligned {
                buffer_type: request.buffer_type,
                address: request.address.unwrap_or(0),
                size: request.size,
                granularity: self.granularity,
                base: pool.base,
            }),
            _ => Err(Error::Rejected {
                reason: format!(
                    "the simulated allocator rejected {request:?}; this is a bug in tt-memguard's validation"
                ),
            }),
        }
    }

    fn deallocate(&mut self, id: u64, slot: u32) -> Result<bool> {
        Ok(self.device().deallocate(slot, id))
    }

    fn snapshot(&self) -> Result<Snapshot> {
        Ok(snapshot_from_raw(&self.inner.snapshot()))
    }

    fn live(&self) -> Result<Vec<(Allocation, u64)>> {
        let records = self.inner.live().map_err(cpp("listing live allocations"))?;
        Ok(records
            .into_iter()
            .map(|r| allocation_from_record!(r, self.banks))
            .collect())
    }

    fn live_count(&self) -> Result<u64> {
        Ok(self.inner.live_count())
    }

    fn next_id(&self) -> Result<u64> {
        Ok(self.inner.next_id())
    }

    fn mark_peak(&mut self) -> Result<u32> {
        self.device().mark_peak().map_err(cpp("taking a peak mark"))
    }

    fn read_peak(&self, mark: u32) -> Result<Peaks> {
        self.inner
            .read_peak(mark)
            .map_err(cpp("reading a peak mark"))
    }

    fn release_peak(&mut self, mark: u32) {
        self.device().release_peak(mark);
    }

    fn reset(&mut self) -> bool {
        self.device().reset()
    }

    fn scan_snapshot(&self) -> Option<Snapshot> {
        Some(snapshot_from_raw(&self.inner.scan_snapshot()))
    }
}

/// The device's statistics computed by scanning every block, the way
/// TT-Metal computes them (O(blocks)); `None` for a device that is not
/// simulated or is closed.
pub fn scan_snapshot(device: &Device) -> Option<Snapshot> {
    device.with_backend(|b| b.scan_snapshot())
}

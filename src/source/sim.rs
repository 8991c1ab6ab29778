//! The simulated device: presets, the geometry builder, and the backend over
//! the C++ allocator.

use std::fmt;
use std::str::FromStr;

use cxx::UniquePtr;

use crate::device::{Device, DeviceKind};
use crate::error::{Error, Result};
use crate::ffi::sim::bridge;
use crate::ffi::vocab::bridge::{AllocOutcome, AllocRecord, CbCheck, EnqueueOutcome, PoolSnapshot};
use crate::source::{Adapter, Bridge, CarveOuts, CbRequest, Opened, Peaks, Request, core_box};
use crate::types::{MeshCoord, MeshShape, Snapshot};

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

    /// The preset's geometry, as TT-Metal reports it for the device opened
    /// with its defaults; the one definition the simulator, the TT-Metal
    /// backend's preset matching and the tests all use.
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{BufferType, Preset, SimDevice};
    ///
    /// let g = Preset::WormholeN300.geometry();
    /// assert_eq!((g.dram_banks, g.grid), (12, (8, 7)));
    /// // A Wormhole with twice the DRAM per bank.
    /// let dev = SimDevice::builder(Preset::WormholeB0)
    ///     .dram_bank(2 * g.dram_bank_size, g.dram_base)
    ///     .build()?;
    /// let dram = *dev.snapshot()?.pool(BufferType::Dram);
    /// assert_eq!(dram.base_address + dram.size_per_bank, 2 * g.dram_bank_size);
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub const fn geometry(self) -> PresetGeometry {
        const WORMHOLE: PresetGeometry = PresetGeometry {
            dram_banks: 12,
            dram_bank_size: 1_073_741_824,
            dram_base: 0x10_0040,
            dram_alignment: 32,
            grid: (8, 8),
            l1_bank_size: 1_499_136,
            l1_base: 0x1_9D60,
            l1_alignment: 16,
            max_circular_buffers: 32,
        };
        match self {
            Preset::WormholeB0 => WORMHOLE,
            Preset::WormholeN300 => PresetGeometry {
                grid: (8, 7),
                ..WORMHOLE
            },
            Preset::BlackholeP150 => PresetGeometry {
                dram_banks: 8,
                dram_bank_size: 4_278_190_080,
                dram_base: 0x10_0080,
                dram_alignment: 64,
                grid: (11, 10),
                l1_bank_size: 1_572_864,
                l1_base: 0x1_B480,
                l1_alignment: 16,
                max_circular_buffers: 64,
            },
        }
    }
}

/// A simulated device's geometry before carve-outs: banks, bank sizes,
/// unreserved bases and alignments (from [`Preset::geometry`]; change them
/// with [`SimDeviceBuilder`]).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PresetGeometry {
    /// Number of DRAM banks (one per DRAM channel view).
    pub dram_banks: u32,
    /// Bytes of one DRAM bank view.
    pub dram_bank_size: u64,
    /// Lowest unreserved address in every DRAM bank.
    pub dram_base: u64,
    /// DRAM page alignment in bytes; also the allocator granularity of
    /// every pool.
    pub dram_alignment: u32,
    /// Compute grid (x, y): one L1 bank per core.
    pub grid: (u32, u32),
    /// Bytes of one core's L1.
    pub l1_bank_size: u64,
    /// Lowest unreserved address in every core's L1.
    pub l1_base: u64,
    /// L1 page alignment in bytes.
    pub l1_alignment: u32,
    /// Circular buffers a core has (buffer indices 0 to this minus 1): 32 on
    /// Wormhole, 64 on Blackhole.
    pub max_circular_buffers: u32,
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
            l1_small_size: 0,
            trace_region_size: 0,
            l1_interleaved_limit: None,
            mesh_shape: None,
            mesh_chip: None,
        }
    }
}

/// Configures a simulated device: carve-outs, or a custom geometry.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct SimDeviceBuilder {
    name: String,
    geometry: PresetGeometry,
    l1_small_size: u64,
    trace_region_size: u64,
    l1_interleaved_limit: Option<u64>,
    mesh_shape: Option<MeshShape>,
    mesh_chip: Option<MeshCoord>,
}

impl SimDeviceBuilder {
    /// Makes the device a mesh's device (its buffers are the mesh's, placed
    /// once for every chip) or one chip's own allocator.
    pub(crate) fn mesh_place(mut self, shape: Option<MeshShape>, chip: Option<MeshCoord>) -> Self {
        self.mesh_shape = shape;
        self.mesh_chip = chip;
        self
    }

    /// The device's name in reports.
    pub(crate) fn name_str(&self) -> &str {
        &self.name
    }

    /// Bytes carved from the top of every L1 bank for L1_SMALL (TT-Metal's
    /// `l1_small_size`; rounded up to the DRAM alignment).
    pub fn l1_small_size(mut self, bytes: u64) -> Self {
        self.l1_small_size = bytes;
        self
    }

    /// Bytes in total for TRACE, carved from the top of every DRAM bank
    /// (TT-Metal's `trace_region_size`).
    pub fn trace_region_size(mut self, bytes: u64) -> Self {
        self.trace_region_size = bytes;
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
        self.geometry.grid = (x, y);
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

    /// Lowest address an interleaved L1 buffer may take (default: the L1
    /// base, as on every device TT-Metal 0.81.1 opens). An interleaved L1
    /// buffer whose place lies lower is refused with
    /// [`Error::BelowAddressLimit`], and, as TT-Metal's allocator does, the
    /// block it was given stays allocated until the device is closed: the
    /// device lists it among its live allocations as an orphaned block
    /// ([`Allocation::orphaned`](crate::Allocation::orphaned)), under the
    /// location of the refused call, and TT-Metal's lowest occupied L1
    /// address (which circular buffers are checked against) does not see it
    /// until a free below it moves that address up to it. Sharded buffers
    /// are not limited.
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{BufferType, Direction, Error, Preset, SimDevice};
    ///
    /// let dev = SimDevice::builder(Preset::WormholeB0).l1_interleaved_limit(0x1_AD60).build()?;
    /// let refused = dev
    ///     .buffer(BufferType::L1, 64 * 2048)
    ///     .page_size(2048)
    ///     .direction(Direction::BottomUp)
    ///     .allocate();
    /// assert!(matches!(refused, Err(Error::BelowAddressLimit { address: 0x1_9D60, .. })));
    /// let kept = &dev.live_allocations()?[0];
    /// assert!(kept.orphaned && kept.size_per_bank == 2048);
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub fn l1_interleaved_limit(mut self, address: u64) -> Self {
        self.l1_interleaved_limit = Some(address);
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
        let g = self.geometry;
        let (x, y) = g.grid;
        let cores = x.checked_mul(y).ok_or_else(|| Error::InvalidGeometry {
            reason: format!("grid {x}x{y} has too many cores"),
        })?;
        let geometry = bridge::SimGeometry {
            dram_banks: g.dram_banks,
            dram_bank_size: g.dram_bank_size,
            dram_base: g.dram_base,
            dram_alignment: g.dram_alignment,
            l1_banks: cores,
            l1_bank_size: g.l1_bank_size,
            l1_base: g.l1_base,
            l1_alignment: g.l1_alignment,
            l1_small_size: self.l1_small_size,
            trace_region_size: self.trace_region_size,
            // 0: the L1 base.
            l1_interleaved_limit: self.l1_interleaved_limit.unwrap_or(0),
            max_circular_buffers: g.max_circular_buffers,
        };
        // The carve-outs, with the numbers and the largest value that fits
        // (the C++ side checks them too, and everything else).
        if g.l1_bank_size > g.l1_base && g.dram_bank_size > g.dram_base {
            let carve_outs = CarveOuts {
                l1_small_size: self.l1_small_size,
                trace_region_size: self.trace_region_size,
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
        let opened = Opened {
            name: self.name,
            kind: DeviceKind::Simulated,
            compute_grid: (x, y),
            l1_small_size: self.l1_small_size,
            trace_region_size: self.trace_region_size,
            l1_interleaved_limit: self.l1_interleaved_limit.filter(|&limit| limit != 0),
            mesh_shape: self.mesh_shape,
            mesh_chip: self.mesh_chip,
        };
        Adapter::into_device(SimBridge { inner }, opened)
    }
}

/// The simulated device's C++ half.
struct SimBridge {
    inner: UniquePtr<bridge::SimDevice>,
}

fn cpp(context: &'static str) -> impl FnOnce(cxx::Exception) -> Error {
    move |source| Error::Cpp { context, source }
}

impl Bridge for SimBridge {
    fn allocate(&mut self, request: &Request) -> Result<AllocOutcome> {
        self.inner
            .pin_mut()
            .allocate(&request.to_bridge(), request.label_str())
            .map_err(cpp("allocating on the simulated device"))
    }

    fn deallocate(&mut self, id: u64, slot: u32) -> Result<bool> {
        Ok(self.inner.pin_mut().deallocate(slot, id))
    }

    fn snapshot<T>(&self, read: impl FnOnce(&PoolSnapshot) -> T) -> Result<T> {
        Ok(read(&self.inner.snapshot()))
    }

    fn live(&self) -> Result<Vec<AllocRecord>> {
        self.inner.live().map_err(cpp("listing live allocations"))
    }

    fn live_count(&self) -> Result<u64> {
        Ok(self.inner.live_count())
    }

    fn next_id(&self) -> Result<u64> {
        Ok(self.inner.next_id())
    }

    fn mark_peak(&mut self) -> Result<u32> {
        self.inner
            .pin_mut()
            .mark_peak()
            .map_err(cpp("taking a peak mark"))
    }

    fn read_peak(&self, mark: u32) -> Result<Peaks> {
        self.inner
            .read_peak(mark)
            .map_err(cpp("reading a peak mark"))
    }

    fn release_peak(&mut self, mark: u32) {
        self.inner.pin_mut().release_peak(mark);
    }

    fn reset(&mut self) -> bool {
        self.inner.pin_mut().reset()
    }

    fn scan_snapshot(&self) -> Option<PoolSnapshot> {
        Some(self.inner.scan_snapshot())
    }

    fn create_program(&mut self) -> Result<u64> {
        Ok(self.inner.pin_mut().create_program())
    }

    fn add_circular_buffer(&mut self, program: u64, cb: &CbRequest) -> Result<CbCheck> {
        let ranges: Vec<_> = cb.ranges.iter().map(core_box).collect();
        let backing = match cb.backing {
            Some((id, slot, address)) => bridge::CbBacking { id, slot, address },
            None => bridge::CbBacking::default(),
        };
        Ok(self.inner.pin_mut().add_circular_buffer(
            program,
            &ranges,
            cb.size,
            &cb.indices,
            &backing,
        ))
    }

    fn enqueue_program(&mut self, program: u64) -> Result<EnqueueOutcome> {
        Ok(self.inner.pin_mut().enqueue_program(program))
    }

    fn program_addresses(&self, program: u64) -> Result<Vec<u64>> {
        Ok(self.inner.program_addresses(program))
    }

    fn destroy_program(&mut self, program: u64) -> Result<bool> {
        Ok(self.inner.pin_mut().destroy_program(program))
    }
}

/// The device's statistics computed by scanning every block, the way
/// TT-Metal computes them (O(blocks)); `None` for a device that is not
/// simulated or is closed.
pub fn scan_snapshot(device: &Device) -> Option<Snapshot> {
    device.with_backend(|b| b.scan_snapshot())
}

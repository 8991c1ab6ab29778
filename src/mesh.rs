//! TT-Metal's mesh: a `MeshDevice` of rows by columns of chips of one model.
//! A mesh buffer is placed once, by one allocator, at the same address on
//! every chip; each chip also keeps its own allocator, for buffers on that
//! chip alone, which knows nothing of the mesh's buffers.
//!
//! Facts (measured on TT-Metal 0.81.1 in mock mode, a 1x2 mesh on an n300
//! and a 2x4 mesh on a T3000): `MeshDevice::allocator()` is one allocator
//! for the whole mesh, whose statistics are one chip's (12 DRAM banks, the
//! chip's L1 banks); a `MeshBuffer` has the same address on every chip; a
//! buffer created on one chip's `IDevice` is placed by that chip's own
//! allocator, which the mesh's does not see (the two can overlap), and the
//! mesh's statistics and lowest L1 address do not count it. A program in a
//! mesh workload lays its circular buffers out the same way on every chip
//! it runs on, and its clash check reads the mesh's lowest L1 buffer.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::group::MemorySource;
use crate::source::sim::{Preset, SimDevice, SimDeviceBuilder};
use crate::types::{MeshCoord, MeshShape};

/// The meshes users run models on, as simulated meshes of chips of one
/// [`Preset`].
///
/// # Examples
///
/// ```
/// use tt_memguard::{MeshPreset, MeshShape, Preset};
///
/// let t3000: MeshPreset = "t3000".parse()?;
/// assert_eq!((t3000.shape(), t3000.chip()), (MeshShape::new(2, 4), Preset::WormholeN300));
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeshPreset {
    /// The two chips of an n300 board as a 1x2 mesh.
    N300,
    /// A T3000: four n300 boards, eight chips as a 2x4 mesh.
    T3000,
    /// A Wormhole Galaxy: 32 chips as a 4x8 mesh. Its chips have the
    /// geometry of the n150 preset ([`Preset::WormholeB0`], an 8x8 grid);
    /// TT-Metal 0.81.1's mock mode opens no Galaxy here to measure it
    /// against: give another chip with [`SimMesh::with_chip`].
    Galaxy,
}

impl MeshPreset {
    /// Every mesh preset.
    pub const ALL: [MeshPreset; 3] = [MeshPreset::N300, MeshPreset::T3000, MeshPreset::Galaxy];

    /// The canonical name (`n300_mesh`, `t3000`, `galaxy`), which names the
    /// simulated mesh in reports (`sim:t3000`, its chips `sim:t3000[0,1]`).
    pub fn name(self) -> &'static str {
        match self {
            MeshPreset::N300 => "n300_mesh",
            MeshPreset::T3000 => "t3000",
            MeshPreset::Galaxy => "galaxy",
        }
    }

    /// The mesh's shape.
    pub fn shape(self) -> MeshShape {
        match self {
            MeshPreset::N300 => MeshShape::new(1, 2),
            MeshPreset::T3000 => MeshShape::new(2, 4),
            MeshPreset::Galaxy => MeshShape::new(4, 8),
        }
    }

    /// The model of every chip.
    pub fn chip(self) -> Preset {
        match self {
            MeshPreset::N300 | MeshPreset::T3000 => Preset::WormholeN300,
            MeshPreset::Galaxy => Preset::WormholeB0,
        }
    }
}

impl fmt::Display for MeshPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for MeshPreset {
    type Err = Error;

    /// Accepts the canonical names and `n300-mesh`, `n300x2`, `t3k`,
    /// `wh_galaxy`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "n300_mesh" | "n300-mesh" | "n300x2" => Ok(MeshPreset::N300),
            "t3000" | "t3k" => Ok(MeshPreset::T3000),
            "galaxy" | "wh_galaxy" => Ok(MeshPreset::Galaxy),
            _ => Err(Error::UnknownMeshPreset {
                value: s.to_string(),
            }),
        }
    }
}

/// A mesh of chips as TT-Metal's `MeshDevice` has it. It is a [`Device`]
/// (it dereferences to one): buffers allocated on it are mesh buffers,
/// placed once by the mesh's one allocator at the same address on every
/// chip, and programs enqueued on it lay their circular buffers out on
/// every chip. Its snapshot, guards and reports give one chip's figures,
/// which are every chip's. [`chip`](Self::chip) reaches one chip's own
/// allocator, for buffers on that chip alone.
///
/// TT-Metal places a chip's own buffers with the chip's allocator, which
/// does not see the mesh's buffers, and the mesh's allocator does not see
/// them either: both start from the same end of a pool, so a chip's own
/// buffer usually lands on a mesh buffer, and the two overwrite each
/// other. The simulated mesh places both as TT-Metal does, and refuses
/// either one when it would lie on a live buffer of the other kind
/// ([`Error::MeshOverlap`]).
///
/// A guard on the mesh (or on its [`Device`]) covers the chips too: a
/// chip whose own allocator was used has a report of its own, named like
/// `sim:t3000[0,1]`; chips nobody used are left out of the report, since
/// they cannot differ from the mesh.
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, Direction, Error, MemoryGuard, SimMesh, KIB, MIB};
///
/// let mesh = SimMesh::t3000();
/// let guard = MemoryGuard::new(&mesh);
/// let weights = mesh.allocate(BufferType::Dram, 8 * MIB, 2048)?; // on all 8 chips
/// assert_eq!(weights.address(), 0x100040);
///
/// // Chip [1,3]'s own allocator would put this buffer on the weights.
/// let chip = mesh.chip((1, 3))?;
/// let e = chip.allocate(BufferType::Dram, MIB, 2048).unwrap_err();
/// assert!(matches!(e, Error::MeshOverlap { address: 0x100040, .. }));
/// // From the other end of DRAM it fits, on chip [1,3] alone.
/// let scratch = chip.buffer(BufferType::Dram, MIB).page_size(2048).direction(Direction::TopDown).allocate()?;
///
/// drop((weights, scratch));
/// let report = guard.finish()?;
/// let names: Vec<&str> = report.devices.iter().map(|d| d.device.as_str()).collect();
/// assert_eq!(names, ["sim:t3000", "sim:t3000[1,3]"]);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Clone)]
pub struct MeshDevice {
    device: Device,
}

impl fmt::Debug for MeshDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshDevice")
            .field("name", &self.device.name())
            .field("shape", &self.shape())
            .field("closed", &self.device.is_closed())
            .finish()
    }
}

impl MeshDevice {
    /// Wraps a mesh's device and its chips' own allocators (row by row).
    pub(crate) fn from_parts(device: Device, chips: Vec<Device>) -> MeshDevice {
        device.set_chips(chips);
        MeshDevice { device }
    }

    /// The mesh a device is the device of (the runner hands a test its
    /// mesh's [`Device`]); `None` for any other device.
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{Device, MeshDevice, SimDevice, SimMesh};
    ///
    /// fn chips(dev: &Device) -> u32 {
    ///     MeshDevice::of(dev).map_or(1, |mesh| mesh.shape().chips())
    /// }
    /// assert_eq!(chips(&SimMesh::n300()), 2);
    /// assert_eq!(chips(&SimDevice::wormhole_b0()), 1);
    /// ```
    pub fn of(device: &Device) -> Option<MeshDevice> {
        device.info().mesh_shape.map(|_| MeshDevice {
            device: device.clone(),
        })
    }

    /// The mesh's shape.
    pub fn shape(&self) -> MeshShape {
        self.device
            .info()
            .mesh_shape
            .expect("a MeshDevice's device has a mesh shape")
    }

    /// The mesh's device: where mesh buffers are allocated and programs
    /// enqueued.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// One chip's own allocator: buffers allocated on it are on that chip
    /// alone. As in TT-Metal, it knows nothing of the mesh's buffers (and
    /// the mesh's statistics do not count its own): a buffer it would place
    /// on a live mesh buffer is refused ([`Error::MeshOverlap`]). Programs
    /// are enqueued on the mesh, not here.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchChip`] when the coordinate is outside the mesh;
    /// [`Error::Unsupported`] on a mesh opened through TT-Metal, which
    /// observes the mesh's allocator only.
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::SimMesh;
    ///
    /// let mesh = SimMesh::n300();
    /// assert_eq!(mesh.chip((0, 1))?.name(), "sim:n300_mesh[0,1]");
    /// assert!(mesh.chip((1, 0)).is_err());
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub fn chip(&self, coord: impl Into<MeshCoord>) -> Result<&Device> {
        let coord = coord.into();
        let shape = self.shape();
        let chips = self.device.chips();
        if chips.is_empty() && shape.contains(coord) {
            return Err(Error::Unsupported {
                what: "one chip's own allocator on a mesh opened through TT-Metal",
                instead: "allocate on the mesh, or check buffers on one chip alone on a simulated mesh (SimMesh)",
            });
        }
        let index = u64::from(coord.row) * u64::from(shape.cols) + u64::from(coord.col);
        match usize::try_from(index).ok().and_then(|i| chips.get(i)) {
            Some(chip) if shape.contains(coord) => Ok(chip),
            _ => Err(Error::NoSuchChip {
                mesh: self.device.name().to_string(),
                coord,
                shape,
            }),
        }
    }

    /// Every chip's own allocator with its coordinate, row by row.
    pub fn chips(&self) -> impl Iterator<Item = (MeshCoord, &Device)> {
        self.shape().coords().zip(self.device.chips())
    }
}

impl Deref for MeshDevice {
    type Target = Device;

    fn deref(&self) -> &Device {
        &self.device
    }
}

impl MemorySource for MeshDevice {
    /// The mesh's device; a guard on it covers every chip's own allocator
    /// too (and reports the chips something happened on).
    fn devices(&self) -> Vec<Device> {
        vec![self.device.clone()]
    }
}

/// Opens simulated meshes: every chip a simulated device of one model, the
/// mesh's buffers placed by one allocator of that model's geometry.
///
/// # Examples
///
/// ```
/// use tt_memguard::{BufferType, MeshShape, Preset, SimDevice, SimMesh, KIB};
///
/// let galaxy = SimMesh::galaxy();
/// assert_eq!(galaxy.shape(), MeshShape::new(4, 8));
///
/// // A 2x2 mesh of Blackhole p150 chips with 64 KiB of L1_SMALL each.
/// let mesh = SimMesh::with_chip(SimDevice::builder(Preset::BlackholeP150), MeshShape::new(2, 2))
///     .l1_small_size(64 * KIB)
///     .build()?;
/// assert_eq!(mesh.name(), "sim:blackhole_p150_2x2");
/// assert_eq!(mesh.chip((1, 1))?.snapshot()?.pool(BufferType::L1Small).size_per_bank, 64 * KIB);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug)]
pub struct SimMesh {
    _private: (),
}

impl SimMesh {
    /// An n300 as a 1x2 mesh.
    pub fn n300() -> MeshDevice {
        Self::preset(MeshPreset::N300)
    }

    /// A T3000 as a 2x4 mesh.
    pub fn t3000() -> MeshDevice {
        Self::preset(MeshPreset::T3000)
    }

    /// A Galaxy as a 4x8 mesh (see [`MeshPreset::Galaxy`] for its chips).
    pub fn galaxy() -> MeshDevice {
        Self::preset(MeshPreset::Galaxy)
    }

    /// A mesh preset with TT-Metal's defaults.
    pub fn preset(preset: MeshPreset) -> MeshDevice {
        Self::builder(preset)
            .build()
            .expect("mesh presets are valid")
    }

    /// A builder starting from a mesh preset.
    pub fn builder(preset: MeshPreset) -> SimMeshBuilder {
        SimMeshBuilder {
            chip: SimDevice::builder(preset.chip()),
            shape: preset.shape(),
            name: format!("sim:{}", preset.name()),
        }
    }

    /// A builder for a mesh of `shape` chips, each as `chip` configures it
    /// (geometry and carve-outs); named `<chip's name>_<rows>x<cols>`.
    pub fn with_chip(chip: SimDeviceBuilder, shape: MeshShape) -> SimMeshBuilder {
        let name = format!("{}_{shape}", chip.name_str());
        SimMeshBuilder { chip, shape, name }
    }
}

/// The most chips a simulated mesh may have.
const MAX_CHIPS: u32 = 1024;

/// Configures a simulated mesh: carve-outs (every chip's), its name.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct SimMeshBuilder {
    chip: SimDeviceBuilder,
    shape: MeshShape,
    name: String,
}

impl SimMeshBuilder {
    /// Bytes of every chip's L1 carved for L1_SMALL (TT-Metal opens a mesh
    /// with one `l1_small_size` for all chips).
    pub fn l1_small_size(mut self, bytes: u64) -> Self {
        self.chip = self.chip.l1_small_size(bytes);
        self
    }

    /// Bytes of every chip's DRAM in total carved for TRACE.
    pub fn trace_region_size(mut self, bytes: u64) -> Self {
        self.chip = self.chip.trace_region_size(bytes);
        self
    }

    /// The mesh's name in reports; its chips are `<name>[row,col]`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Opens the mesh: its device and every chip's own allocator.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMesh`] for a shape with no chip or more than 1,024;
    /// the chip's [`SimDeviceBuilder::build`] errors.
    pub fn build(self) -> Result<MeshDevice> {
        let shape = self.shape;
        if shape.rows == 0 || shape.cols == 0 {
            return Err(Error::InvalidMesh {
                reason: format!("a {shape} mesh has no chip: give at least 1 row and 1 column"),
            });
        }
        if u64::from(shape.rows) * u64::from(shape.cols) > u64::from(MAX_CHIPS) {
            return Err(Error::InvalidMesh {
                reason: format!(
                    "a {shape} mesh has {} chips: a simulated mesh has at most {MAX_CHIPS}",
                    u64::from(shape.rows) * u64::from(shape.cols)
                ),
            });
        }
        let device = self
            .chip
            .clone()
            .name(self.name.clone())
            .mesh_place(Some(shape), None)
            .build()?;
        let chips = shape
            .coords()
            .map(|coord| {
                self.chip
                    .clone()
                    .name(format!("{}{coord}", self.name))
                    .mesh_place(None, Some(coord))
                    .build()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MeshDevice::from_parts(device, chips))
    }
}

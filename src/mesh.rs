//! Memory sources: a device, or a mesh of several, whose allocators a guard
//! snapshots and whose allocations it observes.

use crate::device::Device;
use crate::error::Result;
use crate::source::sim::{Preset, SimDevice};

/// Something whose allocators can be snapshotted and whose allocations can
/// be observed: one [`Device`], or a [`Mesh`] of several. Guards, macros and
/// the runner take any source; a report has one verdict per device.
///
/// # Examples
///
/// ```
/// use tt_memguard::{MemorySource, Mesh, Preset, SimDevice};
///
/// fn device_count(source: &impl MemorySource) -> usize {
///     source.devices().len()
/// }
/// assert_eq!(device_count(&SimDevice::wormhole_b0()), 1);
/// assert_eq!(device_count(&Mesh::sim(Preset::WormholeN300, 2)?), 2);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
pub trait MemorySource {
    /// The devices of the source, in report order.
    fn devices(&self) -> Vec<Device>;
}

impl MemorySource for Device {
    fn devices(&self) -> Vec<Device> {
        vec![self.clone()]
    }
}

impl<T: MemorySource + ?Sized> MemorySource for &T {
    fn devices(&self) -> Vec<Device> {
        (**self).devices()
    }
}

impl MemorySource for [Device] {
    fn devices(&self) -> Vec<Device> {
        self.to_vec()
    }
}

impl MemorySource for Vec<Device> {
    fn devices(&self) -> Vec<Device> {
        self.clone()
    }
}

/// Several devices checked together (for example the two chips of an n300,
/// or a multi-chip mesh); each keeps its own allocator.
///
/// # Examples
///
/// ```
/// use tt_memguard::{Mesh, Preset};
///
/// let mesh = Mesh::sim(Preset::WormholeN300, 2)?;
/// assert_eq!(mesh.len(), 2);
/// assert_eq!(mesh.device(1).name(), "sim:wormhole_n300#1");
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Mesh {
    devices: Vec<Device>,
}

impl Mesh {
    /// A mesh of already open devices.
    pub fn new(devices: Vec<Device>) -> Mesh {
        Mesh { devices }
    }

    /// `count` simulated devices of one preset, named `sim:<preset>#<i>`.
    ///
    /// # Errors
    ///
    /// None for the presets; kept as `Result` for custom geometries.
    pub fn sim(preset: Preset, count: usize) -> Result<Mesh> {
        let devices = (0..count)
            .map(|i| {
                SimDevice::builder(preset)
                    .name(format!("sim:{}#{i}", preset.name()))
                    .build()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Mesh { devices })
    }

    /// The `index`th device.
    ///
    /// # Panics
    ///
    /// When `index` is out of range.
    pub fn device(&self, index: usize) -> &Device {
        &self.devices[index]
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether the mesh has no device.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The devices.
    pub fn iter(&self) -> impl Iterator<Item = &Device> {
        self.devices.iter()
    }
}

impl MemorySource for Mesh {
    fn devices(&self) -> Vec<Device> {
        self.devices.clone()
    }
}

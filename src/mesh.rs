//! Memory sources: a device, or a mesh of several, whose allocators a guard
//! snapshots and whose allocations it observes.

use crate::device::Device;
use crate::error::{Error, Result};
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
/// or a multi-chip mesh); each keeps its own allocator. A mesh holds at
/// least one device, and each device once.
///
/// # Examples
///
/// ```
/// use tt_memguard::{Mesh, Preset, SimDevice};
///
/// let mesh = Mesh::sim(Preset::WormholeN300, 2)?;
/// assert_eq!(mesh.len(), 2);
/// assert_eq!(mesh.device(1).name(), "sim:wormhole_n300#1");
/// assert!(mesh.get(2).is_none());
///
/// let mixed = Mesh::new(vec![SimDevice::wormhole_b0(), SimDevice::blackhole_p150()])?;
/// assert_eq!(mixed.len(), 2);
/// assert!(Mesh::new(Vec::new()).is_err());
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Mesh {
    devices: Vec<Device>,
}

impl Mesh {
    /// A mesh of already open devices, in report order.
    ///
    /// # Errors
    ///
    /// [`Error::NoDevice`] when `devices` is empty;
    /// [`Error::DuplicateDevice`] when it holds one device twice (two
    /// handles of the same device).
    pub fn new(devices: Vec<Device>) -> Result<Mesh> {
        if devices.is_empty() {
            return Err(Error::NoDevice {
                context: "the list given to Mesh::new is empty",
            });
        }
        for (i, device) in devices.iter().enumerate() {
            if devices[..i].iter().any(|d| d.same_device(device)) {
                return Err(Error::DuplicateDevice {
                    context: "the list given to Mesh::new",
                    device: device.name().to_string(),
                });
            }
        }
        Ok(Mesh { devices })
    }

    /// `count` simulated devices of one preset, named `sim:<preset>#<i>`.
    ///
    /// # Errors
    ///
    /// [`Error::NoDevice`] when `count` is 0.
    pub fn sim(preset: Preset, count: usize) -> Result<Mesh> {
        if count == 0 {
            return Err(Error::NoDevice {
                context: "Mesh::sim was asked for 0 devices",
            });
        }
        let devices = (0..count)
            .map(|i| {
                SimDevice::builder(preset)
                    .name(format!("sim:{}#{i}", preset.name()))
                    .build()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Mesh { devices })
    }

    /// The `index`th device, counting from 0.
    ///
    /// # Panics
    ///
    /// When `index` is not below [`len`](Self::len), with a message naming
    /// both; [`get`](Self::get) returns `None` instead.
    #[track_caller]
    pub fn device(&self, index: usize) -> &Device {
        match self.devices.get(index) {
            Some(device) => device,
            None => panic!(
                "device index {index} is out of range: the mesh has {} devices (0 to {})",
                self.devices.len(),
                self.devices.len() - 1
            ),
        }
    }

    /// The `index`th device, or `None` when `index` is out of range.
    pub fn get(&self, index: usize) -> Option<&Device> {
        self.devices.get(index)
    }

    /// Number of devices (at least 1).
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether the mesh has no device: never, since [`new`](Self::new) and
    /// [`sim`](Self::sim) refuse an empty mesh.
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

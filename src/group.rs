//! Memory sources: a device, a mesh, or a group of independent devices,
//! whose allocators a guard snapshots and whose allocations it observes.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::source::sim::{Preset, SimDevice};

/// Something whose allocators can be snapshotted and whose allocations can
/// be observed: one [`Device`], a [`MeshDevice`](crate::MeshDevice), or a
/// [`DeviceGroup`] of independent devices. Guards, macros and the runner
/// take any source; a report has one verdict per device.
///
/// # Examples
///
/// ```
/// use tt_memguard::{DeviceGroup, MemorySource, Preset, SimDevice};
///
/// fn device_count(source: &impl MemorySource) -> usize {
///     source.devices().len()
/// }
/// assert_eq!(device_count(&SimDevice::wormhole_b0()), 1);
/// assert_eq!(device_count(&DeviceGroup::sim(Preset::WormholeN300, 2)?), 2);
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

/// Several independent devices checked together: each keeps its own
/// allocator, and a buffer on one has nothing to do with the others. A
/// group holds at least one device, and each device once.
///
/// This is not TT-Metal's mesh: a TT-Metal `MeshDevice` places every mesh
/// buffer once, at the same address on all its chips, with one allocator;
/// [`MeshDevice`](crate::MeshDevice) models that. A group is for devices
/// opened one by one (several unit meshes, or simulated devices of
/// different models) whose memory one guard should check together.
///
/// # Examples
///
/// ```
/// use tt_memguard::{DeviceGroup, Preset, SimDevice};
///
/// let group = DeviceGroup::sim(Preset::WormholeN300, 2)?;
/// assert_eq!(group.len(), 2);
/// assert_eq!(group.device(1).name(), "sim:wormhole_n300#1");
/// assert!(group.get(2).is_none());
///
/// let mixed = DeviceGroup::new(vec![SimDevice::wormhole_b0(), SimDevice::blackhole_p150()])?;
/// assert_eq!(mixed.len(), 2);
/// assert!(DeviceGroup::new(Vec::new()).is_err());
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct DeviceGroup {
    devices: Vec<Device>,
}

impl DeviceGroup {
    /// A group of already open devices, in report order.
    ///
    /// # Errors
    ///
    /// [`Error::NoDevice`] when `devices` is empty;
    /// [`Error::DuplicateDevice`] when it holds one device twice (two
    /// handles of the same device).
    pub fn new(devices: Vec<Device>) -> Result<DeviceGroup> {
        if devices.is_empty() {
            return Err(Error::NoDevice {
                context: "the list given to DeviceGroup::new is empty",
            });
        }
        for (i, device) in devices.iter().enumerate() {
            if devices[..i].iter().any(|d| d.same_device(device)) {
                return Err(Error::DuplicateDevice {
                    context: "the list given to DeviceGroup::new",
                    device: device.name().to_string(),
                });
            }
        }
        Ok(DeviceGroup { devices })
    }

    /// `count` simulated devices of one preset, named `sim:<preset>#<i>`.
    ///
    /// # Errors
    ///
    /// [`Error::NoDevice`] when `count` is 0.
    pub fn sim(preset: Preset, count: usize) -> Result<DeviceGroup> {
        if count == 0 {
            return Err(Error::NoDevice {
                context: "DeviceGroup::sim was asked for 0 devices",
            });
        }
        let devices = (0..count)
            .map(|i| {
                SimDevice::builder(preset)
                    .name(format!("sim:{}#{i}", preset.name()))
                    .build()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DeviceGroup { devices })
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
                "device index {index} is out of range: the group has {} devices (0 to {})",
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

    /// Whether the group has no device: never, since [`new`](Self::new) and
    /// [`sim`](Self::sim) refuse an empty group.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The devices.
    pub fn iter(&self) -> impl Iterator<Item = &Device> {
        self.devices.iter()
    }
}

impl MemorySource for DeviceGroup {
    fn devices(&self) -> Vec<Device> {
        self.devices.clone()
    }
}

/// The old name of [`DeviceGroup`], which TT-Metal users would take for
/// TT-Metal's `MeshDevice` (that is [`MeshDevice`](crate::MeshDevice)).
#[deprecated(
    note = "renamed DeviceGroup (independent devices checked together); TT-Metal's mesh, one allocator for all chips, is MeshDevice"
)]
pub type Mesh = DeviceGroup;

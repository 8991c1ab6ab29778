//! Where each test's device comes from: a fresh simulated device per test
//! (tests run in parallel), or one shared device that tests take in turn.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::mesh::{MeshPreset, SimMesh};
use crate::source::sim::{Preset, SimDevice};
use crate::units::ByteSize;

/// Where the runner gets each test's device.
///
/// # Examples
///
/// ```
/// use tt_memguard::Preset;
/// use tt_memguard::runner::DeviceProvider;
///
/// let provider = DeviceProvider::from_env_value("sim:n300")?;
/// assert!(matches!(provider, DeviceProvider::Sim { preset: Preset::WormholeN300, .. }));
/// assert!(DeviceProvider::from_env_value("gpu").is_err());
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone)]
pub enum DeviceProvider {
    /// A fresh simulated device for every test: no test can see another's
    /// allocations, so tests may run in parallel.
    Sim {
        /// The device model.
        preset: Preset,
        /// L1_SMALL bytes per bank.
        l1_small_size: u64,
        /// TRACE bytes in total.
        trace_region_size: u64,
    },
    /// One device shared by every test (a real device): the runner
    /// serializes tests on it, and each test starts from its own baseline.
    Shared(SharedDevice),
    /// A fresh simulated mesh for every test: the test receives the mesh's
    /// [`Device`] ([`MeshDevice::of`](crate::MeshDevice::of) reaches the
    /// chips), and its guard covers every chip.
    SimMesh {
        /// The mesh.
        preset: MeshPreset,
        /// L1_SMALL bytes per bank of every chip.
        l1_small_size: u64,
        /// TRACE bytes in total of every chip.
        trace_region_size: u64,
    },
}

/// A device shared by tests, with the lock that serializes them.
#[derive(Debug, Clone)]
pub struct SharedDevice {
    device: Device,
    lock: Arc<Mutex<()>>,
}

impl SharedDevice {
    /// The shared device.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

impl DeviceProvider {
    /// A fresh simulated device of `preset` per test, no carve-outs.
    pub fn sim(preset: Preset) -> DeviceProvider {
        DeviceProvider::Sim {
            preset,
            l1_small_size: 0,
            trace_region_size: 0,
        }
    }

    /// One device for every test, taken in turn.
    pub fn shared(device: Device) -> DeviceProvider {
        DeviceProvider::Shared(SharedDevice {
            device,
            lock: Arc::new(Mutex::new(())),
        })
    }

    /// Parses `TT_MEMGUARD_DEVICE`: `sim` (Wormhole B0) or
    /// `sim:<preset>` (`wormhole_b0`, `wormhole_n300`, `blackhole_p150` or
    /// a short form, or a mesh: `n300_mesh`, `t3000`, `galaxy`) for a fresh
    /// device or mesh per test, `sim-shared[:<preset>]` for one simulated
    /// device or mesh that every test shares in turn. The
    /// carve-outs are none here; [`from_env`](Self::from_env) adds
    /// `TT_MEMGUARD_L1_SMALL_SIZE` and `TT_MEMGUARD_TRACE_REGION_SIZE`.
    ///
    /// # Errors
    ///
    /// [`Error::Env`] listing the accepted values.
    pub fn from_env_value(value: &str) -> Result<DeviceProvider> {
        Self::parse(value, [0, 0])
    }

    /// Parses a device value and opens it with the carve-outs
    /// (`[l1_small_size, trace_region_size]`).
    fn parse(value: &str, carve_outs: [u64; 2]) -> Result<DeviceProvider> {
        let bad = |reason: String| Error::Env {
            var: "TT_MEMGUARD_DEVICE".to_string(),
            value: value.to_string(),
            reason,
            source: None,
        };
        let accepted = "expected sim, sim:wormhole_b0, sim:wormhole_n300, sim:blackhole_p150 (or sim:wh, sim:n300, sim:bh), a simulated mesh sim:n300_mesh, sim:t3000 or sim:galaxy, sim-shared[:PRESET] (one simulated device or mesh shared by all tests, as a real device is), or tt-metal[:ID] or tt-metal:mesh with the tt-metal feature";
        let (kind, rest) = match value.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => (value, None),
        };
        let preset = |preset: Option<&str>| match preset {
            None => Ok(Preset::WormholeB0),
            Some(p) => p
                .parse::<Preset>()
                .map_err(|_| bad(format!("unknown simulated device {p:?}; {accepted}"))),
        };
        let mesh = rest.and_then(|r| r.parse::<MeshPreset>().ok());
        match (kind.trim(), rest) {
            ("sim", _) if let Some(preset) = mesh => Ok(DeviceProvider::SimMesh {
                preset,
                l1_small_size: carve_outs[0],
                trace_region_size: carve_outs[1],
            }),
            ("sim-shared", _) if let Some(preset) = mesh => Ok(DeviceProvider::shared(
                SimMesh::builder(preset)
                    .l1_small_size(carve_outs[0])
                    .trace_region_size(carve_outs[1])
                    .build()?
                    .device()
                    .clone(),
            )),
            ("sim", rest) => Ok(DeviceProvider::Sim {
                preset: preset(rest)?,
                l1_small_size: carve_outs[0],
                trace_region_size: carve_outs[1],
            }),
            ("sim-shared", rest) => Ok(DeviceProvider::shared(
                SimDevice::builder(preset(rest)?)
                    .l1_small_size(carve_outs[0])
                    .trace_region_size(carve_outs[1])
                    .build()?,
            )),
            ("tt-metal" | "tt_metal", _) => Err(bad(if cfg!(feature = "tt-metal") {
                "a TT-Metal device is opened by DeviceProvider::from_env (the runner does this), not parsed alone".to_string()
            } else {
                "TT-Metal devices need the `tt-metal` cargo feature of tt-memguard (and a TT-Metal install)".to_string()
            })),
            _ => Err(bad(format!("unknown device; {accepted}"))),
        }
    }

    /// The provider named by the environment, if `TT_MEMGUARD_DEVICE` is
    /// set, with the carve-outs `TT_MEMGUARD_L1_SMALL_SIZE` and
    /// `TT_MEMGUARD_TRACE_REGION_SIZE` (for every kind of device).
    ///
    /// # Errors
    ///
    /// [`Error::Env`] for a bad device or carve-out value.
    pub fn from_env() -> Result<Option<DeviceProvider>> {
        let Ok(value) = std::env::var("TT_MEMGUARD_DEVICE") else {
            return Ok(None);
        };
        let carve_outs = Self::carve_outs_from_env()?;
        let carve_outs = [carve_outs[0].unwrap_or(0), carve_outs[1].unwrap_or(0)];
        #[cfg(feature = "tt-metal")]
        if let Some(provider) = Self::tt_metal_from_env(&value, carve_outs)? {
            return Ok(Some(provider));
        }
        Self::parse(&value, carve_outs).map(Some)
    }

    /// The device of a run: `TT_MEMGUARD_DEVICE` when set, else `self`
    /// with the carve-out variables applied to it.
    ///
    /// # Errors
    ///
    /// [`Error::Env`] for a bad value, or for a carve-out variable given
    /// with a device opened in code, which the runner cannot reopen.
    pub(crate) fn for_run(self) -> Result<DeviceProvider> {
        if let Some(provider) = Self::from_env()? {
            return Ok(provider);
        }
        let carve_outs = Self::carve_outs_from_env()?;
        match self {
            DeviceProvider::Sim {
                preset,
                l1_small_size,
                trace_region_size,
            } => Ok(DeviceProvider::Sim {
                preset,
                l1_small_size: carve_outs[0].unwrap_or(l1_small_size),
                trace_region_size: carve_outs[1].unwrap_or(trace_region_size),
            }),
            DeviceProvider::Shared(shared) => {
                for (var, value) in CARVE_OUT_VARS.iter().zip(carve_outs) {
                    if value.is_some() {
                        return Err(Error::Env {
                            var: var.to_string(),
                            value: std::env::var(var).unwrap_or_default(),
                            reason: format!(
                                "this test target shares a device it opened itself ({}), whose carve-outs are set where it is opened: unset {var}, or let the runner open the device with TT_MEMGUARD_DEVICE",
                                shared.device.name()
                            ),
                            source: None,
                        });
                    }
                }
                Ok(DeviceProvider::Shared(shared))
            }
            DeviceProvider::SimMesh {
                preset,
                l1_small_size,
                trace_region_size,
            } => Ok(DeviceProvider::SimMesh {
                preset,
                l1_small_size: carve_outs[0].unwrap_or(l1_small_size),
                trace_region_size: carve_outs[1].unwrap_or(trace_region_size),
            }),
        }
    }

    /// `TT_MEMGUARD_L1_SMALL_SIZE` and `TT_MEMGUARD_TRACE_REGION_SIZE`, each
    /// when set.
    fn carve_outs_from_env() -> Result<[Option<u64>; 2]> {
        let carve_out = |var: &str| -> Result<Option<u64>> {
            match std::env::var(var) {
                Ok(text) => ByteSize::parse(&text)
                    .map(|s| Some(s.0))
                    .map_err(|e| Error::Env {
                        var: var.to_string(),
                        value: text.clone(),
                        reason: e.to_string(),
                        source: Some(Box::new(e)),
                    }),
                Err(_) => Ok(None),
            }
        };
        Ok([carve_out(CARVE_OUT_VARS[0])?, carve_out(CARVE_OUT_VARS[1])?])
    }

    /// The device model and carve-outs, as reports key them:
    /// `sim:wormhole_b0`, `sim:wormhole_b0 l1_small_size=65536`.
    pub(crate) fn key(&self) -> String {
        let (name, l1_small, trace) = match self {
            DeviceProvider::Sim {
                preset,
                l1_small_size,
                trace_region_size,
            } => return Self::key_of((*preset, *l1_small_size, *trace_region_size)),
            DeviceProvider::Shared(shared) => {
                let info = shared.device.info();
                (
                    info.name.clone(),
                    info.l1_small_size,
                    info.trace_region_size,
                )
            }
            DeviceProvider::SimMesh {
                preset,
                l1_small_size,
                trace_region_size,
            } => (
                format!("sim:{}", preset.name()),
                *l1_small_size,
                *trace_region_size,
            ),
        };
        key_with_carve_outs(name, l1_small, trace)
    }

    /// The key of a simulated device: `sim:wormhole_b0 l1_small_size=65536`.
    pub(crate) fn key_of((preset, l1_small, trace): SimKey) -> String {
        key_with_carve_outs(format!("sim:{}", preset.name()), l1_small, trace)
    }

    /// What chose the run's device in the environment, if anything:
    /// `TT_MEMGUARD_DEVICE`, else a carve-out variable; with how to undo it.
    pub(crate) fn chosen_by_env() -> Option<(String, String)> {
        ["TT_MEMGUARD_DEVICE", CARVE_OUT_VARS[0], CARVE_OUT_VARS[1]]
            .into_iter()
            .find_map(|var| {
                let value = std::env::var_os(var)?;
                Some((
                    format!("{var}={}", value.to_string_lossy()),
                    format!("run without {var}"),
                ))
            })
    }

    /// The device a test runs on, held for the test's duration.
    pub(crate) fn acquire(&self) -> Result<Lease<'_>> {
        match self {
            DeviceProvider::Sim {
                preset,
                l1_small_size,
                trace_region_size,
            } => acquire_sim((*preset, *l1_small_size, *trace_region_size)),
            DeviceProvider::Shared(shared) => Ok(Lease {
                _turn: Some(shared.lock.lock().unwrap_or_else(|e| e.into_inner())),
                device: shared.device.clone(),
                recycle: None,
            }),
            DeviceProvider::SimMesh {
                preset,
                l1_small_size,
                trace_region_size,
            } => Ok(Lease {
                device: SimMesh::builder(*preset)
                    .l1_small_size(*l1_small_size)
                    .trace_region_size(*trace_region_size)
                    .build()?
                    .device()
                    .clone(),
                recycle: None,
                _turn: None,
            }),
        }
    }

    /// `tt-metal` or `tt-metal:ID`: opens that TT-Metal device (with the
    /// carve-outs) and shares it between tests, which then run one at a time;
    /// `tt-metal:mesh` does the same with the system's whole mesh.
    #[cfg(feature = "tt-metal")]
    fn tt_metal_from_env(value: &str, carve_outs: [u64; 2]) -> Result<Option<DeviceProvider>> {
        use crate::source::tt_metal::{TtMetalConfig, TtMetalDevice};
        let (kind, id) = match value.split_once(':') {
            Some((k, id)) => (k.trim(), Some(id.trim())),
            None => (value.trim(), None),
        };
        if kind != "tt-metal" && kind != "tt_metal" {
            return Ok(None);
        }
        if id == Some("mesh") {
            // The system's whole mesh, as one MeshDevice.
            let mesh = TtMetalDevice::open_mesh(
                None,
                TtMetalConfig {
                    l1_small_size: carve_outs[0],
                    trace_region_size: carve_outs[1],
                    ..TtMetalConfig::default()
                },
            )?;
            return Ok(Some(DeviceProvider::shared(mesh.device().clone())));
        }
        let device_id = match id {
            None => 0,
            Some(id) => id.parse::<i32>().ok().filter(|&i| i >= 0).ok_or_else(|| Error::Env {
                var: "TT_MEMGUARD_DEVICE".to_string(),
                value: value.to_string(),
                reason: format!("device id {id:?} is not a number: expected tt-metal, tt-metal:ID with ID 0, 1, ..., or tt-metal:mesh"),
                source: None,
            })?,
        };
        let device = TtMetalDevice::open(TtMetalConfig {
            device_id,
            l1_small_size: carve_outs[0],
            trace_region_size: carve_outs[1],
            ..TtMetalConfig::default()
        })?;
        Ok(Some(DeviceProvider::shared(device)))
    }
}

/// The carve-out variables, in the order of `[l1_small_size, trace_region_size]`.
const CARVE_OUT_VARS: [&str; 2] = ["TT_MEMGUARD_L1_SMALL_SIZE", "TT_MEMGUARD_TRACE_REGION_SIZE"];

/// A simulated device's model and carve-outs: `(preset, l1_small_size,
/// trace_region_size)`.
pub(crate) type SimKey = (Preset, u64, u64);

/// `name`, then the carve-outs that are not 0.
fn key_with_carve_outs(name: String, l1_small: u64, trace: u64) -> String {
    let mut key = name;
    if l1_small > 0 {
        key.push_str(&format!(" l1_small_size={l1_small}"));
    }
    if trace > 0 {
        key.push_str(&format!(" trace_region_size={trace}"));
    }
    key
}

/// A fresh simulated device of `key`, or the clean one the previous test
/// on this thread left, when it has the same configuration.
pub(crate) fn acquire_sim(key: SimKey) -> Result<Lease<'static>> {
    let spare = SPARE.with(|s| {
        let mut s = s.borrow_mut();
        match s.take() {
            Some((k, device)) if k == key => Some(device),
            other => {
                *s = other;
                None
            }
        }
    });
    let device = match spare {
        Some(device) => device,
        None => SimDevice::builder(key.0)
            .l1_small_size(key.1)
            .trace_region_size(key.2)
            .build()?,
    };
    Ok(Lease {
        device,
        recycle: Some(key),
        _turn: None,
    })
}

thread_local! {
    /// A clean simulated device left by the previous test on this thread.
    static SPARE: RefCell<Option<(SimKey, Device)>> = const { RefCell::new(None) };
}

/// A test's device; for a shared device, also its turn.
pub(crate) struct Lease<'a> {
    pub device: Device,
    /// For a simulated device: its configuration, to reuse it when the test
    /// left it clean.
    recycle: Option<SimKey>,
    _turn: Option<MutexGuard<'a, ()>>,
}

impl Lease<'_> {
    /// Gives the device back. A simulated device the test left with nothing
    /// live, and that nobody else holds, is reset to its freshly opened
    /// state (ids restart at 1) and kept for this thread's next test: it is
    /// indistinguishable from a new one. A device with leaks is dropped, as
    /// is a lease dropped without `release`.
    pub(crate) fn release(self) {
        let Lease {
            device, recycle, ..
        } = self;
        if let Some(key) = recycle
            && device.reset_if_unshared()
        {
            SPARE.with(|s| *s.borrow_mut() = Some((key, device)));
        }
    }
}

//! `MemoryGuard`: an RAII scope that snapshots every device of a source at
//! creation, tracks the peak inside, and checks leaks and budgets at the end.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use crate::budget::{Budget, BudgetSource, CORE_CHECKS, CheckKind, Limit};
use crate::composition::{PeakComposition, PoolScene, Scene, compose};
use crate::detail::{BankMap, DeviceDetail, Timeline};
use crate::device::{Device, PeakMark, PoolPeaks, RecordingHold, ScopeStart, TimelineHold};
use crate::error::{Error, Result};
use crate::fragmentation::explain_fragmentation;
use crate::group::MemorySource;
use crate::report::{CoreReport, DeviceReport, MemoryReport, PoolReport, Verdict};
use crate::types::{Allocation, BufferType, Snapshot};

/// Allocations a scope may leave behind on purpose (caches, persistent
/// weights): reported, but not counted as leaks.
///
/// # Examples
///
/// ```
/// use tt_memguard::{Allow, BufferType, MemoryGuard, SimDevice, MIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let guard = MemoryGuard::new(&dev).allow(Allow::label("cache*"));
/// std::mem::forget(dev.buffer(BufferType::Dram, MIB).page_size(2048).label("cache.ops").allocate()?);
/// assert_eq!(guard.finish()?.device().persistent.len(), 1);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// Everything in one pool.
    Pool(BufferType),
    /// Allocations whose label equals the text, or starts with it when the
    /// text ends in `*`.
    Label(String),
}

impl Allow {
    /// Allows allocations by label (`"cache"`, or a prefix `"kv_cache*"`).
    pub fn label(label: impl Into<String>) -> Allow {
        Allow::Label(label.into())
    }

    fn matches(&self, a: &Allocation) -> bool {
        match self {
            Allow::Pool(t) => a.buffer_type == *t,
            Allow::Label(pattern) => match (&a.label, pattern.strip_suffix('*')) {
                (Some(label), Some(prefix)) => label.starts_with(prefix),
                (Some(label), None) => label == pattern,
                (None, _) => false,
            },
        }
    }
}

/// Options of a guarded scope, shared by [`MemoryGuard`], [`check`](crate::check)
/// and the macros.
///
/// # Examples
///
/// ```
/// use tt_memguard::{check, Budget, BufferType, GuardOptions, SimDevice, KIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let options = GuardOptions::new().name("tiles").budget(Budget::new().l1_peak("1 MiB")).warmup(1);
/// let (_, report) = check(&dev, options, || drop(dev.allocate(BufferType::L1, 256 * KIB, 2048)))?;
/// assert_eq!(report.name.as_deref(), Some("tiles"));
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct GuardOptions {
    /// `None`: no limit but the default (nothing retained).
    pub(crate) budget: Option<Arc<Budget>>,
    pub(crate) allow: Vec<Allow>,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) warmup: u32,
    pub(crate) explain: bool,
}

impl GuardOptions {
    /// No budget but "nothing retained", no allow-list, no warm-up.
    pub fn new() -> GuardOptions {
        GuardOptions::default()
    }

    /// The limits to check.
    pub fn budget(mut self, budget: impl Into<Arc<Budget>>) -> Self {
        self.budget = Some(budget.into());
        self
    }

    /// Adds an allow-list entry.
    pub fn allow(mut self, allow: Allow) -> Self {
        self.allow.push(allow);
        self
    }

    /// Names the scope in reports.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Runs the body `runs` times unguarded before the guarded run, so that
    /// caches filled on first use are part of the baseline (closure and
    /// macro forms only; a [`MemoryGuard`] guards from its creation).
    pub fn warmup(mut self, runs: u32) -> Self {
        self.warmup = runs;
        self
    }

    /// Attaches a [`DeviceDetail`](crate::DeviceDetail) to every device's
    /// report, passing or not: the timeline of allocated bytes per pool
    /// and the address map of every pool at its peak (the HTML report
    /// draws them), and the enqueue with the largest circular-buffer
    /// region. Costs, while the scope runs, a bounded log of allocations
    /// and a timeline of at most [`TIMELINE_POINTS`](crate::TIMELINE_POINTS)
    /// points per device, however many events the scope makes.
    ///
    /// # Examples
    ///
    /// ```
    /// use tt_memguard::{check, BufferType, GuardOptions, SimDevice, KIB};
    ///
    /// let dev = SimDevice::wormhole_b0();
    /// let (placed, report) = check(&dev, GuardOptions::new().explain(true), || {
    ///     let a = dev.buffer(BufferType::L1, 64 * 8 * KIB).page_size(8 * KIB).label("a").allocate()?;
    ///     dev.buffer(BufferType::L1, 64 * 4 * KIB).page_size(4 * KIB).label("b").allocate()?;
    ///     drop(a);
    ///     Ok::<(), tt_memguard::Error>(())
    /// })?;
    /// placed?;
    /// let detail = report.device().detail.as_ref().unwrap();
    /// assert_eq!(detail.timeline.events, 4);
    /// let at_peak = detail.map(BufferType::L1).unwrap().at_peak.as_ref().unwrap();
    /// let labels: Vec<_> = at_peak.entries.iter().map(|e| e.label.as_deref().unwrap()).collect();
    /// assert_eq!(labels, ["a", "b"]);
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub fn explain(mut self, on: bool) -> Self {
        self.explain = on;
        self
    }

    /// The budget.
    pub fn get_budget(&self) -> &Budget {
        self.budget.as_deref().unwrap_or_else(|| empty_budget())
    }
}

/// The scopes of a guard: one device (the common case, without a vector)
/// or several.
enum Scopes {
    One(Box<Scope>),
    Many(Vec<Scope>),
}

impl Scopes {
    fn as_slice(&self) -> &[Scope] {
        match self {
            Scopes::One(scope) => std::slice::from_ref(scope),
            Scopes::Many(scopes) => scopes,
        }
    }
}

pub(crate) fn empty_budget() -> &'static Budget {
    static EMPTY: std::sync::OnceLock<Budget> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Budget::new)
}

struct Scope {
    device: Device,
    before: Snapshot,
    first_id: u64,
    inherited: u64,
    mark: PeakMark,
    /// The sequence number of the scope's first enqueue.
    first_enqueue: u64,
    /// A chip's own allocator the guard covers because it covers the
    /// chip's mesh: left out of the report when nothing happened on it.
    implicit: bool,
    /// Keeps the device logging allocations while the budget has a peak
    /// limit or the guard explains itself, for the peak composition.
    recording: Option<RecordingHold>,
    /// The scope's timeline, while the guard explains itself.
    timeline: Option<TimelineHold>,
}

/// Whether a budget has a peak limit on some pool, so that a guard logs
/// allocations to name what made a failing peak.
fn wants_composition(budget: &Budget) -> bool {
    BufferType::ALL.iter().any(|&t| {
        let pool = budget.pool(t);
        pool.get(CheckKind::Peak, false).is_some() || pool.get(CheckKind::Peak, true).is_some()
    })
}

/// An RAII memory check. Created on a [`MemorySource`] (a device or a mesh),
/// it takes a snapshot and starts a peak mark on every device; at
/// [`finish`](Self::finish), or when dropped, it compares the end state with
/// the baseline and the budget.
///
/// A guard covers at least one device: a source with none (an empty
/// `Vec<Device>`, for example) is [`Error::NoDevice`], and a device listed
/// twice is [`Error::DuplicateDevice`], so every report has a device.
///
/// # Panics
///
/// Dropped without `finish`, a failed check panics with the report, and a
/// check that cannot be made (a device closed inside the scope) panics with
/// the error, except while the thread is already panicking: then the report
/// or error goes to standard error and nothing panics again.
///
/// # Examples
///
/// ```
/// use tt_memguard::{Budget, BufferType, MemoryGuard, SimDevice, KIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let guard = MemoryGuard::new(&dev).budget(Budget::new().l1_peak("512 KiB"));
/// let a = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
/// drop(a);
/// let report = guard.finish()?;
/// assert_eq!(report.device().pool(BufferType::L1).peak_above_baseline_total, 4096 * 64);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[must_use = "a guard checks when it is dropped: bind it with `let _guard = ...` (`let _ = ...` drops it at once)"]
pub struct MemoryGuard {
    scopes: Scopes,
    options: GuardOptions,
    location: Option<&'static Location<'static>>,
    armed: bool,
    panicked: bool,
    /// The assertion macro that owns the guard (see [`Self::owned_by`]).
    owner: Option<&'static str>,
}

impl fmt::Debug for MemoryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryGuard")
            .field(
                "devices",
                &self
                    .scopes
                    .as_slice()
                    .iter()
                    .map(|s| s.device.name())
                    .collect::<Vec<_>>(),
            )
            .field("location", &self.location)
            .field("options", &self.options)
            .finish()
    }
}

impl MemoryGuard {
    /// Starts a guard on every device of `source`.
    ///
    /// # Panics
    ///
    /// When the guard cannot start: a device cannot be read (closed), the
    /// source has no device, or it lists one twice.
    /// [`try_new`](Self::try_new) returns the error instead.
    #[track_caller]
    pub fn new<S: MemorySource + ?Sized>(source: &S) -> MemoryGuard {
        match Self::try_new(source) {
            Ok(guard) => guard,
            Err(e) => panic!("cannot start a memory guard: {e}"),
        }
    }

    /// Starts a guard on every device of `source`.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceClosed`] when a device is closed,
    /// [`Error::NoDevice`] when the source has no device,
    /// [`Error::DuplicateDevice`] when it lists a device twice.
    #[track_caller]
    pub fn try_new<S: MemorySource + ?Sized>(source: &S) -> Result<MemoryGuard> {
        Self::with_options(source, GuardOptions::new())
    }

    /// Starts a guard with options.
    ///
    /// # Errors
    ///
    /// As [`try_new`](Self::try_new).
    #[track_caller]
    pub fn with_options<S: MemorySource + ?Sized>(
        source: &S,
        options: GuardOptions,
    ) -> Result<MemoryGuard> {
        Self::start(source.devices(), options, Some(Location::caller()))
    }

    pub(crate) fn start(
        devices: impl IntoIterator<Item = Device>,
        options: GuardOptions,
        location: Option<&'static Location<'static>>,
    ) -> Result<MemoryGuard> {
        let explain = options.explain;
        let record = explain || wants_composition(options.get_budget());
        let open = |device: Device, implicit: bool| -> Result<Scope> {
            let first_enqueue = device.next_enqueue();
            // Logging starts before the baseline, so that the log covers
            // the whole scope.
            let recording = if record {
                Some(device.hold_recording()?)
            } else {
                None
            };
            let ScopeStart {
                mark,
                before,
                first_id,
                inherited,
                timeline,
            } = device.begin_scope(explain)?;
            Ok(Scope {
                device,
                before,
                first_id,
                inherited,
                mark,
                first_enqueue,
                implicit,
                recording,
                timeline,
            })
        };
        let mut devices = devices.into_iter();
        let first = devices.next();
        let scopes = match (first, devices.next()) {
            // A guard on nothing would pass whatever happens, and leave a
            // report without a device.
            (None, _) => {
                return Err(Error::NoDevice {
                    context: "the guarded memory source has no device",
                });
            }
            (Some(one), None) if one.chips().is_empty() => Scopes::One(Box::new(open(one, false)?)),
            (Some(one), two) => {
                // Every device listed, then the chips of the meshes among
                // them that were not listed.
                let mut listed: Vec<Device> = vec![one];
                for device in two.into_iter().chain(devices) {
                    if listed.iter().any(|d| d.same_device(&device)) {
                        return Err(Error::DuplicateDevice {
                            context: "the guarded memory source",
                            device: device.name().to_string(),
                        });
                    }
                    listed.push(device);
                }
                let mut chips: Vec<Device> = Vec::new();
                for chip in listed.iter().flat_map(|d| d.chips()) {
                    if !listed.iter().chain(&chips).any(|d| d.same_device(chip)) {
                        chips.push(chip.clone());
                    }
                }
                let mut all = Vec::with_capacity(listed.len() + chips.len());
                for device in listed {
                    all.push(open(device, false)?);
                }
                for chip in chips {
                    all.push(open(chip, true)?);
                }
                Scopes::Many(all)
            }
        };
        Ok(MemoryGuard {
            scopes,
            options,
            location,
            armed: true,
            panicked: false,
            owner: None,
        })
    }

    /// Marks the guard as owned by an assertion macro, whose block ends by
    /// consuming the guard: dropped still armed, the guard knows the block
    /// left early (by `?`, `return` or `break`) and does not panic.
    pub(crate) fn owned_by(mut self, macro_name: &'static str) -> Self {
        self.owner = Some(macro_name);
        self
    }

    /// Sets the budget.
    pub fn budget(mut self, budget: impl Into<Arc<Budget>>) -> Self {
        self.options.budget = Some(budget.into());
        if wants_composition(self.options.get_budget()) {
            // Started late, the log may miss the scope's first events: the
            // composition's own checks then leave it out.
            for scope in self
                .scopes_mut()
                .iter_mut()
                .filter(|s| s.recording.is_none())
            {
                scope.recording = scope.device.hold_recording().ok();
            }
        }
        self
    }

    fn scopes_mut(&mut self) -> &mut [Scope] {
        match &mut self.scopes {
            Scopes::One(one) => std::slice::from_mut(one.as_mut()),
            Scopes::Many(all) => all.as_mut_slice(),
        }
    }

    /// Adds an allow-list entry.
    pub fn allow(mut self, allow: Allow) -> Self {
        self.options.allow.push(allow);
        self
    }

    /// As [`GuardOptions::explain`]; set it before the scope's first
    /// allocation to cover it (the timeline starts when it is set, and the
    /// maps leave out a peak the log did not see).
    pub fn explain(mut self, on: bool) -> Self {
        self.options.explain = on;
        for scope in self.scopes_mut() {
            if !on {
                scope.timeline = None;
                continue;
            }
            if scope.recording.is_none() {
                scope.recording = scope.device.hold_recording().ok();
            }
            if scope.timeline.is_none() {
                scope.timeline = scope.device.start_timeline().ok();
            }
        }
        self
    }

    /// Names the scope in the report.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Records that the guarded body panicked (the runner does this).
    pub fn mark_panicked(&mut self) {
        self.panicked = true;
    }

    /// Checks now and returns the report.
    ///
    /// # Errors
    ///
    /// [`Error::MemoryCheckFailed`] with the report when a check failed;
    /// [`Error::InvalidBudget`] for a budget with an unreadable size;
    /// [`Error::DeviceClosed`] when a device was closed inside the scope.
    pub fn finish(mut self) -> Result<MemoryReport> {
        self.armed = false;
        let report = self.evaluate(true)?;
        if report.passed {
            Ok(report)
        } else {
            Err(Error::MemoryCheckFailed(Box::new(report)))
        }
    }

    /// Checks now and returns the report, passed or failed.
    ///
    /// # Errors
    ///
    /// Only infrastructure errors: [`Error::InvalidBudget`],
    /// [`Error::DeviceClosed`].
    pub fn into_report(mut self) -> Result<MemoryReport> {
        self.armed = false;
        self.evaluate(true)
    }

    /// The report so far, without ending the scope.
    ///
    /// # Errors
    ///
    /// As [`into_report`](Self::into_report).
    pub fn report(&self) -> Result<MemoryReport> {
        self.evaluate(false)
    }

    /// The report; `last` when the scope ends with it. A mesh's chip that
    /// the guard covers through its mesh has a report only when something
    /// happened on it.
    fn evaluate(&self, last: bool) -> Result<MemoryReport> {
        self.options.get_budget().validate()?;
        let mut devices = Vec::with_capacity(self.scopes.as_slice().len());
        for scope in self.scopes.as_slice() {
            let measured = self.measure(scope, last)?;
            if scope.implicit && scope.inherited == 0 && measured.untouched() {
                continue;
            }
            devices.push(self.device_report(scope, measured));
        }
        Ok(self.assemble(devices))
    }

    fn assemble(&self, devices: Vec<DeviceReport>) -> MemoryReport {
        MemoryReport {
            name: self.options.name.as_deref().map(str::to_string),
            location: self
                .location
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())),
            passed: !self.panicked && devices.iter().all(|d| d.passed),
            panicked: self.panicked,
            devices,
        }
    }

    /// Ends the scope for the test runner: a clean single-device scope
    /// yields its pool figures without building a report (the common case,
    /// kept allocation-free); anything else, and any scope that explains
    /// itself, yields the full report.
    pub(crate) fn finish_lean<R>(
        mut self,
        clean: impl FnOnce(&[PoolReport; 4]) -> R,
    ) -> Result<LeanOutcome<R>> {
        self.armed = false;
        self.options.get_budget().validate()?;
        if matches!(self.scopes, Scopes::One(_)) && !self.panicked {
            let Scopes::One(mut scope) =
                std::mem::replace(&mut self.scopes, Scopes::Many(Vec::new()))
            else {
                unreachable!("checked above");
            };
            // The last reading and the mark's release in one step.
            let end = scope
                .device
                .close_scope(&mut scope.mark, scope.timeline.as_ref())?;
            let measured = self.measure_with(&scope, end)?;
            if measured.leaked.is_empty()
                && measured.persistent.is_empty()
                && measured.cores.is_none()
                && measured.detail.is_none()
                && measured.pools.iter().all(PoolReport::passed)
            {
                return Ok(LeanOutcome::Clean(clean(&measured.pools)));
            }
            let device = self.device_report(&scope, measured);
            return Ok(LeanOutcome::Report(self.assemble(vec![device])));
        }
        self.evaluate(true).map(LeanOutcome::Report)
    }

    /// The end state of one device against its baseline and the budget.
    fn measure(&self, scope: &Scope, last: bool) -> Result<Measured> {
        let end = scope
            .device
            .end_scope(&scope.mark, scope.timeline.as_ref(), last)?;
        self.measure_with(scope, end)
    }

    fn measure_with(
        &self,
        scope: &Scope,
        (after, peaks, timeline): (Snapshot, PoolPeaks, Option<Timeline>),
    ) -> Result<Measured> {
        let after = &after;
        let grew = BufferType::ALL
            .iter()
            .any(|&t| after.pool(t).allocated_per_bank > scope.before.pool(t).allocated_per_bank);
        // Only when some pool grew can something have leaked: listing the
        // live set is skipped on the common clean path.
        let (mut leaked, mut persistent) = (Vec::new(), Vec::new());
        let mut live = None;
        if grew {
            let all = scope.device.live_allocations()?;
            for a in all.iter().cloned() {
                if a.id < scope.first_id {
                    continue;
                }
                if self.options.allow.iter().any(|allow| allow.matches(&a)) {
                    persistent.push(a);
                } else {
                    leaked.push(a);
                }
            }
            live = Some(all);
        }
        let budget = self.options.get_budget();
        let mut pools = BufferType::ALL.map(|t| {
            let persistent_per_bank = persistent
                .iter()
                .filter(|a: &&Allocation| a.buffer_type == t)
                .map(|a| a.size_per_bank)
                .sum();
            pool_report(
                t,
                &scope.before,
                after,
                peaks.per_bank(t),
                persistent_per_bank,
                budget,
            )
        });
        // A failed largest-free-block check names the free blocks and the
        // allocations that split them; only then is the live set listed
        // for it (never on the clean path).
        for p in pools.iter_mut().filter(|p| {
            p.checks
                .iter()
                .any(|v| v.check == CheckKind::LargestFree && !v.passed)
        }) {
            let all = match &live {
                Some(all) => all,
                None => live.insert(scope.device.live_allocations()?),
            };
            p.fragmentation = explain_fragmentation(after.pool(p.buffer_type), all);
        }
        // A failed peak check names the allocations live at the peak, from
        // the allocation log (never on the clean path); a guard that
        // explains itself maps every pool at its peak from the same log.
        let failed_peak = |p: &PoolReport| {
            p.checks
                .iter()
                .any(|v| v.check == CheckKind::Peak && !v.passed)
        };
        let explaining = timeline.is_some();
        let mapped = |p: &PoolReport| explaining && p.num_banks > 0;
        let wanted = pools.each_ref().map(|p| failed_peak(p) || mapped(p));
        let mut at_peak: [Option<PeakComposition>; 4] = Default::default();
        if let Some(hold) = &scope.recording
            && wanted.iter().any(|&w| w)
            && let Some(found) = scope.device.with_events_since(hold, |live, events| {
                compose(&Scene {
                    pools: pools.each_ref().map(|p| {
                        wanted[p.buffer_type.index()].then_some(PoolScene {
                            pool_banks: p.num_banks,
                            baseline_per_bank: p.before_per_bank,
                            peak_per_bank: p.peak_per_bank,
                        })
                    }),
                    first_id: scope.first_id,
                    live,
                    events,
                })
            })?
        {
            at_peak = found;
        }
        for p in pools.iter_mut().filter(|p| failed_peak(p)) {
            p.peak_composition = at_peak[p.buffer_type.index()].clone();
        }
        let detail = timeline.map(|timeline| DeviceDetail {
            timeline,
            maps: pools
                .iter()
                .filter(|p| mapped(p))
                .map(|p| {
                    let stats = after.pool(p.buffer_type);
                    BankMap {
                        buffer_type: p.buffer_type,
                        base_address: stats.base_address,
                        size_per_bank: stats.size_per_bank,
                        at_peak: at_peak[p.buffer_type.index()].take(),
                    }
                })
                .collect(),
            circular_buffers: scope
                .device
                .cb_peak_since(scope.first_enqueue)
                .map(|p| (*p).clone()),
        });
        // Name as leaked only the allocations of pools that failed their
        // retained check.
        leaked.retain(|a| {
            pools[a.buffer_type.index()]
                .checks
                .iter()
                .any(|v| v.check == CheckKind::Retained && !v.passed)
        });
        let mut cores = core_report(&peaks, budget);
        // A failed per-core check names the enqueue that made the CB peak.
        if let Some(c) = cores.as_mut().filter(|c| !c.passed()) {
            c.at_peak = scope
                .device
                .cb_peak_since(scope.first_enqueue)
                .map(|p| (*p).clone());
        }
        Ok(Measured {
            pools,
            leaked,
            persistent,
            cores,
            detail,
        })
    }

    fn device_report(&self, scope: &Scope, m: Measured) -> DeviceReport {
        DeviceReport {
            device: scope.device.name().to_string(),
            passed: m.pools.iter().all(PoolReport::passed)
                && m.cores.as_ref().is_none_or(CoreReport::passed),
            inherited: scope.inherited,
            pools: m.pools.into(),
            leaked: m.leaked,
            persistent: m.persistent,
            cores: m.cores,
            detail: m.detail,
        }
    }
}

/// What a scope measured on one device.
struct Measured {
    pools: [PoolReport; 4],
    leaked: Vec<Allocation>,
    persistent: Vec<Allocation>,
    cores: Option<CoreReport>,
    detail: Option<DeviceDetail>,
}

impl Measured {
    /// Nothing allocated before, during or after the scope, every check
    /// passed, no program enqueued.
    fn untouched(&self) -> bool {
        self.pools
            .iter()
            .all(|p| p.peak_per_bank == 0 && p.before_per_bank == 0 && p.passed())
            && self.leaked.is_empty()
            && self.persistent.is_empty()
            && self
                .cores
                .as_ref()
                .is_none_or(|c| !c.enqueued && c.passed())
    }
}

/// How a scope ended, for the runner.
pub(crate) enum LeanOutcome<R> {
    /// Every check passed on the single device: what the caller made of
    /// its pools.
    Clean(R),
    /// The full report (a failure, several devices, or a panicked body).
    Report(MemoryReport),
}

/// One core's L1 over the scope's enqueues and its per-core checks; `None`
/// when no program with CBs ran and no per-core limit is set.
fn core_report(peaks: &PoolPeaks, budget: &Budget) -> Option<CoreReport> {
    let limits = budget.cores();
    let any_limit = CORE_CHECKS.iter().any(|&k| limits.get(k).is_some());
    if !peaks.saw_programs() && !any_limit {
        return None;
    }
    let mut report = CoreReport {
        enqueued: peaks.saw_programs(),
        cb_peak_per_core: peaks.cb_per_core(),
        l1_peak_per_core: peaks.l1_total_per_core(),
        min_headroom: peaks.min_headroom(),
        checks: Vec::new(),
        at_peak: None,
    };
    for kind in CORE_CHECKS {
        let Some(limit) = limits.get(kind) else {
            continue;
        };
        let (actual, passed) = match kind {
            CheckKind::CbPeakPerCore => (
                report.cb_peak_per_core,
                report.cb_peak_per_core <= limit.bytes,
            ),
            CheckKind::L1PeakPerCore => (
                report.l1_peak_per_core,
                report.l1_peak_per_core <= limit.bytes,
            ),
            // Without an enqueue there is no region, and nothing to be short of.
            _ => match report.min_headroom {
                Some(h) => (h, h >= limit.bytes),
                None => (0, true),
            },
        };
        report.checks.push(Verdict {
            check: kind,
            per_bank: true,
            limit: limit.bytes,
            actual,
            passed,
            source: limit.source.clone(),
        });
    }
    Some(report)
}

fn pool_report(
    t: BufferType,
    before: &Snapshot,
    after: &Snapshot,
    peak_per_bank: u64,
    persistent_per_bank: u64,
    budget: &Budget,
) -> PoolReport {
    let b = before.pool(t);
    let a = after.pool(t);
    let banks = u64::from(a.num_banks);
    let total = |per_bank: u64| crate::report::total(per_bank, a.num_banks);
    let (before_per_bank, after_per_bank) = (b.allocated_per_bank, a.allocated_per_bank);
    let peak_per_bank = peak_per_bank.max(before_per_bank).max(after_per_bank);
    let mut report = PoolReport {
        buffer_type: t,
        num_banks: a.num_banks,
        size_per_bank: a.size_per_bank,
        before_total: total(before_per_bank),
        after_total: total(after_per_bank),
        peak_total: total(peak_per_bank),
        delta_total: crate::report::total_delta(before_per_bank, after_per_bank, a.num_banks),
        peak_above_baseline_total: total(peak_per_bank - before_per_bank),
        before_per_bank,
        after_per_bank,
        peak_per_bank,
        largest_free_block_after_per_bank: a.largest_free_block_per_bank,
        persistent_per_bank,
        checks: Vec::new(),
        fragmentation: None,
        peak_composition: None,
    };
    let tolerance = budget.tolerance_bytes();
    let pool_budget = budget.pool(t);
    let default_retained = Limit {
        bytes: 0,
        per_bank: false,
        source: BudgetSource::Default,
    };
    let no_retained_limit =
        pool_budget.retained.is_none() && pool_budget.retained_per_bank.is_none();
    for (kind, per_bank) in crate::budget::SLOTS {
        let limit = match pool_budget.get(kind, per_bank) {
            Some(limit) => limit,
            None if kind == CheckKind::Retained && !per_bank && no_retained_limit => {
                &default_retained
            }
            None => continue,
        };
        let per_bank_actual = match kind {
            CheckKind::Peak => report.peak_per_bank - report.before_per_bank,
            CheckKind::Retained => report.retained_total() / banks.max(1),
            CheckKind::LargestFree => report.largest_free_block_after_per_bank,
            // Pools hold no per-core limits (they are in `CoreBudget`).
            CheckKind::CbPeakPerCore | CheckKind::L1PeakPerCore | CheckKind::MinCbHeadroom => {
                continue;
            }
        };
        let (actual, slack) = if per_bank {
            (per_bank_actual, tolerance.div_ceil(banks.max(1)))
        } else {
            (total(per_bank_actual), tolerance)
        };
        let (limit_bytes, passed) = match kind {
            CheckKind::LargestFree => (limit.bytes, actual >= limit.bytes),
            _ => {
                let l = limit.bytes.saturating_add(slack);
                (l, actual <= l)
            }
        };
        // The default "nothing retained" check is listed only when it
        // fails: a clean report stays small, and cheap to build.
        if passed && limit.source == BudgetSource::Default {
            continue;
        }
        report.checks.push(Verdict {
            check: kind,
            per_bank,
            limit: limit_bytes,
            actual,
            passed,
            source: limit.source.clone(),
        });
    }
    report
}

impl Drop for MemoryGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.armed = false;
        let panicking = std::thread::panicking();
        if panicking {
            self.panicked = true;
        }
        // A macro's guard dropped armed: its block left early, most often
        // by `?` with an error that is on its way to the caller. Panicking
        // here would replace that error with the report; both are kept:
        // the report goes to standard error, the error to the caller.
        let early_exit = match self.owner {
            Some(name) if !panicking => Some(early_exit_notice(name, self.location)),
            _ => None,
        };
        match (self.evaluate(true), early_exit) {
            (Ok(report), _) if panicking => eprintln!("{report}"),
            (Ok(report), _) if report.passed => {}
            (Ok(report), Some(notice)) => eprintln!(
                "{notice} and failed its memory check; not panicking, so that the error reaches the caller. The report:\n{report}"
            ),
            (Ok(report), None) => panic!("{report}"),
            (Err(e), _) if panicking => eprintln!("memory guard: {e}"),
            (Err(e), Some(notice)) => eprintln!(
                "{notice} and its memory check could not be made: {e}; not panicking, so that the error reaches the caller"
            ),
            (Err(e), None) => panic!("memory guard: {e}"),
        }
    }
}

/// The start of what a macro's guard prints when its block left early.
fn early_exit_notice(macro_name: &str, location: Option<&Location<'_>>) -> String {
    let at = location
        .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    format!("{macro_name}{at}: the block left early (`?` with an error, or `return` or `break`)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KIB, SimDevice};

    fn lean(guard: MemoryGuard) -> Option<MemoryReport> {
        match guard.finish_lean(|_| ()).unwrap() {
            LeanOutcome::Clean(()) => None,
            LeanOutcome::Report(report) => Some(report),
        }
    }

    #[test]
    fn the_runner_gets_the_full_report_when_explaining() {
        let dev = SimDevice::wormhole_b0();
        let guard = MemoryGuard::new(&dev);
        drop(dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap());
        assert!(lean(guard).is_none());
        let guard = MemoryGuard::new(&dev).explain(true);
        drop(dev.allocate(BufferType::L1, 64 * KIB, 2048).unwrap());
        let report = lean(guard).expect("a full report");
        assert!(report.passed);
        let detail = report.device().detail.as_ref().expect("detail attached");
        assert_eq!(detail.timeline.events, 2);
        assert!(detail.map(BufferType::L1).unwrap().at_peak.is_some());
    }

    #[test]
    fn a_guard_stops_its_timeline_when_it_ends() {
        let dev = SimDevice::wormhole_b0();
        let outer = MemoryGuard::new(&dev).explain(true);
        let inner = MemoryGuard::with_options(&dev, GuardOptions::new().explain(true)).unwrap();
        assert_eq!(dev.active_timelines(), 2);
        inner.finish().unwrap();
        assert_eq!(dev.active_timelines(), 1);
        let outer = outer.explain(false);
        assert_eq!(dev.active_timelines(), 0);
        drop(outer);
        let lean_one = MemoryGuard::new(&dev).explain(true);
        assert_eq!(dev.active_timelines(), 1);
        lean(lean_one).unwrap();
        assert_eq!(dev.active_timelines(), 0);
    }
}

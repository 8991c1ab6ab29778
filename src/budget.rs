//! Memory budgets: per pool, the peak above the scope's baseline, the bytes
//! retained at the end, and the smallest acceptable largest free block.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::BufferType;
use crate::units::{ByteSize, SizeError};

/// Where a budget value came from; reports name it, so that a CI failure
/// says which file or variable to change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "from")]
pub enum BudgetSource {
    /// Set in the test's code.
    Code,
    /// Set by a budget file (its path, and the table that set it).
    File(String),
    /// Set by an environment variable (its name).
    Env(String),
    /// The built-in default (no bytes retained).
    Default,
}

impl fmt::Display for BudgetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetSource::Code => f.write_str("code"),
            BudgetSource::File(p) => write!(f, "{p}"),
            BudgetSource::Env(v) => write!(f, "${v}"),
            BudgetSource::Default => f.write_str("default"),
        }
    }
}

/// One limit: a byte count, over the device total or per bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// The byte count.
    pub bytes: u64,
    /// Whether the limit is per bank (an L1 kernel must fit in every core)
    /// rather than over all banks of the pool.
    pub per_bank: bool,
    /// Where the limit was set.
    pub source: BudgetSource,
}

/// What is checked of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Highest allocated bytes inside the scope minus the baseline.
    Peak,
    /// Allocated bytes at the end minus the baseline (a leak when above the
    /// limit, 0 by default).
    Retained,
    /// Largest free block at the end must be at least the limit.
    LargestFree,
    /// Highest circular-buffer region of one core over the programs
    /// enqueued in the scope.
    CbPeakPerCore,
    /// Highest L1 of one core over those enqueues: its CB region plus the
    /// L1 and L1_SMALL buffers of its bank.
    L1PeakPerCore,
    /// Least headroom over those enqueues between the CB region's end and
    /// the lowest L1 buffer must be at least the limit.
    MinCbHeadroom,
}

impl CheckKind {
    /// The name used in reports and budget files.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Peak => "peak",
            CheckKind::Retained => "retained",
            CheckKind::LargestFree => "min_largest_free",
            CheckKind::CbPeakPerCore => "cb_peak_per_core",
            CheckKind::L1PeakPerCore => "l1_peak_per_core",
            CheckKind::MinCbHeadroom => "min_cb_headroom",
        }
    }

    /// Whether the check is a ceiling on a peak, whose share of the limit
    /// reports colour (green, yellow, red).
    pub(crate) fn is_usage(self) -> bool {
        matches!(
            self,
            CheckKind::Peak | CheckKind::CbPeakPerCore | CheckKind::L1PeakPerCore
        )
    }
}

/// The limits of one pool. A total and a per-bank limit of the same check
/// may both be set; each is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolBudget {
    /// Peak above the baseline, over all banks.
    pub peak: Option<Limit>,
    /// Peak above the baseline, in every bank.
    pub peak_per_bank: Option<Limit>,
    /// Bytes retained at the end, over all banks (unset with
    /// `retained_per_bank` unset too: 0, no leak).
    pub retained: Option<Limit>,
    /// Bytes retained at the end, in every bank.
    pub retained_per_bank: Option<Limit>,
    /// Minimum largest free block of one bank at the end.
    pub min_largest_free: Option<Limit>,
}

/// Every (check, per bank) slot of a pool budget, in report order.
pub(crate) const SLOTS: [(CheckKind, bool); 5] = [
    (CheckKind::Peak, false),
    (CheckKind::Peak, true),
    (CheckKind::Retained, false),
    (CheckKind::Retained, true),
    (CheckKind::LargestFree, true),
];

impl PoolBudget {
    /// The limit of one slot.
    pub fn get(&self, kind: CheckKind, per_bank: bool) -> Option<&Limit> {
        match (kind, per_bank) {
            (CheckKind::Peak, false) => self.peak.as_ref(),
            (CheckKind::Peak, true) => self.peak_per_bank.as_ref(),
            (CheckKind::Retained, false) => self.retained.as_ref(),
            (CheckKind::Retained, true) => self.retained_per_bank.as_ref(),
            (CheckKind::LargestFree, _) => self.min_largest_free.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn slot(&mut self, kind: CheckKind, per_bank: bool) -> &mut Option<Limit> {
        match (kind, per_bank) {
            (CheckKind::Peak, false) => &mut self.peak,
            (CheckKind::Peak, true) => &mut self.peak_per_bank,
            (CheckKind::Retained, false) => &mut self.retained,
            (CheckKind::Retained, true) => &mut self.retained_per_bank,
            (CheckKind::LargestFree, _) => &mut self.min_largest_free,
            // Every caller routes the per-core checks to `CoreBudget` first.
            _ => unreachable!("per-core checks are kept in CoreBudget"),
        }
    }

    fn is_empty(&self) -> bool {
        SLOTS.iter().all(|&(k, p)| self.get(k, p).is_none())
    }
}

/// The limits of one core's L1 over the programs enqueued in a scope:
/// circular buffers are laid out per core, so these are never sums over
/// cores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreBudget {
    /// Highest CB region of a core.
    pub cb_peak: Option<Limit>,
    /// Highest CB region plus L1 buffers of a core.
    pub l1_peak: Option<Limit>,
    /// Least headroom between the CB region and the lowest L1 buffer.
    pub min_headroom: Option<Limit>,
}

/// The per-core checks, in report order.
pub(crate) const CORE_CHECKS: [CheckKind; 3] = [
    CheckKind::CbPeakPerCore,
    CheckKind::L1PeakPerCore,
    CheckKind::MinCbHeadroom,
];

impl CoreBudget {
    /// The limit of one per-core check.
    pub fn get(&self, kind: CheckKind) -> Option<&Limit> {
        match kind {
            CheckKind::CbPeakPerCore => self.cb_peak.as_ref(),
            CheckKind::L1PeakPerCore => self.l1_peak.as_ref(),
            CheckKind::MinCbHeadroom => self.min_headroom.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn slot(&mut self, kind: CheckKind) -> Option<&mut Option<Limit>> {
        match kind {
            CheckKind::CbPeakPerCore => Some(&mut self.cb_peak),
            CheckKind::L1PeakPerCore => Some(&mut self.l1_peak),
            CheckKind::MinCbHeadroom => Some(&mut self.min_headroom),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        CORE_CHECKS.iter().all(|&k| self.get(k).is_none())
    }
}

/// A size given to a budget: bytes, or text such as `"512 KiB"` that is
/// parsed when the budget is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeArg {
    /// A byte count.
    Bytes(u64),
    /// Text to parse with [`ByteSize::parse`].
    Text(String),
}

impl From<u64> for SizeArg {
    fn from(v: u64) -> Self {
        SizeArg::Bytes(v)
    }
}

impl From<ByteSize> for SizeArg {
    fn from(v: ByteSize) -> Self {
        SizeArg::Bytes(v.0)
    }
}

impl From<&str> for SizeArg {
    fn from(v: &str) -> Self {
        SizeArg::Text(v.to_string())
    }
}

impl From<String> for SizeArg {
    fn from(v: String) -> Self {
        SizeArg::Text(v)
    }
}

impl SizeArg {
    fn resolve(self) -> Result<u64, SizeError> {
        match self {
            SizeArg::Bytes(b) => Ok(b),
            SizeArg::Text(t) => ByteSize::parse(&t).map(|s| s.0),
        }
    }
}

/// Memory limits for a guarded scope, pool by pool.
///
/// Limits are device totals unless set with a `_per_bank` method. Bytes
/// retained at the end default to 0 in every pool: anything left allocated is
/// a leak. A tolerance adds slack to every peak and retained limit.
///
/// Sizes are bytes or text (`"512 KiB"`, `"1.5 MiB"`, `"2GB"`); text that
/// cannot be read is reported by [`validate`](Self::validate) and by the
/// guard that uses the budget.
///
/// # Examples
///
/// ```
/// use tt_memguard::{Budget, BufferType};
///
/// let budget = Budget::new()
///     .l1_peak("512 KiB")
///     .dram_peak("64 MiB")
///     .peak_per_bank(BufferType::L1, "16 KiB")
///     .min_largest_free(BufferType::L1, "256 KiB");
/// budget.validate()?;
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Budget {
    pools: [PoolBudget; 4],
    cores: CoreBudget,
    tolerance: u64,
    /// The first size that could not be read.
    error: Option<BudgetError>,
}

/// A budget size that cannot be read: which limit, and the size error.
///
/// # Examples
///
/// ```
/// use tt_memguard::Budget;
///
/// let e = Budget::new().l1_peak("lots").validate().unwrap_err();
/// assert_eq!(e.limit(), "L1 peak budget");
/// assert!(e.to_string().starts_with("invalid L1 peak budget: invalid size \"lots\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {limit}: {source}")]
pub struct BudgetError {
    limit: String,
    source: SizeError,
}

impl BudgetError {
    /// Which limit (`L1 peak budget`, `tolerance`).
    pub fn limit(&self) -> &str {
        &self.limit
    }

    /// The size error.
    pub fn size_error(&self) -> &SizeError {
        &self.source
    }
}

impl Budget {
    /// No limits but the default: nothing retained.
    pub fn new() -> Budget {
        Budget::default()
    }

    fn set(
        mut self,
        buffer_type: BufferType,
        kind: CheckKind,
        size: SizeArg,
        per_bank: bool,
    ) -> Self {
        match size.resolve() {
            Ok(bytes) => {
                *self.pools[buffer_type.index()].slot(kind, per_bank) = Some(Limit {
                    bytes,
                    per_bank,
                    source: BudgetSource::Code,
                });
            }
            Err(source) => {
                if self.error.is_none() {
                    let limit = format!("{} {} budget", buffer_type, kind.name());
                    self.error = Some(BudgetError { limit, source });
                }
            }
        }
        self
    }

    /// Limits the peak above the baseline, over all banks of the pool.
    pub fn peak(self, buffer_type: BufferType, size: impl Into<SizeArg>) -> Self {
        self.set(buffer_type, CheckKind::Peak, size.into(), false)
    }

    /// Limits the peak above the baseline in every bank of the pool.
    pub fn peak_per_bank(self, buffer_type: BufferType, size: impl Into<SizeArg>) -> Self {
        self.set(buffer_type, CheckKind::Peak, size.into(), true)
    }

    /// Allows bytes to remain allocated at the end, over all banks.
    pub fn retained(self, buffer_type: BufferType, size: impl Into<SizeArg>) -> Self {
        self.set(buffer_type, CheckKind::Retained, size.into(), false)
    }

    /// Allows bytes to remain allocated at the end, per bank.
    pub fn retained_per_bank(self, buffer_type: BufferType, size: impl Into<SizeArg>) -> Self {
        self.set(buffer_type, CheckKind::Retained, size.into(), true)
    }

    /// Requires the largest free block of one bank at the end to be at least
    /// `size` (fragmentation). The largest free block is a per-bank figure.
    pub fn min_largest_free(self, buffer_type: BufferType, size: impl Into<SizeArg>) -> Self {
        self.set(buffer_type, CheckKind::LargestFree, size.into(), true)
    }

    fn set_core(mut self, kind: CheckKind, size: SizeArg) -> Self {
        match size.resolve() {
            Ok(bytes) => {
                if let Some(slot) = self.cores.slot(kind) {
                    *slot = Some(Limit {
                        bytes,
                        per_bank: true,
                        source: BudgetSource::Code,
                    });
                }
            }
            Err(source) => {
                if self.error.is_none() {
                    let limit = format!("{} budget", kind.name());
                    self.error = Some(BudgetError { limit, source });
                }
            }
        }
        self
    }

    /// Limits the circular-buffer region of any one core over the programs
    /// enqueued in the scope (CBs on different cores are never summed).
    pub fn cb_peak_per_core(self, size: impl Into<SizeArg>) -> Self {
        self.set_core(CheckKind::CbPeakPerCore, size.into())
    }

    /// Limits the whole L1 of any one core at an enqueue: its CB region
    /// plus the L1 and L1_SMALL buffers every bank holds.
    pub fn l1_peak_per_core(self, size: impl Into<SizeArg>) -> Self {
        self.set_core(CheckKind::L1PeakPerCore, size.into())
    }

    /// Requires at least `size` bytes between the CB region's end and the
    /// lowest L1 buffer at every enqueue: room for the next change to fit.
    pub fn min_cb_headroom(self, size: impl Into<SizeArg>) -> Self {
        self.set_core(CheckKind::MinCbHeadroom, size.into())
    }

    /// The per-core limits.
    pub fn cores(&self) -> &CoreBudget {
        &self.cores
    }

    /// Shorthand for [`peak`](Self::peak) of L1.
    pub fn l1_peak(self, size: impl Into<SizeArg>) -> Self {
        self.peak(BufferType::L1, size)
    }

    /// Shorthand for [`peak`](Self::peak) of DRAM.
    pub fn dram_peak(self, size: impl Into<SizeArg>) -> Self {
        self.peak(BufferType::Dram, size)
    }

    /// Shorthand for [`peak_per_bank`](Self::peak_per_bank) of L1.
    pub fn l1_peak_per_bank(self, size: impl Into<SizeArg>) -> Self {
        self.peak_per_bank(BufferType::L1, size)
    }

    /// Slack added to every peak and retained limit (device totals; per-bank
    /// limits get the tolerance divided by the bank count, rounded up).
    pub fn tolerance(mut self, size: impl Into<SizeArg>) -> Self {
        match size.into().resolve() {
            Ok(bytes) => self.tolerance = bytes,
            Err(source) => {
                if self.error.is_none() {
                    self.error = Some(BudgetError {
                        limit: "tolerance".to_string(),
                        source,
                    });
                }
            }
        }
        self
    }

    /// The limits of one pool.
    pub fn pool(&self, buffer_type: BufferType) -> &PoolBudget {
        &self.pools[buffer_type.index()]
    }

    /// The tolerance in bytes.
    pub fn tolerance_bytes(&self) -> u64 {
        self.tolerance
    }

    /// Checks that every size given could be read.
    ///
    /// # Errors
    ///
    /// [`BudgetError`] naming the limit and the bad text (the first one,
    /// when there are several).
    pub fn validate(&self) -> Result<(), BudgetError> {
        match &self.error {
            None => Ok(()),
            Some(error) => Err(error.clone()),
        }
    }

    /// Overrides this budget with every limit `other` sets (keeping their
    /// sources); used to layer file and environment budgets over code.
    pub fn overlay(mut self, other: &Budget) -> Budget {
        for t in BufferType::ALL {
            for (kind, per_bank) in SLOTS {
                if let Some(limit) = other.pools[t.index()].get(kind, per_bank) {
                    *self.pools[t.index()].slot(kind, per_bank) = Some(limit.clone());
                }
            }
        }
        for kind in CORE_CHECKS {
            if let (Some(limit), Some(slot)) = (other.cores.get(kind), self.cores.slot(kind)) {
                *slot = Some(limit.clone());
            }
        }
        if other.tolerance > 0 {
            self.tolerance = other.tolerance;
        }
        if self.error.is_none() {
            self.error = other.error.clone();
        }
        self
    }

    /// Sets one limit with an explicit source (budget files, environment);
    /// `limit.per_bank` chooses the total or the per-bank slot.
    pub fn with_limit(mut self, buffer_type: BufferType, kind: CheckKind, limit: Limit) -> Budget {
        if let Some(slot) = self.cores.slot(kind) {
            *slot = Some(Limit {
                per_bank: true,
                ..limit
            });
            return self;
        }
        let per_bank = limit.per_bank;
        *self.pools[buffer_type.index()].slot(kind, per_bank) = Some(limit);
        self
    }

    /// Whether the budget sets no limit at all.
    pub fn is_empty(&self) -> bool {
        self.tolerance == 0 && self.pools.iter().all(PoolBudget::is_empty) && self.cores.is_empty()
    }
}

//! Worker cores of a device's compute grid: coordinates, rectangles of cores and sets of them,
//! as TT-Metal names them (`CoreCoord`, `CoreRange`, `CoreRangeSet`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A rectangle or set of cores that cannot be: the end before the start, or two ranges of a
/// set sharing a core.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreRangeError {
    /// The end lies left of or above the start.
    #[error(
        "invalid core range from {start} to {end}: the end must not lie left of or above the start"
    )]
    Backwards {
        /// The first core given.
        start: CoreCoord,
        /// The last core given.
        end: CoreCoord,
    },
    /// A grid of no column or no row.
    #[error("a {x}x{y} grid has no core: give at least one column and one row")]
    EmptyGrid {
        /// Columns.
        x: u32,
        /// Rows.
        y: u32,
    },
    /// Two ranges of a set share a core.
    #[error(
        "core ranges {first} and {second} overlap: a core range set holds every core once (TT-Metal refuses overlapping ranges too)"
    )]
    Overlapping {
        /// One range.
        first: CoreRange,
        /// A later range sharing a core with it.
        second: CoreRange,
    },
}

type Result<T> = std::result::Result<T, CoreRangeError>;

/// A logical worker core: column `x` and row `y` of the compute grid.
///
/// # Examples
///
/// ```
/// use tt_memguard::CoreCoord;
///
/// let core = CoreCoord::new(3, 1);
/// assert_eq!(core, (3, 1).into());
/// assert_eq!(core.to_string(), "(x=3,y=1)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CoreCoord {
    /// Column, from 0.
    pub x: u32,
    /// Row, from 0.
    pub y: u32,
}

impl CoreCoord {
    /// The core at column `x`, row `y`.
    pub const fn new(x: u32, y: u32) -> CoreCoord {
        CoreCoord { x, y }
    }
}

impl From<(u32, u32)> for CoreCoord {
    fn from((x, y): (u32, u32)) -> CoreCoord {
        CoreCoord { x, y }
    }
}

impl fmt::Display for CoreCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(x={},y={})", self.x, self.y)
    }
}

/// An inclusive rectangle of cores, from `start` to `end`.
///
/// Displayed the way TT-Metal's messages print a range: `[X0-Y0 - X1-Y1]`.
///
/// # Examples
///
/// ```
/// use tt_memguard::CoreRange;
///
/// let grid = CoreRange::new((0, 0), (7, 7))?;
/// assert_eq!((grid.cores(), grid.to_string()), (64, "[0-0 - 7-7]".to_string()));
/// assert!(CoreRange::new((4, 0), (3, 0)).is_err()); // end before start
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CoreRange {
    /// The first core (lowest column and row).
    pub start: CoreCoord,
    /// The last core (highest column and row), included.
    pub end: CoreCoord,
}

impl CoreRange {
    /// The cores from `start` to `end`, both included.
    ///
    /// # Errors
    ///
    /// [`CoreRangeError::Backwards`] when `end` lies left of or above `start`.
    pub fn new(start: impl Into<CoreCoord>, end: impl Into<CoreCoord>) -> Result<CoreRange> {
        let (start, end) = (start.into(), end.into());
        if end.x < start.x || end.y < start.y {
            return Err(CoreRangeError::Backwards { start, end });
        }
        Ok(CoreRange { start, end })
    }

    /// The range holding one core.
    pub fn core(core: impl Into<CoreCoord>) -> CoreRange {
        let core = core.into();
        CoreRange {
            start: core,
            end: core,
        }
    }

    /// The whole compute grid of `x` columns and `y` rows (both at least 1).
    ///
    /// # Errors
    ///
    /// [`CoreRangeError::EmptyGrid`] for a grid with no column or no row.
    pub fn grid(x: u32, y: u32) -> Result<CoreRange> {
        match (x.checked_sub(1), y.checked_sub(1)) {
            (Some(x1), Some(y1)) => CoreRange::new((0, 0), (x1, y1)),
            _ => Err(CoreRangeError::EmptyGrid { x, y }),
        }
    }

    /// Number of cores.
    pub fn cores(&self) -> u64 {
        u64::from(self.end.x - self.start.x + 1) * u64::from(self.end.y - self.start.y + 1)
    }

    /// Whether the core lies in the range.
    pub fn contains(&self, core: CoreCoord) -> bool {
        (self.start.x..=self.end.x).contains(&core.x)
            && (self.start.y..=self.end.y).contains(&core.y)
    }

    /// Whether the two ranges share a core.
    pub fn intersects(&self, other: &CoreRange) -> bool {
        self.start.x <= other.end.x
            && other.start.x <= self.end.x
            && self.start.y <= other.end.y
            && other.start.y <= self.end.y
    }
}

impl fmt::Display for CoreRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}-{} - {}-{}]",
            self.start.x, self.start.y, self.end.x, self.end.y
        )
    }
}

/// Rectangles of cores that share no core.
///
/// # Examples
///
/// ```
/// use tt_memguard::{CoreRange, CoreRangeSet};
///
/// let set = CoreRangeSet::new([CoreRange::new((0, 0), (3, 3))?, CoreRange::new((4, 4), (7, 7))?])?;
/// assert_eq!(set.cores(), 32);
/// assert!(CoreRangeSet::new([CoreRange::new((0, 0), (3, 3))?, CoreRange::core((2, 2))]).is_err());
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CoreRangeSet {
    ranges: Vec<CoreRange>,
}

impl CoreRangeSet {
    /// A set of ranges, in the order given.
    ///
    /// # Errors
    ///
    /// [`CoreRangeError::Overlapping`] when two ranges share a core (TT-Metal refuses them
    /// too).
    pub fn new(ranges: impl IntoIterator<Item = CoreRange>) -> Result<CoreRangeSet> {
        let ranges: Vec<CoreRange> = ranges.into_iter().collect();
        for (i, a) in ranges.iter().enumerate() {
            if let Some(b) = ranges[i + 1..].iter().find(|b| a.intersects(b)) {
                return Err(CoreRangeError::Overlapping {
                    first: *a,
                    second: *b,
                });
            }
        }
        Ok(CoreRangeSet { ranges })
    }

    /// The ranges, in the order given.
    pub fn ranges(&self) -> &[CoreRange] {
        &self.ranges
    }

    /// Whether the set holds no core.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of cores.
    pub fn cores(&self) -> u64 {
        self.ranges.iter().map(CoreRange::cores).sum()
    }

    /// Whether the core lies in one of the ranges.
    pub fn contains(&self, core: CoreCoord) -> bool {
        self.ranges.iter().any(|r| r.contains(core))
    }
}

impl From<CoreRange> for CoreRangeSet {
    fn from(range: CoreRange) -> CoreRangeSet {
        CoreRangeSet {
            ranges: vec![range],
        }
    }
}

impl From<CoreCoord> for CoreRangeSet {
    fn from(core: CoreCoord) -> CoreRangeSet {
        CoreRange::core(core).into()
    }
}

impl fmt::Display for CoreRangeSet {
    /// `{[0-0 - 3-3], [4-4 - 7-7]}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        f.write_str("}")
    }
}

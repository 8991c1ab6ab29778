//! Why a program's circular buffers did not fit, with what would make them fit.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cores::CoreRange;
use crate::types::Allocation;
use crate::units::format_count;

/// Which of TT-Metal's two enqueue checks failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircularBufferCheck {
    /// The CB region of a core range ends past the L1 of a core.
    BeyondL1,
    /// The CB region of a core range ends above the lowest L1 buffer.
    Clash,
}

/// One circular buffer as a failure names it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircularBufferPlacement {
    /// Position in its program, from 0.
    pub handle: u32,
    /// Buffer indices it serves.
    pub indices: Vec<u8>,
    /// Size in bytes on each of its cores.
    pub size: u64,
    /// Its address.
    pub address: u64,
    /// Its cores (merged the way TT-Metal merges them is not shown: as created).
    pub cores: String,
}

/// The enqueue that made a scope's CB peak: which program, on which core, and the circular
/// buffers that core held.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramPeak {
    /// The program's id on its device.
    pub program: u64,
    /// The first core (by column, then row) whose CB region was the largest.
    pub core: crate::cores::CoreCoord,
    /// That core's CB region bytes.
    pub cb_bytes: u64,
    /// L1 and L1_SMALL buffer bytes of every bank at the enqueue.
    pub l1_buffers_per_bank: u64,
    /// Bytes between the region's end and the lowest L1 buffer (or the end of a core's L1).
    pub headroom: u64,
    /// The circular buffers on that core, by address.
    pub circular_buffers: Vec<CircularBufferPlacement>,
}

/// A program whose circular buffers do not fit in the L1 of their cores: TT-Metal's message
/// and the explanation (the CBs of the failing core range, the L1 buffer in the way, the bytes
/// of overlap, and what would make it fit).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircularBufferFailure {
    /// Which check failed.
    pub check: CircularBufferCheck,
    /// The program's id on its device.
    pub program: u64,
    /// The device.
    pub device: String,
    /// The core range whose region failed (TT-Metal checks range by range and stops at the
    /// first failure).
    pub range: CoreRange,
    /// Where that region ends.
    pub region_end: u64,
    /// The L1 size of a core ([`BeyondL1`](CircularBufferCheck::BeyondL1)) or the address of
    /// the lowest L1 buffer ([`Clash`](CircularBufferCheck::Clash)).
    pub limit: u64,
    /// Bottom of the CB region (the L1 pool's base).
    pub base: u64,
    /// The CBs laid out in the failing range's region, by address.
    pub circular_buffers: Vec<CircularBufferPlacement>,
    /// The lowest L1 buffer, for a clash, when it is known.
    pub lowest_buffer: Option<Allocation>,
    /// `l1_small_size` the device was opened with.
    pub l1_small_size: u64,
    /// The allocator granularity (a carve-out is rounded up to it).
    pub granularity: u64,
}

impl CircularBufferFailure {
    /// Bytes by which the region overshoots its limit.
    pub fn overlap(&self) -> u64 {
        self.region_end.saturating_sub(self.limit)
    }

    /// TT-Metal's own message for the failure.
    pub fn tt_metal_message(&self) -> String {
        match self.check {
            CircularBufferCheck::BeyondL1 => format!(
                "Statically allocated circular buffers on core range {} grow to {} B which is beyond max L1 size of {} B",
                self.range, self.region_end, self.limit
            ),
            CircularBufferCheck::Clash => format!(
                "Statically allocated circular buffers in program {} clash with L1 buffers on core range {}. L1 buffer allocated at {} and static circular buffer region ends at {}",
                self.program, self.range, self.limit, self.region_end
            ),
        }
    }
}

impl fmt::Display for CircularBufferFailure {
    /// TT-Metal's message, then the explanation, one fact a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let overlap = self.overlap();
        writeln!(f, "{}", self.tt_metal_message())?;
        writeln!(
            f,
            "  circular buffers of program {} on {} ({}), region {:#x}..{:#x} ({} B):",
            self.program,
            self.range,
            self.device,
            self.base,
            self.region_end,
            format_count(self.region_end.saturating_sub(self.base))
        )?;
        for cb in &self.circular_buffers {
            let indices: Vec<String> = cb.indices.iter().map(u8::to_string).collect();
            writeln!(
                f,
                "    CB {} (index {}) on {}: {} B at {:#x}..{:#x}",
                cb.handle,
                indices.join(", "),
                cb.cores,
                format_count(cb.size),
                cb.address,
                cb.address.saturating_add(cb.size)
            )?;
        }
        match self.check {
            CircularBufferCheck::BeyondL1 => {
                writeln!(
                    f,
                    "  the region ends {} B past the {} B of L1 a core has",
                    format_count(overlap),
                    format_count(self.limit)
                )?;
                write!(
                    f,
                    "  to fit: shrink the circular buffers on {} by {} B, or spread them over cores that hold fewer of them",
                    self.range,
                    format_count(overlap)
                )
            }
            CircularBufferCheck::Clash => {
                match &self.lowest_buffer {
                    Some(b) => {
                        let label = b
                            .label
                            .as_deref()
                            .map(|l| format!("'{l}' "))
                            .unwrap_or_default();
                        let site = b
                            .location
                            .as_ref()
                            .map(|l| format!(", allocated at {l}"))
                            .unwrap_or_default();
                        writeln!(
                            f,
                            "  lowest L1 buffer: {label}{} B {} buffer (id {}, {} B per bank) at {:#x}{site}",
                            format_count(b.size),
                            b.buffer_type,
                            b.id,
                            format_count(b.size_per_bank),
                            b.address,
                        )?;
                    }
                    None => writeln!(f, "  lowest L1 buffer at {:#x}", self.limit)?,
                }
                writeln!(
                    f,
                    "  overlap: {} B (the region ends at {:#x}, the buffer starts at {:#x})",
                    format_count(overlap),
                    self.region_end,
                    self.limit
                )?;
                write!(
                    f,
                    "  to fit: shrink the circular buffers on {} by {} B; or free the L1 buffer at {:#x} before the enqueue, or allocate it {} B higher",
                    self.range,
                    format_count(overlap),
                    self.limit,
                    format_count(overlap)
                )?;
                // L1 buffers grow down from below L1_SMALL: a smaller carve-out lifts them.
                let step = overlap.div_ceil(self.granularity.max(1)) * self.granularity.max(1);
                if self.l1_small_size >= step && step > 0 {
                    write!(
                        f,
                        "; or open the device with l1_small_size at most {} B ({} B less), which lifts top-down L1 buffers by as much",
                        format_count(self.l1_small_size - step),
                        format_count(step)
                    )?;
                }
                Ok(())
            }
        }
    }
}

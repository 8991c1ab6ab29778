//! Byte units: the binary multiples, sizes read from text ("512 KiB",
//! "1.5 MiB", "2GB", "4096") and byte counts written for people. The bottom
//! of the crate: it depends on no other module.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One kibibyte (1,024 bytes).
pub const KIB: u64 = 1 << 10;
/// One mebibyte (1,048,576 bytes).
pub const MIB: u64 = 1 << 20;
/// One gibibyte (1,073,741,824 bytes).
pub const GIB: u64 = 1 << 30;

/// A byte size that cannot be read: the text, and what is wrong with it and
/// what is accepted.
///
/// # Examples
///
/// ```
/// use tt_memguard::ByteSize;
///
/// let e = "12 XB".parse::<ByteSize>().unwrap_err();
/// assert_eq!(e.input(), "12 XB");
/// assert!(e.to_string().starts_with("invalid size \"12 XB\": unknown unit \"XB\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason}")]
pub struct SizeError {
    input: String,
    reason: String,
}

impl SizeError {
    fn new(input: &str, reason: impl Into<String>) -> SizeError {
        SizeError {
            input: input.to_string(),
            reason: reason.into(),
        }
    }

    /// The text that was given.
    pub fn input(&self) -> &str {
        &self.input
    }
}

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("pb", 1_000_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("pib", 1 << 50),
];

const ACCEPTED: &str = "a plain number of bytes, or a number with B, kB, MB, GB, TB, PB (powers of 1000) or KiB, MiB, GiB, TiB, PiB (powers of 1024), e.g. \"512 KiB\", \"1.5 MiB\", \"2GB\", \"4096\"";

/// A byte count parsed from text or given as a number.
///
/// Text is a number with an optional unit (no unit: bytes). The number may
/// have a decimal point and `_` separators; it is read exactly, with any
/// number of digits: the size is the number times the unit, which must be a
/// whole number of bytes that fits in 64 bits. So `"1.5 MiB"` is 1,572,864
/// bytes and `"1.000000000000000000000000000000 GiB"` is 1 GiB, while
/// `"0.5 B"` and `"1.1 KiB"` (1,126.4 bytes) are refused, as is anything
/// from 16 EiB up.
///
/// # Examples
///
/// ```
/// use tt_memguard::ByteSize;
///
/// assert_eq!("512 KiB".parse::<ByteSize>()?.bytes(), 524_288);
/// assert_eq!("1.5 MiB".parse::<ByteSize>()?.bytes(), 1_572_864);
/// assert_eq!("2GB".parse::<ByteSize>()?.bytes(), 2_000_000_000);
/// assert_eq!("4096".parse::<ByteSize>()?.bytes(), 4096);
/// assert_eq!("0.000_5 MB".parse::<ByteSize>()?.bytes(), 500);
/// assert!("12 XB".parse::<ByteSize>().is_err());
/// assert!("1.1 KiB".parse::<ByteSize>().is_err());
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Parses a size.
    ///
    /// # Errors
    ///
    /// [`SizeError`] naming the text and what is accepted: an unknown unit,
    /// a negative or malformed number, a fraction of a byte, or a size that
    /// does not fit in 64 bits.
    pub fn parse(text: &str) -> Result<ByteSize, SizeError> {
        parse_size(text).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format_bytes(self.0))
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(s: &str) -> Result<Self, SizeError> {
        ByteSize::parse(s)
    }
}

impl From<u64> for ByteSize {
    fn from(bytes: u64) -> Self {
        ByteSize(bytes)
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> SizeError {
    SizeError::new(input, reason)
}

fn parse_size(input: &str) -> Result<u64, SizeError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(invalid(
            input,
            format!("the size is empty; expected {ACCEPTED}"),
        ));
    }
    if text.starts_with('-') {
        return Err(invalid(input, "sizes cannot be negative"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_' || c == '+'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number = number.strip_prefix('+').unwrap_or(number).replace('_', "");
    let unit = unit.trim();
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|&(_, m)| m)
            .ok_or_else(|| invalid(input, format!("unknown unit {unit:?}; expected {ACCEPTED}")))?
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number.as_str(), ""),
    };
    let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits_ok(whole) || !digits_ok(fraction) {
        return Err(invalid(
            input,
            format!("{number:?} is not a number; expected {ACCEPTED}"),
        ));
    }
    // Exact decimal arithmetic on the digits as written, so that no number
    // of digits loses precision or overflows: value = whole.fraction x unit.
    // Zeros that cannot change the value are dropped first.
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let product = multiply_decimal(whole.bytes().chain(fraction.bytes()), multiplier);
    let (integer, rest) = product.split_at(product.len().saturating_sub(fraction.len()));
    if rest.iter().any(|&d| d != 0) {
        return Err(invalid(input, "the size is not a whole number of bytes"));
    }
    let integer = match integer.iter().position(|&d| d != 0) {
        Some(first) => &integer[first..],
        None => &[],
    };
    integer
        .iter()
        .try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d))
        })
        .ok_or_else(|| invalid(input, "the size does not fit in 64 bits (at most 16 EiB)"))
}

/// The decimal digits (ASCII) times `multiplier`, as digit values, most
/// significant first; as many digits as needed, so nothing overflows.
fn multiply_decimal(digits: impl DoubleEndedIterator<Item = u8>, multiplier: u64) -> Vec<u8> {
    let mut out = Vec::new(); // least significant first
    let mut carry: u128 = 0;
    for digit in digits.rev() {
        let v = u128::from(digit - b'0') * u128::from(multiplier) + carry;
        out.push((v % 10) as u8);
        carry = v / 10;
    }
    while carry > 0 {
        out.push((carry % 10) as u8);
        carry /= 10;
    }
    out.reverse();
    out
}

/// Formats a byte count for people: `512 B`, `88.0 KiB`, `1.5 MiB`, `4.0 GiB`
/// (up to `16.0 EiB` for `u64::MAX`).
///
/// # Examples
///
/// ```
/// assert_eq!(tt_memguard::render::format_bytes(1536 * 1024), "1.5 MiB");
/// assert_eq!(tt_memguard::render::format_bytes(100), "100 B");
/// assert_eq!(tt_memguard::render::format_bytes(1_048_575), "1.0 MiB");
/// assert_eq!(tt_memguard::render::format_bytes(u64::MAX), "16.0 EiB");
/// ```
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < KIB {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    // 1,048,575 B is 1.0 MiB, not 1024.0 KiB: the unit follows the rounding.
    while value >= 1023.95 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Formats a count with thousands separators: `1,072,693,184`.
///
/// # Examples
///
/// ```
/// assert_eq!(tt_memguard::render::format_count(1_072_693_184), "1,072,693,184");
/// ```
pub fn format_count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Result<u64, SizeError> {
        ByteSize::parse(text).map(ByteSize::bytes)
    }

    #[test]
    fn exact_decimals_of_any_length_are_read_exactly() {
        let zeros = "0".repeat(1000);
        assert_eq!(bytes(&format!("1.{zeros} B")).unwrap(), 1);
        assert_eq!(bytes(&format!("1.{zeros} GiB")).unwrap(), 1 << 30);
        assert_eq!(bytes(&format!("{zeros}4096")).unwrap(), 4096);
        assert_eq!(bytes(&format!("0.{zeros}")).unwrap(), 0);
        // 2^-50 PiB is one byte: 50 decimals, all significant.
        let one = "0.00000000000000088817841970012523233890533447265625 PiB";
        assert_eq!(bytes(one).unwrap(), 1);
        assert_eq!(bytes("18446744073709551615").unwrap(), u64::MAX);
        assert_eq!(
            bytes("18446744073709551615.000000000000000000000").unwrap(),
            u64::MAX
        );
        // u64::MAX bytes in PiB, written out exactly.
        let max = "16383.99999999999999911182158029987476766109466552734375 PiB";
        assert_eq!(bytes(max).unwrap(), u64::MAX);
        assert_eq!(
            bytes("0.0000000112277120933867990970611572265625 TiB").unwrap(),
            12_345
        );
    }

    #[test]
    fn fractions_of_a_byte_and_overflow_are_refused_whatever_the_length() {
        let fraction = |text: &str| {
            let e = bytes(text).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid size {text:?}: the size is not a whole number of bytes")
            );
        };
        fraction(&format!("1.{}1 B", "0".repeat(1000)));
        fraction("1.1 KiB");
        fraction("0.000000000000000888178419700125232338905334472656251 PiB");
        fraction(&format!("18446744073709551616.{}1", "0".repeat(40)));
        let overflow = |text: &str| {
            let e = bytes(text).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid size {text:?}: the size does not fit in 64 bits (at most 16 EiB)")
            );
        };
        overflow("18446744073709551616");
        overflow(&format!("1{} B", "0".repeat(1000)));
        overflow("16384 PiB");
        overflow("18446744073709551615.5 KiB");
        overflow(&format!("20000000000000000000.{}", "0".repeat(100)));
    }
}

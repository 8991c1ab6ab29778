//! What the macros call: closure forms of a guarded scope, and the
//! `#[track_caller]` helpers behind `assert_no_leak!` and
//! `assert_memory_budget!`.

use std::panic::Location;

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::group::MemorySource;
use crate::guard::{GuardOptions, MemoryGuard};
use crate::report::MemoryReport;

/// Runs `body` inside a guard: `warmup` times unguarded first (see
/// [`GuardOptions::warmup`]), then once guarded; returns the body's value
/// and the report.
///
/// # Errors
///
/// [`Error::MemoryCheckFailed`] with the report when a check failed; the
/// errors of [`MemoryGuard::try_new`] when the guard cannot start (for
/// example [`Error::NoDevice`] for a source without devices), before
/// `body` runs guarded; and the infrastructure errors of
/// [`MemoryGuard::finish`].
///
/// # Examples
///
/// ```
/// use tt_memguard::{check, BufferType, GuardOptions, SimDevice, MIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let (value, report) = check(&dev, GuardOptions::new(), || {
///     let b = dev.allocate(BufferType::Dram, MIB, 2048).unwrap();
///     b.address()
/// })?;
/// assert_eq!(value, 0x100040);
/// assert!(report.passed);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[track_caller]
pub fn check<S, T>(
    source: &S,
    options: GuardOptions,
    mut body: impl FnMut() -> T,
) -> Result<(T, MemoryReport)>
where
    S: MemorySource + ?Sized,
{
    for _ in 0..options.warmup {
        drop(body());
    }
    let guard = MemoryGuard::start(source.devices(), options, Some(Location::caller()))?;
    let value = body();
    let report = guard.finish()?;
    Ok((value, report))
}

/// Like [`check`], but panics with the report when a check fails.
///
/// # Panics
///
/// When a check fails (the message is the report), when the guard cannot
/// start (a closed device, a source without devices or with one twice), or
/// when the source cannot be read at the end; [`check`] returns these as
/// errors.
///
/// # Examples
///
/// ```
/// use tt_memguard::{assert_memory, BufferType, GuardOptions, SimDevice, MIB};
///
/// let dev = SimDevice::wormhole_b0();
/// let size = assert_memory(&dev, GuardOptions::new(), || dev.allocate(BufferType::Dram, MIB, 2048).unwrap().size());
/// assert_eq!(size, MIB);
/// ```
#[track_caller]
pub fn assert_memory<S, T>(source: &S, options: GuardOptions, body: impl FnMut() -> T) -> T
where
    S: MemorySource + ?Sized,
{
    match check(source, options, body) {
        Ok((value, _)) => value,
        Err(e) => panic!("{e}"),
    }
}

/// Starts the guard of an assertion macro (the location is the caller's),
/// panicking when it cannot start. The guard is owned by the macro: if the
/// macro's block leaves early, the guard does not panic (see
/// [`MemoryGuard::owned_by`]).
#[doc(hidden)]
#[track_caller]
pub fn macro_guard<S: MemorySource + ?Sized>(
    source: &S,
    options: GuardOptions,
    macro_name: &'static str,
) -> MemoryGuard {
    match macro_try_guard(source, options, macro_name) {
        Ok(guard) => guard,
        Err(e) => panic!("{macro_name}: cannot start a memory guard: {e}"),
    }
}

/// Starts the guard of a `try_` macro, or returns why it cannot start.
#[doc(hidden)]
#[track_caller]
pub fn macro_try_guard<S: MemorySource + ?Sized>(
    source: &S,
    options: GuardOptions,
    macro_name: &'static str,
) -> Result<MemoryGuard> {
    MemoryGuard::start(source.devices(), options, Some(Location::caller()))
        .map(|guard| guard.owned_by(macro_name))
}

/// Ends a macro's guard, panicking with the report when a check failed.
#[doc(hidden)]
#[track_caller]
pub fn macro_assert(guard: MemoryGuard) {
    if let Err(e) = guard.finish() {
        panic!("{e}");
    }
}

/// Ends a macro's guard and returns the body's value or the failure.
#[doc(hidden)]
pub fn macro_try<T>(guard: MemoryGuard, value: T) -> Result<T> {
    guard.finish().map(|_| value)
}

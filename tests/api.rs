//! The public surface: what the prelude brings into a test file, and errors
//! that keep the error underneath them as their source.

use std::error::Error as _;
use std::path::Path;

use tt_memguard::live::LiveLine;
use tt_memguard::prelude::*;
use tt_memguard::runner::{BudgetConfig, RunReport};
use tt_memguard::{BudgetError, ParseBufferTypeError, SizeError, Trace};

/// A test file written against the prelude alone.
fn fits_and_leaks(dev: &Device) -> TestResult {
    assert_memory_budget!(dev, l1 <= "512 KiB", dram <= 64 * MIB, {
        let _tiles = dev.allocate(BufferType::L1, 256 * KIB, 2048)?;
    });
    let guard = MemoryGuard::with_options(
        dev,
        GuardOptions::new()
            .budget(Budget::new().l1_peak(ByteSize(GIB)))
            .allow(Allow::label("cache")),
    )?;
    std::mem::forget(
        dev.buffer(BufferType::Dram, MIB)
            .page_size(2048)
            .label("cache")
            .allocate()?,
    );
    let report: MemoryReport = guard.finish()?;
    assert_eq!(report.device().persistent.len(), 1);
    let leaked: Result<()> = try_assert_no_leak!(dev, {
        std::mem::forget(dev.allocate(BufferType::Dram, MIB, 2048)?);
    });
    let error: Error = leaked.unwrap_err();
    assert_eq!(
        error
            .memory_report()
            .expect("a failed check")
            .leaks()
            .count(),
        1
    );
    Ok(())
}

/// The prelude is all a test file needs.
#[test]
fn the_prelude_is_enough_for_a_test_file() {
    fits_and_leaks(&SimDevice::preset(Preset::WormholeB0)).unwrap();
}

/// The first cause of `error` of type `E`, walking the whole chain.
fn cause<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut next = error.source();
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<E>() {
            return Some(found);
        }
        next = cause.source();
    }
    None
}

/// Errors keep the error underneath as their source, not
/// only as text.
#[test]
fn errors_keep_their_causes() {
    let path = Path::new("memguard.toml");

    // A budget size: BudgetError -> SizeError, also through Error.
    let budget = Budget::new().l1_peak("12 XB").validate().unwrap_err();
    assert_eq!(budget.limit(), "L1 peak budget");
    assert_eq!(cause::<SizeError>(&budget).unwrap().input(), "12 XB");
    let error = Error::from(budget.clone());
    assert!(matches!(&error, Error::InvalidBudget(b) if *b == budget));
    assert_eq!(cause::<SizeError>(&error).unwrap().input(), "12 XB");
    assert_eq!(error.to_string(), budget.to_string());

    // A budget file: a bad size, and a TOML syntax error.
    let e = BudgetConfig::parse("[defaults]\nl1_peak = \"12 XB\"\n", path).unwrap_err();
    assert!(
        matches!(&e, Error::Config(c) if c.line == 2 && c.key == "l1_peak"),
        "{e}"
    );
    assert_eq!(cause::<SizeError>(&e).unwrap().input(), "12 XB");
    let e = BudgetConfig::parse("[defaults\n", path).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(e.source().is_some(), "{e}");
    assert!(e.to_string().contains("not valid TOML"), "{e}");

    // A budget variable.
    let vars = [("TT_MEMGUARD_L1_PEAK".to_string(), "lots".to_string())];
    let e = BudgetConfig::from_env(vars).unwrap_err();
    assert!(matches!(e, Error::Env { .. }), "{e}");
    assert_eq!(cause::<SizeError>(&e).unwrap().input(), "lots");

    // A live stream line that is not JSON.
    let e = LiveLine::parse("{not json", 7, Path::new("live.jsonl")).unwrap_err();
    assert!(matches!(e, Error::LiveStream { line: 7, .. }), "{e}");
    assert!(cause::<serde_json::Error>(&e).is_some(), "{e:?}");

    // A trace naming a pool that does not exist.
    let e = Trace::parse("alloc a SRAM 4096 4096 def\n").unwrap_err();
    assert!(matches!(e, Error::TraceSyntax { line: 1, .. }), "{e}");
    assert_eq!(cause::<ParseBufferTypeError>(&e).unwrap().value(), "SRAM");
    let e = Error::from("SRAM".parse::<BufferType>().unwrap_err());
    assert!(matches!(e, Error::UnknownBufferType(_)), "{e}");

    // A report file that is not JSON.
    let file = std::env::temp_dir().join(format!("memguard-api-{}.json", std::process::id()));
    std::fs::write(&file, "{not json").unwrap();
    let e = RunReport::read(&file).unwrap_err();
    std::fs::remove_file(&file).unwrap();
    assert!(matches!(e, Error::ReportFormat { .. }), "{e}");
    assert!(cause::<serde_json::Error>(&e).is_some(), "{e:?}");

    // Debug does not repeat a cause the message already quotes.
    let e = BudgetConfig::from_env([("TT_MEMGUARD_L1_PEAK".to_string(), "lots".to_string())])
        .unwrap_err();
    assert_eq!(format!("{e:?}"), e.to_string());
}

/// Errors stay small enough to return by value (clippy's `result_large_err`
/// warns from 128 bytes): the bulky budget-file error is boxed.
#[test]
fn the_error_type_stays_small() {
    assert!(
        std::mem::size_of::<Error>() < 128,
        "{}",
        std::mem::size_of::<Error>()
    );
}

/// Byte formatting lives with the rendering helpers and
/// the units; `ByteSize` prints through it.
#[test]
fn byte_counts_print_the_same_everywhere() {
    use tt_memguard::render::{format_bytes, format_count};
    assert_eq!(format_bytes(1536 * KIB), "1.5 MiB");
    assert_eq!(ByteSize(1536 * KIB).to_string(), format_bytes(1536 * KIB));
    assert_eq!(format_count(1_072_693_184), "1,072,693,184");
    let e: SizeError = "1.1 KiB".parse::<ByteSize>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid size \"1.1 KiB\": the size is not a whole number of bytes"
    );
    let _: fn(&Budget) -> std::result::Result<(), BudgetError> = Budget::validate;
}

//! Trace tests ([`Harness::traces`](super::Harness::traces)): one test per
//! trace file of a directory, replayed inside the test's guard.
//!
//! The directory is listed when the run starts (its files name the tests);
//! each file is read by its own test, so that a file that cannot be read or
//! parsed fails that test only. A trace test replays on a simulated device
//! opened from the trace's own header (device model and carve-outs) unless
//! the run's device was chosen, in code or in the environment: then it
//! replays on that device, and a trace whose expectations (`expect=`) were
//! recorded on another geometry fails naming both (see [`check_device`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::provider::{DeviceProvider, SimKey};
use super::{Run, Test};
use crate::device::{Buffer, Device};
use crate::error::{Error, Result};
use crate::trace::{ReplayMode, Trace, TraceOp};
use crate::ttnn_capture::ImportOptions;
use crate::types::Snapshot;

/// The extension of trace files in the text format.
const TEXT: &str = "trace";
/// The extension of ttnn graph captures.
const CAPTURE: &str = "json";

/// One trace file of a trace test.
pub(crate) struct TraceFile {
    /// The file to read.
    path: PathBuf,
    /// The file as messages name it: the directory as given, then the
    /// file's name.
    shown: String,
    /// A ttnn graph capture (`*.json`) rather than a trace (`*.trace`).
    capture: bool,
}

/// What the run's device was chosen by, when it was (trace tests then
/// replay on it rather than on the device their header names).
#[derive(Debug, Clone)]
pub(crate) struct DeviceChoice {
    /// What chose it: `TT_MEMGUARD_DEVICE=sim:bh`, `Harness::device`, ...
    pub by: String,
    /// How to leave the choice to the traces.
    pub undo: String,
}

/// Adds one test per trace file (`*.trace`, `*.json`) of `dir` (relative to
/// `manifest_dir` unless absolute) to `tests`, in file-name order; names
/// are `<dir's name>::<file stem>`. Subdirectories, hidden files and
/// other files are left alone.
///
/// # Errors
///
/// [`Error::TraceTests`] when the directory cannot be listed, holds no
/// trace file, or two files (or a file and another test) would make tests
/// of the same name.
pub(crate) fn expand(dir: &Path, manifest_dir: &Path, tests: &mut Vec<Test>) -> Result<()> {
    let resolved = manifest_dir.join(dir);
    let fail = |reason: String, source: Option<std::io::Error>| Error::TraceTests {
        dir: dir.to_path_buf(),
        reason,
        source,
    };
    let entries = std::fs::read_dir(&resolved).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "no such directory ({}): create it and put trace files (*.{TEXT}, ttnn graph captures *.{CAPTURE}) in it, or fix the path given to Harness::traces (relative to the package root)",
                resolved.display()
            ),
            _ => format!("cannot list it: {e}: give Harness::traces a readable directory"),
        };
        fail(reason, Some(e))
    })?;
    let mut files = Vec::new();
    let mut ignored = 0usize;
    for entry in entries {
        let entry = entry.map_err(|e| fail(format!("cannot list it: {e}"), Some(e)))?;
        let name = entry.file_name();
        let path = entry.path();
        let extension = path.extension().and_then(|x| x.to_str());
        let wanted = matches!(extension, Some(TEXT | CAPTURE))
            && !name.to_string_lossy().starts_with('.')
            // Follows links: a linked trace file is a trace file.
            && std::fs::metadata(&path).is_ok_and(|m| m.is_file());
        if !wanted {
            ignored += 1;
            continue;
        }
        let Some(name) = name.to_str().map(str::to_string) else {
            return Err(fail(
                format!(
                    "the file name {:?} is not UTF-8 and cannot name a test: rename it",
                    name
                ),
                None,
            ));
        };
        files.push((name, path));
    }
    if files.is_empty() {
        let others = match ignored {
            0 => String::new(),
            n => format!(
                " ({n} other entr{} ignored)",
                if n == 1 { "y" } else { "ies" }
            ),
        };
        return Err(fail(
            format!(
                "it holds no trace file (*.{TEXT}, or a ttnn graph capture *.{CAPTURE}){others}: add traces to it (TT_MEMGUARD_RECORD=DIR records every test's device activity as DIR/<test>.trace), or remove Harness::traces"
            ),
            None,
        ));
    }
    files.sort();
    let prefix = dir_name(dir, &resolved);
    let shown_dir = dir.to_string_lossy().replace('\\', "/");
    let shown_dir = shown_dir.trim_end_matches('/');
    // Where each name comes from, for the error when two are the same.
    let mut made: HashMap<String, String> = tests
        .iter()
        .map(|t| (t.name.clone(), format!("another test is named {}", t.name)))
        .collect();
    for (name, path) in files {
        let capture = path.extension().is_some_and(|x| x == CAPTURE);
        let stem = Path::new(&name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let test_name = format!("{prefix}::{stem}");
        let shown = if shown_dir.is_empty() {
            name.clone()
        } else {
            format!("{shown_dir}/{name}")
        };
        if let Some(other) = made.get(&test_name) {
            return Err(fail(
                format!(
                    "{shown} makes the test {test_name}, but {other}: rename the file (a trace test is named after its directory and its file name without the extension)"
                ),
                None,
            ));
        }
        made.insert(test_name.clone(), format!("{shown} makes it too"));
        tests.push(Test {
            name: test_name,
            run: Run::Trace(TraceFile {
                path,
                shown,
                capture,
            }),
            budget: None,
            allow: Vec::new(),
            warmup: 0,
            ignored: false,
        });
    }
    Ok(())
}

/// The first part of a trace test's name: the directory's own name
/// (`traces` for `tests/traces`), else that of the directory it resolves to.
fn dir_name(dir: &Path, resolved: &Path) -> String {
    if let Some(name) = dir.file_name() {
        return name.to_string_lossy().into_owned();
    }
    resolved
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "traces".to_string())
}

/// A trace file, read.
pub(crate) struct Loaded {
    pub trace: Trace,
    /// What the import of a ttnn capture will miss or only approximate
    /// (empty for a trace file).
    pub notes: Vec<String>,
    /// Whether the capture has L1_SMALL or TRACE buffers the device has no
    /// region for.
    pub carve_outs_missing: bool,
}

impl TraceFile {
    /// Reads and parses the file (a capture is imported with `options`).
    ///
    /// # Errors
    ///
    /// The reason, naming the file (and the line or node), as the test's
    /// failure message.
    pub(crate) fn load(&self, options: &ImportOptions) -> std::result::Result<Loaded, String> {
        let shown = PathBuf::from(&self.shown);
        let named = |e: Error| match e {
            Error::Io { source, .. } => Error::Io {
                path: shown.clone(),
                source,
            },
            Error::TraceSyntax {
                line,
                text,
                reason,
                source,
                ..
            } => Error::TraceSyntax {
                path: Some(shown.clone()),
                line,
                text,
                reason,
                source,
            },
            Error::TtnnCapture(mut capture) => {
                capture.path = Some(shown.clone());
                Error::TtnnCapture(capture)
            }
            other => other,
        };
        if self.capture {
            let imported = Trace::from_ttnn_capture_file(&self.path, options)
                .map_err(|e| named(e).to_string())?;
            let report = &imported.report;
            Ok(Loaded {
                notes: report.notes(options),
                carve_outs_missing: (report.l1_small_buffers > 0 && options.l1_small_size == 0)
                    || (report.trace_buffers > 0 && options.trace_region_size == 0),
                trace: imported.trace,
            })
        } else {
            let trace = Trace::from_file(&self.path).map_err(|e| named(e).to_string())?;
            Ok(Loaded {
                trace,
                notes: Vec::new(),
                carve_outs_missing: false,
            })
        }
    }

    /// The file as messages name it.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// What a position in the file is called: a line of a trace, a node of
    /// a capture (an imported operation's line is its node's counter).
    fn position(&self, line: usize) -> String {
        match self.capture {
            true => format!("node {line}"),
            false => format!("line {line}"),
        }
    }
}

/// The simulated device a trace names: its model and carve-outs.
pub(crate) fn own_device(trace: &Trace) -> SimKey {
    (trace.preset, trace.l1_small_size, trace.trace_region_size)
}

/// The options a capture is imported with: the run's device's model and
/// carve-outs when the run's device was chosen, else the capture's own
/// (its architecture, no carve-outs).
pub(crate) fn import_options(provider: &DeviceProvider, chosen: bool) -> ImportOptions {
    if !chosen {
        return ImportOptions::new();
    }
    match provider {
        DeviceProvider::Sim {
            preset,
            l1_small_size,
            trace_region_size,
        } => ImportOptions::new()
            .preset(*preset)
            .l1_small_size(*l1_small_size)
            .trace_region_size(*trace_region_size),
        // A mesh's buffers are placed by one chip's allocator.
        DeviceProvider::SimMesh {
            preset,
            l1_small_size,
            trace_region_size,
        } => ImportOptions::new()
            .preset(preset.chip())
            .l1_small_size(*l1_small_size)
            .trace_region_size(*trace_region_size),
        DeviceProvider::Shared(shared) => {
            let info = shared.device().info();
            ImportOptions::new()
                .l1_small_size(info.l1_small_size)
                .trace_region_size(info.trace_region_size)
        }
    }
}

/// Checks that a trace with expectations replays on `device`, the run's
/// chosen device, with its recorded geometry: expectations hold only there.
/// A trace without expectations replays on any device.
///
/// # Errors
///
/// The test's failure message: both devices, what chose the run's, and the
/// ways out.
pub(crate) fn check_device(
    file: &TraceFile,
    test: &str,
    trace: &Trace,
    device: &Device,
    device_key: &str,
    choice: &DeviceChoice,
) -> std::result::Result<(), String> {
    let expectations = trace
        .ops
        .iter()
        .filter(|(_, op)| match op {
            TraceOp::Alloc { expect, .. } | TraceOp::Enqueue { expect, .. } => expect.is_some(),
            _ => false,
        })
        .count();
    if expectations == 0 || same_geometry(trace, device) {
        return Ok(());
    }
    let recorded = DeviceProvider::key_of(own_device(trace));
    Err(format!(
        "{shown} names the device {recorded} and expects what it did ({expectations} expect= option{s}: where it placed buffers and circular buffers, or what it refused), but this run's device is {device_key} (chosen by {by}), whose geometry differs: those would not hold there. To replay it on the device it names, {undo} (a trace test then opens the simulated device its header names); to ask what {device_key} does with it, drop its expectations (remove its expect= options, or write it back after Trace::clear_expectations); or leave it out of this run (--skip {test}).",
        shown = file.shown,
        s = if expectations == 1 { "" } else { "s" },
        by = choice.by,
        undo = choice.undo,
    ))
}

/// Whether `device` has the layout of every pool and the compute grid of
/// the simulated device `trace` names.
fn same_geometry(trace: &Trace, device: &Device) -> bool {
    let layout = |s: &Snapshot| {
        s.iter()
            .map(|p| (p.num_banks, p.base_address, p.alignment, p.size_per_bank))
            .collect::<Vec<_>>()
    };
    let Ok(recorded) = trace.open_sim() else {
        return false;
    };
    recorded.info().compute_grid == device.info().compute_grid
        && matches!(
            (recorded.snapshot(), device.snapshot()),
            (Ok(a), Ok(b)) if layout(&a) == layout(&b)
        )
}

/// Replays `loaded` on `device`, stopping at the first operation the device
/// refuses that the trace does not expect to be refused, or the first
/// expectation it does not meet. Returns the buffers still live at the
/// trace's end, each with its line: the workload's leaks, kept for the
/// guard to see.
///
/// # Errors
///
/// The test's failure message: the file, the line (or node), the
/// operation and the device's whole error.
pub(crate) fn replay(
    file: &TraceFile,
    loaded: &Loaded,
    device: &Device,
    device_key: &str,
) -> std::result::Result<Vec<(usize, Buffer)>, String> {
    let mode = ReplayMode {
        stop_on_refusal: true,
        unlocated: true,
    };
    // The last operation's line and, when the device refused it, its error.
    let mut last: Option<(usize, Option<String>)> = None;
    let replayed = loaded.trace.replay_steps(device, mode, &mut |step| {
        if step.line > 0 {
            last = Some((step.line, step.error.map(ToString::to_string)));
        }
    });
    let e = match replayed {
        Ok(live) => return Ok(live),
        Err(e) => e,
    };
    let operation = |line: usize| {
        loaded
            .trace
            .ops
            .iter()
            .find(|(l, _)| *l == line)
            .map(|(_, op)| op.to_string())
            .unwrap_or_default()
    };
    let mut message = match (&e, last) {
        (
            Error::TraceMismatch {
                line,
                text,
                expected,
                found,
            },
            last,
        ) => {
            let mut message = format!(
                "{}: {}: the replay differs from the recording: expected {expected}, the device gave {found}: {text:?} (on {device_key}, which has the geometry the trace was recorded on: the workload or the allocator changed since the recording; record the trace again, or drop this expect= to stop checking it)",
                file.shown,
                file.position(*line)
            );
            if let Some((_, Some(device_error))) = last {
                message.push_str(&format!("\nthe device's error: {device_error}"));
            }
            message
        }
        (Error::TraceSyntax { .. }, _) => format!("{}: {e}", file.shown),
        (_, Some((line, Some(_)))) => format!(
            "{}: {}: {:?} was refused: {e}",
            file.shown,
            file.position(line),
            operation(line)
        ),
        (_, Some((line, None))) => format!(
            "{}: {}: the replay stopped after {:?}: {e}",
            file.shown,
            file.position(line),
            operation(line)
        ),
        (_, None) => format!(
            "{}: the replay stopped before its first operation: {e}",
            file.shown
        ),
    };
    if !loaded.notes.is_empty() {
        message.push_str(&notes_text(loaded));
    }
    Err(message)
}

/// The import's notes, one per line, after a line saying what they are.
pub(crate) fn notes_text(loaded: &Loaded) -> String {
    let mut text = String::from("\nthe import of the capture noted:");
    for note in &loaded.notes {
        text.push_str("\n  ");
        text.push_str(note);
    }
    if loaded.carve_outs_missing {
        text.push_str("\n  (a trace test's device gets carve-outs from TT_MEMGUARD_L1_SMALL_SIZE and TT_MEMGUARD_TRACE_REGION_SIZE, or Harness::device)");
    }
    text
}

/// The buffers still live at the end of the trace, for a failed test's
/// message: `'weights' (line 7), 'b3' (line 9)`.
pub(crate) fn leaks_text(file: &TraceFile, trace: &Trace, live: &[(usize, Buffer)]) -> String {
    let mut lines: Vec<usize> = live.iter().map(|(line, _)| *line).collect();
    lines.sort_unstable();
    let names: Vec<String> = lines
        .iter()
        .map(|&line| {
            let name = trace.ops.iter().find_map(|(l, op)| match op {
                TraceOp::Alloc { id, label, .. } if *l == line => {
                    Some(label.clone().unwrap_or_else(|| id.clone()))
                }
                _ => None,
            });
            format!("{:?} ({})", name.unwrap_or_default(), file.position(line))
        })
        .collect();
    format!("never freed by {}: {}", file.shown, names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("memguard-trace-dir-{}-{name}", std::process::id()))
            .join("traces");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(tests: &[Test]) -> Vec<&str> {
        tests.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn one_test_per_trace_file_in_name_order_others_left_alone() {
        let dir = scratch("listing");
        for file in [
            "b.trace",
            "a.json",
            "c.trace",
            "notes.md",
            "c.trace.bak",
            ".hidden.trace",
        ] {
            std::fs::write(dir.join(file), "").unwrap();
        }
        std::fs::create_dir(dir.join("nested.trace")).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub").join("d.trace"), "").unwrap();
        let mut tests = vec![Test::new("plain", |_: &Device| {})];
        expand(&dir, Path::new("/unused"), &mut tests).unwrap();
        assert_eq!(
            names(&tests),
            ["plain", "traces::a", "traces::b", "traces::c"]
        );
        let Run::Trace(file) = &tests[1].run else {
            panic!("a trace test")
        };
        assert!(file.capture);
        assert_eq!(file.shown, format!("{}/a.json", dir.display()));
    }

    #[test]
    fn a_relative_directory_is_under_the_package_root_and_shown_as_given() {
        let dir = scratch("relative");
        std::fs::write(dir.join("x.trace"), "").unwrap();
        let root = dir.parent().unwrap();
        let mut tests = Vec::new();
        expand(Path::new("traces/"), root, &mut tests).unwrap();
        assert_eq!(names(&tests), ["traces::x"]);
        let Run::Trace(file) = &tests[0].run else {
            panic!("a trace test")
        };
        assert_eq!(file.shown, "traces/x.trace");
        // "." is named after the directory it is.
        let mut tests = Vec::new();
        expand(Path::new("."), &dir, &mut tests).unwrap();
        assert_eq!(names(&tests), ["traces::x"]);
    }

    #[test]
    fn bad_directories_are_errors_naming_them_and_the_fix() {
        let dir = scratch("bad");
        let missing = dir.join("missing");
        let e = expand(&missing, Path::new("/"), &mut Vec::new()).unwrap_err();
        assert!(matches!(e, Error::TraceTests { .. }));
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "trace tests in {}: no such directory",
                missing.display()
            )),
            "{text}"
        );
        assert!(
            text.contains("fix the path given to Harness::traces"),
            "{text}"
        );

        let e = expand(&dir, Path::new("/"), &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string().contains(
                "it holds no trace file (*.trace, or a ttnn graph capture *.json): add traces"
            ),
            "{e}"
        );

        std::fs::write(dir.join("x.trace"), "").unwrap();
        let mut tests = vec![Test::new("traces::x", |_: &Device| {})];
        let e = expand(&dir, Path::new("/"), &mut tests).unwrap_err();
        assert!(
            e.to_string().contains("x.trace makes the test traces::x, but another test is named traces::x: rename the file"),
            "{e}"
        );
    }

    #[test]
    fn an_unreadable_file_fails_naming_the_file_as_shown() {
        let file = TraceFile {
            path: PathBuf::from("/nonexistent/memguard/x.trace"),
            shown: "tests/traces/x.trace".to_string(),
            capture: false,
        };
        let e = file.load(&ImportOptions::new()).err().unwrap();
        assert!(e.starts_with("cannot access tests/traces/x.trace: "), "{e}");
        let capture = TraceFile {
            capture: true,
            shown: "tests/traces/x.json".to_string(),
            ..file
        };
        let e = capture.load(&ImportOptions::new()).err().unwrap();
        assert!(e.starts_with("cannot access tests/traces/x.json: "), "{e}");
    }

    #[test]
    fn a_malformed_line_names_the_file_as_shown_and_the_line() {
        let dir = scratch("malformed");
        let path = dir.join("x.trace");
        std::fs::write(&path, "device wh\n\nalloc w DRAM ten 2048 def\n").unwrap();
        let file = TraceFile {
            path,
            shown: "tests/traces/x.trace".to_string(),
            capture: false,
        };
        let e = file.load(&ImportOptions::new()).err().unwrap();
        assert!(
            e.starts_with("tests/traces/x.trace: line 3: size \"ten\" is not a number"),
            "{e}"
        );
    }

    fn loaded(text: &str) -> Loaded {
        Loaded {
            trace: Trace::parse(text).unwrap(),
            notes: Vec::new(),
            carve_outs_missing: false,
        }
    }

    const FILE: TraceFile = TraceFile {
        path: PathBuf::new(),
        shown: String::new(),
        capture: false,
    };

    #[test]
    fn refusals_the_recording_made_too_do_not_stop_the_replay() {
        let trace = loaded(
            "device wh\nl1_small 65536\nprogram mm\ncb mm 0,0-7,7 655360 index=0 page=2048\n\
             alloc out L1 45875200 2048 def label=output\nenqueue mm expect=clash\n\
             alloc big L1 134217728 2048 def expect=oom\nalloc kept DRAM 2048 2048 def\ndestroy mm\nfree out\n",
        );
        let dev = trace.trace.open_sim().unwrap();
        let live = replay(&FILE, &trace, &dev, "sim").unwrap();
        // What the trace never freed stays allocated, with its line.
        assert_eq!(live.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [8]);
        assert_eq!(dev.live_count().unwrap(), 1);
        drop(live);
        assert_eq!(dev.live_count().unwrap(), 0);
    }

    #[test]
    fn an_unexpected_refusal_stops_the_replay_and_frees_what_it_made() {
        let trace = loaded(
            "alloc w DRAM 2048 2048 def\nalloc big L1 134217728 2048 def\nalloc x DRAM 2048 2048 def\n",
        );
        let dev = trace.trace.open_sim().unwrap();
        let e = replay(&FILE, &trace, &dev, "sim").unwrap_err();
        assert!(
            e.starts_with(
                ": line 2: \"alloc big L1 134217728 2048 def\" was refused: Out of Memory: "
            ),
            "{e}"
        );
        assert_eq!(dev.live_count().unwrap(), 0);
        // The third allocation never happened.
        assert_eq!(dev.next_allocation_id().unwrap(), 2);
    }
}

//! The runner's command line: libtest's flags (libtest-mimic's
//! [`Arguments`], flattened) and the runner's own, read by one clap parser,
//! so that `--help` lists both, with the environment variables, and an
//! unknown or misspelt flag is refused with clap's message (and its
//! suggestion). The flags' variables fill in what the command line leaves
//! out ([`Cli::resolve`]).

use std::path::PathBuf;

use clap::Parser;
use libtest_mimic::Arguments;

use crate::error::{Error, Result};

/// Every flag the runner takes.
#[derive(Parser, Debug)]
#[command(
    help_template = "Usage: {usage}\n\n{all-args}{after-help}",
    disable_version_flag = true,
    after_help = after_help(),
    mut_arg("color", |arg| arg.hide_possible_values(true).help(
        "Configure coloring of output: \n\
         - auto = colorize if stdout is a terminal, unless NO_COLOR is set (default; CLICOLOR_FORCE colorizes anything)\n\
         - always = always colorize output\n\
         - never = never colorize output"
    )),
)]
pub(crate) struct Cli {
    /// libtest's flags.
    #[command(flatten)]
    pub libtest: Arguments,

    /// Write the run's memory reports as JSON to PATH.
    #[arg(long, value_name = "PATH", help_heading = "Memory checks")]
    pub memory_report: Option<PathBuf>,

    /// Write this process's part of the memory reports into DIR (for
    /// cargo nextest, which runs one process per test).
    #[arg(long, value_name = "DIR", help_heading = "Memory checks")]
    pub memory_report_dir: Option<PathBuf>,

    /// Write the run's memory reports as one HTML page to PATH, with
    /// timelines and address maps (with --memory-report-dir, each process
    /// records them into its part and --merge-memory-reports writes the
    /// page).
    #[arg(long, value_name = "PATH", help_heading = "Memory checks")]
    pub memory_html: Option<PathBuf>,

    /// Merge the reports in DIR into --memory-report and --memory-html (or
    /// JSON to stdout) and exit.
    #[arg(long, value_name = "DIR", help_heading = "Memory checks")]
    pub merge_memory_reports: Option<PathBuf>,

    /// Assert each test's memory report as an insta snapshot.
    #[arg(long, help_heading = "Memory checks")]
    pub memory_snapshots: bool,

    /// The budget file (default: memguard.toml in the package).
    #[arg(long, value_name = "PATH", help_heading = "Memory checks")]
    pub memguard_config: Option<PathBuf>,
}

impl Cli {
    /// Parses `args` (the first is the program), naming the program
    /// `binary` in messages (cargo's test binaries carry a hash).
    pub(crate) fn parse(
        args: impl IntoIterator<Item = std::ffi::OsString>,
        binary: &str,
    ) -> std::result::Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let mut matches = Cli::command().bin_name(binary).try_get_matches_from(args)?;
        Cli::from_arg_matches_mut(&mut matches)
    }
}

/// The text after the flags in `--help`.
fn after_help() -> String {
    format!(
        "{}\n\nBy default, all tests are run in parallel. This can be altered with the --test-threads flag (set it to 1).",
        super::config::environment_help()
    )
}

/// The runner's options: the command line's, else their variables'.
#[derive(Debug, Default)]
pub(crate) struct RunnerFlags {
    pub report: Option<PathBuf>,
    pub report_dir: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub merge: Option<PathBuf>,
    pub snapshots: bool,
    pub config: Option<PathBuf>,
}

impl Cli {
    /// libtest's flags, and the runner's with `TT_MEMGUARD_REPORT`,
    /// `TT_MEMGUARD_REPORT_DIR`, `TT_MEMGUARD_HTML`, `TT_MEMGUARD_CONFIG` and
    /// `TT_MEMGUARD_SNAPSHOTS` where a flag is not given.
    ///
    /// # Errors
    ///
    /// [`Error::Env`] for a `TT_MEMGUARD_SNAPSHOTS` that is neither a yes
    /// nor a no.
    pub(crate) fn resolve(self) -> Result<(Arguments, RunnerFlags)> {
        let env_path = |var: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let mut flags = RunnerFlags {
            report: self
                .memory_report
                .or_else(|| env_path("TT_MEMGUARD_REPORT")),
            report_dir: self
                .memory_report_dir
                .or_else(|| env_path("TT_MEMGUARD_REPORT_DIR")),
            html: self.memory_html.or_else(|| env_path("TT_MEMGUARD_HTML")),
            merge: self.merge_memory_reports,
            snapshots: self.memory_snapshots,
            config: self
                .memguard_config
                .or_else(|| env_path("TT_MEMGUARD_CONFIG")),
        };
        if let Ok(v) = std::env::var("TT_MEMGUARD_SNAPSHOTS") {
            match v.as_str() {
                "1" | "true" | "yes" => flags.snapshots = true,
                "0" | "false" | "no" | "" => {}
                _ => {
                    return Err(Error::Env {
                        var: "TT_MEMGUARD_SNAPSHOTS".to_string(),
                        value: v,
                        reason: "expected 1 or 0 (true/false, yes/no)".to_string(),
                        source: None,
                    });
                }
            }
        }
        Ok((self.libtest, flags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_parser_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::parse(
            std::iter::once("tests-0123456789abcdef")
                .chain(args.iter().copied())
                .map(Into::into),
            "tests",
        )
    }

    /// What cargo test and cargo nextest pass, with the runner's flags in
    /// any place and either form.
    #[test]
    fn one_parse_reads_libtest_and_runner_flags() {
        let cli = parse(&[
            "--exact",
            "kernels::matmul",
            "--nocapture",
            "--memory-report=m.json",
            "--test-threads",
            "2",
            "--memory-snapshots",
            "--memguard-config",
            "b.toml",
            "--memory-html",
            "m.html",
        ])
        .unwrap();
        assert_eq!(cli.memory_html, Some(PathBuf::from("m.html")));
        assert!(cli.libtest.exact && cli.libtest.nocapture);
        assert_eq!(cli.libtest.filter.as_deref(), Some("kernels::matmul"));
        assert_eq!(cli.libtest.test_threads, Some(2));
        assert_eq!(cli.memory_report, Some(PathBuf::from("m.json")));
        assert_eq!(cli.memguard_config, Some(PathBuf::from("b.toml")));
        assert!(cli.memory_snapshots);
        let cli = parse(&["--list", "--format", "terse", "--ignored"]).unwrap();
        assert!(cli.libtest.list && cli.libtest.ignored);
        assert_eq!(
            cli.libtest.format,
            Some(libtest_mimic::FormatSetting::Terse)
        );
    }

    #[test]
    fn unknown_and_valueless_flags_are_refused() {
        let e = parse(&["--memory-reprot", "m.json"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
        let text = e.to_string();
        assert!(text.contains("'--memory-report'"), "{text}");
        // Messages name the test binary without cargo's hash.
        assert!(
            text.contains("Usage: tests --memory-report <PATH>"),
            "{text}"
        );
        let e = parse(&["--memory-report"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(e.to_string().contains("--memory-report <PATH>"), "{e}");
    }
}

//! Budgets for CI: a `memguard.toml` at the package root and environment
//! variables, layered over the budgets set in code (env > file > code).
//!
//! ```toml
//! # Defaults for every test.
//! [defaults]
//! l1_peak = "512 KiB"
//! dram_peak = "64 MiB"
//! tolerance = "4 KiB"
//!
//! # Per test, by exact name or glob (`*`, `?`, `[a-z]`); globs apply in file
//! # order, exact names last.
//! [tests."conv_*"]
//! l1_peak = "1 MiB"
//! l1_min_largest_free = "256 KiB"
//! ```
//!
//! Keys are `<pool>_<check>` with pool `dram`, `l1`, `l1_small`, `trace` and
//! check `peak`, `peak_per_bank`, `retained`, `retained_per_bank`,
//! `min_largest_free`; plus `tolerance`. The same keys, upper-cased and
//! prefixed with `TT_MEMGUARD_`, are read from the environment and apply to
//! every test (for example `TT_MEMGUARD_L1_PEAK=256KiB`). The runner stops
//! on any other `TT_MEMGUARD_*` variable it does not know
//! ([`check_variables`]) and warns about sections that match no test
//! ([`BudgetConfig::unmatched_sections`]).

use std::path::{Path, PathBuf};

use crate::budget::{Budget, BudgetSource, CheckKind, Limit};
use crate::error::{ConfigError, Error, Result};
use crate::types::BufferType;
use crate::units::ByteSize;

/// One budget key: pool, check, per bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Limit(BufferType, CheckKind, bool),
    Tolerance,
}

const POOLS: [(&str, BufferType); 4] = [
    ("l1_small", BufferType::L1Small),
    ("dram", BufferType::Dram),
    ("l1", BufferType::L1),
    ("trace", BufferType::Trace),
];

const CHECKS: [(&str, CheckKind, bool); 5] = [
    ("peak_per_bank", CheckKind::Peak, true),
    ("peak", CheckKind::Peak, false),
    ("retained_per_bank", CheckKind::Retained, true),
    ("retained", CheckKind::Retained, false),
    ("min_largest_free", CheckKind::LargestFree, true),
];

/// Limits of one core's L1 over the programs a test enqueues.
const CORE_KEYS: [(&str, CheckKind); 3] = [
    ("cb_peak_per_core", CheckKind::CbPeakPerCore),
    ("l1_peak_per_core", CheckKind::L1PeakPerCore),
    ("min_cb_headroom", CheckKind::MinCbHeadroom),
];

fn parse_key(key: &str) -> Option<Key> {
    if key == "tolerance" {
        return Some(Key::Tolerance);
    }
    if let Some(&(_, kind)) = CORE_KEYS.iter().find(|(name, _)| *name == key) {
        // Per-core limits are kept apart from the pools' (`Budget::with_limit`).
        return Some(Key::Limit(BufferType::L1, kind, true));
    }
    for (pool_name, pool) in POOLS {
        if let Some(check) = key
            .strip_prefix(pool_name)
            .and_then(|r| r.strip_prefix('_'))
        {
            for (check_name, kind, per_bank) in CHECKS {
                if check == check_name {
                    return Some(Key::Limit(pool, kind, per_bank));
                }
            }
        }
    }
    None
}

fn accepted_keys() -> String {
    "<pool>_<check> with pool dram, l1, l1_small or trace and check peak, peak_per_bank, retained, retained_per_bank or min_largest_free (e.g. l1_peak), cb_peak_per_core, l1_peak_per_core, min_cb_headroom, or tolerance".to_string()
}

fn apply(budget: Budget, key: Key, bytes: u64, source: BudgetSource) -> Budget {
    match key {
        Key::Tolerance => budget.tolerance(bytes),
        Key::Limit(pool, kind, per_bank) => budget.with_limit(
            pool,
            kind,
            Limit {
                bytes,
                per_bank,
                source,
            },
        ),
    }
}

/// A glob over test names: `*` any run of characters, `?` one character,
/// `[abc]` / `[a-z]` / `[!a-z]` one character of a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: Vec<char>,
}

impl Glob {
    /// Checks and compiles a pattern.
    ///
    /// # Errors
    ///
    /// A description of the problem (an unclosed or empty `[...]` class).
    pub fn new(pattern: &str) -> std::result::Result<Glob, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '[' {
                let start = i;
                i += 1;
                if i < chars.len() && chars[i] == '!' {
                    i += 1;
                }
                let body = i;
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
                if i == chars.len() {
                    return Err(format!(
                        "the class opened at character {} is not closed with ']'",
                        start + 1
                    ));
                }
                if i == body {
                    return Err(format!("the class at character {} is empty", start + 1));
                }
            }
            i += 1;
        }
        Ok(Glob { pattern: chars })
    }

    /// Whether the pattern has wildcards (otherwise it is an exact name).
    pub fn is_literal(&self) -> bool {
        !self.pattern.iter().any(|c| matches!(c, '*' | '?' | '['))
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        matches_from(&self.pattern, &name)
    }
}

fn class_matches(class: &[char], c: char) -> bool {
    let (negate, class) = match class.first() {
        Some('!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut hit = false;
    let mut i = 0;
    while i < class.len() {
        if i + 2 < class.len() && class[i + 1] == '-' {
            hit |= class[i] <= c && c <= class[i + 2];
            i += 3;
        } else {
            hit |= class[i] == c;
            i += 1;
        }
    }
    hit != negate
}

fn matches_from(p: &[char], s: &[char]) -> bool {
    // Iterative matcher with single-star backtracking.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                '[' => {
                    let end = pi + p[pi..].iter().position(|&c| c == ']').unwrap_or(0);
                    if class_matches(&p[pi + 1..end], s[si]) {
                        pi = end + 1;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[derive(Debug, Clone)]
struct Entry {
    glob: Glob,
    budget: Budget,
    /// The section as written, and its line in the file.
    pattern: String,
    line: usize,
}

/// Budgets read from a `memguard.toml` and the environment.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use tt_memguard::runner::BudgetConfig;
/// use tt_memguard::{Budget, BufferType};
///
/// let config = BudgetConfig::parse(
///     "[defaults]\nl1_peak = \"512 KiB\"\n[tests.\"conv_*\"]\nl1_peak = \"1 MiB\"\n",
///     Path::new("memguard.toml"),
/// )?;
/// let budget = config.budget_for("conv_3x3", &Budget::new());
/// assert_eq!(budget.pool(BufferType::L1).peak.as_ref().unwrap().bytes, 1 << 20);
/// # Ok::<(), tt_memguard::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct BudgetConfig {
    defaults: Budget,
    entries: Vec<Entry>,
    env: Budget,
    /// The file read, as given (None without a file).
    path: Option<PathBuf>,
}

impl BudgetConfig {
    /// No file, no environment.
    pub fn empty() -> BudgetConfig {
        BudgetConfig::default()
    }

    /// Reads `path` when it exists (a missing file is no budget), then the
    /// environment.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file, line, key and value for an unknown
    /// key, a bad size or a bad glob; [`Error::Env`] for a bad variable.
    pub fn load(path: &Path) -> Result<BudgetConfig> {
        let mut config = if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
            Self::parse(&text, path)?
        } else {
            BudgetConfig::default()
        };
        config.env = Self::from_env(std::env::vars())?;
        Ok(config)
    }

    /// Parses the text of a budget file; `path` names it in errors and in
    /// budget sources.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn parse(text: &str, path: &Path) -> Result<BudgetConfig> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let fail = |offset: usize, key: &str, value: &str, reason: String| {
            Error::Config(Box::new(ConfigError {
                path: path.to_path_buf(),
                line: line_of(offset),
                key: key.to_string(),
                value: value.to_string(),
                reason,
                source: None,
            }))
        };
        let doc = toml_edit::Document::parse(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            fail(offset, "", "", format!("not valid TOML: {}", e.message())).with_source(e)
        })?;
        let display = path
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| path.to_path_buf());
        let mut config = BudgetConfig {
            path: Some(path.to_path_buf()),
            ..BudgetConfig::default()
        };
        for (name, item) in doc.as_table().iter() {
            let (key, _) = doc
                .as_table()
                .get_key_value(name)
                .expect("key of this table");
            let offset = key.span().map(|s| s.start).unwrap_or(0);
            match (name, item) {
                ("defaults", toml_edit::Item::Table(table)) => {
                    let source = BudgetSource::File(format!("{} [defaults]", display.display()));
                    config.defaults = read_budget(table, &source, &fail)?;
                }
                ("tests", toml_edit::Item::Table(tests)) => {
                    for (pattern, item) in tests.iter() {
                        let (pkey, _) = tests.get_key_value(pattern).expect("key of this table");
                        let poffset = pkey.span().map(|s| s.start).unwrap_or(offset);
                        let glob = Glob::new(pattern).map_err(|reason| {
                            fail(poffset, "tests", pattern, format!("bad glob: {reason}"))
                        })?;
                        let Some(table) = item.as_table() else {
                            return Err(fail(
                                poffset,
                                "tests",
                                pattern,
                                "expected a table of budgets: [tests.\"NAME\"]".to_string(),
                            ));
                        };
                        let source = BudgetSource::File(format!(
                            "{} [tests.{pattern:?}]",
                            display.display()
                        ));
                        config.entries.push(Entry {
                            glob,
                            budget: read_budget(table, &source, &fail)?,
                            pattern: pattern.to_string(),
                            line: line_of(poffset),
                        });
                    }
                }
                _ => {
                    return Err(fail(
                        offset,
                        name,
                        "",
                        "unknown section: expected [defaults] or [tests.\"NAME-OR-GLOB\"]"
                            .to_string(),
                    ));
                }
            }
        }
        // Exact names override globs.
        config.entries.sort_by_key(|e| e.glob.is_literal());
        Ok(config)
    }

    /// Reads the `TT_MEMGUARD_<KEY>` budget variables from `vars`.
    ///
    /// # Errors
    ///
    /// [`Error::Env`] naming the variable and its value for a bad size.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Budget> {
        let mut budget = Budget::new();
        let mut vars: Vec<(String, String)> = vars.into_iter().collect();
        vars.sort();
        for (var, value) in vars {
            let Some(name) = var.strip_prefix("TT_MEMGUARD_") else {
                continue;
            };
            let Some(key) = parse_key(&name.to_ascii_lowercase()) else {
                continue; // other settings (TT_MEMGUARD_DEVICE, ...) are not budgets
            };
            let bytes = ByteSize::parse(&value).map_err(|e| Error::Env {
                var: var.clone(),
                value: value.clone(),
                reason: e.to_string(),
                source: Some(Box::new(e)),
            })?;
            budget = apply(budget, key, bytes.0, BudgetSource::Env(var.clone()));
        }
        Ok(budget)
    }

    /// Names the file in warnings as `shown` (a path from the package
    /// root rather than the one it was read from).
    pub(crate) fn show_path_as(&mut self, shown: PathBuf) {
        if self.path.is_some() {
            self.path = Some(shown);
        }
    }

    /// Whether neither file nor environment sets anything.
    pub fn is_empty(&self) -> bool {
        self.defaults.is_empty() && self.entries.is_empty() && self.env.is_empty()
    }

    /// The `[tests."..."]` sections that match none of `tests`, as
    /// warnings naming the file, line and section: a misspelt or renamed
    /// test name would otherwise leave its budget silently unused.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use tt_memguard::runner::BudgetConfig;
    ///
    /// let config = BudgetConfig::parse(
    ///     "[tests.\"conv_*\"]\nl1_peak = \"1 MiB\"\n[tests.\"matmull\"]\nl1_peak = \"1 MiB\"\n",
    ///     Path::new("memguard.toml"),
    /// )?;
    /// let warnings = config.unmatched_sections(["conv_3x3", "matmul"]);
    /// assert_eq!(warnings, ["memguard.toml:3: [tests.\"matmull\"] matches no test of this test target"]);
    /// # Ok::<(), tt_memguard::Error>(())
    /// ```
    pub fn unmatched_sections<'a>(&self, tests: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        let tests: Vec<&str> = tests.into_iter().collect();
        let mut unmatched: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| !tests.iter().any(|t| e.glob.matches(t)))
            .collect();
        unmatched.sort_by_key(|e| e.line);
        let file = self
            .path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        unmatched
            .iter()
            .map(|e| {
                format!(
                    "{file}:{}: [tests.{:?}] matches no test of this test target",
                    e.line, e.pattern
                )
            })
            .collect()
    }

    /// The budget of one test: `code`, then the file's defaults, matching
    /// globs and exact entries, then the environment.
    pub fn budget_for(&self, test: &str, code: &Budget) -> Budget {
        let mut budget = code.clone().overlay(&self.defaults);
        for entry in self.entries.iter().filter(|e| e.glob.matches(test)) {
            budget = budget.overlay(&entry.budget);
        }
        budget.overlay(&self.env)
    }
}

fn read_budget(
    table: &toml_edit::Table,
    source: &BudgetSource,
    fail: &dyn Fn(usize, &str, &str, String) -> Error,
) -> Result<Budget> {
    let mut budget = Budget::new();
    for (name, item) in table.iter() {
        let offset = table
            .get_key_value(name)
            .and_then(|(k, _)| k.span())
            .map(|s| s.start)
            .unwrap_or(0);
        let value_text = item
            .as_value()
            .map(|v| match v.as_str() {
                Some(s) => s.to_string(),
                None => v.to_string().trim().to_string(),
            })
            .unwrap_or_default();
        let key = parse_key(name).ok_or_else(|| {
            fail(
                offset,
                name,
                &value_text,
                format!("unknown key; expected {}", accepted_keys()),
            )
        })?;
        let bytes = match item.as_value() {
            Some(v) if v.as_str().is_some() => {
                ByteSize::parse(v.as_str().unwrap_or_default())
                    .map_err(|e| fail(offset, name, &value_text, e.to_string()).with_source(e))?
                    .0
            }
            Some(v) if v.as_integer().is_some() => {
                let n = v.as_integer().unwrap_or_default();
                u64::try_from(n).map_err(|_| {
                    fail(
                        offset,
                        name,
                        &value_text,
                        "sizes cannot be negative".to_string(),
                    )
                })?
            }
            _ => {
                return Err(fail(
                    offset,
                    name,
                    &value_text,
                    "expected a size: a number of bytes or a string such as \"512 KiB\""
                        .to_string(),
                ));
            }
        };
        budget = apply(budget, key, bytes, source.clone());
    }
    Ok(budget)
}

/// A `TT_MEMGUARD_*` variable tt-memguard reads besides the budget keys:
/// its name, the value it takes and what it does; the runner's own are
/// listed in `--help` (see [`environment_help`]).
pub(crate) struct Setting {
    pub name: &'static str,
    pub value: &'static str,
    /// What it does, for `--help`; `None` for the variables of the build
    /// script and of tt-memguard's own tests and CI.
    pub help: Option<&'static str>,
}

const fn runner(name: &'static str, value: &'static str, help: &'static str) -> Setting {
    Setting {
        name,
        value,
        help: Some(help),
    }
}

const fn other(name: &'static str) -> Setting {
    Setting {
        name,
        value: "",
        help: None,
    }
}

/// Every `TT_MEMGUARD_*` variable tt-memguard reads besides the budget keys.
pub(crate) const SETTINGS: [Setting; 17] = [
    runner("TT_MEMGUARD_REPORT", "PATH", "as --memory-report"),
    runner("TT_MEMGUARD_REPORT_DIR", "DIR", "as --memory-report-dir"),
    runner("TT_MEMGUARD_HTML", "PATH", "as --memory-html"),
    runner(
        "TT_MEMGUARD_SNAPSHOTS",
        "1",
        "as --memory-snapshots (1 or 0, true/false, yes/no)",
    ),
    runner("TT_MEMGUARD_CONFIG", "PATH", "as --memguard-config"),
    runner(
        "TT_MEMGUARD_SNAPSHOT_DIR",
        "DIR",
        "where memory snapshots live (default: tests/snapshots in the package)",
    ),
    runner(
        "TT_MEMGUARD_DEVICE",
        "DEVICE",
        "the tests' device: sim (a fresh one per test), sim:wormhole_b0, sim:wormhole_n300, sim:blackhole_p150 (or sim:wh, sim:n300, sim:bh), a mesh sim:n300_mesh, sim:t3000 or sim:galaxy, sim-shared[:PRESET] (one shared by all tests), tt-metal[:ID] or tt-metal:mesh (with the tt-metal feature)",
    ),
    runner(
        "TT_MEMGUARD_L1_SMALL_SIZE",
        "SIZE",
        "L1_SMALL carve-out per bank of the devices the runner opens",
    ),
    runner(
        "TT_MEMGUARD_TRACE_REGION_SIZE",
        "SIZE",
        "TRACE carve-out of the devices the runner opens",
    ),
    runner(
        "TT_MEMGUARD_LIVE",
        "PATH",
        "write a live stream of events and snapshots for the memory monitor",
    ),
    runner(
        "TT_MEMGUARD_LIVE_INTERVAL_MS",
        "MS",
        "the live stream's snapshot period (default 100)",
    ),
    runner(
        "TT_MEMGUARD_LIVE_RUN",
        "ID",
        "processes with the same id write one live stream (default: NEXTEST_RUN_ID)",
    ),
    runner(
        "TT_MEMGUARD_RECORD",
        "DIR",
        "record each test's device activity as DIR/<test>.trace, for the replay and what_if examples",
    ),
    // The build script, and tt-memguard's own test suite and CI.
    other("TT_MEMGUARD_TTNN_LIB_DIR"),
    other("TT_MEMGUARD_CI_CACHE"),
    other("TT_MEMGUARD_EXPECT_MOCK"),
    other("TT_MEMGUARD_DIFF_TRACE_DIR"),
];

/// The environment section of the runner's `--help`: its variables, the
/// budget keys, and the colour variables.
pub(crate) fn environment_help() -> String {
    let mut rows: Vec<(String, &str)> = SETTINGS
        .iter()
        .filter_map(|s| Some((format!("{}={}", s.name, s.value), s.help?)))
        .collect();
    rows.push((
        "TT_MEMGUARD_<POOL>_<CHECK>=SIZE".to_string(),
        "a budget of every test, over memguard.toml and code (e.g. TT_MEMGUARD_L1_PEAK=256KiB): POOL is DRAM, L1, L1_SMALL or TRACE; CHECK is PEAK, PEAK_PER_BANK, RETAINED, RETAINED_PER_BANK or MIN_LARGEST_FREE",
    ));
    rows.push((
        "TT_MEMGUARD_CB_PEAK_PER_CORE=SIZE".to_string(),
        "per core, over the programs a test enqueues: the circular-buffer region (likewise TT_MEMGUARD_L1_PEAK_PER_CORE, CBs plus L1 buffers, and TT_MEMGUARD_MIN_CB_HEADROOM, the least room between them)",
    ));
    rows.push((
        "TT_MEMGUARD_TOLERANCE=SIZE".to_string(),
        "slack added to every peak and retained limit",
    ));
    rows.push((
        "NO_COLOR, CLICOLOR_FORCE".to_string(),
        "--color auto: no colours / colours even when not a terminal",
    ));
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = String::from("Environment:\n");
    for (name, help) in rows {
        out.push_str(&format!("  {name:<width$}  {help}\n"));
    }
    out.push_str("Any other TT_MEMGUARD_* variable stops the run, naming the closest known one.");
    out
}

/// Fails on a `TT_MEMGUARD_*` variable that tt-memguard does not read: a
/// misspelt budget (`TT_MEMGUARD_L1_PEEK`) would otherwise leave CI
/// running without the check it asks for. The error names the closest
/// variable that exists.
pub(crate) fn check_variables(vars: impl IntoIterator<Item = (String, String)>) -> Result<()> {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(var, _)| var.starts_with("TT_MEMGUARD_"))
        .collect();
    vars.sort();
    for (var, value) in vars {
        let budget = parse_key(&var["TT_MEMGUARD_".len()..].to_ascii_lowercase()).is_some();
        if budget || SETTINGS.iter().any(|s| s.name == var) {
            continue;
        }
        let known = known_variables();
        let closest = known
            .iter()
            .min_by_key(|k| edit_distance(&var.to_ascii_uppercase(), k))
            .cloned()
            .unwrap_or_default();
        return Err(Error::Env {
            var: var.clone(),
            value,
            reason: format!(
                "not a tt-memguard variable; did you mean {closest}? Fix the name or unset it (tt-memguard reads {} and the budget keys TT_MEMGUARD_<POOL>_<CHECK>, e.g. TT_MEMGUARD_L1_PEAK)",
                SETTINGS
                    .iter()
                    .filter(|s| s.help.is_some())
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            source: None,
        });
    }
    Ok(())
}

/// Every variable name tt-memguard reads, budget keys included.
fn known_variables() -> Vec<String> {
    let mut known: Vec<String> = SETTINGS.iter().map(|s| s.name.to_string()).collect();
    for (pool, _) in POOLS {
        for (check, _, _) in CHECKS {
            known.push(format!("TT_MEMGUARD_{pool}_{check}").to_ascii_uppercase());
        }
    }
    for (key, _) in CORE_KEYS {
        known.push(format!("TT_MEMGUARD_{key}").to_ascii_uppercase());
    }
    known.push("TT_MEMGUARD_TOLERANCE".to_string());
    known
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(var: &str) -> std::result::Result<(), String> {
        check_variables([(var.to_string(), "1".to_string())]).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_variables_name_the_closest_known_one() {
        let e = check("TT_MEMGUARD_L1_PEEK").unwrap_err();
        assert!(e.contains("did you mean TT_MEMGUARD_L1_PEAK?"), "{e}");
        let e = check("TT_MEMGUARD_SNAPSHOT").unwrap_err();
        assert!(e.contains("did you mean TT_MEMGUARD_SNAPSHOTS?"), "{e}");
        let e = check("TT_MEMGUARD_REPORTDIR").unwrap_err();
        assert!(e.contains("did you mean TT_MEMGUARD_REPORT_DIR?"), "{e}");
        for known in known_variables() {
            assert_eq!(check(&known), Ok(()), "{known}");
        }
        // Budget keys are read in any case; other variables are not ours.
        assert_eq!(check("TT_MEMGUARD_l1_peak"), Ok(()));
        assert_eq!(check("TT_METAL_HOME"), Ok(()));
    }

    /// Every `TT_MEMGUARD_*` variable the crate reads is known: one it
    /// reads but does not know (`TT_MEMGUARD_LIVE_RUN` was) stops every run
    /// that sets it.
    #[test]
    fn every_variable_the_crate_reads_is_known() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("build.rs")];
        let mut dirs = vec![root.join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut read = std::collections::BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // The code, not its tests (which spell names wrong on purpose).
            let text = text.split("#[cfg(test)]").next().unwrap();
            for (start, _) in text.match_indices("\"TT_MEMGUARD_") {
                let name: String = text[start + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // Whole names only: not the prefix, not a budget-key
                // template.
                if !name.ends_with('_') && text[start + 1 + name.len()..].starts_with('"') {
                    read.insert(name);
                }
            }
        }
        assert!(read.contains("TT_MEMGUARD_LIVE_RUN"), "{read:?}");
        for var in &read {
            assert_eq!(check(var), Ok(()), "{var}");
        }
    }

    #[test]
    fn globs_match_names_and_refuse_bad_classes() {
        let glob = Glob::new("conv_[0-9]*").unwrap();
        assert!(glob.matches("conv_3x3") && !glob.matches("conv_x"));
        assert!(!glob.is_literal() && Glob::new("conv_3x3").unwrap().is_literal());
        assert!(Glob::new("conv_[").is_err());
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}

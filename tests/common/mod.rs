//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// Replaces `file.rs:LINE:COL` locations in `text` with `file.rs:L:C`, so
/// that snapshots survive edits that move lines.
pub fn redact_locations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(".rs:") {
        out.push_str(&rest[..pos + 4]);
        rest = &rest[pos + 4..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let line = digits(rest);
        if line > 0 && rest[line..].starts_with(':') {
            let col = digits(&rest[line + 1..]);
            if col > 0 {
                out.push_str("L:C");
                rest = &rest[line + 1 + col..];
                continue;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Builds an example of this package (if needed) and returns its path.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "--example", name])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building example {name} failed");
    let exe = std::env::current_exe().expect("own path");
    let target = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target directory");
    target
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// SplitMix64: the seeded, reproducible generator of the randomized tests.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A simulated `preset` with an L1_SMALL and a trace region of these sizes.
pub fn sim(preset: tt_memguard::Preset, l1_small: u64, trace: u64) -> tt_memguard::Device {
    tt_memguard::SimDevice::builder(preset)
        .l1_small_size(l1_small)
        .trace_region_size(trace)
        .build()
        .unwrap()
}

// ---- programs and circular buffers ----

pub fn range(x0: u32, y0: u32, x1: u32, y1: u32) -> tt_memguard::CoreRange {
    tt_memguard::CoreRange::new((x0, y0), (x1, y1)).unwrap()
}

pub fn cb(size: u64, index: u8) -> tt_memguard::CircularBufferConfig {
    tt_memguard::CircularBufferConfig::new(size).page_size(index, size)
}

/// The last core of the 8x8 corner of the grid (the n300's grid has 7 rows).
pub fn corner(dev: &tt_memguard::Device) -> (u32, u32) {
    let (x, y) = dev.info().compute_grid;
    (x.min(8) - 1, y.min(8) - 1)
}

/// tt-metal-allocator.md's example program: five CBs over overlapping and disjoint ranges
/// (clipped to the grid: the same intersections, so the same addresses).
pub fn example_program(dev: &tt_memguard::Device) -> tt_memguard::Program {
    let mut program = dev.create_program().unwrap();
    let (x, y) = corner(dev);
    let cbs = [
        (range(0, 0, 3, 3), 4096),
        (range(0, 0, x, y), 1000),
        (range(4, 4, x, y), 2048),
        (range(0, 0, 1, 1), 100),
        (range(6, 0, 7, 1), 64),
    ];
    for (i, (cores, size)) in cbs.into_iter().enumerate() {
        program
            .add_circular_buffer(cores, cb(size, i as u8))
            .unwrap();
    }
    program
}

pub fn cb_addresses(program: &tt_memguard::Program) -> Vec<u64> {
    program
        .circular_buffers()
        .iter()
        .map(|cb| cb.address.expect("laid out"))
        .collect()
}

// ---- traces ----

/// Each trace text fails to parse at its line, with its reason, quoting the
/// line, and the message starts with the line number.
pub fn assert_syntax_errors(cases: &[(&str, usize, &str)]) {
    for &(text, line, reason) in cases {
        let e = tt_memguard::Trace::parse(text).unwrap_err();
        let tt_memguard::Error::TraceSyntax {
            line: l,
            reason: r,
            text: t,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!((*l, r.as_str()), (line, reason), "{text:?}");
        assert_eq!(t, text.lines().nth(line - 1).unwrap());
        assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
    }
}

// ---- recorded workloads ----

/// Every pool's allocated, free and largest free bytes per bank, as the
/// replayer prints them (`DRAM:A/F/L L1:... L1_SMALL:... TRACE:...`).
pub fn pools_text(snapshot: &tt_memguard::Snapshot) -> String {
    snapshot
        .iter()
        .map(|p| {
            format!(
                "{}:{}/{}/{}",
                p.buffer_type, p.allocated_per_bank, p.free_per_bank, p.largest_free_block_per_bank
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The pools of one replay line (see [`pools_text`]).
pub fn pools_of_line(line: &str) -> String {
    line.split(' ')
        .take_while(|w| *w != "#")
        .filter(|w| {
            ["DRAM:", "L1:", "L1_SMALL:", "TRACE:"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A seeded random workload on `dev` while it is recorded: allocations of
/// every pool (interleaved and sharded, both directions, labelled or not,
/// some out of memory, some refused before the device sees them), frees,
/// programs with circular buffers (backed by an L1 buffer on a simulated
/// device), enqueues that fit or clash, destroyed programs; with `other`
/// (a second handle on the same TT-Metal device), buffers made and freed
/// by "other code" too. Returns the pools after every operation the
/// recording records, in order, for the recorded trace's replay to match
/// line for line.
pub fn recorded_workload(
    dev: &tt_memguard::Device,
    other: Option<&tt_memguard::Device>,
    seed: u64,
    steps: usize,
) -> Vec<String> {
    use tt_memguard::{Buffer, BufferType, CircularBufferConfig, Direction, Error, Program};
    let mut state = seed;
    let mut rng = move |lo: u64, hi: u64| lo + splitmix64(&mut state) % (hi - lo + 1);
    let banks = |t: BufferType| u64::from(dev.snapshot().unwrap().pool(t).num_banks);
    let cores = u64::from(dev.info().compute_cores());
    let (gx, gy) = corner(dev);
    let backed_cbs = dev.info().kind == tt_memguard::DeviceKind::Simulated;
    let mut pools = Vec::new();
    let mut mine: Vec<Buffer> = Vec::new();
    let mut theirs: Vec<Buffer> = Vec::new();
    let mut programs: Vec<Program> = Vec::new();
    let snap = |pools: &mut Vec<String>| pools.push(pools_text(&dev.snapshot().unwrap()));
    for step in 0..steps {
        let roll = rng(1, 100);
        match roll {
            // An allocation, by us or (with `other`) by other code.
            1..=40 => {
                let by_other = other.is_some() && rng(1, 100) <= 30;
                let on = if by_other { other.unwrap() } else { dev };
                let page = [32, 64, 100, 1024, 2048, 2048, 4096][rng(0, 6) as usize];
                let (pool, pages, shards) = match rng(1, 100) {
                    1..=30 => (
                        BufferType::Dram,
                        {
                            let bits = rng(0, 12);
                            rng(1, 1 << bits)
                        },
                        None,
                    ),
                    31..=55 => (
                        BufferType::L1,
                        {
                            let bits = rng(0, 9);
                            rng(1, 1 << bits)
                        },
                        None,
                    ),
                    56..=70 => {
                        let s = rng(1, cores);
                        (
                            BufferType::L1,
                            s * rng(1, 4) - rng(0, s - 1),
                            Some(s as u32),
                        )
                    }
                    71..=85 => {
                        let s = rng(1, cores);
                        (BufferType::L1Small, rng(1, s * 2), Some(s as u32))
                    }
                    86..=96 => (
                        BufferType::Trace,
                        {
                            let bits = rng(0, 8);
                            rng(1, 1 << bits)
                        },
                        None,
                    ),
                    _ => (BufferType::Dram, banks(BufferType::Dram) << 26, None), // out of memory
                };
                let direction = [
                    Direction::Default,
                    Direction::Default,
                    Direction::BottomUp,
                    Direction::TopDown,
                ][rng(0, 3) as usize];
                let mut size = pages * page;
                let invalid = rng(1, 100) == 1;
                if invalid {
                    size += 1; // refused before the device sees it: not recorded
                }
                let mut request = on.buffer(pool, size).page_size(page).direction(direction);
                if let Some(s) = shards {
                    request = request.sharded(s);
                }
                if !by_other && rng(1, 3) == 1 {
                    request = request.label(format!("step {step} #{roll} 100%"));
                }
                match request.allocate() {
                    Ok(b) => {
                        if by_other {
                            theirs.push(b);
                        } else {
                            mine.push(b);
                        }
                        snap(&mut pools);
                    }
                    Err(Error::OutOfMemory { .. }) if !by_other => snap(&mut pools),
                    Err(Error::OutOfMemory { .. }) => {}
                    Err(e) => assert!(invalid, "step {step}: {e}"),
                }
            }
            41..=65 if !mine.is_empty() => {
                let b = mine.swap_remove(rng(0, mine.len() as u64 - 1) as usize);
                if rng(0, 1) == 0 {
                    drop(b)
                } else {
                    b.free().unwrap()
                }
                snap(&mut pools);
            }
            66..=72 if !theirs.is_empty() => {
                drop(theirs.swap_remove(rng(0, theirs.len() as u64 - 1) as usize));
                snap(&mut pools);
            }
            // A program of 1 to 4 CBs, one of them now and then backed by an L1 buffer.
            73..=82 => {
                let mut p = dev.create_program().unwrap();
                snap(&mut pools);
                for index in 0..rng(1, 4) as u8 {
                    let (x0, x1) = (rng(0, u64::from(gx)) as u32, rng(0, u64::from(gx)) as u32);
                    let (y0, y1) = (rng(0, u64::from(gy)) as u32, rng(0, u64::from(gy)) as u32);
                    let cores = range(x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1));
                    let size = rng(1, 64) * 1024 * if rng(1, 20) == 1 { 16 } else { 1 };
                    let mut config = CircularBufferConfig::new(size).page_size(index, 1024);
                    let backing = mine
                        .iter()
                        .find(|b| b.buffer_type() == BufferType::L1 && b.size_per_bank() >= 1024);
                    if backed_cbs
                        && rng(1, 5) == 1
                        && let Some(b) = backing
                    {
                        config = CircularBufferConfig::new(1024)
                            .page_size(index, 1024)
                            .backed_by(b, 0);
                    }
                    p.add_circular_buffer(cores, config).unwrap();
                    snap(&mut pools);
                }
                programs.push(p);
            }
            83..=95 if !programs.is_empty() => {
                let i = rng(0, programs.len() as u64 - 1) as usize;
                match dev.enqueue(&mut programs[i]) {
                    Ok(_) | Err(Error::CircularBuffers(_)) => {}
                    // A backing buffer freed since: the enqueue is recorded, without an
                    // expectation.
                    Err(Error::CircularBufferBackingFreed { .. }) => {}
                    Err(e) => panic!("step {step}: {e}"),
                }
                snap(&mut pools);
            }
            96..=100 if !programs.is_empty() => {
                drop(programs.swap_remove(rng(0, programs.len() as u64 - 1) as usize));
                snap(&mut pools);
            }
            _ => {}
        }
    }
    // Programs go first: CBs backed by a buffer must not outlive it.
    while let Some(p) = programs.pop() {
        drop(p);
        snap(&mut pools);
    }
    while let Some(b) = mine.pop() {
        drop(b);
        snap(&mut pools);
    }
    while let Some(b) = theirs.pop() {
        drop(b);
        snap(&mut pools);
    }
    pools
}

/// Replays `trace` on its simulated device and checks it against the pools
/// a recorded workload saw: every expectation met, and the same pools after
/// every operation. Returns the replay's lines.
pub fn replays_line_for_line(
    trace: &tt_memguard::Trace,
    fresh: &str,
    pools: &[String],
) -> Vec<String> {
    let sim = trace.open_sim().unwrap();
    let mut lines = Vec::new();
    trace
        .replay(&sim, |l| lines.push(l.to_string()))
        .unwrap_or_else(|e| panic!("{e}\n{}", lines.last().map_or("", |l| l.as_str())));
    assert_eq!(
        trace.ops.len(),
        pools.len(),
        "one recorded operation per step"
    );
    assert_eq!(pools_of_line(&lines[0]), fresh);
    for (i, (line, op)) in trace.ops.iter().enumerate() {
        assert_eq!(
            pools_of_line(&lines[i + 1]),
            pools[i],
            "line {line}: {op}\n  replay: {}",
            lines[i + 1]
        );
    }
    lines
}

// ---- example programs, run as subprocesses ----

/// A command that runs `exe` in the package's folder without the variables
/// that change a runner's output: every `TT_MEMGUARD_*` one, the colour
/// variables and insta's. Variables the caller sets afterwards apply.
pub fn clean_command(exe: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("TT_MEMGUARD_") {
            cmd.env_remove(var);
        }
    }
    for var in [
        "NO_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "INSTA_UPDATE",
        "INSTA_FORCE_PASS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `exe` with `args` and `envs` only among the variables that change
/// its output (see [`clean_command`]).
pub fn run_clean(
    exe: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> std::process::Output {
    clean_command(exe)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", exe.display()))
}

/// A run's stdout, its run time (the only unstable part) masked.
pub fn stdout(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| match l.find("finished in ") {
            Some(i) => format!("{}finished in [time]", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A run's stderr.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh, empty folder `<prefix>-<pid>-<name>` in the temporary folder.
pub fn fresh_dir(prefix: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the example `name` with `args` in the package's folder, checks that
/// it succeeds (else fails with its stderr) and returns its stdout.
pub fn example_stdout<S: AsRef<std::ffi::OsStr>>(
    name: &str,
    args: impl IntoIterator<Item = S>,
) -> String {
    let out = std::process::Command::new(example_binary(name))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

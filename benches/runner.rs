//! Runner overhead: 10,000 trivial memory-checked tests through the memguard
//! harness (a fresh simulated device and a guard per test) against the same
//! 10,000 as plain libtest-mimic trials, both measured in this run as child
//! processes with their output discarded, in alternating rounds (so that a
//! change of load on the machine falls on both). Target: under 2x.
//!
//! Run with `cargo bench --bench runner`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TESTS: usize = 10_000;

fn child(mode: &str) {
    let mut args: Vec<String> = vec!["runner".into(), "--format".into(), "terse".into()];
    if let Ok(threads) = std::env::var("RUNNER_BENCH_THREADS") {
        args.extend(["--test-threads".into(), threads]);
    }
    match mode {
        "plain" => {
            let trials = (0..TESTS)
                .map(|i| libtest_mimic::Trial::test(format!("t{i:05}"), || Ok(())))
                .collect();
            libtest_mimic::run(&libtest_mimic::Arguments::from_iter(args), trials).exit_if_failed();
        }
        _ => {
            // A directory without memguard.toml: budgets from code only.
            let mut harness =
                tt_memguard::runner::Harness::new().manifest_dir(std::env::temp_dir());
            for i in 0..TESTS {
                harness = harness.test(format!("t{i:05}"), |_dev: &tt_memguard::Device| {});
            }
            let code = harness.run_with_args(args);
            if code != std::process::ExitCode::SUCCESS {
                std::process::exit(1);
            }
        }
    }
}

/// The time of one run of a child process.
fn time_child(mode: &str) -> Duration {
    let exe = std::env::current_exe().expect("own path");
    let start = Instant::now();
    let status = Command::new(&exe)
        .args(["--child", mode])
        .env_remove("TT_MEMGUARD_DEVICE")
        .stdout(Stdio::null())
        .status()
        .expect("child runs");
    assert!(status.success(), "{mode} run failed");
    start.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1]);
        return;
    }
    let runs = if args.iter().any(|a| a == "--bench") {
        11
    } else {
        1
    };
    let (plain, memguard): (Vec<Duration>, Vec<Duration>) = (0..runs)
        .map(|_| (time_child("plain"), time_child("memguard")))
        .unzip();
    let (plain, memguard) = (median(plain), median(memguard));
    println!(
        "{TESTS} trivial tests, median of {runs} alternating runs (process start included in both)"
    );
    println!(
        "  plain libtest-mimic trials : {:>8.1} ms",
        plain.as_secs_f64() * 1e3
    );
    println!(
        "  memguard harness           : {:>8.1} ms",
        memguard.as_secs_f64() * 1e3
    );
    println!(
        "  ratio                      : {:>8.2}x   (target: under 2x)",
        memguard.as_secs_f64() / plain.as_secs_f64()
    );
}

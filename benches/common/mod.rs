//! Timing shared by the benchmarks.

use std::time::{Duration, Instant};

/// Median time per call of `f`, over 7 rounds of `iters` calls.
pub fn time_per_call(iters: u32, mut f: impl FnMut()) -> Duration {
    let mut rounds: Vec<Duration> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed() / iters
        })
        .collect();
    rounds.sort();
    rounds[rounds.len() / 2]
}

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

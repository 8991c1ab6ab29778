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

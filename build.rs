//! Builds the C++ half: the simulated device (always) and, with the `tt-metal`
//! feature, the shim over a TT-Metal install.

use std::path::PathBuf;

#[path = "build/elf.rs"]
mod elf;

/// The shared vocabulary's bridge and the simulated device's.
const SIM_BRIDGES: [&str; 2] = ["src/ffi/vocab.rs", "src/ffi/sim.rs"];

/// The TT-Metal shim (`tt-metal` feature).
const TT_METAL_SOURCES: [&str; 5] = [
    "cpp/tt_metal_abi.cpp",
    "cpp/tt_metal_events.cpp",
    "cpp/tt_metal_device.cpp",
    "cpp/tt_metal_bank.cpp",
    "cpp/tt_metal_bridge.cpp",
];

const SIM_SOURCES: &[&str] = &[
    "cpp/free_block_tree.cpp",
    "cpp/pool_allocator.cpp",
    "cpp/circular_buffers.cpp",
    "cpp/sim_device.cpp",
    "cpp/sim_bridge.cpp",
];

fn main() {
    let mut build = cxx_build::bridges(SIM_BRIDGES);
    build
        .files(SIM_SOURCES)
        .std("c++17")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra");
    // The simulator is exercised by long randomized tests: optimise it even
    // in debug builds.
    build.opt_level(2);
    build.compile("tt_memguard_sim");

    // docs.rs documents the feature but has no TT-Metal: rustdoc needs the
    // Rust side only, so the shim is not compiled there.
    println!("cargo:rerun-if-env-changed=DOCS_RS");
    if std::env::var_os("CARGO_FEATURE_TT_METAL").is_some() && std::env::var_os("DOCS_RS").is_none()
    {
        build_tt_metal();
    }

    for bridge in SIM_BRIDGES {
        println!("cargo:rerun-if-changed={bridge}");
    }
    println!("cargo:rerun-if-changed=build/elf.rs");
    for entry in std::fs::read_dir("cpp").expect("cpp/ is part of the package") {
        let path = entry.expect("cpp/ is readable").path();
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// The GNU build-id of the libtt_metal.so that `cpp/tt_metal_api.hpp`'s own
/// declarations were checked against (PyPI `ttnn==0.81.1`).
const PINNED_BUILD_ID: &str = "23bb346fe8447951975aca3c3eb261b08372522d";

/// The `tt-metal` feature: the shim over TT-Metal, compiled either against
/// this project's declarations and the wheel's library
/// (`TT_MEMGUARD_TTNN_LIB_DIR`), or against a TT-Metal install's headers
/// (`TT_METAL_HOME`).
fn build_tt_metal() {
    for var in [
        "TT_MEMGUARD_TTNN_LIB_DIR",
        "TT_METAL_HOME",
        "TT_METAL_LIB_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=src/ffi/tt_metal.rs");
    let env_dir = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut build = cxx_build::bridge("src/ffi/tt_metal.rs");
    build
        .files(TT_METAL_SOURCES)
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra");
    let lib_dir = if let Some(lib) = env_dir("TT_MEMGUARD_TTNN_LIB_DIR") {
        // Our own declarations: only the exact library they were checked against.
        let so = lib.join("libtt_metal.so");
        // The ELF note only: the library is about 100 MB.
        let id = elf::gnu_build_id(&so).unwrap_or_else(|e| {
            panic!(
                "TT_MEMGUARD_TTNN_LIB_DIR={} but {} cannot be read ({e}): point it at the ttnn/build/lib \
                 directory of the unpacked ttnn==0.81.1 wheel",
                lib.display(),
                so.display()
            )
        });
        assert!(
            id.as_deref() == Some(PINNED_BUILD_ID),
            "{} (GNU build-id {}) is not the libtt_metal.so of ttnn 0.81.1 (GNU build-id \
             {PINNED_BUILD_ID}), which tt-memguard's own TT-Metal declarations are pinned to: use \
             that wheel, or set TT_METAL_HOME to build against your install's headers instead",
            so.display(),
            id.as_deref().unwrap_or("none")
        );
        println!("cargo:rerun-if-changed={}", so.display());
        build.std("c++17");
        lib
    } else if let Some(home) = env_dir("TT_METAL_HOME") {
        // A TT-Metal install: its own headers and libraries. Its headers log through spdlog over
        // an external header-only fmt, as TT-Metal's own CMake targets compile them; the include
        // directories of those third-party headers come from CXXFLAGS (see README.md).
        build
            .std("c++20")
            .define("MEMGUARD_TT_METAL_HEADERS", None)
            .define("SPDLOG_FMT_EXTERNAL", None)
            .define("FMT_HEADER_ONLY", None);
        for dir in [
            "",
            "tt_metal/api",
            "tt_metal/hostdevcommon/api",
            "tt_metal/third_party/umd/device/api",
            "tt_stl",
            "tt_metal/include",
        ] {
            // System headers: warnings inside TT-Metal's headers are not the shim's.
            build.flag("-isystem").flag(home.join(dir));
        }
        let lib = env_dir("TT_METAL_LIB_DIR").unwrap_or_else(|| home.join("build/lib"));
        // Inline code of the headers (ttsl's small vectors) calls into libtt_stl.so directly.
        if lib.join("libtt_stl.so").exists() {
            println!("cargo:rustc-link-lib=dylib=tt_stl");
        }
        lib
    } else {
        panic!(
            "the `tt-metal` feature needs TT-Metal: set TT_METAL_HOME to a TT-Metal checkout built \
             with its headers (libraries in $TT_METAL_HOME/build/lib, or set TT_METAL_LIB_DIR), or \
             set TT_MEMGUARD_TTNN_LIB_DIR to the ttnn/build/lib directory of the unpacked PyPI wheel \
             ttnn==0.81.1 (see README.md, \"TT-Metal users\")"
        );
    };
    build.compile("tt_memguard_tt_metal");
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-lib=dylib=tt_metal");
    // Tests, examples and benches of this package find the library at run time.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
}

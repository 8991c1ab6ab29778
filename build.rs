//! Builds the C++ half: the simulated device (always) and, with the `tt-metal`
//! feature, the shim over a TT-Metal install.

const SIM_SOURCES: &[&str] = &[
    "cpp/free_block_tree.cpp",
    "cpp/pool_allocator.cpp",
    "cpp/sim_device.cpp",
    "cpp/sim_bridge.cpp",
];

fn main() {
    let mut build = cxx_build::bridge("src/ffi/sim.rs");
    build
        .files(SIM_SOURCES)
        .std("c++17")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra");
    // The simulator is exercised by long randomized tests: optimise it even
    // in debug builds.
    build.opt_level(2);
    build.compile("tt_memguard_sim");

    println!("cargo:rerun-if-changed=src/ffi/sim.rs");
    for entry in std::fs::read_dir("cpp").expect("cpp/ is part of the package") {
        let path = entry.expect("cpp/ is readable").path();
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

//! MemoryGuard overhead, next to a bare snapshot pair measured in the same
//! run: guard new + finish with nothing inside (target: under 1 us), with
//! 1,000 allocate/free pairs inside, the same after 10,000 guards were
//! forgotten, and the same in a guard with a peak budget, which logs every
//! allocation for the peak composition (target: under 1.5x the plain
//! guard), passing and failing (the composition then built), and in a
//! guard that explains itself (timeline and bank maps; target: under 1.5x
//! the plain guard). On meshes: 1,000 mesh-buffer pairs guarded on a
//! T3000 against the same on one chip (target: about 1x: a mesh buffer pays
//! nothing for the chips while no chip's own buffer is live), and an empty
//! guard on a Galaxy, which covers its 32 chips' own allocators too,
//! against one on a single device.
//!
//! Run with `cargo bench --bench guard`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use tt_memguard::{Budget, BufferType, MemoryGuard, SimDevice, SimMesh};

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let iters = if quick { 100 } else { 100_000 };
    let dev = SimDevice::wormhole_b0();

    let bare = common::time_per_call(iters, || {
        black_box(dev.snapshot().unwrap());
        black_box(dev.snapshot().unwrap());
    });
    let empty = common::time_per_call(iters, || {
        black_box(MemoryGuard::new(&dev).finish().unwrap());
    });
    let work = |n: usize| {
        for _ in 0..n {
            black_box(dev.allocate(BufferType::Dram, 12 * 2048, 2048).unwrap());
        }
    };
    let heavy_iters = if quick { 2 } else { 200 };
    let bare_work = common::time_per_call(heavy_iters, || work(1_000));
    let guarded_work = common::time_per_call(heavy_iters, || {
        let guard = MemoryGuard::new(&dev);
        work(1_000);
        black_box(guard.finish().unwrap());
    });
    // The same with a peak budget: allocations are logged for the peak
    // composition. Passing, nothing more is done at the end; failing, the
    // log is replayed to build the composition.
    let peak_work = common::time_per_call(heavy_iters, || {
        let guard = MemoryGuard::new(&dev).budget(Budget::new().dram_peak("1 GiB"));
        work(1_000);
        black_box(guard.finish().unwrap());
    });
    let failing_work = common::time_per_call(heavy_iters, || {
        let guard = MemoryGuard::new(&dev).budget(Budget::new().dram_peak("1 KiB"));
        work(1_000);
        black_box(guard.finish().unwrap_err());
    });
    // The same in a guard that explains itself: every event feeds its
    // timeline and is logged, and the end maps every pool at its peak.
    let explain_work = common::time_per_call(heavy_iters, || {
        let guard = MemoryGuard::new(&dev).explain(true);
        work(1_000);
        black_box(guard.finish().unwrap());
    });
    // The same guarded work on a device where 10,000 guards were forgotten
    // (std::mem::forget): their peak marks stay active for good, and an
    // allocation must not pay for them.
    let crowded = SimDevice::wormhole_b0();
    for _ in 0..10_000 {
        std::mem::forget(MemoryGuard::new(&crowded));
    }
    let crowded_work = common::time_per_call(heavy_iters, || {
        let guard = MemoryGuard::new(&crowded);
        for _ in 0..1_000 {
            black_box(crowded.allocate(BufferType::Dram, 12 * 2048, 2048).unwrap());
        }
        black_box(guard.finish().unwrap());
    });
    // Meshes: mesh buffers on a T3000 against the same on one of its chips'
    // model, and an empty guard on a Galaxy (the mesh and 32 chips).
    let t3000 = SimMesh::t3000();
    let one_chip = SimDevice::wormhole_n300();
    let pairs = |dev: &tt_memguard::Device| {
        let guard = MemoryGuard::new(dev);
        for _ in 0..1_000 {
            black_box(dev.allocate(BufferType::Dram, 12 * 2048, 2048).unwrap());
        }
        black_box(guard.finish().unwrap());
    };
    let chip_work = common::time_per_call(heavy_iters, || pairs(&one_chip));
    let mesh_work = common::time_per_call(heavy_iters, || pairs(&t3000));
    let galaxy = SimMesh::galaxy();
    let galaxy_iters = if quick { 10 } else { 10_000 };
    let galaxy_empty = common::time_per_call(galaxy_iters, || {
        black_box(MemoryGuard::new(&galaxy).finish().unwrap());
    });
    let ns = |d: Duration| d.as_secs_f64() * 1e9;
    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "measure", "time", "baseline", "ratio"
    );
    println!(
        "{:<44} {:>9.0} ns {:>9.0} ns {:>7.1}x   (target: under 1 us)",
        "guard new + finish, empty (vs 2 snapshots)",
        ns(empty),
        ns(bare),
        ns(empty) / ns(bare)
    );
    println!(
        "{:<44} {:>9.1} us {:>9.1} us {:>7.2}x",
        "1,000 alloc+free pairs guarded (vs bare)",
        ns(guarded_work) / 1e3,
        ns(bare_work) / 1e3,
        ns(guarded_work) / ns(bare_work)
    );
    println!(
        "{:<44} {:>9.1} us {:>9.1} us {:>7.2}x   (target: under 1.5x)",
        "same, peak budget, composition logged",
        ns(peak_work) / 1e3,
        ns(guarded_work) / 1e3,
        ns(peak_work) / ns(guarded_work)
    );
    println!(
        "{:<44} {:>9.1} us {:>9.1} us {:>7.2}x",
        "same, peak failing, composition built",
        ns(failing_work) / 1e3,
        ns(guarded_work) / 1e3,
        ns(failing_work) / ns(guarded_work)
    );
    println!(
        "{:<44} {:>9.1} us {:>9.1} us {:>7.2}x   (target: under 1.5x)",
        "same, explain: timeline and maps",
        ns(explain_work) / 1e3,
        ns(guarded_work) / 1e3,
        ns(explain_work) / ns(guarded_work)
    );
    println!(
        "{:<44} {:>9.1} us {:>9.1} us {:>7.2}x   (target: about 1x)",
        "same, 10,000 forgotten guards (vs none)",
        ns(crowded_work) / 1e3,
        ns(guarded_work) / 1e3,
        ns(crowded_work) / ns(guarded_work)
    );
    println!(
        "{:<44} {:>9.1} us {:>9.1} us {:>7.2}x   (target: about 1x)",
        "1,000 mesh-buffer pairs, T3000 (vs one chip)",
        ns(mesh_work) / 1e3,
        ns(chip_work) / 1e3,
        ns(mesh_work) / ns(chip_work)
    );
    println!(
        "{:<44} {:>9.1} us {:>9.1} us {:>7.1}x   (33 allocators)",
        "guard new + finish, empty, Galaxy (vs one)",
        ns(galaxy_empty) / 1e3,
        ns(empty) / 1e3,
        ns(galaxy_empty) / ns(empty)
    );
}

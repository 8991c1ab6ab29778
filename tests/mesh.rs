//! Simulated meshes as TT-Metal's `MeshDevice` has them: one allocator places
//! every mesh buffer for all chips, each chip keeps its own allocator, and
//! guards, budgets, reports and programs work per chip and for the mesh.

mod common;

use tt_memguard::{
    Budget, BufferType, CircularBufferConfig, CoreRange, Device, DeviceGroup, Direction, Error,
    KIB, MIB, MemoryGuard, MemorySource, MeshCoord, MeshDevice, MeshPreset, MeshShape, Preset,
    SimDevice, SimMesh, assert_no_leak, try_assert_memory_budget,
};

#[test]
fn presets_have_their_shape_chips_and_names() {
    let expected = [
        (MeshPreset::N300, "n300_mesh", (1, 2), Preset::WormholeN300),
        (MeshPreset::T3000, "t3000", (2, 4), Preset::WormholeN300),
        (MeshPreset::Galaxy, "galaxy", (4, 8), Preset::WormholeB0),
    ];
    for (preset, name, (rows, cols), chip) in expected {
        let mesh = SimMesh::preset(preset);
        assert_eq!(mesh.shape(), MeshShape::new(rows, cols));
        assert_eq!(mesh.name(), format!("sim:{name}"));
        assert_eq!(mesh.info().mesh_shape, Some(MeshShape::new(rows, cols)));
        assert_eq!(mesh.info().mesh_chip, None);
        // The mesh's one allocator has one chip's geometry, as every chip's own has.
        let one_chip = SimDevice::preset(chip).snapshot().unwrap();
        assert_eq!(mesh.snapshot().unwrap(), one_chip);
        let chips: Vec<(MeshCoord, &Device)> = mesh.chips().collect();
        assert_eq!(chips.len() as u32, rows * cols);
        let (last, device) = chips[chips.len() - 1];
        assert_eq!(last, MeshCoord::new(rows - 1, cols - 1));
        assert_eq!(
            device.name(),
            format!("sim:{name}[{},{}]", rows - 1, cols - 1)
        );
        assert_eq!(device.info().mesh_chip, Some(last));
        assert_eq!(device.snapshot().unwrap(), one_chip);
        assert_eq!(name.parse::<MeshPreset>().unwrap(), preset);
    }
    for (alias, preset) in [
        ("n300x2", MeshPreset::N300),
        ("T3K", MeshPreset::T3000),
        (" wh_galaxy ", MeshPreset::Galaxy),
    ] {
        assert_eq!(alias.parse::<MeshPreset>().unwrap(), preset);
    }
    assert_eq!(
        "tg".parse::<MeshPreset>().unwrap_err().to_string(),
        "unknown simulated mesh \"tg\": expected n300_mesh (n300x2), t3000 (t3k) or galaxy"
    );
}

#[test]
fn a_mesh_buffer_is_placed_once_for_every_chip() {
    let mesh = SimMesh::t3000();
    let sample = SimDevice::wormhole_n300();
    // The worked example of one chip: the mesh's addresses are the same.
    for (t, size) in [
        (BufferType::Dram, MIB),
        (BufferType::Dram, 3 * MIB),
        (BufferType::L1, 64 * KIB),
    ] {
        let on_mesh = mesh.allocate(t, size, 2048).unwrap();
        let on_one = sample.allocate(t, size, 2048).unwrap();
        assert_eq!(
            (
                on_mesh.address(),
                on_mesh.size_per_bank(),
                on_mesh.num_banks()
            ),
            (on_one.address(), on_one.size_per_bank(), on_one.num_banks())
        );
        std::mem::forget((on_mesh, on_one));
    }
    // The figures are one chip's; no chip's own allocator holds anything.
    assert_eq!(mesh.snapshot().unwrap(), sample.snapshot().unwrap());
    for (_, chip) in mesh.chips() {
        assert_eq!(chip.live_count().unwrap(), 0);
        assert_eq!(
            chip.snapshot().unwrap(),
            SimDevice::wormhole_n300().snapshot().unwrap()
        );
    }
}

#[test]
fn each_chips_own_allocator_is_independent_of_the_mesh_and_of_the_others() {
    let mesh = SimMesh::n300();
    let weights = mesh.allocate(BufferType::Dram, 8 * MIB, 2048).unwrap();
    let (left, right) = (mesh.chip((0, 0)).unwrap(), mesh.chip((0, 1)).unwrap());
    // From the top of DRAM, clear of the weights: placed by the chip's own allocator.
    let top = |chip: &Device| {
        chip.buffer(BufferType::Dram, MIB)
            .page_size(2048)
            .direction(Direction::TopDown)
            .allocate()
            .unwrap()
    };
    let (a, b) = (top(left), top(right));
    assert_eq!(
        a.address(),
        b.address(),
        "each chip's allocator starts the same"
    );
    let dram = |dev: &Device| {
        dev.snapshot()
            .unwrap()
            .pool(BufferType::Dram)
            .allocated_per_bank
    };
    assert_eq!(
        dram(&mesh),
        weights.size_per_bank(),
        "the mesh does not count them"
    );
    assert_eq!(dram(left), a.size_per_bank());
    drop(a);
    assert_eq!((dram(left), dram(right)), (0, b.size_per_bank()));
}

#[test]
fn buffers_of_the_mesh_and_of_a_chip_that_would_overlap_are_refused() {
    let mesh = SimMesh::t3000();
    let weights = mesh
        .buffer(BufferType::Dram, 8 * MIB)
        .page_size(2048)
        .label("weights")
        .allocate()
        .unwrap();
    let chip = mesh.chip((1, 2)).unwrap();
    // TT-Metal's chip allocator would start at the DRAM base, on the weights.
    let e = chip.allocate(BufferType::Dram, MIB, 2048).unwrap_err();
    let Error::MeshOverlap {
        mesh: ref name,
        chip: coord,
        on_chip,
        address,
        ref other,
        ..
    } = e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (name.as_str(), coord, on_chip, address),
        ("sim:t3000", MeshCoord::new(1, 2), true, 0x100040)
    );
    assert_eq!(other.label.as_deref(), Some("weights"));
    let text = common::redact_locations(&e.to_string());
    assert_eq!(
        text,
        "chip [1,2] of sim:t3000: its own 1,048,576 B DRAM buffer would be placed at 0x100040..0x115840 (per bank), on mesh buffer 'weights' (id 1, 8,388,608 B DRAM, 700,416 B per bank) at 0x100040..0x1ab040, allocated at tests/mesh.rs:L:C: TT-Metal places the mesh's buffers and each chip's own with separate allocators, blind to each other, so the two would overwrite each other; free the mesh buffer first, or allocate this one on the mesh"
    );
    // The refused buffer is not kept.
    assert_eq!(chip.live_count().unwrap(), 0);
    // L1 is another address space: no overlap with DRAM.
    let scratch = chip.allocate(BufferType::L1, 56 * 4 * KIB, 2048).unwrap();
    // A mesh buffer over a chip's own buffer is refused as well: the mesh's L1 also starts
    // from the top.
    let e = mesh
        .allocate(BufferType::L1, 56 * 8 * KIB, 2048)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::MeshOverlap {
                on_chip: false,
                chip: MeshCoord { row: 1, col: 2, .. },
                ..
            }
        ),
        "{e}"
    );
    // Id 1 went to the refused buffer.
    assert!(
        e.to_string().contains("on chip [1,2]'s own buffer id 2 ("),
        "{e}"
    );
    assert_eq!(mesh.live_count().unwrap(), 1, "only the weights");
    // Freed, nothing stands in the way.
    drop((weights, scratch));
    let again = chip.allocate(BufferType::Dram, MIB, 2048).unwrap();
    assert_eq!(again.address(), 0x100040);
    drop(again);
    mesh.allocate(BufferType::L1, 56 * 8 * KIB, 2048).unwrap();
}

#[test]
fn a_guard_on_the_mesh_reports_the_mesh_and_the_chips_that_were_used() {
    let mesh = SimMesh::t3000();
    // Nothing on any chip: one report, the mesh's.
    let report = assert_no_leak!(mesh, {
        let _w = mesh.allocate(BufferType::Dram, MIB, 2048).unwrap();
        MemoryGuard::new(&mesh).into_report().unwrap()
    });
    assert_eq!(report.devices.len(), 1);
    assert_eq!(report.device().device, "sim:t3000");

    // A leak on chip [0,3]'s own allocator fails that chip's report, named after it; a guard
    // on the mesh's Device covers the chips as one on the MeshDevice does.
    for on_device in [false, true] {
        let mesh = SimMesh::t3000();
        let guard = if on_device {
            MemoryGuard::new(mesh.device())
        } else {
            MemoryGuard::new(&mesh)
        };
        let chip = mesh.chip((0, 3)).unwrap();
        std::mem::forget(
            chip.buffer(BufferType::L1, 56 * 2 * KIB)
                .page_size(2048)
                .label("stray")
                .allocate()
                .unwrap(),
        );
        let report = guard.into_report().unwrap();
        let names: Vec<&str> = report.devices.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["sim:t3000", "sim:t3000[0,3]"]);
        assert!(!report.passed);
        assert!(report.devices[0].passed && !report.devices[1].passed);
        assert_eq!(report.devices[1].leaked[0].label.as_deref(), Some("stray"));
        // The next guard inherits the leak: the chip is reported, and passes.
        let next = MemoryGuard::new(&mesh).into_report().unwrap();
        assert_eq!(next.devices.len(), 2);
        assert_eq!(next.devices[1].inherited, 1);
        assert!(next.passed);
    }
}

#[test]
fn a_guard_on_the_devices_device_covers_chips_and_a_chip_listed_twice_is_refused() {
    let mesh = SimMesh::n300();
    let chip = mesh.chip((0, 1)).unwrap().clone();
    // Listing a chip next to its mesh: the chip is guarded once.
    let guard = MemoryGuard::new(&vec![mesh.device().clone(), chip.clone()]);
    std::mem::forget(chip.allocate(BufferType::L1, 56 * 2048, 2048).unwrap());
    let report = guard.into_report().unwrap();
    let names: Vec<&str> = report.devices.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(names, ["sim:n300_mesh", "sim:n300_mesh[0,1]"]);
    // A guard on a chip alone always reports it, used or not.
    let alone = MemoryGuard::new(mesh.chip((0, 0)).unwrap())
        .finish()
        .unwrap();
    assert_eq!(alone.device().device, "sim:n300_mesh[0,0]");
    // The devices a MeshDevice lists are its own; a guard adds the chips.
    assert_eq!(mesh.devices().len(), 1);
    let twice = vec![chip.clone(), chip];
    assert!(matches!(
        MemoryGuard::try_new(&twice),
        Err(Error::DuplicateDevice { .. })
    ));
}

#[test]
fn budgets_apply_to_the_mesh_and_to_every_chip() {
    let mesh = SimMesh::n300();
    // 256 KiB over 56 banks: 3 pages of 2 KiB per bank, on the mesh and on a chip.
    let over = try_assert_memory_budget!(mesh, l1_per_bank <= "4 KiB", {
        drop(mesh.allocate(BufferType::L1, 256 * KIB, 2048).unwrap());
    });
    let report = over.unwrap_err().memory_report().unwrap().clone();
    assert_eq!(report.devices.len(), 1);
    let failed: Vec<&str> = report.failures().map(|(device, _, _)| device).collect();
    assert_eq!(failed, ["sim:n300_mesh"]);

    let guard = MemoryGuard::new(&mesh).budget(Budget::new().l1_peak_per_bank("4 KiB"));
    let chip = mesh.chip((0, 1)).unwrap();
    drop(chip.allocate(BufferType::L1, 256 * KIB, 2048).unwrap());
    drop(mesh.allocate(BufferType::L1, 64 * KIB, 2048).unwrap());
    let report = guard.into_report().unwrap();
    let failed: Vec<&str> = report.failures().map(|(device, _, _)| device).collect();
    assert_eq!(failed, ["sim:n300_mesh[0,1]"]);
    let line = report.summary_line();
    assert!(
        line.starts_with("sim:n300_mesh: L1 peak 2.0 KiB/4.0 KiB per bank"),
        "{line}"
    );
    assert!(
        line.contains("; sim:n300_mesh[0,1]: L1 peak 6.0 KiB/4.0 KiB per bank"),
        "{line}"
    );
}

#[test]
fn programs_run_on_the_mesh_and_lay_out_on_every_chip_as_on_one() {
    let mesh = SimMesh::t3000();
    let one = SimDevice::wormhole_n300();
    let grid = CoreRange::grid(8, 7).unwrap();
    let run = |dev: &Device| {
        let _out = dev.allocate(BufferType::L1, 56 * 700 * KIB, 2048).unwrap();
        let mut p = dev.create_program().unwrap();
        p.add_circular_buffer(
            grid,
            CircularBufferConfig::new(128 * KIB).page_size(0, 2048),
        )
        .unwrap();
        p.add_circular_buffer(grid, CircularBufferConfig::new(64 * KIB).page_size(1, 2048))
            .unwrap();
        let mut report = dev.enqueue(&mut p).unwrap();
        report.program = 0;
        (report, common::cb_addresses(&p))
    };
    let guard = MemoryGuard::new(&mesh);
    assert_eq!(run(&mesh), run(&one));
    let report = guard.finish().unwrap();
    // Per core, as on one chip: never multiplied by the chips.
    assert_eq!(report.devices.len(), 1);
    let cores = report.device().cores.as_ref().unwrap();
    assert_eq!(cores.cb_peak_per_core, 192 * KIB);

    // A chip's own allocator takes no program: TT-Metal checks a mesh workload against the
    // mesh's buffers.
    let e = mesh.chip((0, 0)).unwrap().create_program().unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(
        e.to_string().starts_with(
            "a program on one chip's own allocator in a mesh is not supported: create and enqueue it on the MeshDevice"
        ),
        "{e}"
    );
}

#[test]
fn custom_meshes_and_bad_shapes_and_coordinates() {
    let mesh = SimMesh::with_chip(
        SimDevice::builder(Preset::BlackholeP150).l1_small_size(64 * KIB),
        MeshShape::new(2, 2),
    )
    .name("bh_quad")
    .build()
    .unwrap();
    assert_eq!(mesh.name(), "bh_quad");
    assert_eq!(mesh.chip((1, 0)).unwrap().name(), "bh_quad[1,0]");
    for (_, chip) in mesh.chips() {
        assert_eq!(chip.info().l1_small_size, 64 * KIB);
    }
    let carved = SimMesh::builder(MeshPreset::N300)
        .l1_small_size(32 * KIB)
        .trace_region_size(8 * MIB)
        .build()
        .unwrap();
    let pools = carved.chip((0, 1)).unwrap().snapshot().unwrap();
    assert_eq!(pools, carved.snapshot().unwrap());
    assert_eq!(pools.pool(BufferType::L1Small).size_per_bank, 32 * KIB);

    assert_eq!(
        mesh.chip((2, 0)).unwrap_err().to_string(),
        "mesh bh_quad has no chip [2,0]: it is 2x2, rows 0 to 1 and columns 0 to 1"
    );
    assert!(matches!(
        mesh.chip(MeshCoord::new(0, 9)),
        Err(Error::NoSuchChip { .. })
    ));
    let shape_error = |rows, cols| {
        SimMesh::with_chip(
            SimDevice::builder(Preset::WormholeB0),
            MeshShape::new(rows, cols),
        )
        .build()
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        shape_error(0, 4),
        "invalid mesh: a 0x4 mesh has no chip: give at least 1 row and 1 column"
    );
    assert_eq!(
        shape_error(64, 32),
        "invalid mesh: a 64x32 mesh has 2048 chips: a simulated mesh has at most 1024"
    );
    // A chip geometry that cannot be opened is the builder's error.
    let e = SimMesh::with_chip(
        SimDevice::builder(Preset::WormholeB0).l1_small_size(u64::MAX),
        MeshShape::new(1, 2),
    )
    .build()
    .unwrap_err();
    assert!(matches!(e, Error::InvalidGeometry { .. }), "{e}");
}

#[test]
fn the_mesh_of_a_device_and_closing() {
    let mesh = SimMesh::n300();
    let as_device: &Device = &mesh;
    let again = MeshDevice::of(as_device).expect("a mesh's device");
    assert_eq!(again.shape(), mesh.shape());
    assert!(MeshDevice::of(mesh.chip((0, 0)).unwrap()).is_none());
    assert!(MeshDevice::of(&SimDevice::wormhole_b0()).is_none());
    let chip = mesh.chip((0, 1)).unwrap().clone();
    let kept = chip.allocate(BufferType::L1, 56 * 2048, 2048).unwrap();
    mesh.close();
    assert!(mesh.is_closed() && chip.is_closed());
    assert!(matches!(kept.free(), Err(Error::DeviceClosed { .. })));
    assert!(matches!(
        mesh.allocate(BufferType::Dram, MIB, 2048),
        Err(Error::DeviceClosed { .. })
    ));
}

#[test]
fn a_device_group_is_not_a_mesh() {
    // Independent devices: each places its own buffers, none is a mesh.
    let group = DeviceGroup::sim(Preset::WormholeN300, 2).unwrap();
    let a = group
        .device(0)
        .allocate(BufferType::Dram, MIB, 2048)
        .unwrap();
    let b = group
        .device(1)
        .allocate(BufferType::Dram, MIB, 2048)
        .unwrap();
    assert_eq!(a.address(), b.address());
    assert!(group.iter().all(|d| MeshDevice::of(d).is_none()));
}

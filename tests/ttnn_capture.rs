//! Importing ttnn graph captures: a real capture from the ttnn wheel's mock
//! mode, hand-written captures of the older and the newest formats, every node
//! type, circular buffers and their clash, bad input, and a 100 MB capture
//! read in bounded memory.

use std::io::Write;

use serde_json::{Value, json};
use tt_memguard::ttnn_capture::{ImportOptions, Imported};
use tt_memguard::{BufferType, Error, Preset, Trace, TraceOp};

fn import_file(path: &str, options: &ImportOptions) -> Imported {
    Trace::from_ttnn_capture_file(path, options).unwrap()
}

fn replay(trace: &Trace) -> Vec<String> {
    let dev = trace.open_sim().unwrap();
    let mut lines = Vec::new();
    trace.replay(&dev, |l| lines.push(l.to_string())).unwrap();
    lines
}

/// The second field of every replay line after the fresh device's.
fn fields(lines: &[String]) -> Vec<String> {
    lines[1..]
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().to_string())
        .collect()
}

/// A capture of `nodes` (each `[node_type, params]` or
/// `[node_type, params, connections]`), counters from 0.
fn capture(nodes: &[Value]) -> String {
    let nodes: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "counter": i,
                "node_type": n[0],
                "params": n[1],
                "connections": n.get(2).cloned().unwrap_or(json!([])),
            })
        })
        .collect();
    serde_json::to_string_pretty(&nodes).unwrap()
}

fn import(text: &str, options: &ImportOptions) -> tt_memguard::Result<Imported> {
    Trace::from_ttnn_capture(text.as_bytes(), options)
}

fn import_err(text: &str, options: &ImportOptions) -> String {
    match import(text, options) {
        Ok(_) => panic!("imported a bad capture:\n{text}"),
        Err(e @ Error::TtnnCapture(_)) => e.to_string(),
        Err(other) => panic!("not a capture error: {other:?}"),
    }
}

fn labels(trace: &Trace) -> Vec<(String, Option<String>)> {
    trace
        .ops
        .iter()
        .filter_map(|(_, op)| match op {
            TraceOp::Alloc { id, label, .. } => Some((id.clone(), label.clone())),
            _ => None,
        })
        .collect()
}

/// An allocation node in the newest format.
fn alloc(pool: &str, layout: &str, size: u64, page: u64, cores: u64) -> Value {
    json!({"size": size, "address": 0, "type": if pool == "DRAM" || pool == "TRACE" { "DRAM" } else { "L1" },
           "exact_buffer_type": pool, "layout": layout, "page_size": page, "num_cores": cores, "device_id": 0})
}

/// A `kind` node (`buffer_allocate` or `buffer_deallocate`) of a 4 KiB
/// interleaved `pool` buffer with 1 KiB pages, connected to buffer node `id`.
fn small(kind: &str, pool: &str, id: u64) -> Value {
    json!([kind, alloc(pool, "INTERLEAVED", 4096, 1024, 0), [id]])
}

fn cb(size: u64, cores: &str) -> Value {
    json!({"size": size, "address": 0, "core_range_set": cores, "globally_allocated": "0", "device_id": 0})
}

#[test]
fn real_mock_capture_replays() {
    // Made by tests/data/ttnn/capture_mock.py on ttnn 0.81.1's mock Wormhole n150,
    // NO_DISPATCH mode, device opened with l1_small_size=32768.
    let options = ImportOptions::new().l1_small_size(32768);
    let imported = import_file("tests/data/ttnn/mock_wormhole_no_dispatch.json", &options);
    let report = &imported.report;
    assert_eq!(
        (report.nodes, report.device_id, report.functions),
        (92, Some(1), 21)
    );
    assert_eq!((report.allocations, report.frees), (7, 2));
    assert_eq!((report.programs, report.circular_buffers), (2, 6));
    // The sharded add's CBs live in its sharded buffers, at address 0 in NO_DISPATCH.
    assert_eq!(report.backed_cbs_skipped, 3);
    assert_eq!(report.l1_small_buffers, 1);
    assert_eq!(
        (
            report.page_size_inferred,
            report.pool_from_type,
            report.unknown_frees
        ),
        (0, 0, 0)
    );
    assert_eq!(report.live_at_end.len(), 5);
    assert!(
        report
            .notes(&options)
            .iter()
            .all(|n| n.contains("globally allocated"))
    );
    assert_eq!(imported.trace.preset, Preset::WormholeB0);

    let lines = replay(&imported.trace);
    assert_eq!(
        fields(&lines),
        [
            "0x100040", // ttnn.ones in DRAM: 8 KiB, 2 KiB pages over 12 banks
            "0x165800", // ttnn.ones in L1, below the 32 KiB of L1_SMALL
            "0x100840", // ttnn.add's output in DRAM
            "-",        // its program
            "-",
            "-",
            "-", // three CBs
            "cbs:0x19d60,0x1ad60,0x1bd60",
            "0x164800", // height-sharded over 2 cores: 4 KiB per core
            "0x163800", // the sharded add's output
            "-",        // circular_buffer_deallocate_all: the add's program ends
            "0x16d000", // the L1_SMALL buffer, at the top of L1
            "0x163000", // ttnn.multiply's output in L1
            "-",
            "-",
            "-",
            "-",
            "cbs:0x19d60,0x1ad60,0x1bd60",
            "-", // ttnn.deallocate(c)
            "-", // ttnn.deallocate(t)
            "-", // the multiply's program ends with the capture
        ]
    );
    assert!(lines[12].contains("L1_SMALL:4096/28672/28672"));
    assert!(lines[8].ends_with("cb_end=0x1cd60 headroom=1346208"));

    let labels = labels(&imported.trace);
    assert_eq!(
        labels[0],
        ("b4".into(), Some("ttnn.ones/Tensor::to_device".into()))
    );
    assert_eq!(
        labels[2],
        (
            "b22".into(),
            Some("ttnn.add/BinaryNgDeviceOperation".into())
        )
    );
    assert_eq!(
        labels[6],
        (
            "b70".into(),
            Some("ttnn.multiply/BinaryNgDeviceOperation".into())
        )
    );
}

#[test]
fn real_capture_without_l1_small_says_what_is_missing() {
    let options = ImportOptions::new();
    let imported = import_file("tests/data/ttnn/mock_wormhole_no_dispatch.json", &options);
    let notes = imported.report.notes(&options);
    assert!(
        notes[0].starts_with("1 L1_SMALL buffer(s) but no L1_SMALL region: give the l1_small_size"),
        "{notes:?}"
    );
    // Without the carve-out, the L1_SMALL buffer fails as TT-Metal would.
    let lines = replay(&imported.trace);
    assert_eq!(fields(&lines)[11], "ERR:oom");
}

#[test]
fn older_normal_mode_capture_every_node_type() {
    // String params, no page sizes, num_cores, device ids or exact pool, core
    // ranges as (x=..,y=..), real addresses, an unknown node type, an error node.
    let options = ImportOptions::new();
    let imported = import_file("tests/data/ttnn/older_normal_mode.json", &options);
    let report = &imported.report;
    assert_eq!((report.nodes, report.device_id), (36, None));
    assert_eq!((report.allocations, report.frees), (3, 1));
    assert_eq!((report.programs, report.circular_buffers), (2, 4));
    assert_eq!((report.backed_cbs, report.backed_cbs_skipped), (1, 0));
    assert_eq!(report.metadata_nodes, 7);
    assert_eq!(report.unknown_frees, 1);
    assert_eq!(report.pool_from_type, 3);
    assert_eq!(report.page_size_inferred, 3);
    assert_eq!(report.shards_inferred, 1);
    assert_eq!(
        report.skipped.get("dataflow_buffer_allocate"),
        Some(&1),
        "{report:?}"
    );
    assert_eq!(
        report.capture_errors,
        [
            "node 34: exception: Out of Memory: Not enough space to allocate 2147483648 B DRAM buffer"
        ]
    );
    let live: Vec<&str> = report.live_at_end.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(live, ["b18", "b32"]);
    assert_eq!(report.live_at_end[1].label, None);

    // The operations, in capture order, each at its node's counter.
    let ops: Vec<(usize, String)> = imported
        .trace
        .ops
        .iter()
        .map(|(line, op)| {
            let text = match op {
                TraceOp::Alloc {
                    id,
                    buffer_type,
                    size,
                    page_size,
                    shards,
                    ..
                } => format!("alloc {id} {buffer_type} {size} {page_size} {shards:?}"),
                TraceOp::Free { id } => format!("free {id}"),
                TraceOp::Program { id } => format!("program {id}"),
                TraceOp::Cb {
                    program,
                    size,
                    indices,
                    backed,
                    cores,
                    ..
                } => format!(
                    "cb {program} {} {size} {indices:?} {backed:?}",
                    cores.cores()
                ),
                TraceOp::Enqueue { program, .. } => format!("enqueue {program}"),
                TraceOp::Destroy { program } => format!("destroy {program}"),
                other => format!("{other:?}"),
            };
            (*line, text)
        })
        .collect();
    let expected: Vec<(usize, String)> = [
        (8, "alloc b7 L1 24576 2048 None"),
        (12, "program p12"),
        (12, "cb p12 12 4096 [0] None"),
        (13, "enqueue p12"),
        (19, "alloc b18 L1 32768 2048 Some(64)"),
        (22, "destroy p12"),
        (23, "program p23"),
        (23, "cb p23 64 4096 [0] None"),
        (24, "cb p23 64 4096 [1] None"),
        (25, "cb p23 64 2048 [2] Some((\"b18\", 0))"),
        (27, "enqueue p23"),
        (29, "free b7"),
        (33, "alloc b32 DRAM 1048576 2048 None"),
        (35, "destroy p23"),
    ]
    .into_iter()
    .map(|(l, t)| (l, t.to_string()))
    .collect();
    assert_eq!(ops, expected);

    let lines = replay(&imported.trace);
    assert_eq!(
        fields(&lines),
        [
            "0x16d800",
            "-",
            "-",
            "cbs:0x19d60",
            "0x16d000",
            "-",
            "-",
            "-",
            "-",
            "-",
            // The backed CB takes its buffer's address.
            "cbs:0x19d60,0x1ad60,0x16d000",
            "-",
            "0x100040",
            "-",
        ]
    );
    let labels = labels(&imported.trace);
    assert_eq!(labels[0].1.as_deref(), Some("ttnn::add/ttnn::repeat"));
    assert_eq!(labels[1].1.as_deref(), Some("ttnn::add/ttnn::prim::binary"));

    // Strict: the unknown node type is an error, named with its counter.
    let strict = ImportOptions::new().strict(true);
    let e = Trace::from_ttnn_capture_file("tests/data/ttnn/older_normal_mode.json", &strict)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("ttnn capture tests/data/ttnn/older_normal_mode.json: node 26: unknown node type \"dataflow_buffer_allocate\": known are"),
        "{e}"
    );
}

#[test]
fn report_file_blackhole_exact_pools_and_devices() {
    // The report form (an object with "graph"), its architecture, exact pool
    // names, L1_SMALL, TRACE, host memory, DRAM sharding and a second device.
    let options = ImportOptions::new()
        .l1_small_size(32768)
        .trace_region_size(65536);
    let imported = import_file("tests/data/ttnn/report_blackhole.json", &options);
    let report = &imported.report;
    assert_eq!(imported.trace.preset, Preset::BlackholeP150);
    assert_eq!(
        (
            imported.trace.l1_small_size,
            imported.trace.trace_region_size
        ),
        (32768, 65536)
    );
    assert_eq!(report.device_id, Some(0));
    assert_eq!(report.other_devices, 2);
    assert_eq!(report.system_memory, 2);
    assert_eq!(report.dram_sharded, 1);
    assert_eq!((report.l1_small_buffers, report.trace_buffers), (1, 1));
    assert_eq!((report.pool_from_type, report.page_size_inferred), (0, 0));
    let pools: Vec<(BufferType, Option<u32>)> = imported
        .trace
        .ops
        .iter()
        .filter_map(|(_, op)| match op {
            TraceOp::Alloc {
                buffer_type,
                shards,
                ..
            } => Some((*buffer_type, *shards)),
            _ => None,
        })
        .collect();
    assert_eq!(
        pools,
        [
            (BufferType::L1Small, Some(8)),
            (BufferType::Dram, None),
            (BufferType::Trace, None),
            (BufferType::L1, Some(16)),
        ]
    );
    let cb_indices: Vec<Vec<u8>> = imported
        .trace
        .ops
        .iter()
        .filter_map(|(_, op)| match op {
            TraceOp::Cb { indices, .. } => Some(indices.clone()),
            _ => None,
        })
        .collect();
    // The second CB shares cores with the first; the third with the first only.
    assert_eq!(cb_indices, [vec![0], vec![1], vec![1]]);
    let lines = replay(&imported.trace);
    assert_eq!(
        fields(&lines),
        [
            "0x17f800",
            "0x100080",
            "0xfeffe000",
            "0x174000",
            "-",
            "-",
            "-",
            "-",
            "cbs:0x1b480,0x2b480,0x2b480",
            "-",
            "-",
        ]
    );

    // The other device, chosen by id.
    let other = import_file(
        "tests/data/ttnn/report_blackhole.json",
        &ImportOptions::new().device_id(1),
    );
    assert_eq!(
        (
            other.report.device_id,
            other.report.allocations,
            other.report.programs
        ),
        (Some(1), 1, 0)
    );
    // An explicit preset wins over the report's architecture.
    let wh = import_file(
        "tests/data/ttnn/report_blackhole.json",
        &ImportOptions::new().preset(Preset::WormholeN300),
    );
    assert_eq!(wh.trace.preset, Preset::WormholeN300);
}

#[test]
fn circular_buffers_clash_with_an_l1_buffer() {
    // A big L1 buffer reaches down into the CB region of the next op's program:
    // the replay reports TT-Metal's clash at the enqueue.
    let text = capture(&[
        json!(["capture_start", null]),
        json!(["function_start", {"name": "ttnn.matmul"}]),
        json!(["buffer", {"size": 64 * 1_380_352, "type": "L1"}]),
        json!([
            "buffer_allocate",
            alloc("L1", "INTERLEAVED", 64 * 1_380_352, 2048, 0),
            [2]
        ]),
        json!(["circular_buffer_deallocate_all", {"device_id": 0}]),
        json!(["circular_buffer_allocate", cb(65536, "{[0-0 - 7-7]}")]),
        json!(["circular_buffer_allocate", cb(8192, "{[0-0 - 3-3]}")]),
        json!(["function_end", {"name": "ttnn.matmul"}]),
        json!([
            "buffer_deallocate",
            alloc("L1", "INTERLEAVED", 64 * 1_380_352, 2048, 0),
            [2]
        ]),
        json!(["capture_end", null]),
    ]);
    let imported = import(&text, &ImportOptions::new()).unwrap();
    let lines = replay(&imported.trace);
    let f = fields(&lines);
    assert_eq!(f[4], "ERR:cb_clash", "{lines:#?}");
    assert!(
        lines[5].contains("# Statically allocated circular buffers in program"),
        "{}",
        lines[5]
    );
    assert_eq!(imported.report.live_at_end, []);
}

#[test]
fn programs_follow_circular_buffer_deallocate_all() {
    // Two programs in one op (no deallocate_all between their runs would
    // merge them; here one comes between); CBs after an enqueue open a new one.
    let text = capture(&[
        json!(["function_start", {"name": "ttnn.op"}]),
        json!(["circular_buffer_allocate", cb(4096, "{[0-0 - 1-1]}")]),
        json!(["circular_buffer_allocate", cb(4096, "{[0-0 - 1-1]}")]),
        small("buffer_allocate", "DRAM", 99),
        json!(["circular_buffer_allocate", cb(2048, "{[0-0 - 1-1]}")]),
        json!(["circular_buffer_deallocate_all", {"device_id": 0}]),
        json!(["circular_buffer_allocate", cb(1024, "{[2-2]}")]),
        json!(["function_end", {"name": "ttnn.op"}]),
    ]);
    let imported = import(&text, &ImportOptions::new()).unwrap();
    let ops: Vec<String> = imported
        .trace
        .ops
        .iter()
        .map(|(_, op)| match op {
            TraceOp::Program { id } => format!("program {id}"),
            TraceOp::Cb {
                program, indices, ..
            } => format!("cb {program} {indices:?}"),
            TraceOp::Enqueue { program, .. } => format!("enqueue {program}"),
            TraceOp::Destroy { program } => format!("destroy {program}"),
            TraceOp::Alloc { id, .. } => format!("alloc {id}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ops,
        [
            "program p1",
            "cb p1 [0]",
            "cb p1 [1]",
            "enqueue p1",
            "alloc b99",
            "program p4",
            "cb p4 [0]",
            "enqueue p4",
            "destroy p1",
            "destroy p4",
            "program p6",
            "cb p6 [0]",
            "enqueue p6",
            "destroy p6",
        ]
    );
    // The replay runs it without error; both programs start at the base.
    let lines = replay(&imported.trace);
    assert!(
        lines[4].starts_with("4 cbs:0x19d60,0x1ad60 "),
        "{}",
        lines[4]
    );
    assert!(lines[8].starts_with("8 cbs:0x19d60 "), "{}", lines[8]);
}

#[test]
fn params_as_text_numbers_and_booleans() {
    let text = capture(&[
        json!(["buffer_allocate", {"size": "8192", "type": "L1", "buffer_type": "BufferType::L1_SMALL",
                                   "layout": "HEIGHT_SHARDED", "page_size": "2048", "num_cores": "2"}, [5]]),
        json!(["buffer_allocate", {"size": 8192, "type": "DRAM", "buffer_type_value": "4",
                                   "layout": "INTERLEAVED", "page_size": 2048}, [6]]),
        json!(["buffer_allocate", {"size": 8192, "type": "DRAM", "layout": "SINGLE_BANK"}, [7]]),
        json!(["buffer_allocate", {"size": 4096, "type": "L1", "num_cores": 4, "page_size": 1024}, [8]]),
        json!(["circular_buffer_allocate", {"size": "2048", "core_range_set": "{[0-0 - 0-0]}", "globally_allocated": true, "address": 0}]),
        json!(["circular_buffer_allocate", {"size": 2048, "core_range_set": "{[0-0]}", "globally_allocated": false}]),
    ]);
    let imported = import(&text, &ImportOptions::new()).unwrap();
    let allocs: Vec<(BufferType, u64, Option<u32>)> = imported
        .trace
        .ops
        .iter()
        .filter_map(|(_, op)| match op {
            TraceOp::Alloc {
                buffer_type,
                page_size,
                shards,
                ..
            } => Some((*buffer_type, *page_size, *shards)),
            _ => None,
        })
        .collect();
    assert_eq!(
        allocs,
        [
            (BufferType::L1Small, 2048, Some(2)),
            (BufferType::Trace, 2048, None),
            // A single bank holds all of it: one page of the whole size.
            (BufferType::Dram, 8192, None),
            // No layout, but cores: sharded.
            (BufferType::L1, 1024, Some(4)),
        ]
    );
    assert_eq!(imported.report.single_bank, 1);
    assert_eq!(imported.report.backed_cbs_skipped, 1);
    assert_eq!(imported.report.circular_buffers, 1);
}

#[test]
fn missing_fields_name_the_node_and_the_field() {
    let options = ImportOptions::new();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([{"node_type": "capture_start", "params": {}}]),
            "ttnn capture: a node has no \"counter\": every node of a capture has its index there",
        ),
        (
            json!([{"counter": 0, "node_type": "capture_start"}, {"counter": "one", "node_type": "tensor"}]),
            "ttnn capture: a node after node 0 has counter \"one\": counters are whole numbers from 0",
        ),
        (
            json!([{"counter": 0, "params": {}}]),
            "ttnn capture: node 0: no \"node_type\": every node names its type",
        ),
        (
            json!([{"counter": 0, "node_type": "buffer_allocate", "params": {"type": "L1"}, "connections": [3]}]),
            "ttnn capture: node 0: buffer_allocate has no \"size\" in its params",
        ),
        (
            json!([{"counter": 0, "node_type": "buffer_allocate", "params": {"size": 64}, "connections": [3]}]),
            "ttnn capture: node 0: buffer_allocate has no \"type\" (nor buffer_type) in its params",
        ),
        (
            json!([{"counter": 0, "node_type": "buffer_allocate", "params": {"size": 64, "type": "L1"}}]),
            "ttnn capture: node 0: buffer_allocate has no connection to its buffer node",
        ),
        (
            json!([{"counter": 0, "node_type": "buffer_deallocate", "params": {"size": 64, "type": "L1"}, "connections": []}]),
            "ttnn capture: node 0: buffer_deallocate has no connection to its buffer node",
        ),
        (
            json!([{"counter": 0, "node_type": "buffer_allocate", "params": {"size": "64 B", "type": "L1"}, "connections": [1]}]),
            "ttnn capture: node 0: size is \"64 B\": expected a whole number",
        ),
        (
            json!([{"counter": 0, "node_type": "buffer_allocate", "params": {"size": -64, "type": "L1"}, "connections": [1]}]),
            "ttnn capture: node 0: size is -64: expected a whole number",
        ),
        (
            json!([{"counter": 0, "node_type": "buffer_allocate", "params": {"size": 64, "type": "SRAM"}, "connections": [1]}]),
            "ttnn capture: node 0: type is \"SRAM\": expected \"DRAM\" or \"L1\"",
        ),
        (
            json!([{"counter": 0, "node_type": "buffer_allocate", "params": {"size": 64, "buffer_type": 9}, "connections": [1]}]),
            "ttnn capture: node 0: buffer_type is 9: expected DRAM, L1, L1_SMALL, TRACE or SYSTEM_MEMORY (0 to 4)",
        ),
        (
            json!([{"counter": 0, "node_type": "buffer_allocate", "params": {"size": 64, "type": "L1", "layout": {"k": 1}}, "connections": [1]}]),
            "ttnn capture: node 0: layout is an object: expected INTERLEAVED",
        ),
        (
            json!([{"counter": 0, "node_type": "circular_buffer_allocate", "params": {"size": 64}}]),
            "ttnn capture: node 0: circular_buffer_allocate has no \"core_range_set\" in its params",
        ),
        (
            json!([{"counter": 0, "node_type": "circular_buffer_allocate", "params": {"core_range_set": "{[0-0]}"}}]),
            "ttnn capture: node 0: circular_buffer_allocate has no \"size\" in its params",
        ),
        (
            json!([{"counter": 0, "node_type": "circular_buffer_allocate", "params": {"size": 64, "core_range_set": "[0-0 - 7-7]"}}]),
            "ttnn capture: node 0: core_range_set \"[0-0 - 7-7]\": not enclosed in {}",
        ),
        (
            json!([{"counter": 0, "node_type": "circular_buffer_allocate", "params": {"size": 64, "core_range_set": "{[0-0]}", "globally_allocated": "maybe"}}]),
            "ttnn capture: node 0: globally_allocated is \"maybe\": expected 0, 1, true or false",
        ),
        (
            json!([{"counter": 0, "node_type": "circular_buffer_deallocate_all", "params": {"device_id": "first"}}]),
            "ttnn capture: node 0: device_id is \"first\": expected a whole number",
        ),
    ];
    for (nodes, expected) in cases {
        let e = import_err(&nodes.to_string(), &options);
        assert!(
            e.starts_with(expected),
            "\n{e}\nshould start with\n{expected}"
        );
    }
}

#[test]
fn out_of_order_and_unbalanced_nodes() {
    let options = ImportOptions::new();
    let e = import_err(
        &json!([{"counter": 0, "node_type": "capture_start"}, {"counter": 2, "node_type": "tensor"},
                {"counter": 1, "node_type": "tensor"}])
        .to_string(),
        &options,
    );
    assert!(
        e.starts_with(
            "ttnn capture: node 1: counter 1 follows counter 2: nodes must be in execution order"
        ),
        "{e}"
    );
    // Gaps (a filtered capture) are accepted.
    let gaps = json!([{"counter": 0, "node_type": "capture_start"}, {"counter": 5, "node_type": "capture_end"}]);
    assert_eq!(import(&gaps.to_string(), &options).unwrap().report.nodes, 2);

    let e = import_err(
        &capture(&[
            json!(["function_start", {"name": "ttnn.add"}]),
            json!(["function_end", {"name": "ttnn.relu"}]),
        ]),
        &options,
    );
    assert!(
        e.starts_with("ttnn capture: node 1: function_end of \"ttnn.relu\" while \"ttnn.add\" is the innermost open function"),
        "{e}"
    );
    let e = import_err(
        &capture(&[json!(["function_end", {"name": "ttnn.add"}])]),
        &options,
    );
    assert!(
        e.starts_with("ttnn capture: node 0: function_end closes no open function"),
        "{e}"
    );
    let e = import_err(
        &capture(&[
            small("buffer_allocate", "DRAM", 7),
            small("buffer_allocate", "DRAM", 7),
        ]),
        &options,
    );
    assert!(
        e.starts_with(
            "ttnn capture: node 1: buffer node 7 (b7) is allocated again while still live"
        ),
        "{e}"
    );
    // An op left open (the capture ended inside it) is fine.
    let open = capture(&[
        json!(["function_start", {"name": "ttnn.add"}]),
        small("buffer_allocate", "DRAM", 7),
    ]);
    assert_eq!(import(&open, &options).unwrap().report.live_at_end.len(), 1);
}

#[test]
fn deallocations_of_unknown_buffers() {
    let text = capture(&[
        small("buffer_deallocate", "L1", 3),
        small("buffer_allocate", "L1", 4),
        small("buffer_deallocate", "L1", 4),
        small("buffer_deallocate", "L1", 4),
    ]);
    let lenient = import(&text, &ImportOptions::new()).unwrap();
    assert_eq!((lenient.report.unknown_frees, lenient.report.frees), (2, 1));
    assert_eq!(lenient.trace.ops.len(), 2);
    let e = import_err(&text, &ImportOptions::new().strict(true));
    assert!(
        e.starts_with("ttnn capture: node 0: buffer_deallocate of buffer node 3, which the capture never allocated (or freed already): begin the capture before creating the tensors it frees"),
        "{e}"
    );
}

#[test]
fn malformed_json_gives_its_position() {
    let options = ImportOptions::new();
    let e = import_err(
        "[\n{\"counter\": 0, \"node_type\": \"capture_start\"},\n{\"counter\": 1 \"node_type\": \"x\"}\n]",
        &options,
    );
    assert!(
        e.starts_with("ttnn capture: not a graph capture at line 3 column 15 (after node 0): expected `,` or `}`"),
        "{e}"
    );
    let e = import_err(
        "[{\"counter\": 0, \"node_type\": \"capture_start\"},\n{\"counter\": 1, \"node",
        &options,
    );
    assert!(
        e.starts_with("ttnn capture: the JSON ends early at line 2 column 20 (after node 0): the file is cut short"),
        "{e}"
    );
    let e = import_err("42", &options);
    assert!(
        e.contains(
            "expected a JSON array of graph nodes (what ttnn.graph.end_graph_capture() returns)"
        ),
        "{e}"
    );
    let e = import_err("{\"version\": 1, \"devices\": []}", &options);
    assert!(
        e.starts_with("ttnn capture: the report object has no \"graph\" key"),
        "{e}"
    );
    let e = import_err("[] []", &options);
    assert!(e.contains("trailing characters"), "{e}");
    let e = import_err("[]", &ImportOptions::new().default_page_size(0));
    assert!(
        e.starts_with("ttnn capture: the default page size is 0"),
        "{e}"
    );
    // Empty captures import to an empty trace.
    assert!(import("[]", &options).unwrap().trace.ops.is_empty());
}

#[test]
fn file_errors_name_the_file() {
    let e = Trace::from_ttnn_capture_file(
        "tests/data/ttnn/no_such_capture.json",
        &ImportOptions::new(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("no_such_capture.json"));
    let dir = std::env::temp_dir().join(format!("memguard-ttnn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.json");
    std::fs::write(&path, "[{\"counter\": 0}]").unwrap();
    let e = Trace::from_ttnn_capture_file(&path, &ImportOptions::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "ttnn capture {}: node 0: no \"node_type\": every node names its type (\"buffer_allocate\", \"function_start\", ...)",
            path.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn error_report_display_and_unknown_types() {
    let mut nodes = vec![json!(["capture_start", null])];
    for i in 0..40 {
        nodes.push(json!([format!("future_node_{i}"), {}]));
    }
    nodes.push(json!(["future_node_0", {}]));
    let imported = import(&capture(&nodes), &ImportOptions::new()).unwrap();
    let skipped = &imported.report.skipped;
    assert_eq!(skipped.len(), 33);
    assert_eq!(skipped["future_node_0"], 2);
    assert_eq!(skipped["(other types)"], 8);
    let text = imported.report.to_string();
    assert!(
        text.starts_with("ttnn capture: 42 nodes\n  imported: 0 allocations"),
        "{text}"
    );
    assert!(text.contains("2 \"future_node_0\" nodes"), "{text}");
}

/// Writes a capture of about `target` bytes: ops with long stack traces and
/// arguments (as real captures have), each allocating an output, running a
/// program of two CBs and freeing the previous op's output.
fn write_large_capture(path: &std::path::Path, target: u64) -> u64 {
    let file = std::fs::File::create(path).unwrap();
    let mut out = std::io::BufWriter::new(file);
    let frame = "\"libttnn.so(ttnn::operations::binary::BinaryOperation::invoke(ttnn::Tensor const&, ttnn::Tensor const&)+0x1234) [0x7f0000001234]\"";
    let frames = vec![frame; 60].join(", ");
    let argument = format!(
        "\"{}\"",
        "MemoryConfig(memory_layout=TensorMemoryLayout::INTERLEAVED,buffer_type=BufferType::DRAM) "
            .repeat(20)
    );
    struct Nodes {
        counter: u64,
        written: u64,
    }
    impl Nodes {
        fn node(&mut self, out: &mut std::io::BufWriter<std::fs::File>, text: String) {
            let sep = if self.counter == 0 { "[\n" } else { ",\n" };
            write!(out, "{sep}{{\"counter\": {}, {text}}}", self.counter).unwrap();
            self.counter += 1;
            self.written += text.len() as u64 + 20;
        }
    }
    let mut nodes = Nodes {
        counter: 0,
        written: 0,
    };
    let mut previous: Option<u64> = None;
    let mut ops = 0u64;
    while nodes.written < target {
        let start = nodes.counter;
        nodes.node(&mut out, format!("\"node_type\": \"function_start\", \"params\": {{\"name\": \"ttnn.add\", \"inputs\": \"2\"}}, \"arguments\": [{argument}, {argument}], \"stack_trace\": [{frames}], \"connections\": [{}]", start + 1));
        let buffer = nodes.counter;
        nodes.node(&mut out, "\"node_type\": \"buffer\", \"params\": {\"size\": 65536, \"type\": \"DRAM\", \"layout\": \"INTERLEAVED\", \"device_id\": 0}, \"connections\": []".to_string());
        nodes.node(&mut out, format!("\"node_type\": \"buffer_allocate\", \"params\": {{\"size\": 65536, \"address\": 0, \"type\": \"DRAM\", \"buffer_type\": 0, \"layout\": \"INTERLEAVED\", \"page_size\": 2048, \"num_cores\": 0, \"device_id\": 0}}, \"connections\": [{buffer}]"));
        nodes.node(&mut out, format!("\"node_type\": \"tensor\", \"params\": {{\"shape\": \"Shape([1, 1, 128, 256])\", \"memory_config\": {argument}}}, \"connections\": []"));
        nodes.node(&mut out, "\"node_type\": \"circular_buffer_deallocate_all\", \"params\": {\"device_id\": 0}, \"connections\": []".to_string());
        for _ in 0..2 {
            nodes.node(&mut out, "\"node_type\": \"circular_buffer_allocate\", \"params\": {\"size\": 4096, \"address\": 0, \"core_range_set\": \"{[0-0 - 7-7]}\", \"globally_allocated\": \"0\", \"device_id\": 0}, \"connections\": []".to_string());
        }
        if let Some(p) = previous {
            nodes.node(&mut out, format!("\"node_type\": \"buffer_deallocate\", \"params\": {{\"size\": 65536, \"type\": \"DRAM\", \"layout\": \"INTERLEAVED\", \"device_id\": 0}}, \"connections\": [{p}]"));
        }
        nodes.node(&mut out, "\"node_type\": \"function_end\", \"params\": {\"name\": \"ttnn.add\"}, \"duration_ns\": 1000, \"connections\": []".to_string());
        previous = Some(buffer);
        ops += 1;
    }
    writeln!(out, "\n]").unwrap();
    out.flush().unwrap();
    ops
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The child of `large_capture_streams_in_bounded_memory`: imports the file
/// named by the variable and prints its peak resident memory before and after.
const CHILD_VAR: &str = "TT_MEMGUARD_TTNN_CAPTURE_CHILD";

#[test]
fn large_capture_streams_in_bounded_memory() {
    if let Ok(path) = std::env::var(CHILD_VAR) {
        let before = peak_rss_kib();
        let imported = Trace::from_ttnn_capture_file(&path, &ImportOptions::new()).unwrap();
        let after = peak_rss_kib();
        println!(
            "CHILD before={before} after={after} allocations={} programs={} ops={}",
            imported.report.allocations,
            imported.report.programs,
            imported.trace.ops.len()
        );
        return;
    }
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("no /proc/self/status: peak memory cannot be read here");
        return;
    }
    let dir = std::env::temp_dir().join(format!("memguard-ttnn-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("large.json");
    let ops = write_large_capture(&path, 100 * 1024 * 1024);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size >= 100 * 1024 * 1024, "{size}");
    // A fresh process, so that the peak is the import's alone.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "large_capture_streams_in_bounded_memory",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, &path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("CHILD ").map(|(_, figures)| figures))
        .unwrap_or_else(|| panic!("no figures from the child: {stdout}"));
    let value = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(value("allocations="), ops);
    assert_eq!(value("programs="), ops);
    let grown_mib = (value("after=") - value("before=")) / 1024;
    eprintln!(
        "a {} MiB capture ({ops} ops, {} trace operations) raised the peak resident memory by {grown_mib} MiB",
        size / (1024 * 1024),
        value("ops=")
    );
    // Holding the capture's text alone would take 100 MiB, its JSON tree
    // several times that; the trace it yields takes a few MiB.
    assert!(grown_mib < 32, "{grown_mib} MiB for a {size} B capture");
}

#[test]
fn imported_capture_under_a_guard_checks_budgets() {
    // The real capture's L1 peak is 12 KiB per bank (six 2 KiB pages) plus
    // CBs of 12 KiB per core: a guard over the replay sees both.
    let options = ImportOptions::new().l1_small_size(32768);
    let imported = import_file("tests/data/ttnn/mock_wormhole_no_dispatch.json", &options);
    let dev = imported.trace.open_sim().unwrap();
    let guard = tt_memguard::MemoryGuard::new(&dev).budget(
        tt_memguard::Budget::new()
            .l1_peak_per_bank("8 KiB")
            .l1_peak_per_core("64 KiB"),
    );
    imported.trace.replay(&dev, |_| {}).unwrap();
    let error = guard.finish().unwrap_err();
    let report = error.memory_report().expect("a failed memory check");
    let text = report.to_string();
    // The budget line, and the ops that made the peak, by name.
    assert!(
        text.contains("peak 12.0 KiB of 8.0 KiB per bank (150%) [code] FAIL"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("ttnn.add/BinaryNgDeviceOperation"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("at 0x163800"), "{text}");
    let fits = tt_memguard::MemoryGuard::new(&dev).budget(
        tt_memguard::Budget::new()
            .l1_peak_per_bank("12 KiB")
            .l1_peak_per_core("64 KiB"),
    );
    imported.trace.replay(&dev, |_| {}).unwrap();
    fits.finish().unwrap();
}

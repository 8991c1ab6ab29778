//! The trace replayer: the worked example line for line, circular buffers on
//! two geometries, and bad traces.

mod common;

use common::assert_syntax_errors;
use tt_memguard::{Error, Preset, Trace, TraceOp};

fn replay(text: &str) -> Vec<String> {
    let trace = Trace::parse(text).unwrap();
    let dev = trace.open_sim().unwrap();
    let mut lines = Vec::new();
    trace.replay(&dev, |l| lines.push(l.to_string())).unwrap();
    lines
}

#[test]
fn worked_example_line_for_line() {
    let text = std::fs::read_to_string("tests/data/worked_example.trace").unwrap();
    let fresh_rest = "L1_SMALL:0/0/0 TRACE:0/0/0";
    let expected = [
        format!("0 - DRAM:0/1072693184/1072693184 L1:0/1393312/1393312 {fresh_rest}"),
        format!("1 0x100040 DRAM:88064/1072605120/1072605120 L1:0/1393312/1393312 {fresh_rest}"),
        format!("2 0x115840 DRAM:350208/1072342976/1072342976 L1:0/1393312/1393312 {fresh_rest}"),
        format!("3 0x155840 DRAM:1050624/1071642560/1071642560 L1:0/1393312/1393312 {fresh_rest}"),
        format!(
            "4 0x16d800 DRAM:1050624/1071642560/1071642560 L1:2048/1391264/1391264 {fresh_rest}"
        ),
        format!(
            "5 0x16c800 DRAM:1050624/1071642560/1071642560 L1:6144/1387168/1387168 {fresh_rest}"
        ),
        // Freeing the first DRAM buffer leaves an 88,064 B hole below.
        format!("6 - DRAM:962560/1071730624/1071642560 L1:6144/1387168/1387168 {fresh_rest}"),
        format!("7 - DRAM:700416/1071992768/1071642560 L1:6144/1387168/1387168 {fresh_rest}"),
        format!("8 - DRAM:0/1072693184/1072693184 L1:6144/1387168/1387168 {fresh_rest}"),
        format!("9 - DRAM:0/1072693184/1072693184 L1:4096/1389216/1387168 {fresh_rest}"),
        format!("10 - DRAM:0/1072693184/1072693184 L1:0/1393312/1393312 {fresh_rest}"),
    ];
    assert_eq!(replay(&text), expected);
}

#[test]
fn errors_are_classified() {
    let lines = replay(
        "device bh\nl1_small 4096\ntrace 100000\n\
         alloc a L1_SMALL 4096 1024 def\n\
         alloc b L1 999999999 1 def\n\
         alloc c L1 3000 2048 def\n\
         alloc d L1_SMALL 4096 1024 td shards 4\n\
         alloc e TRACE 8192 1024 bu\n\
         free nope\nfree d\nfree d\n",
    );
    let fields: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(
        fields,
        [
            "-",
            "ERR:l1small_interleaved",
            "ERR:oom",
            "ERR:other",
            "0x17fc00",
            "0xfeffc000",
            "-",
            "-",
            "-"
        ]
    );
    // Blackhole L1_SMALL: 4096 rounded to 64 B stays 4096, at the top of L1.
    assert!(lines[4].contains("L1_SMALL:1024/3072/3072"), "{}", lines[4]);
    assert!(lines[5].contains("TRACE:1024/15360/15360"), "{}", lines[5]);
}

#[test]
fn malformed_lines_name_the_line_and_the_text() {
    let cases = [
        (
            "device gs\n",
            1,
            "unknown device \"gs\": expected wh, n300 or bh",
        ),
        (
            "\n# c\nalloc a DRAM 10x 2048 def\n",
            3,
            "size \"10x\" is not a number of bytes (decimal or 0x hex)",
        ),
        (
            "alloc a DRAM 2048 2048 up\n",
            1,
            "unknown direction \"up\": expected bu, td or def",
        ),
        (
            "alloc a L2 2048 2048 def\n",
            1,
            "unknown buffer type \"L2\": expected DRAM, L1, L1_SMALL or TRACE",
        ),
        (
            "alloc a L1 2048 2048 def shard 2\n",
            1,
            "unexpected \"shard\" after the direction: expected \"shards S\" first, then label=NAME, fixed=ADDR or expect=ADDR|oom",
        ),
        (
            "alloc a L1 2048 2048 def label=\n",
            1,
            "empty label: write label=NAME (no spaces) or leave it out",
        ),
        (
            "alloc a DRAM 2048 2048 def\ndevice bh\n",
            2,
            "\"device\" must come before the first operation (alloc, free, program, cb, enqueue, destroy)",
        ),
        (
            "malloc 5\n",
            1,
            "expected one of: device wh|n300|bh, l1_small N, trace N, alloc ID POOL SIZE PAGE DIR [shards S] [label=NAME] [fixed=ADDR] [expect=ADDR|oom], free ID, program P, cb P CORES SIZE index=I[,J...] page=N [backed=ID[+OFFSET]], enqueue P [expect=ADDR,...|-|clash|beyond_l1], destroy P",
        ),
    ];
    assert_syntax_errors(&cases);
}

#[test]
fn a_reused_live_id_stops_the_replay() {
    let trace = Trace::parse("alloc a DRAM 2048 2048 def\nalloc a DRAM 2048 2048 def\n").unwrap();
    let dev = trace.open_sim().unwrap();
    let e = trace.replay(&dev, |_| {}).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 2: buffer \"a\" is already live: free it first or use another id: \"alloc a\""
    );
}

#[test]
fn missing_file_names_the_path() {
    let e = Trace::from_file("tests/data/no_such.trace").unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(
        e.to_string()
            .starts_with("cannot access tests/data/no_such.trace: "),
        "{e}"
    );
}

#[test]
fn replay_example_prints_the_worked_example() {
    let stdout = common::example_stdout("replay", ["tests/data/worked_example.trace"]);
    assert_eq!(stdout.lines().count(), 11);
    assert!(
        stdout
            .lines()
            .nth(3)
            .unwrap()
            .starts_with("3 0x155840 DRAM:1050624/")
    );
}

#[test]
fn refused_requests_say_why() {
    let lines = replay(
        "alloc a DRAM 3000 2048 def\n\
         alloc b L1 4096 1024 def shards 65\n\
         alloc c DRAM 18446744073709551615 18446744073709551615 def\n\
         alloc d DRAM 2048 2048 def\n",
    );
    assert!(
        lines[1].starts_with("1 ERR:other DRAM:0/1072693184/1072693184 ")
            && lines[1].ends_with(
                "TRACE:0/0/0 # size 3000 B is not a multiple of the page size 2048 B: round the size up to 4096 B or choose a page size that divides it"
            ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(
            " # 65 shards requested but the compute grid has 64 cores: use at most 64 shards"
        ),
        "{}",
        lines[2]
    );
    // TT-Metal itself would place this one as a 32 B buffer.
    assert!(lines[3].starts_with("3 ERR:oom DRAM:0/"), "{}", lines[3]);
    assert!(!lines[3].contains('#'), "{}", lines[3]);
    assert!(lines[4].starts_with("4 0x100040 "), "{}", lines[4]);
}

#[test]
fn dram_sharded_lines_replay() {
    // Shards are DRAM banks: 100 pages over 3 of the 12 banks take 34 pages
    // of 2 KiB in every bank; 13 shards are more than the banks.
    let lines = replay(
        "alloc w DRAM 204800 2048 def shards 3\n\
         alloc x DRAM 13312 1024 td shards 13\n\
         alloc y DRAM 13312 1024 td shards 12\n",
    );
    assert!(
        lines[1].starts_with("1 0x100040 DRAM:69632/"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("2 ERR:other ")
            && lines[2].ends_with(
                " # 13 DRAM shards requested but the device has 12 DRAM banks: a DRAM-sharded buffer takes one shard per DRAM bank, from 1 to 12"
            ),
        "{}",
        lines[2]
    );
    // 13 pages over 12 banks: 2 pages of 1 KiB at the top of DRAM.
    assert!(
        lines[3].starts_with("3 0x3ffff800 DRAM:71680/"),
        "{}",
        lines[3]
    );
}

#[test]
fn numbers_past_64_bits_are_too_large_not_malformed() {
    let cases = [
        (
            "alloc a DRAM 99999999999999999999999 2048 def\n",
            "size \"99999999999999999999999\" is too large: at most 18446744073709551615 (2^64 - 1)",
        ),
        (
            "alloc a DRAM 2048 0x10000000000000000 def\n",
            "page size \"0x10000000000000000\" is too large: at most 18446744073709551615 (2^64 - 1)",
        ),
        (
            "l1_small 18446744073709551616\n",
            "l1_small size \"18446744073709551616\" is too large: at most 18446744073709551615 (2^64 - 1)",
        ),
        (
            "alloc a L1 2048 2048 def shards 4294967296\n",
            "shard count \"4294967296\" is too large: at most 4294967295",
        ),
        (
            "alloc a L1 2048 2048 def shards four\n",
            "shard count \"four\" is not a whole number",
        ),
    ];
    let cases = cases.map(|(text, reason)| (text, 1, reason));
    assert_syntax_errors(&cases);
}

#[test]
fn a_trace_that_is_not_utf8_names_the_line_and_column() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("not_utf8.trace");
    std::fs::write(
        &path,
        b"device wh\r\nalloc a DRAM 2048 2048 def\r\nfree \xff\xfeb\r\nfree a\r\n",
    )
    .unwrap();
    let e = Trace::from_file(&path).unwrap_err();
    let Error::TraceSyntax {
        line, text, reason, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (*line, text.as_str(), reason.as_str()),
        (
            3,
            "free \u{fffd}\u{fffd}b",
            "byte 0xff at column 6 is not UTF-8: save the trace as UTF-8 text"
        )
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 3: byte 0xff at column 6 is not UTF-8: save the trace as UTF-8 text: \"free \u{fffd}\u{fffd}b\"",
            path.display()
        )
    );
}

#[test]
fn replay_example_prints_the_reason_of_a_refused_request() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("refused.trace");
    std::fs::write(&path, "alloc a DRAM 0 2048 def\n").unwrap();
    let stdout = common::example_stdout("replay", [&path]);
    assert!(
        stdout.lines().nth(1).unwrap().ends_with(
            " # cannot allocate a DRAM buffer of size 0: give a size of at least one page"
        ),
        "{stdout}"
    );
}

/// The pools part of a line: everything from the third field up to the
/// first field that is not a pool.
fn pools(line: &str) -> Vec<&str> {
    line.split(' ')
        .skip(2)
        .take_while(|w| w.contains(':') && w.contains('/'))
        .collect()
}

fn replay_on(path: &str, preset: Option<Preset>) -> Vec<String> {
    let mut trace = Trace::from_file(path).unwrap();
    if let Some(preset) = preset {
        trace.preset = preset;
    }
    let dev = trace.open_sim().unwrap();
    let mut lines = Vec::new();
    trace.replay(&dev, |l| lines.push(l.to_string())).unwrap();
    lines
}

#[test]
fn circular_buffers_replay_at_each_geometrys_addresses() {
    let path = "tests/data/circular_buffers.trace";
    let wh = replay_on(path, None);
    let bh = replay_on(path, Some(Preset::BlackholeP150));
    assert_eq!((wh.len(), bh.len()), (24, 24));
    // program, cb and destroy lines reserve nothing.
    for step in [1, 2, 6, 8, 10, 13, 16, 17, 20] {
        assert_eq!(wh[step].split(' ').nth(1), Some("-"), "{}", wh[step]);
        assert_eq!(pools(&wh[step]), pools(&wh[step - 1]), "{}", wh[step]);
    }
    let tail = |line: &str| line.rsplit_once(" TRACE:0/0/0").unwrap().1.to_string();
    // The allocator notes' example: CB starts aligned to 32 B from 0x19D60
    // on Wormhole, to 64 B from 0x1B480 on Blackhole; headroom up to the end
    // of L1 (1,499,136 B and 1,572,864 B) without an L1 buffer.
    let enqueue = |l: &str| l.split(' ').nth(1).unwrap().to_string();
    assert_eq!(
        enqueue(&wh[7]),
        "cbs:0x19d60,0x1ad60,0x1b160,0x1b160,0x1b160"
    );
    assert_eq!(
        tail(&wh[7]),
        format!(" cb_end=0x1b960 headroom={}", 1_499_136 - 0x1b960)
    );
    assert_eq!(
        enqueue(&bh[7]),
        "cbs:0x1b480,0x1c480,0x1c880,0x1c880,0x1c880"
    );
    assert_eq!(
        tail(&bh[7]),
        format!(" cb_end=0x1d080 headroom={}", 1_572_864 - 0x1d080)
    );
    // The matmul-shaped program fits under the L1 output on both, with the
    // headroom up to the output's address; a second enqueue keeps the layout.
    assert!(wh[9].starts_with("9 0xbf000 "), "{}", wh[9]);
    assert_eq!(enqueue(&wh[14]), "cbs:0x19d60,0x59d60,0x99d60");
    assert_eq!(
        tail(&wh[14]),
        format!(" cb_end=0xb9d60 headroom={}", 0xbf000 - 0xb9d60)
    );
    assert_eq!(
        wh[15].split_once(' ').unwrap().1,
        wh[14].split_once(' ').unwrap().1
    );
    assert_eq!(enqueue(&bh[14]), "cbs:0x1b480,0x5b480,0x9b480");
    // The bigger program clashes with the output on Wormhole only (Blackhole
    // spreads the output over more banks), and fits once it is freed.
    assert_eq!(
        tail(&wh[21]),
        " # Statically allocated circular buffers in program 2 clash with L1 buffers on core range [0-0 - 3-3]. L1 buffer allocated at 782336 and static circular buffer region ends at 892256"
    );
    assert!(wh[21].starts_with("21 ERR:cb_clash DRAM:"), "{}", wh[21]);
    assert_eq!(pools(&wh[21]), pools(&wh[20]));
    assert!(bh[21].starts_with("21 cbs:0x1b480,"), "{}", bh[21]);
    assert_eq!(
        tail(&wh[23]),
        format!(" cb_end=0xd9d60 headroom={}", 1_499_136 - 0xd9d60)
    );
}

#[test]
fn refused_circular_buffers_and_enqueues_say_why() {
    let lines = replay(
        "alloc s L1 131072 2048 def shards 64
         program p
         cb p 0,0-8,7 1024 index=0 page=1024
         cb p 0,0-7,7 1024 index=32 page=1024
         cb p 0,0-7,7 3000 index=0 page=2048
         cb p 0,0-7,7 1024 index=0 page=1024 backed=s+520
         cb p 0,0-7,7 1024 index=1 page=1024 backed=s
         cb p 0,0-7,7 1024 index=2 page=512
         enqueue p
         cb p 0,0 1024 index=3 page=1024
         free s
         enqueue p
         program q
         cb q 0,0-1,1 1048576 index=0,1 page=2048
         cb q 0,0-1,1 1048576 index=2 page=2048
         enqueue q
         program e
         enqueue e
",
    );
    let field = |step: usize| lines[step].split(' ').nth(1).unwrap();
    let reason = |step: usize| lines[step].split_once(" # ").map(|(_, r)| r).unwrap_or("");
    assert_eq!(
        reason(3),
        "core range [0-0 - 8-7] lies outside the 8x8 compute grid of sim:wormhole_b0: use cores from [0-0 - 7-7]"
    );
    assert!(
        reason(4)
            .starts_with("Buffer index (32) exceeds max number of circular buffers per core (32)"),
        "{}",
        lines[4]
    );
    assert!(
        reason(5).starts_with("Failed allocation attempt on buffer index 0."),
        "{}",
        lines[5]
    );
    assert!(
        reason(6).contains("not a multiple of the L1 alignment"),
        "{}",
        lines[6]
    );
    for line in &lines[3..=6] {
        assert_eq!(line.split(' ').nth(1), Some("ERR:other"), "{line}");
    }
    // The backed CB takes the shard's address; the other one starts the region.
    let shard = u64::from_str_radix(field(1).trim_start_matches("0x"), 16).unwrap();
    assert_eq!(field(9), format!("cbs:{shard:#x},0x19d60"));
    assert!(
        lines[9].ends_with(&format!(" cb_end=0x1a160 headroom={}", shard - 0x1a160)),
        "{}",
        lines[9]
    );
    assert!(
        reason(10).starts_with("Cannot add circular buffer to an already compiled program 0"),
        "{}",
        lines[10]
    );
    assert_eq!(field(12), "ERR:other");
    assert!(reason(12).contains("freed"), "{}", lines[12]);
    assert_eq!(field(16), "ERR:cb_beyond_l1");
    assert_eq!(
        reason(16),
        format!(
            "Statically allocated circular buffers on core range [0-0 - 1-1] grow to {} B which is beyond max L1 size of 1499136 B",
            0x19d60 + 2 * 1_048_576
        )
    );
    // A program without circular buffers takes nothing.
    assert!(lines[18].starts_with("18 cbs:- "), "{}", lines[18]);
    assert!(
        lines[18].ends_with(&format!(" cb_end=0x19d60 headroom={}", 1_499_136 - 0x19d60)),
        "{}",
        lines[18]
    );
}

#[test]
fn malformed_program_lines_name_the_line_and_the_text() {
    let cases = [
        (
            "cb p 0,0 1024 index=0 page=1024\n",
            1,
            "no program \"p\" exists here: create it with \"program p\" first",
        ),
        (
            "enqueue p\n",
            1,
            "no program \"p\" exists here: create it with \"program p\" first",
        ),
        (
            "program p\ndestroy p\nenqueue p\n",
            3,
            "no program \"p\" exists here: create it with \"program p\" first",
        ),
        (
            "program p\ndestroy p\ndestroy p\n",
            3,
            "no program \"p\" exists here: create it with \"program p\" first",
        ),
        (
            "program p\n\nprogram p\n",
            3,
            "program \"p\" already exists: destroy it first or use another id",
        ),
        (
            "program p\ncb p 0,0-7 1024 index=0 page=1024\n",
            2,
            "cores \"0,0-7\" are not X,Y or X0,Y0-X1,Y1 joined by +: e.g. 0,0-7,7 or 0,0-3,3+4,4-7,7",
        ),
        (
            "program p\ncb p 0,0+x 1024 index=0 page=1024\n",
            2,
            "cores \"0,0+x\" are not X,Y or X0,Y0-X1,Y1 joined by +: e.g. 0,0-7,7 or 0,0-3,3+4,4-7,7",
        ),
        (
            "program p\ncb p 4,0-3,0 1024 index=0 page=1024\n",
            2,
            "invalid core range from (x=4,y=0) to (x=3,y=0): the end must not lie left of or above the start",
        ),
        (
            "program p\ncb p 0,0-3,3+3,3-4,4 1024 index=0 page=1024\n",
            2,
            "core ranges [0-0 - 3-3] and [3-3 - 4-4] overlap: a core range set holds every core once (TT-Metal refuses overlapping ranges too)",
        ),
        (
            "program p\ncb p 0,0 1k index=0 page=1024\n",
            2,
            "size \"1k\" is not a number of bytes (decimal or 0x hex)",
        ),
        (
            "program p\ncb p 0,0 1024 index=0\n",
            2,
            "a cb line needs index=I[,J...] and page=N after the size",
        ),
        (
            "program p\ncb p 0,0 1024 page=1024\n",
            2,
            "a cb line needs index=I[,J...] and page=N after the size",
        ),
        (
            "program p\ncb p 0,0 1024 index=0 page=1024 pages=2\n",
            2,
            "unexpected \"pages=2\" after the size: expected index=I[,J...] page=N [backed=ID[+OFFSET]]",
        ),
        (
            "program p\ncb p 0,0 1024 index=0 page=1024 page=512\n",
            2,
            "page= is given twice: give it once",
        ),
        (
            "program p\ncb p 0,0 1024 index=0,256 page=1024\n",
            2,
            "buffer index \"256\" is not a whole number from 0 to 255",
        ),
        (
            "program p\ncb p 0,0 1024 index=0 page=0x\n",
            2,
            "page size \"0x\" is not a number of bytes (decimal or 0x hex)",
        ),
        (
            "program p\ncb p 0,0 1024 index=0 page=1024 backed=+64\n",
            2,
            "backed=+64 names no buffer: give backed=ID or backed=ID+OFFSET",
        ),
        (
            "program p\ncb p 0,0 1024 index=0 page=1024 backed=w+x\n",
            2,
            "backing offset \"x\" is not a number of bytes (decimal or 0x hex)",
        ),
        (
            "program p\nl1_small 4096\n",
            2,
            "\"l1_small\" must come before the first operation (alloc, free, program, cb, enqueue, destroy)",
        ),
    ];
    assert_syntax_errors(&cases);
    // A program can be created again once destroyed.
    Trace::parse("program p\ndestroy p\nprogram p\nenqueue p\n").unwrap();
}

#[test]
fn a_backing_buffer_that_is_not_live_stops_the_replay() {
    // The allocation is refused, so "w" never becomes live.
    let trace = Trace::parse(
        "alloc w L1 999999999999 2048 def\nprogram p\ncb p 0,0 1024 index=0 page=1024 backed=w+0\n",
    )
    .unwrap();
    let dev = trace.open_sim().unwrap();
    let mut lines = Vec::new();
    let e = trace
        .replay(&dev, |l| lines.push(l.to_string()))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 3: buffer \"w\" is not live here: allocate it (with an alloc line that succeeds) before the cb line: \"cb p ... backed=w\""
    );
    assert_eq!(lines.len(), 3);
    // A trace built by hand may name a program no line created.
    let trace = Trace {
        ops: vec![(
            7,
            TraceOp::Enqueue {
                program: "p".to_string(),
                expect: None,
            },
        )],
        ..Trace::parse("").unwrap()
    };
    let e = trace.replay(&dev, |_| {}).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 7: no program \"p\" exists here: create it with \"program p\" first: \"enqueue p\""
    );
}

#[test]
fn replay_example_replays_circular_buffers_on_another_preset() {
    let stdout = common::example_stdout(
        "replay",
        ["--preset", "bh", "tests/data/circular_buffers.trace"],
    );
    let expected = replay_on(
        "tests/data/circular_buffers.trace",
        Some(Preset::BlackholeP150),
    );
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);
    assert!(stdout.contains("7 cbs:0x1b480,0x1c480,"), "{stdout}");
}

//! The trace replayer: the worked example line for line, and bad traces.

use tt_memguard::{Error, Trace};

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
            "unexpected words after the direction: expected nothing or \"shards S\"",
        ),
        (
            "alloc a DRAM 2048 2048 def\ndevice bh\n",
            2,
            "\"device\" must come before the first alloc or free",
        ),
        (
            "malloc 5\n",
            1,
            "expected one of: device wh|n300|bh, l1_small N, trace N, alloc ID POOL SIZE PAGE DIR [shards S], free ID",
        ),
    ];
    for (text, line, reason) in cases {
        let e = Trace::parse(text).unwrap_err();
        let Error::TraceSyntax {
            line: l,
            reason: r,
            text: t,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!((*l, r.as_str()), (line, reason), "{text:?}");
        assert_eq!(t, text.lines().nth(line - 1).unwrap());
        assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
    }
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
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "run",
            "-q",
            "--example",
            "replay",
            "--",
            "tests/data/worked_example.trace",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
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
    for (text, reason) in cases {
        let e = Trace::parse(text).unwrap_err();
        let Error::TraceSyntax {
            line, reason: r, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!((*line, r.as_str()), (1, reason), "{text:?}");
    }
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
    let out = std::process::Command::new(env!("CARGO"))
        .args(["run", "-q", "--example", "replay", "--"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.lines().nth(1).unwrap().ends_with(
            " # cannot allocate a DRAM buffer of size 0: give a size of at least one page"
        ),
        "{stdout}"
    );
}

//! Trace files run as memory-checked tests by the memguard runner
//! (`harness = false`): every `*.trace` file and ttnn graph capture
//! (`*.json`) of `tests/traces` is the test `traces::<file name>`, with the
//! budgets of `tests/traces/memguard.toml`. Runs under `cargo test` and
//! `cargo nextest run`; the failing cases are in `examples/traces`, checked
//! by `tests/trace_tests.rs`.

tt_memguard::main! {
    harness = tt_memguard::runner::Harness::new().config_file("tests/traces/memguard.toml");
    traces = "tests/traces"
}

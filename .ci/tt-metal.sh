#!/usr/bin/env bash
# CI for the `tt-metal` feature: builds the TT-Metal backend against the real libtt_metal.so of
# the PyPI wheel ttnn==0.81.1 (its shared libraries and runtime files only; no Python runs) and
# runs the tt-metal tests in TT-Metal's mock device mode, once per mock device kind (n150, p150,
# n300, and a T3000 of eight chips, whose whole 2x4 mesh the differential test opens).
#
#   bash .ci/tt-metal.sh              # everything
#   TT_MEMGUARD_CI_CACHE=DIR ...      # where the wheel, runtime root and scratch go
#                                     # (default: .tt-metal-ci/ in the checkout, git-ignored)
#
# A failed download fails the script: the tests are never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)

WHEEL_VERSION=0.81.1
WHEEL=ttnn-${WHEEL_VERSION}-cp312-cp312-manylinux_2_34_x86_64.whl
WHEEL_SHA256=cc6df66162c8b5f5a5eb7347fe687b6095bf57bd64f9ba1be3d9b7f42e01d64f
CACHE=${TT_MEMGUARD_CI_CACHE:-$SRC/.tt-metal-ci}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
DATA="$SRC/tests/data/tt-metal"

echo "== tt-metal: fetch ttnn==$WHEEL_VERSION from PyPI"
if [ ! -f "$CACHE/wheel/$WHEEL" ]; then
    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_34_x86_64 "ttnn==$WHEEL_VERSION" -d "$CACHE/wheel" \
        || { echo "error: downloading ttnn==$WHEEL_VERSION failed: the tt-metal tests cannot run" >&2; exit 1; }
fi
echo "$WHEEL_SHA256  $CACHE/wheel/$WHEEL" | sha256sum -c - \
    || { echo "error: $WHEEL does not have the pinned sha256" >&2; exit 1; }

echo "== tt-metal: unpack the libraries and runtime files"
UNPACKED="$CACHE/unpacked"
if [ ! -f "$UNPACKED/.complete" ]; then
    rm -rf "$UNPACKED"
    mkdir -p "$UNPACKED"
    # Only what the library and mock mode need: no Python module, no _ttnncpp.so.
    unzip -q "$CACHE/wheel/$WHEEL" -d "$UNPACKED" \
        'ttnn/build/lib/libtt_metal.so' 'ttnn/build/lib/libtt-umd.so*' 'ttnn/build/lib/libtt_stl.so' \
        'ttnn/build/lib/libtracy.so*' 'ttnn.libs/*' \
        'ttnn/tt_metal/soc_descriptors/*' 'ttnn/tt_metal/core_descriptors/*' 'ttnn/tt_metal/pre-compiled/*'
    touch "$UNPACKED/.complete"
fi
LIB="$UNPACKED/ttnn/build/lib"

echo "== tt-metal: runtime root (our cluster descriptors and compiler stand-in)"
ROOT="$CACHE/root"
rm -rf "$ROOT"
mkdir -p "$ROOT/tt_metal" "$ROOT/runtime/sfpi/compiler/bin"
for dir in soc_descriptors core_descriptors pre-compiled; do
    ln -s "$UNPACKED/ttnn/tt_metal/$dir" "$ROOT/tt_metal/$dir"
done
# Where TT-Metal's configure_mock_mode (tt_memguard::MockCluster) looks for descriptors.
EXAMPLES="$ROOT/tt_metal/third_party/umd/tests/cluster_descriptor_examples"
mkdir -p "$EXAMPLES"
cp "$DATA/wormhole_n150.yaml" "$EXAMPLES/wormhole_N150.yaml"
cp "$DATA/wormhole_n300.yaml" "$EXAMPLES/wormhole_N300.yaml"
cp "$DATA/wormhole_t3000.yaml" "$EXAMPLES/t3k_cluster_desc.yaml"   # 8 chips: MockCluster::WormholeT3000
cp "$DATA/blackhole_p150.yaml" "$EXAMPLES/blackhole_P150.yaml"   # the 110-bank p150, as the sim preset
# Even in mock mode TT-Metal checks that the RISC-V compiler exists and hashes the first line of
# its `--version` output into the firmware key; only the real line selects the wheel's
# pre-compiled firmware (anything else makes it try, and fail, to compile firmware). The line is
# recovered from the .comment section of a pre-compiled firmware ELF.
ELF=$(find "$UNPACKED/ttnn/tt_metal/pre-compiled" -name brisc.elf -print -quit)
GCC_ID=$(readelf -p .comment "$ELF" | sed -n 's/.*GCC: \(([^)]*) [0-9.]*\).*/\1/p' | awk 'NR == 1')
[ -n "$GCC_ID" ] || { echo "error: cannot read the compiler identity from $ELF" >&2; exit 1; }
cat > "$ROOT/runtime/sfpi/compiler/bin/riscv-tt-elf-g++" <<SH
#!/bin/sh
# Stand-in for the SFPI RISC-V compiler: mock mode uses pre-compiled firmware only.
if [ "\${1:-}" = "--version" ]; then
  echo "riscv-tt-elf-g++ $GCC_ID"
  exit 0
fi
echo "riscv-tt-elf-g++ stand-in: kernel compilation is not available in mock mode" >&2
exit 1
SH
chmod +x "$ROOT/runtime/sfpi/compiler/bin/riscv-tt-elf-g++"
echo "runtime root: $ROOT (compiler line: riscv-tt-elf-g++ $GCC_ID)"

echo "== tt-metal: the build without TT-Metal fails and says what to set"
if OUT=$(env -u TT_METAL_HOME -u TT_MEMGUARD_TTNN_LIB_DIR cargo check --features tt-metal --lib 2>&1); then
    echo "error: cargo check --features tt-metal succeeded without TT-Metal" >&2
    exit 1
fi
grep -q "set TT_METAL_HOME" <<<"$OUT" && grep -q "TT_MEMGUARD_TTNN_LIB_DIR" <<<"$OUT" \
    || { echo "error: the build failure does not say what to set:" >&2; echo "$OUT" | tail -n 20 >&2; exit 1; }
echo "ok: $(grep -o 'the `tt-metal` feature needs TT-Metal[^(]*' <<<"$OUT" | awk 'NR == 1')"

echo "== tt-metal: a library other than the pinned one is refused by its GNU build-id"
WRONG="$CACHE/wrong-lib"
rm -rf "$WRONG" && mkdir -p "$WRONG"
ln -s "$LIB/libtt_stl.so" "$WRONG/libtt_metal.so"
if OUT=$(env -u TT_METAL_HOME TT_MEMGUARD_TTNN_LIB_DIR="$WRONG" cargo check --features tt-metal --lib 2>&1); then
    echo "error: cargo check --features tt-metal accepted $WRONG/libtt_metal.so" >&2
    exit 1
fi
grep -q "is not the libtt_metal.so of ttnn $WHEEL_VERSION (GNU build-id" <<<"$OUT" \
    || { echo "error: the build failure does not name the build-id:" >&2; echo "$OUT" | tail -n 20 >&2; exit 1; }
echo "ok: $(grep -o 'GNU build-id [0-9a-f]*) is not' <<<"$OUT" | awk 'NR == 1')"

# TT-Metal's environment: everything it writes goes to the scratch directory, nothing to the
# checkout, /tmp, /dev/shm or ~/.cache.
export TT_MEMGUARD_TTNN_LIB_DIR="$LIB"
export TT_METAL_RUNTIME_ROOT="$ROOT"
export TT_METAL_LOGGER_LEVEL=off          # its log lines go to stdout; errors arrive as exceptions
export TT_METAL_SHM_TRACKING_DISABLED=1   # no /dev/shm/tt_device_<id>_memory
export OMPI_MCA_btl=self                  # the bundled Open MPI: no 16 MiB /dev/shm segment
export OMPI_MCA_opal_signal=""            # and no signal handlers in the test process
unset TT_METAL_HOME

echo "== tt-metal: build tests, examples and benches against $LIB"
cargo build -q --features tt-metal --tests --examples --benches
echo "== tt-metal: every TT-Metal symbol the tests import is exported by libtt_metal.so"
TEST_BINS=$(cargo test --features tt-metal --test tt_metal --test tt_metal_diff --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
nm -D --defined-only "$LIB/libtt_metal.so" | awk '{print $3}' | sort -u > "$CACHE/exported.txt"
# shellcheck disable=SC2086 # one word per binary
nm -D --undefined-only $TEST_BINS | awk '{print $2}' | grep -E '^_Z(N|NK|TI|TV)?N?K?2tt' | sort -u > "$CACHE/imported.txt"
MISSING=$(comm -23 "$CACHE/imported.txt" "$CACHE/exported.txt")
[ -z "$MISSING" ] || { echo "error: imported but not exported by libtt_metal.so:" >&2; echo "$MISSING" >&2; exit 1; }
echo "ok: $(wc -l < "$CACHE/imported.txt") TT-Metal symbols imported, all exported"

SUMMARY=()
for KIND in n150 p150 n300 t3000; do
    case $KIND in
        n150) DESC=wormhole_n150.yaml ;;
        p150) DESC=blackhole_p150.yaml ;;   # 2 columns harvested: 110 L1 banks, as the sim preset
        n300) DESC=wormhole_n300.yaml ;;    # device 0 of the two chips; the mesh test opens both
        t3000) DESC=wormhole_t3000.yaml ;;  # device 0 of the eight chips; the mesh test opens a 2x4
    esac
    SCRATCH="$CACHE/scratch/$KIND"
    rm -rf "$SCRATCH"
    mkdir -p "$SCRATCH/tmp"
    echo "== tt-metal: mock $KIND ($DESC), libtt_metal.so from ttnn $WHEEL_VERSION"
    START=$(date +%s.%N)
    LOG="$SCRATCH/test.log"
    # One process per target; the per-kind environment points TT-Metal at this descriptor and
    # keeps its files in the scratch directory.
    run_kind() {
        TT_METAL_MOCK_CLUSTER_DESC_PATH="$DATA/$DESC" TT_METAL_LOGS_PATH="$SCRATCH" \
            TT_METAL_CACHE="$SCRATCH/cache" TMPDIR="$SCRATCH/tmp" TT_MEMGUARD_EXPECT_MOCK="$KIND" \
            TT_MEMGUARD_DIFF_TRACE_DIR="$SCRATCH" "$@"
    }
    set +e
    {
        run_kind cargo test --features tt-metal --test tt_metal --test tt_metal_diff -- --nocapture
        STATUS=$?
        run_kind cargo test --features tt-metal --lib tt_metal
        STATUS=$((STATUS + $?))
        run_kind cargo run -q --features tt-metal --example tt_metal_device
        STATUS=$((STATUS + $?))
        echo "STATUS $STATUS"
    } > "$LOG" 2>&1
    set -e
    grep -E '^(test |running [0-9]|test result|differential:|record:|---- |thread .*panicked)' "$LOG" || true
    grep -q '^STATUS 0$' "$LOG" || { tail -n 40 "$LOG" >&2; echo "error: the tt-metal tests failed on mock $KIND" >&2; exit 1; }
    PASSED=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$LOG" | awk '{s+=$1} END {print s+0}')
    OPS=$(sed -n 's/^differential: .* \([0-9][0-9]*\) operations.*/\1/p' "$LOG" | awk '{s+=$1} END {print s+0}')
    CB_RUNS=$(sed -n 's/^differential: .* circular buffers: \([0-9][0-9]*\) enqueues.*/\1/p' "$LOG" | awk '{s+=$1} END {print s+0}')
    DIFFS=$(sed -n 's/^differential: .* \([0-9][0-9]*\) differences.*/\1/p' "$LOG" | awk '{s+=$1} END {print s+0}')
    SECS=$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    [ "$DIFFS" -eq 0 ] || { echo "error: the differential test found $DIFFS differences on $KIND" >&2; exit 1; }
    [ "$PASSED" -gt 0 ] || { echo "error: no tt-metal test ran on mock $KIND" >&2; exit 1; }
    [ "$OPS" -ge 10000 ] || { echo "error: the differential test ran $OPS operations on $KIND (< 10,000)" >&2; exit 1; }
    [ "$CB_RUNS" -ge 500 ] \
        || { echo "error: the circular-buffer differential test ran $CB_RUNS enqueues on $KIND (< 500)" >&2; exit 1; }
    # On a cluster of several chips, the differential test also compares a mesh of all of them
    # (one allocator for every chip) with a simulated mesh of the same shape.
    MESH="single chip"
    if [ "$KIND" = n300 ] || [ "$KIND" = t3000 ]; then
        MESH_LINE=$(grep -E '^differential: mesh [0-9]+x[0-9]+ of .* operations' "$LOG" | awk 'NR == 1')
        MESH_OPS=$(sed -n 's/^differential: mesh .* \([0-9][0-9]*\) operations.*/\1/p' <<<"$MESH_LINE")
        [ -n "$MESH_OPS" ] && [ "$MESH_OPS" -ge 3000 ] \
            || { echo "error: the mesh differential test did not run 3,000 operations on $KIND: ${MESH_LINE:-no line}" >&2; exit 1; }
        MESH="mesh $(sed -n 's/^differential: mesh \([0-9]*x[0-9]*\) .*/\1/p' <<<"$MESH_LINE") $MESH_OPS operations"
    fi

    # The replayer prints the same lines on the simulated and the real device.
    TRACE=tests/data/worked_example.trace
    [ "$KIND" = n150 ] || TRACE=$(find "$SCRATCH" -name 'diff-*.trace' -print -quit)
    cargo run -q --example replay -- "$TRACE" > "$SCRATCH/replay-sim.txt"
    TT_METAL_MOCK_CLUSTER_DESC_PATH="$DATA/$DESC" TT_METAL_LOGS_PATH="$SCRATCH" \
        TT_METAL_CACHE="$SCRATCH/cache" TMPDIR="$SCRATCH/tmp" \
        cargo run -q --features tt-metal --example replay -- --device tt-metal "$TRACE" > "$SCRATCH/replay-tt.txt"
    cmp "$SCRATCH/replay-sim.txt" "$SCRATCH/replay-tt.txt" \
        || { echo "error: replay differs between sim and tt-metal on $KIND" >&2; diff "$SCRATCH/replay-sim.txt" "$SCRATCH/replay-tt.txt" | head >&2; exit 1; }
    LINES=$(wc -l < "$SCRATCH/replay-tt.txt")

    # The memguard runner on the mock device (TT_MEMGUARD_DEVICE=tt-metal): the same suite that
    # runs on the simulated Wormhole n150 (its addresses and 64-core shards are n150's).
    RUNNER="runner suite is n150-specific"
    if [ "$KIND" = n150 ]; then
        run_kind env TT_MEMGUARD_DEVICE=tt-metal cargo test -q --features tt-metal --test memguard_suite \
            > "$SCRATCH/runner.log" 2>&1 \
            || { cat "$SCRATCH/runner.log" >&2; echo "error: the memguard runner failed on mock $KIND" >&2; exit 1; }
        grep -q '4 passed; 0 failed' "$SCRATCH/runner.log" \
            || { cat "$SCRATCH/runner.log" >&2; echo "error: the runner did not pass 4 tests on $KIND" >&2; exit 1; }
        # The same suite recorded (TT_MEMGUARD_RECORD): every test's trace replays on the
        # simulator with the TT-Metal device's addresses (the replay checks each expect=).
        run_kind env TT_MEMGUARD_DEVICE=tt-metal TT_MEMGUARD_RECORD="$SCRATCH/traces" \
            cargo test -q --features tt-metal --test memguard_suite > "$SCRATCH/runner-record.log" 2>&1 \
            || { cat "$SCRATCH/runner-record.log" >&2; echo "error: the recorded runner failed on mock $KIND" >&2; exit 1; }
        RECORDED=0
        for RECORDED_TRACE in "$SCRATCH"/traces/*.trace; do
            cargo run -q --example replay -- "$RECORDED_TRACE" > /dev/null \
                || { echo "error: $RECORDED_TRACE does not replay on the simulator" >&2; exit 1; }
            RECORDED=$((RECORDED + 1))
        done
        [ "$RECORDED" -eq 4 ] || { echo "error: the runner recorded $RECORDED traces on $KIND (expected 4)" >&2; exit 1; }
        RUNNER="runner suite 4 passed on the TT-Metal device, their 4 recorded traces replay on the simulator"
    fi
    SUMMARY+=("mock $KIND: $PASSED tests passed against libtt_metal.so (ttnn $WHEEL_VERSION), differential $OPS operations ($MESH) and $CB_RUNS program enqueues with $DIFFS differences, replay --device tt-metal identical ($LINES lines), example ran, $RUNNER, ${SECS} s")
done

echo "== tt-metal: nothing written outside the scratch directory"
LEFT=$(git status --porcelain --untracked-files=all -- generated 2>/dev/null || true)
[ -z "$LEFT" ] || { echo "error: TT-Metal wrote into the checkout: $LEFT" >&2; exit 1; }
ls /dev/shm 2>/dev/null | grep -E '^(tt_device_|sm_segment\.)' && { echo "error: files left in /dev/shm" >&2; exit 1; } || true

echo "== tt-metal: summary"
printf '%s\n' "${SUMMARY[@]}"

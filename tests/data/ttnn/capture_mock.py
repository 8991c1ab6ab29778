"""Makes mock_wormhole_no_dispatch.json: a ttnn graph capture of a few ops on a
mock Wormhole n150 (no hardware), in NO_DISPATCH mode.

What it needs (all of it from the ttnn 0.81.1 wheel, no torch):

    python3.12 -m venv venv && venv/bin/pip install ttnn==0.81.1
    TTNN=venv/lib/python3.12/site-packages/ttnn
    # Mock mode checks that the RISC-V compiler exists and never runs it for
    # these ops: give it the stand-in that .ci/tt-metal.sh writes
    # (runtime/sfpi/compiler/bin/riscv-tt-elf-g++, answering --version).
    TT_METAL_RUNTIME_ROOT=$TTNN \
    TT_METAL_MOCK_CLUSTER_DESC_PATH=tests/data/tt-metal/wormhole_n150.yaml \
    TT_METAL_CACHE=$(mktemp -d) \
        venv/bin/python tests/data/ttnn/capture_mock.py OUT.json

Only ops whose programs are not compiled in NO_DISPATCH mode can run without
the RISC-V compiler: tensor creation, binary eltwise ops (binary_ng),
deallocation. Unary ops and matmul compile their kernels when their program is
created and fail here. In NO_DISPATCH mode buffers are not placed: every
address in the capture is 0, and circular buffers are listed at every program
run.
"""

import json
import sys
import types

import ttnn

# ttnn's op decorators import torch while a capture is active, only for
# isinstance checks: a stand-in module is enough.
sys.modules.setdefault("torch", types.SimpleNamespace(Tensor=type("Tensor", (), {})))

out = sys.argv[1] if len(sys.argv) > 1 else "mock_wormhole_no_dispatch.json"
device = ttnn.open_device(device_id=0, l1_small_size=32768)
ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NO_DISPATCH)

shape = [1, 1, 64, 64]


def ones(memory_config):
    return ttnn.ones(shape, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device, memory_config=memory_config)


a = ones(ttnn.DRAM_MEMORY_CONFIG)  # interleaved DRAM
b = ones(ttnn.L1_MEMORY_CONFIG)  # interleaved L1
c = ttnn.add(a, b)  # a program with three circular buffers, output in DRAM
height = ttnn.create_sharded_memory_config(shape, core_grid=ttnn.CoreGrid(y=1, x=2), strategy=ttnn.ShardStrategy.HEIGHT)
s = ones(height)  # height-sharded L1 over 2 cores
t = ttnn.add(s, s, memory_config=height)  # circular buffers backed by the sharded buffers
spec = ttnn.ShardSpec(
    ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(1, 0))}), [32, 64], ttnn.ShardOrientation.ROW_MAJOR
)
u = ones(ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, ttnn.BufferType.L1_SMALL, spec))  # L1_SMALL
v = ttnn.multiply(c, a, memory_config=ttnn.L1_MEMORY_CONFIG)
ttnn.deallocate(c)
ttnn.deallocate(t)
graph = ttnn.graph.end_graph_capture()
ttnn.close_device(device)

# One node per line, keys sorted: small diffs when it is made again.
with open(out, "w") as f:
    f.write("[\n" + ",\n".join(json.dumps(node, sort_keys=True) for node in graph) + "\n]\n")
print(f"{len(graph)} nodes -> {out}")

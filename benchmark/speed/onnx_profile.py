"""Where ONNX Runtime spends a network's time: milliseconds per operator type, and the convolutions' rate.

Used by ``python -m benchmark speed unet --profile``. ONNX Runtime's own profiler
records every kernel it runs; the convolutions' arithmetic follows from the graph's
weight and output shapes (two operations per multiply-add), so their rate in GFLOP/s
can be set beside what this CPU reaches on a large float32 matrix product (:func:`matrix_product_gflops`, numpy's BLAS): a network whose
convolutions already run near that rate cannot get much faster in float32.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The profiler's suffix of a kernel's event (each node also has fence events).
_KERNEL = "_kernel_time"


@dataclass
class OperatorProfile:
    """Mean milliseconds per run of each operator type, and the convolutions' arithmetic.

    Attributes
    ----------
    milliseconds : dict
        ``{operator type: mean ms per run}``, every kernel of that type summed.
    nodes : dict
        ``{operator type: kernels of that type in one run}``.
    convolution_gflop : float
        Arithmetic of one run's convolutions, 2 operations per multiply-add (from the graph).
    runs : int
        Profiled runs the means are over.
    """

    milliseconds: dict = field(default_factory=dict)
    nodes: dict = field(default_factory=dict)
    convolution_gflop: float = 0.0
    runs: int = 0

    @property
    def total_ms(self) -> float:
        """Kernel time of one run (the gaps between kernels not included)."""
        return float(sum(self.milliseconds.values()))

    @property
    def convolution_ms(self) -> float:
        return float(self.milliseconds.get("Conv", 0.0))

    @property
    def convolution_gflops(self) -> float:
        """The convolutions' rate: their arithmetic over their kernel time."""
        return self.convolution_gflop / (self.convolution_ms / 1e3) if self.convolution_ms else float("nan")


def convolution_gflop(weight_shape, output_shape) -> float:
    """Arithmetic of one convolution kernel call, in GFLOP.

    ``weight_shape`` is ONNX's ``(out channels, in channels / group, kh, kw)``; the output
    is ``(batch, channels, height, width)`` or ONNX Runtime's blocked
    ``(batch, channel blocks, height, width, block)``: batch and the spatial sizes are its
    axes 0, 2 and 3 either way.
    """
    weight, out = [int(size) for size in weight_shape], [int(size) for size in output_shape]
    if len(weight) != 4 or len(out) not in (4, 5):
        raise ValueError(f"not a 2-D convolution: weight {weight_shape}, output {output_shape}")
    return 2.0 * float(np.prod(weight)) * out[0] * out[2] * out[3] / 1e9


def kernel_events(events: list) -> list:
    """The profiler's kernel events (one per node run), in the order they ran."""
    return [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith(_KERNEL)]


def summarize(events: list, runs: int) -> OperatorProfile:
    """Per-operator mean milliseconds of ONNX Runtime profiler ``events`` over ``runs`` runs."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    microseconds, counts = defaultdict(float), defaultdict(int)
    for event in kernel_events(events):
        kind = event.get("args", {}).get("op_name", "?")
        microseconds[kind] += float(event["dur"])
        counts[kind] += 1
    return OperatorProfile(milliseconds={kind: us / runs / 1e3 for kind, us in sorted(microseconds.items(), key=lambda kv: -kv[1])},
                           nodes={kind: count // runs for kind, count in counts.items()}, runs=runs)


def graph_convolution_gflop(path: Path, batch_shape) -> float:
    """Arithmetic of the ``Conv`` nodes of the ONNX file ``path`` on one batch of ``batch_shape``, in GFLOP.

    Counted from the graph (weights as stored, output shapes inferred for this input),
    not from the profiler, whose shapes show ONNX Runtime's channel padding to its
    block size (a 3-class output computed as 16 channels): this is what the network
    needs, whichever engine runs it.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    (given,) = model.graph.input
    dims = given.type.tensor_type.shape.dim
    if len(dims) != len(batch_shape):
        raise ValueError(f"{path.name}: input has {len(dims)} axes, the batch {len(batch_shape)}")
    for dim, size in zip(dims, batch_shape):
        dim.ClearField("dim_param")
        dim.dim_value = int(size)
    inferred = shape_inference.infer_shapes(model, strict_mode=True).graph
    shapes = {value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim]
              for value in [*inferred.value_info, *inferred.output]}
    weights = {init.name: numpy_helper.to_array(init).shape for init in model.graph.initializer}
    return sum(convolution_gflop(weights[node.input[1]], shapes[node.output[0]])
               for node in inferred.node if node.op_type == "Conv")


def profile(path: Path, batches: list, runs: int = 3, threads: int | None = None) -> OperatorProfile:
    """Profile the ONNX file ``path`` on ``batches`` (one run = every batch once), warm.

    The session has the options the modules use (:func:`nucleiseg.engines.session_options`)
    with ONNX Runtime's profiler on; ``runs + 1`` runs, the first left out of the means.
    """
    import onnxruntime as ort

    from nucleiseg.engines import CPU_PROVIDER, session_options

    if not batches:
        raise ValueError("no batch to profile")
    with tempfile.TemporaryDirectory() as folder:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "onnx")
        session = ort.InferenceSession(str(path), options, providers=[CPU_PROVIDER])
        name = session.get_inputs()[0].name
        for _ in range(runs + 1):
            for batch in batches:
                session.run(None, {name: np.ascontiguousarray(batch, dtype=np.float32)})
        events = json.loads(Path(session.end_profiling()).read_text())
    # Every run calls the same kernels; the first run (memory planning, first touches) is left out.
    kernels = kernel_events(events)
    kernels_per_run = len(kernels) // (runs + 1)
    found = summarize(kernels[kernels_per_run:], runs)
    found.convolution_gflop = sum(graph_convolution_gflop(path, batch.shape) for batch in batches)
    return found


def matrix_product_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of a ``size`` × ``size`` float32 matrix product with numpy (its BLAS, every thread it uses)."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best / 1e9

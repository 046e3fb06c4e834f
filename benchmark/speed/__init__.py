"""Speed tools: ``python -m benchmark speed metric|unet|deepcell-modes|throughput|training [options]``.

* ``metric``: milliseconds of the object-level metric per 520 x 696 pair;
* ``unet``: seconds per image of a model card's whole-image inference (default: the shipped U-Net);
* ``deepcell-modes``: DeepCell's patch mode against its fully convolutional mode;
* ``throughput``: images per minute of whole benchmark runs with 1, 2, ... CellProfiler processes;
* ``training``: crops per second of the training step on each Keras backend (TensorFlow,
  PyTorch, JAX; float32 and bfloat16), each in its own environment and process.

The in-process tools share one definition of cold and warm
(:mod:`benchmark.speed.timing`): cold is the first call, model loading and
graph building included; warm is the median of later calls on the same input.
``throughput`` reports the benchmark's per-process figures instead
(:mod:`benchmark.speed.throughput`). ``training`` keeps cold as the first training step and
warm as the median of later ones, each on a fresh batch as training has them
(:mod:`benchmark.speed.training`).
"""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register ``speed`` and its tools on the benchmark's sub-parser collection."""
    from . import deepcell_modes, metric, throughput, training, unet

    speed = sub.add_parser("speed", help="speed tools: metric, unet, deepcell-modes, throughput, training",
                           description=__doc__.split("\n\n")[0])
    tools = speed.add_subparsers(dest="tool", required=True, metavar="TOOL")
    for tool in (metric, unet, deepcell_modes, throughput, training):
        tool.add_parser(tools)

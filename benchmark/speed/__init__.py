"""Speed tools: ``python -m benchmark speed metric|unet|deepcell-modes|throughput [options]``.

* ``metric``: milliseconds of the object-level metric per 520 x 696 pair;
* ``unet``: seconds per image of a model card's whole-image inference (default: the shipped U-Net);
* ``deepcell-modes``: DeepCell's patch mode against its fully convolutional mode;
* ``throughput``: images per minute of whole benchmark runs with 1, 2, ... CellProfiler processes.

The in-process tools share one definition of cold and warm
(:mod:`benchmark.speed.timing`): cold is the first call, model loading and
graph building included; warm is the median of later calls on the same input.
``throughput`` reports the benchmark's per-process figures instead
(:mod:`benchmark.speed.throughput`).
"""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register ``speed`` and its tools on the benchmark's sub-parser collection."""
    from . import deepcell_modes, metric, throughput, unet

    speed = sub.add_parser("speed", help="speed tools: metric, unet, deepcell-modes, throughput",
                           description=__doc__.split("\n\n")[0])
    tools = speed.add_subparsers(dest="tool", required=True, metavar="TOOL")
    for tool in (metric, unet, deepcell_modes, throughput):
        tool.add_parser(tools)

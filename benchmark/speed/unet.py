"""Whole-image inference time of a model card (default: the shipped U-Net), cold and warm, per engine.

``python -m benchmark speed unet [--model CARD] [--engine tensorflow|onnxruntime|both] [--image PATH | --size HxW]
[--repeats 5] [--ensemble N] [--augment] [--profile]``

Times what ClassifyBoundariesUNet / ClassifyPixelsDeepCell do per image set:
normalization, network (tiled as the modules' defaults), post-processing with
the settings in the model card (as the modules use by default); ``--augment``
adds test-time augmentation (8 flips/rotations). Cold: loading the card and the
first image (graph tracing or session set-up included); warm: the median of
``--repeats`` more calls on the same image (:mod:`benchmark.speed.timing`).
``--engine`` picks the inference engine (:mod:`nucleiseg.engines`; default
TensorFlow); ``both`` times TensorFlow and ONNX Runtime in this process, their
warm calls in turns (:func:`~benchmark.speed.timing.side_by_side`), and prints
them side by side with the ratio of their warm times (per image, and for
the probabilities alone: normalization, tiling and the network, which is all that
differs) and the largest difference between their probabilities. Threads: each engine's use of every
CPU this process may run on. ``--size 4000x4000`` tiles the synthetic image to
that size, to show time and peak memory (the process's maximum resident set)
on large fields. ``--profile`` (ONNX Runtime) adds where its time goes
(:mod:`benchmark.speed.onnx_profile`): milliseconds per operator type of the first
network on the batches it got for this image, the convolutions' arithmetic and rate in
GFLOP/s, TensorFlow's rate on the same batches when it was timed too, and a float32
matrix product's rate on this CPU for scale.
"""

from __future__ import annotations

import argparse
import os
import resource
from pathlib import Path

import numpy as np

from ..errors import BenchmarkError
from .images import add_image_arguments, chosen_image
from .timing import side_by_side

#: The engines ``--engine`` names, in the order ``both`` times them.
ENGINES = ("tensorflow", "onnxruntime")
BOTH = "both"


def peak_memory_mb() -> float:
    """Maximum resident set of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def add_parser(tools) -> None:
    """Register ``speed unet`` on the speed tools' sub-parser collection."""
    from nucleiseg import model_types

    parser = tools.add_parser("unet", help="seconds per image of a model card's whole-image inference (default: shipped U-Net)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=model_types.get("unet").default_card, help="model card (default: shipped U-Net)")
    add_image_arguments(parser)
    parser.add_argument("--repeats", type=int, default=5, help="warm calls, median reported (default 5)")
    parser.add_argument("--ensemble", type=int, help="use the first N networks of an ensemble")
    parser.add_argument("--augment", action="store_true", help="average over the 8 flips and rotations")
    parser.add_argument("--engine", choices=(*ENGINES, BOTH), default=ENGINES[0],
                        help="inference engine to time, or both side by side (default tensorflow)")
    parser.add_argument("--profile", action="store_true",
                        help="ONNX Runtime: time per operator type and the convolutions' GFLOP/s (needs --engine onnxruntime or both)")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """Time the card on the chosen image with each engine asked for; print cold, warm, their ratio and peak memory."""
    from nucleiseg import cards, engines
    from nucleiseg.inference import predict_probabilities, segment

    settings = cards.tuned_postprocess(args.model)
    image = chosen_image(args)
    chosen = ENGINES if args.engine == BOTH else (args.engine,)
    if args.profile and "onnxruntime" not in chosen:
        raise BenchmarkError("--profile profiles ONNX Runtime: add --engine onnxruntime or --engine both")
    try:
        timings = side_by_side({engine: lambda model: (model, segment(image, model, settings, augment=args.augment))
                                for engine in chosen}, args.repeats,
                               loads={engine: lambda engine=engine: cards.load(args.model, args.ensemble, engine=engine)
                                      for engine in chosen})
    except (cards.ModelError, engines.EngineNotInstalled) as error:
        raise BenchmarkError(f"--engine {args.engine}: {error}") from error
    # The engines differ in the network only; normalization and post-processing are shared.
    networks = side_by_side({engine: lambda model: predict_probabilities(image, model, augment=args.augment)
                             for engine in chosen}, args.repeats,
                            loads={engine: lambda engine=engine: timings[engine].result[0] for engine in chosen})
    model = timings[chosen[0]].result[0]
    print(f"model: {args.model} ({len(model.networks)} network(s)); image {image.shape[0]} x {image.shape[1]}; cpus {os.cpu_count()}"
          f"{'; test-time augmentation' if args.augment else ''}")
    for engine, timing in timings.items():
        label = engines.LABELS[engine]
        _, (_, labels) = timing.result
        print(f"{label}: first image (load + trace + predict): {timing.cold:.2f} s")
        if timing.calls:
            print(f"{label}: warm, median of {args.repeats}: {timing.warm:.3f} s per image (min {timing.fastest:.3f} s); "
                  f"{int(labels.max())} nuclei; probabilities alone {networks[engine].warm:.3f} s")
    if len(timings) == 2:
        keras_run, onnx_run = (timings[engine] for engine in ENGINES)
        if keras_run.calls:
            keras_net, onnx_net = (networks[engine].warm for engine in ENGINES)
            print(f"TensorFlow / ONNX Runtime warm time: {keras_run.warm / onnx_run.warm:.2f}x per image, "
                  f"{keras_net / onnx_net:.2f}x for the probabilities alone (above 1: ONNX Runtime is faster)")
        difference = float(np.abs(keras_run.result[1][0] - onnx_run.result[1][0]).max())
        print(f"largest difference in any class probability between the engines: {difference:.1e}")
    print(f"peak memory (max resident set of the process): {peak_memory_mb():.0f} MB")
    if args.profile:
        print_profile(image, {engine: timings[engine].result[0] for engine in chosen}, args)
    return 0


def batches_of_first_network(image: np.ndarray, model, augment: bool) -> list:
    """The batches ``model``'s first network gets while the probabilities of ``image`` are made."""
    from nucleiseg.inference import predict_probabilities

    network, seen = model.networks[0], []
    run = network.predict_on_batch

    def recording(batch):
        seen.append(np.array(batch, dtype=np.float32))
        return run(batch)

    network.predict_on_batch = recording
    try:
        predict_probabilities(image, model, augment=augment)
    finally:
        del network.predict_on_batch
    return seen


def print_profile(image: np.ndarray, models: dict, args) -> None:
    """Print ONNX Runtime's time per operator type, the convolutions' GFLOP/s and, for scale, TensorFlow's and BLAS'."""
    from .onnx_profile import matrix_product_gflops, profile
    from .timing import cold_and_warm

    onnx_model = models["onnxruntime"]
    batches = batches_of_first_network(image, onnx_model, args.augment)
    network = onnx_model.networks[0]
    found = profile(network.path, batches, runs=max(1, args.repeats))
    shapes = sorted({f"{b.shape[0]}x{b.shape[1]}x{b.shape[2]}" for b in batches})
    print(f"ONNX Runtime profile of {network.path.name}: {len(batches)} batch(es) of {', '.join(shapes)} per image, "
          f"mean of {found.runs} run(s); kernels {found.total_ms:.1f} ms per image")
    for kind, ms in found.milliseconds.items():
        print(f"  {kind:<16} {ms:8.1f} ms  {100 * ms / found.total_ms:5.1f} %  ({found.nodes[kind]} kernel(s))")
    print(f"convolutions: {found.convolution_gflop:.2f} GFLOP per image, {found.convolution_gflops:.0f} GFLOP/s under ONNX Runtime")
    if "tensorflow" in models:
        keras_network = models["tensorflow"].networks[0]
        timing = cold_and_warm(lambda _: [keras_network.predict_on_batch(batch) for batch in batches], max(1, args.repeats))
        print(f"TensorFlow: the same batches through the whole network in {1e3 * timing.warm:.1f} ms warm, "
              f"so at least {found.convolution_gflop / timing.warm:.0f} GFLOP/s for its convolutions")
    print(f"for scale: numpy float32 matrix product 2048 x 2048 at {matrix_product_gflops():.0f} GFLOP/s on this CPU")

"""Whole-image inference time of a model card (default: the shipped U-Net), cold and warm.

``python -m benchmark speed unet [--model CARD] [--image PATH | --size HxW] [--repeats 5] [--ensemble N] [--augment]``

Times what ClassifyBoundariesUNet / ClassifyPixelsDeepCell do per image set:
normalization, network (tiled as the modules' defaults), post-processing with
the settings in the model card (as the modules use by default); ``--augment``
adds test-time augmentation (8 flips/rotations). Cold: loading the card and the
first image (graph tracing included); warm: the median of ``--repeats`` more
calls on the same image (:mod:`benchmark.speed.timing`). Threads: TensorFlow's
defaults (all cores). ``--size 4000x4000`` tiles the synthetic image to that
size, to show time and peak memory (the process's maximum resident set) on
large fields.
"""

from __future__ import annotations

import argparse
import os
import resource
from pathlib import Path

from .images import add_image_arguments, chosen_image
from .timing import cold_and_warm


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
    parser.set_defaults(handler=main)


def main(args) -> int:
    """Time the card on the chosen image and print cold, warm and peak memory."""
    from nucleiseg import cards
    from nucleiseg.inference import segment

    settings = cards.tuned_postprocess(args.model)
    image = chosen_image(args)
    timing = cold_and_warm(lambda model: (model, segment(image, model, settings, augment=args.augment)), args.repeats,
                           load=lambda: cards.load(args.model, args.ensemble))
    model, (_, labels) = timing.result
    print(f"model: {args.model} ({len(model.networks)} network(s)); image {image.shape[0]} x {image.shape[1]}; cpus {os.cpu_count()}"
          f"{'; test-time augmentation' if args.augment else ''}")
    print(f"first image (load + trace + predict): {timing.cold:.2f} s")
    if timing.calls:
        print(f"warm, median of {args.repeats}: {timing.warm:.3f} s per image (min {timing.fastest:.3f} s); {int(labels.max())} nuclei")
    print(f"peak memory (max resident set of the process): {peak_memory_mb():.0f} MB")
    return 0

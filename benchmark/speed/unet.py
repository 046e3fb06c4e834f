"""Warm whole-image inference time of a shipped model on a 520 x 696 image.

``python -m benchmark.inference_speed [--model CARD] [--image PATH | --size HxW] [--repeats 5] [--augment]``

Times what ClassifyBoundariesUNet / ClassifyPixelsDeepCell do per image set
after the first: normalization, network (tiled as the module's defaults),
post-processing with the settings in the model card (as the modules use by
default); ``--augment`` adds test-time augmentation (8 flips/rotations). The
first call (model load, graph tracing) is reported apart. Threads: TensorFlow's defaults (all cores).
``--size 4000x4000`` tiles the synthetic image to that size, to show time and peak memory
(the process's maximum resident set) on large fields.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from .deepcell_modes import synthetic_image


def image_size(text: str) -> tuple[int, int]:
    """``"HxW"`` → ``(H, W)``, both positive."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 4000x4000, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


def tiled_synthetic_image(size: tuple[int, int]) -> np.ndarray:
    """The 520 x 696 synthetic image repeated (mirrored, so seams stay smooth) to ``size``."""
    base = synthetic_image(seed=0)
    reps = (-(-size[0] // base.shape[0]), -(-size[1] // base.shape[1]))
    return np.pad(base, ((0, reps[0] * base.shape[0] - base.shape[0]), (0, reps[1] * base.shape[1] - base.shape[1])),
                  mode="symmetric")[: size[0], : size[1]]


def peak_memory_mb() -> float:
    """Maximum resident set of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    from nucleiseg import layouts, cards, model_types
    from nucleiseg.inference import segment

    parser = argparse.ArgumentParser(prog="python -m benchmark.inference_speed", description=__doc__)
    parser.add_argument("--model", type=Path, default=model_types.get("unet").default_card, help="model card (default: shipped U-Net)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--image", type=Path, help="a greyscale image (default: synthetic 520 x 696)")
    source.add_argument("--size", type=image_size, help="synthetic image of HEIGHTxWIDTH pixels, e.g. 4000x4000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ensemble", type=int, help="use the first N networks of an ensemble")
    parser.add_argument("--augment", action="store_true", help="average over the 8 flips and rotations")
    args = parser.parse_args(argv)
    settings = cards.tuned_postprocess(args.model)

    if args.image:
        image = layouts.read_image(args.image)
    else:
        image = tiled_synthetic_image(args.size) if args.size else synthetic_image(seed=0)
    started = time.perf_counter()
    model = cards.load(args.model, args.ensemble)
    segment(image, model, settings, augment=args.augment)
    first = time.perf_counter() - started
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        _, labels = segment(image, model, settings, augment=args.augment)
        times.append(time.perf_counter() - started)
    print(f"model: {args.model} ({len(model.networks)} network(s)); image {image.shape[0]} x {image.shape[1]}; cpus {os.cpu_count()}"
          f"{'; test-time augmentation' if args.augment else ''}")
    print(f"first image (load + trace + predict): {first:.2f} s")
    if times:
        print(f"warm, median of {args.repeats}: {statistics.median(times):.3f} s per image (min {min(times):.3f} s); {int(labels.max())} nuclei")
    print(f"peak memory (max resident set of the process): {peak_memory_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Warm whole-image inference time of a shipped model on a 520 x 696 image.

``python -m benchmark.inference_speed [--model CARD] [--image PATH] [--repeats 5] [--augment]``

Times what ClassifyBoundariesUNet / ClassifyPixelsDeepCell do per image set
after the first: normalization, network (tiled as the module's defaults),
post-processing with the settings in the model card (as the modules use by
default); ``--augment`` adds test-time augmentation (8 flips/rotations). The
first call (model load, graph tracing) is reported apart. Threads: TensorFlow's defaults (all cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from .deepcell_modes import synthetic_image


def main(argv=None) -> int:
    from nucleiseg import layouts, models
    from nucleiseg.inference import segment

    parser = argparse.ArgumentParser(prog="python -m benchmark.inference_speed", description=__doc__)
    parser.add_argument("--model", type=Path, default=models.DEFAULT_MODELS["unet"], help="model card (default: shipped U-Net)")
    parser.add_argument("--image", type=Path, help="a greyscale image (default: synthetic 520 x 696)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ensemble", type=int, help="use the first N networks of an ensemble")
    parser.add_argument("--augment", action="store_true", help="average over the 8 flips and rotations")
    args = parser.parse_args(argv)
    settings = models.tuned_postprocess(args.model)

    image = layouts.read_image(args.image) if args.image else synthetic_image(seed=0)
    started = time.perf_counter()
    model = models.load(args.model, args.ensemble)
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
    print(f"warm, median of {args.repeats}: {statistics.median(times):.3f} s per image (min {min(times):.3f} s); {int(labels.max())} nuclei")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

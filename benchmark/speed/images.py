"""Inputs of the speed tools: a synthetic 520 x 696 fluorescence image, tiled to other sizes."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: The size of a BBBC039 field, the paper's images.
SHAPE = (520, 696)


def synthetic_image(seed: int = 0) -> np.ndarray:
    """A 520 x 696 synthetic fluorescence image (cut from a square one)."""
    from nucleiseg import synthetic

    image, _ = synthetic.generate_one(0, seed=seed, size=max(SHAPE))
    return image[: SHAPE[0], : SHAPE[1]]


def tiled_synthetic_image(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """The 520 x 696 synthetic image repeated (mirrored, so seams stay smooth) to ``size``, or cut to it."""
    base = synthetic_image(seed)
    reps = (-(-size[0] // base.shape[0]), -(-size[1] // base.shape[1]))
    return np.pad(base, ((0, reps[0] * base.shape[0] - base.shape[0]), (0, reps[1] * base.shape[1] - base.shape[1])),
                  mode="symmetric")[: size[0], : size[1]]


def image_size(text: str) -> tuple[int, int]:
    """``"HxW"`` → ``(H, W)``, both positive (an argparse type)."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 4000x4000, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


def add_image_arguments(parser) -> None:
    """``--image PATH`` or ``--size HxW`` (default: the synthetic 520 x 696 image), and ``--seed``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--image", type=Path, help="a greyscale image (default: synthetic 520 x 696)")
    source.add_argument("--size", type=image_size, help="synthetic image of HEIGHTxWIDTH pixels, e.g. 4000x4000")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic image and of random weights where a tool makes them (default 0)")


def chosen_image(args) -> np.ndarray:
    """The image ``--image`` / ``--size`` / ``--seed`` ask for (greyscale checked)."""
    from nucleiseg import layouts
    from nucleiseg.inference import check_greyscale

    if args.image:
        return check_greyscale(layouts.read_image(args.image))
    return tiled_synthetic_image(args.size, args.seed) if args.size else synthetic_image(args.seed)

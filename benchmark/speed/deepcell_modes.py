"""DeepCell's two inference modes on one image (default: synthetic 520 x 696): time and agreement.

``python -m benchmark speed deepcell-modes [--model CARD] [--rows N] [--image PATH | --size HxW] [--repeats 3]``

* fully convolutional (dense) mode: the dilated network over the whole image
  in one pass, as the CellProfiler module runs it;
* patch mode, as published: every pixel's 61x61 patch through the patch
  network (:func:`nucleiseg.model_types.deepcell.predict_patches`). It is slow,
  so with ``--rows N`` only N rows are predicted and the time is extrapolated to
  the whole image (and printed as such).

Both are warm times (:mod:`benchmark.speed.timing`): the median of ``--repeats``
calls (dense) or of ``--patch-repeats`` calls (patch) on the same input after a
first, cold one. Also prints the ratio of the two times and the largest
difference in any class probability between the modes over the rows compared.
Without a model card (DeepCell not trained yet) a randomly initialised network
is used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import BenchmarkError
from .images import add_image_arguments, chosen_image
from .timing import Timing, cold_and_warm


def load_networks(card: Path | None, seed: int):
    """(dense networks, normalization, description) of a model card, or a random network."""
    from nucleiseg import cards, normalization
    from nucleiseg.model_types.deepcell import build_deepcell

    if card is not None and Path(card).is_file():
        loaded = cards.load(card)
        return loaded.networks, loaded.normalization, f"{card} ({len(loaded.networks)} network(s))"
    import keras

    keras.utils.set_random_seed(seed)
    why = f"{card} not found" if card is not None else "no model card given"
    return [build_deepcell(dense=True)], normalization.DEFAULT, f"random weights ({why})"


def time_dense(predict_batch, image: np.ndarray, repeats: int) -> Timing:
    """Cold and warm seconds of the fully convolutional mode on ``image``.

    Parameters
    ----------
    predict_batch : callable
        ``(1, H, W, 1)`` batch to ``(1, H, W, classes)`` probabilities (the networks' mean).
    image : ndarray
        The normalized image.
    repeats : int
        Warm calls.

    Returns
    -------
    Timing
        ``result``: the probabilities.
    """
    from nucleiseg.model_types.deepcell import MARGIN
    from nucleiseg.tiling import predict_tiled

    # One pass over the whole image: the tile is larger than the image.
    tile = max(image.shape)
    return cold_and_warm(lambda _: predict_tiled(predict_batch, image, tile=tile, margin=MARGIN, multiple=1, batch_size=1),
                         repeats)


def centre_band(height: int, rows: int | None) -> tuple[int, int]:
    """``(first, stop)`` of ``rows`` rows in the middle of an image of ``height`` rows (all when None)."""
    n_rows = rows or height
    first = (height - n_rows) // 2
    return first, first + n_rows


def time_patches(predict_rows, band: tuple[int, int], height: int, repeats: int, load=None) -> tuple[Timing, float]:
    """Cold and warm seconds of patch mode on the rows ``band``, and the warm time extrapolated to ``height`` rows.

    Parameters
    ----------
    predict_rows : callable
        ``predict_rows(networks, band)``: class probabilities of the rows ``band``.
    band : tuple of int
        First row and stop row.
    height : int
        Rows of the whole image.
    repeats : int
        Warm calls.
    load : callable, optional
        Makes the patch networks (counted in the cold time only).

    Returns
    -------
    (Timing, float)
        ``result``: the probabilities of the band; the seconds for the whole image
        (the measured ones when the band is the whole image).
    """
    timing = cold_and_warm(lambda networks: predict_rows(networks, band), repeats, load=load)
    return timing, timing.warm * height / (band[1] - band[0])


def add_parser(tools) -> None:
    """Register ``speed deepcell-modes`` on the speed tools' sub-parser collection."""
    from nucleiseg import model_types

    parser = tools.add_parser("deepcell-modes", help="DeepCell patch mode vs fully convolutional mode: time and agreement",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=model_types.get("deepcell").default_card,
                        help="DeepCell model card (default: the shipped one; random weights when absent)")
    add_image_arguments(parser)
    parser.add_argument("--rows", type=int, help="patch mode on this many rows (centre of the image), extrapolated to the whole image")
    parser.add_argument("--repeats", type=int, default=3, help="warm calls of the dense mode, median reported (default 3)")
    parser.add_argument("--patch-repeats", type=int, default=1, help="warm calls of patch mode, median reported (default 1)")
    parser.add_argument("--batch-size", type=int, default=512, help="patches per network call in patch mode")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """Time both modes and print their seconds, ratio and largest difference."""
    from nucleiseg.model_types import deepcell
    from nucleiseg.normalization import normalize

    raw = chosen_image(args)
    height, width = raw.shape
    if args.rows is not None and not 1 <= args.rows <= height:
        raise BenchmarkError(f"--rows must be between 1 and the image height ({height})")
    networks, normalization, described = load_networks(args.model, args.seed)
    image = normalize(raw, normalization)
    print(f"image: {height} x {width} ({args.image or 'synthetic'}); model: {described}")

    def predict_batch(batch):
        return np.mean([np.asarray(n.predict_on_batch(batch), dtype=np.float32) for n in networks], axis=0)

    dense = time_dense(predict_batch, image, max(1, args.repeats))  # a warm time needs one call after the first
    print(f"fully convolutional mode, whole image: {dense.warm:.3f} s (warm, median of {len(dense.calls)})")

    band = centre_band(height, args.rows)
    n_rows = band[1] - band[0]
    patch, patch_seconds = time_patches(
        lambda patch_networks, rows: deepcell.predict_patches(image, patch_networks, batch_size=args.batch_size, rows=rows),
        band, height, max(1, args.patch_repeats), load=lambda: deepcell.patch_networks(networks),
    )
    n_patches = n_rows * width * len(networks)
    if n_rows < height:
        print(f"patch mode, rows {band[0]}-{band[1] - 1} ({n_rows} of {height}): {patch.warm:.1f} s measured, "
              f"{n_patches / patch.warm:.0f} patches/s")
        print(f"patch mode, whole image: {patch_seconds:.0f} s EXTRAPOLATED from {n_rows} rows ({patch_seconds / 3600:.2f} h)")
    else:
        print(f"patch mode, whole image: {patch_seconds:.1f} s measured ({n_patches / patch.warm:.0f} patches/s)")
    print(f"patch / fully convolutional time: {patch_seconds / dense.warm:.0f}x"
          + (" (patch time extrapolated)" if n_rows < height else ""))
    difference = float(np.abs(patch.result - dense.result[band[0] : band[1]]).max())
    print(f"max |dp| between modes over {n_rows} row(s) x {width} columns x 3 classes: {difference:.2e}")
    return 0

"""DeepCell's two inference modes on one 520 x 696 image: time and agreement.

* fully convolutional (dense) mode: the dilated network over the whole image
  in one pass, as the CellProfiler module runs it (warm, median of repeats);
* patch mode, as published: every pixel's 61x61 patch through the patch
  network (:func:`nucleiseg.model_types.deepcell.predict_patches`). It is slow, so with
  ``--rows N`` only N rows are predicted and the time is extrapolated to the
  whole image (and printed as such).

Also prints the ratio of the two times and the largest difference in any
class probability between the modes over the rows compared. Without a model
card (DeepCell not trained yet) a randomly initialised network is used.

Run as ``python -m benchmark.deepcell_modes [--model CARD] [--rows N] [--image PATH]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

SHAPE = (520, 696)


def synthetic_image(seed: int) -> np.ndarray:
    """A 520 x 696 synthetic fluorescence image (cut from a square one)."""
    from nucleiseg import synthetic

    image, _ = synthetic.generate_one(0, seed=seed, size=max(SHAPE))
    return image[: SHAPE[0], : SHAPE[1]]


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


def main(argv: list[str] | None = None) -> int:
    from nucleiseg import layouts, cards
    from nucleiseg.model_types import deepcell
    from nucleiseg.model_types.deepcell import MARGIN as DEEPCELL_MARGIN
    from nucleiseg.inference import check_greyscale
    from nucleiseg.normalization import normalize
    from nucleiseg.tiling import predict_tiled

    parser = argparse.ArgumentParser(prog="python -m benchmark.deepcell_modes", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=model_types.get("deepcell").default_card, help="DeepCell model card (default: the shipped one; random weights when absent)")
    parser.add_argument("--rows", type=int, help="patch mode on this many rows (centre of the image), extrapolated to the whole image")
    parser.add_argument("--image", type=Path, help="greyscale image to use instead of the synthetic one")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the dense mode (median)")
    parser.add_argument("--batch-size", type=int, default=512, help="patches per network call in patch mode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    raw = check_greyscale(layouts.read_image(args.image)) if args.image else synthetic_image(args.seed)
    height, width = raw.shape
    if args.rows is not None and not 1 <= args.rows <= height:
        parser.error(f"--rows must be between 1 and the image height ({height})")
    networks, normalization, described = load_networks(args.model, args.seed)
    image = normalize(raw, normalization)
    print(f"image: {height} x {width} ({args.image or 'synthetic'}); model: {described}")

    def predict_batch(batch):
        return np.mean([np.asarray(n.predict_on_batch(batch), dtype=np.float32) for n in networks], axis=0)

    def dense_mode():
        # One pass over the whole image: the tile is larger than the image.
        return predict_tiled(predict_batch, image, tile=max(height, width), margin=DEEPCELL_MARGIN, multiple=1, batch_size=1)

    dense = dense_mode()  # warm-up: traces the graph for this image size
    times = []
    for _ in range(max(1, args.repeats)):
        start = time.perf_counter()
        dense_mode()
        times.append(time.perf_counter() - start)
    dense_seconds = statistics.median(times)
    print(f"fully convolutional mode, whole image: {dense_seconds:.3f} s (warm, median of {len(times)})")

    patch_networks = deepcell.patch_networks(networks)  # weight copy, not timed (done once per model)
    deepcell.predict_patches(image, patch_networks, batch_size=args.batch_size, rows=(0, 1))  # warm-up
    n_rows = args.rows or height
    first = (height - n_rows) // 2
    band = (first, first + n_rows)
    start = time.perf_counter()
    patches = deepcell.predict_patches(image, patch_networks, batch_size=args.batch_size, rows=band)
    measured = time.perf_counter() - start
    n_patches = n_rows * width * len(patch_networks)
    if n_rows < height:
        patch_seconds = measured * height / n_rows
        print(f"patch mode, rows {band[0]}-{band[1] - 1} ({n_rows} of {height}): {measured:.1f} s measured, "
              f"{n_patches / measured:.0f} patches/s")
        print(f"patch mode, whole image: {patch_seconds:.0f} s EXTRAPOLATED from {n_rows} rows ({patch_seconds / 3600:.2f} h)")
    else:
        patch_seconds = measured
        print(f"patch mode, whole image: {patch_seconds:.1f} s measured ({n_patches / measured:.0f} patches/s)")
    print(f"patch / fully convolutional time: {patch_seconds / dense_seconds:.0f}x"
          + (" (patch time extrapolated)" if n_rows < height else ""))
    difference = float(np.abs(patches - dense[band[0] : band[1]]).max())
    print(f"max |dp| between modes over {n_rows} row(s) x {width} columns x 3 classes: {difference:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

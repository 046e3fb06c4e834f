"""Speed of the object-level metric on a realistic synthetic image pair.

``python -m benchmark speed metric [--repeats 300] [--seed 0]``

Builds a 520 x 696 ground-truth label image with about 150 elliptical nuclei and a prediction
made by perturbing it (some nuclei dilated, some eroded, some dropped, some neighbours merged,
some shifted, a few spurious objects added), then prints the warm time of
``nucleiseg.metric.score_image`` (all ten IoU thresholds): the median of ``--repeats`` calls
on that pair after a first, cold one (:mod:`benchmark.speed.timing`).
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage as ndi

from nucleiseg.metric import score_image

from .images import SHAPE
from .timing import cold_and_warm


def synthetic_ground_truth(rng: np.random.Generator, shape=SHAPE, n_nuclei: int = 150) -> np.ndarray:
    """Non-overlapping elliptical nuclei with areas from about 100 to 1300 pixels."""
    labels = np.zeros(shape, np.uint16)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    placed = 0
    for _ in range(n_nuclei * 20):
        if placed == n_nuclei:
            break
        a, b = rng.uniform(6, 20, size=2)
        angle = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(20, shape[0] - 20), rng.uniform(20, shape[1] - 20)
        cos, sin = np.cos(angle), np.sin(angle)
        y0, y1 = int(max(cy - 22, 0)), int(min(cy + 22, shape[0]))
        x0, x1 = int(max(cx - 22, 0)), int(min(cx + 22, shape[1]))
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        inside = ((dx * cos + dy * sin) / a) ** 2 + ((-dx * sin + dy * cos) / b) ** 2 <= 1
        window = labels[y0:y1, x0:x1]
        # Touching is fine (nuclei do touch), overlapping an earlier nucleus is not.
        if inside.sum() < 50 or window[inside].any():
            continue
        placed += 1
        window[inside] = placed
    return labels


def perturbed_prediction(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible segmentation of ``gt`` with the usual kinds of errors."""
    pred = np.zeros_like(gt)
    n = int(gt.max())
    fate = rng.choice(
        ["keep", "dilate", "erode", "drop", "shift", "split"], size=n + 1, p=[0.4, 0.2, 0.2, 0.05, 0.1, 0.05]
    )
    extra = n + 1  # next free label, for split halves and spurious objects
    objects = ndi.find_objects(gt)
    for label, box in enumerate(objects, start=1):
        if box is None or fate[label] == "drop":
            continue
        pad = tuple(slice(max(s.start - 3, 0), min(s.stop + 3, dim)) for s, dim in zip(box, gt.shape))
        mask = gt[pad] == label
        if fate[label] == "dilate":
            mask = ndi.binary_dilation(mask, iterations=int(rng.integers(1, 3)))
        elif fate[label] == "erode":
            mask = ndi.binary_erosion(mask, iterations=int(rng.integers(1, 4)))
        elif fate[label] == "shift":
            mask = np.roll(mask, tuple(rng.integers(-3, 4, size=2)), axis=(0, 1))
        window = pred[pad]
        window[mask & (window == 0)] = label
        if fate[label] == "split":
            # Cut along the longer side through the centre: two halves, each with IoU ~0.5.
            rows, cols = np.nonzero(mask)
            along = cols if np.ptp(cols) >= np.ptp(rows) else rows
            half = along > np.median(along)
            window[rows[half], cols[half]] = extra
            extra += 1
    # Merge some touching or close neighbours into one object.
    grown = ndi.grey_dilation(pred, size=5)
    neighbours = (grown != pred) & (pred > 0) & (grown > 0)
    pairs = np.unique(np.stack([pred[neighbours], grown[neighbours]], axis=1), axis=0)
    for a, b in pairs[rng.permutation(len(pairs))[:8]]:
        pred[pred == b] = a
    # A few spurious detections in the background.
    for _ in range(8):
        cy, cx = rng.integers(10, gt.shape[0] - 10), rng.integers(10, gt.shape[1] - 10)
        window = pred[cy - 4 : cy + 4, cx - 4 : cx + 4]
        window[window == 0] = extra
        extra += 1
    # Non-consecutive labels, as real segmentations often have.
    relabel = np.concatenate(([0], rng.permutation(np.arange(1, pred.max() + 1)) * 3 + 7)).astype(np.uint16)
    return relabel[pred]


def add_parser(tools) -> None:
    """Register ``speed metric`` on the speed tools' sub-parser collection."""
    parser = tools.add_parser("metric", help="ms per 520 x 696 pair of the object-level metric",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=300, help="warm calls, median reported (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic pair")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """Build the synthetic pair, time the metric and print the warm time per pair."""
    rng = np.random.default_rng(args.seed)
    gt = synthetic_ground_truth(rng)
    pred = perturbed_prediction(gt, rng)
    timing = cold_and_warm(lambda _: score_image(gt, pred), args.repeats)
    scores = timing.result
    print(
        f"pair {gt.shape[0]}x{gt.shape[1]}: {scores.nuclei} ground-truth nuclei, {scores.predicted} predicted, "
        f"F1@0.5 {scores.f1[0]:.3f}, mean F1 {scores.f1_mean:.3f}, merges {scores.merges}, splits {scores.splits}"
    )
    print(f"median time per pair (all {len(scores.thresholds)} thresholds, {args.repeats} repeats): {timing.warm * 1e3:.3f} ms")
    return 0

"""How sure a difference between two pipelines is: bootstrap intervals over images.

Benchmarks score each image, and a data set's images differ far more from each
other than two good pipelines do on one image. So the uncertainty of a mean
score, and of the difference between two pipelines scored on the same images,
is estimated by resampling images with replacement (percentile bootstrap);
the difference is paired: each resample draws the same images for both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Resamples drawn at a time, so memory stays small for data sets of many images.
_CHUNK = 1000


@dataclass(frozen=True)
class Interval:
    """A mean over images and its bootstrap interval."""

    mean: float
    low: float
    high: float
    images: int


@dataclass(frozen=True)
class PairedComparison:
    """Pipeline A minus pipeline B on the same images."""

    difference: Interval
    better: int  # images where A scores higher than B
    same: int
    worse: int


def _check(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: need a non-empty 1-D list of per-image scores, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: {int(np.count_nonzero(~np.isfinite(array)))} per-image score(s) are not finite")
    return array


def _check_settings(level: float, resamples: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be between 0 and 1, got {level}")
    if resamples < 100:
        raise ValueError(f"at least 100 resamples are needed, got {resamples}")


def bootstrap_interval(values, level: float = 0.95, resamples: int = 10000, seed: int = 0) -> Interval:
    """The mean of per-image scores with its percentile-bootstrap interval.

    Parameters
    ----------
    values : array_like
        One finite score per image.
    level : float
        Coverage of the interval (0.95: the 2.5th to 97.5th percentile of resampled means).
    resamples : int
        Bootstrap resamples of the images (at least 100).
    seed : int
        Seed of the resampling, so reports are reproducible.

    Returns
    -------
    Interval
        ``mean``, ``low``, ``high`` and the number of images.

    Raises
    ------
    ValueError
        If ``values`` is empty or not finite, or the settings are out of range.
    """
    array = _check(values, "scores")
    _check_settings(level, resamples)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        count = min(_CHUNK, resamples - start)
        means[start:start + count] = array[rng.integers(0, array.size, (count, array.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(array.mean()), float(low), float(high), int(array.size))


def paired_comparison(a, b, level: float = 0.95, resamples: int = 10000, seed: int = 0) -> PairedComparison:
    """Pipeline A minus pipeline B, image by image, with a bootstrap interval of the mean difference.

    Parameters
    ----------
    a, b : array_like
        Per-image scores of the two pipelines, in the same image order.
    level, resamples, seed
        As for :func:`bootstrap_interval`.

    Returns
    -------
    PairedComparison
        The mean difference and its interval, and on how many images A scores higher,
        the same, or lower than B. An interval that excludes 0 says the data would rarely
        give this difference if the pipelines were equally good on images like these.

    Raises
    ------
    ValueError
        If the lists differ in length or are not finite.
    """
    first, second = _check(a, "first pipeline"), _check(b, "second pipeline")
    if first.shape != second.shape:
        raise ValueError(f"paired scores need the same images: {first.size} vs {second.size} scores")
    difference = first - second
    return PairedComparison(
        difference=bootstrap_interval(difference, level, resamples, seed),
        better=int(np.count_nonzero(difference > 0)),
        same=int(np.count_nonzero(difference == 0)),
        worse=int(np.count_nonzero(difference < 0)),
    )

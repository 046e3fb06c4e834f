"""Flat key names of the scores (``f1_050``, ``missed_tiny`` ...) and which of them are counts.

The names are those of docs/CONVENTIONS.md; every table, CSV column and CellProfiler
measurement derived from the scores is named from here.
"""

from __future__ import annotations

from typing import Sequence

from .parameters import DEFAULT_THRESHOLDS, SIZE_BINS, threshold_key

#: Keys that hold counts (summed by both aggregations); all other keys hold rates or means.
COUNT_PREFIXES = ("tp_", "fp_", "fn_", "missed_")
COUNT_KEYS = ("nuclei", "predicted", "merges", "splits")


def metric_keys(thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> list[str]:
    """Flat keys produced by :meth:`~nucleiseg.metric.image_scores.ImageScores.to_dict`, in order.

    Parameters
    ----------
    thresholds : sequence of float
        IoU thresholds.

    Returns
    -------
    list of str
        ``f1_mean``, then ``f1_XXX``, ``precision_XXX``, ``recall_XXX``, ``tp_XXX``,
        ``fp_XXX``, ``fn_XXX`` for each threshold, then the single figures.
    """
    keys = ["f1_mean"]
    suffixes = [threshold_key(t) for t in thresholds]
    for name in ("f1", "precision", "recall", "tp", "fp", "fn"):
        keys += [f"{name}_{s}" for s in suffixes]
    keys += ["mean_iou_050", "nuclei", "predicted", "error_rate_070"]
    keys += [f"missed_{b}" for b in SIZE_BINS]
    keys += ["merges", "splits"]
    return keys


def is_count_key(key: str) -> bool:
    """Whether a flat key holds an integer count (as opposed to a rate or a mean).

    Parameters
    ----------
    key : str
        A flat key as listed by :func:`metric_keys`.

    Returns
    -------
    bool
        True for TP / FP / FN, missed-by-size, nuclei, predicted, merges and splits.
    """
    return key in COUNT_KEYS or key.startswith(COUNT_PREFIXES)

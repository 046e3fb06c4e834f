"""Why ground-truth nuclei were missed: not found, merged, split, or outlined too large or too small.

A nucleus missed at an IoU threshold (no prediction above it) is put in the first of these
that applies, judged against the prediction that overlaps it most:

``not_found``
    No prediction overlaps it with IoU >= the merge IoU (0.1 by default): nothing was detected.
``merged``
    That prediction also overlaps another nucleus with IoU >= the merge IoU.
``split``
    Several predictions overlap it with IoU >= the merge IoU.
``too_large`` / ``too_small``
    One prediction of its own, with a larger / not larger area: the outline is off.

The causes of one size bin add up to its missed count (:attr:`ImageScores.missed_by_size` at
IoU 0.7), so the table says where the misses of e.g. tiny nuclei come from.
"""

from __future__ import annotations

import numpy as np

from .image_scores import ImageScores, _merge_split_masks, size_bin_index
from .parameters import MISSED_THRESHOLD, SIZE_BINS, check_thresholds

#: The causes, in the order they are tried.
CAUSES: tuple[str, ...] = ("not_found", "merged", "split", "too_large", "too_small")


def missed_causes(scores: ImageScores, threshold: float = MISSED_THRESHOLD) -> dict[str, dict[str, int]]:
    """Missed nuclei of one image by size bin and cause.

    Parameters
    ----------
    scores : ImageScores
        Scores of the image (:func:`~nucleiseg.metric.image_scores.score_image`); their merge IoU
        and size edges are used.
    threshold : float
        IoU threshold a nucleus is missed at (default 0.7, as ``missed_by_size``).

    Returns
    -------
    dict
        Size bin (``tiny`` ...) -> cause (:data:`CAUSES`) -> count.
    """
    (threshold,) = check_thresholds([threshold])
    ov = scores.overlap
    n_gt = ov.gt_labels.size
    # Best-overlapping prediction of every nucleus (-1: none overlaps it at all).
    best_iou = np.zeros(n_gt)
    best_pred = np.full(n_gt, -1)
    order = np.argsort(ov.pair_iou, kind="stable")  # later (larger) IoUs overwrite earlier ones
    best_iou[ov.pair_gt[order]] = ov.pair_iou[order]
    best_pred[ov.pair_gt[order]] = ov.pair_pred[order]
    missed = best_iou <= threshold
    merged_pred, split_gt = _merge_split_masks(ov, scores.merge_iou)
    cause = np.full(n_gt, len(CAUSES) - 1)  # too_small unless an earlier cause applies
    has_pred = best_pred >= 0
    larger = np.zeros(n_gt, bool)
    larger[has_pred] = ov.pred_areas[best_pred[has_pred]] > ov.gt_areas[has_pred]
    cause[larger] = CAUSES.index("too_large")
    cause[split_gt] = CAUSES.index("split")
    merged = np.zeros(n_gt, bool)
    merged[has_pred] = merged_pred[best_pred[has_pred]]
    cause[merged] = CAUSES.index("merged")
    cause[best_iou < scores.merge_iou] = CAUSES.index("not_found")
    bins = size_bin_index(ov.gt_areas, scores.size_edges)
    counts = np.zeros((len(SIZE_BINS), len(CAUSES)), np.int64)
    np.add.at(counts, (bins[missed], cause[missed]), 1)
    return {b: {c: int(counts[i, j]) for j, c in enumerate(CAUSES)} for i, b in enumerate(SIZE_BINS)}


#: Size bins whose causes get their own columns (besides the causes over every size).
CAUSE_BINS: tuple[str, ...] = ("tiny",)


def missed_cause_keys(bins: tuple[str, ...] = CAUSE_BINS) -> list[str]:
    """Column names of :func:`missed_cause_figures`: ``missed_<cause>``, then ``missed_<bin>_<cause>``."""
    return [f"missed_{c}" for c in CAUSES] + [f"missed_{b}_{c}" for b in bins for c in CAUSES]


def missed_cause_figures(scores: ImageScores, bins: tuple[str, ...] = CAUSE_BINS) -> dict[str, int]:
    """Flat counts at IoU 0.7 for tables, keyed by :func:`missed_cause_keys`: each cause over every
    size, then each cause of the nuclei of ``bins``."""
    table = missed_causes(scores)
    flat = {f"missed_{c}": sum(table[b][c] for b in SIZE_BINS) for c in CAUSES}
    for b in bins:
        flat.update({f"missed_{b}_{c}": table[b][c] for c in CAUSES})
    return flat


"""Sparse overlap of a ground-truth and a predicted label image: areas and pairwise IoU.

Both label images are scanned once in raster order and cut into runs of pixels with the same
(ground truth, prediction) label pair; label areas and pair intersections are then weighted
counts over those few thousand runs, never a dense ``n_gt x n_pred`` matrix or a loop over
objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

@dataclass(frozen=True)
class Overlap:
    """Sparse overlap of a ground-truth and a predicted label image.

    Attributes
    ----------
    gt_labels, pred_labels : ndarray of int64
        Labels present in each image, sorted, background (0) excluded.
    gt_areas, pred_areas : ndarray of int64
        Pixel count of each present label, aligned with the label arrays.
    pair_gt, pair_pred : ndarray of intp
        For each overlapping (ground truth, prediction) pair, the *index* into ``gt_labels``
        and ``pred_labels``.
    pair_intersection : ndarray of int64
        Overlapping pixels of each pair.
    pair_iou : ndarray of float64
        Intersection over union of each pair (always > 0).
    """

    gt_labels: np.ndarray
    gt_areas: np.ndarray
    pred_labels: np.ndarray
    pred_areas: np.ndarray
    pair_gt: np.ndarray
    pair_pred: np.ndarray
    pair_intersection: np.ndarray
    pair_iou: np.ndarray


def _check_labels(labels: np.ndarray, name: str) -> np.ndarray:
    """The labels as an array; ValueError naming ``name`` unless 2-D and integer."""
    array = np.asarray(labels)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D label image, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer labels, got dtype {array.dtype}")
    return array


def _compact(run_labels: np.ndarray, run_lengths: np.ndarray, name: str):
    """Present labels, their areas and the per-run index into them (-1 for background)."""
    if run_labels.dtype.kind == "i" and run_labels.size and run_labels.min() < 0:
        raise ValueError(f"{name} holds negative labels; instance labels must be >= 0")
    if run_labels.size and int(run_labels.max()) <= 4 * run_labels.size + 65536:
        # Small label values (the usual case): a bincount is cheaper than sorting.
        values = run_labels.astype(np.intp, copy=False)
        areas = np.bincount(values, weights=run_lengths).astype(np.int64)
        areas[0] = 0
        present = np.flatnonzero(areas)
        lookup = np.full(areas.size, -1, dtype=np.intp)
        lookup[present] = np.arange(present.size)
        return present.astype(np.int64), areas[present], lookup[values]
    # Huge or sparse label values: sort the (few) run labels instead.
    labels, inverse = np.unique(run_labels, return_inverse=True)
    areas = np.bincount(inverse, weights=run_lengths, minlength=labels.size).astype(np.int64)
    index = inverse.astype(np.intp)
    if labels.size and labels[0] == 0:
        labels, areas, index = labels[1:], areas[1:], index - 1
    return labels.astype(np.int64), areas, index


def compute_overlap(gt: np.ndarray, pred: np.ndarray) -> Overlap:
    """Areas and pairwise intersections / IoU of two label images, computed sparsely.

    Parameters
    ----------
    gt, pred : ndarray
        2-D integer label images of the same shape; 0 is background, labels need not be
        consecutive and may have any integer dtype.

    Returns
    -------
    Overlap
        Present labels, areas and every overlapping pair with its IoU.

    Raises
    ------
    ValueError
        If an input is not 2-D, not integer, holds negative labels, or the shapes differ.
    """
    gt = _check_labels(gt, "ground truth")
    pred = _check_labels(pred, "prediction")
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth and prediction shapes differ: {gt.shape} vs {pred.shape}")
    g = np.ravel(gt)
    p = np.ravel(pred)
    n = g.size
    if n == 0:
        empty_i = np.zeros(0, np.int64)
        empty_x = np.zeros(0, np.intp)
        return Overlap(empty_i, empty_i, empty_i, empty_i, empty_x, empty_x, empty_i, np.zeros(0))

    # Runs of constant (gt, pred) label pair in raster order: a nucleus row is one run, so the
    # rest of the work touches thousands of runs rather than hundreds of thousands of pixels.
    change = g[1:] != g[:-1]
    change |= p[1:] != p[:-1]
    starts = np.flatnonzero(change)
    starts += 1
    starts = np.concatenate(([0], starts))
    lengths = np.diff(starts, append=n)
    g_run = g[starts]
    p_run = p[starts]

    gt_labels, gt_areas, g_index = _compact(g_run, lengths, "ground truth")
    pred_labels, pred_areas, p_index = _compact(p_run, lengths, "prediction")

    both = (g_index >= 0) & (p_index >= 0)
    # Combined int64 key of the compact indices; compact indices keep it far from overflow.
    key = g_index[both].astype(np.int64) * max(pred_labels.size, 1) + p_index[both]
    if key.size:
        pair_keys, inverse = np.unique(key, return_inverse=True)
        intersection = np.bincount(inverse, weights=lengths[both], minlength=pair_keys.size).astype(np.int64)
    else:
        pair_keys = np.zeros(0, np.int64)
        intersection = np.zeros(0, np.int64)
    stride = max(pred_labels.size, 1)
    pair_gt = (pair_keys // stride).astype(np.intp)
    pair_pred = (pair_keys % stride).astype(np.intp)
    union = gt_areas[pair_gt] + pred_areas[pair_pred] - intersection
    iou = intersection / union
    return Overlap(gt_labels, gt_areas, pred_labels, pred_areas, pair_gt, pair_pred, intersection, iou)

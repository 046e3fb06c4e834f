"""Matching of objects and the scores of one image: TP / FP / FN, F1, missed nuclei by size,
merges and splits.

A predicted object matches a ground-truth nucleus when their IoU is above a threshold ``t``.
Because ``t >= 0.5``, every ground-truth nucleus has at most one partner and vice versa (two
partners would need more than half of the union each), so matching needs no assignment solver:
it is a filter on the list of overlapping pairs of :class:`~nucleiseg.metric.overlap.Overlap`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .overlap import Overlap, compute_overlap
from .parameters import (
    DEFAULT_MERGE_IOU,
    DEFAULT_SIZE_EDGES,
    DEFAULT_THRESHOLDS,
    MISSED_THRESHOLD,
    SIZE_BINS,
    check_merge_iou,
    check_size_edges,
    check_thresholds,
    threshold_key,
)


def rates_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from TP / FP / FN, with the empty-image conventions of the metric.

    Per-image scores and the pooled (micro) aggregate both come from here, so that both treat
    empty images alike.

    Parameters
    ----------
    tp, fp, fn : ndarray of int
        Counts, one per threshold.

    Returns
    -------
    precision, recall, f1 : ndarray of float64
        Precision is 1 when nothing was predicted and nothing was missed, else 0 for no
        predictions; recall likewise; F1 = 2TP / (2TP + FP + FN) is 1 only when both images
        are empty.
    """
    tp = tp.astype(np.float64)
    fp = fp.astype(np.float64)
    fn = fn.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.where(fn == 0, 1.0, 0.0))
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.where(fp == 0, 1.0, 0.0))
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 1.0)
    return precision, recall, f1


@dataclass(frozen=True)
class ObjectMatches:
    """Which objects of one image are matched, missed, false positives, merges or splits.

    All fields hold labels as they appear in the label images (not indices).

    Attributes
    ----------
    threshold : float
        IoU threshold of the matching (a match needs IoU > threshold).
    matched_gt, matched_pred : ndarray of int64
        Matched pairs, aligned: ``matched_gt[i]`` matches ``matched_pred[i]``.
    matched_iou : ndarray of float64
        IoU of each matched pair.
    missed_gt : ndarray of int64
        Ground-truth nuclei without a match (false negatives).
    false_positive_pred : ndarray of int64
        Predicted objects without a match (false positives).
    merged_pred : ndarray of int64
        Predicted objects overlapping more than one ground-truth nucleus with IoU >= merge IoU.
    split_gt : ndarray of int64
        Ground-truth nuclei overlapped by more than one prediction with IoU >= merge IoU.
    """

    threshold: float
    matched_gt: np.ndarray
    matched_pred: np.ndarray
    matched_iou: np.ndarray
    missed_gt: np.ndarray
    false_positive_pred: np.ndarray
    merged_pred: np.ndarray
    split_gt: np.ndarray


@dataclass(frozen=True)
class ImageScores:
    """Object-level scores of one image.

    Attributes
    ----------
    thresholds : tuple of float
        IoU thresholds, aligned with the per-threshold arrays.
    tp, fp, fn : ndarray of int64
        Matched predictions, unmatched predictions and unmatched ground-truth nuclei.
    precision, recall, f1 : ndarray of float64
        Rates per threshold (see :func:`score_image` for empty images).
    f1_mean : float
        Mean of ``f1`` over the thresholds.
    mean_iou_050 : float
        Mean IoU of the pairs matched at IoU > 0.5; NaN when there is none.
    nuclei, predicted : int
        Ground-truth and predicted object counts.
    error_rate_070 : float
        Ground-truth nuclei missed at IoU > 0.7 divided by ``nuclei`` (0 when there are none).
    missed_by_size : dict of str to int
        Nuclei missed at IoU 0.7 per size bin (``tiny``, ``small``, ``normal``, ``large``).
    merges : int
        Predicted objects that overlap more than one ground-truth nucleus with IoU >= merge IoU.
    splits : int
        Ground-truth nuclei overlapped by more than one prediction with IoU >= merge IoU.
    size_edges : tuple of float
        Area edges of the size bins.
    merge_iou : float
        Minimum IoU of an overlap counting towards merges and splits.
    overlap : Overlap
        The sparse overlap the scores come from (for per-object queries).
    """

    thresholds: tuple[float, ...]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    f1_mean: float
    mean_iou_050: float
    nuclei: int
    predicted: int
    error_rate_070: float
    missed_by_size: dict[str, int]
    merges: int
    splits: int
    size_edges: tuple[float, float, float]
    merge_iou: float
    overlap: Overlap = field(repr=False)

    def to_dict(self) -> dict[str, float | int]:
        """Flat figures under the names of docs/CONVENTIONS.md.

        Returns
        -------
        dict
            Keys as listed by :func:`~nucleiseg.metric.keys.metric_keys`; counts are
            ``int``, rates ``float``.
        """
        out: dict[str, float | int] = {"f1_mean": float(self.f1_mean)}
        suffixes = [threshold_key(t) for t in self.thresholds]
        for name, values, cast in (
            ("f1", self.f1, float),
            ("precision", self.precision, float),
            ("recall", self.recall, float),
            ("tp", self.tp, int),
            ("fp", self.fp, int),
            ("fn", self.fn, int),
        ):
            for suffix, value in zip(suffixes, values):
                out[f"{name}_{suffix}"] = cast(value)
        out["mean_iou_050"] = float(self.mean_iou_050)
        out["nuclei"] = int(self.nuclei)
        out["predicted"] = int(self.predicted)
        out["error_rate_070"] = float(self.error_rate_070)
        for name in SIZE_BINS:
            out[f"missed_{name}"] = int(self.missed_by_size[name])
        out["merges"] = int(self.merges)
        out["splits"] = int(self.splits)
        return out

    def matches(self, threshold: float = 0.5) -> ObjectMatches:
        """Per-object outcome at one IoU threshold, for displays and inspection.

        Parameters
        ----------
        threshold : float
            IoU threshold >= 0.5 (need not be one of ``thresholds``).

        Returns
        -------
        ObjectMatches
            Labels of matched, missed, false-positive, merged and split objects.
        """
        (threshold,) = check_thresholds([threshold])
        ov = self.overlap
        hit = ov.pair_iou > threshold
        matched_gt_index = ov.pair_gt[hit]
        matched_pred_index = ov.pair_pred[hit]
        gt_hit = np.zeros(ov.gt_labels.size, bool)
        gt_hit[matched_gt_index] = True
        pred_hit = np.zeros(ov.pred_labels.size, bool)
        pred_hit[matched_pred_index] = True
        merged, split = _merge_split_masks(ov, self.merge_iou)
        return ObjectMatches(
            threshold=threshold,
            matched_gt=ov.gt_labels[matched_gt_index],
            matched_pred=ov.pred_labels[matched_pred_index],
            matched_iou=ov.pair_iou[hit],
            missed_gt=ov.gt_labels[~gt_hit],
            false_positive_pred=ov.pred_labels[~pred_hit],
            merged_pred=ov.pred_labels[merged],
            split_gt=ov.gt_labels[split],
        )


def _merge_split_masks(ov: Overlap, merge_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over predictions (merges) and ground truth (splits)."""
    strong = ov.pair_iou >= merge_iou
    per_pred = np.bincount(ov.pair_pred[strong], minlength=ov.pred_labels.size)
    per_gt = np.bincount(ov.pair_gt[strong], minlength=ov.gt_labels.size)
    return per_pred > 1, per_gt > 1


def size_bin_index(areas: np.ndarray, size_edges: Sequence[float] = DEFAULT_SIZE_EDGES) -> np.ndarray:
    """Size bin (0 tiny, 1 small, 2 normal, 3 large) of each area.

    Bins are closed below and open above: with the default edges tiny is ``area < 250``,
    small ``250 <= area < 625``, normal ``625 <= area < 900`` and large ``area >= 900``.

    Parameters
    ----------
    areas : ndarray
        Object areas in pixels.
    size_edges : sequence of three floats
        Increasing bin edges.

    Returns
    -------
    ndarray of intp
        Bin index per area.
    """
    return np.searchsorted(np.asarray(size_edges, dtype=np.float64), np.asarray(areas, dtype=np.float64), side="right")


def score_overlap(
    overlap: Overlap,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    size_edges: Sequence[float] = DEFAULT_SIZE_EDGES,
    merge_iou: float = DEFAULT_MERGE_IOU,
) -> ImageScores:
    """Scores of an already computed overlap.

    Parameters
    ----------
    overlap : Overlap
        Output of :func:`~nucleiseg.metric.overlap.compute_overlap`.
    thresholds, size_edges, merge_iou
        As in :func:`score_image`.

    Returns
    -------
    ImageScores
        As :func:`score_image`, which is ``score_overlap(compute_overlap(gt, pred), ...)``.
    """
    thresholds = check_thresholds(thresholds)
    size_edges = check_size_edges(size_edges)
    merge_iou = check_merge_iou(merge_iou)
    n_gt = int(overlap.gt_labels.size)
    n_pred = int(overlap.pred_labels.size)
    iou = overlap.pair_iou

    # Only pairs above 0.5 can ever match; with the sorted list, TP at any threshold is the count
    # of IoUs above it, so all thresholds cost one searchsorted.
    candidate = iou > 0.5
    sorted_iou = np.sort(iou[candidate])
    t = np.asarray(thresholds, dtype=np.float64)
    tp = (sorted_iou.size - np.searchsorted(sorted_iou, t, side="right")).astype(np.int64)
    fp = n_pred - tp
    fn = n_gt - tp
    precision, recall, f1 = rates_from_counts(tp, fp, fn)

    mean_iou = float(sorted_iou.mean()) if sorted_iou.size else float("nan")

    matched_070 = np.zeros(n_gt, bool)
    matched_070[overlap.pair_gt[iou > MISSED_THRESHOLD]] = True
    missed_areas = overlap.gt_areas[~matched_070]
    counts = np.bincount(size_bin_index(missed_areas, size_edges), minlength=len(SIZE_BINS))
    missed_by_size = {name: int(c) for name, c in zip(SIZE_BINS, counts)}
    error_rate = float(missed_areas.size / n_gt) if n_gt else 0.0

    merged, split = _merge_split_masks(overlap, merge_iou)
    return ImageScores(
        thresholds=thresholds,
        tp=tp,
        fp=fp,
        fn=fn,
        precision=precision,
        recall=recall,
        f1=f1,
        f1_mean=float(f1.mean()),
        mean_iou_050=mean_iou,
        nuclei=n_gt,
        predicted=n_pred,
        error_rate_070=error_rate,
        missed_by_size=missed_by_size,
        merges=int(merged.sum()),
        splits=int(split.sum()),
        size_edges=size_edges,
        merge_iou=merge_iou,
        overlap=overlap,
    )


def score_image(
    gt: np.ndarray,
    pred: np.ndarray,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    size_edges: Sequence[float] = DEFAULT_SIZE_EDGES,
    merge_iou: float = DEFAULT_MERGE_IOU,
) -> ImageScores:
    """Object-level scores of a predicted label image against ground truth.

    Parameters
    ----------
    gt : ndarray
        2-D ground-truth instance labels (any integer dtype, 0 = background, labels need not be
        consecutive).
    pred : ndarray
        2-D predicted instance labels, same shape.
    thresholds : sequence of float, optional
        IoU thresholds, each in [0.5, 1] with at most two decimals; a pair matches when
        IoU > threshold.  Default 0.50, 0.55 ... 0.95.
    size_edges : sequence of three floats, optional
        Area edges of the tiny / small / normal / large bins of missed nuclei (default
        250, 625, 900 pixels; see :func:`size_bin_index`).
    merge_iou : float, optional
        Minimum IoU of an overlap counting towards merges and splits (default 0.1).

    Returns
    -------
    ImageScores
        Per-threshold TP / FP / FN / precision / recall / F1 and the single figures.

    Raises
    ------
    ValueError
        For invalid inputs or parameters (see :func:`~nucleiseg.metric.overlap.compute_overlap`, :func:`~nucleiseg.metric.parameters.check_thresholds`).

    Notes
    -----
    Empty images: when both are empty, precision, recall and F1 are 1 at every threshold; when
    exactly one is empty, they are 0.  ``mean_iou_050`` is NaN without any match, and
    ``error_rate_070`` is 0 without ground-truth nuclei.
    """
    # Validate parameters before touching the images so that bad settings fail fast.
    thresholds = check_thresholds(thresholds)
    return score_overlap(compute_overlap(gt, pred), thresholds, size_edges, merge_iou)

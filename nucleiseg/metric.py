"""Object-level segmentation metrics: F1 over IoU thresholds, missed nuclei by size, merges, splits.

Follows the evaluation of Caicedo et al. 2019, "Evaluation of Deep Learning Strategies for
Nucleus Segmentation in Fluorescence Images" (Cytometry A, doi:10.1002/cyto.a.23863): a
predicted object matches a ground-truth nucleus when their intersection over union (IoU) is
above a threshold ``t``; F1 = 2 TP / (2 TP + FP + FN) is reported for t = 0.50, 0.55 ... 0.95
and averaged.

Because a match needs IoU > t >= 0.5, every ground-truth nucleus has at most one partner and
vice versa (two partners would need more than half of the union each), so matching needs no
assignment solver: it is a filter on the list of overlapping pairs.

The overlap is computed sparsely.  Both label images are scanned once in raster order and cut
into runs of pixels with the same (ground truth, prediction) label pair; label areas and pair
intersections are then weighted counts over those few thousand runs, never a dense
``n_gt x n_pred`` matrix or a loop over objects.

Everything here is pure numpy; nothing imports CellProfiler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

#: IoU thresholds of the paper: 0.50, 0.55 ... 0.95.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
#: Area edges (pixels) between the tiny / small / normal / large bins.
DEFAULT_SIZE_EDGES: tuple[float, float, float] = (250.0, 625.0, 900.0)
#: Names of the four size bins, smallest first.
SIZE_BINS: tuple[str, str, str, str] = ("tiny", "small", "normal", "large")
#: Minimum IoU for an overlap to count towards a merge or a split.
DEFAULT_MERGE_IOU = 0.1
#: Fixed thresholds of the single-threshold figures (``mean_iou_050``, ``error_rate_070``).
MEAN_IOU_THRESHOLD = 0.5
MISSED_THRESHOLD = 0.7


# --------------------------------------------------------------------------------------------
# Parameter checks and naming
# --------------------------------------------------------------------------------------------


def threshold_key(threshold: float) -> str:
    """Three-digit suffix naming a threshold in flat keys, e.g. ``0.5 -> "050"``.

    Parameters
    ----------
    threshold : float
        IoU threshold with at most two decimals.

    Returns
    -------
    str
        ``round(100 * threshold)`` zero-padded to three digits.

    Raises
    ------
    ValueError
        If the threshold has more than two decimals (two thresholds would share a name).
    """
    hundredths = round(float(threshold) * 100)
    if abs(float(threshold) * 100 - hundredths) > 1e-6:
        raise ValueError(f"IoU threshold {threshold!r} must have at most two decimals (it names the measurement)")
    return f"{hundredths:03d}"


def check_thresholds(thresholds: Iterable[float]) -> tuple[float, ...]:
    """Validate IoU thresholds and return them as a tuple of floats.

    Parameters
    ----------
    thresholds : iterable of float
        Thresholds in [0.5, 1.0] with at most two decimals, no duplicates.

    Returns
    -------
    tuple of float
        The thresholds in the given order.

    Raises
    ------
    ValueError
        If the list is empty, a value is below 0.5 (matching would no longer be one-to-one and
        would need an assignment solver), above 1, not finite, has more than two decimals, or
        appears twice.
    """
    values = tuple(float(t) for t in thresholds)
    if not values:
        raise ValueError("at least one IoU threshold is needed")
    for t in values:
        if not np.isfinite(t):
            raise ValueError(f"IoU threshold {t!r} is not a finite number")
        if t < 0.5:
            raise ValueError(
                f"IoU threshold {t:g} is below 0.5: matching is one-to-one only for thresholds >= 0.5, "
                "and this metric does not run an assignment solver"
            )
        if t > 1.0:
            raise ValueError(f"IoU threshold {t:g} is above 1 (IoU never exceeds 1)")
    keys = [threshold_key(t) for t in values]
    if len(set(keys)) != len(keys):
        raise ValueError(f"IoU thresholds must be distinct, got {', '.join(f'{t:g}' for t in values)}")
    return values


def parse_thresholds(text: str) -> tuple[float, ...]:
    """Parse a comma- or space-separated list of IoU thresholds, e.g. ``"0.5, 0.75"``.

    Parameters
    ----------
    text : str
        The list as typed by a user.

    Returns
    -------
    tuple of float
        Validated thresholds (see :func:`check_thresholds`).

    Raises
    ------
    ValueError
        If an item is not a number or the thresholds are invalid.
    """
    return check_thresholds(_parse_numbers(text, "IoU thresholds"))


def _parse_numbers(text: str, what: str) -> list[float]:
    """Numbers of a comma- or space-separated list; ValueError naming ``what`` otherwise."""
    try:
        return [float(item) for item in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas, got {text!r}") from None


def check_size_edges(edges: Iterable[float]) -> tuple[float, float, float]:
    """Validate the three area edges between the tiny / small / normal / large bins.

    Parameters
    ----------
    edges : iterable of float
        Three strictly increasing, non-negative areas in pixels.

    Returns
    -------
    tuple of float
        The edges.

    Raises
    ------
    ValueError
        If there are not exactly three increasing non-negative finite edges.
    """
    values = tuple(float(e) for e in edges)
    if len(values) != 3:
        raise ValueError(f"exactly three size-bin edges are needed (tiny|small|normal|large), got {len(values)}")
    if not all(np.isfinite(values)) or values[0] < 0 or not values[0] < values[1] < values[2]:
        raise ValueError(f"size-bin edges must be non-negative and strictly increasing, got {values}")
    return values  # type: ignore[return-value]


def parse_size_edges(text: str) -> tuple[float, float, float]:
    """Parse three comma- or space-separated size-bin edges, e.g. ``"250, 625, 900"``.

    Parameters
    ----------
    text : str
        The edges as typed by a user.

    Returns
    -------
    tuple of float
        Validated edges (see :func:`check_size_edges`).

    Raises
    ------
    ValueError
        If an item is not a number or the edges are invalid.
    """
    return check_size_edges(_parse_numbers(text, "size-bin edges"))


def check_merge_iou(merge_iou: float) -> float:
    """Validate the minimum IoU of an overlap that counts towards merges and splits.

    Parameters
    ----------
    merge_iou : float
        A value in (0, 1].

    Returns
    -------
    float
        The value.

    Raises
    ------
    ValueError
        If it is outside (0, 1].
    """
    value = float(merge_iou)
    if not (0.0 < value <= 1.0):
        raise ValueError(f"merge/split IoU must lie in (0, 1], got {merge_iou!r}")
    return value


def metric_keys(thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> list[str]:
    """Flat keys produced by :meth:`ImageScores.to_dict` for the given thresholds, in order.

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


#: Keys that hold counts (summed by both aggregations); all other keys hold rates or means.
COUNT_PREFIXES = ("tp_", "fp_", "fn_", "missed_")
COUNT_KEYS = ("nuclei", "predicted", "merges", "splits")


def is_count_key(key: str) -> bool:
    """Whether a flat key holds an integer count (as opposed to a rate or a mean)."""
    return key in COUNT_KEYS or key.startswith(COUNT_PREFIXES)


# --------------------------------------------------------------------------------------------
# Overlap of two label images
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Per-image scores
# --------------------------------------------------------------------------------------------


def _rates(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray):
    """Precision, recall and F1 with the empty-image conventions of this module.

    Precision is 1 when nothing was predicted and nothing was missed, else 0 for no predictions;
    recall likewise; F1 = 2TP / (2TP + FP + FN) is 1 only when both images are empty.
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
            Keys as listed by :func:`metric_keys`; counts are ``int``, rates ``float``.
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


#: Codes of :func:`outcome_image`, by name.
OUTCOME_CODES: dict[str, int] = {"background": 0, "matched": 1, "missed": 2, "false_positive": 3, "merged": 4, "split": 5}
#: Colour name and RGB (0..1) of each outcome, shared by every display of outcomes
#: (EvaluateObjectF1's figure, the benchmark report's example crops).
OUTCOME_COLOURS: dict[str, tuple[str, tuple[float, float, float]]] = {
    "matched": ("green", (0.1, 0.8, 0.1)),
    "missed": ("red", (0.9, 0.1, 0.1)),
    "false_positive": ("yellow", (1.0, 0.8, 0.0)),
    "merged": ("blue", (0.1, 0.5, 1.0)),
    "split": ("magenta", (0.9, 0.2, 0.9)),
}


def outcome_image(labels: np.ndarray, matches: ObjectMatches, role: str) -> np.ndarray:
    """Per-pixel outcome code of a label image, for displays.

    Parameters
    ----------
    labels : ndarray
        The ground-truth or the predicted label image that ``matches`` was computed from.
    matches : ObjectMatches
        Result of :meth:`ImageScores.matches`.
    role : {"gt", "pred"}
        Whether ``labels`` is the ground truth or the prediction.

    Returns
    -------
    ndarray of uint8
        :data:`OUTCOME_CODES` per pixel.  Ground truth: matched, missed or split; prediction:
        matched, false positive or merged.  Splits and merges take precedence, since a split
        nucleus is usually also missed and a merged object usually also a false positive.
    """
    labels = np.asarray(labels)
    if role == "gt":
        groups = [(matches.matched_gt, "matched"), (matches.missed_gt, "missed"), (matches.split_gt, "split")]
    elif role == "pred":
        groups = [(matches.matched_pred, "matched"), (matches.false_positive_pred, "false_positive"), (matches.merged_pred, "merged")]
    else:
        raise ValueError(f"role must be 'gt' or 'pred', got {role!r}")
    out = np.zeros(labels.shape, np.uint8)
    if labels.size == 0:
        return out
    top = int(labels.max())
    if top <= 4 * labels.size + 65536:
        # A lookup table costs one gather over the image.
        lut = np.zeros(top + 1, np.uint8)
        for group, name in groups:
            lut[group[group <= top]] = OUTCOME_CODES[name]
        return lut[np.clip(labels, 0, None)]
    for group, name in groups:
        out[np.isin(labels, group)] = OUTCOME_CODES[name]
    return out


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
        Output of :func:`compute_overlap`.
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
    precision, recall, f1 = _rates(tp, fp, fn)

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
        For invalid inputs or parameters (see :func:`compute_overlap`, :func:`check_thresholds`).

    Notes
    -----
    Empty images: when both are empty, precision, recall and F1 are 1 at every threshold; when
    exactly one is empty, they are 0.  ``mean_iou_050`` is NaN without any match, and
    ``error_rate_070`` is 0 without ground-truth nuclei.
    """
    # Validate parameters before touching the images so that bad settings fail fast.
    thresholds = check_thresholds(thresholds)
    return score_overlap(compute_overlap(gt, pred), thresholds, size_edges, merge_iou)


# --------------------------------------------------------------------------------------------
# Dataset aggregation
# --------------------------------------------------------------------------------------------


def _as_dicts(scores: Iterable[ImageScores | Mapping[str, float]]) -> list[Mapping[str, float]]:
    return [s.to_dict() if isinstance(s, ImageScores) else s for s in scores]


def _common_keys(rows: list[Mapping[str, float]]) -> list[str]:
    keys = list(rows[0])
    for row in rows[1:]:
        if set(row) != set(keys):
            raise ValueError("images were scored with different thresholds; aggregate them separately")
    return keys


def _suffixes(keys: Iterable[str]) -> list[str]:
    return [k[len("f1_"):] for k in keys if k.startswith("f1_") and k != "f1_mean"]


def aggregate_macro(scores: Iterable[ImageScores | Mapping[str, float]]) -> dict[str, float | int]:
    """Dataset figures as the mean of per-image scores (the paper's aggregation).

    Parameters
    ----------
    scores : iterable of ImageScores or flat dicts
        Per-image results (``ImageScores`` or the output of ``to_dict()``), same thresholds.

    Returns
    -------
    dict
        Same keys as :meth:`ImageScores.to_dict` plus ``images``.  Rates (F1, precision,
        recall, ``f1_mean``, ``error_rate_070``) are means over images, ``mean_iou_050`` a mean
        over images that have a match (NaN when none has); counts (TP, FP, FN, nuclei,
        predicted, missed, merges, splits) are summed.  Empty input gives ``{"images": 0}``.
    """
    rows = _as_dicts(scores)
    if not rows:
        return {"images": 0}
    keys = _common_keys(rows)
    out: dict[str, float | int] = {}
    for key in keys:
        values = np.array([row[key] for row in rows], dtype=np.float64)
        if is_count_key(key):
            out[key] = int(values.sum())
        elif key == "mean_iou_050":
            finite = values[np.isfinite(values)]
            out[key] = float(finite.mean()) if finite.size else float("nan")
        else:
            out[key] = float(values.mean())
    out["images"] = len(rows)
    return out


def aggregate_micro(scores: Iterable[ImageScores | Mapping[str, float]]) -> dict[str, float | int]:
    """Dataset figures from TP / FP / FN counts pooled over all images.

    Parameters
    ----------
    scores : iterable of ImageScores or flat dicts
        Per-image results, same thresholds.

    Returns
    -------
    dict
        Same keys as :meth:`ImageScores.to_dict` plus ``images``.  Precision, recall and F1 per
        threshold come from the summed counts (with the empty conventions of
        :func:`score_image`), ``f1_mean`` is their mean over thresholds, ``mean_iou_050`` the
        mean IoU over all pairs matched at 0.5 (weighted by ``tp_050``; needs ``tp_050``
        among the keys, else NaN), ``error_rate_070`` the summed missed nuclei over summed
        nuclei; counts are summed.  Empty input gives ``{"images": 0}``.
    """
    rows = _as_dicts(scores)
    if not rows:
        return {"images": 0}
    keys = _common_keys(rows)
    total = {k: int(sum(int(row[k]) for row in rows)) for k in keys if is_count_key(k)}
    suffixes = _suffixes(keys)
    tp = np.array([total[f"tp_{s}"] for s in suffixes])
    fp = np.array([total[f"fp_{s}"] for s in suffixes])
    fn = np.array([total[f"fn_{s}"] for s in suffixes])
    precision, recall, f1 = _rates(tp, fp, fn)
    out: dict[str, float | int] = {}
    for key in keys:
        if key == "f1_mean":
            out[key] = float(f1.mean())
        elif is_count_key(key):
            out[key] = total[key]
        elif key == "mean_iou_050":
            if "tp_050" in keys and total["tp_050"] > 0:
                weighted = sum(row["mean_iou_050"] * row["tp_050"] for row in rows if row["tp_050"] > 0)
                out[key] = float(weighted / total["tp_050"])
            else:
                out[key] = float("nan")
        elif key == "error_rate_070":
            missed = sum(total[f"missed_{b}"] for b in SIZE_BINS)
            out[key] = float(missed / total["nuclei"]) if total["nuclei"] else 0.0
        else:
            name, suffix = key.rsplit("_", 1)
            values = {"f1": f1, "precision": precision, "recall": recall}[name]
            out[key] = float(values[suffixes.index(suffix)])
    out["images"] = len(rows)
    return out

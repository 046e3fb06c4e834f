"""Dataset figures from per-image scores: the mean over images (macro) and pooled counts (micro)."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from .image_scores import ImageScores, rates_from_counts
from .keys import is_count_key
from .outline_size import AREA_RATIO_KEY
from .parameters import SIZE_BINS

#: Figures of the pairs matched at IoU 0.5: NaN for an image without any match, so they are
#: averaged over the images that have one (and, pooled, weighted by their matches).
MATCHED_PAIR_KEYS = ("mean_iou_050", AREA_RATIO_KEY)


def _as_dicts(scores: Iterable[ImageScores | Mapping[str, float]]) -> list[Mapping[str, float]]:
    """Flat dicts of the scores; both kinds are accepted so stored CSV rows aggregate too."""
    return [s.to_dict() if isinstance(s, ImageScores) else s for s in scores]


def _common_keys(rows: list[Mapping[str, float]]) -> list[str]:
    """Keys shared by all rows; ValueError when rows were scored with different thresholds."""
    keys = list(rows[0])
    for row in rows[1:]:
        if set(row) != set(keys):
            raise ValueError("images were scored with different thresholds; aggregate them separately")
    return keys


def _suffixes(keys: Iterable[str]) -> list[str]:
    """Threshold suffixes (``"050"`` ...) present among the keys, in key order."""
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
        Same keys as :meth:`~nucleiseg.metric.image_scores.ImageScores.to_dict` plus ``images``.  Rates (F1, precision,
        recall, ``f1_mean``, ``error_rate_070``) are means over images, ``mean_iou_050`` and
        ``area_ratio_050`` (:data:`MATCHED_PAIR_KEYS`) means over images that have a match (NaN
        when none has); counts (TP, FP, FN, nuclei,
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
        elif key in MATCHED_PAIR_KEYS:
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
        Same keys as :meth:`~nucleiseg.metric.image_scores.ImageScores.to_dict` plus ``images``.  Precision, recall and F1 per
        threshold come from the summed counts (with the empty conventions of
        :func:`~nucleiseg.metric.image_scores.score_image`), ``f1_mean`` is their mean over thresholds, ``mean_iou_050``
        (and ``area_ratio_050``) the images' values weighted by their pairs matched at 0.5
        (``tp_050``; needs ``tp_050`` among the keys, else NaN), ``error_rate_070`` the summed missed nuclei over summed
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
    precision, recall, f1 = rates_from_counts(tp, fp, fn)
    out: dict[str, float | int] = {}
    for key in keys:
        if key == "f1_mean":
            out[key] = float(f1.mean())
        elif is_count_key(key):
            out[key] = total[key]
        elif key in MATCHED_PAIR_KEYS:
            if "tp_050" in keys and total["tp_050"] > 0:
                weighted = sum(row[key] * row["tp_050"] for row in rows if row["tp_050"] > 0)
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

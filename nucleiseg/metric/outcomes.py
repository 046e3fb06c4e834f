"""Outcome of every object at one IoU threshold as a per-pixel code, with the colours that show it.

EvaluateObjectF1's display and the benchmark report's example crops both colour objects from
:func:`outcome_image` and :data:`OUTCOME_COLOURS`, so a colour means the same everywhere.
"""

from __future__ import annotations

import numpy as np

from .image_scores import ObjectMatches

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
        Result of :meth:`~nucleiseg.metric.image_scores.ImageScores.matches`.
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

"""Whether an image's outlines are drawn systematically larger or smaller than the ground truth's.

F1 at high IoU thresholds falls fast when every outline is a pixel or two off, even when each
nucleus is found. :func:`area_ratio` gives the typical size of the matched outlines against
their nuclei: the median of predicted area over ground-truth area of the pairs matched at IoU
above 0.5. Near 1: outlines of the right size; well below 1: drawn tighter than the annotation
(e.g. an image set annotated with generous outlines that take in each nucleus's dim rim);
above 1: drawn too large (e.g. blurred nuclei).
"""

from __future__ import annotations

import numpy as np

from .image_scores import ImageScores
from .parameters import MEAN_IOU_THRESHOLD

#: The figure's flat key (docs/CONVENTIONS.md); like ``mean_iou_050`` it is NaN without a match.
AREA_RATIO_KEY = "area_ratio_050"


def area_ratio(scores: ImageScores) -> float:
    """Median of predicted over ground-truth area of the pairs matched at IoU above 0.5.

    Parameters
    ----------
    scores : ImageScores
        Scores of one image (:func:`~nucleiseg.metric.image_scores.score_image`).

    Returns
    -------
    float
        The median ratio; NaN when no pair matches.
    """
    ov = scores.overlap
    matched = ov.pair_iou > MEAN_IOU_THRESHOLD
    if not matched.any():
        return float("nan")
    ratios = ov.pred_areas[ov.pair_pred[matched]] / ov.gt_areas[ov.pair_gt[matched]]
    return float(np.median(ratios))


def outline_figures(scores: ImageScores) -> dict[str, float]:
    """``{AREA_RATIO_KEY: area_ratio(scores)}``, a table row's outline figure."""
    return {AREA_RATIO_KEY: area_ratio(scores)}

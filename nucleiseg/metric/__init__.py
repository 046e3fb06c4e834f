"""Object-level segmentation metrics: F1 over IoU thresholds, missed nuclei by size, merges, splits.

Follows the evaluation of Caicedo et al. 2019, "Evaluation of Deep Learning Strategies for
Nucleus Segmentation in Fluorescence Images" (Cytometry A, doi:10.1002/cyto.a.23863): a
predicted object matches a ground-truth nucleus when their intersection over union (IoU) is
above a threshold ``t``; F1 = 2 TP / (2 TP + FP + FN) is reported for t = 0.50, 0.55 ... 0.95
and averaged.

This is the project's one implementation of that metric; import it from here
(``from nucleiseg.metric import score_image``).  The modules, in the order a score is made:

``parameters``
    Defaults and checks of the thresholds, size-bin edges and merge/split IoU.
``overlap``
    :func:`compute_overlap`: areas and pairwise IoU of two label images, computed sparsely.
``image_scores``
    :func:`score_image` / :func:`score_overlap`: matching and the scores of one image
    (:class:`ImageScores`, per-object :class:`ObjectMatches`).
``aggregation``
    :func:`aggregate_macro` and :func:`aggregate_micro` over images.
``keys``
    Flat key names of the scores (:func:`metric_keys`, :func:`is_count_key`).
``missed_causes``
    :func:`missed_causes`: why missed nuclei were missed (not found, merged, split, outline).
``outline_size``
    :func:`area_ratio`: whether matched outlines are drawn larger or smaller than the truth's.
``image_row``
    :func:`image_figures`: one image's scores, causes and outline size as a flat table row.
``outcomes``
    :func:`outcome_image`: per-pixel outcome codes and their display colours.
``settings_text``
    :func:`parse_thresholds`, :func:`parse_size_edges`: the list parameters as typed text.

Everything here is pure numpy; nothing imports CellProfiler.
"""

from __future__ import annotations

from .aggregation import aggregate_macro, aggregate_micro
from .image_scores import ImageScores, ObjectMatches, score_image, score_overlap, size_bin_index
from .missed_causes import CAUSES as MISSED_CAUSES
from .missed_causes import missed_cause_figures, missed_cause_keys, missed_causes
from .image_row import extra_figure_keys, image_figure_keys, image_figures
from .outline_size import AREA_RATIO_KEY, area_ratio
from .keys import COUNT_KEYS, COUNT_PREFIXES, is_count_key, metric_keys
from .outcomes import OUTCOME_CODES, OUTCOME_COLOURS, outcome_image
from .overlap import Overlap, compute_overlap
from .parameters import (
    DEFAULT_MERGE_IOU,
    DEFAULT_SIZE_EDGES,
    DEFAULT_THRESHOLDS,
    MEAN_IOU_THRESHOLD,
    MISSED_THRESHOLD,
    SIZE_BINS,
    check_merge_iou,
    check_size_edges,
    check_thresholds,
    threshold_key,
)
from .settings_text import parse_size_edges, parse_thresholds

__all__ = [
    "AREA_RATIO_KEY",
    "COUNT_KEYS",
    "COUNT_PREFIXES",
    "DEFAULT_MERGE_IOU",
    "DEFAULT_SIZE_EDGES",
    "DEFAULT_THRESHOLDS",
    "MEAN_IOU_THRESHOLD",
    "MISSED_CAUSES",
    "MISSED_THRESHOLD",
    "OUTCOME_CODES",
    "OUTCOME_COLOURS",
    "SIZE_BINS",
    "ImageScores",
    "ObjectMatches",
    "Overlap",
    "aggregate_macro",
    "aggregate_micro",
    "area_ratio",
    "check_merge_iou",
    "check_size_edges",
    "check_thresholds",
    "compute_overlap",
    "extra_figure_keys",
    "image_figure_keys",
    "image_figures",
    "is_count_key",
    "metric_keys",
    "missed_cause_figures",
    "missed_cause_keys",
    "missed_causes",
    "outcome_image",
    "parse_size_edges",
    "parse_thresholds",
    "score_image",
    "score_overlap",
    "size_bin_index",
    "threshold_key",
]

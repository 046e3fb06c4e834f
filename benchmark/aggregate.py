"""Dataset figures from per-image rows, through the core's macro and micro aggregation.

Every place of the benchmark that turns per-image scores into figures over a
set of images (the runner's summary, a subset of a finished run, the paper's
experiments and their reference pipeline) goes through these functions, so
they all skip the same columns and average the same way
(:func:`nucleiseg.metric.aggregate_macro`, :func:`nucleiseg.metric.aggregate_micro`).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from nucleiseg.metric import aggregate_macro, aggregate_micro

from .tables import PER_IMAGE_LEAD


def image_scores(rows: Iterable[Mapping]) -> list[dict]:
    """The metric keys of per-image rows, without the lead columns of ``per_image.csv``."""
    return [{k: v for k, v in row.items() if k not in PER_IMAGE_LEAD} for row in rows]


def macro(rows: Iterable[Mapping]) -> dict:
    """Mean of per-image rates, sums of counts (the paper's aggregation), plus ``images``."""
    return aggregate_macro(image_scores(rows))


def micro(rows: Iterable[Mapping]) -> dict:
    """Rates from TP / FP / FN pooled over the images, sums of counts, plus ``images``."""
    return aggregate_micro(image_scores(rows))


def by_pipeline(rows: Iterable[Mapping]) -> dict[str, list[Mapping]]:
    """Per-image rows grouped by their ``pipeline``, pipelines in order of first appearance."""
    grouped: dict[str, list[Mapping]] = {}
    for row in rows:
        grouped.setdefault(row["pipeline"], []).append(row)
    return grouped

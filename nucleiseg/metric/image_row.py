"""One image's figures as a flat table row: the benchmark's ``per_image.csv``, ``benchmark
conditions`` and the in-process validation of training all score images through here."""

from __future__ import annotations

from .image_scores import ImageScores
from .keys import metric_keys
from .missed_causes import missed_cause_figures, missed_cause_keys
from .outline_size import AREA_RATIO_KEY, outline_figures


def extra_figure_keys() -> list[str]:
    """The keys :func:`image_figures` adds to :meth:`ImageScores.to_dict`, in order: why nuclei
    were missed, then the outlines' size (columns tables carry beside the scores)."""
    return missed_cause_keys() + [AREA_RATIO_KEY]


def image_figure_keys() -> list[str]:
    """The keys of :func:`image_figures`, in order (the columns of a per-image table)."""
    return metric_keys() + extra_figure_keys()


def image_figures(scores: ImageScores) -> dict:
    """:meth:`ImageScores.to_dict`, then why nuclei were missed (:func:`missed_cause_figures`) and
    the size of the matched outlines (:func:`~nucleiseg.metric.outline_size.area_ratio`)."""
    return {**scores.to_dict(), **missed_cause_figures(scores), **outline_figures(scores)}

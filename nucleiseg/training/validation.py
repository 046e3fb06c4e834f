"""Scoring a network during training: the project's metric on the one inference path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import cards
from ..postprocess import PostprocessSettings


def score_examples(network, architecture: dict, normalization: dict, examples, settings: PostprocessSettings | None = None) -> list[dict]:
    """Per-image figures (:func:`nucleiseg.metric.image_figures`) of a network on full raw images.

    ``examples`` are ``(stem, raw image, labels)`` as from :func:`load_examples` with
    ``normalization=None``; the network goes through the one inference path
    (:func:`nucleiseg.inference.segment`: tiled, normalized with ``normalization``,
    post-processed with ``settings``, defaults when None).
    """
    wrapped = cards.LoadedModel([{"architecture": architecture, "normalization": normalization}], [network], Path("."))
    return score_model(wrapped, examples, settings)


def score_model(model: cards.LoadedModel, examples, settings: PostprocessSettings | None = None,
                match_size: bool = False) -> list[dict]:
    """Per-image scores of a loaded model (:func:`nucleiseg.cards.load`) on ``(stem, raw image, labels)`` examples
    (``match_size``: see :func:`nucleiseg.inference.segment`)."""
    from .. import metric
    from ..inference import segment

    return [metric.image_figures(metric.score_image(labels, segment(image, model, settings, match_size=match_size)[1]))
            for _, image, labels in examples]


def validation_scores(network, architecture: dict, normalization: dict, examples, settings: PostprocessSettings | None = None) -> dict:
    """Macro mean F1 and error rate at IoU 0.7 of a network on full raw images."""
    rows = score_examples(network, architecture, normalization, examples, settings)
    return {
        "f1_mean": float(np.mean([r["f1_mean"] for r in rows])),
        "error_rate_070": float(np.mean([r["error_rate_070"] for r in rows])),
        "images": len(rows),
    }

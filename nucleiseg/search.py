"""Coordinate search: the one way this project tunes settings over a grid.

Both tuners use :func:`coordinate_search`: the post-processing of a trained
network (:mod:`nucleiseg.tune_postprocess`) and the classical CellProfiler
pipelines (``nucleiseg_cellprofiler.tune_classical``).
"""

from __future__ import annotations

import math
from typing import Callable, Hashable, Mapping, Sequence


def coordinate_search(
    score: Callable[[dict], float],
    start: Mapping[str, Hashable],
    grid: Mapping[str, Sequence[Hashable]],
    rounds: int = 3,
    min_gain: float = 0.0,
    skip: Callable[[str, dict], bool] | None = None,
) -> tuple[dict, float]:
    """The best point found by changing one parameter at a time over its grid values.

    A round visits the parameters of ``grid`` in order; for each it tries every
    grid value with the other parameters held at the best point so far, and
    moves there when the tie rule below allows. The search stops after a round
    that moved nowhere, or after ``rounds`` rounds. Parameters that interact
    (one only pays once another has moved) are caught by a later round, at far
    fewer scorings than the full product of the grid.

    Parameters
    ----------
    score : callable
        ``score(point) -> float``, higher is better, for a point ``{name: value}``
        holding every parameter of ``start``. Called at most once per distinct
        point; a NaN score counts as worse than any number (and is returned
        as ``-inf``).
    start : mapping
        The starting value of every parameter; values must be hashable.
        Parameters missing from ``grid`` keep their start value.
    grid : mapping
        ``{name: values}`` to try, in the order given.
    rounds : int
        The most rounds to run (>= 1).
    min_gain : float
        How much a value must beat the current best by to replace it (>= 0).
    skip : callable, optional
        ``skip(name, candidate) -> bool``: True leaves ``candidate`` (the best
        point with ``name`` changed) unscored, e.g. when another parameter makes
        ``name`` inert or the combination is invalid.

    Returns
    -------
    (dict, float)
        The best point and its score.

    Raises
    ------
    ValueError
        When ``rounds`` or ``min_gain`` is out of range, or ``grid`` names a
        parameter that ``start`` lacks (naming them).

    Notes
    -----
    Tie rule: the current value is kept unless another is strictly better, that
    is, scores more than ``min_gain`` above the best so far. So a value that only
    ties the current one never replaces it, and among values that beat the
    current one by the same score the first in grid order is kept (a later one
    does not beat it).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    if not min_gain >= 0:
        raise ValueError(f"min_gain must be >= 0, got {min_gain}")
    unknown = [name for name in grid if name not in start]
    if unknown:
        raise ValueError(f"grid parameters without a start value: {', '.join(unknown)}")

    scored: dict[tuple, float] = {}

    def score_of(point: dict) -> float:
        key = tuple(sorted(point.items()))
        if key not in scored:
            value = float(score(dict(point)))
            scored[key] = -math.inf if math.isnan(value) else value
        return scored[key]

    best = dict(start)
    best_score = score_of(best)
    for _ in range(rounds):
        moved = False
        for name, values in grid.items():
            for value in values:
                if value == best[name]:
                    continue  # the current value: it cannot beat itself
                candidate = {**best, name: value}
                if skip is not None and skip(name, candidate):
                    continue
                candidate_score = score_of(candidate)
                if candidate_score > best_score + min_gain:
                    best, best_score, moved = candidate, candidate_score, True
        if not moved:
            break
    return best, best_score

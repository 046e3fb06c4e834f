"""The one coordinate search, on objectives whose optimum and ties are known."""

from __future__ import annotations

import math

import pytest

from nucleiseg.search import coordinate_search

GRID = {
    "interior_threshold": (0.3, 0.5, 0.7),
    "dilation": (0, 1, 2, 3, 4),
    "foreground_threshold": (0.5, 0.7, 0.9),
}
START = {"interior_threshold": 0.5, "dilation": 2, "foreground_threshold": 0.5, "min_size": 15}


def counting(score):
    calls = []

    def counted(point):
        calls.append(tuple(sorted(point.items())))
        return score(point)

    return counted, calls


def test_finds_an_optimum_that_needs_two_parameters_to_move_together():
    # Dilation 4 only pays once the foreground threshold is 0.9 (as with real networks,
    # where growing further only helps once the outline is held back).
    def score(p):
        value = -abs(p["interior_threshold"] - 0.7) - abs(p["foreground_threshold"] - 0.9)
        return value + (0.3 * p["dilation"] if p["foreground_threshold"] >= 0.9 else -0.3 * abs(p["dilation"] - 2))

    counted, calls = counting(score)
    best, best_score = coordinate_search(counted, START, GRID)
    assert best == {"interior_threshold": 0.7, "dilation": 4, "foreground_threshold": 0.9, "min_size": 15}
    assert best_score == pytest.approx(1.2)
    assert len(calls) == len(set(calls)) < 3 * 5 * 3  # no point scored twice, fewer than the full grid
    # One round alone stops at dilation 2: the second round is what moves it.
    once, _ = coordinate_search(score, START, GRID, rounds=1)
    assert once["foreground_threshold"] == 0.9 and once["dilation"] == 2


def test_a_tie_keeps_the_current_value_and_the_first_of_equal_improvements_wins():
    # Flat in dilation: every value ties the start's 2, so it stays.
    best, _ = coordinate_search(lambda p: -abs(p["interior_threshold"] - 0.7), START, GRID)
    assert best["dilation"] == 2 and best["interior_threshold"] == 0.7
    # 0 and 4 both beat 2 by the same amount: 0 comes first in the grid, and 4 does not beat it.
    best, _ = coordinate_search(lambda p: abs(p["dilation"] - 2), START, {"dilation": (0, 1, 2, 3, 4)})
    assert best["dilation"] == 0
    best, _ = coordinate_search(lambda p: abs(p["dilation"] - 2), START, {"dilation": (4, 3, 2, 1, 0)})
    assert best["dilation"] == 4


def test_min_gain_keeps_the_current_value_against_small_gains():
    gains = {0: 0.0, 1: 0.5e-4, 2: 0.0, 3: 2e-4, 4: 1e-4}
    best, best_score = coordinate_search(lambda p: gains[p["dilation"]], {"dilation": 0}, {"dilation": range(5)}, min_gain=1e-4)
    assert best == {"dilation": 3} and best_score == 2e-4
    best, _ = coordinate_search(lambda p: gains[p["dilation"]], {"dilation": 0}, {"dilation": (1, 4)}, min_gain=1e-4)
    assert best == {"dilation": 0}  # 1e-4 is not more than 1e-4


def test_skipped_candidates_are_never_scored():
    counted, calls = counting(lambda p: p["size_max"] - p["size_min"] if p["size_min"] < p["size_max"] else math.nan)
    grid = {"size_min": (5, 10, 40), "size_max": (8, 30, 60)}
    best, _ = coordinate_search(counted, {"size_min": 10, "size_max": 30}, grid,
                                skip=lambda name, p: p["size_min"] >= p["size_max"])
    assert best == {"size_min": 5, "size_max": 60}
    assert all(dict(call)["size_min"] < dict(call)["size_max"] for call in calls)


def test_a_nan_score_never_wins_and_a_nan_start_is_left():
    best, best_score = coordinate_search(lambda p: math.nan if p["x"] != 1 else -5.0, {"x": 0}, {"x": (2, 1, 3)})
    assert best == {"x": 1} and best_score == -5.0


def test_bad_arguments_are_refused_naming_them():
    with pytest.raises(ValueError, match="rounds"):
        coordinate_search(lambda p: 0.0, START, GRID, rounds=0)
    with pytest.raises(ValueError, match="min_gain"):
        coordinate_search(lambda p: 0.0, START, GRID, min_gain=-1)
    with pytest.raises(ValueError, match="without a start value: dilaton"):
        coordinate_search(lambda p: 0.0, START, {"dilaton": (1, 2)})

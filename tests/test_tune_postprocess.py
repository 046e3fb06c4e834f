"""Choosing post-processing settings: the search and what it writes into a card."""

from __future__ import annotations

import json

import pytest

from nucleiseg.postprocess import PostprocessSettings
from nucleiseg.tune_postprocess import coordinate_search, write_tuning

GRID = {
    "interior_threshold": (0.3, 0.5, 0.7),
    "dilation": (0, 1, 2, 3, 4),
    "foreground_threshold": (0.5, 0.7, 0.9),
}


def test_coordinate_search_finds_an_optimum_that_needs_two_fields_to_move_together():
    # Dilation 4 only pays once the foreground threshold is 0.9 (as with real networks,
    # where growing further only helps once the outline is held back).
    def score(s: PostprocessSettings) -> float:
        value = -abs(s.interior_threshold - 0.7) - abs(s.foreground_threshold - 0.9)
        value += 0.3 * s.dilation if s.foreground_threshold >= 0.9 else -0.3 * abs(s.dilation - 2)
        return value

    calls = []

    def counted(s):
        calls.append(s)
        return score(s)

    best, best_f1 = coordinate_search(counted, GRID, PostprocessSettings())
    assert (best.interior_threshold, best.dilation, best.foreground_threshold) == (0.7, 4, 0.9)
    assert best_f1 == pytest.approx(1.2)
    assert len(calls) == len(set(calls)) < 3 * 5 * 3  # no setting scored twice, fewer than the full grid


def test_write_tuning_records_settings_and_keeps_the_rest_of_the_card(tmp_path):
    card = tmp_path / "model.json"
    card.write_text(json.dumps({"name": "model", "sha256": "abc", "postprocess": {"dilation": 1}}))
    best = PostprocessSettings(dilation=3, foreground_threshold=0.8).to_dict()
    assert write_tuning(tmp_path / "model.weights.h5", best, 0.71, 0.65, "train", 20) == card
    written = json.loads(card.read_text())
    assert written["sha256"] == "abc" and written["postprocess"] == best
    assert written["postprocess_tuning"]["f1_mean"] == 0.71 and written["postprocess_tuning"]["split"] == "train"
    with pytest.raises(ValueError, match="foreground_threshold"):
        write_tuning(card, {**best, "foreground_threshold": 1.5}, 0.7, 0.6, "train", 20)
    assert json.loads(card.read_text())["postprocess"] == best  # a refused write changes nothing


def test_sample_pairs_keeps_only_marked_images(tmp_path):
    from nucleiseg import synthetic
    from nucleiseg.tune_postprocess import sample_pairs

    stems = synthetic.generate(tmp_path, n=9, size=32)
    (tmp_path / "manifest.csv").write_text("name,kind\n" + "".join(f"{s},{'x' if i in (0, 6) else ''}\n" for i, s in enumerate(stems)))
    assert [p.stem for p in sample_pairs(tmp_path, "train", 0, subset_column="kind")] == ["synth_000", "synth_006"]
    assert len(sample_pairs(tmp_path, "train", 0)) == 3
    with pytest.raises(ValueError, match="'kind'.*'val'"):
        sample_pairs(tmp_path, "val", 0, subset_column="kind")

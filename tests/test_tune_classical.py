"""Tuning the classical pipelines on tiny synthetic data: it improves, resumes, refuses bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("cellprofiler_core")

from nucleiseg import layouts, metric, synthetic  # noqa: E402
from nucleiseg_cellprofiler import tune_classical  # noqa: E402
from nucleiseg_cellprofiler.pipelines.classical import ADVANCED_PARAMS, BASIC_PARAMS  # noqa: E402

# A threshold far too high and a minimum diameter above many nuclei: most nuclei lost.
BAD_START = {"correction": 1.5, "size_min": 20}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Six 96 x 96 synthetic images; train.txt lists two of them."""
    folder = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(folder, n=6, size=96)
    return folder


def tune(data, out, *extra):
    return tune_classical.main(["basic", "--data", str(data), "--out", str(out), "--only", "correction,size_min",
                                "--start", json.dumps(BAD_START), *extra])


def log_lines(out):
    return (out / "basic.jsonl").read_text().splitlines()


def test_the_tuner_improves_a_bad_start_and_resumes_from_its_log(data, tmp_path, capsys):
    assert tune(data, tmp_path, "--rounds", "2") == 0
    best = json.loads((tmp_path / "basic_all_best.json").read_text())
    evaluations = [json.loads(line) for line in log_lines(tmp_path)]
    start = next(e for e in evaluations if all(e["params"][k] == v for k, v in BAD_START.items()))
    assert best["all"] > start["all"] + 0.2
    assert best["params"]["correction"] < 1.5 and best["params"]["size_min"] < 20
    assert best["all"] == max(e["all"] for e in evaluations)
    # The score is the core metric's mean F1 over the tuning images.
    pairs = layouts.list_pairs(data, "train")
    labels = [tune_classical.segment("basic", best["params"], tune_classical.load(pair)[0]) for pair in pairs]
    expected = np.mean([metric.score_image(layouts.read_labels(pair.mask), found).f1_mean for pair, found in zip(pairs, labels)])
    assert best["all"] == pytest.approx(expected)

    capsys.readouterr()
    assert tune(data, tmp_path, "--rounds", "2", "--resume") == 0
    assert f"resumed {len(evaluations)} evaluations" in capsys.readouterr().out
    assert len(log_lines(tmp_path)) == len(evaluations)  # nothing scored again
    resumed = json.loads((tmp_path / "basic_all_best.json").read_text())
    assert (resumed["params"], resumed["all"], set(resumed)) == (best["params"], best["all"], set(best))
    # Other tuning images: the log's evaluations do not apply to them.
    assert tune(data, tmp_path, "--rounds", "1", "--resume", "--n-other", "1") == 0
    assert len(log_lines(tmp_path)) > len(evaluations)


def test_the_shortcut_through_filter_objects_gives_the_full_chains_labels(data):
    pairs = layouts.list_pairs(data, "train")
    for params in (ADVANCED_PARAMS, dict(ADVANCED_PARAMS, filter_solidity_min=0.95, filter_area_min=80.0)):
        tune_classical.check_fast_filter(pairs, dict(params))  # raises when the labels differ
    pix, _ = tune_classical.load(pairs[0])
    strict = tune_classical.segment("advanced", dict(ADVANCED_PARAMS, filter_area_min=240.0), pix, fast=True)
    loose = tune_classical.segment("advanced", dict(ADVANCED_PARAMS, filter_area_min=0.0), pix, fast=True)
    assert 0 < strict.max() < loose.max()  # the filter does filter (the image's nuclei have 77 to 497 pixels)


def test_the_tuning_set_takes_the_marked_fields_and_a_seeded_sample_of_the_rest(data, tmp_path):
    folder = tmp_path / "marked"
    synthetic.generate(folder, n=12, size=32)
    train = layouts.read_split(folder, "train")
    (folder / "manifest.csv").write_text("name,bbbc039_field\n" + "".join(f"{s},{'x' if s == train[1] else ''}\n" for s in train))
    fields, others = tune_classical.tuning_set(folder, n_other=2)
    assert [p.stem for p in fields] == [train[1]]
    assert len(others) == 2 and train[1] not in {p.stem for p in others}
    assert [p.stem for p in tune_classical.tuning_set(folder, n_other=2)[1]] == [p.stem for p in others]
    assert tune_classical.tuning_set(data, n_other=40)[0] == []  # no manifest: no fields


@pytest.mark.parametrize("arguments, message", [
    (["--rounds", "0"], "--rounds must be at least 1, got 0"),
    (["--n-other", "-1"], "--n-other must be >= 0, got -1"),
    (["--only", "correction,threshold"], "--only: not searched for basic: threshold"),
    (["--only", "illum_block"], "--only: not searched for basic: illum_block"),
    (["--start", '{"corection": 1.0}'], "--start: unknown basic parameters: corection"),
    (["--start", "{correction: 1}"], "--start is not JSON"),
    (["--start", "[1, 2]"], "--start must be a JSON object"),
    (["--start", '{"size_min": 40, "size_max": 30}'], "size_min (40) must be below size_max (30)"),
    (["--objective", "best"], "--objective: invalid choice: 'best'"),
])
def test_bad_arguments_are_refused_naming_them(data, tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_:
        tune_classical.main(["basic", "--data", str(data), "--out", str(tmp_path), *arguments])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "basic.jsonl").exists()


def test_a_missing_data_folder_or_split_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        tune_classical.main(["basic", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert f"--data: no such folder: {tmp_path / 'nowhere'}" in capsys.readouterr().err
    (tmp_path / "images").mkdir()
    with pytest.raises(SystemExit):
        tune_classical.main(["basic", "--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "train.txt" in capsys.readouterr().err


def test_without_start_the_search_starts_from_the_shipped_settings(data, tmp_path):
    assert tune_classical.main(["basic", "--data", str(data), "--out", str(tmp_path), "--only", "exclude_size", "--rounds", "1"]) == 0
    first, *rest = [json.loads(line) for line in log_lines(tmp_path)]
    assert first["params"] == BASIC_PARAMS
    assert [e["params"] for e in rest] == [dict(BASIC_PARAMS, exclude_size=False)]


def test_the_headless_evaluation_scores_what_the_tuner_scored_in_process(data, tmp_path):
    from nucleiseg_cellprofiler import PIPELINES_DIR

    out = tmp_path / "eval"
    assert tune_classical.main(["evaluate", str(PIPELINES_DIR / "basic.cppipe"), "--data", str(data), "--split", "train",
                                "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    pairs = layouts.list_pairs(data, "train")
    tuner = tune_classical.Tuner("basic", pairs, set(), tmp_path / "log.jsonl")
    assert summary["images"] == len(pairs) and summary["f1_mean"] > 0.5
    assert summary["f1_mean"] == pytest.approx(tuner.evaluate(dict(BASIC_PARAMS))["all"])

"""``python -m benchmark conditions``: model cards scored in process on clean and perturbed copies of a split."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from benchmark import model_conditions as mc
from benchmark.__main__ import main as benchmark_main
from nucleiseg import cards, metric, synthetic
from nucleiseg.training import load_examples, score_examples


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    synthetic.generate(folder, n=9, seed=2, size=64)
    return folder


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    import nucleus_module_helpers as helpers

    return helpers.make_unet(tmp_path_factory.mktemp("model") / "unet-tiny")


def files_of(folder):
    return sorted((p.relative_to(folder), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())


def test_scores_each_card_on_clean_and_perturbed_copies_as_the_inference_path_does(data, card, tmp_path):
    before = files_of(data)
    out = tmp_path / "out"
    assert benchmark_main(["conditions", "--models", str(card), "--data", str(data), "--out", str(out), "--limit", "2",
                           "--perturbations", "noise,scale_0.5x"]) == 0
    assert files_of(data) == before  # perturbed copies live in memory only
    with open(out / "conditions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], r["condition"]) for r in rows] == [("unet-tiny", c) for c in ("clean", "noise", "scale_0.5x")]
    assert all(int(r["images"]) == 2 for r in rows)
    # The clean figure is the one the training validation computes through the same inference path.
    stems = (data / "val.txt").read_text().split()[:2]
    loaded = cards.load(card, engine="tensorflow")
    expected = score_examples(loaded.networks[0], loaded.cards[0]["architecture"], loaded.cards[0]["normalization"],
                              load_examples(data, "val", None, names=stems), cards.tuned_postprocess(card))
    assert float(rows[0]["f1_mean"]) == pytest.approx(np.mean([r["f1_mean"] for r in expected]), abs=1e-6)  # the CSV keeps 6 decimals
    # Half size shrinks the labels too, so its nuclei count differs from the clean one's.
    assert int(rows[2]["nuclei"]) > 0 and rows[2]["f1_mean"] != ""
    # Every missed nucleus has one cause, and the tiny ones' causes add up to the tiny count.
    for r in rows:
        assert sum(int(r[f"missed_{c}"]) for c in metric.MISSED_CAUSES) == int(r["missed"])
        assert sum(int(r[f"missed_tiny_{c}"]) for c in metric.MISSED_CAUSES) == int(r["missed_tiny"])
        assert r[metric.AREA_RATIO_KEY] == "" or float(r[metric.AREA_RATIO_KEY]) > 0
    report = (out / "conditions.md").read_text()
    assert "| unet-tiny |" in report and "python -m benchmark conditions" in report and "--limit 2" in report
    assert "| unet-tiny | noise | " in report  # the table of causes, one line per condition


def test_report_marks_drops_over_the_limit_and_averages_the_conditions():
    def row(model, condition, f1):
        causes = {f"missed_{c}": i for i, c in enumerate(metric.MISSED_CAUSES)}
        tiny = {f"missed_tiny_{c}": 1 for c in metric.MISSED_CAUSES}
        return {"model": model, "condition": condition, "f1_mean": f1, "missed_tiny": 7, "missed": 10, **causes, **tiny,
                metric.AREA_RATIO_KEY: 1.234 if condition == "blur" else 0.9}

    rows = [row("a", "clean", 0.70), row("a", "noise", 0.64), row("a", "blur", 0.66),
            row("b", "clean", 0.60), row("b", "noise", 0.60), row("b", "blur", 0.30)]
    text = mc.report(rows, ["clean", "noise", "blur"], "cmd", 3, "val")
    assert "| a | 0.700 | **0.640 (-0.060)** | 0.660 (-0.040) | 0.667 | 7 |" in text
    assert "| b | 0.600 | 0.600 (+0.000) | **0.300 (-0.300)** | 0.500 | 7 |" in text
    assert "| model | condition | not found | merged | split | too large | too small | missed | outline area / true area |" in text
    assert "| b | blur | 0 (1) | 1 (1) | 2 (1) | 3 (1) | 4 (1) | 10 | 1.23 |" in text
    assert "| b | clean | 0 (1) | 1 (1) | 2 (1) | 3 (1) | 4 (1) | 10 | 0.90 |" in text


def test_cards_with_the_same_stem_are_named_by_path(tmp_path):
    one, two, other = tmp_path / "x" / "m.json", tmp_path / "y" / "m.json", tmp_path / "z.json"
    assert mc.model_names([one, two, other]) == [str(one), str(two), "z"]


@pytest.mark.parametrize("option, value, message", [
    ("--perturbations", "noise,sepia", "--perturbations:"),
    ("--limit", "-1", "--limit must be >= 0"),
    ("--models", "MISSING", "--models:"),
])
def test_bad_options_are_refused_before_any_output(data, card, tmp_path, capsys, option, value, message):
    out = tmp_path / "out"
    argv = {"--models": str(card), "--data": str(data), "--out": str(out)}
    argv[option] = str(tmp_path / "missing.json") if value == "MISSING" else value
    assert benchmark_main(["conditions", *[part for pair in argv.items() for part in pair]]) == 2
    err = capsys.readouterr().err
    assert message in err and (value != "MISSING" or "missing.json" in err)
    assert not (out / "conditions.csv").exists()

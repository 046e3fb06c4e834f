"""Bootstrap intervals of per-image scores and the ``benchmark compare`` command."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from benchmark.__main__ import main as cli_main
from benchmark.compare import compare, scores_by_pipeline
from benchmark.report import comparison_section
from benchmark.report_plots import paired_figure
from benchmark.tables import csv_text
from nucleiseg.comparison import bootstrap_interval, paired_comparison


def test_interval_matches_the_normal_approximation_and_is_reproducible():
    values = np.random.default_rng(1).normal(0.7, 0.1, 400)
    interval = bootstrap_interval(values, seed=3)
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert interval.mean == pytest.approx(values.mean())
    assert interval.low < interval.mean < interval.high and interval.images == 400
    assert (interval.high - interval.low) / 2 == pytest.approx(half_width, rel=0.1)
    assert bootstrap_interval(values, seed=3) == interval
    narrower = bootstrap_interval(values, level=0.5, seed=3)
    assert interval.low < narrower.low < narrower.high < interval.high


def test_paired_comparison_sees_a_small_shift_that_unpaired_intervals_hide():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0.3, 0.95, 80)  # images differ far more than the pipelines do
    better = baseline + 0.01 + rng.normal(0, 0.005, 80)
    a, b = bootstrap_interval(better), bootstrap_interval(baseline)
    assert a.low < b.high  # the two means' intervals overlap...
    paired = paired_comparison(better, baseline)
    assert paired.difference.low > 0  # ...but the paired difference excludes 0
    assert paired.difference.mean == pytest.approx(np.mean(better - baseline))
    assert paired.better + paired.same + paired.worse == 80 and paired.better > 70


def test_identical_pipelines_differ_by_exactly_zero():
    values = [0.5, 0.8, 0.9, 0.6]
    paired = paired_comparison(values, values)
    assert (paired.difference.mean, paired.difference.low, paired.difference.high) == (0, 0, 0)
    assert (paired.better, paired.same, paired.worse) == (0, 4, 0)


def test_bad_scores_and_settings_are_refused():
    with pytest.raises(ValueError, match="not finite"):
        bootstrap_interval([0.5, float("nan")])
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="same images"):
        paired_comparison([0.5, 0.6], [0.5])
    with pytest.raises(ValueError, match="confidence level"):
        bootstrap_interval([0.5, 0.6], level=95)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval([0.5, 0.6], resamples=10)


def per_image_rows(pipeline: str, scores: dict) -> list[dict]:
    return [{"pipeline": pipeline, "image": image, "shard": 0, "f1_mean": f1, "f1_050": min(1.0, f1 + 0.1)}
            for image, f1 in scores.items()]


def write_folder(folder, rows):
    folder.mkdir()
    (folder / "per_image.csv").write_text(csv_text(rows, ["pipeline", "image", "shard", "f1_mean", "f1_050"]))


def test_compare_keeps_only_images_every_pipeline_scored():
    scores = scores_by_pipeline(
        per_image_rows("advanced", {"a": 0.5, "b": 0.6, "c": 0.7, "d": 0.4})
        + per_image_rows("unet", {"a": 0.6, "b": 0.7, "c": float("nan")}),
        "f1_mean",
    )
    rows, notes = compare(scores, resamples=200)
    assert [r["images"] for r in rows] == [2, 2]
    assert rows[1]["difference"] == pytest.approx(0.1) and rows[1]["better"] == 2
    assert "difference" not in rows[0] and rows[0]["baseline"] == "advanced"
    assert any("advanced: 1 image(s)" in n for n in notes) and any("without a finite score" in n for n in notes)
    assert any("only 2 images" in n for n in notes)
    with pytest.raises(ValueError, match="baseline pipeline 'deepcell' not found"):
        compare(scores, baseline="deepcell")
    with pytest.raises(ValueError, match="no image is scored by every pipeline"):
        compare(scores_by_pipeline(per_image_rows("x", {"a": 0.5}) + per_image_rows("y", {"b": 0.5}), "f1_mean"))


def test_compare_command_across_benchmark_folders(tmp_path, capsys):
    images = {f"img{i}": 0.4 + 0.05 * i for i in range(10)}
    write_folder(tmp_path / "classical", per_image_rows("basic", images)
                 + per_image_rows("advanced", {k: v + 0.02 for k, v in images.items()}))
    write_folder(tmp_path / "network", per_image_rows("unet", {k: v + 0.1 for k, v in images.items()}))
    table = tmp_path / "comparison.csv"
    assert cli_main(["compare", str(tmp_path / "classical"), str(tmp_path / "network"), "--csv", str(table),
                     "--resamples", "500"]) == 0
    printed = capsys.readouterr().out
    assert "minus advanced [95 % interval]" in printed and "| unet | 10 |" in printed
    rows = {r["pipeline"]: r for r in csv.DictReader(table.open())}
    assert float(rows["unet"]["difference"]) == pytest.approx(0.08)
    assert float(rows["basic"]["difference_high"]) == pytest.approx(-0.02)  # every image exactly 0.02 lower
    assert rows["advanced"]["difference"] == "" and rows["unet"]["better"] == "10"

    assert cli_main(["compare", str(tmp_path / "classical"), "--metric", "f1_050", "--baseline", "basic",
                     "--resamples", "500"]) == 0
    assert "minus basic" in capsys.readouterr().out


def test_compare_command_names_a_pipeline_found_in_two_folders_by_its_folder(tmp_path, capsys):
    write_folder(tmp_path / "one", per_image_rows("unet", {"a": 0.5, "b": 0.7}) + per_image_rows("basic", {"a": 0.4, "b": 0.6}))
    write_folder(tmp_path / "two", per_image_rows("unet", {"a": 0.6, "b": 0.8}))
    assert cli_main(["compare", str(tmp_path / "one"), str(tmp_path / "two"), "--baseline", "basic",
                     "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    assert f"| unet ({tmp_path / 'one'}) | 2 |" in printed and f"| unet ({tmp_path / 'two'}) | 2 |" in printed
    assert "| basic | 2 |" in printed
    assert cli_main(["compare", str(tmp_path / "one"), str(tmp_path / "two"), "--resamples", "200",
                     "--pipelines", f"unet ({tmp_path / 'two'}),basic"]) == 0
    printed = capsys.readouterr().out
    assert f"unet ({tmp_path / 'one'})" not in printed and printed.index("| unet (") < printed.index("| basic |")


def test_compare_command_refuses_bad_folders(tmp_path, capsys):
    write_folder(tmp_path / "one", per_image_rows("unet", {"a": 0.5}))
    assert cli_main(["compare", str(tmp_path / "missing")]) == 2
    assert "per_image.csv: not found" in capsys.readouterr().err
    assert cli_main(["compare", str(tmp_path / "one"), "--metric", "f1_077"]) == 2
    assert "no column 'f1_077'" in capsys.readouterr().err
    assert cli_main(["compare", str(tmp_path / "one"), "--pipelines", "unet,deepcell"]) == 2
    assert "pipeline(s) not found: deepcell; found: unet" in capsys.readouterr().err


def test_report_section_and_plot_only_with_two_pipelines():
    one = per_image_rows("basic", {"a": 0.5, "b": 0.6, "c": 0.7})
    assert comparison_section(one) == [] and paired_figure(one) is None
    two = one + per_image_rows("unet", {"a": 0.7, "b": 0.6, "c": 0.4})
    text = "\n".join(comparison_section(two))
    assert "## Differences between pipelines" in text and "minus basic" in text and "| unet | 3 |" in text
    assert "plots/paired_f1.png" in text
    (ax,) = paired_figure(two).axes
    (dots,) = ax.collections
    np.testing.assert_allclose(dots.get_offsets(), [[0.5, 0.7], [0.6, 0.6], [0.7, 0.4]])  # (baseline, unet) per image
    green, grey, red = (tuple(c) for c in dots.get_facecolors()[:, :3].round(3))
    assert green[1] > green[0] and red[0] > red[1] and grey[0] == grey[1] == grey[2]
    assert ax.get_title() == "unet: 1 better, 1 worse" and ax.get_xlabel().startswith("basic")

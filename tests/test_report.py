"""``report.md`` and its plots: what each figure draws, the example overlays, and writing the report again."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmark import report_plots, runner
from benchmark.__main__ import main as cli_main
from nucleiseg import layouts, metric, synthetic
from test_runner import make_fake_cellprofiler

QUIET = {"quiet": True, "log": lambda s: None}
THRESHOLDS = metric.DEFAULT_THRESHOLDS


def summary_row(name: str, f1_at_050: float, missed: tuple, merges: int, splits: int, sec: float, startup: float) -> dict:
    """A summary row whose F1 falls by 0.05 per threshold step, so every point of the curve differs."""
    row = {"pipeline": name, "f1_mean": f1_at_050 - 0.225, "merges": merges, "splits": splits,
           "sec_per_image": sec, "startup_sec": startup}
    row.update({f"f1_{metric.threshold_key(t)}": f1_at_050 - 0.05 * i for i, t in enumerate(THRESHOLDS)})
    row.update({f"missed_{b}": m for b, m in zip(metric.SIZE_BINS, missed)})
    return row


SUMMARY = [summary_row("basic", 0.8, (5, 3, 1, 0), 7, 2, 0.4, 3.0), summary_row("unet", 0.9, (2, 1, 0, 4), 1, 6, 1.5, 9.0)]


def bar_heights(ax) -> list[list[float]]:
    """Heights of each bar series of an Axes, series in drawing order."""
    return [[bar.get_height() for bar in container] for container in ax.containers]


def test_f1_curve_has_one_line_per_pipeline_with_its_figures():
    (ax,) = report_plots.f1_vs_iou_figure(SUMMARY).axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["basic (mean 0.575)", "unet (mean 0.675)"]
    for line, row in zip(lines, SUMMARY):
        np.testing.assert_allclose(line.get_xdata(), THRESHOLDS)
        np.testing.assert_allclose(line.get_ydata(), [row[f"f1_{metric.threshold_key(t)}"] for t in THRESHOLDS])


def test_error_bars_show_missed_by_size_and_merges_and_splits():
    (ax,) = report_plots.missed_by_size_figure(SUMMARY).axes
    assert bar_heights(ax) == [[5, 3, 1, 0], [2, 1, 0, 4]]
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == list(metric.SIZE_BINS)
    (ax,) = report_plots.merges_splits_figure(SUMMARY).axes
    assert bar_heights(ax) == [[7, 2], [1, 6]]
    assert ax.get_legend().get_texts()[1].get_text() == "unet"


def test_seconds_plot_shows_means_images_and_start_up():
    per_image = [{"pipeline": "basic", "sec": s} for s in (0.3, 0.5, float("nan"))] + [{"pipeline": "unet", "sec": 1.5}]
    time_ax, startup_ax = report_plots.seconds_figure(SUMMARY, per_image).axes
    assert bar_heights(time_ax) == [[0.4, 1.5]] and bar_heights(startup_ax) == [[3.0, 9.0]]
    dots = [collection.get_offsets() for collection in time_ax.collections]
    np.testing.assert_allclose(dots[0][:, 1], [0.3, 0.5])  # the image without seconds is not drawn
    np.testing.assert_allclose(dots[1][:, 1], [1.5])
    assert 0.5 < dots[1][0, 0] < 1.5  # in the second pipeline's column


def test_outcome_overlay_colours_errors_with_the_core_colours():
    gt = np.zeros((40, 40), np.int32)
    gt[2:12, 2:12] = 1  # matched
    gt[20:30, 2:12] = 2  # missed
    pred = np.zeros_like(gt)
    pred[2:12, 3:13] = 5  # one column to the right: IoU 0.82
    pred[20:30, 25:35] = 6  # false positive
    rgb = report_plots.outcome_overlay(np.ones(gt.shape), gt, pred)
    colours = {name: rgb for name, (_, rgb) in metric.OUTCOME_COLOURS.items()}
    assert tuple(rgb[2, 5]) == colours["matched"]
    assert tuple(rgb[5, 2]) == (0.0, 0.0, 0.0)  # a matched nucleus is outlined by its prediction only
    assert tuple(rgb[20, 5]) == colours["missed"]
    assert tuple(rgb[20, 30]) == colours["false_positive"]
    assert tuple(rgb[5, 5]) == (0.0, 0.0, 0.0)  # inside: the image, not an outline
    assert report_plots.crop_window(gt, 16) == (slice(0, 16), slice(0, 16))


def test_outcome_overlay_marks_merges_and_splits():
    gt = np.zeros((30, 60), np.int32)
    gt[5:25, 2:12], gt[5:25, 12:22] = 1, 2  # two touching nuclei ...
    gt[5:25, 35:55] = 3
    pred = np.zeros_like(gt)
    pred[5:25, 2:22] = 7  # ... predicted as one
    pred[6:24, 36:45], pred[6:24, 45:54] = 8, 9  # one nucleus predicted as two, inside its outline
    rgb = report_plots.outcome_overlay(np.ones(gt.shape), gt, pred, window=(slice(0, 30), slice(0, 60)))
    colours = {name: rgb for name, (_, rgb) in metric.OUTCOME_COLOURS.items()}
    assert tuple(rgb[5, 10]) == colours["merged"]
    assert tuple(rgb[5, 40]) == colours["split"]  # the ground truth's outline
    assert tuple(rgb[6, 40]) == colours["false_positive"]  # each half alone matches nothing


def test_examples_show_each_pipeline_overlay_of_the_chosen_images(tmp_path):
    synthetic.generate(tmp_path / "data", n=2, seed=7, size=96)
    pairs = {p.stem: p for p in layouts.list_pairs(tmp_path / "data", None)}
    per_image = []
    for name, shift in (("basic", 0), ("unet", 3)):
        (tmp_path / name / "labels").mkdir(parents=True)
        for stem, pair in pairs.items():
            pred = np.roll(layouts.read_labels(pair.mask), shift, axis=1)
            layouts.write_tiff(tmp_path / name / "labels" / f"{stem}.tiff", pred.astype(np.uint16))
            scores = metric.score_image(layouts.read_labels(pair.mask), pred)
            per_image.append({"pipeline": name, "image": stem, "f1_mean": scores.f1_mean, "nuclei": scores.nuclei})
    figure, stems = report_plots.examples_figure(tmp_path, [{"pipeline": "basic"}, {"pipeline": "unet"}], per_image, pairs)
    assert sorted(stems) == sorted(pairs)
    axes = np.array(figure.axes).reshape(len(stems), 3)
    for row_axes, stem in zip(axes, stems):
        image = layouts.read_image(pairs[stem].image)
        gt = layouts.read_labels(pairs[stem].mask)
        for ax, name in zip(row_axes[1:], ("basic", "unet")):
            pred = layouts.read_labels(tmp_path / name / "labels" / f"{stem}.tiff")
            shown = np.asarray(ax.get_images()[0].get_array())
            np.testing.assert_array_equal(shown, report_plots.outcome_overlay(image, gt, pred, report_plots.crop_window(gt)))
            f1 = next(r["f1_mean"] for r in per_image if r["pipeline"] == name and r["image"] == stem)
            assert ax.get_title() == f"{name}: F1 {f1:.2f} (whole image)"


def _fake_named_pipelines(tmp_path: Path, names: dict[str, str]) -> list[str]:
    """Pipelines for the fake executable named like the shipped ones (text = fake mode)."""
    folder = tmp_path / "pipes"
    folder.mkdir()
    for name, mode in names.items():
        (folder / f"{name}.cppipe").write_text(mode + "\n")
    return [str(folder / f"{name}.cppipe") for name in names]


def test_report_examples_paper_table_and_bbbc039_rows(tmp_path):
    data = tmp_path / "data"
    synthetic.generate(data, n=4, seed=2, size=128)
    with open(data / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "bbbc039_field"])
        for i in range(4):
            writer.writerow([f"synth_{i:03d}", "x" if i < 2 else ""])
    fake = make_fake_cellprofiler(tmp_path)
    pipes = _fake_named_pipelines(tmp_path, {"basic": "perfect", "unet": "perfect"})
    out = tmp_path / "out"
    runner.run_benchmark(data, pipes, out, split="all", workers=2, cellprofiler=fake, **QUIET)
    text = (out / "report.md").read_text()
    assert "## Beside the paper" in text
    assert "| unet | 0.85 | 8.1 % | 1.000 | 0.0 % | 1.000 | 0.0 % |" in text
    assert "| basic | 0.72 | 20.1 % |" in text
    assert "the 2 images of this split that are BBBC039 fields" in text
    assert "![Example crops](plots/examples.png)" in text and (out / "plots" / "examples.png").is_file()
    first = text[text.index("## Hardest images"):]

    # Written again from the folder alone: the same tables, counts still whole numbers.
    (out / "report.md").unlink()
    (out / "plots" / "examples.png").unlink()
    assert cli_main(["report", str(out)]) == 0
    again = (out / "report.md").read_text()
    assert "| unet | 0.85 | 8.1 % | 1.000 | 0.0 % | 1.000 | 0.0 % |" in again
    assert again[again.index("## Hardest images"):] == first
    assert (out / "plots" / "examples.png").is_file()


def test_report_of_an_unfinished_folder_is_an_error(tmp_path, capsys):
    assert cli_main(["report", str(tmp_path)]) == 2
    assert "holds no finished benchmark" in capsys.readouterr().err


def test_no_example_figure_without_image_files(tmp_path):
    per_image = [{"pipeline": "basic", "image": "a", "f1_mean": 0.5, "nuclei": 9}]
    assert report_plots.examples_figure(tmp_path, [{"pipeline": "basic"}], per_image, {"b": SimpleNamespace()}) is None


def test_report_of_a_folder_scored_before_the_outline_column_leaves_it_out(tmp_path):
    data = tmp_path / "data"
    synthetic.generate(data, n=2, seed=3, size=96)
    fake = make_fake_cellprofiler(tmp_path)
    out = tmp_path / "out"
    runner.run_benchmark(data, _fake_named_pipelines(tmp_path, {"unet": "perfect"}), out, split="all", workers=1,
                         cellprofiler=fake, **QUIET)
    text = (out / "report.md").read_text()
    assert "| unet | 1.00 |" in text and "outlines 1.00 x true area)" in text
    for name in ("summary.csv", "per_image.csv"):  # as an older run wrote them
        with open(out / name, newline="") as handle:
            rows = list(csv.DictReader(handle))
        columns = [c for c in rows[0] if c != "area_ratio_050"]
        with open(out / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    assert cli_main(["report", str(out)]) == 0
    again = (out / "report.md").read_text()
    assert "Outline size" not in again and "x true area" not in again
    assert "## Hardest images" in again and "| pipeline | not found |" in again

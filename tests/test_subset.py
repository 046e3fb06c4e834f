"""Figures of a finished benchmark over the images one manifest column marks, or over the rest."""

from __future__ import annotations

import csv

from benchmark import subset
from benchmark.tables import read_results


def _write(tmp_path):
    (tmp_path / "manifest.csv").write_text("name,bbbc039_field\na,x\nb,\nc,\n")
    with open(tmp_path / "per_image.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["pipeline", "image", "shard", "f1_mean", "f1_050", "f1_070", "f1_090", "error_rate_070", "merges", "splits", "mean_iou_050"])
        for image, f1, iou in (("a", 0.9, 0.8), ("b", 0.5, 0.7), ("c", 0.7, "")):  # c: no match at IoU 0.5
            writer.writerow(["unet", image, 0, f1, f1, f1, f1, 1 - f1, 1, 0, iou])


def test_subset_and_its_complement(tmp_path, capsys):
    _write(tmp_path)
    assert subset.main([str(tmp_path), "--manifest", str(tmp_path / "manifest.csv")]) == 0
    marked = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [(r["subset"], r["images"], r["f1_mean"], r["merges"]) for r in marked] == [("bbbc039_field", "1", "0.9000", "1.0000")]
    assert subset.main([str(tmp_path), "--manifest", str(tmp_path / "manifest.csv"), "--others"]) == 0
    others = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [(r["subset"], r["images"], r["f1_mean"], r["merges"]) for r in others] == [("not bbbc039_field", "2", "0.6000", "2.0000")]


def test_an_image_without_a_match_is_averaged_with_the_others(tmp_path):
    _write(tmp_path)
    rows = read_results(tmp_path / "per_image.csv")
    [summary] = subset.subset_summary(rows, {"b", "c"})
    assert summary["images"] == 2 and summary["f1_mean"] == 0.6 and summary["mean_iou_050"] == 0.7


def test_unknown_column_is_an_error_naming_it(tmp_path, capsys):
    _write(tmp_path)
    assert subset.main([str(tmp_path), "--manifest", str(tmp_path / "manifest.csv"), "--column", "plate"]) == 2
    assert "'plate'" in capsys.readouterr().err

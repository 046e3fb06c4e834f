"""End-to-end tests of ``python -m nucleiseg.evaluate`` on temporary folders."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from nucleiseg.evaluate import label_files, main

ROOT = Path(__file__).resolve().parents[1]


def two_nuclei():
    labels = np.zeros((32, 32), np.uint16)
    labels[2:10, 2:10] = 1
    labels[16:26, 16:26] = 2
    return labels


@pytest.fixture
def folders(tmp_path):
    """GT and prediction folders: image ``a`` predicted perfectly, image ``b`` with one nucleus missed.

    ``a`` is PNG in one folder and TIFF in the other, to check pairing by stem.
    """
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = two_nuclei()
    iio.imwrite(gt_dir / "a.png", gt)
    tifffile.imwrite(pred_dir / "a.tif", gt * 5)  # other label values, same objects
    tifffile.imwrite(gt_dir / "b.tiff", gt)
    only_first = np.where(gt == 1, 1, 0).astype(np.uint16)
    tifffile.imwrite(pred_dir / "b.tiff", only_first)
    (gt_dir / "notes.txt").write_text("not an image; must be ignored")
    return gt_dir, pred_dir


def test_json_output_per_image_and_aggregates(folders, capsys):
    gt_dir, pred_dir = folders
    assert main([str(gt_dir), str(pred_dir), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = {row["image"]: row for row in document["images"]}
    assert sorted(rows) == ["a", "b"]
    assert rows["a"]["f1_050"] == 1.0 and rows["a"]["f1_mean"] == 1.0
    assert rows["b"]["tp_050"] == 1 and rows["b"]["fn_050"] == 1 and rows["b"]["fp_050"] == 0
    assert rows["b"]["f1_050"] == pytest.approx(2 / 3)
    assert rows["b"]["error_rate_070"] == pytest.approx(0.5)
    assert document["macro"]["f1_050"] == pytest.approx((1 + 2 / 3) / 2)
    assert document["micro"]["f1_050"] == pytest.approx(6 / 7)  # TP 3, FP 0, FN 1
    assert document["macro"]["images"] == 2 and document["macro"]["fn_050"] == 1
    assert document["thresholds"] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


def test_csv_output(folders, capsys):
    gt_dir, pred_dir = folders
    assert main([str(gt_dir), str(pred_dir), "--format", "csv", "--thresholds", "0.5,0.75"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["scope"], r["image"]) for r in rows] == [("image", "a"), ("image", "b"), ("macro", "2"), ("micro", "2")]
    assert "f1_075" in rows[0] and "f1_055" not in rows[0]
    assert float(rows[1]["recall_050"]) == pytest.approx(0.5)
    assert int(rows[3]["tp_075"]) == 3
    assert float(rows[3]["f1_mean"]) == pytest.approx(6 / 7)


def test_output_file_and_thresholds_as_separate_words(folders, tmp_path):
    gt_dir, pred_dir = folders
    out = tmp_path / "scores.json"
    assert main([str(gt_dir), str(pred_dir), "--format", "json", "--thresholds", "0.5", "0.9", "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    assert set(k for k in document["micro"] if k.startswith("f1_")) == {"f1_mean", "f1_050", "f1_090"}


def test_missing_counterpart_names_the_file(folders, capsys):
    gt_dir, pred_dir = folders
    (pred_dir / "b.tiff").unlink()
    tifffile.imwrite(pred_dir / "c.tif", two_nuclei())
    assert main([str(gt_dir), str(pred_dir)]) == 1
    err = capsys.readouterr().err
    assert str(gt_dir / "b.tiff") in err
    assert str(pred_dir / "c.tif") in err


def test_shape_mismatch_names_both_files(folders, capsys):
    gt_dir, pred_dir = folders
    tifffile.imwrite(pred_dir / "b.tiff", np.zeros((20, 32), np.uint16))
    assert main([str(gt_dir), str(pred_dir)]) == 1
    err = capsys.readouterr().err
    assert "shape mismatch" in err and str(pred_dir / "b.tiff") in err and str(gt_dir / "b.tiff") in err


def test_unreadable_file_is_named(folders, capsys):
    gt_dir, pred_dir = folders
    (pred_dir / "a.tif").write_bytes(b"this is not a TIFF file")
    assert main([str(gt_dir), str(pred_dir)]) == 1
    assert str(pred_dir / "a.tif") in capsys.readouterr().err


def test_bad_threshold_is_an_error(folders, capsys):
    gt_dir, pred_dir = folders
    assert main([str(gt_dir), str(pred_dir), "--thresholds", "0.3"]) == 1
    assert "below 0.5" in capsys.readouterr().err


def test_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    assert main([str(tmp_path / "gt"), str(tmp_path / "pred")]) == 1
    assert "no label images" in capsys.readouterr().err


def test_duplicate_stem_is_an_error(folders, capsys):
    gt_dir, pred_dir = folders
    tifffile.imwrite(gt_dir / "a.tif", two_nuclei())
    assert main([str(gt_dir), str(pred_dir)]) == 1
    assert "share the stem" in capsys.readouterr().err


def test_hidden_files_and_folders_are_passed_over(folders, capsys):
    # macOS leaves ._a.tif beside a.tif; like every data folder, these are never data.
    gt_dir, pred_dir = folders
    (pred_dir / "._a.tif").write_bytes(b"resource fork, not a TIFF")
    (gt_dir / "sub").mkdir()
    tifffile.imwrite(gt_dir / "sub" / "c.tif", two_nuclei())
    assert main([str(gt_dir), str(pred_dir), "--format", "json"]) == 0
    assert [row["image"] for row in json.loads(capsys.readouterr().out)["images"]] == ["a", "b"]


def test_upper_case_suffixes_pair_by_stem(folders, capsys):
    gt_dir, pred_dir = folders
    (pred_dir / "a.tif").rename(pred_dir / "a.TIF")
    assert main([str(gt_dir), str(pred_dir), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["micro"]["tp_050"] == 3


def test_label_files_sorts_by_stem(tmp_path):
    # Sorted by stem, not by file name: "a-1.png" sorts before "a.png" but stem "a" before "a-1".
    for name in ("a-1.png", "a.png", "B.tif"):
        (tmp_path / name).write_bytes(b"")  # listing reads names only
    assert list(label_files(tmp_path)) == ["B", "a", "a-1"]


def test_runs_as_a_module(folders):
    gt_dir, pred_dir = folders
    done = subprocess.run(
        [sys.executable, "-m", "nucleiseg.evaluate", str(gt_dir), str(pred_dir), "--format", "json"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["micro"]["tp_050"] == 3
    failed = subprocess.run(
        [sys.executable, "-m", "nucleiseg.evaluate", str(gt_dir), str(pred_dir / "nowhere")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert failed.returncode != 0 and "nowhere" in failed.stderr

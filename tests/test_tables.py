"""The benchmark's one CSV writer and reader, and its one aggregation of per-image rows."""

from __future__ import annotations

import math

import pytest

from benchmark import aggregate
from benchmark.tables import csv_text, read_csv, read_results, write_csv
from nucleiseg import metric


def test_csvs_read_back_as_written(tmp_path):
    """Text stays text, counts come back as integers where asked, NaN as NaN."""
    columns = ["pipeline", "tp_050", "f1_mean", "mean_iou_050"]
    write_csv(tmp_path / "t.csv", columns, [{"pipeline": "unet", "tp_050": 12, "f1_mean": 0.75, "mean_iou_050": math.nan}])
    [row] = read_csv(tmp_path / "t.csv", ("pipeline",), lambda key: key.startswith("tp_"))
    assert row["pipeline"] == "unet" and row["tp_050"] == 12 and isinstance(row["tp_050"], int)
    assert row["f1_mean"] == 0.75 and math.isnan(row["mean_iou_050"])
    [as_floats] = read_csv(tmp_path / "t.csv", ("pipeline",))
    assert isinstance(as_floats["tp_050"], float)
    with pytest.raises(ValueError):
        read_csv(tmp_path / "t.csv")  # "unet" is not a number


def test_figures_are_written_with_six_digits_and_nan_as_empty():
    text = csv_text([{"a": 1 / 3, "b": math.nan, "c": 7, "extra": 1}], ["a", "b", "c", "missing"])
    assert text == "a,b,c,missing\n0.333333,,7,\n"


def test_benchmark_results_keep_counts_whole(tmp_path):
    scores = metric.score_image(*_pair()).to_dict()
    row = {"pipeline": "unet", "image": "007", "shard": 1, "sec": 0.5, **scores}
    write_csv(tmp_path / "per_image.csv", ["pipeline", "image", "shard", "sec", *metric.metric_keys()], [row])
    [back] = read_results(tmp_path / "per_image.csv")
    assert back["image"] == "007"  # a stem of digits stays text
    assert back["nuclei"] == scores["nuclei"] and isinstance(back["nuclei"], int) and isinstance(back["shard"], int)
    assert back["f1_mean"] == pytest.approx(scores["f1_mean"], rel=1e-5)


def _pair():
    import numpy as np

    gt = np.zeros((20, 20), np.int32)
    gt[2:8, 2:8], gt[10:18, 10:18] = 1, 2
    pred = gt.copy()
    pred[10:18, 10:18] = 0
    return gt, pred


def test_aggregation_skips_the_lead_columns_and_groups_by_pipeline():
    rows = [{"pipeline": p, "image": i, "shard": 0, "sec": 9.0, "f1_mean": f1, "nuclei": n}
            for p, i, f1, n in (("b", "x", 0.2, 3), ("a", "x", 0.6, 3), ("b", "y", 0.4, 5))]
    grouped = aggregate.by_pipeline(rows)
    assert list(grouped) == ["b", "a"] and [r["image"] for r in grouped["b"]] == ["x", "y"]
    macro = aggregate.macro(grouped["b"])
    assert macro == {"f1_mean": pytest.approx(0.3), "nuclei": 8, "images": 2}  # no sec, shard, pipeline or image

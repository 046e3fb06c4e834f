"""The speed tools (``python -m benchmark speed ...``): what they time, and what they print.

The in-process tools share :func:`benchmark.speed.timing.cold_and_warm`; the DeepCell
mode timings are checked with stand-in predictors that sleep for a known time. The
networks are tiny and the images small, so each test takes seconds.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
import pytest

from benchmark import shards
from benchmark.__main__ import main as cli_main
from benchmark.errors import BenchmarkError
from benchmark.speed import deepcell_modes, images, throughput
from benchmark.speed.metric import perturbed_prediction, synthetic_ground_truth
from benchmark.speed.timing import cold_and_warm
from nucleiseg import synthetic
from test_runner import make_fake_cellprofiler, make_mode_pipeline

SLEEP = 0.05
#: Sleeping overshoots by scheduling delays on a loaded machine, never undershoots.
SLACK = 0.15


# --- shared timing ----------------------------------------------------------------------


def test_cold_is_the_first_call_with_its_load_and_warm_the_median_of_the_rest():
    seen = []

    def call(loaded):
        seen.append(loaded)
        time.sleep(SLEEP if len(seen) > 1 else 3 * SLEEP)  # the first call also builds something
        return len(seen)

    timing = cold_and_warm(call, repeats=3, load=lambda: (time.sleep(2 * SLEEP), "model")[1])
    assert seen == ["model"] * 4  # every call gets the one loaded model
    assert 5 * SLEEP <= timing.cold < 5 * SLEEP + SLACK
    assert len(timing.calls) == 3 and SLEEP <= timing.warm < SLEEP + SLACK
    assert timing.result == 4  # the last call's


def test_warm_is_the_median_not_the_mean():
    ticks = iter([0.0, 1.0, 10.0, 10.1, 20.0, 20.2, 30.0, 39.0])  # calls of 1.0 (cold), 0.1, 0.2, 9.0
    timing = cold_and_warm(lambda _: None, repeats=3, clock=lambda: next(ticks))
    assert timing.cold == pytest.approx(1.0)
    assert timing.warm == pytest.approx(0.2) and timing.fastest == pytest.approx(0.1)


def test_no_repeats_leaves_warm_undefined():
    timing = cold_and_warm(lambda _: 7, repeats=0)
    assert timing.calls == [] and np.isnan(timing.warm) and timing.result == 7


# --- images -------------------------------------------------------------------------------


def test_size_is_height_by_width():
    assert images.image_size("4000x3000") == (4000, 3000)
    assert images.image_size("64X80") == (64, 80)


@pytest.mark.parametrize("text", ["4000", "0x10", "ax3", "10x10x10"])
def test_bad_size_is_refused_with_the_text(text):
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
        images.image_size(text)


def test_tiled_image_has_the_size_and_repeats_the_field():
    base = images.synthetic_image(seed=0)
    large = images.tiled_synthetic_image((1100, 1500))
    assert large.shape == (1100, 1500) and large.dtype == base.dtype
    np.testing.assert_array_equal(large[: base.shape[0], : base.shape[1]], base)
    # mirrored, so the first row of the second block repeats the last row of the first
    np.testing.assert_array_equal(large[base.shape[0], : base.shape[1]], base[-1])
    small = images.tiled_synthetic_image((100, 120))
    np.testing.assert_array_equal(small, base[:100, :120])


# --- speed metric -------------------------------------------------------------------------


def test_metric_prints_the_pair_it_timed_and_a_positive_time(capsys):
    assert cli_main(["speed", "metric", "--repeats", "3", "--seed", "4"]) == 0
    pair, timed = capsys.readouterr().out.splitlines()
    rng = np.random.default_rng(4)
    gt = synthetic_ground_truth(rng)
    predicted = len(np.unique(perturbed_prediction(gt, rng))) - 1
    assert pair.startswith(f"pair 520x696: {gt.max()} ground-truth nuclei, {predicted} predicted, ")
    found = re.fullmatch(r"median time per pair \(all 10 thresholds, 3 repeats\): ([\d.]+) ms", timed)
    assert found and float(found[1]) > 0


# --- speed unet -----------------------------------------------------------------------------


def test_unet_times_a_tiny_model_cold_and_warm(tmp_path, capsys):
    import nucleus_module_helpers as helpers

    card = helpers.make_unet(tmp_path / "unet-tiny")
    assert cli_main(["speed", "unet", "--model", str(card), "--size", "96x128", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "(1 network(s)); image 96 x 128" in out
    cold = float(re.search(r"first image \(load \+ trace \+ predict\): ([\d.]+) s", out)[1])
    warm, fastest = (float(v) for v in re.search(r"warm, median of 2: ([\d.]+) s per image \(min ([\d.]+) s\)", out).groups())
    assert 0 < fastest <= warm < cold  # loading and tracing make the first call the slowest
    assert int(re.search(r"peak memory \(max resident set of the process\): (\d+) MB", out)[1]) > 0


# --- speed deepcell-modes -----------------------------------------------------------------------


def test_dense_mode_times_one_whole_image_pass_per_call():
    batches = []

    def predict_batch(batch):
        batches.append(batch.shape)
        time.sleep(SLEEP)
        return np.zeros(batch.shape[:3] + (3,), np.float32)

    # Larger than the tiler's overlap of 64, so one tile covers it.
    timing = deepcell_modes.time_dense(predict_batch, np.zeros((80, 90), np.float32), repeats=3)
    assert len(batches) == 4 and all(shape[0] == 1 for shape in batches)  # one batch of one tile per call
    assert len(timing.calls) == 3 and SLEEP <= timing.warm < SLEEP + SLACK
    assert timing.result.shape == (80, 90, 3)


def test_patch_mode_times_its_band_and_extrapolates_to_the_image():
    calls = []

    def predict_rows(networks, band):
        calls.append((networks, band))
        time.sleep(SLEEP * (band[1] - band[0]) / 2)  # SLEEP per two rows
        return np.zeros((band[1] - band[0], 8, 3))

    band = deepcell_modes.centre_band(40, 4)
    assert band == (18, 22)
    timing, whole = deepcell_modes.time_patches(predict_rows, band, 40, repeats=2,
                                                load=lambda: (time.sleep(SLEEP), "patch networks")[1])
    assert calls == [("patch networks", (18, 22))] * 3  # cold and two warm calls, all on the same rows
    assert 2 * SLEEP <= timing.warm < 2 * SLEEP + SLACK
    assert timing.cold >= 3 * SLEEP  # the patch networks are made once, in the cold call
    assert whole == pytest.approx(timing.warm * 10)  # 40 rows from 4
    assert deepcell_modes.centre_band(40, None) == (0, 40)


def test_deepcell_modes_runs_a_random_network_on_a_small_image(capsys):
    assert cli_main(["speed", "deepcell-modes", "--model", "none.json", "--size", "96x96", "--rows", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "image: 96 x 96 (synthetic); model: random weights (none.json not found)" in out
    dense = float(re.search(r"fully convolutional mode, whole image: ([\d.]+) s \(warm, median of 1\)", out)[1])
    measured = float(re.search(r"patch mode, rows 47-48 \(2 of 96\): ([\d.]+) s measured", out)[1])
    extrapolated = float(re.search(r"patch mode, whole image: (\d+) s EXTRAPOLATED from 2 rows", out)[1])
    # 96 rows from 2; the measured seconds are printed to 0.05 s.
    assert dense > 0 and measured > 0 and extrapolated == pytest.approx(measured * 48, abs=48 * 0.05 + 1)
    difference = float(re.search(r"max \|dp\| between modes over 2 row\(s\) x 96 columns x 3 classes: (\S+)", out)[1])
    assert difference < 1e-4  # both modes compute the same probabilities


def test_deepcell_modes_refuses_rows_outside_the_image(capsys):
    assert cli_main(["speed", "deepcell-modes", "--model", "none.json", "--size", "16x16", "--rows", "17"]) == 2
    assert "--rows must be between 1 and the image height (16)" in capsys.readouterr().err


# --- speed throughput -------------------------------------------------------------------------------


def test_speed_up_is_each_count_against_the_first_of_its_pipeline(tmp_path):
    minute_rates = {("a", 1): 10.0, ("a", 2): 25.0, ("b", 1): 4.0, ("b", 2): 6.0}
    runs = []

    def stand_in(data, pipelines, out, workers, **options):
        runs.append((workers, out.name, options))
        summary = [{"pipeline": p, "shards": workers, "images": 8, "wall_sec": 1.0, "images_per_minute": minute_rates[(p, workers)],
                    "sec_per_image_warm": 0.5, "sec_cold_first_image": 2.0, "startup_sec": 1.5,
                    "peak_rss_mb_per_process": 100.0, "f1_mean": 0.5} for p in pipelines]
        return type("Result", (), {"summary": summary})

    rows = throughput.measure_throughput("data", ["a", "b"], tmp_path, [1, 2], run=stand_in, split="val")
    assert runs == [(1, "workers-1", {"split": "val"}), (2, "workers-2", {"split": "val"})]
    assert [(r["pipeline"], r["workers"], r["speedup"]) for r in rows] == [
        ("a", 1, 1.0), ("b", 1, 1.0), ("a", 2, 2.5), ("b", 2, 1.5)]
    assert "| a | 2 | 8 | 1.0 | 25.0 | 2.50 | 0.50 | 1.5 | 100 | 0.500 |" in (tmp_path / "throughput.md").read_text()


def test_throughput_prints_one_row_per_pipeline_and_process_count(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    synthetic.generate(data, n=4, seed=2, size=96)
    fake = make_fake_cellprofiler(tmp_path)
    monkeypatch.setattr(shards, "find_cellprofiler", lambda: fake)
    pipes = [str(make_mode_pipeline(tmp_path, mode)) for mode in ("perfect", "uint8")]
    assert cli_main(["speed", "throughput", "--data", str(data), "--split", "all", "--pipelines", ",".join(pipes),
                     "--workers", "2,1", "--out", str(tmp_path / "tp"), "--quiet"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and not line.startswith("| pipeline")]
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert [(cells[0], cells[1], cells[2]) for cells in table] == [
        ("perfect", "1", "4"), ("uint8", "1", "4"), ("perfect", "2", "4"), ("uint8", "2", "4")]
    for cells in table:
        wall, per_minute, warm = float(cells[3]), float(cells[4]), float(cells[6])
        assert wall > 0 and per_minute > 0 and warm == pytest.approx(0.25)  # the fake logs 0.25 s per image
    assert (tmp_path / "tp" / "workers-2" / "summary.csv").is_file()


@pytest.mark.parametrize("text, message", [("", "at least one"), ("1,x", "not an integer"), ("0", ">= 1")])
def test_throughput_worker_counts_are_checked(text, message):
    with pytest.raises(BenchmarkError, match=message):
        throughput.parse_workers(text)

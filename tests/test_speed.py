"""The speed tools (``python -m benchmark speed ...``): what they time, and what they print.

The in-process tools share :func:`benchmark.speed.timing.cold_and_warm`; the DeepCell
mode timings are checked with stand-in predictors that sleep for a known time. The
networks are tiny and the images small, so each test takes seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np
import pytest

from benchmark import shards
from benchmark.__main__ import main as cli_main
from benchmark.errors import BenchmarkError
from benchmark.speed import deepcell_modes, images, throughput
from benchmark.speed import training as training_speed
from benchmark.speed.metric import perturbed_prediction, synthetic_ground_truth
from benchmark.speed.timing import cold_and_warm, side_by_side
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


def test_side_by_side_takes_the_warm_calls_in_turns():
    order = []

    def call(name):
        return lambda loaded: order.append((name, loaded)) or len(order)

    ticks = iter(float(t) for t in range(100))
    timings = side_by_side({"a": call("a"), "b": call("b")}, repeats=2, loads={"b": lambda: "model"},
                           clock=lambda: next(ticks))
    # Both cold calls first (each with its own load), then rounds of one warm call each.
    assert order == [("a", None), ("b", "model"), ("a", None), ("b", "model"), ("a", None), ("b", "model")]
    assert list(timings) == ["a", "b"] and timings["a"].cold == timings["b"].cold == 1.0
    assert timings["a"].calls == timings["b"].calls == [1.0, 1.0]
    assert (timings["a"].result, timings["b"].result) == (5, 6)  # each one's last call


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


# --- speed training ---------------------------------------------------------------------------------

TINY = ["--width", "2", "--crop", "32", "--batch-size", "2", "--steps", "3", "--warmup", "1"]


def table_rows(out: str) -> list[list[str]]:
    """The cells of a markdown table's body rows."""
    lines = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| backend")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_training_times_the_projects_tensorflow_step_in_its_own_process(capsys):
    from nucleiseg import model_types

    assert cli_main(["speed", "training", "--backends", "tensorflow", *TINY, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["crop"] == 32 and report["settings"]["threads"] >= 1
    [row] = report["rows"]
    assert (row["backend"], row["keras_backend"], row["policy"], row["jit_compile"]) == ("tensorflow", "tensorflow", "float32", False)
    # The worker trained the project's network of this width, not a stand-in.
    assert row["parameters"] == model_types.build(model_types.get("unet").architecture(2)).count_params()
    assert row["steps_per_s"] > 0 and row["batch_ms"] > 0
    assert row["crops_per_s"] == pytest.approx(2 * row["steps_per_s"])
    assert row["step_ms"] == pytest.approx(1e3 / row["steps_per_s"])
    assert row["step_ms_fastest"] <= row["step_ms"] < 1e3 * row["cold_s"]  # the first step builds the graph
    assert row["crops_per_s_with_batch"] < row["crops_per_s"]
    assert row["vs_tensorflow"] == pytest.approx(1.0)
    assert np.isfinite(row["loss_first"]) and np.isfinite(row["loss_last"])
    assert "intra-op" in row["threads"]


def test_training_table_labels_repeats_and_rates_against_the_mean_tensorflow_row():
    def measured(name, crops_per_s):
        return {"backend": name, "steps_per_s": crops_per_s / 4, "crops_per_s": crops_per_s, "step_ms": 4e3 / crops_per_s,
                "cold_s": 9.0, "batch_ms": 40.0, "crops_per_s_with_batch": crops_per_s / 2}

    rows = [measured("tensorflow", 3.0), measured("torch", 8.0), {"backend": "jax", "error": "not installed: run make .venv-jax/.installed"},
            measured("tensorflow", 5.0)]
    assert training_speed.add_ratios(rows) == pytest.approx(4.0)
    settings = {"network": "unet", "width": 16, "crop": 256, "batch_size": 4, "steps": 20, "warmup": 3, "threads": 2, "robust": False}
    table = table_rows(training_speed.render(rows, settings, (1.0, 2.0)))
    assert [cells[0] for cells in table] == ["tensorflow", "torch", "jax", "tensorflow (2)"]
    assert table[1] == ["torch", "2.00", "8.00", "500", "9.00", "40", "4.00", "2.00"]
    assert table[0][-1] == "0.75" and table[3][-1] == "1.25"
    assert table[2][1] == "not installed: run make .venv-jax/.installed"
    assert training_speed.add_ratios(rows[1:3]) is None and "vs_tensorflow" not in rows[2]


def test_training_names_the_make_target_of_a_missing_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(training_speed.ENVIRONMENTS, "torch", (str(tmp_path / ".venv-torch"), ".venv-torch/.installed"))
    monkeypatch.setitem(training_speed.ENVIRONMENTS, "jax", (str(tmp_path / ".venv-jax"), ".venv-jax/.installed"))
    assert cli_main(["speed", "training", "--backends", "torch-bf16,jax", *TINY]) == 1
    table = table_rows(capsys.readouterr().out)
    assert [cells[:2] for cells in table] == [["torch-bf16", "not installed: run make .venv-torch/.installed"],
                                               ["jax", "not installed: run make .venv-jax/.installed"]]


def test_training_builds_a_missing_environment_with_make_when_asked(tmp_path):
    # A stand-in environment whose "python" prints a result line, built by a stand-in Makefile.
    row = {"backend": "jax", "crops_per_s": 7.0}
    (tmp_path / "Makefile").write_text(
        ".venv-jax/.installed:\n\tmkdir -p .venv-jax/bin\n\tcp fake-python .venv-jax/bin/python\n\ttouch $@\n")
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!/bin/sh\necho some library chatter\necho '{training_speed.RESULT_MARK}{json.dumps(row)}'\n")
    fake.chmod(0o755)
    settings = {"threads": 1}
    assert training_speed.measure_backend("jax", settings, repo=tmp_path) == {"backend": "jax", "error": "not installed: run make .venv-jax/.installed"}
    assert training_speed.measure_backend("jax", settings, repo=tmp_path, build=True) == row
    assert (tmp_path / ".venv-jax" / ".installed").is_file()


def test_training_reports_a_failed_worker_with_its_last_error_line(tmp_path):
    python = tmp_path / ".venv-torch" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho 'Traceback ...' >&2\necho 'ImportError: no torch here' >&2\nexit 3\n")
    python.chmod(0o755)
    row = training_speed.measure_backend("torch", {"threads": 1}, repo=tmp_path)
    assert row == {"backend": "torch", "error": "failed (exit 3): ImportError: no torch here"}


@pytest.mark.parametrize("argv, message", [
    (["--backends", "tensorflow,tf32"], "unknown 'tf32'; known: tensorflow, tensorflow-bf16"),
    (["--backends", ","], "give at least one of tensorflow"),
    (["--crop", "36"], "--crop 36: unet needs a multiple of 8"),
    (["--threads", "4096"], "--threads 4096: this process may use only"),
])
def test_training_refuses_bad_options_before_running_anything(argv, message, capsys):
    assert cli_main(["speed", "training", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.backends
def test_training_runs_every_variant_in_its_environment(capsys):
    """Needs .venv-torch and .venv-jax; make test-backends builds them and runs this test."""
    names = list(training_speed.VARIANTS)
    assert cli_main(["speed", "training", "--backends", ",".join(names), *TINY, "--json"]) == 0, capsys.readouterr().err
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [row["backend"] for row in rows] == names
    for row in rows:
        variant = training_speed.VARIANTS[row["backend"]]
        assert (row["keras_backend"], row["policy"], row["autocast_bf16"], row["jit_compile"]) == (
            variant.backend, variant.policy, variant.autocast, variant.jit)
        assert row["library"].startswith(variant.backend) and row["crops_per_s"] > 0 and np.isfinite(row["loss_last"])
    assert len({row["parameters"] for row in rows}) == 1  # the same network everywhere

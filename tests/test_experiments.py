"""The paper's experiments: learning curve (Figure 4) and transfer (Figure 5).

Most tests replace training by a stand-in trainer (the tracing of a Keras
training step alone takes tens of seconds here); one test trains a real
tiny U-Net for two steps through the command line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark import experiments as ex
from benchmark import learning_curve, transfer
from benchmark.__main__ import main as benchmark_main
from nucleiseg import synthetic

SCHEDULE = ex.Schedule(width=4, steps=2, crop=64, batch=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """12 synthetic 64x64 images: 4 train, 4 val, 4 test; a manifest marks two train and two val images."""
    folder = tmp_path_factory.mktemp("data")
    stems = synthetic.generate(folder, n=12, seed=1, size=64)
    marked = {"synth_000", "synth_003", "synth_001", "synth_004"}  # train: 0, 3; val: 1, 4
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "split", "bbbc039_field"])
        for index, stem in enumerate(stems):
            writer.writerow([stem, synthetic.SPLIT_CYCLE[index % 3], "field" if stem in marked else ""])
    return folder


class FakeTrainer:
    """Records its calls; scores depend on the number of training images so rows are distinguishable."""

    def __init__(self, fail_at: int = 0):
        self.calls = []
        self.fail_at = fail_at

    def __call__(self, data, split, names, eval_sets, schedule, seed, weights=None, log=print, checkpoint=None):
        self.calls.append({"names": list(names), "eval_sets": {k: [e[0] for e in v] for k, v in eval_sets.items()}, "seed": seed})
        if self.fail_at and len(self.calls) == self.fail_at:
            raise KeyboardInterrupt
        score = {c: 0 for c in ex.SCORE_COLUMNS}
        scores = {}
        for name, examples in eval_sets.items():
            scores[name] = {**score, "images": len(examples), "f1_mean": 0.1 * len(names), "error_rate_070": 0.5, "missed": 3, "merges": 1, "splits": 2}
        return {"steps": schedule.steps, "train_seconds": 1.0, "eval_seconds": 0.5, "loss_first": 1.0, "loss_last": 0.5, "scores": scores}


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --- core hook --------------------------------------------------------------------------


def test_load_examples_takes_explicit_names_in_order(data):
    from nucleiseg.training import load_examples

    examples = load_examples(data, "train", None, names=["synth_006", "synth_000"])
    assert [e[0] for e in examples] == ["synth_006", "synth_000"]
    with pytest.raises(ValueError, match="synth_001"):
        load_examples(data, "train", None, names=["synth_001"])  # a val image is not in split train


# --- learning curve: arguments and sampling ----------------------------------------------


@pytest.mark.parametrize("text, message", [("", "--sizes is empty"), ("2,x", "--sizes must be whole numbers"),
                                           ("0,2", "--sizes must be >= 1"), ("2,2", "--sizes lists a size twice")])
def test_bad_sizes_name_the_option(text, message):
    with pytest.raises(ex.ExperimentError, match=message):
        learning_curve.parse_sizes(text)


def test_sizes_are_sorted():
    assert learning_curve.parse_sizes("32, 2 8") == [2, 8, 32]


def test_subsets_have_the_right_sizes_and_are_reproducible():
    names = [f"image{i:03d}" for i in range(40)]
    subsets = learning_curve.sample_subsets(names, [2, 8, 40], repeats=3, seed=5)
    assert set(subsets) == {(n, r) for n in (2, 8, 40) for r in (1, 2, 3)}
    for (n, _), chosen in subsets.items():
        assert len(chosen) == n == len(set(chosen)) and set(chosen) <= set(names)
    assert subsets == learning_curve.sample_subsets(names, [2, 8, 40], repeats=3, seed=5)
    assert subsets[(8, 1)] != learning_curve.sample_subsets(names, [8], repeats=1, seed=6)[(8, 1)]
    # Repeats are independent draws; adding a size leaves the others' subsets alone.
    assert len({tuple(subsets[(8, r)]) for r in (1, 2, 3)}) == 3
    assert learning_curve.sample_subsets(names, [8], repeats=3, seed=5)[(8, 2)] == subsets[(8, 2)]


def test_size_larger_than_the_training_set_names_the_option():
    with pytest.raises(ex.ExperimentError, match=r"--sizes: 5 is larger than the training set \(4 images\)"):
        learning_curve.sample_subsets(["a", "b", "c", "d"], [2, 5], repeats=1, seed=0)
    with pytest.raises(ex.ExperimentError, match="--repeats"):
        learning_curve.sample_subsets(["a", "b"], [1], repeats=0, seed=0)


def test_cli_reports_bad_arguments_with_exit_status_2(data, tmp_path, capsys):
    common = ["--data", str(data), "--out", str(tmp_path / "out")]
    assert benchmark_main(["learning-curve", "--sizes", "9", *common]) == 2
    assert "--sizes: 9 is larger than the training set (4 images)" in capsys.readouterr().err
    assert benchmark_main(["learning-curve", "--sizes", "", *common]) == 2
    assert "--sizes is empty" in capsys.readouterr().err
    assert benchmark_main(["learning-curve", "--sizes", "2", "--crop", "60", *common]) == 2
    assert "--crop must be a multiple of 8" in capsys.readouterr().err
    assert benchmark_main(["transfer", "--column", "nope", *common]) == 2
    assert "--column" in capsys.readouterr().err
    assert benchmark_main(["transfer", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "--data: " in capsys.readouterr().err
    assert benchmark_main(["learning-curve", "--sizes", "2", "--reference", str(tmp_path / "none.csv"), *common]) == 2
    assert "--reference: file not found" in capsys.readouterr().err
    assert benchmark_main(["learning-curve", "--sizes", "2", "--val-split", "nosuch", *common]) == 2
    assert "--val-split: split file not found" in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.csv").exists()


# --- learning curve: runs, outputs and resume --------------------------------------------


def test_learning_curve_rows_outputs_and_resume(data, tmp_path):
    out = tmp_path / "lc"
    trainer = FakeTrainer()
    rows = learning_curve.run(data, out, [1, 2, 4], 2, SCHEDULE, seed=3, val_images=3, trainer=trainer, command="cmd")
    assert len(trainer.calls) == 6
    # Every size once before any second repeat: an interrupted run covers the whole curve first.
    assert [len(c["names"]) for c in trainer.calls] == [1, 2, 4, 1, 2, 4]
    assert all(c["eval_sets"] == {"val": ["synth_001", "synth_004", "synth_007"]} for c in trainer.calls)
    assert len({c["seed"] for c in trainer.calls}) == 6
    written = read_rows(out / "results.csv")
    assert [(int(r["n"]), int(r["repeat"])) for r in written] == [(1, 1), (1, 2), (2, 1), (2, 2), (4, 1), (4, 2)]
    assert [float(r["f1_mean"]) for r in written] == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.4, 0.4])
    for row in written:
        listed = (out / row["images_file"]).read_text().split()
        assert len(listed) == int(row["n"]) and ex.names_hash(listed) == row["images_hash"]
        assert int(row["steps"]) == 2 and row["missed"] == "3"
    assert len(rows) == 6
    report = (out / "report.md").read_text()
    assert "cmd" in report and "| steps | 2" in report and "first 3 images of split `val`" in report
    assert (out / "plots" / "learning_curve.png").is_file()
    accuracy, errors = learning_curve.plot(rows, None, "advanced").axes
    (mean_line,) = accuracy.get_lines()
    assert list(mean_line.get_xdata()) == [1, 2, 4] and list(mean_line.get_ydata()) == pytest.approx([0.1, 0.2, 0.4])
    assert accuracy.collections[0].get_offsets()[:, 1].tolist() == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.4, 0.4])
    assert [list(line.get_ydata()) for line in errors.get_lines()] == [[3, 3, 3], [1, 1, 1], [2, 2, 2]]

    # Same settings: nothing is retrained; one more size trains only that size.
    again = FakeTrainer()
    learning_curve.run(data, out, [1, 2, 4], 2, SCHEDULE, seed=3, val_images=3, trainer=again)
    assert again.calls == []
    learning_curve.run(data, out, [1, 2, 3, 4], 1, SCHEDULE, seed=3, val_images=3, trainer=again)
    assert [len(c["names"]) for c in again.calls] == [3]
    assert [int(r["n"]) for r in read_rows(out / "results.csv")] == [1, 2, 3, 4]

    # Other settings never mix with the recorded models.
    with pytest.raises(ex.ExperimentError, match="schedule differ"):
        learning_curve.run(data, out, [1], 1, ex.Schedule(width=4, steps=3, crop=64, batch=2), seed=3, val_images=3, trainer=again)
    with pytest.raises(ex.ExperimentError, match="val_images differ"):
        learning_curve.run(data, out, [1], 1, SCHEDULE, seed=3, val_images=2, trainer=again)


def test_interrupted_run_does_not_look_complete_and_resumes(data, tmp_path):
    out = tmp_path / "lc"
    learning_curve.run(data, out, [1], 1, SCHEDULE, trainer=FakeTrainer())
    assert (out / "results.csv").is_file()
    with pytest.raises(KeyboardInterrupt):
        learning_curve.run(data, out, [1, 2, 4], 1, SCHEDULE, trainer=FakeTrainer(fail_at=2))
    # The earlier run's final outputs are gone; the finished models are recorded.
    assert not (out / "results.csv").exists() and not (out / "report.md").exists()
    assert [r["model"] for r in read_rows(out / "progress.csv")] == ["n0001-r1", "n0002-r1"]
    resumed = FakeTrainer()
    learning_curve.run(data, out, [1, 2, 4], 1, SCHEDULE, trainer=resumed)
    assert [len(c["names"]) for c in resumed.calls] == [4]
    assert len(read_rows(out / "results.csv")) == 3
    assert not list(out.rglob("*.tmp"))


def test_reference_is_averaged_over_the_evaluated_images(data, tmp_path):
    per_image = tmp_path / "per_image.csv"
    columns = ["pipeline", "image", "f1_mean", "f1_050", "f1_070", "f1_090", "error_rate_070", "nuclei", "predicted",
               "merges", "splits", "missed_tiny", "missed_small", "missed_normal", "missed_large"]
    with open(per_image, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for value, stem in enumerate(["synth_001", "synth_004", "synth_007", "synth_010"]):
            writer.writerow(["advanced", stem, value / 10, 0, 0, 0, 0.5, 10, 9, 1, 2, 1, 1, 0, 0])
            writer.writerow(["basic", stem, 0.9, 0, 0, 0, 0, 10, 9, 0, 0, 0, 0, 0, 0])
    out = tmp_path / "lc"
    learning_curve.run(data, out, [2], 1, SCHEDULE, val_images=2, reference=per_image, trainer=FakeTrainer())
    report = (out / "report.md").read_text()
    # Advanced on the first two val images only: F1 (0.0 + 0.1) / 2, missed 2 + 2, merges 1 + 1.
    assert "| advanced (reference) | | 0.050 | 0.500 | 4 | 2 | 4 | |" in report
    references, _ = ex.reference_scores(per_image, "advanced", {"val": ["synth_001", "synth_004"]})
    rows = [{"n": 2, "f1_mean": 0.3, "error_rate_070": 0.5, "missed": 3, "merges": 1, "splits": 2, "images": 2, "train_seconds": 1}]
    accuracy, errors = learning_curve.plot(rows, references["val"], "advanced").axes
    assert accuracy.get_lines()[1].get_ydata()[0] == pytest.approx(0.05)  # the reference line
    assert [line.get_ydata()[0] for line in errors.get_lines()[1::2]] == [4, 2, 4]  # its missed, merges, splits
    assert f"`{per_image}`" in report
    with pytest.raises(ex.ExperimentError, match="--reference: .* has no row of pipeline 'unet'"):
        ex.reference_scores(per_image, "unet", {"val": ["synth_001"]})
    with pytest.raises(ex.ExperimentError, match="--reference: .* lacks 1 of the 2"):
        ex.reference_scores(per_image, "advanced", {"val": ["synth_001", "synth_002"]})


def test_figures_over_repeats_are_their_mean_and_spread():
    rows = [{"n": 8, "f1_mean": f1, "error_rate_070": 0.5, "missed": missed, "merges": 1, "splits": 0, "train_seconds": 10.0 * r}
            for r, (f1, missed) in enumerate(((0.2, 10), (0.4, 20), (0.6, 30)), start=1)]
    (size,) = learning_curve.by_size(rows)
    assert (size["n"], size["models"]) == (8, 3)
    assert size["f1_mean"] == pytest.approx(0.4) and size["f1_mean_sd"] == pytest.approx(0.2)
    assert size["missed"] == pytest.approx(20) and size["missed_sd"] == pytest.approx(10)
    assert size["train_seconds"] == pytest.approx(20)
    assert learning_curve.by_size(rows[:1])[0]["f1_mean_sd"] == 0.0


def test_progress_rows_read_back_as_written(tmp_path):
    columns = learning_curve.COLUMNS
    row = {c: 0 for c in columns} | {"model": "n0002-r1", "images_hash": "123456789012", "images_file": "subsets/n0002-r1.txt",
                                     "seed": 1234567890, "f1_mean": 0.25, "loss_first": float("nan")}
    ex.Ledger(tmp_path, {"a": 1}, columns).add(row)
    back = ex.Ledger(tmp_path, {"a": 1}, columns).rows["n0002-r1"]
    assert back["images_hash"] == "123456789012"  # a hash of digits stays text
    assert back["seed"] == 1234567890 and isinstance(back["seed"], int)  # whole numbers come back whole
    assert back["f1_mean"] == 0.25
    before = (tmp_path / "progress.csv").read_text()
    ex.Ledger(tmp_path, {"a": 1}, columns).add(back)
    assert (tmp_path / "progress.csv").read_text() == before


# --- transfer ------------------------------------------------------------------------------


def test_split_by_column(data):
    marked, other = transfer.split_by_column(["synth_000", "synth_003", "synth_006", "synth_009"], data / "manifest.csv", "bbbc039_field", "--train-split")
    assert marked == ["synth_000", "synth_003"] and other == ["synth_006", "synth_009"]
    with pytest.raises(ex.ExperimentError, match="--train-split: no other image"):
        transfer.split_by_column(["synth_000"], data / "manifest.csv", "bbbc039_field", "--train-split")
    with pytest.raises(ex.ExperimentError, match="--manifest: 1 images of --train-split are not listed"):
        transfer.split_by_column(["unknown"], data / "manifest.csv", "bbbc039_field", "--train-split")
    with pytest.raises(ex.ExperimentError, match="--column: .* needs columns 'name' and 'split_x'"):
        transfer.split_by_column(["synth_000"], data / "manifest.csv", "split_x", "--train-split")


def test_transfer_trains_on_each_kind_and_scores_both(data, tmp_path):
    out = tmp_path / "transfer"
    trainer = FakeTrainer()
    rows = transfer.run(data, out, SCHEDULE, trainer=trainer)
    assert [c["names"] for c in trainer.calls] == [["synth_000", "synth_003"], ["synth_006", "synth_009"]]
    assert all(c["eval_sets"] == {"bbbc039": ["synth_001", "synth_004"], "other": ["synth_007", "synth_010"]} for c in trainer.calls)
    written = read_rows(out / "results.csv")
    assert [r["trained_on"] for r in written] == ["bbbc039", "other"] == [r["trained_on"] for r in rows]
    assert {"bbbc039_f1_mean", "other_f1_mean", "bbbc039_merges", "other_error_rate_070"} <= set(written[0])
    assert written[0]["bbbc039_images"] == "2" and written[0]["train_images"] == "2"
    report = (out / "report.md").read_text()
    assert "| bbbc039 | 1 | 0.200 | 0.200 |" in report
    assert (out / "plots" / "transfer.png").is_file()
    again = FakeTrainer()
    transfer.run(data, out, SCHEDULE, trainer=again)
    assert again.calls == []
    with pytest.raises(ex.ExperimentError, match="seed differ"):
        transfer.run(data, out, SCHEDULE, seed=1, trainer=again)


def test_transfer_matrix_and_plot_keep_trained_on_apart_from_evaluated_on():
    sets = ["bbbc039", "other"]

    def model(trained_on, repeat, f1):
        figures = {f"{e}_{c}": 0 for e in sets for c in ex.SCORE_COLUMNS}
        figures.update({f"{e}_f1_mean": f1[e] for e in sets} | {f"{e}_error_rate_070": 1 - f1[e] for e in sets})
        return {"trained_on": trained_on, "repeat": repeat, **figures}

    rows = [model("bbbc039", 1, {"bbbc039": 0.9, "other": 0.5}), model("bbbc039", 2, {"bbbc039": 0.7, "other": 0.3}),
            model("other", 1, {"bbbc039": 0.6, "other": 0.8})]
    table = transfer.matrix(rows, sets)
    assert table[("bbbc039", "other")]["f1_mean"] == pytest.approx(0.4) and table[("bbbc039", "other")]["models"] == 2
    assert table[("other", "bbbc039")]["f1_mean"] == pytest.approx(0.6)
    references = {e: {"f1_mean": 0.75, "error_rate_070": 0.1} for e in sets}
    f1_axis, error_axis = transfer.plot(table, references, "advanced", sets).axes[:2]
    # One series of bars per training set (and the reference), one bar per evaluation set.
    heights = [[bar.get_height() for bar in series] for series in f1_axis.containers]
    np.testing.assert_allclose(heights, [[0.8, 0.4], [0.6, 0.8], [0.75, 0.75]])
    np.testing.assert_allclose([[bar.get_height() for bar in series] for series in error_axis.containers],
                               [[0.2, 0.6], [0.4, 0.2], [0.1, 0.1]])


# --- one real model ----------------------------------------------------------------------


def test_cli_trains_a_tiny_unet_and_skips_it_when_run_again(data, tmp_path):
    out = tmp_path / "lc"
    argv = ["learning-curve", "--data", str(data), "--out", str(out), "--sizes", "2", "--width", "2", "--steps", "2",
            "--crop", "64", "--batch", "2", "--val-images", "2", "--seed", "1"]
    assert benchmark_main(argv) == 0
    (row,) = read_rows(out / "results.csv")
    assert row["model"] == "n0002-r1" and int(row["steps"]) == 2 and int(row["images"]) == 2
    assert 0.0 <= float(row["f1_mean"]) <= 1.0 and float(row["loss_first"]) > 0
    assert int(row["nuclei"]) > 0 and int(row["missed"]) <= int(row["nuclei"])
    assert (out / "weights" / "n0002-r1.weights.h5").is_file()
    settings = json.loads((out / "settings.json").read_text())
    assert settings["schedule"]["width"] == 2 and settings["val_images"] == ["synth_001", "synth_004"]
    assert "--steps 2" in (out / "report.md").read_text()
    before = (out / "progress.csv").read_text()
    assert benchmark_main(argv) == 0  # resumes: the model is not trained again
    assert (out / "progress.csv").read_text() == before
    assert "1 already done" in (out / "run.log").read_text().splitlines()[-2]


def test_robust_bf16_schedule_trains_in_bfloat16_scores_in_float32_and_reports_it(data, tmp_path):
    import keras

    from nucleiseg import training

    schedule = ex.Schedule(width=2, steps=2, crop=64, batch=2, robust=True, bf16=True)
    config = schedule.train_config(data, 0)
    assert config.mixed_bfloat16 and config.augmentation.noise and config.augmentation.scale == (0.5, 2.0)
    network = training.build_network(config)
    assert network.layers[1].compute_dtype == "bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"  # reset for whatever is built next
    copy = training.float32_copy(network, config)
    assert all(layer.compute_dtype == "float32" for layer in copy.layers[1:])
    assert all(np.array_equal(a, b) for a, b in zip(copy.get_weights(), network.get_weights()))
    text = schedule.markdown()
    assert "noise" in text and "scale jitter 0.5-2x" in text and "mixed bfloat16" in text
    assert "noise" not in ex.Schedule().markdown()

    out = tmp_path / "lc"
    argv = ["learning-curve", "--data", str(data), "--out", str(out), "--sizes", "2", "--width", "2", "--steps", "2",
            "--crop", "64", "--batch", "2", "--val-images", "2", "--robust", "--bf16", "--normalization", "robust"]
    assert benchmark_main(argv) == 0
    (row,) = read_rows(out / "results.csv")
    assert 0.0 <= float(row["f1_mean"]) <= 1.0
    report = (out / "report.md").read_text()
    assert "--robust --bf16 --normalization robust --percentiles 0.1 99.9" in report and "--robust True" not in report
    schedule = json.loads((out / "settings.json").read_text())["schedule"]
    assert schedule["robust"] is True and schedule["normalization"] == {"method": "robust", "foreground": 0.5}


def test_schedule_normalization_reaches_training_and_bad_percentiles_name_the_option(data, tmp_path, capsys):
    schedule = ex.Schedule(normalization={"method": "percentile", "low": 1.0, "high": 99.8})
    assert schedule.train_config(data, 0).normalization == {"method": "percentile", "low": 1.0, "high": 99.8}
    argv = ["learning-curve", "--data", str(data), "--out", str(tmp_path / "bad"), "--sizes", "2",
            "--percentiles", "5", "1"]
    assert benchmark_main(argv) == 2
    assert "--normalization/--percentiles: percentiles 5 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cosine_schedule_decays_the_rate_to_zero_and_training_follows_it(data, monkeypatch):
    schedule = ex.Schedule(width=2, steps=4, crop=64, batch=2, learning_rate=1e-3, cosine=True)
    assert [round(schedule.rate_at(step), 7) for step in range(4)] == [1e-3, 0.0008536, 0.0005, 0.0001464]
    assert ex.Schedule(steps=4).rate_at(3) == 1e-3
    assert "cosine decay to 0" in schedule.markdown()
    from nucleiseg import training

    seen = []
    step = training.train_step
    monkeypatch.setattr(training, "train_step", lambda network, *rest: seen.append(
        float(network.optimizer.learning_rate.numpy())) or step(network, *rest))
    examples = {"val": training.load_examples(data, "val", None)[:1]}
    ex.train_and_score(data, "train", ex.split_names(data, "train")[:2], examples, schedule, seed=0)
    assert np.allclose(seen, [schedule.rate_at(i) for i in range(4)], rtol=1e-5)


def test_a_model_stopped_part_way_carries_on_from_its_checkpoint_with_the_same_crops(data, tmp_path, monkeypatch):
    from nucleiseg import training

    schedule = ex.Schedule(width=2, steps=5, crop=64, batch=2, cosine=True, bf16=True)
    names = ex.split_names(data, "train")[:2]
    examples = {"val": training.load_examples(data, "val", None)[:1]}
    step = training.train_step
    policies = {}

    def recording(into, stop_at=0):
        def train_step(network, examples, config, rng):
            if stop_at and len(into) == stop_at:
                raise KeyboardInterrupt
            into.append((rng.bit_generator.state["state"]["state"], float(network.optimizer.learning_rate.numpy())))
            policies[id(into)] = [layer.dtype_policy.name for layer in network.layers if layer.weights]
            return step(network, examples, config, rng)
        return train_step

    straight = []
    monkeypatch.setattr(training, "train_step", recording(straight))
    ex.train_and_score(data, "train", names, examples, schedule, seed=0)
    checkpoint = tmp_path / "checkpoints" / "m"
    first = []
    monkeypatch.setattr(training, "train_step", recording(first, stop_at=3))
    with pytest.raises(KeyboardInterrupt):
        ex.train_and_score(data, "train", names, examples, schedule, seed=0, checkpoint=checkpoint, every=2)
    saved = json.loads((checkpoint / "progress.json").read_text())
    assert saved["step"] == 2 and len(saved["losses"]) == 2 and [p.name for p in checkpoint.glob("*.keras")] == ["step0000002.keras"]
    with pytest.raises(ex.ExperimentError, match="other settings"):
        ex.train_and_score(data, "train", names, examples, schedule, seed=1, checkpoint=checkpoint, every=2)
    rest = []
    monkeypatch.setattr(training, "train_step", recording(rest))
    result = ex.train_and_score(data, "train", names, examples, schedule, seed=0, checkpoint=checkpoint, every=2)
    # Steps 3-5 only, drawing the crops and taking the learning rates an uninterrupted run takes there.
    assert [state for state, _ in rest] == [state for state, _ in straight[2:]] and len(rest) == 3
    assert [rate for _, rate in rest] == pytest.approx([rate for _, rate in straight[2:]])
    assert result["steps"] == 5 and result["train_seconds"] > 0 and set(result["scores"]) == {"val"}
    assert not checkpoint.exists()  # scored: nothing left to resume
    # The resumed network still computes as it was trained (mixed bfloat16, float32 output).
    assert policies[id(rest)] == policies[id(straight)] and "mixed_bfloat16" in policies[id(rest)]


def test_experiment_models_get_cards_that_load_and_segment_and_lost_cards_are_written_again(data, tmp_path, capsys):
    from nucleiseg import cards, layouts
    from nucleiseg.inference import segment

    out = tmp_path / "lc"
    argv = ["learning-curve", "--data", str(data), "--out", str(out), "--sizes", "2", "--width", "2", "--steps", "2",
            "--crop", "64", "--batch", "2", "--val-images", "2", "--seed", "1", "--cosine"]
    assert benchmark_main(argv) == 0
    weights = out / "weights" / "n0002-r1.weights.h5"
    card_path = out / "weights" / "n0002-r1.json"
    card = json.loads(card_path.read_text())
    names = (out / "subsets" / "n0002-r1.txt").read_text().split()
    assert card["sha256"] == cards.sha256_of(weights) and card["architecture"]["base_filters"] == 2
    training = card["training"]
    assert training["steps"] == 2 and training["images"] == 2 and training["split"] == "train"
    assert training["learning_rate_schedule"] == "cosine decay to 0 over every step"
    assert training["experiment"]["model"] == "n0002-r1" and training["experiment"]["schedule"]["steps"] == 2
    assert card["postprocess"] == ex.Schedule().postprocess.to_dict()
    assert card["nucleus_diameters"]["images"] == len(names) == 2
    # The card is a model like any other: it loads and segments.
    model = cards.load(card_path, engine="tensorflow")
    pair = layouts.list_pairs(data, "val")[0]
    probabilities, labels = segment(layouts.read_image(pair.image), model)
    assert probabilities.shape[:2] == labels.shape == layouts.read_image(pair.image).shape

    # A lost card is written again from the folder, the same but for the hardware.
    card_path.unlink()
    assert benchmark_main(["model-cards", str(out)]) == 0
    again = json.loads(card_path.read_text())
    assert again["training"].pop("hardware") == "not recorded (card written after the run from its experiment folder)"
    card["training"].pop("hardware")
    assert again == card
    capsys.readouterr()
    assert benchmark_main(["model-cards", str(out)]) == 0  # nothing missing: nothing written
    assert "wrote" not in capsys.readouterr().out

    (out / "subsets" / "n0002-r1.txt").unlink()
    card_path.unlink()
    assert benchmark_main(["model-cards", str(out)]) == 2
    assert f"{out / 'subsets' / 'n0002-r1.txt'} not found" in capsys.readouterr().err
    assert not card_path.exists()
    assert benchmark_main(["model-cards", str(tmp_path)]) == 2
    assert f"{tmp_path / 'settings.json'} not found" in capsys.readouterr().err

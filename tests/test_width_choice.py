"""U-Net widths at equal wall-clock, with a stand-in trainer and step timer (one test times a real tiny U-Net)."""

from __future__ import annotations

import csv

import pytest

from benchmark import experiments as ex
from benchmark import width_choice as wc
from benchmark.__main__ import build_parser
from benchmark.__main__ import main as benchmark_main
from nucleiseg import synthetic

SCHEDULE = ex.Schedule(width=4, steps=2, crop=64, batch=2, cosine=True)
#: Seconds per step of the stand-in timer: wider is slower.
PER_STEP = {4: 0.5, 8: 1.5, 12: 3.0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    synthetic.generate(folder, n=9, seed=2, size=64)
    return folder


class Trainer:
    """Records width, steps and evaluation sets; the score rises with the width and falls under perturbation."""

    def __init__(self):
        self.calls = []

    def __call__(self, data, split, names, eval_sets, schedule, seed, weights=None, log=print, checkpoint=None):
        self.calls.append({"width": schedule.width, "steps": schedule.steps, "cosine": schedule.cosine,
                           "sets": {k: [(stem, image.shape, labels.shape) for stem, image, labels in v] for k, v in eval_sets.items()}})
        scores = {}
        for index, (name, examples) in enumerate(eval_sets.items()):
            f1 = 0.02 * schedule.width - 0.1 * index * (schedule.width == 12)
            scores[name] = {**{c: 0 for c in ex.SCORE_COLUMNS}, "images": len(examples), "f1_mean": f1,
                            "error_rate_070": 0.4, "missed": 5}
        return {"steps": schedule.steps, "train_seconds": 60.0, "eval_seconds": 1.0, "loss_first": 1.0, "loss_last": 0.5,
                "scores": scores}


def timer(data, split, names, schedule, seed):
    return PER_STEP[schedule.width]


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_each_width_gets_the_steps_that_fit_its_minutes_and_every_condition(data, tmp_path):
    trainer = Trainer()
    rows = wc.run(data, tmp_path / "w", SCHEDULE, [4, 8], minutes=1.0, perturbation_names=["noise", "scale_0.5x"],
                  trainer=trainer, timer=timer)
    assert [(c["width"], c["steps"], c["cosine"]) for c in trainer.calls] == [(4, 120, True), (8, 40, True)]
    sets = trainer.calls[0]["sets"]
    assert list(sets) == ["clean", "noise", "scale_0.5x"]
    assert [s[1] for s in sets["clean"]] == [s[1] for s in sets["noise"]] == [(64, 64)] * 3
    assert {s[1] for s in sets["scale_0.5x"]} == {s[2] for s in sets["scale_0.5x"]} == {(32, 32)}
    assert [r["model"] for r in rows] == ["width4-r1", "width8-r1"]
    written = read_rows(tmp_path / "w" / "results.csv")
    assert [float(r["seconds_per_step"]) for r in written] == [0.5, 1.5] and written[1]["noise_f1_mean"] == "0.16"
    report = (tmp_path / "w" / "report.md").read_text()
    assert "**width 8**" in report and "| 8 | 1.500 | 40 |" in report
    assert "base width per model" in report and (tmp_path / "w" / "plots" / "widths.png").is_file()


def test_the_choice_weighs_perturbed_sets_and_flags_drops():
    sets = ["clean", "noise"]
    rows = [{"width": 8, "steps": 40, "seconds_per_step": 1.5, "train_seconds": 60, "clean_f1_mean": 0.6, "noise_f1_mean": 0.58,
             "clean_error_rate_070": 0.3, "clean_missed": 4},
            {"width": 12, "steps": 20, "seconds_per_step": 3.0, "train_seconds": 60, "clean_f1_mean": 0.65, "noise_f1_mean": 0.4,
             "clean_error_rate_070": 0.2, "clean_missed": 3}]
    table = wc.summary_table(rows, [8, 12], sets)
    assert wc.chosen_width(table) == 8  # 12 is better clean, worse over both conditions
    assert table[12]["worst_drop"] == pytest.approx(0.25)
    assert wc.steps_for(1.0, 0.7) == 85 and wc.steps_for(0.001, 5.0) == 1


def test_more_widths_later_train_only_the_new_ones_and_other_minutes_are_refused(data, tmp_path):
    out = tmp_path / "w"
    wc.run(data, out, SCHEDULE, [4], minutes=1.0, perturbation_names=["noise"], trainer=Trainer(), timer=timer)
    again = Trainer()
    rows = wc.run(data, out, SCHEDULE, [4, 12], minutes=1.0, perturbation_names=["noise"], trainer=again, timer=timer)
    assert [c["width"] for c in again.calls] == [12] and len(rows) == 2
    with pytest.raises(ex.ExperimentError, match="minutes"):
        wc.run(data, out, SCHEDULE, [4], minutes=2.0, perturbation_names=["noise"], trainer=Trainer(), timer=timer)


def test_an_interrupted_run_leaves_no_results_and_resumes(data, tmp_path):
    out = tmp_path / "w"

    class Interrupting(Trainer):
        def __call__(self, *args, **kwargs):
            if self.calls:
                raise KeyboardInterrupt
            return super().__call__(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        wc.run(data, out, SCHEDULE, [4, 8], minutes=1.0, perturbation_names=[], trainer=Interrupting(), timer=timer)
    assert not (out / "results.csv").exists() and not (out / "report.md").exists()
    rest = Trainer()
    wc.run(data, out, SCHEDULE, [4, 8], minutes=1.0, perturbation_names=[], trainer=rest, timer=timer)
    assert [c["width"] for c in rest.calls] == [8] and (out / "results.csv").is_file()


def test_a_model_resumed_from_its_checkpoint_keeps_the_step_count_measured_the_first_time(data, tmp_path):
    out = tmp_path / "w"

    class Stopping(Trainer):
        def __call__(self, *args, **kwargs):
            self.checkpoints = kwargs["checkpoint"]
            raise KeyboardInterrupt

    stopping = Stopping()
    with pytest.raises(KeyboardInterrupt):
        wc.run(data, out, SCHEDULE, [4], minutes=1.0, perturbation_names=[], trainer=stopping, timer=timer)
    assert stopping.checkpoints == out / "checkpoints" / "width4-r1"
    slower = Trainer()
    wc.run(data, out, SCHEDULE, [4], minutes=1.0, perturbation_names=[], trainer=slower,
           timer=lambda *args: 4 * timer(*args))  # the machine is busier now: its timing must not count
    assert [c["steps"] for c in slower.calls] == [120]


@pytest.mark.parametrize("argv, message", [
    (["--widths", "16,x"], "--widths: expected comma-separated whole numbers"),
    (["--widths", "16,16"], "--widths: expected distinct widths"),
    (["--minutes", "0"], "--minutes must be > 0"),
    (["--perturbations", "noise,fog"], "--perturbations: unknown perturbation(s) fog"),
    (["--widths", "0"], "--widths: expected distinct widths >= 1"),
])
def test_bad_options_name_themselves_before_any_training(data, tmp_path, capsys, argv, message):
    out = tmp_path / "bad"
    assert benchmark_main(["widths", "--data", str(data), "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_the_sub_command_sets_width_and_steps_itself():
    args = build_parser().parse_args(["widths", "--data", "d", "--out", "o"])
    assert not hasattr(args, "width") and not hasattr(args, "steps") and args.widths == "16,24,32"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["widths", "--data", "d", "--out", "o", "--steps", "100"])


def test_seconds_per_step_times_a_real_tiny_unet(data):
    seconds = ex.seconds_per_step(data, "train", ex.split_names(data, "train")[:2], ex.Schedule(width=2, crop=64, batch=2),
                                  seed=0, steps=2, warmup=1)
    assert 0 < seconds < 30

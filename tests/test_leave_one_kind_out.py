"""Leave one kind out, with a stand-in trainer (test_experiments.py trains a real tiny U-Net once)."""

from __future__ import annotations

import csv

import pytest

from benchmark import experiments as ex
from benchmark import leave_one_kind_out as loko
from nucleiseg import layouts, synthetic

SCHEDULE = ex.Schedule(width=4, steps=2, crop=64, batch=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """18 synthetic images (6 train, 6 val, 6 test) whose manifest gives three kinds: bbbc039 and two sizes."""
    folder = tmp_path_factory.mktemp("data")
    stems = synthetic.generate(folder, n=18, seed=3, size=64)
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "height", "width", "split", "bbbc039_field"])
        for index, stem in enumerate(stems):
            kind = index // 3 % 3  # two images of each kind in each split
            writer.writerow([stem, (256, 360, 520)[kind], (256, 360, 696)[kind], synthetic.SPLIT_CYCLE[index % 3],
                             "f" if kind == 2 else ""])
    return folder


class Trainer:
    def __init__(self):
        self.calls = []

    def __call__(self, data, split, names, eval_sets, schedule, seed, weights=None, log=print, checkpoint=None):
        self.calls.append({"names": list(names), "eval_sets": {k: [e[0] for e in v] for k, v in eval_sets.items()}})
        scores = {k: {**{c: 0 for c in ex.SCORE_COLUMNS}, "images": len(v), "f1_mean": 0.1 * len(names),
                      "error_rate_070": 0.3, "missed": 2, "merges": 1, "splits": 0} for k, v in eval_sets.items()}
        return {"steps": schedule.steps, "train_seconds": 1.0, "eval_seconds": 0.1, "loss_first": 1.0, "loss_last": 0.5, "scores": scores}


def test_image_kinds_from_the_manifest(data):
    kinds = layouts.image_kinds(data / "manifest.csv")
    assert sorted(set(kinds.values())) == ["256x256", "360x360", "bbbc039"]
    with pytest.raises(ValueError, match="height"):
        (data / "bad.csv").write_text("name,bbbc039_field\na,\n")
        layouts.image_kinds(data / "bad.csv")


def test_kind_pairs_keeps_and_leaves_out_kinds_and_names_unknown_ones(data):
    kinds = layouts.image_kinds(data / "manifest.csv")
    train = [pair.stem for pair in layouts.list_pairs(data, "train")]
    kept = [pair.stem for pair in layouts.kind_pairs(data, "train", kinds=("bbbc039",))]
    assert kept and kept == [stem for stem in train if kinds[stem] == "bbbc039"]
    rest = [pair.stem for pair in layouts.kind_pairs(data, "train", exclude=("bbbc039",))]
    assert rest == [stem for stem in train if kinds[stem] != "bbbc039"] and not set(rest) & set(kept)
    with pytest.raises(ValueError, match="kind '999x999' is not in .*; kinds: 256x256, 360x360, bbbc039"):
        layouts.kind_pairs(data, "train", exclude=("999x999",))
    with pytest.raises(ValueError, match="no train image of every kind but"):
        layouts.kind_pairs(data, "train", exclude=("256x256", "360x360", "bbbc039"))


def test_tuning_and_conditions_take_images_by_kind(data, tmp_path):
    import nucleus_module_helpers as helpers

    from benchmark.__main__ import main as benchmark_main
    from nucleiseg.tune_postprocess import sample_pairs

    kinds = layouts.image_kinds(data / "manifest.csv")
    drawn = sample_pairs(data, "train", 0, exclude_kinds=("256x256",))
    assert drawn and all(kinds[pair.stem] != "256x256" for pair in drawn)
    card = helpers.make_unet(tmp_path / "model" / "unet-tiny")
    out = tmp_path / "out"
    assert benchmark_main(["conditions", "--models", str(card), "--data", str(data), "--out", str(out),
                           "--kind", "360x360", "--perturbations", ""]) == 0
    with open(out / "conditions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    of_kind = [stem for stem in (data / "val.txt").read_text().split() if kinds[stem] == "360x360"]
    assert [int(row["images"]) for row in rows] == [len(of_kind)] and 0 < len(of_kind) < 6
    assert benchmark_main(["conditions", "--models", str(card), "--data", str(data), "--out", str(tmp_path / "bad"),
                           "--kind", "1x1"]) == 2
    assert not (tmp_path / "bad" / "conditions.csv").exists()


def test_each_held_out_kind_is_left_out_of_training_and_scored_alone(data, tmp_path):
    trainer = Trainer()
    out = tmp_path / "loko"
    rows = loko.run(data, out, SCHEDULE, min_train=2, min_val=2, trainer=trainer)
    kinds = layouts.image_kinds(data / "manifest.csv")
    train = layouts.list_pairs(data, "train")
    held = [r["held_out"] for r in rows]
    assert sorted(held[:-1]) == ["256x256", "360x360", "bbbc039"] and held[-1] == loko.ALL
    for call, kind in zip(trainer.calls, held):
        if kind == loko.ALL:
            assert len(call["names"]) == len(train) and set(call["eval_sets"]) == set(held[:-1])
        else:
            assert call["names"] and all(kinds[n] != kind for n in call["names"])
            assert list(call["eval_sets"]) == [kind] and all(kinds[s] == kind for s in call["eval_sets"][kind])
    report = (out / "report.md").read_text()
    # 4 of 6 training images without a kind: 0.4; all 6: 0.6; the cost -0.2.
    assert "| 256x256 | 2 | 0.400 | 0.600 | -0.200 |" in report
    with open(out / "results.csv", newline="") as handle:
        assert [r["model"] for r in csv.DictReader(handle)][-1] == "all-r1"
    figure = loko.plot(loko.summary_table(rows, held[:-1]), {}, "advanced")
    assert [round(b.get_height(), 3) for b in figure.axes[0].patches] == [0.4, 0.4, 0.4, 0.6, 0.6, 0.6]
    again = Trainer()
    loko.run(data, out, SCHEDULE, min_train=2, min_val=2, trainer=again)
    assert again.calls == []  # resumed: every model recorded


def test_kind_choice_and_refusals(data, tmp_path):
    with pytest.raises(ex.ExperimentError, match="no kind has 50 training"):
        loko.run(data, tmp_path / "a", SCHEDULE, min_train=50, trainer=Trainer())
    with pytest.raises(ex.ExperimentError, match="--kinds: 999x999"):
        loko.run(data, tmp_path / "b", SCHEDULE, kinds=["999x999"], trainer=Trainer())
    trainer = Trainer()
    loko.run(data, tmp_path / "c", SCHEDULE, kinds=["bbbc039"], trainer=trainer)
    assert [list(c["eval_sets"]) for c in trainer.calls] == [["bbbc039"], ["bbbc039"]]

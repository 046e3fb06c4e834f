"""python -m benchmark finetune-curve: draws, links, resume and the answer, with stand-ins for the
fine-tune and the CellProfiler scoring (each tested on its own in test_finetune and test_pipelines)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from benchmark import experiments as ex
from benchmark import finetune_curve as fc
from nucleiseg import cards, synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """12 synthetic images: 8 train (5 marked as BBBC039 fields), 4 val (3 marked), with a manifest."""
    folder = tmp_path_factory.mktemp("data")
    synthetic.generate(folder, n=12, size=48)
    stems = sorted(p.stem for p in (folder / "images").iterdir())
    (folder / "train.txt").write_text("".join(f"{s}\n" for s in stems[:8]))
    (folder / "val.txt").write_text("".join(f"{s}\n" for s in stems[8:]))
    marked = set(stems[:5]) | set(stems[8:11])
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "height", "width", "split", "bbbc039_field"])
        for i, stem in enumerate(stems):
            writer.writerow([stem, 48, 48, "train" if i < 8 else "val", "x" if stem in marked else ""])
    return folder, stems


class StandIns:
    """A trainer whose held-out score grows with n, and a scorer reading it back from the card."""

    def __init__(self):
        self.trained, self.scored = [], []

    def trainer(self, folder, card, minutes, seed, start, log_path):
        n = len(list((folder / "images").iterdir()))
        f1 = 0.80 + 0.02 * n if start == "general" else 0.1 * n / 16
        record = {"held_out_scores": {"starting_model": None if start == "scratch" else {"f1_mean": 0.8},
                                      "fine_tuned": {"f1_mean": f1}},
                  "kept_starting_model": False, "steps": 10 * n, "training_minutes": minutes, "total_minutes": minutes + 1}
        card.parent.mkdir(parents=True, exist_ok=True)
        # A real card (the pipeline generator reads it), carrying the figure the scorer will report.
        weights = card.with_name(card.stem + ".weights.h5")
        weights.write_bytes(b"not read by these tests")
        cards.write_card({"name": card.stem, "architecture": {"name": "unet", "base_filters": 2, "n_classes": 3},
                          "normalization": {"method": "percentile", "low": 1, "high": 99},
                          "classes": ["background", "interior", "boundary"], "fine_tuning": record, "f1": f1}, weights)
        self.trained.append((folder, start, seed))
        return record

    def scorer(self, eval_data, pipeline, out, workers):
        self.scored.append(pipeline)
        f1 = {"unet": 0.83, "advanced": 0.81}.get(pipeline)
        if f1 is None:  # a model's pipeline names its card
            card = next(line.split(":", 1)[1] for line in open(pipeline) if line.strip().startswith("Model card file:"))
            f1 = json.loads(open(card.strip()).read())["f1"]
        return {"images": 3, "nuclei": 30, "predicted": 30, "f1_mean": f1, "f1_050": f1, "f1_070": f1, "f1_090": f1,
                "error_rate_070": 1 - f1, "missed": 3, "merges": 1, "splits": 0}


def test_the_curve_draws_from_the_kind_scores_on_its_val_images_and_resumes(data, tmp_path):
    pytest.importorskip("cellprofiler_core")
    folder, stems = data
    stand = StandIns()
    out = tmp_path / "curve"
    rows = fc.run(folder, out, kind="bbbc039", sizes=[1, 2, 4], repeats=2, minutes=0.5, trainer=stand.trainer,
                  scorer=stand.scorer)
    assert len(rows) == 12 and len(stand.trained) == 12
    # Only marked training images are drawn; the evaluation folder links the marked val images.
    for drawn, _, _ in stand.trained:
        names = sorted(p.stem for p in (drawn / "images").iterdir())
        assert set(names) <= set(stems[:5]) and all((drawn / "images" / f"{n}.png").is_symlink() for n in names)
    assert sorted((out / "eval-data" / "val.txt").read_text().split()) == stems[8:11]
    assert (out / "eval-data" / "masks" / f"{stems[8]}.png").resolve() == (folder / "masks" / f"{stems[8]}.png").resolve()
    # Both starts of one draw train on the same images, with the same seed.
    general = [t for t in stand.trained if t[1] == "general"]
    scratch = [t for t in stand.trained if t[1] == "scratch"]
    assert [(f, s) for f, _, s in general] == [(f, s) for f, _, s in scratch]
    # Each model is scored by its own pipeline, which names its card as the Custom model file.
    assert stand.scored[:2] == ["unet", "advanced"] and len(stand.scored) == 14
    text = (out / "pipelines" / "n04-r1-general.cppipe").read_text()
    assert "Custom model file" in text and str((out / "models" / "n04-r1-general.json").resolve()) in text
    table = {(t["start"], t["n"]): t for t in fc.by_setting(rows)}
    assert table[("general", 4)]["f1_mean"] == pytest.approx(0.88) and table[("scratch", 1)]["models"] == 2
    report = (out / "report.md").read_text()
    assert ("the fewest annotated fields whose mean over draws beats the general model (0.830) is 2, beats the advanced "
            "pipeline (0.810) 1, and reaches 0.88 4.") in report
    assert (out / "plots" / "finetune_curve.png").stat().st_size > 0 and (out / "results.csv").is_file()
    # Run again: everything is recorded, nothing is trained; only the references are scored again.
    again = StandIns()
    fc.run(folder, out, kind="bbbc039", sizes=[1, 2, 4], repeats=2, minutes=0.5, trainer=again.trainer, scorer=again.scorer)
    assert again.trained == [] and again.scored == ["unet", "advanced"]
    # Other settings into the same folder are refused rather than mixed.
    with pytest.raises(ex.ExperimentError, match="minutes differ"):
        fc.run(folder, out, kind="bbbc039", sizes=[1], repeats=1, minutes=1.0, trainer=again.trainer, scorer=again.scorer)


def test_the_answer_says_when_no_size_is_enough():
    rows = [{"start": "general", "n": n, "repeat": 1, "kept_starting_model": 0, "budget_minutes": 2, "f1_mean": f1,
             **{k: 0 for k in ("error_rate_070", "missed", "merges", "splits", "training_minutes", "total_minutes", "steps")}}
            for n, f1 in ((1, 0.80), (2, 0.84))]
    references = {"unet": {"f1_mean": 0.85}, "advanced": {"f1_mean": 0.82}}
    assert fc.answer(rows, references) == (
        "Fine-tuned for 2 minutes, the fewest annotated fields whose mean over draws beats the general model (0.850) is "
        "none of the sizes tried (up to 2), beats the advanced pipeline (0.820) 2, and reaches 0.88 none of the sizes "
        "tried (best 0.840).")


def test_bad_settings_are_named(data, tmp_path):
    folder, stems = data
    with pytest.raises(ex.ExperimentError, match="--kind 'nonesuch': kind 'nonesuch' is not in .*; kinds: 48x48, bbbc039"):
        fc.run(folder, tmp_path / "a", kind="nonesuch")
    # The unmarked images are a kind of their own, named by their size.
    assert fc.kind_names(folder, "train", "48x48") == stems[5:8]
    with pytest.raises(ex.ExperimentError, match="--minutes 0"):
        fc.run(folder, tmp_path / "b", kind="bbbc039", minutes=0)
    with pytest.raises(ex.ExperimentError, match="larger than the training set"):
        fc.run(folder, tmp_path / "c", kind="bbbc039", sizes=[8])
    with pytest.raises(ex.ExperimentError, match="choose from general, scratch"):
        fc.parse_starts("general,pretrained")
    assert not (tmp_path / "c" / "results.csv").exists()

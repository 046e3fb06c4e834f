"""Shipping a recipe's model with its control's choices and estimate (nucleiseg.training.promote)."""

import csv
import json

import pytest

from nucleiseg import cards
from nucleiseg.training import promote

ARCH = {"name": "unet", "base_filters": 16, "n_classes": 3}
FIELDS = ["pipeline", "images", "f1_mean", "missed_tiny"]


def _card(folder, name, payload, **extra):
    weights = folder / f"{name}.weights.h5"
    weights.write_bytes(payload)
    card = {"name": name, "architecture": ARCH, "normalization": {"method": "percentile"},
            "training": {"split": "train+val+test", "command": f"train {name}"}, **extra}
    return cards.write_card(card, weights)


def _run(folder, rows):
    folder.mkdir()
    with (folder / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture
def setup(tmp_path):
    model = _card(tmp_path, "all-data", b"weights of every image", postprocess={"interior_threshold": 0.7})
    control = _card(tmp_path, "control", b"weights of train",
                    postprocess={"interior_threshold": 0.4, "dilation": 4},
                    postprocess_tuning={"split": "train", "images": 90})
    val = _run(tmp_path / "val", [{"pipeline": "control", "images": 84, "f1_mean": 0.72512, "missed_tiny": 420}])
    base = _run(tmp_path / "base", [{"pipeline": "advanced", "images": 84, "f1_mean": 0.6721, "missed_tiny": 648},
                                    {"pipeline": "basic", "images": 84, "f1_mean": 0.6, "missed_tiny": 700}])
    (tmp_path / "models").mkdir()
    return tmp_path, model, control, val, base


def test_promote_ships_the_models_weights_with_the_controls_choices_and_read_figures(setup):
    tmp_path, model, control, val, base = setup
    to = tmp_path / "models" / "shipped"
    code = promote.main([str(model), "--to", str(to), "--control", str(control), "--estimate", f"val={val}",
                         "--baseline-run", f"val={base}", "--schedule-note", "fixed schedule"])
    assert code == 0
    card = json.loads((tmp_path / "models" / "shipped.json").read_text())
    weights = tmp_path / "models" / "shipped.weights.h5"
    assert weights.read_bytes() == b"weights of every image"
    assert card["name"] == "shipped" and card["sha256"] == cards.sha256_of(weights)
    assert card["postprocess"] == {"interior_threshold": 0.4, "dilation": 4}
    assert card["postprocess_tuning"]["images"] == 90 and str(control) in card["postprocess_tuning"]["model"]
    assert card["training"]["split"] == "train+val+test" and card["training"]["schedule_note"] == "fixed schedule"
    val_figures = card["estimate"]["val"]
    assert val_figures["f1_mean"] == 0.7251 and val_figures["advanced_f1_mean"] == 0.6721
    assert val_figures["images"] == 84 and val_figures["missed_tiny"] == 420 and val_figures["run"] == str(val)
    assert card["estimate"]["control_command"] == "train control"
    cards.read_card(tmp_path / "models" / "shipped.json")  # a valid card


def test_promote_refuses_runs_of_different_sizes_before_writing(setup, capsys):
    tmp_path, model, control, val, _ = setup
    other = _run(tmp_path / "other", [{"pipeline": "advanced", "images": 20, "f1_mean": 0.6, "missed_tiny": 1}])
    to = tmp_path / "models" / "shipped"
    assert promote.main([str(model), "--to", str(to), "--control", str(control), "--estimate", f"val={val}",
                         "--baseline-run", f"val={other}"]) == 2
    assert "not the same split" in capsys.readouterr().err
    assert not list((tmp_path / "models").iterdir())


@pytest.mark.parametrize("problem, message", [
    ("no summary", "no summary.csv"),
    ("bad pair", "expected SPLIT=FOLDER"),
    ("no baseline", "no pipeline 'advanced'"),
    ("bad checksum", "checksum mismatch"),
    ("no estimate", "at least one"),
])
def test_promote_names_what_is_wrong_and_writes_nothing(setup, capsys, problem, message):
    tmp_path, model, control, val, base = setup
    estimate = ["--estimate", f"val={val}", "--baseline-run", f"val={base}"]
    if problem == "no baseline":
        estimate = ["--estimate", f"val={val}"]
    elif problem == "no summary":
        estimate = ["--estimate", f"val={tmp_path / 'missing'}"]
    elif problem == "bad pair":
        estimate = ["--estimate", str(val)]
    elif problem == "bad checksum":
        (tmp_path / "all-data.weights.h5").write_bytes(b"changed")
    elif problem == "no estimate":
        estimate = []
    to = tmp_path / "models" / "shipped"
    assert promote.main([str(model), "--to", str(to), "--control", str(control), *estimate]) == 2
    assert message in capsys.readouterr().err
    assert not list((tmp_path / "models").iterdir())


def test_the_tuning_record_comes_from_the_card_the_settings_were_tuned_on(setup, capsys):
    tmp_path, model, control, val, base = setup
    tuned = _card(tmp_path, "tuned", b"earlier weights", postprocess={"interior_threshold": 0.4, "dilation": 4},
                  postprocess_tuning={"split": "train", "images": 30})
    plain = _card(tmp_path, "plain", b"weights of train again", postprocess={"interior_threshold": 0.4, "dilation": 4})
    to = tmp_path / "models" / "shipped"
    args = ["--estimate", f"val={val}", "--baseline-run", f"val={base}"]
    assert promote.main([str(model), "--to", str(to), "--control", str(plain), "--postprocess-from", str(tuned), *args]) == 0
    tuning = json.loads((tmp_path / "models" / "shipped.json").read_text())["postprocess_tuning"]
    assert tuning["images"] == 30 and str(tuned) in tuning["model"]
    other = _card(tmp_path, "other", b"other", postprocess={"interior_threshold": 0.6},
                  postprocess_tuning={"split": "train", "images": 30})
    assert promote.main([str(model), "--to", str(tmp_path / "models" / "again"), "--control", str(plain),
                         "--postprocess-from", str(other), *args]) == 2
    assert "differs from the control's" in capsys.readouterr().err
    assert not (tmp_path / "models" / "again.json").exists()

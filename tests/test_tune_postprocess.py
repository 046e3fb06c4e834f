"""Choosing post-processing settings: what the search scores and what it writes into a card."""

from __future__ import annotations

import json

import pytest

from nucleiseg.postprocess import PostprocessSettings
from nucleiseg.tune_postprocess import write_tuning

GRID = {
    "interior_threshold": (0.3, 0.5, 0.7),
    "dilation": (0, 1, 2, 3, 4),
    "foreground_threshold": (0.5, 0.7, 0.9),
}


def _result(best, f1=0.71, default=0.65, images=20):
    return {"best": best, "f1_mean": f1, "default_settings_f1_mean": default, "images": images,
            "grid": {k: list(v) for k, v in GRID.items()}}


def test_write_tuning_records_settings_and_keeps_the_rest_of_the_card(tmp_path):
    card = tmp_path / "model.json"
    card.write_text(json.dumps({"name": "model", "sha256": "abc", "postprocess": {"dilation": 1}}))
    best = PostprocessSettings(dilation=3, foreground_threshold=0.8).to_dict()
    assert write_tuning(tmp_path / "model.weights.h5", _result(best), "train") == card
    written = json.loads(card.read_text())
    assert written["sha256"] == "abc" and written["postprocess"] == best
    tuning = written["postprocess_tuning"]
    assert (tuning["f1_mean"], tuning["split"], tuning["images"]) == (0.71, "train", 20)
    assert tuning["grid"] == {k: list(v) for k, v in GRID.items()}
    assert "exclude_kinds" not in tuning
    write_tuning(card, {**_result(best), "exclude_kinds": ["256x256"]}, "train")
    assert json.loads(card.read_text())["postprocess_tuning"]["exclude_kinds"] == ["256x256"]
    with pytest.raises(ValueError, match="foreground_threshold"):
        write_tuning(card, _result({**best, "foreground_threshold": 1.5}), "train")
    assert json.loads(card.read_text())["postprocess"] == best  # a refused write changes nothing


def tiny_card(folder, images: int):
    """A synthetic data folder of ``images`` 32x32 images in ``folder``/data and a width-2 U-Net's card."""
    import keras

    from nucleiseg import cards, synthetic
    from nucleiseg.model_types.unet import build_unet

    synthetic.generate(folder / "data", n=images, size=32)
    keras.utils.set_random_seed(0)
    weights = folder / "tiny.weights.h5"
    build_unet(2).save_weights(weights)
    return cards.write_card({"architecture": {"name": "unet", "base_filters": 2, "n_classes": 3},
                             "normalization": {"method": "percentile", "low": 1, "high": 99}}, weights)


def test_tune_reports_the_images_it_scored_and_the_grid_it_searched(tmp_path):
    """'--images 0' means all: the record says how many that was, and the grid actually used."""
    from nucleiseg import cards, layouts
    from nucleiseg.tune_postprocess import tune

    card = tiny_card(tmp_path, 8)
    small = {"dilation": (1, 2), "min_size": (5,)}
    result = tune(card, tmp_path / "data", "train", images=0, grid=small)
    train = layouts.list_pairs(tmp_path / "data", "train")
    assert result["images"] == len(train) > 1
    assert result["grid"] == {"dilation": [1, 2], "min_size": [5]}
    assert set(result["best"]) == set(PostprocessSettings().to_dict())
    cards.clear_cache()


def test_sample_pairs_keeps_only_marked_images(tmp_path):
    from nucleiseg import synthetic
    from nucleiseg.tune_postprocess import sample_pairs

    stems = synthetic.generate(tmp_path, n=9, size=32)
    (tmp_path / "manifest.csv").write_text("name,kind\n" + "".join(f"{s},{'x' if i in (0, 6) else ''}\n" for i, s in enumerate(stems)))
    assert [p.stem for p in sample_pairs(tmp_path, "train", 0, subset_column="kind")] == ["synth_000", "synth_006"]
    assert len(sample_pairs(tmp_path, "train", 0)) == 3
    with pytest.raises(ValueError, match="'kind'.*'val'"):
        sample_pairs(tmp_path, "val", 0, subset_column="kind")


def test_tune_scores_perturbed_copies_beside_each_image_and_records_them(tmp_path, monkeypatch, capsys):
    """With perturbations, each drawn image is scored as it is and as each copy (here twice its size)."""
    from nucleiseg import cards, layouts, tune_postprocess

    card = tiny_card(tmp_path, 6)
    shapes = []
    predict = tune_postprocess.predict_probabilities
    monkeypatch.setattr(tune_postprocess, "predict_probabilities",
                        lambda image, model: shapes.append(image.shape) or predict(image, model))
    result = tune_postprocess.tune(card, tmp_path / "data", "train", images=0, grid={"min_size": (5,)},
                                   perturbed=("scale_2x",))
    train = layouts.list_pairs(tmp_path / "data", "train")
    assert result["images"] == 2 * len(train) and result["perturbations"] == ["scale_2x"]
    assert shapes == [shape for _ in train for shape in ((32, 32), (64, 64))]
    write_tuning(card, result, "train")
    assert json.loads(card.read_text())["postprocess_tuning"]["perturbations"] == ["scale_2x"]
    with pytest.raises(ValueError, match="unknown perturbation"):
        tune_postprocess.tune(card, tmp_path / "data", "train", images=0, perturbed=("scale_3x",))
    with pytest.raises(SystemExit) as stopped:
        tune_postprocess.main([str(card), "--data", str(tmp_path / "data"), "--perturbations", "scale_2x,fog"])
    assert stopped.value.code == 2 and "--perturbations: unknown perturbation(s) fog" in capsys.readouterr().err
    cards.clear_cache()

"""Nucleus size matching (nucleiseg.nucleus_size, ``segment(..., match_size=True)``) and its card record."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from nucleiseg import cards, inference, nucleus_size, synthetic
from nucleiseg.nucleus_size import DiameterRange, rescale_factor, typical_diameter


def discs(shape, centres, radius) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    for number, (r, c) in enumerate(centres, start=1):
        labels[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = number
    return labels


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    import nucleus_module_helpers as helpers

    return helpers.make_unet(tmp_path_factory.mktemp("model") / "unet-tiny")


def with_diameters(card, folder, record, estimator=nucleus_size.ESTIMATOR):
    """A copy of ``card`` (and its weights) in ``folder`` whose nucleus_diameters is ``record`` (None: absent),
    measured as ``estimator`` says (None: an old record, which names none)."""
    folder.mkdir(parents=True, exist_ok=True)
    body = json.loads(card.read_text())
    shutil.copy(card.with_name(body["weights"]), folder / body["weights"])
    body.pop("nucleus_diameters", None)
    if record is not None:
        body["nucleus_diameters"] = {**record, **({"estimator": estimator} if estimator else {})}
    out = folder / card.name
    out.write_text(json.dumps(body))
    cards.clear_cache()
    return out


def test_typical_diameter_is_the_median_disc_diameter_and_needs_enough_nuclei():
    labels = discs((100, 100), [(20, 20), (20, 60), (60, 20), (60, 60), (85, 85)], 8)
    assert typical_diameter(labels) == pytest.approx(16.0, rel=0.05)
    # Specks (many, tiny, little area) beside the nuclei do not make the image's nuclei look tiny,
    # as a network far off its scale breaking large nuclei into pieces would (the median over objects: 1.1 px).
    specked = labels.copy()
    for number, (r, c) in enumerate([(r, c) for r in range(2, 100, 6) for c in (40, 98)], start=10):
        specked[r, c] = number
    assert len(np.unique(specked)) - 1 > 3 * 5
    assert typical_diameter(specked) == pytest.approx(16.0, rel=0.05)
    # Weighted by area: the diameter of the nucleus the median nucleus pixel lies in.
    mixed = discs((100, 100), [(20, 20), (20, 60)], 4) + discs((100, 100), [(60, 60)], 15) * 3
    assert typical_diameter(mixed) == pytest.approx(30.0, rel=0.05)
    assert typical_diameter(labels[:50]) is None  # two nuclei say too little (the minimum is 3)
    assert typical_diameter(labels[:50], min_nuclei=2) == pytest.approx(16.0, rel=0.05)
    assert typical_diameter(np.zeros((5, 5), int)) is None


def test_images_inside_the_training_range_are_left_alone_others_go_to_its_median():
    trained = DiameterRange(10.0, 16.0, 48.0)
    assert rescale_factor(10.0, trained) == rescale_factor(48.0, trained) == rescale_factor(None, trained) == 1.0
    assert rescale_factor(9.0, trained) == pytest.approx(16 / 9)
    assert rescale_factor(4.0, trained) == nucleus_size.MAX_FACTOR  # 4x would be 16x the pixels
    assert rescale_factor(60.0, trained) == nucleus_size.MIN_FACTOR  # 16/60, clipped
    with pytest.raises(ValueError, match="low <= median <= high"):
        DiameterRange(20.0, 10.0, 30.0)
    with pytest.raises(ValueError, match="low, median and high"):
        DiameterRange.from_dict({"low": 1, "high": 2, "estimator": nucleus_size.ESTIMATOR})
    # A record measured the old way (the median over nuclei) does not compare with images measured now.
    with pytest.raises(ValueError, match="median over nuclei.*python -m nucleiseg.nucleus_size"):
        DiameterRange.from_dict({"low": 10.0, "median": 16.0, "high": 48.0})


def test_the_training_range_comes_from_each_images_typical_nucleus(tmp_path):
    images = [discs((64, 64), [(16, 16), (40, 40)], r) for r in (3, 4, 5, 6, 7)] + [np.zeros((8, 8), int)]
    record = nucleus_size.training_range(images, percentiles=(0.0, 100.0))
    assert record["images"] == 5  # the empty image is skipped
    assert record["low"] < record["median"] < record["high"]
    assert record["median"] == pytest.approx(2 * np.sqrt(np.count_nonzero(images[2] == 1) / np.pi), abs=0.01)
    with pytest.raises(ValueError, match="no nuclei"):
        nucleus_size.training_range([np.zeros((4, 4), int)])


def test_resampled_labels_stay_labels_and_probabilities_stay_smooth():
    labels = discs((30, 40), [(10, 10), (20, 30)], 5)
    back = nucleus_size.resample_to(nucleus_size.resample_to(labels, (60, 80), labels=True), (30, 40), labels=True)
    np.testing.assert_array_equal(back, labels)
    probabilities = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    assert nucleus_size.resample_to(probabilities, (15, 20), labels=False).shape == (15, 20, 3)
    assert nucleus_size.resample_image(np.ones((30, 40), np.uint16), 2.0).shape == (60, 80)


@pytest.mark.parametrize("record, shapes", [
    # The test discs (about 13 px across) inside the range: one pass.
    ({"low": 8.0, "median": 13.0, "high": 20.0}, [(64, 64)]),
    # Trained on nuclei twice as large: a second pass at twice the size.
    ({"low": 24.0, "median": 26.0, "high": 40.0}, [(64, 64), (128, 128)]),
    # Trained on nuclei half as large: a second pass at half the size.
    ({"low": 3.0, "median": 5.0, "high": 8.0}, [(64, 64), (32, 32)]),
])
def test_segment_resamples_only_out_of_range_images_and_answers_on_their_own_grid(card, tmp_path, monkeypatch, record, shapes):
    import nucleus_module_helpers as helpers

    model = cards.load(with_diameters(card, tmp_path / "m", record))
    seen = []
    real = inference.predict_probabilities
    monkeypatch.setattr(inference, "predict_probabilities",
                        lambda image, *a, **k: seen.append(image.shape) or real(image, *a, **k))
    image = helpers.synthetic_image()
    probabilities, labels = inference.segment(image, model, match_size=True)
    assert seen == shapes
    assert probabilities.shape == image.shape + (3,) and labels.shape == image.shape
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-4)
    assert sorted(np.unique(labels)) == [0, 1, 2, 3]  # the three discs, numbered consecutively
    for r, c, _ in helpers.DISCS:
        assert labels[r, c] > 0
    # Without matching the same model runs once.
    seen.clear()
    inference.segment(image, model)
    assert seen == [(64, 64)]


def test_shrunk_nuclei_are_outlined_on_the_images_own_grid_with_sizes_scaled(card, tmp_path, monkeypatch):
    import nucleus_module_helpers as helpers

    from nucleiseg.postprocess import PostprocessSettings

    model = cards.load(with_diameters(card, tmp_path / "m", {"low": 3.0, "median": 5.0, "high": 8.0}))
    model_type = type(model.model_type)
    real = model_type.to_labels
    calls = []
    monkeypatch.setattr(model_type, "to_labels",
                        lambda self, p, s=None: calls.append((p.shape[:2], s)) or real(self, p, s))
    settings = PostprocessSettings(dilation=2, min_size=10)
    _, labels = inference.segment(helpers.synthetic_image(), model, settings, match_size=True)
    # First pass, then the half-size pass's probabilities outlined at the image's own 64 x 64.
    assert [shape for shape, _ in calls] == [(64, 64), (64, 64)]
    assert calls[1][1] == PostprocessSettings(dilation=4, min_size=40)
    assert labels.max() == 3


def test_a_masked_image_shrunk_for_the_network_keeps_its_nuclei_inside_the_mask(card, tmp_path):
    import nucleus_module_helpers as helpers

    model = cards.load(with_diameters(card, tmp_path / "m", {"low": 3.0, "median": 5.0, "high": 8.0}))
    mask = np.zeros(helpers.SHAPE, bool)
    mask[:, :49] = True
    probabilities, labels = inference.segment(helpers.synthetic_image(), model, mask=mask, match_size=True)
    assert labels[~mask].max() == 0 and probabilities[~mask][:, 0].min() == 1.0
    assert labels.max() >= 2


def test_post_processing_sizes_scale_with_the_zoom():
    from nucleiseg.postprocess import PostprocessSettings

    settings = PostprocessSettings(dilation=3, min_size=15, relative_min_size=0.2)
    assert settings.for_zoom(0.5) == PostprocessSettings(dilation=6, min_size=60, relative_min_size=0.2)
    assert settings.for_zoom(2.0).min_size == 4 and settings.for_zoom(1.0) == settings
    with pytest.raises(ValueError, match="zoom factor"):
        settings.for_zoom(0.0)


def test_a_masked_image_keeps_its_nuclei_inside_the_mask_after_resampling(card, tmp_path, monkeypatch):
    import nucleus_module_helpers as helpers

    model = cards.load(with_diameters(card, tmp_path / "m", {"low": 24.0, "median": 26.0, "high": 40.0}))
    mask = np.zeros(helpers.SHAPE, bool)
    mask[:, :49] = True  # cuts the second disc (centre column 46, radius 6)
    seen = []
    real = inference.predict_probabilities
    monkeypatch.setattr(inference, "predict_probabilities",
                        lambda image, *a, **k: seen.append(k["mask"].shape) or real(image, *a, **k))
    probabilities, labels = inference.segment(helpers.synthetic_image(), model, mask=mask, match_size=True)
    assert seen == [(64, 64), (128, 128)]  # the mask went along to the second pass
    assert labels[~mask].max() == 0 and probabilities[~mask][:, 0].min() == 1.0
    assert labels.max() == 3


def test_matching_with_a_card_without_the_record_names_the_command(card, tmp_path):
    import nucleus_module_helpers as helpers

    model = cards.load(with_diameters(card, tmp_path / "m", None))
    with pytest.raises(cards.ModelError, match=r"records no nucleus_diameters.*python -m nucleiseg.nucleus_size"):
        inference.segment(helpers.synthetic_image(), model, match_size=True)
    assert cards.nucleus_diameters(model.path) is None
    bad = with_diameters(card, tmp_path / "bad", {"low": 5})
    with pytest.raises(cards.ModelError, match="invalid nucleus_diameters"):
        cards.nucleus_diameters(bad)
    old = with_diameters(card, tmp_path / "old", {"low": 8.0, "median": 13.0, "high": 20.0}, estimator=None)
    with pytest.raises(cards.ModelError, match=rf"{old}.*record them again with python -m nucleiseg.nucleus_size"):
        inference.segment(helpers.synthetic_image(), cards.load(old), match_size=True)


def test_an_ensemble_without_its_own_record_uses_its_first_members(card, tmp_path):
    member = with_diameters(card, tmp_path / "m", {"low": 1.0, "median": 2.0, "high": 3.0})
    ensemble = cards.write_ensemble(tmp_path / "m" / "ensemble.json", [member, member])
    assert cards.nucleus_diameters(ensemble) == DiameterRange(1.0, 2.0, 3.0)


def test_the_command_writes_the_record_from_the_training_split(card, tmp_path):
    from nucleiseg.nucleus_size import main

    data = tmp_path / "data"
    synthetic.generate(data, n=6, size=64)
    target = with_diameters(card, tmp_path / "m", None)
    assert main([str(target), "--data", str(data)]) == 0
    record = json.loads(target.read_text())["nucleus_diameters"]
    expected = nucleus_size.record_for(data, "train")
    assert record == expected and record["split"] == "train" and record["images"] == len((data / "train.txt").read_text().split())
    # The weights' checksum still matches: only the card changed.
    cards.verify(target, onnx=False)
    with pytest.raises(SystemExit):
        main([str(target), "--data", str(tmp_path / "nowhere")])
    assert json.loads(target.read_text())["nucleus_diameters"] == record


def test_conditions_scores_each_card_with_and_without_matching(card, tmp_path):
    from benchmark.__main__ import main as benchmark_main

    data = tmp_path / "data"
    synthetic.generate(data, n=9, seed=2, size=64)
    out = tmp_path / "out"
    assert benchmark_main(["conditions", "--models", str(card), "--data", str(data), "--out", str(out), "--limit", "2",
                           "--perturbations", "scale_0.5x", "--match-size", "both"]) == 0
    with open(out / "conditions.csv", newline="") as handle:
        rows = [(r["model"], r["condition"]) for r in csv.DictReader(handle)]
    assert rows == [("unet-tiny", "clean"), ("unet-tiny", "scale_0.5x"),
                    ("unet-tiny (size matched)", "clean"), ("unet-tiny (size matched)", "scale_0.5x")]
    bare = with_diameters(card, tmp_path / "m", None)
    assert benchmark_main(["conditions", "--models", str(bare), "--data", str(data), "--out", str(tmp_path / "o2"),
                           "--match-size", "on"]) != 0
    assert not (tmp_path / "o2" / "conditions.csv").exists()


def test_training_records_its_images_diameters_widened_to_a_starting_models(card, tmp_path):
    from nucleiseg.training import TrainConfig, train

    data = tmp_path / "data"
    synthetic.generate(data, n=4, size=48)
    config = TrainConfig(network="unet", base_filters=4, data=str(data), crop=48, batch_size=1, steps_per_epoch=1,
                         epochs=1, val_images=1)
    own = json.loads(train(config, tmp_path / "scratch", tmp_path / "ck1").read_text())["nucleus_diameters"]
    assert own == nucleus_size.record_for(data, "train")
    start = with_diameters(card, tmp_path / "start", {"low": 2.0, "median": 30.0, "high": 90.0})
    tuned = TrainConfig(**{**config.__dict__, "init_from": str(start)})
    widened = json.loads(train(tuned, tmp_path / "tuned", tmp_path / "ck2").read_text())["nucleus_diameters"]
    assert (widened["low"], widened["median"], widened["high"]) == (2.0, own["median"], 90.0)
    assert card.name in widened["widened_to"]

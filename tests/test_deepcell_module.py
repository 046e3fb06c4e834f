"""The ClassifyPixelsDeepCell CellProfiler module inside hand-built CellProfiler workspaces.

What both modules share (model-file validation, devices, measurements, display) is tested in
full in test_unet_module.py; this file covers the DeepCell settings and samples the rest.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cellprofiler_core")
import nucleus_module_helpers as helpers  # noqa: E402  (sets CellProfiler headless first)

# Keras builds the hand-wired test networks; without it (.venv-cp42) they come prebuilt with ONNX files.
helpers.require_networks()

from cellprofiler_core.constants.measurement import IMAGE  # noqa: E402
from cellprofiler_core.setting import ValidationError  # noqa: E402

from plugin_files import load_plugin  # noqa: E402

from nucleiseg import cards, model_types  # noqa: E402
from nucleiseg_cellprofiler import names  # noqa: E402

ClassifyPixelsDeepCell = load_plugin("classifypixelsdeepcell").ClassifyPixelsDeepCell
PROBABILITY_IMAGES = ("BackgroundProbability", "InteriorProbability", "BoundaryProbability")


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One hand-wired DeepCell network."""
    return helpers.make_deepcell(tmp_path_factory.mktemp("deepcell") / "deepcell-tiny")


@pytest.fixture(scope="module")
def ensemble(single):
    """An ensemble card of two copies of it."""
    return helpers.make_ensemble(single, single.with_name("deepcell-ensemble"), 2)


def module_for(card, **settings):
    return helpers.make_module(ClassifyPixelsDeepCell, card, **settings)


def check_valid(module, pipeline):
    """CellProfiler's full check: every visible setting's, then validate_module."""
    if not any(m.module_name == "NamesAndTypes" for m in pipeline.modules()):
        helpers.with_image_provider(module, pipeline)
    module.test_valid(pipeline)


def validation_error(module, pipeline):
    with pytest.raises(ValidationError) as caught:
        check_valid(module, pipeline)
    return caught.value


def test_module_metadata_and_help():
    module, _ = module_for(None)
    assert module.module_name == "ClassifyPixelsDeepCell"
    assert module.category == "Object Processing"
    assert module.variable_revision_number == 4
    links = list(module.doi.values())
    assert "https://doi.org/10.1371/journal.pcbi.1005177" in links
    assert "https://doi.org/10.1002/cyto.a.23863" in links
    assert module.__doc__.lstrip().startswith("ClassifyPixelsDeepCell") and "Van Valen" in module.__doc__
    for setting in module.settings():
        assert setting.doc and len(setting.doc.strip()) > 40, setting.text
    assert module.ensemble.value == 5
    assert module.inference_mode.value == "Fully convolutional (fast)"
    assert module.normalization_method.value == "Percentile (as trained)"
    assert module.y_name.value == names.NUCLEI


def test_cellprofiler_plugin_loader_accepts_the_module():
    helpers.check_plugin_loader_accepts(ClassifyPixelsDeepCell, "classifypixelsdeepcell")


def test_settings_order_extends_the_shared_list():
    module, _ = module_for(None)
    texts = [s.text for s in module.settings()]
    assert texts[5:10] == ["Model", "Model card file", "Ensemble size", "Inference mode", "Normalization"]
    assert texts[10:12] == ["Lower normalization percentile", "Upper normalization percentile"]
    # DeepCell's own normalization has no percentiles.
    module.normalization_method.value = "DeepCell original (median / local mean)"
    assert module.low_percentile not in module.visible_settings()
    assert module.normalization() == {"method": "deepcell", "window": 61}


def test_ensemble_finds_the_bright_nuclei(ensemble):
    module, pipeline = module_for(ensemble, ensemble=2)
    check_valid(module, pipeline)
    image = helpers.synthetic_image()
    measurements, (_, workspace) = helpers.run_images(module, pipeline, [image, image])
    assert len(module.load_model().networks) == 2
    for number in (1, 2):
        assert measurements.get_measurement(IMAGE, "Count_Nuclei", number) == len(helpers.DISCS)
    labels = workspace.object_set.get_objects(names.NUCLEI).segmented
    for r, c, _ in helpers.DISCS:
        assert labels[r, c] > 0
    assert len(set(labels[r, c] for r, c, _ in helpers.DISCS)) == len(helpers.DISCS)
    centres_x = measurements.get_current_measurement(names.NUCLEI, "Location_Center_X")
    assert len(centres_x) == len(helpers.DISCS)
    probabilities = [workspace.image_set.get_image(name).pixel_data for name in PROBABILITY_IMAGES]
    np.testing.assert_allclose(sum(probabilities), 1.0, atol=1e-5)


def test_ensemble_output_is_the_mean_of_its_members_not_member_one(ensemble):
    image = helpers.synthetic_image()

    def interior(card, size):
        module, pipeline = module_for(card, ensemble=size)
        _, (workspace,) = helpers.run_images(module, pipeline, [image])
        return workspace.image_set.get_image(PROBABILITY_IMAGES[1]).pixel_data

    members = json.loads(ensemble.read_text())["members"]
    first, second = (interior(ensemble.with_name(m), 1) for m in members)
    both = interior(ensemble, 2)
    np.testing.assert_allclose(both, (first + second) / 2, rtol=1e-3, atol=1e-7)
    # The hand-wired members are sharp (probabilities near 0 or 1), so compare relatively.
    assert (np.abs(both - first) / np.maximum(first, 1e-12)).max() > 0.2


def test_ensemble_size_selects_members(ensemble):
    module, pipeline = module_for(ensemble, ensemble=1)
    check_valid(module, pipeline)
    assert len(module.load_model().networks) == 1


def test_ensemble_larger_than_the_model_is_refused(single):
    module, pipeline = module_for(single)  # default 5, the model has 1 network
    error = validation_error(module, pipeline)
    assert "Ensemble size 5" in str(error) and "1 network" in str(error) and str(single) in str(error)
    assert error.get_setting() is module.ensemble
    with pytest.raises(cards.ModelError, match="ensemble size 5"):
        helpers.run_images(module, pipeline, [helpers.synthetic_image()])


def test_damaged_ensemble_member_is_named(ensemble, tmp_path):
    for path in ensemble.parent.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    member = tmp_path / json.loads(ensemble.read_text())["members"][1]
    weights = member.with_name(json.loads(member.read_text())["weights"])
    with open(weights, "ab") as handle:
        handle.write(b"\0")
    module, pipeline = module_for(tmp_path / ensemble.name, ensemble=2)
    error = validation_error(module, pipeline)
    assert "checksum mismatch" in str(error) and str(weights) in str(error)


def test_missing_model_and_wrong_architecture_are_named(tmp_path, single, monkeypatch):
    missing = tmp_path / "missing.json"
    module, pipeline = module_for(missing, ensemble=1)
    assert str(missing) in str(validation_error(module, pipeline))
    unet_card = helpers.make_unet(tmp_path / "unet-tiny")
    module, pipeline = module_for(unet_card, ensemble=1)
    assert "'unet'" in str(validation_error(module, pipeline))
    shipped = tmp_path / "deepcell" / "deepcell-dsb2018.json"
    monkeypatch.setattr(model_types.get("deepcell"), "default_card", shipped)
    module, pipeline = module_for(None)
    assert str(shipped) in str(validation_error(module, pipeline))


def test_shipped_specialist_ensemble_is_a_choice(ensemble, tmp_path, monkeypatch):
    [(label, shipped)] = model_types.get("deepcell").specialist_cards.items()
    assert label == cards.BBBC039_LIKE and label in model_types.get("unet").specialist_cards  # one label for both modules
    module, _ = module_for(None)
    assert module.model_choice.choices == ["Shipped default", label, "Custom model file"]
    assert shipped.name in module.model_choice.doc
    monkeypatch.setitem(model_types.get("deepcell").specialist_cards, label, ensemble)
    module, pipeline = module_for(None, model_choice=label, ensemble=2)
    check_valid(module, pipeline)
    assert module.model_path() == ensemble and len(module.load_model().networks) == 2
    missing = tmp_path / "deepcell-bbbc039.json"
    monkeypatch.setitem(model_types.get("deepcell").specialist_cards, label, missing)
    error = validation_error(module, pipeline)
    assert str(missing) in str(error) and error.get_setting() is module.model_choice


def test_constant_and_colour_images(single):
    module, pipeline = module_for(single, ensemble=1)
    measurements, _ = helpers.run_images(module, pipeline, [np.zeros(helpers.SHAPE, np.uint16)])
    assert measurements.get_current_image_measurement("Count_Nuclei") == 0
    with pytest.raises(ValueError, match="colour image"):
        helpers.run_images(module, pipeline, [np.dstack([helpers.synthetic_image()] * 3)])


def test_deepcell_normalization_runs_and_warns_for_a_percentile_model(single):
    module, pipeline = module_for(single, ensemble=1, normalization_method="DeepCell original (median / local mean)")
    check_valid(module, pipeline)
    with pytest.raises(ValidationError, match="trained with 'percentile'") as caught:
        module.validate_module_warnings(pipeline)
    assert caught.value.get_setting() is module.normalization_method
    measurements, (workspace,) = helpers.run_images(module, pipeline, [helpers.synthetic_image()])
    # Median-divided, local-mean-subtracted discs are still far brighter than the background.
    assert measurements.get_current_image_measurement("Count_Nuclei") == len(helpers.DISCS)
    probabilities = [workspace.image_set.get_image(name).pixel_data for name in PROBABILITY_IMAGES]
    np.testing.assert_allclose(sum(probabilities), 1.0, atol=1e-5)


def test_a_snapshot_member_with_its_own_postprocessing_warns(single, tmp_path):
    """A member card's post-processing is not tuned for it: say so, and name the ensemble."""
    import shutil

    card = json.loads(single.read_text())
    weights = tmp_path / "net-3.weights.h5"
    shutil.copyfile(single.with_name(card["weights"]), weights)
    if card.get("onnx"):  # the prebuilt networks have theirs (environments without Keras)
        shutil.copyfile(single.with_name(card["onnx"]), tmp_path / card["onnx"])
    member = cards.write_card(dict(card, name="net-3", member_of={"ensemble": "net.json"}), weights)
    module, pipeline = module_for(member, ensemble=1)
    check_valid(module, pipeline)  # it runs
    with pytest.raises(ValidationError, match=r"net-3.json is one network of the ensemble net.json") as caught:
        module.validate_module_warnings(pipeline)
    assert caught.value.get_setting() is module.use_model_postprocess
    module.use_model_postprocess.value = False
    module.validate_module_warnings(pipeline)  # settings entered by hand: nothing to warn about
    plain, plain_pipeline = module_for(single, ensemble=1)
    plain.validate_module_warnings(plain_pipeline)


def test_second_image_set_reuses_the_loaded_model(single, monkeypatch):
    loads = []
    load = cards.load
    monkeypatch.setattr(cards, "load", lambda *a, **k: loads.append(a) or load(*a, **k))
    module, pipeline = module_for(single, ensemble=1)
    image = helpers.synthetic_image()
    helpers.run_images(module, pipeline, [image, image])
    # Every image set asks the per-process cache, which returns the very same networks.
    assert len(loads) == 2 and load(single, ensemble_size=1) is module.load_model()


def test_patch_mode_matches_fully_convolutional(single, monkeypatch):
    from nucleiseg.model_types import deepcell

    # 12 x 12 pixels: 144 patches, one network call; a constant image skips the network in both modes.
    image = helpers.synthetic_image()[10:22, 10:22].copy()
    patch_runs = []
    predict_patches = deepcell.predict_patches
    monkeypatch.setattr(deepcell, "predict_patches", lambda *a, **k: patch_runs.append(a[0].shape) or predict_patches(*a, **k))
    results = []
    for mode, runs in (("Fully convolutional (fast)", []), ("Patch by patch (as published; slow)", [image.shape])):
        module, pipeline = module_for(single, ensemble=1, inference_mode=mode)
        check_valid(module, pipeline)
        measurements, (workspace, empty) = helpers.run_images(module, pipeline, [image, np.zeros_like(image)])
        results.append([workspace.image_set.get_image(name).pixel_data for name in PROBABILITY_IMAGES])
        assert measurements.get_measurement(IMAGE, "Count_Nuclei", 2) == 0
        assert patch_runs == runs  # the choice reached the core's patch mode, and only there
    np.testing.assert_allclose(np.stack(results[0]), np.stack(results[1]), atol=1e-4)
    assert results[1][1].max() > 0.9  # the disc is in the crop


def test_both_modes_use_a_masked_image_inside_its_mask_only(single):
    image = helpers.synthetic_image()[10:22, 10:22].copy()
    image[:, -3:] = 40.0  # a bright artefact, masked out
    mask = np.ones(image.shape, bool)
    mask[:, -3:] = False
    results = []
    for mode in ("Fully convolutional (fast)", "Patch by patch (as published; slow)"):
        module, pipeline = module_for(single, ensemble=1, inference_mode=mode)
        _, (workspace,) = helpers.run_images(module, pipeline, [image], image_kwargs={"mask": mask})
        results.append(np.stack([workspace.image_set.get_image(name).pixel_data for name in PROBABILITY_IMAGES]))
        assert workspace.object_set.get_objects(names.NUCLEI).segmented[~mask].max() == 0
    np.testing.assert_allclose(results[0], results[1], atol=1e-4)
    assert np.all(results[0][0][~mask] == 1.0) and results[0][1][mask].max() > 0.9  # the disc is still found


def test_settings_round_trip_through_pipeline_text(ensemble):
    module, pipeline = module_for(
        ensemble,
        ensemble=2,
        inference_mode="Patch by patch (as published; slow)",
        normalization_method="DeepCell original (median / local mean)",
        use_model_postprocess=False,
        interior_threshold=0.4,
        min_size=5,
        device="GPU",
        gpu_index=1,
        match_size=False,
    )
    values = [s.value_text for s in module.settings()]
    assert len(values) == 27 and values[-1] == "No"  # earlier revisions' pipelines: test_settings_upgrades.py
    copy, text = helpers.round_trip(ClassifyPixelsDeepCell, module, pipeline)
    assert "ClassifyPixelsDeepCell:[module_num:1" in text
    assert isinstance(copy, ClassifyPixelsDeepCell)
    assert [s.value_text for s in copy.settings()] == values
    assert copy.ensemble_size() == 2 and copy.normalization()["method"] == "deepcell"


def test_display_shows_image_boundary_probability_and_outlines(single, tmp_path):
    module, pipeline = module_for(single, ensemble=1)
    image = helpers.synthetic_image()
    _, (workspace,) = helpers.run_images(module, pipeline, [image], show_window=True)
    assert workspace.display_data.count == 3
    helpers.check_display(module, workspace, image, tmp_path / "deepcell-display.png")


@pytest.mark.slow
def test_headless_cellprofiler_run(ensemble, tmp_path):
    module, _ = module_for(ensemble, ensemble=2)
    rows = helpers.headless_run(tmp_path, module, {"discs": helpers.synthetic_image()})
    assert float(rows["discs"]["Count_Nuclei"]) == len(helpers.DISCS)


@pytest.mark.slow
def test_shipped_model_segments_synthetic_nuclei():
    if not Path(model_types.get("deepcell").default_card).is_file():
        pytest.skip("the shipped DeepCell model is not trained yet")
    from nucleiseg import synthetic

    image, truth = synthetic.generate_one(0, size=256)
    module, pipeline = module_for(None)
    if len(cards.member_cards(model_types.get("deepcell").default_card)) < module.ensemble.value:
        module.ensemble.value = len(cards.member_cards(model_types.get("deepcell").default_card))
    check_valid(module, pipeline)
    measurements, _ = helpers.run_images(module, pipeline, [image])
    count = measurements.get_current_image_measurement("Count_Nuclei")
    assert 0.5 * truth.max() <= count <= 1.5 * truth.max()

"""The ClassifyBoundariesUNet CellProfiler module inside hand-built CellProfiler workspaces.

Shared behaviour of both deep-learning modules (validation of model files, devices, caching)
is tested here in full and only sampled in test_deepcell_module.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cellprofiler_core")
import nucleus_module_helpers as helpers  # noqa: E402  (sets CellProfiler headless first)

# Keras builds the hand-wired test networks; without it (.venv-cp42) they come prebuilt with ONNX files.
helpers.require_networks()

from cellprofiler_core.constants.measurement import COLTYPE_FLOAT, COLTYPE_INTEGER, IMAGE  # noqa: E402
from cellprofiler_core.setting import ValidationError  # noqa: E402

from plugin_files import load_plugin  # noqa: E402

from nucleiseg import cards, devices, engines, model_types, nucleus_size  # noqa: E402
from nucleiseg.postprocess import PostprocessSettings  # noqa: E402
from nucleiseg_cellprofiler import names  # noqa: E402

ClassifyBoundariesUNet = load_plugin("classifyboundariesunet").ClassifyBoundariesUNet
PROBABILITY_IMAGES = ("BackgroundProbability", "InteriorProbability", "BoundaryProbability")


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    return helpers.make_unet(tmp_path_factory.mktemp("unet") / "unet-tiny")


@pytest.fixture
def own_copy(card, tmp_path):
    """A private copy of the model that a test may damage."""
    for path in card.parent.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    return tmp_path / card.name


def module_for(card, **settings):
    return helpers.make_module(ClassifyBoundariesUNet, card, **settings)


def test_module_metadata_and_help():
    module, _ = module_for(None)
    assert module.module_name == "ClassifyBoundariesUNet"
    assert module.category == "Object Processing"
    assert module.variable_revision_number == 4
    links = list(module.doi.values())
    assert "https://doi.org/10.1002/cyto.a.23863" in links
    assert "https://doi.org/10.1007/978-3-319-24574-4_28" in links
    # CellProfiler's help is the plugin file's docstring (the class has none on purpose).
    assert module.__doc__.lstrip().startswith("ClassifyBoundariesUNet") and "Ronneberger" in module.__doc__
    for setting in module.settings():
        assert setting.doc and len(setting.doc.strip()) > 40, setting.text
    assert (module.x_name.value, module.y_name.value) == (names.IMAGE, names.NUCLEI) == ("DNA", "Nuclei")
    assert [module.background_name.value, module.interior_name.value, module.boundary_name.value] == list(PROBABILITY_IMAGES)
    assert module.model_choice.value == "Shipped default" and module.device.value == "Automatic"
    assert module.engine.value == "Automatic" and module.engine.choices == ["Automatic", "ONNX Runtime", "TensorFlow"]
    assert not module.volumetric()


def test_cellprofiler_plugin_loader_accepts_the_module():
    # CellProfiler imports every plugins/*.py as a module: no helper files may live there.
    helpers.check_plugin_loader_accepts(ClassifyBoundariesUNet, "classifyboundariesunet")


def test_flip_and_rotation_averaging_is_the_cores(card, monkeypatch):
    from nucleiseg.inference import predict_probabilities

    image = helpers.synthetic_image()[:, :50]  # not square: views of two shapes
    unet = model_types.get("unet")
    shapes = []
    original = unet.predict

    def counted(model, normalized, **options):
        shapes.append(normalized.shape)
        return original(model, normalized, **options)

    monkeypatch.setattr(unet, "predict", counted)
    module, pipeline = module_for(card, augment=True)
    _, (workspace,) = helpers.run_images(module, pipeline, [image])
    # The network saw the 8 flips and rotations, not the image once.
    assert sorted(shapes) == sorted([image.shape] * 4 + [image.shape[::-1]] * 4)
    found = np.stack([workspace.image_set.get_image(name).pixel_data for name in PROBABILITY_IMAGES], axis=-1)
    expected = predict_probabilities(image, cards.load(card), normalization=module.normalization(), augment=True)
    np.testing.assert_allclose(found, expected, atol=1e-5)


def test_visible_settings_follow_the_choices():
    module, _ = module_for(None)
    assert module.model_file not in module.visible_settings()
    assert module.gpu_index not in module.visible_settings()
    module.model_choice.value = "Custom model file"
    module.device.value = "GPU"
    assert module.model_file in module.visible_settings() and module.gpu_index in module.visible_settings()


def test_finds_the_bright_nuclei_and_measures_them(card):
    module, pipeline = module_for(card)
    module.validate_module(pipeline)
    image = helpers.synthetic_image()
    measurements, (workspace,) = helpers.run_images(module, pipeline, [image])
    labels = workspace.object_set.get_objects(names.NUCLEI).segmented
    assert labels.shape == image.shape and labels.max() == len(helpers.DISCS)
    assert measurements.get_current_image_measurement("Count_Nuclei") == len(helpers.DISCS)
    centres_x = measurements.get_current_measurement(names.NUCLEI, "Location_Center_X")
    centres_y = measurements.get_current_measurement(names.NUCLEI, "Location_Center_Y")
    found = sorted(zip(np.round(centres_y), np.round(centres_x)))
    assert found == sorted((float(r), float(c)) for r, c, _ in helpers.DISCS)
    assert list(measurements.get_current_measurement(names.NUCLEI, "Number_Object_Number")) == [1, 2, 3]
    # Each disc is one object that covers it.
    for r, c, radius in helpers.DISCS:
        assert labels[r, c] > 0 and labels[r - radius + 1, c] == labels[r, c]
    probabilities = [workspace.image_set.get_image(name).pixel_data for name in PROBABILITY_IMAGES]
    assert all(p.shape == image.shape for p in probabilities)
    np.testing.assert_allclose(sum(probabilities), 1.0, atol=1e-5)
    assert probabilities[1][16, 16] > 0.9 and probabilities[0][0, 0] > 0.9


def test_declared_measurements_match_what_run_writes(card):
    module, pipeline = module_for(card)
    measurements, _ = helpers.run_images(module, pipeline, [helpers.synthetic_image()])
    columns = module.get_measurement_columns(pipeline)
    assert (IMAGE, "Count_Nuclei", COLTYPE_INTEGER) in columns
    for feature in ("Location_Center_X", "Location_Center_Y", "Number_Object_Number"):
        assert any(c[:2] == (names.NUCLEI, feature) for c in columns)
        assert measurements.has_feature(names.NUCLEI, feature)
    assert (names.NUCLEI, "Location_Center_X", COLTYPE_FLOAT) in columns
    written = set(measurements.get_feature_names(names.NUCLEI))
    assert {c[1] for c in columns if c[0] == names.NUCLEI} == written
    assert module.get_categories(pipeline, IMAGE) == ["Count"]
    assert set(module.get_categories(pipeline, names.NUCLEI)) == {"Location", "Number"}
    assert module.get_measurements(pipeline, IMAGE, "Count") == [names.NUCLEI]
    assert "Center_X" in module.get_measurements(pipeline, names.NUCLEI, "Location")
    assert module.get_measurements(pipeline, names.NUCLEI, "Number") == ["Object_Number"]
    # The names follow the output objects setting.
    module.y_name.value = "Blobs"
    assert (IMAGE, "Count_Blobs", COLTYPE_INTEGER) in module.get_measurement_columns(pipeline)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_integer_and_float_images_give_the_same_nuclei(card, dtype):
    module, pipeline = module_for(card)
    image = helpers.synthetic_image()
    if dtype != np.float32:
        image = np.round(image * np.iinfo(dtype).max).astype(dtype)  # CellProfiler rescales to 0..1
    measurements, (workspace,) = helpers.run_images(module, pipeline, [image])
    assert measurements.get_current_image_measurement("Count_Nuclei") == len(helpers.DISCS)


@pytest.mark.parametrize("value", [0.0, 0.4])
def test_constant_image_gives_no_objects(card, value):
    module, pipeline = module_for(card)
    measurements, (workspace,) = helpers.run_images(module, pipeline, [np.full(helpers.SHAPE, value, np.float32)])
    assert measurements.get_current_image_measurement("Count_Nuclei") == 0
    assert workspace.object_set.get_objects(names.NUCLEI).count == 0
    assert len(measurements.get_current_measurement(names.NUCLEI, "Location_Center_X")) == 0
    assert np.all(workspace.image_set.get_image("BackgroundProbability").pixel_data == 1.0)


def test_colour_and_volumetric_images_are_rejected_clearly(card):
    module, pipeline = module_for(card)
    colour = np.dstack([helpers.synthetic_image()] * 3)
    with pytest.raises(ValueError, match="colour image.*ColorToGray"):
        helpers.run_images(module, pipeline, [colour])
    stack = np.stack([helpers.synthetic_image()] * 4)
    with pytest.raises(ValueError, match="3-D"):
        helpers.run_images(module, pipeline, [stack], image_kwargs={"dimensions": 3})


@pytest.mark.parametrize("augment", [False, True])
def test_masked_image_is_used_inside_its_mask_only(card, augment):
    image = helpers.synthetic_image()
    mask = np.zeros(helpers.SHAPE, bool)
    mask[:, : helpers.SHAPE[1] // 2] = True
    module, pipeline = module_for(card, augment=augment)

    def nuclei(pixels, **image_kwargs):
        _, (workspace,) = helpers.run_images(module, pipeline, [pixels], image_kwargs=image_kwargs)
        return workspace, workspace.object_set.get_objects(names.NUCLEI).segmented

    _, unmasked = nuclei(image)
    workspace, labels = nuclei(image, mask=mask)
    assert labels[~mask].max() == 0 and 0 < labels.max() < unmasked.max()
    assert np.all(workspace.image_set.get_image("BackgroundProbability").pixel_data[~mask] == 1.0)
    # A bright artefact outside the mask does not change the scaling inside it.
    artefact = image.copy()
    artefact[:, -8:] = 50.0
    _, unscaled = nuclei(artefact)
    assert unscaled[mask].max() == 0  # without the mask the artefact swamps the nuclei
    _, with_artefact = nuclei(artefact, mask=mask)
    np.testing.assert_array_equal(with_artefact, labels)


def test_image_with_nan_pixels_is_rejected_naming_the_input(card):
    module, pipeline = module_for(card)
    image = helpers.synthetic_image().astype(np.float32)
    image[10, 10:13] = np.nan
    with pytest.raises(ValueError, match=r"input image 'DNA' has 3 pixel\(s\) that are NaN or infinite"):
        helpers.run_images(module, pipeline, [image])


def test_second_image_set_reuses_the_loaded_model(card, monkeypatch):
    builds = []
    build = engines.load_networks  # what either engine loads its networks through
    monkeypatch.setattr(engines, "load_networks", lambda *a, **k: builds.append(a) or build(*a, **k))
    cards.clear_cache()
    module, pipeline = module_for(card)
    image = helpers.synthetic_image()
    measurements, _ = helpers.run_images(module, pipeline, [image, image[::-1].copy()])
    assert len(builds) == 1  # the first image set built the network, the second did not
    assert measurements.get_measurement(IMAGE, "Count_Nuclei", 2) == len(helpers.DISCS)
    assert module.load_model() is module.load_model()
    # A second module instance in the same process (another pipeline position) shares it too.
    other, _ = module_for(card)
    assert other.load_model() is module.load_model() and len(builds) == 1


def check_valid(module, pipeline):
    """CellProfiler's full check: every visible setting's, then validate_module."""
    if not any(m.module_name == "NamesAndTypes" for m in pipeline.modules()):
        helpers.with_image_provider(module, pipeline)
    module.test_valid(pipeline)


def validation_message(module, pipeline):
    with pytest.raises(ValidationError) as caught:
        check_valid(module, pipeline)
    return str(caught.value), caught.value.get_setting()


def test_missing_model_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "model.json"
    module, pipeline = module_for(missing)
    message, setting = validation_message(module, pipeline)
    assert str(missing) in message and setting is module.model_file


def test_empty_model_path_asks_for_a_file():
    module, pipeline = module_for(None, model_choice="Custom model file")
    message, setting = validation_message(module, pipeline)
    assert "Choose a model card" in message and setting is module.model_file


def test_corrupt_card_is_named(own_copy):
    own_copy.write_text("{ not json")
    module, pipeline = module_for(own_copy)
    message, _ = validation_message(module, pipeline)
    assert str(own_copy) in message and "JSON" in message


def test_checksum_mismatch_is_caught_before_the_run(own_copy):
    weights = own_copy.with_name(json.loads(own_copy.read_text())["weights"])
    with open(weights, "ab") as handle:
        handle.write(b"\0")
    module, pipeline = module_for(own_copy)
    message, setting = validation_message(module, pipeline)
    assert "checksum mismatch" in message and str(weights) in message and setting is module.model_file
    # Headless runs skip validation; the run refuses the file just the same.
    with pytest.raises(cards.ModelError, match="checksum mismatch"):
        helpers.run_images(module, pipeline, [helpers.synthetic_image()])


def test_missing_weights_file_is_named(own_copy):
    weights = own_copy.with_name(json.loads(own_copy.read_text())["weights"])
    weights.unlink()
    module, pipeline = module_for(own_copy)
    message, _ = validation_message(module, pipeline)
    assert str(weights) in message


def test_model_of_another_architecture_is_refused(own_copy):
    card = json.loads(own_copy.read_text())
    card["architecture"] = {"name": "deepcell", "n_classes": 3}
    own_copy.write_text(json.dumps(card))
    module, pipeline = module_for(own_copy)
    message, _ = validation_message(module, pipeline)
    assert "'deepcell'" in message and str(own_copy) in message


def test_missing_shipped_model_is_named(tmp_path, monkeypatch):
    shipped = tmp_path / "unet" / "unet-dsb2018.json"
    monkeypatch.setattr(model_types.get("unet"), "default_card", shipped)
    module, pipeline = module_for(None)
    message, setting = validation_message(module, pipeline)
    assert str(shipped) in message and "shipped model" in message and setting is module.model_choice


def test_shipped_model_is_used_by_default(card, monkeypatch):
    monkeypatch.setattr(model_types.get("unet"), "default_card", card)
    module, pipeline = module_for(None)
    check_valid(module, pipeline)
    assert module.model_path() == card


def test_shipped_specialist_model_is_a_choice_with_its_own_card(card, tmp_path, monkeypatch):
    [(label, _)] = model_types.get("unet").specialist_cards.items()
    module, _ = module_for(None)
    assert module.model_choice.choices == ["Shipped default", label, "Custom model file"]
    assert label in module.model_choice.doc
    monkeypatch.setitem(model_types.get("unet").specialist_cards, label, card)
    module, pipeline = module_for(None, model_choice=label)
    check_valid(module, pipeline)
    assert module.model_path() == card and module.model_file not in module.visible_settings()
    missing = tmp_path / "unet-bbbc039.json"
    monkeypatch.setitem(model_types.get("unet").specialist_cards, label, missing)
    message, setting = validation_message(module, pipeline)
    assert str(missing) in message and "shipped model" in message and setting is module.model_choice


@pytest.mark.parametrize(
    "settings, message, setting",
    [
        ({"low_percentile": 99.0, "high_percentile": 1.0}, "lower normalization percentile", "high_percentile"),
        ({"use_model_postprocess": False, "interior_threshold": 1.0}, "interior_threshold", "interior_threshold"),
        ({"use_model_postprocess": False, "boundary_boost": 0.0}, "boundary_boost", "boundary_boost"),
        ({"use_model_postprocess": False, "foreground_threshold": 1.0}, "foreground_threshold", "foreground_threshold"),
        ({"tile_size": 64, "tile_overlap": 64}, "overlap", "tile_overlap"),
        ({"boundary_name": "InteriorProbability"}, "different names", "boundary_name"),
    ],
)
def test_invalid_settings_are_reported_on_the_setting(card, settings, message, setting):
    module, pipeline = module_for(card, **settings)
    with pytest.raises(ValidationError, match=message) as caught:
        module.validate_module(pipeline)
    assert caught.value.get_setting() is getattr(module, setting)


def test_post_processing_comes_from_the_card_unless_the_user_sets_it(own_copy):
    card = json.loads(own_copy.read_text())
    card["postprocess"] = {"interior_threshold": 0.7, "min_size": 40, "foreground_threshold": 0.9}
    own_copy.write_text(json.dumps(card))
    module, pipeline = module_for(own_copy, interior_threshold=0.3)
    check_valid(module, pipeline)
    used = module.postprocess_settings()
    assert (used.interior_threshold, used.min_size, used.foreground_threshold) == (0.7, 40, 0.9)
    assert used.dilation == PostprocessSettings().dilation  # missing from the card: the default
    assert module.interior_threshold not in module.visible_settings()
    module.use_model_postprocess.value = False
    assert module.postprocess_settings().interior_threshold == 0.3
    assert module.interior_threshold in module.visible_settings() and module.foreground_threshold in module.visible_settings()


def test_bad_post_processing_in_the_card_names_the_card(own_copy):
    card = json.loads(own_copy.read_text())
    card["postprocess"] = {"interior_threshold": 0.5, "dilaton": 2}
    own_copy.write_text(json.dumps(card))
    module, pipeline = module_for(own_copy)
    message, setting = validation_message(module, pipeline)
    assert str(own_copy) in message and "dilaton" in message and setting is module.use_model_postprocess
    # Choosing one's own post-processing no longer reads that field.
    module.use_model_postprocess.value = False
    check_valid(module, pipeline)


def test_size_matching_needs_the_cards_record_and_runs_a_second_pass_outside_its_range(own_copy):
    card = json.loads(own_copy.read_text())
    del card["nucleus_diameters"]
    own_copy.write_text(json.dumps(card))
    module, pipeline = module_for(own_copy)
    assert module.match_size.value and module.match_size in module.visible_settings()
    message, setting = validation_message(module, pipeline)
    assert setting is module.match_size and str(own_copy) in message and "python -m nucleiseg.nucleus_size" in message
    with pytest.raises(cards.ModelError, match="records no nucleus_diameters"):  # headless runs skip validation
        helpers.run_images(module, pipeline, [helpers.synthetic_image()])
    module.match_size.value = False
    check_valid(module, pipeline)
    # Trained on nuclei twice the test discs' size: the module finds the same three nuclei, on the image's grid.
    card["nucleus_diameters"] = {"low": 24.0, "median": 26.0, "high": 40.0, "estimator": nucleus_size.ESTIMATOR}
    own_copy.write_text(json.dumps(card))
    cards.clear_cache()
    module, pipeline = module_for(own_copy)
    check_valid(module, pipeline)
    image = helpers.synthetic_image()
    _, (workspace,) = helpers.run_images(module, pipeline, [image])
    labels = workspace.object_set.get_objects(names.NUCLEI).segmented
    assert labels.shape == image.shape and labels.max() == len(helpers.DISCS)
    assert all(labels[r, c] > 0 for r, c, _ in helpers.DISCS)


@helpers.needs_keras
def test_gpu_without_gpu_is_a_clear_error(card):
    if devices.gpu_count():
        pytest.skip("this machine has a GPU")
    module, pipeline = module_for(card, device="GPU")
    message, setting = validation_message(module, pipeline)
    assert "GPU" in message and "Automatic" in message and setting is module.device
    with pytest.raises(devices.DeviceError, match="GPU"):
        helpers.run_images(module, pipeline, [helpers.synthetic_image()])
    # Automatic falls back to the CPU.
    module.device.value = "Automatic"
    check_valid(module, pipeline)
    assert module.device_name() == "/CPU:0"


def test_gpu_index_out_of_range_is_reported(monkeypatch):
    monkeypatch.setattr(devices, "gpu_count", lambda: 2)
    assert devices.resolve("gpu", 1) == "/GPU:1" and devices.resolve("auto") == "/GPU:0"
    with pytest.raises(devices.DeviceError, match="GPU 2 .* 2 GPU"):
        devices.resolve("gpu", 2)
    assert devices.resolve("cpu") == "/CPU:0"


@pytest.fixture(scope="module")
def onnx_card(card, tmp_path_factory):
    """A copy of the hand-wired model with its ONNX file (python -m nucleiseg.export)."""
    pytest.importorskip("onnxruntime")
    if not helpers.HAS_KERAS:
        return card  # prebuilt with its ONNX file
    from nucleiseg import export

    folder = tmp_path_factory.mktemp("unet-onnx")
    for path in card.parent.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    export.export_onnx(folder / card.name)
    return folder / card.name


def probabilities_of(workspace):
    return np.stack([workspace.image_set.get_image(name).pixel_data for name in PROBABILITY_IMAGES], axis=-1)


@helpers.needs_keras
def test_each_engine_runs_the_network_with_the_same_result(onnx_card):
    image = helpers.synthetic_image()
    results = {}
    for choice, engine in [("ONNX Runtime", "onnxruntime"), ("TensorFlow", "tensorflow"), ("Automatic", "onnxruntime")]:
        module, pipeline = module_for(onnx_card, engine=choice, device="CPU")
        check_valid(module, pipeline)
        _, (workspace,) = helpers.run_images(module, pipeline, [image], show_window=True)
        assert module.load_model().engine == engine
        assert workspace.display_data.device == f"{engines.LABELS[engine]}, /CPU:0"
        assert workspace.object_set.get_objects(names.NUCLEI).segmented.max() == len(helpers.DISCS)
        results[choice] = probabilities_of(workspace)
    np.testing.assert_allclose(results["ONNX Runtime"], results["TensorFlow"], atol=1e-4)


@helpers.needs_keras
def test_onnx_runtime_for_a_model_without_onnx_files_names_the_export_command(card):
    module, pipeline = module_for(card, engine="ONNX Runtime")
    message, setting = validation_message(module, pipeline)
    assert "names no ONNX file" in message and "python -m nucleiseg.export" in message and setting is module.engine
    module.engine.value = "Automatic"  # TensorFlow runs it
    check_valid(module, pipeline)
    assert module.load_model().engine == "tensorflow"


@pytest.mark.parametrize("choice, missing, install", [
    # Without ONNX Runtime, Automatic runs TensorFlow.
    pytest.param("ONNX Runtime", "onnxruntime", "pip install 'nucleiseg[onnx]'", marks=helpers.needs_keras),
    ("TensorFlow", "tensorflow", "pip install 'nucleiseg[tensorflow]'"),
])
def test_missing_engine_is_reported_with_what_to_install(onnx_card, monkeypatch, choice, missing, install):
    monkeypatch.setattr(engines, "installed", lambda engine: engine != missing)
    cards.clear_cache()
    module, pipeline = module_for(onnx_card, engine=choice)
    message, setting = validation_message(module, pipeline)
    assert install in message and setting is module.engine
    with pytest.raises(engines.EngineNotInstalled, match=re.escape(install)):
        helpers.run_images(module, pipeline, [helpers.synthetic_image()])
    module.engine.value = "Automatic"  # takes the engine that is there
    check_valid(module, pipeline)
    assert module.load_model().engine != missing
    cards.clear_cache()


def test_gpu_through_onnx_runtime_without_cuda_names_the_gpu_package(onnx_card):
    import onnxruntime

    if engines.CUDA_PROVIDER in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has a CUDA provider")
    module, pipeline = module_for(onnx_card, engine="ONNX Runtime", device="GPU")
    message, setting = validation_message(module, pipeline)
    assert "onnxruntime-gpu" in message and setting is module.device


def test_memory_growth_is_switched_on_once_per_process(monkeypatch):
    from types import SimpleNamespace

    calls = []
    gpus = [SimpleNamespace(name="gpu0"), SimpleNamespace(name="gpu1")]

    def set_memory_growth(gpu, enable):
        calls.append((gpu.name, enable))
        if gpu.name == "gpu1":
            raise RuntimeError("Physical devices cannot be modified after being initialized")

    experimental = SimpleNamespace(set_memory_growth=set_memory_growth)
    config = SimpleNamespace(list_physical_devices=lambda kind: gpus, experimental=experimental)
    monkeypatch.setattr(devices, "_tensorflow", lambda: SimpleNamespace(config=config))
    monkeypatch.setattr(devices, "_memory_growth_set", False)
    devices.enable_memory_growth()  # an already initialised GPU is only logged
    devices.enable_memory_growth()
    assert calls == [("gpu0", True), ("gpu1", True)]


def test_normalization_other_than_trained_warns(card):
    module, pipeline = module_for(card)
    module.validate_module_warnings(pipeline)  # the defaults match the card: no warning
    module.low_percentile.value = 1.0
    with pytest.raises(ValidationError, match="percentiles 0.1 and 99.9") as caught:
        module.validate_module_warnings(pipeline)
    assert caught.value.get_setting() is module.low_percentile


def test_settings_round_trip_through_pipeline_text(card):
    module, pipeline = module_for(
        card,
        x_name="Hoechst",
        y_name="MyNuclei",
        boundary_name="Edges",
        low_percentile=1.0,
        high_percentile=99.5,
        interior_threshold=0.6,
        boundary_boost=1.5,
        min_size=30,
        fill_holes=False,
        dilation=3,
        use_model_postprocess=False,
        foreground_threshold=0.5,
        tile_size=512,
        tile_overlap=32,
        batch_size=2,
        engine="TensorFlow",
        device="CPU",
        match_size=False,
    )
    values = [s.value_text for s in module.settings()]
    # Earlier revisions' pipelines: test_settings_upgrades.py.
    assert module.upgrade_settings(values, 4, "ClassifyBoundariesUNet") == (values, 4)
    copy, text = helpers.round_trip(ClassifyBoundariesUNet, module, pipeline)
    assert "ClassifyBoundariesUNet:[module_num:1|svn_version" in text and "variable_revision_number:4" in text
    assert isinstance(copy, ClassifyBoundariesUNet)
    assert [s.value_text for s in copy.settings()] == values
    assert copy.model_path() == card and copy.postprocess_settings() == module.postprocess_settings()


def test_display_shows_image_boundary_probability_and_outlines(card, tmp_path):
    module, pipeline = module_for(card)
    image = helpers.synthetic_image()
    _, (workspace,) = helpers.run_images(module, pipeline, [image], show_window=True)
    assert workspace.display_data.count == 3
    helpers.check_display(module, workspace, image, tmp_path / "unet-display.png")


@pytest.mark.slow  # a fresh interpreter importing CellProfiler: several seconds
def test_importing_the_plugin_does_not_load_tensorflow():
    # CellProfiler imports every plugin at start-up; TensorFlow must wait until a network runs.
    code = (
        "import sys; from nucleiseg_cellprofiler.headless import init_cellprofiler, plugin_available; init_cellprofiler(); "
        "assert plugin_available('ClassifyBoundariesUNet') and plugin_available('ClassifyPixelsDeepCell'), 'plugins not loaded'; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=helpers.ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_headless_cellprofiler_run(card, tmp_path):
    module, _ = module_for(card)
    rows = helpers.headless_run(
        tmp_path, module, {"discs": helpers.synthetic_image(), "empty": np.zeros(helpers.SHAPE, np.float32)}
    )
    assert float(rows["discs"]["Count_Nuclei"]) == len(helpers.DISCS)
    assert float(rows["empty"]["Count_Nuclei"]) == 0


@pytest.mark.slow
def test_shipped_model_segments_synthetic_nuclei():
    if not Path(model_types.get("unet").default_card).is_file():
        pytest.skip("the shipped U-Net is not trained yet")
    from nucleiseg import synthetic

    image, truth = synthetic.generate_one(0, size=256)
    module, pipeline = module_for(None)
    check_valid(module, pipeline)
    measurements, _ = helpers.run_images(module, pipeline, [image])
    count = measurements.get_current_image_measurement("Count_Nuclei")
    assert 0.5 * truth.max() <= count <= 1.5 * truth.max()

"""The bioimage.io model package (``python -m nucleiseg.export CARD --bioimageio OUT.zip``), without bioimageio.core.

The package of the shipped general U-Net is written once; the tests read it back as a
consumer would (zip, ``rdf.yaml``, ``.npy``) and compare it with nucleiseg's own
inference. ``make check-bioimageio`` validates the same package with bioimageio.core in
its own environment (``tests/check_bioimageio_package.py``).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("onnxruntime")
keras = pytest.importorskip("keras")

from nucleiseg import bioimageio, cards, export, model_types  # noqa: E402
from nucleiseg.inference import predict_probabilities  # noqa: E402
from nucleiseg.normalization import normalize  # noqa: E402

UNET = model_types.get("unet")
SHIPPED_UNET = UNET.default_card
DEEPCELL_ENSEMBLE = model_types.get("deepcell").default_card


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """(path, rdf, {name: bytes}) of the shipped U-Net's package, written through the command line."""
    out = tmp_path_factory.mktemp("bioimageio") / "unet.zip"
    assert export.main([str(SHIPPED_UNET), "--bioimageio", str(out)]) == 0
    with zipfile.ZipFile(out) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    return out, yaml.safe_load(contents[bioimageio.DESCRIPTION_FILE]), contents


def file_entries(node):
    """Every ``{source, sha256}`` entry anywhere in the description."""
    if isinstance(node, dict):
        if "source" in node:
            yield node
        for value in node.values():
            yield from file_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from file_entries(value)


def array(contents, name) -> np.ndarray:
    return np.load(io.BytesIO(contents[name]), allow_pickle=False)


def test_the_package_holds_every_file_its_description_names_with_its_sha256(package):
    _, rdf, contents = package
    entries = list(file_entries(rdf))
    named = [entry["source"] for entry in entries]
    assert len(named) == len(set(named))
    assert set(named) == set(contents) - {bioimageio.DESCRIPTION_FILE}
    for entry in entries:
        assert entry["sha256"] == hashlib.sha256(contents[entry["source"]]).hexdigest(), entry["source"]
    card = cards.read_card(SHIPPED_UNET)
    weights = rdf["weights"]
    # The ONNX file and the attached weights are the card's own files, unchanged.
    assert weights["onnx"]["sha256"] == card["onnx_sha256"]
    assert {"source": card["weights"], "sha256": card["sha256"]} in rdf["attachments"]
    assert set(weights) == {"onnx", "keras_v3"} and weights["onnx"]["parent"] == "keras_v3"
    assert weights["keras_v3"]["source"].endswith(".keras") and weights["keras_v3"]["keras_version"].startswith("3.")
    assert rdf["type"] == "model" and rdf["format_version"].startswith("0.5.")
    assert rdf["documentation"]["source"].endswith(".md") and rdf["covers"][0]["source"].endswith(".png")


def test_the_test_output_is_our_inference_of_the_test_input(package):
    _, rdf, contents = package
    (inputs,), (outputs,) = rdf["inputs"], rdf["outputs"]
    test_input = array(contents, inputs["test_tensor"]["source"])
    test_output = array(contents, outputs["test_tensor"]["source"])
    assert test_input.dtype == test_output.dtype == np.float32
    edge = bioimageio.TEST_CROP
    assert test_input.shape == (1, edge, edge, 1) and test_output.shape == (1, edge, edge, 3)
    image = test_input[0, ..., 0]
    for engine, tolerance in (("onnxruntime", 1e-6), ("tensorflow", 1e-4)):
        ours = predict_probabilities(image, cards.load(SHIPPED_UNET, engine=engine, device="cpu"))
        assert np.abs(ours - test_output[0]).max() <= tolerance, engine
    # A real-looking input: raw 16-bit counts with nuclei the network finds, touching ones among them.
    assert image.max() > 255 and np.array_equal(image, np.round(image))
    assert (test_output[0, ..., 1] > 0.5).mean() > 0.1 and (test_output[0, ..., 2] > 0.5).sum() > 100
    np.testing.assert_allclose(test_output.sum(axis=-1), 1.0, atol=1e-5)


def test_the_keras_file_is_the_same_network(package, tmp_path):
    _, rdf, contents = package
    keras_file = tmp_path / rdf["weights"]["keras_v3"]["source"]
    keras_file.write_bytes(contents[keras_file.name])
    network = keras.models.load_model(keras_file)
    test_input = array(contents, rdf["inputs"][0]["test_tensor"]["source"])
    normalized = normalize(test_input[0, ..., 0], cards.read_card(SHIPPED_UNET)["normalization"])
    found = np.asarray(network.predict_on_batch(normalized[None, ..., None]))
    expected = array(contents, rdf["outputs"][0]["test_tensor"]["source"])
    assert np.abs(found - expected).max() <= bioimageio.TOLERANCE


def test_preprocessing_is_the_cards_percentile_normalization(package):
    _, rdf, contents = package
    (step,) = rdf["inputs"][0]["preprocessing"]
    normalization = cards.read_card(SHIPPED_UNET)["normalization"]
    assert step["id"] == "scale_range" and step["kwargs"]["axes"] == ["y", "x"]
    assert (step["kwargs"]["min_percentile"], step["kwargs"]["max_percentile"]) == (normalization["low"], normalization["high"])
    # The spec's scale_range (linear percentiles over y and x; eps 1e-6 by default) against ours.
    image = array(contents, rdf["inputs"][0]["test_tensor"]["source"])[0, ..., 0]
    low, high = np.percentile(image, [step["kwargs"]["min_percentile"], step["kwargs"]["max_percentile"]])
    theirs = (image - low) / (high - low + step["kwargs"].get("eps", 1e-6))
    np.testing.assert_allclose(theirs, normalize(image, normalization), rtol=1e-5, atol=1e-6)


def test_axes_are_the_networks_layout_and_sizes(package):
    _, rdf, _ = package
    (inputs,), (outputs,) = rdf["inputs"], rdf["outputs"]
    assert [axis["type"] for axis in inputs["axes"]] == ["batch", "space", "space", "channel"]
    assert [axis.get("id") for axis in inputs["axes"][1:3]] == ["y", "x"]
    for axis in inputs["axes"][1:3]:
        assert axis["size"] == {"min": UNET.multiple, "step": UNET.multiple}
    for axis in outputs["axes"][1:3]:
        assert axis["size"] == {"tensor_id": inputs["id"], "axis_id": axis["id"]}
    assert outputs["axes"][3]["channel_names"] == cards.read_card(SHIPPED_UNET)["classes"]
    assert len(inputs["axes"][3]["channel_names"]) == 1


def test_description_cites_the_paper_and_documents_the_post_processing(package):
    _, rdf, contents = package
    assert any(entry.get("doi") == "10.1002/cyto.a.23863" for entry in rdf["cite"])
    assert rdf["license"] == "BSD-3-Clause" and rdf["authors"]
    page = contents[rdf["documentation"]["source"]].decode()
    postprocess = cards.read_card(SHIPPED_UNET)["postprocess"]
    assert "## Validation" in page and "## Post-processing" in page
    for key in ("interior_threshold", "boundary_boost", "dilation", "foreground_threshold", "min_size"):
        assert str(postprocess[key]) in page, key
    assert rdf["config"]["nucleiseg"]["postprocess"] == postprocess


def test_the_cover_is_made_from_the_test_tensors(package):
    import imageio.v3 as iio

    _, rdf, contents = package
    cover = iio.imread(contents[rdf["covers"][0]["source"]], extension=".png")
    assert cover.shape[1] == 2 * cover.shape[0] and cover.shape[2] == 3
    output = array(contents, rdf["outputs"][0]["test_tensor"]["source"])[0]
    # Right half, green channel: the interior probability, scaled up twice.
    half = cover.shape[1] // 2
    np.testing.assert_allclose(cover[::2, half::2, 1] / 255, output[..., 1], atol=1 / 255)


def test_a_project_url_is_cited(tmp_path):
    out = tmp_path / "cited.zip"
    bioimageio.write_package(SHIPPED_UNET, out, project_url="https://example.org/nucleiseg")
    with zipfile.ZipFile(out) as archive:
        rdf = yaml.safe_load(archive.read(bioimageio.DESCRIPTION_FILE))
    assert {"text": bioimageio.PROJECT, "url": "https://example.org/nucleiseg"} in rdf["cite"]


# --- bad input: a clear error naming it, nothing written -----------------------------------


@pytest.mark.parametrize("card, out, member, message", [
    ("missing.json", "out.zip", None, r"model card not found: .*missing\.json"),
    (DEEPCELL_ENSEMBLE, "out.zip", None, r"deepcell-dsb2018\.json is an ensemble card.*--member \(deepcell-dsb2018-1\.json"),
    (DEEPCELL_ENSEMBLE, "out.zip", "nine", r"has no member 'nine'"),
    (DEEPCELL_ENSEMBLE, "out.zip", "deepcell-dsb2018-1", r"deepcell networks consume 30 pixels of context"),
    (SHIPPED_UNET, "out.tar", None, r"out\.tar: a bioimage\.io package is a \.zip file"),
    (SHIPPED_UNET, "no-such-folder/out.zip", None, r"folder .*no-such-folder does not exist"),
])
def test_bad_input_is_refused_naming_it_and_writes_nothing(tmp_path, card, out, member, message):
    card = tmp_path / card if isinstance(card, str) else card
    with pytest.raises(cards.ModelError, match=message):
        bioimageio.write_package(card, tmp_path / out, member=member)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_after_the_work_leaves_an_existing_package_unchanged(tmp_path, monkeypatch):
    out = tmp_path / "unet.zip"
    out.write_bytes(b"the previous package")
    monkeypatch.setattr(bioimageio, "TOLERANCE", 0.0)  # Keras and ONNX Runtime differ by float rounding
    with pytest.raises(cards.ModelError, match=r"the Keras network and unet-dsb2018\.onnx differ"):
        bioimageio.write_package(SHIPPED_UNET, out)
    assert out.read_bytes() == b"the previous package" and [p.name for p in tmp_path.iterdir()] == ["unet.zip"]


def test_the_command_names_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export.main([str(tmp_path / "missing.json"), "--bioimageio", str(tmp_path / "out.zip")])
    assert "missing.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export.main([str(SHIPPED_UNET), str(SHIPPED_UNET), "--bioimageio", str(tmp_path / "out.zip")])
    assert "exactly one CARD" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export.main([str(SHIPPED_UNET), "--onnx", "--bioimageio", str(tmp_path / "out.zip")])
    assert "choose one of --onnx and --bioimageio" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_member_of_an_ensemble_is_chosen_by_file_name_or_stem():
    members = cards.read_card(DEEPCELL_ENSEMBLE)["members"]
    expected = (DEEPCELL_ENSEMBLE.parent / members[1]).resolve()
    assert bioimageio.chosen_card(DEEPCELL_ENSEMBLE, Path(members[1]).name) == expected
    assert bioimageio.chosen_card(DEEPCELL_ENSEMBLE, Path(members[1]).stem) == expected
    with pytest.raises(cards.ModelError, match="not an ensemble"):
        bioimageio.chosen_card(SHIPPED_UNET, "unet-dsb2018")

"""ONNX export and the ONNX Runtime engine: same probabilities as Keras, checked files, engine choice.

Random networks of tiny widths are exported here; the shipped models' ONNX files are
the ones in ``models/`` (written by ``python -m nucleiseg.export CARD --onnx``), compared
with their Keras weights.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from nucleiseg import cards, devices, engines, export, model_types, synthetic  # noqa: E402
from nucleiseg.inference import predict_probabilities  # noqa: E402
from nucleiseg.model_types import deepcell  # noqa: E402
from nucleiseg.tiling import predict_tiled  # noqa: E402
from test_core_models import randomize_batch_norm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SHIPPED_CARDS = sorted(MODELS.glob("*/*.json"))
SHIPPED_UNET = MODELS / "unet" / "unet-dsb2018.json"
SHIPPED_DEEPCELL_MEMBER = MODELS / "deepcell" / "deepcell-dsb2018-1.json"
TOLERANCE = 1e-4


def save_random(folder: Path, name: str, architecture: dict, seed: int) -> Path:
    """Card of a network of ``architecture`` with random weights and batch-norm statistics."""
    keras.utils.set_random_seed(seed)
    network = randomize_batch_norm(model_types.build(architecture), seed)
    weights = folder / f"{name}.weights.h5"
    network.save_weights(weights)
    card = {"name": name, "architecture": architecture, "normalization": {"method": "percentile", "low": 0.1, "high": 99.9}}
    return cards.write_card(card, weights)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Cards of a random width-2 U-Net and a random DeepCell, both exported to ONNX."""
    folder = tmp_path_factory.mktemp("onnx")
    unet = save_random(folder, "unet-random", {"name": "unet", "base_filters": 2, "n_classes": 3}, seed=3)
    dense = save_random(folder, "deepcell-random", {"name": "deepcell", "n_classes": 3}, seed=4)
    written = {path: export.export_onnx(path) for path in (unet, dense)}
    return {"unet": unet, "deepcell": dense, "written": written}


def odd_image(shape=(75, 101), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# --- export ------------------------------------------------------------------------------


def test_export_writes_each_network_beside_its_weights_and_records_it(exported):
    for kind in ("unet", "deepcell"):
        card_path = exported[kind]
        [(out, difference)] = exported["written"][card_path]
        card = json.loads(card_path.read_text())
        assert out == card_path.with_name(card_path.stem + ".onnx") and out.is_file()
        assert card["onnx"] == out.name and card["onnx_sha256"] == cards.sha256_of(out)
        assert card["onnx_weights_sha256"] == card["sha256"]
        assert difference <= export.TOLERANCE
        cards.verify(card_path)  # the card format stays one: these are its optional fields
    # Height and width are free: the input's only fixed size is its one channel.
    session = engines.OnnxNetwork(exported["unet"].with_suffix(".onnx"))
    assert session.input_shape == (None, None, None, 1) and session.output_shape[-1] == 3


def test_exported_graphs_keep_the_layers_in_onnx_runtimes_fast_forms():
    """No run-time size arithmetic, slice copies or layout shuffles; softmax over the last axis."""
    import onnx
    from onnx import numpy_helper

    for card_path in (SHIPPED_UNET, SHIPPED_DEEPCELL_MEMBER):
        graph = onnx.load(str(card_path.with_suffix(".onnx"))).graph
        kinds = [node.op_type for node in graph.node]
        assert not {"Shape", "Tile", "Cast", "Gather"} & set(kinds), kinds
        assert kinds[-2:] == ["Transpose", "Softmax"] and kinds.count("Transpose") == 1
        assert next(a.i for a in graph.node[-1].attribute if a.name == "axis") == 3
        constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        resizes = [node for node in graph.node if node.op_type == "Resize"]
        assert len(resizes) == (3 if "unet" in card_path.name else 0)
        # The U-Net's skip connections: two convolutions summed instead of a concatenation.
        assert "Concat" not in kinds and kinds.count("Add") == (3 if "unet" in card_path.name else 0)
        for node in resizes:
            assert list(constants[node.input[2]]) == [1, 1, 2, 2] and len(node.input) == 3
        # DeepCell's DilatedMaxPool2D layers: one dilated MaxPool each, no slices.
        pools = [{a.name: list(a.ints) for a in node.attribute} for node in graph.node if node.op_type == "MaxPool"]
        if "deepcell" in card_path.name:
            assert not {"Slice", "Max"} & set(kinds)
            assert [(p["kernel_shape"], p["strides"], p["dilations"]) for p in pools] == [([2, 2], [1, 1], [d, d]) for d in (1, 2, 4)]


def test_export_of_an_ensemble_writes_every_member(tmp_path):
    folder = tmp_path
    members = [save_random(folder, f"net-{i}", {"name": "unet", "base_filters": 2, "n_classes": 3}, seed=i) for i in (1, 2)]
    ensemble = cards.write_ensemble(folder / "pair.json", members)
    written = export.export_onnx(ensemble)
    assert [out.name for out, _ in written] == ["net-1.onnx", "net-2.onnx"]
    assert all(json.loads(member.read_text())["onnx"] for member in members)
    assert "onnx" not in json.loads(ensemble.read_text())  # members carry their files
    loaded = cards.load(ensemble, engine="onnxruntime")
    assert len(loaded.networks) == 2 and loaded.engine == "onnxruntime"


def test_export_refuses_a_file_that_disagrees_with_keras(tmp_path, monkeypatch):
    card_path = save_random(tmp_path, "strict", {"name": "unet", "base_filters": 2, "n_classes": 3}, seed=5)
    before = card_path.read_text()
    monkeypatch.setattr(export, "TOLERANCE", 0.0)  # float rounding alone exceeds it
    with pytest.raises(cards.ModelError, match=r"strict\.onnx: ONNX Runtime's probabilities differ"):
        export.export_onnx(card_path)
    assert card_path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["strict.json", "strict.weights.h5"]


def test_export_command_names_a_bad_card(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export.main([str(tmp_path / "missing.json"), "--onnx"])
    assert "missing.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export.main([str(tmp_path / "missing.json")])  # the format must be named
    assert "--onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export.main(["--onnx"])
    assert "name model cards, or --shipped" in capsys.readouterr().err


# --- same probabilities as Keras ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["unet", "deepcell"])
def test_random_networks_give_keras_probabilities_on_odd_sizes_and_through_tiling(exported, kind):
    keras_model = cards.load(exported[kind], engine="tensorflow")
    onnx_model = cards.load(exported[kind], engine="onnxruntime")
    assert (keras_model.engine, onnx_model.engine) == ("tensorflow", "onnxruntime")
    model_type = model_types.get(kind)
    for shape in [(75, 101), (1, 43), (130, 67)]:
        image = odd_image(shape, seed=sum(shape))
        options = dict(n_classes=3, margin=model_type.margin, multiple=model_type.multiple)
        # One pass, and small tiles with seams (batches of several tiles).
        for tile, overlap, batch_size in [(256, 0, 1), (32, 16, 3)]:
            found = predict_tiled(onnx_model.predict_batch, image, tile=tile, overlap=overlap, batch_size=batch_size, **options)
            expected = predict_tiled(keras_model.predict_batch, image, tile=tile, overlap=overlap, batch_size=batch_size, **options)
            assert found.shape == shape + (3,)
            assert np.ptp(expected) > 0.05  # random weights that say something
            np.testing.assert_allclose(found, expected, atol=TOLERANCE, rtol=0)


def test_deepcell_patch_mode_runs_the_dense_onnx_network_on_patches(exported):
    onnx_model = cards.load(exported["deepcell"], engine="onnxruntime")
    keras_model = cards.load(exported["deepcell"], engine="tensorflow")
    image = odd_image((40, 47), seed=7)
    assert deepcell.patch_network(onnx_model.networks[0]) is onnx_model.networks[0]
    found = deepcell.predict_patches(image, onnx_model, rows=(10, 12), batch_size=64)
    np.testing.assert_allclose(found, deepcell.predict_patches(image, keras_model, rows=(10, 12)), atol=TOLERANCE, rtol=0)
    small = image[:13, :17]  # every pixel a patch: keep it small
    dense = predict_probabilities(small, onnx_model, normalization={"method": "percentile", "low": 0, "high": 100})
    patches = predict_probabilities(small, onnx_model, normalization={"method": "percentile", "low": 0, "high": 100}, mode="patch")
    np.testing.assert_allclose(patches, dense, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("card_path", [SHIPPED_UNET, SHIPPED_DEEPCELL_MEMBER], ids=["unet", "deepcell member 1"])
def test_shipped_onnx_files_give_the_shipped_weights_probabilities(card_path):
    raw, _ = synthetic.generate_one(2, seed=1, size=160)
    image = raw[:131, :157]  # odd sizes: padded for the U-Net, margins for DeepCell
    keras_model = cards.load(card_path, engine="tensorflow")
    onnx_model = cards.load(card_path, engine="onnxruntime")
    for tile, overlap in [(1024, 64), (64, 32)]:
        expected = predict_probabilities(image, keras_model, tile=tile, overlap=overlap, batch_size=2)
        found = predict_probabilities(image, onnx_model, tile=tile, overlap=overlap, batch_size=2)
        assert expected[..., 1].max() > 0.5  # nuclei found
        np.testing.assert_allclose(found, expected, atol=TOLERANCE, rtol=0)


# --- files checked against their cards ---------------------------------------------------


def test_every_shipped_network_has_an_onnx_file_matching_its_card():
    networks = [card for path in SHIPPED_CARDS for _, card in cards.verify(path)]  # checksums of every file
    assert networks and all(card.get("onnx") for card in networks)
    # `make onnx` (export --shipped) writes them all.
    exported = {member for path in model_types.shipped_cards() for member, _ in cards.member_cards(path)}
    assert exported == {member for path in SHIPPED_CARDS for member, _ in cards.member_cards(path)}
    sizes = [(MODELS / card["architecture"]["name"] / card["onnx"]).stat().st_size for card in networks]
    assert max(sizes) < 2.5e6  # float32 weights of these small networks, nothing more


def copy_model(card_path: Path, folder: Path) -> Path:
    card = json.loads(card_path.read_text())
    for name in (card_path.name, card["weights"], card["onnx"]):
        shutil.copy(card_path.parent / name, folder / name)
    return folder / card_path.name


def test_an_onnx_file_that_does_not_match_its_card_is_refused_naming_it(tmp_path):
    card_path = copy_model(SHIPPED_UNET, tmp_path)
    onnx_file = tmp_path / "unet-dsb2018.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    for check in (cards.verify, lambda path: cards.load(path, engine="tensorflow"), cards.load):
        with pytest.raises(cards.ModelError, match=r"checksum mismatch for .*unet-dsb2018\.onnx"):
            check(card_path)
    onnx_file.unlink()
    with pytest.raises(cards.ModelError, match=r"ONNX file not found: .*unet-dsb2018\.onnx"):
        cards.verify(card_path)


def test_an_onnx_file_of_other_weights_is_refused(tmp_path):
    card_path = copy_model(SHIPPED_UNET, tmp_path)
    card = json.loads(card_path.read_text())
    card["onnx_weights_sha256"] = "0" * 64
    cards.save_card(card, card_path)
    with pytest.raises(cards.ModelError, match=r"unet-dsb2018\.onnx was converted from other weights.*nucleiseg\.export"):
        cards.verify(card_path)
    # Re-exporting needs only the weights to match.
    assert len(cards.verify(card_path, onnx=False)) == 1


def test_a_card_written_for_new_weights_drops_the_old_onnx_fields(tmp_path):
    source = json.loads(SHIPPED_UNET.read_text())
    weights = tmp_path / "retrained.weights.h5"
    keras.utils.set_random_seed(0)
    model_types.build(source["architecture"]).save_weights(weights)
    written = json.loads(cards.write_card(dict(source, name="retrained"), weights).read_text())
    assert not set(cards.ONNX_FIELDS) & set(written)
    # The same weights keep them.
    copy = tmp_path / "copy.weights.h5"
    shutil.copy(SHIPPED_UNET.with_name(source["weights"]), copy)
    kept = json.loads(cards.write_card(source, copy).read_text())
    assert kept["onnx"] == source["onnx"]


# --- choosing the engine -----------------------------------------------------------------


def test_automatic_engine_prefers_onnx_runtime_and_falls_back_to_tensorflow(exported, tmp_path, monkeypatch):
    assert cards.load(exported["unet"]).engine == "onnxruntime"  # "auto" by default
    plain = save_random(tmp_path, "plain", {"name": "unet", "base_filters": 2, "n_classes": 3}, seed=6)
    assert cards.load(plain).engine == "tensorflow"
    with pytest.raises(cards.ModelError, match=r"plain\.json names no ONNX file.*python -m nucleiseg\.export"):
        cards.load(plain, engine="onnxruntime")
    # Each engine is cached apart.
    assert cards.load(exported["unet"], engine="tensorflow") is cards.load(exported["unet"], engine="tensorflow")
    assert cards.load(exported["unet"], engine="tensorflow") is not cards.load(exported["unet"], engine="onnxruntime")
    with pytest.raises(ValueError, match="unknown inference engine 'torch'"):
        cards.load(exported["unet"], engine="torch")
    monkeypatch.setattr(engines, "installed", lambda engine: engine == "tensorflow")
    assert cards.load(exported["unet"]).engine == "tensorflow"


def test_a_missing_engine_says_what_to_install(exported, tmp_path, monkeypatch):
    plain = save_random(tmp_path, "plain", {"name": "unet", "base_filters": 2, "n_classes": 3}, seed=6)
    cards.clear_cache()
    monkeypatch.setattr(engines, "installed", lambda engine: False)
    with pytest.raises(engines.EngineNotInstalled, match=r"ONNX Runtime inference engine is not installed.*pip install 'nucleiseg\[onnx\]'"):
        cards.load(exported["unet"], engine="onnxruntime")
    with pytest.raises(engines.EngineNotInstalled, match=r"TensorFlow inference engine is not installed.*pip install 'nucleiseg\[tensorflow\]'"):
        cards.load(exported["unet"], engine="tensorflow")
    with pytest.raises(engines.EngineNotInstalled, match="no inference engine is installed.*nucleiseg\\[onnx\\]"):
        cards.load(exported["unet"])
    monkeypatch.setattr(engines, "installed", lambda engine: engine == "onnxruntime")
    with pytest.raises(engines.EngineNotInstalled, match=r"plain\.json has no ONNX file.*nucleiseg\[tensorflow\]"):
        cards.load(plain)


def test_onnx_runtime_gpu_without_cuda_is_a_clear_error(exported):
    import onnxruntime

    if engines.CUDA_PROVIDER in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has a CUDA provider")
    with pytest.raises(devices.DeviceError, match="no CUDA provider.*onnxruntime-gpu"):
        cards.load(exported["unet"], engine="onnxruntime", device="gpu")
    assert cards.load(exported["unet"], engine="onnxruntime", device="auto").device == "/CPU:0"


def test_session_options_are_set_for_a_chain_of_layers():
    import onnxruntime as ort

    options = engines.session_options(threads=2)
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert engines.session_options().intra_op_num_threads == engines.cpu_threads()


# --- without TensorFlow ------------------------------------------------------------------

# Makes `import tensorflow`, `import keras` and `import tf2onnx` fail, as in an environment
# installed with `pip install .[onnx]`, then segments with the shipped U-Net.
WITHOUT_TENSORFLOW = r"""
import sys
from importlib.abc import MetaPathFinder

class Blocked(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf2onnx"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        return None

sys.meta_path.insert(0, Blocked())
import numpy as np
from nucleiseg import cards, engines, synthetic
from nucleiseg.inference import segment

image = synthetic.generate_one(2, seed=1, size=160)[0][:131, :157]
model = cards.load(sys.argv[1])
probabilities, labels = segment(image, model, cards.tuned_postprocess(sys.argv[1]), tile=64, overlap=32)
np.save(sys.argv[2], probabilities)
try:
    cards.load(sys.argv[1], engine="tensorflow")
except engines.EngineNotInstalled as error:
    message = str(error)
print(model.engine, int(labels.max()), "tensorflow" in sys.modules or "keras" in sys.modules, message)
"""


def test_segments_with_onnx_runtime_where_tensorflow_cannot_be_imported(tmp_path):
    out = tmp_path / "probabilities.npy"
    done = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, str(SHIPPED_UNET), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    engine, nuclei, imported, message = done.stdout.strip().splitlines()[-1].split(" ", 3)
    assert (engine, imported) == ("onnxruntime", "False") and int(nuclei) > 0
    assert "pip install 'nucleiseg[tensorflow]'" in message
    raw, _ = synthetic.generate_one(2, seed=1, size=160)
    expected = predict_probabilities(raw[:131, :157], cards.load(SHIPPED_UNET, engine="tensorflow"), tile=64, overlap=32)
    np.testing.assert_allclose(np.load(out), expected, atol=TOLERANCE, rtol=0)


def test_importing_the_core_imports_no_engine():
    code = ("import sys, nucleiseg.cards, nucleiseg.inference, nucleiseg.engines, nucleiseg.export, nucleiseg.devices, "
            "nucleiseg.model_types; loaded = sorted(k for k in sys.modules if k.split('.')[0] in "
            "('tensorflow', 'keras', 'onnxruntime', 'tf2onnx', 'onnx')); assert not loaded, loaded")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]



# --- python -m benchmark speed unet --engine ---------------------------------------------


def test_speed_unet_times_both_engines_side_by_side(exported, capsys):
    from benchmark.__main__ import main as cli_main

    card = exported["unet"]
    assert cli_main(["speed", "unet", "--model", str(card), "--engine", "both", "--size", "64x96", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    warm = {}
    for label in ("TensorFlow", "ONNX Runtime"):
        assert re.search(rf"^{label}: first image \(load \+ trace \+ predict\): [\d.]+ s$", out, re.M), out
        found = re.search(rf"^{label}: warm, median of 2: ([\d.]+) s per image \(min [\d.]+ s\); (\d+) nuclei; "
                          r"probabilities alone ([\d.]+) s$", out, re.M)
        assert found, out
        warm[label] = float(found[1])
    ratio = float(re.search(r"TensorFlow / ONNX Runtime warm time: ([\d.]+)x per image, [\d.]+x for the probabilities alone", out)[1])
    # The ratio of the seconds printed, which are rounded to 0.0005 s.
    keras_warm, onnx_warm = warm["TensorFlow"], warm["ONNX Runtime"]
    assert (keras_warm - 5e-4) / (onnx_warm + 5e-4) - 0.005 <= ratio <= (keras_warm + 5e-4) / max(onnx_warm - 5e-4, 1e-9) + 0.005
    assert float(re.search(r"largest difference in any class probability between the engines: (\S+)", out)[1]) < TOLERANCE


def test_speed_unet_names_a_model_without_onnx_files(tmp_path, capsys):
    from benchmark.__main__ import main as cli_main

    plain = save_random(tmp_path, "plain", {"name": "unet", "base_filters": 2, "n_classes": 3}, seed=6)
    assert cli_main(["speed", "unet", "--model", str(plain), "--engine", "onnxruntime", "--size", "32x32", "--repeats", "0"]) == 2
    err = capsys.readouterr().err
    assert "--engine onnxruntime:" in err and "plain.json names no ONNX file" in err and "python -m nucleiseg.export" in err


def keras_convolution_gflop(card_path: Path, height: int, width: int) -> float:
    """Arithmetic of every Conv2D of a card's Keras network on one ``height`` x ``width`` image, counted from its layers."""
    network = engines.keras_network(card_path, cards.read_card(card_path))
    total = 0.0
    for layer in network.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            # Output height and width from the layer's own shape on this input (its level's downsampling).
            shape = keras.Model(network.input, layer.output).compute_output_shape((1, height, width, 1))
            total += 2.0 * kh * kw * cin * cout * shape[1] * shape[2] / 1e9
    return total


def test_convolution_arithmetic_reads_weight_and_output_shapes_blocked_or_not():
    from benchmark.speed.onnx_profile import convolution_gflop

    expected = 2 * 16 * 32 * 9 * 10 * 20 / 1e9
    assert convolution_gflop([16, 32, 3, 3], [1, 16, 10, 20]) == pytest.approx(expected)
    assert convolution_gflop([16, 32, 3, 3], [1, 1, 10, 20, 16]) == pytest.approx(expected)
    assert convolution_gflop([16, 32, 3, 3], [2, 16, 10, 20]) == pytest.approx(2 * expected)
    with pytest.raises(ValueError, match="not a 2-D convolution"):
        convolution_gflop([16, 32, 3], [1, 16, 10, 20])


def test_profile_summary_averages_each_operator_over_the_runs():
    from benchmark.speed.onnx_profile import summarize

    def kernel(op, dur):
        return {"cat": "Node", "name": f"{op}_kernel_time", "dur": dur, "args": {"op_name": op}}

    run = [kernel("Conv", 3000), kernel("Relu", 500), kernel("Conv", 1000), {"cat": "Session", "name": "x", "dur": 9e9},
           {"cat": "Node", "name": "Conv_fence_before", "dur": 7e9, "args": {"op_name": "Conv"}}]
    found = summarize(run + run, runs=2)
    assert found.milliseconds == {"Conv": 4.0, "Relu": 0.5} and found.nodes == {"Conv": 2, "Relu": 1}
    assert found.total_ms == 4.5 and found.convolution_ms == 4.0
    found.convolution_gflop = 0.2
    assert found.convolution_gflops == pytest.approx(50.0)


def test_profile_of_an_exported_unet_counts_the_networks_convolutions(exported):
    """The profiler's arithmetic is the Keras network's, though the export split each skip convolution in two."""
    from benchmark.speed.onnx_profile import profile

    card = exported["unet"]
    found = profile(card.with_suffix(".onnx"), [np.zeros((1, 64, 96, 1), np.float32)] * 2, runs=2)
    assert found.runs == 2 and found.nodes["Conv"] > 0 and found.convolution_ms > 0
    assert found.convolution_gflop == pytest.approx(2 * keras_convolution_gflop(card, 64, 96), rel=1e-6)
    assert set(found.milliseconds) >= {"Conv", "Softmax"}


def test_speed_unet_profile_prints_operators_and_rates(exported, capsys):
    from benchmark.__main__ import main as cli_main

    card = exported["unet"]
    assert cli_main(["speed", "unet", "--model", str(card), "--engine", "both", "--size", "64x96", "--repeats", "1",
                     "--profile"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ONNX Runtime profile of unet-random\.onnx: 1 batch\(es\) of 1x64x96 per image", out, re.M), out
    assert re.search(r"^  Conv +[\d.]+ ms +[\d.]+ % +\(\d+ kernel\(s\)\)$", out, re.M), out
    gflop = float(re.search(r"^convolutions: ([\d.]+) GFLOP per image, \d+ GFLOP/s under ONNX Runtime$", out, re.M)[1])
    assert gflop == pytest.approx(keras_convolution_gflop(card, 64, 96), abs=0.006)
    assert re.search(r"^TensorFlow: the same batches through the whole network in [\d.]+ ms warm", out, re.M), out
    assert re.search(r"^for scale: numpy float32 matrix product 2048 x 2048 at \d+ GFLOP/s", out, re.M), out


def test_speed_unet_profile_needs_onnx_runtime(exported, capsys):
    from benchmark.__main__ import main as cli_main

    assert cli_main(["speed", "unet", "--model", str(exported["unet"]), "--size", "32x32", "--repeats", "0", "--profile"]) == 2
    assert "--profile profiles ONNX Runtime: add --engine onnxruntime or --engine both" in capsys.readouterr().err


# --- the light install -------------------------------------------------------------------

HEAVY = {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx"}


def requirement_names(text: str, python: str = "3.11") -> dict[str, str]:
    """{normalized name: version} of ``name==version`` lines that apply to ``python`` (comments and blank lines skipped).

    A line may end in an environment marker (``; python_version < "3.11"``: setup.cfg's pins
    for CellProfiler 4.2.8 on Python 3.8); it counts only where the marker holds.
    """
    from packaging.markers import Marker

    pins = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        line, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate({"python_version": python}):
            continue
        name, version = line.strip().split("==")
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_the_light_install_brings_onnx_runtime_and_not_tensorflow():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    base = requirement_names(config["options"]["install_requires"])
    extras = {name: requirement_names(text) for name, text in config["options.extras_require"].items()}
    assert "onnxruntime" in extras["onnx"] and not (set(base) | set(extras["onnx"])) & HEAVY
    assert {"keras", "tensorflow-cpu"} <= set(extras["tensorflow"]) and {"tf2onnx", "onnx", "onnxruntime"} <= set(extras["train"])
    full = requirement_names((ROOT / "requirements.lock").read_text())
    light = requirement_names((ROOT / "requirements-onnx.lock").read_text())
    # The light lock is part of the tested environment, pinned alike, without TensorFlow.
    assert {name: full.get(name) for name in light} == light
    assert "onnxruntime" in light and not set(light) & HEAVY
    pinned = {name: version for group in (base, *extras.values()) for name, version in group.items()}
    assert {name: full.get(name) for name in pinned} == pinned  # setup.cfg pins what the lock installs
    # On Python 3.8 (CellProfiler 4.2.8): what requirements-cp42.lock installs, ONNX Runtime and no TensorFlow.
    cp42 = requirement_names((ROOT / "requirements-cp42.lock").read_text())
    old = {name: version for group in (requirement_names(config["options"]["install_requires"], "3.8"),
                                       requirement_names(config["options.extras_require"]["onnx"], "3.8"))
           for name, version in group.items()}
    assert old and {name: cp42.get(name) for name in old} == old
    assert "cellprofiler-core" in old and "onnxruntime" in old and not set(cp42) & HEAVY

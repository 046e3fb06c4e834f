"""Shared fixtures' machinery for the tests of ClassifyBoundariesUNet and ClassifyPixelsDeepCell.

The networks built here are tiny and *hand-wired* rather than trained: every layer is zero
except a single path that carries the normalized intensity from the input to the output, where
bright pixels score *interior* and dark ones *background*. So the modules find exactly the
bright blobs of a synthetic image, deterministically and without any training.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import cellprofiler_core.preferences as preferences

# Must precede the first Measurements(): otherwise preferences try to import wx.
preferences.set_headless()

from cellprofiler_core.image import Image, ImageSetList  # noqa: E402
from cellprofiler_core.measurement import Measurements  # noqa: E402
from cellprofiler_core.object import ObjectSet  # noqa: E402
from cellprofiler_core.pipeline import Pipeline  # noqa: E402
from cellprofiler_core.workspace import Workspace  # noqa: E402

from nucleiseg_cellprofiler import PLUGINS_DIR as PLUGINS  # noqa: E402
from nucleiseg_cellprofiler import REPOSITORY as ROOT  # noqa: E402
from nucleiseg_cellprofiler.names import IMAGE  # noqa: E402
from nucleiseg.nucleus_size import ESTIMATOR  # noqa: E402
from nucleiseg_cellprofiler.pipelines import modules as pipeline_modules  # noqa: E402

# Bright discs (row, column, radius) of the synthetic test image, well apart from each other.
DISCS = ((16, 16, 6), (16, 46, 6), (46, 30, 7))
SHAPE = (64, 64)
GAIN = 20.0  # logit difference per unit of normalized intensity: crisp 0/1 probabilities
#: The training nucleus diameters the hand-wired networks' cards record.
TEST_DIAMETERS = {"low": 8.0, "median": 13.0, "high": 30.0, "estimator": ESTIMATOR}


#: Whether Keras is here to build the hand-wired networks. Where it is not (``.venv-cp42``:
#: CellProfiler 4.2.8 with ONNX Runtime only), the networks come prebuilt, with their ONNX files,
#: from the folder this environment variable names; ``make test-cp42`` writes it with
#: ``.venv/bin/python tests/nucleus_module_helpers.py DIR``.
HAS_KERAS = importlib.util.find_spec("keras") is not None
PREBUILT_VARIABLE = "NUCLEISEG_TEST_NETWORKS"
#: What the prebuilt folder holds: the names the module tests give their networks.
PREBUILT_NAMES = ("unet-tiny", "deepcell-tiny", "deepcell-ensemble")
#: For tests of the TensorFlow engine, or that build networks of their own.
needs_keras = pytest.mark.skipif(
    not HAS_KERAS, reason="needs Keras and TensorFlow, which this environment lacks (ONNX Runtime only)"
)


def prebuilt_folder() -> Path | None:
    """The folder of prebuilt networks named by :data:`PREBUILT_VARIABLE` (None when unset)."""
    folder = os.environ.get(PREBUILT_VARIABLE)
    if not folder:
        return None
    if not Path(folder, PREBUILT_NAMES[0] + ".json").is_file():
        raise FileNotFoundError(f"{PREBUILT_VARIABLE}={folder} holds no prebuilt networks; write them with "
                                f"an environment that has Keras: python tests/nucleus_module_helpers.py {folder}")
    return Path(folder)


def require_networks() -> None:
    """Skip the calling test module when neither Keras nor prebuilt networks are here."""
    if not HAS_KERAS and prebuilt_folder() is None:
        pytest.skip(f"needs Keras, or prebuilt networks named by {PREBUILT_VARIABLE}", allow_module_level=True)


def _copy_prebuilt(out: Path) -> Path:
    """Copy the prebuilt network (or ensemble with its members) called ``out.name`` beside ``out``; its card."""
    if out.name not in PREBUILT_NAMES:
        raise ValueError(f"no prebuilt network called {out.name!r} (there are {', '.join(PREBUILT_NAMES)}); "
                         "a test that builds other networks needs Keras (mark it needs_keras)")
    folder = prebuilt_folder()
    out.parent.mkdir(parents=True, exist_ok=True)
    for path in [*folder.glob(f"{out.name}.*"), *folder.glob(f"{out.name}-[0-9]*")]:
        shutil.copyfile(path, out.parent / path.name)
    return out.with_name(out.name + ".json")


def write_prebuilt(folder: Path) -> list[Path]:
    """Build the networks of :data:`PREBUILT_NAMES` into ``folder`` with their ONNX files (needs Keras)."""
    from nucleiseg import export

    unet = make_unet(folder / "unet-tiny")
    single = make_deepcell(folder / "deepcell-tiny")
    ensemble = make_ensemble(single, folder / "deepcell-ensemble", 2)
    for card in (unet, single, ensemble):
        export.export_onnx(card)
    return [unet, single, ensemble]


def synthetic_image(seed: int = 0) -> np.ndarray:
    """64 x 64 float image in [0, 1]: dim noisy background with the bright :data:`DISCS`."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    image = 0.1 + 0.02 * rng.standard_normal(SHAPE)
    for r, c, radius in DISCS:
        image[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = 0.8
    return np.clip(image, 0, 1).astype(np.float32)


def _wire(network, taps: dict, classes_layer: str = "classes") -> None:
    """Zero every convolution, make batch norms identities, then set the intensity path.

    ``taps`` maps a convolution name to ``(row, col, in_channel)``: the one kernel entry
    (to output channel 0) that passes channel ``in_channel`` on. The last layer turns channel 0
    (intensity x, about 0 to 1) into logits background ``-GAIN (x - 0.5)``, interior
    ``GAIN (x - 0.5)`` and boundary ``-GAIN``.
    """
    import keras

    for layer in network.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = weights
            layer.set_weights([np.ones_like(gamma), np.zeros_like(beta), np.zeros_like(mean), np.ones_like(variance)])
        else:
            layer.set_weights([np.zeros_like(w) for w in weights])
    for name, (row, col, channel) in taps.items():
        layer = network.get_layer(name)
        kernel = layer.get_weights()[0]
        kernel[row, col, channel, 0] = 1.0
        layer.set_weights([kernel, *layer.get_weights()[1:]])
    layer = network.get_layer(classes_layer)
    kernel, bias = layer.get_weights()
    kernel[0, 0, 0, :] = [-GAIN, GAIN, 0.0]
    bias[:] = [GAIN / 2, -GAIN / 2, -GAIN]
    layer.set_weights([kernel, bias])


def _save(network, architecture: dict, out: Path, normalization: dict | None = None) -> Path:
    from nucleiseg import cards

    out.parent.mkdir(parents=True, exist_ok=True)
    weights = out.with_name(out.name + ".weights.h5")
    network.save_weights(weights)
    card = {
        "name": out.name,
        "architecture": architecture,
        "normalization": normalization or {"method": "percentile", "low": 0.1, "high": 99.9},
        "classes": ["background", "interior", "boundary"],
        # What the networks find of the DISCS (12-23 px across) lies inside: size matching leaves them alone.
        "nucleus_diameters": dict(TEST_DIAMETERS),
        "note": "hand-wired test network: passes intensity through; not trained",
    }
    return cards.write_card(card, weights)


def make_unet(out: Path, base_filters: int = 4) -> Path:
    """Card of a tiny hand-wired U-Net at ``out`` (``out.json`` + ``out.weights.h5``)."""
    if not HAS_KERAS:
        return _copy_prebuilt(out)
    from nucleiseg import model_types

    architecture = {"name": "unet", "base_filters": base_filters, "n_classes": 3}
    network = model_types.build(architecture)
    skip_in = network.get_layer("dec0a_conv").get_weights()[0].shape[2] - base_filters  # [upsampled, skip]
    taps = {"enc0a_conv": (1, 1, 0), "enc0b_conv": (1, 1, 0), "dec0a_conv": (1, 1, skip_in), "dec0b_conv": (1, 1, 0)}
    _wire(network, taps)
    return _save(network, architecture, out)


def make_deepcell(out: Path, normalization: dict | None = None) -> Path:
    """Card of a hand-wired DeepCell network (its fixed size, about 0.4 M parameters).

    Pooling makes each output pixel the maximum over an 8 x 8 window, so blobs come out a few
    pixels larger than drawn; the :data:`DISCS` are far enough apart to stay separate.
    """
    if not HAS_KERAS:
        if normalization is not None:
            raise ValueError("prebuilt DeepCell networks have the default normalization; another needs Keras")
        return _copy_prebuilt(out)
    from nucleiseg import model_types

    architecture = {"name": "deepcell", "n_classes": 3}
    network = model_types.build(architecture)
    taps = {name: (1, 1, 0) for name in ("c1_conv", "c3_conv", "c4_conv", "c5_conv", "c6_conv", "c7_conv")}
    taps.update({"c2_conv": (2, 2, 0), "fc1_conv": (0, 0, 0)})
    _wire(network, taps)
    return _save(network, architecture, out, normalization)


def make_ensemble(member_card: Path, out: Path, n: int) -> Path:
    """Ensemble card at ``out.json`` of ``n`` members that differ: member k's output layer is scaled by k.

    Scaling the softmax layer's kernel and bias keeps every pixel's most likely class
    (so each member finds the same nuclei) but changes the probabilities, so an
    average can be told apart from any one member.
    """
    if not HAS_KERAS:
        if n != 2:
            raise ValueError("the prebuilt ensemble has 2 members; another size needs Keras")
        return _copy_prebuilt(out)
    from nucleiseg import cards, model_types

    source = json.loads(member_card.read_text())
    network = model_types.build(source["architecture"])
    network.load_weights(member_card.with_name(source["weights"]))
    output = network.get_layer("classes")
    original = output.get_weights()
    members = []
    for index in range(1, n + 1):
        name = f"{out.name}-{index}"
        weights = out.with_name(f"{name}.weights.h5")
        output.set_weights([w * (1.0 + 0.5 * (index - 1)) for w in original])
        network.save_weights(weights)
        cards.write_card(dict(source, name=name), weights)
        members.append(f"{name}.json")
    card = {"name": out.name, "members": members, "architecture": source["architecture"], "normalization": source["normalization"]}
    path = out.with_name(out.name + ".json")
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def make_module(module_class, card: Path | None = None, **settings):
    """A module (custom model ``card`` if given) in a one-module pipeline."""
    module = module_class()
    module.set_module_num(1)
    if card is not None:
        module.model_choice.value = "Custom model file"
        module.model_file.value = str(card)
    for name, value in settings.items():
        getattr(module, name).value = value
    pipeline = Pipeline()
    pipeline.add_module(module)
    return module, pipeline


def run_images(module, pipeline, images, show_window: bool = False, image_kwargs: dict | None = None):
    """Run ``module`` on each array of ``images`` as successive image sets named :data:`IMAGE` (``DNA``).

    Returns the measurements and the workspaces (one per image set).
    """
    module.show_window = show_window
    measurements = Measurements()
    image_set_list = ImageSetList()
    workspaces = []
    for index, pixels in enumerate(images):
        if index:
            measurements.next_image_set()
        image_set = image_set_list.get_image_set(index)
        image_set.add(IMAGE, Image(pixels, **(image_kwargs or {})))
        workspace = Workspace(pipeline, module, image_set, ObjectSet(), measurements, image_set_list)
        module.run(workspace)
        workspaces.append(workspace)
    return measurements, workspaces


def round_trip(module_class, module, pipeline):
    """Dump ``pipeline`` as pipeline text and load it back; returns (copy of module, text)."""
    import cellprofiler_core.modules  # noqa: F401  (fills the module registry; must precede our addition)
    from cellprofiler_core.utilities.core.modules import add_module_for_tst

    add_module_for_tst(module_class)
    text = io.StringIO()
    pipeline.dump(text)
    loaded = Pipeline()
    loaded.load(io.StringIO(text.getvalue()))
    (copy,) = loaded.modules()
    return copy, text.getvalue()


def check_plugin_loader_accepts(module_class, file_stem: str) -> None:
    """CellProfiler's plugin loader accepts ``module_class``, and ``plugins/<file_stem>.py`` is among the files it imports."""
    try:
        from cellprofiler_core.utilities.core.plugins import add_module, plugin_list
    except ImportError:  # CellProfiler 4: fill_modules checks each plugin class so, then makes one
        from cellprofiler_core.utilities.core.modules import check_module, plugin_list

        check_module(module_class, module_class.module_name)
        module_class()
    else:
        assert add_module(module_class) == (True, None)
    assert file_stem in plugin_list(str(PLUGINS))


def check_display(module, workspace, image: np.ndarray, png: Path) -> None:
    """Draw ``module.display`` off-screen and check its three panels; saves the figure to ``png``.

    The panels must be: the input image (stretched to 0..1 grey), the boundary probability
    (0..1 without stretching) and the input with the outline of every object in
    :data:`agg_figure.OUTLINE_RGB`, titled with the object count; all sharing zoom.
    """
    from agg_figure import OUTLINE_RGB, AggFigure
    from skimage.segmentation import find_boundaries

    figure = AggFigure()
    module.display(workspace, figure)
    assert figure.subplots.shape == (3, 1)
    first, second, third = (figure.subplots[i, 0] for i in range(3))
    assert first.get_title() == f"Input image: {module.x_name.value}"
    assert second.get_title() == f"{module.boundary_name.value} (0 to 1)"
    labels = workspace.object_set.get_objects(module.y_name.value).segmented
    assert third.get_title().startswith(f"{module.y_name.value}: {labels.max()} objects (")
    assert first.get_shared_x_axes().joined(first, second) and first.get_shared_x_axes().joined(first, third)

    stretched = (image - image.min()) / (image.max() - image.min())
    # The colormap has 256 levels.
    np.testing.assert_allclose(figure.shown[(0, 0)][..., 0], stretched, atol=1 / 255)
    boundary = workspace.image_set.get_image(module.boundary_name.value).pixel_data
    np.testing.assert_allclose(figure.shown[(1, 0)][..., 0], boundary, atol=1 / 255)
    outlined = np.all(figure.shown[(2, 0)] == OUTLINE_RGB, axis=-1)
    np.testing.assert_array_equal(outlined, find_boundaries(labels, mode="inner"))
    assert labels.max() > 0 and outlined.any()

    figure.save(png)
    assert png.stat().st_size > 5000


def input_modules(image_folder: str = "images"):
    """Images, Metadata (Stem from the file name), NamesAndTypes (image DNA), Groups."""
    import cellprofiler_core.modules  # noqa: F401  (fills the module registry)

    return pipeline_modules.input_modules(assignments=[(image_folder, "image", IMAGE)])


def headless_run(tmp_path: Path, module, images: dict[str, np.ndarray]) -> dict[str, dict]:
    """Run ``module`` in a headless ``cellprofiler`` on 16-bit TIFFs; returns Image.csv rows by stem.

    The plugin is loaded from ``plugins/`` by CellProfiler itself, as the benchmark runner does.
    """
    import csv
    import subprocess

    import cellprofiler_core.modules  # noqa: F401  (fills the module registry)
    import tifffile

    from nucleiseg_cellprofiler.headless import reader_options

    cellprofiler = Path(sys.executable).with_name("cellprofiler")
    pipeline = Pipeline()
    for number, step in enumerate([*input_modules(), module, pipeline_modules.export_to_spreadsheet()], start=1):
        step.set_module_num(number)
        pipeline.add_module(step)
    with open(tmp_path / "segment.cppipe", "w") as fd:
        pipeline.dump(fd)
    (tmp_path / "images").mkdir()
    files = []
    for stem, pixels in images.items():
        path = tmp_path / "images" / f"{stem}.tiff"
        tifffile.imwrite(path, np.round(pixels * 65535).astype(np.uint16))
        files.append(str(path))
    (tmp_path / "files.txt").write_text("\n".join(files) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [str(cellprofiler), "-c", "-r", "-p", str(tmp_path / "segment.cppipe"), "--plugins-directory", str(PLUGINS),
         *reader_options(), "-o", str(out), "--file-list", str(tmp_path / "files.txt")],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {row["Metadata_Stem"]: row for row in csv.DictReader(open(out / "Image.csv"))}


def with_image_provider(module, pipeline, image_name: str = IMAGE):
    """Put a NamesAndTypes that provides ``image_name`` before ``module``, so the input image validates."""
    import cellprofiler_core.modules  # noqa: F401  (fills the module registry)
    from cellprofiler_core.utilities.core.modules import instantiate_module

    nat = instantiate_module("NamesAndTypes")
    nat.assignment_method.value = "All images"
    nat.single_load_as_choice.value = "Grayscale image"
    nat.single_image_provider.value = image_name
    nat.set_module_num(1)
    pipeline.add_module(nat)
    return module, pipeline


if __name__ == "__main__":
    # python tests/nucleus_module_helpers.py DIR: the prebuilt networks for environments without Keras.
    for written in write_prebuilt(Path(sys.argv[1])):
        print("wrote", written)

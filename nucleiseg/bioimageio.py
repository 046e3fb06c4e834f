"""A model card as a bioimage.io model package (``python -m nucleiseg.export CARD --bioimageio OUT.zip``).

The package is one zip file that bioimage.io consumers (deepImageJ, ilastik, QuPath's
extension, napari's plugin, ``bioimageio.core``) read. It holds:

* ``rdf.yaml``: the description, model spec :data:`FORMAT_VERSION`;
* the weights in two formats: the card's ONNX file (``onnx``, the one every consumer
  and our CellProfiler modules run) and the whole Keras 3 network as a ``.keras``
  file (``keras_v3``), saved at export time from the card's weights;
* a test input (a crop of a synthetic image, :func:`test_image`) and the class
  probabilities OUR inference (:func:`nucleiseg.inference.predict_probabilities`,
  ONNX Runtime) gives for it, as ``.npy`` (the spec's test tensors) and as TIFF
  (its sample tensors, for people);
* a cover image made from the two, the documentation page (``README.md``) and, as
  attachments, the model card and its ``.weights.h5``.

Why not ``keras_hdf5`` for the ``.weights.h5``: that entry of the spec describes a
whole model in Keras' legacy HDF5 format (consumers call ``load_model`` on it); a
Keras 3 ``.weights.h5`` holds the weights only, without the architecture, so it
cannot be described honestly there. The spec's ``keras_v3`` entry describes a
``.keras`` file (architecture and weights), which is what is written; the
``.weights.h5`` travels as an attachment for nucleiseg itself.

Only model types whose networks map an image to probabilities of the same size
(no margin) with percentile normalization can be described: the U-Net. DeepCell's
dense form consumes 30 pixels of context on every side and uses its own
normalization, which no preprocessing of the spec expresses; it is refused.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import cards, model_types
from .cards import ModelError

#: The bioimage.io model description format written (model spec 0.5).
FORMAT_VERSION = "0.5.12"
DESCRIPTION_FILE = "rdf.yaml"
DOCUMENTATION_FILE = "README.md"
COVER_FILE = "cover.png"
TEST_INPUT_FILE = "test_input.npy"
TEST_OUTPUT_FILE = "test_output.npy"
SAMPLE_INPUT_FILE = "sample_input.tif"
SAMPLE_OUTPUT_FILE = "sample_output.tif"
INPUT_ID = "raw"
OUTPUT_ID = "probabilities"
#: The synthetic image the test input is cut from (:func:`nucleiseg.synthetic.generate_one`):
#: the clumped scene, so touching nuclei and their boundary class are in it.
TEST_IMAGE = {"index": 2, "seed": 0, "size": 256}
#: Height and width of the test input (multiples of every shipped network's ``multiple``).
TEST_CROP = 160
#: Largest difference in any class probability allowed between the Keras and ONNX weights.
TOLERANCE = 1e-4
#: The paper whose U-Net this is.
CAICEDO_2019 = {"text": "Caicedo JC, Roth J, Goodman A, et al. Evaluation of deep learning strategies for nucleus "
                        "segmentation in fluorescence images. Cytometry A 95(9):952-965 (2019)",
                "doi": "10.1002/cyto.a.23863"}
LICENSE = "BSD-3-Clause"
AUTHORS = [{"name": "nucleiseg maintainers"}]
PROJECT = "nucleiseg: deep-learning nucleus segmentation for CellProfiler"
ZIP_SUFFIX = ".zip"


@dataclass
class Written:
    """What :func:`write_package` wrote.

    Attributes
    ----------
    path : Path
        The package.
    files : dict
        ``{name in the zip: sha256}`` of every file but the description.
    keras_difference : float
        Largest difference in any class probability between the Keras network and the
        test output (ONNX Runtime) on the test input.
    """

    path: Path
    files: dict
    keras_difference: float


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def chosen_card(path: Path, member: str | None = None) -> Path:
    """The one network's card a package is written for: ``path``, or the ``member`` of an ensemble card.

    ``member`` is a member card's file name or its stem (``"unet-dsb2018"``). ModelError
    names the card, or the members to choose from.
    """
    path = cards.card_path_for(Path(path))
    card = cards.read_card(path)
    if "members" not in card:
        if member:
            raise ModelError(f"{path} is the card of one network, not an ensemble; leave out --member {member}")
        return path
    names = [Path(name).name for name in card["members"]]
    if not member:
        raise ModelError(f"{path} is an ensemble card; a bioimage.io package holds one network: choose one with "
                         f"--member ({', '.join(names)})")
    for name in card["members"]:
        if member in (Path(name).name, Path(name).name.removesuffix(".json")):
            return (path.parent / name).resolve()
    raise ModelError(f"{path} has no member {member!r}; its members are {', '.join(names)}")


def check_describable(card_path: Path, card: dict):
    """The card's model type, or ModelError when the spec cannot describe its network or normalization."""
    model_type = model_types.for_architecture(card["architecture"])
    normalization = card["normalization"]
    if model_type.margin:
        raise ModelError(f"{card_path}: {model_type.name} networks consume {model_type.margin} pixels of context on "
                         "every side; only networks whose output has the input's size can be packaged so far (U-Net)")
    if normalization.get("method") != "percentile":
        raise ModelError(f"{card_path}: normalization {normalization.get('method')!r} has no bioimage.io "
                         "preprocessing; only percentile normalization (scale_range) can be described")
    if not card.get("onnx"):
        raise ModelError(f"{card_path} names no ONNX file; write it first with python -m nucleiseg.export "
                         f"{card_path} --onnx")
    return model_type


def check_out(out: Path) -> Path:
    """``out`` if it names a ``.zip`` file in an existing folder, else ModelError."""
    out = Path(out)
    if out.suffix.lower() != ZIP_SUFFIX:
        raise ModelError(f"{out}: a bioimage.io package is a .zip file; name OUT with the suffix .zip")
    if not out.parent.is_dir():
        raise ModelError(f"{out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise ModelError(f"{out} is a folder")
    return out


def test_image(multiple: int = 8) -> np.ndarray:
    """The test input: a :data:`TEST_CROP`-square crop from the centre of a synthetic image, float32.

    Raw intensities (16-bit counts), as a user's image would come; the crop's edge is
    rounded down to ``multiple``.
    """
    from .synthetic import generate_one

    image, _ = generate_one(TEST_IMAGE["index"], seed=TEST_IMAGE["seed"], size=TEST_IMAGE["size"])
    edge = TEST_CROP // multiple * multiple
    top = (image.shape[0] - edge) // 2
    left = (image.shape[1] - edge) // 2
    return image[top : top + edge, left : left + edge].astype(np.float32)


def our_probabilities(card_path: Path, image: np.ndarray) -> np.ndarray:
    """``(H, W, classes)`` probabilities of ``image`` by our inference on ONNX Runtime (what CellProfiler runs)."""
    from .inference import predict_probabilities

    model = cards.load(card_path, engine="onnxruntime", device="cpu")
    return predict_probabilities(image, model)


def keras_file(card_path: Path, card: dict, folder: Path, normalized: np.ndarray) -> tuple[Path, float]:
    """Save the card's network as a whole Keras 3 file in ``folder``; (its path, its largest difference from
    ONNX Runtime on the normalized test input)."""
    from .engines import OnnxNetwork, keras_network

    network = keras_network(card_path, card)
    path = folder / (Path(card["weights"]).name.removesuffix(".weights.h5") + ".keras")
    network.save(path)
    batch = normalized[None, ..., None].astype(np.float32)
    keras = np.asarray(network.predict_on_batch(batch), dtype=np.float32)
    onnx = OnnxNetwork(card_path.parent / card["onnx"]).predict_on_batch(batch)
    return path, float(np.abs(keras - onnx).max())


def tiff_bytes(array: np.ndarray) -> bytes:
    """``array`` as a TIFF file (the sample tensors, for people and viewers: ``.npy`` is not allowed there)."""
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.ascontiguousarray(array))
    return buffer.getvalue()


def cover_png(normalized: np.ndarray, probabilities: np.ndarray, scale: int = 2) -> bytes:
    """A 2:1 PNG: the normalized test input (grey) beside its probabilities (interior green, boundary magenta)."""
    import imageio.v3 as iio

    grey = np.clip(normalized, 0, 1)
    left = np.repeat(grey[..., None], 3, axis=-1)
    interior, boundary = probabilities[..., 1], probabilities[..., 2]
    right = np.stack([boundary, interior, boundary], axis=-1)
    both = np.concatenate([left, right], axis=1)
    both = np.repeat(np.repeat(both, scale, axis=0), scale, axis=1)
    return iio.imwrite("<bytes>", np.round(both * 255).astype(np.uint8), extension=".png")


def axes(model_type, with_channels: list[str] | None = None, output: bool = False) -> list[dict]:
    """The tensor axes in the networks' layout: batch, y, x, channel (NHWC, as the ONNX file takes them)."""
    if output:
        space = [{"type": "space", "id": axis, "size": {"tensor_id": INPUT_ID, "axis_id": axis}} for axis in ("y", "x")]
    else:
        step = model_type.multiple
        space = [{"type": "space", "id": axis, "size": {"min": step, "step": step}} for axis in ("y", "x")]
    return [{"type": "batch"}, *space, {"type": "channel", "channel_names": with_channels}]


def description(card_path: Path, card: dict, model_type, files: dict, names: dict, project_url: str | None) -> dict:
    """The ``rdf.yaml`` content for ``card`` (``files``: sha256 by name; ``names``: the role of each name)."""
    import keras
    import onnx
    import tensorflow as tf

    def file(name):
        return {"source": name, "sha256": files[name]}

    normalization = card["normalization"]
    classes = list(card.get("classes") or model_type.classes)

    cite = [dict(CAICEDO_2019)]
    if project_url:
        cite.append({"text": PROJECT, "url": project_url})
    opset = max(entry.version for entry in onnx.load(str(card_path.parent / card["onnx"]), load_external_data=False)
                .opset_import if entry.domain in ("", "ai.onnx"))
    rdf = {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": f"nucleiseg U-Net nuclei ({card['name']})",
        "description": ("Three-class U-Net (background, interior, boundary) for nuclei in fluorescence images, after "
                        "Caicedo et al. 2019; trained with nucleiseg. Outputs class probabilities; nucleiseg's "
                        "post-processing (see the documentation) turns them into one label per nucleus."),
        "authors": AUTHORS,
        "cite": cite,
        "license": LICENSE,
        "version": _package_version(),
        "tags": ["nuclei", "fluorescence-light-microscopy", "2d", "unet", "semantic-segmentation",
                 "instance-segmentation", "tensorflow", "onnx", "cellprofiler"],
        "documentation": file(names["documentation"]),
        "covers": [file(names["cover"])],
        "attachments": [file(names["card"]), file(names["weights_h5"])],
        "timestamp": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "inputs": [{
            "id": INPUT_ID,
            "description": "Greyscale fluorescence image of nuclei (e.g. DNA stain), raw intensities",
            "axes": axes(model_type, ["dna"]),
            "test_tensor": file(names["test_input"]),
            "sample_tensor": file(names["sample_input"]),
            "data": {"type": "float32"},
            "preprocessing": [{"id": "scale_range", "kwargs": {
                "axes": ["y", "x"],
                "min_percentile": float(normalization.get("low", 0.1)),
                "max_percentile": float(normalization.get("high", 99.9)),
            }}],
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "Softmax class probabilities per pixel: " + ", ".join(classes),
            "axes": axes(model_type, classes, output=True),
            "test_tensor": file(names["test_output"]),
            "sample_tensor": file(names["sample_output"]),
            "data": {"type": "float32", "range": [0.0, 1.0]},
        }],
        "weights": {
            "keras_v3": {
                **file(names["keras"]),
                "keras_version": keras.__version__,
                "backend": ["tensorflow", tf.__version__],
                "comment": f"The whole network, saved at export from {card['weights']} (the trained weights).",
            },
            "onnx": {
                **file(names["onnx"]),
                "opset_version": int(opset),
                "parent": "keras_v3",
                "comment": "Converted from the Keras network by python -m nucleiseg.export --onnx and checked against it; "
                           "the file nucleiseg's CellProfiler modules run.",
            },
        },
        "config": {"nucleiseg": {"card": names["card"], "postprocess": card.get("postprocess", {}),
                                 "project": PROJECT}},
    }
    return rdf


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("nucleiseg")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def documentation(card: dict, model_type, keras_difference: float, project_url: str | None) -> str:
    """The package's documentation page (markdown)."""
    from .postprocess import PostprocessSettings

    normalization = card["normalization"]
    low, high = normalization.get("low", 0.1), normalization.get("high", 99.9)
    settings = PostprocessSettings(**{key: value for key, value in card.get("postprocess", {}).items()
                                      if key in PostprocessSettings.__dataclass_fields__})
    training = card.get("training", {})
    benchmark = card.get("validation", {}).get("benchmark", {})
    scores = []
    for key, label in (("whole_val", "validation split"), ("bbbc039_val_fields", "its BBBC039 fields")):
        if key in benchmark:
            entry = benchmark[key]
            scores.append(f"| {label} | {entry.get('images')} | {entry.get('f1_mean')} | {entry.get('f1_050')} "
                          f"| {entry.get('error_rate_070')} |")
    score_table = ("| images | n | mean F1 (IoU 0.5-0.95) | F1 at IoU 0.5 | error rate at IoU 0.7 |\n"
                   "| --- | --- | --- | --- | --- |\n" + "\n".join(scores)) if scores else "No benchmark figures in the card."
    project = f"[{PROJECT}]({project_url})" if project_url else PROJECT
    return f"""# nucleiseg U-Net: {card['name']}

A three-class U-Net (background, interior, boundary) for nuclei in 2-D fluorescence
images, the network of Caicedo et al. 2019 ({model_type.name}, base width
{card['architecture'].get('base_filters')}, {card.get('parameters', 'unknown')} parameters), trained with
{project}. Its output is the per-pixel probability of each class; one label per nucleus comes
from nucleiseg's post-processing (below), which the bioimage.io spec has no operation for.

## Input and preprocessing

One greyscale channel (a DNA stain), raw intensities, axes batch, y, x, channel (the
networks' NHWC layout); height and width any multiple of {model_type.multiple}.
Preprocessing `scale_range` over y and x with percentiles {low} and {high}: the
{low}th percentile maps to 0, the {high}th to 1, values outside are kept (not clipped).

This is nucleiseg's own percentile normalization (`nucleiseg.normalization`), with these
differences:

- the spec divides by the range plus `eps` (1e-6), nucleiseg by the range alone: a relative
  difference of 1e-6 divided by the range, nothing for images of counts;
- nucleiseg returns pure background for a constant image without running the network;
  here the network runs on zeros;
- nucleiseg pads images of any size by reflection to the multiple of {model_type.multiple} and
  tiles images larger than 1024 pixels with overlapping tiles; a consumer of this package
  gives the network sizes it accepts and tiles in its own way;
- nucleiseg can take the percentiles inside a mask (CellProfiler's image masks); the package
  always uses the whole image.

## Output

`probabilities`: float32 softmax over the channel axis ({', '.join(card.get('classes') or model_type.classes)}),
same height and width as the input. The interior class is the nucleus shrunk by the
boundary ring of width {card.get('targets', {}).get('boundary_width', 1)} pixel(s) that separates touching nuclei.

## Post-processing to nuclei (nucleiseg, not in the spec)

With this card's settings (`nucleiseg.postprocess.probabilities_to_labels`):

1. seeds: 4-connected regions where the interior probability exceeds
   {settings.interior_threshold} and {settings.boundary_boost} times the boundary probability;
2. each seed grows by {settings.dilation} pixels into foreground, the pixels whose interior plus
   boundary probability exceeds {settings.foreground_threshold} of the total;
3. holes inside each nucleus are filled ({settings.fill_holes});
4. nuclei under {settings.min_size} pixels are removed; labels are renumbered from 1.

In CellProfiler the `NucleiSegmentationUNet` module runs all of this. Elsewhere a
threshold of the interior probability followed by a seeded watershed gives similar
nuclei.

## Weights

- `onnx` (primary for running): the file nucleiseg's CellProfiler modules run with ONNX
  Runtime; converted from the Keras network and checked against it.
- `keras_v3`: the whole Keras 3 network (`.keras`), saved from the card's weights when
  this package was written. On the test input its probabilities differ from the ONNX
  file's by at most {keras_difference:.1e}.
- Attached: nucleiseg's model card and its `.weights.h5`. Keras 3 weights-only files
  hold no architecture, so the spec's `keras_hdf5` entry (a whole legacy HDF5 model)
  cannot describe them; nucleiseg loads them with the card.

## Training

Data: {Path(str(training.get('data', 'unknown'))).name} ({training.get('split', '?')} split), {training.get('epochs', '?')} epochs,
crops of {training.get('crop', '?')} pixels, {training.get('loss', '')}.

## Validation

Object-level F1 of the whole pipeline (network and the post-processing above) on the
held-out validation images, from the model card (headless CellProfiler runs):

{score_table}

The test tensors of this package are a {TEST_CROP}x{TEST_CROP} crop of a synthetic image
(`nucleiseg.synthetic`, scene {TEST_IMAGE['index']}, seed {TEST_IMAGE['seed']}) and the probabilities
nucleiseg's inference gives for it; `bioimageio.core`'s test reproduces them from the raw
test input with the preprocessing above.

## Limitations

Trained on the fluorescence images named under Training only; brightfield, histology
and other modalities are outside its domain. nucleiseg's robustness benchmark finds it
not yet robust to strong changes of the images (blur, noise, scale): check it on your own
images before relying on it.

## Citation

{CAICEDO_2019['text']}. doi:{CAICEDO_2019['doi']}. And {PROJECT}{f' ({project_url})' if project_url else ''}.
"""


def write_package(path: Path, out: Path, member: str | None = None, project_url: str | None = None) -> Written:
    """Write the bioimage.io package of one network of the card ``path`` to ``out`` (a ``.zip``).

    Parameters
    ----------
    path : Path
        Model card (or weights file); an ensemble card needs ``member``.
    out : Path
        The package; written to a temporary file beside it, then renamed, so a failure
        leaves nothing (and an existing ``out`` unchanged).
    member : str, optional
        The ensemble member to package (its card's file name or stem).
    project_url : str, optional
        Where nucleiseg is published: cited, when given (a citation needs a DOI or URL).

    Raises
    ------
    ModelError
        The card is missing or cannot be described, a file does not match its card,
        ``out`` is not a ``.zip``, or the Keras and ONNX networks disagree.
    """
    out = check_out(out)
    card_path = chosen_card(path, member)
    ((card_path, card),) = cards.verify(card_path)
    model_type = check_describable(card_path, card)

    image = test_image(model_type.multiple)
    probabilities = our_probabilities(card_path, image)
    from .normalization import normalize

    normalized = normalize(image, card["normalization"])
    stem = card_path.stem
    names = {"documentation": DOCUMENTATION_FILE, "cover": COVER_FILE, "test_input": TEST_INPUT_FILE,
             "test_output": TEST_OUTPUT_FILE, "sample_input": SAMPLE_INPUT_FILE,
             "sample_output": SAMPLE_OUTPUT_FILE, "card": card_path.name, "weights_h5": Path(card["weights"]).name,
             "onnx": Path(card["onnx"]).name, "keras": f"{stem}.keras"}
    contents = {
        TEST_INPUT_FILE: npy_bytes(image[None, ..., None]),
        TEST_OUTPUT_FILE: npy_bytes(probabilities[None].astype(np.float32)),
        SAMPLE_INPUT_FILE: tiff_bytes(image.astype(np.uint16)),
        SAMPLE_OUTPUT_FILE: tiff_bytes(probabilities.astype(np.float32)),
        COVER_FILE: cover_png(normalized, probabilities),
        names["card"]: card_path.read_bytes(),
        names["weights_h5"]: (card_path.parent / card["weights"]).read_bytes(),
        names["onnx"]: (card_path.parent / card["onnx"]).read_bytes(),
    }
    with tempfile.TemporaryDirectory() as folder:
        keras_path, keras_difference = keras_file(card_path, card, Path(folder), normalized)
        if not keras_difference <= TOLERANCE:
            raise ModelError(f"{card_path}: the Keras network and {card['onnx']} differ by {keras_difference:.2e} on the "
                             f"test input (more than {TOLERANCE:g}); write the ONNX file again (--onnx)")
        contents[names["keras"]] = keras_path.read_bytes()
    contents[DOCUMENTATION_FILE] = documentation(card, model_type, keras_difference, project_url).encode()
    files = {name: sha256_bytes(data) for name, data in contents.items()}
    rdf = description(card_path, card, model_type, files, names, project_url)

    import yaml

    partial = out.with_name(out.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(DESCRIPTION_FILE, yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True))
            for name, data in contents.items():
                archive.writestr(name, data)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return Written(out, files, keras_difference)

"""Command line: ``python -m nucleiseg.export CARD [CARD ...] --onnx [--opset N]`` (``--shipped``: the shipped models),
or ``python -m nucleiseg.export CARD --bioimageio OUT.zip [--member NAME]`` (a bioimage.io model package,
:mod:`nucleiseg.bioimageio`).

Writes every network of a model card (one, or each member of an ensemble) as
``<name>.onnx`` beside its ``<name>.weights.h5``, in the whole-image form the
networks run in (DeepCell: its fully convolutional dense form), with the batch,
height and width left free; then records in that network's card the file's name,
its sha256 and the sha256 of the weights it came from (``onnx``, ``onnx_sha256``,
``onnx_weights_sha256``), so ONNX Runtime can run the model without TensorFlow
(:mod:`nucleiseg.engines`). Each file is checked before it is kept: ONNX Runtime's
probabilities on a random batch of an odd size must equal Keras' within
:data:`TOLERANCE`.

Conversion: Keras' own ``model.export(format="onnx")`` (tf2onnx on TensorFlow), so
it needs the full environment (TensorFlow, Keras, tf2onnx, onnx and onnxruntime: the
``train`` extra, or requirements.lock).
"""

from __future__ import annotations

import argparse
import contextlib
import warnings
from pathlib import Path

import numpy as np

from . import cards, model_types
from .cards import ModelError

#: ONNX operator set of the written files (ONNX Runtime 1.10 and later read it).
OPSET = 15
#: Largest difference in any class probability allowed between ONNX Runtime and Keras.
TOLERANCE = 1e-4
ONNX_SUFFIX = ".onnx"
_WEIGHTS_SUFFIX = ".weights.h5"
#: tf2onnx's end of a slice that runs to the end of its axis (INT32_MAX, or INT64_MAX).
_TO_THE_END = 2**31 - 1


def onnx_name(card: dict) -> str:
    """File name of a network's ONNX file: its weights file's, ``.weights.h5`` replaced by ``.onnx``."""
    weights = card["weights"]
    stem = weights[: -len(_WEIGHTS_SUFFIX)] if weights.endswith(_WEIGHTS_SUFFIX) else Path(weights).stem
    return stem + ONNX_SUFFIX


@contextlib.contextmanager
def _upsampling_as_resize(network):
    """Nearest-neighbour upsampling written as one ONNX ``Resize`` while ``network`` is converted.

    Keras writes ``UpSampling2D(interpolation="nearest")`` as two repeats, which become
    Tile, Reshape and layout Transposes in ONNX (about a sixth of the U-Net's time in ONNX
    Runtime). A resize by the integer factor, taking source pixel ``floor(i / factor)``,
    is the same operation; the export's check compares the results.
    """
    import tensorflow as tf
    from keras import layers

    def resize(layer):
        def call(inputs):
            shape = tf.shape(inputs)
            size = tf.stack([shape[1] * layer.size[0], shape[2] * layer.size[1]])
            return tf.raw_ops.ResizeNearestNeighbor(images=inputs, size=size, align_corners=False, half_pixel_centers=False)

        return call

    patched = [layer for layer in network.layers if isinstance(layer, layers.UpSampling2D)
               and layer.interpolation == "nearest" and layer.data_format == "channels_last"]
    for layer in patched:
        object.__setattr__(layer, "call", resize(layer))
    try:
        yield
    finally:
        for layer in patched:
            object.__delattr__(layer, "call")


def convert(network, out: Path, opset: int = OPSET) -> Path:
    """Write a Keras network as an ONNX file with free batch, height and width (input named ``image``)."""
    import keras
    import onnx

    channels = int(network.input_shape[-1])
    signature = [keras.InputSpec(shape=(None, None, None, channels), dtype="float32", name="image")]
    with _upsampling_as_resize(network), warnings.catch_warnings():
        # Keras' tf2onnx shim touches np.object; the warning says nothing about this export.
        warnings.simplefilter("ignore", FutureWarning)
        network.export(str(out), format="onnx", input_signature=signature, opset_version=opset, verbose=False)
    model = onnx.load(str(out))
    factors = {tuple(layer.size) for layer in network.layers if isinstance(layer, keras.layers.UpSampling2D)}
    if len(factors) == 1:
        _constant_resize_scales(model, factors.pop())
    _dilated_max_pools(model)
    _concatenations_into_convolutions(model)
    _softmax_after_layout_transpose(model)
    _drop_unused(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return Path(out)


def _constant_resize_scales(model, factor: tuple[int, int]) -> None:
    """Give every nearest-neighbour ``Resize`` constant scales (``factor`` on the spatial axes).

    tf2onnx computes each output size from the input's shape at run time; with constant
    integer scales ONNX Runtime keeps the upsampling (and the convolutions after it) in
    its blocked CPU layout (no reordering of the decoder's activations).
    """
    from onnx import numpy_helper, shape_inference

    known = {value.name: [dim.HasField("dim_value") for dim in value.type.tensor_type.shape.dim]
             for value in shape_inference.infer_shapes(model).graph.value_info}
    for node in model.graph.node:
        static = known.get(node.input[0]) if node.op_type == "Resize" else None
        if static is None or len(static) != 4 or b"nearest" not in [a.s for a in node.attribute if a.name == "mode"]:
            continue
        # Only the channel axis has a fixed size: axis 1 (NCHW, as tf2onnx lays out) or 3 (NHWC).
        if static[1:] == [True, False, False]:
            scales = [1, 1, *factor]
        elif static[1:] == [False, False, True]:
            scales = [1, *factor, 1]
        else:
            continue
        name = f"{node.name}/scales"
        model.graph.initializer.append(numpy_helper.from_array(np.array(scales, np.float32), name))
        node.input[:] = [node.input[0], "", name]


def _dilated_max_pools(model) -> None:
    """Write each ``DilatedMaxPool2D`` (DeepCell's dense form) as one ONNX ``MaxPool`` with dilations.

    The layer is the maximum of four shifted slices of its input, which tf2onnx keeps as
    four Slice copies and three Max passes (about a sixth of DeepCell's time in ONNX
    Runtime). A 2x2 max-pool with stride 1 and dilation ``d`` over the NCHW input takes the
    same four pixels, in one pass in ONNX Runtime's blocked layout.
    """
    from onnx import helper, numpy_helper

    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    producer = {name: node for node in model.graph.node for name in node.output}

    def inputs_made_by(node, kind):
        made = [producer.get(name) for name in node.input]
        return made if len(made) == 2 and all(m is not None and m.op_type == kind for m in made) else None

    def shift(node):
        """(row shift, column shift, d) of a Slice ``x[:, :, r:, c:]`` of the pattern, or None.

        A shift of 0 cuts ``d`` pixels at the far end (``:-d``); a shift of ``d`` keeps the rest.
        """
        if len(node.input) > 4 or any(name not in constants for name in node.input[1:4]):
            return None  # steps other than 1, or bounds computed at run time
        starts, ends, axes = (constants[name].tolist() for name in node.input[1:4])
        bounds = {axis: (start, end) for axis, start, end in zip(axes, starts, ends)}
        whole = (0, _TO_THE_END)
        if any(bounds.get(axis, whole)[0] != 0 or bounds.get(axis, whole)[1] < _TO_THE_END for axis in (0, 1)):
            return None  # batch and channels are taken whole
        shifts, cuts = [], set()
        for axis in (2, 3):
            start, end = bounds.get(axis, whole)
            if start > 0 and end >= _TO_THE_END:
                shifts.append(start)
                cuts.add(start)
            elif start == 0 and end < 0:
                shifts.append(0)
                cuts.add(-end)
            else:
                return None
        return (*shifts, cuts.pop()) if len(cuts) == 1 else None

    for node in list(model.graph.node):
        halves = inputs_made_by(node, "Max") if node.op_type == "Max" else None
        slices = [s for half in halves for s in (inputs_made_by(half, "Slice") or [])] if halves else []
        if len(slices) != 4 or len({s.input[0] for s in slices}) != 1:
            continue
        shifts = [shift(s) for s in slices]
        if None in shifts or len({s[2] for s in shifts}) != 1:
            continue
        d = shifts[0][2]
        if {s[:2] for s in shifts} != {(0, 0), (0, d), (d, 0), (d, d)}:
            continue
        pool = helper.make_node("MaxPool", [slices[0].input[0]], list(node.output), name=f"{node.name}/dilated",
                                kernel_shape=[2, 2], dilations=[d, d], strides=[1, 1])
        nodes = list(model.graph.node)
        nodes[nodes.index(node)] = pool
        model.graph.ClearField("node")
        model.graph.node.extend(nodes)


def _concatenations_into_convolutions(model) -> None:
    """Replace each channel ``Concat`` that only feeds a convolution by one convolution per input, summed.

    A convolution of concatenated channels is the sum of convolutions of each part with
    its slice of the kernel (the bias added once). ONNX Runtime's blocked CPU layout
    copies a concatenation as a pass of its own but fuses the sum and the ReLU after it
    into its convolutions. Only the order of
    additions changes; the export's check compares the results.
    """
    from onnx import helper, numpy_helper, shape_inference

    channels = {value.name: value.type.tensor_type.shape.dim[1].dim_value
                for value in shape_inference.infer_shapes(model).graph.value_info
                if len(value.type.tensor_type.shape.dim) == 4}
    constants = {init.name: init for init in model.graph.initializer}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {output.name for output in model.graph.output}
    nodes = list(model.graph.node)
    for concat in [node for node in nodes if node.op_type == "Concat"]:
        axis = next((a.i for a in concat.attribute if a.name == "axis"), None)
        after = consumers.get(concat.output[0], [])
        if axis != 1 or len(concat.input) < 2 or len(after) != 1 or concat.output[0] in outputs:
            continue
        (conv,) = after
        sizes = [channels.get(name, 0) for name in concat.input]
        group = next((a.i for a in conv.attribute if a.name == "group"), 1)
        if conv.op_type != "Conv" or conv.input[0] != concat.output[0] or group != 1 or conv.input[1] not in constants or 0 in sizes:
            continue
        kernel = numpy_helper.to_array(constants[conv.input[1]])
        if kernel.shape[1] != sum(sizes):
            continue
        bias = conv.input[2:3] if len(conv.input) > 2 else []
        parts, start = [], 0
        for index, (name, size) in enumerate(zip(concat.input, sizes)):
            weights = f"{conv.name}/part{index}/kernel"
            model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(kernel[:, start:start + size]), weights))
            start += size
            part = helper.make_node("Conv", [name, weights, *(bias if index == 0 else [])], [f"{conv.name}/part{index}"],
                                    name=f"{conv.name}/part{index}")
            part.attribute.extend(conv.attribute)
            parts.append(part)
        total, sums = parts[0].output[0], []
        for index, part in enumerate(parts[1:], start=1):
            out = conv.output[0] if index == len(parts) - 1 else f"{conv.name}/sum{index}"
            sums.append(helper.make_node("Add", [total, part.output[0]], [out], name=f"{conv.name}/sum{index}"))
            total = out
        at = nodes.index(conv)
        nodes[at:at + 1] = [*parts, *sums]
        nodes.remove(concat)
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)


def _softmax_after_layout_transpose(model) -> None:
    """Move the output's NCHW-to-NHWC transpose before the softmax, which then runs over the last axis.

    Softmax over the channels commutes with moving them last; over the last axis ONNX
    Runtime needs no transposes of its own, and the transpose joins the final reordering.
    """
    outputs = {output.name for output in model.graph.output}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for softmax in list(model.graph.node):
        axis = next((a.i for a in softmax.attribute if a.name == "axis"), None)
        after = consumers.get(softmax.output[0], [])
        if softmax.op_type != "Softmax" or axis != 1 or len(after) != 1 or softmax.output[0] in outputs:
            continue
        (transpose,) = after
        perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), None)
        if transpose.op_type != "Transpose" or perm != [0, 2, 3, 1]:
            continue
        logits, probabilities = softmax.input[0], transpose.output[0]
        transpose.input[0], transpose.output[0] = logits, f"{softmax.name}/channels_last"
        softmax.input[0], softmax.output[0] = transpose.output[0], probabilities
        next(a for a in softmax.attribute if a.name == "axis").i = 3
        # Keep the node list in execution order: the transpose now comes first.
        nodes = list(model.graph.node)
        nodes.remove(transpose)
        nodes.insert(nodes.index(softmax), transpose)
        model.graph.ClearField("node")
        model.graph.node.extend(nodes)


def _drop_unused(model) -> None:
    """Remove nodes and initializers nothing uses any more (the run-time size computations)."""
    while True:
        used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
        dead = [node for node in model.graph.node if not any(name in used for name in node.output)]
        if not dead:
            break
        for node in dead:
            model.graph.node.remove(node)
    used = {name for node in model.graph.node for name in node.input}
    for initializer in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(initializer)


def check_input(model_type, seed: int = 0) -> np.ndarray:
    """A random batch of 2 of an odd size the networks of ``model_type`` accept (margins, multiples)."""
    height, width = (model_type.margin * 2 + -(-size // model_type.multiple) * model_type.multiple for size in (37, 53))
    return np.random.default_rng(seed).normal(size=(2, height, width, 1)).astype(np.float32)


def largest_difference(network, onnx_file: Path, batch: np.ndarray) -> float:
    """Largest difference in any class probability between ``network`` (Keras) and ONNX Runtime on ``batch``."""
    from .engines import OnnxNetwork

    expected = np.asarray(network.predict_on_batch(batch), dtype=np.float32)
    found = OnnxNetwork(onnx_file).predict_on_batch(batch)
    if found.shape != expected.shape:
        raise ModelError(f"{onnx_file}: ONNX Runtime gives shape {found.shape}, Keras {expected.shape}")
    return float(np.abs(found - expected).max())


def export_onnx(path: Path, opset: int = OPSET) -> list[tuple[Path, float]]:
    """Write the ONNX file of every network of the card ``path`` and record it in that network's card.

    Parameters
    ----------
    path : Path
        Model card, ensemble card or weights file; its weights must match their cards.
    opset : int
        ONNX operator set.

    Returns
    -------
    list of (Path, float)
        Each ONNX file written and its largest probability difference from Keras.

    Raises
    ------
    ModelError
        A weights file does not match its card, or ONNX Runtime's result differs from
        Keras' by more than :data:`TOLERANCE` (that file is not kept, its card unchanged).
    """
    from .engines import keras_network

    written = []
    # Existing ONNX files are being replaced, so only the weights must match their cards.
    for card_path, card in cards.verify(path, onnx=False):
        network = keras_network(card_path, card)
        out = card_path.parent / onnx_name(card)
        partial = out.with_name(out.name + ".partial")
        try:
            convert(network, partial, opset)
            difference = largest_difference(network, partial, check_input(model_types.for_architecture(card["architecture"])))
            if not difference <= TOLERANCE:
                raise ModelError(f"{out}: ONNX Runtime's probabilities differ from Keras' by {difference:.2e} "
                                 f"(more than {TOLERANCE:g}); not written")
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
        cards.save_card(dict(card, onnx=out.name, onnx_sha256=cards.sha256_of(out), onnx_weights_sha256=card["sha256"]),
                        card_path)
        written.append((out, difference))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nucleiseg.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cards", type=Path, nargs="*", metavar="CARD", help="model or ensemble cards (or weights files)")
    parser.add_argument("--shipped", action="store_true", help="every shipped model of every model type (models/)")
    parser.add_argument("--onnx", action="store_true", help="write ONNX files beside the weights")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX operator set (default {OPSET})")
    parser.add_argument("--bioimageio", type=Path, metavar="OUT.zip",
                        help="write the bioimage.io model package of one card (its ONNX file must exist)")
    parser.add_argument("--member", metavar="NAME", help="with --bioimageio: the member of an ensemble card to package")
    parser.add_argument("--url", metavar="URL", help="with --bioimageio: where nucleiseg is published (cited)")
    args = parser.parse_args(argv)
    if args.onnx == (args.bioimageio is not None):
        parser.error("choose one of --onnx and --bioimageio OUT.zip")
    if args.bioimageio is not None:
        return _bioimageio(parser, args)
    paths = list(args.cards) + (model_types.shipped_cards() if args.shipped else [])
    if not paths:
        parser.error("name model cards, or --shipped")
    for path in paths:
        try:
            written = export_onnx(path, args.opset)
        except ModelError as error:
            parser.error(str(error))
        for out, difference in written:
            print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; largest difference from Keras {difference:.1e})")
    return 0


def _bioimageio(parser, args) -> int:
    """``--bioimageio OUT.zip``: one card's package (:func:`nucleiseg.bioimageio.write_package`)."""
    from .bioimageio import write_package

    if args.shipped or len(args.cards) != 1:
        parser.error("--bioimageio writes the package of one card: name exactly one CARD")
    try:
        written = write_package(args.cards[0], args.bioimageio, member=args.member, project_url=args.url)
    except ModelError as error:
        parser.error(str(error))
    print(f"wrote {written.path} ({written.path.stat().st_size / 1e6:.1f} MB; {len(written.files) + 1} files; "
          f"Keras and ONNX weights differ by at most {written.keras_difference:.1e} on the test input)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

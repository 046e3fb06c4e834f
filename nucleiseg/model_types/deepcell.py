"""DeepCell's 61x61 patch network (Van Valen et al., 2016): architecture, inference, normalization.

One set of weights serves two forms. The *patch* form classifies the pixel
at the centre of a 61x61 patch, as published. The *dense* form rewrites the
pooling and convolutions with dilations, so that one pass over a padded
image yields every pixel's patch prediction; it is what training and the
default inference use. :func:`predict_patches` runs the patch form on every
pixel's own patch: the published procedure, and the reference the dense form
is checked against (the two agree up to floating-point rounding).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from ..cards import BBBC039_LIKE, MODELS_DIR
from ..engines import OnnxNetwork
from ..layers import conv_bn_relu, softmax_classes
from ..normalization import pixels_inside
from .base import DENSE, ModelType

PATCH = 61
MARGIN = PATCH // 2  # context needed on each side of a pixel
PATCH_MODE = "patch"
DEFAULT_WINDOW = 61  # local-mean window of DeepCell's own normalization (the patch size)

_POOL_LAYER = None


def dilated_max_pool_layer():
    """The Keras layer class ``DilatedMaxPool2D`` (defined on first use, so Keras loads only then).

    A 2x2 max-pool with stride 1 over taps ``dilation`` pixels apart: what a
    stride-2 pool becomes when a patch network is evaluated densely. Output
    pixel (i, j) is the max of x[i, j], x[i+d, j], x[i, j+d], x[i+d, j+d]; the
    map shrinks by ``d`` in each direction.
    """
    global _POOL_LAYER
    if _POOL_LAYER is None:
        from keras import layers, ops

        class DilatedMaxPool2D(layers.Layer):
            def __init__(self, dilation: int = 1, **kwargs):
                super().__init__(**kwargs)
                self.dilation = int(dilation)

            def call(self, x):
                d = self.dilation
                top = ops.maximum(x[:, :-d, :-d, :], x[:, :-d, d:, :])
                bottom = ops.maximum(x[:, d:, :-d, :], x[:, d:, d:, :])
                return ops.maximum(top, bottom)

            def compute_output_shape(self, input_shape):
                b, h, w, c = input_shape
                d = self.dilation
                return (b, None if h is None else h - d, None if w is None else w - d, c)

            def get_config(self):
                return {**super().get_config(), "dilation": self.dilation}

        _POOL_LAYER = DilatedMaxPool2D
    return _POOL_LAYER


def build_deepcell(dense: bool = False, n_classes: int = 3, input_channels: int = 1, l2: float = 1e-5):
    """Build DeepCell's 61x61 feature net with batch normalization.

    Layers: conv 3x3 (64), conv 4x4 (64), pool, conv 3x3 (64) x2, pool,
    conv 3x3 (64) x2, pool, conv 4x4 (200), dense 200, dense ``n_classes``
    with softmax; ReLU and batch normalization after every hidden layer, L2
    weight decay on every kernel. The dense layers are written as 1x1
    convolutions so that both forms hold identical weight tensors.

    Parameters
    ----------
    dense : bool
        False: input ``(61, 61)`` patches, output one class vector per patch
        (shape ``(batch, 1, 1, n_classes)``). True: input an image padded by
        30 pixels on every side, output ``(batch, H, W, n_classes)`` where
        output pixel (i, j) equals the patch network applied to the patch
        centred on input pixel (i + 30, j + 30).
    n_classes, input_channels : int
        Output classes and input channels.
    l2 : float
        L2 weight-decay factor on convolution kernels.
    """
    import keras
    from keras import layers

    reg = keras.regularizers.L2(l2) if l2 else None
    shape = (None, None, input_channels) if dense else (PATCH, PATCH, input_channels)
    inputs = keras.Input(shape, name="image")
    dilation = 1

    def pool(x, name):
        nonlocal dilation
        x = dilated_max_pool_layer()(dilation, name=name)(x) if dense else layers.MaxPooling2D(2, name=name)(x)
        dilation *= 2
        return x

    def conv(x, filters, kernel, name):
        d = dilation if dense else 1
        return conv_bn_relu(x, filters, kernel, name, dilation=d, padding="valid", regularizer=reg)

    x = conv(inputs, 64, 3, "c1")
    x = conv(x, 64, 4, "c2")
    x = pool(x, "pool1")
    x = conv(x, 64, 3, "c3")
    x = conv(x, 64, 3, "c4")
    x = pool(x, "pool2")
    x = conv(x, 64, 3, "c5")
    x = conv(x, 64, 3, "c6")
    x = pool(x, "pool3")
    x = conv(x, 200, 4, "c7")
    x = conv_bn_relu(x, 200, 1, "fc1", regularizer=reg)
    return keras.Model(inputs, softmax_classes(x, n_classes, reg), name="deepcell_dense" if dense else "deepcell_patch")


def deepcell_normalize(image: np.ndarray, window: int = DEFAULT_WINDOW, inside: np.ndarray | None = None) -> np.ndarray:
    """DeepCell's original scheme: divide by the median, subtract the local mean.

    The local mean is taken over a ``window`` x ``window`` box (the patch
    size). The median is taken over non-zero pixels when the plain median is
    zero, as happens in sparse fluorescence fields. With ``inside`` (a boolean
    mask, not empty), the median is taken over those pixels only.
    """
    image = np.asarray(image, dtype=np.float32)
    pixels = pixels_inside(image, inside)
    median = float(np.median(pixels))
    if median <= 0:
        positive = pixels[pixels > 0]
        median = float(np.median(positive)) if positive.size else 1.0
    scaled = image / np.float32(median)
    return scaled - ndimage.uniform_filter(scaled, size=window, mode="reflect")


# ---- the published patch-by-patch inference ------------------------------------------------


def _is_patch_form(network) -> bool:
    return tuple(network.input_shape[1:3]) == (PATCH, PATCH)


def patch_network(network):
    """The patch form of a DeepCell network (the network itself if already one).

    Returns a Keras model mapping ``(B, 61, 61, C)`` patches to
    ``(B, 1, 1, n_classes)`` that holds copies of ``network``'s weights (both
    forms have the same tensors). An ONNX Runtime network (the dense form) is
    returned as it is: on a 61x61 input the dense form's one output pixel is
    that patch's prediction.
    """
    if isinstance(network, OnnxNetwork) or _is_patch_form(network):
        return network
    n_classes = int(network.output_shape[-1])
    channels = int(network.input_shape[-1])
    patch = build_deepcell(dense=False, n_classes=n_classes, input_channels=channels)
    patch.set_weights(network.get_weights())
    return patch


def patch_networks(networks_or_loaded_model) -> list:
    """Patch-form networks for a LoadedModel, a list of networks or one network."""
    networks = getattr(networks_or_loaded_model, "networks", networks_or_loaded_model)
    if not isinstance(networks, (list, tuple)):
        networks = [networks]
    if not networks:
        raise ValueError("no networks given")
    return [patch_network(network) for network in networks]


def _row_band(rows, height: int) -> tuple[int, int]:
    if rows is None:
        return 0, height
    if isinstance(rows, slice):
        start, stop, step = rows.indices(height)
        if step != 1:
            raise ValueError("rows must be a contiguous band (slice step 1)")
    else:
        start, stop = (int(r) for r in rows)
    if not 0 <= start < stop <= height:
        raise ValueError(f"rows ({start}, {stop}) must be a non-empty band inside 0..{height}")
    return start, stop


def predict_patches(image_normalized, networks_or_loaded_model, batch_size: int = 512, rows=None) -> np.ndarray:
    """Class probabilities of every pixel from its own 61x61 patch.

    Patches are views into the padded image (``sliding_window_view``); only one
    batch of them is copied at a time, so memory stays bounded for any image.

    Parameters
    ----------
    image_normalized : ndarray
        2-D image, already normalized as the model expects.
    networks_or_loaded_model : LoadedModel, network or list of networks
        DeepCell networks: Keras models in either form (dense-form weights are
        copied into a patch network) or ONNX Runtime networks (dense form).
        Several networks form an ensemble: their probabilities are averaged.
    batch_size : int
        Patches per network call. Memory grows by about 3 MB per patch (the
        first layers' 59x59x64 activations); with TensorFlow on CPU a batch
        of 4096 aborts the process (``std::bad_alloc``) on a 24 GB machine,
        while 512 is as fast as larger batches.
    rows : (int, int) or slice, optional
        Only predict this band ``[start, stop)`` of rows, e.g. to time a
        sample; patches still take their context from the whole image.

    Returns
    -------
    ndarray of float32
        ``(H, W, n_classes)``, or ``(stop - start, W, n_classes)`` with ``rows``.
    """
    image = np.asarray(image_normalized, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    networks = patch_networks(networks_or_loaded_model)
    height, width = image.shape
    start, stop = _row_band(rows, height)
    m = MARGIN
    # Same border handling as whole-image inference (nucleiseg.tiling), so the modes agree.
    padded = np.pad(image, m, mode="reflect" if min(height, width) > 1 else "edge")
    # windows[i, j] is the patch centred on image pixel (start + i, j); a view, no copy.
    windows = sliding_window_view(padded[start : stop + 2 * m], (PATCH, PATCH))
    n_pixels = (stop - start) * width
    n_classes = int(networks[0].output_shape[-1])
    total = np.zeros((n_pixels, n_classes), dtype=np.float32)
    for network in networks:
        for first in range(0, n_pixels, batch_size):
            index = np.arange(first, min(first + batch_size, n_pixels))
            # Fancy indexing copies just this batch of patches.
            batch = windows[index // width, index % width][..., None]
            prediction = np.asarray(network.predict_on_batch(batch), dtype=np.float32)
            total[index] += prediction.reshape(len(index), n_classes)
    total /= len(networks)
    return total.reshape(stop - start, width, n_classes)


class DeepCell(ModelType):
    name = "deepcell"
    margin = MARGIN
    inference_modes = (DENSE, PATCH_MODE)
    # DeepCell's published defaults: SGD (momentum 0.9, Nesterov), learning rate 0.01.
    default_optimizer = "sgd"
    default_learning_rate = 0.01
    default_card = MODELS_DIR / "deepcell" / "deepcell-dsb2018.json"
    specialist_cards = {BBBC039_LIKE: MODELS_DIR / "deepcell" / "deepcell-bbbc039.json"}
    published = {"f1": 0.78, "error_070": 0.140}

    def build(self, spec: dict):
        # Always the dense form: it shares its weights with the patch form.
        return build_deepcell(dense=spec.get("form", "dense") == "dense", n_classes=int(spec.get("n_classes", 3)))

    def custom_objects(self) -> dict:
        return {"DilatedMaxPool2D": dilated_max_pool_layer()}

    def predict(self, model, normalized, tile=1024, overlap=64, batch_size=1, mode=None):
        if self.check_mode(mode) == PATCH_MODE:
            # Patches go 512 at a time; the tile batch size would be far too small for them.
            return predict_patches(normalized, model)
        return super().predict(model, normalized, tile=tile, overlap=overlap, batch_size=batch_size)


MODEL_TYPE = DeepCell()

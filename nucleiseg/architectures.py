"""Network architectures in plain Keras 3 (TensorFlow, JAX or PyTorch backend).

Two families, both predicting three classes per pixel (background, interior,
boundary; see :mod:`nucleiseg.targets`):

* :func:`build_unet`: the U-Net of Caicedo et al. (2019).
* :func:`build_deepcell`: the 61x61 patch classifier of Van Valen et al. (2016),
  either as a patch network (one prediction per 61x61 patch) or as the same
  weights rewritten with dilated convolutions and dilated pooling so that one
  pass over an image yields every pixel's patch prediction.
"""

from __future__ import annotations

import keras
from keras import layers, ops

UNET_LEVELS = 4  # three max-pools
# Keras' default 0.99 leaves the moving statistics far from the data after the
# few thousand steps CPU training affords; 0.9 tracks them within tens of steps.
BN_MOMENTUM = 0.9
DEEPCELL_PATCH = 61
DEEPCELL_MARGIN = DEEPCELL_PATCH // 2  # context needed on each side of a pixel


def _conv_bn_relu(x, filters, kernel, name, dilation=1, padding="same", regularizer=None):
    x = layers.Conv2D(
        filters,
        kernel,
        padding=padding,
        dilation_rate=dilation,
        use_bias=False,  # batch normalization supplies the offset
        kernel_regularizer=regularizer,
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def build_unet(base_filters: int = 64, n_classes: int = 3, input_channels: int = 1) -> keras.Model:
    """Build the paper's U-Net.

    Parameters
    ----------
    base_filters : int
        Width of the top level; doubled at each of the three lower levels.
        64 gives the paper's model (about 7.8 M parameters).
    n_classes : int
        Output classes (softmax over the last axis).
    input_channels : int
        Channels of the input image.

    Returns
    -------
    keras.Model
        Maps ``(batch, H, W, input_channels)`` to ``(batch, H, W, n_classes)``;
        H and W must be multiples of 8.
    """
    inputs = keras.Input((None, None, input_channels), name="image")
    x = inputs
    skips = []
    for level in range(UNET_LEVELS):
        width = base_filters * 2**level
        x = _conv_bn_relu(x, width, 3, f"enc{level}a")
        x = _conv_bn_relu(x, width, 3, f"enc{level}b")
        if level < UNET_LEVELS - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    for level in reversed(range(UNET_LEVELS - 1)):
        width = base_filters * 2**level
        x = layers.UpSampling2D(2, name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_bn_relu(x, width, 3, f"dec{level}a")
        x = _conv_bn_relu(x, width, 3, f"dec{level}b")
    # float32 softmax keeps probabilities exact under mixed precision.
    outputs = layers.Conv2D(n_classes, 1, activation="softmax", dtype="float32", name="classes")(x)
    return keras.Model(inputs, outputs, name=f"unet{base_filters}")


class DilatedMaxPool2D(layers.Layer):
    """2x2 max-pool with stride 1 over taps ``dilation`` pixels apart.

    This is what a stride-2 pool becomes when a patch network is evaluated
    densely: output pixel (i, j) is the max of x[i, j], x[i+d, j], x[i, j+d],
    x[i+d, j+d]; the map shrinks by ``d`` in each direction.
    """

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


def build_deepcell(
    dense: bool = False,
    n_classes: int = 3,
    input_channels: int = 1,
    l2: float = 1e-5,
) -> keras.Model:
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
    reg = keras.regularizers.L2(l2) if l2 else None
    shape = (None, None, input_channels) if dense else (DEEPCELL_PATCH, DEEPCELL_PATCH, input_channels)
    inputs = keras.Input(shape, name="image")
    dilation = 1

    def pool(x, name):
        nonlocal dilation
        if dense:
            x = DilatedMaxPool2D(dilation, name=name)(x)
        else:
            x = layers.MaxPooling2D(2, name=name)(x)
        dilation *= 2
        return x

    def conv(x, filters, kernel, name):
        d = dilation if dense else 1
        return _conv_bn_relu(x, filters, kernel, name, dilation=d, padding="valid", regularizer=reg)

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
    x = _conv_bn_relu(x, 200, 1, "fc1", regularizer=reg)
    outputs = layers.Conv2D(
        n_classes, 1, activation="softmax", kernel_regularizer=reg, dtype="float32", name="classes"
    )(x)
    return keras.Model(inputs, outputs, name="deepcell_dense" if dense else "deepcell_patch")


def build(spec: dict) -> keras.Model:
    """Build a model from an architecture record as stored in a model card.

    ``{"name": "unet", "base_filters": 32}`` or ``{"name": "deepcell"}``;
    DeepCell models are always built in the dense (whole-image) form here,
    which shares its weights with the patch form.
    """
    name = spec.get("name")
    if name == "unet":
        return build_unet(base_filters=int(spec.get("base_filters", 64)), n_classes=int(spec.get("n_classes", 3)))
    if name == "deepcell":
        return build_deepcell(dense=spec.get("form", "dense") == "dense", n_classes=int(spec.get("n_classes", 3)))
    raise ValueError(f"unknown architecture {name!r}; expected 'unet' or 'deepcell'")


def input_geometry(spec: dict) -> tuple[int, int]:
    """(margin, multiple) an image needs before entering the network.

    ``margin`` pixels of context are added on every side and removed from the
    output (DeepCell's dense form consumes them); the padded size must be a
    multiple of ``multiple`` (the U-Net's three pools).
    """
    if spec.get("name") == "deepcell":
        return DEEPCELL_MARGIN, 1
    return 0, 2 ** (UNET_LEVELS - 1)

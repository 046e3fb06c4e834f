"""The U-Net of Caicedo et al. (2019): three-class pixel classifier with four levels."""

from __future__ import annotations

from ..cards import MODELS_DIR, BBBC039_LIKE
from ..layers import conv_bn_relu, softmax_classes
from .base import ModelType

LEVELS = 4  # three max-pools


def build_unet(base_filters: int = 64, n_classes: int = 3, input_channels: int = 1):
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
    import keras
    from keras import layers

    inputs = keras.Input((None, None, input_channels), name="image")
    x = inputs
    skips = []
    for level in range(LEVELS):
        width = base_filters * 2**level
        x = conv_bn_relu(x, width, 3, f"enc{level}a")
        x = conv_bn_relu(x, width, 3, f"enc{level}b")
        if level < LEVELS - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    for level in reversed(range(LEVELS - 1)):
        width = base_filters * 2**level
        x = layers.UpSampling2D(2, name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = conv_bn_relu(x, width, 3, f"dec{level}a")
        x = conv_bn_relu(x, width, 3, f"dec{level}b")
    return keras.Model(inputs, softmax_classes(x, n_classes), name=f"unet{base_filters}")


#: Width when none is given: ``python -m benchmark widths`` found 16 best at equal training
#: wall-clock on this project's CPUs (docs/GENERAL-UNET.md, *Which width for a training budget*); the shipped U-Nets are 16.
DEFAULT_WIDTH = 16


class UNet(ModelType):
    name = "unet"
    multiple = 2 ** (LEVELS - 1)
    default_card = MODELS_DIR / "unet" / "unet-dsb2018.json"
    specialist_cards = {BBBC039_LIKE: MODELS_DIR / "unet" / "unet-bbbc039.json"}
    published = {"f1": 0.85, "error_070": 0.081}

    def architecture(self, width: int | None = None) -> dict:
        return {"name": self.name, "base_filters": int(width or DEFAULT_WIDTH), "n_classes": len(self.classes)}

    def build(self, spec: dict):
        return build_unet(base_filters=int(spec.get("base_filters", 64)), n_classes=int(spec.get("n_classes", 3)))


MODEL_TYPE = UNet()

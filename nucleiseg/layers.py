"""Keras building blocks shared by the model types (imported only when a network is built)."""

from __future__ import annotations

# Keras' default 0.99 leaves the moving statistics far from the data after the
# few thousand steps CPU training affords; 0.9 tracks them within tens of steps.
BN_MOMENTUM = 0.9


def conv_bn_relu(x, filters, kernel, name, dilation=1, padding="same", regularizer=None):
    """Convolution without bias, batch normalization, ReLU (the unit both networks are made of)."""
    from keras import layers

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


def softmax_classes(x, n_classes: int, regularizer=None):
    """The 1x1 softmax output layer; float32 keeps probabilities exact under mixed precision."""
    from keras import layers

    return layers.Conv2D(n_classes, 1, activation="softmax", kernel_regularizer=regularizer,
                         dtype="float32", name="classes")(x)

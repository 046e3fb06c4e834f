"""DeepCell's patch-mode inference, exactly as published (Van Valen et al., 2016).

The published method classifies every pixel by cutting the 61x61 patch
centred on it and running the patch network on that patch. This module does
precisely that, with the weights of a trained network (stored in the dense,
whole-image form; see :func:`nucleiseg.architectures.build_deepcell`) copied
into the patch form. It is the reference the fast dense form is checked
against, and the baseline for timing it; the two give the same probabilities
up to floating-point rounding.

Patches are views into the padded image (``sliding_window_view``); only one
batch of them is ever copied, so memory stays bounded for any image size.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .architectures import DEEPCELL_MARGIN, DEEPCELL_PATCH, build_deepcell


def _is_patch_form(network) -> bool:
    return tuple(network.input_shape[1:3]) == (DEEPCELL_PATCH, DEEPCELL_PATCH)


def patch_network(network):
    """The patch form of a DeepCell network (the network itself if already one).

    Parameters
    ----------
    network : keras.Model
        A DeepCell network in either form.

    Returns
    -------
    keras.Model
        Maps ``(B, 61, 61, C)`` patches to ``(B, 1, 1, n_classes)``, holding
        copies of ``network``'s weights (both forms have the same tensors).
    """
    if _is_patch_form(network):
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

    Parameters
    ----------
    image_normalized : ndarray
        2-D image, already normalized as the model expects.
    networks_or_loaded_model : LoadedModel, keras.Model or list of keras.Model
        DeepCell networks in either form (dense-form weights are copied into a
        patch network). Several networks form an ensemble: their
        probabilities are averaged.
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
        ``(H, W, n_classes)``, or ``(stop - start, W, n_classes)`` with
        ``rows``.
    """
    image = np.asarray(image_normalized, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    networks = patch_networks(networks_or_loaded_model)
    height, width = image.shape
    start, stop = _row_band(rows, height)
    m = DEEPCELL_MARGIN
    # Same border handling as whole-image inference (nucleiseg.tiling), so the modes agree.
    padded = np.pad(image, m, mode="reflect" if min(height, width) > 1 else "edge")
    # windows[i, j] is the patch centred on image pixel (start + i, j); a view, no copy.
    windows = sliding_window_view(padded[start : stop + 2 * m], (DEEPCELL_PATCH, DEEPCELL_PATCH))
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

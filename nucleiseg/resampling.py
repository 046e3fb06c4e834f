"""Resizing label images by nearest neighbour, the same in every scikit-image version.

``skimage.transform.resize(..., order=0)`` changed in scikit-image 0.19: earlier versions map
output pixels to input pixels with another convention, so a label image resized under
CellProfiler 4.2.8 (scikit-image 0.18) came out shifted by a pixel at many edges against
CellProfiler 5's. Each output pixel here takes the input pixel under its centre, which is what
scikit-image 0.19 and later compute; the result no longer depends on the installed version.
"""

from __future__ import annotations

import numpy as np


def source_indices(n_in: int, n_out: int) -> np.ndarray:
    """For each of ``n_out`` output pixels, the index of the input pixel under its centre."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be at least 1, got {n_in} -> {n_out}")
    centres = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out)
    return np.minimum(centres.astype(np.intp), n_in - 1)


def resize_labels(labels: np.ndarray, shape: tuple) -> np.ndarray:
    """``labels`` (2-D, or 2-D with trailing channels) resized to ``shape`` by nearest neighbour.

    Parameters
    ----------
    labels : ndarray
        Label image (any dtype); values are copied, never blended, so instance labels stay
        instance labels.
    shape : tuple of int
        ``(height, width)`` of the result.

    Returns
    -------
    ndarray
        Same dtype as ``labels``, of shape ``shape`` plus any trailing channels.
    """
    labels = np.asarray(labels)
    if labels.ndim < 2 or len(shape) != 2:
        raise ValueError(f"resize_labels needs a 2-D image and a 2-D shape, got {labels.shape} -> {tuple(shape)}")
    rows = source_indices(labels.shape[0], int(shape[0]))
    cols = source_indices(labels.shape[1], int(shape[1]))
    return labels[rows[:, None], cols]

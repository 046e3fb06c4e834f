"""Training-time augmentation of (image, labels) crops.

Geometric transforms move the image and its instance labels together;
targets are derived from the transformed labels afterwards, so boundaries
stay consistent with the deformed nuclei.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def random_crop(image: np.ndarray, labels: np.ndarray, size: int, margin: int, rng: np.random.Generator):
    """A random crop of ``size + 2 * margin`` pixels of both arrays.

    The central ``size`` x ``size`` part lies inside the image (which is
    reflect-padded, labels zero-padded, when smaller than the crop); the
    ``margin`` around it is context for networks that consume it.
    """
    height, width = labels.shape
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        labels = np.pad(labels, ((0, pad_h), (0, pad_w)))
        image = np.pad(image, ((0, pad_h), (0, pad_w)), mode="reflect")
        height, width = labels.shape
    y = int(rng.integers(0, height - size + 1))
    x = int(rng.integers(0, width - size + 1))
    if margin:
        image = np.pad(image, margin, mode="reflect")
        labels = np.pad(labels, margin)
    extent = size + 2 * margin
    return image[y : y + extent, x : x + extent], labels[y : y + extent, x : x + extent]


def flip_rotate(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    """One of the eight flips/90-degree rotations, the same for both arrays."""
    k = int(rng.integers(0, 4))
    image, labels = np.rot90(image, k), np.rot90(labels, k)
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def scale_intensity(image: np.ndarray, rng: np.random.Generator, gain=(0.6, 1.4), offset=(-0.1, 0.1)):
    """Illumination change on a normalized image: ``image * gain + offset``."""
    return image * np.float32(rng.uniform(*gain)) + np.float32(rng.uniform(*offset))


def elastic_deform(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, alpha: float = 30.0, sigma: float = 6.0):
    """Smooth random displacement field applied to both arrays.

    The image is resampled linearly, the labels by nearest neighbour so that
    they stay instance labels. Both arrays must have the same shape.
    """
    if image.shape != labels.shape:
        raise ValueError("elastic_deform needs image and labels of the same shape")
    shape = labels.shape
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma) * alpha
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma) * alpha
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    coords = np.array([yy + dy, xx + dx])
    warped_image = ndimage.map_coordinates(image, coords, order=1, mode="reflect").astype(np.float32)
    # Same border mode as the image: nuclei reflected into view must keep their labels.
    warped_labels = ndimage.map_coordinates(labels, coords, order=0, mode="reflect").astype(labels.dtype)
    return warped_image, warped_labels

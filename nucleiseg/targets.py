"""Three-class pixel targets from instance labels, shared by every network.

Definition used everywhere in this project: a pixel of a nucleus is
*boundary* when it lies within ``width`` pixels (4-connected steps) of a pixel
that does not belong to the same nucleus (background or another nucleus, the
image edge excluded); every other nucleus pixel is *interior*; the rest is
*background*. With ``width=1`` this is ``skimage.segmentation.find_boundaries``
with ``mode="inner"``. Post-processing grows interiors back over this ring.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
CLASS_NAMES = ("background", "interior", "boundary")
DEFAULT_CLASS_WEIGHTS = (1.0, 1.0, 10.0)


def three_class_targets(labels: np.ndarray, width: int = 1) -> np.ndarray:
    """Class map (uint8: 0 background, 1 interior, 2 boundary) of an instance label image.

    Parameters
    ----------
    labels : ndarray of int
        2-D instance labels, 0 = background; labels need not be consecutive.
    width : int
        Boundary thickness in pixels (>= 1).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    if width < 1:
        raise ValueError(f"boundary width must be >= 1, got {width}")
    boundary = find_boundaries(labels, connectivity=1, mode="inner")
    if width > 1:
        # Grow the ring inwards only, never across into another nucleus.
        grown = ndimage.binary_dilation(boundary, iterations=width - 1)
        boundary = grown & (labels > 0)
    classes = np.zeros(labels.shape, dtype=np.uint8)
    classes[labels > 0] = INTERIOR
    classes[boundary & (labels > 0)] = BOUNDARY
    return classes


def class_weight_map(classes: np.ndarray, weights=DEFAULT_CLASS_WEIGHTS) -> np.ndarray:
    """Per-pixel loss weights (float32) for a class map."""
    return np.asarray(weights, dtype=np.float32)[classes]


def small_nucleus_weight_map(labels: np.ndarray, area_below: int, factor: float) -> np.ndarray:
    """Per-pixel loss factors (float32): ``factor`` on the pixels of nuclei smaller than ``area_below``, else 1.

    Small nuclei are few pixels of a crop, so a per-pixel loss barely sees them; weighting them up
    asks the network to find them. Nuclei cut by the crop's edge are left at 1: they look small
    only because the crop cut them.

    Parameters
    ----------
    labels : ndarray of int
        2-D instance labels of the crop (after augmentation), 0 = background.
    area_below : int
        Area in pixels under which a whole nucleus counts as small.
    factor : float
        Weight of their pixels (>= 1; 1 changes nothing).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    if factor < 1 or area_below < 1:
        raise ValueError(f"small-nucleus weight must be >= 1 and its area >= 1 px, got {factor} and {area_below}")
    areas = np.bincount(labels.ravel())
    small = areas < area_below
    small[0] = False
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        small[edge] = False
    return np.where(small[labels], np.float32(factor), np.float32(1.0))

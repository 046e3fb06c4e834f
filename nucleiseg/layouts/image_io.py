"""Reading and writing single image files: greyscale images, instance-label images, TIFF output.

Every reader names the file in its ValueError, so that data checks can list bad files.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from scipy import ndimage
from skimage.segmentation import relabel_sequential

#: Largest label a 16-bit mask can hold.
MAX_LABEL = np.iinfo(np.uint16).max


def read_array(path: Path) -> np.ndarray:
    """The pixels of an image file as stored (dtype and axes untouched).

    For callers that need the stored form itself (e.g. the dtype a label file was written
    with); :func:`read_image` and :func:`read_labels` check and normalise it.

    Parameters
    ----------
    path : Path
        Any file imageio reads.

    Returns
    -------
    ndarray
        The array as the file holds it.

    Raises
    ------
    ValueError
        Naming the file and the reader's error, when it cannot be read.
    """
    try:
        return np.asarray(iio.imread(path))
    except Exception as error:  # imageio raises many types for unreadable files
        raise ValueError(f"cannot read {path}: {type(error).__name__}: {error}") from error


def _squeeze_singletons(array: np.ndarray) -> np.ndarray:
    # (H, W, 1) and (1, H, W) are greyscale written with an explicit channel or plane axis.
    while array.ndim > 2 and 1 in (array.shape[0], array.shape[-1]):
        array = array[0] if array.shape[0] == 1 else array[..., 0]
    return array


def _describe_not_2d(path: Path, array: np.ndarray, what: str) -> str:
    """Why an array is no 2-D greyscale ``what``, in words naming the file (colour, stack ...)."""
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        return (
            f"{path}: expected a single-channel greyscale {what}, got a colour image of shape "
            f"{array.shape} ({array.shape[-1]} channels); convert it to one channel"
        )
    if array.ndim >= 3:
        return f"{path}: expected a 2-D greyscale {what}, got a {array.ndim}-D array of shape {array.shape} (a stack?)"
    return f"{path}: expected a 2-D greyscale {what}, got shape {array.shape}"


def read_image(path: Path) -> np.ndarray:
    """A 2-D greyscale image in its stored dtype.

    Parameters
    ----------
    path : Path
        PNG or TIFF file.

    Returns
    -------
    ndarray
        2-D array; singleton channel or plane axes are dropped.

    Raises
    ------
    ValueError
        Naming the file when it is unreadable, colour, not 2-D, or has NaN or
        infinite pixels.
    """
    image = _squeeze_singletons(read_array(path))
    if image.ndim != 2:
        raise ValueError(_describe_not_2d(path, image, "image"))
    if image.dtype == bool:
        image = image.astype(np.uint8)
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"{path}: unsupported pixel type {image.dtype}")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        bad = int(np.count_nonzero(~np.isfinite(image)))
        raise ValueError(f"{path}: {bad} pixel(s) are NaN or infinite")
    return image


def colour_to_labels(rgb: np.ndarray) -> np.ndarray:
    """Instance labels from a colour-coded label matrix (BBBC039's mask format).

    Each connected component (8-connected, as ``skimage.measure.label``) of
    pixels sharing one colour is one nucleus; black (all channels 0) is
    background. An alpha channel is ignored. A 2-D array is treated the same
    way, each distinct value being a colour.

    Parameters
    ----------
    rgb : ndarray
        ``(H, W, 3)``, ``(H, W, 4)`` or ``(H, W)`` integer array.

    Returns
    -------
    ndarray of int32
        ``(H, W)`` labels, consecutive from 1 in raster order of the colours.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 3:
        rgb = rgb[..., :3].astype(np.int64)
        code = (rgb[..., 0] << 32) | (rgb[..., 1] << 16) | rgb[..., 2]
    elif rgb.ndim == 2:
        code = rgb.astype(np.int64)
    else:
        raise ValueError(f"expected an (H, W, 3) colour or (H, W) label matrix, got shape {rgb.shape}")
    labels = np.zeros(code.shape, np.int32)
    structure = np.ones((3, 3), bool)
    colours, inverse = np.unique(code, return_inverse=True)
    inverse = inverse.reshape(code.shape)
    slices = ndimage.find_objects(inverse + 1)
    count = 0
    for index, (colour, window) in enumerate(zip(colours, slices)):
        if colour == 0 or window is None:
            continue
        components, n = ndimage.label(inverse[window] == index, structure=structure)
        target = labels[window]
        target[components > 0] = components[components > 0] + count
        count += n
    return labels


def read_labels(path: Path) -> np.ndarray:
    """A 2-D instance-label image as int32 (labels kept as stored, not renumbered).

    Integer greyscale files are label matrices; three- or four-channel files
    are colour-coded label matrices (BBBC039) decoded by :func:`colour_to_labels`.

    Parameters
    ----------
    path : Path
        PNG or TIFF file.

    Returns
    -------
    ndarray of int32
        2-D labels, 0 background.

    Raises
    ------
    ValueError
        Naming the file when it is unreadable, 3-D, non-integer or negative.
    """
    labels = _squeeze_singletons(read_array(path))
    if labels.ndim == 3 and labels.shape[-1] in (3, 4):
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{path}: colour-coded mask must hold integers, got {labels.dtype}")
        return colour_to_labels(labels)
    if labels.ndim != 2:
        raise ValueError(_describe_not_2d(path, labels, "label image"))
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: label image must hold integers, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{path}: label image holds negative values (min {labels.min()})")
    if labels.size and int(labels.max()) > np.iinfo(np.int32).max:
        raise ValueError(f"{path}: label values exceed the int32 range")
    return labels.astype(np.int32, copy=False)


def consecutive_labels(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..N in order of their value (0 stays background).

    Parameters
    ----------
    labels : ndarray
        Integer instance labels, values need not be consecutive.

    Returns
    -------
    ndarray of int32
        The same objects labelled 1..N.
    """
    return relabel_sequential(np.asarray(labels, dtype=np.int32))[0]


def write_tiff(path: Path, array: np.ndarray) -> None:
    """Write a 2-D array as an uncompressed single-page TIFF (dtype kept).

    Parameters
    ----------
    path : Path
        Destination; missing parent folders are created.
    array : ndarray
        2-D image or labels.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array, photometric="minisblack")

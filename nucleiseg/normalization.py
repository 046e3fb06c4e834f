"""Intensity normalization, identical in training and inference.

A normalization is described by a small dict stored in every model card, e.g.
``{"method": "percentile", "low": 0.1, "high": 99.9}`` or ``{"method": "robust",
"foreground": 0.5}`` (:func:`robust_normalize`); :func:`normalize` applies it.
"""

from __future__ import annotations

import numpy as np

DEFAULT = {"method": "percentile", "low": 0.1, "high": 99.9}
#: The default's (low, high) percentiles, for command lines.
DEFAULT_PERCENTILES = (DEFAULT["low"], DEFAULT["high"])
#: Methods a training command may name (``deepcell`` is DeepCell's own scheme, see its model type).
METHODS = ("percentile", "robust", "deepcell")


def spec_for(method: str, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> dict:
    """The card's normalization dict for a method named on a command line.

    Raises
    ------
    ValueError
        For an unknown method, or percentiles outside ``0 <= low < high <= 100``.
    """
    if method == "percentile":
        low, high = percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles {low:g} {high:g}: need 0 <= LOW < HIGH <= 100")
        return {"method": "percentile", "low": float(low), "high": float(high)}
    if method == "robust":
        return {"method": "robust", "foreground": 0.5}
    if method == "deepcell":
        return {"method": "deepcell", "window": 61}
    raise ValueError(f"unknown normalization method {method!r}; expected one of {', '.join(METHODS)}")


def percentile_normalize(image: np.ndarray, low: float = 0.1, high: float = 99.9,
                         inside: np.ndarray | None = None) -> np.ndarray:
    """Scale so that the ``low`` and ``high`` percentiles map to 0 and 1.

    Values outside are kept (not clipped). A constant image maps to zeros.

    Parameters
    ----------
    image : ndarray
        2-D greyscale image of any numeric dtype.
    low, high : float
        Percentiles in [0, 100], ``low < high``.
    inside : ndarray of bool, optional
        Take the percentiles over these pixels only (all pixels when None or empty).

    Returns
    -------
    ndarray of float32, same shape.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"normalization percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(pixels_inside(image, inside), [low, high])
    if hi - lo < 1e-12:
        return np.zeros_like(image)
    return (image - lo) / np.float32(hi - lo)


def robust_normalize(image: np.ndarray, foreground: float = 0.5, inside: np.ndarray | None = None) -> np.ndarray:
    """Scale by the background and the typical nucleus, not by the brightest pixels.

    The pixels are split into background and foreground by Otsu's threshold on their
    logarithm (so that a few very bright objects do not pull the threshold up to them);
    the background's median maps to 0 and the foreground's median to ``foreground``. A few
    bright objects change neither median much, where they set the 99.9th percentile that
    :func:`percentile_normalize` scales by and so dim every other nucleus. Values are not
    clipped; an image without two intensity levels maps to zeros.

    Parameters
    ----------
    image : ndarray
        2-D greyscale image of any numeric dtype.
    foreground : float
        Value the median foreground pixel maps to (0.5: where nuclei typically lie after
        percentile normalization).
    inside : ndarray of bool, optional
        Take the statistics over these pixels only (all pixels when None or empty).

    Returns
    -------
    ndarray of float32, same shape.
    """
    from skimage.filters import threshold_otsu

    if not foreground > 0:
        raise ValueError(f"robust normalization: foreground level must be positive, got {foreground}")
    image = np.asarray(image, dtype=np.float32)
    pixels = pixels_inside(image, inside).ravel()
    logs = np.log1p(pixels - pixels.min())
    if logs.max() - logs.min() < 1e-12:
        return np.zeros_like(image)
    threshold = threshold_otsu(logs)
    background, nuclei = pixels[logs <= threshold], pixels[logs > threshold]
    if not len(nuclei) or not len(background):
        return np.zeros_like(image)
    lo, hi = float(np.median(background)), float(np.median(nuclei))
    if hi - lo < 1e-12:
        return np.zeros_like(image)
    return (image - np.float32(lo)) * np.float32(foreground / (hi - lo))


def check_mask(mask, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` as a boolean array of ``shape`` (an image's height and width), or ValueError."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"mask shape {mask.shape} differs from image shape {tuple(shape)}")
    return mask


def pixels_inside(image: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """The pixels the statistics are taken over: those inside the mask, or all when it is None or empty."""
    if inside is None or not inside.any():
        return image
    return image[inside]


def normalize(image: np.ndarray, spec: dict | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """Apply the normalization described by ``spec`` (default: percentile 0.1/99.9).

    With a boolean ``mask`` (e.g. a CellProfiler image mask), the percentiles or the
    median are taken over the pixels inside it only, so what lies outside (a well's
    rim, a bright artefact) does not change the scaling; every pixel is still scaled.
    """
    spec = dict(DEFAULT if spec is None else spec)
    method = spec.pop("method", "percentile")
    if mask is not None:
        mask = check_mask(mask, np.shape(image))
    methods = _methods()
    if method not in methods:
        raise ValueError(f"unknown normalization method {method!r}; expected one of {', '.join(repr(m) for m in methods)}")
    return methods[method](image, **spec, inside=mask)


def _methods() -> dict:
    """Normalization methods by the name cards give them; a network's own scheme lives with its model type."""
    from .model_types.deepcell import deepcell_normalize

    return {"percentile": percentile_normalize, "robust": robust_normalize, "deepcell": deepcell_normalize}

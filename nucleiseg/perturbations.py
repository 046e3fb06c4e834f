"""Deterministic perturbations of raw images: the robustness benchmark's stand-ins for unseen images.

Each perturbation maps a raw greyscale image and its instance labels to a
changed pair of the same dtype (values clipped to what the dtype holds and
rounded for integer images, so dimming also costs grey levels, as on a real
camera). Only the rescalings change the labels, which they resample by nearest
neighbour. Randomness (noise, where an artefact lands) comes from a generator
seeded by the perturbation and the image's stem, so every run perturbs alike.

The signal perturbations work on the image's intensity relative to its own
range, ``t = (x - min) / (max - min)``, and map back with the same range.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
from scipy import ndimage
from skimage.transform import resize

from nucleiseg.resampling import resize_labels


def _relative(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    return (values - low) / max(high - low, 1e-12), low, high


def _back(t: np.ndarray, low: float, high: float, dtype) -> np.ndarray:
    return _to_dtype(low + t * (high - low), dtype)


def _to_dtype(values: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def dim_gamma(image, labels, rng):
    """A quarter of the signal, on a gamma-1.5 curve (dim, non-linear staining)."""
    t, low, high = _relative(image)
    return _back(0.25 * t**1.5, low, high, image.dtype), labels


def low_contrast(image, labels, rng):
    """Signal squeezed into 30 % of the range above a raised background."""
    t, low, high = _relative(image)
    return _back(0.4 + 0.3 * t, low, high, image.dtype), labels


def noise(image, labels, rng):
    """Shot noise at 40 photons per full range, then Gaussian read noise of 2 % of the range."""
    t, low, high = _relative(image)
    noisy = rng.poisson(t * 40.0) / 40.0 + rng.normal(0.0, 0.02, t.shape)
    return _back(noisy, low, high, image.dtype), labels


def blur(image, labels, rng):
    """Gaussian blur of sigma 2 pixels (defocus)."""
    return _to_dtype(ndimage.gaussian_filter(np.asarray(image, np.float64), 2.0, mode="reflect"), image.dtype), labels


def _rescale(image, labels, factor: float):
    shape = tuple(max(1, int(round(n * factor))) for n in labels.shape)
    pixels = resize(np.asarray(image, np.float64), shape, order=1, mode="reflect", preserve_range=True,
                    anti_aliasing=factor < 1)
    return _to_dtype(pixels, image.dtype), resize_labels(labels, shape)


def half_scale(image, labels, rng):
    """Half the size (a lower magnification): image anti-aliased, labels by nearest neighbour."""
    return _rescale(image, labels, 0.5)


def double_scale(image, labels, rng):
    """Twice the size (a higher magnification)."""
    return _rescale(image, labels, 2.0)


def quadruple_scale(image, labels, rng):
    """Four times the size: nuclei far larger than any the model trained on (a high magnification
    or large nuclei); labels by nearest neighbour."""
    return _rescale(image, labels, 4.0)


def uneven_illumination(image, labels, rng):
    """Illumination falling linearly from full on one side to 30 % on the other."""
    t, low, high = _relative(image)
    field = np.linspace(1.0, 0.3, t.shape[1])[None, :]
    return _back(t * field, low, high, image.dtype), labels


def mixed_brightness(image, labels, rng):
    """Half of the nuclei (a seeded choice) keep 15 % of their signal above the background.

    Dim nuclei beside bright ones (mixed cell populations, uneven staining): the bright half
    sets the normalization's scale. Background pixels do not change.
    """
    values = np.asarray(image, dtype=np.float64)
    background = labels == 0
    level = float(np.median(values[background])) if background.any() else float(values.min())
    ids = np.unique(labels)
    ids = ids[ids > 0]
    factors = np.ones(int(labels.max()) + 1)
    factors[rng.permutation(ids)[: ids.size // 2]] = 0.15
    return _to_dtype(level + (values - level) * factors[labels], image.dtype), labels


def bright_artefact(image, labels, rng):
    """A saturated disc (dust, debris) covering about 0.5 % of the field, somewhere in the background.

    It is not a nucleus: the labels stay as they are. Its brightness pulls the
    upper percentile that normalization scales by.
    """
    height, width = labels.shape
    radius = max(2.0, np.sqrt(0.005 * height * width / np.pi))
    yy, xx = np.mgrid[:height, :width]
    free = ndimage.distance_transform_edt(labels == 0) > radius
    candidates = np.flatnonzero(free) if free.any() else np.arange(labels.size)
    centre = int(rng.choice(candidates))
    cy, cx = divmod(centre, width)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    dtype = np.dtype(image.dtype)
    peak = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 4.0 * float(np.max(image))
    out = np.array(image, copy=True)
    out[disc & (labels == 0)] = peak
    return out, labels


#: Name -> perturbation, in report order.
PERTURBATIONS: dict[str, Callable] = {
    "dim_gamma": dim_gamma,
    "low_contrast": low_contrast,
    "noise": noise,
    "blur": blur,
    "scale_0.5x": half_scale,
    "scale_2x": double_scale,
    "uneven_illumination": uneven_illumination,
    "bright_artefact": bright_artefact,
    "mixed_brightness": mixed_brightness,
}


#: Perturbations run only when named (``--perturbations``), not by default: adding them to the
#: default set would change the settings of every earlier experiment folder, which then no longer
#: resumes, and the 4x copies cost 16 times the pixels.
EXTRA_PERTURBATIONS: dict[str, Callable] = {
    "scale_4x": quadruple_scale,
}
#: Every perturbation a name can ask for.
_BY_NAME: dict[str, Callable] = {**PERTURBATIONS, **EXTRA_PERTURBATIONS}


def check_names(names) -> list[str]:
    """``names`` as a list, or ValueError naming the unknown ones and the choices."""
    names = list(names)
    unknown = [name for name in names if name not in _BY_NAME]
    if unknown:
        raise ValueError(f"unknown perturbation(s) {', '.join(unknown)}; expected some of {', '.join(_BY_NAME)}")
    return names


def perturb(name: str, image: np.ndarray, labels: np.ndarray, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Apply perturbation ``name`` to one image and its labels, seeded by ``name`` and ``stem``."""
    (name,) = check_names([name])
    seed = int.from_bytes(hashlib.sha256(f"{name}/{stem}".encode()).digest()[:8], "little")
    return _BY_NAME[name](np.asarray(image), np.asarray(labels), np.random.default_rng(seed))

"""From class probabilities to nucleus instance labels (shared by every network)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage
from skimage.segmentation import expand_labels, relabel_sequential

from .normalization import check_mask
from .targets import BACKGROUND, BOUNDARY, INTERIOR


@dataclass(frozen=True)
class PostprocessSettings:
    """How probabilities become objects.

    Attributes
    ----------
    interior_threshold : float
        A pixel seeds a nucleus when its interior probability exceeds this.
    boundary_boost : float
        Boundary probability is multiplied by this before it competes with
        interior; values > 1 cut touching nuclei apart more eagerly.
    min_size : int
        Nuclei smaller than this many pixels (after growing) are removed.
    fill_holes : bool
        Fill holes inside each nucleus.
    dilation : int
        Pixels each seed grows back over the boundary ring (the ring the
        targets carved out); growth stays inside predicted foreground.
    foreground_threshold : float
        A pixel is predicted foreground when its interior plus boundary
        probability exceeds this. 0.5 means "more likely nucleus than
        background"; networks trained with a heavy boundary weight paint the
        boundary class a little outside the true edge, and a higher value
        pulls the grown outline back in.
    relative_min_size : float
        When > 0, the minimum size adapts to the image: an object is removed
        only when it is smaller than both ``min_size`` and this fraction of the
        median area of the objects found in the image. A fixed ``min_size``
        tuned on 20x fields deletes whole populations of real nuclei at lower
        magnification, where every nucleus is small; relative to the image's
        own nuclei, debris is still dropped there and real nuclei are kept.
        0 keeps ``min_size`` as a fixed limit.
    """

    interior_threshold: float = 0.5
    boundary_boost: float = 1.0
    min_size: int = 15
    fill_holes: bool = True
    dilation: int = 2
    foreground_threshold: float = 0.5
    relative_min_size: float = 0.0

    def __post_init__(self):
        if not 0.0 < self.interior_threshold < 1.0:
            raise ValueError(f"interior_threshold must be in (0, 1), got {self.interior_threshold}")
        if not 0.0 < self.foreground_threshold < 1.0:
            raise ValueError(f"foreground_threshold must be in (0, 1), got {self.foreground_threshold}")
        if self.boundary_boost <= 0:
            raise ValueError(f"boundary_boost must be > 0, got {self.boundary_boost}")
        if self.min_size < 0 or self.dilation < 0:
            raise ValueError("min_size and dilation must be >= 0")
        if not 0.0 <= self.relative_min_size < 1.0:
            raise ValueError(f"relative_min_size must be in [0, 1), got {self.relative_min_size}")

    def size_limit(self, areas: np.ndarray) -> float:
        """The minimum object area (pixels) for an image whose objects have ``areas``."""
        if self.relative_min_size and areas.size:
            return min(float(self.min_size), self.relative_min_size * float(np.median(areas)))
        return float(self.min_size)

    def for_zoom(self, factor: float) -> "PostprocessSettings":
        """These settings for an image ``1 / factor`` times the size of the one they are tuned for.

        Pixel distances (``dilation``) are divided by ``factor`` and areas (``min_size``) by its
        square; thresholds and the relative size limit have no unit and stay.
        """
        if not factor > 0:
            raise ValueError(f"zoom factor must be > 0, got {factor}")
        return replace(self, dilation=int(round(self.dilation / factor)), min_size=int(round(self.min_size / factor**2)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PostprocessSettings":
        """Settings from a dict such as a model card's ``postprocess`` field.

        Missing keys keep their defaults, so cards written before a setting
        existed still load; unknown keys raise ValueError naming them.
        """
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown post-processing settings: {', '.join(unknown)}")
        return cls(**values)


def probabilities_to_labels(probabilities: np.ndarray, settings: PostprocessSettings | None = None) -> np.ndarray:
    """Instance labels (int32, consecutive from 1) from a ``(H, W, 3)`` probability map.

    Seeds are 4-connected components of pixels whose interior probability
    exceeds both the threshold and the boosted boundary probability; each
    seed grows by ``dilation`` pixels into foreground pixels, those whose
    interior + boundary probability exceeds ``foreground_threshold``.
    """
    settings = settings or PostprocessSettings()
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 3 or probabilities.shape[-1] != 3:
        raise ValueError(f"probabilities must have shape (H, W, 3), got {probabilities.shape}")
    p_int = probabilities[..., INTERIOR]
    p_bnd = probabilities[..., BOUNDARY]
    p_bg = probabilities[..., BACKGROUND]
    seeds = (p_int > settings.interior_threshold) & (p_int > settings.boundary_boost * p_bnd)
    labels, _ = ndimage.label(seeds)
    if settings.dilation:
        # As a share of the total, so maps that do not sum to 1 behave too (0.5: nucleus > background).
        nucleus = p_int + p_bnd
        foreground = nucleus > settings.foreground_threshold * (nucleus + p_bg)
        grown = expand_labels(labels, settings.dilation)
        labels = np.where(foreground | (labels > 0), grown, 0)
    if settings.fill_holes and labels.any():
        labels = _fill_holes_per_object(labels)
    if settings.min_size and labels.any():
        areas = np.bincount(labels.ravel())
        too_small = areas < settings.size_limit(areas[1:][areas[1:] > 0])
        too_small[0] = False
        labels = np.where(too_small[labels], 0, labels)
    return relabel_sequential(labels.astype(np.int32))[0]


def mask_probabilities(probabilities: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Probabilities with every pixel outside ``mask`` set to pure background.

    Post-processing then finds no nucleus there and cuts nuclei at the mask's
    edge, as CellProfiler's IdentifyPrimaryObjects does with a masked image.

    Parameters
    ----------
    probabilities : ndarray
        ``(H, W, 3)`` class probabilities.
    mask : ndarray of bool
        ``(H, W)``; True where the image is to be used.

    Returns
    -------
    ndarray
        A float32 copy of ``probabilities``.
    """
    mask = check_mask(mask, probabilities.shape[:2])
    masked = np.array(probabilities, dtype=np.float32)
    masked[~mask] = 0.0
    masked[~mask, BACKGROUND] = 1.0
    return masked


def _fill_holes_per_object(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    for index, window in enumerate(ndimage.find_objects(labels), start=1):
        if window is None:
            continue
        mask = labels[window] == index
        filled = ndimage.binary_fill_holes(mask)
        holes = filled & ~mask & (out[window] == 0)
        out[window][holes] = index
    return out

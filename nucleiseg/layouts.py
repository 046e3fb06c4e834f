"""Data layouts: where images and their instance-label masks live on disk.

Layout "ours": ``images/<stem>.<ext>`` and ``masks/<stem>.<ext>`` (16-bit
instance labels, same stem), optional ``train.txt`` / ``val.txt`` /
``test.txt`` listing stems one per line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


@dataclass(frozen=True)
class Pair:
    """One image and its ground-truth mask (``mask`` is None when absent)."""

    stem: str
    image: Path
    mask: Path | None


def _by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def read_split(data_dir: Path, split: str) -> list[str]:
    """Stems listed in ``<data_dir>/<split>.txt``."""
    path = Path(data_dir) / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def list_pairs(data_dir: Path, split: str | None = None) -> list[Pair]:
    """Image/mask pairs of a folder in our layout, optionally restricted to a split."""
    data_dir = Path(data_dir)
    images = _by_stem(data_dir / "images")
    masks = _by_stem(data_dir / "masks") if (data_dir / "masks").is_dir() else {}
    stems = read_split(data_dir, split) if split else sorted(images)
    missing = [s for s in stems if s not in images]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images listed in {split}.txt not found in {data_dir / 'images'}: {', '.join(missing[:5])}")
    return [Pair(s, images[s], masks.get(s)) for s in stems]


def read_image(path: Path) -> np.ndarray:
    """A 2-D greyscale image; raises ValueError naming the file otherwise."""
    try:
        image = iio.imread(path)
    except Exception as error:  # imageio raises many types
        raise ValueError(f"cannot read image {path}: {error}") from error
    if image.ndim == 3 and image.shape[-1] in (3, 4) and image.shape[-1] != image.shape[0]:
        raise ValueError(f"{path}: expected a greyscale image, got {image.shape[-1]} channels (shape {image.shape})")
    if image.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D greyscale image, got shape {image.shape}")
    return image


def read_labels(path: Path) -> np.ndarray:
    """A 2-D integer instance-label image; raises ValueError naming the file otherwise."""
    labels = read_image(path)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: label image must hold integers, got {labels.dtype}")
    return labels.astype(np.int32, copy=False)

"""Nucleus size: bringing an image's nuclei into the size range a model was trained on.

A network trained on nuclei of 10 to 50 pixels across misses or merges nuclei far outside that
range (a lower or higher magnification than any training image). A first pass finds the
image's typical nucleus; when its diameter lies outside the range recorded in the model card
(``nucleus_diameters``), the image is resampled so that it matches the training images' median
diameter, segmented again, and the result brought back to the image's own grid
(:func:`nucleiseg.inference.segment` with ``match_size=True``). Images inside the range run once.

Resampling to the median rather than to the nearest end of the range was chosen on training
images and their half- and double-size copies (``python -m benchmark conditions --split train``,
docs/GENERAL-UNET.md, *Nuclei of another size*).

    python -m nucleiseg.nucleus_size CARD [--data DIR] [--split train] [--subset-column COLUMN]

writes the record into a card that lacks it (cards written by training have it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nucleiseg import resampling

#: Fewer nuclei than this in the first pass say too little about their size to resample on.
MIN_NUCLEI = 3
#: Resampling factors are clipped to this range (4x the pixels at most, a quarter at least).
MIN_FACTOR, MAX_FACTOR = 0.5, 2.0
#: The part of the training images' typical diameters the range spans (percentiles).
RANGE_PERCENTILES = (10.0, 90.0)
#: How :func:`typical_diameter` estimates an image's nucleus size; a card's record names it, and a
#: record made another way (the median over objects, before the twenty-first session) is refused.
ESTIMATOR = "area_weighted_median"


@dataclass(frozen=True)
class DiameterRange:
    """Typical nucleus diameters (pixels) of a model's training images: ``low`` to ``high``, and their median."""

    low: float
    median: float
    high: float

    def __post_init__(self):
        values = (self.low, self.median, self.high)
        if not (all(np.isfinite(values)) and 0 < self.low <= self.median <= self.high):
            raise ValueError(f"nucleus diameters must satisfy 0 < low <= median <= high, got {values}")

    @classmethod
    def from_dict(cls, record: dict) -> "DiameterRange":
        """From a card's ``nucleus_diameters`` record (ValueError when a field is missing or wrong, or
        when it was measured otherwise than images are now, :data:`ESTIMATOR`)."""
        if isinstance(record, dict) and record.get("estimator") != ESTIMATOR:
            found = record.get("estimator", "the median over nuclei")
            raise ValueError(f"nucleus diameters measured as {found!r}, but images are measured as {ESTIMATOR!r}: "
                             "record them again with python -m nucleiseg.nucleus_size CARD")
        try:
            return cls(float(record["low"]), float(record["median"]), float(record["high"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"nucleus_diameters needs numbers low, median and high, got {record!r}") from error


def equivalent_diameters(labels: np.ndarray) -> np.ndarray:
    """The diameter of the disc of each object's area, for the labels present in ``labels``."""
    areas = np.bincount(np.asarray(labels).ravel())[1:]
    return 2.0 * np.sqrt(areas[areas > 0] / np.pi)


def typical_diameter(labels: np.ndarray, min_nuclei: int = MIN_NUCLEI) -> float | None:
    """The equivalent diameter of the object that the median object pixel belongs to (the
    area-weighted median); None with fewer than ``min_nuclei`` objects.

    Weighting by area keeps the estimate on the nuclei when a network far off its scale breaks
    them into many specks: the plain median over objects then reads the specks' size, and an
    image of large nuclei would be enlarged further (docs/GENERAL-UNET.md, *Nuclei of another size*).
    """
    diameters = np.sort(equivalent_diameters(labels))
    if len(diameters) < min_nuclei:
        return None
    covered = np.cumsum(diameters ** 2)  # proportional to the areas, in the order of the diameters
    return float(diameters[np.searchsorted(covered, covered[-1] / 2.0)])


def training_range(label_images, percentiles: tuple = RANGE_PERCENTILES) -> dict:
    """The card record of the typical diameters of ``label_images`` (images without nuclei skipped).

    Returns ``{"low", "median", "high", "percentiles", "images", "estimator"}``, diameters in pixels.
    """
    typical = [d for d in (typical_diameter(labels, min_nuclei=1) for labels in label_images) if d is not None]
    if not typical:
        raise ValueError("no nuclei in the training labels: no diameter range to record")
    low, median, high = np.percentile(typical, [percentiles[0], 50.0, percentiles[1]])
    return {"low": round(float(low), 2), "median": round(float(median), 2), "high": round(float(high), 2),
            "percentiles": list(percentiles), "images": len(typical), "estimator": ESTIMATOR}


def rescale_factor(diameter: float | None, trained: DiameterRange) -> float:
    """The zoom that brings ``diameter`` to ``trained.median`` when it lies outside ``trained``'s range.

    1.0 inside the range or when the diameter is unknown; clipped to ``MIN_FACTOR``..``MAX_FACTOR``.
    """
    if diameter is None or diameter <= 0 or trained.low <= diameter <= trained.high:
        return 1.0
    return float(np.clip(trained.median / diameter, MIN_FACTOR, MAX_FACTOR))


def resample_image(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` zoomed by ``factor`` (smoothly: linear, anti-aliased when shrinking), as float32."""
    from skimage.transform import rescale

    return rescale(np.asarray(image, dtype=np.float32), factor, order=1, mode="reflect",
                   anti_aliasing=factor < 1, preserve_range=True).astype(np.float32)


def resample_to(array: np.ndarray, shape: tuple, labels: bool) -> np.ndarray:
    """``array`` (2-D, or 2-D with channels) resized to ``shape``: labels by nearest neighbour, else linearly."""
    from skimage.transform import resize

    if labels:
        return resampling.resize_labels(array, shape)
    target = tuple(shape) + tuple(array.shape[2:])
    return resize(array, target, order=1, mode="edge", anti_aliasing=False, preserve_range=True).astype(np.float32)


def record_for(data, split: str = "train", subset_column: str = "", names=None, exclude=()) -> dict:
    """:func:`training_range` of the label images of ``split`` of the data folder ``data``, with where they came from.

    ``names``: only these stems of the split (a run's training images); ``exclude``: stems left
    out (validation images held out of the split, which were not trained on).
    """
    from . import layouts

    pairs = _split_pairs(data, split, subset_column)
    if names is not None:
        names = set(names)
        pairs = [pair for pair in pairs if pair.stem in names]
    exclude = set(exclude)
    pairs = [pair for pair in pairs if pair.stem not in exclude]
    if not pairs:
        raise ValueError(f"{data}: split {split!r} has no images")
    record = training_range(layouts.read_labels(pair.mask) for pair in pairs)
    return {**record, "split": split, **({"subset_column": subset_column} if subset_column else {})}


def _split_pairs(data, split: str, subset_column: str) -> list:
    from . import layouts

    return layouts.marked_pairs(Path(data), split, subset_column) if subset_column else layouts.list_pairs(Path(data), split)


def main(argv=None) -> int:
    import argparse

    from . import cards

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("card", type=Path, help="model card (.json) to write the record into")
    parser.add_argument("--data", help="data folder the model was trained on (default: the card's training.data)")
    parser.add_argument("--split", help="split it was trained on (default: the card's training.split, else train)")
    parser.add_argument("--subset-column", help="manifest column that chose its images (default: the card's)")
    args = parser.parse_args(argv)
    try:
        card = cards.read_card(args.card)
    except cards.ModelError as error:
        parser.error(str(error))
    training = card.get("training", {})
    data = args.data or training.get("data")
    if not data:
        parser.error(f"{args.card} does not say which data it was trained on: give --data")
    split = args.split or training.get("split") or "train"
    subset = args.subset_column if args.subset_column is not None else training.get("subset_column", "")
    try:
        record = record_for(data, split, subset, exclude=training.get("held_out_for_validation", []))
    except (ValueError, FileNotFoundError) as error:
        parser.error(f"--data {data}: {error}")
    cards.save_card({**card, "nucleus_diameters": record}, cards.card_path_for(args.card))
    print(f"{args.card}: nucleus diameters {record['low']}-{record['high']} px (median {record['median']}) "
          f"on {record['images']} images of {data} ({split})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

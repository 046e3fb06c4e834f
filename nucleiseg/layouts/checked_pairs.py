"""Checking the pixels of image/mask pairs and materializing them for CellProfiler.

Nothing here ever writes into a data folder: :func:`materialize` copies a
checked selection into a separate folder in the form the benchmark runner hands
to CellProfiler (``images/<stem>.tiff`` original dtype,
``masks/<stem>.tiff`` 16-bit consecutive labels).  Every problem of every pair
is collected first, so that one :class:`DataError` names all bad files.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data_folders import Pair, Selection, select
from .image_io import MAX_LABEL, consecutive_labels, read_image, read_labels, write_tiff


class DataError(ValueError):
    """Input data that cannot be benchmarked; the message names every bad file.

    Parameters
    ----------
    problems : list of str
        One line per problem, each naming the file (or folder) concerned.
    header : str
        First line of the message.

    Attributes
    ----------
    problems : list of str
        The problems, in the order found.
    """

    def __init__(self, problems: list[str], header: str = "invalid input data"):
        self.problems = list(problems)
        lines = [f"{header} ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass
class CheckedPair:
    """A pair whose pixels were read and checked.

    Attributes
    ----------
    pair : Pair
        The source files.
    image : ndarray or None
        The greyscale image (None when a problem prevented reading it).
    labels : ndarray or None
        Consecutive ground-truth labels (int32), None on problems.
    problems, warnings : list of str
        What was found, each naming the file.
    """

    pair: Pair
    image: np.ndarray | None = None
    labels: np.ndarray | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_pair(pair: Pair, allow_empty_masks: bool = False) -> CheckedPair:
    """Read one pair and check it (every problem is collected, nothing raised).

    Checks: both files readable; the image is 2-D greyscale; the mask is an
    integer label image (or colour-coded); same shape; the mask is not empty
    (a problem unless ``allow_empty_masks``, then a warning); at most 65535
    nuclei. Non-consecutive labels are accepted and renumbered.
    """
    out = CheckedPair(pair)
    try:
        out.image = read_image(pair.image)
    except ValueError as error:
        out.problems.append(str(error))
    if pair.mask is None:
        out.problems.append(f"{pair.image}: no mask")
        return out
    try:
        labels = read_labels(pair.mask)
    except ValueError as error:
        out.problems.append(str(error))
        return out
    if out.image is not None and out.image.shape != labels.shape:
        out.problems.append(
            f"{pair.image} and {pair.mask}: shapes differ (image {out.image.shape}, mask {labels.shape})"
        )
        return out
    labels = consecutive_labels(labels)
    count = int(labels.max()) if labels.size else 0
    if count == 0:
        message = f"{pair.mask}: empty mask (no nuclei)"
        if allow_empty_masks:
            out.warnings.append(message + "; scored anyway (every prediction is a false positive)")
        else:
            out.problems.append(message + "; remove the image or allow empty masks")
            return out
    if count > MAX_LABEL:
        out.problems.append(f"{pair.mask}: {count} nuclei do not fit 16-bit labels (max {MAX_LABEL})")
        return out
    out.labels = labels
    return out


def _write_checked(pairs, dest, allow_empty_masks, warn):
    """Check and write pairs; returns (written pairs, problems)."""
    problems: list[str] = []
    written = []
    for pair in pairs:
        checked = check_pair(pair, allow_empty_masks=allow_empty_masks)
        problems += checked.problems
        for text in checked.warnings:
            warn(text)
        if checked.problems:
            continue
        image_path = dest / "images" / f"{pair.stem}.tiff"
        mask_path = dest / "masks" / f"{pair.stem}.tiff"
        write_tiff(image_path, checked.image)
        write_tiff(mask_path, checked.labels.astype(np.uint16))
        written.append(Pair(pair.stem, image_path, mask_path))
    return written, problems


def _default_warn(text: str) -> None:
    """Warnings without a ``warn`` callback go to :func:`warnings.warn`, attributed to the caller."""
    warnings.warn(text, stacklevel=3)


def materialize(pairs: list[Pair], dest: Path, allow_empty_masks: bool = False, warn=None) -> list[Pair]:
    """Check every pair and write them as the runner's CellProfiler input folder.

    Writes ``dest/images/<stem>.tiff`` (image, original dtype) and
    ``dest/masks/<stem>.tiff`` (uint16 consecutive labels). Source files are
    only read. All pairs are checked before the error, so it lists every
    problem at once.

    Parameters
    ----------
    pairs : list of Pair
        Selected pairs.
    dest : Path
        Output folder (created; should be empty or temporary).
    allow_empty_masks : bool
        Accept masks without nuclei (with a warning) instead of failing.
    warn : callable, optional
        Called with each warning text; default :func:`warnings.warn`.

    Returns
    -------
    list of Pair
        The written pairs, in input order.

    Raises
    ------
    DataError
        Listing every problem, each naming its file.
    """
    written, problems = _write_checked(pairs, Path(dest), allow_empty_masks, warn or _default_warn)
    if problems:
        raise DataError(problems)
    return written


def prepare(
    data_dir: Path,
    dest: Path,
    split: str | None = None,
    limit: int | None = None,
    allow_empty_masks: bool = False,
    layout: str | None = None,
    warn=None,
) -> tuple[Selection, list[Pair]]:
    """Select, check and materialize a data folder in one pass; one error for all problems.

    Parameters
    ----------
    data_dir : Path
        The user's data folder (only read).
    dest : Path
        Where the CellProfiler input folder is written.
    split, limit, layout
        As for :func:`select`.
    allow_empty_masks : bool
        Warn about, instead of rejecting, masks without nuclei.
    warn : callable, optional
        Receives each warning text; default :func:`warnings.warn`.

    Returns
    -------
    (Selection, list of Pair)
        The selection and the materialized pairs.

    Raises
    ------
    DataError
        Naming every bad file or folder.
    """
    warn = warn or _default_warn
    sel = select(data_dir, split, limit, layout)
    for text in sel.warnings:
        warn(text)
    # Images without masks were reported by select(); do not report them twice.
    with_masks = [p for p in sel.pairs if p.mask is not None]
    written, problems = _write_checked(with_masks, Path(dest), allow_empty_masks, warn)
    problems = sel.problems + problems
    if problems:
        raise DataError(problems, header=f"invalid input data in {Path(data_dir)}")
    return sel, written


def validate(
    data_dir: Path, split: str | None = None, limit: int | None = None, allow_empty_masks: bool = False
) -> Selection:
    """Select pairs and check every file's pixels; raise one error naming every bad file.

    Returns
    -------
    Selection
        Without problems (warnings may remain).

    Raises
    ------
    DataError
        When anything is wrong.
    """
    sel = select(data_dir, split, limit)
    problems = list(sel.problems)
    for pair in sel.pairs:
        if pair.mask is None:
            continue  # already reported by select()
        checked = check_pair(pair, allow_empty_masks=allow_empty_masks)
        problems += checked.problems
        sel.warnings += checked.warnings
    if problems:
        raise DataError(problems, header=f"invalid input data in {Path(data_dir)}")
    return sel

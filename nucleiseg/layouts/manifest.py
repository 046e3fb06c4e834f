"""The ``manifest.csv`` of a data folder: per-image marks such as which fields come from BBBC039, and kinds."""

from __future__ import annotations

import csv
from pathlib import Path

from .data_folders import Pair, list_pairs


def manifest_marks(manifest: Path, column: str) -> dict[str, bool]:
    """Per row ``name`` of a ``manifest.csv``, whether its ``column`` is non-empty.

    A manifest marks images of one kind (e.g. column ``bbbc039_field`` of the
    shared data marks the BBBC039 fields).

    Raises
    ------
    ValueError
        When the manifest lacks the ``name`` column or ``column``.
    """
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"name", column} <= set(reader.fieldnames or []):
            raise ValueError(f"{manifest} needs columns 'name' and {column!r}, has {reader.fieldnames}")
        return {row["name"]: bool((row[column] or "").strip()) for row in reader}


def marked_pairs(data_dir: Path, split: str, column: str) -> list[Pair]:
    """The image/mask pairs of ``split`` whose ``column`` in ``data_dir/manifest.csv`` is non-empty.

    Raises
    ------
    ValueError
        Naming the column, when the data folder has no manifest, the manifest
        lacks the column, or no image of the split is marked.
    """
    manifest = Path(data_dir) / "manifest.csv"
    if not manifest.is_file():
        raise ValueError(f"subset column {column!r}: no manifest.csv in {data_dir}")
    marks = manifest_marks(manifest, column)
    pairs = [pair for pair in list_pairs(data_dir, split) if marks.get(pair.stem)]
    if not pairs:
        raise ValueError(f"subset column {column!r}: no image of split {split!r} is marked in {manifest}")
    return pairs


def manifest_stems(manifest: Path, column: str) -> set[str]:
    """Names of the manifest rows whose ``column`` is non-empty (see :func:`manifest_marks`)."""
    return {name for name, marked in manifest_marks(manifest, column).items() if marked}


def image_kinds(manifest: Path, marked_column: str = "bbbc039_field") -> dict[str, str]:
    """A kind for every image of a ``manifest.csv``: its imaging setup, as far as the manifest tells.

    Images whose ``marked_column`` is non-empty form one kind, named after the
    column without its ``_field`` suffix (``bbbc039``); every other image's kind
    is its size, ``"<height>x<width>"``: in the shared data, images of one size
    mostly come from one source (microscope, stain, magnification).

    Raises
    ------
    ValueError
        When the manifest lacks ``name``, ``height``, ``width`` or ``marked_column``.
    """
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle)
        needed = {"name", "height", "width", marked_column}
        if not needed <= set(reader.fieldnames or []):
            raise ValueError(f"{manifest} needs columns {', '.join(sorted(needed))}, has {reader.fieldnames}")
        marked = marked_column.removesuffix("_field")
        return {row["name"]: marked if (row[marked_column] or "").strip() else f"{int(row['height'])}x{int(row['width'])}"
                for row in reader}


def kind_pairs(data_dir: Path, split: str, kinds=(), exclude=()) -> list[Pair]:
    """The image/mask pairs of ``split`` of the given kinds (all when none), minus the ``exclude`` kinds.

    Kinds are :func:`image_kinds` of ``data_dir/manifest.csv`` (``bbbc039``, ``256x256`` ...).

    Raises
    ------
    ValueError
        When the data folder has no manifest, a named kind has no image anywhere in the
        data (the message lists the kinds there are), or nothing of the split is left.
    """
    manifest = Path(data_dir) / "manifest.csv"
    if not manifest.is_file():
        raise ValueError(f"{data_dir}: no manifest.csv, which says each image's kind")
    kind_of = image_kinds(manifest)
    known = sorted(set(kind_of.values()))
    unknown = [kind for kind in (*kinds, *exclude) if kind not in known]
    if unknown:
        raise ValueError(f"kind {unknown[0]!r} is not in {manifest}; kinds: {', '.join(known)}")
    pairs = [pair for pair in list_pairs(data_dir, split)
             if (not kinds or kind_of.get(pair.stem) in kinds) and kind_of.get(pair.stem) not in exclude]
    if not pairs:
        chosen = f"kinds {', '.join(kinds)}" if kinds else "every kind"
        left = f" but {', '.join(exclude)}" if exclude else ""
        raise ValueError(f"no {split} image of {chosen}{left} in {data_dir}")
    return pairs

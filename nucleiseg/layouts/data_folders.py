"""Data-folder layouts and splits: which image/mask pairs a data folder holds.

Two layouts are recognised (:func:`detect_layout`):

``"ours"``
    ``images/<stem>.<ext>`` greyscale images and ``masks/<stem>.<ext>``
    instance labels (0 background, one integer per nucleus, usually 16-bit),
    optional ``train.txt`` / ``val.txt`` / ``test.txt`` listing stems (or file
    names) one per line.
``"bbbc039"``
    The published BBBC039 layout: ``images/*.tif`` (16-bit), ``masks/*.png``
    colour-coded label matrices (RGB; black is background, each connected
    component of one colour is a nucleus) and
    ``metadata/{training,validation,test}.txt`` listing file names. Split
    names ``train`` / ``val`` / ``test`` map to those three files.

Only file names and headers are read here; pixels are checked by
:mod:`nucleiseg.layouts.checked_pairs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio

from .file_stems import IMAGE_SUFFIXES, files_by_stem, image_stem

LAYOUT_OURS = "ours"
LAYOUT_BBBC039 = "bbbc039"
LAYOUTS = (LAYOUT_OURS, LAYOUT_BBBC039)
SPLITS = ("train", "val", "test")
#: BBBC039's split files under ``metadata/`` for our split names.
BBBC039_SPLIT_FILES = {"train": "training.txt", "val": "validation.txt", "test": "test.txt"}


@dataclass(frozen=True)
class Pair:
    """One image and its ground-truth mask (``mask`` is None when absent)."""

    stem: str
    image: Path
    mask: Path | None


@dataclass
class Selection:
    """Pairs chosen for a run, with what was noticed while choosing them.

    Attributes
    ----------
    data_dir : Path
        The data folder.
    layout : str
        ``"ours"`` or ``"bbbc039"``.
    split : str or None
        The split used; None when every image was taken.
    pairs : list of Pair
        Selected pairs in a stable order (split-file order, else sorted stems).
    problems : list of str
        Errors (each names a file or folder); empty when usable.
    warnings : list of str
        Things worth telling the user that do not stop a run.
    """

    data_dir: Path
    layout: str
    split: str | None
    pairs: list[Pair] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)



def _first_by_stem(folder: Path) -> dict[str, Path]:
    """The first image file of each stem; several files under one stem are select()'s to report."""
    return {stem: paths[0] for stem, paths in files_by_stem(folder)[0].items()}


def _looks_colour_coded(path: Path) -> bool:
    """True when an image file holds three or four channels (read from its header only)."""
    try:
        props = iio.improps(path)
    except Exception:  # unreadable: leave it to validation to report
        return False
    return len(props.shape) == 3 and props.shape[-1] in (3, 4)


def detect_layout(data_dir: Path) -> str:
    """Which layout a data folder uses.

    BBBC039 is recognised by ``metadata/{training,validation,test}.txt``, or,
    without those, by colour (RGB) masks; everything else is ``"ours"``.

    Parameters
    ----------
    data_dir : Path
        Folder holding ``images/`` and ``masks/``.

    Returns
    -------
    str
        ``"ours"`` or ``"bbbc039"``.
    """
    data_dir = Path(data_dir)
    metadata = data_dir / "metadata"
    if metadata.is_dir() and any((metadata / name).is_file() for name in BBBC039_SPLIT_FILES.values()):
        return LAYOUT_BBBC039
    masks = data_dir / "masks"
    if masks.is_dir():
        pngs = sorted(p for p in masks.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
        if pngs and _looks_colour_coded(pngs[0]):
            return LAYOUT_BBBC039
    return LAYOUT_OURS


def split_file(data_dir: Path, split: str, layout: str | None = None) -> Path:
    """Path of the file listing a split (which may not exist)."""
    data_dir = Path(data_dir)
    layout = layout or detect_layout(data_dir)
    if layout == LAYOUT_BBBC039:
        return data_dir / "metadata" / BBBC039_SPLIT_FILES.get(split, f"{split}.txt")
    return data_dir / f"{split}.txt"


def available_splits(data_dir: Path, layout: str | None = None) -> list[str]:
    """Split names whose list file exists, in train / val / test order."""
    return [s for s in SPLITS if split_file(data_dir, s, layout).is_file()]


def split_parts(split: str) -> list[str]:
    """The split names of ``split``: ``"train+val+test"`` is the union of three split files.

    Raises
    ------
    ValueError
        When a part of the union is empty (``"train+"``) or named twice.
    """
    parts = [part.strip() for part in str(split).split("+")]
    if not all(parts):
        raise ValueError(f"split {split!r}: a union names its splits with '+' between them, e.g. train+val")
    if len(set(parts)) != len(parts):
        raise ValueError(f"split {split!r} names a split twice")
    return parts


def read_split(data_dir: Path, split: str, layout: str | None = None) -> list[str]:
    """Stems listed in a split file (``<split>.txt``, or BBBC039's ``metadata/*.txt``).

    Parameters
    ----------
    data_dir : Path
        The data folder.
    split : str
        ``train``, ``val`` or ``test`` (any name for our layout); ``a+b`` for the
        union of splits ``a`` and ``b``, in that order (e.g. the final model of a
        recipe trained on ``train+val+test``).
    layout : str, optional
        Layout; detected when omitted.

    Returns
    -------
    list of str
        Stems in file order, blank lines and ``#`` comments skipped, duplicates dropped.

    Raises
    ------
    FileNotFoundError
        When the split file does not exist.
    """
    parts = split_parts(split)
    if len(parts) > 1:
        return list(dict.fromkeys(stem for part in parts for stem in read_split(data_dir, part, layout)))
    path = split_file(data_dir, split, layout)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    stems = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            stems.append(image_stem(line))  # split files may list stems or file names
    return list(dict.fromkeys(stems))


def list_pairs(data_dir: Path, split: str | None = None) -> list[Pair]:
    """Image/mask pairs of a data folder (either layout), optionally restricted to a split.

    Parameters
    ----------
    data_dir : Path
        The data folder.
    split : str, optional
        Split name; None or ``"all"`` for every image.

    Returns
    -------
    list of Pair
        ``mask`` is None for images without a mask.

    Raises
    ------
    FileNotFoundError
        When the split file is missing or lists images that do not exist.
    """
    data_dir = Path(data_dir)
    layout = detect_layout(data_dir)
    images = _first_by_stem(data_dir / "images")
    masks = _first_by_stem(data_dir / "masks") if (data_dir / "masks").is_dir() else {}
    use_split = split not in (None, "all")
    stems = read_split(data_dir, split, layout) if use_split else sorted(images)
    missing = [s for s in stems if s not in images]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} images listed in "
            f"{', '.join(str(split_file(data_dir, part, layout)) for part in split_parts(split))} not found in "
            f"{data_dir / 'images'}: {', '.join(missing[:5])}"
        )
    return [Pair(s, images[s], masks.get(s)) for s in stems]


def select(data_dir: Path, split: str | None = None, limit: int | None = None, layout: str | None = None) -> Selection:
    """Choose the pairs of a run and note every problem found on the way (reads no pixels).

    Parameters
    ----------
    data_dir : Path
        The data folder.
    split : str, optional
        ``train`` / ``val`` / ``test``; None or ``"all"`` for every image. When
        the folder has no split files at all, every image is used and a
        warning says so; when it has some but not this one, that is a problem.
    limit : int, optional
        Keep only the first ``limit`` pairs (after the split).
    layout : str, optional
        Force a layout instead of detecting it.

    Returns
    -------
    Selection
        Pairs plus problems (missing folders, images without masks, split
        entries without images, duplicate stems) and warnings.
    """
    data_dir = Path(data_dir)
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    sel = Selection(data_dir=data_dir, layout=layout or LAYOUT_OURS, split=None)
    if not data_dir.is_dir():
        sel.problems.append(f"data folder not found: {data_dir}")
        return sel
    image_dir, mask_dir = data_dir / "images", data_dir / "masks"
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            sel.problems.append(f"folder not found: {folder} (expected images/ and masks/ in {data_dir})")
    if sel.problems:
        return sel
    sel.layout = layout or detect_layout(data_dir)
    images, ignored = files_by_stem(image_dir)
    masks, ignored_masks = files_by_stem(mask_dir)
    ignored += ignored_masks
    if ignored:
        sel.warnings.append(
            f"ignored {len(ignored)} file(s) without a {'/'.join(IMAGE_SUFFIXES)} suffix: "
            + ", ".join(str(p) for p in ignored[:5])
            + (" ..." if len(ignored) > 5 else "")
        )
    for kind, found in (("images", images), ("masks", masks)):
        for stem, paths in found.items():
            if len(paths) > 1:
                sel.problems.append(f"several {kind} share the stem {stem!r}: " + ", ".join(str(p) for p in paths))
    if not images:
        sel.problems.append(f"no images ({'/'.join(IMAGE_SUFFIXES)}) in {image_dir}")
        return sel

    if split in (None, "all"):
        stems = sorted(images)
    elif not available_splits(data_dir, sel.layout):
        sel.warnings.append(f"no split files in {data_dir}; using all {len(images)} images instead of split {split!r}")
        stems = sorted(images)
    else:
        try:
            paths = [split_file(data_dir, part, sel.layout) for part in split_parts(split)]
        except ValueError as error:
            sel.problems.append(str(error))
            return sel
        absent = [path for path in paths if not path.is_file()]
        if absent:
            names = ", ".join(available_splits(data_dir, sel.layout))
            sel.problems.append(f"split file not found: {absent[0]} (available splits: {names}, or 'all')")
            return sel
        sel.split = split
        stems = read_split(data_dir, split, sel.layout)
        unknown = [s for s in stems if s not in images]
        if unknown:
            listed_in = paths[0] if len(paths) == 1 else f"split {split!r}"
            sel.problems.append(
                f"{len(unknown)} name(s) listed in {listed_in} have no image in {image_dir}: " + ", ".join(unknown)
            )
        stems = [s for s in stems if s in images]
    if limit is not None and limit >= 0:
        stems = stems[:limit]

    without = [images[s][0] for s in stems if s not in masks]
    if without:
        sel.problems.append(
            f"{len(without)} image(s) without a mask in {mask_dir}: " + ", ".join(str(p) for p in without)
        )
    orphans = sorted(set(masks) - set(images))
    if orphans:
        sel.warnings.append(f"{len(orphans)} mask(s) without an image ignored: " + ", ".join(str(masks[s][0]) for s in orphans[:5]))
    sel.pairs = [Pair(s, images[s][0], masks[s][0] if s in masks else None) for s in stems]
    return sel

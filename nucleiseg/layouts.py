"""Data layouts: where images and their instance-label masks live on disk.

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

Nothing here ever writes into a data folder: :func:`materialize` copies a
checked selection into a separate folder in the form the benchmark runner hands
to CellProfiler (``images/<stem>.tiff`` original dtype,
``masks/<stem>.tiff`` 16-bit consecutive labels).
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from scipy import ndimage
from skimage.segmentation import relabel_sequential

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
LAYOUT_OURS = "ours"
LAYOUT_BBBC039 = "bbbc039"
LAYOUTS = (LAYOUT_OURS, LAYOUT_BBBC039)
SPLITS = ("train", "val", "test")
#: BBBC039's split files under ``metadata/`` for our split names.
BBBC039_SPLIT_FILES = {"train": "training.txt", "val": "validation.txt", "test": "test.txt"}
#: Largest label a 16-bit mask can hold.
MAX_LABEL = np.iinfo(np.uint16).max


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


# --------------------------------------------------------------------------------------------
# Finding files
# --------------------------------------------------------------------------------------------


def _files_by_stem(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Image files of a folder grouped by stem, and the files ignored (other suffixes)."""
    by_stem: dict[str, list[Path]] = {}
    ignored = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue  # hidden files (.DS_Store) and sub-folders are not data
        if path.suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(path.stem, []).append(path)
        else:
            ignored.append(path)
    return by_stem, ignored


def _by_stem(folder: Path) -> dict[str, Path]:
    return {stem: paths[0] for stem, paths in _files_by_stem(folder)[0].items()}


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


def _entry_stem(line: str) -> str:
    # Split files may list stems or file names; only known image suffixes are cut so
    # that stems containing dots survive.
    name = Path(line).name
    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
        return Path(name).stem
    return name


def read_split(data_dir: Path, split: str, layout: str | None = None) -> list[str]:
    """Stems listed in a split file (``<split>.txt``, or BBBC039's ``metadata/*.txt``).

    Parameters
    ----------
    data_dir : Path
        The data folder.
    split : str
        ``train``, ``val`` or ``test`` (any name for our layout).
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
    path = split_file(data_dir, split, layout)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    stems = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            stems.append(_entry_stem(line))
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
    images = _by_stem(data_dir / "images")
    masks = _by_stem(data_dir / "masks") if (data_dir / "masks").is_dir() else {}
    use_split = split not in (None, "all")
    stems = read_split(data_dir, split, layout) if use_split else sorted(images)
    missing = [s for s in stems if s not in images]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} images listed in {split_file(data_dir, split, layout)} not found in "
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
    images, ignored = _files_by_stem(image_dir)
    masks, ignored_masks = _files_by_stem(mask_dir)
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
        path = split_file(data_dir, split, sel.layout)
        if not path.is_file():
            names = ", ".join(available_splits(data_dir, sel.layout))
            sel.problems.append(f"split file not found: {path} (available splits: {names}, or 'all')")
            return sel
        sel.split = split
        stems = read_split(data_dir, split, sel.layout)
        unknown = [s for s in stems if s not in images]
        if unknown:
            sel.problems.append(
                f"{len(unknown)} name(s) listed in {path} have no image in {image_dir}: " + ", ".join(unknown)
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


# --------------------------------------------------------------------------------------------
# Reading pixels
# --------------------------------------------------------------------------------------------


def _imread(path: Path) -> np.ndarray:
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
    image = _squeeze_singletons(_imread(path))
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

    Raises
    ------
    ValueError
        Naming the file when it is unreadable, 3-D, non-integer or negative.
    """
    labels = _squeeze_singletons(_imread(path))
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
    """Labels renumbered 1..N in order of their value (0 stays background)."""
    return relabel_sequential(np.asarray(labels, dtype=np.int32))[0]


# --------------------------------------------------------------------------------------------
# Checking and materializing
# --------------------------------------------------------------------------------------------


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


def write_tiff(path: Path, array: np.ndarray) -> None:
    """Write a 2-D array as an uncompressed single-page TIFF (dtype kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array, photometric="minisblack")


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

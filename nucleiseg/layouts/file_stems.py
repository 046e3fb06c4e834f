"""Which files of a folder are images, grouped by stem: the project's one file listing.

Images and masks, ground truth and predictions are paired by stem (``a.png`` pairs with
``a.tiff``); every folder listing goes through :func:`files_by_stem` so that all readers accept
the same files.
"""

from __future__ import annotations

from pathlib import Path

#: Suffixes (compared in lower case) of the image and label files read from data folders.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


def files_by_stem(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Image files of a folder grouped by stem, and the files passed over.

    Parameters
    ----------
    folder : Path
        An existing folder.

    Returns
    -------
    by_stem : dict of str to list of Path
        Files with a suffix of :data:`IMAGE_SUFFIXES`, per stem; more than one file under a
        stem (``a.png`` and ``a.tif``) is left to the caller to report.  Stems and files come
        in the sorted order of the file names.
    ignored : list of Path
        Files with another suffix (``notes.txt``), sorted.  Hidden files (``.DS_Store``,
        ``._a.png``) and sub-folders are in neither result: they are never data.
    """
    by_stem: dict[str, list[Path]] = {}
    ignored = []
    for path in sorted(Path(folder).iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(path.stem, []).append(path)
        else:
            ignored.append(path)
    return by_stem, ignored


def image_stem(name: str) -> str:
    """The stem of a file name with an image suffix; any other name unchanged.

    Parameters
    ----------
    name : str
        A file name or path (``a.png``, ``dir/a.tif``) or a bare stem (``a``, ``plate.1``).

    Returns
    -------
    str
        ``a`` for ``a.png``; ``plate.1`` stays ``plate.1``, since only image suffixes are
        cut and stems may contain dots.
    """
    base = Path(name).name
    if Path(base).suffix.lower() in IMAGE_SUFFIXES:
        return Path(base).stem
    return base


#: Endings that annotation tools and pipelines put after an image's stem in its mask's name
#: (Cellpose ``_cp_masks``, napari and Fiji exports ``_labels``/``_mask``); longest first, so
#: ``a_cp_masks`` is read as ``a`` and not as ``a_cp``.
MASK_SUFFIXES = tuple(sorted({f"{sep}{word}" for sep in "_-" for word in ("cp_masks", "masks", "mask", "labels", "label")},
                             key=lambda suffix: (-len(suffix), suffix)))


def masks_for_images(image_stems, masks: dict[str, list[Path]]) -> tuple[dict[str, list[Path]], list[Path], dict[str, int]]:
    """Pair masks with images by stem, accepting a mask named after its image plus a mask suffix.

    Parameters
    ----------
    image_stems : iterable of str
        Stems of the images.
    masks : dict of str to list of Path
        Mask files per stem, as :func:`files_by_stem` gives them.

    Returns
    -------
    by_image : dict of str to list of Path
        Masks per image stem (more than one is left to the caller to report). A mask whose stem
        is an image's pairs with it; otherwise one whose stem is an image's followed by one of
        :data:`MASK_SUFFIXES` (``a_masks.tif`` with ``a.png``; case ignored in the suffix).
    unmatched : list of Path
        Masks of no image, sorted.
    suffixes : dict of str to int
        How many masks each suffix paired.
    """
    images = set(image_stems)
    by_image: dict[str, list[Path]] = {}
    unmatched, suffixes = [], {}
    for stem, paths in masks.items():
        target, used = (stem, None) if stem in images else (None, None)
        if target is None:
            for suffix in MASK_SUFFIXES:
                if stem.lower().endswith(suffix) and stem[: -len(suffix)] in images:
                    target, used = stem[: -len(suffix)], suffix
                    break
        if target is None:
            unmatched.extend(paths)
            continue
        by_image.setdefault(target, []).extend(paths)
        if used:
            suffixes[used] = suffixes.get(used, 0) + len(paths)
    return by_image, sorted(unmatched), suffixes

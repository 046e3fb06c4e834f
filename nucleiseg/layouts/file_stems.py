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

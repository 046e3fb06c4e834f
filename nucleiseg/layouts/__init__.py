"""Data on disk: data-folder layouts and splits, image and label files, checks, the manifest.

Import from here (``from nucleiseg import layouts``; ``layouts.select(...)``).  The modules:

``file_stems``
    :func:`files_by_stem`: the one listing of image files by stem, with the accepted
    suffixes in :data:`IMAGE_SUFFIXES`; :func:`masks_for_images` pairs masks named
    ``<image stem><suffix>`` (:data:`MASK_SUFFIXES`) with their images.
``image_io``
    :func:`read_image`, :func:`read_labels` (also BBBC039's colour-coded masks),
    :func:`write_tiff`: single files, each error naming its file.
``data_folders``
    The ``"ours"`` and ``"bbbc039"`` layouts, split files, :func:`list_pairs` and
    :func:`select` (names only, no pixels).
``checked_pairs``
    :func:`check_pair`, :func:`validate`, :func:`materialize` and :func:`prepare`: pixels
    checked, every problem in one :class:`DataError`, data folders only ever read.
``manifest``
    :func:`manifest_marks` and the pairs a ``manifest.csv`` column marks; :func:`image_kinds`
    and :func:`kind_pairs`, a split's pairs of some kinds of image.
"""

from __future__ import annotations

from .checked_pairs import CheckedPair, DataError, check_pair, materialize, prepare, validate
from .data_folders import (
    BBBC039_SPLIT_FILES,
    LAYOUT_BBBC039,
    LAYOUT_OURS,
    LAYOUTS,
    SPLITS,
    Pair,
    Selection,
    available_splits,
    detect_layout,
    list_pairs,
    read_split,
    select,
    split_file,
    split_parts,
)
from .file_stems import IMAGE_SUFFIXES, MASK_SUFFIXES, files_by_stem, image_stem, masks_for_images
from .image_io import MAX_LABEL, colour_to_labels, consecutive_labels, read_array, read_image, read_labels, write_tiff
from .manifest import image_kinds, kind_pairs, manifest_marks, manifest_stems, marked_pairs


__all__ = [
    "BBBC039_SPLIT_FILES",
    "IMAGE_SUFFIXES",
    "LAYOUTS",
    "LAYOUT_BBBC039",
    "LAYOUT_OURS",
    "MASK_SUFFIXES",
    "MAX_LABEL",
    "SPLITS",
    "CheckedPair",
    "DataError",
    "Pair",
    "Selection",
    "available_splits",
    "check_pair",
    "colour_to_labels",
    "consecutive_labels",
    "detect_layout",
    "files_by_stem",
    "image_kinds",
    "kind_pairs",
    "image_stem",
    "list_pairs",
    "manifest_marks",
    "manifest_stems",
    "marked_pairs",
    "masks_for_images",
    "materialize",
    "prepare",
    "read_array",
    "read_image",
    "read_labels",
    "read_split",
    "select",
    "split_file",
    "split_parts",
    "validate",
    "write_tiff",
]

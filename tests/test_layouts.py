"""Data layouts: our layout, BBBC039's published layout, selection and materialization."""

from __future__ import annotations

import hashlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from nucleiseg import layouts


def write_ours(folder: Path, stems=("a", "b", "c"), splits=None) -> dict[str, np.ndarray]:
    """A tiny data set in our layout; returns the labels written per stem."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    written = {}
    for i, stem in enumerate(stems):
        labels = np.zeros((20, 24), np.uint16)
        labels[2:6, 2:6] = 1
        labels[10:15, 8:14] = 2 + i
        image = (labels > 0).astype(np.uint8) * 200 + 10
        iio.imwrite(folder / "images" / f"{stem}.png", image)
        iio.imwrite(folder / "masks" / f"{stem}.png", labels)
        written[stem] = labels
    for name, names in (splits or {}).items():
        (folder / f"{name}.txt").write_text("\n".join(names) + "\n")
    return written


# Colours of BBBC039-style masks: touching nuclei get different colours, and one colour is reused
# by two separate nuclei (they must become two instances).
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def bbbc039_mask() -> tuple[np.ndarray, int]:
    """An RGB mask with 4 nuclei (two touching, two sharing a colour); returns (rgb, count)."""
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[2:10, 2:10] = RED
    rgb[2:10, 10:18] = GREEN  # touches the red one
    rgb[20:26, 20:26] = RED  # same colour, separate: a fourth nucleus below
    rgb[15:19, 30:36] = BLUE
    return rgb, 4


def write_bbbc039(folder: Path) -> None:
    """A tiny BBBC039-layout folder: 16-bit TIFF images, RGB PNG masks, metadata split lists."""
    for sub in ("images", "masks", "metadata"):
        (folder / sub).mkdir(parents=True)
    rgb, _ = bbbc039_mask()
    for stem in ("IXMtest_A02_s1_w1", "IXMtest_B03_s2_w1", "IXMtest_C04_s3_w1"):
        image = (rgb.max(axis=-1).astype(np.uint16) * 40 + 300).astype(np.uint16)
        tifffile.imwrite(folder / "images" / f"{stem}.tif", image)
        iio.imwrite(folder / "masks" / f"{stem}.png", rgb)
    (folder / "metadata" / "training.txt").write_text("IXMtest_A02_s1_w1.png\nIXMtest_B03_s2_w1.png\n")
    (folder / "metadata" / "validation.txt").write_text("IXMtest_C04_s3_w1.png\n")
    (folder / "metadata" / "test.txt").write_text("")


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------
# Our layout
# --------------------------------------------------------------------------------------------


def test_ours_list_pairs_and_splits(tmp_path):
    write_ours(tmp_path, splits={"train": ["a", "b"], "val": ["c.png"]})
    assert layouts.detect_layout(tmp_path) == "ours"
    assert layouts.available_splits(tmp_path) == ["train", "val"]
    assert layouts.read_split(tmp_path, "val") == ["c"]  # file names are accepted too
    pairs = layouts.list_pairs(tmp_path, "train")
    assert [p.stem for p in pairs] == ["a", "b"]
    assert pairs[0].image == tmp_path / "images" / "a.png" and pairs[0].mask == tmp_path / "masks" / "a.png"
    assert [p.stem for p in layouts.list_pairs(tmp_path)] == ["a", "b", "c"]
    assert [p.stem for p in layouts.list_pairs(tmp_path, "all")] == ["a", "b", "c"]
    with pytest.raises(FileNotFoundError):
        layouts.list_pairs(tmp_path, "test")


def test_a_union_of_splits_lists_each_split_in_turn(tmp_path):
    write_ours(tmp_path, splits={"train": ["a", "b"], "val": ["c"], "test": ["b"]})
    assert layouts.split_parts("train+val") == ["train", "val"]
    assert layouts.read_split(tmp_path, "val+train") == ["c", "a", "b"]
    assert layouts.read_split(tmp_path, "train+val+test") == ["a", "b", "c"]  # an image listed twice counts once
    assert [p.stem for p in layouts.list_pairs(tmp_path, "train+val")] == ["a", "b", "c"]
    assert [p.stem for p in layouts.select(tmp_path, "train+val").pairs] == ["a", "b", "c"]
    for bad in ("train+", "train++val", "train+train"):
        with pytest.raises(ValueError, match="split"):
            layouts.read_split(tmp_path, bad)
        assert layouts.select(tmp_path, bad).problems and not layouts.select(tmp_path, bad).pairs
    (tmp_path / "val.txt").write_text("c\nghost\n")
    with pytest.raises(FileNotFoundError, match="val.txt"):  # the error names the split files
        layouts.list_pairs(tmp_path, "train+val")
    (tmp_path / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test.txt"):
        layouts.read_split(tmp_path, "train+test")
    sel = layouts.select(tmp_path, "train+test")
    assert sel.pairs == [] and sel.problems == [
        f"split file not found: {tmp_path / 'test.txt'} (available splits: train, val, or 'all')"]


def test_select_without_split_files_uses_all_images(tmp_path):
    write_ours(tmp_path)
    sel = layouts.select(tmp_path, "val")
    assert [p.stem for p in sel.pairs] == ["a", "b", "c"] and sel.problems == []
    assert sel.split is None
    assert sel.warnings == [f"no split files in {tmp_path}; using all 3 images instead of split 'val'"]


def test_select_missing_split_file_is_a_problem(tmp_path):
    write_ours(tmp_path, splits={"train": ["a"]})
    sel = layouts.select(tmp_path, "val")
    assert sel.problems == [f"split file not found: {tmp_path / 'val.txt'} (available splits: train, or 'all')"]
    assert sel.pairs == []


def test_select_limit(tmp_path):
    write_ours(tmp_path)
    assert [p.stem for p in layouts.select(tmp_path, None, limit=2).pairs] == ["a", "b"]


def test_prepare_writes_tiffs_and_keeps_source(tmp_path):
    data = tmp_path / "data"
    labels = write_ours(data, splits={"val": ["b", "c"]})
    before = digest(data)
    sel, written = layouts.prepare(data, tmp_path / "input", split="val")
    assert sel.split == "val" and [p.stem for p in written] == ["b", "c"]
    for pair in written:
        assert pair.image == tmp_path / "input" / "images" / f"{pair.stem}.tiff"
        assert pair.mask == tmp_path / "input" / "masks" / f"{pair.stem}.tiff"
        image = tifffile.imread(pair.image)
        mask = tifffile.imread(pair.mask)
        assert image.dtype == np.uint8  # original dtype kept
        assert mask.dtype == np.uint16
        # Labels renumbered consecutively, same objects.
        assert np.array_equal(mask > 0, labels[pair.stem] > 0)
        assert sorted(np.unique(mask)) == [0, 1, 2]
    assert digest(data) == before


def test_non_consecutive_labels_are_relabelled(tmp_path):
    write_ours(tmp_path / "d", stems=("x",))
    labels = np.zeros((20, 24), np.uint16)
    labels[1:4, 1:4] = 7
    labels[8:12, 8:12] = 300
    labels[15:18, 15:20] = 65535
    iio.imwrite(tmp_path / "d" / "masks" / "x.png", labels)
    (pair,) = layouts.materialize(layouts.list_pairs(tmp_path / "d"), tmp_path / "in")
    mask = tifffile.imread(pair.mask)
    assert sorted(np.unique(mask)) == [0, 1, 2, 3]
    assert np.array_equal(mask > 0, labels > 0)


def test_labels_over_255_survive_materialize(tmp_path):
    labels = (np.arange(20 * 24).reshape(20, 24) % 400).astype(np.uint16)  # labels 0..399
    write_ours(tmp_path / "d", stems=("many",))
    iio.imwrite(tmp_path / "d" / "masks" / "many.png", labels)
    assert layouts.read_labels(tmp_path / "d" / "masks" / "many.png").max() == labels.max()
    (pair,) = layouts.materialize(layouts.list_pairs(tmp_path / "d"), tmp_path / "in")
    back = layouts.read_labels(pair.mask)
    assert back.max() == labels.max() and np.array_equal(back, labels)


def test_read_image_squeezes_singleton_channel(tmp_path):
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, np.ones((5, 6, 1), np.uint16))
    assert layouts.read_image(path).shape == (5, 6)


def test_read_array_keeps_what_the_file_holds(tmp_path):
    path = tmp_path / "rgb.png"
    iio.imwrite(path, np.full((4, 5, 3), 7, np.uint8))
    array = layouts.read_array(path)
    assert array.shape == (4, 5, 3) and array.dtype == np.uint8 and (array == 7).all()
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a TIFF")
    with pytest.raises(ValueError, match=f"cannot read {broken}"):
        layouts.read_array(broken)


def test_check_pair_collects_problems_without_raising(tmp_path):
    write_ours(tmp_path, stems=("a",))
    iio.imwrite(tmp_path / "masks" / "a.png", np.ones((10, 24), np.uint16))
    checked = layouts.check_pair(layouts.list_pairs(tmp_path)[0])
    assert checked.problems == [
        f"{tmp_path / 'images' / 'a.png'} and {tmp_path / 'masks' / 'a.png'}: shapes differ (image (20, 24), mask (10, 24))"
    ]
    assert checked.labels is None and checked.image.shape == (20, 24)


def test_public_names_are_importable_from_the_package():
    assert [name for name in layouts.__all__ if not hasattr(layouts, name)] == []
    # Names the benchmark, training and the evaluation CLI import from nucleiseg.layouts.
    for name in ("DataError", "LAYOUTS", "list_pairs", "select", "prepare", "read_labels", "read_image",
                 "write_tiff", "MAX_LABEL", "manifest_marks", "files_by_stem", "IMAGE_SUFFIXES"):
        assert name in layouts.__all__, name


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def test_manifest_marks_and_marked_pairs(tmp_path):
    write_ours(tmp_path, splits={"val": ["a", "b", "c"]})
    (tmp_path / "manifest.csv").write_text("name,bbbc039_field\na,IXM_1\nb,\nc, \n")
    assert layouts.manifest_marks(tmp_path / "manifest.csv", "bbbc039_field") == {"a": True, "b": False, "c": False}
    assert layouts.manifest_stems(tmp_path / "manifest.csv", "bbbc039_field") == {"a"}
    assert [p.stem for p in layouts.marked_pairs(tmp_path, "val", "bbbc039_field")] == ["a"]
    with pytest.raises(ValueError, match="'plate'"):
        layouts.manifest_marks(tmp_path / "manifest.csv", "plate")


def test_marked_pairs_without_manifest_or_marks_is_an_error(tmp_path):
    write_ours(tmp_path, splits={"val": ["b"]})
    with pytest.raises(ValueError, match="no manifest.csv"):
        layouts.marked_pairs(tmp_path, "val", "bbbc039_field")
    (tmp_path / "manifest.csv").write_text("name,bbbc039_field\na,IXM_1\nb,\n")
    with pytest.raises(ValueError, match="no image of split 'val' is marked"):
        layouts.marked_pairs(tmp_path, "val", "bbbc039_field")


# --------------------------------------------------------------------------------------------
# BBBC039 layout
# --------------------------------------------------------------------------------------------


def test_colour_to_labels_separates_colours_and_components():
    rgb, count = bbbc039_mask()
    labels = layouts.colour_to_labels(rgb)
    assert labels.dtype == np.int32 and labels.max() == count
    assert len(np.unique(labels[2:10, 2:10])) == 1 and len(np.unique(labels[2:10, 10:18])) == 1
    assert labels[5, 5] != labels[5, 12]  # touching, different colours
    assert labels[5, 5] != labels[22, 22]  # same colour, not connected
    assert np.array_equal(labels > 0, rgb.any(axis=-1))


def test_colour_to_labels_diagonal_pixels_are_one_nucleus():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0, 0] = rgb[1, 1] = rgb[2, 2] = RED  # 8-connected, as skimage.measure.label
    assert layouts.colour_to_labels(rgb).max() == 1


def test_bbbc039_layout(tmp_path):
    write_bbbc039(tmp_path)
    assert layouts.detect_layout(tmp_path) == "bbbc039"
    assert layouts.available_splits(tmp_path) == ["train", "val", "test"]
    assert layouts.read_split(tmp_path, "train") == ["IXMtest_A02_s1_w1", "IXMtest_B03_s2_w1"]
    assert layouts.read_split(tmp_path, "test") == []
    (pair,) = layouts.list_pairs(tmp_path, "val")
    assert pair.image.suffix == ".tif" and pair.mask.suffix == ".png"
    assert layouts.read_labels(pair.mask).max() == 4  # training code reads colour masks too
    sel, written = layouts.prepare(tmp_path, tmp_path.parent / "bbbc_input", split="train")
    assert sel.layout == "bbbc039" and len(written) == 2
    image = tifffile.imread(written[0].image)
    mask = tifffile.imread(written[0].mask)
    assert image.dtype == np.uint16 and mask.dtype == np.uint16 and mask.max() == 4


def test_bbbc039_detected_from_colour_masks_without_metadata(tmp_path):
    write_bbbc039(tmp_path)
    for path in (tmp_path / "metadata").iterdir():
        path.unlink()
    (tmp_path / "metadata").rmdir()
    assert layouts.detect_layout(tmp_path) == "bbbc039"
    sel = layouts.select(tmp_path, "val")  # no split files: all images, with a warning
    assert [p.stem for p in sel.pairs] == ["IXMtest_A02_s1_w1", "IXMtest_B03_s2_w1", "IXMtest_C04_s3_w1"]
    assert sel.layout == "bbbc039"
    assert sel.warnings == [f"no split files in {tmp_path}; using all 3 images instead of split 'val'"]


def test_validate_reports_everything(tmp_path):
    write_ours(tmp_path, stems=("a", "b"))
    (tmp_path / "masks" / "a.png").unlink()
    iio.imwrite(tmp_path / "masks" / "b.png", np.zeros((20, 24), np.uint16))
    with pytest.raises(layouts.DataError) as info:
        layouts.validate(tmp_path)
    assert info.value.problems == [
        f"1 image(s) without a mask in {tmp_path / 'masks'}: {tmp_path / 'images' / 'a.png'}",
        f"{tmp_path / 'masks' / 'b.png'}: empty mask (no nuclei); remove the image or allow empty masks",
    ]
    assert str(info.value).startswith(f"invalid input data in {tmp_path} (2 problems):")


# --------------------------------------------------------------------------------------------
# Listing files by stem
# --------------------------------------------------------------------------------------------


def test_files_by_stem_groups_and_passes_over(tmp_path):
    for name in ("b.tif", "a.png", "a.TIFF", "c.txt", ".DS_Store", "._a.png", "README"):
        (tmp_path / name).write_bytes(b"")  # listing reads names only
    (tmp_path / "sub.png").mkdir()  # a folder, whatever its name
    by_stem, ignored = layouts.files_by_stem(tmp_path)
    assert by_stem == {"a": [tmp_path / "a.TIFF", tmp_path / "a.png"], "b": [tmp_path / "b.tif"]}
    assert ignored == [tmp_path / "README", tmp_path / "c.txt"]


def test_select_and_list_pairs_accept_what_files_by_stem_lists(tmp_path):
    write_ours(tmp_path, stems=("a", "b"))
    (tmp_path / "images" / "b.png").rename(tmp_path / "images" / "b.TIF")
    (tmp_path / "images" / "._a.png").write_bytes(b"resource fork")
    (tmp_path / "masks" / "notes.txt").write_text("not a mask")
    sel = layouts.select(tmp_path)
    assert [(p.stem, p.image.name) for p in sel.pairs] == [("a", "a.png"), ("b", "b.TIF")]
    assert sel.problems == []
    assert sel.warnings == [f"ignored 1 file(s) without a .png/.tif/.tiff suffix: {tmp_path / 'masks' / 'notes.txt'}"]
    assert [p.image.name for p in layouts.list_pairs(tmp_path)] == ["a.png", "b.TIF"]


def test_select_reports_two_images_under_one_stem(tmp_path):
    write_ours(tmp_path, stems=("a",))
    (tmp_path / "images" / "a.tif").write_bytes(b"")
    sel = layouts.select(tmp_path)
    assert sel.problems == [
        f"several images share the stem 'a': {tmp_path / 'images' / 'a.png'}, {tmp_path / 'images' / 'a.tif'}"
    ]


@pytest.mark.parametrize(
    "name, stem",
    [("a.png", "a"), ("dir/a.TIFF", "a"), ("a.tif", "a"), ("a", "a"), ("plate.1", "plate.1"), ("a.txt", "a.txt")],
)
def test_image_stem(name, stem):
    assert layouts.image_stem(name) == stem


def test_split_entries_with_dots_keep_their_stem(tmp_path):
    write_ours(tmp_path, stems=("plate.1", "plate.2"), splits={"val": ["plate.1", "plate.2.png"]})
    assert layouts.read_split(tmp_path, "val") == ["plate.1", "plate.2"]
    assert [p.stem for p in layouts.list_pairs(tmp_path, "val")] == ["plate.1", "plate.2"]

"""The synthetic demo set: deterministic, exact 16-bit ground truth, quick."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from nucleiseg import layouts, synthetic


def test_same_seed_same_files_other_seed_differs(tmp_path):
    synthetic.generate(tmp_path / "a", n=3, seed=7, size=128)
    synthetic.generate(tmp_path / "b", n=3, seed=7, size=128)
    synthetic.generate(tmp_path / "c", n=3, seed=8, size=128)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 3 * 2 + 3
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / "images" / "synth_000.png").read_bytes() != (tmp_path / "c" / "images" / "synth_000.png").read_bytes()


def test_dense_image_has_over_255_nuclei_in_16_bit(tmp_path):
    synthetic.generate(tmp_path, n=2, seed=0)
    labels = layouts.read_labels(tmp_path / "masks" / "synth_001.png")
    assert labels.max() > 255
    stored = layouts.read_array(tmp_path / "masks" / "synth_001.png")
    assert stored.dtype == np.uint16


def test_labels_are_exact_consecutive_and_connected():
    image, labels = synthetic.generate_one(2, seed=0)  # the clumped scene
    assert image.shape == labels.shape == (256, 256)
    assert image.dtype == np.uint16 and labels.dtype == np.uint16
    n = int(labels.max())
    assert np.array_equal(np.unique(labels), np.arange(n + 1))
    for index, window in enumerate(ndimage.find_objects(labels), start=1):
        _, pieces = ndimage.label(labels[window] == index)
        assert pieces == 1
    # Touching nuclei exist (two labels 4-adjacent), as in clumps.
    horizontal = (labels[:, 1:] != labels[:, :-1]) & (labels[:, 1:] > 0) & (labels[:, :-1] > 0)
    assert horizontal.any()
    # Micronuclei exist (a few pixels) and nuclei are brighter than background.
    areas = np.bincount(labels.ravel())[1:]
    assert areas.min() < 30
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()


def test_split_files_partition_the_set(tmp_path):
    stems = synthetic.generate(tmp_path, n=7, seed=0, size=96)
    splits = {s: layouts.read_split(tmp_path, s) for s in ("train", "val", "test")}
    assert sorted(sum(splits.values(), [])) == stems
    assert "synth_001" in splits["val"]


def test_default_set_is_quick(tmp_path):
    start = time.perf_counter()
    stems = synthetic.generate(tmp_path, seed=0)
    assert len(stems) == 12
    assert time.perf_counter() - start < 10


def test_cli(tmp_path):
    assert synthetic.main([str(tmp_path), "--n", "2", "--seed", "3", "--size", "64", "--dtype", "uint8"]) == 0
    image = layouts.read_image(tmp_path / "images" / "synth_000.png")
    assert image.dtype == np.uint8 and image.shape == (64, 64)


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        synthetic.generate(tmp_path, n=0)
    with pytest.raises(ValueError):
        synthetic.generate(tmp_path, dtype=np.float32)

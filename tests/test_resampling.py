"""Nearest-neighbour resizing of label images (nucleiseg.resampling).

Also run under CellProfiler 4.2.8's scikit-image 0.18 by ``make test-cp42``, whose own
``resize(order=0)`` gives another answer for the tie cases below.
"""

import numpy as np
import pytest

from nucleiseg.resampling import resize_labels, source_indices


def test_each_output_pixel_takes_the_input_pixel_under_its_centre():
    labels = np.arange(16, dtype=np.int32).reshape(4, 4)
    expected = np.array([
        [0, 1, 1, 2, 3, 3],
        [4, 5, 5, 6, 7, 7],
        [4, 5, 5, 6, 7, 7],
        [8, 9, 9, 10, 11, 11],
        [12, 13, 13, 14, 15, 15],
        [12, 13, 13, 14, 15, 15],
    ])
    np.testing.assert_array_equal(resize_labels(labels, (6, 6)), expected)


def test_shrinking_picks_centres_and_keeps_dtype():
    labels = np.arange(64, dtype=np.uint16).reshape(8, 8)
    out = resize_labels(labels, (5, 3))
    assert out.dtype == np.uint16 and out.shape == (5, 3)
    rows, cols = [0, 2, 4, 5, 7], [1, 4, 6]
    np.testing.assert_array_equal(out, labels[np.ix_(rows, cols)])


def test_instance_labels_stay_instance_labels_and_channels_follow():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 40, (37, 53)).astype(np.int32)
    out = resize_labels(labels, (91, 20))
    assert set(np.unique(out)) <= set(np.unique(labels))
    stacked = np.stack([labels, labels * 2], axis=-1)
    both = resize_labels(stacked, (91, 20))
    assert both.shape == (91, 20, 2)
    np.testing.assert_array_equal(both[..., 1], out * 2)


def test_same_shape_is_identity():
    labels = np.arange(30).reshape(5, 6)
    np.testing.assert_array_equal(resize_labels(labels, (5, 6)), labels)


@pytest.mark.parametrize("n_in, n_out", [(0, 3), (3, 0)])
def test_empty_sizes_are_refused(n_in, n_out):
    with pytest.raises(ValueError, match="at least 1"):
        source_indices(n_in, n_out)


def test_three_dimensional_shape_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        resize_labels(np.zeros((4, 4), np.int32), (2, 2, 2))

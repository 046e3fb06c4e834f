"""The inference speed benchmark's inputs: image sizes and the tiled synthetic field."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from benchmark import inference_speed


def test_size_is_height_by_width():
    assert inference_speed.image_size("4000x3000") == (4000, 3000)
    assert inference_speed.image_size("64X80") == (64, 80)


@pytest.mark.parametrize("text", ["4000", "0x10", "ax3", "10x10x10"])
def test_bad_size_is_refused_with_the_text(text):
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
        inference_speed.image_size(text)


def test_tiled_image_has_the_size_and_repeats_the_field():
    base = inference_speed.synthetic_image(seed=0)
    large = inference_speed.tiled_synthetic_image((1100, 1500))
    assert large.shape == (1100, 1500) and large.dtype == base.dtype
    np.testing.assert_array_equal(large[: base.shape[0], : base.shape[1]], base)
    # mirrored, so the first row of the second block repeats the last row of the first
    np.testing.assert_array_equal(large[base.shape[0], : base.shape[1]], base[-1])
    small = inference_speed.tiled_synthetic_image((100, 120))
    np.testing.assert_array_equal(small, base[:100, :120])


def test_a_tiny_model_runs_on_a_large_field_and_reports_peak_memory(tmp_path, capsys):
    import nucleus_module_helpers as helpers

    card = helpers.make_unet(tmp_path / "unet-tiny")
    assert inference_speed.main(["--model", str(card), "--size", "700x900", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "image 700 x 900" in out and "peak memory" in out

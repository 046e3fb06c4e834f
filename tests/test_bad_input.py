"""Bad input data: one clear error naming every bad file, before any pipeline runs.

Each case runs the whole runner with a stale ``summary.csv`` in the output
folder and checks that the error names the file and that no summary is left.
Data problems are found before CellProfiler starts, so the "CellProfiler"
given here is a script that fails loudly if it is ever called.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from benchmark import runner
from benchmark.__main__ import main as cli_main
from benchmark.errors import BenchmarkError
from nucleiseg.layouts import DataError


def good_pair(folder: Path, stem: str, shape=(32, 32)) -> None:
    labels = np.zeros(shape, np.uint16)
    labels[4:12, 4:12] = 1
    labels[16:24, 16:26] = 2
    iio.imwrite(folder / "images" / f"{stem}.png", ((labels > 0) * 150 + 20).astype(np.uint8))
    iio.imwrite(folder / "masks" / f"{stem}.png", labels)


@pytest.fixture
def setup(tmp_path):
    """(data folder with two good pairs, output folder with a stale summary, run function)."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    good_pair(data, "good1")
    good_pair(data, "good2")
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("pipeline,images\nstale,1\n")
    never = tmp_path / "never_cellprofiler"
    never.write_text(f"#!{sys.executable}\nimport sys\nsys.exit('CellProfiler must not run on bad data')\n")
    never.chmod(never.stat().st_mode | stat.S_IEXEC)
    pipe = tmp_path / "any.cppipe"
    pipe.write_text("never run\n")

    def run(**kwargs):
        return runner.run_benchmark(
            kwargs.pop("data", data), [str(pipe)], out, split=kwargs.pop("split", None),
            cellprofiler=never, quiet=True, log=lambda s: None, **kwargs,
        )

    return data, out, run


def expect_data_error(run, out: Path, *names: str, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        run(**kwargs)
    message = str(info.value)
    for name in names:
        assert name in message, message
    assert not (out / "summary.csv").exists()
    assert not (out / "per_image.csv").exists()
    return message


def test_missing_data_folder(setup, tmp_path):
    _, out, run = setup
    expect_data_error(run, out, str(tmp_path / "nowhere"), data=tmp_path / "nowhere")


def test_missing_masks_folder(setup):
    data, out, run = setup
    for path in (data / "masks").iterdir():
        path.unlink()
    (data / "masks").rmdir()
    expect_data_error(run, out, str(data / "masks"))


def test_images_without_masks_are_all_named(setup):
    data, out, run = setup
    good_pair(data, "lonely1")
    good_pair(data, "lonely2")
    (data / "masks" / "lonely1.png").unlink()
    (data / "masks" / "lonely2.png").unlink()
    message = expect_data_error(run, out, "lonely1.png", "lonely2.png")
    assert "without a mask" in message


def test_shape_mismatch(setup):
    data, out, run = setup
    good_pair(data, "odd")
    iio.imwrite(data / "masks" / "odd.png", np.ones((30, 32), np.uint16))
    message = expect_data_error(run, out, "odd.png")
    assert "shapes differ" in message and "(32, 32)" in message and "(30, 32)" in message


def test_colour_image(setup):
    data, out, run = setup
    good_pair(data, "rgb")
    iio.imwrite(data / "images" / "rgb.png", np.zeros((32, 32, 3), np.uint8))
    message = expect_data_error(run, out, "rgb.png")
    assert "colour" in message


def test_3d_image(setup):
    data, out, run = setup
    good_pair(data, "stack")
    (data / "images" / "stack.png").unlink()
    tifffile.imwrite(data / "images" / "stack.tif", np.zeros((5, 32, 32), np.uint16))
    message = expect_data_error(run, out, "stack.tif")
    assert "3-D" in message


def test_empty_mask_is_an_error_by_default(setup):
    data, out, run = setup
    good_pair(data, "empty")
    iio.imwrite(data / "masks" / "empty.png", np.zeros((32, 32), np.uint16))
    message = expect_data_error(run, out, "empty.png")
    assert "empty mask" in message and "allow empty masks" in message


def test_empty_mask_allowed_gives_a_warning(setup, tmp_path):
    data, out, _ = setup
    good_pair(data, "empty")
    iio.imwrite(data / "masks" / "empty.png", np.zeros((32, 32), np.uint16))
    from nucleiseg import layouts

    seen = []
    sel, written = layouts.prepare(data, tmp_path / "input", allow_empty_masks=True, warn=seen.append)
    assert [p.stem for p in written] == ["empty", "good1", "good2"]
    assert seen == [f"{data / 'masks' / 'empty.png'}: empty mask (no nuclei); scored anyway (every prediction is a false positive)"]
    assert tifffile.imread(written[0].mask).max() == 0


def test_unreadable_files(setup):
    data, out, run = setup
    good_pair(data, "broken")
    (data / "images" / "broken.png").write_bytes(b"not a png at all")
    good_pair(data, "broken_mask")
    (data / "masks" / "broken_mask.png").write_bytes(b"\x89PNG truncated")
    message = expect_data_error(run, out, "broken.png", "broken_mask.png")
    assert "cannot read" in message


def test_float_mask(setup):
    data, out, run = setup
    good_pair(data, "floaty")
    (data / "masks" / "floaty.png").unlink()
    tifffile.imwrite(data / "masks" / "floaty.tif", np.full((32, 32), 0.5, np.float32))
    expect_data_error(run, out, "floaty.tif", "integers")


def test_image_with_nan_pixels(setup):
    data, out, run = setup
    good_pair(data, "holes")
    (data / "images" / "holes.png").unlink()
    image = np.full((32, 32), 0.2, np.float32)
    image[5, 7] = np.nan
    image[6, 7] = np.inf
    tifffile.imwrite(data / "images" / "holes.tif", image)
    message = expect_data_error(run, out, "holes.tif")
    assert "2 pixel(s) are NaN or infinite" in message


def test_split_lists_missing_image(setup):
    data, out, run = setup
    (data / "val.txt").write_text("good1\nghost\n")
    expect_data_error(run, out, "ghost", "val.txt", split="val")


def test_all_problems_in_one_error(setup):
    data, out, run = setup
    good_pair(data, "nomask")
    (data / "masks" / "nomask.png").unlink()
    good_pair(data, "rgb")
    iio.imwrite(data / "images" / "rgb.png", np.zeros((32, 32, 3), np.uint8))
    good_pair(data, "empty")
    iio.imwrite(data / "masks" / "empty.png", np.zeros((32, 32), np.uint16))
    with pytest.raises(DataError) as info:
        run()
    assert len(info.value.problems) == 3
    assert not (out / "summary.csv").exists()


def test_non_consecutive_labels_are_accepted(setup, tmp_path):
    data, _, _ = setup
    labels = np.zeros((32, 32), np.uint16)
    labels[2:8, 2:8] = 5
    labels[20:28, 20:28] = 900
    iio.imwrite(data / "masks" / "good1.png", labels)
    from nucleiseg import layouts

    _, written = layouts.prepare(data, tmp_path / "input")
    assert written[0].stem == "good1"
    mask = tifffile.imread(written[0].mask)
    assert sorted(np.unique(mask)) == [0, 1, 2]
    assert np.array_equal(mask == 1, labels == 5) and np.array_equal(mask == 2, labels == 900)


def test_cli_reports_data_error(setup, capsys):
    data, out, _ = setup
    good_pair(data, "orphan")
    (data / "masks" / "orphan.png").unlink()
    status = cli_main(["run", "--data", str(data), "--split", "all", "--pipelines",
                       str(data.parent / "any.cppipe"), "--out", str(out), "--quiet"])
    assert status == 2
    err = capsys.readouterr().err
    assert "orphan.png" in err and "error:" in err
    assert not (out / "summary.csv").exists()


def test_output_inside_data_is_refused(setup):
    data, _, _ = setup
    with pytest.raises(BenchmarkError):
        runner.run_benchmark(data, [str(data.parent / "any.cppipe")], data / "results", quiet=True, log=lambda s: None)
    assert not (data / "results").exists()

"""The robustness benchmark, with a stand-in CellProfiler (see test_runner.py for the real-run tests)."""

import csv
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark import robustness
from benchmark.errors import BenchmarkError
from nucleiseg import layouts, perturbations, synthetic

# Stand-in for cellprofiler: "perfect" returns the ground truth, "otsu" thresholds the image.
FAKE = """\
#!{python}
import pathlib, sys
import numpy as np, tifffile
from scipy import ndimage
from skimage.filters import threshold_otsu
args = sys.argv[1:]
mode = pathlib.Path(args[args.index("-p") + 1]).read_text().strip()
out = pathlib.Path(args[args.index("-o") + 1])
files = [pathlib.Path(f) for f in pathlib.Path(args[args.index("--file-list") + 1]).read_text().split()]
(out / "labels").mkdir(parents=True, exist_ok=True)
for number, path in enumerate(sorted(f for f in files if f.parent.name == "images"), 1):
    if mode == "perfect":
        labels = tifffile.imread(path.parent.parent / "masks" / path.name)
    else:
        image = tifffile.imread(path).astype(float)
        labels = ndimage.label(image > threshold_otsu(image))[0].astype(np.uint16)
    tifffile.imwrite(out / "labels" / (path.stem + ".tiff"), labels)
    print(f"[CP - INFO] x: Mon Jan  1 00:00:00 2026: Image # {{number}}, module IdentifyPrimaryObjects # 3: "
          f"CPU_time = 0.01 secs, Wall_time = 0.01 secs", file=sys.stderr)
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("robust")
    data = folder / "data"
    synthetic.generate(data, n=4, size=96, seed=2)
    fake = folder / "fake_cellprofiler"
    fake.write_text(FAKE.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    pipes = {}
    for mode in ("perfect", "otsu"):
        pipes[mode] = folder / f"{mode}.cppipe"
        pipes[mode].write_text(mode + "\n")
    return data, fake, pipes


def run(setup, out, names=None):
    data, fake, pipes = setup
    return robustness.run_robustness(data, [str(pipes["perfect"]), str(pipes["otsu"])], out, split="all", names=names,
                                     workers=1, quiet=True, log=lambda text: None, cellprofiler=fake, command="test")


def test_every_condition_is_scored_and_labels_follow_the_perturbed_images(setup, tmp_path):
    data, _, _ = setup
    before = sorted(p.name for p in data.rglob("*"))
    out = tmp_path / "out"
    rows = run(setup, out)
    conditions = [robustness.CLEAN, *perturbations.PERTURBATIONS]
    assert [(r["condition"], r["pipeline"]) for r in rows] == [(c, p) for c in conditions for p in ("perfect", "otsu")]
    # Ground truth handed back scores 1 everywhere: the masks were perturbed (rescaled) with their images.
    assert all(r["f1_mean"] == 1.0 and r["change_from_clean"] == 0.0 for r in rows if r["pipeline"] == "perfect")
    otsu = {r["condition"]: r for r in rows if r["pipeline"] == "otsu"}
    assert otsu["noise"]["f1_mean"] < otsu[robustness.CLEAN]["f1_mean"]
    assert otsu["noise"]["change_from_clean"] == pytest.approx(otsu["noise"]["f1_mean"] - otsu["clean"]["f1_mean"], abs=2e-4)
    # The copies live under OUT, never in the data folder.
    assert sorted(p.name for p in data.rglob("*")) == before
    stem = layouts.list_pairs(data, None)[0].stem
    doubled = layouts.read_labels(out / "data" / "scale_2x" / "masks" / f"{stem}.tiff")
    assert doubled.shape == (192, 192)
    with open(out / "robustness.csv", newline="") as handle:
        assert [r["condition"] for r in csv.DictReader(handle)] == [c for c in conditions for _ in range(2)]
    text = (out / "robustness.md").read_text()
    assert all(f"| {c} |" in text for c in conditions) and "Findings" in text
    figure = robustness.plot(rows)
    heights = [bar.get_height() for bar in figure.axes[0].patches]
    assert heights[: len(conditions)] == [1.0] * len(conditions)  # the 'perfect' series comes first
    assert heights[len(conditions):] == [otsu[c]["f1_mean"] for c in conditions]


def test_findings_flag_large_drops_and_a_network_below_the_baseline():
    results = {"clean": [{"pipeline": "unet", "images": 2, "f1_mean": 0.8, "error_rate_070": 0.2, "missed_tiny": 1},
                         {"pipeline": "advanced", "images": 2, "f1_mean": 0.7, "error_rate_070": 0.3, "missed_tiny": 2}],
               "blur": [{"pipeline": "unet", "images": 2, "f1_mean": 0.6, "error_rate_070": 0.4, "missed_tiny": 3},
                        {"pipeline": "advanced", "images": 2, "f1_mean": 0.68, "error_rate_070": 0.3, "missed_tiny": 2}]}
    lines = robustness.findings(robustness.robustness_rows(results))
    assert lines == ["- unet loses 0.200 under blur (more than 0.05)",
                     "- under blur, unet (0.600) is not above advanced (0.680)"]


def test_bad_requests_are_refused_before_any_work(setup, tmp_path):
    data, _, _ = setup
    with pytest.raises(BenchmarkError, match="inside the data folder"):
        robustness.run_robustness(data, ["basic"], data / "out", split="all", log=lambda text: None)
    with pytest.raises(ValueError, match="unknown perturbation"):
        robustness.run_robustness(data, ["basic"], tmp_path / "o", names=["sepia"], log=lambda text: None)
    assert not (data / "out").exists() and not (tmp_path / "o").exists()


def test_an_interrupted_copy_is_redone(setup, tmp_path):
    data, _, _ = setup
    dest = tmp_path / "data" / "blur"
    partial = dest.with_name("blur.partial")
    (partial / "images").mkdir(parents=True)
    (partial / "images" / "junk.tiff").write_bytes(b"x")
    assert robustness.write_perturbed(data, None, None, "blur", dest) == 4
    assert not partial.exists() and len(list((dest / "images").glob("*.tiff"))) == 4
    first = layouts.read_image(next((dest / "images").glob("*.tiff")))
    assert np.isfinite(first.astype(float)).all()

"""End-to-end tests of the benchmark runner.

Most tests replace CellProfiler by a tiny fake executable (it copies the ground
truth as the prediction, or fails on purpose) so that the runner's sharding,
timing, scoring and output contract are checked in well under a second each.
One test runs real headless CellProfiler on two small synthetic images.
"""

from __future__ import annotations

import csv
import stat
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from benchmark import resume, runner, shards
from benchmark.__main__ import main as cli_main
from benchmark.errors import BenchmarkError, PipelineError
from benchmark.scoring import read_prediction
from nucleiseg import layouts, metric, synthetic

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "dsb2018-fluo"

# A minimal real pipeline following docs/CONVENTIONS.md (NamesAndTypes DNA / GroundTruth matched
# by Stem, IdentifyPrimaryObjects -> Nuclei, 16-bit labels into labels/<stem>.tiff). Written with
# the cellprofiler_core API and dumped; used when pipelines/basic.cppipe does not exist yet.
MINIMAL_CPPIPE = r'''CellProfiler Pipeline: http://www.cellprofiler.org
Version:5
DateRevision:500
GitHash:
ModuleCount:7
HasImagePlaneDetails:False

Images:[module_num:1|svn_version:'Unknown'|variable_revision_number:3|show_window:False|notes:[]|batch_state:array([], dtype=uint8)|enabled:True|wants_pause:False]
    :
    Filter images?:Images only
    Select the rule criteria:and (extension does isimage) (directory doesnot containregexp "[\\\\/]\\.")
    Extract image planes:No
    Split channels:Yes
    Split z-planes:Yes
    Split timepoints:Yes

Metadata:[module_num:2|svn_version:'Unknown'|variable_revision_number:7|show_window:False|notes:[]|batch_state:array([], dtype=uint8)|enabled:True|wants_pause:False]
    Extract metadata?:Yes
    Metadata data type:Text
    Metadata types:{}
    Extraction method count:1
    Metadata extraction method:Extract from file/folder names
    Metadata source:File name
    Regular expression to extract from file name:^(?P<Stem>.*)\.(tif|tiff|png)$
    Regular expression to extract from folder name:(?P<Date>[0-9]{4}_[0-9]{2}_[0-9]{2})$
    Extract metadata from:All images
    Select the filtering criteria:and (file does contain "")
    Metadata file location:Elsewhere...|
    Match file and image metadata:[]
    Use case insensitive matching?:No
    Metadata file name:None

NamesAndTypes:[module_num:3|svn_version:'Unknown'|variable_revision_number:9|show_window:False|notes:[]|batch_state:array([], dtype=uint8)|enabled:True|wants_pause:False]
    Assign a name to:Images matching rules
    Select the image type:Grayscale image
    Name to assign these images:DNA
    Match metadata:[{'DNA': 'Stem', 'GroundTruth': 'Stem'}]
    Image set matching method:Metadata
    Set intensity range from:Image bit-depth
    Assignments count:2
    Single images count:0
    Maximum intensity:255.0
    Process as 3D?:No
    Relative pixel spacing in X:1.0
    Relative pixel spacing in Y:1.0
    Relative pixel spacing in Z:1.0
    Select the rule criteria:and (directory does endwith "images")
    Name to assign these images:DNA
    Name to assign these objects:Cell
    Select the image type:Grayscale image
    Set intensity range from:Image metadata
    Maximum intensity:255.0
    Select the rule criteria:and (directory does endwith "masks")
    Name to assign these images:GFP
    Name to assign these objects:GroundTruth
    Select the image type:Objects
    Set intensity range from:Image metadata
    Maximum intensity:255.0

Groups:[module_num:4|svn_version:'Unknown'|variable_revision_number:2|show_window:False|notes:[]|batch_state:array([], dtype=uint8)|enabled:True|wants_pause:False]
    Do you want to group your images?:No
    grouping metadata count:1
    Metadata category:None

IdentifyPrimaryObjects:[module_num:5|svn_version:'Unknown'|variable_revision_number:15|show_window:False|notes:[]|batch_state:array([], dtype=uint8)|enabled:True|wants_pause:False]
    Select the input image:DNA
    Name the primary objects to be identified:Nuclei
    Typical diameter of objects, in pixel units (Min,Max):3,60
    Discard objects outside the diameter range?:No
    Discard objects touching the border of the image?:No
    Method to distinguish clumped objects:Intensity
    Method to draw dividing lines between clumped objects:Intensity
    Size of smoothing filter:10
    Suppress local maxima that are closer than this minimum allowed distance:7.0
    Speed up by using lower-resolution image to find local maxima?:Yes
    Fill holes in identified objects?:After both thresholding and declumping
    Automatically calculate size of smoothing filter for declumping?:Yes
    Automatically calculate minimum allowed distance between local maxima?:Yes
    Handling of objects if excessive number of objects identified:Continue
    Maximum number of objects:500
    Use advanced settings?:No
    Threshold setting version:12
    Threshold strategy:Global
    Thresholding method:Minimum Cross-Entropy
    Threshold smoothing scale:1.3488
    Threshold correction factor:1.0
    Lower and upper bounds on threshold:0.0,1.0
    Manual threshold:0.0
    Select the measurement to threshold with:None
    Two-class or three-class thresholding?:Two classes
    Log transform before thresholding?:No
    Assign pixels in the middle intensity class to the foreground or the background?:Foreground
    Size of adaptive window:50
    Lower outlier fraction:0.05
    Upper outlier fraction:0.05
    Averaging method:Mean
    Variance method:Standard deviation
    # of deviations:2.0
    Thresholding method:Minimum Cross-Entropy

ConvertObjectsToImage:[module_num:6|svn_version:'Unknown'|variable_revision_number:1|show_window:False|notes:[]|batch_state:array([], dtype=uint8)|enabled:True|wants_pause:False]
    Select the input objects:Nuclei
    Name the output image:NucleiLabels
    Select the color format:uint16
    Select the colormap:Default

SaveImages:[module_num:7|svn_version:'Unknown'|variable_revision_number:16|show_window:False|notes:[]|batch_state:array([], dtype=uint8)|enabled:True|wants_pause:False]
    Select the type of image to save:Image
    Select the image to save:NucleiLabels
    Select method for constructing file names:From image filename
    Select image name for file prefix:DNA
    Enter single file name:OrigBlue
    Number of digits:4
    Append a suffix to the image file name?:No
    Text to append to the image name:
    Saved file format:tiff
    Output file location:Default Output Folder sub-folder|labels
    Image bit depth:16-bit integer
    Overwrite existing files without warning?:Yes
    When to save:Every cycle
    Record the file and path information to the saved image?:No
    Create subfolders in the output folder?:No
    Base image folder:Elsewhere...|
    How to save the series:T (Time)
    Save with lossless compression?:No
'''

FAKE_CELLPROFILER = """\
#!{python}
# Stand-in for cellprofiler: the pipeline file holds a mode word instead of a pipeline.
import pathlib, sys, time
import numpy as np, tifffile

args = sys.argv[1:]
mode = pathlib.Path(args[args.index("-p") + 1]).read_text().strip()
out = pathlib.Path(args[args.index("-o") + 1])
files = pathlib.Path(args[args.index("--file-list") + 1]).read_text().split()
print("fake CellProfiler starting", file=sys.stderr)
if mode == "flaky":
    # Fails on the first attempt of each shard, like a worker lost once.
    marker = out.parent.parent / (".flaky-" + out.name)
    if not marker.exists():
        marker.touch()
        print("fake transient failure", file=sys.stderr)
        sys.exit(3)
if mode == "sleep":
    time.sleep(120)
if mode == "fail":
    print("Traceback (most recent call last):", file=sys.stderr)
    print("ValueError: fake failure inside IdentifyPrimaryObjects", file=sys.stderr)
    sys.exit(1)
masks = [pathlib.Path(f) for f in files if pathlib.Path(f).parent.name == "masks"]
(out / "labels").mkdir(parents=True, exist_ok=True)
for number, mask in enumerate(masks, 1):
    if mode == "nolabels":
        continue
    labels = tifffile.imread(mask)
    if mode == "uint8":
        labels = labels.astype(np.uint8)
    if mode == "dropeven":  # every even-numbered nucleus left out: missed, nothing drawn there
        labels = np.where(labels % 2 == 0, 0, labels)
    tifffile.imwrite(out / "labels" / (mask.stem + ".tiff"), labels)
    for module, wall in (("NamesAndTypes", 0.05), ("IdentifyPrimaryObjects", 0.20)):
        print(f"[CP - INFO] x: Mon Jan  1 00:00:00 2026: Image # {{number}}, module {{module}} # 3: "
              f"CPU_time = 0.01 secs, Wall_time = {{wall:.2f}} secs", file=sys.stderr)
    time.sleep(0.02)
"""


def make_fake_cellprofiler(folder: Path) -> Path:
    """Write the fake executable; returns its path."""
    path = folder / "fake_cellprofiler"
    path.write_text(FAKE_CELLPROFILER.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def make_mode_pipeline(folder: Path, mode: str) -> Path:
    """A '.cppipe' for the fake executable (its text is the mode)."""
    path = folder / f"{mode}.cppipe"
    path.write_text(mode + "\n")
    return path


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """Three synthetic 256 x 256 images; synth_001 is the dense one (> 255 nuclei)."""
    folder = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(folder, n=3, seed=1)
    return folder


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------


def test_shard_round_robin():
    assert shards.shard(list(range(7)), 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert shards.shard([1, 2], 8) == [[1], [2]]
    assert shards.shard([], 4) == []


def test_missing_pipeline_is_named(tmp_path, small_set):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.csv").write_text("stale\n")
    with pytest.raises(BenchmarkError) as info:
        runner.run_benchmark(small_set, ["basic", "no_such_pipeline"], tmp_path / "out", pipelines_dir=tmp_path)
    assert "no_such_pipeline" in str(info.value) and "basic" in str(info.value)
    assert not (tmp_path / "out" / "summary.csv").exists()


# --------------------------------------------------------------------------------------------
# Whole runs with the fake CellProfiler
# --------------------------------------------------------------------------------------------


def test_fake_run_writes_output_contract(tmp_path, small_set):
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "perfect")
    out = tmp_path / "out"
    (out / "perfect" / "labels").mkdir(parents=True)
    (out / "perfect" / "labels" / "stale.tiff").write_bytes(b"old")
    result = runner.run_benchmark(
        small_set, [str(pipe)], out, split="all", workers=2, cellprofiler=fake, quiet=True, log=lambda s: None
    )
    columns, rows = read_csv(out / "summary.csv")
    assert columns[:22] == (
        "pipeline,images,nuclei,f1_mean,f1_050,f1_055,f1_060,f1_065,f1_070,f1_075,f1_080,f1_085,"
        "f1_090,f1_095,error_rate_070,missed_tiny,missed_small,missed_normal,missed_large,merges,splits,"
        "sec_per_image"
    ).split(",")
    (row,) = rows
    truth = [layouts.read_labels(p) for p in sorted((small_set / "masks").glob("*.png"))]
    assert row["pipeline"] == "perfect" and int(row["images"]) == 3
    assert int(row["nuclei"]) == sum(int(t.max()) for t in truth)
    assert float(row["f1_mean"]) == pytest.approx(1.0) and float(row["f1_095"]) == pytest.approx(1.0)
    assert int(row["merges"]) == 0 and int(row["splits"]) == 0
    # Two fake modules of 0.05 + 0.20 s per image.
    assert float(row["sec_per_image"]) == pytest.approx(0.25)
    assert int(row["shards"]) == 2

    _, per_image = read_csv(out / "per_image.csv")
    assert sorted(r["image"] for r in per_image) == ["synth_000", "synth_001", "synth_002"]
    assert {r["shard"] for r in per_image} == {"0", "1"}
    labels = sorted((out / "perfect" / "labels").iterdir())
    assert [p.name for p in labels] == ["synth_000.tiff", "synth_001.tiff", "synth_002.tiff"]
    dense = tifffile.imread(out / "perfect" / "labels" / "synth_001.tiff")
    assert dense.dtype == np.uint16 and dense.max() > 255
    # What the plots show is checked in test_report; here, that the run writes them.
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "examples.png", "f1_vs_iou.png", "merges_splits.png", "missed_by_size.png", "seconds_per_image.png"]
    assert "| perfect | 3 |" in (out / "report.md").read_text()
    assert result.summary[0]["images"] == 3
    assert not list(out.glob(".*.tmp"))


def test_missed_nuclei_are_put_down_to_causes_in_the_tables_and_the_report(tmp_path, small_set):
    fake = make_fake_cellprofiler(tmp_path)
    out = tmp_path / "out"
    runner.run_benchmark(small_set, [str(make_mode_pipeline(tmp_path, "dropeven"))], out, split="all", workers=1,
                         cellprofiler=fake, quiet=True, log=lambda s: None)
    _, (row,) = read_csv(out / "summary.csv")
    missed = sum(int(row[f"missed_{b}"]) for b in ("tiny", "small", "normal", "large"))
    truth = [layouts.read_labels(p) for p in sorted((small_set / "masks").glob("*.png"))]
    assert missed == sum(len(np.unique(t[(t > 0) & (t % 2 == 0)])) for t in truth) > 0
    assert int(row["missed_not_found"]) == missed and int(row["missed_tiny_not_found"]) == int(row["missed_tiny"])
    assert all(int(row[f"missed_{c}"]) == 0 for c in ("merged", "split", "too_large", "too_small"))
    _, per_image = read_csv(out / "per_image.csv")
    assert sum(int(r["missed_not_found"]) for r in per_image) == missed
    report = (out / "report.md").read_text()
    assert "| pipeline | not found | merged | split | too large | too small |" in report
    assert f"| dropeven | {missed} ({row['missed_tiny']}) | 0 (0) |" in report
    # The nuclei it drew are the truth's own: outlines of the true size, in the table and per image.
    assert float(row[metric.AREA_RATIO_KEY]) == 1.0 and all(float(r[metric.AREA_RATIO_KEY]) == 1.0 for r in per_image)
    assert "| dropeven | 1.00 |" in report and "nuclei, outlines 1.00 x true area)" in report


def test_labels_over_255_round_trip_as_16_bit(tmp_path, small_set):
    """Ground truth with > 255 nuclei goes out to CellProfiler and comes back as 16-bit labels."""
    pair = [p for p in layouts.list_pairs(small_set) if p.stem == "synth_001"]
    truth = layouts.read_labels(pair[0].mask)
    assert truth.max() > 255
    (written,) = layouts.materialize(pair, tmp_path / "input")
    stored = tifffile.imread(written.mask)
    assert stored.dtype == np.uint16 and np.array_equal(stored, truth)
    # The runner's reading of predicted labels keeps every label above 255.
    pred, warning = read_prediction(written.mask, truth.shape, "x")
    assert warning is None and np.array_equal(pred, truth)


def test_8_bit_predictions_are_rewritten_as_16_bit(tmp_path, small_set):
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "uint8")
    out = tmp_path / "out"
    runner.run_benchmark(small_set, [str(pipe)], out, split="train", workers=1, cellprofiler=fake, quiet=True, log=lambda s: None)
    (path,) = (out / "uint8" / "labels").iterdir()
    assert tifffile.imread(path).dtype == np.uint16


def test_failing_pipeline_names_it_and_shows_log_tail(tmp_path, small_set):
    fake = make_fake_cellprofiler(tmp_path)
    good = make_mode_pipeline(tmp_path, "perfect")
    bad = make_mode_pipeline(tmp_path, "fail")
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("stale\n")
    with pytest.raises(PipelineError) as info:
        runner.run_benchmark(
            small_set, [str(good), str(bad)], out, split="all", workers=2, cellprofiler=fake, quiet=True, log=lambda s: None
        )
    message = str(info.value)
    assert "'fail'" in message and "status 1" in message
    assert "fake failure inside IdentifyPrimaryObjects" in message
    assert info.value.pipeline == "fail"
    assert not (out / "summary.csv").exists()


def test_resume_reuses_only_pipelines_finished_with_the_same_file_on_the_same_images(tmp_path, small_set, monkeypatch):
    import shutil

    data = tmp_path / "data"  # a private copy: its ground truth is changed below
    shutil.copytree(small_set, data)
    fake = make_fake_cellprofiler(tmp_path)
    good = make_mode_pipeline(tmp_path, "perfect")
    bad = make_mode_pipeline(tmp_path, "fail")
    out = tmp_path / "out"
    with pytest.raises(PipelineError):
        runner.run_benchmark(data, [str(good), str(bad)], out, split="all", workers=2, cellprofiler=fake,
                             quiet=True, log=lambda s: None)
    assert (out / "perfect" / resume.PIPELINE_RECORD).is_file() and not (out / "fail" / resume.PIPELINE_RECORD).exists()
    first_log = out / "perfect" / "logs" / "shard_00.log"
    first_log.write_text(first_log.read_text() + "# marker: this log survives a resumed run\n")
    reused = "reused from the earlier run"

    def run(pipelines, **options):
        lines = []
        result = runner.run_benchmark(data, [str(p) for p in pipelines], out, workers=2, cellprofiler=fake,
                                      quiet=True, log=lines.append, **{"split": "all", **options})
        return result, "\n".join(lines)

    fixed = make_mode_pipeline(tmp_path, "uint8")
    result, lines = run([good, fixed], resume=True)
    assert f"[perfect] CellProfiler results and timings {reused}" in lines and f"[uint8] CellProfiler results" not in lines
    assert [s["pipeline"] for s in result.summary] == ["perfect", "uint8"]
    assert result.summary[0]["f1_mean"] == pytest.approx(1.0) and result.summary[0]["sec_per_image"] == pytest.approx(0.25)
    _, rows = read_csv(out / "per_image.csv")
    assert sorted(r["pipeline"] for r in rows) == ["perfect"] * 3 + ["uint8"] * 3
    assert reused in (out / "report.md").read_text()  # listed under Warnings
    assert "# marker" in first_log.read_text()  # the reused pipeline's files were left alone

    # Reused labels are scored again: corrected ground truth is never compared with stale scores.
    mask = data / "masks" / "synth_000.png"
    truth = layouts.read_labels(mask)
    truth[truth == truth.max()] = 0  # one nucleus fewer in the ground truth
    iio.imwrite(mask, truth.astype(np.uint16))
    result, lines = run([good], resume=True)
    assert reused in lines and result.summary[0]["f1_mean"] < 1.0

    # Another selection of images, a changed pipeline file or code/model checksum, a missing
    # label file, or no --resume: CellProfiler runs again.
    _, lines = run([good], resume=True, split="train")
    assert reused not in lines
    _, lines = run([good], resume=True)
    assert reused not in lines  # the record now belongs to the train-only run
    _, lines = run([good], resume=True)
    assert reused in lines
    good.write_text("perfect\n\n")
    _, lines = run([good], resume=True)
    assert reused not in lines
    _, lines = run([good], resume=True)
    assert reused in lines
    monkeypatch.setattr(resume, "code_and_models_sha256", lambda plugins_dir=None: "another model or plug-in")
    _, lines = run([good], resume=True)
    assert reused not in lines
    (out / "perfect" / "labels" / "synth_001.tiff").unlink()
    _, lines = run([good], resume=True)
    assert reused not in lines and (out / "perfect" / "labels" / "synth_001.tiff").is_file()
    _, lines = run([good])
    assert reused not in lines and (out / "perfect" / resume.PIPELINE_RECORD).is_file()


def test_pipeline_without_labels_is_an_error(tmp_path, small_set):
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "nolabels")
    with pytest.raises(PipelineError) as info:
        runner.run_benchmark(small_set, [str(pipe)], tmp_path / "out", split="all", cellprofiler=fake, quiet=True, log=lambda s: None)
    assert "synth_000" in str(info.value) and "labels" in str(info.value)
    assert not (tmp_path / "out" / "summary.csv").exists()


def test_cli_synthetic_with_fake(tmp_path, monkeypatch, capsys):
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "perfect")
    monkeypatch.setattr(shards, "find_cellprofiler", lambda: fake)
    status = cli_main(["run", "--data", "synthetic", "--split", "val", "--pipelines", str(pipe), "--out",
                       str(tmp_path / "out"), "--limit", "2", "--quiet", "--synthetic-n", "6"])
    assert status == 0, capsys.readouterr().err
    _, rows = read_csv(tmp_path / "out" / "summary.csv")
    assert rows[0]["images"] == "2"


# --------------------------------------------------------------------------------------------
# Real headless CellProfiler
# --------------------------------------------------------------------------------------------


def real_pipeline(tmp_path: Path) -> Path:
    """pipelines/basic.cppipe when it exists, else the minimal pipeline above."""
    shipped = REPO / "pipelines" / "basic.cppipe"
    if shipped.is_file():
        return shipped
    path = tmp_path / "minimal.cppipe"
    path.write_text(MINIMAL_CPPIPE)
    return path


def test_real_cellprofiler_run(tmp_path):
    """Two small synthetic images through real headless CellProfiler, two processes."""
    try:
        shards.find_cellprofiler()
    except BenchmarkError as error:
        pytest.skip(str(error))
    data = tmp_path / "data"
    synthetic.generate(data, n=2, seed=3, size=128)
    pipe = real_pipeline(tmp_path)
    out = tmp_path / "out"
    result = runner.run_benchmark(data, [str(pipe)], out, split="all", workers=2, quiet=True, log=lambda s: None)
    (row,) = result.summary
    assert row["images"] == 2 and row["nuclei"] > 0
    assert 0.0 <= row["f1_mean"] <= 1.0 and row["predicted"] > 0
    assert row["sec_per_image"] > 0 and row["startup_sec"] > 0
    for stem in ("synth_000", "synth_001"):
        labels = tifffile.imread(out / pipe.stem / "labels" / f"{stem}.tiff")
        assert labels.dtype == np.uint16 and labels.shape == (128, 128)
    logs = list((out / pipe.stem / "logs").glob("shard_*.log"))
    assert len(logs) == 2
    assert (out / "summary.csv").is_file() and (out / "report.md").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared dsb2018-fluo data not present")
def test_real_data_basic_pipelines(tmp_path):
    """Shipped pipelines on a few real validation images."""
    names = [n for n in ("basic", "advanced") if (REPO / "pipelines" / f"{n}.cppipe").is_file()]
    if not names:
        pytest.skip("no shipped pipelines yet")
    result = runner.run_benchmark(SHARED_DATA, names, tmp_path / "out", split="val", limit=4, quiet=True, log=lambda s: None)
    for row in result.summary:
        assert row["images"] == 4 and row["f1_050"] > 0.3, row


def test_relative_output_folder(tmp_path, small_set, monkeypatch):
    """A relative --out must reach the CellProfiler processes as the same folder."""
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "perfect")
    monkeypatch.chdir(tmp_path)
    runner.run_benchmark(small_set, [str(pipe)], Path("rel-out"), split="all", workers=2, cellprofiler=fake, quiet=True, log=lambda s: None)
    _, rows = read_csv(tmp_path / "rel-out" / "summary.csv")
    assert float(rows[0]["f1_mean"]) == pytest.approx(1.0)
    assert sorted(p.name for p in (tmp_path / "rel-out" / "perfect" / "labels").iterdir())[0] == "synth_000.tiff"


def test_resume_checksum_covers_the_cellprofiler_side_package(tmp_path, monkeypatch):
    """A change to the module base class (nucleiseg_cellprofiler) must invalidate reused results."""
    import shutil

    import nucleiseg_cellprofiler

    copy = tmp_path / "nucleiseg_cellprofiler"
    shutil.copytree(Path(nucleiseg_cellprofiler.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(nucleiseg_cellprofiler, "__file__", str(copy / "__init__.py"))
    before = resume.code_and_models_sha256()
    assert resume.code_and_models_sha256() == before
    with open(copy / "pipelines" / "kinds.py", "a") as handle:
        handle.write("\n# changed\n")
    assert resume.code_and_models_sha256() != before

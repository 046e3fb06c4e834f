"""The EvaluateObjectF1 CellProfiler module inside a hand-built CellProfiler workspace."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

cellprofiler_core = pytest.importorskip("cellprofiler_core")
import cellprofiler_core.preferences as preferences  # noqa: E402

# Must precede the first Measurements(): otherwise preferences try to import wx.
preferences.set_headless()

from cellprofiler_core.constants.measurement import (  # noqa: E402
    COLTYPE_FLOAT,
    COLTYPE_INTEGER,
    EXPERIMENT,
    IMAGE,
    MCA_AVAILABLE_POST_RUN,
)
from cellprofiler_core.image import ImageSetList  # noqa: E402
from cellprofiler_core.measurement import Measurements  # noqa: E402
from cellprofiler_core.object import Objects, ObjectSet  # noqa: E402
from cellprofiler_core.pipeline import Pipeline  # noqa: E402
from cellprofiler_core.setting import ValidationError  # noqa: E402
from cellprofiler_core.utilities.core.modules import add_module_for_tst  # noqa: E402
from cellprofiler_core.workspace import Workspace  # noqa: E402

from plugin_files import load_plugin  # noqa: E402

from nucleiseg.metric import OUTCOME_COLOURS  # noqa: E402
from nucleiseg_cellprofiler.names import GROUND_TRUTH, MASKS_FOLDER, NUCLEI  # noqa: E402
from nucleiseg_cellprofiler.pipelines import modules as pipeline_modules  # noqa: E402

evaluateobjectf1 = load_plugin("evaluateobjectf1")
EvaluateObjectF1 = evaluateobjectf1.EvaluateObjectF1


def square(shape, top, left, height, width, label, out):
    out[top : top + height, left : left + width] = label
    return out


def image_pairs():
    """Two image sets: a perfect prediction of two nuclei, then one nucleus missed and a merge."""
    shape = (40, 40)
    gt1 = np.zeros(shape, np.int32)
    square(shape, 2, 2, 10, 10, 1, gt1)
    square(shape, 20, 20, 10, 10, 2, gt1)
    pred1 = gt1.copy()
    gt2 = np.zeros(shape, np.int32)
    square(shape, 2, 2, 10, 10, 1, gt2)
    square(shape, 2, 12, 10, 10, 2, gt2)  # touches nucleus 1
    square(shape, 25, 25, 8, 8, 3, gt2)
    pred2 = np.zeros(shape, np.int32)
    square(shape, 2, 2, 10, 20, 1, pred2)  # merges nuclei 1 and 2; nucleus 3 missed
    return [(gt1, pred1), (gt2, pred2)]


@pytest.fixture
def measurements():
    m = Measurements()
    yield m
    m.close()


def make_module(**settings):
    module = EvaluateObjectF1()
    module.set_module_num(1)
    for name, value in settings.items():
        getattr(module, name).value = value
    pipeline = Pipeline()
    pipeline.add_module(module)
    return module, pipeline


def run_all(module, pipeline, measurements, pairs, show_window=False):
    """Run the module on every (gt, pred) pair as successive image sets, then post_run."""
    module.show_window = show_window
    image_set_list = ImageSetList()
    workspaces = []
    for i, (gt, pred) in enumerate(pairs):
        if i:
            measurements.next_image_set()
        object_set = ObjectSet()
        for name, labels in ((GROUND_TRUTH, gt), (NUCLEI, pred)):
            objects = Objects()
            objects.segmented = labels
            object_set.add_objects(objects, name)
        workspace = Workspace(pipeline, module, image_set_list.get_image_set(i), object_set, measurements, image_set_list)
        module.run(workspace)
        workspaces.append(workspace)
    module.post_run(workspaces[-1])
    return workspaces


def image_values(measurements, feature):
    return list(measurements.get_measurement(IMAGE, feature, measurements.get_image_numbers()))


def test_module_metadata():
    module, _ = make_module()
    assert module.module_name == "EvaluateObjectF1"
    assert module.category == "Measurement"
    assert module.variable_revision_number == 1
    assert any("10.1002/cyto.a.23863" in link for link in module.doi.values())
    assert any("Caicedo" in text for text in module.doi)
    assert len(module.settings()) == 5
    for setting in module.settings():
        assert setting.doc and len(setting.doc.strip()) > 40, setting.text
    # Defaults follow docs/CONVENTIONS.md.
    assert (module.ground_truth.value, module.predicted.value) == (GROUND_TRUTH, NUCLEI) == ("GroundTruth", "Nuclei")


def test_run_and_post_run_store_image_and_experiment_measurements(measurements):
    module, pipeline = make_module()
    run_all(module, pipeline, measurements, image_pairs())
    m = measurements
    assert image_values(m, "ObjectF1_F1_050") == pytest.approx([1.0, 0.0])
    assert image_values(m, "ObjectF1_MeanF1") == pytest.approx([1.0, 0.0])
    assert image_values(m, "ObjectF1_Precision_050") == pytest.approx([1.0, 0.0])
    assert image_values(m, "ObjectF1_TP_050") == [2, 0]
    assert image_values(m, "ObjectF1_FN_095") == [0, 3]
    assert image_values(m, "ObjectF1_Nuclei") == [2, 3]
    assert image_values(m, "ObjectF1_Predicted") == [2, 1]
    assert image_values(m, "ObjectF1_Merges") == [0, 1]
    assert image_values(m, "ObjectF1_Splits") == [0, 0]
    assert image_values(m, "ObjectF1_MissedTiny") == [0, 3]
    assert image_values(m, "ObjectF1_ErrorRate_070") == pytest.approx([0.0, 1.0])
    # Experiment: macro = mean of per-image F1 (1 and 0); micro from pooled TP 2, FP 1, FN 3.
    assert m.get_experiment_measurement("ObjectF1_Macro_MeanF1") == pytest.approx(0.5)
    assert m.get_experiment_measurement("ObjectF1_Macro_F1_050") == pytest.approx(0.5)
    assert m.get_experiment_measurement("ObjectF1_Micro_F1_050") == pytest.approx(4 / 8)
    assert m.get_experiment_measurement("ObjectF1_Micro_Precision_050") == pytest.approx(2 / 3)
    assert m.get_experiment_measurement("ObjectF1_Micro_Recall_050") == pytest.approx(2 / 5)
    assert m.get_experiment_measurement("ObjectF1_Micro_ErrorRate_070") == pytest.approx(3 / 5)
    assert m.get_experiment_measurement("ObjectF1_Total_TP_050") == 2
    assert m.get_experiment_measurement("ObjectF1_Total_Merges") == 1
    assert m.get_experiment_measurement("ObjectF1_Images") == 2


def test_post_run_aggregates_from_measurements_alone(measurements):
    # A fresh module instance (as in the main process of a multi-worker run) aggregates the
    # image measurements that other instances wrote.
    module, pipeline = make_module()
    run_all(module, pipeline, measurements, image_pairs())
    fresh, _ = make_module()
    m = measurements
    m.add_experiment_measurement("ObjectF1_Macro_MeanF1", -1.0)
    fresh.post_run(SimpleNamespace(measurements=m))
    assert m.get_experiment_measurement("ObjectF1_Macro_MeanF1") == pytest.approx(0.5)


def test_declared_columns_match_what_run_writes(measurements):
    module, pipeline = make_module()
    run_all(module, pipeline, measurements, image_pairs())
    columns = module.get_measurement_columns(pipeline)
    image_columns = {c[1]: c[2] for c in columns if c[0] == IMAGE}
    experiment_columns = {c[1]: c for c in columns if c[0] == EXPERIMENT}
    written = {f for f in measurements.get_feature_names(IMAGE) if f.startswith("ObjectF1_")}
    assert set(image_columns) == written
    assert image_columns["ObjectF1_F1_050"] == COLTYPE_FLOAT
    assert image_columns["ObjectF1_TP_050"] == COLTYPE_INTEGER
    written_experiment = {f for f in measurements.get_feature_names(EXPERIMENT) if f.startswith("ObjectF1_")}
    assert set(experiment_columns) == written_experiment
    assert all(c[3][MCA_AVAILABLE_POST_RUN] for c in experiment_columns.values())
    # Categories and measurement names describe the same features.
    assert module.get_categories(pipeline, IMAGE) == ["ObjectF1"]
    assert module.get_categories(pipeline, EXPERIMENT) == ["ObjectF1"]
    assert module.get_categories(pipeline, NUCLEI) == []
    names = module.get_measurements(pipeline, IMAGE, "ObjectF1")
    assert {f"ObjectF1_{n}" for n in names} == written
    assert {f"ObjectF1_{n}" for n in module.get_measurements(pipeline, EXPERIMENT, "ObjectF1")} == written_experiment
    assert module.get_measurements(pipeline, IMAGE, "Other") == []
    # The pipeline collects the module's columns (what ExportToSpreadsheet relies on).
    assert ("Image", "ObjectF1_MeanF1", COLTYPE_FLOAT) in pipeline.get_measurement_columns()


def test_custom_thresholds_change_the_measurements(measurements):
    module, pipeline = make_module(thresholds="0.5, 0.75", size_edges="10, 20, 30", merge_iou=0.6)
    run_all(module, pipeline, measurements, image_pairs())
    features = set(measurements.get_feature_names(IMAGE))
    assert "ObjectF1_F1_075" in features and "ObjectF1_F1_055" not in features
    names = {c[1] for c in module.get_measurement_columns(pipeline)}
    assert "ObjectF1_F1_075" in names and "ObjectF1_Macro_F1_075" in names and "ObjectF1_F1_095" not in names
    # All nuclei are now "large" (> 30 px); merge IoU 0.6 is above the merge's IoU 0.5.
    assert image_values(measurements, "ObjectF1_MissedLarge") == [0, 3]
    assert image_values(measurements, "ObjectF1_Merges") == [0, 0]


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("thresholds", "0.3, 0.5", "below 0.5"),
        ("thresholds", "0.5, x", "numbers"),
        ("size_edges", "250, 100, 900", "increasing"),
        ("size_edges", "250, 625", "three"),
        ("merge_iou", 0.0, "merge"),
    ],
)
def test_validate_module_names_the_setting(setting, value, message):
    module, pipeline = make_module(**{setting: value})
    with pytest.raises(ValidationError, match=message) as caught:
        module.validate_module(pipeline)
    assert caught.value.get_setting() is getattr(module, setting)


def test_validate_module_accepts_defaults_and_rejects_same_objects():
    module, pipeline = make_module()
    module.validate_module(pipeline)  # no exception
    module.predicted.value = GROUND_TRUTH
    with pytest.raises(ValidationError) as caught:
        module.validate_module(pipeline)
    assert caught.value.get_setting() is module.predicted


def test_invalid_settings_do_not_break_measurement_columns():
    module, pipeline = make_module(thresholds="nonsense")
    names = {c[1] for c in module.get_measurement_columns(pipeline)}
    assert "ObjectF1_MeanF1" in names and not any(n.startswith("ObjectF1_F1_") for n in names)


def test_shape_mismatch_raises(measurements):
    module, pipeline = make_module()
    gt = np.zeros((10, 10), np.int32)
    with pytest.raises(ValueError, match="shape"):
        run_all(module, pipeline, measurements, [(gt, np.zeros((10, 12), np.int32))])


def test_upgrade_settings_and_pipeline_round_trip():
    module, pipeline = make_module(thresholds="0.5,0.7", size_edges="100,200,300", merge_iou=0.2)
    values = [s.value_text for s in module.settings()]
    assert module.upgrade_settings(values, 1, "EvaluateObjectF1") == (values, 1)
    import cellprofiler_core.modules  # noqa: F401  (fills the module registry; must precede our addition)

    add_module_for_tst(EvaluateObjectF1)
    text = io.StringIO()
    pipeline.dump(text)
    loaded = Pipeline()
    loaded.load(io.StringIO(text.getvalue()))
    (copy,) = loaded.modules()
    assert isinstance(copy, EvaluateObjectF1)
    assert [s.value_text for s in copy.settings()] == values


def all_outcomes():
    """One image pair with every outcome: matched, missed, false positive, merged and split objects.

    Ground truth: 1 matched, 2 and 3 merged by one prediction, 4 missed, 5 split in two.
    Prediction: 1 matches 1, 2 covers gt 2 and 3, 3 is a false positive, 4 and 5 halve gt 5.
    """
    shape = (60, 60)
    gt = np.zeros(shape, np.int32)
    square(shape, 2, 2, 10, 10, 1, gt)
    square(shape, 2, 20, 10, 10, 2, gt)
    square(shape, 2, 30, 10, 10, 3, gt)
    square(shape, 40, 2, 10, 10, 4, gt)
    square(shape, 40, 40, 12, 12, 5, gt)
    pred = np.zeros(shape, np.int32)
    square(shape, 2, 2, 10, 10, 1, pred)
    square(shape, 2, 20, 10, 20, 2, pred)
    square(shape, 20, 20, 8, 8, 3, pred)
    square(shape, 40, 40, 12, 6, 4, pred)
    square(shape, 40, 46, 12, 6, 5, pred)
    return gt, pred


def test_display_colours_every_outcome_and_tabulates_f1(measurements, tmp_path):
    from agg_figure import AggFigure

    from nucleiseg.metric import score_image

    module, pipeline = make_module()
    gt, pred = all_outcomes()
    workspace = run_all(module, pipeline, measurements, [(gt, pred)], show_window=True)[-1]
    figure = AggFigure()
    module.display(workspace, figure)
    gt_axes, pred_axes = figure.subplots[0, 0], figure.subplots[1, 0]
    assert GROUND_TRUTH in gt_axes.get_title() and "IoU > 0.50" in gt_axes.get_title()
    for word in ("matched (green)", "missed (red)", "split (magenta)"):
        assert word in gt_axes.get_title()
    for word in ("matched (green)", "false positive (yellow)", "merged (blue)"):
        assert word in pred_axes.get_title()
    assert pred_axes.get_shared_x_axes().joined(gt_axes, pred_axes)

    # The core's colours (nucleiseg.metric), the ones the benchmark report uses too.
    colours = {name: rgb for name, (_, rgb) in OUTCOME_COLOURS.items()}
    gt_rgb, pred_rgb = figure.shown[(0, 0)], figure.shown[(1, 0)]

    def edge_and_fill(rgb, top, left, outcome):
        # Object edges in full colour, insides faintly.
        assert tuple(rgb[top, left]) == pytest.approx(colours[outcome]), outcome
        assert tuple(rgb[top + 4, left + 4]) == pytest.approx(np.multiply(colours[outcome], 0.35)), outcome

    edge_and_fill(gt_rgb, 2, 2, "matched")
    edge_and_fill(gt_rgb, 2, 20, "missed")  # merged into one prediction: missed in the ground truth
    edge_and_fill(gt_rgb, 40, 2, "missed")
    edge_and_fill(gt_rgb, 40, 40, "split")
    edge_and_fill(pred_rgb, 2, 2, "matched")
    edge_and_fill(pred_rgb, 2, 20, "merged")
    edge_and_fill(pred_rgb, 20, 20, "false_positive")
    edge_and_fill(pred_rgb, 40, 40, "false_positive")  # a half of the split nucleus
    assert tuple(gt_rgb[30, 30]) == (0, 0, 0) and tuple(pred_rgb[30, 2]) == (0, 0, 0)

    scores = score_image(gt, pred)
    labels, rows = figure.tables[(0, 1)]
    assert labels == ["IoU", "TP", "FP", "FN", "Precision", "Recall", "F1"]
    assert [row[0] for row in rows] == [f"{t:.2f}" for t in scores.thresholds]
    assert [row[6] for row in rows] == [f"{f:.3f}" for f in scores.f1]
    assert rows[0][1:4] == [str(scores.tp[0]), str(scores.fp[0]), str(scores.fn[0])] == ["1", "4", "4"]
    _, summary = figure.tables[(1, 1)]
    assert ["Merges", "1"] in summary and ["Splits", "1"] in summary
    assert ["Mean F1", f"{scores.f1_mean:.3f}"] in summary
    assert figure.save(tmp_path / "evaluate.png").stat().st_size > 5000


def _input_modules():
    """Images, Metadata, NamesAndTypes (GroundTruth objects from masks/, Nuclei objects from pred/), Groups."""
    import cellprofiler_core.modules  # noqa: F401  (fills the module registry)

    return pipeline_modules.input_modules(assignments=[(MASKS_FOLDER, "objects", GROUND_TRUTH), ("pred", "objects", NUCLEI)])


@pytest.mark.slow
def test_headless_cellprofiler_run_exports_the_measurements(tmp_path):
    import csv
    import subprocess

    import cellprofiler_core.modules  # noqa: F401  (fills the module registry)
    import tifffile

    from nucleiseg_cellprofiler import PLUGINS_DIR, REPOSITORY
    from nucleiseg_cellprofiler.headless import reader_options

    cellprofiler = Path(sys.executable).with_name("cellprofiler")
    if not cellprofiler.exists():
        pytest.skip("cellprofiler executable not found next to the Python interpreter")
    pipeline = Pipeline()
    for number, module in enumerate([*_input_modules(), EvaluateObjectF1(), pipeline_modules.export_to_spreadsheet()], start=1):
        module.set_module_num(number)
        pipeline.add_module(module)
    with open(tmp_path / "f1.cppipe", "w") as fd:
        pipeline.dump(fd)

    files = []
    for stem, (gt, pred) in zip("ab", image_pairs()):
        for folder, labels in ((MASKS_FOLDER, gt), ("pred", pred)):
            (tmp_path / folder).mkdir(exist_ok=True)
            path = tmp_path / folder / f"{stem}.tiff"
            tifffile.imwrite(path, labels.astype(np.uint16))
            files.append(str(path))
    (tmp_path / "files.txt").write_text("\n".join(files) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [str(cellprofiler), "-c", "-r", "-p", str(tmp_path / "f1.cppipe"), "--plugins-directory", str(PLUGINS_DIR),
         *reader_options(), "-o", str(out), "--file-list", str(tmp_path / "files.txt")],
        capture_output=True, text=True, timeout=600, cwd=REPOSITORY,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["Metadata_Stem"]: row for row in csv.DictReader(open(out / "Image.csv"))}
    assert float(rows["a"]["ObjectF1_F1_050"]) == 1.0 and float(rows["b"]["ObjectF1_F1_050"]) == 0.0
    assert int(rows["b"]["ObjectF1_Merges"]) == 1
    experiment = dict(csv.reader(open(out / "Experiment.csv")))
    assert float(experiment["ObjectF1_Macro_MeanF1"]) == pytest.approx(0.5)
    assert float(experiment["ObjectF1_Micro_F1_050"]) == pytest.approx(0.5)

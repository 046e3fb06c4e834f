"""Pipelines saved by earlier settings revisions of the three modules load with their values.

Each pipeline text below is written by hand as CellProfiler stored that revision (one
``text:value`` line per setting, in the revision's order) and loaded through CellProfiler's
own pipeline loader, with the plugins loaded by CellProfiler from ``plugins/``. Every saved
value differs from its default, so a setting that lands in the wrong place shows.
"""

from __future__ import annotations

import io

import pytest

pytest.importorskip("cellprofiler_core")

from nucleiseg_cellprofiler.headless import init_cellprofiler  # noqa: E402

HEADER = """CellProfiler Pipeline: http://www.cellprofiler.org
Version:5
DateRevision:500
GitHash:
ModuleCount:1
HasImagePlaneDetails:False

"""

# The settings both network modules share, as (text, saved value), in their saved order.
NAMES_AND_MODEL = [
    ("Select the input image", "Hoechst"),
    ("Name the output objects", "MyNuclei"),
    ("Name the background probability image", "Back"),
    ("Name the interior probability image", "Inside"),
    ("Name the boundary probability image", "Edges"),
    ("Model", "Custom model file"),
    ("Model card file", "/models/mine.json"),
]
DEEPCELL_OWN = [
    ("Ensemble size", "3"),
    ("Inference mode", "Patch by patch (as published; slow)"),
    ("Normalization", "DeepCell original (median / local mean)"),
]
PERCENTILES = [("Lower normalization percentile", "1.0"), ("Upper normalization percentile", "99.5")]
POSTPROCESSING = [
    ("Interior probability threshold", "0.6"),
    ("Boundary boost", "1.5"),
    ("Minimum nucleus size (pixels)", "30"),
    ("Fill holes in nuclei?", "No"),
    ("Dilation (pixels)", "3"),
]
TILES = [("Tile size (pixels)", "512"), ("Tile overlap (pixels)", "32"), ("Batch size (tiles)", "2")]
DEVICE = [("Device", "GPU"), ("GPU index", "1")]
# Added by the upgrades, with the values that keep what the old pipeline did.
OWN_POSTPROCESSING = [("Use the model's tuned post-processing?", "No")]
FOREGROUND = [("Foreground probability threshold", "0.5")]
AUGMENT = [("Average over flips and rotations?", "No")]
ENGINE = [("Inference engine", "Automatic")]
SAME_SIZE = [("Match nuclei to the model's training size?", "No")]


def network_revisions(own):
    """{label: (saved revision, saved settings, settings after loading)}."""
    start = NAMES_AND_MODEL + own + PERCENTILES + OWN_POSTPROCESSING + POSTPROCESSING + FOREGROUND + TILES
    current = start + AUGMENT + ENGINE + DEVICE + SAME_SIZE
    # Revision 3 saved with an engine other than the default keeps it.
    tensorflow = start + AUGMENT + [("Inference engine", "TensorFlow")] + DEVICE
    matched = start + AUGMENT + ENGINE + DEVICE + [("Match nuclei to the model's training size?", "Yes")]
    return {
        "revision 1": (1, NAMES_AND_MODEL + own + PERCENTILES + POSTPROCESSING + TILES + DEVICE, current),
        # Revision 2 as first saved: test-time augmentation came later without a revision.
        "revision 2 before test-time augmentation": (2, start + DEVICE, current),
        "revision 2": (2, start + AUGMENT + DEVICE, current),
        "revision 3": (3, tensorflow, tensorflow + SAME_SIZE),
        "revision 4": (4, matched, matched),
    }


CASES = []
for module_name, own in (("ClassifyBoundariesUNet", []), ("ClassifyPixelsDeepCell", DEEPCELL_OWN)):
    CASES += [pytest.param(module_name, revision, settings, expected, id=f"{module_name}, {label}")
              for label, (revision, settings, expected) in network_revisions(own).items()]
# EvaluateObjectF1 has had one revision so far.
F1_SETTINGS = [
    ("Select the ground-truth objects", "Annotated"),
    ("Select the predicted objects", "Found"),
    ("IoU thresholds", "0.50,0.75,0.90"),
    ("Size-bin edges (pixels)", "100,400,800"),
    ("Minimum IoU for merges and splits", "0.2"),
]
CASES.append(pytest.param("EvaluateObjectF1", 1, F1_SETTINGS, F1_SETTINGS, id="EvaluateObjectF1, revision 1"))


def pipeline_text(module_name: str, revision: int, settings) -> str:
    attributes = (f"module_num:1|svn_version:'Unknown'|variable_revision_number:{revision}|show_window:False|"
                  "notes:[]|batch_state:array([], dtype=uint8)|enabled:True|wants_pause:False")
    lines = "".join(f"    {text}:{value}\n" for text, value in settings)
    return f"{HEADER}{module_name}:[{attributes}]\n{lines}\n"


@pytest.mark.parametrize("module_name, revision, saved, expected", CASES)
def test_a_pipeline_of_an_earlier_revision_loads_with_its_values(module_name, revision, saved, expected):
    from cellprofiler_core.pipeline import Pipeline

    init_cellprofiler()
    pipeline = Pipeline()
    pipeline.load(io.StringIO(pipeline_text(module_name, revision, saved)))
    (module,) = pipeline.modules(exclude_disabled=False)
    assert module.module_name == module_name
    assert [(s.text, s.value_text) for s in module.settings()] == expected
    # Saved again, it is the current revision with the same values.
    out = io.StringIO()
    pipeline.dump(out)
    assert f"variable_revision_number:{module.variable_revision_number}" in out.getvalue()
    assert all(f"    {text}:{value}\n" in out.getvalue() for text, value in expected)

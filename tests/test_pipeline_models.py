"""Which model a pipeline's network modules run, and the report's *Networks* section."""

from pathlib import Path

import pytest

from benchmark.pipeline_models import network_models, recipe
from benchmark.report import networks_section
from nucleiseg import model_types
from nucleiseg_cellprofiler import PIPELINES_DIR

PIPELINE = """CellProfiler Pipeline: http://www.cellprofiler.org
Version:5
ClassifyBoundariesUNet:[module_num:5|svn_version:'Unknown'|variable_revision_number:4|show_window:False]
    Select the input image:DNA
    Model:Custom model file
    Model card file:{card}
    Lower normalization percentile:0.1

Crop:[module_num:6|svn_version:'Unknown'|variable_revision_number:3|show_window:False]
    Model:not a network setting

ClassifyPixelsDeepCell:[module_num:7|svn_version:'Unknown'|variable_revision_number:3|show_window:False]
    Select the input image:DNA
    Model:Shipped default
    Model card file:
"""


def write_pipeline(tmp_path, card) -> Path:
    path = tmp_path / "two.cppipe"
    path.write_text(PIPELINE.format(card=card))
    return path


def test_each_network_module_with_the_card_its_settings_select(tmp_path):
    models = network_models(write_pipeline(tmp_path, tmp_path / "mine.json"))
    assert [(m.module, m.model_type) for m in models] == [("ClassifyBoundariesUNet", "unet"),
                                                          ("ClassifyPixelsDeepCell", "deepcell")]
    assert models[0].card == tmp_path / "mine.json"
    assert models[1].card == Path(model_types.get("deepcell").default_card)


def test_shipped_pipelines_name_their_shipped_cards():
    [general] = network_models(PIPELINES_DIR / "unet.cppipe")
    assert general.card == Path(model_types.get("unet").default_card)
    [specialist] = network_models(PIPELINES_DIR / "unet-bbbc039.cppipe")
    assert specialist.card.name == "unet-bbbc039.json"
    assert network_models(PIPELINES_DIR / "advanced.cppipe") == []


def test_recipe_reads_the_card_and_reports_an_unreadable_one(tmp_path):
    shipped = recipe(Path(model_types.get("unet").default_card))
    assert shipped["networks"] == 1 and "blur" in shipped["augmentation"]
    ensemble = recipe(Path(model_types.get("deepcell").default_card))
    assert ensemble["networks"] == 5 and ensemble["augmentation"] == "flips rot90, intensity"  # an older record's keys
    broken = recipe(tmp_path / "missing.json")
    assert "missing.json" in broken["card"] and broken["error"]


@pytest.mark.parametrize("second, differs", [("deepcell.cppipe", True), ("unet.cppipe", False)])
def test_networks_section_says_when_recipes_differ(second, differs):
    info = {"pipelines": {"unet": str(PIPELINES_DIR / "unet.cppipe"), "other": str(PIPELINES_DIR / second),
                          "advanced": str(PIPELINES_DIR / "advanced.cppipe")}}
    text = "\n".join(networks_section(info))
    assert text.startswith("## Networks") and "unet-dsb2018.json" in text
    assert ("different recipes" in text) == differs
    assert "| advanced |" not in text


def test_networks_section_is_empty_for_classical_pipelines_and_missing_files(tmp_path):
    info = {"pipelines": {"advanced": str(PIPELINES_DIR / "advanced.cppipe"), "gone": str(tmp_path / "gone.cppipe")}}
    assert networks_section(info) == []

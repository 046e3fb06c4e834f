"""The shipped pipelines: they load, follow docs/CONVENTIONS.md, are what the generator writes, and run headless."""

from __future__ import annotations

import csv
import glob
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nucleiseg_cellprofiler import CP4_PIPELINES_DIR, PLUGINS_DIR, names
from nucleiseg_cellprofiler.headless import cellprofiler_major, reader_options, shipped_pipelines_dir
from nucleiseg_cellprofiler.pipelines import kinds

PLUGINS = str(PLUGINS_DIR)
CELLPROFILER = os.path.join(os.path.dirname(sys.executable), "cellprofiler")
# The files this CellProfiler reads: pipelines/ (CellProfiler 5) or pipelines/cp4/ (4.2.8).
PIPELINES_DIR = shipped_pipelines_dir()
READER = reader_options()
SHIPPED = sorted(glob.glob(os.path.join(PIPELINES_DIR, "*.cppipe")))
CLASSICAL = [os.path.join(PIPELINES_DIR, f"{k}.cppipe") for k in ("basic", "advanced")]
NETWORK_KINDS = [kind for kind in kinds.kinds() if kind.model_type]


@pytest.fixture(scope="module")
def bp():
    """The generator, with headless CellProfiler and this project's plugins loaded.

    CellProfiler 4 checks the rules of Images and NamesAndTypes in Java, so its JVM runs
    meanwhile (javabridge starts one per process: it is stopped at the end of this file).
    """
    from nucleiseg_cellprofiler.headless import init_cellprofiler
    from nucleiseg_cellprofiler.pipelines import build

    init_cellprofiler()
    if cellprofiler_major() >= 5:
        yield build
        return
    from cellprofiler_core.utilities.java import start_java, stop_java

    start_java()
    try:
        yield build
    finally:
        stop_java()


def load(path):
    from cellprofiler_core.pipeline import Pipeline

    pipeline = Pipeline()
    pipeline.loadtxt(path, raise_on_error=True)
    return pipeline


def by_name(pipeline, name):
    return [m for m in pipeline.modules() if m.module_name == name]


def test_classical_pipelines_are_shipped():
    for path in CLASSICAL:
        assert os.path.isfile(path), path


def test_the_names_are_those_of_docs_conventions():
    """names.py and docs/CONVENTIONS.md, which the benchmark runner and users go by, agree."""
    conventions = " ".join((PLUGINS_DIR.parent / "docs" / "CONVENTIONS.md").read_text().split())
    for phrase in (
        f"image **{names.IMAGE}** (files under a folder named `{names.IMAGES_FOLDER}`)",
        f"objects **{names.GROUND_TRUTH}** (files under a folder named `{names.MASKS_FOLDER}`",
        f"metadata **{names.STEM}** extracted from the file name (`{names.STEM_REGEX}`)",
        f"Predicted nuclei objects: **{names.NUCLEI}**",
        f"`<output>/{names.LABELS_FOLDER}/<stem>.tiff`",
    ):
        assert phrase in conventions, phrase


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_pipeline_loads_and_follows_conventions(bp, path):
    pipeline = load(path)
    module_names = [m.module_name for m in pipeline.modules()]
    assert module_names[:4] == ["Images", "Metadata", "NamesAndTypes", "Groups"]
    for m in pipeline.modules():
        m.test_valid(pipeline)  # raises ValidationError on a bad setting

    (meta,) = by_name(pipeline, "Metadata")
    assert meta.wants_metadata.value
    assert meta.extraction_methods[0].file_regexp.value == names.STEM_REGEX

    (nat,) = by_name(pipeline, "NamesAndTypes")
    assert nat.matching_choice.value == "Metadata"
    rules = {}
    for a in nat.assignments:
        if a.load_as_choice.value == "Objects":
            rules[a.object_name.value] = a.rule_filter.value
        else:
            rules[a.image_name.value] = a.rule_filter.value
    with_ground_truth = not path.endswith("-segment.cppipe")
    if with_ground_truth:
        assert f'"{names.IMAGES_FOLDER}"' in rules[names.IMAGE] and f'"{names.MASKS_FOLDER}"' in rules[names.GROUND_TRUTH]
        assert nat.join.parse() == [{names.IMAGE: names.STEM, names.GROUND_TRUTH: names.STEM}]
    else:
        assert list(rules) == [names.IMAGE]
        assert f'doesnot endwith "{names.MASKS_FOLDER}"' in rules[names.IMAGE]
        assert f'doesnot endwith "{names.LABELS_FOLDER}"' in rules[names.IMAGE]

    (groups,) = by_name(pipeline, "Groups")
    assert not groups.wants_groups.value

    # exactly one module makes the final Nuclei objects
    makers = [m for m in pipeline.modules()
              if getattr(m, "y_name", None) is not None and m.y_name.value == names.NUCLEI]
    assert len(makers) == 1

    (conv,) = by_name(pipeline, "ConvertObjectsToImage")
    assert conv.object_name.value == names.NUCLEI and conv.image_mode.value == "uint16"
    (save,) = by_name(pipeline, "SaveImages")
    assert save.image_name.value == conv.image_name.value
    assert save.file_name_method.value == "From image filename"
    assert save.file_image_name.value == names.IMAGE
    assert save.file_format.value == "tiff" and save.bit_depth.value == "16-bit integer"
    assert save.pathname.value == f"Default Output Folder sub-folder|{names.LABELS_FOLDER}"
    assert not save.wants_file_name_suffix.value

    (export,) = by_name(pipeline, "ExportToSpreadsheet")
    assert export.directory.value.startswith("Default Output Folder")
    assert not export.wants_prefix.value  # → Image.csv

    if not with_ground_truth:
        assert not by_name(pipeline, "EvaluateObjectF1")
        (shape,) = by_name(pipeline, "MeasureObjectSizeShape")
        (intensity,) = by_name(pipeline, "MeasureObjectIntensity")
        assert shape.objects_list.value == [names.NUCLEI] and intensity.images_list.value == [names.IMAGE]
    else:
        (f1,) = by_name(pipeline, "EvaluateObjectF1")
        from cellprofiler_core.setting.subscriber import LabelSubscriber

        subs = [s.value for s in f1.settings() if isinstance(s, LabelSubscriber)]
        assert subs[:2] == [names.GROUND_TRUTH, names.NUCLEI]
    assert module_names[-1] == "ExportToSpreadsheet"


def test_basic_is_only_identify_primary(bp):
    pipeline = load(CLASSICAL[0])
    module_names = [m.module_name for m in pipeline.modules()]
    processing = module_names[4 : module_names.index("ConvertObjectsToImage")]
    assert processing == ["IdentifyPrimaryObjects"]
    (ipo,) = by_name(pipeline, "IdentifyPrimaryObjects")
    assert ipo.x_name.value == names.IMAGE
    assert ipo.threshold.global_operation.value == "Otsu"
    assert ipo.threshold.threshold_scope.value == "Global"
    assert not ipo.exclude_border_objects.value  # border nuclei are in the ground truth


def test_advanced_has_caicedo_steps(bp):
    pipeline = load(CLASSICAL[1])
    # Smooth (median) and Opening may ship disabled when tuning found them harmful
    module_names = [m.module_name for m in pipeline.modules(exclude_disabled=False)]
    for n in ("CorrectIlluminationCalculate", "CorrectIlluminationApply", "Smooth", "Opening",
              "IdentifyPrimaryObjects", "MeasureObjectSizeShape", "FilterObjects"):
        assert n in module_names
    enabled = [m.module_name for m in pipeline.modules()]
    for n in ("CorrectIlluminationCalculate", "CorrectIlluminationApply",
              "IdentifyPrimaryObjects", "MeasureObjectSizeShape", "FilterObjects"):
        assert n in enabled
    for m in pipeline.modules(exclude_disabled=False):
        if not m.enabled:
            assert m.notes, f"{m.module_name} is disabled without a note saying why"
    (ipo,) = by_name(pipeline, "IdentifyPrimaryObjects")
    (filt,) = by_name(pipeline, "FilterObjects")
    assert ipo.y_name.value != names.NUCLEI and filt.x_name.value == ipo.y_name.value
    assert filt.y_name.value == names.NUCLEI
    assert not ipo.exclude_border_objects.value


def test_shipped_pipelines_are_the_generators_kinds():
    assert sorted(os.path.basename(p)[: -len(".cppipe")] for p in SHIPPED) == sorted(kinds.shipped())


def test_cellprofiler_4_pipelines_are_shipped_for_every_kind():
    """pipelines/cp4/ holds every kind as CellProfiler 4.2.8 writes it; make test-cp42 checks they are up to date."""
    cp4 = sorted(CP4_PIPELINES_DIR.glob("*.cppipe"))
    assert sorted(p.stem for p in cp4) == sorted(kinds.shipped())
    for path in cp4:
        text = path.read_text()
        assert text.splitlines()[2] == "DateRevision:428", path
        # The input modules at CellProfiler 4.2.8's revisions, not 5's.
        for module, revision in (("Images", 2), ("Metadata", 6), ("NamesAndTypes", 8)):
            assert f"\n{module}:[module_num:" in text and f"variable_revision_number:{revision}|" in text.split(f"\n{module}:[")[1].split("\n")[0]
        assert "Set intensity range from:Image bit-depth" in text, path


@pytest.mark.parametrize("kind", kinds.shipped())
def test_shipped_matches_generator(bp, kind):
    """The .cppipe files are what the generator writes (regenerate with python -m nucleiseg_cellprofiler.pipelines)."""
    with open(os.path.join(PIPELINES_DIR, f"{kind}.cppipe")) as fd:
        shipped = fd.read()
    generated = bp.dumps(bp.build(kind))
    strip = lambda t: [l for l in t.splitlines() if not l.startswith(("DateRevision", "GitHash"))]
    assert strip(shipped) == strip(generated)


def test_every_model_type_and_shipped_specialist_has_a_network_kind():
    from pathlib import Path

    from nucleiseg import model_types

    expected = {}
    for name in model_types.names():
        expected[name] = (name, None)
        expected.update({Path(card).stem: (name, label) for label, card in model_types.get(name).specialist_cards.items()})
    assert {kind.name: (kind.model_type, kind.model_choice) for kind in NETWORK_KINDS} == expected
    assert set(expected) <= set(kinds.shipped())
    # -tta is built on request only; -segment ships for the general models.
    assert not [name for name in kinds.shipped() if "-tta" in name]
    assert {f"{name}-segment" for name in model_types.names()} <= set(kinds.shipped())


@pytest.mark.parametrize("kind", NETWORK_KINDS, ids=lambda kind: kind.name)
def test_network_pipelines_use_their_model_and_its_post_processing_and_tta_is_on_request(bp, kind):
    from pathlib import Path

    from nucleiseg import cards, model_types

    module_name = names.NETWORK_MODULES[kind.model_type]
    (plain,) = by_name(bp.build(kind.name), module_name)
    expected_card = model_types.get(kind.model_type).specialist_cards.get(kind.model_choice,
                                                                         model_types.get(kind.model_type).default_card)
    assert Path(plain.model_path()) == Path(expected_card)
    assert plain.use_model_postprocess.value and not plain.augment.value
    assert plain.postprocess_settings() == cards.tuned_postprocess(expected_card)
    # General models bring nuclei of another magnification to their training size; a specialist's
    # one kind of image says too little about the sizes it handles.
    assert plain.match_size.value == (kind.model_choice is None)
    if plain.match_size.value:
        assert cards.nucleus_diameters(expected_card) is not None
    (augmented,) = by_name(bp.build(f"{kind.name}-tta"), module_name)
    assert augmented.augment.value and augmented.model_choice.value == plain.model_choice.value
    (segment,) = by_name(bp.build(f"{kind.name}-tta-segment"), module_name)
    assert segment.augment.value


def test_unknown_kinds_and_variants_that_do_not_apply_are_refused(bp):
    with pytest.raises(ValueError, match="unknown pipeline kind 'nonesuch'.*basic"):
        bp.build("nonesuch")
    with pytest.raises(ValueError, match="-tta applies to network pipelines, not 'basic'"):
        bp.build("basic-tta")
    with pytest.raises(ValueError, match="unknown pipeline kind 'unet-segment'"):
        bp.build("unet-segment-tta")  # suffixes go in the registry's order
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(kinds.get("basic"))
    with pytest.raises(ValueError, match="variant's suffix"):
        kinds.register(kinds.PipelineKind("basic2-segment", kinds.get("basic").processing))
    assert kinds.get("basic").name == "basic" and "basic2-segment" not in kinds.buildable()


def test_deepcell_pipelines_can_run_part_of_the_ensemble(bp):
    from nucleiseg import cards

    (full,) = by_name(bp.build("deepcell"), "ClassifyPixelsDeepCell")
    networks = len(cards.verify(full.model_path()))
    (two,) = by_name(bp.build("deepcell-bbbc039-tta", ensemble=2), "ClassifyPixelsDeepCell")
    assert full.ensemble_size() == networks > 2
    assert two.ensemble_size() == 2 and two.augment.value
    with pytest.raises(ValueError, match="network"):
        bp.build("deepcell", ensemble=networks + 1)
    with pytest.raises(ValueError, match="ClassifyBoundariesUNet.*no 'Ensemble size' setting"):
        bp.build("unet", ensemble=2)
    with pytest.raises(ValueError, match="network pipelines, not 'basic'"):
        bp.build("basic", ensemble=2)


def test_network_pipelines_take_a_model_card_of_ones_own(bp, tmp_path):
    import json
    import shutil

    from nucleiseg import cards, model_types

    shipped = Path(model_types.get("unet").default_card)
    own = tmp_path / "mine.json"
    card = json.loads(shipped.read_text())
    shutil.copy(shipped.with_name(card["weights"]), tmp_path / card["weights"])
    own.write_text(json.dumps({**card, "postprocess": {**card.get("postprocess", {}), "min_size": 3}}))
    (m,) = by_name(bp.build("unet-segment", model_card=own), "ClassifyBoundariesUNet")
    assert m.model_choice.value == "Custom model file" and m.model_path() == own.resolve()
    assert m.postprocess_settings() == cards.tuned_postprocess(own) and m.postprocess_settings().min_size == 3
    with pytest.raises(ValueError, match="model card applies to network pipelines, not 'basic'"):
        bp.build("basic", model_card=own)
    with pytest.raises(ValueError, match="model card not found: .*nonesuch.json"):
        bp.build("unet", model_card=tmp_path / "nonesuch.json")


def test_the_command_line_writes_the_pipelines_asked_for(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nucleiseg_cellprofiler.pipelines", "basic-segment", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [p.name for p in tmp_path.iterdir()] == ["basic-segment.cppipe"]
    assert "MeasureObjectIntensity" in (tmp_path / "basic-segment.cppipe").read_text()
    done = subprocess.run([sys.executable, "-m", "nucleiseg_cellprofiler.pipelines", "basic-tta", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "basic-tta: basic-tta: -tta applies to network pipelines" in done.stderr
    # Pipelines for the other CellProfiler are written by that one (pipelines/cp4/: .venv-cp42).
    other = 4 if cellprofiler_major() == 5 else 5
    done = subprocess.run([sys.executable, "-m", "nucleiseg_cellprofiler.pipelines", "basic", "--cellprofiler", str(other),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and f"has CellProfiler {cellprofiler_major()}" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["basic-segment.cppipe"]


# ----------------------------------------------------------------------- headless runs


def blobs(shape, radius, spacing, seed):
    """Bright disks on a dim noisy background, and their instance labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = 20 + rng.normal(0, 2, shape)
    labels = np.zeros(shape, np.uint16)
    n = 0
    for cy in range(spacing // 2, shape[0] - radius, spacing):
        for cx in range(spacing // 2, shape[1] - radius, spacing):
            y, x = cy + rng.integers(-2, 3), cx + rng.integers(-2, 3)
            disk = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
            n += 1
            labels[disk] = n
            img[disk] += rng.uniform(120, 200)
    return np.clip(img, 0, 255).astype(np.uint8), labels


def write_input(tmp, items, with_masks=True, image_folder="images"):
    """Images under in/IMAGE_FOLDER ("": in/ itself), masks under in/masks; the file list."""
    import tifffile

    (tmp / "in" / image_folder).mkdir(parents=True, exist_ok=True)
    if with_masks:
        (tmp / "in" / "masks").mkdir(parents=True)
    paths = []
    for stem, (img, lab) in items.items():
        a, b = tmp / "in" / image_folder / f"{stem}.tiff", tmp / "in" / "masks" / f"{stem}.tiff"
        tifffile.imwrite(a, img)
        paths.append(str(a))
        if with_masks:
            tifffile.imwrite(b, lab)
            paths.append(str(b))
    listing = tmp / "in" / "files.txt"
    listing.write_text("\n".join(paths) + "\n")
    return listing


def run_headless(pipeline, tmp):
    items = {
        "few": blobs((128, 160), 7, 24, 0),
        "many": blobs((340, 460), 7, 22, 1),  # > 255 nuclei: needs 16-bit labels
        "mid": blobs((200, 200), 9, 30, 2),
    }
    assert items["many"][1].max() > 255
    listing = write_input(tmp, items)
    out = tmp / "out"
    env = dict(os.environ, HOME=str(tmp))  # keep CellProfiler's config out of the real home
    proc = subprocess.run(
        [CELLPROFILER, "-c", "-r", "-p", pipeline, "--plugins-directory", PLUGINS,
         *READER, "-o", str(out), "--file-list", str(listing)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return items, out


def check_outputs(items, out):
    import tifffile

    assert (out / "Image.csv").is_file()
    with open(out / "Image.csv") as fd:
        rows = {r["Metadata_Stem"]: r for r in csv.DictReader(fd)}
    assert set(rows) == set(items)
    for stem, (_, truth) in items.items():
        labels = tifffile.imread(out / "labels" / f"{stem}.tiff")
        assert labels.dtype == np.uint16 and labels.shape == truth.shape
        found = len(np.unique(labels[labels > 0]))
        assert found == int(float(rows[stem]["Count_Nuclei"]))
        assert labels.max() == found  # consecutive labels, none wrapped
        assert int(float(rows[stem]["Count_GroundTruth"])) == truth.max()
        # clean separated disks: a sane pipeline finds nearly all of them
        assert abs(found - truth.max()) <= 0.05 * truth.max()
    assert tifffile.imread(out / "labels" / "many.tiff").max() > 255


@pytest.mark.parametrize("kind, layout", [
    ("basic-segment", "plain folder, masks/ and earlier labels/ beside"),
    pytest.param("unet-segment", "images/ only", marks=pytest.mark.slow),
])
def test_segment_pipeline_runs_on_images_without_ground_truth(tmp_path, bp, kind, layout):
    """KIND-segment: no scoring; labels, counts and per-nucleus measurements out.

    It takes every image under the input folder except ground truth (masks/) and label
    images written by an earlier run (labels/), so a plain folder of images works.
    """
    import tifffile

    items = {"few": blobs((128, 160), 7, 24, 0), "mid": blobs((200, 200), 9, 30, 2)}
    pipeline = os.path.join(PIPELINES_DIR, f"{kind}.cppipe")
    if not os.path.isfile(pipeline):  # not shipped: generated
        pipeline = tmp_path / f"{kind}.cppipe"
        pipeline.write_text(bp.dumps(bp.build(kind)))
    plain = layout.startswith("plain")
    listing = write_input(tmp_path, items, with_masks=plain, image_folder="" if plain else "images")
    if plain:  # must be skipped, like masks/
        (tmp_path / "in" / "labels").mkdir()
        earlier = tmp_path / "in" / "labels" / "few.tiff"
        tifffile.imwrite(earlier, items["few"][1].astype(np.uint16))
        listing.write_text(listing.read_text() + f"{earlier}\n")
    else:
        assert not (tmp_path / "in" / "masks").exists()
    out = tmp_path / "out"
    proc = subprocess.run(
        [CELLPROFILER, "-c", "-r", "-p", str(pipeline), "--plugins-directory", PLUGINS,
         *READER, "-o", str(out), "--file-list", str(listing)],
        capture_output=True, text=True, env=dict(os.environ, HOME=str(tmp_path)), timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "Image.csv") as fd:
        rows = {r["Metadata_Stem"]: r for r in csv.DictReader(fd)}
    assert set(rows) == set(items) and not any(k.startswith("ObjectF1_") for k in rows["few"])
    with open(out / "Nuclei.csv") as fd:
        nuclei = list(csv.DictReader(fd))
    for image_number, (stem, (_, truth)) in enumerate(items.items(), start=1):
        labels = tifffile.imread(out / "labels" / f"{stem}.tiff")
        found = int(float(rows[stem]["Count_Nuclei"]))
        assert labels.max() == found and abs(found - truth.max()) <= 0.05 * truth.max()
        areas = [float(r["AreaShape_Area"]) for r in nuclei if int(r["ImageNumber"]) == image_number]
        assert len(areas) == found
        assert sum(areas) == np.count_nonzero(labels)
    assert all(float(r["Intensity_MeanIntensity_DNA"]) > 0 for r in nuclei)


def test_basic_headless_run(tmp_path):
    items, out = run_headless(CLASSICAL[0], tmp_path)
    check_outputs(items, out)


@pytest.mark.slow
def test_advanced_headless_run(tmp_path):
    items, out = run_headless(CLASSICAL[1], tmp_path)
    check_outputs(items, out)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["unet", "unet-bbbc039", "deepcell", "deepcell-bbbc039"])
def test_network_pipeline_headless_run_with_the_shipped_model(tmp_path, kind):
    items, out = run_headless(os.path.join(PIPELINES_DIR, f"{kind}.cppipe"), tmp_path)
    check_outputs(items, out)

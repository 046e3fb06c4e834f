"""Write the shipped CellProfiler pipelines (pipelines/*.cppipe) with the cellprofiler_core API.

    .venv/bin/python pipelines/build_pipelines.py            # writes every pipeline it knows
    .venv/bin/python pipelines/build_pipelines.py basic      # only some
    .venv/bin/python pipelines/build_pipelines.py unet-tta --out out/pipelines   # with test-time augmentation
    .venv/bin/python pipelines/build_pipelines.py advanced-segment --out out/pipelines   # without ground truth

Generating is safer than hand-editing the text format: every setting goes through the
module's own Setting objects, so a typo fails here instead of at run time.

The processing modules are also built here for pipelines/tune_classical.py, so the settings
that were tuned are exactly the settings that get written (see docs/CONVENTIONS.md for the
names every pipeline must use).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PLUGINS_DIR = os.path.join(ROOT, "plugins")

# Names fixed by docs/CONVENTIONS.md.
IMAGE_NAME = "DNA"
GT_NAME = "GroundTruth"
NUCLEI = "Nuclei"
STEM_REGEX = r"^(?P<Stem>.*)\.(tif|tiff|png)$"
LABELS_IMAGE = "NucleiLabels"
LABELS_SUBFOLDER = "labels"

# Tuned on the train split by pipelines/tune_classical.py (numbers in pipelines/TUNING.md).
BASIC_PARAMS = dict(
    threshold_smoothing=0.0,
    correction=0.9,
    size_min=8,
    size_max=120,
    unclump="Shape",
    watershed="Intensity",
    smoothing_filter=0,  # 0 = automatic (inert with Shape declumping)
    maxima_distance=10.0,  # 0 = automatic
    fill_holes="After both thresholding and declumping",
    low_res_maxima=True,
    exclude_size=True,
)

ADVANCED_PARAMS = dict(
    BASIC_PARAMS,
    size_min=5,  # the FilterObjects area limit below removes the small debris instead
    # CorrectIlluminationCalculate "Background": minima of 20x20 blocks, median-smoothed
    illum_block=20,
    illum_smoothing="Median Filter",
    illum_filter_size=100,
    median_size=0,  # 0 = Smooth (median) shipped disabled
    opening_radius=0,  # 0 = Opening shipped disabled
    filter_area_min=40.0,  # FilterObjects limits; 0 = no limit
    filter_solidity_min=0.85,
    threshold_scope="Global",
    adaptive_window=50,
    log_transform=False,
    otsu_classes="Two classes",
    middle="Foreground",
)

_CP_READY = False


def init_cellprofiler(plugins_dir: str | None = PLUGINS_DIR):
    """Headless CellProfiler with our plugin directory; must run before modules are used.

    cellprofiler_core.modules fills the module table and loads plugins when first imported,
    so the plugin directory has to be set before that import (and loaded again if the
    import already happened elsewhere).
    """
    global _CP_READY
    if _CP_READY:
        return
    logging.getLogger("cellprofiler_core").setLevel(logging.ERROR)
    import cellprofiler_core.preferences as prefs

    prefs.set_headless()
    if plugins_dir and os.path.isdir(plugins_dir):
        prefs.set_plugin_directory(plugins_dir, globally=False)
    already = "cellprofiler_core.modules" in sys.modules
    import cellprofiler_core.modules  # noqa: F401  (fills modules, loads plugins)

    if already and plugins_dir and os.path.isdir(plugins_dir):
        from cellprofiler_core.utilities.core.plugins import load_plugins

        load_plugins(modules_only=True)
    _CP_READY = True


def module(name: str, **settings):
    """Instantiate CellProfiler module `name` and set attribute-named settings."""
    from cellprofiler_core.utilities.core.modules import instantiate_module

    m = instantiate_module(name)
    for attr, value in settings.items():
        set_setting(m, attr, value)
    return m


def set_setting(m, attr: str, value):
    target = m
    *path, last = attr.split(".")
    for p in path:
        target = getattr(target, p)
    s = getattr(target, last)
    if isinstance(value, bool):
        s.value = value
    else:
        s.value_text = str(value)
    return s


def plugin_available(name: str) -> bool:
    from cellprofiler_core.utilities.core.modules import get_module_names

    return name in get_module_names()


# --------------------------------------------------------------------------- input modules


#: NamesAndTypes assignments of the shipped pipelines: (folder, "image" or "objects", name),
#: matched across folders by the file-name Stem.
DEFAULT_ASSIGNMENTS = (("images", "image", IMAGE_NAME), ("masks", "objects", GT_NAME))
#: Pipelines without ground truth take every image under the input folder (a plain folder of
#: TIFFs, or our layout's images/) except ground truth and this project's own label outputs.
SEGMENT_ASSIGNMENTS = ((None, "image", IMAGE_NAME),)


def folder_rule(folder: str | None) -> str:
    """NamesAndTypes rule: files in a folder ending in ``folder``; None: any folder but masks/ and labels/."""
    if folder is None:
        return f'and (directory doesnot endwith "masks") (directory doesnot endwith "{LABELS_SUBFOLDER}")'
    return f'and (directory does endwith "{folder}")'


def input_modules(assignments=DEFAULT_ASSIGNMENTS):
    """Images, Metadata (Stem from the file name), NamesAndTypes and Groups modules.

    Parameters
    ----------
    assignments : sequence of (folder, kind, name)
        One NamesAndTypes assignment each: files in a folder ending in ``folder`` (see
        :func:`folder_rule`) load as a greyscale image (``kind == "image"``) or as objects
        (``"objects"``) named ``name``.
    """
    images = module("Images")
    images.filter_choice.value = "Images only"

    meta = module("Metadata")
    meta.wants_metadata.value = True
    g = meta.extraction_methods[0]
    g.extraction_method.value = "Extract from file/folder names"
    g.source.value = "File name"
    g.file_regexp.value = STEM_REGEX
    g.filter_choice.value = "All images"

    nat = module("NamesAndTypes")
    nat.assignment_method.value = "Images matching rules"
    nat.matching_choice.value = "Metadata"
    for index, (folder, kind, name) in enumerate(assignments):
        # the first assignment exists already (can_remove=False)
        if index >= len(nat.assignments):
            nat.add_assignment(can_remove=index > 0)
        assignment = nat.assignments[index]
        assignment.rule_filter.value = folder_rule(folder)
        if kind == "image":
            assignment.image_name.value = name
            assignment.load_as_choice.value = "Grayscale image"
            # bit depth, not file metadata: the readers disagree on metadata, the dtype is certain
            assignment.rescale_method.value = "Image bit-depth"
        elif kind == "objects":
            assignment.object_name.value = name
            assignment.load_as_choice.value = "Objects"
        else:
            raise ValueError(f"assignment kind must be 'image' or 'objects', got {kind!r}")
    if len(assignments) > 1:
        nat.join.value = str([{name: "Stem" for _, _, name in assignments}])

    groups = module("Groups")
    groups.wants_groups.value = False
    return [images, meta, nat, groups]


# ---------------------------------------------------------------------- processing modules


def identify_primary(input_image: str, output: str, p: dict):
    """IdentifyPrimaryObjects: global two-class Otsu plus declumping, as in the GUI."""
    auto_smooth = not p["smoothing_filter"]
    auto_supp = not p["maxima_distance"]
    m = module(
        "IdentifyPrimaryObjects",
        x_name=input_image,
        y_name=output,
        use_advanced=True,
        size_range=f"{int(p['size_min'])},{int(p['size_max'])}",
        exclude_size=bool(p["exclude_size"]),
        # border nuclei are in the ground truth: never drop them
        exclude_border_objects=False,
        unclump_method=p["unclump"],
        watershed_method=p["watershed"],
        automatic_smoothing=auto_smooth,
        automatic_suppression=auto_supp,
        low_res_maxima=bool(p["low_res_maxima"]),
        fill_holes=p["fill_holes"],
        limit_choice="Continue",
    )
    if not auto_smooth:
        m.smoothing_filter_size.value = int(p["smoothing_filter"])
    if not auto_supp:
        m.maxima_suppression_size.value = float(p["maxima_distance"])
    t = m.threshold
    # Otsu either way; Adaptive computes it per window instead of once per image
    t.threshold_scope.value_text = p.get("threshold_scope", "Global")
    t.global_operation.value_text = "Otsu"
    t.local_operation.value_text = "Otsu"
    t.adaptive_window_size.value = int(p.get("adaptive_window", 50))
    t.two_class_otsu.value_text = p.get("otsu_classes", "Two classes")
    t.assign_middle_to_foreground.value_text = p.get("middle", "Foreground")
    t.threshold_smoothing_scale.value = float(p["threshold_smoothing"])
    t.threshold_correction_factor.value = float(p["correction"])
    t.threshold_range.value_text = "0.0,1.0"
    t.log_transform.value = bool(p.get("log_transform", False))
    return m


def basic_processing(p: dict | None = None):
    p = dict(BASIC_PARAMS, **(p or {}))
    return [identify_primary(IMAGE_NAME, NUCLEI, p)]


def advanced_processing(p: dict | None = None):
    """Caicedo et al. 2019 style: background correction, median, opening, IPO, filter."""
    p = dict(ADVANCED_PARAMS, **(p or {}))
    mods = []
    # Per-image background (block minima, smoothed) subtracted: flattens uneven
    # illumination and haze without needing the whole image set.
    calc = module(
        "CorrectIlluminationCalculate",
        image_name=IMAGE_NAME,
        illumination_image_name="IllumDNA",
        intensity_choice="Background",
        dilate_objects=False,
        block_size=int(p["illum_block"]),
        rescale_option="No",
        each_or_all="Each",
        smoothing_method=p["illum_smoothing"],
        automatic_object_width="Manually",
        size_of_smoothing_filter=int(p["illum_filter_size"]),
        save_average_image=False,
        save_dilated_image=False,
    )
    apply = module(
        "CorrectIlluminationApply",
    )
    g = apply.images[0]
    g.image_name.value = IMAGE_NAME
    g.corrected_image_name.value = "CorrDNA"
    g.illum_correct_function_image_name.value = "IllumDNA"
    g.divide_or_subtract.value = "Subtract"
    mods += [calc, apply]
    current = "CorrDNA"
    # Median filter and opening as in Caicedo et al. 2019.  Tuning on train found both
    # lower F1 at every size tried (they blur the boundaries that the IoU > 0.75..0.95
    # matches depend on), so a size of 0 ships the module *disabled*, kept in place
    # so a user can switch it on for noisier images.
    median = int(p["median_size"])
    sm = module(
        "Smooth",
        image_name=current,
        filtered_image_name="MedianDNA",
        wants_automatic_object_size=False,
        object_size=float(median or 3),
        clip=True,
    )
    sm.smoothing_method.value_text = "Median Filter"
    mods.append(sm)
    if median:
        current = "MedianDNA"
    else:
        disable(sm, "Disabled: median filtering lowered mean F1 on the train split (see "
                    "pipelines/TUNING.md). To use it, enable it and set the input of "
                    "the next enabled module to MedianDNA.")
    radius = int(p["opening_radius"])
    op = module("Opening", x_name=current, y_name="OpenedDNA")
    op.structuring_element.value_text = f"Disk,{radius or 1}"
    mods.append(op)
    if radius:
        current = "OpenedDNA"
    else:
        disable(op, "Disabled: a grey-level opening lowered mean F1 on the train split (see "
                    "pipelines/TUNING.md). To use it, enable it and set the input of "
                    "IdentifyPrimaryObjects to OpenedDNA.")
    mods.append(identify_primary(current, "NucleiRaw", p))
    mods.append(measure_size_shape("NucleiRaw"))
    mods.append(filter_objects("NucleiRaw", NUCLEI, p))
    return mods


def disable(m, note: str):
    m.enabled = False
    m.notes = [note]


def filter_objects(src: str, dst: str, p: dict):
    f = module("FilterObjects", x_name=src, y_name=dst)
    f.mode.value = "Measurements"
    f.filter_choice.value_text = "Limits"
    limits = []
    if p.get("filter_area_min"):
        limits.append(("AreaShape_Area", float(p["filter_area_min"]), None))
    if p.get("filter_solidity_min"):
        limits.append(("AreaShape_Solidity", float(p["filter_solidity_min"]), None))
    if not limits:
        # a no-op limit keeps the module (and the Raw→Nuclei naming) in place
        limits.append(("AreaShape_Area", 0.0, None))
    while len(f.measurements) < len(limits):
        f.add_measurement()
    for g, (feat, lo, hi) in zip(f.measurements, limits):
        g.measurement.value = feat
        g.wants_minimum.value = lo is not None
        g.min_limit.value = lo if lo is not None else 0.0
        g.wants_maximum.value = hi is not None
        if hi is not None:
            g.max_limit.value = hi
    return f


# ------------------------------------------------------------------------- output modules


def output_modules(with_f1: bool = True):
    conv = module("ConvertObjectsToImage", object_name=NUCLEI, image_name=LABELS_IMAGE)
    conv.image_mode.value_text = "uint16"

    save = module(
        "SaveImages",
        save_image_or_figure="Image",
        image_name=LABELS_IMAGE,
        file_name_method="From image filename",
        file_image_name=IMAGE_NAME,
        wants_file_name_suffix=False,
        file_format="tiff",
        bit_depth="16-bit integer",
        overwrite=True,
        when_to_save="Every cycle",
        update_file_names=False,
        create_subdirectories=False,
        # CP5 passes compression=(8, 6) which the pinned tifffile rejects
        tiff_compress=False,
    )
    # "Default Output Folder sub-folder|labels" → <output>/labels
    save.pathname.value = f"Default Output Folder sub-folder|{LABELS_SUBFOLDER}"

    mods = [conv, save]
    if with_f1 and plugin_available("EvaluateObjectF1"):
        mods.append(evaluate_f1())
    exp = module(
        "ExportToSpreadsheet",
        delimiter='Comma (",")',
        wants_prefix=False,
        wants_overwrite_without_warning=True,
        wants_everything=True,
    )
    exp.directory.value = "Default Output Folder|"
    mods.append(exp)
    return mods


def evaluate_f1():
    """EvaluateObjectF1 (plugins/evaluateobjectf1.py) with the paper's defaults."""
    return module("EvaluateObjectF1", ground_truth=GT_NAME, predicted=NUCLEI)


# ---------------------------------------------------------------------- network modules

NETWORK_MODULES = {"unet": "ClassifyBoundariesUNet", "deepcell": "ClassifyPixelsDeepCell"}


def specialist_kinds() -> dict[str, tuple[str, str]]:
    """Pipelines for the shipped specialist models: {kind (the card's stem): (network, model choice)}."""
    from nucleiseg import model_types

    return {Path(card).stem: (network, label)
            for network in model_types.names() for label, card in model_types.get(network).specialist_cards.items()}


def network_processing(kind: str, augment: bool = False, model_choice: str | None = None,
                       ensemble: int | None = None):
    """The network module with a shipped model and the post-processing tuned for it on train.

    ``model_choice`` names one of the module's shipped specialist models (default:
    the general model); ``ensemble`` runs only the first networks of a DeepCell
    ensemble (default: all). The module reads the post-processing from the model card's
    ``postprocess`` field (written by ``python -m nucleiseg.tune_postprocess``);
    the same values are also written into its own settings, so they are what a
    user sees on switching to their own post-processing.
    """
    import json

    from nucleiseg import cards

    m = module(NETWORK_MODULES[kind], x_name=IMAGE_NAME, y_name=NUCLEI)
    if model_choice:
        set_setting(m, "model_choice", model_choice)
    card_path = m.model_path()
    card = json.loads(card_path.read_text())
    set_setting(m, "use_model_postprocess", True)
    set_setting(m, "augment", augment)
    for key, value in cards.tuned_postprocess(card_path).to_dict().items():
        set_setting(m, key, value)
    if kind == "deepcell":
        networks = len(card.get("members", [None]))
        if ensemble is not None and not 1 <= ensemble <= networks:
            raise ValueError(f"ensemble size {ensemble}: {card_path} has {networks} network(s)")
        set_setting(m, "ensemble", ensemble or networks)
    elif ensemble is not None:
        raise ValueError(f"ensemble size applies to DeepCell pipelines, not {kind}")
    return [m]


# ------------------------------------------------------------------------------ pipelines


def measure_size_shape(objects: str):
    """MeasureObjectSizeShape of ``objects``, basic features only (no Zernike, no advanced)."""
    shape = module("MeasureObjectSizeShape")
    shape.objects_list.value = objects
    shape.calculate_zernikes.value = False
    shape.calculate_advanced.value = False
    return shape


def measurement_modules():
    """Per-nucleus size, shape and DNA intensity, for pipelines run on images without ground truth."""
    shape = measure_size_shape(NUCLEI)
    intensity = module("MeasureObjectIntensity")
    intensity.images_list.value = IMAGE_NAME
    intensity.objects_list.value = NUCLEI
    return [shape, intensity]


def build(kind: str, params: dict | None = None, ensemble: int | None = None):
    """The pipeline ``kind`` (see :data:`KINDS`); ``KIND-segment`` is the same without ground truth.

    ``KIND-tta`` (any network kind) averages the network over flips and rotations;
    ``ensemble`` runs only the first networks of a DeepCell model.

    A ``-segment`` pipeline loads every image under the input folder but those in ``masks/``
    and ``labels/`` folders, measures the nuclei (size, shape, DNA intensity) instead of
    scoring them, and otherwise writes the same outputs.
    """
    init_cellprofiler()
    from cellprofiler_core.pipeline import Pipeline

    segment_only = kind.endswith(SEGMENT_ONLY)
    if segment_only:
        kind = kind[: -len(SEGMENT_ONLY)]
    augment = kind.endswith(AUGMENTED)
    network_kind = kind[: -len(AUGMENTED)] if augment else kind
    specialists = specialist_kinds()
    if kind == "basic":
        proc = basic_processing(params)
    elif kind == "advanced":
        proc = advanced_processing(params)
    elif network_kind in NETWORK_MODULES:
        proc = network_processing(network_kind, augment=augment, ensemble=ensemble)
    elif network_kind in specialists:
        network, choice = specialists[network_kind]
        proc = network_processing(network, augment=augment, model_choice=choice, ensemble=ensemble)
    else:
        raise ValueError(kind)
    if segment_only:
        steps = input_modules(SEGMENT_ASSIGNMENTS) + proc + measurement_modules() + output_modules(with_f1=False)
    else:
        steps = input_modules() + proc + output_modules()
    pipeline = Pipeline()
    for i, m in enumerate(steps, start=1):
        m.set_module_num(i)
        pipeline.add_module(m)
    return pipeline


def dumps(pipeline) -> str:
    buf = io.StringIO()
    pipeline.dump(buf, save_image_plane_details=False)
    return buf.getvalue()


KINDS = ("basic", "advanced", "unet", "deepcell", "unet-bbbc039", "deepcell-bbbc039", "unet-segment", "deepcell-segment")
# "NETWORK-tta" (e.g. "unet-tta", "deepcell-bbbc039-tta"): the network pipeline with test-time
# augmentation (flips and rotations averaged); built on request only, e.g. into out/ for a
# benchmark comparison.
AUGMENTED = "-tta"
# "KIND-segment": KIND for images without ground truth (no masks/, no EvaluateObjectF1).
SEGMENT_ONLY = "-segment"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kinds", nargs="*", default=list(KINDS))
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--ensemble", type=int, metavar="N",
                    help="DeepCell pipelines: run only the first N networks of the ensemble (default: all)")
    args = ap.parse_args(argv)
    init_cellprofiler()
    if not plugin_available("EvaluateObjectF1"):
        print("warning: EvaluateObjectF1 plugin not found in", PLUGINS_DIR, file=sys.stderr)
    for kind in args.kinds:
        path = os.path.join(args.out, f"{kind}.cppipe")
        try:
            text = dumps(build(kind, ensemble=args.ensemble))
        except ValueError as error:
            ap.error(f"{kind}: {error}")
        with open(path, "w", newline="\n") as fd:
            fd.write(text)
        print("wrote", path)


if __name__ == "__main__":
    main()

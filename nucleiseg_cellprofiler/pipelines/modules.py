"""CellProfiler modules as the shipped pipelines use them, built through their own settings.

Every setting goes through the module's own Setting objects, so a typo fails
here instead of when a pipeline runs. Call
:func:`nucleiseg_cellprofiler.headless.init_cellprofiler` first.
"""

from __future__ import annotations

from ..headless import plugin_available
from ..names import GROUND_TRUTH, IMAGE, IMAGES_FOLDER, LABELS_FOLDER, LABELS_IMAGE, MASKS_FOLDER, NUCLEI, STEM, STEM_REGEX

#: NamesAndTypes assignments of the shipped pipelines: (folder, "image" or "objects", name),
#: matched across folders by the file-name Stem.
DEFAULT_ASSIGNMENTS = ((IMAGES_FOLDER, "image", IMAGE), (MASKS_FOLDER, "objects", GROUND_TRUTH))
#: Pipelines without ground truth take every image under the input folder (a plain folder of
#: TIFFs, or our layout's images/) except ground truth and this project's own label outputs.
SEGMENT_ASSIGNMENTS = ((None, "image", IMAGE),)


def module(name: str, **settings):
    """CellProfiler module ``name`` with attribute-named settings set (see :func:`set_setting`)."""
    from cellprofiler_core.utilities.core.modules import instantiate_module

    m = instantiate_module(name)
    for attr, value in settings.items():
        set_setting(m, attr, value)
    return m


def set_setting(m, attr: str, value):
    """Set the setting at dotted attribute path ``attr`` of module ``m``; returns the setting.

    Booleans set ``value``, everything else ``value_text``, as a pipeline file would.
    """
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


def disable(m, note: str):
    """Ship module ``m`` switched off, with a note saying why."""
    m.enabled = False
    m.notes = [note]


# --------------------------------------------------------------------------- input modules


def folder_rule(folder: str | None) -> str:
    """NamesAndTypes rule: files in a folder ending in ``folder``; None: any folder but masks/ and labels/."""
    if folder is None:
        return f'and (directory doesnot endwith "{MASKS_FOLDER}") (directory doesnot endwith "{LABELS_FOLDER}")'
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
            # (CellProfiler 4 calls this setting "rescale", 5 "rescale_method")
            rescale = assignment.rescale_method if hasattr(assignment, "rescale_method") else assignment.rescale
            rescale.value = "Image bit-depth"
        elif kind == "objects":
            assignment.object_name.value = name
            assignment.load_as_choice.value = "Objects"
        else:
            raise ValueError(f"assignment kind must be 'image' or 'objects', got {kind!r}")
    if len(assignments) > 1:
        nat.join.value = str([{name: STEM for _, _, name in assignments}])

    groups = module("Groups")
    groups.wants_groups.value = False
    return [images, meta, nat, groups]


# ---------------------------------------------------------------------- measuring modules


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
    intensity.images_list.value = IMAGE
    intensity.objects_list.value = NUCLEI
    return [shape, intensity]


# ------------------------------------------------------------------------- output modules


def output_modules(with_f1: bool = True):
    """Label images saved as 16-bit TIFFs into labels/, EvaluateObjectF1 (``with_f1``), ExportToSpreadsheet."""
    conv = module("ConvertObjectsToImage", object_name=NUCLEI, image_name=LABELS_IMAGE)
    conv.image_mode.value_text = "uint16"

    save = module(
        "SaveImages",
        save_image_or_figure="Image",
        image_name=LABELS_IMAGE,
        file_name_method="From image filename",
        file_image_name=IMAGE,
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
    save.pathname.value = f"Default Output Folder sub-folder|{LABELS_FOLDER}"

    mods = [conv, save]
    if with_f1 and plugin_available("EvaluateObjectF1"):
        mods.append(evaluate_f1())
    mods.append(export_to_spreadsheet())
    return mods


def export_to_spreadsheet():
    """ExportToSpreadsheet of every measurement as ``Image.csv`` (and per-object CSVs) in the output folder."""
    exp = module(
        "ExportToSpreadsheet",
        delimiter='Comma (",")',
        wants_prefix=False,
        wants_overwrite_without_warning=True,
        wants_everything=True,
    )
    exp.directory.value = "Default Output Folder|"
    return exp


def evaluate_f1():
    """EvaluateObjectF1 (plugins/evaluateobjectf1.py) with the paper's defaults."""
    return module("EvaluateObjectF1", ground_truth=GROUND_TRUTH, predicted=NUCLEI)

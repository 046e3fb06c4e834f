"""The classical pipelines: CellProfiler's IdentifyPrimaryObjects, alone (basic) or with Caicedo et al.'s steps (advanced).

Their settings were tuned on the train split by
:mod:`nucleiseg_cellprofiler.tune_classical`, which runs the very modules built
here (numbers in pipelines/TUNING.md).
"""

from __future__ import annotations

from ..names import IMAGE, NUCLEI
from .kinds import PipelineKind, register
from .modules import disable, measure_size_shape, module

# Tuned on the train split (pipelines/TUNING.md); the tuner's names, not CellProfiler's.
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
    """IdentifyPrimaryObjects alone, with :data:`BASIC_PARAMS` updated by ``p``."""
    p = dict(BASIC_PARAMS, **(p or {}))
    return [identify_primary(IMAGE, NUCLEI, p)]


def advanced_processing(p: dict | None = None):
    """Caicedo et al. 2019 style: background correction, median, opening, IPO, filter (:data:`ADVANCED_PARAMS` updated by ``p``)."""
    p = dict(ADVANCED_PARAMS, **(p or {}))
    mods = []
    # Per-image background (block minima, smoothed) subtracted: flattens uneven
    # illumination and haze without needing the whole image set.
    calc = module(
        "CorrectIlluminationCalculate",
        image_name=IMAGE,
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
    g.image_name.value = IMAGE
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


register(PipelineKind("basic", lambda options: basic_processing(options.params), params=BASIC_PARAMS))
register(PipelineKind("advanced", lambda options: advanced_processing(options.params), params=ADVANCED_PARAMS))

"""
EvaluateObjectF1
================

**EvaluateObjectF1** scores predicted objects (for example nuclei found by a segmentation
module) against ground-truth objects at the object level, as in Caicedo et al. 2019.

A predicted object *matches* a ground-truth object when their intersection over union (IoU) is
above a threshold. Because every threshold is at least 0.5, each object has at most one match.
For every threshold the module counts true positives (matched predictions), false positives
(unmatched predictions) and false negatives (unmatched ground-truth objects) and reports
precision, recall and F1 = 2 TP / (2 TP + FP + FN). The mean F1 over the thresholds is the
summary score of the paper.

It also reports the ground-truth objects missed at IoU 0.7 by size, *merges* (predicted objects
that overlap more than one ground-truth object) and *splits* (ground-truth objects overlapped by
more than one prediction).

When both object sets are empty, precision, recall and F1 are 1; when exactly one is empty they
are 0.

At the end of the run, the module reads its per-image measurements back and stores dataset
figures as experiment measurements: the *macro* average (mean of per-image scores, as in the
paper) and the *micro* average (precision, recall and F1 from TP, FP and FN summed over
images). Because they are read back from the measurements, the aggregates cover every image of
the run, whichever worker processed it. A headless run on a subset of the images (one shard of a
larger batch) aggregates only that subset: combine shards from their per-image measurements.

Only one **EvaluateObjectF1** module may be used per pipeline, since its measurement names do
not include the object names.

|

============ ============ ===============
Supports 2D? Supports 3D? Respects masks?
============ ============ ===============
YES          NO           NO
============ ============ ===============

Recommended pipelines
^^^^^^^^^^^^^^^^^^^^^

Every pipeline in this project's ``pipelines/`` folder ends with **EvaluateObjectF1** followed
by **ExportToSpreadsheet**: ``unet.cppipe``, ``deepcell.cppipe``, ``basic.cppipe`` and
``advanced.cppipe``. They load the images from an ``images/`` folder and the ground truth as
*GroundTruth* objects from label images in a ``masks/`` folder, matched by file name in
**NamesAndTypes** (*Select the image type*: *Objects*). To score your own segmentation, load
your hand-annotated label images the same way and select the objects of your segmentation
module as the predicted objects.

What the display window shows
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

At the lowest IoU threshold: the ground-truth objects coloured as *matched* (green), *missed*
(red) or *split* (magenta), and the predicted objects as *matched* (green), *false positive*
(yellow) or *merged* (blue), each object filled faintly with a full-colour outline; a table of
TP, FP, FN, precision, recall and F1 at every IoU threshold; and a table of the single
figures (mean F1, object counts, mean IoU, error rate, missed objects by size, merges,
splits).

Measurements made by this module
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

Per image (category **ObjectF1**; ``XXX`` is the IoU threshold times 100, e.g. ``050``):

-  *MeanF1*: mean F1 over the IoU thresholds.
-  *F1_XXX*, *Precision_XXX*, *Recall_XXX*: rates at each threshold.
-  *TP_XXX*, *FP_XXX*, *FN_XXX*: counts at each threshold.
-  *MeanIoU_050*: mean IoU of the pairs matched at IoU 0.5 (NaN without any match).
-  *Nuclei*, *Predicted*: number of ground-truth and predicted objects.
-  *ErrorRate_070*: ground-truth objects missed at IoU 0.7 divided by *Nuclei*.
-  *MissedTiny*, *MissedSmall*, *MissedNormal*, *MissedLarge*: objects missed at IoU 0.7 by area.
-  *Merges*, *Splits*: merged predictions and split ground-truth objects.

Per experiment (category **ObjectF1**): *Macro_<rate>* and *Micro_<rate>* for every rate above,
*Total_<count>* for every count above, and *Images*, the number of images aggregated.

References
^^^^^^^^^^

-  Caicedo JC, Roth J, Goodman A, Becker T, Karhohs KW, Broisin M, Molnar C, McQuin C, Singh S,
   Theis FJ, Carpenter AE (2019) "Evaluation of Deep Learning Strategies for Nucleus
   Segmentation in Fluorescence Images", *Cytometry Part A* 95(9), 952-965.
   `(link) <https://doi.org/10.1002/cyto.a.23863>`__
"""

from __future__ import annotations

import numpy as np
from cellprofiler_core.constants.measurement import (
    COLTYPE_FLOAT,
    COLTYPE_INTEGER,
    EXPERIMENT,
    IMAGE,
    MCA_AVAILABLE_POST_RUN,
)
from cellprofiler_core.module import Module
from cellprofiler_core.setting import ValidationError
from cellprofiler_core.setting.subscriber import LabelSubscriber
from cellprofiler_core.setting.text import Float, Text

from nucleiseg.metric import (
    DEFAULT_MERGE_IOU,
    DEFAULT_SIZE_EDGES,
    DEFAULT_THRESHOLDS,
    OUTCOME_CODES,
    OUTCOME_COLOURS,
    aggregate_macro,
    aggregate_micro,
    check_merge_iou,
    is_count_key,
    metric_keys,
    outcome_image,
    parse_size_edges,
    parse_thresholds,
    score_image,
)
from nucleiseg_cellprofiler.names import GROUND_TRUTH, NUCLEI

C_OBJECT_F1 = "ObjectF1"

# CellProfiler feature names of the single (not per-threshold) flat keys of nucleiseg.metric.
_SINGLE_FEATURES = {
    "f1_mean": "MeanF1",
    "mean_iou_050": "MeanIoU_050",
    "nuclei": "Nuclei",
    "predicted": "Predicted",
    "error_rate_070": "ErrorRate_070",
    "missed_tiny": "MissedTiny",
    "missed_small": "MissedSmall",
    "missed_normal": "MissedNormal",
    "missed_large": "MissedLarge",
    "merges": "Merges",
    "splits": "Splits",
}
_PREFIX_FEATURES = {"f1": "F1", "precision": "Precision", "recall": "Recall", "tp": "TP", "fp": "FP", "fn": "FN"}

# The outcomes each display panel colours (as nucleiseg.metric.outcome_image codes them).
_GT_OUTCOMES = ("matched", "missed", "split")
_PREDICTED_OUTCOMES = ("matched", "false_positive", "merged")


def feature_for_key(key: str) -> str:
    """CellProfiler feature name (without category) of a flat metric key, e.g. ``f1_050 -> F1_050``."""
    if key in _SINGLE_FEATURES:
        return _SINGLE_FEATURES[key]
    prefix, suffix = key.rsplit("_", 1)
    return f"{_PREFIX_FEATURES[prefix]}_{suffix}"


# No class docstring: CellProfiler shows the module docstring above as help only when the
# class has none.
class EvaluateObjectF1(Module):

    category = "Measurement"
    module_name = "EvaluateObjectF1"
    variable_revision_number = 1
    doi = {
        "Please cite the following when using EvaluateObjectF1 (Caicedo et al. 2019, "
        "Evaluation of Deep Learning Strategies for Nucleus Segmentation in Fluorescence Images, "
        "Cytometry A):": "https://doi.org/10.1002/cyto.a.23863"
    }

    def create_settings(self):
        self.ground_truth = LabelSubscriber(
            "Select the ground-truth objects",
            GROUND_TRUTH,
            doc="""\
Objects holding the reference segmentation, for example nuclei annotated by hand and loaded as
objects from label images in **NamesAndTypes**. Each object is one nucleus.""",
        )
        self.predicted = LabelSubscriber(
            "Select the predicted objects",
            NUCLEI,
            doc="""\
Objects to score against the ground truth, for example the output of **IdentifyPrimaryObjects**
or of a deep-learning segmentation module. They must have the same size as the ground truth.""",
        )
        self.thresholds = Text(
            "IoU thresholds",
            ",".join(f"{t:.2f}" for t in DEFAULT_THRESHOLDS),
            doc="""\
Comma-separated intersection-over-union thresholds, each between 0.5 and 1 with at most two
decimals. A prediction matches a ground-truth object when their IoU is above the threshold.
Thresholds below 0.5 are not allowed: only from 0.5 up can an object have at most one match, so
that no assignment has to be solved. The default 0.50, 0.55, ..., 0.95 is the paper's.""",
        )
        self.size_edges = Text(
            "Size-bin edges (pixels)",
            ",".join(f"{e:g}" for e in DEFAULT_SIZE_EDGES),
            doc="""\
Three increasing areas in pixels separating *tiny*, *small*, *normal* and *large* ground-truth
objects, used to count the objects missed at IoU 0.7 by size. An object whose area equals an
edge falls into the larger bin. The default 250, 625, 900 follows the paper.""",
        )
        self.merge_iou = Float(
            "Minimum IoU for merges and splits",
            DEFAULT_MERGE_IOU,
            minval=0.0,
            maxval=1.0,
            doc="""\
A predicted object counts as a *merge* when it overlaps at least two ground-truth objects with
at least this IoU each; a ground-truth object counts as a *split* when at least two predicted
objects overlap it with at least this IoU each. Must be above 0.""",
        )

    def settings(self):
        return [self.ground_truth, self.predicted, self.thresholds, self.size_edges, self.merge_iou]

    def visible_settings(self):
        return self.settings()

    def upgrade_settings(self, setting_values, variable_revision_number, module_name):
        # Revision 1 is the first; later revisions will convert older setting lists here.
        return setting_values, variable_revision_number

    def volumetric(self):
        return False

    # ---- parameters ------------------------------------------------------------------------

    def _parameters(self):
        """Thresholds, size edges and merge IoU parsed from the settings (ValueError if invalid)."""
        thresholds = parse_thresholds(self.thresholds.value)
        edges = parse_size_edges(self.size_edges.value)
        merge_iou = check_merge_iou(self.merge_iou.value)
        return thresholds, edges, merge_iou

    def _thresholds_or_none(self):
        try:
            return parse_thresholds(self.thresholds.value)
        except ValueError:
            return None

    def validate_module(self, pipeline):
        for setting, check in (
            (self.thresholds, lambda: parse_thresholds(self.thresholds.value)),
            (self.size_edges, lambda: parse_size_edges(self.size_edges.value)),
            (self.merge_iou, lambda: check_merge_iou(self.merge_iou.value)),
        ):
            try:
                check()
            except ValueError as error:
                raise ValidationError(f"{setting.text}: {error}", setting)
        if self.ground_truth.value == self.predicted.value:
            raise ValidationError("The predicted objects must differ from the ground-truth objects", self.predicted)
        others = [m for m in pipeline.modules() if isinstance(m, Module) and m.module_name == self.module_name]
        if others and others[0] is not self:
            raise ValidationError(
                "Only one EvaluateObjectF1 module per pipeline is supported: the measurement names do not include the object names",
                self.predicted,
            )

    # ---- measurements ----------------------------------------------------------------------

    def _image_keys(self):
        thresholds = self._thresholds_or_none()
        keys = metric_keys(thresholds) if thresholds else metric_keys(())
        return keys

    def _experiment_features(self):
        """(feature name, column type) of the experiment measurements written by post_run."""
        features = []
        rates = [k for k in self._image_keys() if not is_count_key(k)]
        counts = [k for k in self._image_keys() if is_count_key(k)]
        for scope in ("Macro", "Micro"):
            features += [(f"{scope}_{feature_for_key(k)}", COLTYPE_FLOAT) for k in rates]
        features += [(f"Total_{feature_for_key(k)}", COLTYPE_INTEGER) for k in counts]
        features.append(("Images", COLTYPE_INTEGER))
        return features

    def get_measurement_columns(self, pipeline):
        columns = [
            (IMAGE, f"{C_OBJECT_F1}_{feature_for_key(k)}", COLTYPE_INTEGER if is_count_key(k) else COLTYPE_FLOAT)
            for k in self._image_keys()
        ]
        columns += [
            (EXPERIMENT, f"{C_OBJECT_F1}_{name}", coltype, {MCA_AVAILABLE_POST_RUN: True})
            for name, coltype in self._experiment_features()
        ]
        return columns

    def get_categories(self, pipeline, object_name):
        if object_name in (IMAGE, EXPERIMENT):
            return [C_OBJECT_F1]
        return []

    def get_measurements(self, pipeline, object_name, category):
        if category != C_OBJECT_F1:
            return []
        if object_name == IMAGE:
            return [feature_for_key(k) for k in self._image_keys()]
        if object_name == EXPERIMENT:
            return [name for name, _ in self._experiment_features()]
        return []

    # ---- running ---------------------------------------------------------------------------

    def run(self, workspace):
        thresholds, edges, merge_iou = self._parameters()
        gt = workspace.object_set.get_objects(self.ground_truth.value).segmented
        pred = workspace.object_set.get_objects(self.predicted.value).segmented
        if gt.shape != pred.shape:
            raise ValueError(
                f"EvaluateObjectF1: ground-truth objects {self.ground_truth.value!r} have shape {gt.shape} "
                f"but predicted objects {self.predicted.value!r} have shape {pred.shape}"
            )
        scores = score_image(gt, pred, thresholds, edges, merge_iou)
        measurements = workspace.measurements
        for key, value in scores.to_dict().items():
            measurements.add_image_measurement(f"{C_OBJECT_F1}_{feature_for_key(key)}", value)

        if self.show_window:
            # The display shows outcomes at the lowest threshold, where most objects match.
            shown = min(thresholds)
            matches = scores.matches(shown)
            data = workspace.display_data
            data.threshold = shown
            data.gt_labels = gt
            data.pred_labels = pred
            data.gt_outcome = outcome_image(gt, matches, "gt")
            data.pred_outcome = outcome_image(pred, matches, "pred")
            data.per_threshold = [
                [f"{t:.2f}", int(tp), int(fp), int(fn), f"{p:.3f}", f"{r:.3f}", f"{f:.3f}"]
                for t, tp, fp, fn, p, r, f in zip(
                    scores.thresholds, scores.tp, scores.fp, scores.fn, scores.precision, scores.recall, scores.f1
                )
            ]
            data.summary = [
                ["Mean F1", f"{scores.f1_mean:.3f}"],
                ["Ground-truth objects", str(scores.nuclei)],
                ["Predicted objects", str(scores.predicted)],
                ["Mean IoU of matches (0.5)", f"{scores.mean_iou_050:.3f}"],
                ["Error rate (IoU 0.7)", f"{scores.error_rate_070:.3f}"],
                *[[f"Missed {name} (IoU 0.7)", str(n)] for name, n in scores.missed_by_size.items()],
                ["Merges", str(scores.merges)],
                ["Splits", str(scores.splits)],
            ]

    def display(self, workspace, figure):
        data = workspace.display_data
        figure.set_subplots((2, 2))
        figure.subplot_imshow_color(
            0,
            0,
            outcome_rgb(data.gt_labels, data.gt_outcome),
            title=f"{self.ground_truth.value}: {legend(_GT_OUTCOMES)} at IoU > {data.threshold:.2f}",
        )
        figure.subplot_imshow_color(
            1,
            0,
            outcome_rgb(data.pred_labels, data.pred_outcome),
            title=f"{self.predicted.value}: {legend(_PREDICTED_OUTCOMES)}",
            sharexy=figure.subplot(0, 0),
        )
        figure.subplot_table(
            0, 1, data.per_threshold, col_labels=["IoU", "TP", "FP", "FN", "Precision", "Recall", "F1"]
        )
        figure.subplot_table(1, 1, data.summary, col_labels=["Measurement", "Value"])

    def post_run(self, workspace):
        # Read every image's figures back from the measurements rather than keeping state in the
        # module: in a multi-worker run each worker's module copy sees only its own images, but
        # the measurements gathered here cover the whole run.
        measurements = workspace.measurements
        keys = self._image_keys()
        features = {k: f"{C_OBJECT_F1}_{feature_for_key(k)}" for k in keys}
        if not keys or not all(measurements.has_feature(IMAGE, f) for f in features.values()):
            return
        image_numbers = measurements.get_image_numbers()
        if len(image_numbers) == 0:
            return
        columns = {k: measurements.get_measurement(IMAGE, f, image_numbers) for k, f in features.items()}
        rows = []
        for i in range(len(image_numbers)):
            row = {k: columns[k][i] for k in keys}
            # Image sets where the module did not run (e.g. after an error) have no values.
            if any(row[k] is None or (is_count_key(k) and not np.isfinite(row[k])) for k in keys):
                continue
            rows.append({k: (int(v) if is_count_key(k) else float(v)) for k, v in row.items()})
        macro = aggregate_macro(rows)
        micro = aggregate_micro(rows)
        for key in keys:
            name = feature_for_key(key)
            if is_count_key(key):
                measurements.add_experiment_measurement(f"{C_OBJECT_F1}_Total_{name}", int(macro.get(key, 0)))
            else:
                measurements.add_experiment_measurement(f"{C_OBJECT_F1}_Macro_{name}", float(macro.get(key, np.nan)))
                measurements.add_experiment_measurement(f"{C_OBJECT_F1}_Micro_{name}", float(micro.get(key, np.nan)))
        measurements.add_experiment_measurement(f"{C_OBJECT_F1}_Images", len(rows))


def outcome_rgb(labels: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """RGB picture of :func:`nucleiseg.metric.outcome_image` codes in the core's :data:`OUTCOME_COLOURS`.

    Each object is filled faintly (35 % of its colour) and outlined in full colour.
    """
    from skimage.segmentation import find_boundaries

    rgb = np.zeros(labels.shape + (3,), np.float32)
    edges = find_boundaries(labels, mode="inner")
    for name, (_, colour) in OUTCOME_COLOURS.items():
        inside = outcome == OUTCOME_CODES[name]
        rgb[inside] = np.multiply(colour, 0.35)
        rgb[inside & edges] = colour
    return rgb


def legend(outcomes) -> str:
    """``matched (green), missed (red), ...``: the outcomes with their colour names."""
    return ", ".join(f"{name.replace('_', ' ')} ({OUTCOME_COLOURS[name][0]})" for name in outcomes)


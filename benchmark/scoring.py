"""Scores of a pipeline's predicted labels against the ground truth, per image and per pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nucleiseg import layouts, metric

from . import aggregate
from .errors import PipelineError
from .log_timing import PipelineRun, timing_figures

#: The fixed first columns of ``summary.csv`` (docs/CONVENTIONS.md, README).
SUMMARY_COLUMNS = (
    ["pipeline", "images", "nuclei", "f1_mean"]
    + [f"f1_{metric.threshold_key(t)}" for t in metric.DEFAULT_THRESHOLDS]
    + ["error_rate_070", "missed_tiny", "missed_small", "missed_normal", "missed_large"]
    + ["merges", "splits", "sec_per_image"]
)
#: Columns after the fixed ones: pooled (micro) figures and timing details.
SUMMARY_EXTRA_COLUMNS = (
    ["predicted", "precision_050", "recall_050", "mean_iou_050", "micro_f1_mean"]
    + [f"micro_f1_{metric.threshold_key(t)}" for t in metric.DEFAULT_THRESHOLDS]
    + ["micro_error_rate_070", "sec_first_image", "startup_sec", "wall_sec", "shards"]
    + ["sec_per_image_warm", "sec_cold_first_image", "images_per_minute", "peak_rss_mb_per_process", "retried_shards"]
    + metric.extra_figure_keys()
)


def read_prediction(path: Path, shape: tuple[int, int], pipeline: str) -> tuple[np.ndarray, str | None]:
    """Predicted labels of one image, stored back as uint16 when saved otherwise.

    Parameters
    ----------
    path : Path
        The label file a pipeline saved.
    shape : tuple of int
        Shape of the ground truth.
    pipeline : str
        Pipeline name, for errors.

    Returns
    -------
    (labels, warning)
        int32 labels and a warning text (or None) about the saved file.

    Raises
    ------
    PipelineError
        When the file cannot be read, has another shape, or holds more labels than 16 bits.
    """
    try:
        pred = layouts.read_labels(path)
    except ValueError as error:
        raise PipelineError(pipeline, f"unreadable predicted labels: {error}") from error
    if pred.shape != tuple(shape):
        raise PipelineError(pipeline, f"{path}: predicted labels have shape {pred.shape}, ground truth {tuple(shape)}")
    warning = None
    stored = layouts.read_array(path).dtype
    if stored != np.uint16:
        if stored == np.uint8 and pred.max() == 255:
            warning = f"{path}: labels were saved as 8-bit and may have wrapped at 255; save 16-bit"
        if pred.max() > layouts.MAX_LABEL:
            raise PipelineError(pipeline, f"{path}: {pred.max()} labels do not fit 16 bits")
        layouts.write_tiff(path, pred.astype(np.uint16))
    return pred, warning


def score_pipeline(run: PipelineRun, pairs: list, labels_dir: Path, warn) -> list[dict]:
    """Per-image rows of one pipeline: ``pipeline``, ``image``, ``shard``, ``sec`` and the metric keys.

    Parameters
    ----------
    run : PipelineRun
        The pipeline's shards (which shard and how many seconds each image took).
    pairs : list of Pair
        Images and their ground truth.
    labels_dir : Path
        ``OUT/<pipeline>/labels``.
    warn : callable
        Receives a warning about a label file saved in another bit depth.

    Returns
    -------
    list of dict
    """
    rows = []
    for pair in pairs:
        gt = layouts.read_labels(pair.mask)
        pred, warning = read_prediction(labels_dir / f"{pair.stem}.tiff", gt.shape, run.name)
        if warning:
            warn(warning)
        scores = metric.score_image(gt, pred)
        row = {"pipeline": run.name, "image": pair.stem, "shard": run.shard_of[pair.stem], "sec": run.seconds[pair.stem]}
        row.update(metric.image_figures(scores))
        rows.append(row)
    return rows


def summarize(run: PipelineRun, rows: list[dict]) -> dict:
    """One ``summary.csv`` row: macro figures (mean of per-image values), micro extras, timing.

    ``run`` and ``rows`` are those of :func:`score_pipeline`; the timing columns come from
    :func:`benchmark.log_timing.timing_figures`.

    Returns
    -------
    dict
        ``pipeline`` and the keys of :data:`SUMMARY_COLUMNS` and :data:`SUMMARY_EXTRA_COLUMNS`, in that order.
    """
    figures = {
        **aggregate.macro(rows),
        **{f"micro_{key}": value for key, value in aggregate.micro(rows).items()},
        **timing_figures(run, rows),
    }
    return {"pipeline": run.name, **{key: figures[key] for key in SUMMARY_COLUMNS[1:] + SUMMARY_EXTRA_COLUMNS}}

"""The figures of ``report.md``: accuracy, errors and time per pipeline, paired F1 and example crops.

Each ``*_figure`` function returns a matplotlib figure (so tests can read back what
was drawn); :func:`write_plots` saves them all into ``OUT/plots/``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nucleiseg import metric

from .figures import pyplot, save_figure

PLOTS_DIR = "plots"
EXAMPLE_CROP = 256
EXAMPLE_IOU = 0.7


def f1_vs_iou_figure(summary: list[dict]):
    """Macro F1 against the IoU threshold, one line per pipeline (paper Fig. 2a)."""
    plt = pyplot()
    thresholds = metric.DEFAULT_THRESHOLDS
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in summary:
        values = [row[f"f1_{metric.threshold_key(t)}"] for t in thresholds]
        ax.plot(thresholds, values, marker="o", label=f"{row['pipeline']} (mean {row['f1_mean']:.3f})")
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("F1 (mean over images)")
    ax.set_ylim(0, 1)
    ax.set_xticks(thresholds)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("F1 vs IoU threshold")
    return fig


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float]]) -> None:
    """One bar per group for each series, side by side, each labelled with its value."""
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fmt="%g", fontsize=7)
    ax.set_xticks(x, groups)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)


def missed_by_size_figure(summary: list[dict]):
    """Ground-truth nuclei missed at IoU 0.7, per size bin and pipeline (paper Fig. 3a)."""
    plt = pyplot()
    edges = metric.DEFAULT_SIZE_EDGES
    groups = [
        f"tiny\n< {edges[0]:g} px",
        f"small\n{edges[0]:g}-{edges[1]:g}",
        f"normal\n{edges[1]:g}-{edges[2]:g}",
        f"large\n> {edges[2]:g} px",
    ]
    series = {row["pipeline"]: [row[f"missed_{b}"] for b in metric.SIZE_BINS] for row in summary}
    fig, ax = plt.subplots(figsize=(6, 4))
    _grouped_bars(ax, groups, series)
    ax.set_ylabel("missed nuclei (IoU 0.7)")
    ax.set_title("Missed nuclei by size")
    return fig


def merges_splits_figure(summary: list[dict]):
    """Merges and splits per pipeline (paper Fig. 3c)."""
    plt = pyplot()
    series = {row["pipeline"]: [row["merges"], row["splits"]] for row in summary}
    fig, ax = plt.subplots(figsize=(5, 4))
    _grouped_bars(ax, ["merges", "splits"], series)
    ax.set_ylabel("count")
    ax.set_title("Merged and split nuclei")
    return fig


def seconds_figure(summary: list[dict], per_image: list[dict]):
    """Seconds per image (bars: mean; dots: images) and start-up per CellProfiler process (paper Fig. 6)."""
    plt = pyplot()
    names = [row["pipeline"] for row in summary]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.5))
    x = np.arange(len(names))
    ax1.bar(x, [row["sec_per_image"] for row in summary], color="tab:blue", alpha=0.6)
    for i, name in enumerate(names):
        values = [r["sec"] for r in per_image if r["pipeline"] == name and math.isfinite(r["sec"])]
        ax1.scatter(np.full(len(values), i) + np.linspace(-0.2, 0.2, len(values)), values, s=8, color="k")
    ax1.set_xticks(x, names)
    ax1.set_ylabel("seconds per image")
    ax1.set_title("Processing time per image")
    ax2.bar(x, [row["startup_sec"] for row in summary], color="tab:orange", alpha=0.7)
    ax2.set_xticks(x, names)
    ax2.set_ylabel("seconds")
    ax2.set_title("CellProfiler start-up per process")
    for ax in (ax1, ax2):
        ax.grid(axis="y", alpha=0.3)
    return fig


def paired_figure(per_image: list[dict]):
    """Each pipeline's per-image mean F1 against the baseline's; None with a single pipeline."""
    from .compare import default_baseline, scores_by_pipeline

    scores = scores_by_pipeline(per_image, "f1_mean")
    if len(scores) < 2:
        return None
    baseline = default_baseline(scores)
    others = [name for name in scores if name != baseline]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(others), figsize=(3.2 * len(others), 3.4), squeeze=False)
    for ax, name in zip(axes[0], others):
        images = [i for i in scores[name] if i in scores[baseline]]
        x = np.array([scores[baseline][i] for i in images], dtype=float)
        y = np.array([scores[name][i] for i in images], dtype=float)
        colours = np.where(y > x, "tab:green", np.where(y < x, "tab:red", "tab:gray"))
        ax.scatter(x, y, s=10, c=colours)
        ax.plot([0, 1], [0, 1], color="k", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"{baseline} (F1 mean per image)", ylabel=name, aspect="equal")
        ax.set_title(f"{name}: {int(np.sum(y > x))} better, {int(np.sum(y < x))} worse", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def crop_window(gt: np.ndarray, size: int = EXAMPLE_CROP) -> tuple[slice, slice]:
    """The ``size`` x ``size`` window (or the whole image when smaller) with most nucleus pixels."""
    h, w = gt.shape
    sh, sw = min(size, h), min(size, w)
    summed = np.pad((gt > 0).astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    counts = summed[sh:, sw:] - summed[:-sh, sw:] - summed[sh:, :-sw] + summed[:-sh, :-sw]
    i, j = np.unravel_index(int(np.argmax(counts)), counts.shape)
    return slice(i, i + sh), slice(j, j + sw)


def _grey_rgb(image: np.ndarray) -> np.ndarray:
    """A display RGB of a greyscale image, stretched between its 1st and 99.5th percentiles."""
    image = image.astype(np.float64)
    low, high = np.percentile(image, [1, 99.5])
    grey = np.clip((image - low) / (high - low), 0, 1) if high > low else np.zeros_like(image)
    return np.repeat(grey[..., None], 3, axis=2)


def outcome_overlay(
    image: np.ndarray, gt: np.ndarray, pred: np.ndarray, window=None, threshold: float = EXAMPLE_IOU
) -> np.ndarray:
    """RGB of ``image[window]`` with outlines coloured by outcome at IoU ``threshold``.

    Objects are matched on the whole image, then cropped. Outcomes and their
    colours are the core's (:func:`nucleiseg.metric.outcome_image`,
    :data:`nucleiseg.metric.OUTCOME_COLOURS`), as in EvaluateObjectF1's display:
    predicted objects are outlined as matched, false positive or merged;
    ground-truth nuclei that were missed or split are outlined too.
    """
    from skimage.segmentation import find_boundaries

    window = window if window is not None else (slice(None), slice(None))
    matches = metric.score_image(gt, pred, thresholds=[threshold]).matches(threshold)
    rgb = _grey_rgb(image[window])
    colour_of = {metric.OUTCOME_CODES[name]: colour for name, (_, colour) in metric.OUTCOME_COLOURS.items()}
    for labels, role in ((gt, "gt"), (pred, "pred")):
        outcome = metric.outcome_image(labels, matches, role)[window]
        if role == "gt":
            # The matching prediction's outline already shows a matched nucleus.
            outcome = np.where(outcome == metric.OUTCOME_CODES["matched"], 0, outcome)
        edges = find_boundaries(labels[window], mode="inner")
        for code, colour in colour_of.items():
            rgb[edges & (outcome == code)] = colour
    return rgb


def choose_examples(per_image: list[dict], pipelines: list[str]) -> list[tuple[str, str]]:
    """A typical image (median F1 over pipelines) and a hard one (lowest), as (title, stem)."""
    by_image: dict[str, list[float]] = {}
    nuclei: dict[str, int] = {}
    for row in per_image:
        if row["pipeline"] in pipelines:
            by_image.setdefault(row["image"], []).append(float(row["f1_mean"]))
            nuclei[row["image"]] = int(row["nuclei"])
    complete = {k: float(np.mean(v)) for k, v in by_image.items() if len(v) == len(pipelines)}
    # Images with a handful of nuclei show the errors; fall back to any image.
    candidates = {k: v for k, v in complete.items() if nuclei[k] >= 5} or complete
    if not candidates:
        return []
    ranked = sorted(candidates, key=lambda k: (candidates[k], k))
    typical, hard = ranked[len(ranked) // 2], ranked[0]
    examples = [("typical image (median F1)", typical)]
    if hard != typical:
        examples.append(("hard image (lowest F1)", hard))
    return examples


def examples_figure(out: Path, summary: list[dict], per_image: list[dict], pairs: dict):
    """Crops of example images with every pipeline's outlines.

    Parameters
    ----------
    out : Path
        Benchmark folder (holds ``<pipeline>/labels/<stem>.tiff``).
    summary, per_image : list of dict
        Rows of ``summary.csv`` and ``per_image.csv``.
    pairs : dict
        Stem to an object with ``image`` and ``mask`` paths.

    Returns
    -------
    (figure, list of str) or None
        The figure and the stems drawn; None when no example image has its files.
    """
    from matplotlib.patches import Patch
    from skimage.segmentation import find_boundaries

    from nucleiseg import layouts

    names = [row["pipeline"] for row in summary]
    examples = [(t, stem) for t, stem in choose_examples(per_image, names) if stem in pairs]
    if not examples:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(
        len(examples), len(names) + 1, figsize=(2.8 * (len(names) + 1), 3.4 * len(examples) + 0.6),
        squeeze=False, layout="constrained",
    )
    f1 = {(r["pipeline"], r["image"]): float(r["f1_mean"]) for r in per_image}
    for row_axes, (title, stem) in zip(axes, examples):
        image = layouts.read_image(pairs[stem].image)
        gt = layouts.read_labels(pairs[stem].mask)
        window = crop_window(gt)
        truth = _grey_rgb(image[window])
        truth[find_boundaries(gt[window], mode="inner")] = (1.0, 1.0, 1.0)
        row_axes[0].imshow(truth)
        row_axes[0].set_title(f"{stem[:12]}: ground truth\n{title}", fontsize=8)
        for ax, name in zip(row_axes[1:], names):
            pred = layouts.read_labels(Path(out) / name / "labels" / f"{stem}.tiff")
            ax.imshow(outcome_overlay(image, gt, pred, window))
            ax.set_title(f"{name}: F1 {f1[(name, stem)]:.2f} (whole image)", fontsize=8)
        for ax in row_axes:
            ax.set_axis_off()
    handles = [Patch(color=rgb, label=n.replace("_", " ")) for n, (_, rgb) in metric.OUTCOME_COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"Outlines by outcome at IoU {EXAMPLE_IOU:g}", fontsize=9)
    return fig, [stem for _, stem in examples]


def write_plots(out: Path, summary: list[dict], per_image: list[dict], pairs: dict | None = None) -> list[str]:
    """Save every figure of the report into ``out/plots/``.

    Parameters
    ----------
    out : Path
        Benchmark folder.
    summary, per_image : list of dict
        Rows of ``summary.csv`` and ``per_image.csv``.
    pairs : dict, optional
        Stem to image and mask paths; without it there are no example crops.

    Returns
    -------
    list of str
        The stems drawn in ``examples.png`` (empty when there is none).
    """
    plots = Path(out) / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    save_figure(f1_vs_iou_figure(summary), plots / "f1_vs_iou.png", dpi=110)
    save_figure(missed_by_size_figure(summary), plots / "missed_by_size.png", dpi=110)
    save_figure(merges_splits_figure(summary), plots / "merges_splits.png", dpi=110)
    save_figure(seconds_figure(summary, per_image), plots / "seconds_per_image.png", dpi=110)
    paired = paired_figure(per_image)
    if paired is not None:
        save_figure(paired, plots / "paired_f1.png", dpi=110)
    drawn = examples_figure(out, summary, per_image, pairs) if pairs else None
    if drawn is None:
        return []
    figure, stems = drawn
    save_figure(figure, plots / "examples.png", dpi=110)
    return stems

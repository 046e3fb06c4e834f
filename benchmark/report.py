"""``report.md`` and its plots (matplotlib, Agg backend) from the benchmark's rows."""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nucleiseg import metric

from .outputs import read_csv_figures, save_figure, write_atomic

PLOTS_DIR = "plots"
SIZE_BINS = metric.SIZE_BINS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


#: Caicedo et al. (2019), BBBC039 test images: mean F1 over IoU 0.50-0.95 and error rate at IoU 0.7.
PAPER_FIGURES = {
    "unet": (0.85, 0.081),
    "deepcell": (0.78, 0.140),
    "advanced": (0.74, 0.155),
    "basic": (0.72, 0.201),
}
#: Outline colours of the example crops, by outcome: the same as EvaluateObjectF1's display.
OUTCOME_COLOURS = metric.OUTCOME_COLOURS
EXAMPLE_CROP = 256
EXAMPLE_IOU = 0.7


def gpu_description() -> str:
    """The GPUs ``nvidia-smi`` lists, or a note that there is none (no framework import)."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if not smi:
        return "none (CPU only)"
    try:
        done = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (nvidia-smi did not answer)"
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return ", ".join(names) if done.returncode == 0 and names else "none (CPU only)"


def plot_f1_vs_iou(summary: list[dict], path: Path) -> None:
    """Macro F1 against the IoU threshold, one line per pipeline."""
    plt = _pyplot()
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
    save_figure(fig, path, dpi=110)


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float]]):
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fmt="%g", fontsize=7)
    ax.set_xticks(x, groups)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)


def plot_missed_by_size(summary: list[dict], path: Path) -> None:
    """Ground-truth nuclei missed at IoU 0.7, per size bin and pipeline."""
    plt = _pyplot()
    edges = metric.DEFAULT_SIZE_EDGES
    groups = [
        f"tiny\n< {edges[0]:g} px",
        f"small\n{edges[0]:g}-{edges[1]:g}",
        f"normal\n{edges[1]:g}-{edges[2]:g}",
        f"large\n> {edges[2]:g} px",
    ]
    series = {row["pipeline"]: [row[f"missed_{b}"] for b in SIZE_BINS] for row in summary}
    fig, ax = plt.subplots(figsize=(6, 4))
    _grouped_bars(ax, groups, series)
    ax.set_ylabel("missed nuclei (IoU 0.7)")
    ax.set_title("Missed nuclei by size")
    save_figure(fig, path, dpi=110)


def plot_merges_splits(summary: list[dict], path: Path) -> None:
    """Merges and splits per pipeline."""
    plt = _pyplot()
    series = {row["pipeline"]: [row["merges"], row["splits"]] for row in summary}
    fig, ax = plt.subplots(figsize=(5, 4))
    _grouped_bars(ax, ["merges", "splits"], series)
    ax.set_ylabel("count")
    ax.set_title("Merged and split nuclei")
    save_figure(fig, path, dpi=110)


def plot_seconds(summary: list[dict], per_image: list[dict], path: Path) -> None:
    """Seconds per image (bars: mean; dots: images) and start-up per CellProfiler process."""
    plt = _pyplot()
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
    save_figure(fig, path, dpi=110)


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

    Objects are matched on the whole image, then cropped. Predicted objects are
    outlined as matched, false positive or merged; ground-truth nuclei that were
    missed or split are outlined too (:data:`OUTCOME_COLOURS`).
    """
    from skimage.segmentation import find_boundaries

    window = window if window is not None else (slice(None), slice(None))
    matches = metric.score_image(gt, pred, thresholds=[threshold]).matches(threshold)
    rgb = _grey_rgb(image[window])
    codes = {code: name for name, code in metric.OUTCOME_CODES.items()}
    for labels, role in ((gt, "gt"), (pred, "pred")):
        outcome = metric.outcome_image(labels, matches, role)[window]
        edges = find_boundaries(labels[window], mode="inner")
        for code in np.unique(outcome[edges]):
            name = codes[int(code)]
            if role == "gt" and name == "matched":
                continue  # the matching prediction's outline already shows it
            if name in OUTCOME_COLOURS:
                rgb[edges & (outcome == code)] = OUTCOME_COLOURS[name][1]
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


def plot_examples(out: Path, summary: list[dict], per_image: list[dict], pairs: dict, path: Path) -> list[str]:
    """Crops of example images with every pipeline's outlines; returns the stems drawn.

    Parameters
    ----------
    out : Path
        Benchmark folder (holds ``<pipeline>/labels/<stem>.tiff``).
    pairs : dict
        Stem to an object with ``image`` and ``mask`` paths.
    """
    from matplotlib.patches import Patch
    from skimage.segmentation import find_boundaries

    from nucleiseg import layouts

    names = [row["pipeline"] for row in summary]
    examples = [(t, stem) for t, stem in choose_examples(per_image, names) if stem in pairs]
    if not examples:
        return []
    plt = _pyplot()
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
            pred = layouts.read_labels(out / name / "labels" / f"{stem}.tiff")
            ax.imshow(outcome_overlay(image, gt, pred, window))
            ax.set_title(f"{name}: F1 {f1[(name, stem)]:.2f} (whole image)", fontsize=8)
        for ax in row_axes:
            ax.set_axis_off()
    handles = [Patch(color=rgb, label=n.replace("_", " ")) for n, (_, rgb) in OUTCOME_COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"Outlines by outcome at IoU {EXAMPLE_IOU:g}", fontsize=9)
    save_figure(fig, path, dpi=110)
    return [stem for _, stem in examples]


def _fmt(value, digits: int = 3) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _device_text(info: dict) -> str:
    gpu = info.get("gpu")
    if not gpu or str(gpu).startswith("none"):
        return "CPU" if gpu else "CPU (GPU not recorded)"
    return f"CPU, GPU present: {gpu} (the network modules use it when their device setting allows)"


def paper_section(summary: list[dict], info: dict, subset: list[dict] | None) -> list[str]:
    """Lines of the table that puts our figures beside Caicedo et al. (2019)."""
    ours = {r["pipeline"]: r for r in summary}
    fields = {r["pipeline"]: r for r in subset or []}
    header = ["pipeline", "paper F1 mean", "paper error @0.70",
              f"ours F1 mean ({info['split']}, all)", "ours error @0.70 (all)"]
    if subset:
        header += [f"ours F1 mean ({info['split']}, BBBC039 fields)", "ours error @0.70 (BBBC039 fields)"]
    rows = []
    for name, (paper_f1, paper_error) in PAPER_FIGURES.items():
        if name not in ours:
            continue
        row = [name, _fmt(paper_f1, 2), f"{100 * paper_error:.1f} %", _fmt(ours[name]["f1_mean"]),
               f"{100 * ours[name]['error_rate_070']:.1f} %"]
        if subset:
            mine = fields.get(name)
            row += [_fmt(mine["f1_mean"]), f"{100 * mine['error_rate_070']:.1f} %"] if mine else ["n/a", "n/a"]
        rows.append(row)
    if not rows:
        return []
    lines = [
        "## Beside the paper",
        "",
        "Caicedo et al. (2019) report these figures on their BBBC039 test images (U2OS nuclei, Hoechst,",
        "one imaging setup). Ours come from the images of this run: data "
        f"`{info['data']}`, split `{info['split']}` ({info['images']} images)"
        + (f"; the BBBC039 columns average the {subset[0]['images']} images of this split that are BBBC039 fields"
           " (manifest column `bbbc039_field`)." if subset else "."),
        "The other images of the shared data vary far more in magnification, nucleus size and signal, so",
        "figures over all images are not comparable with the paper's. Error rate: missed nuclei at IoU 0.70",
        "over ground-truth nuclei, averaged over images.",
        "",
        _table(header, rows),
        "",
    ]
    return lines


def plot_paired(per_image: list[dict], path: Path) -> bool:
    """Each pipeline's per-image mean F1 against the baseline's; False (nothing written) with one pipeline."""
    from .compare import default_baseline, scores_by_pipeline

    scores = scores_by_pipeline(per_image, "f1_mean")
    if len(scores) < 2:
        return False
    baseline = default_baseline(scores)
    others = [name for name in scores if name != baseline]
    plt = _pyplot()
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
    save_figure(fig, path, dpi=110)
    return True


def comparison_section(per_image: list[dict]) -> list[str]:
    """Paired per-image differences to a baseline with bootstrap intervals (two or more pipelines)."""
    from .compare import compare, render, scores_by_pipeline

    scores = scores_by_pipeline(per_image, "f1_mean")
    if len(scores) < 2:
        return []
    rows, notes = compare(scores)
    return [
        "## Differences between pipelines",
        "",
        "Mean F1 of each pipeline and its difference to the baseline on the same images, with 95 % intervals from",
        "10,000 bootstrap resamples of the images (`python -m benchmark compare`, which also compares pipelines of",
        "different runs). An interval of the difference that contains 0 means these images cannot tell the two",
        "pipelines apart.",
        "",
        render(rows, "f1_mean", 0.95),
        "",
        *[f"- {note}" for note in notes],
        *([""] if notes else []),
        "Per image (above the diagonal: better than the baseline):",
        "",
        "![Per-image F1 against the baseline](plots/paired_f1.png)",
        "",
    ]


def render_markdown(
    summary: list[dict], per_image: list[dict], info: dict,
    subset: list[dict] | None = None, examples: list[str] | None = None,
) -> str:
    """The text of ``report.md``.

    Parameters
    ----------
    summary, per_image : list of dict
        Rows of ``summary.csv`` and ``per_image.csv``.
    info : dict
        What was run (``run.json``).
    subset : list of dict, optional
        Macro figures over the BBBC039 fields (:func:`benchmark.subset.subset_summary`).
    examples : list of str, optional
        Stems drawn in ``plots/examples.png``.
    """
    parts = [
        "# Nucleus segmentation benchmark",
        "",
        f"Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        f"- Data: `{info['data']}` (layout {info['layout']}, split `{info['split']}`, {info['images']} images)",
        f"- CellProfiler processes per pipeline: {info['workers']} on {info.get('executor', 'local processes')}"
        f" (this machine has {info['cpu_count']} CPUs; GPU: {info.get('gpu', 'not recorded')})",
        "- Pipelines: " + ", ".join(f"`{n}` ({p})" for n, p in info["pipelines"].items()),
        "",
        "## Accuracy",
        "",
        "F1 = 2 TP / (2 TP + FP + FN) where a prediction matches a ground-truth nucleus at IoU above the",
        "threshold. Columns are **macro** figures: the mean of per-image values, as in Caicedo et al. (2019).",
        "Counts (nuclei, missed, merges, splits) are summed over images.",
        "",
        _table(
            ["pipeline", "images", "nuclei", "predicted", "F1 mean", "F1@0.50", "F1@0.75", "F1@0.90",
             "error rate @0.70", "merges", "splits"],
            [
                [r["pipeline"], _fmt(r["images"]), _fmt(r["nuclei"]), _fmt(r["predicted"]), _fmt(r["f1_mean"]),
                 _fmt(r["f1_050"]), _fmt(r["f1_075"]), _fmt(r["f1_090"]), _fmt(r["error_rate_070"]),
                 _fmt(r["merges"]), _fmt(r["splits"])]
                for r in summary
            ],
        ),
        "",
        "Pooled (**micro**) F1, from TP/FP/FN summed over all images (images with many nuclei weigh more):",
        "",
        _table(
            ["pipeline", "micro F1 mean", "micro F1@0.50", "micro F1@0.75", "micro error rate @0.70"],
            [
                [r["pipeline"], _fmt(r["micro_f1_mean"]), _fmt(r["micro_f1_050"]), _fmt(r["micro_f1_075"]),
                 _fmt(r["micro_error_rate_070"])]
                for r in summary
            ],
        ),
        "",
        "![F1 vs IoU threshold](plots/f1_vs_iou.png)",
        "",
        *comparison_section(per_image),
        *paper_section(summary, info, subset),
        "## Errors by kind",
        "",
        "Missed nuclei: ground-truth nuclei without a match at IoU 0.7, binned by area "
        f"(edges {', '.join(f'{e:g}' for e in metric.DEFAULT_SIZE_EDGES)} pixels). A merge is a prediction "
        f"overlapping several nuclei, a split a nucleus overlapped by several predictions (IoU >= {metric.DEFAULT_MERGE_IOU:g}).",
        "",
        _table(
            ["pipeline"] + [f"missed {b}" for b in SIZE_BINS] + ["merges", "splits"],
            [[r["pipeline"]] + [_fmt(r[f"missed_{b}"]) for b in SIZE_BINS] + [_fmt(r["merges"]), _fmt(r["splits"])]
             for r in summary],
        ),
        "",
        "![Missed nuclei by size](plots/missed_by_size.png)",
        "",
        "![Merges and splits](plots/merges_splits.png)",
        "",
        "## Time",
        "",
        "Seconds per image are the sums of the per-module wall times CellProfiler logs for each image set;",
        "start-up is each process's wall time minus its images' seconds (imports, plug-ins, pipeline",
        "loading, image-set preparation, exit), averaged over processes. A module's lazy one-off work",
        "(e.g. loading a network) falls on the first image of each process. **Warm**: the mean over the",
        "images after each process's first; **cold**: start-up plus the first image, i.e. how long a fresh",
        "process takes to its first result. Throughput: images over the pipeline's wall time with all its",
        "processes in parallel. Peak memory: the largest resident memory of one CellProfiler process",
        "(with its children), sampled every 0.25 s. Processes run in parallel, so times include contention",
        f"for the cores. Device: {_device_text(info)}.",
        "",
        _table(
            ["pipeline", "s / image", "warm s / image", "cold s (start-up + first)", "start-up s / process",
             "images / min", "peak MB / process", "wall s (all processes)"],
            [[r["pipeline"], _fmt(r["sec_per_image"], 2), _fmt(r.get("sec_per_image_warm"), 2),
              _fmt(r.get("sec_cold_first_image"), 1), _fmt(r["startup_sec"], 1), _fmt(r.get("images_per_minute"), 1),
              _fmt(r.get("peak_rss_mb_per_process"), 0), _fmt(r["wall_sec"], 1)] for r in summary],
        ),
        "",
        "![Seconds per image](plots/seconds_per_image.png)",
        "",
    ]
    if examples:
        parts += [
            "## Example images",
            "",
            f"A {EXAMPLE_CROP} x {EXAMPLE_CROP} crop (the window with most nuclei) of a typical and of a hard image"
            f" ({', '.join(examples)}). Outlines at IoU {EXAMPLE_IOU:g}: "
            + ", ".join(f"{n.replace('_', ' ')} {word}" for n, (word, _) in OUTCOME_COLOURS.items())
            + " (missed and split outlines are the ground truth's).",
            "",
            "![Example crops](plots/examples.png)",
            "",
        ]
    parts += ["## Hardest images", ""]
    for row in summary:
        mine = sorted((r for r in per_image if r["pipeline"] == row["pipeline"]), key=lambda r: r["f1_mean"])[:5]
        parts.append(
            f"- `{row['pipeline']}`: "
            + ", ".join(f"{r['image']} (F1 {r['f1_mean']:.2f}, {r['nuclei']} nuclei)" for r in mine)
        )
    if info.get("warnings"):
        parts += ["", "## Warnings", ""] + [f"- {w}" for w in info["warnings"]]
    parts += [
        "",
        "Files: `summary.csv` (one row per pipeline), `per_image.csv`, `<pipeline>/labels/<stem>.tiff`",
        "(16-bit predicted labels), `<pipeline>/logs/` (CellProfiler logs), `<pipeline>/shards/` (CellProfiler outputs).",
        "",
    ]
    return "\n".join(parts)


def bbbc039_subset(per_image: list[dict], info: dict) -> list[dict] | None:
    """Macro figures over the BBBC039 fields, when the data folder's manifest marks them."""
    from .subset import BBBC039_COLUMN, manifest_stems, subset_summary

    manifest = Path(str(info.get("data", ""))) / "manifest.csv"
    if not manifest.is_file():
        return None
    try:
        stems = manifest_stems(manifest, BBBC039_COLUMN)
    except ValueError:
        return None
    return subset_summary(per_image, stems) or None


def write_report(out: Path, summary: list[dict], per_image: list[dict], info: dict, pairs: dict | None = None) -> Path:
    """Write ``out/plots/*.png`` and ``out/report.md``; returns the report's path.

    Parameters
    ----------
    out : Path
        Benchmark folder.
    summary, per_image : list of dict
        Rows of ``summary.csv`` and ``per_image.csv``.
    info : dict
        What was run (``run.json``): data, layout, split, images, workers, ...
    pairs : dict, optional
        Stem to image and mask paths; without it there are no example crops.
    """
    out = Path(out)
    plots = out / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    plot_f1_vs_iou(summary, plots / "f1_vs_iou.png")
    plot_missed_by_size(summary, plots / "missed_by_size.png")
    plot_merges_splits(summary, plots / "merges_splits.png")
    plot_seconds(summary, per_image, plots / "seconds_per_image.png")
    plot_paired(per_image, plots / "paired_f1.png")
    examples = plot_examples(out, summary, per_image, pairs, plots / "examples.png") if pairs else []
    subset = bbbc039_subset(per_image, info)
    path = out / "report.md"
    write_atomic(path, render_markdown(summary, per_image, info, subset=subset, examples=examples))
    return path


_INTEGER_COLUMNS = ("images", "shards", "retried_shards")


def _read_summary(path: Path) -> list[dict]:
    """Rows of a ``summary.csv`` with counts as integers and empty cells as NaN."""
    return read_csv_figures(path, ("pipeline",), lambda key: metric.is_count_key(key) or key in _INTEGER_COLUMNS)


def regenerate(out: Path, data: Path | None = None, split: str | None = None) -> Path:
    """Write ``report.md`` and the plots again from a finished benchmark folder.

    Parameters
    ----------
    out : Path
        Folder holding ``summary.csv``, ``per_image.csv`` and ``<pipeline>/labels/``.
    data : Path, optional
        Data folder, for the example crops and the BBBC039 table (default: the one in
        ``run.json``).
    split : str, optional
        Split of the run (default: the one in ``run.json``).

    Raises
    ------
    FileNotFoundError
        When the folder holds no finished benchmark, or neither ``run.json`` nor
        ``data`` and ``split`` say what was run.
    """
    import json

    from nucleiseg import layouts

    from .subset import read_per_image

    out = Path(out)
    for name in ("summary.csv", "per_image.csv"):
        if not (out / name).is_file():
            raise FileNotFoundError(f"{out / name} not found: {out} holds no finished benchmark")
    summary = _read_summary(out / "summary.csv")
    per_image = read_per_image(out / "per_image.csv")
    for row in summary:  # folders written before these columns existed
        if not math.isfinite(row.get("images_per_minute", math.nan)) and row.get("wall_sec", 0) > 0:
            row["images_per_minute"] = 60.0 * row["images"] / row["wall_sec"]
    info_path = out / "run.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
    elif data is not None and split is not None:
        info = {"layout": layouts.detect_layout(Path(data)), "cpu_count": os.cpu_count(),
                "workers": int(max(r.get("shards", 1) for r in summary)),
                "pipelines": {r["pipeline"]: f"pipelines/{r['pipeline']}.cppipe" for r in summary},
                "warnings": []}
    else:
        raise FileNotFoundError(f"{info_path} not found; give the data folder and split of the run")
    if data is not None:
        info["data"] = str(Path(data).resolve())
    if split is not None:
        info["split"] = split
    info["images"] = len({r["image"] for r in per_image})
    pairs = None
    data_dir = Path(str(info["data"]))
    if data_dir.is_dir():
        stems = {r["image"] for r in per_image}
        pairs = {p.stem: p for p in layouts.list_pairs(data_dir, None) if p.stem in stems and p.mask is not None}
    return write_report(out, summary, per_image, info, pairs=pairs)

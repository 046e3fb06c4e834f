"""``report.md`` and its plots (matplotlib, Agg backend) from the benchmark's rows."""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nucleiseg import metric

PLOTS_DIR = "plots"
SIZE_BINS = metric.SIZE_BINS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


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
    _save(fig, path)
    plt.close(fig)


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
    _save(fig, path)
    plt.close(fig)


def plot_merges_splits(summary: list[dict], path: Path) -> None:
    """Merges and splits per pipeline."""
    plt = _pyplot()
    series = {row["pipeline"]: [row["merges"], row["splits"]] for row in summary}
    fig, ax = plt.subplots(figsize=(5, 4))
    _grouped_bars(ax, ["merges", "splits"], series)
    ax.set_ylabel("count")
    ax.set_title("Merged and split nuclei")
    _save(fig, path)
    plt.close(fig)


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
    _save(fig, path)
    plt.close(fig)


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


def render_markdown(summary: list[dict], per_image: list[dict], info: dict) -> str:
    """The text of ``report.md``."""
    t = metric.DEFAULT_THRESHOLDS
    parts = [
        "# Nucleus segmentation benchmark",
        "",
        f"Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        f"- Data: `{info['data']}` (layout {info['layout']}, split `{info['split']}`, {info['images']} images)",
        f"- CellProfiler processes per pipeline: {info['workers']} (machine has {info['cpu_count']} CPUs)",
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
        "(e.g. loading a network) falls on the first image of each process, shown apart. Processes run",
        "in parallel, so times include contention for the cores.",
        "",
        _table(
            ["pipeline", "s / image", "s first image", "start-up s / process", "wall s (all processes)"],
            [[r["pipeline"], _fmt(r["sec_per_image"], 2), _fmt(r["sec_first_image"], 2), _fmt(r["startup_sec"], 1),
              _fmt(r["wall_sec"], 1)] for r in summary],
        ),
        "",
        "![Seconds per image](plots/seconds_per_image.png)",
        "",
        "## Hardest images",
        "",
    ]
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


def write_report(out: Path, summary: list[dict], per_image: list[dict], info: dict) -> Path:
    """Write ``out/plots/*.png`` and ``out/report.md``; returns the report's path."""
    out = Path(out)
    plots = out / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    plot_f1_vs_iou(summary, plots / "f1_vs_iou.png")
    plot_missed_by_size(summary, plots / "missed_by_size.png")
    plot_merges_splits(summary, plots / "merges_splits.png")
    plot_seconds(summary, per_image, plots / "seconds_per_image.png")
    path = out / "report.md"
    tmp = out / ".report.md.tmp"
    tmp.write_text(render_markdown(summary, per_image, info))
    os.replace(tmp, path)
    return path

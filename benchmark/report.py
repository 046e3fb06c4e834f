"""The text of ``report.md`` from the benchmark's rows, and writing the report with its plots.

The figures themselves are drawn by :mod:`benchmark.report_plots`.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nucleiseg import metric, model_types

from .outputs import write_atomic
from .pipeline_models import network_models, recipe
from .report_plots import EXAMPLE_CROP, EXAMPLE_IOU, write_plots
from .tables import read_results

#: Caicedo et al. (2019), BBBC039 test images: mean F1 over IoU 0.50-0.95 and error rate at IoU 0.7,
#: for the classical pipelines (the networks' figures are their model types' ``published``).
PAPER_CLASSICAL = {"advanced": (0.74, 0.155), "basic": (0.72, 0.201)}


def paper_figures() -> dict[str, tuple[float, float]]:
    """The paper's (mean F1, error rate at 0.7) by pipeline name: each model type's, then the classical ones."""
    networks = {}
    for name in model_types.names():
        published = model_types.get(name).published
        if published:
            networks[name] = (published["f1"], published["error_070"])
    return {**networks, **PAPER_CLASSICAL}


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
    for name, (paper_f1, paper_error) in paper_figures().items():
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


def _shown_path(path: str) -> str:
    """``path`` relative to the working folder when inside it (the repository for shipped cards)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def networks_section(info: dict) -> list[str]:
    """Lines naming each network pipeline's model and how it was trained (empty without networks)."""
    rows, recipes = [], set()
    for name, pipeline in info["pipelines"].items():
        if not Path(pipeline).is_file():
            continue
        for model in network_models(Path(pipeline)):
            trained = recipe(model.card)
            if "error" in trained:
                rows.append([name, model.module, f"`{_shown_path(trained['card'])}`", "card not readable: " + trained["error"], "", ""])
                continue
            images = f" ({trained['images']} images)" if trained["images"] else ""
            rows.append([name, model.module, f"`{_shown_path(trained['card'])}`", str(trained["networks"]),
                         f"{trained['split']}{images}", trained["augmentation"]])
            recipes.add(trained["augmentation"])
    if not rows:
        return []
    lines = ["## Networks", "", "The model each network module ran and what its card says of its training (read when this report was written).", "",
             _table(["pipeline", "module", "model card", "networks", "trained on", "augmentation"], rows), ""]
    if len(recipes) > 1:
        lines += ["These networks were trained with different recipes (augmentation above; the rest in each card's",
                  "`training`), so differences between them mix the architectures with their training. Caicedo et al.",
                  "(2019) trained their networks alike, with identical pre- and post-processing.", ""]
    return lines


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


def missed_causes_section(summary: list[dict]) -> list[str]:
    """Why nuclei were missed at IoU 0.7 (:mod:`nucleiseg.metric.missed_causes`), all sizes and tiny ones;
    nothing for folders scored before these columns existed."""
    causes = metric.MISSED_CAUSES
    if not summary or any(not math.isfinite(r.get(f"missed_{c}", math.nan)) for r in summary for c in causes):
        return []
    return [
        f"Why they were missed, judged against the prediction overlapping each most: not found (no prediction with "
        f"IoU >= {metric.DEFAULT_MERGE_IOU:g}), merged with a neighbour, split, or one prediction of its own drawn too "
        f"large or too small. Each cell: all sizes (tiny nuclei, < {metric.DEFAULT_SIZE_EDGES[0]:g} px).",
        "",
        _table(
            ["pipeline"] + [c.replace("_", " ") for c in causes],
            [[r["pipeline"]] + [f"{_fmt(r[f'missed_{c}'])} ({_fmt(r.get(f'missed_tiny_{c}'))})" for c in causes]
             for r in summary],
        ),
        "",
    ]


def outline_size_section(summary: list[dict]) -> list[str]:
    """How large the matched outlines are against the truth's (:mod:`nucleiseg.metric.outline_size`);
    nothing for folders scored before the column existed."""
    key = metric.AREA_RATIO_KEY
    if not summary or any(not math.isfinite(r.get(key, math.nan)) for r in summary):
        return []
    return [
        "Outline size: per image, the median of predicted over true area of the nuclei matched at IoU 0.5, "
        "averaged over images. Below 1 the outlines are drawn tighter than the annotation, above 1 larger; "
        "an image far from 1 loses most of its F1 at the high IoU thresholds even where every nucleus is found "
        "(the hardest images below carry their own ratio).",
        "",
        _table(["pipeline", "outline area / true area"], [[r["pipeline"], _fmt(r[key], 2)] for r in summary]),
        "",
    ]


def _hard_image_text(row: dict) -> str:
    """One hardest image: its F1, nuclei and, where scored, the size of its outlines."""
    ratio = row.get(metric.AREA_RATIO_KEY, math.nan)
    outline = f", outlines {ratio:.2f} x true area" if math.isfinite(ratio) else ""
    return f"{row['image']} (F1 {row['f1_mean']:.2f}, {row['nuclei']} nuclei{outline})"


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
        *networks_section(info),
        "## Errors by kind",
        "",
        "Missed nuclei: ground-truth nuclei without a match at IoU 0.7, binned by area "
        f"(edges {', '.join(f'{e:g}' for e in metric.DEFAULT_SIZE_EDGES)} pixels). A merge is a prediction "
        f"overlapping several nuclei, a split a nucleus overlapped by several predictions (IoU >= {metric.DEFAULT_MERGE_IOU:g}).",
        "",
        _table(
            ["pipeline"] + [f"missed {b}" for b in metric.SIZE_BINS] + ["merges", "splits"],
            [[r["pipeline"]] + [_fmt(r[f"missed_{b}"]) for b in metric.SIZE_BINS] + [_fmt(r["merges"]), _fmt(r["splits"])]
             for r in summary],
        ),
        "",
        *missed_causes_section(summary),
        *outline_size_section(summary),
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
            + ", ".join(f"{n.replace('_', ' ')} {word}" for n, (word, _) in metric.OUTCOME_COLOURS.items())
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
            + ", ".join(_hard_image_text(r) for r in mine)
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
    from nucleiseg.layouts import manifest_stems

    from .subset import BBBC039_COLUMN, subset_summary

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
    out, summary, per_image, pairs
        As for :func:`benchmark.report_plots.write_plots`.
    info : dict
        What was run (``run.json``): data, layout, split, images, workers, ...
    """
    out = Path(out)
    examples = write_plots(out, summary, per_image, pairs)
    subset = bbbc039_subset(per_image, info)
    path = out / "report.md"
    write_atomic(path, render_markdown(summary, per_image, info, subset=subset, examples=examples))
    return path


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

    out = Path(out)
    for name in ("summary.csv", "per_image.csv"):
        if not (out / name).is_file():
            raise FileNotFoundError(f"{out / name} not found: {out} holds no finished benchmark")
    summary = read_results(out / "summary.csv")
    per_image = read_results(out / "per_image.csv")
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

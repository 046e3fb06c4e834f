"""Robustness benchmark: the pipelines on a split and on perturbed copies of it.

    python -m benchmark robustness --data DIR --split val --pipelines advanced,unet --out OUT
                                   [--perturbations dim_gamma,noise,...] [--limit K] [--workers N] [--resume]

Each perturbation of :mod:`nucleiseg.perturbations` (dimming, contrast, noise,
blur, rescaling with labels rescaled alike, uneven illumination, a bright
artefact) is applied to every selected image; the copies are written under
``OUT/data/<perturbation>/`` (never into the data folder), and each condition
(``clean`` and every perturbation) is run through headless CellProfiler by
the main benchmark (:func:`benchmark.runner.run_benchmark`) into
``OUT/<condition>/``. Then ``OUT/robustness.csv`` (one row per condition and
pipeline), ``OUT/robustness.md`` and ``OUT/robustness.png`` (mean F1 per
perturbation) say how far each pipeline falls from its clean score.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from nucleiseg import layouts, perturbations

from .errors import BenchmarkError
from .figures import pyplot, save_figure
from .outputs import write_atomic
from .runner import run_benchmark
from .tables import write_csv

CLEAN = "clean"
#: A perturbation that lowers mean F1 by more than this from the clean score is flagged.
MAX_DROP = 0.05


def write_perturbed(data: Path, split: str | None, limit: int | None, name: str, dest: Path,
                    allow_empty_masks: bool = False) -> int:
    """Write perturbation ``name`` of the selected images to ``dest`` (``images/``, ``masks/``); returns the count.

    The copy is built in ``dest.partial`` and renamed when whole, so an interrupted
    run never leaves a folder that looks complete. An existing ``dest`` is kept
    (perturbations are deterministic).
    """
    if dest.is_dir():
        return len(list((dest / "images").glob("*.tiff")))
    selection = layouts.select(data, split, limit)
    if selection.problems:
        raise layouts.DataError(selection.problems)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    problems = []
    for pair in selection.pairs:
        checked = layouts.check_pair(pair, allow_empty_masks)
        if checked.problems:
            problems.extend(checked.problems)
            continue
        image, labels = perturbations.perturb(name, checked.image, checked.labels, pair.stem)
        layouts.write_tiff(partial / "images" / f"{pair.stem}.tiff", image)
        layouts.write_tiff(partial / "masks" / f"{pair.stem}.tiff", layouts.consecutive_labels(labels).astype("uint16"))
    if problems:
        shutil.rmtree(partial, ignore_errors=True)
        raise layouts.DataError(problems)
    partial.rename(dest)
    return len(selection.pairs)


def robustness_rows(results: dict) -> list[dict]:
    """One row per (condition, pipeline): mean F1, error rate at IoU 0.7, missed tiny nuclei, change from clean.

    ``results`` maps a condition to its benchmark summary rows (``pipeline``,
    ``images``, ``f1_mean``, ``error_rate_070``, ``missed_tiny``); the ``clean``
    condition must be among them.
    """
    clean = {row["pipeline"]: float(row["f1_mean"]) for row in results[CLEAN]}
    rows = []
    for condition, summary in results.items():
        for row in summary:
            f1 = float(row["f1_mean"])
            rows.append({
                "condition": condition,
                "pipeline": row["pipeline"],
                "images": int(row["images"]),
                "f1_mean": round(f1, 4),
                "error_rate_070": round(float(row["error_rate_070"]), 4),
                "missed_tiny": int(row["missed_tiny"]),
                "change_from_clean": round(f1 - clean[row["pipeline"]], 4),
            })
    return rows


ROW_COLUMNS = ["condition", "pipeline", "images", "f1_mean", "error_rate_070", "missed_tiny", "change_from_clean"]


def findings(rows: list[dict], network: str = "unet", baseline: str = "advanced") -> list[str]:
    """Sentences on the targets: drops beyond :data:`MAX_DROP`, and where ``network`` is not above ``baseline``."""
    lines = []
    for row in rows:
        if row["condition"] != CLEAN and row["change_from_clean"] < -MAX_DROP:
            lines.append(f"- {row['pipeline']} loses {-row['change_from_clean']:.3f} under {row['condition']} "
                         f"(more than {MAX_DROP})")
    by_condition = {}
    for row in rows:
        by_condition.setdefault(row["condition"], {})[row["pipeline"]] = row["f1_mean"]
    for condition, scores in by_condition.items():
        if network in scores and baseline in scores and scores[network] <= scores[baseline]:
            lines.append(f"- under {condition}, {network} ({scores[network]:.3f}) is not above {baseline} ({scores[baseline]:.3f})")
    return lines or [f"- every perturbation stays within {MAX_DROP} of the clean score, and {network} stays above {baseline} where both ran"]


def plot(rows: list[dict]):
    """Grouped bars of mean F1 per condition and pipeline; returns the figure (tests read its bars)."""
    plt = pyplot()
    conditions = list(dict.fromkeys(row["condition"] for row in rows))
    pipelines = list(dict.fromkeys(row["pipeline"] for row in rows))
    value = {(row["condition"], row["pipeline"]): row["f1_mean"] for row in rows}
    figure, axes = plt.subplots(figsize=(max(6, 1.1 * len(conditions)), 3.5))
    width = 0.8 / len(pipelines)
    for index, pipeline in enumerate(pipelines):
        xs = [i + (index - (len(pipelines) - 1) / 2) * width for i in range(len(conditions))]
        axes.bar(xs, [value.get((c, pipeline), 0.0) for c in conditions], width, label=pipeline)
    axes.set_xticks(range(len(conditions)), conditions, rotation=30, ha="right")
    axes.set_ylabel("mean F1 (IoU 0.50-0.95)")
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def markdown(rows: list[dict], command: str) -> str:
    """``robustness.md``: the table of mean F1 (change from clean) per condition, and the findings."""
    pipelines = list(dict.fromkeys(row["pipeline"] for row in rows))
    by = {(row["condition"], row["pipeline"]): row for row in rows}
    lines = ["# Robustness benchmark", "", f"Command: `{command}`", "",
             "Mean object F1 over IoU 0.50-0.95 per condition; in brackets the change from the clean "
             "images. Perturbed copies are in `data/`, each condition's full benchmark output (report, "
             "per-image scores, labels) in its own folder.", "",
             "| condition | " + " | ".join(f"{p}: mean F1 (change)" for p in pipelines) + " |",
             "|" + "---|" * (len(pipelines) + 1)]
    for condition in dict.fromkeys(row["condition"] for row in rows):
        cells = [f"{by[condition, p]['f1_mean']:.3f} ({by[condition, p]['change_from_clean']:+.3f})"
                 if (condition, p) in by else "" for p in pipelines]
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    lines += ["", "## Findings", "", *findings(rows), "", "![mean F1 per condition](robustness.png)", ""]
    return "\n".join(lines)


def write_outputs(out: Path, rows: list[dict], command: str) -> None:
    """``robustness.csv``, ``robustness.png`` and, last, ``robustness.md`` in ``out``."""
    write_csv(out / "robustness.csv", ROW_COLUMNS, rows)
    save_figure(plot(rows), out / "robustness.png")
    write_atomic(out / "robustness.md", markdown(rows, command))


def run_robustness(data: Path, pipelines: list[str], out: Path, split: str | None = "val",
                   names: list[str] | None = None, limit: int | None = None, workers: int | None = None,
                   resume: bool = False, quiet: bool = False, log=print, command: str = "",
                   cellprofiler: Path | None = None) -> list[dict]:
    """Run the clean split and every perturbation through the benchmark; write and return the rows.

    Parameters are those of the command line; ``cellprofiler`` overrides the
    executable (tests pass a stand-in). Raises :class:`BenchmarkError` when
    ``out`` lies inside ``data`` and :class:`nucleiseg.layouts.DataError` for bad images.
    """
    names = perturbations.check_names(names or list(perturbations.PERTURBATIONS))
    data, out = Path(data), Path(out)
    if data.resolve() in [out.resolve(), *out.resolve().parents]:
        raise BenchmarkError(f"--out {out} lies inside the data folder {data}; perturbed copies never go there")
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    conditions = [(CLEAN, data, split)]
    for name in names:
        count = write_perturbed(data, split, limit, name, out / "data" / name)
        log(f"{name}: {count} perturbed images in {out / 'data' / name}")
        conditions.append((name, out / "data" / name, None))
    for name in ("robustness.md", "robustness.csv"):  # a failed run leaves no stale findings
        (out / name).unlink(missing_ok=True)
    for condition, folder, condition_split in conditions:
        log(f"== {condition}")
        result = run_benchmark(folder, pipelines, out / condition, split=condition_split,
                               limit=limit if condition == CLEAN else None, workers=workers, resume=resume,
                               quiet=quiet, cellprofiler=cellprofiler)
        results[condition] = result.summary
    rows = robustness_rows(results)
    write_outputs(out, rows, command)
    return rows


def add_parser(sub) -> None:
    """Register the ``robustness`` sub-command."""
    parser = sub.add_parser("robustness", help="the pipelines on a split and on perturbed copies of it",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="data folder (our layout or BBBC039's)")
    parser.add_argument("--split", default="val", help="split to perturb (default val; 'all' for every image)")
    parser.add_argument("--pipelines", required=True, help="comma-separated pipeline names or .cppipe paths")
    parser.add_argument("--out", required=True, type=Path, help="output folder (must not lie in the data folder)")
    parser.add_argument("--perturbations", default=",".join(perturbations.PERTURBATIONS),
                        help="comma-separated, default all: " + ", ".join(perturbations.PERTURBATIONS)
                        + "; only when named: " + ", ".join(perturbations.EXTRA_PERTURBATIONS))
    parser.add_argument("--limit", type=int, default=None, help="only the first K images of the split")
    parser.add_argument("--workers", type=int, default=None, help="CellProfiler processes per pipeline")
    parser.add_argument("--resume", action="store_true", help="reuse finished pipelines of each condition (see run --resume)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """Run the sub-command from parsed arguments."""
    try:
        names = perturbations.check_names(n.strip() for n in args.perturbations.split(",") if n.strip())
    except ValueError as error:
        raise BenchmarkError(f"--perturbations: {error}") from None
    pipelines = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    split = None if args.split in ("", "all") else args.split
    command = "python -m benchmark " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run_robustness(args.data, pipelines, args.out, split, names, args.limit, args.workers, args.resume, args.quiet,
                   log=lambda text: print(text, file=sys.stderr), command=command)
    print(f"wrote {args.out / 'robustness.md'}", file=sys.stderr)
    return 0

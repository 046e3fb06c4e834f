"""Compare pipelines image by image, with bootstrap intervals (``python -m benchmark compare``).

    python -m benchmark compare OUT [OUT ...] [--baseline advanced] [--metric f1_mean]

Reads ``per_image.csv`` of one or more finished benchmark folders (run on the same
data and split, e.g. the classical pipelines in one run and a network in another),
keeps the images every pipeline scored, and prints per pipeline the mean of
``--metric`` with its 95 % bootstrap interval, and its paired difference to the
baseline pipeline with an interval and the count of images where it is better,
the same or worse. A pipeline name found in several folders is suffixed with its
folder. The benchmark report has the same table for its own pipelines.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from nucleiseg.comparison import bootstrap_interval, paired_comparison

from .aggregate import by_pipeline
from .tables import read_results, write_csv

#: Below this many images, bootstrap intervals are flagged as rough.
FEW_IMAGES = 20
COLUMNS = ["pipeline", "images", "metric", "mean", "low", "high", "baseline",
           "difference", "difference_low", "difference_high", "better", "same", "worse"]


def scores_by_pipeline(per_image: list[dict], metric: str) -> dict[str, dict[str, float]]:
    """``{pipeline: {image: score}}`` from ``per_image.csv`` rows, in order of appearance."""
    if any(metric not in row for row in per_image):
        raise ValueError(f"per_image.csv has no column {metric!r}")
    return {name: {row["image"]: row[metric] for row in rows} for name, rows in by_pipeline(per_image).items()}


def select(scores: dict[str, dict[str, float]], names: str | None) -> dict[str, dict[str, float]]:
    """Only the comma-separated pipelines ``names``, in that order (all when None)."""
    if not names:
        return scores
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in scores]
    if unknown:
        raise ValueError(f"pipeline(s) not found: {', '.join(unknown)}; found: {', '.join(scores)}")
    return {n: scores[n] for n in wanted}


def default_baseline(scores: dict) -> str:
    """``advanced`` (the paper's best classical pipeline) when present, else the first pipeline."""
    return "advanced" if "advanced" in scores else next(iter(scores))


def compare(scores: dict[str, dict[str, float]], baseline: str | None = None, level: float = 0.95,
            resamples: int = 10000, seed: int = 0) -> tuple[list[dict], list[str]]:
    """Rows of the comparison (one per pipeline) and notes on images left out.

    Parameters
    ----------
    scores : dict
        ``{pipeline: {image: score}}`` (:func:`scores_by_pipeline`).
    baseline : str, optional
        The pipeline the others are compared with (default ``advanced`` when present,
        else the first).
    level, resamples, seed
        As for :func:`nucleiseg.comparison.bootstrap_interval`.

    Returns
    -------
    rows : list of dict
        Keys of :data:`COLUMNS` (the baseline's difference fields empty).
    notes : list of str
        Which images were left out and why (scored by some pipelines only, or not finite).

    Raises
    ------
    ValueError
        If the baseline is unknown or no image is scored by every pipeline.
    """
    if not scores:
        raise ValueError("no pipelines to compare")
    baseline = baseline or default_baseline(scores)
    if baseline not in scores:
        raise ValueError(f"baseline pipeline {baseline!r} not found; pipelines: {', '.join(scores)}")
    notes = []
    shared = set.intersection(*(set(s) for s in scores.values()))
    for name, mine in scores.items():
        if len(mine) > len(shared):
            notes.append(f"{name}: {len(mine) - len(shared)} image(s) not scored by every pipeline left out")
    unscored = sorted(i for i in shared if any(not math.isfinite(s[i]) for s in scores.values()))
    if unscored:
        notes.append(f"{len(unscored)} image(s) without a finite score in some pipeline left out: {', '.join(unscored[:5])}"
                     + (" …" if len(unscored) > 5 else ""))
    images = sorted(shared.difference(unscored))
    if not images:
        raise ValueError("no image is scored by every pipeline: were the folders run on the same data and split?")
    if len(images) < FEW_IMAGES:
        notes.append(f"only {len(images)} images: intervals from so few are rough (they tend to be too narrow)")
    rows = []
    reference = [scores[baseline][i] for i in images]
    for name, mine in scores.items():
        values = [mine[i] for i in images]
        interval = bootstrap_interval(values, level, resamples, seed)
        row = {"pipeline": name, "images": interval.images, "mean": interval.mean, "low": interval.low,
               "high": interval.high, "baseline": baseline}
        if name != baseline:
            paired = paired_comparison(values, reference, level, resamples, seed)
            row.update(difference=paired.difference.mean, difference_low=paired.difference.low,
                       difference_high=paired.difference.high, better=paired.better, same=paired.same,
                       worse=paired.worse)
        rows.append(row)
    return rows, notes


def render(rows: list[dict], metric: str, level: float) -> str:
    """The comparison as a Markdown table."""
    percent = f"{100 * level:g} %"
    lines = [
        f"| pipeline | images | mean {metric} [{percent} interval] | minus {rows[0]['baseline']} [{percent} interval] "
        "| images better / same / worse |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if "difference" in row:
            difference = f"{row['difference']:+.3f} [{row['difference_low']:+.3f}, {row['difference_high']:+.3f}]"
            counts = f"{row['better']} / {row['same']} / {row['worse']}"
        else:
            difference, counts = "(baseline)", ""
        lines.append(f"| {row['pipeline']} | {row['images']} | {row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}] "
                     f"| {difference} | {counts} |")
    return "\n".join(lines)


def read_folders(folders: list[Path]) -> list[dict]:
    """The ``per_image.csv`` rows of several benchmark folders.

    A pipeline name found in more than one folder (e.g. ``unet`` run before and after
    retraining) is told apart by its folder: ``unet (out/test-networks)``.
    """
    by_folder = []
    for folder in folders:
        path = Path(folder) / "per_image.csv"
        if not path.is_file():
            raise ValueError(f"{path}: not found (is {folder} a finished benchmark folder?)")
        by_folder.append((folder, read_results(path)))
    count: dict[str, int] = {}
    for _, mine in by_folder:
        for name in dict.fromkeys(r["pipeline"] for r in mine):
            count[name] = count.get(name, 0) + 1
    rows = []
    for folder, mine in by_folder:
        for row in mine:
            if count[row["pipeline"]] > 1:
                row["pipeline"] = f"{row['pipeline']} ({folder})"
            rows.append(row)
    return rows


def add_parser(sub) -> None:
    """Register the ``compare`` sub-command on an argparse sub-parser collection."""
    parser = sub.add_parser("compare", help="per-image paired comparison of pipelines with bootstrap intervals",
                            description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[2],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="finished benchmark folders (each holds per_image.csv)")
    parser.add_argument("--baseline", default=None, help="pipeline to compare with (default: advanced if present, else the first)")
    parser.add_argument("--pipelines", default=None,
                        help="comma-separated pipelines to keep, in this order (names as printed, e.g. 'unet (out/b)')")
    parser.add_argument("--metric", default="f1_mean", help="per_image.csv column (default f1_mean)")
    parser.add_argument("--level", type=float, default=0.95, help="interval coverage (default 0.95)")
    parser.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples of the images (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None, help="also write the rows to this CSV file")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """Run the sub-command from parsed arguments; returns the exit status."""
    try:
        scores = select(scores_by_pipeline(read_folders(args.folders), args.metric), args.pipelines)
        rows, notes = compare(scores, args.baseline, args.level, args.resamples, args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(render(rows, args.metric, args.level))
    if args.csv:
        write_csv(args.csv, COLUMNS, [{**row, "metric": args.metric} for row in rows])
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0

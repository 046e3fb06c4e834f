"""Macro figures of a finished benchmark over a subset of its images.

``python -m benchmark.subset OUT --manifest DATA/manifest.csv --column bbbc039_field``

Reads ``OUT/per_image.csv`` and averages each pipeline's per-image figures
over the images whose ``--column`` in the manifest is non-empty (e.g. the
BBBC039 fields of the shared data), or with ``--others`` over the rest. Prints one CSV row per pipeline. The
benchmark report uses the same functions for its BBBC039 table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nucleiseg.layouts import manifest_marks

from . import aggregate
from .tables import csv_text, read_results

COLUMNS = ("f1_mean", "f1_050", "f1_070", "f1_090", "error_rate_070", "merges", "splits")
BBBC039_COLUMN = "bbbc039_field"


def subset_summary(per_image: list[dict], stems: set[str]) -> list[dict]:
    """Per pipeline (in order of appearance), macro figures over the images in ``stems``.

    Parameters
    ----------
    per_image : list of dict
        Rows of ``per_image.csv``.
    stems : set of str
        The images of the subset.

    Returns
    -------
    list of dict
        ``{"pipeline", "images", **aggregate_macro(...)}``; pipelines without any
        image in the subset are left out.
    """
    chosen = aggregate.by_pipeline(row for row in per_image if row["image"] in stems)
    return [{"pipeline": name, "images": len(rows), **aggregate.macro(rows)} for name, rows in chosen.items()]


def main(argv=None) -> int:
    """Print the subset's figures as CSV; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.subset", description=__doc__)
    parser.add_argument("out", type=Path, help="benchmark output folder (holds per_image.csv)")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--column", default=BBBC039_COLUMN, help="manifest column; rows where it is non-empty form the subset")
    parser.add_argument("--others", action="store_true", help="the images whose column is empty instead")
    args = parser.parse_args(argv)
    try:
        marks = manifest_marks(args.manifest, args.column)
        stems = {name for name, marked in marks.items() if marked != args.others}
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = subset_summary(read_results(args.out / "per_image.csv"), stems)
    if not rows:
        print(f"no image of {args.out / 'per_image.csv'} is in the subset {args.column!r} of {args.manifest}", file=sys.stderr)
        return 1
    subset = f"not {args.column}" if args.others else args.column
    printed = [{"pipeline": row["pipeline"], "subset": subset, "images": row["images"],
                **{c: f"{row[c]:.4f}" for c in COLUMNS}} for row in rows]
    sys.stdout.write(csv_text(printed, ["pipeline", "subset", "images", *COLUMNS]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Macro figures of a finished benchmark over a subset of its images.

``python -m benchmark.subset OUT --manifest DATA/manifest.csv --column bbbc039_field``

Reads ``OUT/per_image.csv`` and averages each pipeline's per-image figures
over the images whose ``--column`` in the manifest is non-empty (e.g. the
BBBC039 fields of the shared data). Prints one CSV row per pipeline.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

from nucleiseg.metric import aggregate_macro

COLUMNS = ("f1_mean", "f1_050", "f1_070", "f1_090", "error_rate_070", "merges", "splits")


def subset_rows(per_image: Path, stems: set[str]) -> dict[str, list[dict]]:
    """Per pipeline, the per-image rows whose image is in ``stems``."""
    rows = defaultdict(list)
    with open(per_image, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["image"] in stems:
                rows[row["pipeline"]].append({k: float(v) for k, v in row.items() if k not in ("pipeline", "image", "shard") and v not in ("", "nan")})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.subset", description=__doc__)
    parser.add_argument("out", type=Path, help="benchmark output folder (holds per_image.csv)")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--column", default="bbbc039_field", help="manifest column; rows where it is non-empty form the subset")
    args = parser.parse_args(argv)
    with open(args.manifest, newline="") as handle:
        stems = {row["name"] for row in csv.DictReader(handle) if row.get(args.column, "").strip()}
    rows = subset_rows(args.out / "per_image.csv", stems)
    if not rows:
        print(f"no image of {args.out / 'per_image.csv'} is in the subset {args.column!r} of {args.manifest}", file=sys.stderr)
        return 1
    writer = csv.writer(sys.stdout)
    writer.writerow(["pipeline", "subset", "images", *COLUMNS])
    for pipeline, images in rows.items():
        macro = aggregate_macro(images)
        writer.writerow([pipeline, args.column, len(images), *(f"{macro[c]:.4f}" for c in COLUMNS)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Score a folder of predicted label images against a folder of ground-truth labels.

Usage::

    python -m nucleiseg.evaluate GT_DIR PRED_DIR [--format json|csv] [--thresholds 0.5,0.75 ...]
                                 [--size-edges 250 625 900] [--merge-iou 0.1] [--output FILE]

Files are paired by stem (``a.png`` in one folder pairs with ``a.tif`` in the other; suffixes
``.png``, ``.tif``, ``.tiff``, listed as everywhere by :func:`nucleiseg.layouts.files_by_stem`).  Prints one row per image and two dataset rows: ``macro``
(mean of per-image scores, as in Caicedo et al. 2019) and ``micro`` (precision / recall / F1
from TP / FP / FN pooled over images).  Counts (TP, FP, FN, missed, merges, splits) are summed
in both.  Exits with status 1 and a message naming the file when a file has no counterpart,
cannot be read, or its shape differs from its counterpart's.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Sequence

from nucleiseg.layouts import IMAGE_SUFFIXES, files_by_stem, read_labels
from nucleiseg.metric import (
    DEFAULT_MERGE_IOU,
    DEFAULT_SIZE_EDGES,
    DEFAULT_THRESHOLDS,
    ImageScores,
    aggregate_macro,
    aggregate_micro,
    check_merge_iou,
    check_size_edges,
    metric_keys,
    parse_thresholds,
    score_image,
)


class EvaluationError(Exception):
    """A problem with the input folders, reported to the user without a traceback."""


def label_files(folder: Path) -> dict[str, Path]:
    """Label images of a folder by stem.

    Parameters
    ----------
    folder : Path
        Folder holding ``.png`` / ``.tif`` / ``.tiff`` files, listed by
        :func:`nucleiseg.layouts.files_by_stem` (other and hidden files are passed over).

    Returns
    -------
    dict of str to Path
        File of each stem, sorted by stem.

    Raises
    ------
    EvaluationError
        If the folder does not exist or two files share a stem (e.g. ``a.png`` and ``a.tif``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"not a folder: {folder}")
    by_stem, _ = files_by_stem(folder)
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            raise EvaluationError(f"two files share the stem {stem!r}: {paths[0]} and {paths[1]}")
    return {stem: by_stem[stem][0] for stem in sorted(by_stem)}


def pair_files(gt_dir: Path, pred_dir: Path) -> list[tuple[str, Path, Path]]:
    """Ground-truth and prediction files paired by stem.

    Parameters
    ----------
    gt_dir, pred_dir : Path
        Folders of ground-truth and predicted label images.

    Returns
    -------
    list of (stem, ground-truth path, prediction path)
        Sorted by stem.

    Raises
    ------
    EvaluationError
        If a file in either folder has no counterpart in the other, or no files are found.
    """
    gt = label_files(gt_dir)
    pred = label_files(pred_dir)
    missing_pred = [gt[s] for s in gt if s not in pred]
    missing_gt = [pred[s] for s in pred if s not in gt]
    problems = [f"no prediction in {pred_dir} for ground truth {p}" for p in missing_pred]
    problems += [f"no ground truth in {gt_dir} for prediction {p}" for p in missing_gt]
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise EvaluationError(f"{len(problems)} file(s) without a counterpart:\n  {shown}{more}")
    if not gt:
        raise EvaluationError(f"no label images ({', '.join(IMAGE_SUFFIXES)}) found in {gt_dir}")
    return [(stem, gt[stem], pred[stem]) for stem in gt]


def _read(path: Path):
    try:
        return read_labels(path)
    except ValueError as error:  # read_labels names the file already
        raise EvaluationError(str(error)) from error


def evaluate_folders(
    gt_dir: Path,
    pred_dir: Path,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    size_edges: Sequence[float] = DEFAULT_SIZE_EDGES,
    merge_iou: float = DEFAULT_MERGE_IOU,
) -> list[tuple[str, ImageScores]]:
    """Score every predicted label image against its ground truth.

    Parameters
    ----------
    gt_dir, pred_dir : Path
        Folders of ground-truth and predicted label images, paired by stem.
    thresholds, size_edges, merge_iou
        Passed to :func:`nucleiseg.metric.score_image`.

    Returns
    -------
    list of (stem, ImageScores)
        One entry per image, sorted by stem.

    Raises
    ------
    EvaluationError
        For a missing counterpart, an unreadable file or a shape mismatch (naming the files).
    """
    results = []
    for stem, gt_path, pred_path in pair_files(gt_dir, pred_dir):
        gt = _read(gt_path)
        pred = _read(pred_path)
        if gt.shape != pred.shape:
            raise EvaluationError(f"shape mismatch for {stem!r}: ground truth {gt_path} is {gt.shape}, prediction {pred_path} is {pred.shape}")
        results.append((stem, score_image(gt, pred, thresholds, size_edges, merge_iou)))
    return results


def _json_value(value):
    # JSON has no NaN; mean_iou_050 is NaN for images without any match.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_json(results: list[tuple[str, ImageScores]], thresholds: Sequence[float]) -> str:
    """Per-image rows and the macro / micro aggregates as a JSON document.

    Parameters
    ----------
    results : list of (stem, ImageScores)
        Output of :func:`evaluate_folders`.
    thresholds : sequence of float
        The IoU thresholds used.

    Returns
    -------
    str
        ``{"thresholds": [...], "images": [{"image": stem, ...}], "macro": {...},
        "micro": {...}}``; NaN is written as ``null``.
    """
    scores = [s for _, s in results]
    document = {
        "thresholds": list(thresholds),
        "images": [{"image": stem, **{k: _json_value(v) for k, v in s.to_dict().items()}} for stem, s in results],
        "macro": {k: _json_value(v) for k, v in aggregate_macro(scores).items()},
        "micro": {k: _json_value(v) for k, v in aggregate_micro(scores).items()},
    }
    return json.dumps(document, indent=2)


def format_csv(results: list[tuple[str, ImageScores]], thresholds: Sequence[float]) -> str:
    """Per-image rows followed by a ``macro`` and a ``micro`` row, as CSV.

    Parameters
    ----------
    results : list of (stem, ImageScores)
        Output of :func:`evaluate_folders`.
    thresholds : sequence of float
        The IoU thresholds used.

    Returns
    -------
    str
        Columns ``scope`` (``image``, ``macro`` or ``micro``), ``image`` (the stem, or the
        number of images on aggregate rows), then the flat metric keys.
    """
    keys = metric_keys(thresholds)
    scores = [s for _, s in results]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["scope", "image", *keys])
    for stem, s in results:
        row = s.to_dict()
        writer.writerow(["image", stem, *(row[k] for k in keys)])
    for scope, aggregate in (("macro", aggregate_macro(scores)), ("micro", aggregate_micro(scores))):
        writer.writerow([scope, aggregate["images"], *(aggregate[k] for k in keys)])
    return buffer.getvalue()


def build_parser() -> argparse.ArgumentParser:
    """Command-line parser of ``python -m nucleiseg.evaluate``."""
    parser = argparse.ArgumentParser(
        prog="python -m nucleiseg.evaluate",
        description="Object-level F1 of predicted nucleus labels against ground truth, paired by file stem.",
    )
    parser.add_argument("gt_dir", type=Path, metavar="GT_DIR", help="folder of ground-truth label images")
    parser.add_argument("pred_dir", type=Path, metavar="PRED_DIR", help="folder of predicted label images")
    parser.add_argument("--format", choices=("json", "csv"), default="csv", help="output format (default csv)")
    parser.add_argument(
        "--thresholds",
        nargs="+",
        default=None,
        metavar="T",
        help="IoU thresholds, comma- or space-separated, each >= 0.5 (default 0.50,0.55,...,0.95)",
    )
    parser.add_argument(
        "--size-edges",
        nargs=3,
        type=float,
        default=list(DEFAULT_SIZE_EDGES),
        metavar=("TINY_SMALL", "SMALL_NORMAL", "NORMAL_LARGE"),
        help="area edges (pixels) of the missed-nuclei size bins (default 250 625 900)",
    )
    parser.add_argument("--merge-iou", type=float, default=DEFAULT_MERGE_IOU, help="minimum IoU of an overlap counting towards merges/splits (default 0.1)")
    parser.add_argument("--output", "-o", type=Path, default=None, help="write to this file instead of standard output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success, 1 on an input error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        thresholds = parse_thresholds(" ".join(args.thresholds)) if args.thresholds else DEFAULT_THRESHOLDS
        # Bad parameters should fail before any file is read.
        check_size_edges(args.size_edges)
        check_merge_iou(args.merge_iou)
        results = evaluate_folders(args.gt_dir, args.pred_dir, thresholds, args.size_edges, args.merge_iou)
    except (EvaluationError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    text = format_json(results, thresholds) if args.format == "json" else format_csv(results, thresholds)
    if args.output is not None:
        args.output.write_text(text if text.endswith("\n") else text + "\n")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

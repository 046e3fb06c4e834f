"""CSV tables: the one writer and the one reader of every CSV the benchmark writes.

Figures are written with six significant digits and NaN as an empty cell
(:func:`csv_text`); :func:`read_csv` parses them back to numbers.
:func:`read_results` reads the runner's ``per_image.csv`` and ``summary.csv``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from nucleiseg.metric import is_count_key

from .outputs import write_atomic

#: Columns of ``per_image.csv`` before the metric keys.
PER_IMAGE_LEAD = ["pipeline", "image", "shard", "sec"]
#: Text columns of ``per_image.csv`` and ``summary.csv``.
RESULT_TEXT_COLUMNS = ("pipeline", "image")
#: Whole-number columns of the runner's CSVs besides the metric's counts.
RESULT_INTEGER_COLUMNS = ("images", "shard", "shards", "retried_shards")


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """CSV of ``rows`` restricted to ``columns``.

    Parameters
    ----------
    rows : list of dict
        One dict per row; keys outside ``columns`` are left out.
    columns : list of str
        The header, in order.

    Returns
    -------
    str
        Floats with 6 significant digits, NaN and missing values as empty cells,
        lines ending in ``\\n``.
    """

    def cell(value):
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.6g}"
        return "" if value is None else value

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: cell(row.get(k)) for k in columns})
    return buffer.getvalue()


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Write :func:`csv_text` of ``rows`` to ``path`` whole or not at all."""
    write_atomic(path, csv_text(rows, columns))


def read_csv(path: Path, text_columns=(), is_integer=lambda key: False) -> list[dict]:
    """Rows of a CSV written by :func:`csv_text`, figures parsed back to numbers.

    Parameters
    ----------
    path : Path
        The CSV file.
    text_columns : collection of str
        Columns kept as text (names, hashes, paths); every other cell must be a number or empty.
    is_integer : callable, optional
        ``is_integer(column)`` says whether a whole-number value of that column reads as ``int``.

    Returns
    -------
    list of dict
        One dict per row; empty cells (and ``nan``) read as NaN, so every row keeps the same keys.

    Raises
    ------
    ValueError
        When a cell outside ``text_columns`` is not a number.
    """
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            parsed = {}
            for key, value in row.items():
                if key in text_columns:
                    parsed[key] = value
                elif value in ("", "nan"):
                    parsed[key] = math.nan
                else:
                    number = float(value)
                    parsed[key] = int(number) if number.is_integer() and is_integer(key) else number
            rows.append(parsed)
    return rows


def is_result_integer(key: str) -> bool:
    """Whether a column of ``per_image.csv`` or ``summary.csv`` holds whole numbers."""
    return is_count_key(key) or key in RESULT_INTEGER_COLUMNS


def read_results(path: Path) -> list[dict]:
    """Rows of a ``per_image.csv`` or ``summary.csv``: names as text, counts as ``int``, the rest ``float``.

    Empty cells (e.g. ``mean_iou_050`` of an image without a match) read as NaN, so every
    row keeps the same keys and the macro aggregation can skip them where it should.
    """
    return read_csv(path, RESULT_TEXT_COLUMNS, is_result_integer)

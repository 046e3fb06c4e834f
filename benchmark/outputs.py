"""Output files written whole or not at all: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """CSV of ``rows`` restricted to ``columns``: floats to 6 significant digits, NaN and missing as empty."""

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


def write_csv_atomic(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Write a CSV (:func:`csv_text`) whole or not at all."""
    write_atomic(path, csv_text(rows, columns))


def read_csv_figures(path: Path, text_columns, is_integer=lambda key: False) -> list[dict]:
    """Rows of a CSV written by :func:`csv_text`, figures parsed back to numbers.

    Parameters
    ----------
    path : Path
        The CSV file.
    text_columns : collection of str
        Columns kept as text (pipeline and image names).
    is_integer : callable, optional
        ``is_integer(column)`` says whether a whole-number value of that column reads as ``int``.

    Returns
    -------
    list of dict
        One dict per row; empty cells (and ``nan``) read as NaN, so every row keeps the same keys.
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


def save_figure(figure, path: Path, dpi: int = 120) -> None:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    try:
        figure.savefig(temporary, dpi=dpi, bbox_inches="tight")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
        plt.close(figure)

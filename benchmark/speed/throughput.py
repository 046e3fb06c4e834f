"""Throughput of each pipeline with 1, 2, ... CellProfiler processes.

``python -m benchmark throughput --data DIR --split val --limit 16 --pipelines basic,unet --workers 1,2 --out OUT``

Runs the benchmark once per worker count (into ``OUT/workers-<n>/``) on the same
images and writes ``OUT/throughput.csv`` and ``OUT/throughput.md``: images per
minute, warm and cold seconds per image and the peak memory of one process.
"""

from __future__ import annotations

import os
from pathlib import Path

from .outputs import write_atomic
from .runner import BenchmarkError, run_benchmark, write_csv_atomic

COLUMNS = [
    "pipeline", "workers", "images", "wall_sec", "images_per_minute", "speedup",
    "sec_per_image_warm", "sec_cold_first_image", "startup_sec", "peak_rss_mb_per_process", "f1_mean",
]


def parse_workers(text: str) -> list[int]:
    """``"1,2"`` to ``[1, 2]``; each count must be a positive integer.

    Raises
    ------
    BenchmarkError
        Naming the option and the bad value.
    """
    counts = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise BenchmarkError(f"--workers: {part!r} is not an integer") from None
        if value < 1:
            raise BenchmarkError(f"--workers: counts must be >= 1, got {value}")
        counts.append(value)
    if not counts:
        raise BenchmarkError("--workers: give at least one count, e.g. 1,2")
    return sorted(set(counts))


def measure_throughput(data, pipelines: list[str], out: Path, worker_counts: list[int], **options) -> list[dict]:
    """Run the benchmark once per worker count and tabulate throughput.

    Parameters
    ----------
    data : str or Path
        As for :func:`benchmark.runner.run_benchmark`.
    pipelines : list of str
        Pipeline names or paths.
    out : Path
        Output folder; each run goes to ``out/workers-<n>``.
    worker_counts : list of int
        Process counts to try.
    **options
        Passed to :func:`~benchmark.runner.run_benchmark` (split, limit, seed, quiet, ...).

    Returns
    -------
    list of dict
        One row per pipeline and worker count (:data:`COLUMNS`).
    """
    out = Path(out).resolve()
    for name in ("throughput.csv", "throughput.md"):
        (out / name).unlink(missing_ok=True)
    rows = []
    for workers in worker_counts:
        result = run_benchmark(data, pipelines, out / f"workers-{workers}", workers=workers, **options)
        for summary in result.summary:
            row = {key: summary.get(key) for key in COLUMNS if key in summary}
            row.update(workers=summary["shards"], images=summary["images"])
            rows.append(row)
    for row in rows:
        base = next(r for r in rows if r["pipeline"] == row["pipeline"])
        row["speedup"] = row["images_per_minute"] / base["images_per_minute"] if base["images_per_minute"] else float("nan")
    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(out / "throughput.csv", COLUMNS, rows)
    write_atomic(out / "throughput.md", render(rows, os.cpu_count()))
    return rows


def render(rows: list[dict], cpu_count: int | None) -> str:
    """Markdown table of :func:`measure_throughput`'s rows."""
    lines = [
        "# Throughput",
        "",
        f"Machine: {cpu_count} CPUs. Each CellProfiler process gets CPUs / processes threads. Warm: mean",
        "seconds of the images after each process's first; cold: start-up plus the first image.",
        "",
        "| pipeline | processes | images | wall s | images / min | speed-up | warm s / image | cold s | peak MB / process | F1 mean |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['pipeline']} | {r['workers']} | {r['images']} | {r['wall_sec']:.1f} | {r['images_per_minute']:.1f} | "
            f"{r['speedup']:.2f} | {r['sec_per_image_warm']:.2f} | {r['sec_cold_first_image']:.1f} | "
            f"{r['peak_rss_mb_per_process']:.0f} | {r['f1_mean']:.3f} |"
        )
    return "\n".join(lines) + "\n"

"""Throughput of each pipeline with 1, 2, ... CellProfiler processes.

``python -m benchmark speed throughput --data DIR --split val --limit 16 --pipelines basic,unet --workers 1,2 --out OUT``

Runs the benchmark once per worker count (into ``OUT/workers-<n>/``) on the same
images and writes ``OUT/throughput.csv`` and ``OUT/throughput.md``: images per
minute, speed-up over the first count, warm seconds per image, start-up seconds
and the peak memory of one process. Warm is the benchmark's own figure from
CellProfiler's logs (:mod:`benchmark.log_timing`): the mean over the images
after each process's first. There is no cold column: a CellProfiler process sees
each image once, so its first image (model load included) is another image than
the warm ones and the two cannot be compared (a 256x256 first image can take
less than the mean of 520x696 ones). Cold and warm on the same image come from
the in-process tools (``python -m benchmark speed unet``, :mod:`benchmark.speed.timing`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BenchmarkError
from ..outputs import write_atomic
from ..runner import run_benchmark
from ..tables import write_csv

COLUMNS = [
    "pipeline", "workers", "images", "wall_sec", "images_per_minute", "speedup",
    "sec_per_image_warm", "startup_sec", "peak_rss_mb_per_process", "f1_mean",
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


def measure_throughput(data, pipelines: list[str], out: Path, worker_counts: list[int], run=run_benchmark,
                       **options) -> list[dict]:
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
    run : callable
        :func:`~benchmark.runner.run_benchmark`, or a stand-in with its signature (tests).
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
        result = run(data, pipelines, out / f"workers-{workers}", workers=workers, **options)
        for summary in result.summary:
            row = {key: summary.get(key) for key in COLUMNS if key in summary}
            row.update(workers=summary["shards"], images=summary["images"])
            rows.append(row)
    for row in rows:
        base = next(r for r in rows if r["pipeline"] == row["pipeline"])
        row["speedup"] = row["images_per_minute"] / base["images_per_minute"] if base["images_per_minute"] else float("nan")
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "throughput.csv", COLUMNS, rows)
    write_atomic(out / "throughput.md", render(rows, os.cpu_count()))
    return rows


def render(rows: list[dict], cpu_count: int | None) -> str:
    """Markdown table of :func:`measure_throughput`'s rows."""
    lines = [
        "# Throughput",
        "",
        f"Machine: {cpu_count} CPUs. Each CellProfiler process gets CPUs / processes threads. Warm: mean",
        "seconds of the images after each process's first; start-up: from the process's start to its first",
        "image (the model loads during the first image, which is not shown: it is another image than the",
        "warm ones; cold and warm on one image: `python -m benchmark speed unet`).",
        "",
        "| pipeline | processes | images | wall s | images / min | speed-up | warm s / image | start-up s | peak MB / process | F1 mean |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['pipeline']} | {r['workers']} | {r['images']} | {r['wall_sec']:.1f} | {r['images_per_minute']:.1f} | "
            f"{r['speedup']:.2f} | {r['sec_per_image_warm']:.2f} | {r['startup_sec']:.1f} | "
            f"{r['peak_rss_mb_per_process']:.0f} | {r['f1_mean']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def add_parser(tools) -> None:
    """Register ``speed throughput`` on the speed tools' sub-parser collection."""
    parser = tools.add_parser(
        "throughput", help="images per minute, warm and start-up seconds and peak memory with 1, 2, ... processes",
        description="Run the benchmark once per worker count on the same images (into OUT/workers-N) and "
        "write OUT/throughput.csv and OUT/throughput.md.",
    )
    parser.add_argument("--data", required=True, help="data folder, or 'synthetic'")
    parser.add_argument("--split", default="val", help="split (default val)")
    parser.add_argument("--pipelines", required=True, help="comma-separated pipeline names")
    parser.add_argument("--workers", default="1,2", help="comma-separated process counts (default 1,2)")
    parser.add_argument("--limit", type=int, default=None, help="only the first K images of the split")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """Measure and print the throughput table; returns the exit status."""
    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    split = None if args.split in ("", "all") else args.split
    rows = measure_throughput(args.data, names, args.out, parse_workers(args.workers), split=split, limit=args.limit,
                              quiet=args.quiet)
    print(render(rows, os.cpu_count()))
    return 0

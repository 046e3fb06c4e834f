"""Seconds per image and start-up of CellProfiler processes, from their own logs.

CellProfiler logs, at INFO level, the wall time of every module for every image
set. The seconds of one image are the sum of those module times (image number
*n* of a shard is mapped to a stem by the order in which the shard's label files
were written). The start-up of a shard is its process wall time minus the
seconds of its images: Python and CellProfiler imports, plug-in discovery,
pipeline loading, building the image sets, post-run work and exit. One-off
costs that a module pays lazily on its first image (loading a network, for
instance) stay in that image's seconds; ``sec_first_image`` reports them apart.

Warm and cold, as the benchmark's summary reports them: **warm** is the mean over
the images after each process's first; **cold** is a process's start-up plus its
first image, i.e. how long a fresh process takes to its first result.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_MODULE_TIME = re.compile(
    r"Image # (?P<image>\d+), module (?P<module>\S+) # (?P<num>\d+): "
    r"CPU_time = (?P<cpu>[\d.]+) secs, Wall_time = (?P<wall>[\d.]+) secs"
)


@dataclass
class PipelineRun:
    """Timing of one pipeline over all its shards.

    Attributes
    ----------
    name : str
        Pipeline name.
    seconds : dict of str to float
        Seconds of each image (NaN when unknown).
    shard_of : dict of str to int
        Shard of each image.
    startup : list of float
        Start-up seconds of each shard.
    first_image : list of float
        Seconds of each shard's first image.
    wall : float
        Wall-clock seconds of the whole pipeline (all shards, in parallel).
    peak_rss : list of int
        Peak resident bytes of each shard's CellProfiler process tree.
    retries : int
        Shards that failed once and succeeded on the second attempt.
    first_stems : list of str
        Each shard's first image.
    """

    name: str
    seconds: dict = field(default_factory=dict)
    shard_of: dict = field(default_factory=dict)
    startup: list = field(default_factory=list)
    first_image: list = field(default_factory=list)
    wall: float = 0.0
    peak_rss: list = field(default_factory=list)
    retries: int = 0
    first_stems: list = field(default_factory=list)

    def add_shard(self, index: int, stems: list[str], timing: "ShardTiming", peak_rss: int) -> None:
        """Record one finished shard: its images (in the shard's order), their seconds and its process."""
        self.startup.append(timing.startup)
        self.peak_rss.append(peak_rss)
        self.first_image.append(timing.seconds[timing.first])
        self.first_stems.append(timing.first)
        for stem in stems:
            self.seconds[stem] = timing.seconds[stem]
            self.shard_of[stem] = index


@dataclass
class ShardTiming:
    """Timing of one CellProfiler process.

    Attributes
    ----------
    seconds : dict of str to float
        Seconds of each image (NaN when unknown).
    first : str
        The image the process finished first.
    startup : float
        Process wall time not spent on its images (never negative).
    """

    seconds: dict
    first: str
    startup: float


def parse_image_seconds(log_text: str) -> dict[int, float]:
    """Per image number, the summed module wall times CellProfiler logged.

    Parameters
    ----------
    log_text : str
        A headless CellProfiler log (INFO level).

    Returns
    -------
    dict of int to float
        ``{image_number: seconds}``.
    """
    seconds: dict[int, float] = {}
    for match in _MODULE_TIME.finditer(log_text):
        number = int(match["image"])
        seconds[number] = seconds.get(number, 0.0) + float(match["wall"])
    return seconds


def shard_timing(label_files: dict[str, Path], log_text: str, wall: float) -> ShardTiming:
    """Seconds of each image of one shard and the shard's start-up.

    Parameters
    ----------
    label_files : dict of str to Path
        Each image's label file as the shard wrote it (read before the files move:
        their modification times give the order of the images).
    log_text : str
        The shard's CellProfiler log.
    wall : float
        Wall-clock seconds of the shard's process.

    Returns
    -------
    ShardTiming
        Seconds from the logged module times; when the log has none for some
        image (another log level), the gaps between label files instead, the first
        image then unknown (NaN).
    """
    # CellProfiler processes image sets in order, so writing order gives image numbers.
    order = sorted(label_files, key=lambda s: (label_files[s].stat().st_mtime_ns, s))
    logged = parse_image_seconds(log_text)
    numbers = sorted(logged)
    if len(numbers) == len(order):
        seconds = {stem: logged[number] for stem, number in zip(order, numbers)}
    else:
        times = [label_files[s].stat().st_mtime for s in order]
        seconds = {order[0]: math.nan}
        seconds.update({s: t1 - t0 for s, t0, t1 in zip(order[1:], times, times[1:])})
    known = [v for v in seconds.values() if math.isfinite(v)]
    # An image of unknown seconds is counted as an average one.
    estimate = sum(known) + (0.0 if len(known) == len(seconds) else (np.mean(known) if known else 0.0))
    return ShardTiming(seconds, order[0], max(0.0, wall - estimate))


def timing_figures(run: PipelineRun, rows: list[dict]) -> dict:
    """The timing columns of a pipeline's summary row.

    Parameters
    ----------
    run : PipelineRun
        The pipeline's shards.
    rows : list of dict
        Its per-image rows (``image`` and ``sec``).

    Returns
    -------
    dict
        ``sec_per_image`` (mean over images of known seconds), ``sec_first_image``,
        ``startup_sec`` (means over processes), ``wall_sec``, ``shards``,
        ``sec_per_image_warm``, ``sec_cold_first_image`` (see the module's notes),
        ``images_per_minute`` (images over the pipeline's wall time),
        ``peak_rss_mb_per_process`` (the largest process) and ``retried_shards``;
        NaN where nothing was measured.
    """
    seconds = np.array([r["sec"] for r in rows], dtype=float)
    finite = seconds[np.isfinite(seconds)]
    first = np.array(run.first_image, dtype=float)
    first = first[np.isfinite(first)]
    warm = [r["sec"] for r in rows if r["image"] not in run.first_stems and math.isfinite(r["sec"])]
    cold = [s + f for s, f in zip(run.startup, run.first_image) if math.isfinite(f)]
    return {
        "sec_per_image": float(finite.mean()) if finite.size else math.nan,
        "sec_first_image": float(first.mean()) if first.size else math.nan,
        "startup_sec": float(np.mean(run.startup)) if run.startup else math.nan,
        "wall_sec": run.wall,
        "shards": len(run.startup),
        "sec_per_image_warm": float(np.mean(warm)) if warm else math.nan,
        "sec_cold_first_image": float(np.mean(cold)) if cold else math.nan,
        "images_per_minute": 60.0 * len(rows) / run.wall if run.wall > 0 else math.nan,
        "peak_rss_mb_per_process": max(run.peak_rss) / 2**20 if run.peak_rss else math.nan,
        "retried_shards": run.retries,
    }

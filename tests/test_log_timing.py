"""Seconds per image, start-up, warm and cold figures from CellProfiler logs (benchmark.log_timing)."""

from __future__ import annotations

import math
import os
import textwrap

import pytest

from benchmark.log_timing import PipelineRun, ShardTiming, parse_image_seconds, shard_timing, timing_figures

LOG = textwrap.dedent(
    """\
    [CP - INFO] a: Tue Nov 24 00:19:41 2026: Image # 1, module Images # 1: CPU_time = 0.00 secs, Wall_time = 0.01 secs
    [CP - INFO] a: Tue Nov 24 00:19:42 2026: Image # 1, module IdentifyPrimaryObjects # 5: CPU_time = 0.20 secs, Wall_time = 0.30 secs
    some warning in between
    [CP - INFO] a: Tue Nov 24 00:19:43 2026: Image # 2, module SaveImages # 7: CPU_time = 0.00 secs, Wall_time = 0.02 secs
    """
)


def test_parse_image_seconds_sums_modules():
    assert parse_image_seconds(LOG) == pytest.approx({1: 0.31, 2: 0.02})


def label_files(folder, written_at: dict[str, float]) -> dict:
    """Empty label files whose modification times say in which order they were written."""
    files = {}
    for stem, when in written_at.items():
        path = folder / f"{stem}.tiff"
        path.write_bytes(b"")
        os.utime(path, (when, when))
        files[stem] = path
    return files


def test_images_take_the_logged_seconds_in_writing_order(tmp_path):
    # "b" was written first, so it is image 1 of the log.
    files = label_files(tmp_path, {"a": 2000.0, "b": 1000.0})
    timing = shard_timing(files, LOG, wall=5.0)
    assert timing.first == "b"
    assert timing.seconds == pytest.approx({"b": 0.31, "a": 0.02})
    assert timing.startup == pytest.approx(5.0 - 0.33)


def test_without_module_times_the_gaps_between_label_files_are_used(tmp_path):
    files = label_files(tmp_path, {"a": 1000.0, "b": 1003.0, "c": 1007.0})
    timing = shard_timing(files, "no module times at this log level", wall=20.0)
    assert timing.first == "a" and math.isnan(timing.seconds["a"])
    assert timing.seconds["b"] == pytest.approx(3.0) and timing.seconds["c"] == pytest.approx(4.0)
    # The unknown first image counts as an average one: 20 - (3 + 4 + 3.5).
    assert timing.startup == pytest.approx(9.5)
    assert shard_timing(files, "", wall=1.0).startup == 0.0  # never negative


def test_warm_cold_throughput_and_memory_figures():
    run = PipelineRun("p", startup=[2.0, 4.0], first_image=[1.0, 3.0], first_stems=["a", "c"], wall=30.0,
                      peak_rss=[100 * 2**20, 300 * 2**20], retries=1)
    rows = [{"image": "a", "sec": 1.0}, {"image": "b", "sec": 0.5}, {"image": "c", "sec": 3.0},
            {"image": "d", "sec": 0.25}, {"image": "e", "sec": math.nan}]
    figures = timing_figures(run, rows)
    assert figures["sec_per_image"] == pytest.approx((1.0 + 0.5 + 3.0 + 0.25) / 4)  # NaN left out
    assert figures["sec_per_image_warm"] == pytest.approx((0.5 + 0.25) / 2)  # each process's first left out
    assert figures["sec_cold_first_image"] == pytest.approx(((2 + 1) + (4 + 3)) / 2)
    assert figures["sec_first_image"] == pytest.approx(2.0) and figures["startup_sec"] == pytest.approx(3.0)
    assert figures["images_per_minute"] == pytest.approx(60 * 5 / 30)
    assert figures["peak_rss_mb_per_process"] == pytest.approx(300)  # the largest process, not the sum
    assert (figures["shards"], figures["retried_shards"], figures["wall_sec"]) == (2, 1, 30.0)


def test_a_shard_recorded_into_a_pipeline_run():
    run = PipelineRun("p")
    run.add_shard(1, ["x", "y"], ShardTiming({"y": 0.5, "x": 0.7}, "y", 2.5), peak_rss=123)
    assert run.seconds == {"x": 0.7, "y": 0.5} and run.shard_of == {"x": 1, "y": 1}
    assert (run.first_stems, run.first_image, run.startup, run.peak_rss) == (["y"], [0.5], [2.5], [123])

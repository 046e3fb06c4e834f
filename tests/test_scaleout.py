"""Scale-out of the benchmark: retries, stopping, a Dask cluster, peak memory.

The fake CellProfiler of ``test_runner`` stands in for most runs; one test compares
real headless CellProfiler on a two-worker Dask ``LocalCluster`` with a
single-process run.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from benchmark import execution, runner, shards
from benchmark.__main__ import main as cli_main
from benchmark.errors import BenchmarkError, PipelineError
from nucleiseg import synthetic
from test_runner import make_fake_cellprofiler, make_mode_pipeline, real_pipeline

QUIET = {"quiet": True, "log": lambda s: None}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(folder, n=4, seed=2, size=128)
    return folder


@pytest.fixture(scope="module")
def cluster():
    """A two-worker Dask cluster of separate processes, one thread each."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        with distributed.Client(local) as client:
            yield client


def test_failed_shard_is_retried_once(tmp_path, small_set):
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "flaky")
    out = tmp_path / "out"
    lines = []
    result = runner.run_benchmark(small_set, [str(pipe)], out, split="all", workers=2, cellprofiler=fake, quiet=True, log=lines.append)
    (row,) = result.summary
    assert row["images"] == 4 and row["f1_mean"] == pytest.approx(1.0)
    assert row["retried_shards"] == 2
    assert sum("running it once more" in line for line in lines) == 2
    first = sorted((out / "flaky" / "logs").glob("*.attempt1.log"))
    assert len(first) == 2 and "fake transient failure" in first[0].read_text()
    assert "running it once more" in (out / "report.md").read_text()


def test_shard_failing_twice_stops_the_run(tmp_path, small_set):
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "fail")
    out = tmp_path / "out"
    with pytest.raises(PipelineError, match="on both attempts") as caught:
        runner.run_benchmark(small_set, [str(pipe)], out, split="all", workers=1, cellprofiler=fake, **QUIET)
    assert "fake failure inside IdentifyPrimaryObjects" in str(caught.value)
    assert (out / "fail" / "logs" / "shard_00.attempt1.log").is_file()
    assert not (out / "summary.csv").exists()


def test_stop_file_kills_a_running_shard(tmp_path):
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "sleep")
    (tmp_path / "list.txt").write_text("")
    stop = tmp_path / ".stop"
    threading.Timer(1.5, stop.touch).start()
    started = time.monotonic()
    outcome = execution.run_cellprofiler(
        str(fake), ["-p", str(pipe), "-o", str(tmp_path / "o"), "--file-list", str(tmp_path / "list.txt")],
        str(tmp_path / "log.txt"), str(tmp_path / "o"), stop_file=str(stop),
    )
    assert outcome.stopped and outcome.returncode != 0
    assert time.monotonic() - started < 30
    assert outcome.peak_rss > 1_000_000  # a Python process holds megabytes


def test_missing_executable_is_a_failed_shard_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(execution.sys, "executable", str(tmp_path / "python"))
    outcome = execution.run_cellprofiler(str(tmp_path / "nothing"), [], str(tmp_path / "log"), str(tmp_path))
    assert outcome.returncode == 127
    assert "cellprofiler not found" in (tmp_path / "log").read_text()


def test_summary_has_warm_time_and_memory_of_real_processes(tmp_path, small_set):
    """The figures that come from the processes themselves; their arithmetic is checked in test_log_timing."""
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "perfect")
    result = runner.run_benchmark(small_set, [str(pipe)], tmp_path / "out", split="all", workers=2, cellprofiler=fake, **QUIET)
    (row,) = result.summary
    assert row["sec_per_image_warm"] == pytest.approx(0.25)  # the fake logs 0.05 + 0.20 s per image
    assert row["peak_rss_mb_per_process"] > 1  # a Python process holds megabytes
    assert row["wall_sec"] > 0 and row["shards"] == 2
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["workers"] == 2 and info["executor"] == "local processes" and info["images"] == 4


def test_dask_run_equals_single_process_run_with_fake(tmp_path, small_set, cluster):
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "perfect")
    single = runner.run_benchmark(small_set, [str(pipe)], tmp_path / "one", split="all", workers=1, cellprofiler=fake, **QUIET)
    spread = runner.run_benchmark(small_set, [str(pipe)], tmp_path / "dask", split="all", cellprofiler=fake, scheduler=cluster, **QUIET)
    assert spread.summary[0]["shards"] == 2
    info = json.loads((tmp_path / "dask" / "run.json").read_text())
    assert info["executor"].startswith("Dask cluster")
    assert {r["shard"] for r in spread.per_image} == {0, 1}
    assert not list((tmp_path / "dask").glob(runner.WORK_PREFIX + "*"))  # input copy removed
    for a, b in zip(sorted(single.per_image, key=lambda r: r["image"]), sorted(spread.per_image, key=lambda r: r["image"])):
        assert {k: v for k, v in a.items() if k not in ("shard", "sec")} == {k: v for k, v in b.items() if k not in ("shard", "sec")}


def test_dask_run_retries_a_failed_shard(tmp_path, small_set, cluster):
    fake = make_fake_cellprofiler(tmp_path)
    pipe = make_mode_pipeline(tmp_path, "flaky")
    result = runner.run_benchmark(small_set, [str(pipe)], tmp_path / "out", split="all", cellprofiler=fake, scheduler=cluster, **QUIET)
    assert result.summary[0]["retried_shards"] == 2 and result.summary[0]["f1_mean"] == pytest.approx(1.0)


def test_unreachable_scheduler_is_a_clear_error(tmp_path, small_set):
    pytest.importorskip("distributed")
    code = cli_main([
        "run", "--data", str(small_set), "--split", "all", "--pipelines", "basic", "--out", str(tmp_path / "out"),
        "--scheduler", "tcp://127.0.0.1:9",
    ])
    assert code == 2
    assert not (tmp_path / "out" / "summary.csv").exists()


def test_real_cellprofiler_on_dask_matches_single_process(tmp_path, cluster):
    """Real headless CellProfiler: two Dask workers give the same labels as one local process."""
    try:
        shards.find_cellprofiler()
    except BenchmarkError as error:
        pytest.skip(str(error))
    data = tmp_path / "data"
    synthetic.generate(data, n=3, seed=5, size=128)
    pipe = real_pipeline(tmp_path)
    single = runner.run_benchmark(data, [str(pipe)], tmp_path / "one", split="all", workers=1, **QUIET)
    spread = runner.run_benchmark(data, [str(pipe)], tmp_path / "dask", split="all", scheduler=cluster, **QUIET)
    assert spread.summary[0]["shards"] == 2 and single.summary[0]["shards"] == 1
    for stem in ("synth_000", "synth_001", "synth_002"):
        a = tifffile.imread(tmp_path / "one" / pipe.stem / "labels" / f"{stem}.tiff")
        b = tifffile.imread(tmp_path / "dask" / pipe.stem / "labels" / f"{stem}.tiff")
        assert a.max() > 0 and np.array_equal(a, b)
    for key in ("f1_mean", "nuclei", "predicted", "merges", "splits", "error_rate_070"):
        assert single.summary[0][key] == spread.summary[0][key]

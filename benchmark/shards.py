"""One pipeline over all images: cut into shards, one headless CellProfiler per shard.

The shards run in parallel on an executor of :mod:`benchmark.execution` (local
processes or a Dask cluster)::

    cellprofiler -c -r -p PIPELINE --plugins-directory plugins -e imageio_reader
                 -o OUT/<pipeline>/shards/<k> --file-list <k>.txt

A progress bar on stderr counts the label files appearing in the shards'
``labels/`` folders. A shard that fails is run once more from scratch; a second
failure stops the other shards and the run, with the pipeline's name and the
tail of the shard's log. The label files of every shard are then gathered in
``OUT/<pipeline>/labels/`` and their seconds read from the logs
(:mod:`benchmark.log_timing`).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import BenchmarkError, PipelineError
from .execution import resolve_cellprofiler
from .log_timing import PipelineRun, shard_timing
from .pipeline_files import PLUGINS_DIR
from .progress import Progress


def find_cellprofiler() -> Path:
    """The ``cellprofiler`` script of the running environment.

    Looked up next to ``sys.executable`` (the virtual environment's ``bin/``),
    then on ``PATH``.

    Raises
    ------
    BenchmarkError
        When none is found.
    """
    try:
        return Path(resolve_cellprofiler(None))
    except FileNotFoundError:
        raise BenchmarkError(
            f"cellprofiler not found next to {sys.executable} nor on PATH; run `make venv` and use .venv/bin/python"
        ) from None


def shard(items: list, workers: int) -> list[list]:
    """Split items round-robin into ``min(workers, len(items))`` non-empty shards."""
    k = max(1, min(int(workers), len(items)))
    return [items[i::k] for i in range(k)] if items else []


@dataclass
class ShardRun:
    """One shard of a pipeline's images and what came of its CellProfiler process."""

    index: int
    pairs: list
    out_dir: Path
    log: Path
    file_list: Path
    attempts: int = 0
    wall: float = 0.0
    peak_rss: int = 0


def _count_labels(runs: list[ShardRun]) -> int:
    total = 0
    for run in runs:
        folder = run.out_dir / "labels"
        if folder.is_dir():
            total += sum(1 for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    return total


def _shard_outcome(future):
    """``(ShardResult, None)`` of a finished shard that succeeded, else ``(None, why it failed)``."""
    try:
        outcome = future.result()
    except Exception as error:  # a lost Dask worker, an unpicklable result ...
        return None, f"the task raised {type(error).__name__}: {error}"
    if outcome.returncode != 0:
        return None, f"CellProfiler exited with status {outcome.returncode} on {outcome.host}"
    return outcome, None


def run_pipeline(
    name: str,
    cppipe: Path,
    pairs: list,
    pipeline_out: Path,
    work_dir: Path,
    executor,
    cellprofiler: Path | None = None,
    plugins_dir: Path = PLUGINS_DIR,
    quiet: bool = False,
    warn=None,
) -> PipelineRun:
    """Run one pipeline headless over materialized pairs, sharded over an executor.

    A shard that fails is run once more from scratch (its first log is kept as
    ``shard_<k>.attempt1.log``); a second failure stops the other shards and
    raises.

    Parameters
    ----------
    name : str
        Pipeline name (for messages and folders).
    cppipe : Path
        The pipeline file.
    pairs : list of Pair
        Materialized images and masks (absolute paths).
    pipeline_out : Path
        ``OUT/<pipeline>``; shards write to ``shards/<k>``, logs go to ``logs/``,
        label files are gathered in ``labels/``.
    work_dir : Path
        Folder for the file lists (must be visible to every worker).
    executor : LocalExecutor or DaskExecutor
        Where the CellProfiler processes run (:mod:`benchmark.execution`); the
        images are cut into ``executor.slots()`` shards.
    cellprofiler : Path, optional
        Executable; :func:`find_cellprofiler` (on each worker) when omitted.
    plugins_dir : Path
        Passed as ``--plugins-directory`` when it exists.
    quiet : bool
        No progress bar.
    warn : callable, optional
        Receives a line when a shard is retried.

    Returns
    -------
    PipelineRun

    Raises
    ------
    PipelineError
        When a shard fails twice or labels are missing; names the shard and shows its log tail.
    """
    warn = warn or (lambda text: None)
    (pipeline_out / "logs").mkdir(parents=True, exist_ok=True)
    runs = []
    parts = shard(pairs, executor.slots())
    for index, part in enumerate(parts):
        file_list = work_dir / f"{name}_{index:02d}.txt"
        file_list.write_text("".join(f"{p.image}\n{p.mask}\n" for p in part), encoding="utf-8")
        runs.append(ShardRun(
            index, part, pipeline_out / "shards" / f"{index:02d}",
            pipeline_out / "logs" / f"shard_{index:02d}.log", file_list,
        ))
    stop_file = pipeline_out / ".stop"
    stop_file.unlink(missing_ok=True)

    def submit(run: ShardRun):
        run.attempts += 1
        if run.out_dir.exists():
            shutil.rmtree(run.out_dir)  # a retry starts clean
        run.out_dir.mkdir(parents=True)
        arguments = ["-c", "-r", "-p", str(cppipe)]
        if Path(plugins_dir).is_dir():
            arguments += ["--plugins-directory", str(plugins_dir)]
        arguments += ["-e", "imageio_reader", "-o", str(run.out_dir), "--file-list", str(run.file_list)]
        return executor.submit(
            f"cellprofiler-{name}-{run.index}-{run.attempts}-{uuid.uuid4().hex[:8]}", run.index, len(runs),
            cellprofiler=str(cellprofiler) if cellprofiler else None, arguments=arguments,
            log=str(run.log), cwd=str(run.out_dir), stop_file=str(stop_file),
        )

    progress = None if quiet else Progress(len(pairs), f"[{name}]")
    started = time.monotonic()
    pending = {}
    result = PipelineRun(name)
    try:
        pending = {run.index: submit(run) for run in runs}
        while pending:
            if progress:
                progress.update(_count_labels(runs))
            for index, future in list(pending.items()):
                if not future.done():
                    continue
                run = runs[index]
                outcome, failure = _shard_outcome(future)
                if failure is None:
                    run.wall, run.peak_rss = outcome.wall, outcome.peak_rss
                    del pending[index]
                    continue
                described = (
                    f"{failure}, shard {index} ({len(run.pairs)} images: "
                    f"{', '.join(p.stem for p in run.pairs[:5])}{' ...' if len(run.pairs) > 5 else ''})"
                )
                if run.attempts >= 2:
                    raise PipelineError(name, f"{described}, on both attempts", run.log)
                if run.log.is_file():
                    os.replace(run.log, run.log.with_name(f"{run.log.stem}.attempt1.log"))
                warn(f"[{name}] {described}; running it once more")
                result.retries += 1
                pending[index] = submit(run)
            time.sleep(0.3)
    except BaseException:
        # The stop file reaches shards on other machines too; wait for them to go.
        stop_file.touch()
        for future in pending.values():
            try:
                future.result(timeout=60)
            except Exception:
                pass
        if progress:
            progress.close(_count_labels(runs))
        raise
    finally:
        stop_file.unlink(missing_ok=True)
    if progress:
        progress.close(_count_labels(runs))
    result.wall = time.monotonic() - started
    (pipeline_out / "labels").mkdir(parents=True, exist_ok=True)
    for run in runs:
        _collect_shard(name, run, pipeline_out / "labels", result)
    return result


def _collect_shard(name: str, run: ShardRun, labels_dir: Path, result: PipelineRun) -> None:
    """Move a shard's label files into ``labels_dir`` and record its per-image seconds."""
    produced = {p.stem: p for p in (run.out_dir / "labels").glob("*.tif*")} if (run.out_dir / "labels").is_dir() else {}
    missing = [p.stem for p in run.pairs if p.stem not in produced]
    if missing:
        raise PipelineError(
            name,
            f"shard {run.index} finished but wrote no labels/<stem>.tiff for {len(missing)} image(s): "
            + ", ".join(missing[:10])
            + (" ..." if len(missing) > 10 else "")
            + " (the pipeline must save Nuclei as 16-bit labels into the output folder's labels/"
            " sub-folder, named from the DNA image; see docs/CONVENTIONS.md)",
            run.log,
        )
    stems = [p.stem for p in run.pairs]
    timing = shard_timing({stem: produced[stem] for stem in stems}, run.log.read_text(errors="replace"), run.wall)
    result.add_shard(run.index, stems, timing, run.peak_rss)
    for stem in stems:
        shutil.move(str(produced[stem]), labels_dir / f"{stem}.tiff")

"""Run CellProfiler pipelines headless on a data set and score them against ground truth.

Steps of :func:`run_benchmark`:

1. Remove stale outputs (``summary.csv`` first, so a failed run never leaves an
   old one that looks current).
2. Select, check and copy the data into a temporary CellProfiler input folder
   (:func:`nucleiseg.layouts.prepare`; one :class:`~nucleiseg.layouts.DataError`
   names every bad file). ``--data synthetic`` first generates the demo set of
   :mod:`nucleiseg.synthetic` into a temporary folder.
3. For each pipeline, split the images into shards (one per worker) and run one
   headless CellProfiler per shard in parallel, as local processes or as tasks
   on a Dask cluster (:mod:`benchmark.execution`); a failed shard is retried once::

       cellprofiler -c -r -p PIPELINE --plugins-directory plugins -e imageio_reader
                    -o OUT/<pipeline>/shards/<k> --file-list <k>.txt

   A progress bar on stderr counts the label files appearing in the shards'
   ``labels/`` folders. A failing shard stops the run with the pipeline's name
   and the tail of its log.
4. Read every predicted ``labels/<stem>.tiff``, store it as 16-bit
   ``OUT/<pipeline>/labels/<stem>.tiff``, score it with :mod:`nucleiseg.metric`.
5. Write ``per_image.csv``, the plots and ``report.md``, and ``summary.csv`` last
   (each through a temporary name and an atomic rename).

Timing
------
CellProfiler logs, at INFO level, the wall time of every module for every image
set. The seconds of one image are the sum of those module times (image number
*n* of a shard is mapped to a stem by the order in which the shard's label files
were written). The start-up of a shard is its process wall time minus the
seconds of its images: Python and CellProfiler imports, plug-in discovery,
pipeline loading, building the image sets, post-run work and exit. One-off
costs that a module pays lazily on its first image (loading a network, for
instance) stay in that image's seconds; ``sec_first_image`` reports them apart.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nucleiseg import layouts, metric
from nucleiseg.cards import sha256_of

from .execution import DaskExecutor, LocalExecutor, resolve_cellprofiler
from .outputs import write_atomic, write_csv_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
PIPELINES_DIR = REPO_ROOT / "pipelines"
PLUGINS_DIR = REPO_ROOT / "plugins"
SYNTHETIC = "synthetic"

SUMMARY_COLUMNS = (
    ["pipeline", "images", "nuclei", "f1_mean"]
    + [f"f1_{metric.threshold_key(t)}" for t in metric.DEFAULT_THRESHOLDS]
    + ["error_rate_070", "missed_tiny", "missed_small", "missed_normal", "missed_large"]
    + ["merges", "splits", "sec_per_image"]
)
#: Columns after the fixed ones: pooled (micro) figures and timing details.
SUMMARY_EXTRA_COLUMNS = (
    ["predicted", "precision_050", "recall_050", "mean_iou_050", "micro_f1_mean"]
    + [f"micro_f1_{metric.threshold_key(t)}" for t in metric.DEFAULT_THRESHOLDS]
    + ["micro_error_rate_070", "sec_first_image", "startup_sec", "wall_sec", "shards"]
    + ["sec_per_image_warm", "sec_cold_first_image", "images_per_minute", "peak_rss_mb_per_process", "retried_shards"]
)
PER_IMAGE_LEAD = ["pipeline", "image", "shard", "sec"]

LOG_TAIL_LINES = 40
_MODULE_TIME = re.compile(
    r"Image # (?P<image>\d+), module (?P<module>\S+) # (?P<num>\d+): "
    r"CPU_time = (?P<cpu>[\d.]+) secs, Wall_time = (?P<wall>[\d.]+) secs"
)


class BenchmarkError(RuntimeError):
    """A benchmark that cannot run or did not finish; the message says what and where."""


class PipelineError(BenchmarkError):
    """A pipeline whose CellProfiler run failed.

    Attributes
    ----------
    pipeline : str
        Pipeline name.
    log : Path
        The shard's CellProfiler log.
    """

    def __init__(self, pipeline: str, message: str, log: Path | None = None):
        self.pipeline = pipeline
        self.log = log
        text = f"pipeline {pipeline!r} failed: {message}"
        if log is not None and log.is_file():
            text += f"\nlast lines of {log}:\n" + log_tail(log)
        super().__init__(text)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Last ``lines`` lines of a text file, indented."""
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join("    " + line for line in text)


# --------------------------------------------------------------------------------------------
# Finding things
# --------------------------------------------------------------------------------------------


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


def available_pipelines(pipelines_dir: Path = PIPELINES_DIR) -> list[str]:
    """Names of the ``.cppipe`` files in the pipelines folder."""
    return sorted(p.stem for p in Path(pipelines_dir).glob("*.cppipe"))


def resolve_pipelines(specs: list[str], pipelines_dir: Path = PIPELINES_DIR) -> list[tuple[str, Path]]:
    """Map pipeline names (or paths to ``.cppipe`` files) to files; all must exist.

    Parameters
    ----------
    specs : list of str
        ``basic`` means ``pipelines/basic.cppipe``; anything ending in
        ``.cppipe`` or containing a path separator is a path.
    pipelines_dir : Path
        Folder of the named pipelines.

    Returns
    -------
    list of (name, path)

    Raises
    ------
    BenchmarkError
        Naming every missing pipeline and listing the available ones.
    """
    out, missing = [], []
    for spec in specs:
        if spec.endswith(".cppipe") or os.sep in spec:
            path = Path(spec).resolve()
            name = path.stem
        else:
            name, path = spec, Path(pipelines_dir) / f"{spec}.cppipe"
        if not path.is_file():
            missing.append(f"{name} ({path})")
        out.append((name, path))
    names = [n for n, _ in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BenchmarkError(f"pipeline names given twice: {', '.join(duplicates)}")
    if missing:
        have = ", ".join(available_pipelines(pipelines_dir)) or "none"
        raise BenchmarkError(
            f"pipeline file(s) not found: {'; '.join(missing)}. Available in {pipelines_dir}: {have}"
        )
    if not out:
        raise BenchmarkError("no pipelines given")
    return out


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal).

    Parameters
    ----------
    total : int
        Number of items.
    label : str
        Shown before the bar.
    stream : file, optional
        Default ``sys.stderr``.
    """

    def __init__(self, total: int, label: str, stream=None, width: int = 30):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.monotonic()
        self.count = -1
        self.last_print = 0.0
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, count: int, force: bool = False) -> None:
        """Show ``count`` finished items (redrawn on a terminal, else at most every 10 s)."""
        now = time.monotonic()
        changed = count != self.count
        self.count = count
        if not self.tty and not force and (not changed or now - self.last_print < 10):
            return
        if self.tty and not changed and not force and now - self.last_print < 1:
            return
        self.last_print = now
        fraction = count / self.total if self.total else 1.0
        filled = int(round(self.width * min(fraction, 1.0)))
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"{self.label} [{bar}] {count}/{self.total} images, {now - self.start:.0f} s"
        if self.tty:
            self.stream.write("\r" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, count: int) -> None:
        """Final state and a newline."""
        self.update(count, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------------------------
# Running CellProfiler
# --------------------------------------------------------------------------------------------


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
    """Move a shard's label files into ``labels_dir`` and derive its per-image seconds."""
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
    # CellProfiler processes image sets in order, so writing order gives image numbers.
    order = sorted(stems, key=lambda s: (produced[s].stat().st_mtime_ns, s))
    logged = parse_image_seconds(run.log.read_text(errors="replace"))
    numbers = sorted(logged)
    if len(numbers) == len(order):
        seconds = {stem: logged[number] for stem, number in zip(order, numbers)}
    else:
        # No usable module times (other log level?): fall back to gaps between label files.
        times = [produced[s].stat().st_mtime for s in order]
        seconds = {order[0]: math.nan}
        seconds.update({s: t1 - t0 for s, t0, t1 in zip(order[1:], times, times[1:])})
    known = [v for v in seconds.values() if math.isfinite(v)]
    estimate = sum(known) + (0.0 if len(known) == len(seconds) else (np.mean(known) if known else 0.0))
    result.startup.append(max(0.0, run.wall - estimate))
    result.peak_rss.append(run.peak_rss)
    result.first_image.append(seconds[order[0]])
    result.first_stems.append(order[0])
    for stem in stems:
        shutil.move(str(produced[stem]), labels_dir / f"{stem}.tiff")
        result.seconds[stem] = seconds[stem]
        result.shard_of[stem] = run.index


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def read_prediction(path: Path, shape: tuple[int, int], pipeline: str) -> tuple[np.ndarray, str | None]:
    """Predicted labels of one image, stored back as uint16 when saved otherwise.

    Returns
    -------
    (labels, warning)
        int32 labels and a warning text (or None) about the saved file.
    """
    try:
        pred = layouts.read_labels(path)
    except ValueError as error:
        raise PipelineError(pipeline, f"unreadable predicted labels: {error}") from error
    if pred.shape != tuple(shape):
        raise PipelineError(pipeline, f"{path}: predicted labels have shape {pred.shape}, ground truth {tuple(shape)}")
    warning = None
    stored = layouts._imread(path).dtype
    if stored != np.uint16:
        if stored == np.uint8 and pred.max() == 255:
            warning = f"{path}: labels were saved as 8-bit and may have wrapped at 255; save 16-bit"
        if pred.max() > layouts.MAX_LABEL:
            raise PipelineError(pipeline, f"{path}: {pred.max()} labels do not fit 16 bits")
        layouts.write_tiff(path, pred.astype(np.uint16))
    return pred, warning


def score_pipeline(run: PipelineRun, pairs: list, labels_dir: Path, warn) -> list[dict]:
    """Per-image rows (lead columns + metric keys) of one pipeline."""
    rows = []
    for pair in pairs:
        gt = layouts.read_labels(pair.mask)
        pred, warning = read_prediction(labels_dir / f"{pair.stem}.tiff", gt.shape, run.name)
        if warning:
            warn(warning)
        scores = metric.score_image(gt, pred).to_dict()
        row = {"pipeline": run.name, "image": pair.stem, "shard": run.shard_of[pair.stem], "sec": run.seconds[pair.stem]}
        row.update(scores)
        rows.append(row)
    return rows


def summarize(run: PipelineRun, rows: list[dict]) -> dict:
    """One summary row: macro figures (mean of per-image values), micro extras, timing."""
    scores = [{k: v for k, v in r.items() if k not in PER_IMAGE_LEAD} for r in rows]
    macro = metric.aggregate_macro(scores)
    micro = metric.aggregate_micro(scores)
    seconds = np.array([r["sec"] for r in rows], dtype=float)
    finite = seconds[np.isfinite(seconds)]
    first = np.array(run.first_image, dtype=float)
    first = first[np.isfinite(first)]
    out = {"pipeline": run.name}
    for key in SUMMARY_COLUMNS[1:]:
        if key == "sec_per_image":
            out[key] = float(finite.mean()) if finite.size else math.nan
        else:
            out[key] = macro[key]
    for key in ("predicted", "precision_050", "recall_050", "mean_iou_050"):
        out[key] = macro[key]
    out["micro_f1_mean"] = micro["f1_mean"]
    for t in metric.DEFAULT_THRESHOLDS:
        out[f"micro_f1_{metric.threshold_key(t)}"] = micro[f"f1_{metric.threshold_key(t)}"]
    out["micro_error_rate_070"] = micro["error_rate_070"]
    out["sec_first_image"] = float(first.mean()) if first.size else math.nan
    out["startup_sec"] = float(np.mean(run.startup)) if run.startup else math.nan
    out["wall_sec"] = run.wall
    out["shards"] = len(run.startup)
    # Warm: images after each process's first; cold: a fresh process until its first result.
    warm = [r["sec"] for r in rows if r["image"] not in run.first_stems and math.isfinite(r["sec"])]
    out["sec_per_image_warm"] = float(np.mean(warm)) if warm else math.nan
    cold = [s + f for s, f in zip(run.startup, run.first_image) if math.isfinite(f)]
    out["sec_cold_first_image"] = float(np.mean(cold)) if cold else math.nan
    out["images_per_minute"] = 60.0 * len(rows) / run.wall if run.wall > 0 else math.nan
    out["peak_rss_mb_per_process"] = max(run.peak_rss) / 2**20 if run.peak_rss else math.nan
    out["retried_shards"] = run.retries
    return out


# --------------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------------


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON whole or not at all."""
    write_atomic(path, json.dumps(data, indent=1) + "\n")


RUN_INFO = "run.json"
WORK_PREFIX = ".work-"
OUTPUT_FILES = ("summary.csv", "per_image.csv", "report.md", RUN_INFO)
OUTPUT_DIRS = ("plots",)
PIPELINE_SUBDIRS = ("labels", "logs", "shards")
#: Written in ``OUT/<pipeline>/`` once its CellProfiler processes finished: what ``--resume`` reuses.
PIPELINE_RECORD = "finished.json"


def clean_outputs(out: Path, pipelines: list[str]) -> None:
    """Remove what a previous run left in ``out`` (only files and folders this runner writes)."""
    # summary.csv first: its presence is what marks a finished run.
    for name in OUTPUT_FILES:
        for path in (out / name, *out.glob(f".{name}.*tmp")):  # and temporaries of write_atomic
            if path.is_file() or path.is_symlink():
                path.unlink()
    for name in OUTPUT_DIRS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for work in out.glob(WORK_PREFIX + "*"):  # input copies of an interrupted cluster run
        if work.is_dir():
            shutil.rmtree(work)
    for pipeline in pipelines:
        clean_pipeline(out / pipeline)


def clean_pipeline(pipeline_out: Path) -> None:
    """Remove one pipeline's record first (so nothing half-removed looks finished), then its folders."""
    (pipeline_out / PIPELINE_RECORD).unlink(missing_ok=True)
    for sub in PIPELINE_SUBDIRS:
        if (pipeline_out / sub).is_dir():
            shutil.rmtree(pipeline_out / sub)


def code_and_models_sha256(plugins_dir: Path = PLUGINS_DIR) -> str:
    """One checksum of the plug-ins, the core package and the shipped model cards.

    The cards hold their weights' checksums, so retrained shipped models change it too;
    custom model files elsewhere do not.
    """
    import hashlib

    import nucleiseg
    from nucleiseg.cards import MODELS_DIR

    files = [*sorted(Path(plugins_dir).glob("*.py")), *sorted(Path(nucleiseg.__file__).parent.glob("*.py")),
             *sorted(Path(MODELS_DIR).rglob("*.json"))]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def pipeline_record(run: PipelineRun, cppipe: Path, data: str, stems: list[str], code_and_models: str) -> dict:
    """What a pipeline that ran leaves for ``--resume``: its timings and what its labels came from
    (``code_and_models``: :func:`code_and_models_sha256`)."""
    return {"pipeline_sha256": sha256_of(cppipe), "code_and_models_sha256": code_and_models,
            "data": data, "images": stems, "run": asdict(run)}


def reusable_run(pipeline_out: Path, name: str, cppipe: Path, data: str, stems: list[str],
                 code_and_models: str) -> PipelineRun | None:
    """The earlier run of this pipeline when the same pipeline file, code and shipped models
    (``code_and_models``: :func:`code_and_models_sha256`) ran on the same images and left every
    label file, else None."""
    try:
        record = json.loads((pipeline_out / PIPELINE_RECORD).read_text())
        run = PipelineRun(**record["run"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    same = (run.name == name and record.get("pipeline_sha256") == sha256_of(cppipe) and record.get("data") == data
            and record.get("images") == stems
            and record.get("code_and_models_sha256") == code_and_models)
    labels = pipeline_out / "labels"
    if not same or not all((labels / f"{stem}.tiff").is_file() for stem in stems):
        return None
    return run


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------
# The whole benchmark
# --------------------------------------------------------------------------------------------


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` wrote.

    Attributes
    ----------
    out : Path
        Output folder.
    summary : list of dict
        Summary rows (one per pipeline).
    per_image : list of dict
        Per-image rows.
    warnings : list of str
        Warnings raised during the run.
    """

    out: Path
    summary: list
    per_image: list
    warnings: list


def run_benchmark(
    data: str | Path,
    pipelines: list[str],
    out: Path,
    split: str | None = "val",
    workers: int | None = None,
    limit: int | None = None,
    allow_empty_masks: bool = False,
    layout: str | None = None,
    seed: int = 0,
    synthetic_n: int = 12,
    pipelines_dir: Path = PIPELINES_DIR,
    plugins_dir: Path = PLUGINS_DIR,
    quiet: bool = False,
    log=None,
    cellprofiler: Path | None = None,
    scheduler=None,
    resume: bool = False,
) -> BenchmarkResult:
    """Validate data, run each pipeline headless, score and write the output contract.

    Parameters
    ----------
    data : str or Path
        Data folder (our layout or BBBC039's) or ``"synthetic"``.
    pipelines : list of str
        Pipeline names (``pipelines/<name>.cppipe``) or ``.cppipe`` paths.
    out : Path
        Output folder (created). Must not lie inside the data folder.
    split : str, optional
        ``train`` / ``val`` / ``test``, or None / ``"all"`` for every image; a
        folder without split files uses every image (with a warning).
    workers : int, optional
        Parallel CellProfiler processes per pipeline (default ``os.cpu_count()``); with
        ``scheduler``, the number of shards (default: one per Dask worker).
    limit : int, optional
        Only the first ``limit`` images of the split.
    allow_empty_masks : bool
        Score images whose mask has no nuclei (warning) instead of failing.
    layout : str, optional
        Force ``"ours"`` or ``"bbbc039"``; detected when omitted.
    seed, synthetic_n : int
        Seed and size of the generated set when ``data == "synthetic"``.
    pipelines_dir, plugins_dir : Path
        Where named pipelines and CellProfiler plug-ins live.
    quiet : bool
        No progress bars.
    log : callable, optional
        Receives status and warning lines (default: print to stderr).
    cellprofiler : Path, optional
        CellProfiler executable (default: :func:`find_cellprofiler`).
    scheduler : str or distributed.Client, optional
        Run the shards on this Dask cluster instead of local processes. Its workers
        need this project's environment and must see the output folder (the data
        copy is made inside it), the pipelines and the plug-ins under the same paths.
    resume : bool
        Skip CellProfiler for pipelines that an earlier run into ``out`` finished with the
        same pipeline file, code and shipped models on the same images
        (:func:`reusable_run`): their label files and timings are reused and scored again.
        The others run as usual.

    Returns
    -------
    BenchmarkResult

    Raises
    ------
    nucleiseg.layouts.DataError
        Bad input data (before any pipeline runs).
    BenchmarkError
        Missing pipeline or CellProfiler, or a failed pipeline (:class:`PipelineError`).
    """
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    warnings_seen: list[str] = []

    def warn(text: str) -> None:
        warnings_seen.append(text)
        log(f"warning: {text}")

    out = Path(out).resolve()  # CellProfiler runs with another working directory
    if workers is not None and int(workers) < 1:
        raise BenchmarkError(f"--workers must be >= 1, got {workers}")
    if limit is not None and limit < 1:
        raise BenchmarkError(f"--limit must be >= 1, got {limit}")
    synthetic = str(data) == SYNTHETIC
    if not synthetic:
        data_dir = Path(data)
        if data_dir.exists() and (_inside(out, data_dir) or _inside(data_dir, out)):
            raise BenchmarkError(f"output folder {out} and data folder {data_dir} must not contain one another")
    # Stale results go before anything else can fail, so none outlives a failed run.
    if out.is_dir():
        # With resume, finished pipelines are kept until the images are known (then checked).
        clean_outputs(out, [] if resume else [Path(spec).stem for spec in pipelines])
    resolved = resolve_pipelines(list(pipelines), pipelines_dir)
    if scheduler is None:
        cellprofiler = Path(cellprofiler) if cellprofiler else find_cellprofiler()
        executor = LocalExecutor(int(workers or os.cpu_count() or 1))
    else:
        try:
            executor = DaskExecutor(scheduler, shards=workers)
        except RuntimeError as error:
            raise BenchmarkError(str(error)) from error
    out.mkdir(parents=True, exist_ok=True)

    try:
        # With a cluster the input copy must be where every worker sees it: inside OUT.
        with tempfile.TemporaryDirectory(prefix=WORK_PREFIX, dir=out if scheduler is not None else None) as tmp:
            tmp = Path(tmp)
            if synthetic:
                from nucleiseg import synthetic as synth

                data_dir = tmp / "synthetic"
                synth.generate(data_dir, n=synthetic_n, seed=seed)
                log(f"generated {synthetic_n} synthetic images (seed {seed})")
            selection, pairs = layouts.prepare(
                data_dir, tmp / "input", split=split, limit=limit,
                allow_empty_masks=allow_empty_masks, layout=layout, warn=warn,
            )
            if not pairs:
                raise layouts.DataError([f"no images selected in {data_dir} (split {split!r})"])
            shards = min(executor.slots(), len(pairs))
            log(
                f"{len(pairs)} images from {'synthetic set' if synthetic else data_dir} "
                f"(layout {selection.layout}, split {selection.split or 'all'}); "
                f"{shards} CellProfiler process(es) per pipeline on {executor.description}"
            )
            summary, per_image = [], []
            data_text = SYNTHETIC + f" (n={synthetic_n}, seed={seed})" if synthetic else str(Path(data).resolve())
            stems = [p.stem for p in pairs]
            code_and_models = code_and_models_sha256(plugins_dir)  # once: the same for every pipeline
            for name, cppipe in resolved:
                run = reusable_run(out / name, name, cppipe, data_text, stems, code_and_models) if resume else None
                if run is not None:
                    warn(f"[{name}] CellProfiler results and timings reused from the earlier run in {out / name} "
                         "(--resume); scored again")
                else:
                    clean_pipeline(out / name)
                    run = run_pipeline(
                        name, cppipe, pairs, out / name, tmp, executor,
                        cellprofiler=cellprofiler, plugins_dir=plugins_dir, quiet=quiet, warn=warn,
                    )
                    write_json_atomic(out / name / PIPELINE_RECORD, pipeline_record(run, cppipe, data_text, stems, code_and_models))
                # Scored every time, so corrected ground truth is never compared with stale scores.
                rows = score_pipeline(run, pairs, out / name / "labels", warn)
                s = summarize(run, rows)
                per_image += rows
                summary.append(s)
                log(
                    f"[{name}] F1 mean {s['f1_mean']:.3f}, F1@0.5 {s['f1_050']:.3f}, "
                    f"{s['sec_per_image']:.2f} s/image, start-up {s['startup_sec']:.1f} s"
                )

            from . import report

            metric_columns = metric.metric_keys()
            write_csv_atomic(out / "per_image.csv", PER_IMAGE_LEAD + metric_columns, per_image)
            info = {
                "data": data_text,
                "layout": selection.layout,
                "split": selection.split or "all",
                "images": len(pairs),
                "workers": shards,
                "executor": executor.description,
                "cpu_count": os.cpu_count(),
                "gpu": report.gpu_description(),
                "pipelines": {name: str(path) for name, path in resolved},
                "warnings": warnings_seen,
            }
            write_json_atomic(out / RUN_INFO, info)
            # The copies still exist here, so the report can draw example crops from them.
            report.write_report(out, summary, per_image, info, pairs={p.stem: p for p in pairs})
    finally:
        executor.close()
    # Last: summary.csv appears only when everything else is in place.
    write_csv_atomic(out / "summary.csv", SUMMARY_COLUMNS + SUMMARY_EXTRA_COLUMNS, summary)
    return BenchmarkResult(out, summary, per_image, warnings_seen)

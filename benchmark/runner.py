"""Run CellProfiler pipelines headless on a data set and score them against ground truth.

Steps of :func:`run_benchmark`, the package's entry point:

1. Remove stale outputs (``summary.csv`` first, so a failed run never leaves an
   old one that looks current).
2. Select, check and copy the data into a temporary CellProfiler input folder
   (:func:`nucleiseg.layouts.prepare`; one :class:`~nucleiseg.layouts.DataError`
   names every bad file). ``--data synthetic`` first generates the demo set of
   :mod:`nucleiseg.synthetic` into a temporary folder.
3. For each pipeline (:mod:`benchmark.pipeline_files`), run one headless
   CellProfiler per shard of the images, as local processes or as tasks on a Dask
   cluster (:mod:`benchmark.shards`, :mod:`benchmark.execution`), unless
   ``--resume`` finds an earlier run of it to reuse (:mod:`benchmark.resume`).
4. Read every predicted ``labels/<stem>.tiff``, store it as 16-bit
   ``OUT/<pipeline>/labels/<stem>.tiff``, score it (:mod:`benchmark.scoring`);
   seconds per image come from CellProfiler's logs (:mod:`benchmark.log_timing`).
5. Write ``per_image.csv``, ``run.json``, the plots and ``report.md``, and
   ``summary.csv`` last (each through a temporary name and an atomic rename).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nucleiseg import layouts, metric

from . import resume as records  # the name `resume` is run_benchmark's flag
from . import shards
from .errors import BenchmarkError
from .execution import DaskExecutor, LocalExecutor
from .outputs import write_json
from .pipeline_files import PIPELINES_DIR, PLUGINS_DIR, resolve_pipelines
from .scoring import SUMMARY_COLUMNS, SUMMARY_EXTRA_COLUMNS, score_pipeline, summarize
from .tables import PER_IMAGE_LEAD, write_csv

SYNTHETIC = "synthetic"
RUN_INFO = "run.json"
#: Prefix of the temporary input copy made inside OUT for a cluster run.
WORK_PREFIX = ".work-"
OUTPUT_FILES = ("summary.csv", "per_image.csv", "report.md", RUN_INFO)
OUTPUT_DIRS = ("plots",)
PIPELINE_SUBDIRS = ("labels", "logs", "shards")


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
    (pipeline_out / records.PIPELINE_RECORD).unlink(missing_ok=True)
    for sub in PIPELINE_SUBDIRS:
        if (pipeline_out / sub).is_dir():
            shutil.rmtree(pipeline_out / sub)


def gpu_description() -> str:
    """The GPUs ``nvidia-smi`` lists, or a note that there is none (no framework import)."""
    import subprocess

    smi = shutil.which("nvidia-smi")
    if not smi:
        return "none (CPU only)"
    try:
        done = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (nvidia-smi did not answer)"
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return ", ".join(names) if done.returncode == 0 and names else "none (CPU only)"


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


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
        CellProfiler executable (default: :func:`benchmark.shards.find_cellprofiler`).
    scheduler : str or distributed.Client, optional
        Run the shards on this Dask cluster instead of local processes. Its workers
        need this project's environment and must see the output folder (the data
        copy is made inside it), the pipelines and the plug-ins under the same paths.
    resume : bool
        Skip CellProfiler for pipelines that an earlier run into ``out`` finished with the
        same pipeline file, code and shipped models on the same images
        (:func:`benchmark.resume.reusable_run`): their label files and timings are reused
        and scored again. The others run as usual.

    Returns
    -------
    BenchmarkResult

    Raises
    ------
    nucleiseg.layouts.DataError
        Bad input data (before any pipeline runs).
    BenchmarkError
        Missing pipeline or CellProfiler, or a failed pipeline (:class:`~benchmark.errors.PipelineError`).
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
        cellprofiler = Path(cellprofiler) if cellprofiler else shards.find_cellprofiler()
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
            processes = min(executor.slots(), len(pairs))
            log(
                f"{len(pairs)} images from {'synthetic set' if synthetic else data_dir} "
                f"(layout {selection.layout}, split {selection.split or 'all'}); "
                f"{processes} CellProfiler process(es) per pipeline on {executor.description}"
            )
            summary, per_image = [], []
            data_text = SYNTHETIC + f" (n={synthetic_n}, seed={seed})" if synthetic else str(Path(data).resolve())
            stems = [p.stem for p in pairs]
            code_and_models = records.code_and_models_sha256(plugins_dir)  # once: the same for every pipeline
            for name, cppipe in resolved:
                run = records.reusable_run(out / name, name, cppipe, data_text, stems, code_and_models) if resume else None
                if run is not None:
                    warn(f"[{name}] CellProfiler results and timings reused from the earlier run in {out / name} "
                         "(--resume); scored again")
                else:
                    clean_pipeline(out / name)
                    run = shards.run_pipeline(
                        name, cppipe, pairs, out / name, tmp, executor,
                        cellprofiler=cellprofiler, plugins_dir=plugins_dir, quiet=quiet, warn=warn,
                    )
                    write_json(out / name / records.PIPELINE_RECORD,
                               records.pipeline_record(run, cppipe, data_text, stems, code_and_models))
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

            write_csv(out / "per_image.csv", PER_IMAGE_LEAD + metric.image_figure_keys(), per_image)
            info = {
                "data": data_text,
                "layout": selection.layout,
                "split": selection.split or "all",
                "images": len(pairs),
                "workers": processes,
                "executor": executor.description,
                "cpu_count": os.cpu_count(),
                "gpu": gpu_description(),
                "pipelines": {name: str(path) for name, path in resolved},
                "warnings": warnings_seen,
            }
            write_json(out / RUN_INFO, info)
            # The copies still exist here, so the report can draw example crops from them.
            report.write_report(out, summary, per_image, info, pairs={p.stem: p for p in pairs})
    finally:
        executor.close()
    # Last: summary.csv appears only when everything else is in place.
    write_csv(out / "summary.csv", SUMMARY_COLUMNS + SUMMARY_EXTRA_COLUMNS, summary)
    return BenchmarkResult(out, summary, per_image, warnings_seen)


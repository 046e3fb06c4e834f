"""What ``--resume`` may reuse: each finished pipeline's record and the checksums it holds.

Once a pipeline's CellProfiler processes have finished, the runner leaves
``OUT/<pipeline>/finished.json`` (:func:`pipeline_record`): its timings, the
``.cppipe`` file's SHA-256, one SHA-256 of the plug-ins, both packages and the
shipped model cards (:func:`code_and_models_sha256`), the data folder and the
image list. A resumed run reuses a pipeline's labels and timings only when all of
these match and every label file is there (:func:`reusable_run`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from nucleiseg.cards import MODELS_DIR, sha256_of

from .log_timing import PipelineRun
from .pipeline_files import PLUGINS_DIR

#: Written in ``OUT/<pipeline>/`` once its CellProfiler processes finished.
PIPELINE_RECORD = "finished.json"


def code_and_models_sha256(plugins_dir: Path = PLUGINS_DIR) -> str:
    """One checksum of the plug-ins, the core and CellProfiler-side packages and the shipped model cards.

    The cards hold their weights' checksums, so retrained shipped models change it too;
    custom model files elsewhere do not.

    Parameters
    ----------
    plugins_dir : Path
        Folder of the CellProfiler plug-ins.

    Returns
    -------
    str
        Hex digest.
    """
    import nucleiseg
    import nucleiseg_cellprofiler

    core = Path(nucleiseg.__file__).parent
    cellprofiler_side = Path(nucleiseg_cellprofiler.__file__).parent
    # The packages have sub-packages; each file is named by its path inside its folder.
    folders = [(Path(plugins_dir), "*.py"), (core, "**/*.py"), (cellprofiler_side, "**/*.py"),
               (Path(MODELS_DIR), "**/*.json")]
    digest = hashlib.sha256()
    for folder, pattern in folders:
        for path in sorted(folder.glob(pattern)):
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def pipeline_record(run: PipelineRun, cppipe: Path, data: str, stems: list[str], code_and_models: str) -> dict:
    """What a pipeline that ran leaves for ``--resume``.

    Parameters
    ----------
    run : PipelineRun
        Its timings.
    cppipe : Path
        The pipeline file.
    data : str
        The data folder, as ``run.json`` names it.
    stems : list of str
        The images, in order.
    code_and_models : str
        :func:`code_and_models_sha256` of the run.

    Returns
    -------
    dict
        The content of ``finished.json``.
    """
    return {"pipeline_sha256": sha256_of(cppipe), "code_and_models_sha256": code_and_models,
            "data": data, "images": stems, "run": asdict(run)}


def reusable_run(pipeline_out: Path, name: str, cppipe: Path, data: str, stems: list[str],
                 code_and_models: str) -> PipelineRun | None:
    """The earlier run of a pipeline, when it may stand for running it again.

    Parameters
    ----------
    pipeline_out : Path
        ``OUT/<pipeline>``.
    name, cppipe, data, stems, code_and_models
        As for :func:`pipeline_record`, describing the run about to happen.

    Returns
    -------
    PipelineRun or None
        The recorded run when the same pipeline file, code and shipped models ran on
        the same images and left every label file; else None (also for a missing
        or unreadable record).
    """
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

"""Which ``.cppipe`` files a run uses, and where the pipelines and plug-ins live."""

from __future__ import annotations

import os
from pathlib import Path

# One definition of where they live: the CellProfiler side's (its package root imports no CellProfiler).
from nucleiseg_cellprofiler import PIPELINES_DIR, PLUGINS_DIR

from .errors import BenchmarkError


def available_pipelines(pipelines_dir: Path = PIPELINES_DIR) -> list[str]:
    """Names of the ``.cppipe`` files in a pipelines folder, sorted.

    Parameters
    ----------
    pipelines_dir : Path
        Folder of the named pipelines.

    Returns
    -------
    list of str
    """
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
        Naming every missing pipeline and listing the available ones, or a name
        given twice, or no pipeline at all.
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

"""Errors of the benchmark runner: what stops a run, and which pipeline failed."""

from __future__ import annotations

from pathlib import Path

#: Lines of a failed shard's CellProfiler log quoted in the error.
LOG_TAIL_LINES = 40


class BenchmarkError(RuntimeError):
    """A benchmark that cannot run or did not finish; the message says what and where."""


class PipelineError(BenchmarkError):
    """A pipeline whose CellProfiler run failed.

    Parameters
    ----------
    pipeline : str
        Pipeline name.
    message : str
        What went wrong.
    log : Path, optional
        The shard's CellProfiler log; its last lines are appended to the message.

    Attributes
    ----------
    pipeline : str
        Pipeline name.
    log : Path or None
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
    """The last ``lines`` lines of a text file, indented by four spaces.

    Parameters
    ----------
    path : Path
        A text file (undecodable bytes are replaced).
    lines : int
        How many lines to keep.

    Returns
    -------
    str
    """
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join("    " + line for line in text)

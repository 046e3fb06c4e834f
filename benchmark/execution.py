"""Where CellProfiler shards run: local processes or the workers of a Dask cluster.

Both executors run the same function, :func:`run_cellprofiler`, which starts one
headless CellProfiler process, samples the memory of its process tree until it
exits and returns a :class:`ShardResult`. The runner submits one call per shard,
retries a failed shard once and stops the rest when a shard fails twice.

Stopping works through a file rather than through the executor: a shard polls
for ``stop_file`` and kills its process group when the file appears. That
reaches processes on other machines of a Dask cluster too, since the workers
must see the output folder anyway.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

#: Thread-count variables of the numerical libraries a CellProfiler child loads.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


@dataclass
class ShardResult:
    """What came of one CellProfiler process.

    Attributes
    ----------
    returncode : int
        Exit status (negative: killed by that signal).
    wall : float
        Seconds from start to exit.
    peak_rss : int
        Largest resident memory of the process and its children, in bytes, sampled
        every ``poll`` seconds (short peaks between samples can be missed).
    host : str
        Machine that ran it.
    stopped : bool
        True when it was killed because the stop file appeared.
    """

    returncode: int
    wall: float
    peak_rss: int
    host: str
    stopped: bool = False


def child_environment(threads: int | None, base: dict | None = None) -> dict[str, str]:
    """Environment of one CellProfiler child: its share of the cores, no display.

    Parameters
    ----------
    threads : int, optional
        Threads each numerical library may use; variables already set are kept.
    base : dict, optional
        Starting environment (default: this process's).
    """
    env = dict(os.environ if base is None else base)
    if threads:
        # Parallel shards already use every core; more threads per process only contend.
        for name in THREAD_VARIABLES:
            env.setdefault(name, str(max(1, int(threads))))
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["MPLBACKEND"] = "Agg"
    return env


def _tree_rss(process) -> int:
    """Resident bytes of a psutil process and its descendants (0 once gone)."""
    import psutil

    total = 0
    try:
        members = [process] + process.children(recursive=True)
    except psutil.Error:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's process group, SIGKILL it after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def resolve_cellprofiler(preferred: str | None) -> str:
    """``preferred`` when it is an executable here, else the ``cellprofiler`` of this environment."""
    if preferred and os.access(preferred, os.X_OK):
        return str(preferred)
    beside = Path(sys.executable).parent / "cellprofiler"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("cellprofiler")
    if found:
        return found
    raise FileNotFoundError(
        f"cellprofiler not found on {socket.gethostname()} (tried {preferred!r}, {beside} and PATH)"
    )


def run_cellprofiler(
    cellprofiler: str | None,
    arguments: list[str],
    log: str,
    cwd: str,
    threads: int | None = None,
    stop_file: str | None = None,
    poll: float = 0.25,
) -> ShardResult:
    """Run one headless CellProfiler process to its end.

    Parameters
    ----------
    cellprofiler : str, optional
        Executable; when it does not exist on this machine (a Dask worker elsewhere),
        the ``cellprofiler`` beside this Python or on ``PATH`` is used.
    arguments : list of str
        Arguments after the executable.
    log : str
        File that receives the command line, stdout and stderr (overwritten).
    cwd : str
        Working directory (the shard's output folder).
    threads : int, optional
        Threads per numerical library (see :func:`child_environment`).
    stop_file : str, optional
        When this file appears the process group is killed.
    poll : float
        Seconds between memory samples and stop checks.

    Returns
    -------
    ShardResult
    """
    import psutil

    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(cwd).mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        try:
            command = [resolve_cellprofiler(cellprofiler), *arguments]
        except FileNotFoundError as error:
            handle.write(f"{error}\n")
            return ShardResult(127, 0.0, 0, socket.gethostname())
        handle.write("# " + " ".join(command) + "\n")
        handle.flush()
        started = time.monotonic()
        # A new session per child lets us stop it and anything it spawned, and only that.
        proc = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=cwd, env=child_environment(threads), start_new_session=True,
        )
        watched = psutil.Process(proc.pid)
        peak, stopped = 0, False
        try:
            while proc.poll() is None:
                peak = max(peak, _tree_rss(watched))
                if stop_file and os.path.exists(stop_file):
                    stopped = True
                    _kill_group(proc)
                    break
                time.sleep(poll)
        except BaseException:
            _kill_group(proc)
            raise
        returncode = proc.wait()
    return ShardResult(returncode, time.monotonic() - started, peak, socket.gethostname(), stopped)


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------


class LocalExecutor:
    """Shards as child processes of this machine, one thread waiting on each.

    Parameters
    ----------
    workers : int
        Processes at once; each gets ``cpu_count // workers`` threads.
    """

    description = "local processes"

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="cellprofiler")

    def slots(self) -> int:
        """Shards to cut the images into."""
        return self.workers

    def submit(self, key: str, slot: int, shards: int, **kwargs):
        """Start :func:`run_cellprofiler` for shard ``slot`` of ``shards``; returns a future."""
        threads = max(1, (os.cpu_count() or 1) // max(1, shards))
        return self._pool.submit(run_cellprofiler, threads=threads, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class DaskExecutor:
    """Shards as tasks of a Dask distributed cluster.

    Each shard is pinned to one worker in turn (other workers may take it when that
    one is gone) and its CellProfiler uses as many threads as that worker has. The
    workers must have this project's environment and see the data copy, the
    pipelines, the plug-ins and the output folder under the same paths.

    Parameters
    ----------
    scheduler : str or distributed.Client
        Scheduler address (``tcp://host:8786``) or a connected client.
    shards : int, optional
        Shards to cut the images into (default: one per worker).
    """

    def __init__(self, scheduler, shards: int | None = None):
        try:
            from distributed import Client
        except ImportError as error:  # pragma: no cover - dask is in the lock
            raise RuntimeError("--scheduler needs the 'distributed' package") from error
        if isinstance(scheduler, Client):
            self.client, self._own = scheduler, False
        else:
            try:
                self.client, self._own = Client(scheduler, timeout="20s"), True
            except OSError as error:
                raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler!r}: {error}") from error
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        if not workers:
            raise RuntimeError(f"the Dask scheduler at {self.client.scheduler.address} has no workers")
        self.workers = sorted((address, int(info.get("nthreads") or 1)) for address, info in workers.items())
        self.description = f"Dask cluster {self.client.scheduler.address} ({len(self.workers)} workers)"
        self.shards = int(shards) if shards else len(self.workers)

    def slots(self) -> int:
        """Shards to cut the images into."""
        return self.shards

    def submit(self, key: str, slot: int, shards: int, **kwargs):
        address, threads = self.workers[slot % len(self.workers)]
        return self.client.submit(
            run_cellprofiler, threads=threads, key=key, pure=False,
            workers=[address], allow_other_workers=True, retries=0, **kwargs,
        )

    def close(self) -> None:
        if self._own:
            self.client.close()

"""Progress of a run: elapsed and remaining time, the log."""

from __future__ import annotations

import time
from pathlib import Path

from .config import TrainConfig


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on, for progress lines."""
    minutes, secs = divmod(int(round(max(0.0, seconds))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def seconds_left(config: TrainConfig, epochs_done: int, elapsed: float, epoch_elapsed: float, steps_done: int,
                 seconds_per_epoch: float | None = None) -> float:
    """Estimated seconds until a run stops by its epoch count or its budget (early stopping aside).

    Parameters
    ----------
    config : TrainConfig
        ``epochs``, ``steps_per_epoch`` and ``max_minutes`` of the run.
    epochs_done : int
        Epochs finished before the current one.
    elapsed : float
        Training seconds so far (the clock ``max_minutes`` is checked against).
    epoch_elapsed : float
        Seconds spent in the current epoch.
    steps_done : int
        Steps of the current epoch done (at least 1).
    seconds_per_epoch : float, optional
        Mean duration of finished epochs, validation included; without it the
        current epoch's step rate is extrapolated (validation unknown).

    Returns
    -------
    float
        Seconds: the rest of this epoch plus the further epochs that the epoch
        count allows and that start before the budget is spent (the budget is
        checked after each epoch, so the epoch that crosses it finishes).
    """
    if seconds_per_epoch:
        this_epoch = max(0.0, seconds_per_epoch - epoch_elapsed)
        per_epoch = seconds_per_epoch
    else:
        per_step = epoch_elapsed / max(1, steps_done)
        this_epoch = per_step * (config.steps_per_epoch - steps_done)
        per_epoch = per_step * config.steps_per_epoch
    further = max(0, config.epochs - epochs_done - 1)
    if config.max_minutes:
        end_of_epoch = elapsed + this_epoch
        budget = 60 * config.max_minutes
        starting_in_budget = 0 if end_of_epoch > budget else int((budget - end_of_epoch) // max(per_epoch, 1e-9)) + 1
        further = min(further, starting_in_budget)
    return this_epoch + further * per_epoch


def _log(path: Path, message: str) -> None:
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    with open(path, "a") as handle:
        handle.write(line + "\n")

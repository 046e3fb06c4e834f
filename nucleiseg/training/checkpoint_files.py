"""Where a run keeps its files in the checkpoint folder."""

from __future__ import annotations

from pathlib import Path

STATE = "state.json"  # epoch, best, history, learning rate, seconds: what resuming needs
LAST = "last.keras"  # the whole network with its optimizer, after the latest epoch
BEST = "best.weights.h5"  # the epoch that scored best on validation
AVERAGE = "average.weights.h5"  # the mean of the last epochs' weights (TrainConfig.average_last)


def epoch_weights(checkpoints: Path, epoch: int) -> Path:
    """The weights an epoch leaves behind (snapshot ensembles, weight averaging)."""
    return Path(checkpoints) / f"epoch{epoch:04d}.weights.h5"

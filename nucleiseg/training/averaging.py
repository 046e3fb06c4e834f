"""Weight averaging: the mean of a run's last epochs, with batch-norm statistics measured again.

Validation on a few dozen images swings by a few hundredths between neighbouring epochs, so
the best-scoring epoch is partly the luckiest. The mean of the weights of the last epochs of a
run at a constant or slowly decaying learning rate (stochastic weight averaging) lies nearer
the middle of the region they wander in and usually generalizes better than any one of them.
Averaged weights do not match the averaged batch-norm statistics, so those are measured anew
on training batches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import checkpoint_files
from .config import TrainConfig
from .examples import make_batch


def average_weight_files(network, paths) -> None:
    """Load into ``network`` the element-wise mean of the weight files ``paths`` (same architecture).

    Raises
    ------
    ValueError
        When ``paths`` is empty.
    FileNotFoundError
        Naming a missing weights file.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("weight averaging needs at least one weights file")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"weights file not found: {missing[0]}")
    total = None
    for path in paths:
        network.load_weights(path)
        weights = [np.asarray(w, dtype=np.float64) for w in network.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights)]
    network.set_weights([(t / len(paths)).astype(np.float32) for t in total])


def batchnorm_layers(network) -> list:
    import keras

    return [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]


def recompute_batchnorm(network, examples, config: TrainConfig, batches: int, seed: int = 0) -> int:
    """Set every batch-norm layer's moving statistics to their mean over ``batches`` training batches.

    The batches are drawn like training batches (:func:`make_batch`, with the run's augmentation).
    Each layer's statistics are reset, then updated with momentum ``(k - 1) / k`` at the ``k``-th
    batch, which makes them the running mean of the batch statistics. Returns the number of
    layers updated (0: nothing to do, the network has no batch normalization).
    """
    layers = batchnorm_layers(network)
    if not layers or batches <= 0:
        return 0
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, dtype=np.float32))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, dtype=np.float32))
    rng = np.random.default_rng([seed, 0xB47C])
    try:
        for k in range(1, batches + 1):
            for layer in layers:
                layer.momentum = (k - 1) / k
            x, _, _ = make_batch(examples, config, rng)
            network(x, training=True)
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    return len(layers)


#: Training batches whose statistics the averaged network's batch normalization takes.
BATCHNORM_BATCHES = 100


def average_run(config: TrainConfig, checkpoints: Path, state: dict, train_examples, score) -> dict:
    """Average the last ``config.average_last`` epochs of a run that left their weights, and score it.

    Writes the float32 result to ``checkpoints/average.weights.h5``. Epochs without a weights
    file (e.g. those before a resumed run asked for averaging) are skipped, so the record says
    which epochs were averaged. ``score(network)`` is the run's validation; its result is kept.

    Raises
    ------
    FileNotFoundError
        When none of the last epochs left weights.
    """
    from .. import model_types

    last = range(max(1, state["epoch"] - config.average_last + 1), state["epoch"] + 1)
    epochs = [e for e in last if checkpoint_files.epoch_weights(checkpoints, e).is_file()]
    if not epochs:
        raise FileNotFoundError(f"{checkpoints}: no epoch weights to average among epochs {last.start}-{last.stop - 1}")
    network = model_types.build(config.architecture())
    average_weight_files(network, [checkpoint_files.epoch_weights(checkpoints, e) for e in epochs])
    layers = recompute_batchnorm(network, train_examples, config, BATCHNORM_BATCHES, seed=config.seed)
    network.save_weights(Path(checkpoints) / checkpoint_files.AVERAGE)
    return {"epochs": epochs, "steps": [e * config.steps_per_epoch for e in (epochs[0], epochs[-1])],
            "batchnorm_batches": BATCHNORM_BATCHES if layers else 0, "validation": score(network)}

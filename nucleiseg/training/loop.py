"""The training loop: steps, validation, best weights, checkpoints, resume, early stopping, budget.

A run without validation (``val_split`` ``"none"``) follows its schedule to the end and ships its
last epoch: the way to train a recipe's final model on every annotated image, once the recipe
was chosen on runs that did validate.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import model_types
from ..layers import BN_MOMENTUM
from . import checkpoint_files
from .averaging import average_run
from .config import TrainConfig
from .examples import initial_weights, load_examples, make_batch, split_names
from .model_card import average_wins, export
from .progress import _log, clock, seconds_left
from .validation import validation_scores


def train_step(network, examples, config: TrainConfig, rng: np.random.Generator) -> float:
    """One optimizer step on a fresh random batch (:func:`make_batch`); returns its loss."""
    x, y, w = make_batch(examples, config, rng)
    one_hot = np.eye(len(config.model_type().classes), dtype=np.float32)[y]
    loss = network.train_on_batch(x, one_hot, sample_weight=w)
    return float(loss if np.isscalar(loss) else loss[0])


def freeze_batchnorm(network) -> None:
    """Batch normalization layers in inference mode, their statistics and scales fixed (Keras 3:
    a BatchNormalization layer that is not trainable normalizes with its moving statistics).
    Takes effect at the next compile."""
    import keras

    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def build_network(config: TrainConfig):
    """A freshly initialised network of ``config``, compiled with its optimizer and loss.

    With ``config.mixed_bfloat16`` its layers compute in bfloat16 (float32 variables); the
    global dtype policy is set for the build only and then put back as it was.
    """
    import keras

    previous = keras.mixed_precision.global_policy().name
    if config.mixed_bfloat16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        network = model_types.build(config.architecture())
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if config.freeze_batchnorm:
        freeze_batchnorm(network)
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(config.learning_rate, momentum=0.9, nesterov=True)
    else:
        optimizer = keras.optimizers.Adam(config.learning_rate)
    compile_for_training(network, optimizer)
    return network


def float32_copy(network, config: TrainConfig, into=None):
    """A float32 network of ``config`` holding ``network``'s weights, for scoring a mixed-precision network.

    Mixed-precision variables are float32 already, so the copy is exact; it computes as
    the modules do. ``into``: a copy made earlier, whose weights are replaced (its
    traced prediction functions are kept).
    """
    copy = into if into is not None else model_types.build(config.architecture())
    copy.set_weights(network.get_weights())
    return copy


def compile_for_training(network, optimizer) -> None:
    """Compile with the training loss: cross-entropy on one-hot targets (:func:`train_step`).

    One-hot rather than sparse: Keras 3.15's sparse cross-entropy fails in its backward pass
    on the PyTorch backend (``grad_input must be contiguous``) for per-pixel outputs.
    """
    import keras

    # XLA (Keras' "auto" on TensorFlow) was slower on this CPU and recompiles per image shape.
    network.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(), jit_compile=False)


def load_for_training(path: Path, config: TrainConfig):
    """A network saved whole (``network.save``, optimizer included), compiled to train on.

    Checkpoints of older runs were compiled with the sparse loss; compiling again keeps the
    optimizer's state.
    """
    import keras

    network = keras.models.load_model(path, custom_objects=model_types.custom_objects())
    if config.freeze_batchnorm:
        freeze_batchnorm(network)
    compile_for_training(network, network.optimizer)
    return network


def check_schedule(config: TrainConfig) -> None:
    """ValueError, naming the setting, for a schedule the loop cannot follow as asked.

    Without validation nothing can pick epochs, so snapshots and weight averaging (both chosen
    on validation) are refused, and so is a wall-clock budget: the schedule, not the clock,
    says where the run ends. A cosine decay needs a number of epochs to span.
    """
    unbounded = bool(config.max_minutes) or config.epochs >= TrainConfig.epochs
    if config.cosine and unbounded:
        raise ValueError(f"--cosine decays over --epochs x --steps-per-epoch: give --epochs (got {config.epochs}) "
                         "and no --max-minutes")
    if config.validates():
        return
    if config.snapshots > 1 or config.average_last:
        raise ValueError("--val none: --snapshots and --average-last choose epochs on validation; give neither")
    if unbounded:
        raise ValueError(f"--val none: the run ships its last epoch, so --epochs must say where it ends "
                         f"(got {config.epochs}) and --max-minutes must be 0")


def finished(config: TrainConfig, state: dict, stale: int, log: Path) -> bool:
    """Whether a run has stopped: ``stale`` epochs without improvement reached the patience, or
    its recorded wall-clock passed the budget (logged when so)."""
    if stale >= config.patience:
        _log(log, f"early stop: no validation improvement for {stale} epochs")
        return True
    if config.max_minutes and state["seconds"] > 60 * config.max_minutes:
        _log(log, f"wall-clock budget of {config.max_minutes} min reached")
        return True
    return False


def train(config: TrainConfig, out: Path, checkpoints: Path, resume: bool = True, network=None,
          export_last: bool = False) -> Path:
    """Train, keep the best-on-validation weights, write them with a model card.

    Parameters
    ----------
    config : TrainConfig
    out : Path
        Model path without suffix, e.g. ``models/unet/unet-dsb2018``; writes
        ``<out>.weights.h5`` and ``<out>.json``.
    checkpoints : Path
        Folder for ``last.keras`` (full model with optimizer), ``best.weights.h5``
        and ``state.json``; training resumes from it when ``resume``.
    network : keras.Model, optional
        A network from :func:`build_network` for ``config`` to train instead of building one
        (when not resuming), e.g. one whose first steps were timed: its traced training
        function is reused, which saves the first step's graph building. Its weights are
        replaced by ``init_from``'s when that is set; its optimizer state is used as it is.
    export_last : bool
        Write the last epoch instead of the best on validation (:func:`export`).

    Returns
    -------
    Path of the model card.
    """
    import keras

    check_schedule(config)
    out, checkpoints = Path(out), Path(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = checkpoints / "train.log"
    keras.utils.set_random_seed(config.seed)

    train_names, val_names, val_source = split_names(config)
    train_examples = load_examples(config.data, config.train_split, config.normalization, names=train_names)
    val_examples = load_examples(config.data, config.validation_split(), None, names=val_names) if val_names else []
    _log(log, f"{len(train_examples)} training images, {len(val_examples)} validation images ({val_source})")

    architecture = config.architecture()
    scorer = None  # with mixed bfloat16: the float32 copy that validation scores, as the modules will run it

    def validate(network) -> dict:
        nonlocal scorer
        if not config.validates():
            return {}
        if config.mixed_bfloat16:
            scorer = float32_copy(network, config, into=scorer)
        return validation_scores(scorer or network, architecture, config.normalization, val_examples, config.val_settings())

    state_path, last_path, best_path = (checkpoints / checkpoint_files.STATE, checkpoints / checkpoint_files.LAST,
                                        checkpoints / checkpoint_files.BEST)
    state = {"epoch": 0, "best_f1": -1.0, "best_epoch": -1, "history": [], "seconds": 0.0, "config": asdict(config)}
    if resume and state_path.is_file() and last_path.is_file():
        state = json.loads(state_path.read_text())
        network = load_for_training(last_path, config)
        _log(log, f"resumed at epoch {state['epoch']} (best mean F1 {state['best_f1']:.4f})")
    else:
        network = network if network is not None else build_network(config)
        if config.init_from:
            network.load_weights(initial_weights(config))
            _log(log, f"starting from the weights of {config.init_from}")
        if config.init_from and config.validates():
            # The bar a fine-tune must clear: scored once, before any step, on the same images.
            state["starting_weights"] = validate(network)
            _log(log, f"starting weights: val mean F1 {state['starting_weights']['f1_mean']:.4f} "
                      f"error@0.7 {state['starting_weights']['error_rate_070']:.4f}")

    network.jit_compile = False  # checkpoints saved before the line above
    for layer in network.layers:
        # Also for checkpoints written before BN_MOMENTUM was lowered.
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    state.setdefault("learning_rate", config.learning_rate)
    network.optimizer.learning_rate.assign(state["learning_rate"])
    rng = np.random.default_rng([config.seed, state["epoch"]])
    started = time.time() - state["seconds"]
    stale = 0 if state["best_epoch"] < 0 else state["epoch"] - 1 - state["best_epoch"]
    epoch_seconds = []  # durations of this invocation's epochs, for the time-left estimate
    # Checked before each epoch, so that the same command run again after a finished run exports
    # it without training further (a larger --max-minutes or --patience carries it on).
    while state["epoch"] < config.epochs and not finished(config, state, stale, log):
        epoch_start = time.time()
        losses = []
        for step in range(config.steps_per_epoch):
            if config.cosine:
                network.optimizer.learning_rate.assign(config.rate_at(state["epoch"] * config.steps_per_epoch + step))
            losses.append(train_step(network, train_examples, config, rng))
            if step % 10 == 0 or step == config.steps_per_epoch - 1:
                done = (step + 1) / config.steps_per_epoch
                bar = "#" * int(30 * done)
                now = time.time()
                left = seconds_left(config, state["epoch"], now - started, now - epoch_start, step + 1,
                                    float(np.mean(epoch_seconds)) if epoch_seconds else None)
                print(f"\repoch {state['epoch'] + 1} [{bar:<30}] {step + 1}/{config.steps_per_epoch} loss {np.mean(losses):.4f}"
                      f" | {clock(now - started)} elapsed, ~{clock(left)} left", end="", flush=True)
        print(flush=True)
        scores = validate(network)
        state["epoch"] += 1
        state["seconds"] = time.time() - started
        record = {"epoch": state["epoch"], "steps": state["epoch"] * config.steps_per_epoch, "loss": float(np.mean(losses)), **scores, "seconds": round(state["seconds"], 1)}
        state["history"].append(record)
        if not config.validates():
            state["best_epoch"] = state["epoch"] - 1  # the last epoch is the one shipped
            network.save_weights(best_path)
        elif scores["f1_mean"] > state["best_f1"]:
            state["best_f1"], state["best_epoch"], stale = scores["f1_mean"], state["epoch"] - 1, 0
            network.save_weights(best_path)
        else:
            stale += 1
            if stale % config.lr_patience == 0 and not config.cosine:
                # Constant-rate training plateaued noisily; halving on plateau settles it.
                state["learning_rate"] /= 2
                network.optimizer.learning_rate.assign(state["learning_rate"])
                _log(log, f"learning rate halved to {state['learning_rate']:.2e}")
        if config.snapshots > 1 or config.average_last:
            network.save_weights(checkpoint_files.epoch_weights(checkpoints, state["epoch"]))
        network.save(last_path)
        state_path.write_text(json.dumps(state, indent=1))
        epoch_seconds.append(time.time() - epoch_start)
        scored = (f" val mean F1 {scores['f1_mean']:.4f} error@0.7 {scores['error_rate_070']:.4f}" if scores else "")
        _log(log, f"epoch {state['epoch']}: loss {record['loss']:.4f}{scored} ({time.time() - epoch_start:.0f} s"
                  + (f"; best {state['best_f1']:.4f})" if scores else f"; learning rate {network.optimizer.learning_rate.numpy():.2e})"))
    if config.average_last:
        state["average"] = average_run(config, checkpoints, state, train_examples,
                                       lambda averaged: validation_scores(averaged, architecture, config.normalization,
                                                                          val_examples, config.val_settings()))
        state_path.write_text(json.dumps(state, indent=1))
        _log(log, f"mean of the weights of epochs {state['average']['epochs'][0]}-{state['average']['epochs'][-1]}: "
                  f"val mean F1 {state['average']['validation']['f1_mean']:.4f} (best single epoch {state['best_f1']:.4f}; "
                  f"shipping {'the mean' if average_wins(state) else 'the best epoch'})")
    starting = state.get("starting_weights")
    if starting and state["best_f1"] <= starting["f1_mean"]:
        _log(log, f"no epoch beat the starting weights on validation (best {state['best_f1']:.4f}, "
                  f"starting weights {starting['f1_mean']:.4f}): the exported model is not an improvement")
    return export(config, checkpoints, out, state, last=export_last)

"""Training of the 3-class networks (U-Net and DeepCell) on instance-labelled data.

One loop serves both networks: random crops with augmentation, per-pixel
weighted cross-entropy (boundary weight 10 by default), validation by the
project's object-level mean F1 after post-processing, best-on-validation
weights kept, checkpoints every epoch, resume, early stopping and a wall-clock
budget. DeepCell is trained densely: its dilated whole-image form computes,
for every pixel of a crop, exactly what the 61x61 patch network computes for
that pixel's patch, so one crop trains on tens of thousands of patches.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import augment, cards, layouts, model_types, targets
from .layers import BN_MOMENTUM
from .normalization import normalize
from .postprocess import PostprocessSettings, probabilities_to_labels


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in the model card)."""

    network: str = "unet"  # a registered model type (nucleiseg.model_types.names())
    base_filters: int = 32  # width, for model types that have one (the U-Net)
    data: str = "../shared/data/dsb2018-fluo"
    train_split: str = "train"
    val_split: str = "val"
    crop: int = 256
    batch_size: int = 4
    steps_per_epoch: int = 100
    epochs: int = 1000
    max_minutes: float = 0.0  # 0: no wall-clock budget
    patience: int = 8  # epochs without validation improvement
    lr_patience: int = 2  # epochs without improvement before the learning rate is halved
    learning_rate: float = 1e-3
    optimizer: str = "adam"  # "adam" or "sgd" (DeepCell paper: SGD 0.01, momentum 0.9, Nesterov)
    class_weights: tuple = targets.DEFAULT_CLASS_WEIGHTS
    boundary_width: int = 1
    normalization: dict = field(default_factory=lambda: {"method": "percentile", "low": 0.1, "high": 99.9})
    # Flips, gain/offset by default; AugmentationConfig.robust() adds scale and signal variation.
    augmentation: augment.AugmentationConfig = field(default_factory=augment.AugmentationConfig)
    val_images: int = 0  # 0: the whole validation split
    mixed_bfloat16: bool = False
    seed: int = 0
    snapshots: int = 1  # >1: ship the best N epochs as an ensemble (snapshot ensemble)
    # Post-processing for validation during training (PostprocessSettings fields; empty: the
    # defaults). Settings close to the ones the model will be tuned to judge epochs better.
    val_postprocess: dict = field(default_factory=dict)
    # Train (and validate) only on images whose column in the data's manifest.csv is non-empty,
    # e.g. "bbbc039_field": a model for one imaging setup.
    subset_column: str = ""
    # >0: validate on this many images held out of the training split (seeded) instead of the
    # validation split, which then stays untouched for reporting.
    holdout: int = 0
    # Model card (or weights) whose weights the network starts from: fine-tuning.
    init_from: str = ""

    def validation_split(self) -> str:
        """The split the validation images come from: the training split when held out."""
        return self.train_split if self.holdout else self.val_split

    def validation_label(self) -> str:
        """How cards and logs name where validation came from."""
        return f"{self.train_split} (held out)" if self.holdout else self.val_split

    def val_settings(self) -> PostprocessSettings:
        """Validation post-processing: the model type's defaults, overridden by ``val_postprocess``."""
        return PostprocessSettings.from_dict({**self.model_type().postprocess_defaults, **self.val_postprocess})

    def model_type(self) -> model_types.ModelType:
        return model_types.get(self.network)

    def architecture(self) -> dict:
        return self.model_type().architecture(self.base_filters)


def load_examples(data_dir: Path, split: str, normalization: dict | None, limit: int = 0, names=None):
    """(stem, image, labels) for the images of a split; images normalized unless ``normalization`` is None.

    Parameters
    ----------
    data_dir : Path
        Data folder (any layout of :mod:`nucleiseg.layouts`).
    split : str
        Split the images come from (``"all"`` for every image).
    normalization : dict or None
        Normalization applied to each image; None keeps raw images (for validation,
        where inference normalizes).
    limit : int
        Keep only the first ``limit`` images of the split (0: all).
    names : sequence of str, optional
        Explicit stems of the split to load, in this order (experiments on subsets
        of the training set); ``limit`` then applies to this list.

    Raises
    ------
    ValueError
        When ``names`` holds a stem that is not in the split.
    FileNotFoundError
        When an image of the selection has no mask.
    """
    pairs = layouts.list_pairs(Path(data_dir), split)
    if names is not None:
        by_stem = {pair.stem: pair for pair in pairs}
        unknown = [name for name in names if name not in by_stem]
        if unknown:
            raise ValueError(f"{len(unknown)} requested images are not in split {split!r} of {data_dir}: {', '.join(unknown[:5])}")
        pairs = [by_stem[name] for name in names]
    if limit:
        pairs = pairs[:limit]
    examples = []
    for pair in pairs:
        if pair.mask is None:
            raise FileNotFoundError(f"no mask for training image {pair.image}")
        image = layouts.read_image(pair.image)
        if normalization is not None:
            image = normalize(image, normalization)
        examples.append((pair.stem, image, layouts.read_labels(pair.mask)))
    return examples


def split_names(config: TrainConfig) -> tuple[list[str], list[str], str]:
    """Stems of the training and the validation images of a run, and where validation comes from.

    Applies ``subset_column`` (manifest rows with that column non-empty), then
    ``holdout`` (a seeded random choice of training images moved to
    validation) or else ``val_images`` (the first N of the validation split).

    Raises
    ------
    ValueError
        Naming the setting, when the manifest lacks the column, no image is
        left for training or validation, or the holdout is not smaller than
        the training set.
    """
    data = Path(config.data)

    def stems(split: str) -> list[str]:
        if config.subset_column:
            return [pair.stem for pair in layouts.marked_pairs(data, split, config.subset_column)]
        return [pair.stem for pair in layouts.list_pairs(data, split)]

    train_names = stems(config.train_split)
    if config.holdout:
        if not 0 < config.holdout < len(train_names):
            raise ValueError(f"holdout {config.holdout}: must be between 1 and {len(train_names) - 1} (training images: {len(train_names)})")
        chosen = set(np.random.default_rng(config.seed).choice(len(train_names), config.holdout, replace=False).tolist())
        val_names = [name for i, name in enumerate(train_names) if i in chosen]
        train_names = [name for i, name in enumerate(train_names) if i not in chosen]
        return train_names, val_names, config.validation_label()
    val_names = stems(config.val_split)
    if config.val_images:
        val_names = val_names[: config.val_images]
    return train_names, val_names, config.validation_label()


def initial_weights(config: TrainConfig) -> Path:
    """The checked weights file of ``config.init_from``; its architecture must be the run's.

    Raises
    ------
    nucleiseg.cards.ModelError
        When the card is missing or bad, the checksum does not match, the card
        is an ensemble, or its architecture differs from the run's.
    """
    members = cards.verify(Path(config.init_from))
    if len(members) != 1:
        raise cards.ModelError(f"{config.init_from}: an ensemble of {len(members)} networks; start from one of its member cards")
    card_path, card = members[0]
    if card["architecture"] != config.architecture():
        raise cards.ModelError(f"{card_path}: architecture {card['architecture']} differs from this run's {config.architecture()}")
    return card_path.parent / card["weights"]


def make_batch(examples, config: TrainConfig, rng: np.random.Generator):
    """One batch: inputs (B, crop+2m, crop+2m, 1), classes (B, crop, crop), weights (B, crop, crop)."""
    model_type = config.model_type()
    margin = model_type.margin
    augmentation = config.augmentation
    inputs, classes, weights = [], [], []
    for _ in range(config.batch_size):
        _, image, labels = examples[int(rng.integers(len(examples)))]
        image, labels = augment.augment_crop(image, labels, config.crop, margin, augmentation, rng)
        if margin:
            labels = labels[margin:-margin, margin:-margin]
        target = model_type.training_targets(labels, config.boundary_width)
        inputs.append(image[..., None])
        classes.append(target)
        weights.append(targets.class_weight_map(target, config.class_weights))
    return np.stack(inputs).astype(np.float32), np.stack(classes), np.stack(weights)


def train_step(network, examples, config: TrainConfig, rng: np.random.Generator) -> float:
    """One optimizer step on a fresh random batch (:func:`make_batch`); returns its loss."""
    x, y, w = make_batch(examples, config, rng)
    one_hot = np.eye(len(config.model_type().classes), dtype=np.float32)[y]
    loss = network.train_on_batch(x, one_hot, sample_weight=w)
    return float(loss if np.isscalar(loss) else loss[0])


def score_examples(network, architecture: dict, normalization: dict, examples, settings: PostprocessSettings | None = None) -> list[dict]:
    """Per-image scores (:meth:`nucleiseg.metric.ImageScores.to_dict`) of a network on full raw images.

    ``examples`` are ``(stem, raw image, labels)`` as from :func:`load_examples` with
    ``normalization=None``; the network goes through the one inference path
    (:func:`nucleiseg.inference.segment`: tiled, normalized with ``normalization``,
    post-processed with ``settings``, defaults when None).
    """
    from . import metric
    from .inference import segment

    wrapped = cards.LoadedModel([{"architecture": architecture, "normalization": normalization}], [network], Path("."))
    return [metric.score_image(labels, segment(image, wrapped, settings)[1]).to_dict() for _, image, labels in examples]


def validation_scores(network, architecture: dict, normalization: dict, examples, settings: PostprocessSettings | None = None) -> dict:
    """Macro mean F1 and error rate at IoU 0.7 of a network on full raw images."""
    rows = score_examples(network, architecture, normalization, examples, settings)
    return {
        "f1_mean": float(np.mean([r["f1_mean"] for r in rows])),
        "error_rate_070": float(np.mean([r["error_rate_070"] for r in rows])),
        "images": len(rows),
    }


def build_network(config: TrainConfig):
    """A freshly initialised network of ``config``, compiled with its optimizer and loss."""
    import keras

    network = model_types.build(config.architecture())
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(config.learning_rate, momentum=0.9, nesterov=True)
    else:
        optimizer = keras.optimizers.Adam(config.learning_rate)
    compile_for_training(network, optimizer)
    return network


def compile_for_training(network, optimizer) -> None:
    """Compile with the training loss: cross-entropy on one-hot targets (:func:`train_step`).

    One-hot rather than sparse: Keras 3.15's sparse cross-entropy fails in its backward pass
    on the PyTorch backend (``grad_input must be contiguous``) for per-pixel outputs.
    """
    import keras

    # XLA (Keras' "auto" on TensorFlow) was slower on this CPU and recompiles per image shape.
    network.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(), jit_compile=False)


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


def train(config: TrainConfig, out: Path, checkpoints: Path, resume: bool = True, network=None) -> Path:
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

    Returns
    -------
    Path of the model card.
    """
    import keras

    out, checkpoints = Path(out), Path(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = checkpoints / "train.log"
    keras.utils.set_random_seed(config.seed)
    if config.mixed_bfloat16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    train_names, val_names, val_source = split_names(config)
    train_examples = load_examples(config.data, config.train_split, config.normalization, names=train_names)
    val_examples = load_examples(config.data, config.validation_split(), None, names=val_names)
    _log(log, f"{len(train_examples)} training images, {len(val_examples)} validation images ({val_source})")

    state_path, last_path, best_path = checkpoints / "state.json", checkpoints / "last.keras", checkpoints / "best.weights.h5"
    architecture = config.architecture()
    state = {"epoch": 0, "best_f1": -1.0, "best_epoch": -1, "history": [], "seconds": 0.0, "config": asdict(config)}
    if resume and state_path.is_file() and last_path.is_file():
        state = json.loads(state_path.read_text())
        network = keras.models.load_model(last_path, custom_objects=model_types.custom_objects())
        # Checkpoints of older runs were compiled with the sparse loss; the optimizer keeps its state.
        compile_for_training(network, network.optimizer)
        _log(log, f"resumed at epoch {state['epoch']} (best mean F1 {state['best_f1']:.4f})")
    else:
        network = network if network is not None else build_network(config)
        if config.init_from:
            network.load_weights(initial_weights(config))
            _log(log, f"starting from the weights of {config.init_from}")
            # The bar a fine-tune must clear: scored once, before any step, on the same images.
            state["starting_weights"] = validation_scores(network, architecture, config.normalization,
                                                          val_examples, config.val_settings())
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
    while state["epoch"] < config.epochs:
        epoch_start = time.time()
        losses = []
        for step in range(config.steps_per_epoch):
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
        scores = validation_scores(network, architecture, config.normalization, val_examples, config.val_settings())
        state["epoch"] += 1
        state["seconds"] = time.time() - started
        record = {"epoch": state["epoch"], "steps": state["epoch"] * config.steps_per_epoch, "loss": float(np.mean(losses)), **scores, "seconds": round(state["seconds"], 1)}
        state["history"].append(record)
        if scores["f1_mean"] > state["best_f1"]:
            state["best_f1"], state["best_epoch"], stale = scores["f1_mean"], state["epoch"] - 1, 0
            network.save_weights(best_path)
        else:
            stale += 1
            if stale % config.lr_patience == 0:
                # Constant-rate training plateaued noisily; halving on plateau settles it.
                state["learning_rate"] /= 2
                network.optimizer.learning_rate.assign(state["learning_rate"])
                _log(log, f"learning rate halved to {state['learning_rate']:.2e}")
        if config.snapshots > 1:
            network.save_weights(checkpoints / f"epoch{state['epoch']:04d}.weights.h5")
        network.save(last_path)
        state_path.write_text(json.dumps(state, indent=1))
        epoch_seconds.append(time.time() - epoch_start)
        _log(log, f"epoch {state['epoch']}: loss {record['loss']:.4f} val mean F1 {scores['f1_mean']:.4f} "
                  f"error@0.7 {scores['error_rate_070']:.4f} ({time.time() - epoch_start:.0f} s; best {state['best_f1']:.4f})")
        if stale >= config.patience:
            _log(log, f"early stop: no validation improvement for {stale} epochs")
            break
        if config.max_minutes and state["seconds"] > 60 * config.max_minutes:
            _log(log, f"wall-clock budget of {config.max_minutes} min reached")
            break
    starting = state.get("starting_weights")
    if starting and state["best_f1"] <= starting["f1_mean"]:
        _log(log, f"no epoch beat the starting weights on validation (best {state['best_f1']:.4f}, "
                  f"starting weights {starting['f1_mean']:.4f}): the exported model is not an improvement")
    return export(config, checkpoints, out, state)


def export(config: TrainConfig, checkpoints: Path, out: Path, state: dict) -> Path:
    """Write the best weights (or the best ``snapshots`` epochs, as an ensemble) with model cards."""
    checkpoints, out = Path(checkpoints), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if config.snapshots <= 1:
        best = next((h for h in state["history"] if h["epoch"] == state["best_epoch"] + 1), {})
        return _export_one(config, checkpoints / "best.weights.h5", out, state, best)
    ranked = sorted(state["history"], key=lambda h: h["f1_mean"], reverse=True)
    ranked = [h for h in ranked if (checkpoints / f"epoch{h['epoch']:04d}.weights.h5").is_file()][: config.snapshots]
    member_files = []
    for index, record in enumerate(sorted(ranked, key=lambda h: h["epoch"]), start=1):
        member_out = out.with_name(f"{out.name}-{index}")
        _export_one(config, checkpoints / f"epoch{record['epoch']:04d}.weights.h5", member_out, state, record,
                    member_of=f"{out.name}.json")
        member_files.append(f"{member_out.name}.json")
    description = (f"snapshot ensemble: the {len(member_files)} epochs of one training run that scored best on validation; "
                   "probabilities are averaged")
    first = cards.read_card(out.parent / member_files[0])
    card = {
        **cards.ensemble_card(out.name, member_files, first, description, config.val_settings().to_dict()),
        "training": {"data": str(config.data), "split": config.train_split, **_selection_record(config, state),
                     "epochs": state["epoch"], "steps": state["epoch"] * config.steps_per_epoch,
                     "wall_seconds": round(state["seconds"])},
        "history": state["history"],
    }
    return cards.save_card(card, Path(f"{out}.json"))


def _selection_record(config: TrainConfig, state: dict | None = None) -> dict:
    """What a card says about the images a run used and the weights it started from (with their
    validation score before training, when the run recorded it)."""
    train_names, val_names, _ = split_names(config)
    record = {"images": len(train_names)}
    if config.subset_column:
        record["subset_column"] = config.subset_column
    if config.holdout:
        record["held_out_for_validation"] = val_names
    if config.init_from:
        weights = initial_weights(config)
        record["initial_weights"] = {"file": weights.name, "sha256": cards.sha256_of(weights)}
        if state and "starting_weights" in state:
            record["initial_weights"]["validation"] = state["starting_weights"]
    return record


def training_hardware() -> str:
    """What ran the training, for the card: the accelerator Keras' backend uses, else the CPU."""
    import keras

    cpu = f"{platform.processor() or platform.machine()}, CPU"
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            return cpu if device.platform == "cpu" else f"{device.device_kind} ({device.platform}, JAX)"
        if backend == "torch":
            import torch

            return f"{torch.cuda.get_device_name(0)} (CUDA, PyTorch)" if torch.cuda.is_available() else cpu
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return f"{gpus[0].name} (TensorFlow)" if gpus else cpu
    except Exception as error:  # a broken accelerator stack should not lose a finished run's card
        return f"{cpu} (accelerator query failed: {type(error).__name__})"
    return cpu


def member_record(ensemble_card: str) -> dict:
    """What a member card says about the ensemble it belongs to."""
    return {"ensemble": ensemble_card,
            "note": "this card's postprocess is the one validation used during training; "
                    "the ensemble card holds the settings tuned for the averaged probabilities"}


def _export_one(config: TrainConfig, source: Path, out: Path, state: dict, best: dict, member_of: str = "") -> Path:
    import keras

    weights = Path(f"{out}.weights.h5")
    network = model_types.build(config.architecture())
    network.load_weights(source)  # float32 copy of that epoch
    network.save_weights(weights)
    card = {
        "name": Path(out).name,
        "architecture": config.architecture(),
        "parameters": int(network.count_params()),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "normalization": config.normalization,
        "classes": list(config.model_type().classes),
        "targets": {"boundary_width": config.boundary_width, "definition": config.model_type().targets_definition},
        "postprocess": config.val_settings().to_dict(),  # what epochs were judged with; tune_postprocess refines it
        "training": {
            "data": str(config.data),
            "split": config.train_split,
            **_selection_record(config, state),
            "epochs": state["epoch"],
            "best_epoch": state["best_epoch"] + 1,
            "steps": state["epoch"] * config.steps_per_epoch,
            "steps_of_best": (state["best_epoch"] + 1) * config.steps_per_epoch,
            "crops_seen": state["epoch"] * config.steps_per_epoch * config.batch_size,
            "crop": config.crop,
            "batch_size": config.batch_size,
            "optimizer": config.optimizer,
            "learning_rate": config.learning_rate,
            "loss": f"per-pixel weighted categorical cross-entropy, class weights {list(config.class_weights)}",
            "augmentation": {"random_crop": config.crop, **config.augmentation.to_dict()},
            "mixed_bfloat16": config.mixed_bfloat16,
            "seed": config.seed,
            "wall_seconds": round(state["seconds"]),
            "hardware": training_hardware(),
        },
        "validation": {"split": config.validation_label(), "during_training": best,
                       "during_training_postprocess": config.val_settings().to_dict()},
        "history": state["history"],
    }
    if member_of:
        card["member_of"] = member_record(member_of)
    return cards.write_card(card, weights)

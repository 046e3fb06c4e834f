"""Writing a finished run's weights with their model card (one network, or a snapshot ensemble)."""

from __future__ import annotations

import platform
from pathlib import Path

from .. import cards, model_types, nucleus_size
from . import checkpoint_files
from .config import TrainConfig
from .examples import initial_weights, split_names


def export(config: TrainConfig, checkpoints: Path, out: Path, state: dict, last: bool = False) -> Path:
    """Write the best weights (or the best ``snapshots`` epochs, as an ensemble) with model cards.

    With ``config.average_last`` the mean of the last epochs is shipped when it scores at least
    as well on validation as the best single epoch, else that epoch; the card records both.
    With ``last`` the last epoch is written instead, whatever validation said: what the same
    schedule run without validation (on every image) ships, so a train-only run can be scored
    as that one will be.
    """
    checkpoints, out = Path(checkpoints), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if last:
        if not state["history"]:
            raise ValueError(f"{checkpoints}: no finished epoch to export")
        return _export_one(config, checkpoints / checkpoint_files.LAST, out, state, state["history"][-1], last=True)
    best = next((h for h in state["history"] if h["epoch"] == state["best_epoch"] + 1), {})
    if config.average_last and "average" in state and average_wins(state):
        return _export_one(config, checkpoints / checkpoint_files.AVERAGE, out, state, state["average"]["validation"])
    if config.snapshots <= 1:
        return _export_one(config, checkpoints / checkpoint_files.BEST, out, state, best)
    ranked = sorted(state["history"], key=lambda h: h["f1_mean"], reverse=True)
    ranked = [h for h in ranked if checkpoint_files.epoch_weights(checkpoints, h["epoch"]).is_file()][: config.snapshots]
    member_files = []
    for index, record in enumerate(sorted(ranked, key=lambda h: h["epoch"]), start=1):
        member_out = out.with_name(f"{out.name}-{index}")
        _export_one(config, checkpoint_files.epoch_weights(checkpoints, record["epoch"]), member_out, state, record,
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


def average_wins(state: dict) -> bool:
    """Whether a run's averaged weights (``state["average"]``) score at least its best epoch on validation.

    Both were judged on the same validation images with the same post-processing, so this is
    the same kind of choice as picking the best epoch.
    """
    return state["average"]["validation"]["f1_mean"] >= state["best_f1"]


def _nucleus_diameters(config: TrainConfig) -> dict:
    """The card's ``nucleus_diameters``: the training images' range, widened to the starting model's.

    A fine-tuned network keeps handling the nuclei sizes it learned first, so its range is the
    union of both (the median stays that of its own training images).
    """
    record = nucleus_size.record_for(config.data, config.train_split, config.subset_column, names=split_names(config)[0])
    if config.init_from:
        first = cards.nucleus_diameters(config.init_from)
        if first is not None:
            record = {**record, "low": min(record["low"], first.low), "high": max(record["high"], first.high),
                      "widened_to": f"the range of the starting model {Path(config.init_from).name}"}
    return record


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


def network_fields(config: TrainConfig, network, postprocess: dict, nucleus_diameters: dict) -> dict:
    """The fields every card of one trained network starts with: what it is, what it expects
    (normalization, classes, targets) and how its probabilities become nuclei."""
    import keras

    return {
        "architecture": config.architecture(),
        "parameters": int(network.count_params()),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "normalization": config.normalization,
        "classes": list(config.model_type().classes),
        "targets": {"boundary_width": config.boundary_width, "definition": config.model_type().targets_definition},
        "postprocess": postprocess,
        "nucleus_diameters": nucleus_diameters,
    }


def recipe_fields(config: TrainConfig) -> dict:
    """The card's record of how a run trained (the same for every run of one config)."""
    return {
        "crop": config.crop,
        "batch_size": config.batch_size,
        "optimizer": config.optimizer,
        "learning_rate": config.learning_rate,
        "learning_rate_schedule": ("cosine decay to 0 over every step" if config.cosine else
                                   "halved after --lr-patience epochs without validation gain"
                                   if config.validates() else "constant"),
        "loss": f"per-pixel weighted categorical cross-entropy, class weights {list(config.class_weights)}" + (
            f"; pixels of whole nuclei under {config.small_nucleus_area} px of a crop weigh "
            f"{config.small_nucleus_weight:g} times more" if config.small_nucleus_weight != 1 else ""),
        "small_nucleus_weight": {"weight": config.small_nucleus_weight, "area_below": config.small_nucleus_area},
        "augmentation": {"random_crop": config.crop, **config.augmentation.to_dict()},
        "mixed_bfloat16": config.mixed_bfloat16,
        "freeze_batchnorm": config.freeze_batchnorm,
        "seed": config.seed,
    }


def experiment_card(config: TrainConfig, weights: Path, train_names: list[str], steps: int, wall_seconds: float,
                    postprocess: dict, experiment: dict, hardware: str | None = None) -> Path:
    """Write the card of an experiment's model (:mod:`benchmark.experiments`) beside its weights.

    Such a model trains for a fixed number of steps on an explicit list of images, without
    validation; with its card it loads, segments and is tuned (:mod:`nucleiseg.tune_postprocess`)
    like any other model.

    Parameters
    ----------
    config : TrainConfig
        The run's config (``steps_per_epoch`` x ``epochs`` need not be ``steps``).
    weights : Path
        The model's ``.weights.h5``; the card is written beside it (``NAME.json``).
    train_names : list of str
        Stems of the images it trained on, from ``config.train_split``.
    steps : int
        Optimizer steps it took.
    wall_seconds : float
        Training seconds, over every session that trained it.
    postprocess : dict
        The post-processing its experiment scored it with.
    experiment : dict
        Where it comes from (the experiment's output folder, the model's name there, its schedule),
        recorded as is.
    hardware : str, optional
        What trained it; default: this machine (:func:`training_hardware`), right only when the
        card is written by the run itself.
    """
    weights = Path(weights)
    network = model_types.build(config.architecture())
    network.load_weights(weights)  # a file of another architecture fails here, before anything is written
    diameters = nucleus_size.record_for(config.data, config.train_split, config.subset_column, names=train_names)
    card = {
        "name": cards.card_path_for(weights).stem,
        **network_fields(config, network, dict(postprocess), diameters),
        "training": {
            "data": str(config.data),
            "split": config.train_split,
            "images": len(train_names),
            "steps": int(steps),
            "crops_seen": int(steps) * config.batch_size,
            **recipe_fields(config),
            "wall_seconds": round(wall_seconds),
            "hardware": hardware or training_hardware(),
            "experiment": experiment,
        },
        "validation": {"split": "none (an experiment's model: a fixed number of steps, the last weights kept)",
                       "note": "scored by its experiment on images outside its training list (the experiment "
                               "folder's results.csv); postprocess is the one the experiment scored it with"},
    }
    return cards.write_card(card, weights)


def _export_one(config: TrainConfig, source: Path, out: Path, state: dict, best: dict, member_of: str = "",
                last: bool = False) -> Path:
    weights = Path(f"{out}.weights.h5")
    network = model_types.build(config.architecture())
    network.load_weights(source)  # float32 copy of that epoch (the weights of a whole-model .keras too)
    network.save_weights(weights)
    card = {
        "name": Path(out).name,
        # postprocess: what epochs were judged with; tune_postprocess refines it
        **network_fields(config, network, config.val_settings().to_dict(), _nucleus_diameters(config)),
        "training": {
            "data": str(config.data),
            "split": config.train_split,
            **_selection_record(config, state),
            "epochs": state["epoch"],
            "best_epoch": state["best_epoch"] + 1,
            "steps": state["epoch"] * config.steps_per_epoch,
            "steps_of_best": (state["best_epoch"] + 1) * config.steps_per_epoch,
            "crops_seen": state["epoch"] * config.steps_per_epoch * config.batch_size,
            **recipe_fields(config),
            "wall_seconds": round(state["seconds"]),
            "hardware": training_hardware(),
        },
        "validation": ({"split": config.validation_label(), "during_training": best,
                        "during_training_postprocess": config.val_settings().to_dict()} if config.validates() else
                       {"split": config.validation_label(),
                        "note": "no validation during training: every choice of the recipe was made on runs that "
                                "validated; score this model only on images outside its training split"}),
        "history": state["history"],
    }
    if config.average_last and "average" in state:
        average = state["average"]
        described = (f"mean of the weights of epochs {average['epochs'][0]}-{average['epochs'][-1]} "
                     f"({len(average['epochs'])} epochs), batch-norm statistics from "
                     f"{average['batchnorm_batches']} training batches")
        if source.name == checkpoint_files.AVERAGE:
            card["training"]["weights"] = described
            card["training"]["average"] = {k: v for k, v in average.items() if k != "validation"}
        else:
            card["training"]["weights"] = (f"epoch {state['best_epoch'] + 1}, the best on validation; the {described} "
                                           f"scored lower (mean F1 {average['validation']['f1_mean']:.4f} against "
                                           f"{state['best_f1']:.4f}) and is not shipped")
            card["training"]["average"] = {**average, "shipped": False}
    if last:
        card["training"]["weights"] = (f"epoch {state['epoch']}, the last (exported with --export-last, as a fixed "
                                       f"schedule ships); the best on validation was epoch {state['best_epoch'] + 1}")
    if member_of:
        card["member_of"] = member_record(member_of)
    return cards.write_card(card, weights)


def record_invocation(card_path: Path, command: str, postprocess_from: str = "") -> Path:
    """Add the command that trained a model, and the card its post-processing came from, to its card.

    A card then says how to train its model again, and a shipped copy
    (:mod:`nucleiseg.training.promote`) can name the card where its post-processing was tuned.
    Ensemble cards record it in every member.
    """
    path = cards.card_path_for(card_path)
    records = [(path, cards.read_card(path))]
    if "members" in records[0][1]:
        records += cards.member_cards(path)
    for where, card in records:
        if "training" in card:
            card = dict(card, training=dict(card["training"], command=command))
        if postprocess_from:
            card["postprocess_from"] = postprocess_from
        cards.save_card(card, where)
    return Path(card_path)


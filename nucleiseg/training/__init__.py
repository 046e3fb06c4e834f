"""Training of the 3-class networks (U-Net and DeepCell) on instance-labelled data.

One loop serves both networks: random crops with augmentation, per-pixel
weighted cross-entropy (boundary weight 10 by default), validation by the
project's object-level mean F1 after post-processing, best-on-validation
weights kept (or, without validation, a fixed schedule's last epoch), checkpoints
every epoch, resume, early stopping and a wall-clock budget. DeepCell is trained
densely: its dilated whole-image form computes, for every pixel of a crop,
exactly what the 61x61 patch network computes for that pixel's patch, so one
crop trains on tens of thousands of patches.

The modules: :mod:`.config` (:class:`TrainConfig`), :mod:`.examples` (images and batches),
:mod:`.validation` (scoring during training), :mod:`.progress` (time left, the log),
:mod:`.loop` (:func:`train`), :mod:`.checkpoint_files` (the checkpoint folder),
:mod:`.averaging` (shipping the mean of the last epochs) and :mod:`.model_card` (writing the result). Import from here.
"""

from __future__ import annotations

from . import checkpoint_files
from .averaging import average_run, average_weight_files, recompute_batchnorm
from .config import NO_VALIDATION, TrainConfig, cosine_rate
from .examples import hold_out, initial_weights, load_examples, make_batch, split_names
from .loop import build_network, check_schedule, compile_for_training, float32_copy, freeze_batchnorm, load_for_training, train, train_step
from .model_card import experiment_card, export, member_record, training_hardware
from .progress import clock, seconds_left
from .validation import score_examples, score_model, validation_scores

__all__ = [
    "NO_VALIDATION",
    "TrainConfig",
    "average_run",
    "average_weight_files",
    "checkpoint_files",
    "recompute_batchnorm",
    "build_network",
    "check_schedule",
    "clock",
    "compile_for_training",
    "cosine_rate",
    "float32_copy",
    "experiment_card",
    "export",
    "freeze_batchnorm",
    "hold_out",
    "initial_weights",
    "load_examples",
    "make_batch",
    "member_record",
    "score_examples",
    "score_model",
    "seconds_left",
    "split_names",
    "train",
    "train_step",
    "training_hardware",
    "validation_scores",
]

"""What defines a training run: :class:`TrainConfig`, recorded in the model card."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import augment, model_types, targets
from ..postprocess import PostprocessSettings

#: ``val_split`` of a run without validation: a fixed schedule whose last epoch is shipped.
NO_VALIDATION = "none"


def cosine_rate(base: float, step: int, total: int) -> float:
    """The learning rate of step ``step`` (0-based) of ``total`` steps decaying from ``base`` to 0
    along half a cosine."""
    return float(base * 0.5 * (1 + np.cos(np.pi * step / total)))


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in the model card)."""

    network: str = "unet"  # a registered model type (nucleiseg.model_types.names())
    base_filters: int = 0  # width, for model types that have one (the U-Net); 0: the model type's default
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
    # >0: ship the mean of the weights of the run's last N epochs (batch-norm statistics measured
    # again on training batches) instead of the best epoch: nucleiseg.training.averaging.
    average_last: int = 0
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
    # Batch normalization keeps the starting weights' statistics and scales (inference mode)
    # instead of learning from batches of a few crops of a few images: for fine-tuning.
    freeze_batchnorm: bool = False
    # Learning rate decays to 0 along half a cosine over epochs x steps_per_epoch (no halving on
    # plateau): the last weights are a settled point, which a run without validation ships.
    cosine: bool = False
    # Loss weight of the pixels of whole nuclei under small_nucleus_area pixels in a crop (1: off):
    # the network is asked to find small nuclei, which a per-pixel loss barely sees.
    small_nucleus_weight: float = 1.0
    small_nucleus_area: int = 250

    def __post_init__(self):
        if self.small_nucleus_weight < 1 or self.small_nucleus_area < 1:
            raise ValueError(f"--small-nucleus-weight {self.small_nucleus_weight:g} / --small-nucleus-area "
                             f"{self.small_nucleus_area}: the weight must be >= 1 and the area >= 1 px")

    def validates(self) -> bool:
        """Whether the run scores epochs on validation images (else it ships its last epoch)."""
        return bool(self.holdout) or self.val_split != NO_VALIDATION

    def rate_at(self, step: int) -> float:
        """The learning rate of global step ``step`` under ``cosine`` (the base rate otherwise)."""
        if not self.cosine:
            return self.learning_rate
        return cosine_rate(self.learning_rate, step, self.epochs * self.steps_per_epoch)

    def validation_split(self) -> str:
        """The split the validation images come from: the training split when held out."""
        return self.train_split if self.holdout else self.val_split

    def validation_label(self) -> str:
        """How cards and logs name where validation came from."""
        if not self.validates():
            return "none (fixed schedule, the last epoch is shipped)"
        return f"{self.train_split} (held out)" if self.holdout else self.val_split

    def val_settings(self) -> PostprocessSettings:
        """Validation post-processing: the model type's defaults, overridden by ``val_postprocess``."""
        return PostprocessSettings.from_dict({**self.model_type().postprocess_defaults, **self.val_postprocess})

    def model_type(self) -> model_types.ModelType:
        return model_types.get(self.network)

    def architecture(self) -> dict:
        return self.model_type().architecture(self.base_filters)

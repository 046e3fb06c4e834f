"""The images a run trains and validates on, and the batches it draws from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import augment, cards, layouts, targets
from ..normalization import normalize
from .config import TrainConfig


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


def hold_out(names: list[str], count: int, seed: int) -> tuple[list[str], list[str]]:
    """``(kept, held)``: ``count`` of ``names`` chosen by ``seed`` and the rest, each in the order given."""
    chosen = set(np.random.default_rng(seed).choice(len(names), count, replace=False).tolist())
    return [n for i, n in enumerate(names) if i not in chosen], [n for i, n in enumerate(names) if i in chosen]


def split_names(config: TrainConfig) -> tuple[list[str], list[str], str]:
    """Stems of the training and the validation images of a run, and where validation comes from.

    Applies ``subset_column`` (manifest rows with that column non-empty), then
    ``holdout`` (a seeded random choice of training images moved to
    validation) or else ``val_images`` (the first N of the validation split).
    A run without validation (``val_split`` ``"none"``) has no validation images.

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
        train_names, val_names = hold_out(train_names, config.holdout, config.seed)
        return train_names, val_names, config.validation_label()
    if not config.validates():
        return train_names, [], config.validation_label()
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
    # Training reads only the Keras weights: a card copied beside other files need not carry its ONNX file.
    members = cards.verify(Path(config.init_from), onnx=False)
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
        weight = targets.class_weight_map(target, config.class_weights)
        if config.small_nucleus_weight != 1:
            weight = weight * targets.small_nucleus_weight_map(labels, config.small_nucleus_area, config.small_nucleus_weight)
        weights.append(weight)
    return np.stack(inputs).astype(np.float32), np.stack(classes), np.stack(weights)

"""Fine-tune a segmentation model on a few of your own annotated images: one command.

``python -m nucleiseg.finetune --images DIR --masks DIR --out DIR/NAME [--init CARD] [--minutes 15]``

Images and instance-label masks are paired by file stem (``a.tif`` with ``a.png``). Everything
is checked before any training starts; one error names every bad file or setting and nothing is
written. Then, starting from the shipped general U-Net (or ``--init``):

1. about 20 % of the images (at least one) are held out, chosen by the seed; a single image is
   split instead, a strip at the end of its longer side held out (:func:`split_single_image`);
2. the starting model is scored on them with its card's post-processing (``--from-scratch``:
   no starting weights, only the starting card's architecture and normalization);
3. it is trained on the others with the robust augmentation
   (:meth:`nucleiseg.augment.AugmentationConfig.robust`) within the time budget, the held-out
   images choosing the best epoch (:func:`nucleiseg.training.train`);
4. its post-processing is chosen on the training images: the result of
   :mod:`nucleiseg.tune_postprocess`'s search, or the starting model's settings when those
   score at least as well there;
5. the fine-tuned model is scored on the held-out images with those settings, and whichever of
   the two models scored higher is written to ``<out>.json`` and ``<out>.weights.h5``: a model
   card that ClassifyBoundariesUNet's *Custom model file* (or ClassifyPixelsDeepCell's, for a
   DeepCell start) accepts, with a ``fine_tuning`` record of how it came about;
6. the model's ONNX file is written beside it (:func:`nucleiseg.export.export_onnx`) when the
   environment can convert (the ``train`` extra), so that CellProfiler runs it with ONNX Runtime.

From Python: :func:`finetune` takes the same settings and returns a :class:`FinetuneResult`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import augment, cards, layouts, model_types, training, tune_postprocess
from .postprocess import PostprocessSettings

#: Share of the images held out for early stopping and the comparison (at least one image).
HOLDOUT_FRACTION = 0.2
#: Epochs the budget is cut into: enough for the held-out images to choose among, each long
#: enough that scoring them stays a small part of it.
TARGET_EPOCHS = 8
#: Largest share of an epoch that scoring the held-out images may take.
MAX_VALIDATION_SHARE = 0.25
#: Epochs without a held-out gain before training stops early.
PATIENCE = 4
#: Fine-tuning moves away from weights that already work, so it steps more gently than training
#: from scratch: a fifth of the model type's learning rate (the U-Net: 2e-4, as the shipped
#: fine-tune for BBBC039-like images).
LEARNING_RATE_FACTOR = 0.2
#: How batch normalization is fine-tuned (see :func:`finetune`).
BATCHNORM = ("frozen", "train")
#: Augmentation recipes to choose from; robust is the default (see :func:`finetune`).
AUGMENTATIONS = {"robust": augment.AugmentationConfig.robust, "standard": augment.AugmentationConfig}
#: Split files of the staging folder: the training images (post-processing is tuned on them
#: too) and the held-out ones.
FIT_SPLIT, HELD_OUT_SPLIT = "fit", "held-out"
#: A single image is split: the held-out strip is :data:`HOLDOUT_FRACTION` of its longer side,
#: and at least this many pixels.
MIN_HELD_OUT_PIXELS = 32


@dataclass
class CheckedInputs:
    """What :func:`check_inputs` found usable; nothing has been written yet.

    Attributes
    ----------
    out : Path
        Model path without suffix; the card will be ``<out>.json``.
    init : Path
        Card of the starting model (checked: one network, checksum).
    init_card : dict
        That card.
    stems : list of str
        Image stems, sorted.
    images, masks : list of Path
        The user's files, in the order of ``stems``.
    arrays : list of (ndarray, ndarray)
        Each image (stored dtype) and its instance labels (consecutive, int32).
    holdout : int
        Images to hold out (0 for a single image, which is split instead).
    notes : list of str
        Things to tell the user that do not stop the run (ignored files, labelled components).
    single_split : tuple, optional
        For a single image, its training part, held-out strip and where the strip lies
        (:func:`split_single_image`).
    """

    out: Path
    init: Path
    init_card: dict
    stems: list[str]
    images: list[Path]
    masks: list[Path]
    arrays: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)
    holdout: int
    notes: list[str] = field(default_factory=list)
    single_split: tuple | None = field(default=None, repr=False)


@dataclass
class FinetuneResult:
    """The outcome of :func:`finetune`.

    Attributes
    ----------
    card, weights : Path
        The written model.
    kept_starting_model : bool
        True when fine-tuning did not beat the starting model on the held-out images, so the
        starting weights and post-processing were written.
    starting_f1, finetuned_f1 : float
        Held-out macro mean F1 of the starting model (its card's post-processing; None from
        scratch) and of the trained one (post-processing chosen on the training images).
    training_images, held_out : list of str
        Stems trained on and held out.
    record : dict
        The card's ``fine_tuning`` record (steps, minutes, augmentation, starting model ...).
    onnx : Path or None
        The model's ONNX file, when one was written.
    """

    card: Path
    weights: Path
    kept_starting_model: bool
    starting_f1: float | None
    finetuned_f1: float
    training_images: list[str]
    held_out: list[str]
    record: dict = field(repr=False)
    onnx: Path | None = None


def default_init() -> Path:
    """The starting model when none is given: the shipped general U-Net."""
    return Path(model_types.get("unet").default_card)


def default_holdout(n_images: int) -> int:
    """Images held out of ``n_images``: about :data:`HOLDOUT_FRACTION`, at least one, one left to train on."""
    return min(max(1, round(HOLDOUT_FRACTION * n_images)), max(1, n_images - 1))


def out_paths(out: Path) -> tuple[Path, Path, Path]:
    """``(out without suffix, card, weights)``; ``out`` may name the card (``NAME.json``)."""
    out = Path(out)
    if out.name.endswith(".json"):
        out = out.with_name(out.name[: -len(".json")])
    return out, Path(f"{out}.json"), Path(f"{out}.weights.h5")


def check_out(out: Path, overwrite: bool, init: Path | None) -> list[str]:
    """Problems with the output path (each naming it); empty when it may be written."""
    out, card, weights = out_paths(out)
    models = cards.MODELS_DIR.resolve()
    resolved = out.resolve()
    if models == resolved.parent or models in resolved.parents:
        # The benchmark's --resume checksums every card there, and the shipped ones must stay.
        return [f"--out {out}: inside {cards.MODELS_DIR}, which holds the shipped models; write yours elsewhere "
                f"(e.g. my-models/{out.name})"]
    if init is not None and card.resolve() == Path(init).resolve():
        return [f"--out {out}: that is the starting model {init}; choose another name"]
    existing = [str(path) for path in (card, weights) if path.exists()]
    if existing and not overwrite:
        return [f"--out {out}: {' and '.join(existing)} exist(s); choose another name or pass --overwrite"]
    return []


def instance_problem(labels: np.ndarray, path: Path) -> str | None:
    """Why a mask is not an instance-label image (binary or semantic), or None.

    Instance labels give each nucleus its own value, so a value rarely covers separate
    objects. A mask whose values cover clearly more separate objects (8-connected pieces of
    one value) than there are values, more than one extra piece and 10 % of the values, is
    binary (one value) or semantic (a few class values).
    """
    values = int(np.count_nonzero(np.unique(labels)))
    pieces = int(layouts.colour_to_labels(labels).max())
    if pieces - values <= max(1, values // 10):
        return None
    kind = "binary (one foreground value)" if values == 1 else f"semantic ({values} class values)"
    return (f"{path}: {pieces} separate objects share {values} label value(s): a {kind} mask, not instance labels "
            "(one value per nucleus); pass --label-components to make each connected object a nucleus "
            "(touching nuclei of one value then merge)")


def _matched_files(images_dir: Path, masks_dir: Path, problems: list[str], notes: list[str]):
    """(stems, image paths, mask paths) of the files paired by stem, or None without both folders
    or without images; ``problems`` gets one line per kind of problem, naming every file concerned."""
    missing = [f"{flag} {folder}: folder not found" for flag, folder in (("--images", images_dir), ("--masks", masks_dir))
               if not folder.is_dir()]
    if missing:
        problems += missing
        return None
    if images_dir.resolve() == masks_dir.resolve():
        problems.append(f"--images and --masks are the same folder ({images_dir}); keep masks in a folder of their own")
        return None
    images, ignored = layouts.files_by_stem(images_dir)
    mask_files, ignored_masks = layouts.files_by_stem(masks_dir)
    if ignored + ignored_masks:
        notes.append(f"ignored {len(ignored + ignored_masks)} file(s) without a {'/'.join(layouts.IMAGE_SUFFIXES)} "
                     "suffix: " + ", ".join(str(path) for path in ignored + ignored_masks))
    masks, without_image, suffixes = layouts.masks_for_images(images, mask_files)
    for stem, paths in images.items():
        if len(paths) > 1:
            problems.append(f"several images share the stem {stem!r}: " + ", ".join(str(path) for path in paths))
    for stem, paths in masks.items():
        if len(paths) > 1:
            problems.append(f"several masks for the image stem {stem!r}: " + ", ".join(str(path) for path in paths))
    if suffixes:
        notes.append("masks paired by the image's stem followed by "
                     + ", ".join(f"{suffix!r} ({count})" for suffix, count in sorted(suffixes.items())))
    if not images:
        problems.append(f"--images {images_dir}: no images ({'/'.join(layouts.IMAGE_SUFFIXES)})")
        return None
    without_mask = [str(images[stem][0]) for stem in images if stem not in masks]
    if without_mask:
        problems.append(f"{len(without_mask)} image(s) without a mask in {masks_dir} (named as the image, or with "
                        f"one of the endings {', '.join(layouts.MASK_SUFFIXES)}): " + ", ".join(without_mask))
    if without_image:
        problems.append(f"{len(without_image)} mask(s) without an image of the same stem in {images_dir}: "
                        + ", ".join(str(path) for path in without_image))
    stems = [stem for stem in images if stem in masks]
    return stems, [images[stem][0] for stem in stems], [masks[stem][0] for stem in stems]


def check_inputs(images_dir: Path, masks_dir: Path, out: Path, init: Path | None = None, crop: int = 256,
                 holdout: int | None = None, minutes: float = 15.0, label_components: bool = False,
                 overwrite: bool = False, batch_size: int = 4) -> CheckedInputs:
    """Check every file and setting of a fine-tune without training or writing anything.

    Parameters are those of :func:`finetune`.

    Returns
    -------
    CheckedInputs

    Raises
    ------
    nucleiseg.layouts.DataError
        Listing every problem, each naming its file or setting: missing folders, images
        without masks and masks without images, unreadable or mismatched pairs, empty masks,
        binary or semantic masks (unless ``label_components``), images smaller than the
        crop, no image, a single image too small to split (:func:`split_single_image`) or one
        whose held-out strip has no nucleus, a bad starting model, an ``out`` inside ``models/`` or
        whose card exists (unless ``overwrite``), a budget that is not positive, a crop that the
        network cannot take, a batch size below 1.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    init = Path(init) if init is not None else default_init()
    problems, notes = [], []
    init_card, model_type = {}, model_types.get("unet")
    try:
        members = cards.verify(init)
        if len(members) != 1:
            raise cards.ModelError(f"an ensemble of {len(members)} networks; start from one of its member cards")
        init, init_card = members[0]
        model_type = model_types.for_architecture(init_card["architecture"])
        cards.tuned_postprocess(init)
    except ValueError as error:  # ModelError, or an unknown model type
        problems.append(f"--init {init}: {error}")
    problems += check_out(out, overwrite, init)
    if not minutes > 0:
        problems.append(f"--minutes {minutes}: the training budget must be positive")
    if crop < model_type.multiple or crop % model_type.multiple:
        problems.append(f"--crop {crop}: must be a positive multiple of {model_type.multiple} for the {model_type.name}")
    if batch_size < 1:
        problems.append(f"--batch-size {batch_size}: must be at least 1")
    matched = _matched_files(images_dir, masks_dir, problems, notes)
    stems, images, masks = matched or ([], [], [])
    arrays, too_small, relabelled = [], [], 0
    for stem, image_path, mask_path in zip(stems, images, masks):
        # Empty masks are refused below, in words that fit this command.
        checked = layouts.check_pair(layouts.Pair(stem, image_path, mask_path), allow_empty_masks=True)
        problems += checked.problems
        if checked.problems:
            continue
        labels = checked.labels
        if not labels.any():
            problems.append(f"{mask_path}: empty mask (no nuclei); annotate its nuclei or leave the image out")
            continue
        if label_components:
            labels = layouts.colour_to_labels(labels)
            relabelled += int(labels.max())
            if labels.max() > layouts.MAX_LABEL:
                problems.append(f"{mask_path}: {labels.max()} objects do not fit 16-bit labels")
        else:
            problem = instance_problem(labels, mask_path)
            if problem:
                problems.append(problem)
        if min(checked.image.shape) < crop:
            too_small.append((image_path, checked.image.shape))
        arrays.append((checked.image, labels))
    if too_small:
        side = min(min(shape) for _, shape in too_small)
        fitting = side // model_type.multiple * model_type.multiple
        problems.append(
            f"{len(too_small)} image(s) smaller than the {crop}-pixel training crop: "
            + ", ".join(f"{path} ({shape[0]}x{shape[1]})" for path, shape in too_small)
            + (f"; pass a smaller --crop (at most {fitting}, a multiple of {model_type.multiple})" if fitting
               else "; they are too small to train on"))
    if label_components and arrays:
        notes.append(f"--label-components: each connected object of the {len(arrays)} masks is a nucleus "
                     f"({relabelled} in all)")
    if matched is not None and not stems:
        problems.append(f"no matched image in {images_dir}; fine-tuning needs at least one annotated image")
    split = None
    if len(stems) == 1 and len(arrays) == 1 and not too_small:
        split = split_single_image(*arrays[0], crop)
        if isinstance(split, str):
            problems.append(f"{images[0]}: the only image, {split}; annotate a second image"
                            + (" or pass a smaller --crop" if "smaller than" in split else ""))
    chosen = 0 if len(stems) == 1 else default_holdout(len(stems)) if holdout is None else holdout
    if holdout is not None and len(stems) == 1:
        problems.append(f"--holdout {holdout}: with one image, a strip of it is held out; leave --holdout out")
    elif holdout is not None and len(stems) >= 2 and not 1 <= holdout < len(stems):
        problems.append(f"--holdout {holdout}: must be between 1 and {len(stems) - 1} ({len(stems)} images)")
    if problems:
        raise layouts.DataError(problems, header="cannot fine-tune; nothing was written")
    return CheckedInputs(out_paths(out)[0], Path(init), init_card, stems, images, masks, arrays, chosen, notes, split)


def split_single_image(image: np.ndarray, labels: np.ndarray, crop: int):
    """A lone image's training part and held-out strip, so that one annotated image can be checked.

    The strip is the end of the longer side: :data:`HOLDOUT_FRACTION` of it, at least
    :data:`MIN_HELD_OUT_PIXELS`. Nuclei cut by the border are cut in both parts, as nuclei at an
    image's edge always are; each part's labels are renumbered.

    Returns
    -------
    ((ndarray, ndarray), (ndarray, ndarray), str) or str
        The training and held-out (image, labels) pairs and where the strip lies ("its last 139
        columns"); or, when the image cannot be split, what is wrong (the training part would be
        smaller than the crop, or the strip holds no nucleus).
    """
    axis = 1 if image.shape[1] >= image.shape[0] else 0
    length = image.shape[axis]
    held = max(MIN_HELD_OUT_PIXELS, int(round(HOLDOUT_FRACTION * length)))
    keep = length - held
    if keep < crop:
        return (f"{image.shape[0]}x{image.shape[1]}, is too small to hold out a strip of {held} pixels and train on "
                f"the rest: the rest would be smaller than the {crop}-pixel crop")
    parts = [(image[:keep], labels[:keep]), (image[keep:], labels[keep:])] if axis == 0 else \
        [(image[:, :keep], labels[:, :keep]), (image[:, keep:], labels[:, keep:])]
    (train_image, train_labels), (held_image, held_labels) = parts
    if not held_labels.any():
        return f"its held-out strip (the last {held} {'columns' if axis else 'rows'}) has no nucleus"
    where = f"its last {held} {'columns' if axis else 'rows'}"
    return ((train_image, layouts.consecutive_labels(train_labels)),
            (held_image, layouts.consecutive_labels(held_labels)), where)


def plan_epochs(seconds: float, step_seconds: float, epoch_overhead: float,
                target_epochs: int = TARGET_EPOCHS) -> tuple[int, int]:
    """Epochs and steps per epoch that fill a training budget.

    Parameters
    ----------
    seconds : float
        Training seconds available.
    step_seconds : float
        Measured seconds of one optimizer step.
    epoch_overhead : float
        Seconds each epoch adds to its steps (scoring the held-out images, checkpoints).
    target_epochs : int
        Epochs wanted when the budget allows; fewer when scoring would take more than
        :data:`MAX_VALIDATION_SHARE` of shorter epochs.

    Returns
    -------
    (epochs, steps_per_epoch)
        Each at least 1; ``epochs * (steps * step_seconds + epoch_overhead) <= seconds``
        whenever one step and one scoring fit.
    """
    epoch_seconds = max(seconds / target_epochs, epoch_overhead / MAX_VALIDATION_SHARE, epoch_overhead + step_seconds)
    epochs = max(1, int(seconds // epoch_seconds))
    steps = max(1, int((seconds / epochs - epoch_overhead) // step_seconds))
    return epochs, steps


class _Progress:
    """Prints each phase with the time elapsed since the start of the fine-tune."""

    def __init__(self, stream=None):
        self.start = time.time()
        self.stream = stream

    def elapsed(self) -> float:
        return time.time() - self.start

    def say(self, message: str) -> None:
        print(f"[{training.clock(self.elapsed())} elapsed] {message}", file=self.stream or sys.stdout, flush=True)


def _timed(function, *args):
    """(result, seconds) of one call."""
    started = time.time()
    result = function(*args)
    return result, time.time() - started


def _measure_training(config: training.TrainConfig, names: list[str], held_out: list, scratch: Path):
    """Time a few optimizer steps and a scoring of the held-out images on the network the run will train.

    Returns ``(network, step, validation, save)``: the network, its optimizer state zeroed
    again so that training starts it afresh (:func:`nucleiseg.training.train` reloads the
    starting weights into it and reuses its traced training and prediction steps), then the
    seconds of one step and of one scoring of ``held_out`` (each after a first run that builds
    the graph), and of writing a checkpoint.
    """
    network = training.build_network(config)
    if config.init_from:
        network.load_weights(training.initial_weights(config))
    else:
        random_weights = network.get_weights()  # from scratch: put back after the timed steps
    examples = training.load_examples(config.data, config.train_split, config.normalization, names=names)
    rng = np.random.default_rng([config.seed, 1])
    training.train_step(network, examples, config, rng)
    steps = []
    while len(steps) < 3 and (not steps or sum(steps) < 2.0):
        steps.append(_timed(training.train_step, network, examples, config, rng)[1])
    scoring = (network, config.architecture(), config.normalization, held_out, config.val_settings())
    training.validation_scores(*scoring)
    _, validation = _timed(training.validation_scores, *scoring)
    _, save = _timed(network.save, scratch / "probe.keras")
    if not config.init_from:
        network.set_weights(random_weights)
    for variable in network.optimizer.variables:
        # Step count and moment estimates back to a fresh optimizer's; train() sets the rate.
        if not variable.path.endswith("learning_rate"):
            variable.assign(np.zeros(variable.shape, variable.dtype))
    return network, float(np.median(steps)), validation, save


def _train_within(config: training.TrainConfig, minutes: float, train_names: list[str], held_out: list,
                  scratch: Path, progress: _Progress) -> tuple[Path, float]:
    """Train with epochs sized from the measured step time so that the last one ends within ``minutes``.

    Returns the trained model's card (in ``scratch``) and the seconds from measuring to the end
    of training.
    """
    started = time.time()
    progress.say(f"measuring the training step time ({config.crop}-pixel crops, batch {config.batch_size})")
    with warnings.catch_warnings():
        # Weights files hold no optimizer state, so Keras says it skips loading one; nothing is lost.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        network, step, validation, save = _measure_training(config, train_names, held_out, scratch)
        # train() reloads the starting weights and scores them before its clock starts.
        clock_budget = 60 * minutes - (time.time() - started) - validation
        epochs, steps = plan_epochs(clock_budget, step, validation + save)
        epoch_seconds = steps * step + validation + save
        # Checked after each epoch: stop once less than a planned epoch is left, so that epochs
        # running slower than measured give up the last one rather than overrun the budget.
        config = replace(config, epochs=epochs, steps_per_epoch=steps,
                         max_minutes=round(max(1e-3, (clock_budget - epoch_seconds) / 60), 3))
        fits = epochs * epoch_seconds <= clock_budget
        progress.say(f"training: {epochs} epoch(s) of {steps} step(s) (~{step:.2f} s a step, ~{validation:.1f} s to "
                     f"score the held-out images): ~{training.clock(epochs * epoch_seconds + validation)} more of the "
                     f"{minutes:g}-minute budget"
                     + ("" if fits else "; the budget is smaller than one step and one scoring, so one of each runs"))
        card = training.train(config, scratch / "model", scratch / "checkpoints", resume=False, network=network)
    return card, time.time() - started


def _scores(card: Path, examples, settings: PostprocessSettings) -> dict:
    """Macro mean F1 and error rate at IoU 0.7 of a model on raw ``(stem, image, labels)`` examples:
    the scoring that training validates with (:func:`nucleiseg.training.validation_scores`,
    through :func:`nucleiseg.inference.segment`)."""
    model = cards.load(card)
    return training.validation_scores(model.networks[0], model.architecture, model.normalization, examples, settings)


def _choose_postprocess(trained_card: Path, staging: Path, train_names: list[str], start: PostprocessSettings,
                        progress: _Progress) -> tuple[PostprocessSettings, dict]:
    """Post-processing for the fine-tuned model, chosen on the training images only.

    Candidates: the result of :mod:`nucleiseg.tune_postprocess`'s search (which starts from the
    defaults) and the starting model's settings (which the epochs were judged with, and which
    the search may not reach one field at a time); the one that scores higher on the training
    images is kept. The search's settings are written into the card when they win; otherwise the
    card keeps the starting model's, which training wrote. Returns the settings and a record.
    """
    progress.say(f"tuning post-processing on the {len(train_names)} training images (not the held-out ones, so that "
                 "the comparison below is not scored with settings chosen on the images it scores)")
    tuning = tune_postprocess.tune(trained_card, staging, FIT_SPLIT, images=0)
    fit_examples = training.load_examples(staging, FIT_SPLIT, None)
    kept = _scores(trained_card, fit_examples, start)["f1_mean"]
    record = {"chosen_on": f"the {len(train_names)} training images (held-out ones excluded)",
              "search_f1_mean": round(tuning["f1_mean"], 4), "starting_settings_f1_mean": round(kept, 4)}
    if tuning["f1_mean"] > kept:
        tune_postprocess.write_tuning(trained_card, tuning, record["chosen_on"])
        return PostprocessSettings.from_dict(tuning["best"]), {**record, "chosen": "tune_postprocess search"}
    progress.say(f"the starting model's post-processing scores at least as well on the training images "
                 f"({kept:.3f} against the search's {tuning['f1_mean']:.3f}); keeping it")
    return start, {**record, "chosen": "the starting model's settings"}


@dataclass
class _Staged:
    """The staging folder's split: staged stems trained on and held out, and how the card names them."""

    train: list[str]
    held_out: list[str]
    training_images: list[str]
    held_out_images: list[str]
    choice: str


def _stage(inputs: CheckedInputs, folder: Path, seed: int) -> _Staged:
    """Write the checked pairs as a data folder in our layout (labels as checked, 16-bit) with the
    split files :data:`FIT_SPLIT` and :data:`HELD_OUT_SPLIT`; the user's folders are only read.

    Several images: ``inputs.holdout`` of them are held out, chosen by ``seed``. One image: its
    training part and held-out strip (:func:`split_single_image`) are staged as two images.
    """
    files = dict(zip(inputs.stems, inputs.images))
    if inputs.holdout:
        staged = list(zip(inputs.stems, inputs.arrays))
        train, held = training.hold_out(inputs.stems, inputs.holdout, seed)
        result = _Staged(train, held, [files[stem].name for stem in train], [files[stem].name for stem in held],
                         f"seed {seed}, {len(held)} of {len(inputs.stems)} images")
    else:
        (stem,) = inputs.stems
        train_part, held_part, where = inputs.single_split
        held_stem = f"{stem}.held-out"
        staged = [(stem, train_part), (held_stem, held_part)]
        result = _Staged([stem], [held_stem], [f"{files[stem].name} (all but {where[4:]})"],
                         [f"{files[stem].name} ({where})"], f"one image: {where} held out")
    for name, (image, labels) in staged:
        layouts.write_tiff(folder / "images" / f"{name}.tiff", image)
        layouts.write_tiff(folder / "masks" / f"{name}.tiff", labels.astype(np.uint16))
    for split, names in ((FIT_SPLIT, result.train), (HELD_OUT_SPLIT, result.held_out)):
        (folder / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
    return result


def _write_model(inputs: CheckedInputs, record: dict, trained_card: Path, held_out: list[str]) -> tuple[Path, Path]:
    """Write the chosen model (``record["kept_starting_model"]``) to ``inputs.out`` with its
    ``fine_tuning`` record; returns the card and weights paths. The ONNX file, if any, is written
    afresh afterwards (:func:`_write_onnx`), so no ``onnx`` field is carried over."""
    out, card_path, weights_path = out_paths(inputs.out)
    if record["kept_starting_model"]:
        # A member's link to its ensemble does not hold for a copy standing alone.
        card = {key: value for key, value in inputs.init_card.items() if key != "member_of"}
        source = inputs.init.parent / inputs.init_card["weights"]
    else:
        trained = cards.read_card(trained_card)
        # The staging folder is temporary; the card names the user's folders instead.
        card = {**trained,
                "training": {**trained["training"], "data": record["images_folder"], "masks": record["masks_folder"],
                             "split": "fine-tuning images", "held_out_for_validation": held_out},
                "validation": {**trained["validation"], "split": "held out of the fine-tuning images"}}
        source = trained_card.parent / trained["weights"]
    card = {key: value for key, value in card.items() if not key.startswith("onnx")}
    card = {**card, "name": out.name, "fine_tuning": record}
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, weights_path)
    return cards.write_card(card, weights_path), weights_path


def _write_onnx(card_path: Path, progress: _Progress) -> Path | None:
    """The model's ONNX file beside its weights (recorded in the card), or None, said why, when this
    environment cannot convert (no tf2onnx: the light install)."""
    try:
        import tf2onnx  # noqa: F401  (the converter export uses)

        from . import export
    except ImportError as error:
        progress.say(f"no ONNX file written ({error}; install the train extra to convert): the card runs with "
                     "TensorFlow, and `python -m nucleiseg.export CARD --onnx` writes it later")
        return None
    progress.say("writing the ONNX file (ONNX Runtime runs the model without TensorFlow)")
    (written, difference), = export.export_onnx(card_path)
    progress.say(f"wrote {written} (largest difference from Keras {difference:.1e})")
    return written


def _report(progress: _Progress, record: dict, card_path: Path) -> None:
    """Print both held-out scores side by side and which model was written."""
    scores = record["held_out_scores"]
    finetuned = scores["fine_tuned"]["f1_mean"]
    held_out = ", ".join(record["held_out_images"])
    trained = "trained from scratch" if record["from_scratch"] else "fine-tuned    "
    starting_line = (f"  starting model  -      (none: trained from scratch with the architecture of "
                     f"{record['starting_model']['name']})" if record["from_scratch"] else
                     f"  starting model  {scores['starting_model']['f1_mean']:.3f}  ({record['starting_model']['name']}, "
                     "its card's post-processing)")
    progress.say(f"held-out mean F1 on {len(record['held_out_images'])} image(s) ({held_out}):\n{starting_line}\n"
                 f"  {trained:<14}  {finetuned:.3f}  ({record['steps']} step(s) in {record['training_minutes']:.1f} min, "
                 "post-processing chosen on the training images)")
    if record["kept_starting_model"]:
        gain = record["min_gain"]
        progress.say("fine-tuning did not help" + (f" by more than {gain:g}" if gain else "")
                     + f": kept the starting model's weights and post-processing in {card_path}")
    elif record["from_scratch"]:
        progress.say(f"wrote the model trained from scratch: {card_path}")
    else:
        progress.say(f"kept the fine-tuned model ({finetuned - scores['starting_model']['f1_mean']:+.3f}): {card_path}")


def finetune(images_dir: Path, masks_dir: Path, out: Path, init: Path | None = None, minutes: float = 15.0,
             label_components: bool = False, holdout: int | None = None, seed: int = 0, crop: int = 256,
             batch_size: int = 4, learning_rate: float | None = None, augmentation: str = "robust",
             min_gain: float = 0.0, overwrite: bool = False, from_scratch: bool = False, onnx: bool = True,
             batchnorm: str = "frozen", command: str = "", stream=None) -> FinetuneResult:
    """Fine-tune a model on your annotated images and write the better of it and the starting model.

    Parameters
    ----------
    images_dir, masks_dir : Path
        Greyscale images and their instance-label masks (PNG/TIFF, 8/16-bit; a mask has one
        value per nucleus, 0 background), paired by file stem; a mask may also be named after
        its image with an ending of :data:`nucleiseg.layouts.MASK_SUFFIXES` (``a_masks.tif``).
    out : Path
        Model path without suffix (``my-models/plate1``): writes ``<out>.json`` and
        ``<out>.weights.h5`` (and ``<out>.onnx``). Not inside ``models/``.
    init : Path, optional
        Card of the starting model (one network); default the shipped general U-Net.
    minutes : float
        Training budget in minutes: measuring the step time, the epochs and their held-out
        scoring. Epochs are sized from the measured step time so that the last one ends
        within it; scoring the starting model before, and tuning post-processing and scoring
        the result after, come on top (each printed with its time).
    label_components : bool
        Turn each connected object of one value into a nucleus (for binary or semantic masks).
    holdout : int, optional
        Images held out; default about 20 % (:func:`default_holdout`), at least one. A single
        image is split instead (:func:`split_single_image`).
    seed : int
        Chooses the held-out images and seeds training.
    crop : int
        Training crop edge in pixels; every image must be at least this large.
    batch_size : int
        Crops per step.
    learning_rate : float, optional
        Default: :data:`LEARNING_RATE_FACTOR` times the model type's (from scratch: the type's).
    augmentation : str
        ``"robust"`` (default): :meth:`~nucleiseg.augment.AugmentationConfig.robust`, every
        augmentation on. With a handful of images each crop is seen many times; zoom, signal
        and noise changes keep the network from memorising them and from forgetting the
        imaging conditions it was first trained on. ``"standard"``: flips and intensity only.
    min_gain : float
        Held-out mean F1 the fine-tuned model must gain over the starting one to be written
        instead of it (0: any gain; ties keep the starting model).
    overwrite : bool
        Replace an existing card at ``out``.
    from_scratch : bool
        Train from random weights with ``init``'s architecture, normalization and targets (the
        comparison the paper's learning curve makes); the model type's post-processing
        defaults judge the epochs, and the trained model is always written.
    onnx : bool
        Also write the model's ONNX file when the environment can (see :func:`_write_onnx`).
    batchnorm : str
        ``"frozen"`` (default): batch normalization keeps the starting model's statistics and
        scales, since batches of a few crops of a few images estimate them badly; ``"train"``
        lets them learn as in training from scratch (which always trains them).
    command : str
        The command line, for the card (the CLI fills it in).
    stream : file, optional
        Where progress goes (default standard output).

    Returns
    -------
    FinetuneResult

    Raises
    ------
    nucleiseg.layouts.DataError
        From :func:`check_inputs`, before anything is trained or written.
    ValueError
        For an unknown ``augmentation``, a ``min_gain`` outside [-1, 1] or a learning rate that is
        not positive (also before anything is written).
    """
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"--augmentation {augmentation!r}: expected one of {', '.join(AUGMENTATIONS)}")
    if not -1 <= min_gain <= 1:
        raise ValueError(f"--min-gain {min_gain}: must be between -1 and 1 (a difference of mean F1)")
    if learning_rate is not None and not learning_rate > 0:
        raise ValueError(f"--learning-rate {learning_rate}: must be positive")
    if batchnorm not in BATCHNORM:
        raise ValueError(f"--batchnorm {batchnorm!r}: expected one of {', '.join(BATCHNORM)}")
    inputs = check_inputs(images_dir, masks_dir, out, init, crop, holdout, minutes, label_components, overwrite,
                          batch_size)
    progress = _Progress(stream)
    for note in inputs.notes:
        progress.say(note)
    init_card, architecture = inputs.init_card, inputs.init_card["architecture"]
    model_type = model_types.for_architecture(architecture)
    start_settings = (PostprocessSettings.from_dict(model_type.postprocess_defaults) if from_scratch
                      else cards.tuned_postprocess(inputs.init))
    recipe = AUGMENTATIONS[augmentation]()
    rate = learning_rate or (1.0 if from_scratch else LEARNING_RATE_FACTOR) * model_type.default_learning_rate
    with tempfile.TemporaryDirectory(prefix="nucleiseg-finetune-") as scratch:
        scratch = Path(scratch)
        staging = scratch / "data"
        staged = _stage(inputs, staging, seed)
        config = training.TrainConfig(
            network=model_type.name, base_filters=int(architecture.get("base_filters", 0)), data=str(staging),
            train_split=FIT_SPLIT, val_split=HELD_OUT_SPLIT, crop=crop, batch_size=batch_size, patience=PATIENCE,
            learning_rate=rate, optimizer=model_type.default_optimizer, class_weights=model_type.class_weights(),
            boundary_width=int(init_card.get("targets", {}).get("boundary_width", 1)),
            normalization=init_card["normalization"], augmentation=recipe, seed=seed,
            val_postprocess=start_settings.to_dict(), init_from="" if from_scratch else str(inputs.init),
            freeze_batchnorm=batchnorm == "frozen" and not from_scratch)
        how = (f"about {HOLDOUT_FRACTION:.0%}, seed {seed}" if inputs.holdout else "a single image: a strip of it")
        progress.say(f"{len(inputs.stems)} image(s): training on {len(staged.train)}, holding out {len(staged.held_out)} ({how}) to choose the best epoch and compare: "
                     + ", ".join(staged.held_out_images))
        held_out_examples = training.load_examples(staging, HELD_OUT_SPLIT, None)
        if from_scratch:
            starting = None
            progress.say(f"training from scratch: random weights with the architecture and normalization of {inputs.init}")
        else:
            progress.say(f"scoring the starting model {inputs.init} on the held-out images (its card's post-processing)")
            starting = _scores(inputs.init, held_out_examples, start_settings)
            progress.say(f"starting model: held-out mean F1 {starting['f1_mean']:.3f}")

        trained_card, training_seconds = _train_within(config, minutes, staged.train, held_out_examples, scratch,
                                                       progress)

        tuned_settings, choice = _choose_postprocess(trained_card, staging, staged.train, start_settings, progress)
        trained = cards.read_card(trained_card)  # with the chosen settings
        progress.say("scoring the trained model on the held-out images")
        finetuned = _scores(trained_card, held_out_examples, tuned_settings)

        kept_start = not from_scratch and not finetuned["f1_mean"] > starting["f1_mean"] + min_gain
        record = {
            "result": "starting model kept: fine-tuning did not beat it on the held-out images" if kept_start
            else "trained from scratch" if from_scratch else "fine-tuned model",
            "kept_starting_model": kept_start, "from_scratch": from_scratch,
            "images_folder": str(Path(images_dir)), "masks_folder": str(Path(masks_dir)),
            "training_images": staged.training_images, "held_out_images": staged.held_out_images,
            "held_out_choice": staged.choice,
            "label_components": label_components,
            "starting_model": {"name": init_card.get("name", inputs.init.stem), "card": str(inputs.init),
                               "weights_sha256": init_card["sha256"],
                               **({"used_for": "architecture, normalization and targets only"} if from_scratch else {})},
            "epochs": trained["training"]["epochs"],
            "steps_per_epoch": trained["training"]["steps"] // max(1, trained["training"]["epochs"]),
            "steps": trained["training"]["steps"], "best_epoch": trained["training"]["best_epoch"],
            "training_minutes": round(training_seconds / 60, 2), "budget_minutes": minutes,
            "augmentation": {"recipe": augmentation, **recipe.to_dict()},
            "learning_rate": config.learning_rate, "crop": crop, "batch_size": batch_size,
            "batchnorm": "frozen" if config.freeze_batchnorm else "trained",
            "held_out_scores": {"starting_model": starting, "fine_tuned": finetuned}, "min_gain": min_gain,
            "postprocess": {"starting_model": start_settings.to_dict(), "fine_tuned": tuned_settings.to_dict(),
                            "fine_tuned_choice": choice},
            **({"command": command} if command else {}),
        }
        record["total_minutes"] = round(progress.elapsed() / 60, 2)
        card_path, weights_path = _write_model(inputs, record, trained_card, staged.held_out)
    onnx_path = _write_onnx(card_path, progress) if onnx else None
    _report(progress, record, card_path)
    return FinetuneResult(card_path, weights_path, kept_start, None if starting is None else starting["f1_mean"],
                          finetuned["f1_mean"], list(staged.train), list(staged.held_out), record, onnx_path)


def main(argv=None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m nucleiseg.finetune", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, required=True, help="folder of greyscale images (PNG/TIFF)")
    parser.add_argument("--masks", type=Path, required=True,
                        help="folder of instance-label masks, one per image, named as the image (or with an ending "
                             "such as _masks or _labels; 16-bit labels)")
    parser.add_argument("--out", type=Path, required=True, help="model path without suffix, e.g. my-models/plate1")
    parser.add_argument("--init", type=Path, help=f"starting model card (default: {default_init()})")
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget in minutes (default 15)")
    parser.add_argument("--label-components", action="store_true",
                        help="masks are binary or semantic: make each connected object a nucleus")
    parser.add_argument("--holdout", type=int, help="images held out (default: about 20 %%, at least 1; "
                                                    "a single image: a strip of it)")
    parser.add_argument("--seed", type=int, default=0, help="chooses the held-out images and seeds training")
    parser.add_argument("--crop", type=int, default=256, help="training crop edge in pixels (default 256)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, help="default: a fifth of the model type's (U-Net 2e-4)")
    parser.add_argument("--augmentation", choices=sorted(AUGMENTATIONS), default="robust",
                        help="robust (default): every augmentation; standard: flips and intensity")
    parser.add_argument("--min-gain", type=float, default=0.0,
                        help="held-out mean F1 the fine-tuned model must gain to replace the starting one (default 0)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="random starting weights (the --init card gives only the architecture and normalization)")
    parser.add_argument("--no-onnx", action="store_true", help="do not write the ONNX file")
    parser.add_argument("--batchnorm", choices=BATCHNORM, default="frozen",
                        help="frozen (default): keep the starting model's batch-normalization statistics; train: learn them")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing card at --out")
    args = parser.parse_args(argv)
    try:
        finetune(args.images, args.masks, args.out, init=args.init, minutes=args.minutes,
                 label_components=args.label_components, holdout=args.holdout, seed=args.seed, crop=args.crop,
                 batch_size=args.batch_size, learning_rate=args.learning_rate, augmentation=args.augmentation,
                 min_gain=args.min_gain, overwrite=args.overwrite, from_scratch=args.from_scratch,
                 onnx=not args.no_onnx, batchnorm=args.batchnorm,
                 command=" ".join(["python -m nucleiseg.finetune", *(argv if argv is not None else sys.argv[1:])]))
    except ValueError as error:  # DataError and ModelError are ValueErrors
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

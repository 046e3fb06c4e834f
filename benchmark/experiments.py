"""Shared machinery of the experiments (learning curve, transfer, leave one kind out, widths).

One helper, :func:`train_and_score`, trains a fresh U-Net on an explicit list
of training images for a fixed number of steps and scores it on named sets of
validation images; it reuses :mod:`nucleiseg.training` (batches, network,
per-image scoring) and :mod:`nucleiseg.metric` (aggregation). Around it:

* :class:`Schedule`, the reduced training schedule, recorded in every report;
* :class:`Ledger`, the resume record: ``progress.csv`` gains one row per
  finished model (rewritten atomically), ``settings.json`` pins the settings
  the rows were made with, so a re-run skips finished models and refuses to
  mix results of different settings;
* checkpoints (:func:`model_files`, :func:`save_progress`): a model in training
  is saved every :data:`CHECKPOINT_EVERY` steps, so a re-run carries a model
  stopped part way on from there instead of from its first step;
* :func:`reference_scores`, the advanced CellProfiler pipeline's figures on
  the same validation images, from a benchmark's ``per_image.csv`` (or, less
  exactly, its ``summary.csv``);
* atomic writers, so ``results.csv``, the plots and ``report.md`` appear only
  when a run is complete.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from nucleiseg import layouts, normalization
from nucleiseg.metric import SIZE_BINS
from nucleiseg.postprocess import PostprocessSettings

from . import aggregate
from .outputs import write_json
from .tables import read_csv, read_results, write_csv

#: Figures kept per evaluated set (macro means for rates, sums for counts).
SCORE_COLUMNS = ("images", "nuclei", "predicted", "f1_mean", "f1_050", "f1_070", "f1_090", "error_rate_070", "missed", "merges", "splits")
#: Default reference pipeline of the plots.
REFERENCE_PIPELINE = "advanced"
#: Text columns of ``progress.csv`` and ``results.csv``; every other column holds numbers.
LEDGER_TEXT_COLUMNS = ("model", "trained_on", "held_out", "start", "images_hash", "images_file")


class ExperimentError(ValueError):
    """Bad arguments or inconsistent outputs; the message names the option or file."""


# --------------------------------------------------------------------------------------------
# Schedule and training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """The training schedule of every model of an experiment.

    Attributes
    ----------
    width : int
        U-Net base filters (the paper's model has 64).
    steps : int
        Optimizer steps, each on one batch of random crops; no validation-based
        model selection (the validation images only score the final weights).
    crop : int
        Side of the square training crops (a multiple of 8).
    batch : int
        Crops per step.
    learning_rate : float
        Adam learning rate: constant, or the start of a cosine decay with ``cosine``.
    cosine : bool
        Decay the learning rate to 0 over the steps along half a cosine, so the final weights
        (the ones scored) are not one noisy point of a constant-rate walk.
    robust : bool
        The robust augmentation (:meth:`nucleiseg.augment.AugmentationConfig.robust`) instead of
        the shipped U-Net's flips, rotations and global gain.
    bf16 : bool
        Train with Keras' ``mixed_bfloat16`` policy (scoring stays float32, as in the modules).
    normalization : dict
        The card form of the intensity normalization (:func:`nucleiseg.normalization.spec_for`),
        the same in training and scoring.
    postprocess : PostprocessSettings
        How probabilities become nuclei when scoring.
    """

    width: int = 16
    steps: int = 120
    crop: int = 256
    batch: int = 4
    learning_rate: float = 1e-3
    cosine: bool = False
    robust: bool = False
    bf16: bool = False
    normalization: dict = field(default_factory=lambda: dict(normalization.DEFAULT))
    postprocess: PostprocessSettings = field(default_factory=PostprocessSettings)

    def __post_init__(self):
        for option, value in (("--width", self.width), ("--steps", self.steps), ("--crop", self.crop), ("--batch", self.batch)):
            if value < 1:
                raise ExperimentError(f"{option} must be >= 1, got {value}")
        if self.crop % 8:
            raise ExperimentError(f"--crop must be a multiple of 8 (the U-Net pools three times), got {self.crop}")
        if not self.learning_rate > 0:
            raise ExperimentError(f"--learning-rate must be > 0, got {self.learning_rate}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Schedule":
        """A schedule from :meth:`to_dict`'s form (as an experiment's ``settings.json`` holds it)."""
        values = dict(values)
        if "postprocess" in values:
            values["postprocess"] = PostprocessSettings.from_dict(values["postprocess"])
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ExperimentError(f"unknown schedule settings: {', '.join(unknown)}")
        return cls(**values)

    def rate_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based)."""
        from nucleiseg.training import cosine_rate

        return cosine_rate(self.learning_rate, step, self.steps) if self.cosine else self.learning_rate

    def train_config(self, data: Path, seed: int):
        """The :class:`nucleiseg.training.TrainConfig` of one model (augmentation as the shipped U-Net unless
        ``robust``): one epoch of ``steps`` steps without validation, as its card records it."""
        from nucleiseg.augment import AugmentationConfig
        from nucleiseg.training import NO_VALIDATION, TrainConfig

        augmentation = AugmentationConfig.robust() if self.robust else AugmentationConfig()
        return TrainConfig(network="unet", base_filters=self.width, data=str(data), crop=self.crop,
                           batch_size=self.batch, steps_per_epoch=self.steps, epochs=1, val_split=NO_VALIDATION,
                           learning_rate=self.learning_rate, cosine=self.cosine, seed=seed, augmentation=augmentation,
                           mixed_bfloat16=self.bf16, normalization=dict(self.normalization))

    def markdown(self, per_model: str = "") -> str:
        """The schedule as a Markdown table for reports.

        ``per_model``: when given, the width and the number of steps are set per model
        and their rows say this text instead of the schedule's values.
        """
        config = self.train_config(Path("."), 0)
        width = per_model or f"{self.width}"
        steps = per_model or f"{self.steps}"
        lines = [
            "| setting | value |",
            "|---|---|",
            f"| network | U-Net, base width {width} (the paper: 64) |",
            f"| steps | {steps} (one batch each; weights after the last step are scored, no model selection) |",
            f"| batch | {self.batch} random crops of {self.crop} x {self.crop} |",
            f"| optimizer | Adam, learning rate {self.learning_rate:g}, {'cosine decay to 0' if self.cosine else 'constant'} |",
            f"| loss | per-pixel weighted cross-entropy, class weights {list(config.class_weights)} (background, interior, boundary) |",
            f"| augmentation | {config.augmentation.describe()} |",
            f"| precision | {'mixed bfloat16 in training, float32 when scoring' if self.bf16 else 'float32'} |",
            f"| normalization | {config.normalization} |",
            f"| post-processing | {self.postprocess.to_dict()} |",
        ]
        return "\n".join(lines)


def summarize(rows: Iterable[Mapping[str, float]], extra: Iterable[str] = ()) -> dict:
    """The :data:`SCORE_COLUMNS` of a list of per-image score rows, then the ``extra`` keys of the rows.

    Rates are macro means over images (the paper's aggregation), counts are
    sums; ``missed`` is the number of nuclei missed at IoU 0.7 (all size bins).
    """
    rows = list(rows)
    if not rows:
        raise ExperimentError("no image to score")
    macro = aggregate.macro(rows)
    macro["missed"] = int(sum(macro[f"missed_{name}"] for name in SIZE_BINS))
    return {key: macro[key] for key in (*SCORE_COLUMNS, *extra)}


def over_repeats(rows: list[Mapping], keys: Iterable[str]) -> dict:
    """Mean and standard deviation over the models of one setting (its repeats).

    Parameters
    ----------
    rows : list of mapping
        One row per model.
    keys : iterable of str
        Figures to average.

    Returns
    -------
    dict
        ``key`` (mean) and ``key_sd`` (sample standard deviation; 0 for a single model) of each key.
    """
    out = {}
    for key in keys:
        values = np.array([float(r[key]) for r in rows])
        out[key] = float(values.mean())
        out[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


#: Steps between two saves of an experiment model's progress (:func:`train_and_score`).
CHECKPOINT_EVERY = 250
_PROGRESS = "progress.json"


def train_and_score(data: Path, split: str, train_names: list[str], eval_sets: Mapping[str, list], schedule: Schedule,
                    seed: int, weights: Path | None = None, log: Callable[[str], None] = print,
                    checkpoint: Path | None = None, every: int = CHECKPOINT_EVERY) -> dict:
    """Train a fresh U-Net on ``train_names`` with ``schedule`` and score it on each evaluation set.

    Parameters
    ----------
    data : Path
        Data folder.
    split : str
        Split the training names belong to.
    train_names : list of str
        Stems of the training images (sampled by the caller).
    eval_sets : mapping of str to list
        Name of a set -> its ``(stem, raw image, labels)`` examples
        (:func:`nucleiseg.training.load_examples` with ``normalization=None``).
    schedule : Schedule
    seed : int
        Seeds weight initialisation, crops and augmentation.
    weights : Path, optional
        Where to save the final weights (``.weights.h5``), with their model card beside them
        (:mod:`benchmark.experiment_cards`).
    log : callable
        Progress messages.
    checkpoint : Path, optional
        Folder for this model's progress, saved every ``every`` steps and after the last one
        (the network with its optimizer, the step, the losses so far, the training seconds and
        the crop generator's state). A call with the same folder carries on from there, so a
        model of a long schedule may span several sessions; the folder is removed once the
        model is scored. A folder left by other settings raises ExperimentError.

    Returns
    -------
    dict
        ``steps``, ``train_seconds`` (over every session that trained it), ``eval_seconds``,
        ``loss_first`` and ``loss_last`` (mean loss of the first and last tenth of the steps)
        and ``scores``: set name -> :func:`summarize` figures.
    """
    from nucleiseg import training

    if every < 1:
        raise ExperimentError(f"checkpoint interval must be >= 1 step, got {every}")
    config, examples, network, rng = start_training(data, split, train_names, schedule, seed)
    identity = {"schedule": schedule.to_dict(), "seed": seed, "train_images": names_hash(train_names)}
    saved = load_progress(checkpoint, identity) if checkpoint is not None else None
    losses, first, seconds_before = [], 0, 0.0
    if saved is not None:
        network = training.load_for_training(Path(checkpoint) / saved["network"], config)
        rng.bit_generator.state = saved["rng"]
        losses, first, seconds_before = list(saved["losses"]), int(saved["step"]), float(saved["seconds"])
        log(f"  resumed at step {first}/{schedule.steps} from {checkpoint}")
    started = time.time() - seconds_before
    for step in range(first, schedule.steps):
        if schedule.cosine:
            network.optimizer.learning_rate.assign(schedule.rate_at(step))
        losses.append(training.train_step(network, examples, config, rng))
        if (step + 1) % 20 == 0 or step + 1 == schedule.steps:
            log(f"  step {step + 1}/{schedule.steps} loss {np.mean(losses[-20:]):.4f} ({time.time() - started:.0f} s)")
        if checkpoint is not None and ((step + 1) % every == 0 or step + 1 == schedule.steps):
            save_progress(checkpoint, identity, network, step + 1, losses, time.time() - started, rng)
    train_seconds = time.time() - started  # started was set back by the seconds of earlier sessions
    if weights is not None:
        from .experiment_cards import write as write_card

        weights.parent.mkdir(parents=True, exist_ok=True)
        network.save_weights(weights)
        write_card(data, split, train_names, schedule, seed, weights, round(train_seconds, 1))  # as in the row
    started = time.time()
    scorer = training.float32_copy(network, config) if schedule.bf16 else network
    scores = {}
    for name, eval_examples in eval_sets.items():
        rows = training.score_examples(scorer, config.architecture(), config.normalization, eval_examples, schedule.postprocess)
        scores[name] = summarize(rows)
    tenth = max(1, len(losses) // 10)
    result = {
        "steps": schedule.steps,
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(time.time() - started, 1),
        "loss_first": round(float(np.mean(losses[:tenth])), 5),
        "loss_last": round(float(np.mean(losses[-tenth:])), 5),
        "scores": scores,
    }
    if checkpoint is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)
    return result


def model_files(out: Path, name: str) -> dict:
    """Where an experiment keeps model ``name``'s final weights and, while it trains, its checkpoint
    (the ``weights`` and ``checkpoint`` arguments of :func:`train_and_score`)."""
    return {"weights": Path(out) / "weights" / f"{name}.weights.h5", "checkpoint": Path(out) / "checkpoints" / name}


def load_progress(checkpoint: Path, identity: dict) -> dict | None:
    """The progress saved in ``checkpoint`` by :func:`save_progress`, or None when there is none.

    ExperimentError when it was saved for another schedule, seed or set of training images.
    """
    path = Path(checkpoint) / _PROGRESS
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if {key: saved.get(key) for key in identity} != json.loads(json.dumps(identity)):
        raise ExperimentError(f"{checkpoint} holds a model trained with other settings (schedule, seed or training "
                              "images); delete that folder to train this one from the start")
    if not (Path(checkpoint) / saved["network"]).is_file():
        raise ExperimentError(f"{checkpoint}: {saved['network']} is missing; delete that folder to start again")
    return saved


def save_progress(checkpoint: Path, identity: dict, network, step: int, losses: list[float], seconds: float,
                  rng: np.random.Generator) -> None:
    """Save a model in training: the network first under a new name, then the record naming it,
    then the older network goes, so an interruption at any point leaves a usable pair."""
    checkpoint = Path(checkpoint)
    checkpoint.mkdir(parents=True, exist_ok=True)
    name = f"step{step:07d}.keras"
    network.save(checkpoint / name)
    write_json(checkpoint / _PROGRESS, {**identity, "network": name, "step": step, "losses": losses,
                                        "seconds": round(seconds, 1), "rng": rng.bit_generator.state})
    for old in checkpoint.glob("step*.keras"):
        if old.name != name:
            old.unlink()


def start_training(data: Path, split: str, train_names: list[str], schedule: Schedule, seed: int):
    """Seeded start of one model: its config, normalized training examples, a fresh network and the crop generator."""
    import keras

    from nucleiseg import training

    keras.utils.set_random_seed(seed)
    config = schedule.train_config(data, seed)
    examples = training.load_examples(data, split, config.normalization, names=train_names)
    return config, examples, training.build_network(config), np.random.default_rng(seed)


def seconds_per_step(data: Path, split: str, train_names: list[str], schedule: Schedule, seed: int,
                     steps: int = 10, warmup: int = 3) -> float:
    """Median seconds of one training step of ``schedule``'s network, on a throwaway model.

    ``warmup`` steps first (graph tracing, memory), then ``steps`` timed one by one;
    the median keeps a stray slow step (another process) from setting a budget.
    """
    from nucleiseg import training

    config, examples, network, rng = start_training(data, split, train_names, schedule, seed)
    for _ in range(warmup):
        training.train_step(network, examples, config, rng)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        training.train_step(network, examples, config, rng)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


#: Signature of :func:`train_and_score`; tests pass a stand-in.
Trainer = Callable[..., dict]


# --------------------------------------------------------------------------------------------
# Data selection
# --------------------------------------------------------------------------------------------


def split_names(data: Path, split: str, option: str = "--data") -> list[str]:
    """Stems of a split that have a mask, in split-file order; ExperimentError when there are none."""
    if not (Path(data) / "images").is_dir():
        raise ExperimentError(f"--data: {data} is not a data folder (no images/ folder in it)")
    try:
        pairs = layouts.list_pairs(Path(data), split)
    except (FileNotFoundError, layouts.DataError) as error:
        raise ExperimentError(f"{option}: {error}") from None
    missing = [pair.stem for pair in pairs if pair.mask is None]
    if missing:
        raise ExperimentError(f"{option}: {len(missing)} images of split {split!r} in {data} have no mask, e.g. {missing[0]}")
    if not pairs:
        raise ExperimentError(f"{option}: split {split!r} of {data} is empty")
    return [pair.stem for pair in pairs]


def names_hash(names: Iterable[str]) -> str:
    """Short, order-independent fingerprint of a list of image names."""
    return hashlib.sha1("\n".join(sorted(names)).encode()).hexdigest()[:12]


def model_seed(*parts: int) -> int:
    """A training seed derived from integers (e.g. seed, size, repeat), independent across them."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] % 2**31)


# --------------------------------------------------------------------------------------------
# Resume record and atomic outputs
# --------------------------------------------------------------------------------------------


class Ledger:
    """Finished models of an output folder, for resuming.

    ``OUT/settings.json`` holds the settings every row was made with;
    ``OUT/progress.csv`` one row per finished model, keyed by ``model``.
    Opening a ledger whose settings differ raises ExperimentError naming the
    differing settings, so results of different schedules never mix.
    """

    def __init__(self, out: Path, settings: dict, columns: list[str]):
        self.out = Path(out)
        self.columns = columns
        self.settings_path = self.out / "settings.json"
        self.progress_path = self.out / "progress.csv"
        self.out.mkdir(parents=True, exist_ok=True)
        settings = json.loads(json.dumps(settings))  # tuples and paths as JSON sees them
        if self.settings_path.is_file():
            previous = json.loads(self.settings_path.read_text())
            differing = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
            if differing:
                raise ExperimentError(
                    f"--out {self.out} holds models trained with other settings ({', '.join(differing)} differ, see "
                    f"{self.settings_path}); use another --out folder or delete that one"
                )
        else:
            write_json(self.settings_path, settings)
        self.rows: dict[str, dict] = {}
        if self.progress_path.is_file():
            # Whole numbers read back as int, so seeds and counts are written again unchanged.
            for row in read_csv(self.progress_path, LEDGER_TEXT_COLUMNS, lambda key: True):
                self.rows[row["model"]] = row

    def done(self, model: str) -> bool:
        return model in self.rows

    def add(self, row: dict) -> None:
        """Record a finished model (the whole file is rewritten atomically)."""
        self.rows[row["model"]] = row
        write_csv(self.progress_path, self.columns, list(self.rows.values()))


def clear_outputs(out: Path, names: Iterable[str]) -> None:
    """Remove the final outputs of an earlier run, so an interrupted run never looks complete."""
    for name in names:
        path = Path(out) / name
        if path.is_dir():
            for child in path.iterdir():
                child.unlink()
        else:
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Reference pipeline
# --------------------------------------------------------------------------------------------


def reference_scores(path: Path | None, pipeline: str, sets: Mapping[str, list[str]]) -> tuple[dict, str]:
    """The reference pipeline's figures on each named set of images.

    Parameters
    ----------
    path : Path or None
        A benchmark's ``per_image.csv`` (figures recomputed on exactly the
        images of each set) or ``summary.csv`` (its row, over whatever images
        that benchmark ran on; only usable for a single set).
    pipeline : str
        Row name, e.g. ``advanced``.
    sets : mapping of str to list of str
        Set name -> image stems.

    Returns
    -------
    (dict, str)
        Set name -> :func:`summarize` figures, and a sentence saying where
        they come from. ``({}, "...")`` when ``path`` is None.
    """
    if path is None:
        return {}, "no reference given (--reference)"
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"--reference: file not found: {path}")
    try:
        rows = [row for row in read_results(path) if row.get("pipeline") == pipeline]
    except ValueError as error:
        raise ExperimentError(f"--reference: {path} is not a benchmark CSV: {error}") from None
    if not rows:
        raise ExperimentError(f"--reference: {path} has no row of pipeline {pipeline!r}")
    if "image" in rows[0]:
        by_image = {row["image"]: row for row in rows}
        out = {}
        for name, stems in sets.items():
            missing = [s for s in stems if s not in by_image]
            if missing:
                raise ExperimentError(f"--reference: {path} lacks {len(missing)} of the {len(stems)} {name} images of {pipeline!r}, e.g. {missing[0]}")
            out[name] = summarize(by_image[s] for s in stems)
        return out, f"pipeline `{pipeline}` of `{path}`, per-image figures averaged over exactly the evaluated images"
    row = rows[0]
    if len(sets) != 1:
        raise ExperimentError(f"--reference: {path} is a summary.csv; give the benchmark's per_image.csv to get figures per image set")
    (name, stems), = sets.items()
    figures = {key: row[key] for key in ("images", "nuclei", "predicted", "f1_mean", "f1_050", "f1_070", "f1_090", "error_rate_070", "merges", "splits")}
    figures["missed"] = int(sum(row[f"missed_{b}"] for b in SIZE_BINS))
    note = "" if int(figures["images"]) == len(stems) else f" (WARNING: over its {figures['images']} images, not the {len(stems)} evaluated here)"
    return {name: figures}, f"pipeline `{pipeline}`, row of `{path}`{note}"


# --------------------------------------------------------------------------------------------
# Command-line helpers
# --------------------------------------------------------------------------------------------


def mean_cell(figures: Mapping, key: str = "f1_mean") -> str:
    """A report cell: the mean over a setting's models, with ``± sd`` when there were several."""
    spread = f" ± {figures[key + '_sd']:.3f}" if figures["models"] > 1 else ""
    return f"{figures[key]:.3f}{spread}"


def error_cells(figures: Mapping) -> str:
    """The ``error rate | missed | merges | splits`` cells of a report row (errors at IoU 0.7)."""
    return (f"{float(figures['error_rate_070']):.3f} | {float(figures['missed']):.0f} | {float(figures['merges']):.0f} | "
            f"{float(figures['splits']):.0f}")


def report_ending(title: str, plot: str) -> list[str]:
    """The last lines of every experiment's report.md: where the rows are, and its plot."""
    return ["", "Every model is a row of `results.csv`.", "", f"![{title}]({plot})", ""]


def add_experiment_parser(sub, name: str, help: str, doc: str, steps: int, handler, varied: tuple = ()):
    """Register an experiment sub-command with the shared schedule options; returns its parser for its own options.

    The description is the first paragraph of ``doc`` (the module's docstring).
    ``varied`` names schedule options (``"width"``, ``"steps"``) the experiment sets
    per model itself, so the sub-command does not offer them.
    """
    parser = sub.add_parser(name, help=help, description=doc.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_schedule_arguments(parser, steps=steps, varied=varied)
    parser.set_defaults(handler=handler)
    return parser


def add_schedule_arguments(parser, steps: int, varied: tuple = ()) -> None:
    """Options shared by the experiment sub-commands (less the ``varied`` ones, see :func:`add_experiment_parser`)."""
    parser.add_argument("--data", required=True, type=Path, help="data folder in our layout (e.g. ../shared/data/dsb2018-fluo)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (resumes the models already recorded there)")
    parser.add_argument("--train-split", default="train", help="split the training images come from (default train)")
    parser.add_argument("--val-split", default="val", help="split of the evaluation images (default val)")
    parser.add_argument("--val-images", type=int, default=0, help="score on the first K images of the validation split only (default 0: all)")
    if "width" not in varied:
        parser.add_argument("--width", type=int, default=16, help="U-Net base width (default 16; the paper: 64)")
    if "steps" not in varied:
        parser.add_argument("--steps", type=int, default=steps, help=f"training steps per model (default {steps})")
    parser.add_argument("--crop", type=int, default=256, help="crop side in pixels (default 256)")
    parser.add_argument("--batch", type=int, default=4, help="crops per step (default 4)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--cosine", action="store_true",
                        help="decay the learning rate to 0 along half a cosine (steadier final weights than a constant rate)")
    parser.add_argument("--robust", action="store_true",
                        help="the robust augmentation (signal, blur, noise, elastic, scale jitter 0.5-2x) instead of the shipped U-Net's")
    parser.add_argument("--bf16", action="store_true", help="train in mixed bfloat16 (scoring stays float32)")
    parser.add_argument("--normalization", choices=("percentile", "robust"), default="percentile",
                        help="intensity normalization in training and scoring (default percentile)")
    parser.add_argument("--percentiles", type=float, nargs=2, metavar=("LOW", "HIGH"), default=normalization.DEFAULT_PERCENTILES,
                        help="percentile normalization: the percentiles mapped to 0 and 1 (default 0.1 99.9)")
    parser.add_argument("--seed", type=int, default=0, help="seed of subsets and training (default 0)")
    parser.add_argument("--repeats", type=int, default=1, help="models per setting, each with its own draw and seed (default 1)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="benchmark per_image.csv (preferred: averaged over the evaluated images) or summary.csv of the reference pipeline")
    parser.add_argument("--reference-pipeline", default=REFERENCE_PIPELINE, help=f"reference row name (default {REFERENCE_PIPELINE})")


def schedule_from(args) -> Schedule:
    try:
        spec = normalization.spec_for(args.normalization, tuple(args.percentiles))
    except ValueError as error:
        raise ExperimentError(f"--normalization/--percentiles: {error}") from None
    return Schedule(width=getattr(args, "width", Schedule.width), steps=getattr(args, "steps", Schedule.steps),
                    crop=args.crop, batch=args.batch, learning_rate=args.learning_rate, cosine=args.cosine,
                    robust=args.robust, bf16=args.bf16, normalization=spec)


def canonical_command(name: str, args) -> str:
    """The sub-command with every option spelled out (reproduces the run whatever the defaults become)."""
    parts = ["python", "-m", "benchmark", name]
    for key, value in vars(args).items():
        if key in ("command", "handler") or value is None or value is False:
            continue
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def run_cli(body: Callable[[], object]) -> int:
    """Run a sub-command body; exit status 0, 2 for bad arguments or data, 130 when interrupted."""
    try:
        body()
    except (ExperimentError, layouts.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished models are in progress.csv: re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


def command_block(command: str) -> list[str]:
    """Report lines showing the command (or saying there was none)."""
    return ["```", command, "```"] if command else ["(called from Python, not from the command line)"]


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M")


def make_logger(path: Path) -> Callable[[str], None]:
    """Print a message and append it to ``path``."""
    def log(message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        with open(path, "a") as handle:
            handle.write(line + "\n")
    return log

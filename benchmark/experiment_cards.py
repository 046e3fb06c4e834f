"""Model cards for the experiments' models, so they load, segment and are tuned like shipped ones.

Every model an experiment trains (:func:`benchmark.experiments.train_and_score`) gets
``OUT/weights/NAME.json`` beside ``NAME.weights.h5`` when it is saved. For folders made before
that, or a card lost since::

    python -m benchmark model-cards OUT

writes the missing cards from the folder's ``settings.json`` (data, training split, schedule)
and the model's row of ``progress.csv`` (seed, steps, width, training images, seconds); such a
card says the hardware was not recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import experiments as ex
from .tables import read_csv

#: ``hardware`` of a card written after the run, from its folder.
NOT_RECORDED = "not recorded (card written after the run from its experiment folder)"


def write(data: Path, split: str, train_names: list[str], schedule: ex.Schedule, seed: int, weights: Path,
          wall_seconds: float, hardware: str | None = None) -> Path:
    """Write the card of one experiment model beside ``weights`` (see
    :func:`nucleiseg.training.experiment_card`); returns the card's path."""
    from nucleiseg import cards
    from nucleiseg.training import experiment_card

    weights = Path(weights)
    config = schedule.train_config(Path(data).resolve(), seed)  # as the folder's settings.json has it
    config.train_split = split
    record = {"folder": str(weights.parent.parent), "model": cards.card_path_for(weights).stem,
              "schedule": json.loads(json.dumps(schedule.to_dict()))}
    return experiment_card(config, weights, list(train_names), schedule.steps, wall_seconds,
                           schedule.postprocess.to_dict(), record, hardware=hardware)


def write_missing(out: Path, log=print) -> list[Path]:
    """Write the card of every model of the experiment folder ``out`` whose weights have none.

    Raises
    ------
    ExperimentError
        Naming the file, when ``settings.json`` or ``progress.csv`` is missing or a model's
        list of training images cannot be read.
    """
    out = Path(out)
    settings_path, progress_path = out / "settings.json", out / "progress.csv"
    for path in (settings_path, progress_path):
        if not path.is_file():
            raise ex.ExperimentError(f"{path} not found: {out} is not a folder written by an experiment")
    settings = json.loads(settings_path.read_text())
    try:
        data, split, shared = Path(settings["data"]), settings["train_split"], dict(settings["schedule"])
    except KeyError as error:
        raise ex.ExperimentError(f"{settings_path} lacks {error}: not written by an experiment") from None
    from nucleiseg import cards

    written = []
    for row in read_csv(progress_path, ex.LEDGER_TEXT_COLUMNS, lambda key: True):
        weights = ex.model_files(out, row["model"])["weights"]
        if not weights.is_file() or cards.card_path_for(weights).is_file():
            continue
        values = {**shared, "steps": int(row["steps"])}
        if "width" in row:
            values["width"] = int(row["width"])
        schedule = ex.Schedule.from_dict(values)
        names = _training_names(out, row, data, split)
        written.append(write(data, split, names, schedule, int(row["seed"]), weights, float(row["train_seconds"]),
                             hardware=NOT_RECORDED))
        log(f"wrote {written[-1]}")
    return written


def _training_names(out: Path, row: dict, data: Path, split: str) -> list[str]:
    """A model's training stems: its ``images_file`` when the experiment drew a subset, else the whole split."""
    listed = row.get("images_file")
    if not listed:
        return ex.split_names(data, split)
    path = out / listed
    if not path.is_file():
        raise ex.ExperimentError(f"{path} not found: the training images of model {row['model']!r}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def add_parser(sub) -> None:
    parser = sub.add_parser("model-cards", help="write the missing model cards of an experiment folder's models",
                            description=__doc__.split("\n\n")[1].strip())
    parser.add_argument("out", type=Path, help="an experiment's output folder (holds settings.json and progress.csv)")
    parser.set_defaults(handler=lambda args: ex.run_cli(lambda: write_missing(args.out)))

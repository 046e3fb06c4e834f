"""Shipping a recipe's model: copy it to a shipped name with the choices and estimate of its control.

A recipe's final model is trained on every annotated image, so its own scores on val and test
measure fit. Every choice it ships with comes from the *control*, the same recipe on the train
split only: the post-processing (and the record of how it was tuned), and the honest estimate,
which is the control's scores through headless CellProfiler read from benchmark run folders
(``summary.csv``). Nothing is typed by hand: the card says which folders the figures came from.

    python -m nucleiseg.training.promote MODEL --to models/unet/unet-dsb2018 --control CONTROL \\
        --estimate val=out/val-control --estimate test=out/test-control [--baseline advanced]

MODEL and CONTROL are cards; the estimate folders are ``python -m benchmark run`` outputs that
scored the control's pipeline and, in the same or another folder per split (``--baseline-run``),
the baseline pipeline on the same images.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

from nucleiseg import cards


class PromoteError(ValueError):
    """A card, a run folder or a setting cannot be used; the message names it."""


def summary_row(run: Path, pipeline: str | None = None) -> dict:
    """The ``summary.csv`` row of ``pipeline`` in a benchmark run folder (the only row when None)."""
    path = Path(run) / "summary.csv"
    if not path.is_file():
        raise PromoteError(f"{path}: no summary.csv (is {run} a finished `python -m benchmark run` folder?)")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if pipeline is None:
        if len(rows) != 1:
            raise PromoteError(f"{path}: {len(rows)} pipelines; name the control's with --control-pipeline")
        return rows[0]
    for row in rows:
        if row["pipeline"] == pipeline:
            return row
    raise PromoteError(f"{path}: no pipeline {pipeline!r} (has {', '.join(r['pipeline'] for r in rows)})")


def split_figures(run: Path, baseline_run: Path, control_pipeline: str | None, baseline: str) -> dict:
    """Images, the control's mean F1 and the baseline's on one split, with where they came from."""
    control = summary_row(run, control_pipeline)
    other = summary_row(baseline_run, baseline)
    if control["images"] != other["images"]:
        raise PromoteError(f"{run} scored {control['images']} images but {baseline_run} scored "
                           f"{other['images']} for {baseline}: not the same split")
    return {"images": int(control["images"]), "f1_mean": round(float(control["f1_mean"]), 4),
            "missed_tiny": int(float(control["missed_tiny"])),
            f"{baseline}_f1_mean": round(float(other["f1_mean"]), 4),
            "run": str(run), "baseline_run": str(baseline_run), "pipeline": control["pipeline"]}


def promoted_card(model: dict, control: dict, control_path: Path, name: str, estimate: dict,
                  schedule_note: str | None = None, estimate_note: str | None = None,
                  tuned: dict | None = None, tuned_path: Path | None = None) -> dict:
    """The shipped card: ``model``'s training record, ``control``'s post-processing, the estimate.

    ``tuned`` is the card where that post-processing was tuned (default: the control itself), whose
    tuning record is shipped with it; its settings must be the control's, since the estimate
    scored the control with them.
    """
    if model.get("architecture") != control.get("architecture"):
        raise PromoteError(f"{control_path}: architecture {control.get('architecture')} is not the model's "
                           f"{model.get('architecture')}")
    if "postprocess" not in control:
        raise PromoteError(f"{control_path}: no tuned postprocess to ship with")
    tuned, tuned_path = (control, control_path) if tuned is None else (tuned, tuned_path)
    if tuned.get("postprocess") != control["postprocess"]:
        raise PromoteError(f"--postprocess-from {tuned_path}: its postprocess differs from the control's, which the "
                           "estimate was scored with")
    card = dict(model, name=name, postprocess=control["postprocess"])
    tuning = tuned.get("postprocess_tuning")
    if tuning:
        whose = "the control" if tuned_path == control_path else "the model the recipe took them from"
        card["postprocess_tuning"] = dict(tuning, model=f"{whose}, {tuned_path}")
    if schedule_note:
        card["training"] = dict(model["training"], schedule_note=schedule_note)
    card["estimate"] = {
        "note": estimate_note or (
            "This model has seen every split it could be scored on, so its own figures there measure fit. "
            "The honest estimate is the control (the same recipe on the train split only), scored through "
            "headless CellProfiler with pipelines/unet.cppipe and the control's card as the custom model."),
        "control": str(control_path),
        "control_command": control.get("training", {}).get("command", ""),
        **estimate,
    }
    return card


def promote(model_path: Path, to: Path, control_path: Path, estimate: dict, postprocess_from: Path | None = None,
            **notes) -> Path:
    """Copy ``model_path``'s weights to ``to``.weights.h5 and write the shipped card beside them."""
    model = cards.read_card(model_path)
    control = cards.read_card(control_path)
    if postprocess_from is not None:
        notes.update(tuned=cards.read_card(postprocess_from), tuned_path=postprocess_from)
    if "members" in model:
        raise PromoteError(f"{model_path}: an ensemble card; promote its members one by one")
    cards.verify(model_path, onnx=False)  # the weights to copy exist and match their checksum
    source = cards.card_path_for(model_path).parent / model["weights"]
    to = Path(to)
    if not to.parent.is_dir():
        raise PromoteError(f"--to {to}: folder {to.parent} does not exist")
    card = promoted_card(model, control, control_path, to.name, estimate, **notes)
    weights = to.parent / f"{to.name}.weights.h5"
    tmp = weights.with_suffix(".h5.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(weights)
    return cards.write_card(card, weights)


def _estimate_arguments(values: list[str], option: str) -> dict:
    pairs = {}
    for value in values:
        split, sep, folder = value.partition("=")
        if not sep or not split or not folder:
            raise PromoteError(f"{option} {value!r}: expected SPLIT=FOLDER, e.g. val=out/val-control")
        pairs[split] = Path(folder)
    return pairs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nucleiseg.training.promote", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="card of the recipe's model trained on every image")
    parser.add_argument("--to", type=Path, required=True, help="shipped path without suffix, e.g. models/unet/unet-dsb2018")
    parser.add_argument("--control", type=Path, required=True, help="card of the same recipe on the train split only")
    parser.add_argument("--estimate", action="append", default=[], metavar="SPLIT=FOLDER",
                        help="benchmark run folder that scored the control on SPLIT (repeat per split)")
    parser.add_argument("--baseline-run", action="append", default=[], metavar="SPLIT=FOLDER",
                        help="run folder with the baseline on SPLIT when not in the --estimate folder")
    parser.add_argument("--baseline", default="advanced", help="pipeline the estimate is set beside (default advanced)")
    parser.add_argument("--control-pipeline", default=None, help="the control's pipeline name in the run folders")
    parser.add_argument("--postprocess-from", type=Path, default=None, metavar="CARD",
                        help="card where the control's post-processing was tuned (its tuning record is shipped; "
                             "default: the control)")
    parser.add_argument("--schedule-note", default=None, help="replaces the card's training.schedule_note")
    parser.add_argument("--estimate-note", default=None, help="replaces the estimate's default note")
    args = parser.parse_args(argv)
    try:
        runs = _estimate_arguments(args.estimate, "--estimate")
        if not runs:
            raise PromoteError("--estimate: give at least one SPLIT=FOLDER (the control's val and test runs)")
        baselines = _estimate_arguments(args.baseline_run, "--baseline-run")
        unknown = set(baselines) - set(runs)
        if unknown:
            raise PromoteError(f"--baseline-run {', '.join(sorted(unknown))}: no --estimate for that split")
        estimate = {split: split_figures(run, baselines.get(split, run), args.control_pipeline, args.baseline)
                    for split, run in runs.items()}
        path = promote(args.model, args.to, args.control, estimate, postprocess_from=args.postprocess_from,
                       schedule_note=args.schedule_note,
                       estimate_note=args.estimate_note)
    except (PromoteError, cards.ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.with_suffix('').with_suffix('')}.weights.h5")
    for split, figures in estimate.items():
        print(f"estimate {split}: {figures['images']} images, control {figures['f1_mean']:.4f}, "
              f"{args.baseline} {figures[args.baseline + '_f1_mean']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

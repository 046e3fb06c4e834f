"""Choose post-processing settings for a trained model on training images.

``python -m nucleiseg.tune_postprocess MODEL_CARD --data DIR --split train --images 60``

Probabilities are predicted once per image; settings
(:class:`~nucleiseg.postprocess.PostprocessSettings`) are then searched one
field at a time over a grid (:func:`nucleiseg.search.coordinate_search`, from
the defaults) and scored by macro mean F1. The best settings
are written into the card's ``postprocess`` field (the weights, and so the
checksum, are untouched). Tune on the
training split: validation figures stay honest only if nothing was chosen
on them.

With ``--perturbations scale_0.5x,scale_2x`` (names of
:data:`nucleiseg.perturbations.PERTURBATIONS`), every drawn image is scored as
it is and as each perturbed copy, labels perturbed alike: settings such as
the minimum size are then chosen for images of other magnifications too, still
on training images only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from . import cards, layouts, metric, perturbations
from .inference import predict_probabilities
from .postprocess import PostprocessSettings
from .search import coordinate_search

GRID = {
    "interior_threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
    "boundary_boost": (0.5, 1.0, 2.0),
    "dilation": (0, 1, 2, 3, 4),
    "foreground_threshold": (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95),
    "min_size": (10, 25, 50),
    "relative_min_size": (0.0, 0.1, 0.2, 0.3),
}


def sample_pairs(data_dir: Path, split: str, images: int, seed: int = 0, subset_column: str = "",
                 exclude_kinds: tuple[str, ...] = ()) -> list:
    """A reproducible random subset of a split's image/mask pairs.

    With ``subset_column``, only images whose column in the data folder's
    ``manifest.csv`` is non-empty are drawn from (ValueError when none is). With
    ``exclude_kinds``, images of those kinds (:func:`nucleiseg.layouts.image_kinds`) are
    not: a model trained without a kind is tuned without it too.
    """
    pairs = layouts.marked_pairs(data_dir, split, subset_column) if subset_column else layouts.list_pairs(data_dir, split)
    if exclude_kinds:
        allowed = {pair.stem for pair in layouts.kind_pairs(data_dir, split, exclude=tuple(exclude_kinds))}
        pairs = [pair for pair in pairs if pair.stem in allowed]
    order = np.random.default_rng(seed).permutation(len(pairs))
    return [pairs[i] for i in sorted(order[:images])] if images else pairs


def tune(card: Path, data_dir: Path, split: str = "train", images: int = 60, grid: dict = GRID,
         subset_column: str = "", perturbed: tuple[str, ...] = (), exclude_kinds: tuple[str, ...] = ()) -> dict:
    """Search post-processing settings for a model on a split's images.

    ``perturbed`` names perturbations whose copies of every image are scored beside it;
    ``exclude_kinds`` leaves images of those kinds out (:func:`sample_pairs`).

    Returns
    -------
    dict
        ``best`` (settings as a dict), ``f1_mean`` (their macro mean F1),
        ``default_settings_f1_mean``, ``images`` (how many were scored, copies
        included), ``perturbations`` and ``grid`` (the values searched), as
        :func:`write_tuning` records them.
    """
    perturbed = tuple(perturbations.check_names(perturbed))
    chosen = sample_pairs(data_dir, split, images, subset_column=subset_column, exclude_kinds=exclude_kinds)
    model = cards.load(card)
    cases = []
    for pair in chosen:
        image, truth = layouts.read_image(pair.image), layouts.read_labels(pair.mask)
        versions = [(image, truth)] + [perturbations.perturb(name, image, truth, pair.stem) for name in perturbed]
        cases += [(predict_probabilities(version, model), labels) for version, labels in versions]

    def score(settings: PostprocessSettings) -> float:
        return float(np.mean([metric.score_image(gt, model.model_type.to_labels(p, settings)).f1_mean for p, gt in cases]))

    best, best_f1 = coordinate_search(lambda point: score(PostprocessSettings(**point)), PostprocessSettings().to_dict(), grid)
    return {"best": best, "f1_mean": best_f1, "default_settings_f1_mean": score(PostprocessSettings()),
            "images": len(cases), "perturbations": list(perturbed), "exclude_kinds": list(exclude_kinds),
            "grid": {name: list(values) for name, values in grid.items()}}


def write_tuning(card: Path, result: dict, split: str, subset_column: str = "") -> Path:
    """Record a :func:`tune` result in a model card (``postprocess``, and how it was found); returns the card path."""
    card_path = cards.card_path_for(card)
    record = json.loads(card_path.read_text())
    PostprocessSettings.from_dict(result["best"])  # refuse to write settings the modules would reject
    record["postprocess"] = result["best"]
    record["postprocess_tuning"] = {
        "split": split,
        "images": result["images"],
        **({"subset_column": subset_column} if subset_column else {}),
        **({"perturbations": result["perturbations"]} if result.get("perturbations") else {}),
        **({"exclude_kinds": result["exclude_kinds"]} if result.get("exclude_kinds") else {}),
        "f1_mean": round(result["f1_mean"], 4),
        "default_settings_f1_mean": round(result["default_settings_f1_mean"], 4),
        "grid": result["grid"],
        "search": "one field at a time from the defaults, repeated until no change",
    }
    return cards.save_card(record, card_path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nucleiseg.tune_postprocess", description=__doc__)
    parser.add_argument("card", type=Path, help="model card (.json)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--images", type=int, default=60, help="random images of the split (0: all)")
    parser.add_argument("--subset-column", default="", metavar="COLUMN",
                        help="only images whose COLUMN in the data folder's manifest.csv is non-empty (e.g. bbbc039_field)")
    parser.add_argument("--perturbations", default="", metavar="NAMES",
                        help="comma-separated perturbations (e.g. scale_0.5x,scale_2x) whose copies of each image are scored too")
    parser.add_argument("--exclude-kind", action="append", default=[], metavar="KIND",
                        help="leave out images of this kind (nucleiseg.layouts.image_kinds, e.g. 256x256; repeatable): "
                             "tune a model trained without a kind on its own kinds only")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the card")
    args = parser.parse_args(argv)
    perturbed = tuple(name.strip() for name in args.perturbations.split(",") if name.strip())
    try:
        perturbations.check_names(perturbed)
    except ValueError as error:
        parser.error(f"--perturbations: {error}")
    try:
        result = tune(args.card, args.data, args.split, args.images, subset_column=args.subset_column, perturbed=perturbed,
                      exclude_kinds=tuple(args.exclude_kind))
    except ValueError as error:  # ModelError too
        parser.error(str(error))
    print(json.dumps({"best": result["best"], "f1_mean": round(result["f1_mean"], 4),
                      "default_settings_f1_mean": round(result["default_settings_f1_mean"], 4),
                      "split": args.split, "images": result["images"], "subset_column": args.subset_column,
                      "perturbations": list(perturbed), "exclude_kinds": args.exclude_kind}, indent=2))
    if not args.dry_run:
        path = write_tuning(args.card, result, args.split, args.subset_column)
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

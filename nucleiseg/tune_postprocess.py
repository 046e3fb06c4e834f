"""Choose post-processing settings for a trained model on training images.

``python -m nucleiseg.tune_postprocess MODEL_CARD --data DIR --split train --images 60``

Probabilities are predicted once per image; a grid of
:class:`~nucleiseg.postprocess.PostprocessSettings` is then scored by macro
mean F1. The best settings are written into the card's ``postprocess``
field (the weights, and so the checksum, are untouched). Tune on the
training split: validation figures stay honest only if nothing was chosen
on them.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from . import layouts, metric, models
from .inference import predict_probabilities
from .postprocess import PostprocessSettings, probabilities_to_labels

GRID = {
    "interior_threshold": (0.3, 0.4, 0.5, 0.6),
    "boundary_boost": (0.5, 1.0, 2.0),
    "dilation": (0, 1, 2, 3),
    "min_size": (10, 25),
}


def sample_pairs(data_dir: Path, split: str, images: int, seed: int = 0) -> list:
    """A reproducible random subset of a split's image/mask pairs."""
    pairs = layouts.list_pairs(data_dir, split)
    order = np.random.default_rng(seed).permutation(len(pairs))
    return [pairs[i] for i in sorted(order[:images])] if images else pairs


def tune(card: Path, data_dir: Path, split: str = "train", images: int = 60, grid: dict = GRID) -> tuple[dict, float, float]:
    """Best settings (as a dict), their macro mean F1, and the F1 of the default settings."""
    model = models.load(card)
    cases = []
    for pair in sample_pairs(data_dir, split, images):
        image = layouts.read_image(pair.image)
        cases.append((predict_probabilities(image, model), layouts.read_labels(pair.mask)))

    def score(settings: PostprocessSettings) -> float:
        return float(np.mean([metric.score_image(gt, probabilities_to_labels(p, settings)).f1_mean for p, gt in cases]))

    names = list(grid)
    candidates = [PostprocessSettings(**dict(zip(names, values))) for values in itertools.product(*(grid[n] for n in names))]
    best_f1, best = max((score(s), i) for i, s in enumerate(candidates))
    return candidates[best].to_dict(), best_f1, score(PostprocessSettings())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nucleiseg.tune_postprocess", description=__doc__)
    parser.add_argument("card", type=Path, help="model card (.json)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--images", type=int, default=60, help="random images of the split (0: all)")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the card")
    args = parser.parse_args(argv)
    best, best_f1, default_f1 = tune(args.card, args.data, args.split, args.images)
    print(json.dumps({"best": best, "f1_mean": round(best_f1, 4), "default_settings_f1_mean": round(default_f1, 4),
                      "split": args.split, "images": args.images}, indent=2))
    if not args.dry_run:
        card_path = models.card_path_for(args.card)
        card = json.loads(card_path.read_text())
        card["postprocess"] = best
        card["postprocess_tuning"] = {"split": args.split, "images": args.images, "f1_mean": round(best_f1, 4),
                                      "default_settings_f1_mean": round(default_f1, 4),
                                      "grid": {k: list(v) for k, v in GRID.items()}}
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"updated {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The quality gate: each shipped model on a fixed handful of real val images.

``tests/test_quality_gate.py`` runs every gate below through the one inference
path (:func:`nucleiseg.inference.segment`, the card's tuned post-processing)
and fails when a model's mean F1 falls more than :data:`TOLERANCE` below the
figure recorded in ``quality_gate.json``. Record the figures again after
shipping new weights, and say so in the commit:

    .venv/bin/python tests/quality_gate.py --record

The images are chosen by rule from the data folder's manifest (sorted by name
within each group), so the gate needs no list of file names. A gate may perturb
its images first (:func:`nucleiseg.perturbations.perturb`, seeded by name and
image): the general U-Net is trained to survive noise, blur and a halved
magnification, and a model that loses that must fail CI as surely as one that
loses clean accuracy.

Since the nineteenth session the general U-Net has been trained on every annotated image of
the shared data, these val images included: for it the gate guards against regressions (bad
weights, a broken inference path), not the accuracy on unseen images (README, *Where the general
U-Net stands*; docs/GENERAL-UNET.md, *The recipe on every image*).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NUCLEISEG_DATA", ROOT.parent / "shared" / "data" / "dsb2018-fluo"))
RECORD = Path(__file__).with_name("quality_gate.json")
TOLERANCE = 0.02

#: (group, how many): general models see several image kinds, the BBBC039 models BBBC039 fields.
GENERAL_IMAGES = (("256x256", 4), ("360x360", 1), ("520x696", 1), ("bbbc039", 2))
BBBC039_IMAGES = (("bbbc039", 3),)


@dataclass(frozen=True)
class Gate:
    """One shipped model (``networks`` of its ensemble) on one rule-chosen image set."""

    name: str
    card: Path
    images: tuple
    networks: int | None = None  # None: a single-network card
    perturbation: str | None = None  # a name of nucleiseg.perturbations.PERTURBATIONS
    match_size: bool = False  # as the model's shipped pipeline runs it (nucleiseg.inference.segment)


GENERAL_UNET = ROOT / "models/unet/unet-dsb2018.json"
GATES = (
    Gate("unet-dsb2018", GENERAL_UNET, GENERAL_IMAGES, match_size=True),
    *(Gate(f"unet-dsb2018 under {name}", GENERAL_UNET, GENERAL_IMAGES, perturbation=name, match_size=True)
      for name in ("noise", "blur", "scale_0.5x")),
    Gate("unet-bbbc039", ROOT / "models/unet/unet-bbbc039.json", BBBC039_IMAGES),
    Gate("deepcell-dsb2018 (network 1)", ROOT / "models/deepcell/deepcell-dsb2018.json", GENERAL_IMAGES, 1),
    Gate("deepcell-bbbc039 (network 1)", ROOT / "models/deepcell/deepcell-bbbc039.json", BBBC039_IMAGES, 1),
)


def _group(row: dict) -> str:
    return "bbbc039" if row["bbbc039_field"] else f"{row['height']}x{row['width']}"


def choose_images(rule: tuple, data: Path = DATA, split: str = "val") -> list[str]:
    """Stems of ``split`` by ``rule`` ((group, count) pairs), the first ones by name in each group."""
    with open(data / "manifest.csv", newline="") as handle:
        rows = sorted((row for row in csv.DictReader(handle) if row["split"] == split), key=lambda r: r["name"])
    chosen = []
    for group, count in rule:
        members = [row["name"] for row in rows if _group(row) == group]
        if len(members) < count:
            raise ValueError(f"{data}: split {split!r} has {len(members)} images of group {group}, the gate needs {count}")
        chosen.extend(members[:count])
    return chosen


def score(model, stems: list[str], data: Path = DATA, settings=None, perturbation: str | None = None,
          match_size: bool = False) -> float:
    """Mean object F1 of a loaded model on the images ``stems`` of ``data`` (perturbed first if asked)."""
    from nucleiseg import layouts, metric, perturbations
    from nucleiseg.inference import segment

    by_stem = {pair.stem: pair for pair in layouts.list_pairs(data, "val")}
    values = []
    for stem in stems:
        pair = by_stem[stem]
        image, truth = layouts.read_image(pair.image), layouts.read_labels(pair.mask)
        if perturbation:
            image, truth = perturbations.perturb(perturbation, image, truth, stem)
        _, labels = segment(image, model, settings, match_size=match_size)
        values.append(metric.score_image(truth, labels).f1_mean)
    return float(np.mean(values))


def run_gate(gate: Gate, data: Path = DATA) -> tuple[float, list[str]]:
    """(mean F1, stems) of one gate's model with its card's tuned post-processing."""
    from nucleiseg import cards

    stems = choose_images(gate.images, data)
    model = cards.load(gate.card, ensemble_size=gate.networks)
    return score(model, stems, data, cards.tuned_postprocess(gate.card), gate.perturbation, gate.match_size), stems


def read_record(path: Path = RECORD) -> dict:
    return json.loads(path.read_text())["gates"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help=f"write the figures to {RECORD.name}")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    results = {}
    for gate in GATES:
        f1, stems = run_gate(gate, args.data)
        results[gate.name] = {"f1_mean": round(f1, 4), "images": stems}
        print(f"{gate.name:32s} mean F1 {f1:.4f} on {len(stems)} val images")
    if args.record:
        RECORD.write_text(json.dumps({"command": "python tests/quality_gate.py --record", "tolerance": TOLERANCE,
                                      "gates": results}, indent=1) + "\n")
        print(f"wrote {RECORD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

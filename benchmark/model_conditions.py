"""Model cards scored in this process on a split and on perturbed copies of it: a quick robustness check.

    python -m benchmark conditions --models CARD[,CARD ...] --data DIR --out OUT
        [--split val] [--limit 20] [--kind 256x256] [--perturbations noise,blur,...] [--engine auto] [--match-size off|on|both]

The conditions of ``benchmark robustness`` (:mod:`nucleiseg.perturbations`, made in
memory, never written to the data folder), but each model runs through the modules'
own path (:func:`nucleiseg.inference.segment`, the card's tuned post-processing)
without CellProfiler: minutes instead of an hour, for choosing between models, e.g.
a training run's card against the shipped one. The README's robustness figures come
from ``benchmark robustness``, which runs the pipelines headless.

Writes ``OUT/conditions.csv`` (one row per model and condition: the figures of
:data:`benchmark.experiments.SCORE_COLUMNS`, the missed tiny nuclei and why nuclei were
missed, :func:`nucleiseg.metric.missed_cause_figures`) and ``OUT/conditions.md`` (mean F1
per condition, its change from clean, the mean over the conditions, and the missed nuclei
of each condition by cause); the CSV last, so its presence means the run finished.
"""

from __future__ import annotations

from pathlib import Path

from nucleiseg import layouts, metric, perturbations

from . import experiments as ex
from .outputs import write_atomic
from .robustness import CLEAN, MAX_DROP
from .tables import write_csv

#: Figures of each condition besides :data:`benchmark.experiments.SCORE_COLUMNS`.
EXTRA_COLUMNS = ("missed_tiny", *metric.extra_figure_keys())
COLUMNS = ("model", "card", "condition", *ex.SCORE_COLUMNS, *EXTRA_COLUMNS)


def evaluation_sets(clean: list, names: list[str]) -> dict:
    """``{condition: examples}``: the clean ``(stem, image, labels)`` examples and each perturbed copy of them."""
    sets = {CLEAN: clean}
    for name in names:
        sets[name] = [(stem, *perturbations.perturb(name, image, labels, stem)) for stem, image, labels in clean]
    return sets


def score_card(card: Path, sets: dict, engine: str = "auto", match_size: bool = False) -> dict:
    """``{condition: figures}`` of one model card on each set, with its tuned post-processing
    (``match_size``: nuclei brought to the training size, :func:`nucleiseg.inference.segment`)."""
    from nucleiseg import cards
    from nucleiseg.training import score_model

    model = cards.load(card, engine=engine)
    settings = cards.tuned_postprocess(card)
    scores = {}
    for condition, examples in sets.items():
        rows = score_model(model, examples, settings, match_size=match_size)
        scores[condition] = ex.summarize(rows, extra=EXTRA_COLUMNS)
    return scores


def model_names(cards_: list[Path]) -> list[str]:
    """A short distinct name per card: its stem, or its path where stems repeat."""
    stems = [card.stem for card in cards_]
    return [stem if stems.count(stem) == 1 else str(card) for stem, card in zip(stems, cards_)]


def report(rows: list[dict], conditions: list[str], command: str, images: int, split: str) -> str:
    """``conditions.md``: mean F1 per model and condition, the change from clean, the mean over conditions."""
    models = list(dict.fromkeys(row["model"] for row in rows))
    by = {(row["model"], row["condition"]): row for row in rows}
    lines = ["# Models under perturbed copies of the images (in process, without CellProfiler)", "",
             f"{images} {split} images; mean F1 over IoU 0.50-0.95 (change from clean); "
             f"drops over {MAX_DROP} in bold; missed tiny nuclei at IoU 0.7 on clean images.", "",
             "| model | " + " | ".join(conditions) + " | mean of the conditions | missed tiny (clean) |",
             "|---|" + "---:|" * (len(conditions) + 2)]
    for model in models:
        clean = by[(model, CLEAN)]["f1_mean"]
        cells = []
        for condition in conditions:
            value = by[(model, condition)]["f1_mean"]
            drop = value - clean
            text = f"{value:.3f}" if condition == CLEAN else f"{value:.3f} ({drop:+.3f})"
            cells.append(f"**{text}**" if drop < -MAX_DROP else text)
        mean = sum(by[(model, c)]["f1_mean"] for c in conditions) / len(conditions)
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {mean:.3f} | {by[(model, CLEAN)]['missed_tiny']} |")
    lines += ["", *cause_table(rows), "", "Command:", "", "```", command, "```", ""]
    return "\n".join(lines)


def cause_table(rows: list[dict]) -> list[str]:
    """Markdown lines: per model and condition, the nuclei missed at IoU 0.7 by cause (tiny ones in
    brackets) and the size of the matched outlines."""
    causes = metric.MISSED_CAUSES
    lines = ["Nuclei missed at IoU 0.7 by cause (`nucleiseg.metric.missed_causes`; tiny ones, under the "
             "metric's first size edge, in brackets), and the outlines' size: the median of predicted over true "
             "area of the nuclei matched at IoU 0.5, averaged over images (`nucleiseg.metric.outline_size`):", "",
             "| model | condition | " + " | ".join(c.replace("_", " ") for c in causes) + " | missed | outline area / true area |",
             "|---|---|" + "---:|" * (len(causes) + 2)]
    for row in rows:
        cells = [f"{row[f'missed_{c}']} ({row[f'missed_tiny_{c}']})" for c in causes]
        lines.append(f"| {row['model']} | {row['condition']} | " + " | ".join(cells)
                     + f" | {row['missed']} | {row[metric.AREA_RATIO_KEY]:.2f} |")
    return lines


#: ``--match-size`` choices: whether models run with nucleus size matching, without, or both ways.
MATCH_SIZE = {"off": (False,), "on": (True,), "both": (False, True)}
MATCHED_SUFFIX = " (size matched)"


def run(cards_: list[Path], data: Path, out: Path, split: str = "val", limit: int = 0,
        perturbation_names: list[str] | None = None, engine: str = "auto", command: str = "",
        match_size: str = "off", kinds: tuple[str, ...] = ()) -> list[dict]:
    """Score every card on the split's first ``limit`` images (0: all) and their perturbed copies; write the outputs.

    ``kinds`` keeps only images of those kinds (:func:`nucleiseg.layouts.image_kinds`), e.g. the
    kind a leave-one-kind-out model never saw.

    ``match_size`` (a key of :data:`MATCH_SIZE`): "both" scores each card without and with
    nucleus size matching, the second as ``"<model> (size matched)"``.

    Every card is checked (weights against their checksums) and every option before
    any image is read; the tiny-nuclei count is of nuclei under the metric's first size
    edge missed at IoU 0.7.
    """
    from nucleiseg import cards
    from nucleiseg.training import load_examples

    if not cards_:
        raise ex.ExperimentError("--models: name at least one model card")
    if match_size not in MATCH_SIZE:
        raise ex.ExperimentError(f"--match-size must be one of {', '.join(MATCH_SIZE)}, got {match_size!r}")
    for card in cards_:
        try:
            cards.verify(card, onnx=engine == "onnxruntime")
            if match_size != "off":
                cards.require_nucleus_diameters(card)
        except cards.ModelError as error:
            raise ex.ExperimentError(f"--models: {error}") from None
    try:
        names = perturbations.check_names(list(perturbations.PERTURBATIONS) if perturbation_names is None else perturbation_names)
    except ValueError as error:
        raise ex.ExperimentError(f"--perturbations: {error}") from None
    if limit < 0:
        raise ex.ExperimentError(f"--limit must be >= 0, got {limit}")
    stems = ex.split_names(Path(data), split, "--split")
    if kinds:
        try:
            of_kinds = {pair.stem for pair in layouts.kind_pairs(Path(data), split, kinds=tuple(kinds))}
        except ValueError as error:
            raise ex.ExperimentError(f"--kind: {error}") from None
        stems = [stem for stem in stems if stem in of_kinds]
    stems = stems[:limit] if limit else stems
    out = Path(out)
    (out / "conditions.csv").unlink(missing_ok=True)  # an earlier run's result must not look like this one's
    sets = evaluation_sets(load_examples(Path(data), split, None, names=stems), names)
    rows = []
    for base_name, card in zip(model_names(cards_), cards_):
        for matched in MATCH_SIZE[match_size]:
            name = base_name + (MATCHED_SUFFIX if matched else "")
            for condition, figures in score_card(card, sets, engine, matched).items():
                rows.append({"model": name, "card": str(card), "condition": condition, **figures})
                print(f"{name} {condition}: mean F1 {figures['f1_mean']:.4f}", flush=True)
    write_atomic(out / "conditions.md", report(rows, list(sets), command, len(stems), split))
    write_csv(out / "conditions.csv", list(COLUMNS), rows)
    print(f"wrote {out / 'conditions.csv'} and {out / 'conditions.md'}")
    return rows


def add_parser(sub) -> None:
    """Register the ``conditions`` sub-command."""
    import argparse

    from nucleiseg import engines

    parser = sub.add_parser("conditions", help="score model cards in process on a split and its perturbed copies (quick robustness check)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", required=True, help="comma-separated model cards")
    parser.add_argument("--data", required=True, type=Path, help="data folder in our layout")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--split", default="val", help="split to score (default val)")
    parser.add_argument("--limit", type=int, default=0, help="only the first K images of the split (default all)")
    parser.add_argument("--perturbations", default=None,
                        help=f"comma-separated conditions besides clean (default all: {','.join(perturbations.PERTURBATIONS)}; "
                             f"only when named: {','.join(perturbations.EXTRA_PERTURBATIONS)})")
    parser.add_argument("--kind", action="append", default=[], metavar="KIND",
                        help="only images of this kind (nucleiseg.layouts.image_kinds, e.g. 256x256 or bbbc039; repeatable)")
    parser.add_argument("--engine", choices=engines.ENGINES, default=engines.AUTO, help="inference engine (default auto)")
    parser.add_argument("--match-size", choices=list(MATCH_SIZE), default="off",
                        help="bring each image's nuclei to the model's training size (on), not (off, the default), "
                             "or score each model both ways (both)")
    parser.set_defaults(handler=main)


def main(args) -> int:
    names = None if args.perturbations is None else [n for n in args.perturbations.split(",") if n]
    command = ex.canonical_command("conditions", args)
    return ex.run_cli(lambda: run([Path(p) for p in args.models.split(",") if p], args.data, args.out, args.split,
                                  args.limit, names, args.engine, command, args.match_size,
                                  tuple(args.kind)))

"""Leave one kind out: how the training recipe transfers to a kind of image it never saw.

    python -m benchmark leave-one-kind-out --data DIR --out OUT [--kinds 360x360,bbbc039]
        [--min-train 20 --min-val 8 --steps 300 --width 16 --repeats 1 --reference per_image.csv]

Validation images come from the same kinds as the training images, so the val
score cannot say how a model does on a new kind. Here every image gets a kind
(:func:`nucleiseg.layouts.image_kinds`: BBBC039 fields, else the image size,
which in the shared data stands for its source). For each kind with enough
images (``--min-train`` training and ``--min-val`` validation images, or the
``--kinds`` given), one U-Net is trained with the reduced schedule on the
training images of every *other* kind and scored on the held-out kind's
validation images; one more model, trained on all kinds with the same
schedule, is scored on each kind too, so the table shows what leaving a kind
out costs. With ``--reference`` (a benchmark's ``per_image.csv``, e.g. of
``advanced``), the reference pipeline's figures on the same images stand
beside them. Writes ``progress.csv``/``settings.json`` (resume), ``subsets/``,
``weights/``, ``checkpoints/`` (a model in training; a stopped run carries on from it),
``run.log`` and, when all models are done, ``results.csv``,
``report.md`` and ``plots/leave_one_kind_out.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nucleiseg.layouts import image_kinds

from . import experiments as ex
from .figures import pyplot, save_figure
from .outputs import write_atomic
from .tables import write_csv

FINAL_OUTPUTS = ("results.csv", "report.md", "plots")
ALL = "all-kinds"


def kinds_of(names: list[str], kinds: dict[str, str], option: str) -> dict[str, list[str]]:
    """Names grouped by kind (order kept); ExperimentError naming ``option`` when one is not in the manifest."""
    missing = [name for name in names if name not in kinds]
    if missing:
        raise ex.ExperimentError(f"{option}: {len(missing)} images are not in the manifest, e.g. {missing[0]}")
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(kinds[name], []).append(name)
    return groups


def choose_kinds(train: dict, val: dict, requested: list[str] | None, min_train: int, min_val: int) -> list[str]:
    """The kinds to hold out: ``requested`` (checked), else those with enough images, largest first."""
    if requested:
        unknown = [k for k in requested if k not in val or k not in train]
        if unknown:
            raise ex.ExperimentError(f"--kinds: {', '.join(unknown)} not among the kinds with training and validation "
                                     f"images ({', '.join(sorted(set(train) & set(val)))})")
        return list(requested)
    chosen = [k for k in train if len(train[k]) >= min_train and len(val.get(k, [])) >= min_val]
    if not chosen:
        raise ex.ExperimentError(f"no kind has {min_train} training and {min_val} validation images; lower --min-train/--min-val")
    return sorted(chosen, key=lambda k: -len(train[k]))


def columns(kinds: list[str]) -> list[str]:
    return ["model", "held_out", "repeat", "seed", "train_images", "images_hash", "images_file", "steps", "train_seconds",
            "eval_seconds", "loss_first", "loss_last", *(f"{k}_{c}" for k in kinds for c in ex.SCORE_COLUMNS)]


def run(data: Path, out: Path, schedule: ex.Schedule, kinds: list[str] | None = None, min_train: int = 20,
        min_val: int = 8, manifest: Path | None = None, repeats: int = 1, seed: int = 0, train_split: str = "train",
        val_split: str = "val", reference: Path | None = None, reference_pipeline: str = ex.REFERENCE_PIPELINE,
        command: str = "", trainer: ex.Trainer | None = None) -> list[dict]:
    """Train one model per held-out kind (and one on all kinds) per repeat; write the outputs when all are done.

    Returns
    -------
    list of dict
        One row per model (the rows of ``results.csv``); a held-out model is scored
        on its own kind only, the all-kinds model on every chosen kind.
    """
    from nucleiseg.training import load_examples

    trainer = trainer or ex.train_and_score
    data, out = Path(data), Path(out)
    manifest = Path(manifest) if manifest else data / "manifest.csv"
    if not manifest.is_file():
        raise ex.ExperimentError(f"--manifest: file not found: {manifest}")
    if repeats < 1:
        raise ex.ExperimentError(f"--repeats must be >= 1, got {repeats}")
    try:
        kind_of = image_kinds(manifest)
    except ValueError as error:
        raise ex.ExperimentError(f"--manifest: {error}") from None
    train_groups = kinds_of(ex.split_names(data, train_split, "--train-split"), kind_of, "--train-split")
    val_groups = kinds_of(ex.split_names(data, val_split, "--val-split"), kind_of, "--val-split")
    held_out = choose_kinds(train_groups, val_groups, kinds, min_train, min_val)
    all_train = [name for group in train_groups.values() for name in group]
    references, reference_note = ex.reference_scores(reference, reference_pipeline, {k: val_groups[k] for k in held_out})
    cols = columns(held_out)
    settings = {"experiment": "leave-one-kind-out", "data": str(data.resolve()), "train_split": train_split, "seed": seed,
                "schedule": schedule.to_dict(), "held_out": held_out, "val_split": val_split,
                "val_images": {k: val_groups[k] for k in held_out}, "train_images": ex.names_hash(all_train)}
    ledger = ex.Ledger(out, settings, cols)
    ex.clear_outputs(out, FINAL_OUTPUTS)
    log = ex.make_logger(out / "run.log")
    eval_sets = {k: load_examples(data, val_split, None, names=val_groups[k]) for k in held_out}
    keys = [(kind, repeat) for repeat in range(1, repeats + 1) for kind in [*held_out, ALL]]
    todo = [key for key in keys if not ledger.done(model_name(*key))]
    log(f"leave one kind out: kinds {', '.join(f'{k} ({len(train_groups[k])} train, {len(val_groups[k])} val)' for k in held_out)}; "
        f"{len(keys)} models, {len(keys) - len(todo)} already done")
    for index, (kind, repeat) in enumerate(todo, start=1):
        name = model_name(kind, repeat)
        names = all_train if kind == ALL else [n for n in all_train if kind_of[n] != kind]
        sets = eval_sets if kind == ALL else {kind: eval_sets[kind]}
        images_file = Path("subsets") / f"{name}.txt"
        write_atomic(out / images_file, "".join(f"{s}\n" for s in names))
        model_seed = ex.model_seed(seed, [*held_out, ALL].index(kind), repeat)
        log(f"[{index}/{len(todo)}] {name}: {len(names)} training images ({'every kind' if kind == ALL else 'without ' + kind}), seed {model_seed}")
        result = trainer(data, train_split, names, sets, schedule, model_seed, **ex.model_files(out, name), log=log)
        flat = {f"{k}_{c}": result["scores"][k][c] for k in sets for c in ex.SCORE_COLUMNS}
        log(f"[{index}/{len(todo)}] {name}: " + ", ".join(f"mean F1 on {k} {result['scores'][k]['f1_mean']:.4f}" for k in sets))
        ledger.add({"model": name, "held_out": kind, "repeat": repeat, "seed": model_seed, "train_images": len(names),
                    "images_hash": ex.names_hash(names), "images_file": str(images_file),
                    **{k: result[k] for k in ("steps", "train_seconds", "eval_seconds", "loss_first", "loss_last")}, **flat})
    rows = [ledger.rows[model_name(*key)] for key in keys]
    table = summary_table(rows, held_out)
    save_figure(plot(table, references, reference_pipeline), out / "plots" / "leave_one_kind_out.png")
    write_atomic(out / "report.md", report(rows, table, references, reference_pipeline, reference_note, schedule, command,
                                          manifest, train_groups, val_groups, held_out))
    write_csv(out / "results.csv", cols, rows)  # last: its presence means complete
    log(f"wrote {out / 'results.csv'}, {out / 'report.md'} and {out / 'plots' / 'leave_one_kind_out.png'}")
    return rows


def model_name(kind: str, repeat: int) -> str:
    return f"{'all' if kind == ALL else 'without-' + kind}-r{repeat}"


def summary_table(rows: list[dict], kinds: list[str]) -> dict:
    """Per held-out kind: the held-out model's and the all-kinds model's figures on it (means over repeats)."""
    figures = ("f1_mean", "error_rate_070", "missed", "merges", "splits", "images")
    table = {}
    for kind in kinds:
        without = ex.over_repeats([{c: r[f"{kind}_{c}"] for c in figures} for r in rows if r["held_out"] == kind], figures)
        seen = ex.over_repeats([{c: r[f"{kind}_{c}"] for c in figures} for r in rows if r["held_out"] == ALL], figures)
        table[kind] = {"without": without, "with": seen}
    return table


def plot(table: dict, references: dict, reference_pipeline: str):
    """Bars of mean F1 per held-out kind: trained without it, trained with it, and the reference pipeline."""
    plt = pyplot()
    kinds = list(table)
    series = [("U-Net trained without the kind", [table[k]["without"]["f1_mean"] for k in kinds]),
              ("U-Net trained on every kind", [table[k]["with"]["f1_mean"] for k in kinds])]
    if references:
        series.append((f"{reference_pipeline} (CellProfiler)", [float(references[k]["f1_mean"]) for k in kinds]))
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(kinds)), 4))
    width = 0.8 / len(series)
    x = np.arange(len(kinds))
    for index, (label, values) in enumerate(series):
        axis.bar(x - 0.4 + width * (index + 0.5), values, width, label=label)
    axis.set_xticks(x, [f"{k}\n({int(table[k]['without']['images'])} val images)" for k in kinds])
    axis.set(ylabel="mean F1 (IoU 0.50-0.95)", ylim=(0, 1), title="Leave one kind out (reduced schedule)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def report(rows, table, references, reference_pipeline, reference_note, schedule: ex.Schedule, command, manifest,
           train_groups, val_groups, kinds) -> str:
    """report.md of a finished leave-one-kind-out experiment."""
    lines = [
        "# Leave one kind out", "",
        f"Finished {ex.stamp()}; {len(rows)} models. Command:", "", *ex.command_block(command), "",
        f"Kinds from `{manifest}` (BBBC039 fields, else the image size). Held out, with their training and validation "
        "images: " + ", ".join(f"{k} ({len(train_groups[k])} / {len(val_groups[k])})" for k in kinds) + ". "
        "Every model gets the same **reduced schedule** (a fixed number of steps, no model selection), so the figures "
        "compare recipes, not the shipped models.", "",
        "## Schedule", "", schedule.markdown(), "", f"Reference: {reference_note}.", "",
        "## Mean F1 on each held-out kind (mean over repeats)", "",
        "| held-out kind | val images | trained without it | trained on every kind | cost of leaving it out |"
        + (f" {reference_pipeline} |" if references else ""),
        "|---|---:|---:|---:|---:|" + ("---:|" if references else ""),
    ]
    for kind in kinds:
        without, seen = table[kind]["without"], table[kind]["with"]
        line = (f"| {kind} | {int(without['images'])} | {without['f1_mean']:.3f} | {seen['f1_mean']:.3f} | "
                f"{without['f1_mean'] - seen['f1_mean']:+.3f} |")
        if references:
            line += f" {float(references[kind]['f1_mean']):.3f} |"
        lines.append(line)
    if references:
        below = [k for k in kinds if table[k]["without"]["f1_mean"] <= float(references[k]["f1_mean"])]
        lines += ["", (f"Held out, the U-Net is not above {reference_pipeline} on: {', '.join(below)}." if below
                       else f"Held out, the U-Net is above {reference_pipeline} on every kind.")]
    lines += ["", "## Errors at IoU 0.7 of the held-out models", "",
              "| held-out kind | error rate | missed | merges | splits |", "|---|---:|---:|---:|---:|"]
    for kind in kinds:
        lines.append(f"| {kind} | {ex.error_cells(table[kind]['without'])} |")
    lines += ex.report_ending("leave one kind out", "plots/leave_one_kind_out.png")
    return "\n".join(lines)


def add_parser(sub) -> None:
    """Register the ``leave-one-kind-out`` sub-command."""
    parser = ex.add_experiment_parser(sub, "leave-one-kind-out", "train without one kind of image, score on it "
                                      "(transfer to unseen kinds)", __doc__, 300, main)
    parser.add_argument("--manifest", type=Path, default=None, help="manifest CSV with name, height, width, bbbc039_field (default DATA/manifest.csv)")
    parser.add_argument("--kinds", default="", help="comma-separated kinds to hold out (default: every kind with enough images)")
    parser.add_argument("--min-train", type=int, default=20, help="training images a kind needs to be held out (default 20)")
    parser.add_argument("--min-val", type=int, default=8, help="validation images a kind needs (default 8)")


def main(args) -> int:
    """Run the sub-command from parsed arguments; returns the exit status."""
    def body():
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] or None
        run(args.data, args.out, ex.schedule_from(args), kinds=kinds, min_train=args.min_train, min_val=args.min_val,
            manifest=args.manifest, repeats=args.repeats, seed=args.seed, train_split=args.train_split,
            val_split=args.val_split, reference=args.reference, reference_pipeline=args.reference_pipeline,
            command=ex.canonical_command("leave-one-kind-out", args))
    return ex.run_cli(body)

"""Transfer between image kinds (Caicedo et al. 2019, Figure 5): BBBC039 fields vs the other images.

    python -m benchmark transfer --data DIR --out OUT [--column bbbc039_field]
        [--steps 120 --width 16 --val-images 30 --repeats 1 --reference per_image.csv]

The manifest (``DATA/manifest.csv`` unless ``--manifest``) marks the images
of one kind by a non-empty ``--column`` (default ``bbbc039_field``: the
fields of BBBC039). One U-Net is trained on that kind's training images only,
one on the other training images only, with the same schedule; each is scored
on the validation images of both kinds. Writes into OUT ``progress.csv`` and
``settings.json`` (resume record), ``subsets/``, ``weights/``, ``checkpoints/`` (a model
in training; a stopped run carries on from it), ``run.log`` and,
when every model is finished, ``results.csv`` (one row per model, figures per
evaluation set as ``<set>_<figure>``), ``plots/transfer.png`` and ``report.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nucleiseg.layouts import manifest_marks

from . import experiments as ex
from .figures import pyplot, save_figure
from .outputs import write_atomic
from .tables import write_csv

FINAL_OUTPUTS = ("results.csv", "report.md", "plots")
OTHER = "other"


def group_label(column: str) -> str:
    """Short name of the marked kind: ``bbbc039_field`` -> ``bbbc039``."""
    return column.removesuffix("_field")


def split_by_column(names: list[str], manifest: Path, column: str, option: str) -> tuple[list[str], list[str]]:
    """``(marked, other)``: the names whose manifest ``column`` is non-empty, and the rest (order kept).

    Raises
    ------
    ExperimentError
        When the manifest is missing, lacks the column, misses one of the
        names, or one of the two groups is empty (naming ``option``).
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ex.ExperimentError(f"--manifest: file not found: {manifest}")
    try:
        marked_by_name = manifest_marks(manifest, column)
    except ValueError as error:
        raise ex.ExperimentError(f"--column: {error}") from None
    unknown = [n for n in names if n not in marked_by_name]
    if unknown:
        raise ex.ExperimentError(f"--manifest: {len(unknown)} images of {option} are not listed in {manifest}, e.g. {unknown[0]}")
    marked = [n for n in names if marked_by_name[n]]
    other = [n for n in names if not marked_by_name[n]]
    for label, group in ((group_label(column), marked), (OTHER, other)):
        if not group:
            raise ex.ExperimentError(f"{option}: no {label} image ({column!r} {'non-empty' if label != OTHER else 'empty'} in {manifest})")
    return marked, other


def columns(sets: list[str]) -> list[str]:
    return ["model", "trained_on", "repeat", "seed", "train_images", "images_hash", "images_file", "steps", "train_seconds",
            "eval_seconds", "loss_first", "loss_last", *(f"{s}_{c}" for s in sets for c in ex.SCORE_COLUMNS)]


def run(data: Path, out: Path, schedule: ex.Schedule, column: str = "bbbc039_field", manifest: Path | None = None,
        repeats: int = 1, seed: int = 0, train_split: str = "train", val_split: str = "val", val_images: int = 0,
        reference: Path | None = None, reference_pipeline: str = ex.REFERENCE_PIPELINE, command: str = "",
        trainer: ex.Trainer | None = None) -> list[dict]:
    """Train one model per kind (and repeat), score each on both kinds; write the outputs when all are done.

    ``val_images`` (> 0) keeps the first K validation images of each kind.
    The other parameters are as in :func:`benchmark.learning_curve.run`.

    Returns
    -------
    list of dict
        One row per model (the rows of ``results.csv``).
    """
    from nucleiseg.training import load_examples

    trainer = trainer or ex.train_and_score
    data, out = Path(data), Path(out)
    manifest = Path(manifest) if manifest else data / "manifest.csv"
    if repeats < 1:
        raise ex.ExperimentError(f"--repeats must be >= 1, got {repeats}")
    if val_images < 0:
        raise ex.ExperimentError(f"--val-images must be >= 0, got {val_images}")
    label = group_label(column)
    train_groups = dict(zip((label, OTHER), split_by_column(ex.split_names(data, train_split, "--train-split"), manifest, column, "--train-split")))
    val_groups = dict(zip((label, OTHER), split_by_column(ex.split_names(data, val_split, "--val-split"), manifest, column, "--val-split")))
    if val_images:
        val_groups = {k: v[:val_images] for k, v in val_groups.items()}
    references, reference_note = ex.reference_scores(reference, reference_pipeline, val_groups)
    sets = list(val_groups)
    cols = columns(sets)

    settings = {"experiment": "transfer", "data": str(data.resolve()), "train_split": train_split, "seed": seed,
                "schedule": schedule.to_dict(), "column": column, "train_images": train_groups, "val_split": val_split,
                "val_images": val_groups}
    ledger = ex.Ledger(out, settings, cols)
    ex.clear_outputs(out, FINAL_OUTPUTS)
    log = ex.make_logger(out / "run.log")
    eval_sets = {name: load_examples(data, val_split, None, names=names) for name, names in val_groups.items()}
    for name, names in val_groups.items():
        (out / f"val_images_{name}.txt").write_text("".join(f"{s}\n" for s in names))
    keys = [(group, repeat) for repeat in range(1, repeats + 1) for group in train_groups]
    todo = [key for key in keys if not ledger.done(model_name(*key))]
    log(f"transfer: {len(keys)} models requested, {len(keys) - len(todo)} already done; training images "
        + ", ".join(f"{k} {len(v)}" for k, v in train_groups.items()) + "; validation images "
        + ", ".join(f"{k} {len(v)}" for k, v in val_groups.items()))
    for index, (group, repeat) in enumerate(todo, start=1):
        name = model_name(group, repeat)
        names = train_groups[group]
        images_file = Path("subsets") / f"{group}.txt"
        write_atomic(out / images_file, "".join(f"{s}\n" for s in names))
        model_seed = ex.model_seed(seed, sets.index(group), repeat)
        log(f"[{index}/{len(todo)}] {name}: {len(names)} {group} training images, seed {model_seed}")
        result = trainer(data, train_split, names, eval_sets, schedule, model_seed, **ex.model_files(out, name), log=log)
        flat = {f"{s}_{c}": result["scores"][s][c] for s in sets for c in ex.SCORE_COLUMNS}
        log(f"[{index}/{len(todo)}] {name}: " + ", ".join(f"mean F1 on {s} {result['scores'][s]['f1_mean']:.4f}" for s in sets))
        ledger.add({"model": name, "trained_on": group, "repeat": repeat, "seed": model_seed, "train_images": len(names),
                    "images_hash": ex.names_hash(names), "images_file": str(images_file),
                    **{k: result[k] for k in ("steps", "train_seconds", "eval_seconds", "loss_first", "loss_last")}, **flat})
    rows = [ledger.rows[model_name(*key)] for key in keys]
    table = matrix(rows, sets)
    save_figure(plot(table, references, reference_pipeline, sets), out / "plots" / "transfer.png")
    write_atomic(out / "report.md", report(rows, table, references, reference_pipeline, reference_note, schedule, command,
                                              data, column, manifest, train_groups, val_split, val_groups, sets))
    write_csv(out / "results.csv", cols, rows)  # last: its presence means complete
    log(f"wrote {out / 'results.csv'}, {out / 'report.md'} and {out / 'plots' / 'transfer.png'}")
    return rows


def model_name(group: str, repeat: int) -> str:
    return f"{group}-r{repeat}"


def matrix(rows: list[dict], sets: list[str]) -> dict:
    """``(trained_on, evaluated_on) -> {figure: mean over repeats}``."""
    table = {}
    for trained in sets:
        group = [r for r in rows if r["trained_on"] == trained]
        for evaluated in sets:
            figures = ("f1_mean", "error_rate_070", "missed", "merges", "splits", "images")
            means = ex.over_repeats([{c: r[f"{evaluated}_{c}"] for c in figures} for r in group], figures)
            table[(trained, evaluated)] = {**{c: means[c] for c in figures}, "models": len(group)}
    return table


def plot(table: dict, references: dict, reference_pipeline: str, sets: list[str]):
    """Grouped bars: mean F1 and error rate on each evaluation set, per training set (and the reference)."""
    plt = pyplot()
    bars = [(f"U-Net trained on {s}", {e: table[(s, e)] for e in sets}) for s in sets]
    if references:
        bars.append((f"{reference_pipeline} (CellProfiler)", references))
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / len(bars)
    x = np.arange(len(sets))
    for axis, key, title in ((axes[0], "f1_mean", "mean F1 (IoU 0.50-0.95)"), (axes[1], "error_rate_070", "missed nuclei rate at IoU 0.7")):
        for index, (label, figures) in enumerate(bars):
            values = [float(figures[e][key]) for e in sets]
            positions = x - 0.4 + width * (index + 0.5)
            axis.bar(positions, values, width, label=label, color=("tab:blue", "tab:orange", "0.6")[index % 3])
            for p, v in zip(positions, values):
                axis.text(p, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
        axis.set_xticks(x, [f"evaluated on {e}\n({int(table[(sets[0], e)]['images'])} images)" for e in sets])
        axis.set(ylabel=title, ylim=(0, 1))
    handles, labels = axes[0].get_legend_handles_labels()
    figure.suptitle("Transfer between image kinds (reduced schedule)")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.legend(handles, labels, loc="lower center", ncol=len(bars), fontsize=8, frameon=False)
    return figure


def report(rows, table, references, reference_pipeline, reference_note, schedule: ex.Schedule, command, data, column,
           manifest, train_groups, val_split, val_groups, sets) -> str:
    """report.md of a finished transfer experiment."""
    lines = [
        "# Transfer between image kinds (Caicedo et al. 2019, Figure 5)", "",
        f"Finished {ex.stamp()}; {len(rows)} models. Command:", "", *ex.command_block(command), "",
        f"Kinds come from column `{column}` of `{manifest}` (non-empty: {sets[0]}). Training images: "
        + ", ".join(f"{len(v)} {k}" for k, v in train_groups.items()) + f" (lists in `subsets/`); validation images of split `{val_split}`: "
        + ", ".join(f"{len(v)} {k} (`val_images_{k}.txt`, hash {ex.names_hash(v)})" for k, v in val_groups.items()) + ". "
        "Both models get the same **reduced schedule** (a fixed number of steps, not training to convergence as in the paper), "
        "so the smaller training set is revisited more often.", "",
        "## Schedule", "", schedule.markdown(), "",
        f"Reference: {reference_note}.", "",
        "## Mean F1 (rows: trained on; columns: evaluated on; mean over repeats)", "",
        "| trained on | models | " + " | ".join(f"{e}" for e in sets) + " |",
        "|---|---:|" + "---:|" * len(sets),
    ]
    for s in sets:
        lines.append(f"| {s} | {table[(s, sets[0])]['models']} | " + " | ".join(f"{table[(s, e)]['f1_mean']:.3f}" for e in sets) + " |")
    if references:
        lines.append(f"| {reference_pipeline} (reference) | | " + " | ".join(f"{float(references[e]['f1_mean']):.3f}" for e in sets) + " |")
    lines += ["", "## Errors at IoU 0.7 (error rate; missed / merges / splits summed over the images)", "",
              "| trained on | evaluated on | error rate | missed | merges | splits |", "|---|---|---:|---:|---:|---:|"]
    for s in sets:
        for e in sets:
            t = table[(s, e)]
            lines.append(f"| {s} | {e} | {ex.error_cells(t)} |")
    if references:
        for e in sets:
            lines.append(f"| {reference_pipeline} | {e} | {ex.error_cells(references[e])} |")
    lines += ex.report_ending("transfer", "plots/transfer.png")
    return "\n".join(lines)


def add_parser(sub) -> None:
    """Register the ``transfer`` sub-command on an argparse sub-parser collection."""
    parser = ex.add_experiment_parser(sub, "transfer", "train on BBBC039 fields only vs the other images only, score both "
                                      "(paper Figure 5)", __doc__, 120, main)
    parser.add_argument("--manifest", type=Path, default=None, help="manifest CSV with columns name and --column (default DATA/manifest.csv)")
    parser.add_argument("--column", default="bbbc039_field", help="manifest column; non-empty marks the first kind (default bbbc039_field)")


def main(args) -> int:
    """Run the sub-command from parsed arguments; returns the exit status."""
    def body():
        run(args.data, args.out, ex.schedule_from(args), column=args.column, manifest=args.manifest, repeats=args.repeats,
            seed=args.seed, train_split=args.train_split, val_split=args.val_split, val_images=args.val_images,
            reference=args.reference, reference_pipeline=args.reference_pipeline, command=ex.canonical_command("transfer", args))
    return ex.run_cli(body)

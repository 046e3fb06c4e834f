"""Learning curve (Caicedo et al. 2019, Figure 4): accuracy against the number of training images.

    python -m benchmark learning-curve --data DIR --sizes 2,8,32,128 --repeats R --out OUT
        [--steps 120 --width 16 --crop 256 --batch 4 --val-images 30 --reference per_image.csv]

For each size ``n`` and repeat ``r`` a U-Net is trained from scratch on ``n``
images drawn without replacement from the training split (each repeat an
independent draw, so subsets of different repeats may overlap), with the
same fixed schedule for every model, and scored on the same validation
images. Writes into OUT:

* ``progress.csv`` and ``settings.json``: the resume record (one row per finished model);
* ``subsets/n<n>-r<r>.txt``: the training images of each model;
* ``weights/n<n>-r<r>.weights.h5``: its final weights;
* ``checkpoints/n<n>-r<r>/``: while it trains, its progress (a stopped run carries on from it);
* ``results.csv``, ``plots/learning_curve.png``, ``report.md``: written when
  every requested model is finished (removed at the start of a run, so an
  interrupted run does not look complete);
* ``run.log``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import experiments as ex
from .figures import pyplot, save_figure
from .outputs import write_atomic
from .tables import write_csv

COLUMNS = ["model", "n", "repeat", "seed", "images_hash", "images_file", "steps", "train_seconds", "eval_seconds",
           "loss_first", "loss_last", *ex.SCORE_COLUMNS]
FINAL_OUTPUTS = ("results.csv", "report.md", "plots")
EVAL = "val"


def parse_sizes(text: str) -> list[int]:
    """Training-set sizes from ``"2,8,32"``; ExperimentError naming ``--sizes`` otherwise."""
    items = [item for item in text.replace(",", " ").split()]
    if not items:
        raise ex.ExperimentError("--sizes is empty; give training-set sizes such as 2,8,32")
    try:
        sizes = [int(item) for item in items]
    except ValueError:
        raise ex.ExperimentError(f"--sizes must be whole numbers separated by commas, got {text!r}") from None
    bad = [s for s in sizes if s < 1]
    if bad:
        raise ex.ExperimentError(f"--sizes must be >= 1, got {bad[0]}")
    if len(set(sizes)) != len(sizes):
        raise ex.ExperimentError(f"--sizes lists a size twice: {text!r}")
    return sorted(sizes)


def sample_subsets(names: list[str], sizes: list[int], repeats: int, seed: int) -> dict[tuple[int, int], list[str]]:
    """The training images of each (size, repeat).

    Each subset is drawn without replacement from ``names`` by its own
    generator seeded with ``(seed, n, repeat)``: reproducible, independent of
    the other sizes and repeats requested (adding a size later leaves the
    others' subsets unchanged), and repeats are independent draws.

    Returns
    -------
    dict
        ``(n, repeat) -> sorted stems``; repeats count from 1.
    """
    if repeats < 1:
        raise ex.ExperimentError(f"--repeats must be >= 1, got {repeats}")
    too_large = [n for n in sizes if n > len(names)]
    if too_large:
        raise ex.ExperimentError(f"--sizes: {too_large[0]} is larger than the training set ({len(names)} images)")
    subsets = {}
    for repeat in range(1, repeats + 1):
        for n in sizes:
            rng = np.random.default_rng([seed, n, repeat])
            chosen = rng.choice(len(names), size=n, replace=False)
            subsets[(n, repeat)] = sorted(names[i] for i in chosen)
    return subsets


def model_name(n: int, repeat: int) -> str:
    return f"n{n:04d}-r{repeat}"


def run(data: Path, out: Path, sizes: list[int], repeats: int, schedule: ex.Schedule, seed: int = 0,
        train_split: str = "train", val_split: str = "val", val_images: int = 0, reference: Path | None = None,
        reference_pipeline: str = ex.REFERENCE_PIPELINE, command: str = "", trainer: ex.Trainer | None = None) -> list[dict]:
    """Train and score every (size, repeat) not yet recorded in ``out``; write the outputs when all are done.

    Parameters
    ----------
    data, out : Path
        Data folder and output folder.
    sizes : list of int
        Training-set sizes.
    repeats : int
        Models per size.
    schedule : Schedule
    seed : int
        Seed of the subsets and of training.
    train_split, val_split : str
        Splits of training and evaluation images.
    val_images : int
        Score on the first K validation images (0: all).
    reference : Path, optional
        Benchmark ``per_image.csv`` or ``summary.csv`` with the reference pipeline.
    reference_pipeline : str
    command : str
        Command line, for the report.
    trainer : callable, optional
        Stand-in for :func:`benchmark.experiments.train_and_score` (tests).

    Returns
    -------
    list of dict
        One row per requested model (the rows of ``results.csv``).
    """
    from nucleiseg.training import load_examples

    trainer = trainer or ex.train_and_score
    data, out = Path(data), Path(out)
    if val_images < 0:
        raise ex.ExperimentError(f"--val-images must be >= 0, got {val_images}")
    if not sizes:
        raise ex.ExperimentError("--sizes is empty; give training-set sizes such as 2,8,32")
    train_names = ex.split_names(data, train_split, "--train-split")
    subsets = sample_subsets(train_names, sizes, repeats, seed)
    val_names = ex.split_names(data, val_split, "--val-split")
    if val_images:
        val_names = val_names[:val_images]
    references, reference_note = ex.reference_scores(reference, reference_pipeline, {EVAL: val_names})

    settings = {"experiment": "learning-curve", "data": str(data.resolve()), "train_split": train_split, "seed": seed,
                "schedule": schedule.to_dict(), "val_split": val_split, "val_images": val_names}
    ledger = ex.Ledger(out, settings, COLUMNS)
    ex.clear_outputs(out, FINAL_OUTPUTS)
    log = ex.make_logger(out / "run.log")
    (out / "val_images.txt").write_text("".join(f"{s}\n" for s in val_names))
    eval_sets = {EVAL: load_examples(data, val_split, None, names=val_names)}
    order = sorted(subsets, key=lambda key: (key[1], key[0]))  # every size once before any second repeat
    todo = [key for key in order if not ledger.done(model_name(*key))]
    log(f"learning curve: {len(order)} models requested, {len(order) - len(todo)} already done; "
        f"{len(train_names)} training images, {len(val_names)} validation images")
    for index, (n, repeat) in enumerate(todo, start=1):
        name = model_name(n, repeat)
        names = subsets[(n, repeat)]
        images_file = Path("subsets") / f"{name}.txt"
        write_atomic(out / images_file, "".join(f"{s}\n" for s in names))
        model_seed = ex.model_seed(seed, n, repeat)
        log(f"[{index}/{len(todo)}] {name}: {n} images, seed {model_seed}")
        result = trainer(data, train_split, names, eval_sets, schedule, model_seed, **ex.model_files(out, name), log=log)
        scores = result["scores"][EVAL]
        log(f"[{index}/{len(todo)}] {name}: mean F1 {scores['f1_mean']:.4f}, error@0.7 {scores['error_rate_070']:.4f}, "
            f"missed {scores['missed']}, merges {scores['merges']}, splits {scores['splits']} "
            f"(train {result['train_seconds']:.0f} s, eval {result['eval_seconds']:.0f} s)")
        ledger.add({"model": name, "n": n, "repeat": repeat, "seed": model_seed, "images_hash": ex.names_hash(names),
                    "images_file": str(images_file), **{k: result[k] for k in ("steps", "train_seconds", "eval_seconds", "loss_first", "loss_last")},
                    **scores})
    rows = [ledger.rows[model_name(*key)] for key in sorted(subsets)]
    save_figure(plot(rows, references.get(EVAL), reference_pipeline), out / "plots" / "learning_curve.png")
    write_atomic(out / "report.md", report(rows, references.get(EVAL), reference_pipeline, reference_note, schedule, command, data,
                                               train_split, len(train_names), val_split, val_names, seed))
    write_csv(out / "results.csv", COLUMNS, rows)  # last: its presence means complete
    log(f"wrote {out / 'results.csv'}, {out / 'report.md'} and {out / 'plots' / 'learning_curve.png'}")
    return rows


def by_size(rows: list[dict]) -> list[dict]:
    """Per size: mean and spread over repeats of F1 and error counts."""
    out = []
    for n in sorted({int(r["n"]) for r in rows}):
        group = [r for r in rows if int(r["n"]) == n]
        item = {"n": n, "models": len(group), **ex.over_repeats(group, ("f1_mean", "error_rate_070", "missed", "merges", "splits"))}
        item["train_seconds"] = ex.over_repeats(group, ("train_seconds",))["train_seconds"]
        out.append(item)
    return out


def plot(rows: list[dict], reference: dict | None, reference_pipeline: str):
    """Figure: mean F1 (left) and error counts (right) against the number of training images."""
    import matplotlib.ticker

    plt = pyplot()

    table = by_size(rows)
    sizes = [t["n"] for t in table]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    left.scatter([int(r["n"]) for r in rows], [float(r["f1_mean"]) for r in rows], color="tab:blue", alpha=0.35, s=18, label="one model")
    left.plot(sizes, [t["f1_mean"] for t in table], "o-", color="tab:blue", label="U-Net, mean over repeats")
    if reference:
        left.axhline(float(reference["f1_mean"]), color="black", linestyle="--", label=f"{reference_pipeline} (CellProfiler)")
    left.set(xlabel="training images", ylabel="mean F1 (IoU 0.50-0.95)", title="Accuracy")
    left.legend(fontsize=8)
    for key, colour in (("missed", "tab:red"), ("merges", "tab:purple"), ("splits", "tab:green")):
        right.plot(sizes, [t[key] for t in table], "o-", color=colour, label=f"{key} (U-Net)")
        if reference:
            right.axhline(float(reference[key]), color=colour, linestyle="--", alpha=0.7, label=f"{key} ({reference_pipeline})")
    images = int(rows[0]["images"]) if rows else 0
    # Missed nuclei outnumber merges and splits tenfold: log above 10, linear (with zero) below.
    right.set_yscale("symlog", linthresh=10)
    right.set_ylim(bottom=0)
    right.set(xlabel="training images", ylabel=f"count over {images} validation images", title="Errors (missed at IoU 0.7)")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for axis in (left, right):
        # Sizes double or more: a base-2 log axis labelled with the sizes themselves, no minor labels.
        axis.set_xscale("log", base=2)
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.set_xticks(sizes, [str(s) for s in sizes])
    figure.suptitle("Learning curve (reduced schedule)")
    figure.tight_layout()
    return figure


def report(rows, reference, reference_pipeline, reference_note, schedule: ex.Schedule, command, data, train_split, n_train, val_split, val_names, seed) -> str:
    """report.md of a finished learning curve."""
    lines = [
        "# Learning curve (Caicedo et al. 2019, Figure 4)", "",
        f"Finished {ex.stamp()}; {len(rows)} models. Command:", "", *ex.command_block(command), "",
        f"Each model is a U-Net trained from scratch on n images drawn without replacement from the {n_train} images of split "
        f"`{train_split}` of `{data}` (each repeat an independent draw with generator seed (seed={seed}, n, repeat); "
        "the lists are in `subsets/`), then scored on the same validation images. "
        "This is a **reduced schedule** for a shared CPU: every model gets the same small, fixed number of steps "
        "instead of being trained to convergence as in the paper, so large training sets are under-used and the curve "
        "flattens early; compare sizes with each other, not with the paper's absolute figures.", "",
        "## Schedule", "", schedule.markdown(), "",
        f"Validation: the first {len(val_names)} images of split `{val_split}` (listed in `val_images.txt`, hash {ex.names_hash(val_names)}).", "",
        f"Reference line: {reference_note}.", "",
        "## Results per size (mean over repeats; counts summed over the validation images)", "",
        "| n | models | mean F1 | error rate @0.7 | missed | merges | splits | train s / model |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in by_size(rows):
        lines.append(f"| {t['n']} | {t['models']} | {ex.mean_cell(t)} | {ex.error_cells(t)} | {t['train_seconds']:.0f} |")
    if reference:
        lines.append(f"| {reference_pipeline} (reference) | | {float(reference['f1_mean']):.3f} | "
                     f"{float(reference['error_rate_070']):.3f} | {reference['missed']} | {reference['merges']} | {reference['splits']} | |")
    lines += ["", "Every model is a row of `results.csv` (± is the standard deviation over repeats).", "",
              "![learning curve](plots/learning_curve.png)", ""]
    return "\n".join(lines)


def add_parser(sub) -> None:
    """Register the ``learning-curve`` sub-command on an argparse sub-parser collection."""
    parser = ex.add_experiment_parser(sub, "learning-curve", "train U-Nets on random training subsets of growing size "
                                      "(paper Figure 4)", __doc__, 120, main)
    parser.add_argument("--sizes", required=True, help="comma-separated training-set sizes, e.g. 2,8,32,128")


def main(args) -> int:
    """Run the sub-command from parsed arguments; returns the exit status."""
    def body():
        run(args.data, args.out, parse_sizes(args.sizes), args.repeats, ex.schedule_from(args), seed=args.seed,
            train_split=args.train_split, val_split=args.val_split, val_images=args.val_images, reference=args.reference,
            reference_pipeline=args.reference_pipeline, command=ex.canonical_command("learning-curve", args))
    return ex.run_cli(body)

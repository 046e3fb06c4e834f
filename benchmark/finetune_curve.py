"""How many images must I annotate? The learning curve the way a user lives it.

    python -m benchmark finetune-curve --data DIR --out OUT [--kind bbbc039]
        [--sizes 1,2,4,8,16] [--repeats 3] [--minutes 2] [--starts general,scratch] [--seed 0]

For each size ``n`` and repeat, ``n`` training images of one kind (:func:`nucleiseg.layouts.image_kinds`:
``bbbc039`` for the BBBC039 fields, the default, else an image size such as ``360x360``) are
drawn without replacement, put in a
plain folder of images and masks, and given to the one fine-tuning command,
``python -m nucleiseg.finetune``, with its defaults and a budget of ``--minutes``: once starting
from the shipped general U-Net (``general``) and once from random weights with the same budget
(``scratch``, ``--from-scratch``), as the paper compared (its Figure 4). Each model is then
scored on the validation images of that kind through headless CellProfiler: ``unet.cppipe``
with the model as *Custom model file*, by the main benchmark (:func:`benchmark.runner.run_benchmark`).
The general model (``unet``) and ``advanced`` are scored the same way as reference lines.

Writes into OUT: ``settings.json`` and ``progress.csv`` (resume record: re-running the command
goes on after the models already recorded), ``folders/`` (the drawn images, as links),
``models/`` (the cards), ``logs/`` (each fine-tune's output), ``pipelines/``, ``scores/``
(each benchmark run) and, when every model is finished, ``results.csv``, ``plots/`` and
``report.md`` (removed at the start of a run, so an unfinished run never looks complete).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from nucleiseg import layouts, model_types

from . import experiments as ex
from .figures import pyplot, save_figure
from .learning_curve import parse_sizes, sample_subsets
from .outputs import write_atomic
from .tables import write_csv

STARTS = ("general", "scratch")
#: Pipelines scored as reference lines, and the label each gets.
REFERENCES = {"unet": "general U-Net (no fine-tuning)", "advanced": "advanced (CellProfiler)"}
#: The mean F1 the question "how many fields reach it?" asks about (the issue's).
GOAL_F1 = 0.88
FINAL_OUTPUTS = ("results.csv", "report.md", "plots")
EVAL_SPLIT = "val"
COLUMNS = ["model", "n", "repeat", "start", "seed", "images_hash", "images_file", "budget_minutes", "training_minutes",
           "total_minutes", "steps", "kept_starting_model", "held_out_start_f1", "held_out_f1", *ex.SCORE_COLUMNS]


def model_name(n: int, repeat: int, start: str) -> str:
    return f"n{n:02d}-r{repeat}-{start}"


def parse_starts(text: str) -> list[str]:
    starts = [s for s in text.replace(",", " ").split() if s]
    unknown = [s for s in starts if s not in STARTS]
    if not starts or unknown:
        raise ex.ExperimentError(f"--starts {text!r}: choose from {', '.join(STARTS)}")
    return starts


def kind_names(data: Path, split: str, kind: str) -> list[str]:
    """Stems of ``split`` of one kind (:func:`nucleiseg.layouts.image_kinds` of the data's manifest).

    Raises
    ------
    ExperimentError
        Naming ``--kind`` (with the kinds there are) or the manifest.
    """
    try:
        return [pair.stem for pair in layouts.kind_pairs(data, split, kinds=(kind,))]
    except ValueError as error:
        raise ex.ExperimentError(f"--kind {kind!r}: {error}") from None


def link_folder(data: Path, names: list[str], dest: Path, split: str | None = None) -> Path:
    """A folder of links to the images and masks of ``names`` (``images/``, ``masks/``; and a split
    file when ``split`` is given), so that the data are never copied and never written to."""
    pairs = {pair.stem: pair for pair in layouts.list_pairs(data, None)}
    partial = dest.with_name(dest.name + ".partial")
    if dest.is_dir():
        return dest
    for name in names:
        pair = pairs[name]
        for kind, path in (("images", pair.image), ("masks", pair.mask)):
            (partial / kind).mkdir(parents=True, exist_ok=True)
            link = partial / kind / path.name
            if not link.exists():
                os.symlink(Path(path).resolve(), link)
    if split:
        (partial / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
    partial.rename(dest)
    return dest


def fine_tune(folder: Path, card: Path, minutes: float, seed: int, start: str, log_path: Path) -> dict:
    """Run the one command on ``folder`` (its output into ``log_path``); returns the card's ``fine_tuning`` record."""
    import json

    command = [sys.executable, "-m", "nucleiseg.finetune", "--images", str(folder / "images"), "--masks",
               str(folder / "masks"), "--out", str(card.with_suffix("")), "--minutes", f"{minutes:g}", "--seed",
               str(seed), "--overwrite", *(["--from-scratch"] if start == "scratch" else [])]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise ex.ExperimentError(f"fine-tuning failed (exit {done.returncode}): see {log_path}")
    return json.loads(card.read_text())["fine_tuning"]


def write_pipeline(card: Path | None, dest: Path) -> Path:
    """``unet.cppipe`` as the generator writes it, with ``card`` as *Custom model file* (None: the shipped one)."""
    from nucleiseg_cellprofiler.pipelines import build

    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, build.dumps(build.build("unet", model_card=card)))
    return dest


def score(eval_data: Path, pipeline: str, out: Path, workers: int) -> dict:
    """Figures of one pipeline on the evaluation folder, through headless CellProfiler (resumable)."""
    from .runner import run_benchmark

    result = run_benchmark(eval_data, [pipeline], out, split=EVAL_SPLIT, workers=workers, quiet=True, resume=True,
                           log=lambda text: None)
    return ex.summarize(result.per_image)


def run(data: Path, out: Path, kind: str = "bbbc039", sizes=(1, 2, 4, 8, 16), repeats: int = 3,
        minutes: float = 2.0, starts=STARTS, seed: int = 0, train_split: str = "train", val_split: str = "val",
        workers: int = 1, command: str = "", trainer=None, scorer=None) -> list[dict]:
    """Fine-tune and score every (size, repeat, start) not yet recorded in ``out``; write the outputs when all are done.

    ``trainer(folder, card, minutes, seed, start, log_path) -> fine_tuning record`` and
    ``scorer(eval_data, pipeline, out, workers) -> figures`` stand in for :func:`fine_tune` and
    :func:`score` in tests. Returns the rows of ``results.csv``.
    """
    trainer, scorer = trainer or fine_tune, scorer or score
    data, out = Path(data), Path(out)
    if minutes <= 0:
        raise ex.ExperimentError(f"--minutes {minutes}: must be positive")
    train_names = kind_names(data, train_split, kind)
    val_names = kind_names(data, val_split, kind)
    subsets = sample_subsets(train_names, list(sizes), repeats, seed)
    settings = {"experiment": "finetune-curve", "data": str(data.resolve()), "kind": kind, "train_split": train_split,
                "val_split": val_split, "val_images": val_names, "minutes": minutes, "seed": seed,
                "starting_model": str(model_types.get("unet").default_card)}
    ledger = ex.Ledger(out, settings, COLUMNS)
    ex.clear_outputs(out, FINAL_OUTPUTS)
    log = ex.make_logger(out / "run.log")
    eval_data = link_folder(data, val_names, out / "eval-data", split=EVAL_SPLIT)
    references = {}
    for name in REFERENCES:
        references[name] = scorer(eval_data, name, out / "scores" / name, workers)
        log(f"reference {name}: mean F1 {references[name]['f1_mean']:.4f} on {len(val_names)} {val_split} images")
    keys = [(n, repeat, start) for repeat in range(1, repeats + 1) for n in sorted(sizes) for start in starts]
    todo = [key for key in keys if not ledger.done(model_name(*key))]
    log(f"finetune-curve: {len(keys)} models requested, {len(keys) - len(todo)} already done; {len(train_names)} "
        f"{kind} training images, {len(val_names)} evaluation images, {minutes:g} min per model")
    for index, (n, repeat, start) in enumerate(todo, start=1):
        name = model_name(n, repeat, start)
        names = subsets[(n, repeat)]
        images_file = Path("subsets") / f"n{n:02d}-r{repeat}.txt"
        write_atomic(out / images_file, "".join(f"{s}\n" for s in names))
        folder = link_folder(data, names, out / "folders" / f"n{n:02d}-r{repeat}")
        model_seed = ex.model_seed(seed, n, repeat)
        card = out / "models" / f"{name}.json"
        began = time.time()
        log(f"[{index}/{len(todo)}] {name}: fine-tuning on {n} image(s), seed {model_seed}")
        record = trainer(folder, card, minutes, model_seed, start, out / "logs" / f"{name}.log")
        pipeline = write_pipeline(card, out / "pipelines" / f"{name}.cppipe")
        figures = scorer(eval_data, str(pipeline), out / "scores" / name, workers)
        starting = record["held_out_scores"]["starting_model"]
        log(f"[{index}/{len(todo)}] {name}: mean F1 {figures['f1_mean']:.4f} on {val_split} ({record['steps']} steps, "
            f"{record['training_minutes']:.1f} min training, {(time.time() - began) / 60:.1f} min in all"
            + (", starting model kept" if record["kept_starting_model"] else "") + ")")
        ledger.add({"model": name, "n": n, "repeat": repeat, "start": start, "seed": model_seed,
                    "images_hash": ex.names_hash(names), "images_file": str(images_file), "budget_minutes": minutes,
                    "training_minutes": record["training_minutes"], "total_minutes": record["total_minutes"],
                    "steps": record["steps"], "kept_starting_model": int(record["kept_starting_model"]),
                    "held_out_start_f1": "" if starting is None else starting["f1_mean"],
                    "held_out_f1": record["held_out_scores"]["fine_tuned"]["f1_mean"], **figures})
    rows = [ledger.rows[model_name(*key)] for key in keys]
    save_figure(plot(rows, references), out / "plots" / "finetune_curve.png")
    write_atomic(out / "report.md", report(rows, references, settings, command, len(train_names)))
    write_csv(out / "results.csv", COLUMNS, rows)  # last: its presence means complete
    log(f"wrote {out / 'results.csv'}, {out / 'report.md'} and {out / 'plots' / 'finetune_curve.png'}")
    return rows


def by_setting(rows: list[dict]) -> list[dict]:
    """Per (start, n): mean and spread over the draws of F1 and the error counts."""
    table = []
    for start in STARTS:
        for n in sorted({int(r["n"]) for r in rows if r["start"] == start}):
            group = [r for r in rows if r["start"] == start and int(r["n"]) == n]
            table.append({"start": start, "n": n, "models": len(group),
                          "kept": sum(int(r["kept_starting_model"]) for r in group),
                          **ex.over_repeats(group, ("f1_mean", "error_rate_070", "missed", "merges", "splits",
                                                    "training_minutes", "total_minutes", "steps"))})
    return table


def answer(rows: list[dict], references: dict) -> str:
    """The one sentence: how many annotated fields beat the general model, beat advanced, reach :data:`GOAL_F1`."""
    tuned = [t for t in by_setting(rows) if t["start"] == "general"]

    def fewest(threshold: float) -> str:
        hits = [t["n"] for t in tuned if t["f1_mean"] > threshold]
        return f"{hits[0]}" if hits else f"none of the sizes tried (up to {max(t['n'] for t in tuned)})"

    general, advanced = references["unet"]["f1_mean"], references["advanced"]["f1_mean"]
    goal = [t["n"] for t in tuned if t["f1_mean"] >= GOAL_F1]
    return (f"Fine-tuned for {float(rows[0]['budget_minutes']):g} minutes, the fewest annotated fields whose mean over "
            f"draws beats the general model ({general:.3f}) is {fewest(general)}, beats the advanced pipeline "
            f"({advanced:.3f}) {fewest(advanced)}, and reaches {GOAL_F1} "
            + (f"{goal[0]}." if goal else f"none of the sizes tried (best {max(t['f1_mean'] for t in tuned):.3f})."))


def plot(rows: list[dict], references: dict):
    """Mean F1 (left) and errors of the fine-tuned models (right) against the number of annotated images."""
    import matplotlib.ticker

    plt = pyplot()
    table = by_setting(rows)
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    colours = {"general": "tab:blue", "scratch": "tab:orange"}
    labels = {"general": "fine-tuned from the general U-Net", "scratch": "trained from scratch"}
    sizes = sorted({t["n"] for t in table})
    for start in STARTS:
        part = [t for t in table if t["start"] == start]
        if not part:
            continue
        left.scatter([int(r["n"]) for r in rows if r["start"] == start],
                     [float(r["f1_mean"]) for r in rows if r["start"] == start], color=colours[start], alpha=0.35, s=16)
        left.errorbar([t["n"] for t in part], [t["f1_mean"] for t in part], yerr=[t["f1_mean_sd"] for t in part],
                      fmt="o-", color=colours[start], capsize=3, label=f"{labels[start]} (mean ± sd over draws)")
    for (name, label), style in zip(REFERENCES.items(), ("--", ":")):
        left.axhline(references[name]["f1_mean"], color="black", linestyle=style, label=label)
    left.set(xlabel="annotated images", ylabel="mean F1 (IoU 0.50-0.95)", title="Accuracy on the validation fields")
    left.legend(fontsize=7)
    tuned = [t for t in table if t["start"] == "general"]
    for key, colour in (("missed", "tab:red"), ("merges", "tab:purple"), ("splits", "tab:green")):
        right.plot([t["n"] for t in tuned], [t[key] for t in tuned], "o-", color=colour, label=f"{key} (fine-tuned)")
        right.axhline(references["unet"][key], color=colour, linestyle="--", alpha=0.7, label=f"{key} (general U-Net)")
    right.set_yscale("symlog", linthresh=10)
    right.set_ylim(bottom=0)
    right.set(xlabel="annotated images", ylabel=f"count over {int(rows[0]['images'])} validation images",
              title="Errors at IoU 0.7 (fine-tuned)")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.set_xticks(sizes, [str(s) for s in sizes])
    figure.suptitle(f"Fine-tuning on a few annotated images ({float(rows[0]['budget_minutes']):g} min per model)")
    figure.tight_layout()
    return figure


def report(rows: list[dict], references: dict, settings: dict, command: str, n_train: int) -> str:
    """report.md of a finished curve."""
    val_names = settings["val_images"]
    lines = [
        "# How many images to annotate: fine-tuning curve", "",
        f"Finished {ex.stamp()}; {len(rows)} models. Command:", "", *ex.command_block(command), "",
        answer(rows, references), "",
        f"Each model: n images drawn without replacement from the {n_train} `{settings['train_split']}` images of "
        f"`{settings['data']}` of kind `{settings['kind']}` (`nucleiseg.layouts.image_kinds`; the lists are in `subsets/`), "
        f"given to `python -m nucleiseg.finetune` with its defaults (held-out images, robust augmentation, "
        f"post-processing tuned on the training images, the better of start and result kept) and a budget of "
        f"{settings['minutes']:g} minutes instead of its default 15; `scratch` adds `--from-scratch`. Minutes are "
        "wall-clock on this machine's CPU cores, shared with whatever else ran (the steps column says how much "
        "training each model got).", "",
        f"Scored through headless CellProfiler (`unet.cppipe` with the model as *Custom model file*) on the "
        f"{len(val_names)} `{settings['val_split']}` images of that kind (hash {ex.names_hash(val_names)}).", "",
        "| start | n | models | mean F1 | error rate @0.7 | missed | merges | splits | steps | training min | min in all | start kept |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in by_setting(rows):
        lines.append(f"| {t['start']} | {t['n']} | {t['models']} | {ex.mean_cell(t)} | {ex.error_cells(t)} | "
                     f"{t['steps']:.0f} | {t['training_minutes']:.1f} | {t['total_minutes']:.1f} | {t['kept']} |")
    for name, label in REFERENCES.items():
        figures = references[name]
        lines.append(f"| {label} | | | {figures['f1_mean']:.3f} | {ex.error_cells(figures)} | | | | |")
    lines += ex.report_ending("fine-tuning curve", "plots/finetune_curve.png")
    return "\n".join(lines)


def add_parser(sub) -> None:
    """Register the ``finetune-curve`` sub-command."""
    import argparse

    parser = sub.add_parser("finetune-curve", help="fine-tune on 1, 2, 4 ... annotated images of one kind with the one "
                            "command, and from scratch; score through CellProfiler", description=__doc__.split("\n\n")[1],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="data folder in our layout with a manifest.csv")
    parser.add_argument("--out", required=True, type=Path, help="output folder (resumes the models already recorded there)")
    parser.add_argument("--kind", default="bbbc039", help="kind of image (nucleiseg.layouts.image_kinds): bbbc039 "
                        "(default) or a size such as 360x360")
    parser.add_argument("--sizes", default="1,2,4,8,16", help="numbers of annotated images (default 1,2,4,8,16)")
    parser.add_argument("--repeats", type=int, default=3, help="draws per size (default 3)")
    parser.add_argument("--minutes", type=float, default=2.0, help="fine-tuning budget per model (default 2)")
    parser.add_argument("--starts", default=",".join(STARTS), help="general (fine-tune the shipped U-Net) and/or scratch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws and of training (default 0)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="val")
    parser.add_argument("--workers", type=int, default=1, help="CellProfiler processes per scoring run (default 1)")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """Run the sub-command from parsed arguments; returns the exit status."""
    def body():
        run(args.data, args.out, args.kind, parse_sizes(args.sizes), args.repeats, args.minutes, parse_starts(args.starts),
            args.seed, args.train_split, args.val_split, args.workers, command=ex.canonical_command("finetune-curve", args))
    return ex.run_cli(body)

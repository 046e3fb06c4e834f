"""The U-Net's width at equal wall-clock: which width to spend a training budget on.

    python -m benchmark widths --data DIR --out OUT --widths 16,24,32 --minutes 20
        [--perturbations noise,blur,...] [--val-images 20] [--robust --bf16 --cosine] [--reference per_image.csv]

A wider U-Net learns more per step but takes more seconds per step, so on a
fixed CPU budget the question is not "which width is best" but "which width is
best after M minutes". For each width, the seconds per training step are
measured first on a throwaway network (:func:`benchmark.experiments.seconds_per_step`);
the model then trains from scratch for as many steps as fit in ``--minutes``
(the cosine decay, with ``--cosine``, spans exactly those steps) and is scored
on the validation images and on deterministic perturbed copies of them
(:mod:`nucleiseg.perturbations`, made in memory, never written to the data
folder), the robustness benchmark's conditions without CellProfiler. The
chosen width is the one with the highest mean F1 averaged over the clean set
and every perturbed set.

Models are keyed by width, so a later run with more widths in the same
``--out`` adds only the new ones (the other settings must match), and a model
stopped part way carries on from its checkpoint (``checkpoints/<model>/``, every
250 steps) with the step count measured for it the first time
(``step_times.json``). Writes
``progress.csv``/``settings.json`` (resume), ``weights/``, ``run.log`` and, when
every requested width is done, ``results.csv``, ``report.md`` and
``plots/widths.png``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from nucleiseg import perturbations

from . import experiments as ex
from .figures import pyplot, save_figure
from .model_conditions import evaluation_sets
from .outputs import write_atomic, write_json
from .robustness import CLEAN, MAX_DROP
from .tables import write_csv

FINAL_OUTPUTS = ("results.csv", "report.md", "plots")
#: The measured seconds per step of each model, kept so that a resumed model trains the same number of steps.
STEP_TIMES = "step_times.json"
#: Signature of :func:`benchmark.experiments.seconds_per_step`; tests pass a stand-in.
Timer = Callable[..., float]


def parse_widths(text: str) -> list[int]:
    """``"16,24,32"`` as ``[16, 24, 32]``; ExperimentError naming ``--widths`` otherwise."""
    try:
        widths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ex.ExperimentError(f"--widths: expected comma-separated whole numbers, got {text!r}") from None
    if not widths or min(widths) < 1 or len(set(widths)) != len(widths):
        raise ex.ExperimentError(f"--widths: expected distinct widths >= 1, got {text!r}")
    return widths


def columns(sets: list[str]) -> list[str]:
    return ["model", "width", "repeat", "seed", "minutes", "seconds_per_step", "steps", "train_seconds", "eval_seconds",
            "loss_first", "loss_last", *(f"{s}_{c}" for s in sets for c in ex.SCORE_COLUMNS)]


def model_name(width: int, repeat: int) -> str:
    return f"width{width}-r{repeat}"


def steps_for(minutes: float, seconds_per_step: float) -> int:
    """Training steps that fit in ``minutes`` at ``seconds_per_step`` (at least one)."""
    return max(1, int(minutes * 60 / seconds_per_step))


def run(data: Path, out: Path, schedule: ex.Schedule, widths: list[int], minutes: float,
        perturbation_names: list[str] | None = None, val_images: int = 0, repeats: int = 1, seed: int = 0,
        train_split: str = "train", val_split: str = "val", reference: Path | None = None,
        reference_pipeline: str = ex.REFERENCE_PIPELINE, command: str = "", trainer: ex.Trainer | None = None,
        timer: Timer | None = None) -> list[dict]:
    """Train one model per width (and repeat) for ``minutes`` each; write the outputs when all are done.

    Parameters
    ----------
    schedule : Schedule
        Everything but ``width`` and ``steps``, which are set per model.
    widths : list of int
        U-Net base widths to compare.
    minutes : float
        Training wall-clock per model (scoring not counted).
    perturbation_names : list of str, optional
        Perturbed copies of the validation images to score on besides the clean ones
        (default: every perturbation of :data:`nucleiseg.perturbations.PERTURBATIONS`).

    Returns
    -------
    list of dict
        One row per model (the rows of ``results.csv``).
    """
    from nucleiseg.training import load_examples

    trainer = trainer or ex.train_and_score
    timer = timer or ex.seconds_per_step
    data, out = Path(data), Path(out)
    if not minutes > 0:
        raise ex.ExperimentError(f"--minutes must be > 0, got {minutes}")
    if repeats < 1:
        raise ex.ExperimentError(f"--repeats must be >= 1, got {repeats}")
    try:
        names = perturbations.check_names(list(perturbations.PERTURBATIONS) if perturbation_names is None else perturbation_names)
    except ValueError as error:
        raise ex.ExperimentError(f"--perturbations: {error}") from None
    train_names = ex.split_names(data, train_split, "--train-split")
    val_names = ex.split_names(data, val_split, "--val-split")
    if val_images:
        val_names = val_names[:val_images]
    by_width = {width: replace(schedule, width=width) for width in widths}  # each width checked before any training
    sets = [CLEAN, *names]
    references, reference_note = ex.reference_scores(reference, reference_pipeline, {CLEAN: val_names})
    cols = columns(sets)
    shared = {k: v for k, v in schedule.to_dict().items() if k not in ("width", "steps")}
    settings = {"experiment": "widths", "data": str(data.resolve()), "train_split": train_split, "seed": seed,
                "minutes": minutes, "schedule": shared, "val_split": val_split, "val_images": val_names,
                "perturbations": names, "train_images": ex.names_hash(train_names)}
    ledger = ex.Ledger(out, settings, cols)
    ex.clear_outputs(out, FINAL_OUTPUTS)
    log = ex.make_logger(out / "run.log")
    eval_sets = evaluation_sets(load_examples(data, val_split, None, names=val_names), names)
    step_times = json.loads((out / STEP_TIMES).read_text()) if (out / STEP_TIMES).is_file() else {}
    keys = [(width, repeat) for repeat in range(1, repeats + 1) for width in widths]
    todo = [key for key in keys if not ledger.done(model_name(*key))]
    log(f"widths {', '.join(map(str, widths))} at {minutes:g} training minutes each; {len(train_names)} training images, "
        f"{len(val_names)} {val_split} images x {len(sets)} conditions; {len(keys)} models, {len(keys) - len(todo)} already done")
    for index, (width, repeat) in enumerate(todo, start=1):
        name = model_name(width, repeat)
        model_seed = ex.model_seed(seed, width, repeat)
        per_step = step_times.get(name)
        if per_step is None:  # measured once: a model resumed from its checkpoint keeps its step count
            per_step = timer(data, train_split, train_names, by_width[width], model_seed)
            step_times[name] = per_step
            write_json(out / STEP_TIMES, step_times)
        steps = steps_for(minutes, per_step)
        log(f"[{index}/{len(todo)}] {name}: {per_step:.3f} s per step -> {steps} steps, seed {model_seed}")
        result = trainer(data, train_split, train_names, eval_sets, replace(by_width[width], steps=steps), model_seed,
                         **ex.model_files(out, name), log=log)
        log(f"[{index}/{len(todo)}] {name}: " + ", ".join(f"{s} {result['scores'][s]['f1_mean']:.4f}" for s in sets))
        ledger.add({"model": name, "width": width, "repeat": repeat, "seed": model_seed, "minutes": minutes,
                    "seconds_per_step": round(per_step, 4),
                    **{k: result[k] for k in ("steps", "train_seconds", "eval_seconds", "loss_first", "loss_last")},
                    **{f"{s}_{c}": result["scores"][s][c] for s in sets for c in ex.SCORE_COLUMNS}})
    rows = [ledger.rows[model_name(*key)] for key in keys]
    table = summary_table(rows, widths, sets)
    save_figure(plot(table, sets, references, reference_pipeline), out / "plots" / "widths.png")
    write_atomic(out / "report.md", report(rows, table, sets, references, reference_pipeline, reference_note, schedule,
                                          minutes, command, len(train_names), len(val_names), val_split))
    write_csv(out / "results.csv", cols, rows)  # last: its presence means complete
    log(f"wrote {out / 'results.csv'}, {out / 'report.md'} and {out / 'plots' / 'widths.png'}")
    return rows


def summary_table(rows: list[dict], widths: list[int], sets: list[str]) -> dict:
    """Per width: steps, seconds per step and mean F1 on each set (means over repeats), and the overall mean."""
    keys = ["steps", "seconds_per_step", "train_seconds", *(f"{s}_f1_mean" for s in sets), f"{CLEAN}_error_rate_070",
            f"{CLEAN}_missed"]
    table = {}
    for width in widths:
        figures = ex.over_repeats([r for r in rows if int(r["width"]) == width], keys)
        figures["models"] = sum(1 for r in rows if int(r["width"]) == width)
        figures["overall"] = float(np.mean([figures[f"{s}_f1_mean"] for s in sets]))
        figures["worst_drop"] = max((figures[f"{CLEAN}_f1_mean"] - figures[f"{s}_f1_mean"] for s in sets[1:]), default=0.0)
        table[width] = figures
    return table


def chosen_width(table: dict) -> int:
    """The width with the highest mean F1 over the clean and every perturbed set."""
    return max(table, key=lambda width: table[width]["overall"])


def plot(table: dict, sets: list[str], references: dict, reference_pipeline: str):
    """Mean F1 per condition, one line per width (the reference pipeline's clean score as a marker)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(max(6, 0.9 * len(sets)), 4))
    x = np.arange(len(sets))
    for width, figures in table.items():
        axis.plot(x, [figures[f"{s}_f1_mean"] for s in sets], marker="o",
                  label=f"width {width} ({figures['steps']:.0f} steps)")
    if references:
        axis.plot([0], [float(references[CLEAN]["f1_mean"])], marker="*", markersize=12, linestyle="none", color="black",
                  label=f"{reference_pipeline} (CellProfiler), clean")
    axis.set_xticks(x, sets, rotation=30, ha="right")
    axis.set(ylabel="mean F1 (IoU 0.50-0.95)", ylim=(0, 1), title="U-Net width at equal training wall-clock")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def report(rows, table, sets, references, reference_pipeline, reference_note, schedule: ex.Schedule, minutes, command,
           train_count, val_count, val_split) -> str:
    """report.md of a finished width comparison."""
    best = chosen_width(table)
    lines = [
        "# U-Net width at equal wall-clock", "",
        f"Finished {ex.stamp()}; {len(rows)} models. Command:", "", *ex.command_block(command), "",
        f"Every width trains from scratch on the {train_count} training images for **{minutes:g} minutes** of training "
        "(steps = minutes / the median seconds of a step measured first on a throwaway network; scoring not counted), "
        f"then is scored on {val_count} {val_split} images and on perturbed copies of them (made in memory by "
        "`nucleiseg.perturbations`, as in the robustness benchmark, without CellProfiler).", "",
        "## Schedule", "", schedule.markdown(per_model="per model, see the table below"), "",
        f"Reference: {reference_note}.", "",
        "## Mean F1 per condition (mean over repeats)", "",
        "| width | s per step | steps | " + " | ".join(sets) + " | mean | worst drop |",
        "|---:|---:|---:|" + "---:|" * (len(sets) + 2),
    ]
    for width, figures in table.items():
        lines.append(f"| {width} | {figures['seconds_per_step']:.3f} | {figures['steps']:.0f} | "
                     + " | ".join(f"{figures[f'{s}_f1_mean']:.3f}" for s in sets)
                     + f" | {figures['overall']:.3f} | {figures['worst_drop']:.3f} |")
    if references:
        lines.append(f"| {reference_pipeline} | | | {float(references[CLEAN]['f1_mean']):.3f} |" + " |" * (len(sets) + 1))
    lines += ["", f"Chosen by the mean over all {len(sets)} conditions: **width {best}**. "
              + (f"Drops of more than {MAX_DROP} from the clean score: "
                 + "; ".join(f"width {w}: {', '.join(s for s in sets[1:] if f[f'{CLEAN}_f1_mean'] - f[f'{s}_f1_mean'] > MAX_DROP) or 'none'}"
                             for w, f in table.items()) + ".")]
    lines += ["", f"## Errors at IoU 0.7 on the clean {val_split} images", "",
              "| width | error rate | missed |", "|---:|---:|---:|"]
    for width, figures in table.items():
        lines.append(f"| {width} | {figures[f'{CLEAN}_error_rate_070']:.3f} | {figures[f'{CLEAN}_missed']:.0f} |")
    lines += ex.report_ending("widths", "plots/widths.png")
    return "\n".join(lines)


def add_parser(sub) -> None:
    """Register the ``widths`` sub-command."""
    parser = ex.add_experiment_parser(sub, "widths", "U-Net widths trained for equal wall-clock, scored clean and perturbed",
                                      __doc__, 0, main, varied=("width", "steps"))
    parser.add_argument("--widths", default="16,24,32", help="comma-separated U-Net base widths (default 16,24,32)")
    parser.add_argument("--minutes", type=float, default=20.0, help="training minutes per model (default 20)")
    parser.add_argument("--perturbations", default=",".join(perturbations.PERTURBATIONS),
                        help="comma-separated perturbed copies of the validation images to score on (default: all but "
                             + ", ".join(perturbations.EXTRA_PERTURBATIONS) + ", which run only when named)")


def main(args) -> int:
    """Run the sub-command from parsed arguments; returns the exit status."""
    def body():
        names = [n.strip() for n in args.perturbations.split(",") if n.strip()]
        run(args.data, args.out, ex.schedule_from(args), parse_widths(args.widths), args.minutes, perturbation_names=names,
            val_images=args.val_images, repeats=args.repeats, seed=args.seed, train_split=args.train_split,
            val_split=args.val_split, reference=args.reference, reference_pipeline=args.reference_pipeline,
            command=ex.canonical_command("widths", args))
    return ex.run_cli(body)

"""Command line of the benchmark.

    python -m benchmark run --data DIR|synthetic [--split val] --pipelines basic,advanced
                            --out OUT [--workers N] [--limit K] [--scheduler ADDRESS] [--resume]
    python -m benchmark report OUT [--data DIR --split S]   # write report.md again
    python -m benchmark compare OUT [OUT ...]   # paired per-image differences with bootstrap intervals
    python -m benchmark pipelines        # list the pipelines that exist
    python -m benchmark learning-curve ...   # paper Figure 4, see benchmark/learning_curve.py
    python -m benchmark transfer ...         # paper Figure 5, see benchmark/transfer.py
    python -m benchmark finetune-curve ...   # how many images to annotate, see benchmark/finetune_curve.py
    python -m benchmark robustness ...       # the split and perturbed copies of it, see benchmark/robustness.py
    python -m benchmark conditions ...       # model cards on those copies in process (quick), see benchmark/model_conditions.py
    python -m benchmark leave-one-kind-out ...   # train without one kind of image, score on it
    python -m benchmark widths ...           # U-Net widths at equal training wall-clock
    python -m benchmark model-cards OUT      # cards for an experiment folder's models that lack one
    python -m benchmark speed metric|unet|deepcell-modes|throughput|training ...   # see benchmark/speed/

Exit status: 0 on success, 1 when a pipeline fails, 2 for bad data, arguments, missing
pipeline files or a missing CellProfiler, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nucleiseg.layouts import LAYOUTS, DataError

from . import (compare, experiment_cards, finetune_curve, leave_one_kind_out, learning_curve, model_conditions, robustness, speed, transfer,
               width_choice)
from .errors import BenchmarkError, PipelineError
from .pipeline_files import PIPELINES_DIR, available_pipelines
from .report import regenerate
from .runner import run_benchmark


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every sub-command sets ``handler``, the function that runs it."""
    parser = argparse.ArgumentParser(prog="python -m benchmark", description="Benchmark CellProfiler nucleus segmentation pipelines.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run pipelines on a data set and write summary.csv, per_image.csv, report.md",
        description="Validate the data, run each pipeline headless (sharded over CPU cores), score "
        "predictions against ground truth and write OUT/summary.csv, OUT/per_image.csv, "
        "OUT/report.md, OUT/plots/ and OUT/<pipeline>/labels/.",
    )
    run.add_argument("--data", required=True, help="data folder (our layout or BBBC039's), or 'synthetic'")
    run.add_argument("--split", default="val", help="train, val, test or all (default val); folders without split files use all images")
    run.add_argument("--pipelines", required=True, help="comma-separated names in pipelines/ (or paths to .cppipe files)")
    run.add_argument("--out", required=True, type=Path, help="output folder")
    run.add_argument("--workers", type=int, default=None, help="CellProfiler processes in parallel (default: CPU count; with --scheduler, one per Dask worker)")
    run.add_argument(
        "--scheduler", default=None, metavar="ADDRESS",
        help="run the shards on this Dask distributed scheduler (tcp://host:8786); its workers need this "
        "project installed and must see the output folder, pipelines and plug-ins under the same paths",
    )
    run.add_argument("--limit", type=int, default=None, help="only the first K images of the split")
    run.add_argument("--layout", choices=LAYOUTS, default=None, help="force a data layout (default: detect)")
    run.add_argument("--allow-empty-masks", action="store_true", help="score images whose mask has no nuclei instead of failing")
    run.add_argument("--seed", type=int, default=0, help="seed of the synthetic set (default 0)")
    run.add_argument("--synthetic-n", type=int, default=12, help="images in the synthetic set (default 12)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--resume", action="store_true",
        help="skip CellProfiler for pipelines an earlier (e.g. interrupted) run into OUT finished with the same "
        ".cppipe file, code and shipped models on the same images: their labels and timings are reused and "
        "scored again (custom model files are not checked)",
    )
    run.set_defaults(handler=run_command)
    report = sub.add_parser("report", help="write report.md and plots/ again from a finished benchmark folder")
    report.add_argument("out", type=Path, help="benchmark output folder (holds summary.csv and per_image.csv)")
    report.add_argument("--data", type=Path, default=None, help="data folder of the run (default: from run.json)")
    report.add_argument("--split", default=None, help="split of the run (default: from run.json)")
    report.set_defaults(handler=report_command)
    compare.add_parser(sub)
    sub.add_parser("pipelines", help="list the pipelines in pipelines/").set_defaults(handler=pipelines_command)
    learning_curve.add_parser(sub)  # the paper's experiments: Figures 4 and 5
    finetune_curve.add_parser(sub)  # Figure 4 as a user lives it: the fine-tuning command on 1, 2, 4 ... images
    transfer.add_parser(sub)
    leave_one_kind_out.add_parser(sub)
    width_choice.add_parser(sub)
    experiment_cards.add_parser(sub)
    model_conditions.add_parser(sub)
    robustness.add_parser(sub)
    speed.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (DataError, BenchmarkError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted" + ("; no summary.csv written" if args.command == "run" else ""), file=sys.stderr)
        return 130


def run_command(args) -> int:
    """``run``: the whole benchmark (:func:`benchmark.runner.run_benchmark`)."""
    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    split = None if args.split in ("", "all") else args.split
    result = run_benchmark(
        args.data,
        names,
        args.out,
        split=split,
        workers=args.workers,
        limit=args.limit,
        allow_empty_masks=args.allow_empty_masks,
        layout=args.layout,
        seed=args.seed,
        synthetic_n=args.synthetic_n,
        quiet=args.quiet,
        scheduler=args.scheduler,
        resume=args.resume,
    )
    print(f"wrote {result.out / 'summary.csv'} and {result.out / 'report.md'}", file=sys.stderr)
    return 0


def report_command(args) -> int:
    """``report``: ``report.md`` and the plots again from a finished folder."""
    try:
        path = regenerate(args.out, data=args.data, split=args.split)
    except (OSError, ValueError) as error:
        raise BenchmarkError(str(error)) from error
    print(f"wrote {path}", file=sys.stderr)
    return 0


def pipelines_command(args) -> int:
    """``pipelines``: the names of the shipped pipelines."""
    for name in available_pipelines(PIPELINES_DIR):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

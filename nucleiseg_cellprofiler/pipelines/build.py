"""Write the shipped CellProfiler pipelines (pipelines/*.cppipe) with the cellprofiler_core API.

    .venv/bin/python -m nucleiseg_cellprofiler.pipelines            # writes every shipped pipeline
    .venv/bin/python -m nucleiseg_cellprofiler.pipelines basic      # only some
    .venv/bin/python -m nucleiseg_cellprofiler.pipelines unet-tta --out out/pipelines   # with test-time augmentation
    .venv/bin/python -m nucleiseg_cellprofiler.pipelines advanced-segment --out out/pipelines   # without ground truth
    .venv/bin/python -m nucleiseg_cellprofiler.pipelines unet --model-card my-models/plate1.json --out my-pipelines
    .venv-cp42/bin/python -m nucleiseg_cellprofiler.pipelines --cellprofiler 4   # pipelines/cp4/, for CellProfiler 4.2.8

Generating is safer than hand-editing the text format: every setting goes through the
module's own Setting objects, so a typo fails here instead of at run time. The kinds of
pipeline are registered in :mod:`.kinds`; docs/CONVENTIONS.md lists the names every
pipeline uses.

The pipelines are written by the installed CellProfiler's modules, so in the format and
module revisions of that CellProfiler. CellProfiler 4.2.8 loads 5's files with a warning
that the result may be unpredictable (its Images, Metadata and NamesAndTypes are a revision
older and it drops the settings it lacks), so its pipelines are written by 4.2.8 itself, into
``pipelines/cp4/`` (``--cellprofiler 4``, run in ``.venv-cp42``).
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import replace
from pathlib import Path

from .. import CP4_PIPELINES_DIR, PIPELINES_DIR, PLUGINS_DIR
from ..headless import cellprofiler_major, init_cellprofiler, plugin_available
from . import kinds
from .modules import SEGMENT_ASSIGNMENTS, input_modules, measurement_modules, output_modules


def build(name: str, params: dict | None = None, ensemble: int | None = None, model_card: Path | str | None = None):
    """The pipeline called ``name``: a registered kind, optionally with variant suffixes (:mod:`.kinds`).

    Parameters
    ----------
    name : str
        E.g. ``basic``, ``unet-bbbc039``, ``deepcell-tta``, ``advanced-segment``.
    params : dict, optional
        Settings replacing a classical kind's tuned ones.
    ensemble : int, optional
        Run only the first networks of an ensemble model (default: all).
    model_card : Path, optional
        Network kinds: a model card of one's own as the module's *Custom model file*
        (its post-processing from the card, as for the shipped models).

    Returns
    -------
    cellprofiler_core.pipeline.Pipeline

    Raises
    ------
    ValueError
        For an unknown name, or an option that does not apply to it.
    """
    kind, options = kinds.resolve(name)
    if ensemble is not None and kind.model_type is None:
        raise ValueError(f"ensemble size applies to network pipelines, not {kind.name!r}")
    if model_card is not None:
        if kind.model_type is None:
            raise ValueError(f"a model card applies to network pipelines, not {kind.name!r}")
        if not Path(model_card).is_file():
            raise ValueError(f"model card not found: {model_card}")
    options = replace(options, params=params, ensemble=ensemble,
                      model_card=str(Path(model_card).resolve()) if model_card is not None else None)
    init_cellprofiler()
    from cellprofiler_core.pipeline import Pipeline

    processing = kind.processing(options)
    if options.ground_truth:
        steps = input_modules() + processing + output_modules()
    else:
        steps = input_modules(SEGMENT_ASSIGNMENTS) + processing + measurement_modules() + output_modules(with_f1=False)
    pipeline = Pipeline()
    for number, step in enumerate(steps, start=1):
        step.set_module_num(number)
        pipeline.add_module(step)
    return pipeline


def dumps(pipeline) -> str:
    """The pipeline's ``.cppipe`` text (without image plane details, as shipped)."""
    buffer = io.StringIO()
    pipeline.dump(buffer, save_image_plane_details=False)
    return buffer.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nucleiseg_cellprofiler.pipelines", description=__doc__.splitlines()[0])
    parser.add_argument("kinds", nargs="*", metavar="KIND", help=f"pipelines to write (default: {', '.join(kinds.shipped())})")
    parser.add_argument("--out", type=Path,
                        help=f"folder to write KIND.cppipe into (default: {PIPELINES_DIR}, or {CP4_PIPELINES_DIR} "
                             "with --cellprofiler 4)")
    parser.add_argument("--cellprofiler", type=int, choices=(4, 5),
                        help="the CellProfiler version the pipelines are for; it must be the one installed here "
                             "(4: CellProfiler 4.2.8, e.g. .venv-cp42; default: the installed one)")
    parser.add_argument("--ensemble", type=int, metavar="N",
                        help="network pipelines: run only the first N networks of an ensemble model (default: all)")
    parser.add_argument("--model-card", type=Path, metavar="CARD",
                        help="network pipelines: use this model card (e.g. from nucleiseg.finetune) as the Custom model file")
    args = parser.parse_args(argv)
    names = args.kinds or kinds.shipped()
    installed = cellprofiler_major()
    if args.cellprofiler is None:
        args.cellprofiler = installed
    if installed != args.cellprofiler:
        parser.error(f"--cellprofiler {args.cellprofiler}: this Python ({sys.executable}) has CellProfiler {installed}; "
                     "pipelines are written by the CellProfiler they are for"
                     + (" (CellProfiler 4.2.8: make .venv-cp42/.installed)" if args.cellprofiler == 4 else ""))
    out = args.out or (CP4_PIPELINES_DIR if args.cellprofiler == 4 else PIPELINES_DIR)
    out.mkdir(parents=True, exist_ok=True)
    init_cellprofiler()
    if not plugin_available("EvaluateObjectF1"):
        print("warning: EvaluateObjectF1 plugin not found in", PLUGINS_DIR, file=sys.stderr)
    for name in names:
        try:
            text = dumps(build(name, ensemble=args.ensemble, model_card=args.model_card))
        except ValueError as error:
            parser.error(f"{name}: {error}")
        path = out / f"{name}.cppipe"
        with open(path, "w", newline="\n") as handle:
            handle.write(text)
        print("wrote", path)
    return 0

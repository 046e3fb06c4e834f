"""Tune the classical CellProfiler pipelines (basic, advanced) on the train split.

    nice -n 10 .venv/bin/python -m nucleiseg_cellprofiler.tune_classical basic    --data DIR --out out/tuning
    nice -n 10 .venv/bin/python -m nucleiseg_cellprofiler.tune_classical advanced --data DIR --out out/tuning
    nice -n 10 .venv/bin/python -m nucleiseg_cellprofiler.tune_classical evaluate pipelines/basic.cppipe \
        --data DIR --split val --out out/eval/basic-val        # headless CellProfiler, then scored

The modules are the very ones the pipeline generator writes (the same builder functions
of :mod:`nucleiseg_cellprofiler.pipelines.classical`), run in-process on a workspace per
image, so a tuned setting is exactly what the .cppipe contains. Search:
:func:`nucleiseg.search.coordinate_search` over a coarse grid, one parameter at a time,
repeated until a full round changes nothing; a value replaces the current one only when it
scores more than 1e-4 higher. Score: mean over images of the object F1 averaged over IoU
thresholds 0.50 ... 0.95 (:func:`nucleiseg.metric.score_image`).

Only the train split is read (the tuning set is drawn from it); val is never touched. The
data folder is read through :mod:`nucleiseg.layouts` (either layout); a ``manifest.csv``
whose ``bbbc039_field`` column marks BBBC039 fields lets their mean be logged (and chosen
as the objective) apart from the others'.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from nucleiseg import layouts, metric
from nucleiseg.search import coordinate_search

from . import PLUGINS_DIR
from .headless import init_cellprofiler, run_modules
from .names import IMAGE, LABELS_FOLDER, NUCLEI
from .pipelines import kinds
from .pipelines.kinds import BuildOptions

DEFAULT_DATA = Path(os.environ.get("NUCLEISEG_DATA", "/work/shared/data/dsb2018-fluo"))
#: manifest.csv column marking the BBBC039 fields, logged (and optionally optimised) apart.
FIELD_COLUMN = "bbbc039_field"
#: How much a value must beat the current one by to replace it (ties keep the simpler current setting).
MIN_GAIN = 1e-4


# ---------------------------------------------------------------------------------- data


def field_stems(data_dir: Path) -> set[str]:
    """Stems the data folder's ``manifest.csv`` marks as BBBC039 fields (none without a manifest)."""
    manifest = Path(data_dir) / "manifest.csv"
    return layouts.manifest_stems(manifest, FIELD_COLUMN) if manifest.is_file() else set()


def tuning_set(data_dir: Path, n_other: int = 40, seed: int = 0) -> tuple[list[layouts.Pair], list[layouts.Pair]]:
    """All BBBC039 fields of train, and a fixed random sample of ``n_other`` other train images."""
    train = layouts.list_pairs(data_dir, "train")
    marked = field_stems(data_dir)
    fields = [pair for pair in train if pair.stem in marked]
    others = [pair for pair in train if pair.stem not in marked]
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice([pair.stem for pair in others], size=min(n_other, len(others)), replace=False))
    by_stem = {pair.stem: pair for pair in others}
    return fields, [by_stem[stem] for stem in picked]


def load(pair: layouts.Pair) -> tuple[np.ndarray, np.ndarray]:
    """(pixels as CellProfiler sees them, ground-truth labels) of one pair."""
    image = layouts.read_image(pair.image)
    pixels = image.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        # NamesAndTypes "Image bit-depth": integer images are divided by their dtype's maximum.
        pixels /= np.iinfo(image.dtype).max
    return pixels, layouts.read_labels(pair.mask)


def f1_mean(gt: np.ndarray, pred: np.ndarray) -> float:
    """The image's object F1 averaged over the IoU thresholds 0.50 ... 0.95."""
    return float(metric.score_image(gt, pred).f1_mean)


# ------------------------------------------------------------------------ running modules

PREPROCESSING = ("CorrectIlluminationCalculate", "CorrectIlluminationApply", "Smooth", "Opening")


def processing(kind: str, params: dict) -> list:
    """The processing modules of classical kind ``kind`` with ``params``."""
    init_cellprofiler()
    return kinds.get(kind).processing(BuildOptions(params=params))


def split_modules(mods):
    """(image-only preprocessing modules, the rest from IdentifyPrimaryObjects on)."""
    mods = [m for m in mods if m.enabled]  # disabled modules do not run in CellProfiler
    i = next(k for k, m in enumerate(mods) if m.module_name == "IdentifyPrimaryObjects")
    assert all(m.module_name in PREPROCESSING for m in mods[:i])
    return mods[:i], mods[i:]


def preprocess(kind: str, params: dict, pix: np.ndarray) -> tuple[str, np.ndarray]:
    """Run the image-only modules; returns (name, pixels) of the image IPO segments."""
    pre, rest = split_modules(processing(kind, params))
    name = rest[0].x_name.value
    if not pre:
        return name, pix
    ws = run_modules(pre, {IMAGE: pix})
    return name, ws.image_set.get_image(name).pixel_data


def segment(kind: str, params: dict, pix: np.ndarray, pre=None, fast=False) -> np.ndarray:
    """Labels of the final Nuclei; ``pre`` = preprocess(...) output to skip that part."""
    _, rest = split_modules(processing(kind, params))
    name, img = pre if pre is not None else preprocess(kind, params, pix)
    if fast and any(m.module_name == "FilterObjects" for m in rest):
        return segment_fast_filter(rest, name, img)
    ws = run_modules(rest, {name: img})
    return ws.object_set.get_objects(NUCLEI).segmented


def segment_fast_filter(rest, name, img) -> np.ndarray:
    """IdentifyPrimaryObjects → FilterObjects with only the two AreaShape features it reads.

    MeasureObjectSizeShape computes ~20 features through skimage's regionprops and takes
    longer than the segmentation; FilterObjects only reads Area and Solidity, which are
    the same regionprops values, so they are added directly (checked equal by
    check_fast_filter) and the real FilterObjects module does the filtering.
    """
    from cellprofiler_core.workspace import Workspace
    from skimage.measure import regionprops_table

    ipo, measure, filt = rest
    assert measure.module_name == "MeasureObjectSizeShape" and filt.module_name == "FilterObjects"
    ws = run_modules([ipo], {name: img})
    raw = ipo.y_name.value
    lab = ws.object_set.get_objects(raw).segmented
    props = regionprops_table(lab, properties=("label", "area", "solidity"))
    ws.measurements.add_measurement(raw, "AreaShape_Area", props["area"].astype(float))
    ws.measurements.add_measurement(raw, "AreaShape_Solidity", props["solidity"].astype(float))
    filt.run(Workspace(ws.pipeline, filt, ws.image_set, ws.object_set, ws.measurements, ws.image_set_list))
    return ws.object_set.get_objects(NUCLEI).segmented


def check_fast_filter(pairs: list[layouts.Pair], params: dict) -> None:
    """The shortcut above gives exactly the labels of the full module chain."""
    for pair in pairs:
        pix, _ = load(pair)
        pre = preprocess("advanced", params, pix)
        a = segment("advanced", params, pix, pre, fast=False)
        b = segment("advanced", params, pix, pre, fast=True)
        assert np.array_equal(a, b), pair.stem


# ------------------------------------------------------------------------------- search

AUTO = 0
IPO_GRID = {
    "threshold_smoothing": [0.0, 1.0, 1.3488, 2.0, 3.0],
    "correction": [0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5],
    "size_min": [3, 5, 8, 10, 12, 15, 20],
    "size_max": [30, 40, 60, 80, 120, 200],
    "unclump": ["Intensity", "Shape"],
    "watershed": ["Intensity", "Shape", "Propagate"],
    "smoothing_filter": [AUTO, 2, 4, 6, 8, 12],
    "maxima_distance": [AUTO, 3.0, 5.0, 7.0, 10.0, 14.0],
    "fill_holes": ["Never", "After both thresholding and declumping", "After declumping only"],
    "low_res_maxima": [True, False],
    "exclude_size": [True, False],
}
# settings of the image-only modules (cache key of the preprocessed images)
PRE_PARAMS = ("illum_block", "illum_filter_size", "illum_smoothing", "median_size",
              "opening_radius")
ADVANCED_GRID = {
    "illum_block": [20, 40, 60, 100, 150],
    "illum_smoothing": ["Median Filter", "Gaussian Filter"],
    "illum_filter_size": [10, 30, 60, 100],
    "median_size": [0, 3, 5, 7],  # Smooth's median uses a disk of radius ~size/2.35
    "opening_radius": [0, 1, 2, 3],
    "threshold_scope": ["Global", "Adaptive"],
    "adaptive_window": [30, 50, 100, 200],
    "log_transform": [False, True],
    "otsu_classes": ["Two classes", "Three classes"],
    "middle": ["Foreground", "Background"],
    "filter_area_min": [0.0, 20.0, 40.0, 80.0],
    "filter_solidity_min": [0.0, 0.7, 0.8, 0.85, 0.9],
}
#: The grid searched for each classical kind, in search order.
GRIDS = {"basic": IPO_GRID, "advanced": {**ADVANCED_GRID, **IPO_GRID}}


def relevant(name: str, p: dict) -> bool:
    """Skip settings that the current choice of another setting makes inert."""
    if name == "adaptive_window":
        return p.get("threshold_scope") == "Adaptive"
    if name == "middle":
        return p.get("otsu_classes") == "Three classes"
    if name == "illum_filter_size":
        return p.get("illum_smoothing") != "No smoothing"
    return True


def skip(name: str, candidate: dict) -> bool:
    """Candidates not worth scoring: an inert setting changed, or an empty size range."""
    return not relevant(name, candidate) or candidate["size_min"] >= candidate["size_max"]


class Tuner:
    """Scores settings of one classical kind on a fixed set of images, with a cache and a log.

    Parameters
    ----------
    kind : str
        ``basic`` or ``advanced``.
    pairs : list of Pair
        The tuning images.
    fields : set of str
        Stems of the BBBC039 fields among them (scored apart too).
    log_path : Path
        JSON-lines log: one line per evaluation, appended as it is made.
    objective : str
        Which mean is the score: ``all`` images, ``bbbc039`` fields or the ``other`` images.
    """

    def __init__(self, kind, pairs, fields, log_path, objective="all"):
        self.kind = kind
        self.objective = objective
        self.stems = [pair.stem for pair in pairs]
        self.fields = set(fields)
        self.data = [load(pair) for pair in pairs]
        self.names_hash = hashlib.sha1(",".join(self.stems).encode()).hexdigest()[:12]
        self.cache: dict[str, dict] = {}
        self.pre_cache: dict[str, list] = {}
        self.log_path = Path(log_path)

    def resume(self) -> int:
        """Reuse earlier evaluations of the same settings on the same images (the log); returns how many."""
        if not self.log_path.exists():
            return 0
        with open(self.log_path) as fd:
            for line in fd:
                r = json.loads(line)
                if r.get("names") != self.names_hash:
                    continue
                params = r.pop("params")
                del r["names"]
                r["score"] = r[self.objective]
                self.cache[json.dumps(params, sort_keys=True)] = r
        print(f"resumed {len(self.cache)} evaluations from {self.log_path}", flush=True)
        return len(self.cache)

    def preprocessed(self, params: dict) -> list:
        """Preprocessed images for these settings, cached (it is the slow part)."""
        key = json.dumps({k: params.get(k) for k in PRE_PARAMS}, sort_keys=True)
        if key in self.pre_cache:
            self.pre_cache[key] = self.pre_cache.pop(key)  # most recently used last
        else:
            if len(self.pre_cache) >= 4:  # bounded memory: drop the least recently used
                self.pre_cache.pop(next(iter(self.pre_cache)))
            self.pre_cache[key] = [preprocess(self.kind, params, pix) for pix, _ in self.data]
        return self.pre_cache[key]

    def evaluate(self, params: dict) -> dict:
        """Mean F1 of ``params`` over all tuning images, the BBBC039 fields and the others, and seconds taken."""
        key = json.dumps(params, sort_keys=True)
        if key in self.cache:
            return self.cache[key]
        t = time.time()
        pres = self.preprocessed(params)
        scores = np.array([f1_mean(gt, segment(self.kind, params, pix, pre, fast=True))
                           for (pix, gt), pre in zip(self.data, pres)])
        is_b = np.array([stem in self.fields for stem in self.stems])
        res = dict(
            all=float(scores.mean()),
            bbbc039=float(scores[is_b].mean()) if is_b.any() else float("nan"),
            other=float(scores[~is_b].mean()) if (~is_b).any() else float("nan"),
            seconds=round(time.time() - t, 1),
        )
        res["score"] = res[self.objective]
        self.cache[key] = res
        with open(self.log_path, "a") as fd:
            fd.write(json.dumps(dict(params=params, names=self.names_hash, **res)) + "\n")
        print(f"{res['score']:.4f} (all {res['all']:.4f}, bbbc039 {res['bbbc039']:.4f}, other {res['other']:.4f}, "
              f"{res['seconds']}s) {params}", flush=True)
        return res

    def search(self, start: dict, grid: dict, rounds: int = 3) -> tuple[dict, dict]:
        """The best settings from ``start`` over ``grid`` (:func:`nucleiseg.search.coordinate_search`), and their evaluation."""
        best, _ = coordinate_search(lambda params: self.evaluate(params)["score"], start, grid,
                                    rounds=rounds, min_gain=MIN_GAIN, skip=skip)
        return best, self.evaluate(best)


# ------------------------------------------------------------------------ whole pipelines


def evaluate_pipeline(pipeline: Path, data_dir: Path, split: str, out: Path, subset: str = "all") -> dict:
    """Run the real pipeline headless on a split and score ``out/labels/*.tiff``."""
    import subprocess
    import tempfile

    pairs = layouts.list_pairs(data_dir, split)
    fields = field_stems(data_dir)
    if subset == "bbbc039":
        pairs = [pair for pair in pairs if pair.stem in fields]
    if not pairs:
        raise ValueError(f"no images of split {split!r} ({subset}) in {data_dir}")
    with tempfile.TemporaryDirectory(prefix="nucleiseg-eval-") as tmp:
        # The runner's input layout (docs/CONVENTIONS.md): images/ and masks/ as TIFF, and a file list.
        written = layouts.materialize(pairs, Path(tmp))
        listing = Path(tmp) / "files.txt"
        listing.write_text("".join(f"{p.image.resolve()}\n{p.mask.resolve()}\n" for p in written))
        cp = Path(sys.executable).with_name("cellprofiler")
        cmd = [str(cp), "-c", "-r", "-p", str(pipeline), "--plugins-directory", str(PLUGINS_DIR),
               "-e", "imageio_reader", "-o", str(out), "--file-list", str(listing)]
        print(" ".join(cmd), flush=True)
        t = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        seconds = time.time() - t
    rows = []
    for pair in pairs:
        pred = layouts.read_labels(out / LABELS_FOLDER / f"{pair.stem}.tiff")
        gt = layouts.read_labels(pair.mask)
        rows.append(dict(name=pair.stem, bbbc039=pair.stem in fields, f1_mean=f1_mean(gt, pred),
                         nuclei=int(len(np.unique(gt)) - 1), predicted=int(len(np.unique(pred)) - 1)))
    with open(out / "scores.csv", "w", newline="") as fd:
        w = csv.DictWriter(fd, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    f = np.array([r["f1_mean"] for r in rows])
    isb = np.array([r["bbbc039"] for r in rows])
    res = dict(pipeline=str(pipeline), split=split, images=len(rows), f1_mean=float(f.mean()),
               bbbc039_images=int(isb.sum()),
               bbbc039_f1_mean=float(f[isb].mean()) if isb.any() else float("nan"),
               other_f1_mean=float(f[~isb].mean()) if (~isb).any() else float("nan"),
               seconds=round(seconds, 1))
    with open(out / "summary.json", "w") as fd:
        json.dump(res, fd, indent=1)
    print(json.dumps(res))
    return res


# ---------------------------------------------------------------------------- commands


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nucleiseg_cellprofiler.tune_classical",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join([*GRIDS, "evaluate"]) + "}")
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data folder (default: %(default)s)")
    shared.add_argument("--out", type=Path, default=Path("out/tuning"), help="folder of the log and the result")
    for kind in GRIDS:
        sub = commands.add_parser(kind, parents=[shared], help=f"tune {kind}.cppipe on the train split")
        sub.add_argument("--n-other", type=int, default=40, help="non-BBBC039 train images")
        sub.add_argument("--rounds", type=int, default=3)
        sub.add_argument("--objective", choices=["all", "bbbc039", "other"], default="all",
                         help="which mean F1 to maximise (all tuning images, or one group)")
        sub.add_argument("--start", help="JSON of starting parameters (default: current shipped)")
        sub.add_argument("--resume", action="store_true", help="reuse evaluations in the log")
        sub.add_argument("--only", help="comma-separated parameter names to search (default all)")
    evaluate = commands.add_parser("evaluate", parents=[shared], help="headless run of a pipeline on a split, scored")
    evaluate.add_argument("pipeline", type=Path)
    evaluate.add_argument("--split", default="val")
    evaluate.add_argument("--subset", choices=["all", "bbbc039"], default="all")
    return parser


def _tuning_arguments(parser, args) -> tuple[dict, dict]:
    """(start, grid) from the command line; parser.error naming what is wrong otherwise."""
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.n_other < 0:
        parser.error(f"--n-other must be >= 0, got {args.n_other}")
    start, grid = dict(kinds.get(args.command).params), dict(GRIDS[args.command])
    if args.start:
        try:
            given = json.loads(args.start)
        except json.JSONDecodeError as error:
            parser.error(f"--start is not JSON: {error}")
        if not isinstance(given, dict):
            parser.error("--start must be a JSON object of parameter values")
        unknown = sorted(set(given) - set(start))
        if unknown:
            parser.error(f"--start: unknown {args.command} parameters: {', '.join(unknown)}")
        start.update(given)
    if args.only:
        names = [name.strip() for name in args.only.split(",")]
        unknown = [name for name in names if name not in grid]
        if unknown:
            parser.error(f"--only: not searched for {args.command}: {', '.join(unknown)} (searched: {', '.join(grid)})")
        grid = {name: grid[name] for name in names}
    if start["size_min"] >= start["size_max"]:
        parser.error(f"size_min ({start['size_min']}) must be below size_max ({start['size_max']})")
    return start, grid


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data: no such folder: {args.data}")
    if args.command == "evaluate":
        try:
            evaluate_pipeline(args.pipeline.resolve(), args.data, args.split, args.out.resolve(), args.subset)
        except (ValueError, FileNotFoundError) as error:
            parser.error(str(error))
        return 0
    start, grid = _tuning_arguments(parser, args)
    try:
        fields, others = tuning_set(args.data, args.n_other)
    except (ValueError, FileNotFoundError) as error:
        parser.error(f"--data: {error}")
    pairs = fields + others
    if not pairs:
        parser.error(f"--data: no train images to tune on in {args.data}")

    logging.disable(logging.WARNING)
    init_cellprofiler()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"tuning {args.command} on {len(fields)} BBBC039 train fields + {len(others)} other "
          f"train images", flush=True)
    tuner = Tuner(args.command, pairs, {pair.stem for pair in fields}, args.out / f"{args.command}.jsonl", args.objective)
    if args.resume:
        tuner.resume()
    if args.command == "advanced":
        check_fast_filter(pairs[:2] + pairs[-2:], dict(kinds.get("advanced").params, filter_solidity_min=0.85,
                                                       filter_area_min=40.0))
    best, res = tuner.search(start, grid, args.rounds)
    with open(args.out / f"{args.command}_{args.objective}_best.json", "w") as fd:
        json.dump(dict(params=best, **res), fd, indent=1)
    print("BEST", json.dumps(dict(params=best, **res)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Tune the classical CellProfiler pipelines (basic, advanced) on the train split.

    nice -n 10 .venv/bin/python pipelines/tune_classical.py basic    --out out/tuning
    nice -n 10 .venv/bin/python pipelines/tune_classical.py advanced --out out/tuning
    nice -n 10 .venv/bin/python pipelines/tune_classical.py evaluate pipelines/basic.cppipe \
        --split val --out out/eval/basic-val        # headless CellProfiler, then scored

The modules are the very ones pipelines/build_pipelines.py writes (same builder functions),
run in-process on a workspace per image, so a tuned setting is exactly what the .cppipe
contains.  Search: coordinate descent over a coarse grid, one parameter at a time, repeated
until a full round changes nothing.  Score: mean over images of the object F1 averaged over
IoU thresholds 0.50 ... 0.95 (match when IoU > t), as in nucleiseg.metric.

Only the train split is read (the tuning set is drawn from train.txt); val is never touched.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build_pipelines as bp  # noqa: E402

DATA = os.environ.get("NUCLEISEG_DATA", "/work/shared/data/dsb2018-fluo")
THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)


# ------------------------------------------------------------------------------- scoring


def f1_mean(gt: np.ndarray, pred: np.ndarray) -> float:
    """Object F1 averaged over IoU thresholds (IoU > t >= 0.5 makes matches unique)."""
    g = gt.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    n_gt = len(np.unique(g[g > 0]))
    n_pr = len(np.unique(p[p > 0]))
    if n_gt == 0 and n_pr == 0:
        return 1.0
    if n_gt == 0 or n_pr == 0:
        return 0.0
    area_g = np.bincount(g)
    area_p = np.bincount(p)
    both = (g > 0) & (p > 0)
    key = g[both] * (p.max() + 1) + p[both]
    pairs, inter = np.unique(key, return_counts=True)
    gi, pi = np.divmod(pairs, p.max() + 1)
    iou = inter / (area_g[gi] + area_p[pi] - inter)
    tp = (iou[None, :] > THRESHOLDS[:, None]).sum(1)
    return float(np.mean(2 * tp / (n_gt + n_pr)))


# ---------------------------------------------------------------------------------- data


def read_split(split: str) -> list[str]:
    with open(os.path.join(DATA, f"{split}.txt")) as fd:
        return [line.strip() for line in fd if line.strip()]


def bbbc039_names() -> set[str]:
    with open(os.path.join(DATA, "manifest.csv")) as fd:
        return {r["name"] for r in csv.DictReader(fd) if r["bbbc039_field"].strip()}


def tuning_set(n_other: int = 40, seed: int = 0) -> tuple[list[str], list[str]]:
    """All BBBC039 fields of train plus a fixed random sample of the other train images."""
    train = read_split("train")
    b = bbbc039_names()
    fields = [n for n in train if n in b]
    others = [n for n in train if n not in b]
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(others, size=min(n_other, len(others)), replace=False))
    return fields, list(picked)


def load(name: str):
    import imageio.v3 as iio

    img = iio.imread(os.path.join(DATA, "images", f"{name}.png"))
    if img.ndim == 3:  # never expected here, but keep the reader's grey conversion honest
        img = img[..., :3].mean(-1).astype(img.dtype)
    # NamesAndTypes "Image bit-depth": integer images are divided by their dtype's max
    pix = img.astype(np.float32) / np.iinfo(img.dtype).max
    gt = iio.imread(os.path.join(DATA, "masks", f"{name}.png"))
    return pix, gt


# ------------------------------------------------------------------------ running modules


def run_modules(mods, images: dict) -> "object":
    """Run processing modules on one image set in-process; returns the workspace."""
    from cellprofiler_core.image import Image, ImageSetList
    from cellprofiler_core.measurement import Measurements
    from cellprofiler_core.object import ObjectSet
    from cellprofiler_core.pipeline import Pipeline
    from cellprofiler_core.workspace import Workspace

    pipe = Pipeline()
    for i, m in enumerate(mods, 1):
        m.set_module_num(i)
        pipe.add_module(m)
    isl = ImageSetList()
    iset = isl.get_image_set(0)
    for name, pix in images.items():
        iset.add(name, Image(pix))
    objs = ObjectSet()
    meas = Measurements()
    ws = None
    for m in mods:
        ws = Workspace(pipe, m, iset, objs, meas, isl)
        m.run(ws)
    return ws


PREPROCESSING = ("CorrectIlluminationCalculate", "CorrectIlluminationApply", "Smooth", "Opening")


def split_modules(mods):
    """(image-only preprocessing modules, the rest from IdentifyPrimaryObjects on)."""
    mods = [m for m in mods if m.enabled]  # disabled modules do not run in CellProfiler
    i = next(k for k, m in enumerate(mods) if m.module_name == "IdentifyPrimaryObjects")
    assert all(m.module_name in PREPROCESSING for m in mods[:i])
    return mods[:i], mods[i:]


def preprocess(kind: str, params: dict, pix: np.ndarray) -> tuple[str, np.ndarray]:
    """Run the image-only modules; returns (name, pixels) of the image IPO segments."""
    mods = bp.basic_processing(params) if kind == "basic" else bp.advanced_processing(params)
    pre, rest = split_modules(mods)
    name = rest[0].x_name.value
    if not pre:
        return name, pix
    ws = run_modules(pre, {bp.IMAGE_NAME: pix})
    return name, ws.image_set.get_image(name).pixel_data


def segment(kind: str, params: dict, pix: np.ndarray, pre=None, fast=False) -> np.ndarray:
    """Labels of the final Nuclei; `pre` = preprocess(...) output to skip that part."""
    mods = bp.basic_processing(params) if kind == "basic" else bp.advanced_processing(params)
    _, rest = split_modules(mods)
    name, img = pre if pre is not None else preprocess(kind, params, pix)
    if kind == "advanced" and fast:
        return segment_fast_filter(rest, name, img)
    ws = run_modules(rest, {name: img})
    return ws.object_set.get_objects(bp.NUCLEI).segmented


def segment_fast_filter(rest, name, img) -> np.ndarray:
    """IdentifyPrimaryObjects → FilterObjects with only the two AreaShape features it reads.

    MeasureObjectSizeShape computes ~20 features through skimage's regionprops and takes
    longer than the segmentation; FilterObjects only reads Area and Solidity, which are
    the same regionprops values, so they are added directly (checked equal by
    check_fast_filter) and the real FilterObjects module does the filtering.
    """
    from skimage.measure import regionprops_table

    ipo, measure, filt = rest
    assert measure.module_name == "MeasureObjectSizeShape" and filt.module_name == "FilterObjects"
    ws = run_modules([ipo], {name: img})
    raw = ipo.y_name.value
    lab = ws.object_set.get_objects(raw).segmented
    props = regionprops_table(lab, properties=("label", "area", "solidity"))
    ws.measurements.add_measurement(raw, "AreaShape_Area", props["area"].astype(float))
    ws.measurements.add_measurement(raw, "AreaShape_Solidity", props["solidity"].astype(float))
    from cellprofiler_core.workspace import Workspace

    filt.run(Workspace(ws.pipeline, filt, ws.image_set, ws.object_set, ws.measurements,
                       ws.image_set_list))
    return ws.object_set.get_objects(bp.NUCLEI).segmented


def check_fast_filter(names: list[str], params: dict) -> None:
    """The shortcut above gives exactly the labels of the full module chain."""
    for n in names:
        pix, _ = load(n)
        pre = preprocess("advanced", params, pix)
        a = segment("advanced", params, pix, pre, fast=False)
        b = segment("advanced", params, pix, pre, fast=True)
        assert np.array_equal(a, b), n


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


def relevant(name: str, p: dict) -> bool:
    """Skip settings that the current choice of another setting makes inert."""
    if name == "adaptive_window":
        return p.get("threshold_scope") == "Adaptive"
    if name == "middle":
        return p.get("otsu_classes") == "Three classes"
    if name == "illum_filter_size":
        return p.get("illum_smoothing") != "No smoothing"
    return True


class Tuner:
    def __init__(self, kind, names, bbbc, log_path, objective="all"):
        self.kind = kind
        self.objective = objective
        self.names = names
        self.bbbc = bbbc
        self.data = [load(n) for n in names]
        import hashlib

        self.names_hash = hashlib.sha1(",".join(names).encode()).hexdigest()[:12]
        self.cache: dict[str, dict] = {}
        self.pre_cache: dict[str, list] = {}
        self.log_path = log_path

    def resume(self):
        """Reuse earlier evaluations of the same settings on the same images (log file)."""
        if not os.path.exists(self.log_path):
            return
        with open(self.log_path) as fd:
            for line in fd:
                r = json.loads(line)
                if r.get("names") != self.names_hash:
                    continue
                params = r.pop("params")
                r["score"] = r[self.objective]
                self.cache[json.dumps(params, sort_keys=True)] = r
        print(f"resumed {len(self.cache)} evaluations from {self.log_path}", flush=True)

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
        key = json.dumps(params, sort_keys=True)
        if key in self.cache:
            return self.cache[key]
        t = time.time()
        pres = self.preprocessed(params)
        scores = np.array([f1_mean(gt, segment(self.kind, params, pix, pre, fast=True))
                           for (pix, gt), pre in zip(self.data, pres)])
        is_b = np.array([n in self.bbbc for n in self.names])
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

    def coordinate_search(self, start: dict, grid: dict, rounds: int = 3) -> tuple[dict, dict]:
        best = dict(start)
        best_res = self.evaluate(best)
        for r in range(rounds):
            changed = False
            for name, values in grid.items():
                if not relevant(name, best):
                    continue
                for v in values:
                    if v == best[name]:
                        continue
                    cand = dict(best, **{name: v})
                    if cand["size_min"] >= cand["size_max"]:
                        continue
                    res = self.evaluate(cand)
                    # strictly better by a margin: ties keep the simpler current setting
                    if res["score"] > best_res["score"] + 1e-4:
                        best, best_res, changed = cand, res, True
            print(f"round {r + 1}: {best_res['score']:.4f} {best}", flush=True)
            if not changed:
                break
        return best, best_res


def prepare_input(names: list[str], folder: str) -> str:
    """The runner's input layout (docs/CONVENTIONS.md): images/ and masks/ as TIFF + file list."""
    import imageio.v3 as iio
    import tifffile

    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
    paths = []
    for n in names:
        img = iio.imread(os.path.join(DATA, "images", f"{n}.png"))
        gt = iio.imread(os.path.join(DATA, "masks", f"{n}.png")).astype(np.uint16)
        a = os.path.join(folder, "images", f"{n}.tiff")
        b = os.path.join(folder, "masks", f"{n}.tiff")
        tifffile.imwrite(a, img)  # original dtype kept
        tifffile.imwrite(b, gt)
        paths += [os.path.abspath(a), os.path.abspath(b)]
    listing = os.path.join(folder, "files.txt")
    with open(listing, "w") as fd:
        fd.write("\n".join(paths) + "\n")
    return listing


def evaluate_pipeline(pipeline: str, split: str, out: str, subset: str = "all") -> dict:
    """Run the real pipeline headless on a split and score <out>/labels/*.tiff."""
    import subprocess
    import tempfile

    import imageio.v3 as iio
    import tifffile

    names = read_split(split)
    b = bbbc039_names()
    if subset == "bbbc039":
        names = [n for n in names if n in b]
    with tempfile.TemporaryDirectory(prefix="nucleiseg-eval-") as tmp:
        listing = prepare_input(names, tmp)
        cp = os.path.join(os.path.dirname(sys.executable), "cellprofiler")
        cmd = [cp, "-c", "-r", "-p", pipeline, "--plugins-directory", bp.PLUGINS_DIR,
               "-e", "imageio_reader", "-o", out, "--file-list", listing]
        print(" ".join(cmd), flush=True)
        t = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        seconds = time.time() - t
    rows = []
    for n in names:
        pred = tifffile.imread(os.path.join(out, bp.LABELS_SUBFOLDER, f"{n}.tiff"))
        gt = iio.imread(os.path.join(DATA, "masks", f"{n}.png"))
        rows.append(dict(name=n, bbbc039=n in b, f1_mean=f1_mean(gt, pred),
                         nuclei=int(len(np.unique(gt)) - 1), predicted=int(len(np.unique(pred)) - 1)))
    with open(os.path.join(out, "scores.csv"), "w", newline="") as fd:
        w = csv.DictWriter(fd, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    f = np.array([r["f1_mean"] for r in rows])
    isb = np.array([r["bbbc039"] for r in rows])
    res = dict(pipeline=pipeline, split=split, images=len(rows), f1_mean=float(f.mean()),
               bbbc039_images=int(isb.sum()),
               bbbc039_f1_mean=float(f[isb].mean()) if isb.any() else float("nan"),
               other_f1_mean=float(f[~isb].mean()) if (~isb).any() else float("nan"),
               seconds=round(seconds, 1))
    with open(os.path.join(out, "summary.json"), "w") as fd:
        json.dump(res, fd, indent=1)
    print(json.dumps(res))
    return res


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        ap = argparse.ArgumentParser(description="headless run of a pipeline on a split, scored")
        ap.add_argument("pipeline")
        ap.add_argument("--split", default="val")
        ap.add_argument("--subset", choices=["all", "bbbc039"], default="all")
        ap.add_argument("--out", required=True)
        a = ap.parse_args(argv[1:])
        evaluate_pipeline(os.path.abspath(a.pipeline), a.split, os.path.abspath(a.out), a.subset)
        return
    tune(argv)


def tune(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["basic", "advanced"])
    ap.add_argument("--out", default="out/tuning")
    ap.add_argument("--n-other", type=int, default=40, help="non-BBBC039 train images")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--objective", choices=["all", "bbbc039", "other"], default="all",
                    help="which mean F1 to maximise (all tuning images, or one group)")
    ap.add_argument("--start", help="JSON of starting parameters (default: current shipped)")
    ap.add_argument("--resume", action="store_true", help="reuse evaluations in the log")
    ap.add_argument("--only", help="comma-separated parameter names to search (default all)")
    args = ap.parse_args(argv)

    logging.disable(logging.WARNING)
    bp.init_cellprofiler()
    os.makedirs(args.out, exist_ok=True)
    fields, others = tuning_set(args.n_other)
    names = fields + others
    print(f"tuning {args.kind} on {len(fields)} BBBC039 train fields + {len(others)} other "
          f"train images", flush=True)
    tuner = Tuner(args.kind, names, set(fields), os.path.join(args.out, f"{args.kind}.jsonl"),
                  args.objective)
    if args.resume:
        tuner.resume()
    if args.kind == "advanced":
        check_fast_filter(names[:2] + names[-2:], dict(bp.ADVANCED_PARAMS, filter_solidity_min=0.85,
                                                       filter_area_min=40.0))
    if args.kind == "basic":
        start, grid = dict(bp.BASIC_PARAMS), dict(IPO_GRID)
    else:
        start, grid = dict(bp.ADVANCED_PARAMS), dict(ADVANCED_GRID, **IPO_GRID)
    if args.start:
        start.update(json.loads(args.start))
    if args.only:
        grid = {k: grid[k] for k in args.only.split(",")}
    best, res = tuner.coordinate_search(start, grid, args.rounds)
    with open(os.path.join(args.out, f"{args.kind}_{args.objective}_best.json"), "w") as fd:
        json.dump(dict(params=best, **res), fd, indent=1)
    print("BEST", json.dumps(dict(params=best, **res)))


if __name__ == "__main__":
    main()

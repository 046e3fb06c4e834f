"""Check the shipped pipelines under CellProfiler 4.2.8 against CellProfiler 5.

``make test-cp42`` runs this with ``.venv-cp42/bin/python`` (CellProfiler 4.2.8 on Python 3.8,
ONNX Runtime, no TensorFlow) and ``--cp5 .venv/bin/cellprofiler``. For each pipeline kind it

1. writes a few synthetic fluorescence images (``nucleiseg.synthetic``) as 16-bit TIFFs into
   ``images/`` and their exact labels into ``masks/`` of a temporary input folder;
2. runs ``pipelines/cp4/KIND.cppipe`` headless in this CellProfiler 4.2.8
   (``cellprofiler -c -r -p PIPE -i IN -o OUT``, plugins from ``plugins/``; the images are read
   by Bio-Formats on the local Java) and ``pipelines/KIND.cppipe`` in CellProfiler 5
   (``-e imageio_reader``);
3. checks that every image got nuclei in both runs, and that the two runs' label images agree:
   equal, or an object F1 at IoU 0.5 between them of at least 0.999; pipelines with ground truth
   must also report, in each version, the EvaluateObjectF1 score of that version's own labels
   (``nucleiseg.metric.score_image`` against the truth, within 1e-6), and the same score in both
   (within 0.001). Where labels differ, the line says in how many pixels the foreground differs.

Exit status 0 when all holds; otherwise the failures are printed.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("basic", "advanced", "unet", "deepcell", "unet-segment")
IMAGES = 2
SIZE = 192
MIN_F1 = 0.999


def write_images(folder: Path) -> list[str]:
    """Synthetic images under folder/images, their labels under folder/masks; the stems."""
    import tifffile

    from nucleiseg import synthetic

    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    stems = []
    for index in range(IMAGES):
        image, truth = synthetic.generate_one(index, seed=3, size=SIZE)
        stem = f"synth_{index}"
        tifffile.imwrite(folder / "images" / f"{stem}.tiff", image)
        tifffile.imwrite(folder / "masks" / f"{stem}.tiff", truth.astype(np.uint16))
        stems.append(stem)
    return stems


def run(cellprofiler: str, pipeline: Path, inputs: Path, out: Path, extra: list[str]) -> str:
    """One headless run; returns its log, raises RuntimeError when it fails."""
    command = [cellprofiler, "-c", "-r", "-p", str(pipeline), "--plugins-directory", str(ROOT / "plugins"),
               *extra, "-i", str(inputs), "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{log[-3000:]}")
    return log


def image_rows(out: Path) -> dict[str, dict]:
    with open(out / "Image.csv", newline="") as handle:
        return {row["Metadata_Stem"]: row for row in csv.DictReader(handle)}


def compare(kind: str, stems: list[str], out4: Path, out5: Path, truth: Path) -> list[str]:
    """The failures of one kind (empty when CellProfiler 4 and 5 agree); ``truth`` holds the masks."""
    import tifffile

    from nucleiseg.metric import score_image

    failures = []
    rows4, rows5 = image_rows(out4), image_rows(out5)
    if sorted(rows4) != sorted(stems) or sorted(rows5) != sorted(stems):
        return [f"{kind}: images in Image.csv: CellProfiler 4 {sorted(rows4)}, 5 {sorted(rows5)}, expected {stems}"]
    for stem in stems:
        count4, count5 = (int(float(rows[stem]["Count_Nuclei"])) for rows in (rows4, rows5))
        labels4 = tifffile.imread(out4 / "labels" / f"{stem}.tiff")
        labels5 = tifffile.imread(out5 / "labels" / f"{stem}.tiff")
        if count4 == 0 or count5 == 0:
            failures.append(f"{kind} {stem}: nuclei found: CellProfiler 4 {count4}, 5 {count5}")
            continue
        if labels4.shape != labels5.shape:
            failures.append(f"{kind} {stem}: label image shapes {labels4.shape} and {labels5.shape}")
            continue
        equal = np.array_equal(labels4, labels5)
        f1 = 1.0 if equal else float(score_image(labels5, labels4, thresholds=(0.5,)).f1[0])
        # Object numbers may differ where the outlines agree: count pixels whose foreground differs.
        differ = int(np.count_nonzero((labels4 > 0) != (labels5 > 0)))
        line = (f"{kind} {stem}: nuclei CellProfiler 4 {count4}, 5 {count5}; labels "
                + ("equal" if equal else f"F1 {f1:.4f}, foreground differs in {differ} of {labels4.size} pixels"))
        if "ObjectF1_MeanF1" in rows5[stem]:
            mean4, mean5 = (float(rows[stem].get("ObjectF1_MeanF1", "nan")) for rows in (rows4, rows5))
            line += f"; EvaluateObjectF1 mean F1 {mean4:.4f} and {mean5:.4f}"
            masks = tifffile.imread(truth / f"{stem}.tiff")
            for version, mean, labels in ((4, mean4, labels4), (5, mean5, labels5)):
                own = float(score_image(masks, labels).f1_mean)
                if not abs(mean - own) <= 1e-6:
                    failures.append(f"{kind} {stem}: EvaluateObjectF1 in CellProfiler {version} reports {mean}, "
                                    f"its labels score {own}")
            if not abs(mean4 - mean5) <= 1e-3:
                failures.append(f"{kind} {stem}: EvaluateObjectF1 mean F1 {mean4} (CellProfiler 4) and {mean5} (5)")
        print("check-cp42:", line)
        if f1 < MIN_F1 or count4 != int(labels4.max()):
            failures.append(f"{kind} {stem}: {line}; label maximum {labels4.max()}")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cp5", required=True, help="the cellprofiler command of a CellProfiler 5 environment")
    parser.add_argument("--kinds", default=",".join(KINDS), help="pipeline kinds (default: %(default)s)")
    args = parser.parse_args(argv)
    from nucleiseg_cellprofiler.headless import cellprofiler_major

    if cellprofiler_major() != 4:
        print(f"check-cp42: FAILED: {sys.executable} has CellProfiler {cellprofiler_major()}, not 4", file=sys.stderr)
        return 1
    cellprofiler4 = str(Path(sys.executable).with_name("cellprofiler"))
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "in"
        stems = write_images(inputs)
        for kind in args.kinds.split(","):
            out4, out5 = Path(folder) / f"{kind}-cp4", Path(folder) / f"{kind}-cp5"
            try:
                log = run(cellprofiler4, ROOT / "pipelines" / "cp4" / f"{kind}.cppipe", inputs, out4, [])
                if "you are running CellProfiler version" in log:  # 4.2.8's warning for a newer pipeline
                    failures.append(f"{kind}: CellProfiler 4 warns about the pipeline version:\n{log[-2000:]}")
                if "tensorflow" in log.lower():
                    failures.append(f"{kind}: the CellProfiler 4 log mentions TensorFlow:\n{log[-2000:]}")
                run(args.cp5, ROOT / "pipelines" / f"{kind}.cppipe", inputs, out5, ["-e", "imageio_reader"])
            except RuntimeError as error:
                failures.append(f"{kind}: {error}")
                continue
            failures += compare(kind, stems, out4, out5, inputs / "masks")
    for failure in failures:
        print(f"check-cp42: FAILED: {failure}", file=sys.stderr)
    if failures:
        return 1
    print(f"check-cp42: passed ({len(args.kinds.split(','))} pipelines, {IMAGES} images each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

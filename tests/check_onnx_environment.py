"""Check the light environment: CellProfiler segments with ONNX Runtime where there is no TensorFlow.

``make check-onnx`` builds ``.venv-onnx`` from ``requirements-onnx.lock`` (CellProfiler,
nucleiseg, ONNX Runtime; no TensorFlow, no Keras) and runs this script there. It

1. checks that neither ``tensorflow`` nor ``keras`` can be imported, and that the
   shipped models load on ONNX Runtime;
2. writes a few synthetic fluorescence images to a temporary folder and runs the
   shipped ``unet-segment`` and ``deepcell-segment`` pipelines on them in headless
   CellProfiler (``cellprofiler -c -r``, plugins from ``plugins/``), as a user would;
3. checks that every image got nuclei in ``Image.csv`` and that no process imported
   TensorFlow (the CellProfiler log would show its start-up lines).

Exit status 0 when all holds; otherwise the first failure is printed.
"""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = ("unet-segment", "deepcell-segment")
IMAGES = 2


def fail(message: str) -> int:
    print(f"check-onnx: FAILED: {message}", file=sys.stderr)
    return 1


def main() -> int:
    for package in ("tensorflow", "keras"):
        if importlib.util.find_spec(package) is not None:
            return fail(f"{package} is importable in {sys.executable}; this check needs the light environment")
    import tifffile

    from nucleiseg import cards, model_types, synthetic

    for name in ("unet", "deepcell"):
        engine = cards.load(model_types.get(name).default_card).engine
        if engine != "onnxruntime":
            return fail(f"the shipped {name} model loads on {engine}, not onnxruntime")
    cellprofiler = Path(sys.executable).with_name("cellprofiler")
    with tempfile.TemporaryDirectory() as folder:
        images = Path(folder) / "images"
        images.mkdir()
        for index in range(IMAGES):
            tifffile.imwrite(images / f"synth_{index}.tiff", synthetic.generate_one(index, seed=3, size=192)[0])
        for pipeline in PIPELINES:
            out = Path(folder) / pipeline
            out.mkdir()
            command = [str(cellprofiler), "-c", "-r", "-p", str(ROOT / "pipelines" / f"{pipeline}.cppipe"),
                       "--plugins-directory", str(ROOT / "plugins"), "-e", "imageio_reader",
                       "-i", folder, "-o", str(out)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            log = done.stdout + done.stderr
            if done.returncode != 0:
                return fail(f"{pipeline}: cellprofiler exited with {done.returncode}:\n{log[-3000:]}")
            if "tensorflow" in log.lower():
                return fail(f"{pipeline}: the CellProfiler log mentions TensorFlow:\n{log[-3000:]}")
            with open(out / "Image.csv", newline="") as handle:
                counts = {row["FileName_DNA"]: int(float(row["Count_Nuclei"])) for row in csv.DictReader(handle)}
            if len(counts) != IMAGES or min(counts.values()) == 0:
                return fail(f"{pipeline}: nuclei per image {counts}")
            print(f"check-onnx: {pipeline}: nuclei per image {counts} (ONNX Runtime, no TensorFlow)")
    print("check-onnx: passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

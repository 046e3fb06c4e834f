"""Validate a bioimage.io model package with ``bioimageio.core``, offline: ``python tests/check_bioimageio_package.py PACKAGE.zip``.

Runs in ``.venv-bioimageio`` (``requirements-bioimageio.lock``: bioimageio.core, ONNX
Runtime, Keras on TensorFlow; numpy 2, so not in the main environment), which
``make check-bioimageio`` builds after writing the shipped U-Net's package with the main
environment. It

1. runs ``bioimageio.core.test_model`` on the package: the spec's format validation and,
   for every weights format in it (``keras_v3`` and ``onnx``), the weights on the test
   input with the described preprocessing, compared with the test output, and runs of
   other input sizes and batch sizes the axes allow;
2. predicts the test input once more with ``bioimageio.core.predict`` on each weights
   format and checks that the largest difference from the test output (nucleiseg's own
   inference) is at most :data:`TOLERANCE`, stricter than the spec's default 1e-3;
3. prints the result, the format version and the versions of bioimageio.core and
   bioimageio.spec.

Nothing is downloaded: every file the description names is inside the package. Exit
status 0 when the package passes, 1 otherwise.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

#: Largest difference in any class probability allowed between bioimageio.core's run and the test output.
TOLERANCE = 1e-4


def fail(message: str) -> int:
    print(f"check-bioimageio: FAILED: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        return fail("usage: check_bioimageio_package.py PACKAGE.zip")
    package = Path(args[0])
    if not package.is_file():
        return fail(f"{package} does not exist")

    import numpy as np
    import bioimageio.core
    import bioimageio.spec
    from bioimageio.core import create_prediction_pipeline, load_model_description, predict, test_model

    summary = test_model(str(package))
    for detail in summary.details:
        mark = "ok  " if detail.status == "passed" else detail.status
        print(f"  {mark} {detail.name}")
        for error in detail.errors:
            print(f"       error at {'.'.join(map(str, error.loc))}: {error.msg}")
    print(f"bioimageio.core {bioimageio.core.__version__} test_model: {summary.status} "
          f"(format {summary.type} {summary.format_version}; bioimageio.spec {bioimageio.spec.__version__})")
    if summary.status != "passed":
        return fail(f"{package}: bioimageio.core's test_model says {summary.status}")

    model = load_model_description(str(package), perform_io_checks=True)
    (input_descr,), (output_descr,) = model.inputs, model.outputs
    with zipfile.ZipFile(package) as archive:
        test_input = np.load(archive.open(str(input_descr.test_tensor.source.path)))
        expected = np.load(archive.open(str(output_descr.test_tensor.source.path)))
    formats = [name for name, entry in model.weights if entry is not None]
    for weight_format in formats:
        pipeline = create_prediction_pipeline(model, weight_format=weight_format, devices=["cpu"])
        sample = predict(model=pipeline, inputs={str(input_descr.id): test_input})
        found = sample.members[output_descr.id].data.to_numpy()
        if found.shape != expected.shape:
            return fail(f"{weight_format}: output shape {found.shape}, test output {expected.shape}")
        difference = float(np.abs(found - expected).max())
        print(f"{weight_format}: largest difference from nucleiseg's test output {difference:.1e}")
        if not difference <= TOLERANCE:
            return fail(f"{weight_format}: bioimageio.core's prediction differs from the test output by "
                        f"{difference:.2e} (more than {TOLERANCE:g})")
    print(f"check-bioimageio: {package} passed ({', '.join(formats)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

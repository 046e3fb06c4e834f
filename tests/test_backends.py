"""Training on Keras' JAX and PyTorch backends, and the weights it writes read back by TensorFlow.

A lent GPU machine has JAX and PyTorch but no TensorFlow, while CellProfiler runs the models
on TensorFlow, so both networks must train (and resume) on the other backends and give the
same probabilities everywhere. Run with ``make test-backends``: it builds one environment per
backend (``requirements-jax.lock``, ``requirements-torch.lock``), sets ``KERAS_BACKEND`` and
points ``NUCLEISEG_TF_PYTHON`` at the main environment's Python for the comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.backends

REPO = Path(__file__).resolve().parents[1]
PREDICT = """
import sys, numpy as np
from pathlib import Path
from nucleiseg import layouts, cards
from nucleiseg.inference import predict_probabilities
image = layouts.read_image(Path(sys.argv[2]))
np.save(sys.argv[3], predict_probabilities(image, cards.load(Path(sys.argv[1]))))
"""


def backend() -> str:
    import keras

    name = keras.backend.backend()
    if name not in ("jax", "torch") or os.environ.get("KERAS_BACKEND") != name:
        pytest.fail(f"these tests run on the JAX or PyTorch backend (make test-backends), not {name!r}")
    return name


def tensorflow_python() -> str:
    python = os.environ.get("NUCLEISEG_TF_PYTHON", "")
    if not Path(python).is_file():
        pytest.fail(f"NUCLEISEG_TF_PYTHON={python!r}: set it to the Python of the TensorFlow environment (make test-backends does)")
    return python


def predict_with(python: str, keras_backend: str, card: Path, image: Path, out: Path) -> np.ndarray:
    env = {**os.environ, "KERAS_BACKEND": keras_backend, "PYTHONPATH": str(REPO)}
    subprocess.run([python, "-c", PREDICT, str(card), str(image), str(out)], check=True, env=env, cwd=REPO)
    return np.load(out)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from nucleiseg import synthetic

    folder = tmp_path_factory.mktemp("backends") / "data"
    synthetic.generate(folder, n=9, size=96)
    return folder


@pytest.mark.parametrize("network", ["unet", "deepcell"])
def test_trains_resumes_and_tensorflow_reads_the_weights(network, data, tmp_path):
    from nucleiseg.training import TrainConfig, train

    name = backend()
    sizes = {"unet": dict(base_filters=4, crop=64), "deepcell": dict(crop=32)}[network]
    config = TrainConfig(network=network, data=str(data), batch_size=2, steps_per_epoch=3, epochs=2, **sizes)
    card_path = train(config, tmp_path / network, tmp_path / "ck")
    card = json.loads(card_path.read_text())
    assert card["backend"] == name and len(card["history"]) == 2
    assert all(np.isfinite(h["loss"]) for h in card["history"])
    # Rerunning with more epochs resumes from the checkpoint on this backend.
    config.epochs = 3
    resumed = json.loads(train(config, tmp_path / network, tmp_path / "ck").read_text())
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][:2] == card["history"]

    image = sorted((data / "images").iterdir())[0]
    here = predict_with(sys.executable, name, card_path, image, tmp_path / "here.npy")
    there = predict_with(tensorflow_python(), "tensorflow", card_path, image, tmp_path / "tensorflow.npy")
    assert here.shape == there.shape == (96, 96, 3)
    assert np.abs(here - there).max() < 1e-4

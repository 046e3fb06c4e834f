"""DeepCell: size of the network, its 61x61 receptive field, and patch mode == dense mode."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from nucleiseg import cards, model_types, synthetic
from nucleiseg.model_types import deepcell
from nucleiseg.model_types.deepcell import build_deepcell
from nucleiseg.normalization import normalize
from test_core_models import randomize_batch_norm

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "deepcell" / "deepcell-dsb2018.json"
MARGIN = deepcell.MARGIN


def randomized_deepcell(seed: int) -> keras.Model:
    """Dense DeepCell with random weights and non-trivial batch-norm statistics.

    Fresh batch normalization has mean 0 and variance 1 (almost the identity),
    which would hide a mode that skipped or misplaced it.
    """
    keras.utils.set_random_seed(seed)
    return randomize_batch_norm(build_deepcell(dense=True), seed)


def dense_predict(networks, image: np.ndarray) -> np.ndarray:
    """Whole-image (fully convolutional) mode, members averaged."""
    padded = np.pad(image.astype(np.float32), MARGIN, mode="reflect")[None, ..., None]
    return np.mean([np.asarray(n.predict_on_batch(padded))[0] for n in networks], axis=0)


@pytest.fixture(scope="module")
def network():
    return randomized_deepcell(1)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(2).normal(size=(45, 70)).astype(np.float32)


def test_parameter_count_from_layer_list():
    # (kernel, in, out) of each convolution, the two dense layers as 1x1 convolutions;
    # no biases (batch norm follows), 4 batch-norm numbers per channel.
    hidden = [(3, 1, 64), (4, 64, 64), (3, 64, 64), (3, 64, 64), (3, 64, 64), (3, 64, 64), (4, 64, 200), (1, 200, 200)]
    expected = sum(k * k * cin * cout + 4 * cout for k, cin, cout in hidden)
    expected += 200 * 3 + 3  # softmax layer with bias
    assert expected == 462_107
    assert build_deepcell(dense=False).count_params() == expected
    assert build_deepcell(dense=True).count_params() == expected


def test_patch_form_maps_61x61_to_one_vector():
    patch = build_deepcell(dense=False)
    assert tuple(patch.input_shape[1:]) == (61, 61, 1)
    assert tuple(patch.output_shape[1:]) == (1, 1, 3)
    geometry = (model_types.get("deepcell").margin, model_types.get("deepcell").multiple)
    assert geometry == (30, 1)


def test_receptive_field_is_61x61(network):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(1, 81, 81, 1)).astype(np.float32)
    reference = np.asarray(network.predict_on_batch(base))
    assert reference.shape == (1, 21, 21, 3)
    centre = 40  # input pixel of output (10, 10)

    def change_at(dy, dx):
        changed = base.copy()
        changed[0, centre + dy, centre + dx, 0] += 3.0
        return float(np.abs(np.asarray(network.predict_on_batch(changed))[0, 10, 10] - reference[0, 10, 10]).max())

    for dy, dx in [(30, 0), (-30, 0), (0, 30), (0, -30)]:
        assert change_at(dy, dx) > 1e-6, f"pixel at offset {(dy, dx)} lies in the patch but had no effect"
    for dy, dx in [(31, 0), (-31, 0), (0, 31), (0, -31), (31, 31), (-31, -31)]:
        # Not exactly 0: fast convolution algorithms mix neighbours in rounding.
        assert change_at(dy, dx) < 1e-7, f"pixel at offset {(dy, dx)} lies outside the patch but changed the output"


def test_patch_mode_equals_dense_mode_on_border_rows(network, image):
    dense = dense_predict([network], image)
    assert dense.shape == (45, 70, 3)
    assert np.ptp(dense) > 0.05  # the comparison means something
    for band in [(0, 1), (44, 45)]:  # rows whose patches reach into the reflected border
        patches = deepcell.predict_patches(image, network, rows=band)
        assert patches.shape == (band[1] - band[0], 70, 3)
        assert np.abs(patches - dense[band[0] : band[1]]).max() < 1e-4


@pytest.mark.slow
def test_patch_mode_equals_dense_mode_on_whole_odd_image(network, image):
    patches = deepcell.predict_patches(image, network, batch_size=1024)
    assert patches.shape == (45, 70, 3)
    assert np.abs(patches - dense_predict([network], image)).max() < 1e-4


def test_patch_network_copies_weights_and_keeps_patch_networks(network):
    patch = deepcell.patch_network(network)
    assert patch is not network and tuple(patch.input_shape[1:3]) == (61, 61)
    for a, b in zip(patch.get_weights(), network.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert deepcell.patch_network(patch) is patch


def test_ensemble_is_mean_of_members(network, image):
    other = randomized_deepcell(4)
    small = image[:9, :12]
    band = (3, 4)
    patch_members = [deepcell.patch_network(n) for n in (network, other)]  # built once, reused
    together = deepcell.predict_patches(small, cards.LoadedModel([{}, {}], patch_members, Path(".")), rows=band, batch_size=7)
    apart = [deepcell.predict_patches(small, member, rows=band) for member in patch_members]
    np.testing.assert_allclose(together, (apart[0] + apart[1]) / 2, atol=1e-6)
    assert np.abs(apart[0] - apart[1]).max() > 1e-3  # members really differ
    # The dense path of the same ensemble (LoadedModel.predict_batch) averages the same way.
    dense_ensemble = cards.LoadedModel([{}, {}], [network, other], Path("."))
    padded = np.pad(small, MARGIN, mode="reflect")[None, ..., None]
    np.testing.assert_allclose(dense_ensemble.predict_batch(padded)[0, band[0] : band[1]], together, atol=1e-4)


def test_bad_arguments(network, image):
    with pytest.raises(ValueError):
        deepcell.predict_patches(image[None], network)
    with pytest.raises(ValueError):
        deepcell.predict_patches(image, network, rows=(10, 10))
    with pytest.raises(ValueError):
        deepcell.predict_patches(image, [], rows=(0, 1))


@pytest.mark.skipif(not SHIPPED.is_file(), reason=f"{SHIPPED.name} not there yet (DeepCell is still being trained)")
def test_shipped_weights_patch_mode_equals_dense_mode():
    loaded = cards.load(SHIPPED)
    raw, _ = synthetic.generate_one(0, seed=5, size=96)
    image = normalize(raw[:45, :70], loaded.normalization)
    dense = dense_predict(loaded.networks, image)
    patches = deepcell.predict_patches(image, loaded, rows=(0, 1))
    assert np.abs(patches - dense[:1]).max() < 1e-4

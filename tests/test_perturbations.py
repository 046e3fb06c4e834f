"""Robustness perturbations: deterministic, dtype-preserving, labels changed only by rescaling."""

import numpy as np
import pytest

from nucleiseg import perturbations, synthetic
from nucleiseg.normalization import percentile_normalize


@pytest.fixture
def pair():
    image, labels = synthetic.generate_one(3, size=96)
    image = (image / image.max() * 4000 + 200).astype(np.uint16)
    return image, labels.astype(np.uint16)


@pytest.mark.parametrize("name", [*perturbations.PERTURBATIONS, *perturbations.EXTRA_PERTURBATIONS])
def test_each_perturbation_is_deterministic_and_keeps_dtype(pair, name):
    image, labels = pair
    a = perturbations.perturb(name, image, labels, "stem1")
    b = perturbations.perturb(name, image, labels, "stem1")
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].dtype == image.dtype and a[1].dtype == labels.dtype
    assert a[0].shape == a[1].shape
    assert not np.array_equal(a[0], image) or a[0].shape != image.shape
    if not name.startswith("scale"):
        np.testing.assert_array_equal(a[1], labels)


def test_rescaling_resizes_labels_alike_and_keeps_them_instance_labels(pair):
    image, labels = pair
    half_image, half = perturbations.perturb("scale_0.5x", image, labels, "s")
    double_image, double = perturbations.perturb("scale_2x", image, labels, "s")
    assert half.shape == (48, 48) and double.shape == (192, 192)
    assert set(np.unique(double)) <= set(np.unique(labels))
    area = np.bincount(labels.ravel())[1:]
    assert np.bincount(double.ravel())[1:].sum() == pytest.approx(4 * area.sum(), rel=0.05)
    assert np.bincount(half.ravel())[1:].sum() == pytest.approx(area.sum() / 4, rel=0.1)
    quadruple_image, quadruple = perturbations.perturb("scale_4x", image, labels, "s")
    assert quadruple.shape == quadruple_image.shape == (384, 384)
    assert np.bincount(quadruple.ravel())[1:].sum() == pytest.approx(16 * area.sum(), rel=0.05)


def test_extra_perturbations_run_only_when_named():
    assert "scale_4x" not in perturbations.PERTURBATIONS and "scale_4x" in perturbations.EXTRA_PERTURBATIONS
    assert perturbations.check_names(["scale_4x", "blur"]) == ["scale_4x", "blur"]
    with pytest.raises(ValueError, match="expected some of .*scale_4x"):
        perturbations.check_names(["scale_8x"])


def test_noise_depends_on_the_stem_and_dimming_loses_signal(pair):
    image, labels = pair
    one = perturbations.perturb("noise", image, labels, "a")[0]
    other = perturbations.perturb("noise", image, labels, "b")[0]
    assert not np.array_equal(one, other)
    dim = perturbations.perturb("dim_gamma", image, labels, "a")[0].astype(float)
    assert np.ptp(dim) < 0.3 * np.ptp(image.astype(float))


def test_bright_artefact_lands_off_the_nuclei_and_moves_the_upper_percentile(pair):
    image, labels = pair
    out, same = perturbations.perturb("bright_artefact", image, labels, "x")
    changed = out != image
    assert changed.sum() > 0.003 * image.size and not (changed & (labels > 0)).any()
    assert out.max() == np.iinfo(np.uint16).max
    nuclei = labels > 0
    # After normalization the nuclei are much dimmer: the artefact set the top percentile.
    assert percentile_normalize(out)[nuclei].mean() < 0.5 * percentile_normalize(image)[nuclei].mean()


def test_unknown_perturbation_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown perturbation.*expected some of dim_gamma"):
        perturbations.check_names(["dim_gamma", "sepia"])


def test_mixed_brightness_dims_half_of_the_nuclei_and_leaves_the_rest(pair):
    image, labels = pair
    out, same = perturbations.perturb("mixed_brightness", image, labels, "x")
    np.testing.assert_array_equal(out[labels == 0], image[labels == 0])
    level = float(np.median(image[labels == 0]))
    ids = [i for i in np.unique(labels) if i]
    signal = {i: (image[labels == i].astype(float) - level).sum() for i in ids}
    ratios = [(out[labels == i].astype(float) - level).sum() / signal[i] for i in ids]
    dimmed = [r for r in ratios if r < 0.2]
    assert len(dimmed) == len(ids) // 2 and all(0.1 < r < 0.2 for r in dimmed)
    assert all(r == pytest.approx(1.0) for r in ratios if r >= 0.2)

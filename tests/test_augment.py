"""Augmentation: image and labels move together, labels stay instance labels, each switch acts."""

import numpy as np
import pytest

from nucleiseg import augment
from nucleiseg.augment import AugmentationConfig, augment_crop


def two_nuclei(size=96):
    """A normalized image whose pixel values identify the nucleus beneath (1 and 2) on a 0 background."""
    labels = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[:size, :size]
    labels[(yy - 30) ** 2 + (xx - 30) ** 2 < 12 ** 2] = 1
    labels[(yy - 60) ** 2 + (xx - 64) ** 2 < 8 ** 2] = 2
    image = labels.astype(np.float32) * 0.5  # nucleus 1 -> 0.5, nucleus 2 -> 1.0
    return image, labels


@pytest.mark.parametrize("factor", [0.5, 1.0, 2.0])
def test_scaled_crop_moves_image_and_labels_together(factor):
    image, labels = two_nuclei()
    rng = np.random.default_rng(1)
    out_image, out_labels = augment.scaled_crop(image, labels, 64, 0, factor, rng)
    assert out_image.shape == out_labels.shape == (64, 64)
    assert out_labels.dtype == labels.dtype
    # Nearest-neighbour labels: no new values appear.
    assert set(np.unique(out_labels)) <= {0, 1, 2}
    # Deep inside each resampled nucleus the image still shows that nucleus' value.
    for index, value in ((1, 0.5), (2, 1.0)):
        inside = out_labels == index
        if inside.sum() > 40:
            from scipy import ndimage
            core = ndimage.binary_erosion(inside, iterations=2)
            if core.any():
                np.testing.assert_allclose(out_image[core], value, atol=0.05)


def test_scale_changes_nucleus_area_by_the_square_of_the_factor():
    image, labels = two_nuclei(200)
    area = (labels == 1).sum()
    rng = np.random.default_rng(0)
    # A region covering the whole image: 200 px seen at 2x -> 400 px.
    zoomed_image, zoomed = augment.scaled_crop(image, labels, 400, 0, 2.0, rng)
    assert abs((zoomed == 1).sum() / area - 4.0) < 0.15
    _, shrunk = augment.scaled_crop(image, labels, 100, 0, 0.5, rng)
    assert abs((shrunk == 1).sum() / area - 0.25) < 0.05


def test_scaled_crop_refuses_a_bad_factor():
    image, labels = two_nuclei()
    with pytest.raises(ValueError, match="scale factor"):
        augment.scaled_crop(image, labels, 32, 0, 0.0, np.random.default_rng(0))


def test_nucleus_brightness_scales_each_nucleus_by_its_own_factor_and_leaves_background():
    image, labels = two_nuclei()
    image = image + 0.1  # a background level
    out = augment.nucleus_brightness(image, labels, np.random.default_rng(3), factor=(0.2, 1.5))
    np.testing.assert_allclose(out[labels == 0], 0.1, atol=1e-6)
    ratios = [(out[labels == i] - 0.1) / (image[labels == i] - 0.1) for i in (1, 2)]
    for ratio in ratios:
        assert np.ptp(ratio) < 1e-5 and 0.2 <= ratio[0] <= 1.5
    assert abs(ratios[0][0] - ratios[1][0]) > 1e-3  # independent factors


def test_bright_objects_dims_all_but_the_kept_nuclei_by_one_factor():
    image, labels = two_nuclei()
    image = image + 0.1
    out = augment.bright_objects(image, labels, np.random.default_rng(0), dimming=(10.0, 10.0), kept=(0.0, 0.0),
                                 artefact_probability=0.0)
    np.testing.assert_allclose(out[labels == 0], 0.1, atol=1e-6)
    np.testing.assert_allclose(out[labels > 0] - 0.1, (image[labels > 0] - 0.1) / 10, rtol=1e-5)
    kept = augment.bright_objects(image, labels, np.random.default_rng(0), dimming=(10.0, 10.0), kept=(1.0, 1.0),
                                  artefact_probability=0.0)
    np.testing.assert_allclose(kept[labels > 0], image[labels > 0])


def test_bright_objects_artefact_lies_in_the_background_and_outshines_the_nuclei():
    image, labels = two_nuclei()
    for seed in range(5):
        out = augment.bright_objects(image, labels, np.random.default_rng(seed), kept=(0.0, 0.0),
                                     artefact_probability=1.0)
        artefact = out > image.max() - 1e-6
        assert np.all(labels[artefact] == 0)
        assert out[labels > 0].max() < image.max() / 2 + 1e-6  # every nucleus dimmed at least 2x


def test_gamma_contrast_keeps_order_and_finite_values():
    image = np.linspace(-0.05, 1.2, 100, dtype=np.float32).reshape(10, 10)
    out = augment.gamma_contrast(image, np.random.default_rng(0))
    assert np.isfinite(out).all() and out.dtype == np.float32
    assert np.all(np.diff(out.ravel()) > 0)  # a monotone curve keeps the order of intensities
    assert not np.allclose(out, image)


def test_background_illumination_is_smooth_and_bounded():
    image = np.ones((64, 64), np.float32)
    out = augment.background_illumination(image, np.random.default_rng(5), offset=(0.2, 0.2), strength=(0.5, 0.5))
    assert out.min() >= 0.5 + 0.2 - 1e-5 and out.max() <= 1.2 + 1e-5
    assert np.abs(np.diff(out, axis=0)).max() < 0.05  # no edges: a smooth field


def test_blur_and_noise_change_the_image_as_intended():
    image, _ = two_nuclei()
    rng = np.random.default_rng(0)
    blurred = augment.defocus_blur(image, rng, sigma=(2.0, 2.0))
    assert np.abs(np.diff(blurred, axis=1)).max() < np.abs(np.diff(image, axis=1)).max() / 2
    assert blurred.sum() == pytest.approx(image.sum(), rel=1e-3)
    noisy = augment.add_noise(image, rng, gaussian=(0.05, 0.05), photons=(1e6, 1e6))
    residual = noisy - image
    assert 0.04 < residual.std() < 0.06 and abs(residual.mean()) < 0.01
    shot = augment.add_noise(image, rng, gaussian=(0.0, 0.0), photons=(10.0, 10.0)) - image
    # Poisson: variance grows with the signal.
    assert shot[image == 1.0].var() > 3 * shot[image == 0.5].var() / 2 > 0
    assert np.all(shot[image == 0] == 0)


def test_augment_crop_off_switches_reproduce_the_plain_recipe():
    image, labels = two_nuclei()
    plain = AugmentationConfig()
    a = augment_crop(image, labels, 48, 0, plain, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    i, l = augment.random_crop(image, labels, 48, 0, rng)
    i, l = augment.flip_rotate(i, l, rng)
    i = augment.scale_intensity(i, rng)
    np.testing.assert_array_equal(a[1], l)
    np.testing.assert_allclose(a[0], i)


def test_robust_augmentation_keeps_instance_labels_and_a_finite_image():
    image, labels = two_nuclei()
    config = AugmentationConfig.robust(probability=1.0)
    for seed in range(6):
        out_image, out_labels = augment_crop(image, labels, 48, 5, config, np.random.default_rng(seed))
        assert out_image.shape == out_labels.shape == (58, 58)
        assert np.isfinite(out_image).all()
        assert set(np.unique(out_labels)) <= {0, 1, 2}


@pytest.mark.parametrize("switch", ["gamma", "nucleus_brightness", "background", "blur", "noise", "bright_objects"])
def test_each_signal_switch_changes_the_crop_and_leaves_labels(switch):
    image, labels = two_nuclei()
    base = AugmentationConfig(flips=False, intensity=False, probability=1.0)
    on = AugmentationConfig(**{**base.to_dict(), "scale": (), switch: True})
    plain_image, plain_labels = augment_crop(image + 0.1, labels, 64, 0, base, np.random.default_rng(2))
    new_image, new_labels = augment_crop(image + 0.1, labels, 64, 0, on, np.random.default_rng(2))
    np.testing.assert_array_equal(plain_labels, new_labels)
    assert not np.allclose(plain_image, new_image)


def test_blur_that_keeps_the_range_stretches_lowered_peaks_back_as_normalization_would():
    image, labels = two_nuclei()
    plain = augment.defocus_blur(image, np.random.default_rng(0), sigma=(3.0, 3.0))
    kept = augment.defocus_blur(image, np.random.default_rng(0), sigma=(3.0, 3.0), keep_range=True)
    before = np.percentile(image, [0.1, 99.9])
    assert np.percentile(plain, 99.9) < before[1] - 0.05  # blurring alone lowers the peaks
    assert np.percentile(kept, [0.1, 99.9]) == pytest.approx(before, abs=1e-4)
    assert np.abs(np.diff(kept, axis=1)).max() < np.abs(np.diff(image, axis=1)).max() / 2  # still blurred
    config = AugmentationConfig(flips=False, intensity=False, blur=True, blur_keep_range=True, probability=1.0)
    crop, crop_labels = augment_crop(image, labels, 96, 0, config, np.random.default_rng(3))  # the whole image
    assert np.percentile(crop, 99.9) == pytest.approx(np.percentile(image, 99.9), abs=1e-4)
    np.testing.assert_array_equal(crop_labels, labels)
    assert "blur keep range" in config.describe() and config.to_dict()["blur_keep_range"] is True
    assert not AugmentationConfig.robust().blur_keep_range  # --robust keeps its meaning


def test_augmentation_config_validates_and_records():
    with pytest.raises(ValueError, match="scale"):
        AugmentationConfig(scale=(2.0, 0.5))
    with pytest.raises(ValueError, match="probability"):
        AugmentationConfig(probability=1.5)
    with pytest.raises(ValueError, match="blur sigma"):
        AugmentationConfig(blur_sigma=(3.0, 1.0))
    record = AugmentationConfig.robust().to_dict()
    assert record["scale"] == [0.5, 2.0] and record["noise"] and record["gamma"]
    assert AugmentationConfig.robust(blur_sigma=(0.5, 3.0)).to_dict()["blur_sigma"] == [0.5, 3.0]
    assert "blur sigma 0.5-3 px" in AugmentationConfig.robust(blur_sigma=(0.5, 3.0)).describe()


def test_blur_probability_replaces_the_common_one_for_blur_alone():
    image, labels = two_nuclei()

    def blurred_and_noisy(config, n=200):
        rng = np.random.default_rng(5)
        blurred = noisy = 0
        for _ in range(n):
            crop, _ = augment_crop(image, labels, 96, 0, config, rng)  # the whole image
            edge = np.abs(np.diff(crop, axis=1)).max()
            blurred += edge < 0.5 * sharp
            noisy += np.count_nonzero(np.diff(crop[:8, :8], axis=1)) > 0  # the corner is flat background
        return blurred / n, noisy / n

    sharp = np.abs(np.diff(image, axis=1)).max()
    common = dict(flips=False, intensity=False, blur=True, blur_sigma=(2.0, 2.0), noise=True, probability=0.1)
    blurred, noisy = blurred_and_noisy(AugmentationConfig(**common))
    blurred_more, noisy_same = blurred_and_noisy(AugmentationConfig(**common, blur_probability=0.8))
    assert blurred < 0.25 and blurred_more > 0.6
    assert noisy < 0.25 and noisy_same < 0.25
    with pytest.raises(ValueError, match="blur probability"):
        AugmentationConfig(blur_probability=1.5)
    config = AugmentationConfig.robust(probability=0.25, blur_probability=0.5)
    assert config.to_dict()["blur_probability"] == 0.5
    assert "blur sigma 0.5-2 px with probability 0.5" in config.describe()
    assert AugmentationConfig.robust().to_dict()["blur_probability"] is None


def test_a_recorded_augmentation_is_described_like_its_config():
    config = AugmentationConfig.robust(probability=0.25, blur_probability=0.5)
    assert augment.describe_record(config.to_dict()) == config.describe()
    record = {"flips": True, "blur": True, "blur_sigma": [0.5, 2.0], "noise": False, "scale": [0.5, 2.0],
              "probability": 0.25, "blur_probability": 0.5, "random_crop": 256}
    assert augment.describe_record(record) == ("flips, blur sigma 0.5-2 px with probability 0.5, scale jitter 0.5-2x "
                                               "(each signal transform with probability 0.25)")
    # an early card's record: other keys, no probability
    assert augment.describe_record({"flips_rot90": True, "intensity": True, "elastic": False, "random_crop": 80}) \
        == "flips rot90, intensity"


def test_blur_width_follows_the_configured_range():
    image, labels = two_nuclei()

    def steepest_edge(sigma):
        config = AugmentationConfig(flips=False, intensity=False, blur=True, blur_sigma=(sigma, sigma), probability=1.0)
        crop, _ = augment_crop(image, labels, 64, 0, config, np.random.default_rng(3))
        return np.abs(np.diff(crop, axis=1)).max()

    assert steepest_edge(3.0) < 0.7 * steepest_edge(1.0)


def test_crops_larger_than_the_image_pad_with_background_not_mirrored_nuclei():
    image, labels = two_nuclei(40)
    image = image + 0.1
    for crop in (augment.random_crop(image, labels, 64, 0, np.random.default_rng(0)),
                 augment.scaled_crop(image, labels, 64, 0, 0.5, np.random.default_rng(0))):
        out_image, out_labels = crop
        # Wherever the labels say background (beyond the resampled edge), the image shows
        # background: no unlabelled nuclei.
        from scipy import ndimage
        far = ~ndimage.binary_dilation(out_labels > 0, iterations=2)
        assert np.abs(out_image[far] - 0.1).max() < 1e-4
        assert set(np.unique(out_labels)) == {0, 1}  # nucleus 2 lies outside a 40-pixel image

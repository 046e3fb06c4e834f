"""Core of the deep-learning pipelines: networks, targets, tiling, post-processing,
normalization, model cards, a short training run and augmentation."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from scipy import ndimage

from nucleiseg import augment, cards, model_types, synthetic, targets
from nucleiseg.model_types.deepcell import build_deepcell, deepcell_normalize
from nucleiseg.model_types.unet import build_unet
from nucleiseg.inference import average_over_flips_and_rotations, predict_probabilities
from nucleiseg.normalization import normalize, percentile_normalize
from nucleiseg.postprocess import PostprocessSettings, mask_probabilities, probabilities_to_labels
from nucleiseg.tiling import predict_tiled


def randomize_batch_norm(network: keras.Model, seed: int) -> keras.Model:
    """Give every batch normalization non-trivial statistics (fresh ones are the identity)."""
    rng = np.random.default_rng(seed)
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape),
                rng.normal(0.0, 0.2, beta.shape),
                rng.normal(0.0, 0.5, mean.shape),
                rng.uniform(0.5, 2.0, variance.shape),
            ])
    return network


# --- U-Net -----------------------------------------------------------------------------


def unet_parameters_by_hand(base: int, n_classes: int = 3, channels: int = 1) -> int:
    """Parameters of the U-Net counted from its layer list.

    Every 3x3 convolution has no bias and is followed by batch normalization
    (4 numbers per channel: gamma, beta, moving mean, moving variance).
    """
    widths = [base * 2**level for level in range(4)]

    def conv_bn(cin, cout):
        return 3 * 3 * cin * cout + 4 * cout

    total, cin = 0, channels
    for width in widths:  # encoder: two convolutions per level
        total += conv_bn(cin, width) + conv_bn(width, width)
        cin = width
    for level in (2, 1, 0):  # decoder: upsampled level below concatenated with the skip
        width = widths[level]
        total += conv_bn(widths[level + 1] + width, width) + conv_bn(width, width)
    return total + widths[0] * n_classes + n_classes  # 1x1 softmax layer with bias


def test_unet_parameter_count_width_64_and_16():
    assert unet_parameters_by_hand(64) == 7_790_339  # the paper's ~7.8 M
    assert unet_parameters_by_hand(16) == 489_155
    assert build_unet(64).count_params() == 7_790_339
    assert build_unet(16).count_params() == 489_155


def test_unet_runs_on_the_keras_backend():
    assert keras.backend.backend() in ("tensorflow", "jax", "torch")
    network = build_unet(4)
    x = np.random.default_rng(0).normal(size=(2, 32, 48, 1)).astype(np.float32)
    y = np.asarray(network.predict_on_batch(x))
    assert y.shape == (2, 32, 48, 3)
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)
    assert (model_types.get("unet").margin, model_types.get("unet").multiple) == (0, 8)


# --- targets ---------------------------------------------------------------------------

# Two 5x5 squares touching along a column; the left one touches the image's left edge.
TWO_SQUARES = np.zeros((7, 11), dtype=np.int32)
TWO_SQUARES[1:6, 0:5] = 1
TWO_SQUARES[1:6, 5:10] = 7  # labels need not be consecutive


def _class_map(rows: str) -> np.ndarray:
    """Class map from text: '.' background, 'i' interior, 'b' boundary."""
    code = {".": targets.BACKGROUND, "i": targets.INTERIOR, "b": targets.BOUNDARY}
    return np.array([[code[c] for c in row] for row in rows.split()], dtype=np.uint8)


def test_targets_two_touching_squares_width_1():
    # The image edge is not a boundary: column 0 of the left square stays interior.
    expected = _class_map(
        """
        ...........
        bbbbbbbbbb.
        iiiibbiiib.
        iiiibbiiib.
        iiiibbiiib.
        bbbbbbbbbb.
        ...........
        """
    )
    np.testing.assert_array_equal(targets.three_class_targets(TWO_SQUARES, width=1), expected)


def test_targets_two_touching_squares_width_2():
    expected = _class_map(
        """
        ...........
        bbbbbbbbbb.
        bbbbbbbbbb.
        iiibbbbibb.
        bbbbbbbbbb.
        bbbbbbbbbb.
        ...........
        """
    )
    np.testing.assert_array_equal(targets.three_class_targets(TWO_SQUARES, width=2), expected)


def test_class_weight_map():
    classes = targets.three_class_targets(TWO_SQUARES)
    weights = targets.class_weight_map(classes)
    assert weights.dtype == np.float32
    assert set(np.unique(weights)) == {1.0, 10.0}
    assert np.array_equal(weights == 10.0, classes == targets.BOUNDARY)


# --- tiling ----------------------------------------------------------------------------


def pointwise(margin: int = 0, multiple: int = 8):
    """Fake network: every class equals the input pixel; checks the size constraints."""

    def predict_batch(batch):
        h, w = batch.shape[1] - 2 * margin, batch.shape[2] - 2 * margin
        assert h % multiple == 0 and w % multiple == 0, batch.shape
        core = batch[:, margin : margin + h, margin : margin + w, :]
        return np.repeat(core, 3, axis=-1)

    return predict_batch


@pytest.mark.parametrize("shape", [(1, 1), (1, 50), (50, 1), (3, 200), (37, 53), (129, 130), (300, 410)])
@pytest.mark.parametrize("margin", [0, 5])
def test_tiling_stitches_exactly_for_any_size(shape, margin):
    image = np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)
    out = predict_tiled(pointwise(margin), image, tile=64, overlap=16, margin=margin, batch_size=3)
    assert out.shape == shape + (3,)
    np.testing.assert_array_equal(out, np.repeat(image[..., None], 3, axis=-1))


def test_tiling_small_image_is_padded_to_one_tile():
    calls = []

    def record(batch):
        calls.append(batch.shape)
        return np.repeat(batch, 3, axis=-1)

    out = predict_tiled(record, np.ones((37, 53)), tile=128, overlap=32)
    assert out.shape == (37, 53, 3)
    assert calls == [(1, 40, 56, 1)]  # padded up to multiples of 8, one pass


def test_tiling_reproduces_a_local_filter_away_from_the_image_border():
    # A 9x9 box filter has a receptive field of 4 px per side < half the overlap (16).
    def box(batch):
        smoothed = ndimage.uniform_filter(batch[..., 0], size=(1, 9, 9), mode="reflect")
        return np.repeat(smoothed[..., None], 3, axis=-1)

    image = np.random.default_rng(1).normal(size=(150, 170)).astype(np.float32)
    whole = ndimage.uniform_filter(image, size=9, mode="reflect")
    tiled = predict_tiled(box, image, tile=64, overlap=32)[..., 0]
    np.testing.assert_allclose(tiled[4:-4, 4:-4], whole[4:-4, 4:-4], atol=1e-5)


def test_tiling_bad_arguments():
    with pytest.raises(ValueError):
        predict_tiled(pointwise(), np.zeros((4, 4, 3)))
    with pytest.raises(ValueError):
        predict_tiled(pointwise(), np.zeros((40, 40)), tile=64, overlap=64)


def test_tiled_unet_matches_whole_image_inference_in_the_interior():
    keras.utils.set_random_seed(0)
    network = randomize_batch_norm(build_unet(4), 0)
    image = np.random.default_rng(0).normal(size=(300, 410)).astype(np.float32)
    # Whole image in one pass: reflect-padded up to multiples of 8.
    padded = np.pad(image, ((0, 4), (0, 6)), mode="reflect")[None, ..., None]
    whole = np.asarray(network.predict_on_batch(padded))[0, :300, :410]
    tiled = predict_tiled(network.predict_on_batch, image, tile=128, overlap=64, batch_size=4)
    assert tiled.shape == (300, 410, 3)
    difference = np.abs(tiled - whole)
    assert np.ptp(whole) > 0.05  # the comparison means something
    assert difference[16:-16, 16:-16].max() < 0.02
    assert np.median(difference) < 1e-3


def test_flip_rotation_average_maps_every_prediction_back():
    image = np.random.default_rng(2).normal(size=(12, 17)).astype(np.float32)
    # A per-pixel predictor is unchanged by the averaging only if each view is turned back correctly.
    def per_pixel(view):
        return np.stack([view, view**2, np.tanh(view)], axis=-1)

    np.testing.assert_allclose(average_over_flips_and_rotations(per_pixel, image), per_pixel(image), rtol=1e-6, atol=1e-6)
    # A predictor that sees position (squared distance from the view's left edge) is averaged over
    # all 8 views: on a square image the result is symmetric under transposition and flips.
    square = np.zeros((9, 9), np.float32)
    averaged = average_over_flips_and_rotations(lambda view: np.broadcast_to(np.arange(9.0) ** 2, (9, 9))[..., None], square)[..., 0]
    np.testing.assert_allclose(averaged, averaged.T)
    np.testing.assert_allclose(averaged, averaged[::-1])
    np.testing.assert_allclose(averaged, averaged[:, ::-1])
    assert np.ptp(averaged) > 0  # the centre and the corners still differ


def test_predict_probabilities_refuses_non_finite_pixels(tiny_model):
    model = cards.load(tiny_model[0])
    image = np.ones((40, 40), np.float32)
    image[3, 4] = np.inf
    with pytest.raises(ValueError, match=r"image has 1 pixel\(s\) that are NaN or infinite"):
        predict_probabilities(image, model)
    image[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        predict_probabilities(image, model)


def test_predict_probabilities_with_augmentation_on_a_real_network(tiny_model):
    card_path, _ = tiny_model
    model = cards.load(card_path)
    image, _ = synthetic.generate_one(1, size=50)
    plain = predict_probabilities(image, model)
    augmented = predict_probabilities(image, model, augment=True)
    assert augmented.shape == plain.shape == (50, 50, 3)
    np.testing.assert_allclose(augmented.sum(axis=-1), 1.0, atol=1e-5)
    assert not np.allclose(augmented, plain, atol=1e-4)  # a random network is not flip-invariant
    turned = predict_probabilities(np.ascontiguousarray(np.rot90(image)), model, augment=True)
    np.testing.assert_allclose(np.rot90(augmented), turned, atol=1e-4)  # the average is rotation-equivariant


def test_tiled_deepcell_with_margin_equals_untiled_dense_inference():
    keras.utils.set_random_seed(1)
    network = randomize_batch_norm(build_deepcell(dense=True), 1)
    margin, multiple = model_types.get("deepcell").margin, model_types.get("deepcell").multiple
    image = np.random.default_rng(2).normal(size=(75, 101)).astype(np.float32)
    whole = np.asarray(network.predict_on_batch(np.pad(image, margin, mode="reflect")[None, ..., None]))[0]
    tiled = predict_tiled(network.predict_on_batch, image, tile=64, overlap=8, margin=margin, multiple=multiple, batch_size=2)
    assert tiled.shape == whole.shape == (75, 101, 3)
    # The margin gives every tile its full 61x61 context, so no seam remains.
    assert np.abs(tiled - whole).max() < 1e-4


# --- post-processing -------------------------------------------------------------------


def _probabilities_from_classes(classes: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    rest = (1.0 - confidence) / 2
    probabilities = np.full(classes.shape + (3,), rest, dtype=np.float32)
    np.put_along_axis(probabilities, classes[..., None].astype(np.intp), confidence, axis=-1)
    return probabilities


def test_postprocess_splits_two_touching_discs_and_drops_a_speck():
    yy, xx = np.mgrid[:80, :100]
    left = (yy - 40) ** 2 + (xx - 35) ** 2 <= 16**2
    right = (yy - 40) ** 2 + (xx - 63) ** 2 <= 16**2
    labels = np.where(left | right, np.where(xx < 49, 1, 2), 0)  # cut halfway between the centres
    assert ndimage.label(labels > 0)[1] == 1  # one blob without the boundary classes
    classes = targets.three_class_targets(labels, width=2)
    classes[5:8, 5:8] = targets.INTERIOR  # a 9-pixel speck
    probabilities = _probabilities_from_classes(classes)

    found = probabilities_to_labels(probabilities, PostprocessSettings(min_size=15))
    assert found.max() == 2
    for index in (1, 2):
        truth = labels == index
        best = np.bincount(found[truth]).argmax()
        overlap = found == best
        assert best > 0 and (truth & overlap).sum() / (truth | overlap).sum() > 0.85

    kept = probabilities_to_labels(probabilities, PostprocessSettings(min_size=0))
    assert kept.max() == 3 and kept[6, 6] > 0


def _discs(radius: int, count: int, size: int = 200) -> np.ndarray:
    labels = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[:size, :size]
    for index in range(count):
        cy, cx = 20 + 40 * (index // 4), 20 + 40 * (index % 4)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = index + 1
    return labels


def test_relative_min_size_keeps_small_nuclei_of_a_low_magnification_image_and_drops_debris():
    small = _discs(3, 8)  # 29-pixel nuclei: a fixed limit of 50 deletes every one
    small[190:192, 190:192] = 9  # a 4-pixel speck
    probabilities = _probabilities_from_classes(targets.three_class_targets(small))
    fixed = PostprocessSettings(min_size=50, dilation=1)
    relative = PostprocessSettings(min_size=50, dilation=1, relative_min_size=0.3)
    assert probabilities_to_labels(probabilities, fixed).max() == 0
    kept = probabilities_to_labels(probabilities, relative)
    assert kept.max() == 8 and kept[191, 191] == 0  # 0.3 x median 29 px: the nuclei stay, the speck goes
    # With large nuclei the fixed limit still applies (the smaller of the two limits wins).
    large = _discs(10, 8)
    large[185:190, 185:190] = 9  # 25 pixels: below 50, and below 0.3 x median
    found = probabilities_to_labels(_probabilities_from_classes(targets.three_class_targets(large)), relative)
    assert found.max() == 8
    assert PostprocessSettings().relative_min_size == 0.0
    with pytest.raises(ValueError, match="relative_min_size"):
        PostprocessSettings(relative_min_size=1.5)


def test_postprocess_constant_background_gives_no_objects():
    probabilities = np.zeros((64, 64, 3), dtype=np.float32)
    probabilities[..., 0] = 1.0
    labels = probabilities_to_labels(probabilities)
    assert labels.shape == (64, 64) and labels.dtype == np.int32 and labels.max() == 0


def test_postprocess_rejects_bad_input():
    with pytest.raises(ValueError):
        probabilities_to_labels(np.zeros((8, 8)))
    with pytest.raises(ValueError):
        PostprocessSettings(interior_threshold=1.0)
    with pytest.raises(ValueError, match="foreground_threshold"):
        PostprocessSettings(foreground_threshold=0.0)
    with pytest.raises(ValueError, match="dilaton"):
        PostprocessSettings.from_dict({"dilaton": 2})
    assert PostprocessSettings.from_dict({"min_size": 7}) == PostprocessSettings(min_size=7)


def test_foreground_threshold_limits_how_far_seeds_grow():
    # A seed disc of radius 10 inside a halo whose nucleus probability falls from 0.95 to 0.55
    # over the 4 pixels outside it: the threshold decides where the outline stops.
    yy, xx = np.mgrid[:60, :60]
    distance = np.hypot(yy - 30, xx - 30)
    probabilities = np.zeros((60, 60, 3), np.float32)
    probabilities[..., 1] = distance <= 10
    halo = (distance > 10) & (distance <= 14)
    nucleus = np.where(halo, 0.95 - 0.1 * (np.ceil(distance) - 11), 0.0)
    probabilities[..., 2] = nucleus
    probabilities[..., 0] = 1.0 - probabilities[..., 1] - probabilities[..., 2]
    areas = []
    for threshold in (0.5, 0.7, 0.9):
        labels = probabilities_to_labels(probabilities, PostprocessSettings(dilation=6, foreground_threshold=threshold))
        assert labels.max() == 1
        areas.append(int((labels == 1).sum()))
    assert areas[0] > areas[1] > areas[2] > int((distance <= 10).sum())
    # 0.5 is exactly "more likely nucleus than background", also for maps that do not sum to 1.
    scaled = probabilities * 3.0
    same = probabilities_to_labels(scaled, PostprocessSettings(dilation=6))
    assert (same > 0).sum() == areas[0]


# --- normalization ---------------------------------------------------------------------


def test_percentile_normalization_maps_percentiles_to_0_and_1():
    image = np.arange(1001, dtype=np.uint16).reshape(7, 143)
    out = percentile_normalize(image, 1, 99)
    assert out.dtype == np.float32
    lo, hi = np.percentile(image, [1, 99])
    np.testing.assert_allclose(out[image == 500], (500 - lo) / (hi - lo), rtol=1e-6)
    assert abs(np.percentile(out, 1)) < 1e-5 and abs(np.percentile(out, 99) - 1) < 1e-5
    assert out.min() < 0 and out.max() > 1  # not clipped


@pytest.mark.parametrize("method", [{"method": "percentile", "low": 1, "high": 99}, {"method": "robust", "foreground": 0.5},
                                    {"method": "deepcell", "window": 5}])
def test_normalization_statistics_come_from_inside_the_mask(method):
    rng = np.random.default_rng(0)
    image = rng.uniform(1, 2, (30, 30)).astype(np.float32)
    mask = np.ones(image.shape, bool)
    mask[:, 20:] = False
    artefact = image.copy()
    artefact[:, 20:] = 1000.0
    inside = normalize(image, method, mask=mask)[:, :10]  # away from the artefact's local mean
    np.testing.assert_allclose(normalize(artefact, method, mask=mask)[:, :10], inside, rtol=1e-5)
    assert not np.allclose(normalize(artefact, method)[:, :10], inside, rtol=1e-3)
    with pytest.raises(ValueError, match="mask shape"):
        normalize(image, method, mask=mask[:10])


def test_robust_normalization_is_not_set_by_a_few_bright_objects():
    """Dim nuclei beside one bright object: percentiles dim them, the robust scale does not."""
    rng = np.random.default_rng(1)
    image = rng.normal(100, 3, (200, 200))
    yy, xx = np.mgrid[:200, :200]
    nuclei = np.zeros(image.shape, bool)
    for cy, cx in rng.integers(15, 185, (25, 2)):
        nuclei |= (yy - cy) ** 2 + (xx - cx) ** 2 < 36
    image[nuclei] += 100
    bright = image.copy()
    bright[(yy - 100) ** 2 + (xx - 100) ** 2 < 16] = 5000  # 0.1 % of the pixels
    assert normalize(image, {"method": "robust", "foreground": 0.5})[nuclei].mean() == pytest.approx(0.5, abs=0.02)
    robust = normalize(bright, {"method": "robust", "foreground": 0.5})[nuclei & (bright < 5000)].mean()
    percentile = normalize(bright, {"method": "percentile", "low": 0.1, "high": 99.9})[nuclei & (bright < 5000)].mean()
    assert robust == pytest.approx(0.5, abs=0.03) and percentile < 0.2
    background = normalize(bright, {"method": "robust", "foreground": 0.5})[~nuclei]
    assert abs(np.median(background)) < 0.02
    assert not normalize(np.full((20, 30), 7.0), {"method": "robust"}).any()
    with pytest.raises(ValueError, match="foreground level must be positive"):
        normalize(image, {"method": "robust", "foreground": 0})


def test_mask_probabilities_and_prediction_with_a_mask(tiny_model):
    probabilities = np.full((4, 5, 3), 1 / 3, np.float32)
    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:4] = True
    masked = mask_probabilities(probabilities, mask)
    assert np.all(masked[~mask] == [1, 0, 0]) and np.all(masked[mask] == probabilities[mask])
    assert np.all(probabilities == np.float32(1 / 3))  # the input is left alone
    model = cards.load(tiny_model[0])
    image = synthetic.generate_one(0, size=40)[0].astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[5:30, 8:35] = True
    found = predict_probabilities(image, model, mask=mask)
    assert np.all(found[~mask, 0] == 1.0)
    np.testing.assert_allclose(found.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(predict_probabilities(image, model, mask=np.zeros(image.shape, bool))[..., 0] == 1.0)
    with pytest.raises(ValueError, match="mask shape"):
        predict_probabilities(image, model, mask=mask[:5])


def test_normalization_constant_image_and_methods():
    assert not normalize(np.full((20, 30), 7, dtype=np.uint8)).any()
    image, _ = synthetic.generate_one(3, size=64)
    out = normalize(image, {"method": "deepcell", "window": 61})
    assert out.shape == image.shape and np.isfinite(out).all() and np.ptp(out) > 0
    np.testing.assert_allclose(out, deepcell_normalize(image, 61))
    assert np.isfinite(deepcell_normalize(np.zeros((10, 10)))).all()
    with pytest.raises(ValueError):
        normalize(image, {"method": "zscore"})
    with pytest.raises(ValueError):
        percentile_normalize(image, 50, 10)


# --- model cards -----------------------------------------------------------------------


@pytest.fixture
def tiny_model(tmp_path):
    network = build_unet(2)
    weights = tmp_path / "tiny.weights.h5"
    network.save_weights(weights)
    card = {"architecture": {"name": "unet", "base_filters": 2, "n_classes": 3}, "normalization": {"method": "percentile", "low": 1, "high": 99}}
    return cards.write_card(card, weights), weights


def test_card_written_and_verified(tiny_model):
    card_path, weights = tiny_model
    card = json.loads(card_path.read_text())
    assert card["weights"] == weights.name and card["sha256"] == cards.sha256_of(weights)
    [(path, checked)] = cards.verify(card_path)
    assert path == card_path and checked == card
    assert cards.card_path_for(weights) == card_path


def test_corrupt_weights_are_refused_naming_the_file(tiny_model):
    card_path, weights = tiny_model
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(cards.ModelError, match="tiny.weights.h5"):
        cards.verify(card_path)
    with pytest.raises(cards.ModelError, match="checksum"):
        cards.load(card_path)


def test_missing_weights_or_card_are_refused(tiny_model):
    card_path, weights = tiny_model
    weights.unlink()
    with pytest.raises(cards.ModelError, match="not found"):
        cards.load(card_path)
    with pytest.raises(cards.ModelError, match="not found"):
        cards.load(card_path.with_name("other.json"))


def test_load_is_cached(tiny_model):
    card_path, weights = tiny_model
    cards.clear_cache()
    first = cards.load(card_path)
    assert cards.load(card_path) is first
    assert cards.load(weights) is first  # the weights file names the same model
    assert first.architecture["name"] == "unet" and len(first.networks) == 1
    probabilities = predict_probabilities(np.random.default_rng(0).random((20, 30)), first)
    assert probabilities.shape == (20, 30, 3)
    cards.clear_cache()


# --- training --------------------------------------------------------------------------


def test_training_batches_have_matching_shapes_and_targets(tmp_path):
    from nucleiseg.training import TrainConfig, load_examples, make_batch

    data = tmp_path / "data"
    synthetic.generate(data, n=3, size=64)
    for network, margin in (("unet", 0), ("deepcell", 30)):
        config = TrainConfig(network=network, data=str(data), crop=48, batch_size=3)
        examples = load_examples(data, "train", config.normalization)
        x, y, w = make_batch(examples, config, np.random.default_rng(0))
        assert x.shape == (3, 48 + 2 * margin, 48 + 2 * margin, 1) and x.dtype == np.float32
        assert y.shape == w.shape == (3, 48, 48) and set(np.unique(y)) <= {0, 1, 2}
        assert np.array_equal(w == 10.0, y == targets.BOUNDARY)


def test_small_nucleus_weight_map_weighs_whole_small_nuclei_only():
    labels = np.zeros((40, 40), np.int32)
    labels[10:15, 10:15] = 1    # 25 px, inside: small
    labels[20:35, 20:35] = 2    # 225 px, inside: large for an area limit of 100
    labels[0:4, 30:34] = 3      # 16 px but cut by the crop's edge: left at 1
    weights = targets.small_nucleus_weight_map(labels, area_below=100, factor=4.0)
    assert weights.dtype == np.float32
    assert np.all(weights[labels == 1] == 4.0)
    assert np.all(weights[(labels != 1)] == 1.0)
    assert np.all(targets.small_nucleus_weight_map(labels, 1000, 1.0) == 1.0)
    with pytest.raises(ValueError, match="small-nucleus weight"):
        targets.small_nucleus_weight_map(labels, 100, 0.5)


def test_training_batches_weigh_small_nuclei_when_asked(tmp_path):
    from nucleiseg.training import TrainConfig, make_batch

    labels = np.zeros((64, 64), np.int32)
    labels[30:34, 30:34] = 1  # 16 px at the centre: every flip and rotation keeps it whole inside
    labels[5:25, 40:60] = 2   # 400 px
    image = (labels > 0).astype(np.float32)
    examples = [("one", image, labels)]
    plain = TrainConfig(network="unet", crop=64, batch_size=2)
    weighted = TrainConfig(network="unet", crop=64, batch_size=2, small_nucleus_weight=3.0, small_nucleus_area=100)
    _, y0, w0 = make_batch(examples, plain, np.random.default_rng(0))
    _, y1, w1 = make_batch(examples, weighted, np.random.default_rng(0))
    assert np.array_equal(y0, y1)
    ratio = w1 / w0
    assert set(np.unique(ratio)) == {1.0, 3.0}
    assert (ratio == 3.0).sum() == 2 * 16  # the small nucleus in each crop, boundary and interior
    with pytest.raises(ValueError, match="--small-nucleus-weight"):
        TrainConfig(small_nucleus_weight=0.5)


# Tracing the training step takes 30-60 s of wall time on a busy 2-core machine.
@pytest.mark.slow
def test_short_training_run_writes_a_loadable_model(tmp_path):
    from nucleiseg.training import TrainConfig, train, training_hardware

    data = tmp_path / "data"
    synthetic.generate(data, n=3, size=64)  # one image each for train, val and test
    judged_with = {"dilation": 3, "foreground_threshold": 0.7}
    config = TrainConfig(network="unet", base_filters=4, data=str(data), crop=64, batch_size=2,
                         steps_per_epoch=2, epochs=2, patience=10, seed=3, val_postprocess=judged_with)
    card_path = train(config, tmp_path / "models" / "tiny", tmp_path / "checkpoints")
    card = json.loads(card_path.read_text())
    for key in ("architecture", "parameters", "backend", "normalization", "classes", "training", "validation", "sha256"):
        assert key in card, key
    assert card["architecture"] == {"name": "unet", "base_filters": 4, "n_classes": 3}
    assert card["parameters"] == unet_parameters_by_hand(4)
    assert card["backend"] == keras.backend.backend()
    assert card["classes"] == ["background", "interior", "boundary"]
    assert card["training"]["epochs"] == 2 and card["training"]["steps"] == 4
    assert card["training"]["hardware"] == training_hardware()
    assert len(card["history"]) == 2
    # Epochs were judged with the given post-processing, and the card starts from it.
    assert card["postprocess"] == card["validation"]["during_training_postprocess"]
    assert cards.tuned_postprocess(card_path) == PostprocessSettings(**judged_with)
    cards.clear_cache()
    loaded = cards.load(card_path)
    image, _ = synthetic.generate_one(1, size=64)
    probabilities = predict_probabilities(image, loaded)
    assert probabilities.shape == (64, 64, 3) and np.isfinite(probabilities).all()
    cards.clear_cache()


def test_bf16_training_validates_a_float32_copy_and_leaves_the_global_policy_alone(tmp_path, monkeypatch):
    """Epochs are judged as the modules run the network (float32), with each epoch's weights."""
    from nucleiseg import model_types
    from nucleiseg.training import TrainConfig, loop, train

    data = tmp_path / "data"
    synthetic.generate(data, n=3, size=64)
    seen = []
    score = loop.validation_scores
    monkeypatch.setattr(loop, "validation_scores", lambda network, *rest: seen.append(
        (network.layers[1].compute_dtype, network.get_weights()[0].copy())) or score(network, *rest))
    config = TrainConfig(network="unet", base_filters=2, data=str(data), crop=64, batch_size=2, steps_per_epoch=1,
                         epochs=2, patience=10, mixed_bfloat16=True)
    card = json.loads(train(config, tmp_path / "m", tmp_path / "ck").read_text())
    assert [dtype for dtype, _ in seen] == ["float32", "float32"]
    assert not np.array_equal(seen[0][1], seen[1][1])  # the copy follows the training
    assert keras.mixed_precision.global_policy().name == "float32" and card["training"]["mixed_bfloat16"]
    resumed = keras.models.load_model(tmp_path / "ck" / "last.keras", custom_objects=model_types.custom_objects())
    assert resumed.layers[1].compute_dtype == "bfloat16"  # a resumed run trains in bfloat16 again


# --- augmentation ----------------------------------------------------------------------


def test_elastic_deformation_moves_image_and_labels_together():
    _, labels = synthetic.generate_one(0, size=64)
    labels = labels.astype(np.int32)
    assert labels[:, 0].any() or labels[0].any() or labels[:, -1].any() or labels[-1].any()  # nuclei at the edge
    image = labels.astype(np.float32)
    warped_image, warped_labels = augment.elastic_deform(image, labels, np.random.default_rng(0), alpha=300.0, sigma=6.0)
    assert warped_labels.dtype == labels.dtype and warped_image.shape == labels.shape
    assert (warped_labels != labels).mean() > 0.02  # it really moved
    # Where linear interpolation gives a whole number, all taps agreed: nearest must match.
    whole = np.abs(warped_image - np.round(warped_image)) < 1e-4
    assert whole.mean() > 0.5
    np.testing.assert_array_equal(warped_labels[whole], np.round(warped_image[whole]).astype(np.int32))


def test_crop_and_flips_keep_image_and_labels_aligned():
    _, labels = synthetic.generate_one(2, size=64)
    image = labels.astype(np.float32)
    rng = np.random.default_rng(1)
    for _ in range(4):
        crop_image, crop_labels = augment.random_crop(image, labels, 32, 5, rng)
        assert crop_image.shape == crop_labels.shape == (42, 42)
        core = (slice(5, -5), slice(5, -5))
        np.testing.assert_array_equal(crop_image[core], crop_labels[core])
        flipped_image, flipped_labels = augment.flip_rotate(crop_image, crop_labels, rng)
        np.testing.assert_array_equal(flipped_image[core], flipped_labels[core])


def test_train_command_refuses_a_missing_val_postprocess_card(tmp_path, capsys):
    from nucleiseg.train import main

    missing = tmp_path / "nowhere.json"
    with pytest.raises(SystemExit) as stopped:
        main(["unet", "--out", str(tmp_path / "model"), "--val-postprocess", str(missing)])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "--val-postprocess" in error and str(missing) in error
    assert not (tmp_path / "model.json").exists()


def test_train_command_takes_the_normalization_into_the_card(tmp_path, capsys):
    from nucleiseg.train import main

    data = tmp_path / "data"
    synthetic.generate(data, n=4, size=48)
    common = ["unet", "--data", str(data), "--base-filters", "2", "--crop", "48", "--batch-size", "1",
              "--steps-per-epoch", "1", "--epochs", "1", "--val-images", "1"]
    with pytest.raises(SystemExit) as stopped:
        main([*common, "--percentiles", "2", "1", "--out", str(tmp_path / "bad")])
    assert stopped.value.code == 2 and "--normalization/--percentiles: percentiles 2 1: need 0 <= LOW < HIGH <= 100" in capsys.readouterr().err
    for extra, expected in ((["--percentiles", "1", "99.8"], {"method": "percentile", "low": 1.0, "high": 99.8}),
                            (["--normalization", "robust"], {"method": "robust", "foreground": 0.5})):
        out = tmp_path / expected["method"]
        assert main([*common, *extra, "--out", str(out), "--checkpoints", str(tmp_path / f"ck-{expected['method']}")]) in (0, None)
        written = json.loads(out.with_suffix(".json").read_text())
        assert written["normalization"] == expected
        # The card says how to train its model again.
        assert written["training"]["command"].startswith("python -m nucleiseg.train unet --data ")
        assert " ".join(extra) in written["training"]["command"] and "postprocess_from" not in written
    with pytest.raises(SystemExit) as stopped:
        main([*common, "--small-nucleus-weight", "0.5", "--out", str(tmp_path / "bad")])
    assert stopped.value.code == 2 and "--small-nucleus-weight 0.5" in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()
    out = tmp_path / "small"
    assert main([*common, "--small-nucleus-weight", "3", "--out", str(out), "--checkpoints", str(tmp_path / "ck-small")]) in (0, None)
    training = json.loads(out.with_suffix(".json").read_text())["training"]
    assert training["small_nucleus_weight"] == {"weight": 3.0, "area_below": 250}
    assert "under 250 px of a crop weigh 3 times more" in training["loss"]
    judged_by = tmp_path / "percentile.json"
    out = tmp_path / "judged"
    assert main([*common, "--val-postprocess", str(judged_by), "--out", str(out), "--checkpoints", str(tmp_path / "ck-j")]) in (0, None)
    assert json.loads(out.with_suffix(".json").read_text())["postprocess_from"] == str(judged_by)


def test_train_command_default_width_is_the_shipped_unets(tmp_path, monkeypatch):
    """Without --base-filters (and --init) a U-Net is trained at the width the shipped model has."""
    import nucleiseg.train as train_command

    data = tmp_path / "data"
    synthetic.generate(data, n=4, size=48)
    seen = []
    monkeypatch.setattr(train_command, "train", lambda config, out, checkpoints, resume, export_last: seen.append(config) or out)
    monkeypatch.setattr(train_command, "record_invocation", lambda card, command, postprocess_from: card)
    assert train_command.main(["unet", "--data", str(data), "--out", str(tmp_path / "m")]) == 0
    shipped = cards.read_card(model_types.get("unet").default_card)["architecture"]["base_filters"]
    assert seen[0].base_filters == shipped and seen[0].architecture()["base_filters"] == shipped
    assert train_command.main(["unet", "--data", str(data), "--out", str(tmp_path / "w"), "--base-filters", "24"]) == 0
    assert seen[1].architecture()["base_filters"] == 24


# --- training on a subset, held-out validation, fine-tuning ---------------------------


@pytest.fixture
def marked_data(tmp_path):
    """Synthetic data (12 images: 4 per split) with a manifest marking synth_000..synth_005."""
    data = tmp_path / "data"
    stems = synthetic.generate(data, n=12, size=48)
    rows = "".join(f"{stem},{'field' if i < 6 else ''}\n" for i, stem in enumerate(stems))
    (data / "manifest.csv").write_text("name,kind\n" + rows)
    return data


def test_split_names_subset_column_and_holdout(marked_data):
    from nucleiseg.training import TrainConfig, split_names

    plain = TrainConfig(data=str(marked_data))
    train, val, source = split_names(plain)
    assert train == ["synth_000", "synth_003", "synth_006", "synth_009"] and source == "val"
    assert val == ["synth_001", "synth_004", "synth_007", "synth_010"]
    marked = TrainConfig(data=str(marked_data), subset_column="kind")
    assert split_names(marked)[:2] == (["synth_000", "synth_003"], ["synth_001", "synth_004"])
    held = TrainConfig(data=str(marked_data), holdout=1, seed=5)
    train, val, source = split_names(held)
    assert len(val) == 1 and len(train) == 3 and not set(train) & set(val) and source == "train (held out)"
    assert set(train) | set(val) == {"synth_000", "synth_003", "synth_006", "synth_009"}
    assert split_names(held) == (train, val, source)  # seeded: the same every time (and on resume)


def test_split_names_refuses_bad_subsets_naming_the_setting(marked_data):
    from nucleiseg.training import TrainConfig, split_names

    with pytest.raises(ValueError, match="'missing'"):
        split_names(TrainConfig(data=str(marked_data), subset_column="missing"))
    with pytest.raises(ValueError, match="holdout 2"):
        split_names(TrainConfig(data=str(marked_data), subset_column="kind", holdout=2))  # 2 marked training images
    (marked_data / "manifest.csv").unlink()
    with pytest.raises(ValueError, match="no manifest.csv"):
        split_names(TrainConfig(data=str(marked_data), subset_column="kind"))


def test_initial_weights_must_match_the_run(tiny_model):
    from nucleiseg.training import TrainConfig, initial_weights

    card_path, weights = tiny_model
    assert initial_weights(TrainConfig(base_filters=2, init_from=str(card_path))) == weights
    with pytest.raises(cards.ModelError, match="architecture"):
        initial_weights(TrainConfig(base_filters=4, init_from=str(card_path)))
    with pytest.raises(cards.ModelError, match="architecture"):
        initial_weights(TrainConfig(network="deepcell", init_from=str(card_path)))


def test_initial_weights_need_no_onnx_file_but_checked_weights(tiny_model):
    """A card copied without its ONNX file still starts a run; its weights are still checked."""
    from nucleiseg.training import TrainConfig, initial_weights

    card_path, weights = tiny_model
    card = json.loads(card_path.read_text())
    card.update(onnx="gone.onnx", onnx_sha256="0" * 64, onnx_weights_sha256=card["sha256"])
    card_path.write_text(json.dumps(card))
    with pytest.raises(cards.ModelError, match="gone.onnx"):
        cards.verify(card_path)  # inference would need it
    assert initial_weights(TrainConfig(base_filters=2, init_from=str(card_path))) == weights
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(cards.ModelError, match="checksum"):
        initial_weights(TrainConfig(base_filters=2, init_from=str(card_path)))


def test_train_command_refuses_bad_subset_and_init_before_training(marked_data, tmp_path, capsys):
    from nucleiseg.train import main

    out = tmp_path / "model"
    for extra, message in ((["--subset-column", "nope"], "'nope'"), (["--holdout", "9"], "holdout 9"),
                           (["--init", str(tmp_path / "none.json")], "none.json")):
        with pytest.raises(SystemExit) as stopped:
            main(["unet", "--data", str(marked_data), "--out", str(out), "--checkpoints", str(tmp_path / "ck"), *extra])
        assert stopped.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "ck").exists() and not out.with_suffix(".json").exists()


@pytest.mark.slow
def test_fine_tuning_on_a_marked_subset_starts_from_the_given_weights(marked_data, tiny_model, tmp_path):
    from nucleiseg.training import TrainConfig, train

    card_path, weights = tiny_model
    config = TrainConfig(network="unet", base_filters=2, data=str(marked_data), crop=48, batch_size=2,
                         steps_per_epoch=1, epochs=1, learning_rate=1e-9, subset_column="kind", holdout=1,
                         init_from=str(card_path))
    tuned = json.loads(train(config, tmp_path / "ft", tmp_path / "ck").read_text())
    record = tuned["training"]
    assert record["images"] == 1 and record["subset_column"] == "kind"
    starting = record["initial_weights"].pop("validation")
    assert record["initial_weights"] == {"file": weights.name, "sha256": cards.sha256_of(weights)}
    # The starting weights were scored before training, on the held-out image, as the epochs are.
    from nucleiseg.training import load_examples, validation_scores

    start = build_unet(2)
    start.load_weights(weights)
    held_out = load_examples(marked_data, "train", None, names=record["held_out_for_validation"])
    expected = validation_scores(start, config.architecture(), config.normalization, held_out, config.val_settings())
    assert starting == pytest.approx(expected) and starting["images"] == 1
    assert "starting weights: val mean F1" in (tmp_path / "ck" / "train.log").read_text()
    assert len(record["held_out_for_validation"]) == 1 and tuned["validation"]["split"] == "train (held out)"
    # One step at a negligible learning rate: the convolution kernels are still the initial ones.
    after = build_unet(2)
    after.load_weights(tmp_path / tuned["weights"])
    kernels = [(a, b) for a, b in zip(start.weights, after.weights) if "kernel" in a.path]
    assert kernels and all(np.allclose(np.asarray(a), np.asarray(b), atol=1e-6) for a, b in kernels)


def test_a_schedule_without_validation_must_say_where_it_ends(marked_data, tmp_path, capsys):
    from nucleiseg.train import main
    from nucleiseg.training import TrainConfig, check_schedule, split_names

    fixed = TrainConfig(data=str(marked_data), train_split="train+val", val_split="none", epochs=3)
    check_schedule(fixed)
    train, val, source = split_names(fixed)
    assert len(train) == 8 and val == [] and source.startswith("none")
    for changes, message in (({"epochs": 1000}, "--epochs"), ({"max_minutes": 5}, "--max-minutes"),
                             ({"average_last": 2}, "--average-last"), ({"snapshots": 3}, "--snapshots")):
        with pytest.raises(ValueError, match=message):
            check_schedule(TrainConfig(**{**fixed.__dict__, **changes}))
    with pytest.raises(ValueError, match="--cosine"):
        check_schedule(TrainConfig(data=str(marked_data), cosine=True, max_minutes=5, epochs=4))
    # The command refuses before anything is written.
    out = tmp_path / "model"
    for extra, message in ((["--val", "none"], "--epochs"), (["--cosine", "--epochs", "3", "--max-minutes", "2"], "--cosine"),
                           (["--train", "train+"], "train+")):
        with pytest.raises(SystemExit) as stopped:
            main(["unet", "--data", str(marked_data), "--out", str(out), "--checkpoints", str(tmp_path / "ck"), *extra])
        assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "ck").exists() and not out.with_suffix(".json").exists()


def test_cosine_rate_of_a_run_spans_all_its_steps():
    from nucleiseg.training import TrainConfig, cosine_rate

    config = TrainConfig(learning_rate=1e-3, epochs=2, steps_per_epoch=2, cosine=True)
    assert [round(config.rate_at(step), 7) for step in range(4)] == [1e-3, 0.0008536, 0.0005, 0.0001464]
    assert cosine_rate(1e-3, 4, 4) == pytest.approx(0.0)
    assert TrainConfig(learning_rate=1e-3, epochs=2, steps_per_epoch=2).rate_at(3) == 1e-3


@pytest.mark.slow
def test_a_run_without_validation_ships_its_last_epoch_trained_on_a_union_of_splits(marked_data, tiny_model, tmp_path,
                                                                                      monkeypatch):
    from nucleiseg import training
    from nucleiseg.training import TrainConfig, train

    card_path, weights = tiny_model
    seen = []
    step = training.loop.train_step
    monkeypatch.setattr(training.loop, "train_step", lambda network, *rest: seen.append(
        float(network.optimizer.learning_rate.numpy())) or step(network, *rest))
    monkeypatch.setattr(training.loop, "validation_scores", lambda *a, **k: pytest.fail("a run without validation scored"))
    config = TrainConfig(network="unet", base_filters=2, data=str(marked_data), crop=48, batch_size=2,
                         steps_per_epoch=2, epochs=2, learning_rate=1e-3, train_split="train+val+test",
                         val_split="none", cosine=True, init_from=str(card_path))
    card = json.loads(train(config, tmp_path / "all", tmp_path / "ck").read_text())
    assert np.allclose(seen, [config.rate_at(i) for i in range(4)], rtol=1e-5)
    record = card["training"]
    assert record["split"] == "train+val+test" and record["images"] == 12
    assert record["best_epoch"] == 2 and record["epochs"] == 2 and "cosine" in record["learning_rate_schedule"]
    assert "initial_weights" in record and "validation" not in record["initial_weights"]
    assert card["validation"]["split"].startswith("none") and "during_training" not in card["validation"]
    assert [set(h) for h in card["history"]] == [{"epoch", "steps", "loss", "seconds"}] * 2
    # The shipped weights are the last epoch's.
    last = keras.models.load_model(tmp_path / "ck" / "last.keras", custom_objects=model_types.custom_objects())
    shipped = build_unet(2)
    shipped.load_weights(tmp_path / card["weights"])
    assert all(np.allclose(np.asarray(a), np.asarray(b)) for a, b in zip(last.weights, shipped.weights))
    cards.clear_cache()


def test_export_last_writes_the_last_epoch_of_a_validated_run_without_training_again(marked_data, tmp_path, monkeypatch):
    """A finished run exported again with ``export_last``: the last epoch, though validation liked the first best."""
    from nucleiseg import training
    from nucleiseg.training import TrainConfig, train

    falling = iter([0.5, 0.4, 0.3])
    monkeypatch.setattr(training.loop, "validation_scores", lambda *a, **k: {
        "f1_mean": next(falling), "error_rate_070": 0.2, "images": 1})
    config = TrainConfig(network="unet", base_filters=2, data=str(marked_data), crop=48, batch_size=1,
                         steps_per_epoch=1, epochs=3, learning_rate=1e-2, val_images=1)
    best = json.loads(train(config, tmp_path / "best", tmp_path / "ck").read_text())
    assert best["training"]["best_epoch"] == 1
    monkeypatch.setattr(training.loop, "train_step", lambda *a, **k: pytest.fail("a finished run trained again"))
    last = json.loads(train(config, tmp_path / "last", tmp_path / "ck", export_last=True).read_text())
    assert last["validation"]["during_training"]["epoch"] == 3 and last["validation"]["during_training"]["f1_mean"] == 0.3
    assert last["training"]["weights"].startswith("epoch 3, the last") and "epoch 1" in last["training"]["weights"]
    saved = keras.models.load_model(tmp_path / "ck" / "last.keras", custom_objects=model_types.custom_objects())
    shipped, first = build_unet(2), build_unet(2)
    shipped.load_weights(tmp_path / last["weights"])
    first.load_weights(tmp_path / best["weights"])
    assert all(np.allclose(np.asarray(a), np.asarray(b)) for a, b in zip(saved.weights, shipped.weights))
    assert not all(np.allclose(np.asarray(a), np.asarray(b)) for a, b in zip(saved.weights, first.weights))
    cards.clear_cache()


def test_snapshot_export_writes_an_ensemble_of_the_best_epochs(tmp_path):
    """The best ``snapshots`` epochs become members; each member card names its ensemble."""
    from nucleiseg.training import TrainConfig, export

    data = tmp_path / "data"
    synthetic.generate(data, n=3, size=64)
    checkpoints = tmp_path / "ck"
    checkpoints.mkdir()
    network = build_unet(2)
    for epoch in (1, 2, 3):  # each epoch's weights differ, as in a real run
        network.set_weights([w + np.random.default_rng(epoch).normal(0, 0.3, w.shape).astype(w.dtype) if w.ndim == 4 else w
                             for w in network.get_weights()])
        network.save_weights(checkpoints / f"epoch{epoch:04d}.weights.h5")
    history = [{"epoch": e, "steps": e, "f1_mean": f1} for e, f1 in ((1, 0.2), (2, 0.6), (3, 0.4))]
    state = {"epoch": 3, "best_epoch": 1, "best_f1": 0.6, "seconds": 1.0, "history": history}
    config = TrainConfig(network="unet", base_filters=2, data=str(data), steps_per_epoch=1, snapshots=2)
    card_path = export(config, checkpoints, tmp_path / "models" / "ens", state)
    card = json.loads(card_path.read_text())
    assert card["members"] == ["ens-1.json", "ens-2.json"]
    members = cards.member_cards(card_path)
    # Epochs 2 and 3 scored best; members keep epoch order.
    assert [c["validation"]["during_training"]["epoch"] for _, c in members] == [2, 3]
    assert all(c["member_of"]["ensemble"] == "ens.json" for _, c in members)
    cards.clear_cache()
    ensemble = cards.load(card_path)
    assert len(ensemble.networks) == 2
    image, _ = synthetic.generate_one(1, size=64)
    averaged = predict_probabilities(image, ensemble)
    apart = [predict_probabilities(image, cards.load(path)) for path, _ in members]
    np.testing.assert_allclose(averaged, (apart[0] + apart[1]) / 2, atol=1e-5)
    assert np.abs(averaged - apart[0]).max() > 1e-3  # averaging is told apart from member 1
    cards.clear_cache()


def _tiny_member(folder, name, seed, normalization=None):
    keras.utils.set_random_seed(seed)
    network = build_unet(2)
    weights = folder / f"{name}.weights.h5"
    network.save_weights(weights)
    card = {"architecture": {"name": "unet", "base_filters": 2, "n_classes": 3},
            "normalization": normalization or {"method": "percentile", "low": 1, "high": 99},
            "postprocess": {"dilation": 3}, "training": {"seed": seed, "steps": 10}}
    return cards.write_card(card, weights)


def test_ensemble_of_separately_trained_networks_averages_them(tmp_path, capsys):
    from nucleiseg.ensemble import main

    a, b = _tiny_member(tmp_path, "a", 1), _tiny_member(tmp_path, "b", 2)
    out = tmp_path / "ensembles" / "ab.json"
    assert main([str(out), str(a), str(b)]) == 0
    card = json.loads(out.read_text())
    assert card["members"] == ["../a.json", "../b.json"]
    assert card["postprocess"] == {"dilation": 3} and [m["seed"] for m in card["training"]["members"]] == [1, 2]
    cards.clear_cache()
    image, _ = synthetic.generate_one(2, size=64)
    averaged = predict_probabilities(image, cards.load(out))
    single = [predict_probabilities(image, cards.load(path)) for path in (a, b)]
    np.testing.assert_allclose(averaged, (single[0] + single[1]) / 2, atol=1e-5)
    assert not np.allclose(single[0], single[1])  # the average is not a copy of one member
    cards.clear_cache()
    # Refusals name what is wrong and write nothing.
    with pytest.raises(SystemExit):
        main([str(out), str(a), str(b)])
    assert "exists" in capsys.readouterr().err
    odd = _tiny_member(tmp_path, "odd", 3, normalization={"method": "deepcell", "window": 61})
    with pytest.raises(SystemExit):
        main([str(tmp_path / "bad.json"), str(a), str(odd)])
    assert "odd.json" in capsys.readouterr().err and not (tmp_path / "bad.json").exists()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nested.json"), str(out), str(a)])
    assert "itself an ensemble" in capsys.readouterr().err


def test_ensemble_card_with_disagreeing_members_is_refused_on_load(tmp_path):
    a = _tiny_member(tmp_path, "a", 1)
    odd = _tiny_member(tmp_path, "odd", 3, normalization={"method": "deepcell", "window": 61})
    (tmp_path / "mixed.json").write_text(json.dumps({"members": ["a.json", "odd.json"]}))
    with pytest.raises(cards.ModelError, match="normalization"):
        cards.load(tmp_path / "mixed.json")

"""Tests of nucleiseg.metric: hand-built cases with exact numbers, a brute-force reference and
hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nucleiseg import metric
from nucleiseg.metric import (
    DEFAULT_THRESHOLDS,
    OUTCOME_CODES,
    aggregate_macro,
    aggregate_micro,
    compute_overlap,
    metric_keys,
    outcome_image,
    parse_thresholds,
    score_image,
)
from nucleiseg.metric.image_scores import rates_from_counts

T = DEFAULT_THRESHOLDS


def square(shape, top, left, height, width, label, out=None):
    """Paint a rectangle of ``label`` into ``out`` (a new zero image when None)."""
    out = np.zeros(shape, np.int32) if out is None else out
    out[top : top + height, left : left + width] = label
    return out


def mixed_case():
    """Four 10x10 ground-truth squares and five predictions with IoU 1, 0.8, 0.6, 1/3 and a spurious one.

    Expected matches: IoU 1 for t < 1, IoU 0.8 for t < 0.8, IoU 0.6 for t < 0.6 (a match needs
    IoU strictly above t), never IoU 1/3.
    """
    shape = (40, 80)
    gt = np.zeros(shape, np.int32)
    pred = np.zeros(shape, np.int32)
    square(shape, 0, 0, 10, 10, 1, gt)
    square(shape, 0, 0, 10, 10, 1, pred)  # IoU 1
    square(shape, 0, 20, 10, 10, 2, gt)
    square(shape, 0, 20, 10, 8, 2, pred)  # 80 / 100
    square(shape, 0, 40, 10, 10, 3, gt)
    square(shape, 0, 40, 10, 6, 3, pred)  # 60 / 100
    square(shape, 20, 0, 10, 10, 4, gt)
    square(shape, 20, 5, 10, 10, 4, pred)  # 50 / 150
    square(shape, 25, 60, 5, 5, 5, pred)  # false positive, no ground truth there
    return gt, pred


def brute_force(gt, pred, thresholds=T, merge_iou=0.1):
    """Reference by dense loops over all label pairs (fine for tiny images)."""
    gl = [v for v in np.unique(gt) if v != 0]
    pl = [v for v in np.unique(pred) if v != 0]
    iou = np.zeros((len(gl), len(pl)))
    for i, a in enumerate(gl):
        for j, b in enumerate(pl):
            inter = np.logical_and(gt == a, pred == b).sum()
            union = np.logical_or(gt == a, pred == b).sum()
            iou[i, j] = inter / union if union else 0.0
    tp = np.array([(iou > t).sum() for t in thresholds])
    strong = iou >= merge_iou
    merges = int((strong.sum(axis=0) > 1).sum()) if iou.size else 0
    splits = int((strong.sum(axis=1) > 1).sum()) if iou.size else 0
    return tp, len(gl), len(pl), merges, splits


# --------------------------------------------------------------------------- exact cases


def test_mixed_case_exact_numbers():
    gt, pred = mixed_case()
    s = score_image(gt, pred)
    assert s.nuclei == 4 and s.predicted == 5
    expected_tp = [3, 3, 2, 2, 2, 2, 1, 1, 1, 1]  # 0.60 and 0.80 are not matched: IoU must exceed t
    assert s.tp.tolist() == expected_tp
    assert s.fp.tolist() == [5 - x for x in expected_tp]
    assert s.fn.tolist() == [4 - x for x in expected_tp]
    # F1 = 2TP / (2TP + FP + FN) = 2TP / 9 here.
    np.testing.assert_allclose(s.f1, [2 * x / 9 for x in expected_tp])
    np.testing.assert_allclose(s.precision, [x / 5 for x in expected_tp])
    np.testing.assert_allclose(s.recall, [x / 4 for x in expected_tp])
    assert s.f1_mean == pytest.approx(0.4)
    assert s.mean_iou_050 == pytest.approx((1.0 + 0.8 + 0.6) / 3)
    # Missed at IoU 0.7: the IoU-0.6 and IoU-1/3 squares, both 100 px, hence tiny.
    assert s.missed_by_size == {"tiny": 2, "small": 0, "normal": 0, "large": 0}
    assert s.error_rate_070 == pytest.approx(0.5)
    assert s.merges == 0 and s.splits == 0


def test_metric_keys_are_the_convention_names():
    assert metric_keys((0.5, 0.75)) == [
        "f1_mean", "f1_050", "f1_075", "precision_050", "precision_075", "recall_050", "recall_075",
        "tp_050", "tp_075", "fp_050", "fp_075", "fn_050", "fn_075",
        "mean_iou_050", "nuclei", "predicted", "error_rate_070",
        "missed_tiny", "missed_small", "missed_normal", "missed_large", "merges", "splits",
    ]


def test_is_count_key_marks_exactly_the_counts():
    counts = [key for key in metric_keys((0.5, 0.75)) if metric.is_count_key(key)]
    assert counts == ["tp_050", "tp_075", "fp_050", "fp_075", "fn_050", "fn_075", "nuclei", "predicted",
                      "missed_tiny", "missed_small", "missed_normal", "missed_large", "merges", "splits"]


@pytest.mark.parametrize("threshold, key", [(0.5, "050"), (0.55, "055"), (0.95, "095"), (1.0, "100")])
def test_threshold_key(threshold, key):
    assert metric.threshold_key(threshold) == key


def test_threshold_key_refuses_a_third_decimal():
    with pytest.raises(ValueError, match="two decimals"):
        metric.threshold_key(0.505)


def test_to_dict_has_the_convention_keys_in_order():
    gt, pred = mixed_case()
    d = score_image(gt, pred).to_dict()
    assert list(d) == metric_keys(T)
    assert d["tp_050"] == 3 and isinstance(d["tp_050"], int)
    assert d["f1_080"] == pytest.approx(2 / 9) and isinstance(d["f1_080"], float)
    assert d["missed_tiny"] == 2


def test_identical_squares_score_one():
    gt = square((20, 20), 2, 2, 8, 8, 1)
    s = score_image(gt, gt.copy())
    assert s.f1.tolist() == [1.0] * 10
    assert s.mean_iou_050 == 1.0
    assert s.error_rate_070 == 0.0


def test_half_overlap_is_no_match():
    # Shifted by half its width: 50 px shared of 150 px union -> IoU 1/3.
    gt = square((20, 30), 0, 0, 10, 10, 1)
    pred = square((20, 30), 0, 5, 10, 10, 1)
    ov = compute_overlap(gt, pred)
    assert ov.pair_iou.tolist() == pytest.approx([1 / 3])
    assert ov.pair_intersection.tolist() == [50]
    s = score_image(gt, pred)
    assert s.tp.sum() == 0 and s.fp.tolist() == [1] * 10 and s.fn.tolist() == [1] * 10
    assert s.f1.tolist() == [0.0] * 10
    assert math.isnan(s.mean_iou_050)


def test_iou_exactly_half_is_not_matched_at_050():
    # 10x10 prediction inside a 10x20 nucleus: IoU exactly 0.5.
    gt = square((10, 30), 0, 0, 10, 20, 1)
    pred = square((10, 30), 0, 0, 10, 10, 1)
    s = score_image(gt, pred, thresholds=[0.5])
    assert s.tp.tolist() == [0]


def test_merge():
    # Two touching 10x10 nuclei covered by one 10x20 prediction: IoU 0.5 with each.
    gt = square((10, 30), 0, 0, 10, 10, 1)
    square((10, 30), 0, 10, 10, 10, 2, gt)
    pred = square((10, 30), 0, 0, 10, 20, 9)
    s = score_image(gt, pred)
    assert s.merges == 1 and s.splits == 0
    assert s.tp[0] == 0 and s.fp[0] == 1 and s.fn[0] == 2
    m = s.matches(0.5)
    assert m.merged_pred.tolist() == [9]
    assert m.split_gt.tolist() == []
    assert sorted(m.missed_gt.tolist()) == [1, 2]


def test_split():
    gt = square((10, 30), 0, 0, 10, 20, 3)
    pred = square((10, 30), 0, 0, 10, 10, 1)
    square((10, 30), 0, 10, 10, 10, 2, pred)
    s = score_image(gt, pred)
    assert s.splits == 1 and s.merges == 0
    assert s.matches().split_gt.tolist() == [3]


def test_merge_iou_is_configurable():
    # A 20x20 nucleus and a 4x4 one both inside a 24x20 prediction: the small one's IoU is 16/480.
    shape = (30, 30)
    gt = square(shape, 0, 0, 20, 20, 1)
    square(shape, 20, 0, 4, 4, 2, gt)
    pred = square(shape, 0, 0, 24, 20, 1)
    iou_small = 16 / 480
    assert score_image(gt, pred).merges == 0  # below the default 0.1
    assert score_image(gt, pred, merge_iou=iou_small - 1e-3).merges == 1
    assert score_image(gt, pred, merge_iou=iou_small + 1e-3).merges == 0


def test_both_empty_scores_one():
    empty = np.zeros((16, 16), np.uint16)
    s = score_image(empty, empty)
    assert s.f1.tolist() == [1.0] * 10
    assert s.precision.tolist() == [1.0] * 10 and s.recall.tolist() == [1.0] * 10
    assert s.f1_mean == 1.0
    assert s.nuclei == 0 and s.predicted == 0
    assert s.error_rate_070 == 0.0
    assert math.isnan(s.mean_iou_050)


def test_empty_prediction_scores_zero():
    gt = square((16, 16), 2, 2, 5, 5, 1)
    square((16, 16), 9, 9, 5, 5, 2, gt)
    s = score_image(gt, np.zeros_like(gt))
    assert s.f1.tolist() == [0.0] * 10
    assert s.precision.tolist() == [0.0] * 10 and s.recall.tolist() == [0.0] * 10
    assert s.fn.tolist() == [2] * 10 and s.fp.tolist() == [0] * 10
    assert s.error_rate_070 == 1.0 and s.missed_by_size["tiny"] == 2


def test_empty_ground_truth_scores_zero():
    pred = square((16, 16), 2, 2, 5, 5, 4)
    s = score_image(np.zeros_like(pred), pred)
    assert s.f1.tolist() == [0.0] * 10
    assert s.fp.tolist() == [1] * 10 and s.fn.tolist() == [0] * 10
    assert s.error_rate_070 == 0.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.int64, np.uint32, np.uint64])
def test_integer_dtypes_give_the_same_scores(dtype):
    gt, pred = mixed_case()
    expected = score_image(gt, pred).to_dict()
    got = score_image(gt.astype(dtype), pred.astype(dtype)).to_dict()
    assert got == pytest.approx(expected, nan_ok=True)


def test_non_consecutive_and_huge_labels():
    gt, pred = mixed_case()
    expected = score_image(gt, pred).to_dict()
    gt_map = np.array([0, 7, 1000, 65535, 3], np.int64)
    pred_map = np.array([0, 2**40, 5, 2**62, 11, 12], np.int64)
    s = score_image(gt_map[gt], pred_map[pred])
    assert s.to_dict() == pytest.approx(expected, nan_ok=True)
    # Per-object results speak in the caller's labels.
    m = s.matches(0.5)
    assert sorted(zip(m.matched_gt.tolist(), m.matched_pred.tolist())) == [(7, 2**40), (1000, 5), (65535, 2**62)]
    assert m.missed_gt.tolist() == [3]
    assert sorted(m.false_positive_pred.tolist()) == [11, 12]


def test_uint64_labels_above_int64_range():
    gt = square((10, 10), 0, 0, 5, 5, 1).astype(np.uint64) * np.uint64(2**63 + 5)
    s = score_image(gt, gt)
    assert s.f1.tolist() == [1.0] * 10
    assert s.overlap.gt_labels.size == 1 and s.overlap.gt_areas.tolist() == [25]


def test_size_bins_edges():
    # Missed nuclei (empty prediction) with areas right at the bin edges.
    areas = [249, 250, 624, 625, 899, 900]
    gt = np.zeros((40, 1000), np.int32)
    for i, area in enumerate(areas):
        gt[i * 2, :area] = i + 1  # one-pixel-high rows, area pixels long
    s = score_image(gt, np.zeros_like(gt))
    assert s.missed_by_size == {"tiny": 1, "small": 2, "normal": 2, "large": 1}
    s = score_image(gt, np.zeros_like(gt), size_edges=(100, 200, 300))
    assert s.missed_by_size == {"tiny": 0, "small": 0, "normal": 2, "large": 4}


def test_custom_thresholds_and_keys():
    gt, pred = mixed_case()
    s = score_image(gt, pred, thresholds=[0.5, 0.75, 0.9])
    d = s.to_dict()
    assert s.tp.tolist() == [3, 2, 1]
    assert "f1_075" in d and "f1_055" not in d
    assert d["f1_mean"] == pytest.approx((6 / 9 + 4 / 9 + 2 / 9) / 3)


@pytest.mark.parametrize(
    "thresholds, message",
    [([0.3, 0.5], "below 0.5"), ([0.49], "below 0.5"), ([0.555], "two decimals"), ([], "at least one"),
     ([0.5, 0.5], "distinct"), ([1.2], "above 1"), ([float("nan")], "finite")],
)
def test_bad_thresholds_are_rejected(thresholds, message):
    gt, pred = mixed_case()
    with pytest.raises(ValueError, match=message):
        score_image(gt, pred, thresholds=thresholds)


def test_parse_thresholds():
    assert parse_thresholds("0.5, 0.75,0.9") == (0.5, 0.75, 0.9)
    assert parse_thresholds("0.5 0.6") == (0.5, 0.6)
    with pytest.raises(ValueError, match="numbers"):
        parse_thresholds("0.5, high")


def test_parse_size_edges():
    assert metric.parse_size_edges("250, 625,900") == (250.0, 625.0, 900.0)
    with pytest.raises(ValueError, match="numbers"):
        metric.parse_size_edges("250, big, 900")
    with pytest.raises(ValueError, match="three"):
        metric.parse_size_edges("250 625")


def test_bad_inputs_are_rejected():
    gt, pred = mixed_case()
    with pytest.raises(ValueError, match="shapes differ"):
        score_image(gt, pred[:, :-1])
    with pytest.raises(ValueError, match="integer"):
        score_image(gt.astype(float), pred)
    with pytest.raises(ValueError, match="2-D"):
        score_image(gt[None], pred[None])
    with pytest.raises(ValueError, match="negative"):
        score_image(-gt, pred)
    with pytest.raises(ValueError, match="size-bin edges"):
        score_image(gt, pred, size_edges=(250, 100, 900))
    with pytest.raises(ValueError, match="merge"):
        score_image(gt, pred, merge_iou=0)


def test_matches_lists_objects_by_outcome():
    gt, pred = mixed_case()
    s = score_image(gt, pred)
    m = s.matches(0.7)
    assert sorted(zip(m.matched_gt.tolist(), m.matched_pred.tolist())) == [(1, 1), (2, 2)]
    assert sorted(m.matched_iou.tolist()) == pytest.approx([0.8, 1.0])
    assert sorted(m.missed_gt.tolist()) == [3, 4]
    assert sorted(m.false_positive_pred.tolist()) == [3, 4, 5]
    with pytest.raises(ValueError, match="below 0.5"):
        s.matches(0.2)


def test_outcome_image_codes():
    gt = square((10, 30), 0, 0, 10, 10, 1)
    square((10, 30), 0, 10, 10, 10, 2, gt)
    square((10, 30), 0, 20, 10, 10, 3, gt)
    pred = square((10, 30), 0, 0, 10, 20, 5)  # merges 1 and 2
    square((10, 30), 0, 20, 10, 10, 6, pred)  # matches 3
    s = score_image(gt, pred)
    m = s.matches(0.5)
    missed, matched, merged = OUTCOME_CODES["missed"], OUTCOME_CODES["matched"], OUTCOME_CODES["merged"]
    expected_gt = np.repeat(np.array([[missed] * 20 + [matched] * 10], np.uint8), 10, axis=0)
    expected_pred = np.repeat(np.array([[merged] * 20 + [matched] * 10], np.uint8), 10, axis=0)
    np.testing.assert_array_equal(outcome_image(gt, m, "gt"), expected_gt)
    np.testing.assert_array_equal(outcome_image(pred, m, "pred"), expected_pred)
    with pytest.raises(ValueError, match="role"):
        outcome_image(gt, m, "both")


def test_outcome_image_codes_split_false_positive_and_background():
    # Nucleus 1 split in two halves; nucleus 2 untouched; prediction 7 where there is no nucleus.
    gt = square((10, 40), 0, 0, 10, 20, 1)
    square((10, 40), 0, 20, 5, 5, 2, gt)
    pred = square((10, 40), 0, 0, 10, 10, 3)
    square((10, 40), 0, 10, 10, 10, 4, pred)
    square((10, 40), 0, 30, 5, 5, 7, pred)
    m = score_image(gt, pred).matches(0.5)
    gt_codes = outcome_image(gt, m, "gt")
    pred_codes = outcome_image(pred, m, "pred")
    assert (gt_codes[gt == 1] == OUTCOME_CODES["split"]).all()  # a split nucleus is also missed; split wins
    assert (gt_codes[gt == 2] == OUTCOME_CODES["missed"]).all()
    assert (gt_codes[gt == 0] == OUTCOME_CODES["background"]).all()
    assert (pred_codes[pred == 7] == OUTCOME_CODES["false_positive"]).all()
    assert (pred_codes[(pred == 3) | (pred == 4)] == OUTCOME_CODES["false_positive"]).all()
    assert (pred_codes[pred == 0] == OUTCOME_CODES["background"]).all()


def test_outcome_image_with_huge_labels_matches_small_labels():
    # Labels far above the image size take the isin path instead of the lookup table.
    gt, pred = mixed_case()
    m = score_image(gt, pred).matches(0.7)
    gt_map = np.array([0, 2**40, 5, 2**50, 9], np.int64)
    pred_map = np.array([0, 2**41, 6, 2**51, 10, 2**52], np.int64)
    m_big = score_image(gt_map[gt], pred_map[pred]).matches(0.7)
    np.testing.assert_array_equal(outcome_image(gt_map[gt], m_big, "gt"), outcome_image(gt, m, "gt"))
    np.testing.assert_array_equal(outcome_image(pred_map[pred], m_big, "pred"), outcome_image(pred, m, "pred"))
    assert outcome_image(np.zeros((0, 0), np.int32), m, "gt").shape == (0, 0)


def test_aggregate_macro_and_micro_differ_as_expected():
    gt = square((20, 20), 1, 1, 5, 5, 1)
    square((20, 20), 10, 10, 5, 5, 2, gt)
    perfect = score_image(gt, gt)
    nothing = score_image(gt, np.zeros_like(gt))
    macro = aggregate_macro([perfect, nothing])
    micro = aggregate_micro([perfect, nothing])
    assert macro["images"] == micro["images"] == 2
    assert macro["f1_050"] == pytest.approx(0.5)  # mean of 1 and 0
    assert micro["f1_050"] == pytest.approx(4 / 6)  # TP 2, FP 0, FN 2
    assert micro["precision_050"] == pytest.approx(1.0) and micro["recall_050"] == pytest.approx(0.5)
    assert macro["precision_050"] == pytest.approx(0.5)
    assert micro["f1_mean"] == pytest.approx(4 / 6)
    for agg in (macro, micro):
        assert agg["tp_050"] == 2 and agg["fn_050"] == 2 and agg["nuclei"] == 4 and agg["missed_tiny"] == 2
    assert micro["error_rate_070"] == pytest.approx(0.5)
    assert micro["mean_iou_050"] == pytest.approx(1.0) and macro["mean_iou_050"] == pytest.approx(1.0)
    # The same from the flat dictionaries.
    assert aggregate_micro([perfect.to_dict(), nothing.to_dict()]) == pytest.approx(micro)
    assert aggregate_macro([]) == {"images": 0}


@pytest.mark.parametrize(
    "tp, fp, fn, precision, recall, f1",
    [(0, 0, 0, 1.0, 1.0, 1.0),  # both images empty
     (0, 3, 0, 0.0, 0.0, 0.0),  # no ground truth, only false positives
     (0, 0, 2, 0.0, 0.0, 0.0),  # nothing predicted
     (2, 1, 3, 2 / 3, 2 / 5, 4 / 8)],
)
def test_rates_from_counts(tp, fp, fn, precision, recall, f1):
    got = rates_from_counts(np.array([tp]), np.array([fp]), np.array([fn]))
    assert [float(x[0]) for x in got] == pytest.approx([precision, recall, f1])


def test_micro_aggregate_of_empty_images_follows_the_empty_conventions():
    empty = np.zeros((8, 8), np.int32)
    pred = square((8, 8), 0, 0, 3, 3, 1)
    assert aggregate_micro([score_image(empty, empty)] * 2)["f1_050"] == 1.0
    assert aggregate_micro([score_image(empty, empty), score_image(empty, pred)])["precision_050"] == 0.0


def test_aggregate_rejects_mixed_thresholds():
    gt = square((20, 20), 1, 1, 5, 5, 1)
    with pytest.raises(ValueError, match="different thresholds"):
        aggregate_micro([score_image(gt, gt), score_image(gt, gt, thresholds=[0.5])])


def test_overlap_is_sparse_for_many_objects():
    # 2500 one-pixel objects each: a dense 2500 x 2500 matrix would be needed by a dense method,
    # the sparse pair list holds just the 2500 diagonal pairs.
    gt = np.arange(1, 2501, dtype=np.int32).reshape(50, 50)
    ov = compute_overlap(gt, gt)
    assert ov.pair_iou.size == 2500
    assert score_image(gt, gt).f1_mean == 1.0


def test_public_names_are_importable_from_the_package():
    assert [name for name in metric.__all__ if not hasattr(metric, name)] == []
    # The CellProfiler module, the evaluation CLI and the benchmark import these from here.
    for name in ("score_image", "aggregate_macro", "aggregate_micro", "outcome_image", "OUTCOME_COLOURS",
                 "parse_thresholds", "parse_size_edges", "metric_keys", "is_count_key", "threshold_key"):
        assert name in metric.__all__, name


# --------------------------------------------------------------------------- reference & properties

labels_strategy = arrays(np.int32, st.tuples(st.integers(1, 14), st.integers(1, 14)), elements=st.integers(0, 5))


@settings(max_examples=60, deadline=None)
@given(gt=labels_strategy, data=st.data())
def test_matches_brute_force_reference(gt, data):
    pred = data.draw(arrays(np.int32, gt.shape, elements=st.integers(0, 5)))
    s = score_image(gt, pred)
    tp, n_gt, n_pred, merges, splits = brute_force(gt, pred)
    assert s.tp.tolist() == tp.tolist()
    assert (s.nuclei, s.predicted, s.merges, s.splits) == (n_gt, n_pred, merges, splits)


@settings(max_examples=50, deadline=None)
@given(gt=labels_strategy, data=st.data())
def test_relabelling_never_changes_scores(gt, data):
    pred = data.draw(arrays(np.int32, gt.shape, elements=st.integers(0, 5)))
    perm_gt = np.concatenate(([0], data.draw(st.permutations(range(1, 6))))) * 37
    perm_pred = np.concatenate(([0], data.draw(st.permutations(range(1, 6))))) + 1000
    perm_pred[0] = 0
    a = score_image(gt, pred).to_dict()
    b = score_image(perm_gt[gt], perm_pred[pred]).to_dict()
    assert a == pytest.approx(b, nan_ok=True)


@settings(max_examples=50, deadline=None)
@given(gt=labels_strategy)
def test_identical_inputs_score_one(gt):
    s = score_image(gt, gt.copy())
    assert s.f1.tolist() == [1.0] * 10
    assert s.fp.sum() == 0 and s.fn.sum() == 0 and s.merges == 0 and s.splits == 0


@settings(max_examples=50, deadline=None)
@given(gt=labels_strategy, data=st.data())
def test_swapping_roles_swaps_fp_and_fn(gt, data):
    pred = data.draw(arrays(np.int32, gt.shape, elements=st.integers(0, 5)))
    a = score_image(gt, pred)
    b = score_image(pred, gt)
    assert a.fp.tolist() == b.fn.tolist() and a.fn.tolist() == b.fp.tolist()
    assert a.tp.tolist() == b.tp.tolist()
    np.testing.assert_allclose(a.f1, b.f1)
    np.testing.assert_allclose(a.precision, b.recall)
    assert (a.merges, a.splits) == (b.splits, b.merges)


def test_agrees_with_brute_force_on_a_realistic_pair():
    # Overlapping discs of varied size shifted and resized a little.
    rng = np.random.default_rng(3)
    shape = (60, 80)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    gt = np.zeros(shape, np.int32)
    pred = np.zeros(shape, np.int32)
    for label in range(1, 25):
        cy, cx, r = rng.uniform(0, 60), rng.uniform(0, 80), rng.uniform(2, 7)
        gt[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = label
        dy, dx, dr = rng.normal(0, 1, 3)
        pred[(yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= (r + dr) ** 2] = label * 3
    s = score_image(gt, pred)
    tp, n_gt, n_pred, merges, splits = brute_force(gt, pred)
    assert s.tp.tolist() == tp.tolist()
    assert (s.nuclei, s.predicted, s.merges, s.splits) == (n_gt, n_pred, merges, splits)
    # Pinned, so that the case stays neither trivial nor hopeless: matches thin out with t.
    assert s.tp.tolist() == [15, 11, 9, 6, 4, 3, 1, 0, 0, 0]
    assert (s.nuclei, s.merges, s.splits) == (24, 3, 3)


def test_missed_nuclei_are_put_down_to_one_cause_each_and_causes_add_up_to_the_missed_counts():
    from nucleiseg.metric import MISSED_CAUSES, missed_cause_figures, missed_causes

    gt = np.zeros((60, 80), np.int32)
    pred = np.zeros_like(gt)
    gt[2:7, 2:7] = 1                      # tiny, nothing predicted: not found
    gt[10:30, 2:17], gt[10:30, 17:32] = 2, 3  # two small neighbours predicted as one object: both merged
    pred[10:30, 2:32] = 1
    gt[35:55, 2:22] = 4                   # one nucleus predicted as two halves: split
    pred[35:55, 2:12], pred[35:55, 12:22] = 2, 3
    gt[30:36, 40:46] = 5                  # tiny, predicted twice as wide: too large
    pred[30:36, 37:49] = 4
    gt[2:22, 40:60] = 6                   # predicted as a smaller square inside it: too small
    pred[5:19, 43:57] = 5
    gt[45:55, 60:70] = 7                  # exact: not missed
    pred[45:55, 60:70] = 6
    scores = metric.score_image(gt, pred)
    table = missed_causes(scores)
    assert table["tiny"] == {"not_found": 1, "merged": 0, "split": 0, "too_large": 1, "too_small": 0}
    assert table["small"] == {"not_found": 0, "merged": 2, "split": 1, "too_large": 0, "too_small": 1}
    assert sum(table["normal"].values()) == sum(table["large"].values()) == 0
    for size, count in scores.missed_by_size.items():
        assert sum(table[size].values()) == count
    flat = missed_cause_figures(scores)
    assert flat["missed_merged"] == 2 and flat["missed_tiny_not_found"] == 1
    assert sum(flat[f"missed_{c}"] for c in MISSED_CAUSES) == sum(scores.missed_by_size.values()) == 6
    # At a looser threshold the too-small square (IoU 0.49) stays missed, the too-large one (0.5) too.
    assert sum(sum(v.values()) for v in missed_causes(scores, 0.5).values()) == 6
    assert all(metric.is_count_key(key) for key in flat) and list(flat) == metric.missed_cause_keys()
    # One image's table row: the scores, then the causes (what per_image.csv and `conditions` carry).
    row = metric.image_figures(scores)
    assert list(row) == list(scores.to_dict()) + metric.missed_cause_keys() + [metric.AREA_RATIO_KEY]
    assert list(row) == metric.image_figure_keys()
    assert row["f1_mean"] == scores.f1_mean and row["missed_merged"] == 2


def test_area_ratio_is_the_median_size_of_matched_outlines_against_the_truth():
    from nucleiseg.metric import AREA_RATIO_KEY, aggregate_macro, aggregate_micro, area_ratio

    gt = np.zeros((40, 100), np.int32)
    pred = np.zeros_like(gt)
    gt[5:15, 5:15], pred[5:15, 5:15] = 1, 1            # exact: 100 / 100
    gt[5:15, 25:35], pred[4:16, 24:36] = 2, 2          # drawn larger: 144 / 100 (IoU 0.69)
    gt[5:15, 45:55], pred[5:15, 45:53] = 3, 3          # drawn smaller: 80 / 100 (IoU 0.8)
    gt[25:35, 5:15], pred[25:35, 5:8] = 4, 4           # too small to match at 0.5: not counted
    scores = metric.score_image(gt, pred)
    assert area_ratio(scores) == pytest.approx(1.0)    # median of 1.0, 1.44, 0.8
    assert metric.image_figures(scores)[AREA_RATIO_KEY] == pytest.approx(1.0)
    bigger = np.where(pred == 3, 0, pred)
    bigger[4:16, 44:56] = 3                            # now two of three drawn larger
    assert area_ratio(metric.score_image(gt, bigger)) == pytest.approx(1.44)
    # Swapping truth and prediction inverts the ratio: the figure says which way outlines are off.
    assert area_ratio(metric.score_image(bigger, gt)) == pytest.approx(1 / 1.44)
    # No match: NaN, left out of the mean over images; pooled, images weigh by their matches.
    none = metric.score_image(gt, np.zeros_like(gt))
    assert np.isnan(area_ratio(none))
    rows = [metric.image_figures(s) for s in (scores, metric.score_image(gt, bigger), none)]
    assert aggregate_macro(rows)[AREA_RATIO_KEY] == pytest.approx((1.0 + 1.44) / 2)
    assert aggregate_micro(rows)[AREA_RATIO_KEY] == pytest.approx((1.0 * 3 + 1.44 * 3) / 6)
    assert np.isnan(aggregate_macro([rows[2]])[AREA_RATIO_KEY]) and np.isnan(aggregate_micro([rows[2]])[AREA_RATIO_KEY])

"""bench.metrics against hand-computed values and pysot's edge cases (reference-tracker.md section 11).

Tolerances: values are ratios of small integers, so 1e-12 only absorbs float rounding.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench import metrics as m

TOL = 1e-12


def test_iou_uses_x_plus_w_without_minus_one():
    # [0,10) and [5,15) overlap on 5 px: inter 50, union 100 + 100 - 50
    assert m.iou_xywh(np.array([[0, 0, 10, 10.]]), np.array([[5, 0, 10, 10.]]))[0] == pytest.approx(1 / 3, abs=TOL)


def test_success_is_strict_greater_than_threshold():
    gt, pred = np.array([[0, 0, 10, 10.]]), np.array([[0, 0, 5, 10.]])   # IoU exactly 0.5
    curve = m.success_curve(gt, pred)
    assert curve[10] == 0.0          # threshold 0.50: 0.5 > 0.5 is false
    assert curve[9] == 1.0           # threshold 0.45
    assert m.ope_scores(gt, pred).auc == pytest.approx(10 / 21, abs=TOL)   # thresholds 0.00..0.45 hit


def test_perfect_box_misses_only_threshold_one():
    gt = np.array([[3, 4, 20, 30.]])
    assert m.ope_scores(gt, gt).auc == pytest.approx(20 / 21, abs=TOL)    # IoU 1 > 1.0 is false


def test_precision_counts_distance_equal_to_threshold():
    gt, pred = np.array([[0, 0, 10, 10.]]), np.array([[20, 0, 10, 10.]])  # centres 20 px apart
    curve = m.precision_curve(gt, pred)
    assert curve[20] == 1.0 and curve[19] == 0.0
    assert m.ope_scores(gt, pred).prec20 == 1.0


def test_empty_ground_truth_is_a_success_miss_but_a_precision_hit():
    gt = np.array([[10, 10, 20, 20.], [0, 0, 0, 0.]])          # frame 1: empty box, centre (-0.5, -0.5)
    pred = np.array([[10, 10, 20, 20.], [200, 200, 20, 20.]])
    s = m.ope_scores(gt, pred)
    assert s.success[0] == 0.5                                  # frame 1 counts as IoU -1
    assert np.all(s.precision == 1.0)                           # pysot: centre <= 0 -> distance -1 -> hit


def test_zero_width_ground_truth_with_positive_centre_is_measured():
    gt = np.array([[10, 10, 20, 20.], [50, 50, 0, 10.]])        # w = 0 but centre (49.5, 54.5) > 0
    pred = np.array([[10, 10, 20, 20.], [200, 200, 20, 20.]])
    s = m.ope_scores(gt, pred)
    assert s.success[0] == 0.5 and s.precision[50] == 0.5


def test_nan_ground_truth_row_behaves_like_pysot():
    gt = np.array([[10, 10, 20, 20.], [np.nan] * 4])
    pred = np.array([[10, 10, 20, 20.], [10, 10, 20, 20.]])
    s = m.ope_scores(gt, pred)
    assert s.success[0] == 0.5                                  # NaN > 0 is false -> miss
    assert s.precision[0] == 1.0                                # NaN centre -> hit


def test_lasot_absent_frames_are_dropped_but_still_counted_in_the_denominator():
    gt = np.array([[10, 10, 20, 20.]] * 4)
    pred = np.array([[10, 10, 20, 20.]] * 2 + [[300, 300, 5, 5.]] * 2)
    absent = np.array([False, False, True, True])
    s = m.ope_scores(gt, pred, absent)
    assert s.auc == pytest.approx(0.5 * 20 / 21, abs=TOL)
    assert s.prec20 == 0.5                                      # 2 hits / 4 frames


def test_normalised_precision_is_pysots_value_at_0_20_and_nothing_labelled_lasot_protocol():
    gt = np.array([[0, 0, 100, 50.]])
    pred = np.array([[14.5, 0, 100, 50.]])                      # normalised x error 0.145
    s = m.ope_scores(gt, pred)
    assert s.norm_precision[14] == 0.0 and s.norm_precision[15] == 1.0
    assert s.norm_prec_pysot == 1.0                             # pysot: value at 0.20
    # the mean of pysot's curve is neither pysot's nor the LaSOT toolkit's number: not reported
    assert set(s.summary()) == {"auc", "prec20", "norm_prec_pysot"}


def test_dataset_score_is_mean_over_sequences_not_frames():
    a = m.ope_scores(np.array([[0, 0, 10, 10.]] * 3), np.array([[0, 0, 10, 10.]] * 3))  # auc 20/21
    b = m.ope_scores(np.array([[0, 0, 10, 10.]]), np.array([[50, 50, 10, 10.]]))         # auc 0
    assert m.mean_ope([a, b]).auc == pytest.approx(10 / 21, abs=TOL)


def test_result_of_wrong_length_is_rejected():
    with pytest.raises(ValueError, match="3 boxes but the ground truth has 2"):
        m.success_curve(np.zeros((2, 4)), np.zeros((3, 4)))


def test_got10k_ao_pools_frames_and_skips_the_first():
    g = np.array([[0, 0, 10, 10.]] * 3)
    a = m.got10k_ious(g, np.array([[90, 90, 5, 5.], [0, 0, 10, 10.], [0, 0, 5, 10.]]), (100, 100))
    b = m.got10k_ious(g[:2], np.array([[0, 0, 10, 10.], [50, 50, 10, 10.]]), (100, 100))
    assert a.tolist() == pytest.approx([1.0, 0.5]) and b.tolist() == [0.0]
    s = m.got10k_scores([a, b])
    assert s["ao"] == pytest.approx(0.5, abs=1e-9)              # (1 + 0.5 + 0) / 3 frames
    assert s["sr50"] == pytest.approx(1 / 3) and s["sr75"] == pytest.approx(1 / 3)


def test_got10k_clips_boxes_to_the_image_and_drops_invisible_frames():
    gt = np.array([[95, 0, 5, 10.]] * 3)
    pred = np.array([[95, 0, 5, 10.], [95, 0, 10, 10.], [50, 50, 10, 10.]])
    ious = m.got10k_ious(gt, pred, (100, 100), visible=np.array([True, True, False]))
    assert ious.tolist() == pytest.approx([1.0])                # w clipped to 100 - 95 = 5 (unclipped: 0.5)


def test_vot_polygon_to_box_matches_pysot_formula():
    diamond = [50, 40, 60, 50, 50, 60, 40, 50]                  # square of side 10*sqrt(2) rotated 45 deg
    side = 10 * math.sqrt(2)
    # extents 20x20 scaled by sqrt(side^2 / 400) = side / 20, plus 1
    assert m.poly_to_xywh(diamond) == pytest.approx([50 - side / 2, 50 - side / 2, side + 1, side + 1], abs=1e-9)


def test_vot_axis_aligned_box_round_trips_with_the_half_pixel_shift():
    # pysot: rectangle -> inclusive-corner polygon -> get_axis_aligned_bbox -> [cx-(w-1)/2, ...]
    assert m.poly_to_xywh(m.xywh_to_poly([10, 20, 30, 40])) == pytest.approx([10, 20, 30, 40], abs=1e-9)


def test_vot_overlap_counts_pixels_inclusive_of_both_edges():
    # pysot's region extension rasterises: a 10x10 box at integer corners covers 11x11 = 121 pixels;
    # shifted by 5 px the two share 6x11 = 66 pixels -> 66 / (121 + 121 - 66)
    assert m.vot_overlap([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(66 / 176, abs=1e-12)
    assert m.vot_overlap([0, 0, 10, 10], [10, 0, 10, 10]) == 0.0      # touching extents: 0, as the reference
    assert np.isnan(m.vot_overlap([2], [0, 0, 10, 10]))                # a result code has no overlap


# Produced by pysot's toolkit/utils/src/region.c (compute_polygon_overlap, default rasterisation) built
# with gcc outside the repository and called as region.pyx's vot_overlap does; bounds = (W, H) or None.
# The reference returns a C float: 1e-6 absorbs float32 rounding.
PYSOT_REGION_CASES = [
    ([0, 0, 10, 10], [5, 0, 10, 10], None, 0.375),
    ([-10, 0, 20, 10], [0, 0, 10, 10], (100, 100), 1.0),
    ([95.3, 40.2, 12.7, 9.9], [90, 38, 10, 12], (100, 100), 0.4615384638309479),
    ([40, 40, 20, 20], [50, 40, 60, 50, 50, 60, 40, 50], None, 0.49659863114356995),
    ([12.6, 7.4, 30.2, 18.9], [10.5, 5.5, 40.25, 5.5, 40.25, 25.75, 10.5, 25.75], (64, 48), 0.8115941882133484),
    ([159.45, 266.04, 67.49, 65.79], [184.71, 234.47, 226.77, 292.42, 205.35, 307.97, 163.29, 250.02], (320, 240), 0.0),
    ([128.36, 80.48, 79.69, 65.49], [162.61, 87.18, 167.9, 117.55, 139.43, 122.52, 134.14, 92.14], (320, 240),
     0.17670904099941254),
    ([271.39, 184.45, 58.44, 24.04], [276.03, 161.22, 311.78, 196.41, 277.58, 231.15, 241.84, 195.96], (320, 240),
     0.30550745129585266),
    ([87.66, -1.8, 69.3, 54.78], [105.8, -14.18, 156.53, 42.49, 141.14, 56.27, 90.41, -0.4], (320, 240),
     0.3885955512523651),
    ([210.05, 19.68, 14.15, 37.13], [261.53, 58.14, 213.38, 78.74, 193.86, 33.1, 242.01, 12.5], (320, 240),
     0.1895161271095276),
]


@pytest.mark.parametrize("box, region, bounds, expected", PYSOT_REGION_CASES)
def test_vot_overlap_matches_pysot_region_extension(box, region, bounds, expected):
    assert m.vot_overlap(box, region, bounds) == pytest.approx(expected, abs=1e-6)


def test_vot_accuracy_ignores_burn_in_and_codes_and_counts_failures():
    g = [0, 0, 10, 10]
    perfect, half = [0, 0, 10, 10], [0, 0, 5, 10]                        # rasterised: 121 and 66 pixels
    records = [1, perfect, half, 2, 0, 0, 0, 0, 1, perfect]
    overlaps, fails = m.vot_accuracy_robustness(records, [g] * 10, (100, 100), burnin=1)
    assert fails == 1
    assert np.nanmean(overlaps) == pytest.approx((2 + 66 / 121) / 3, abs=1e-9)   # frames 1, 2, 9
    overlaps2, _ = m.vot_accuracy_robustness(records, [g] * 10, (100, 100), burnin=2)
    assert np.nanmean(overlaps2) == pytest.approx(66 / 121, abs=1e-9)            # frame 2 only
    s = m.vot_summary([overlaps], [fails])
    assert s["robustness"] == pytest.approx(10.0) and s["lost"] == 1     # 1 failure per 10 frames, x100


def test_metrics_agree_with_the_got10k_toolkit():
    got10k_metrics = pytest.importorskip("got10k.utils.metrics", reason="got10k toolkit not installed")
    from got10k.experiments.otb import ExperimentOTB

    rng = np.random.default_rng(0)
    gt = np.column_stack([rng.uniform(0, 200, (300, 2)), rng.uniform(5, 80, (300, 2))])
    pred = gt + rng.normal(0, 8, gt.shape)
    pred[:, 2:] = np.abs(pred[:, 2:]) + 1

    class _Cfg:  # ExperimentOTB's curve settings, without its dataset download
        nbins_iou, nbins_ce = 21, 51

    ious = got10k_metrics.rect_iou(pred.copy(), gt.copy())
    ces = got10k_metrics.center_error(pred.copy(), gt.copy())
    succ, prec = ExperimentOTB._calc_curves(_Cfg(), ious, ces)
    ours = m.ope_scores(gt, pred)
    # got10k adds eps to the union and uses linspace thresholds: equal up to float rounding
    np.testing.assert_allclose(ours.success, succ, atol=1e-12)
    np.testing.assert_allclose(ours.precision, prec, atol=1e-12)
    theirs = got10k_metrics.rect_iou(pred[1:].copy(), gt[1:].copy(), bound=(220, 230))
    np.testing.assert_allclose(m.got10k_ious(gt, pred, (220, 230)), theirs, atol=1e-12)

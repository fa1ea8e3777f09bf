"""bench.lt_metrics: VOT long-term precision / recall / F-score, re-detection delay, jackknife errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench import lt_metrics as lt


def _tiny() -> lt.SequenceLT:
    # 4 tracked frames; the third has the target absent (its overlap is 0 by definition) but the
    # tracker is confident there (0.7)
    return lt.SequenceLT(overlaps=np.array([0.8, 0.6, 0.0, 0.5]), confidence=np.array([0.9, 0.4, 0.7, 0.2]),
                         n_visible=3, redetect_delays=(), reappearances=0)


def test_precision_recall_and_fscore_of_a_hand_computed_sequence():
    thresholds = np.array([np.inf, 0.7, 0.4, -np.inf])
    s = lt.longterm_scores([_tiny()], thresholds)
    # tau=inf: nothing reported -> Pr 1, Re 0. tau=0.7: frames 0.8 and the absent 0 -> Pr 0.4, Re 0.8/3.
    # tau=0.4: 0.8, 0.6, 0 -> Pr 1.4/3, Re 1.4/3. tau=-inf: all four -> Pr 1.9/4, Re 1.9/3.
    np.testing.assert_allclose(s.precision_curve, [1, 0.4, 1.4 / 3, 1.9 / 4])
    np.testing.assert_allclose(s.recall_curve, [0, 0.8 / 3, 1.4 / 3, 1.9 / 3])
    pr, re = 1.9 / 4, 1.9 / 3
    assert s.best == 3 and s.threshold == -np.inf
    assert s.fscore == pytest.approx(2 * pr * re / (pr + re))           # 0.5429, the maximum over tau
    assert (s.precision, s.recall) == (pytest.approx(pr), pytest.approx(re))


def test_a_confident_box_on_an_absent_frame_costs_precision_not_recall():
    thresholds = np.array([np.inf, 0.7, -np.inf])
    confident = lt.longterm_scores([_tiny()], thresholds)
    unsure = _tiny()
    unsure = lt.SequenceLT(unsure.overlaps, np.array([0.9, 0.4, 0.1, 0.2]), 3, (), 0)
    quiet = lt.longterm_scores([unsure], thresholds)
    assert quiet.precision_curve[1] > confident.precision_curve[1]      # 0.8 vs 0.4 at tau=0.7
    assert quiet.recall_curve[1] == confident.recall_curve[1]


def test_dataset_curves_are_the_mean_of_the_sequences_curves():
    a = _tiny()
    b = lt.SequenceLT(np.array([0.2, 0.2]), np.array([0.5, 0.5]), 2, (), 0)
    thresholds = np.array([np.inf, 0.5, -np.inf])
    both = lt.longterm_scores([a, b], thresholds)
    one, two = lt.longterm_scores([a], thresholds), lt.longterm_scores([b], thresholds)
    np.testing.assert_allclose(both.precision_curve, (one.precision_curve + two.precision_curve) / 2)
    np.testing.assert_allclose(both.recall_curve, (one.recall_curve + two.recall_curve) / 2)
    # per-sequence values at the dataset threshold average back to the dataset's Pr and Re
    per = both.sequence_values()
    assert np.mean([p["lt_precision"] for p in per]) == pytest.approx(both.precision)
    assert np.mean([p["lt_recall"] for p in per]) == pytest.approx(both.recall)


def test_thresholds_spread_over_the_sorted_confidences_with_both_infinities():
    t = lt.determine_thresholds(np.arange(1000) / 1000.0)
    assert len(t) == 100 and t[0] == np.inf and t[-1] == -np.inf and np.all(np.diff(t[1:-1]) <= 0)
    few = lt.determine_thresholds([0.3, float("nan"), 0.9])
    np.testing.assert_array_equal(few, [np.inf, 0.9, 0.3, -np.inf])


def test_frame_zero_is_dropped_and_absent_frames_overlap_zero():
    gt = np.array([[10, 10, 20, 20], [10, 10, 20, 20], [np.nan] * 4, [50, 50, 10, 10]], float)
    pred = np.array([[10, 10, 20, 20], [10, 10, 20, 20], [10, 10, 20, 20], [55, 50, 10, 10]], float)
    s = lt.sequence_lt(gt, pred, [np.nan, 0.9, 0.9, 0.9], [False, False, True, False], (100, 100))
    np.testing.assert_allclose(s.overlaps, [1.0, 0.0, 50 / 150])
    assert s.n_visible == 2 and s.reappearances == 1 and s.redetect_delays == ()   # 1/3 <= 0.5


def test_bounded_overlap_clips_boxes_to_the_image():
    # half of the predicted box lies outside a 100 px wide image: clipped, it equals the ground truth
    iou = lt.bounded_iou(np.array([[90.0, 0, 10, 10]]), np.array([[90.0, 0, 20, 10]]), (100, 100))
    assert iou[0] == pytest.approx(1.0)


def test_redetection_delay_counts_frames_from_reappearance_to_iou_above_half():
    visible = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1], bool)
    overlaps = np.array([1, .9, 0, 0, .2, .3, .7, 0, .1, .2])
    delays, events = lt.redetection_delays(overlaps, visible)
    assert events == 2 and delays == (2,)      # found 2 frames after the first return; never after the second


def test_jackknife_error_of_a_paired_difference_cancels_what_the_trackers_share():
    rng = np.random.default_rng(0)
    seqs = [lt.SequenceLT(rng.uniform(0, 1, 30), rng.uniform(0, 1, 30), 30, (), 0) for _ in range(8)]
    s = lt.longterm_scores(seqs)
    assert lt.jackknife_fscore(s) > 0
    assert lt.jackknife_fscore(s, s) == 0.0                # the same tracker: no difference at all
    assert lt.jackknife_fscore(lt.longterm_scores(seqs[:1])) is None


def _vot():
    try:
        from vot.analysis.longterm import compute_tpr_curves, determine_thresholds
        from vot.region import Rectangle, Special
    except Exception as err:   # not installed, or its dependencies are not (numba, attributee)
        pytest.skip(f"the VOT toolkit (vot-toolkit) is not importable here: {type(err).__name__}: {err}")
    return compute_tpr_curves, determine_thresholds, Rectangle, Special


def test_curves_and_thresholds_equal_the_vot_toolkits_on_the_same_inputs():
    compute_tpr_curves, determine_thresholds, Rectangle, Special = _vot()
    rng = np.random.default_rng(1)
    n, w_img, h_img = 60, 120, 90
    gt = np.column_stack([rng.integers(0, 80, n), rng.integers(0, 60, n), rng.integers(5, 40, n),
                          rng.integers(5, 30, n)]).astype(float)
    pred = gt + rng.integers(-8, 9, (n, 4))                  # whole pixels: raster overlap == box IoU
    pred[:, 2:] = np.maximum(pred[:, 2:], 1)
    absent = rng.uniform(size=n) < 0.2
    conf = rng.uniform(size=n)

    class Seq:                                               # what compute_tpr_curves reads of a sequence
        size = (w_img, h_img)

        @staticmethod
        def groundtruth():
            return [Special(0) if a else Rectangle(*g) for g, a in zip(gt, absent)]

    ours_t = lt.determine_thresholds(conf, 20)
    theirs_t = determine_thresholds(conf.tolist(), 20)
    np.testing.assert_array_equal(ours_t, theirs_t)
    pr_v, re_v = compute_tpr_curves([Rectangle(*p) for p in pred], conf.tolist(), Seq(), theirs_t)
    overlaps = lt.lt_overlaps(gt, pred, ~absent, (w_img, h_img))
    pr, re = lt.pr_re_curves(overlaps, conf, int((~absent).sum()), ours_t)
    np.testing.assert_allclose(pr, pr_v, atol=1e-12)
    np.testing.assert_allclose(re, re_v, atol=1e-12)
    assert not math.isnan(pr.sum())

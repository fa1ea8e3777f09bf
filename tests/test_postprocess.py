"""Scores, decoding, penalties and selection, on outputs built so the answer is known by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from runtime.anchors import anchor_table, cosine_window
from runtime.contract import TrackerConfig
from runtime.postprocess import (LOST_WINDOW_INFLUENCE, Selection, choose, clip_to_frame, decode_boxes,
                                 foreground_scores, long_term_update, penalties, select)

CFG = TrackerConfig()
A, S = 5, 25
K = A * S * S


def _flat(a, i, j):
    return a * S * S + i * S + j


def test_foreground_score_is_softmax_of_bg_and_fg_channels():
    cls = np.zeros((1, 2 * A, S, S), np.float32)
    cls[0, A + 3, 4, 7] = math.log(3.0)        # fg of anchor 3 at row 4, column 7: 3/(1+3)
    cls[0, 1, 0, 0] = math.log(4.0)            # bg of anchor 1 at (0, 0): 1/(4+1)
    score = foreground_scores(cls)
    assert score.shape == (1, K) and score.dtype == np.float32
    assert score[0, _flat(3, 4, 7)] == pytest.approx(0.75, abs=1e-7)
    assert score[0, _flat(1, 0, 0)] == pytest.approx(0.2, abs=1e-7)
    assert score[0, _flat(0, 0, 0)] == pytest.approx(0.5, abs=1e-7)


def test_foreground_score_survives_large_logits():
    cls = np.zeros((1, 2 * A, S, S), np.float32)
    cls[0, A] = 1000.0
    assert np.all(foreground_scores(cls)[0, :S * S] == 1.0)


def test_decode_uses_anchor_offsets_and_exp_sizes():
    loc = np.zeros((1, 4 * A, S, S), np.float32)
    a, i, j = 0, 12, 12                        # anchor 104x32 at the crop centre (0, 0)
    loc[0, a, i, j] = 0.5                      # dx -> 0.5 * 104 = 52
    loc[0, A + a, i, j] = -0.25                # dy -> -0.25 * 32 = -8
    loc[0, 2 * A + a, i, j] = math.log(2.0)    # dw -> 2 * 104
    loc[0, 3 * A + a, i, j] = 0.0              # dh -> 32
    boxes = decode_boxes(loc, anchor_table(CFG))
    assert boxes.shape == (1, 4, K) and boxes.dtype == np.float32
    np.testing.assert_allclose(boxes[0, :, _flat(a, i, j)], [52.0, -8.0, 208.0, 32.0], rtol=1e-6)
    # a zero delta gives the anchor itself: anchor 4 (32x96) at row 0, column 24 -> (96, -96)
    np.testing.assert_array_equal(boxes[0, :, _flat(4, 0, 24)], [96.0, -96.0, 32.0, 96.0])


def test_decode_and_select_leave_their_inputs_untouched():
    rng = np.random.default_rng(3)
    cls = rng.normal(size=(2, 2 * A, S, S)).astype(np.float32)
    loc = rng.normal(size=(2, 4 * A, S, S)).astype(np.float32)
    center, size = np.array([[50.0, 60.0], [10.0, 20.0]]), np.array([[30.0, 40.0], [12.0, 9.0]])
    scale = np.array([1.5, 2.0])
    copies = [x.copy() for x in (cls, loc, center, size, scale)]
    select(cls, loc, center, size, scale, (100, 120), CFG, anchor_table(CFG), cosine_window(CFG))
    for before, after in zip(copies, (cls, loc, center, size, scale)):
        np.testing.assert_array_equal(before, after)


def test_penalty_is_one_for_an_unchanged_box_and_matches_the_formula_otherwise():
    boxes = np.zeros((1, 4, 2), np.float32)
    boxes[0, 2:, 0] = 64.0                      # same size as the current target in crop pixels
    boxes[0, 2:, 1] = (96.0, 48.0)              # wider and flatter
    pen = penalties(boxes, np.array([[32.0, 32.0]]), np.array([2.0]), CFG)
    assert pen[0, 0] == 1.0
    # s = sqrt((96+72)(48+72)) / sqrt(128*128); r = (1)/(96/48) -> change 2; penalty exp(-(2s - 1) k)
    s = math.sqrt(168 * 120) / 128
    # rel 1e-7: the predicted side is computed in float32, as pysot does (float32 eps ~1.2e-7)
    assert pen[0, 1] == pytest.approx(math.exp(-(2 * s - 1) * 0.05), rel=1e-7)


def test_ties_go_to_the_first_index():
    cls = np.zeros((1, 2 * A, S, S), np.float32)
    loc = np.zeros((1, 4 * A, S, S), np.float32)
    # a square target whose crop size equals anchor 2 (64x64): with loc = 0 only anchor 2 has
    # penalty 1; the window is symmetric, so (12, 12) of anchor 2 wins
    out = select(cls, loc, np.array([[50.0, 50.0]]), np.array([[32.0, 32.0]]), np.array([2.0]), (100, 100),
                 CFG, anchor_table(CFG), cosine_window(CFG))
    assert out.index[0] == _flat(2, 12, 12)
    flat = np.zeros((1, 2 * A, S, S), np.float32)
    window = np.ones(K)                         # every candidate scores the same: first index wins
    out = select(flat, loc, np.array([[50.0, 50.0]]), np.array([[32.0, 32.0]]), np.array([2.0]), (100, 100),
                 TrackerConfig(penalty_k=0.0), anchor_table(CFG), window)
    assert out.index[0] == 0


def _single_peak(a, i, j, logit=20.0, dx=0.0, dy=0.0):
    cls = np.full((1, 2 * A, S, S), 0.0, np.float32)
    cls[0, A:] = -20.0                          # foreground ~2e-9 everywhere ...
    cls[0, A + a, i, j] = logit                 # ... except one candidate (score ~1)
    loc = np.zeros((1, 4 * A, S, S), np.float32)
    loc[0, a, i, j], loc[0, A + a, i, j] = dx, dy
    return cls, loc


def test_select_clips_centre_to_frame_edge_inclusive():
    # anchor 2 (64x64) at column 24 (+96 crop px) with dx = 1 (+64): centre +160 crop px = +80 frame px
    cls, loc = _single_peak(2, 12, 24, dx=1.0)
    out = select(cls, loc, np.array([[95.0, 40.0]]), np.array([[32.0, 32.0]]), np.array([2.0]), (80, 100),
                 CFG, anchor_table(CFG), cosine_window(CFG))
    assert out.index[0] == _flat(2, 12, 24)
    assert out.center_xy[0, 0] == 100.0 and out.center_xy[0, 1] == 40.0


def test_select_clips_size_to_at_least_10_px_and_at_most_the_frame():
    cls, loc = _single_peak(2, 12, 12)
    # an 8x8 target at scale 8 is 64x64 crop px: the prediction keeps 8x8, below the 10 px floor
    small = select(cls, loc, np.array([[20.0, 20.0]]), np.array([[8.0, 8.0]]), np.array([8.0]), (100, 100),
                   CFG, anchor_table(CFG), cosine_window(CFG))
    np.testing.assert_array_equal(small.size_wh, [[10.0, 10.0]])
    # a 64x64 target in a 40x50 (H x W) frame is clipped to W=50 wide and H=40 high
    big = select(cls, loc, np.array([[20.0, 20.0]]), np.array([[64.0, 64.0]]), np.array([1.0]), (40, 50),
                 CFG, anchor_table(CFG), cosine_window(CFG))
    np.testing.assert_array_equal(big.size_wh, [[50.0, 40.0]])


def test_select_handles_each_target_independently():
    rng = np.random.default_rng(5)
    cls = rng.normal(size=(3, 2 * A, S, S)).astype(np.float32)
    loc = (0.3 * rng.normal(size=(3, 4 * A, S, S))).astype(np.float32)
    center = np.array([[50.0, 60.0], [10.0, 20.0], [90.0, 5.0]])
    size = np.array([[30.0, 40.0], [12.0, 9.0], [50.0, 70.0]])
    scale = np.array([1.5, 2.0, 0.7])
    both = select(cls, loc, center, size, scale, (100, 120), CFG, anchor_table(CFG), cosine_window(CFG))
    for n in range(3):
        one = select(cls[n:n + 1], loc[n:n + 1], center[n:n + 1], size[n:n + 1], scale[n:n + 1], (100, 120),
                     CFG, anchor_table(CFG), cosine_window(CFG))
        np.testing.assert_array_equal(one.center_xy[0], both.center_xy[n])
        np.testing.assert_array_equal(one.size_wh[0], both.size_wh[n])
        assert one.score[0] == both.score[n] and one.index[0] == both.index[n]


def test_select_is_choose_then_clip():
    """The short-term step is the shared ``choose`` followed by pysot's ``_bbox_clip``."""
    rng = np.random.default_rng(9)
    cls = rng.normal(size=(2, 2 * A, S, S)).astype(np.float32)
    loc = (0.3 * rng.normal(size=(2, 4 * A, S, S))).astype(np.float32)
    center, size = np.array([[95.0, 5.0], [50.0, 50.0]]), np.array([[30.0, 8.0], [40.0, 30.0]])
    scale = np.array([1.2, 0.9])
    chosen = choose(cls, loc, center, size, scale, CFG, anchor_table(CFG), cosine_window(CFG))
    clipped = clip_to_frame(chosen.center_xy, chosen.size_wh, (100, 100))
    out = select(cls, loc, center, size, scale, (100, 100), CFG, anchor_table(CFG), cosine_window(CFG))
    np.testing.assert_array_equal(out.center_xy, clipped[0])
    np.testing.assert_array_equal(out.size_wh, clipped[1])


def test_choose_takes_the_window_influence_of_the_lost_state():
    # 0.95 at the centre, 0.99 at the corner cell (1, 1) where the window is ~0.0045: the window decides
    cls = np.zeros((1, 2 * A, S, S), np.float32)
    cls[0, A:] = -5.0
    cls[0, A + 2, 12, 12] = math.log(0.95 / 0.05)
    cls[0, A + 2, 1, 1] = math.log(0.99 / 0.01)
    loc = np.zeros((1, 4 * A, S, S), np.float32)
    args = (cls, loc, np.array([[50.0, 50.0]]), np.array([[32.0, 32.0]]), np.array([2.0]), CFG,
            anchor_table(CFG), cosine_window(CFG))
    assert choose(*args).index[0] == _flat(2, 12, 12)
    assert choose(*args, window_influence=LOST_WINDOW_INFLUENCE).index[0] == _flat(2, 1, 1)


def test_long_term_update_keeps_the_state_below_confidence_low_and_clips_only_the_box():
    cfg = TrackerConfig(long_term=True, confidence_low=0.8, confidence_high=0.998)
    chosen = Selection(center_xy=np.array([[130.0, 50.0], [130.0, 50.0]]), size_wh=np.array([[40.0, 5.0]] * 2),
                       score=np.array([0.9, 0.5], np.float32), index=np.array([0, 0]))
    old_center, old_size = np.array([[90.0, 50.0], [-20.0, 50.0]]), np.array([[30.0, 20.0], [30.0, 20.0]])
    step = long_term_update(chosen, old_center, old_size, np.array([True, False]), (100, 120), cfg)
    np.testing.assert_array_equal(step.center_xy, [[130.0, 50.0], [-20.0, 50.0]])   # moved / kept, unclipped
    np.testing.assert_array_equal(step.size_wh, [[40.0, 5.0], [30.0, 20.0]])
    np.testing.assert_array_equal(step.box_center_xy, [[120.0, 50.0], [0.0, 50.0]])  # clipped for the report
    np.testing.assert_array_equal(step.box_size_wh, [[40.0, 10.0], [30.0, 20.0]])
    assert step.lost.tolist() == [True, True]   # 0.9: between the thresholds, stays lost; 0.5: lost


def _full_map_choice(cls, loc, size, scale, cfg, influence, s=S):
    """pysot's order, over every candidate: decode, penalise, window, argmax (the reference for choose,
    which computes the penalty only for the candidates that can win)."""
    score = foreground_scores(cls)
    boxes = decode_boxes(loc, anchor_table(cfg, s))
    penalty = penalties(boxes, size, scale, cfg)
    pscore = (penalty * score) * (1 - influence) + cosine_window(cfg, s) * influence
    return np.argmax(pscore, axis=1), penalty, boxes


@pytest.mark.parametrize("case", ["peak with a bad size", "flat scores", "huge deltas", "nan score", "lost map"])
def test_choose_finds_pysots_argmax_and_values_whatever_the_map(case):
    rng = np.random.default_rng(11)
    s, influence = (CFG.lost_score_size, LOST_WINDOW_INFLUENCE) if case == "lost map" else (S, CFG.window_influence)
    cls = (rng.normal(size=(2, 2 * A, s, s)) - 2).astype(np.float32)
    loc = (0.2 * rng.normal(size=(2, 4 * A, s, s))).astype(np.float32)
    if case == "peak with a bad size":
        # the best raw score and window predicts a 50x larger box; a plain 0.5 next to it wins
        cls[:, :A], cls[:, A:] = 0.0, -6.0
        cls[:, A + 1, 12, 12] = 9.0
        loc[:, 2 * A + 1, 12, 12] = loc[:, 3 * A + 1, 12, 12] = 4.0
        cls[:, A + 2, 12, 13] = 0.0
    elif case == "flat scores":            # every bound equal: ties everywhere
        cls[:] = 0.0
        loc = np.round(loc * 2) / 2
    elif case == "huge deltas":            # sizes beyond float32 range for some candidates
        loc[0, 2 * A:, 3, 4] = 60.0
        loc[1, 3 * A:, 7, 7] = -60.0
    elif case == "nan score":
        cls[0, A + 2, 5, 5] = np.nan
    size, scale = np.array([[30.0, 40.0], [12.0, 9.0]]), np.array([1.5, 2.0])
    center = np.array([[50.0, 60.0], [10.0, 20.0]])
    with np.errstate(all="ignore"):
        best, penalty, boxes = _full_map_choice(cls, loc, size, scale, CFG, influence, s)
        got = choose(cls, loc, center, size, scale, CFG, anchor_table(CFG, s), cosine_window(CFG, s), influence)
    np.testing.assert_array_equal(got.index, best)
    if case == "peak with a bad size":
        assert best.tolist() == [_flat(2, 12, 13)] * 2
    rows = np.arange(2)
    np.testing.assert_array_equal(got.score, foreground_scores(cls)[rows, best])
    lr = penalty[rows, best] * got.score.astype(np.float64) * CFG.lr
    chosen = boxes[rows, :, best].astype(np.float64) / scale[:, None]
    np.testing.assert_array_equal(got.center_xy, chosen[:, :2] + center)
    np.testing.assert_array_equal(got.size_wh, size * (1 - lr[:, None]) + chosen[:, 2:] * lr[:, None])


def test_clip_keeps_the_10_px_floor_in_a_frame_narrower_than_10_px():
    # pysot: max(10, min(w, W)); a clip(w, 10, W) would give W = 8 here
    center, size = clip_to_frame(np.array([[20.0, 3.0]]), np.array([[30.0, 30.0]]), (6, 8))
    np.testing.assert_array_equal(center, [[8.0, 3.0]])
    np.testing.assert_array_equal(size, [[10.0, 10.0]])


def test_clip_matches_numpys_min_then_max_on_any_value_and_keeps_nan():
    # the clip runs in Python floats; it must give what np.minimum then np.maximum give, for N targets,
    # infinities and out-of-frame values included, and leave a NaN as NaN (never a silent 0 or 10 px box)
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-500, 2500, 200), [np.inf, -np.inf, 0.0, -0.0, 640.0, 480.0, 9.99]])
    center = rng.permutation(values)[:200].reshape(100, 2)
    size = rng.permutation(values)[:200].reshape(100, 2)
    limit = np.array([640.0, 480.0])
    got_center, got_size = clip_to_frame(center, size, (480, 640))
    np.testing.assert_array_equal(got_center, np.maximum(0.0, np.minimum(center, limit)))
    np.testing.assert_array_equal(got_size, np.maximum(10.0, np.minimum(size, limit)))
    assert got_center.dtype == np.float64 and got_center.shape == (100, 2)
    nan_center, nan_size = clip_to_frame(np.array([[np.nan, 5.0]]), np.array([[20.0, np.nan]]), (480, 640))
    assert np.isnan(nan_center[0, 0]) and nan_center[0, 1] == 5.0
    assert nan_size[0, 0] == 20.0 and np.isnan(nan_size[0, 1])

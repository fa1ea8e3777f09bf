"""Anchor targets and loss follow pysot's training rules (reference-tracker.md section 10)."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.contract import TrackerConfig
from train.targets import assign_targets, training_anchors

CFG = TrackerConfig()


def test_training_anchor_centres_are_31_plus_8j():
    # pysot generate_all_anchors(im_c=127, size=25): centres 127 - 12*8 + 8*j
    _, centre = training_anchors(CFG)
    assert centre[0, 0, 0, :].tolist() == [31 + 8 * j for j in range(25)]
    assert centre[1, 0, :, 0].tolist() == [31 + 8 * i for i in range(25)]
    assert centre[2:, 2, 0, 0].tolist() == [64, 64]          # anchor 2 is the 64x64 square


def test_a_centred_64px_target_makes_the_centre_square_anchor_positive_with_zero_delta():
    box = np.array([127 - 32, 127 - 32, 127 + 32, 127 + 32], dtype=np.float64)
    t = assign_targets(box, CFG, np.random.default_rng(0))
    assert t.cls[2, 12, 12] == 1
    assert t.overlap[2, 12, 12] == pytest.approx(1.0)
    np.testing.assert_allclose(t.delta[:, 2, 12, 12], 0.0, atol=1e-7)


def test_label_counts_are_capped_at_16_positive_and_48_negative():
    box = np.array([127 - 32, 127 - 32, 127 + 32, 127 + 32], dtype=np.float64)
    t = assign_targets(box, CFG, np.random.default_rng(0))
    assert 1 <= (t.cls == 1).sum() <= 16
    assert (t.cls == 0).sum() == 48                          # far more than 48 anchors have IoU < 0.3
    pos = t.cls == 1
    # every positive weighs 1/num_pos, so the weights of one crop sum to 1
    assert t.delta_weight[pos].sum() == pytest.approx(1.0, abs=1e-5)
    assert (t.delta_weight[~pos] == 0).all()
    assert (t.overlap[pos] > 0.6).all() and (t.overlap[t.cls == 0] < 0.3).all()


def test_regression_targets_encode_the_box_relative_to_each_anchor():
    box = np.array([100.0, 110.0, 180.0, 150.0])             # centre (140, 130), 80 x 40
    t = assign_targets(box, CFG, np.random.default_rng(0))
    _, (acx, acy, aw, ah) = training_anchors(CFG)
    a, i, j = 1, 5, 7
    expected = [(140 - acx[a, i, j]) / aw[a, i, j], (130 - acy[a, i, j]) / ah[a, i, j],
                np.log(80 / aw[a, i, j]), np.log(40 / ah[a, i, j])]
    np.testing.assert_allclose(t.delta[:, a, i, j], expected, rtol=1e-6)


def test_negative_pair_marks_16_anchors_of_the_7x7_cells_around_the_target_and_nothing_else():
    box = np.array([127 - 20, 127 - 20, 127 + 20, 127 + 20], dtype=np.float64)   # target cell (13, 13)
    t = assign_targets(box, CFG, np.random.default_rng(0), negative=True)
    a, rows, cols = np.nonzero(t.cls == 0)
    assert len(a) == 16 and (t.cls == 1).sum() == 0
    # pysot: cx = 12 + ceil((127 - 127)/8 + 0.5) = 13, window [10, 17)
    assert rows.min() >= 10 and rows.max() < 17 and cols.min() >= 10 and cols.max() < 17
    assert not t.delta.any() and not t.delta_weight.any()


def test_assignment_is_deterministic_for_a_seed():
    box = np.array([90.0, 100.0, 170.0, 160.0])
    a = assign_targets(box, CFG, np.random.default_rng(7))
    b = assign_targets(box, CFG, np.random.default_rng(7))
    assert (a.cls == b.cls).all()

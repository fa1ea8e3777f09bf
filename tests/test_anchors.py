"""Anchor table and cosine window, against the values derived by hand in the reference digest (section 6)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from runtime.anchors import anchor_sizes, anchor_table, cosine_window
from runtime.contract import TrackerConfig

R50 = TrackerConfig()
ALEX = TrackerConfig(instance_size=287, base_size=0, penalty_k=0.16, window_influence=0.40, lr=0.30)


def test_anchor_sizes_come_from_integer_truncation_with_literal_0_33():
    # ws = int(sqrt(64/r)), hs = int(ws*r), times scale 8: r=0.33 -> 13, int(4.29)=4 -> 104x32 ...
    expected = [(104, 32), (88, 40), (64, 64), (40, 80), (32, 96)]
    np.testing.assert_array_equal(anchor_sizes(R50), np.array(expected, np.float32))


def test_r50_table_has_3125_float32_rows():
    table = anchor_table(R50)
    assert table.shape == (5 * 25 * 25, 4) and table.dtype == np.float32


@pytest.mark.parametrize("row, expected", [
    (0, (-96, -96, 104, 32)),       # anchor 0, row 0, column 0
    (625, (-96, -96, 88, 40)),      # first cell of anchor 1
    (3124, (96, 96, 32, 96)),       # last anchor, last row, last column
    (2 * 625 + 3 * 25 + 7, (-96 + 8 * 7, -96 + 8 * 3, 64, 64)),   # anchor 2, row i=3 (y), column j=7 (x)
])
def test_table_is_anchor_major_then_row_then_column(row, expected):
    np.testing.assert_array_equal(anchor_table(R50)[row], np.array(expected, np.float32))


def test_alexnet_grid_is_21_cells_spanning_minus_80_to_80():
    table = anchor_table(ALEX)
    assert table.shape == (5 * 21 * 21, 4)
    assert table[0, 0] == -80 and table[20, 0] == 80 and table[21, 1] == -72


def test_window_is_hann_outer_product_tiled_per_anchor_with_zero_ring():
    window = cosine_window(R50).reshape(5, 25, 25)
    for a in range(5):
        ring = np.concatenate([window[a, 0], window[a, -1], window[a, :, 0], window[a, :, -1]])
        assert np.all(ring == 0.0)
        assert window[a, 12, 12] == pytest.approx(1.0, abs=1e-15)
    hann_1 = 0.5 - 0.5 * math.cos(2 * math.pi / 24)   # np.hanning(25)[1]
    assert window[3, 1, 12] == pytest.approx(hann_1, rel=1e-12)
    assert window[3, 1, 1] == pytest.approx(hann_1 * hann_1, rel=1e-12)


def test_cached_tables_are_read_only():
    with pytest.raises(ValueError):
        anchor_table(R50)[0, 0] = 1.0
    with pytest.raises(ValueError):
        cosine_window(R50)[0] = 1.0


LT = TrackerConfig(long_term=True)  # lost_instance_size 831: (831 - 127) // 8 + 1 + 8 = 97


def test_lost_state_grid_is_97_cells_spanning_minus_384_to_384():
    # pysot's SiamRPNLTTracker calls generate_anchor(97) for its 831 crop: origin -(97 // 2) * 8
    assert LT.lost_score_size == 97
    table = anchor_table(LT, LT.lost_score_size).reshape(5, 97, 97, 4)
    assert table[0, 0, 0, 0] == -384 and table[0, 0, 96, 0] == 384 and table[0, 96, 0, 1] == 384
    np.testing.assert_array_equal(table[:, 48, 48, 2:], anchor_sizes(LT))   # same anchor shapes
    window = cosine_window(LT, LT.lost_score_size).reshape(5, 97, 97)
    np.testing.assert_array_equal(window[4], np.outer(np.hanning(97), np.hanning(97)))


def test_both_sizes_are_built_once_and_kept_apart():
    assert anchor_table(LT, 97) is anchor_table(LT, 97) and cosine_window(LT, 97) is cosine_window(LT, 97)
    assert anchor_table(LT) is anchor_table(LT, 25) and anchor_table(LT).shape == (5 * 25 * 25, 4)

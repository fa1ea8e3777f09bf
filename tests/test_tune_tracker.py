"""The tracker-value search refuses the held-out split, prefers a plateau to a spike, and its zoomed
tuning variants move the ground truth with the pixels."""
from __future__ import annotations

import numpy as np
import pytest

from bench.sequences import Sequence
from bench.tune_tracker import CellScore, recommend, tuning_sequences, zoomed
from runtime.errors import InputError


def test_the_held_out_split_cannot_be_used_for_tuning():
    with pytest.raises(InputError, match="held-out"):
        tuning_sequences(split="heldout")


def _cell(lr: float, auc: float, scale: float = 0.5) -> CellScore:
    values = {"penalty_k": 0.04, "window_influence": 0.44, "lr": lr}
    return CellScore(values, {"a": auc}, {"a": 1.0}, {"a": scale}, {"a": 0.0})


def test_a_plateau_is_recommended_over_a_lone_spike():
    grid = {"penalty_k": (0.04,), "window_influence": (0.44,), "lr": (0.1, 0.2, 0.3, 0.4, 0.5)}
    # lr 0.1 is a spike between bad neighbours; 0.3-0.5 are a little lower but agree with each other
    cells = [_cell(0.1, 0.70), _cell(0.2, 0.40), _cell(0.3, 0.62), _cell(0.4, 0.64), _cell(0.5, 0.61)]
    choice = recommend(cells, grid)
    assert choice["raw_best"]["lr"] == 0.1
    assert choice["plateau"]["lr"] == 0.4


def test_zoomed_variant_boxes_follow_the_zoomed_pixels():
    frames, boxes = [], []
    for t in range(5):                                   # a white 20x10 block moving right on black
        img = np.zeros((120, 160, 3), np.uint8)
        x, y = 40 + 5 * t, 50
        img[y:y + 10, x:x + 20] = 255
        frames.append(img)
        boxes.append((x, y, 20, 10))
    seq = Sequence("block", frames, np.array(boxes, dtype=np.float64), np.zeros(5, bool))
    z = zoomed(seq, 2.0)
    assert z.name == "block-zoom2.00" and len(z) == 5
    for t in (0, 4):
        ys, xs = np.nonzero(z.frame(t)[..., 0] > 127)
        seen = (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
        np.testing.assert_allclose(seen, z.gt_xywh[t], atol=1.0)
    np.testing.assert_allclose(z.gt_xywh[4, 2:], (40, 20))           # twice the size at the last frame
    np.testing.assert_allclose(z.gt_xywh[0], boxes[0])               # the first frame is unchanged


def test_the_final_table_pairs_sequences_for_the_difference_and_its_error():
    from bench.real_video_table import summarise

    seqs = ("a", "b", "c")
    old = {c: dict(zip(seqs, v)) for c, v in
           (("auc", (0.2, 0.5, 0.8)), ("prec20", (0, 0, 0)), ("scale_error", (1, 1, 1)), ("distractor", (0, 0, 0)))}
    new = dict(old, auc=dict(zip(seqs, (0.3, 0.6, 0.8))))
    s = summarise({"old": old, "new": new})
    # the spread between sequences (0.2..0.8) is not in the paired error: only the differences 0.1, 0.1, 0
    diff = s["new"]["auc"]["paired_diff_to_old"]
    assert diff["mean"] == pytest.approx(0.2 / 3)
    assert diff["se"] == pytest.approx(np.std([0.1, 0.1, 0.0], ddof=1) / np.sqrt(3))
    assert s["old"]["auc"]["se"] == pytest.approx(0.3 / np.sqrt(3))

"""The long-term tracker's state machine (pysot SiamRPNLTTracker), N targets, and its errors, in numpy.

A scripted backend identifies each target by its template crop and answers every search with that
target's next scripted output: "low" (every score 0.5), or a logit planted on the 64x64 anchor of one
cell. Frame 320x240, targets 60x60 (s_z = 120 frame px).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest

from runtime.backends.base import Backend, Kernels
from runtime.contract import ModelSpec, TrackerConfig
from runtime.errors import ContractError, InputError
from runtime.postprocess import Selection, long_term_update
from runtime.tracker import SiamRPNTracker

# pysot's long-term config values (experiments/siamrpn_r50_l234_dwxcorr_lt)
LT = TrackerConfig(penalty_k=0.05, window_influence=0.28, lr=0.22, long_term=True, confidence_low=0.8,
                   confidence_high=0.998)
ST = dataclasses.replace(LT, long_term=False)
A = 5
BOX = [130.0, 90.0, 60.0, 60.0]
LOW = ("low",)


def planted(score: float, di: int = 0, dj: int = 0, rest: float = 0.5):
    """A script entry: raw score ``score`` at the 64x64 anchor of cell (centre + di, centre + dj), every
    other candidate ``rest``."""
    return ("planted", score, di, dj, rest)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class ScriptBackend(Backend):
    """Stands in for a long-term export (both search sizes, unless ``lost_graph`` is False)."""

    name = "script"

    def __init__(self, script: dict[int, list], config: TrackerConfig = LT, lost_graph: bool = True,
                 device_kernels: bool = False):
        self.tracker_config = config
        self.spec = ModelSpec(variant="script", exemplar_size=config.exemplar_size,
                              instance_size=config.instance_size, score_size=config.score_size,
                              anchor_num=config.anchor_num, levels=("",), kernel_channels=1, kernel_size=1,
                              lost_instance_size=config.lost_instance_size if lost_graph else 0,
                              lost_score_size=config.lost_score_size if lost_graph else 0)
        self.script = {k: list(v) for k, v in script.items()}
        self.device_kernels = device_kernels
        self.ids: dict[str, int] = {}
        self.template_calls: list[np.ndarray] = []
        self.search_calls: list[tuple[int, list[int]]] = []   # (crop side, target ids) per call

    def _template_impl(self, crops):
        self.template_calls.append(crops.copy())   # the tracker may reuse its blob buffer
        ids = np.array([self.ids.setdefault(hashlib.sha256(c.tobytes()).hexdigest(), len(self.ids))
                        for c in crops], np.float32)
        if self.device_kernels:   # like a GPU backend: nothing on the host the tracker could slice
            return Kernels(len(crops), None, device=ids)
        return Kernels(len(crops), (ids.reshape(-1, 1, 1, 1),))

    def _search_impl(self, crops, kernels):
        ids = [int(i) for i in (kernels.device if self.device_kernels else kernels.arrays[0].reshape(-1))]
        side = crops.shape[-1]
        self.search_calls.append((side, ids))
        size = self.spec.lost_score_size if side == self.spec.lost_instance_size else self.spec.score_size
        outs = [self._output(self.script[i].pop(0), size) for i in ids]
        return np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs])

    @staticmethod
    def _output(entry, size):
        cls = np.zeros((2 * A, size, size), np.float32)
        loc = np.zeros((4 * A, size, size), np.float32)
        if entry[0] == "planted":
            _, score, di, dj, rest = entry
            cls[A:] = _logit(rest)
            cls[A + 2, size // 2 + di, size // 2 + dj] = _logit(score)
        return cls, loc


def _frame(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def _track(script, boxes=BOX, config=LT, **kwargs):
    backend = ScriptBackend(script, config, **kwargs)
    tracker = SiamRPNTracker(backend)
    tracker.init(_frame(), boxes)
    return tracker, backend


def test_below_confidence_low_the_target_is_lost_and_keeps_its_state():
    tracker, backend = _track({0: [LOW]})
    before = tracker.state
    result = tracker.track(_frame(1))
    assert result.lost and result.state.lost
    assert result.score == pytest.approx(0.5)
    np.testing.assert_array_equal(result.state.center_xy, before.center_xy)   # no move, no size update
    np.testing.assert_array_equal(result.state.size_wh, before.size_wh)
    cx, cy = before.center_xy
    np.testing.assert_allclose(result.box_xywh, [cx - 30, cy - 30, 60, 60])


def test_a_lost_target_searches_the_large_crop_until_found():
    tracker, backend = _track({0: [LOW, LOW, planted(0.9), planted(0.999), LOW]})
    lost = [tracker.track(_frame(t)).lost for t in range(1, 6)]
    assert lost == [True, True, True, False, True]
    # the crop of a frame follows the state after the previous one: 255, then 831 while lost
    assert [side for side, _ in backend.search_calls] == [255, 831, 831, 831, 255]


def test_between_the_thresholds_the_state_moves_but_the_lost_flag_stays():
    # lost, then a score of 0.9 (>= 0.8, <= 0.998) 5 cells right in the 97x97 map: 40 crop px
    tracker, _ = _track({0: [LOW, planted(0.9, 0, 5)]})
    before = tracker.track(_frame(1)).state
    result = tracker.track(_frame(2))
    assert result.lost
    scale_z = 127 / 120                                           # exemplar / s_z, crop px per frame px
    assert result.state.center_xy[0] - before.center_xy[0] == pytest.approx(40 / scale_z, abs=0.3)
    # and from the normal state the same score keeps it normal
    tracker, _ = _track({0: [planted(0.9, 0, 1)]})
    assert not tracker.track(_frame(1)).lost


def test_the_raw_score_decides_not_the_penalised_and_windowed_one():
    # raw 0.79 at the centre; windowed: 0.72 * 0.79 * penalty + 0.28 > 0.8. pysot compares the raw score.
    tracker, _ = _track({0: [planted(0.79, rest=0.01)]})
    result = tracker.track(_frame(1))
    assert result.score == pytest.approx(0.79, abs=1e-6) and result.lost


def _selection(score: float) -> Selection:
    return Selection(center_xy=np.array([[50.0, 40.0]]), size_wh=np.array([[30.0, 20.0]]),
                     score=np.array([score], np.float32), index=np.array([0]))


@pytest.mark.parametrize("score,was_lost,now_lost", [
    (np.float32(0.8), False, False),                                   # not below CONFIDENCE_LOW
    (np.nextafter(np.float32(0.8), np.float32(0)), False, True),
    (np.float32(0.998), True, True),                                   # not above CONFIDENCE_HIGH ...
    (np.nextafter(np.float32(0.998), np.float32(1)), True, False),
])
def test_thresholds_compare_the_float32_score_as_pysot_under_numpy_2(score, was_lost, now_lost):
    # ... although float32(0.998) = 0.99800003 > 0.998 in float64: pysot compares a numpy float32
    # scalar with a Python float, which numpy >= 2 does in float32.
    step = long_term_update(_selection(float(score)), np.array([[10.0, 10.0]]), np.array([[30.0, 20.0]]),
                            np.array([was_lost]), (100, 100), LT)
    assert bool(step.lost[0]) == now_lost


def test_window_influence_is_0_001_while_lost():
    # 0.95 at the centre, 0.99 40 cells right. With window influence 0.28 the centre wins (97x97 Hann:
    # 0.07 at 40 cells); with pysot's lost-state 0.001 the better score far away wins.
    far = planted(0.99, 0, 40, rest=0.01)
    script = [LOW, ("two",)]
    backend_out = ScriptBackend._output

    def two(entry, size):
        if entry[0] != "two":
            return backend_out(entry, size)
        cls, loc = backend_out(far, size)
        cls[A + 2, size // 2, size // 2] = _logit(0.95)
        return cls, loc

    tracker, backend = _track({0: script})
    backend._output = two
    before = tracker.track(_frame(1)).state
    result = tracker.track(_frame(2))
    assert result.score == pytest.approx(0.99, abs=1e-6)
    assert result.state.center_xy[0] - before.center_xy[0] == pytest.approx(320 * 120 / 127, abs=0.5)


def test_the_long_term_state_is_stored_before_the_clip():
    # lost, then found 40 cells (320 crop px ~ 302 frame px) right of a centre at x = 160: outside the frame
    tracker, _ = _track({0: [LOW, planted(0.999, 0, 40)]})
    tracker.track(_frame(1))
    result = tracker.track(_frame(2))
    assert result.state.center_xy[0] > 320                        # pysot's center_pos, unclipped
    assert result.box_xywh[0] + result.box_xywh[2] / 2 == 320     # the reported box is clipped
    # the short-term tracker stores the clipped box
    tracker, _ = _track({0: [planted(0.999, 0, 12)]}, config=ST)
    tracker.track(_frame(1))   # 12 cells = 96 crop px ~ 91 frame px: x = 250 stays inside
    tracker.set_state(dataclasses.replace(tracker.state, center_xy=np.array([300.0, 120.0])))
    tracker.backend.script[0].append(planted(0.999, 0, 12))
    assert tracker.track(_frame(2)).state.center_xy[0] == 320


def test_targets_in_different_states_are_searched_in_two_batched_calls():
    boxes = [BOX, [20.0, 20.0, 50.0, 40.0], [200.0, 150.0, 40.0, 50.0]]
    script = {0: [planted(0.9), planted(0.9), LOW, LOW],
              1: [LOW, planted(0.999), LOW, LOW],
              2: [planted(0.9), planted(0.9), LOW, LOW]}
    tracker, backend = _track(script, boxes)
    assert [r.lost for r in tracker.track(_frame(1))] == [False, True, False]
    assert backend.search_calls == [(255, [0, 1, 2])]             # one call while all are normal
    results = tracker.track(_frame(2))
    # normal targets first (255 crops), then the lost one (831); results stay in target order
    assert backend.search_calls[1:] == [(255, [0, 2]), (831, [1])]
    assert [r.lost for r in results] == [False, False, False]
    assert [r.score for r in results] == pytest.approx([0.9, 0.999, 0.9], abs=1e-6)
    tracker.track(_frame(3))
    tracker.track(_frame(4))
    assert backend.search_calls[-1] == (831, [0, 1, 2])           # one call when all are lost


def test_device_resident_kernels_are_remade_for_a_group_from_its_template_crops():
    boxes = [BOX, [20.0, 20.0, 50.0, 40.0]]
    script = {0: [planted(0.9), planted(0.9), planted(0.9)], 1: [LOW, LOW, LOW]}
    tracker, backend = _track(script, boxes, device_kernels=True)
    tracker.track(_frame(1))
    tracker.track(_frame(2))
    tracker.track(_frame(3))
    assert backend.search_calls[1:] == [(255, [0]), (831, [1]), (255, [0]), (831, [1])]
    # one template run per group, reused on the next frame; the crops are those of init
    assert len(backend.template_calls) == 3
    np.testing.assert_array_equal(backend.template_calls[1][0], backend.template_calls[0][0])


def test_an_export_without_the_large_graph_says_how_to_re_export_when_a_target_is_lost():
    tracker, _ = _track({0: [LOW, LOW]}, lost_graph=False)
    assert tracker.track(_frame(1)).lost                          # the 255 search still works
    with pytest.raises(ContractError, match="--lost-search"):
        tracker.track(_frame(2))


def test_a_lost_size_other_than_the_export_s_is_refused_at_construction():
    backend = ScriptBackend({}, LT)
    with pytest.raises(ContractError, match="LOST_INSTANCE_SIZE"):
        SiamRPNTracker(backend, dataclasses.replace(LT, lost_instance_size=767))


def test_the_short_term_tracker_is_never_lost_and_follows_low_scores():
    tracker, backend = _track({0: [planted(0.3, 0, 4, rest=0.01)] * 3}, config=ST)
    before = tracker.state
    results = [tracker.track(_frame(t)) for t in (1, 2, 3)]
    assert not any(r.lost or r.state.lost for r in results)
    assert results[0].state.center_xy[0] > before.center_xy[0]   # moved despite a score of 0.3
    assert {side for side, _ in backend.search_calls} == {255}


def test_set_state_restores_the_lost_flag():
    tracker, backend = _track({0: [LOW, planted(0.9)]})
    lost_state = tracker.track(_frame(1)).state
    tracker.init(_frame(), BOX)
    assert not tracker.state.lost                                 # init starts normal (see runtime.tracker)
    tracker.set_state(lost_state)
    tracker.track(_frame(2))
    assert backend.search_calls[-1][0] == 831


def test_a_lost_state_is_refused_by_a_short_term_tracker():
    tracker, _ = _track({0: [LOW]})
    lost_state = tracker.track(_frame(1)).state
    short, _ = _track({0: []}, config=ST)
    with pytest.raises(InputError, match="long-term"):
        short.set_state(lost_state)


def test_a_lost_size_not_larger_than_the_instance_size_is_refused():
    with pytest.raises(InputError, match="lost_instance_size 255"):
        SiamRPNTracker(ScriptBackend({}, ST), dataclasses.replace(LT, lost_instance_size=255))


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # scale_z of a 0 px size
def test_a_state_without_a_usable_size_gives_a_clear_error_not_a_crop_failure():
    # the long-term state is not clipped: a size the model shrank to nothing reaches the crop
    tracker, _ = _track({0: []})
    tracker.set_state(dataclasses.replace(tracker.state, size_wh=np.array([0.0, 0.0])))
    with pytest.raises(ContractError, match="target 0: its state degenerated"):
        tracker.track(_frame(1))


@pytest.mark.parametrize("center, size", [((np.nan, 10.0), (20.0, 20.0)), ((10.0, np.inf), (20.0, 20.0)),
                                          ((10.0, 10.0), (np.nan, 20.0)), ((10.0, 10.0), (np.inf, 20.0))])
def test_a_non_finite_state_gives_the_same_clear_error(center, size):
    tracker, _ = _track({0: []})
    tracker.set_state(dataclasses.replace(tracker.state, center_xy=np.array(center), size_wh=np.array(size)))
    with pytest.raises(ContractError, match="target 0: its state degenerated"):
        tracker.track(_frame(1))

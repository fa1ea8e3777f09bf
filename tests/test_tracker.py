"""SiamRPNTracker: one full step checked against hand-computed values, batching, state, errors, timing."""
from __future__ import annotations

import math

import numpy as np
import pytest

from runtime.backends.base import Backend, Kernels
from runtime.contract import ModelSpec, TrackerConfig
from runtime.errors import ContractError, InputError
from runtime.timing import StageTimer
from runtime.tracker import SiamRPNTracker, TargetState, TrackResult

CFG = TrackerConfig()
A, S = 5, 25


class ScriptedBackend(Backend):
    """Stands in for a model: returns the given (cls, loc) batches in order, keeps the crops it saw."""

    name = "scripted"

    def __init__(self, outputs=(), config: TrackerConfig = CFG):
        self.tracker_config = config
        self.spec = ModelSpec(variant="scripted", exemplar_size=config.exemplar_size,
                              instance_size=config.instance_size, score_size=config.score_size,
                              anchor_num=config.anchor_num, levels=("",), kernel_channels=1, kernel_size=1)
        self.outputs = list(outputs)
        self.template_calls: list[np.ndarray] = []
        self.search_calls: list[np.ndarray] = []

    def _template_impl(self, crops):
        self.template_calls.append(crops)
        return Kernels(len(crops), (np.zeros((len(crops), 1, 1, 1), np.float32),))

    def _search_impl(self, crops, kernels):
        self.search_calls.append(crops)
        return self.outputs.pop(0)


def _frame(height=240, width=320, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _one_dominant_anchor():
    """cls/loc where anchor 2 (64x64) at row 14, column 10 has score 0.9 and every other candidate 0.5.

    Its anchor centre is (-96 + 8*10, -96 + 8*14) = (-16, 16) crop px; loc moves it by
    dx*64 = +16, dy*64 = -32 and scales it by exp(log 1.5) = 1.5: the box (0, -16, 96, 96).
    """
    cls = np.zeros((1, 2 * A, S, S), np.float32)
    cls[0, A + 2, 14, 10] = math.log(9.0)            # softmax([0, ln 9])[1] = 0.9
    loc = np.zeros((1, 4 * A, S, S), np.float32)
    loc[0, 2, 14, 10] = 0.25
    loc[0, A + 2, 14, 10] = -0.5
    loc[0, 2 * A + 2, 14, 10] = math.log(1.5)
    loc[0, 3 * A + 2, 14, 10] = math.log(1.5)
    return cls, loc


def test_one_step_matches_hand_computed_box():
    # Init box 63.5 x 63.5 at (100, 80): centre (100 + 62.5/2, 80 + 62.5/2) = (131.25, 111.25);
    # s_z = sqrt((63.5 + 63.5)^2) = 127, so scale_z = 127/127 = 1 (crop px = frame px), s_x = 255.
    cls, loc = _one_dominant_anchor()
    tracker = SiamRPNTracker(ScriptedBackend([(cls, loc)]))
    tracker.init(_frame(), [100.0, 80.0, 63.5, 63.5])
    result = tracker.track(_frame(seed=1))

    # Predicted box (0, -16, 96, 96) crop px. Scale change: sz(96, 96) = 192 vs sz(63.5, 63.5) = 127;
    # the ratio is unchanged (r_c = 1), so penalty = exp(-(192/127 - 1) * 0.05).
    penalty = math.exp(-(192 / 127 - 1) * 0.05)
    # It wins: penalty*0.9*0.58 + hann[14]*hann[10]*0.42 = 0.875 against at most 0.5*0.58 + 0.42 = 0.71.
    lr = penalty * 0.9 * 0.38
    width = 63.5 * (1 - lr) + 96 * lr
    cx, cy = 131.25 + 0.0, 111.25 - 16.0
    expected = [cx - width / 2, cy - width / 2, width, width]
    # 1e-6 px: float32 softmax (0.9 is not exact in float32) and float32 decode, in float64 otherwise
    np.testing.assert_allclose(result.box_xywh, expected, rtol=0, atol=1e-6)
    assert result.score == pytest.approx(0.9, abs=1e-6)
    np.testing.assert_allclose(result.state.center_xy, [cx, cy], atol=1e-9)
    np.testing.assert_allclose(result.state.size_wh, [width, width], atol=1e-6)


def test_init_crops_the_template_at_rounded_context_size():
    # 21 x 11 box at (150, 100): centre (160, 105); w_z = 21 + 16 = 37, h_z = 11 + 16 = 27,
    # s_z = round(sqrt(999) = 31.6) = 32; origin floor(160 - 16.5 + 0.5) = 144, floor(105 - 16.5 + 0.5) = 89.
    # So the crop is exactly frame[89:121, 144:176]: a white square whose last column is gray (100).
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[89:121, 144:176] = 255
    frame[89:121, 175] = 100
    backend = ScriptedBackend()
    SiamRPNTracker(backend).init(frame, [150.0, 100.0, 21.0, 11.0])
    template = backend.template_calls[0]
    assert template.shape == (1, 3, 127, 127) and template.dtype == np.float32
    # INTER_LINEAR maps output column 0 to source column 0 and column 126 to source 31 (clamped):
    # any black (a shifted origin, or a 33 px side) or a missing gray column (31 px side) shows here.
    assert np.all(template[..., 0] == 255.0)
    assert np.all(template[..., -1] == 100.0)


def test_tracker_does_not_mutate_frame_box_or_backend_outputs():
    cls, loc = _one_dominant_anchor()
    cls_before, loc_before = cls.copy(), loc.copy()
    frame0, frame1 = _frame(), _frame(seed=1)
    copies = frame0.copy(), frame1.copy()
    box = np.array([100.0, 80.0, 63.5, 63.5])
    tracker = SiamRPNTracker(ScriptedBackend([(cls, loc)]))
    tracker.init(frame0, box)
    tracker.track(frame1)
    np.testing.assert_array_equal(box, [100.0, 80.0, 63.5, 63.5])
    np.testing.assert_array_equal(frame0, copies[0])
    np.testing.assert_array_equal(frame1, copies[1])
    np.testing.assert_array_equal(cls, cls_before)
    np.testing.assert_array_equal(loc, loc_before)


def test_two_targets_in_one_batch_equal_two_single_trackers():
    rng = np.random.default_rng(7)
    steps = 3
    cls = rng.normal(size=(steps, 2, 2 * A, S, S)).astype(np.float32)
    loc = (0.3 * rng.normal(size=(steps, 2, 4 * A, S, S))).astype(np.float32)
    frames = [_frame(seed=s) for s in range(steps + 1)]
    boxes = np.array([[40.0, 30.0, 50.0, 70.0], [250.0, 180.0, 33.0, 21.0]])

    batch_backend = ScriptedBackend([(cls[t], loc[t]) for t in range(steps)])
    batch = SiamRPNTracker(batch_backend)
    states = batch.init(frames[0], boxes)
    assert isinstance(states, list) and len(states) == 2
    singles = []
    for n in range(2):
        single = SiamRPNTracker(ScriptedBackend([(cls[t, n:n + 1], loc[t, n:n + 1]) for t in range(steps)]))
        single.init(frames[0], boxes[n])
        singles.append(single)
    for t in range(steps):
        results = batch.track(frames[t + 1])
        assert len(results) == 2
        for n in range(2):
            one = singles[n].track(frames[t + 1])
            assert isinstance(one, TrackResult)
            np.testing.assert_array_equal(results[n].box_xywh, one.box_xywh)
            assert results[n].score == one.score
    # one backend call per stage for both targets
    assert len(batch_backend.template_calls) == 1 and batch_backend.template_calls[0].shape[0] == 2
    assert len(batch_backend.search_calls) == steps and batch_backend.search_calls[0].shape[0] == 2


def test_set_state_then_track_steps_from_that_state():
    cls, loc = _one_dominant_anchor()
    tracker = SiamRPNTracker(ScriptedBackend([(cls, loc)]))
    tracker.init(_frame(), [10.0, 10.0, 30.0, 40.0])
    avg = tracker.state.channel_average
    tracker.set_state(TargetState(center_xy=(131.25, 111.25), size_wh=(63.5, 63.5), channel_average=avg))
    result = tracker.track(_frame(seed=1))
    assert result.state.center_xy[0] == pytest.approx(131.25, abs=1e-9)   # dx moved the box by 0 px
    assert result.state.center_xy[1] == pytest.approx(95.25, abs=1e-6)    # dy moved it by -16 px


def test_state_is_read_only():
    tracker = SiamRPNTracker(ScriptedBackend())
    state = tracker.init(_frame(), [10.0, 10.0, 30.0, 40.0])
    with pytest.raises(ValueError):
        state.center_xy[0] = 5.0


def test_track_before_init_and_wrong_state_count_raise_input_error():
    tracker = SiamRPNTracker(ScriptedBackend())
    with pytest.raises(InputError, match="init"):
        tracker.track(_frame())
    tracker.init(_frame(), [10.0, 10.0, 30.0, 40.0])
    with pytest.raises(InputError, match="TargetState"):
        tracker.set_state([tracker.state, tracker.state])


@pytest.mark.parametrize("frame, box", [
    (np.zeros((240, 320, 3), np.float64), [10, 10, 20, 20]),
    (np.zeros((240, 320, 3), np.uint8), [10, 10, 0, 20]),
    (np.zeros((240, 320, 3), np.uint8), [400, 10, 20, 20]),
    (np.zeros((240, 320, 3), np.uint8), [10, 10, 0.1, 0.1]),     # context square rounds to 0 px
])
def test_bad_frames_and_boxes_raise_input_error(frame, box):
    with pytest.raises(InputError):
        SiamRPNTracker(ScriptedBackend()).init(frame, box)


def test_config_that_does_not_fit_the_backend_is_a_contract_error():
    alex = TrackerConfig(instance_size=287, base_size=0)
    with pytest.raises(ContractError, match="tracker config"):
        SiamRPNTracker(ScriptedBackend(), config=alex)


def test_backend_output_of_the_wrong_shape_is_a_contract_error():
    bad = (np.zeros((1, 2 * A, 21, 21), np.float32), np.zeros((1, 4 * A, 21, 21), np.float32))
    tracker = SiamRPNTracker(ScriptedBackend([bad]))
    tracker.init(_frame(), [10.0, 10.0, 30.0, 40.0])
    with pytest.raises(ContractError, match="returned cls"):
        tracker.track(_frame())


def test_stage_timer_records_each_stage():
    cls, loc = _one_dominant_anchor()
    timer = StageTimer()
    tracker = SiamRPNTracker(ScriptedBackend([(cls, loc)]), timer=timer)
    tracker.init(_frame(), [100.0, 80.0, 63.5, 63.5])
    tracker.track(_frame(seed=1))
    counts = {name: len(v) for name, v in timer.samples.items()}
    assert counts == {"crop": 2, "preprocess": 2, "template": 1, "search": 1, "postprocess": 1}
    assert all(t >= 0.0 for v in timer.samples.values() for t in v)
    timer.reset()
    assert dict(timer.samples) == {}

"""Our tracker against pysot's own SiamRPNTracker, frame by frame (fixture: tests/data/pysot_tracker).

The fixture holds what pysot did on a synthetic sequence (frames rebuilt here by ``make_frames``) when
its model returned recorded cls/loc: the sha256 of every crop it made and the box and score it
reported. We replay the same frames and cls/loc through our tracker. See the fixture's README.md.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from runtime.backends.base import Backend, Kernels
from runtime.contract import ModelSpec, TrackerConfig
from runtime.tracker import SiamRPNTracker, TargetState

FIXTURE = Path(__file__).parent / "data" / "pysot_tracker" / "pysot_tracker_replay.npz"

R50 = TrackerConfig()  # siamrpn_r50_l234_dwxcorr (VOT) values, the contract's defaults
ALEX = TrackerConfig(instance_size=287, base_size=0, penalty_k=0.16, window_influence=0.40, lr=0.30)
CONFIGS = {"r50": R50, "alex": ALEX}

# Boxes are compared to 1e-3 px (the task's parity bound); they are float64 on both sides, and differ
# only through float32 exp/softmax ulps (numpy vs torch), ~1e-5 px at these crop scales.
BOX_TOL_PX = 1e-3
# Scores are float32 softmax outputs on both sides; torch's and numpy's exp may differ by an ulp.
SCORE_TOL = 1e-6


def make_frames(count: int, height: int = 240, width: int = 320) -> list[np.ndarray]:
    """Deterministic HxWx3 uint8 BGR frames: a textured background and a textured 60x60 square moving
    right and down until it leaves the frame partly. Integer arithmetic only, so every platform gets
    the same bytes (no random generator whose stream could change between numpy versions).
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    frames = []
    for t in range(count):
        frame = np.empty((height, width, 3), dtype=np.uint8)
        frame[..., 0] = (x * 3 + y * 5 + 7 * t) % 256
        frame[..., 1] = (x * y + 11 * t) % 256
        frame[..., 2] = ((x // 8 + y // 8) % 2) * 200 + 20
        left, top = 200 + 12 * t, 100 + 8 * t
        sq = (slice(top, min(top + 60, height)), slice(left, min(left + 60, width)))
        sy, sx = y[sq], x[sq]
        frame[sq] = np.stack([(sx * sx + 3 * sy * sy) % 256, (sx * 17) % 256, 255 - (sy * 9) % 256], axis=-1)
        frames.append(frame)
    return frames


class ReplayBackend(Backend):
    """Stands in for a model: returns pre-recorded cls/loc, one pair per search call, and keeps the
    crops it was given."""

    name = "replay"

    def __init__(self, config: TrackerConfig, outputs):
        self.tracker_config = config
        self.spec = ModelSpec(variant="replay", exemplar_size=config.exemplar_size,
                              instance_size=config.instance_size, score_size=config.score_size,
                              anchor_num=config.anchor_num, levels=("",), kernel_channels=1, kernel_size=1)
        self.outputs = list(outputs)
        self.template_crops: list[np.ndarray] = []
        self.search_crops: list[np.ndarray] = []

    def _template_impl(self, crops):
        self.template_crops.append(crops.copy())
        return Kernels(len(crops), (np.zeros((len(crops), 1, 1, 1), np.float32),))

    def _search_impl(self, crops, kernels):
        self.search_crops.append(crops.copy())
        return self.outputs.pop(0)


def _samples(blob: np.ndarray) -> np.ndarray:
    """32 evenly spaced values of the flattened (1, 3, S, S) crop: a readable diff when a sha differs."""
    flat = blob.reshape(-1)
    return flat[(np.linspace(0, 1, 32) * (flat.size - 1)).astype(np.int64)].astype(np.uint8)


def _sha(blob: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(blob, dtype=np.float32).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def fixture():
    return dict(np.load(FIXTURE))


def _recorded(fx, name):
    cls = fx[f"{name}_cls"].astype(np.float32)      # (T, 2A, S, S), float16-exact values
    loc = fx[f"{name}_loc"].astype(np.float32)
    return [(c[None].copy(), l[None].copy()) for c, l in zip(cls, loc)]


@pytest.mark.parametrize("name", ["r50", "alex"])
def test_sequence_replay_matches_pysot_crops_boxes_and_scores(fixture, name):
    frames = make_frames(len(fixture[f"{name}_boxes"]) + 1)
    backend = ReplayBackend(CONFIGS[name], _recorded(fixture, name))
    tracker = SiamRPNTracker(backend)
    tracker.init(frames[0], fixture[f"{name}_init_box"])
    np.testing.assert_array_equal(_samples(backend.template_crops[0]), fixture[f"{name}_z_samples"])
    assert _sha(backend.template_crops[0]) == str(fixture[f"{name}_z_sha"][0])
    for t, frame in enumerate(frames[1:]):
        result = tracker.track(frame)
        np.testing.assert_array_equal(_samples(backend.search_crops[t]), fixture[f"{name}_x_samples"][t])
        assert _sha(backend.search_crops[t]) == str(fixture[f"{name}_x_sha"][t]), f"search crop of frame {t + 1}"
        np.testing.assert_allclose(result.box_xywh, fixture[f"{name}_boxes"][t], rtol=0, atol=BOX_TOL_PX)
        assert abs(result.score - float(fixture[f"{name}_scores"][t])) < SCORE_TOL


@pytest.mark.parametrize("name", ["r50", "alex"])
def test_each_step_from_pysot_state_matches_pysot(fixture, name):
    """Stepping from pysot's own state every frame isolates one step from any drift of earlier ones."""
    frames = make_frames(len(fixture[f"{name}_boxes"]) + 1)
    recorded = _recorded(fixture, name)
    backend = ReplayBackend(CONFIGS[name], recorded)
    tracker = SiamRPNTracker(backend)
    tracker.init(frames[0], fixture[f"{name}_init_box"])
    for t, frame in enumerate(frames[1:]):
        tracker.set_state(TargetState(fixture[f"{name}_prev_centers"][t], fixture[f"{name}_prev_sizes"][t],
                                      fixture[f"{name}_channel_average"]))
        result = tracker.track(frame)
        np.testing.assert_allclose(result.state.center_xy, fixture[f"{name}_centers"][t], rtol=0, atol=BOX_TOL_PX)
        np.testing.assert_allclose(result.state.size_wh, fixture[f"{name}_sizes"][t], rtol=0, atol=BOX_TOL_PX)


def test_replay_exercises_padding_and_centre_clipping(fixture):
    """Guards the fixture itself: the r50 run must reach the frame edges, or it would not test them."""
    centers = fixture["r50_centers"]
    assert np.any(centers[:, 0] == 320.0) and np.any(centers[:, 1] == 240.0)

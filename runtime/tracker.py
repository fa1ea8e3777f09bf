"""The SiamRPN tracker: pysot's ``SiamRPNTracker`` in numpy, for one or N targets, any backend.

The tracker owns boxes, crops, anchors and post-processing; the backend (``runtime.backends.base``)
only turns crops into head outputs. With N targets, each stage makes ONE backend call for all of them.

Conventions (pysot's, kept for parity): boxes are ``[x, y, w, h]`` float64 in 0-based frame pixels;
``init`` takes the centre as ``x + (w-1)/2``, results report ``[cx - w/2, cy - h/2, w, h]``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from runtime.anchors import anchor_table, cosine_window
from runtime.backends.base import Backend, Kernels
from runtime.boxes import center_size_to_xywh, xywh_to_center_size
from runtime.contract import TrackerConfig
from runtime.crop import crop_targets, to_blob
from runtime.errors import ContractError, InputError
from runtime.frames import as_bgr_frame, as_boxes
from runtime.postprocess import select
from runtime.timing import NULL_TIMER


def _frozen(values, length: int) -> np.ndarray:
    arr = np.array(values, dtype=np.float64).reshape(length)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class TargetState:
    """What the tracker knows about one target between frames (read-only arrays).

    center_xy: (2,) float64 centre in frame pixels. size_wh: (2,) float64 width, height in frame
    pixels. channel_average: (3,) float64 B, G, R mean of the init frame (the crop padding colour).
    """

    center_xy: np.ndarray
    size_wh: np.ndarray
    channel_average: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "center_xy", _frozen(self.center_xy, 2))
        object.__setattr__(self, "size_wh", _frozen(self.size_wh, 2))
        object.__setattr__(self, "channel_average", _frozen(self.channel_average, 3))


@dataclass(frozen=True, eq=False)
class TrackResult:
    """One target on one frame.

    box_xywh: (4,) float64 ``[cx - w/2, cy - h/2, w, h]`` (pysot's output convention).
    score: raw foreground softmax score of the chosen anchor (before penalty and window), 0..1.
    state: the target's state after this frame.
    """

    box_xywh: np.ndarray
    score: float
    state: TargetState = field(repr=False)


class SiamRPNTracker:
    """Track one target (``init(frame, (4,) box)``) or N targets (``init(frame, (N, 4) boxes)``).

    backend: any ``runtime.backends.base.Backend``. config: post-processing constants (defaults to
    ``backend.tracker_config``); its geometry must match ``backend.spec``. timer: optional
    ``runtime.timing.StageTimer``.
    """

    def __init__(self, backend: Backend, config: TrackerConfig | None = None, timer=None):
        self.backend = backend
        self.config = config if config is not None else backend.tracker_config
        self.timer = timer if timer is not None else NULL_TIMER
        self._check_geometry()
        self._anchors = anchor_table(self.config)
        self._window = cosine_window(self.config)
        self._kernels: Kernels | None = None
        self._single = True
        self._center = np.zeros((0, 2))      # (N, 2) float64
        self._size = np.zeros((0, 2))        # (N, 2) float64
        self._average = np.zeros((0, 3))     # (N, 3) float64

    def _check_geometry(self) -> None:
        spec, cfg = self.backend.spec, self.config
        ours = (cfg.exemplar_size, cfg.instance_size, cfg.score_size, cfg.anchor_num)
        theirs = (spec.exemplar_size, spec.instance_size, spec.score_size, spec.anchor_num)
        if ours != theirs:
            raise ContractError(
                f"tracker config gives (exemplar, instance, score size, anchors) = {ours} but backend "
                f"{self.backend.name} expects {theirs}; use the tracker config stored with the model "
                "(the backend's tracker_config)")

    # -- state ---------------------------------------------------------------------------------
    @property
    def num_targets(self) -> int:
        return 0 if self._kernels is None else self._kernels.n

    @property
    def state(self) -> TargetState | list[TargetState]:
        """Current state: one TargetState after a single-box init, else a list of N."""
        self._require_init()
        states = [TargetState(c, s, a) for c, s, a in zip(self._center, self._size, self._average)]
        return states[0] if self._single else states

    def set_state(self, state: TargetState | Sequence[TargetState]) -> None:
        """Replace the state of the targets (same count as at ``init``; the template kernels stay)."""
        self._require_init()
        states = [state] if isinstance(state, TargetState) else list(state)
        if len(states) != self._kernels.n or not all(isinstance(s, TargetState) for s in states):
            raise InputError(f"set_state: expected {self._kernels.n} TargetState object(s), one per "
                             f"target given to init, got {len(states)}")
        self._center = np.stack([s.center_xy for s in states]).astype(np.float64)
        self._size = np.stack([s.size_wh for s in states]).astype(np.float64)
        self._average = np.stack([s.channel_average for s in states]).astype(np.float64)

    def _require_init(self) -> None:
        if self._kernels is None:
            raise InputError("the tracker has no target yet; call init(frame, box) first")

    # -- tracking ------------------------------------------------------------------------------
    def init(self, frame: np.ndarray, box_xywh) -> TargetState | list[TargetState]:
        """Start tracking. frame: HxWx3 uint8 BGR (see ``runtime.frames``). box_xywh: (4,) or (N, 4)
        ``[x, y, w, h]`` 0-based pixels. Returns the initial TargetState (a list for (N, 4) boxes).
        """
        frame = as_bgr_frame(frame)
        boxes, single = as_boxes(box_xywh, frame.shape[:2])
        cfg = self.config
        center, size = xywh_to_center_size(boxes)                             # (N, 2), (N, 2)
        average = np.mean(frame, axis=(0, 1))                                 # (3,) float64, as pysot
        n = len(boxes)
        context = cfg.context_amount * (size[:, 0] + size[:, 1])
        s_z = np.round(np.sqrt((size[:, 0] + context) * (size[:, 1] + context)))   # half to even, as round()
        if np.any(s_z < 1):
            raise InputError(f"box {boxes[int(np.argmin(s_z))].tolist()}: too small to crop a template "
                             "(its context square rounds to 0 px); pass a box at least 1 px wide and high")
        with self.timer.stage("crop"):
            crops = crop_targets(frame, center, cfg.exemplar_size, s_z.astype(np.int64),
                                 np.broadcast_to(average, (n, 3)))
        with self.timer.stage("preprocess"):
            blob = to_blob(crops)                                             # (N, 3, E, E) float32
        with self.timer.stage("template"):
            kernels = self.backend.run_template(blob)
        self._kernels = kernels
        self._single = single
        self._center, self._size = center, size
        self._average = np.tile(average, (n, 1))
        return self.state

    def track(self, frame: np.ndarray) -> TrackResult | list[TrackResult]:
        """Locate the target(s) in ``frame``: a TrackResult, or a list of N after an (N, 4) init."""
        self._require_init()
        frame = as_bgr_frame(frame)
        cfg = self.config
        context = cfg.context_amount * (self._size[:, 0] + self._size[:, 1])
        s_z = np.sqrt((self._size[:, 0] + context) * (self._size[:, 1] + context))   # (N,) not rounded
        scale_z = cfg.exemplar_size / s_z
        s_x = s_z * (cfg.instance_size / cfg.exemplar_size)
        with self.timer.stage("crop"):
            crops = crop_targets(frame, self._center, cfg.instance_size, np.round(s_x).astype(np.int64),
                                 self._average)
        with self.timer.stage("preprocess"):
            blob = to_blob(crops)                                             # (N, 3, X, X) float32
        with self.timer.stage("search"):
            cls, loc = self.backend.run_search(blob, self._kernels)
        with self.timer.stage("postprocess"):
            self._check_outputs(cls, loc, len(blob))
            chosen = select(cls, loc, self._center, self._size, scale_z, frame.shape[:2], cfg,
                            self._anchors, self._window)
            self._center, self._size = chosen.center_xy, chosen.size_wh
            boxes = center_size_to_xywh(chosen.center_xy, chosen.size_wh)     # (N, 4)
            boxes.setflags(write=False)
            results = [TrackResult(box, float(score), TargetState(c, s, a))
                       for box, score, c, s, a in zip(boxes, chosen.score, self._center, self._size,
                                                      self._average)]
        return results[0] if self._single else results

    def _check_outputs(self, cls, loc, n: int) -> None:
        spec = self.backend.spec
        if getattr(cls, "shape", None) != spec.cls_shape(n) or getattr(loc, "shape", None) != spec.loc_shape(n):
            raise ContractError(
                f"backend {self.backend.name} returned cls {getattr(cls, 'shape', None)} and loc "
                f"{getattr(loc, 'shape', None)}, expected {spec.cls_shape(n)} and {spec.loc_shape(n)}; "
                "the model does not match its tracker config")

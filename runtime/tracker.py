"""The SiamRPN tracker: pysot's ``SiamRPNTracker`` in numpy, for one or N targets, any backend; with
``TrackerConfig.long_term`` it is pysot's ``SiamRPNLTTracker`` (re-detection in a large crop once lost).

The tracker owns boxes, crops, anchors and post-processing; the backend (``runtime.backends.base``)
only turns crops into head outputs. With N targets, each stage makes ONE backend call for all of them;
the long-term tracker makes at most two per frame, because one batched call needs one crop size: the
targets in the normal state (``instance_size`` crops) and the lost ones (``lost_instance_size``).

Long-term state machine (pysot ``SiamRPNLTTracker.track``, see ``runtime.postprocess.long_term_update``):
a target whose chosen raw score falls below ``confidence_low`` keeps its old state and is lost; while
lost, its search crop is ``lost_instance_size`` (831 px, a 97x97 response map for r50) with window
influence 0.001; a score above ``confidence_high`` brings it back. Unlike pysot, ``init`` always starts
in the normal state: pysot sets ``longterm_state`` only in the constructor, so a tracker object re-used
for the next video (as pysot's tools/test.py does) starts that video lost if the previous one ended lost.

Conventions (pysot's, kept for parity): boxes are ``[x, y, w, h]`` float64 in 0-based frame pixels;
``init`` takes the centre as ``x + (w-1)/2``, results report ``[cx - w/2, cy - h/2, w, h]``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from runtime.anchors import anchor_table, cosine_window
from runtime.backends.base import Backend, Kernels
from runtime.boxes import center_size_to_xywh, xywh_to_center_size
from runtime.contract import TrackerConfig
from runtime.crop import CropWorkspace, crop_targets, to_blob
from runtime.errors import ContractError, InputError
from runtime.frames import as_bgr_frame, as_boxes
from runtime.postprocess import LOST_WINDOW_INFLUENCE, choose, clip_to_frame, long_term_update
from runtime.timing import NULL_TIMER


def _frozen(values, length: int) -> np.ndarray:
    arr = np.array(values, dtype=np.float64).reshape(length)
    arr.setflags(write=False)
    return arr


def _context_sides(size_wh: np.ndarray, context_amount: float) -> np.ndarray:
    """(N,) float64 side of each target's context square, pysot's ``sqrt(w_z * h_z)`` with
    ``w_z = w + a * (w + h)`` (same for h), not rounded; in Python floats, the same IEEE operations in
    the same order as numpy's, for a fraction of its per-call cost on a few values."""
    sides = []
    for w, h in size_wh.tolist():
        context = context_amount * (w + h)
        sides.append(math.sqrt((w + context) * (h + context)))
    return np.array(sides, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class TargetState:
    """What the tracker knows about one target between frames (read-only arrays).

    center_xy: (2,) float64 centre in frame pixels. size_wh: (2,) float64 width, height in frame
    pixels. channel_average: (3,) float64 B, G, R mean of the init frame (the crop padding colour).
    lost: the long-term tracker's lost state (the next search uses the large crop); always False for
    the short-term tracker. ``set_state`` restores it with the rest.
    """

    center_xy: np.ndarray
    size_wh: np.ndarray
    channel_average: np.ndarray
    lost: bool = False

    def __post_init__(self):
        object.__setattr__(self, "center_xy", _frozen(self.center_xy, 2))
        object.__setattr__(self, "size_wh", _frozen(self.size_wh, 2))
        object.__setattr__(self, "channel_average", _frozen(self.channel_average, 3))
        object.__setattr__(self, "lost", bool(self.lost))

    @classmethod
    def _of(cls, center_xy: np.ndarray, size_wh: np.ndarray, channel_average: np.ndarray,
            lost: bool) -> "TargetState":
        """The tracker's own per-frame constructor: read-only float64 rows of the right shapes, taken as
        they are (``__init__`` copies and checks them; that is most of a frame's result-building cost)."""
        state = object.__new__(cls)
        for name, value in (("center_xy", center_xy), ("size_wh", size_wh),
                            ("channel_average", channel_average), ("lost", lost)):
            object.__setattr__(state, name, value)
        return state


@dataclass(frozen=True, eq=False)
class TrackResult:
    """One target on one frame.

    box_xywh: (4,) float64 ``[cx - w/2, cy - h/2, w, h]`` (pysot's output convention).
    score: raw foreground softmax score of the chosen anchor (before penalty and window), 0..1.
    state: the target's state after this frame. The short-term tracker's state is the reported box;
    the long-term tracker's is pysot's ``center_pos``/``size``, stored before the clip to the frame (its
    centre may lie outside the frame) and left unchanged on a frame scored below ``confidence_low``.
    lost: True when, after this frame, the target is in the long-term tracker's lost state (its next
    search uses the ``lost_instance_size`` crop); always False for the short-term tracker.
    """

    box_xywh: np.ndarray
    score: float
    state: TargetState = field(repr=False)
    lost: bool = False


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
        self._workspace = CropWorkspace()    # padding canvases and crop/blob arrays reused frame to frame
        self._output_shapes: dict[tuple, tuple] = {}   # (N, crop side) -> expected (cls, loc) shapes
        self._check_geometry()
        # anchors and cosine window per search crop side, built once (cached in runtime.anchors)
        cfg = self.config
        self._grids = {cfg.instance_size: (anchor_table(cfg), cosine_window(cfg))}
        if cfg.long_term:
            self._grids[cfg.lost_instance_size] = (anchor_table(cfg, cfg.lost_score_size),
                                                   cosine_window(cfg, cfg.lost_score_size))
        self._kernels: Kernels | None = None
        self._subset_kernels: dict[tuple[int, ...], Kernels] = {}
        self._template_blob = np.zeros((0, 3, cfg.exemplar_size, cfg.exemplar_size), np.float32)
        self._single = True
        self._center = np.zeros((0, 2))      # (N, 2) float64
        self._size = np.zeros((0, 2))        # (N, 2) float64
        self._average = np.zeros((0, 3))     # (N, 3) float64
        self._lost = np.zeros(0, dtype=bool)  # (N,) long-term lost state; all False when short-term
        self._every = np.arange(0)           # (N,) 0..N-1, the indices of the all-targets group

    def _check_geometry(self) -> None:
        spec, cfg = self.backend.spec, self.config
        ours = (cfg.exemplar_size, cfg.instance_size, cfg.score_size, cfg.anchor_num)
        theirs = (spec.exemplar_size, spec.instance_size, spec.score_size, spec.anchor_num)
        if ours != theirs:
            raise ContractError(
                f"tracker config gives (exemplar, instance, score size, anchors) = {ours} but backend "
                f"{self.backend.name} expects {theirs}; use the tracker config stored with the model "
                "(the backend's tracker_config)")
        # An export without the large graph (lost_instance_size 0) is only refused once a target is
        # lost, by Backend.run_search, whose error names the re-export command.
        if cfg.long_term and cfg.lost_instance_size <= cfg.instance_size:
            raise InputError(f"long-term tracker config: lost_instance_size {cfg.lost_instance_size} must be "
                             f"larger than instance_size {cfg.instance_size} (pysot's default is 831)")
        lost_ours = (cfg.lost_instance_size, cfg.lost_score_size)
        lost_theirs = (spec.lost_instance_size, spec.lost_score_size)
        if cfg.long_term and spec.lost_instance_size and lost_ours != lost_theirs:
            raise ContractError(
                f"long-term tracker config gives (lost instance size, lost score size) = {lost_ours} but "
                f"backend {self.backend.name} was exported for {lost_theirs}; use the tracker config stored "
                "with the model, or re-export it with this TRACK.LOST_INSTANCE_SIZE")

    # -- state ---------------------------------------------------------------------------------
    @property
    def num_targets(self) -> int:
        return 0 if self._kernels is None else self._kernels.n

    @property
    def state(self) -> TargetState | list[TargetState]:
        """Current state: one TargetState after a single-box init, else a list of N."""
        self._require_init()
        states = [TargetState(c, s, a, bool(lost))
                  for c, s, a, lost in zip(self._center, self._size, self._average, self._lost)]
        return states[0] if self._single else states

    def set_state(self, state: TargetState | Sequence[TargetState]) -> None:
        """Replace the state of the targets (same count as at ``init``; the template kernels stay),
        including the long-term lost flag."""
        self._require_init()
        states = [state] if isinstance(state, TargetState) else list(state)
        if len(states) != self._kernels.n or not all(isinstance(s, TargetState) for s in states):
            raise InputError(f"set_state: expected {self._kernels.n} TargetState object(s), one per "
                             f"target given to init, got {len(states)}")
        if not self.config.long_term and any(s.lost for s in states):
            raise InputError("set_state: a TargetState with lost=True comes from the long-term tracker; "
                             "this tracker is short-term (TrackerConfig.long_term False) and has no lost state")
        self._center = np.stack([s.center_xy for s in states]).astype(np.float64)
        self._size = np.stack([s.size_wh for s in states]).astype(np.float64)
        self._average = np.stack([s.channel_average for s in states]).astype(np.float64)
        self._lost = np.array([s.lost for s in states], dtype=bool)

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
                                 np.broadcast_to(average, (n, 3)), self._workspace)
        with self.timer.stage("preprocess"):
            blob = to_blob(crops, self._workspace.blob_for(crops), self._workspace.planes_for(crops))   # (N, 3, E, E)
        with self.timer.stage("template"):
            kernels = self.backend.run_template(blob)
        self._kernels = kernels
        self._subset_kernels = {}
        # kept only to remake device-resident kernels for a subset of targets (see _kernels_for); a copy,
        # since a preprocessing buffer may be reused by the next call
        self._template_blob = blob.copy() if cfg.long_term and n > 1 else self._template_blob[:0]
        self._single = single
        self._center, self._size = center, size
        self._average = np.tile(average, (n, 1))
        self._lost = np.zeros(n, dtype=bool)
        return self.state

    def track(self, frame: np.ndarray) -> TrackResult | list[TrackResult]:
        """Locate the target(s) in ``frame``: a TrackResult, or a list of N after an (N, 4) init."""
        self._require_init()
        frame = as_bgr_frame(frame)
        cfg = self.config
        s_z = _context_sides(self._size, cfg.context_amount)               # (N,) not rounded
        scale_z = cfg.exemplar_size / s_z
        groups = self._groups()
        whole = len(groups) == 1     # the usual case: one call for every target, no scatter into copies
        if not whole:
            center, size, lost = self._center.copy(), self._size.copy(), self._lost.copy()
            box_center, box_size = center.copy(), size.copy()
            score = np.zeros(len(center), dtype=np.float32)
        for side, idx in groups:
            cls, loc = self._search(frame, idx, side, s_z if whole else s_z[idx])
            with self.timer.stage("postprocess"):
                anchors, window = self._grids[side]
                influence = LOST_WINDOW_INFLUENCE if self._lost[idx[0]] else cfg.window_influence
                old_center, old_size = (self._center, self._size) if whole else (self._center[idx], self._size[idx])
                chosen = choose(cls, loc, old_center, old_size, scale_z if whole else scale_z[idx], cfg,
                                anchors, window, influence)
                if cfg.long_term:   # state before the clip, kept when the score is low (pysot's LT order)
                    step = long_term_update(chosen, old_center, old_size, self._lost[idx], frame.shape[:2], cfg)
                    part = (step.center_xy, step.size_wh, step.lost, step.box_center_xy, step.box_size_wh)
                else:               # the short-term tracker's state is the clipped box
                    clipped = clip_to_frame(chosen.center_xy, chosen.size_wh, frame.shape[:2])
                    part = clipped + (np.zeros(len(idx), dtype=bool),) + clipped
                if whole:
                    center, size, lost, box_center, box_size = part
                    score = chosen.score
                else:
                    center[idx], size[idx], lost[idx], box_center[idx], box_size[idx] = part
                    score[idx] = chosen.score
        # read-only from here on: the tracker never writes into a state array (each frame makes new ones),
        # so the results' TargetStates can hold rows of them instead of copies
        for arr in (center, size, self._average):
            arr.setflags(write=False)
        self._center, self._size, self._lost = center, size, lost
        boxes = center_size_to_xywh(box_center, box_size)                    # (N, 4)
        boxes.setflags(write=False)
        results = [TrackResult(box, float(sc), TargetState._of(c, s, a, bool(lo)), bool(lo))
                   for box, sc, c, s, a, lo in zip(boxes, score.tolist(), center, size, self._average,
                                                   lost.tolist())]
        return results[0] if self._single else results

    def _groups(self) -> list[tuple[int, np.ndarray]]:
        """(search crop side, target indices) per batched search call: one group when every target is in
        the same state, else the normal targets, then the lost ones."""
        cfg = self.config
        if not cfg.long_term or not self._lost.any():
            n = len(self._lost)
            if len(self._every) != n:
                self._every = np.arange(n)   # made once: the usual group is every target, every frame
                self._every.setflags(write=False)
            return [(cfg.instance_size, self._every)]
        groups = [(cfg.instance_size, np.flatnonzero(~self._lost)),
                  (cfg.lost_instance_size, np.flatnonzero(self._lost))]
        return [(side, idx) for side, idx in groups if len(idx)]

    def _search(self, frame: np.ndarray, idx: np.ndarray, side: int, s_z: np.ndarray):
        """Crop targets ``idx`` at ``side`` px (context ``s_z * side / exemplar``) and run the search."""
        cfg = self.config
        s_x = (s_z * (side / cfg.exemplar_size)).tolist()
        center = self._center if len(idx) == len(self._center) else self._center[idx]
        # in Python floats (a few targets: cheaper than numpy's per-call cost): round() is half to even,
        # like np.round, and gives the ints the crop needs; a non-finite side or centre fails the check
        crop_sides = [round(v) for v in s_x] if all(math.isfinite(v) for v in s_x) else []
        if not (crop_sides and all(c >= 1 for c in crop_sides)
                and all(math.isfinite(v) for v in center.ravel().tolist())):
            # pysot would fail inside its crop; the long-term state is not clipped, so a size the model
            # kept shrinking (or non-finite outputs) reaches this point
            crop_sides = np.round(s_x)
            bad = ~np.isfinite(crop_sides) | ~np.all(np.isfinite(center), axis=1) | (crop_sides < 1)
            i = int(idx[np.argmax(bad)])
            raise ContractError(
                f"target {i}: its state degenerated (centre {self._center[i].tolist()}, size "
                f"{self._size[i].tolist()}), so no search crop can be cut; the model's outputs were not "
                "usable (non-finite or vanishing boxes). Check the model, or init the target again")
        with self.timer.stage("crop"):
            crops = crop_targets(frame, center, side, crop_sides, self._average[idx], self._workspace,
                                 targets=idx)
        with self.timer.stage("preprocess"):
            blob = to_blob(crops, self._workspace.blob_for(crops), self._workspace.planes_for(crops))   # (n, 3, X, X)
        with self.timer.stage("search"):
            cls, loc = self.backend.run_search(blob, self._kernels_for(idx))
        self._check_outputs(cls, loc, len(blob), side)
        return cls, loc

    def _kernels_for(self, idx: np.ndarray) -> Kernels:
        """The template kernels of targets ``idx`` (all of them: the kernels from ``init``)."""
        if len(idx) == self._kernels.n:
            return self._kernels
        key = tuple(int(i) for i in idx)
        if key not in self._subset_kernels:
            if self._kernels.arrays is not None:
                subset = Kernels(len(idx), tuple(np.ascontiguousarray(a[idx]) for a in self._kernels.arrays))
            else:
                # device-resident kernels are opaque to the tracker: make the subset's from its template
                # crops (the groups change only when a target is lost or found, so this is rare)
                with self.timer.stage("template"):
                    subset = self.backend.run_template(self._template_blob[idx])
            if len(self._subset_kernels) >= 8:
                self._subset_kernels.clear()
            self._subset_kernels[key] = subset
        return self._subset_kernels[key]

    def _check_outputs(self, cls, loc, n: int, side: int | None = None) -> None:
        want = self._output_shapes.get((n, side))
        if want is None:
            spec = self.backend.spec
            want = self._output_shapes[(n, side)] = (spec.cls_shape(n, side), spec.loc_shape(n, side))   # side None: instance size
        want_cls, want_loc = want
        if getattr(cls, "shape", None) != want_cls or getattr(loc, "shape", None) != want_loc:
            raise ContractError(
                f"backend {self.backend.name} returned cls {getattr(cls, 'shape', None)} and loc "
                f"{getattr(loc, 'shape', None)}, expected {want_cls} and {want_loc}; "
                "the model does not match its tracker config")

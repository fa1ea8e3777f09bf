"""The public Python API: one import to open a model and track a target with any backend.

    from siamtrack import Tracker
    tracker = Tracker.open("artifacts/lite0")          # backend="auto", precision=None, tracker="auto"
    tracker.init(first_frame, (120, 80, 60, 40))       # BGR uint8 frame, x, y, w, h in pixels
    result = tracker.track(next_frame)                 # result.box_xywh, result.score, result.state

This module only composes the runtime (``runtime.backends.open_backend`` + ``runtime.tracker``); it
imports no backend library until ``Tracker.open`` runs, so ``import siamtrack`` stays instant.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.backends import open_backend
from runtime.protocol import box_to_vot_polygon, one_pass_init_box, vot_init_box, vot_region_to_box
from runtime.tracker import TargetState, TrackResult
from runtime.tracker_choice import open_tracker

__all__ = ["Tracker", "TrackResult", "TargetState", "one_pass_init_box", "vot_region_to_box", "vot_init_box",
           "box_to_vot_polygon"]


class Tracker:
    """A SiamRPN++ tracker on one backend, following one target (or N targets, see ``init``).

    Conventions (the same everywhere in this project, and pysot's):

    - **frames** are ``HxWx3 uint8`` arrays in **BGR** channel order, as ``cv2.imread`` and
      ``cv2.VideoCapture`` return them (a grayscale ``HxW`` array is refused: convert it with
      ``cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)``);
    - **boxes** are ``[x, y, w, h]``: the top-left corner and the size, in **0-based pixel**
      coordinates of the frame (floats are fine);
    - ``init`` takes the target centre as ``x + (w-1)/2`` and results report ``[cx - w/2, cy - h/2, w, h]``
      (pysot's own half-pixel asymmetry, kept so boxes equal pysot's). To reproduce pysot's one-pass
      benchmark numbers, initialise with ``one_pass_init_box(gt_box)``; VOT polygons become boxes
      with ``vot_region_to_box(region)``.

    ``track`` returns a frozen ``TrackResult``: ``box_xywh`` ((4,) float64, read-only), ``score``
    (the raw foreground probability of the chosen anchor, 0..1; low values mean the target is likely
    lost), ``state`` (a ``TargetState``: centre, size, padding colour; ``set_state`` restores one) and
    ``lost`` (the long-term tracker's lost state after this frame).

    Two trackers (``tracker=``): "short-term" (pysot's SiamRPN++ tracker) and "long-term" (pysot's
    SiamRPNLTTracker: under a score of ``confidence_low`` (0.85) it declares the target lost and searches
    a ``lost_instance_size`` (831 px) crop around the last position, without size updates, until a score
    above ``confidence_high`` (0.998); ``result.lost`` says which state it is in). "auto" takes the
    model config's choice (pysot ``TRACK.TYPE``). Long-term needs an export with the large search graph
    (``siamtrack export ... --lost-search``); ``open`` says so at once when it is missing.

    Attributes: ``backend_name`` ("onnxruntime", "tensorrt" or "torch"), ``precision`` and ``flavour``
    of the artifacts in use (None for PyTorch), ``threads`` (what was asked for; None = the library's
    default), ``random_weights`` (True for a PyTorch model built with ``seed`` and no checkpoint), and
    ``backend`` (the ``runtime.backends.base.Backend`` itself, for batching or timing), ``long_term``
    (True when the long-term tracker runs).
    """

    def __init__(self, backend, *, threads: int | None = None, tracker: str = "auto"):
        """Wrap an already opened ``runtime.backends.base.Backend``; most code calls ``Tracker.open``.
        tracker: "auto", "short-term" or "long-term" (see the class doc)."""
        self.backend = backend
        self.threads = threads
        self._tracker = open_tracker(backend, tracker)

    @classmethod
    def open(cls, model: str | Path, *, backend: str = "auto", precision: str | None = None,
             threads: int | None = None, checkpoint: str | Path | None = None, flavour: str | None = None,
             seed: int | None = None, tracker: str = "auto") -> "Tracker":
        """Open a model and return a Tracker.

        model: a folder of exported artifacts (``siamtrack export`` / ``build.sh`` output, e.g.
        ``artifacts/lite0``), or a pysot ``config.yaml`` (or built-in name r50, r50_otb, mobilev2,
        alex, lite0) together with ``checkpoint`` (pysot ``model.pth``).
        backend: "auto" (TensorRT engines on a GPU, else ONNX Runtime, else PyTorch), "tensorrt",
        "onnxruntime" or "torch". precision: "fp32", "fp16", "int8" or None (the best present for the
        backend). flavour: "plugin", "standard" or None. threads: CPU threads for ONNX Runtime's
        intra-op pool (per session) or torch (process-wide); None = the library's default; ignored by
        TensorRT. seed: PyTorch only, seeded random weights when no checkpoint is given (tests/demos).
        tracker: "auto" (the model config's TRACK.TYPE), "short-term" or "long-term" (see the class doc).

        Raises ``runtime.errors.SiamTrackError`` subclasses with a message saying what to do (missing
        files, a backend that cannot run here, mismatched artifacts).
        """
        opened = open_backend(str(model), checkpoint=str(checkpoint) if checkpoint else None, backend=backend,
                              precision=precision, flavour=flavour, seed=seed, threads=threads)
        try:
            return cls(opened, threads=threads, tracker=tracker)
        except BaseException:   # e.g. long-term asked of an export without the large search graph
            opened.close()
            raise

    # -- what is running ------------------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def precision(self) -> str | None:
        if getattr(self.backend, "precision", None):                 # TensorRT
            return self.backend.precision
        return getattr(getattr(self.backend, "meta", None), "precision", None)   # ONNX Runtime

    @property
    def flavour(self) -> str | None:
        return getattr(self.backend, "flavour", None)

    @property
    def long_term(self) -> bool:
        """True when pysot's long-term tracker (lost-state search) runs."""
        return bool(self._tracker.config.long_term)

    @property
    def random_weights(self) -> bool:
        return bool(getattr(self.backend, "random_weights", False))

    # -- tracking ---------------------------------------------------------------------------------
    def init(self, frame: np.ndarray, box_xywh) -> TargetState | list[TargetState]:
        """Start (or restart) tracking on ``frame`` (HxWx3 uint8 BGR) at ``box_xywh`` ((4,) ``[x, y, w, h]``,
        0-based pixels; or (N, 4) for N targets tracked together in one batch). Returns the initial
        TargetState (a list of N for (N, 4) boxes)."""
        return self._tracker.init(frame, box_xywh)

    def track(self, frame: np.ndarray) -> TrackResult | list[TrackResult]:
        """Locate the target in the next frame (HxWx3 uint8 BGR): a frozen TrackResult (``box_xywh``,
        ``score``, ``state``), or a list of N after an (N, 4) init."""
        return self._tracker.track(frame)

    @property
    def state(self) -> TargetState | list[TargetState]:
        """The current TargetState (after ``init``)."""
        return self._tracker.state

    def set_state(self, state) -> None:
        """Restore a TargetState (e.g. ``result.state`` of an earlier frame); the template stays."""
        self._tracker.set_state(state)

    def close(self) -> None:
        """Release the backend's sessions or engines (the Tracker cannot track afterwards)."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        parts = [self.backend_name] + [p for p in (self.precision, self.flavour) if p] \
            + (["long-term"] if self.long_term else [])
        return f"Tracker({', '.join(parts)})"

"""The live tracking loop: newest frame -> tracker.track -> lost state -> JSON line / overlay / recording.

The loop never queues frames: it always takes the newest one from ``LatestFrameGrabber``, so when the
tracker is slower than the camera it skips frames instead of lagging behind. While the source is
reconnecting the loop waits (the tracker keeps its state) and stays responsive to keys.

JSON lines (one object per processed frame, ``JSON_FIELDS``):
    frame       source frame index (int, see ``runtime.capture.Frame.index``)
    t_wall      capture time, Unix seconds (float)
    t_mono      capture time, time.monotonic() seconds (float; for differences only)
    box         [x, y, w, h] floats in frame pixels, or null when the state is "lost"
    score       the tracker's score for the frame (float 0..1), null on "init" frames
    state       "init" (target (re)selected on this frame) | "tracking" | "lost"
    latency_ms  capture to result, milliseconds (includes waiting in the slot and tracking)
    track_ms    time inside tracker.init / tracker.track, milliseconds
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from runtime.capture import Frame, LatestFrameGrabber, StreamEnded
from runtime.display import KEY_PAUSE, KEY_QUIT, KEY_RESELECT, draw_overlay, validate_box
from runtime.errors import InputError
from runtime.lost import LostMonitor, LostPolicy, TrackState
from runtime.sources import SourceError

JSON_FIELDS = ("frame", "t_wall", "t_mono", "box", "score", "state", "latency_ms", "track_ms")
STATE_INIT = "init"


@dataclass(frozen=True)
class LiveConfig:
    """backend_name: shown on the overlay. max_frames: stop after this many processed frames (None: never).
    first_frame_timeout_s: give up if the source delivers nothing for this long at the start.
    stall_timeout_s: give up after this long without a frame once running (None: wait for reconnects).
    poll_s: how long one wait for a frame lasts before the loop polls keys and checks timeouts.
    """

    backend_name: str = ""
    policy: LostPolicy = field(default_factory=LostPolicy)
    max_frames: int | None = None
    first_frame_timeout_s: float = 10.0
    stall_timeout_s: float | None = None
    poll_s: float = 0.05


@dataclass(frozen=True)
class LiveSummary:
    """What a run did. frames: processed frames (JSON lines written); skipped: source frames never
    processed between the first and last processed one; lost_frames: frames reported lost;
    latency_ms_*: capture-to-result; fps: processed frames per second of wall time."""

    frames: int
    skipped: int
    lost_frames: int
    transitions: tuple[tuple[int, str], ...]
    reconnects: int
    dropped: int
    end_reason: str
    seconds: float
    fps: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_max: float | None
    track_ms_mean: float | None

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["transitions"] = [list(t) for t in self.transitions]
        return d


class Recorder:
    """Annotated frames to a video file, written under a temporary name and moved into place on close,
    so a killed process never leaves a truncated file under the final name."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        self.fps = fps
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{os.getpid()}{self.path.suffix}")
        self._writer = None

    def write(self, image: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise InputError(f"--record {self.path}: OpenCV cannot write this file; use .mp4 or .avi "
                                 "in a writable folder")
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)


def _json_line(frame: Frame, box, score, state: str, done: float, track_s: float) -> str:
    record = {
        "frame": frame.index,
        "t_wall": round(frame.t_wall, 6),
        "t_mono": round(frame.t_mono, 6),
        "box": None if box is None else [round(float(v), 3) for v in box],
        "score": None if score is None else round(float(score), 5),
        "state": state,
        "latency_ms": round((done - frame.t_mono) * 1000, 3),
        "track_ms": round(track_s * 1000, 3),
    }
    return json.dumps(record)


class _Run:
    """State of one live run; ``run_live`` is its public face."""

    def __init__(self, grabber, tracker, window, json_out, recorder, cfg: LiveConfig):
        self.grabber, self.tracker, self.window = grabber, tracker, window
        self.json_out, self.recorder, self.cfg = json_out, recorder, cfg
        self.monitor = LostMonitor(cfg.policy)
        self.frames = 0
        self.lost_frames = 0
        self.first_index = self.last_index = None
        self.transitions: list[tuple[int, str]] = []
        self.latencies: list[float] = []
        self.track_times: list[float] = []
        self.fps = 0.0
        self._last_done: float | None = None
        self.last_drawn: tuple | None = None  # (image, box, score, state) of the newest overlay
        self.last_raw: Frame | None = None

    def emit(self, frame: Frame, box, score, state: str, track_s: float) -> None:
        done = time.monotonic()
        if self._last_done is not None and done > self._last_done:
            inst = 1.0 / (done - self._last_done)
            self.fps = inst if self.fps == 0 else 0.9 * self.fps + 0.1 * inst
        self._last_done = done
        self.frames += 1
        self.first_index = frame.index if self.first_index is None else self.first_index
        self.last_index = frame.index
        self.latencies.append((done - frame.t_mono) * 1000)
        self.track_times.append(track_s * 1000)
        if self.json_out is not None:
            self.json_out.write(_json_line(frame, box, score, state, done, track_s) + "\n")
            self.json_out.flush()
        if self.window is not None or self.recorder is not None:
            self.last_drawn = (frame.image, box, score, state)
            view = self.overlay()
            if self.recorder is not None:
                self.recorder.write(view)
            if self.window is not None:
                self.window.show(view)

    def overlay(self, note: str = "") -> np.ndarray:
        image, box, score, state = self.last_drawn
        return draw_overlay(image, box_xywh=box, score=score, state=state, fps=self.fps,
                            backend=self.cfg.backend_name, note=note)

    def init_target(self, frame: Frame, box) -> None:
        t0 = time.monotonic()
        self.tracker.init(frame.image, np.asarray(box, dtype=np.float64))
        track_s = time.monotonic() - t0
        self.monitor.reset()
        self.transitions.append((frame.index, STATE_INIT))
        self.emit(frame, box, None, STATE_INIT, track_s)

    def track(self, frame: Frame) -> None:
        t0 = time.monotonic()
        result = self.tracker.track(frame.image)
        track_s = time.monotonic() - t0
        before = self.monitor.state
        state = self.monitor.update(float(result.score))
        if state is not before:
            self.transitions.append((frame.index, state.value))
        lost = state is TrackState.LOST
        self.lost_frames += lost
        self.emit(frame, None if lost else result.box_xywh, result.score, state.value, track_s)

    def first_frame(self) -> Frame:
        deadline = time.monotonic() + self.cfg.first_frame_timeout_s
        while True:
            try:
                frame = self.grabber.next_frame(min(self.cfg.poll_s * 4, max(0.0, deadline - time.monotonic())))
            except StreamEnded:
                raise SourceError("the source ended before delivering a frame; check the file or stream") from None
            if frame is not None:
                return frame
            if time.monotonic() >= deadline:
                raise SourceError(f"no frame arrived within {self.cfg.first_frame_timeout_s:g} s of opening the "
                                  "source; check that the camera/stream is sending video and that no other program holds the "
                                  "camera, or raise --open-timeout")

    def select(self, frame: Frame, box) -> None:
        if box is None:
            if self.window is None:
                raise InputError("no target: pass --box x,y,w,h (required with --headless or without a display)")
            box = self.window.select_box(frame.image)
        else:
            box = validate_box(box, frame.image.shape)
        self.last_raw = frame
        self.init_target(frame, box)

    def handle_key(self, key: int, paused: bool) -> tuple[str | None, bool]:
        """(end reason or None, paused) after ``key``."""
        if key in KEY_QUIT:
            return "quit", paused
        if key in KEY_PAUSE:
            paused = not paused
            if paused and self.last_drawn is not None:
                self.window.show(self.overlay("PAUSED: space resumes, r re-selects, q quits"))
            return None, paused
        if key in KEY_RESELECT and self.last_raw is not None:
            frame = self.grabber.next_frame(0.0) or self.last_raw
            try:
                box = self.window.select_box(frame.image)
            except InputError:  # cancelled or empty: keep tracking the current target
                return None, paused
            self.last_raw = frame
            self.init_target(frame, box)
            return None, False
        return None, paused

    def loop(self) -> str:
        paused = False
        waiting_since = time.monotonic()
        while True:
            if self.cfg.max_frames is not None and self.frames >= self.cfg.max_frames:
                return "max-frames"
            if self.window is not None:
                reason, paused = self.handle_key(self.window.poll_key(1), paused)
                if reason:
                    return reason
            if paused:
                time.sleep(self.cfg.poll_s)
                continue
            try:
                frame = self.grabber.next_frame(self.cfg.poll_s)
            except StreamEnded:
                return "end-of-stream"
            if frame is None:
                stall = self.cfg.stall_timeout_s
                if stall is not None and time.monotonic() - waiting_since > stall:
                    raise SourceError(f"no frame for {stall:g} s (source state: {self.grabber.state}); "
                                      "check the camera or stream, or raise --stall-timeout")
                continue
            waiting_since = time.monotonic()
            self.last_raw = frame
            self.track(frame)


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def run_live(grabber: LatestFrameGrabber, tracker, *, box=None, window=None, json_out: TextIO | None = None,
             recorder: Recorder | None = None, config: LiveConfig | None = None) -> LiveSummary:
    """Track until the source ends, ``config.max_frames`` frames were processed, or the user quits.

    grabber: a started LatestFrameGrabber. tracker: ``init(frame, box_xywh)`` and ``track(frame)``
    returning an object with ``box_xywh`` and ``score`` (runtime.tracker.SiamRPNTracker).
    box: initial (x, y, w, h) in pixels, or None to select it with the mouse in ``window``.
    window: a runtime.display.Window, or None (headless). json_out: a text stream for JSON lines.
    """
    cfg = config or LiveConfig()
    run = _Run(grabber, tracker, window, json_out, recorder, cfg)
    start = time.monotonic()
    run.select(run.first_frame(), box)
    reason = run.loop()
    seconds = time.monotonic() - start
    stats = grabber.stats()
    track = run.track_times[1:] or run.track_times
    span = 0 if run.first_index is None else run.last_index - run.first_index + 1
    return LiveSummary(
        frames=run.frames, skipped=max(0, span - run.frames), lost_frames=run.lost_frames,
        transitions=tuple(run.transitions), reconnects=stats.reconnects, dropped=stats.dropped,
        end_reason=reason, seconds=round(seconds, 3), fps=round(run.frames / seconds, 3) if seconds > 0 else 0.0,
        latency_ms_p50=_percentile(run.latencies, 50), latency_ms_p95=_percentile(run.latencies, 95),
        latency_ms_max=_percentile(run.latencies, 100),
        track_ms_mean=round(float(np.mean(track)), 3) if track else None)

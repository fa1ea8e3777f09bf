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
    state       "init" (target (re)selected on this frame) | "tracking" | "lost" (the score rule of
                ``runtime.lost``, or the long-term tracker's own lost state with ``tracker_lost_state``)
    latency_ms  capture to result, milliseconds (includes waiting in the slot and tracking)
    track_ms    time inside tracker.init / tracker.track, milliseconds

Long runs: memory stays flat however long the loop runs. Latency and track-time statistics keep the
newest ``STATS_WINDOW`` frames (percentiles are over that window; mean and max over the whole
run), and the summary lists the newest ``MAX_TRANSITIONS`` state changes (``transitions_total`` counts all).

Ending a run: the source ends, ``max_frames``, the user quits, a ``StopRequest`` is set (the camera
command sets it from SIGINT/SIGTERM), or the JSON-lines reader goes away (a closed pipe: ``--json-out - |
head``). Each ends the loop after the current frame with a normal summary; ``end_reason`` says which.
"""
from __future__ import annotations

import collections
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from runtime.capture import Frame, LatestFrameGrabber, StreamEnded
from runtime.display import KEY_PAUSE, KEY_QUIT, KEY_RESELECT, draw_overlay, validate_box
from runtime import atomic
from runtime.errors import InputError
from runtime.live_stats import DEFAULT_WINDOW, RecentSamples
from runtime.lost import LostMonitor, LostPolicy, TrackState
from runtime.outputs import output_error
from runtime.sources import SourceError

JSON_FIELDS = ("frame", "t_wall", "t_mono", "box", "score", "state", "latency_ms", "track_ms")
STATE_INIT = "init"
MAX_TRANSITIONS = 1000  # state changes listed in the summary (the newest); transitions_total counts all
STATS_WINDOW = DEFAULT_WINDOW  # frames the latency percentiles cover (the newest)
END_OUTPUT_CLOSED = "output-closed"


class StopRequest:
    """Ask a running loop to end after the current frame, e.g. from a signal handler.

    ``request(reason)`` keeps the first reason (a second signal does not rename the end); the loop
    checks ``reason`` between frames and while waiting for one, so it ends within ``LiveConfig.poll_s``.
    """

    def __init__(self):
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


@dataclass(frozen=True)
class LiveConfig:
    """backend_name: shown on the overlay. max_frames: stop after this many processed frames (None: never).
    first_frame_timeout_s: give up if the source delivers nothing for this long at the start.
    stall_timeout_s: give up after this long without a frame once running (None: wait for reconnects).
    poll_s: how long one wait for a frame lasts before the loop polls keys and checks timeouts.
    tracker_lost_state: the tracker is the long-term one and its results carry ``lost``: the reported
    state follows the tracker's own lost state instead of ``policy``'s score rule.
    """

    backend_name: str = ""
    policy: LostPolicy = field(default_factory=LostPolicy)
    max_frames: int | None = None
    first_frame_timeout_s: float = 10.0
    stall_timeout_s: float | None = None
    poll_s: float = 0.05
    tracker_lost_state: bool = False


@dataclass(frozen=True)
class LiveSummary:
    """What a run did. frames: processed frames (JSON lines written); skipped: source frames never
    processed between the first and last processed one; lost_frames: frames reported lost;
    transitions: the newest MAX_TRANSITIONS (frame, state) changes, transitions_total: all of them;
    latency_ms_*: capture-to-result, percentiles over the newest ``stats_window`` frames, max over the
    run; track_ms_mean: mean time of tracker.track over the run; fps: processed frames per second of
    wall time. end_reason: end-of-stream | max-frames | quit | output-closed | SIGINT | SIGTERM | ..."""

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
    latency_ms_p99: float | None = None
    stats_window: int = 0
    transitions_total: int = 0

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
            atomic.replace(self._tmp, self.path)


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


def _silence(stream) -> None:
    """Point ``stream``'s file descriptor at /dev/null, so the writes and the flush still buffered for a
    reader that went away (a closed pipe) do not raise again at close or at interpreter exit (the
    recipe of Python's signal module documentation for SIGPIPE)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class _Run:
    """State of one live run; ``run_live`` is its public face."""

    def __init__(self, grabber, tracker, window, json_out, recorder, cfg: LiveConfig, stop: StopRequest):
        self.grabber, self.tracker, self.window = grabber, tracker, window
        self.json_out, self.recorder, self.cfg, self.stop = json_out, recorder, cfg, stop
        self.monitor = LostMonitor(cfg.policy)
        self.frames = 0
        self.lost_frames = 0
        self.first_index = self.last_index = None
        self.transitions: collections.deque[tuple[int, str]] = collections.deque(maxlen=MAX_TRANSITIONS)
        self.transitions_total = 0
        self.latencies = RecentSamples(STATS_WINDOW)
        self.track_times = RecentSamples(STATS_WINDOW)   # tracker.track only
        self.init_times = RecentSamples(1)   # tracker.init (first and re-selections)
        self.frame_shape: tuple[int, ...] | None = None  # of the frame the target was selected on
        self.output_closed = False
        self.fps = 0.0
        self._last_done: float | None = None
        self.last_drawn: tuple | None = None  # (image, box, score, state, index) of the newest overlay
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
        self.latencies.add((done - frame.t_mono) * 1000)
        if self.json_out is not None:
            self.write_line(_json_line(frame, box, score, state, done, track_s))
        if self.window is not None or self.recorder is not None:
            self.last_drawn = (frame.image, box, score, state, frame.index)
            view = self.overlay()
            if self.recorder is not None:
                self.recorder.write(view)
            if self.window is not None:
                self.window.show(view)

    def write_line(self, line: str) -> None:
        try:
            self.json_out.write(line + "\n")
            self.json_out.flush()
        except BrokenPipeError:  # the reader went away (`| head`): end the run quietly, not a traceback
            _silence(self.json_out)
            self.json_out = None
            self.output_closed = True
        except OSError as err:  # a full disk: the error, and no second one when the stream is closed
            stream, self.json_out = self.json_out, None
            _silence(stream)
            raise output_error(err, "JSON lines output", getattr(stream, "name", "")) from None

    def note_transition(self, index: int, state: str) -> None:
        self.transitions.append((index, state))
        self.transitions_total += 1

    def overlay(self, note: str = "") -> np.ndarray:
        image, box, score, state, index = self.last_drawn
        return draw_overlay(image, box_xywh=box, score=score, state=state, fps=self.fps,
                            backend=self.cfg.backend_name, note=note, frame_index=index)

    def init_target(self, frame: Frame, box) -> None:
        t0 = time.monotonic()
        self.tracker.init(frame.image, np.asarray(box, dtype=np.float64))
        track_s = time.monotonic() - t0
        self.init_times.add(track_s * 1000)
        self.frame_shape = frame.image.shape
        self.monitor.reset()
        self.note_transition(frame.index, STATE_INIT)
        self.emit(frame, box, None, STATE_INIT, track_s)

    def check_size(self, frame: Frame) -> None:
        """The box lives in the pixels of the frame it was selected on: a source whose picture size
        changes (an image folder of mixed sizes, a stream restarted at another resolution) would move it
        to wrong coordinates silently, so it is an error."""
        if frame.image.shape != self.frame_shape:
            (h0, w0), (h1, w1) = self.frame_shape[:2], frame.image.shape[:2]
            raise SourceError(f"frame {frame.index} is {w1}x{h1} but the target was selected on a {w0}x{h0} "
                              "frame; boxes are in frame pixels, so every frame of a run must have one size "
                              "(resize the images, or fix the camera mode)")

    def track(self, frame: Frame) -> None:
        self.check_size(frame)
        t0 = time.monotonic()
        result = self.tracker.track(frame.image)
        track_s = time.monotonic() - t0
        self.track_times.add(track_s * 1000)
        before = self.monitor.state
        tracker_lost = bool(result.lost) if self.cfg.tracker_lost_state else None
        state = self.monitor.update(float(result.score), tracker_lost=tracker_lost)
        if state is not before:
            self.note_transition(frame.index, state.value)
        lost = state is TrackState.LOST
        self.lost_frames += lost
        self.emit(frame, None if lost else result.box_xywh, result.score, state.value, track_s)

    def first_frame(self) -> Frame | None:
        """The first frame, or None when a stop was requested while waiting for it."""
        deadline = time.monotonic() + self.cfg.first_frame_timeout_s
        while True:
            if self.stop.reason:
                return None
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
            if self.stop.reason:
                return self.stop.reason
            if self.output_closed:
                return END_OUTPUT_CLOSED
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


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run_live(grabber: LatestFrameGrabber, tracker, *, box=None, window=None, json_out: TextIO | None = None,
             recorder: Recorder | None = None, config: LiveConfig | None = None,
             stop: StopRequest | None = None) -> LiveSummary:
    """Track until the source ends, ``config.max_frames`` frames were processed, or the user quits.

    grabber: a started LatestFrameGrabber. tracker: ``init(frame, box_xywh)`` and ``track(frame)``
    returning an object with ``box_xywh`` and ``score`` (runtime.tracker.SiamRPNTracker).
    box: initial (x, y, w, h) in pixels, or None to select it with the mouse in ``window``.
    window: a runtime.display.Window, or None (headless). json_out: a text stream for JSON lines (a
    reader closing it ends the run: end_reason "output-closed"). stop: set it to end the run after the
    current frame (end_reason = its reason).
    """
    cfg = config or LiveConfig()
    run = _Run(grabber, tracker, window, json_out, recorder, cfg, stop or StopRequest())
    start = time.monotonic()
    first = run.first_frame()
    if first is None:
        reason = run.stop.reason
    else:
        run.select(first, box)
        reason = run.loop()
    seconds = time.monotonic() - start
    stats = grabber.stats()
    track = run.track_times if run.track_times.count else run.init_times
    span = 0 if run.first_index is None else run.last_index - run.first_index + 1
    return LiveSummary(
        frames=run.frames, skipped=max(0, span - run.frames), lost_frames=run.lost_frames,
        transitions=tuple(run.transitions), reconnects=stats.reconnects, dropped=stats.dropped,
        end_reason=reason, seconds=round(seconds, 3), fps=round(run.frames / seconds, 3) if seconds > 0 else 0.0,
        latency_ms_p50=_rounded(run.latencies.percentile(50)), latency_ms_p95=_rounded(run.latencies.percentile(95)),
        latency_ms_max=_rounded(run.latencies.max), track_ms_mean=_rounded(track.mean()),
        latency_ms_p99=_rounded(run.latencies.percentile(99)), stats_window=run.latencies.window,
        transitions_total=run.transitions_total)

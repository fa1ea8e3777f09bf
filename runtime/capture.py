"""Capture on its own thread, keeping only the newest frame.

A live tracker must never fall behind a queue: if tracking one frame takes longer than the camera's
frame period, the frames that arrived meanwhile are overwritten, not queued, so every result is about
the most recent picture. ``LatestFrameGrabber`` counts those overwritten frames (``dropped``).

A live source that stops delivering (unplugged camera, dropped stream) is released and reopened with
exponential backoff, capped; the consumer simply sees no new frame for a while, so whatever it keeps
(the tracker's state) survives the outage. A file or folder that ends sets ``ended``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from runtime.errors import SiamTrackError
from runtime.sources import FrameSource, SourceError, abandon_thread

PACE_REALTIME = "realtime"   # file/folder frames released at their fps, skipped when the consumer is slow
PACE_EVERY_FRAME = "every-frame"  # file/folder: each frame waits for the consumer: lossless, as fast as it takes
PACES = (PACE_REALTIME, PACE_EVERY_FRAME)


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    image: HxWx3 uint8 BGR. index: 0-based position in the source's sequence as read by the grabber
    (kept counting across reconnects, so a gap between consecutive frames seen means skipped frames).
    t_mono: time.monotonic() seconds right after the read returned; t_wall: time.time() at the same moment.
    """

    image: np.ndarray
    index: int
    t_mono: float
    t_wall: float


@dataclass(frozen=True)
class ReconnectPolicy:
    """Backoff between reopen attempts: first_delay_s, doubled each failure, capped at max_delay_s.

    max_attempts: consecutive failed reopen attempts before giving up (None: keep trying until stopped).
    """

    first_delay_s: float = 0.25
    max_delay_s: float = 5.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reopen attempt ``attempt`` (1-based)."""
        return min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1))


@dataclass(frozen=True)
class GrabberStats:
    """Counters of a grabber. read: frames read from the source; delivered: frames handed to the
    consumer; dropped: frames overwritten before the consumer took them; reconnects: successful reopens."""

    read: int
    delivered: int
    dropped: int
    reconnects: int
    state: str


class StreamEnded(Exception):
    """The file or folder has no more frames (not an error)."""


class LatestFrameGrabber:
    """Reads ``source`` on a thread into a one-frame slot.

    opener: returns a freshly opened FrameSource; called again to reconnect a live source.
    source: an already opened source to start with (skips the first ``opener`` call).
    pace: for finite sources (``source.live`` False), PACE_REALTIME or PACE_EVERY_FRAME.
    Use as a context manager, or call ``start()`` and ``stop()``; ``stop`` always joins the thread.
    """

    def __init__(self, opener: Callable[[], FrameSource], *, source: FrameSource | None = None,
                 pace: str = PACE_REALTIME, reconnect: ReconnectPolicy | None = None,
                 fallback_fps: float = 30.0):
        if pace not in PACES:
            raise ValueError(f"pace must be one of {PACES}, got {pace!r}")
        self._opener = opener
        self._source = source
        self._pace = pace
        self._policy = reconnect or ReconnectPolicy()
        self._fallback_fps = fallback_fps
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._slot: Frame | None = None
        self._last_taken = -1
        self._read = self._delivered = self._dropped = self._reconnects = 0
        self._state = "starting"
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # consumer side -------------------------------------------------------------------------------------
    def start(self) -> "LatestFrameGrabber":
        self._thread = threading.Thread(target=self._run, name="LatestFrameGrabber", daemon=True)
        self._thread.start()
        return self

    def next_frame(self, timeout: float) -> Frame | None:
        """The newest frame not yet returned, waiting at most ``timeout`` s; None if none came in time.

        Raises StreamEnded when a finite source is exhausted, or the grabber's error if it gave up.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._slot is None or self._slot.index <= self._last_taken:
                if self._error is not None:
                    raise self._error
                if self._state == "ended":
                    raise StreamEnded()
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            frame = self._slot
            self._last_taken = frame.index
            self._delivered += 1
            self._cond.notify_all()  # an every-frame reader waits for this
            return frame

    @property
    def state(self) -> str:
        """starting | running | reconnecting | ended | failed | stopped."""
        return self._state

    @property
    def fps(self) -> float | None:
        src = self._source
        return src.fps if src is not None else None

    def stats(self) -> GrabberStats:
        with self._cond:
            return GrabberStats(self._read, self._delivered, self._dropped, self._reconnects, self._state)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading, release the source and join the thread (within ``timeout`` s per blocking read)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                abandon_thread(self._thread)  # interpreter exit waits for it rather than crash (sources.py)
                raise SourceError(f"the capture thread did not stop within {timeout:g} s (a read is stuck in "
                                  "the camera driver); the process may need to be restarted")
        with self._cond:
            if self._state not in ("ended", "failed"):
                self._state = "stopped"

    def __enter__(self) -> "LatestFrameGrabber":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # producer side -------------------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()

    def _publish(self, image: np.ndarray) -> None:
        frame = Frame(image, self._read, time.monotonic(), time.time())
        with self._cond:
            if self._slot is not None and self._slot.index > self._last_taken:
                self._dropped += 1
            self._slot = frame
            self._read += 1
            self._cond.notify_all()

    def _wait_taken(self) -> None:
        """every-frame pacing: block until the consumer took the frame in the slot (or stop)."""
        with self._cond:
            while (not self._stop.is_set() and self._slot is not None
                   and self._slot.index > self._last_taken):
                self._cond.wait(0.1)

    def _run(self) -> None:
        try:
            if self._source is None:
                self._source = self._opener()
            self._set_state("running")
            self._loop()
        except BaseException as exc:  # surfaced to the consumer by next_frame, never lost in the thread
            with self._cond:
                self._error = exc if isinstance(exc, SiamTrackError) else SourceError(
                    f"capture failed: {type(exc).__name__}: {exc}")
                self._state = "failed"
                self._cond.notify_all()
        finally:
            if self._source is not None:
                self._source.release()

    def _loop(self) -> None:
        started = None  # release time of this finite source's frame 0: the real-time pacing clock
        count = 0  # frames of this finite source released so far
        while not self._stop.is_set():
            source = self._source
            ok, image = source.read()
            if not ok:
                if not source.live:
                    self._set_state("ended")
                    return
                if not self._reconnect():
                    return
                continue
            if not source.live and self._pace == PACE_REALTIME:
                started = time.monotonic() if started is None else started
                due = started + count / (source.fps or self._fallback_fps)
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
            self._publish(image)
            count += 1
            if not source.live and self._pace == PACE_EVERY_FRAME:
                self._wait_taken()

    def _reconnect(self) -> bool:
        """Release and reopen a dropped live source with capped exponential backoff; False if stopped."""
        self._set_state("reconnecting")
        self._source.release()
        attempt = 0
        while True:
            attempt += 1
            if self._stop.wait(self._policy.delay(attempt)):
                return False
            try:
                self._source = self._opener()
            except SiamTrackError as exc:
                if self._policy.max_attempts is not None and attempt >= self._policy.max_attempts:
                    raise SourceError(f"the source dropped and {attempt} reopen attempts failed; last error: "
                                      f"{exc}") from exc
                continue
            with self._cond:
                self._reconnects += 1
            self._set_state("running")
            return True

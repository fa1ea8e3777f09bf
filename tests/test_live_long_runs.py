"""A live run that lasts weeks: bounded statistics, stop requests, a reader that goes away, and frames
that change size. The trackers are stand-ins (the loop is the subject; test_camera_signals.py runs the
real command in a subprocess)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from runtime import live
from runtime.capture import PACE_EVERY_FRAME, LatestFrameGrabber
from runtime.live import LiveConfig, StopRequest, run_live
from runtime.live_stats import RecentSamples
from runtime.sources import SourceError, SyntheticParams, SyntheticSource

BOX = (100, 80, 48, 48)


class _Result:
    def __init__(self, box, score):
        self.box_xywh, self.score = np.asarray(box, dtype=np.float64), score


class _Tracker:
    """Scores from ``scores`` in turn (cycled); calls ``on_track(n)`` after the n-th track."""

    def __init__(self, scores=(0.9,), on_track=None):
        self.scores, self.on_track, self.tracks = list(scores), on_track, 0

    def init(self, frame, box):
        self.box = np.asarray(box, dtype=np.float64)

    def track(self, frame):
        score = self.scores[self.tracks % len(self.scores)]
        self.tracks += 1
        if self.on_track:
            self.on_track(self.tracks)
        return _Result(self.box, score)


def _no_reopen():
    raise SourceError("no reopen in this test")


def _finite(frames: int, **kw) -> SyntheticSource:
    return SyntheticSource(SyntheticParams(width=64, height=64, fps=100, frames=frames), **kw)


def _run(source, tracker, **kw):
    with LatestFrameGrabber(_no_reopen, source=source, pace=PACE_EVERY_FRAME) as grabber:
        return run_live(grabber, tracker, box=(10, 10, 20, 20), **kw)


# -- bounded statistics -------------------------------------------------------------------------------
def test_recent_samples_percentiles_equal_numpy_over_the_window_and_mean_max_over_the_run():
    series = np.random.default_rng(0).gamma(2.0, 10.0, 25_000)  # a skewed latency-like series
    stats = RecentSamples(10_000)
    for v in series:
        stats.add(v)
    window = series[-10_000:]
    for q in (0, 1, 50, 95, 99, 100):
        assert stats.percentile(q) == pytest.approx(np.percentile(window, q), rel=0, abs=1e-12)
    assert stats.window == 10_000 and stats.count == 25_000
    assert stats.max == series.max() and stats.mean() == pytest.approx(series.mean(), rel=1e-12)
    np.testing.assert_array_equal(stats.recent(), window)


def test_recent_samples_shorter_than_the_window_cover_the_whole_run():
    stats = RecentSamples(100)
    for v in (5.0, 1.0, 3.0):
        stats.add(v)
    assert stats.percentile(50) == 3.0 and stats.window == 3
    assert RecentSamples(4).percentile(50) is None


def test_latency_percentiles_cover_the_newest_window_of_frames(monkeypatch):
    monkeypatch.setattr(live, "STATS_WINDOW", 40)
    out = io.StringIO()
    summary = _run(_finite(150), _Tracker(), json_out=out)
    latencies = np.array([json.loads(line)["latency_ms"] for line in out.getvalue().splitlines()])
    assert summary.frames == 150 and summary.stats_window == 40
    # the JSON lines round to 1 us, the summary to 1 us: equal within that
    assert summary.latency_ms_p50 == pytest.approx(np.percentile(latencies[-40:], 50), abs=2e-3)
    assert summary.latency_ms_p99 == pytest.approx(np.percentile(latencies[-40:], 99), abs=2e-3)
    assert summary.latency_ms_max == pytest.approx(latencies.max(), abs=2e-3)


def test_summary_keeps_the_newest_transitions_and_counts_all(monkeypatch):
    monkeypatch.setattr(live, "MAX_TRANSITIONS", 5)
    # lost after 1 weak score, found after 1 strong one: every track frame is a transition
    policy = live.LostPolicy(lost_below=0.3, found_above=0.5, frames_to_lose=1, frames_to_find=1)
    summary = _run(_finite(41), _Tracker(scores=(0.1, 0.9)), config=LiveConfig(policy=policy))
    assert summary.transitions_total == 41  # init + 40 changes
    assert summary.transitions == ((36, "tracking"), (37, "lost"), (38, "tracking"), (39, "lost"),
                                   (40, "tracking"))


# -- ending a run ---------------------------------------------------------------------------------------
def test_a_stop_request_ends_the_run_after_the_current_frame_with_its_reason():
    stop = StopRequest()
    tracker = _Tracker(on_track=lambda n: n == 7 and stop.request("SIGTERM"))
    summary = _run(_finite(100), tracker, stop=stop)
    assert summary.end_reason == "SIGTERM" and summary.frames == 8  # init + 7 tracked


def test_a_stop_requested_before_the_first_frame_ends_with_no_frames():
    stop = StopRequest()
    stop.request("SIGINT")
    stop.request("SIGTERM")  # the first reason stays
    summary = _run(_finite(10), _Tracker(), stop=stop)
    assert summary.end_reason == "SIGINT" and summary.frames == 0


class _ClosingPipe(io.StringIO):
    """A JSON-lines reader that goes away after ``lines`` lines, as `head -n` does."""

    def __init__(self, lines: int):
        super().__init__()
        self.left = lines

    def write(self, text):
        if self.left == 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= 1
        return super().write(text)


def test_a_reader_that_goes_away_ends_the_run_quietly():
    out = _ClosingPipe(3)
    summary = _run(_finite(50), _Tracker(), json_out=out)
    assert summary.end_reason == "output-closed" and summary.frames == 4  # the 4th line found the pipe closed
    assert len(out.getvalue().splitlines()) == 3


# -- frames must keep one size --------------------------------------------------------------------------
class _ResizingSource:
    """64x64 frames, then 80x64 from frame 3 on (a stream restarted at another resolution)."""

    live, fps, name = False, 100.0, "resizing"

    def __init__(self):
        self.n = 0

    def read(self):
        self.n += 1
        if self.n > 6:
            return False, None
        return True, np.zeros((64, 64 if self.n <= 3 else 80, 3), np.uint8)

    def release(self):
        pass


def test_a_frame_of_another_size_ends_the_run_naming_the_frame_and_both_sizes():
    with pytest.raises(SourceError, match=r"frame 3 is 80x64 but the target was selected on a 64x64 frame"):
        _run(_ResizingSource(), _Tracker())

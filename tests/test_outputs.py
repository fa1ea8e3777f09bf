"""Output locations are checked before any work; write failures are clear errors with no temp file left.

The commands here get a model that does not exist: if the output check did not come first, the error
would be about the model, so the message proves the order."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.errors import InputError
from runtime.outputs import output_error, prepare_output

REPO = Path(__file__).resolve().parents[1]


def test_missing_parent_folders_are_created(tmp_path):
    target = tmp_path / "a" / "b" / "boxes.txt"
    assert prepare_output(target, "--out") == target
    assert target.parent.is_dir() and list(target.parent.iterdir()) == []  # the probe is gone


@pytest.mark.parametrize("where, words", [
    ("under-a-file", "is a file"),
    ("proc", "cannot write there"),
    ("folder", "is a folder"),
])
def test_unusable_output_locations_are_refused_naming_the_option(tmp_path, where, words):
    (tmp_path / "file.txt").write_text("x")
    target = {"under-a-file": tmp_path / "file.txt" / "boxes.txt", "proc": Path("/proc/boxes.txt"),
              "folder": tmp_path}[where]
    with pytest.raises(InputError, match=words) as err:
        prepare_output(target, "--out")
    assert str(err.value).startswith(f"--out {target}")


def test_a_full_disk_is_described_as_such():
    err = output_error(OSError(errno.ENOSPC, "No space left on device"), "--out", "b.txt")
    assert "no space left on the device" in str(err) and str(err).startswith("--out b.txt")


def _cli(command: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siamtrack", command, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("option", ["--out", "--save-video"])
def test_track_refuses_an_output_under_a_file_before_loading_anything(tmp_path, option):
    (tmp_path / "file").write_text("x")
    proc = _cli("track", "--model", tmp_path / "no-such-model", "--video", tmp_path, "--box", "1,1,5,5",
                option, tmp_path / "file" / "out.avi")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{option} {tmp_path / 'file' / 'out.avi'}: " in proc.stderr and "no-such-model" not in proc.stderr


@pytest.mark.parametrize("option", ["--json-out", "--record"])
def test_camera_refuses_an_output_in_proc_before_opening_the_source(tmp_path, option):
    proc = _cli("camera", "--source", "rtsp://127.0.0.1:9/none", "--model", tmp_path / "no-such-model",
                "--headless", "--box", "1,1,5,5", option, "/proc/run.out")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{option} /proc/run.out: cannot write there" in proc.stderr


def test_camera_json_lines_to_a_full_device_end_with_a_clear_error(tmp_path):
    # /dev/full: every write fails with ENOSPC, as a full disk does
    proc = _cli("camera", "--source", "synthetic://?width=96&height=96&fps=30&frames=5", "--model",
                _tiny(tmp_path), "--headless", "--box", "30,30,20,20", "--json-out", "/dev/full")
    assert proc.returncode == 1, proc.stderr
    assert "no space left on the device" in proc.stderr and "Traceback" not in proc.stderr


def _tiny(tmp_path: Path) -> Path:
    from tiny_tracker_model import write_tiny_tracker_model

    return write_tiny_tracker_model(tmp_path / "tiny")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs: a full disk for real (needs root and permission to mount)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs to fill needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mount is not permitted here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_track_boxes_on_a_full_disk_fail_clearly_and_leave_no_temp_file(tmp_path, tiny_disk):
    import cv2
    import numpy as np

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(frames / f"{i:04d}.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (tiny_disk / "filler").write_bytes(b"\0" * (64 * 1024 - 4096 * 2))  # leave room for the probe only
    while True:  # fill every remaining block
        try:
            with open(tiny_disk / "filler", "ab") as f:
                f.write(b"\0" * 512)
        except OSError:
            break
    proc = _cli("track", "--model", _tiny(tmp_path), "--video", frames, "--box", "20,20,16,16",
                "--out", tiny_disk / "boxes.txt")
    assert proc.returncode == 1, proc.stderr
    assert "--out" in proc.stderr and "no space left on the device" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]

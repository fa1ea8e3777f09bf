"""The public Python API (``from siamtrack import Tracker``): every model kind and backend, threads that
reach the libraries, one implementation of the protocol conventions, a light import, and the README's
example run exactly as written.

The model is AlexNet with seeded random weights exported once per session (test_onnx_export.export_once);
the PyTorch side uses the same seed, i.e. the same weights.
"""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.errors import InputError
from test_onnx_export import SEED, export_once
from test_onnxrt_backend import synthetic_frames

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def alex_dir(tmp_path_factory) -> Path:
    return export_once(tmp_path_factory, "alex")


def _boxes(tracker, frames, box) -> np.ndarray:
    tracker.init(frames[0], box)
    return np.stack([tracker.track(f).box_xywh for f in frames[1:]])


def test_tracker_open_on_an_artifact_folder_tracks_like_the_runtime_tracker(alex_dir):
    from runtime.backends import open_backend
    from runtime.tracker import SiamRPNTracker
    from siamtrack import Tracker

    frames, box = synthetic_frames()
    tracker = Tracker.open(alex_dir, backend="onnxruntime", threads=1)
    assert (tracker.backend_name, tracker.precision, tracker.flavour) == ("onnxruntime", "fp32", "standard")
    reference = SiamRPNTracker(open_backend(str(alex_dir), backend="onnxruntime", flavour="standard"))
    np.testing.assert_array_equal(_boxes(tracker, frames, box), _boxes(reference, frames, box))


def test_track_returns_a_frozen_result_with_box_score_and_state(alex_dir):
    from siamtrack import TargetState, Tracker, TrackResult

    frames, box = synthetic_frames(2)
    tracker = Tracker.open(alex_dir, backend="onnxruntime")
    assert isinstance(tracker.init(frames[0], box), TargetState)
    result = tracker.track(frames[1])
    assert isinstance(result, TrackResult) and result.box_xywh.shape == (4,) and 0.0 <= result.score <= 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.score = 1.0
    with pytest.raises(ValueError):
        result.box_xywh[0] = 0.0                        # read-only array
    assert "BGR" in Tracker.__doc__ and "0-based" in Tracker.__doc__ and "x, y, w, h" in Tracker.__doc__


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_reach_onnx_runtime_intra_op_pool(alex_dir, threads):
    from siamtrack import Tracker

    tracker = Tracker.open(alex_dir, backend="onnxruntime", threads=threads)
    for session in (tracker.backend._template, tracker.backend._search):
        assert session.get_session_options().intra_op_num_threads == threads


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2"])
def test_threads_that_are_not_a_positive_whole_number_are_refused(alex_dir, threads):
    from siamtrack import Tracker

    with pytest.raises(InputError, match="threads"):
        Tracker.open(alex_dir, backend="onnxruntime", threads=threads)


def test_a_pysot_config_with_checkpoint_runs_on_torch_with_threads_and_matches_onnx_runtime(alex_dir, tmp_path):
    torch = pytest.importorskip("torch")
    from export.checkpoint import build_random_model
    from export.config import resolve_config
    from siamtrack import Tracker

    checkpoint = tmp_path / "model.pth"
    torch.save(build_random_model(resolve_config("alex"), SEED).state_dict(), checkpoint)
    config = ROOT / "export" / "configs" / "alex.yaml"                   # a pysot config.yaml
    before = torch.get_num_threads()
    try:
        tracker = Tracker.open(config, checkpoint=checkpoint, threads=1)
        assert tracker.backend_name == "torch" and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    frames, box = synthetic_frames()
    ort = Tracker.open(alex_dir, backend="onnxruntime", flavour="standard")
    np.testing.assert_allclose(_boxes(tracker, frames, box), _boxes(ort, frames, box), atol=1e-3)


def test_protocol_helpers_are_the_ones_the_benchmark_uses():
    import siamtrack
    from bench import accuracy, metrics
    from runtime import protocol

    assert siamtrack.vot_region_to_box is protocol.vot_region_to_box is metrics.poly_to_xywh
    assert siamtrack.box_to_vot_polygon is protocol.box_to_vot_polygon is metrics.xywh_to_poly
    assert accuracy.one_pass_init_box is siamtrack.one_pass_init_box
    np.testing.assert_array_equal(siamtrack.one_pass_init_box([10, 20, 30, 40]), [10.5, 20.5, 30, 40])


def test_importing_siamtrack_loads_no_backend_library_until_a_tracker_opens():
    code = ("import sys, siamtrack, siamtrack.cli; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx', 'cv2', 'runtime.tracker') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _readme_python_api_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_runs_as_written(alex_dir, tmp_path):
    """The README block, byte for byte, in a folder holding artifacts/lite0 (the AlexNet export) and a
    clip.mp4 of a moving target; every printed box must be the tracker's own."""
    code = _readme_python_api_example()
    assert 'Tracker.open("artifacts/lite0"' in code and len(code.splitlines()) <= 14
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "lite0").symlink_to(alex_dir, target_is_directory=True)
    frames, _ = synthetic_frames(6)
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for f in frames:
        writer.write(f)
    writer.release()
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    printed = [line for line in proc.stdout.splitlines() if line.strip()]
    # the same frames (decoded from the same file) through the runtime tracker, rounded as printed
    from siamtrack import Tracker

    video, decoded = cv2.VideoCapture(str(tmp_path / "clip.mp4")), []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        decoded.append(frame)
    expected = _boxes(Tracker.open(alex_dir), decoded, (120, 80, 60, 40))
    assert len(printed) == len(decoded) - 1 == 5
    for line, box in zip(printed, expected):
        numbers = [float(v) for v in re.findall(r"-?\d+\.?\d*", line)]
        np.testing.assert_allclose(numbers[:4], box.round(1), atol=1e-9)


@pytest.mark.parametrize("command", ["track", "camera"])
def test_track_and_camera_threads_option_reaches_onnx_runtime_intra_op_pool(alex_dir, command):
    """`siamtrack track|camera --threads N` opens its backend through runtime.cli_args: the option must
    arrive at the sessions, not only at argparse (before, neither command had it)."""
    import importlib

    from runtime.cli_args import open_backend_from_args

    parser = importlib.import_module(f"runtime.{command}_cli").build_parser()
    required = ["--video", "clip.mp4", "--box", "1,1,4,4"] if command == "track" else ["--source", "synthetic"]
    args, _ = parser.parse_known_args(["--model", str(alex_dir), "--backend", "onnxruntime", "--threads", "1",
                                       *required])
    backend = open_backend_from_args(args)
    for session in (backend._template, backend._search):
        assert session.get_session_options().intra_op_num_threads == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", str(alex_dir), "--threads", "0", *required])

"""Tracking with the ONNX Runtime backend imports neither torch nor onnx (checked in a fresh process).

Both flavours run: the custom-op graph loads onnxruntime-extensions, whose package __init__ imports
torch and onnx when they are importable (they are, in this dev environment), so this also checks that
the backend keeps them out.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_onnx_export import export_once

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def alex_dir(tmp_path_factory) -> Path:
    return export_once(tmp_path_factory, "alex")


@pytest.mark.parametrize("flavour", ["plugin", "standard"])
def test_tracking_with_onnxruntime_imports_neither_torch_nor_onnx(alex_dir, flavour):
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import runtime
        from runtime.backends import open_backend
        from runtime.tracker import SiamRPNTracker
        backend = open_backend({str(alex_dir)!r}, backend="onnxruntime", flavour={flavour!r})
        frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
        tracker = SiamRPNTracker(backend)
        tracker.init(frame, np.array([100.0, 80.0, 50.0, 40.0]))
        result = tracker.track(frame)
        print(json.dumps({{"backend": backend.name, "flavour": backend.flavour,
                          "box": [float(v) for v in result.box_xywh],
                          "heavy": sorted(m for m in ("torch", "onnx", "tensorrt", "tensorrt_rtx")
                                          if m in sys.modules)}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert (report["backend"], report["flavour"]) == ("onnxruntime", flavour)
    assert len(report["box"]) == 4
    assert report["heavy"] == []

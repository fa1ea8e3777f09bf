"""Shared test configuration: the `gpu` marker skips with the reason no GPU was found."""
from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_collection_modifyitems(config, items):
    from runtime.gpu import gpu_status

    available, reason = gpu_status()
    if available:
        return
    skip = pytest.mark.skip(reason=f"needs an NVIDIA GPU: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _ort_cache_dir(tmp_path_factory):
    """ONNX Runtime graphs prepared by the backend (runtime.backends.onnxrt_shared) go to a per-session
    folder, not the user's ~/.cache; child processes inherit it."""
    import os

    os.environ["SIAMTRACK_CACHE_DIR"] = str(tmp_path_factory.mktemp("siamtrack-cache"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny exported tracker model folder (tests/tiny_tracker_model.py), written once per session.
    READ-ONLY: tests that change files copy it first."""
    from tiny_tracker_model import write_tiny_tracker_model

    return write_tiny_tracker_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory) -> Path:
    """A per-session scratch folder for exported graphs and engines."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never sends a byte: a stream that never opens."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    conns, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for c in conns:
        c.close()
    server.close()


@pytest.fixture(scope="session")
def tiny_rtx_engines(tmp_path_factory):
    """A folder of tiny standard-flavour FP32 engines built by TensorRT-RTX's CPU builder, once per session.
    READ-ONLY: tests that change files copy it first."""
    import importlib.util

    if importlib.util.find_spec("tensorrt_rtx") is None:
        pytest.skip("TensorRT-RTX (pip install tensorrt-rtx-cu12) builds the engines these tests load")
    from engines.build import main
    from tests.tiny_graphs import write_tiny_folder

    folder = write_tiny_folder(tmp_path_factory.mktemp("rtx_engines") / "tiny", plugin=False)
    assert main([str(folder), "--product", "tensorrt_rtx", "--json"]) == 0
    return folder

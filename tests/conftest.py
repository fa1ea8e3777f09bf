"""Shared test configuration: the `gpu` marker skips with the reason no GPU was found."""
from __future__ import annotations

import sys
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


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory) -> Path:
    """A per-session scratch folder for exported graphs and engines."""
    return tmp_path_factory.mktemp("artifacts")

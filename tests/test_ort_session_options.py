"""The options the ONNX Runtime backend's sessions really run with, read back from the sessions.

`--threads N` must reach each session's intra-op pool, and the pools must not spin: the backend's
sessions take turns (template at init, search per frame, the long-term search when lost), and a pool
spinning after its run steals the cores the next session needs (issue 17: precision-latency
--threads 2 ran 2.5x slower than --threads 1 on two cores).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from test_onnx_export import export_once


@pytest.fixture(scope="module")
def alex_dir(tmp_path_factory) -> Path:
    return export_once(tmp_path_factory, "alex")


def _sessions(backend):
    return [s for s in (backend._template, backend._search, getattr(backend, "_lost", None)) if s is not None]


@pytest.mark.parametrize("share_weights", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_every_session_has_the_thread_count_and_spinning_off(alex_dir, threads, share_weights):
    from runtime.backends.onnxrt import OrtBackend

    backend = OrtBackend.from_dir(alex_dir, threads=threads, share_weights=share_weights)
    for session in _sessions(backend):
        opts = session.get_session_options()
        assert opts.intra_op_num_threads == threads
        assert opts.inter_op_num_threads == 1
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_open_backend_passes_threads_through_to_the_sessions(alex_dir):
    from runtime.backends import open_backend

    backend = open_backend(str(alex_dir), backend="onnxruntime", threads=1)
    assert [s.get_session_options().intra_op_num_threads for s in _sessions(backend)] == [1, 1]


def test_without_threads_the_pool_uses_the_cpus_this_process_may_use(alex_dir):
    import os

    from runtime.backends.onnxrt import OrtBackend

    backend = OrtBackend.from_dir(alex_dir)
    assert backend.threads == len(os.sched_getaffinity(0))
    assert all(s.get_session_options().intra_op_num_threads == backend.threads for s in _sessions(backend))

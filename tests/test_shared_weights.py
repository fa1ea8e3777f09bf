"""ONNX Runtime sessions of one export hold the weights they share once (runtime.backends.onnxrt_shared).

The template and search graphs both carry the backbone. The backend opens graphs that ONNX Runtime
optimised once for this CPU and maps every weight blob used by both graphs once, handing the same
memory to both sessions. These tests pin what that must not change (the numbers, bit for bit) and what
it must do (one blob, two sessions; a new folder for a changed graph; a quiet fallback). The memory
itself is measured, not asserted: `siamtrack cpu-perf` (peak RSS column).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from test_onnx_export import export_once


@pytest.fixture(scope="module")
def alex_dir(tmp_path_factory) -> Path:
    return export_once(tmp_path_factory, "alex")


def _inputs(spec, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, spec.template_shape(2)).astype(np.float32),
            rng.integers(0, 256, spec.search_shape(2)).astype(np.float32))


@pytest.mark.parametrize("flavour", ["standard", "plugin"])
def test_shared_weight_sessions_give_the_source_graphs_outputs_bit_for_bit(alex_dir, flavour):
    from runtime.backends.onnxrt import OrtBackend

    shared = OrtBackend.from_dir(alex_dir, flavour=flavour, threads=1, share_weights=True)
    plain = OrtBackend.from_dir(alex_dir, flavour=flavour, threads=1, share_weights=False)
    assert shared.weights_sharing.startswith("shared") and plain.weights_sharing.startswith("off")
    z, x = _inputs(shared.spec)
    k_shared, k_plain = shared.run_template(z), plain.run_template(z)
    for a, b in zip(k_shared.arrays, k_plain.arrays):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(shared.run_search(x, k_shared), plain.run_search(x, k_plain)):
        np.testing.assert_array_equal(a, b)


def test_a_weight_blob_used_by_both_graphs_is_one_memory_map_given_to_both_sessions(alex_dir):
    from runtime.backends.onnxrt import OrtBackend

    backend = OrtBackend.from_dir(alex_dir, threads=1, share_weights=True)
    shared = backend._shared
    template, search = shared.initializers["template"], shared.initializers["search"]
    common = {id(v) for v in template.values()} & {id(v) for v in search.values()}
    assert common, "no OrtValue is handed to both sessions"
    # alexnet's backbone is nearly all of its weights; every conv layer of it is in both graphs
    assert shared.shared_bytes > 5 * 2**20
    assert all(isinstance(a, np.memmap) and not a.flags.writeable for a in shared._arrays)
    # the sessions run the prepared graphs, not the source files, and do not re-optimise them
    opts = backend._search.get_session_options()
    import onnxruntime as ort

    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL


def test_a_changed_source_graph_gets_a_new_prepared_folder_and_the_old_one_is_removed(alex_dir, tmp_path):
    import shutil

    from runtime.backends.onnxrt import OrtBackend

    folder = tmp_path / "copy"
    shutil.copytree(alex_dir, folder)
    first = OrtBackend.from_dir(folder, threads=1, share_weights=True)._shared.folder
    search = folder / "search.fp32.standard.onnx"
    stat = search.stat()
    os.utime(search, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))    # "re-exported"
    second = OrtBackend.from_dir(folder, threads=1, share_weights=True)._shared.folder
    assert second != first and second.is_dir() and not first.exists()


def test_a_failed_preparation_falls_back_to_the_source_graphs_and_says_why(alex_dir, monkeypatch):
    from runtime.backends import onnxrt_shared
    from runtime.backends.onnxrt import OrtBackend

    def broken(*args, **kwargs):
        raise RuntimeError("preparing optimised graphs failed (disk full)")

    monkeypatch.setattr(onnxrt_shared, "prepare", broken)
    backend = OrtBackend.from_dir(alex_dir, threads=1, share_weights=True)
    assert backend.weights_sharing == "off: preparing optimised graphs failed (disk full)"
    z, x = _inputs(backend.spec)
    cls, loc = backend.run_search(x, backend.run_template(z))
    assert cls.shape == backend.spec.cls_shape(2)


def test_the_environment_switch_turns_sharing_off(alex_dir, monkeypatch):
    from runtime.backends.onnxrt import OrtBackend

    monkeypatch.setenv("SIAMTRACK_SHARE_WEIGHTS", "0")
    assert OrtBackend.from_dir(alex_dir, threads=1).weights_sharing == "off: not asked for"


def test_the_long_term_search_graph_shares_the_search_graphs_weights(tmp_path):
    # tests/lost_graphs.py: search and search_lost are one model traced at two crop sizes (same weights)
    from lost_graphs import write_tiny_lt_folder

    from runtime.backends.onnxrt import OrtBackend

    folder = write_tiny_lt_folder(tmp_path / "lt")
    shared = OrtBackend.from_dir(folder, threads=1, share_weights=True)
    plain = OrtBackend.from_dir(folder, threads=1, share_weights=False)
    assert shared._lost is not None
    search, lost = shared._shared.initializers["search"], shared._shared.initializers["search_lost"]
    assert {id(v) for v in search.values()} & {id(v) for v in lost.values()}
    rng = np.random.default_rng(0)
    z = rng.integers(0, 256, shared.spec.template_shape(1)).astype(np.float32)
    x = rng.integers(0, 256, shared.spec.search_shape(1, shared.spec.lost_instance_size)).astype(np.float32)
    for a, b in zip(shared.run_search(x, shared.run_template(z)), plain.run_search(x, plain.run_template(z))):
        np.testing.assert_array_equal(a, b)


# --- several processes, damaged cache entries --------------------------------------------------------
_OPEN_AND_RUN = """
import sys, time
from pathlib import Path
import numpy as np
from runtime.backends.onnxrt import OrtBackend   # imported before the start line: both begin together

folder, go, out = sys.argv[1:4]
while not Path(go).exists():
    time.sleep(0.001)
backend = OrtBackend.from_dir(folder, threads=1, share_weights=True)
rng = np.random.default_rng(0)
z = rng.integers(0, 256, backend.spec.template_shape(1)).astype(np.float32)
x = rng.integers(0, 256, backend.spec.search_shape(1, backend.spec.lost_instance_size)).astype(np.float32)
cls, loc = backend.run_search(x, backend.run_template(z))
np.savez(out, sharing=backend.weights_sharing, cls=cls, loc=loc)
"""


def _plain_outputs(folder):
    from runtime.backends.onnxrt import OrtBackend

    plain = OrtBackend.from_dir(folder, threads=1, share_weights=False)
    rng = np.random.default_rng(0)
    z = rng.integers(0, 256, plain.spec.template_shape(1)).astype(np.float32)
    x = rng.integers(0, 256, plain.spec.search_shape(1, plain.spec.lost_instance_size)).astype(np.float32)
    return plain.run_search(x, plain.run_template(z))


def test_two_processes_preparing_the_same_graphs_at_once_both_open_them_and_agree(tmp_path):
    # e.g. two `siamtrack accuracy` workers starting on a fresh machine: both find no prepared folder
    import subprocess
    import sys

    from lost_graphs import write_tiny_lt_folder

    folder = write_tiny_lt_folder(tmp_path / "lt")
    want_cls, want_loc = _plain_outputs(folder)
    project = Path(__file__).resolve().parents[1]
    for attempt in range(2):
        cache, go = tmp_path / f"cache{attempt}", tmp_path / f"go{attempt}"
        env = dict(os.environ, SIAMTRACK_CACHE_DIR=str(cache),
                   PYTHONPATH=str(project) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        outs = [tmp_path / f"out{attempt}-{i}.npz" for i in range(2)]
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AND_RUN, str(folder), str(go), str(out)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for out in outs]
        time.sleep(1.0)                     # both have imported ONNX Runtime and wait for the start line
        go.touch()
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
        for out in outs:
            got = np.load(out)
            assert str(got["sharing"]).startswith("shared"), str(got["sharing"])
            np.testing.assert_array_equal(got["cls"], want_cls)
            np.testing.assert_array_equal(got["loc"], want_loc)
        prepared = [p for p in (cache / "ort").iterdir() if p.is_dir()]
        assert len(prepared) == 1 and not prepared[0].name.startswith("."), prepared   # no leftovers


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _change_inline_weights(path: Path) -> None:
    """Double the weights kept inside the graph file (the small ones): same size, other numbers."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    inline = [t for t in model.graph.initializer if not t.external_data and t.data_type == onnx.TensorProto.FLOAT]
    assert inline, "the tiny search graph keeps its 1x1 head weights inline"
    for tensor in inline:
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 2, tensor.name))
    onnx.save(model, str(path))


@pytest.mark.parametrize("damage", ["truncated weights", "truncated graph", "changed graph", "truncated share.json",
                                    "missing weights"])
def test_a_damaged_prepared_folder_is_rebuilt_not_opened(tmp_path, monkeypatch, damage):
    # a crash while copying a cache, a full disk, a stray edit: the backend must neither fail nor keep
    # falling back for good; the folder is checked (file sizes, graph hashes) and prepared again
    from lost_graphs import write_tiny_lt_folder

    from runtime.backends.onnxrt import OrtBackend

    monkeypatch.setenv("SIAMTRACK_CACHE_DIR", str(tmp_path / "cache"))
    folder = write_tiny_lt_folder(tmp_path / "lt")
    prepared = OrtBackend.from_dir(folder, threads=1, share_weights=True)._shared.folder
    weights = sorted(prepared.glob("*.weights"))[0]
    graph = prepared / "search_lost.onnx"       # the graph the check below runs (a lost-size crop)
    {"truncated weights": lambda: _truncate(weights), "truncated graph": lambda: _truncate(graph),
     "changed graph": lambda: _change_inline_weights(graph),
     "truncated share.json": lambda: _truncate(prepared / "share.json"),
     "missing weights": weights.unlink}[damage]()

    backend = OrtBackend.from_dir(folder, threads=1, share_weights=True)
    assert backend.weights_sharing.startswith("shared"), backend.weights_sharing
    assert backend._shared.folder == prepared
    rng = np.random.default_rng(0)
    z = rng.integers(0, 256, backend.spec.template_shape(1)).astype(np.float32)
    x = rng.integers(0, 256, backend.spec.search_shape(1, backend.spec.lost_instance_size)).astype(np.float32)
    want_cls, want_loc = _plain_outputs(folder)
    cls, loc = backend.run_search(x, backend.run_template(z))
    np.testing.assert_array_equal(cls, want_cls)
    np.testing.assert_array_equal(loc, want_loc)
    from runtime.backends.onnxrt_shared import check_folder

    assert check_folder(prepared) is None

"""The ONNX Runtime backend: tracking parity with PyTorch, batching, and clear errors for bad input.

The model is AlexNet with seeded random weights exported by the CLI (see test_onnx_export.export_once);
the PyTorch side is ``TorchBackend.random`` with the same seed, i.e. the same weights.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from runtime.contract import artifact_name
from runtime.errors import BackendUnavailable, ContractError, InputError
from test_onnx_export import SEED, crops, export_once

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def alex_dir(tmp_path_factory) -> Path:
    return export_once(tmp_path_factory, "alex")


def synthetic_frames(count: int = 6, h: int = 240, w: int = 320) -> tuple[list[np.ndarray], np.ndarray]:
    """A textured background with a bright patterned square moving 6 px right, 3 px down per frame.
    Returns (frames as HxWx3 uint8 BGR, init box x, y, w, h)."""
    rng = np.random.default_rng(7)
    background = rng.integers(0, 120, size=(h, w, 3), dtype=np.uint8)
    target = rng.integers(150, 256, size=(40, 50, 3), dtype=np.uint8)
    frames = []
    for i in range(count):
        frame = background.copy()
        y, x = 90 + 3 * i, 120 + 6 * i
        frame[y:y + 40, x:x + 50] = target
        frames.append(frame)
    return frames, np.array([120.0, 90.0, 50.0, 40.0])


def track_boxes(backend, frames, box) -> np.ndarray:
    from runtime.tracker import SiamRPNTracker

    tracker = SiamRPNTracker(backend)
    tracker.init(frames[0], box)
    return np.stack([tracker.track(f).box_xywh for f in frames[1:]])


# -------------------------------------------------------------------------------------------------
# parity and batching


@pytest.mark.parametrize("flavour", ["plugin", "standard"])
def test_tracker_boxes_equal_the_pytorch_backend_on_every_frame(alex_dir, flavour):
    from runtime.backends.onnxrt import OrtBackend
    from runtime.backends.pyt import TorchBackend

    frames, box = synthetic_frames()
    torch_boxes = track_boxes(TorchBackend.random("alex", seed=SEED), frames, box)
    with OrtBackend.from_dir(alex_dir, flavour=flavour) as backend:
        ort_boxes = track_boxes(backend, frames, box)
    # Head outputs agree to ~1e-6 relative; a box is a smooth function of them as long as the same
    # anchor wins (a different winner would move it by >= several pixels). 1e-3 px = same decisions.
    np.testing.assert_allclose(ort_boxes, torch_boxes, rtol=0, atol=1e-3)


@pytest.mark.parametrize("flavour", ["plugin", "standard"])
def test_batch_of_two_targets_equals_two_single_target_calls(alex_dir, flavour):
    from runtime.backends.onnxrt import OrtBackend

    with OrtBackend.from_dir(alex_dir, flavour=flavour) as backend:
        z, x = crops(backend.spec, n=2)
        both = backend.run_template(z)
        cls2, loc2 = backend.run_search(x, both)
        for i in range(2):
            one = backend.run_template(z[i:i + 1])
            cls1, loc1 = backend.run_search(x[i:i + 1], one)
            # same graph, same weights; only kernel blocking may differ with the batch size
            for got, ref in zip(one.arrays, both.arrays):
                np.testing.assert_allclose(got[0], ref[i], rtol=1e-5, atol=1e-5 * np.abs(ref).max())
            np.testing.assert_allclose(cls1[0], cls2[i], rtol=1e-5, atol=1e-5 * np.abs(cls2).max())
            np.testing.assert_allclose(loc1[0], loc2[i], rtol=1e-5, atol=1e-5 * np.abs(loc2).max())


def test_metadata_alone_configures_the_backend(alex_dir):
    from export.config import default_config
    from runtime.backends.onnxrt import OrtBackend

    cfg = default_config("alex")
    with OrtBackend.from_dir(alex_dir) as backend:
        assert backend.flavour == "standard"
        assert backend.spec == cfg.model_spec() and backend.tracker_config == cfg.tracker
        assert backend.random_weights and backend.max_batch is None
        assert backend.providers == ["CPUExecutionProvider"]


# -------------------------------------------------------------------------------------------------
# the numpy custom op


def test_numpy_xcorr_matches_a_direct_loop():
    from runtime.backends.onnxrt_ops import dw_xcorr_numpy

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    k = rng.standard_normal((2, 3, 4, 3)).astype(np.float32)
    ref = np.zeros((2, 3, 6, 6))
    for b in range(2):
        for c in range(3):
            for i in range(6):
                for j in range(6):
                    ref[b, c, i, j] = np.sum(x[b, c, i:i + 4, j:j + 3].astype(np.float64) * k[b, c])
    got = dw_xcorr_numpy(x, k)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_custom_op_body_reports_bad_inputs_instead_of_raising():
    """A Python exception inside ORT's custom op would abort the process, so the body must not raise."""
    from runtime.backends import onnxrt_ops

    onnxrt_ops.OP_ERRORS.clear()
    out = onnxrt_ops._guarded_xcorr(np.zeros((1, 4, 9, 9), np.float32), np.zeros((1, 3, 5, 5), np.float32))
    assert np.isnan(out).all() and out.dtype == np.float32
    assert "batch/channels differ" in onnxrt_ops.OP_ERRORS[0]
    onnxrt_ops.OP_ERRORS.clear()


@pytest.mark.parametrize("flavour", ["plugin", "standard"])
def test_wrong_kernel_shapes_are_rejected_before_reaching_ort(alex_dir, flavour):
    from runtime.backends.base import Kernels
    from runtime.backends.onnxrt import OrtBackend

    with OrtBackend.from_dir(alex_dir, flavour=flavour) as backend:
        _, x = crops(backend.spec, n=1)
        bad = Kernels(1, tuple(np.zeros((1, 256, 5, 5), np.float32) for _ in backend.spec.kernel_names))
        with pytest.raises(InputError, match="expected float32"):
            backend.run_search(x, bad)
        with pytest.raises(InputError, match="shape"):
            backend.run_template(np.zeros((1, 3, 128, 128), np.float32))


# -------------------------------------------------------------------------------------------------
# bad artifacts


def test_a_non_siamrpn_onnx_is_rejected(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from runtime.backends.onnxrt import OrtBackend

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 127, 127])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 127, 127])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ContractError, match="not a SiamRPN export"):
        OrtBackend(path, path)


def test_a_pair_from_different_exports_is_rejected(alex_dir, tmp_path):
    """The search graph's provenance is rewritten as if it came from another checkpoint."""
    import onnx

    from runtime.backends.onnxrt import OrtBackend

    template = alex_dir / artifact_name("template", "fp32", "standard", "onnx")
    model = onnx.load(str(alex_dir / artifact_name("search", "fp32", "standard", "onnx")))
    for prop in model.metadata_props:
        if prop.key == "siamrpn.source_sha256":
            prop.value = "0" * 64
        if prop.key == "siamrpn.export_id":
            prop.value = "feedfacefeedface"
    other = tmp_path / "search.fp32.standard.onnx"
    onnx.save(model, str(other))
    with pytest.raises(ContractError, match="different exports"):
        OrtBackend(template, other)


def test_graphs_given_in_the_wrong_order_are_rejected(alex_dir):
    from runtime.backends.onnxrt import OrtBackend

    t = alex_dir / artifact_name("template", "fp32", "standard", "onnx")
    s = alex_dir / artifact_name("search", "fp32", "standard", "onnx")
    with pytest.raises(ContractError, match="search graph but was given as the template"):
        OrtBackend(s, t)


@pytest.mark.parametrize("damage", ["truncated", "garbage_header"])
def test_a_corrupted_file_is_rejected_with_a_clear_error(alex_dir, tmp_path, damage):
    from runtime.backends.onnxrt import OrtBackend

    src = alex_dir / artifact_name("search", "fp32", "standard", "onnx")
    bad = tmp_path / src.name
    data = src.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\xff\xff\xff\x0f" + data[4:])
    t = alex_dir / artifact_name("template", "fp32", "standard", "onnx")
    with pytest.raises(ContractError, match="not a readable ONNX model"):
        OrtBackend(t, bad)


def test_a_folder_without_the_pair_lists_what_it_holds(alex_dir, tmp_path):
    from runtime.backends.onnxrt import OrtBackend

    shutil.copy(alex_dir / artifact_name("template", "fp32", "plugin", "onnx"), tmp_path)
    with pytest.raises(ContractError, match="found: template.fp32.plugin.onnx"):
        OrtBackend.from_dir(tmp_path, flavour="plugin")


def test_missing_extensions_library_names_the_fix_and_standard_graphs_still_run(alex_dir):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["onnxruntime_extensions"] = None   # as if the package were not installed
        import numpy as np
        from runtime.backends.onnxrt import OrtBackend
        from runtime.errors import BackendUnavailable
        try:
            OrtBackend.from_dir({str(alex_dir)!r}, flavour="plugin")
        except BackendUnavailable as err:
            print("ERROR:", err)
        b = OrtBackend.from_dir({str(alex_dir)!r}, flavour="standard")
        k = b.run_template(np.zeros(b.spec.template_shape(1), np.float32))
        print("STANDARD OK", k.arrays[0].shape)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERROR: onnxruntime-extensions is not installed" in out.stdout
    assert "--flavour standard" in out.stdout
    assert "STANDARD OK (1, 256, 4, 4)" in out.stdout


def test_unavailable_provider_is_refused_with_the_available_list(alex_dir):
    from runtime.backends.onnxrt import OrtBackend

    with pytest.raises(BackendUnavailable, match="CPUExecutionProvider"):
        OrtBackend.from_dir(alex_dir, providers=["NoSuchExecutionProvider"])

"""runtime.backends.pyt.TorchBackend: the reference model behind the common Backend interface."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from export.checkpoint import build_random_model, save_checkpoint
from export.config import CONFIG_DIR, default_config
from runtime.backends import open_backend
from runtime.backends.base import Kernels
from runtime.backends.pyt import TorchBackend
from runtime.errors import CheckpointError, InputError


def _crops(spec, n, seed=0):
    rs = np.random.RandomState(seed)
    z = (rs.random_sample(spec.template_shape(n)) * 255).astype(np.float32)
    x = (rs.random_sample(spec.search_shape(n)) * 255).astype(np.float32)
    return z, x


@pytest.fixture(scope="module")
def alex():
    return TorchBackend.random("alex", seed=0)


def test_random_backend_declares_itself(alex):
    assert alex.name == "torch" and alex.random_weights is True and alex.load_report is None
    # the PyTorch model runs any crop, so its spec adds the config's long-term lost size (831 -> 89 for alex)
    assert alex.spec == dataclasses.replace(default_config("alex").model_spec(), lost_instance_size=831,
                                            lost_score_size=89)
    assert alex.tracker_config == default_config("alex").tracker


def test_kernels_are_host_float32_arrays_in_kernel_name_order(alex):
    z, _ = _crops(alex.spec, 2)
    kernels = alex.run_template(z)
    assert isinstance(kernels, Kernels) and kernels.n == 2
    assert len(kernels.arrays) == len(alex.spec.kernel_names) == 2
    for k in kernels.arrays:
        assert isinstance(k, np.ndarray) and k.dtype == np.float32 and k.shape == alex.spec.kernel_shape(2)
    with torch.inference_mode():
        want = alex.model.template_kernels(torch.from_numpy(z))
    for got, w in zip(kernels.arrays, want):
        np.testing.assert_array_equal(got, w.numpy())


def test_search_gives_the_model_outputs(alex):
    z, x = _crops(alex.spec, 1)
    cls, loc = alex.run_search(x, alex.run_template(z))
    assert cls.shape == alex.spec.cls_shape(1) and loc.shape == alex.spec.loc_shape(1)
    assert cls.dtype == loc.dtype == np.float32
    with torch.inference_mode():
        alex.model.template(torch.from_numpy(z))
        ref = alex.model.track(torch.from_numpy(x))
    np.testing.assert_array_equal(cls, ref["cls"].numpy())
    np.testing.assert_array_equal(loc, ref["loc"].numpy())


def test_targets_in_a_batch_are_independent(alex):
    z, x = _crops(alex.spec, 3, seed=1)
    cls3, loc3 = alex.run_search(x, alex.run_template(z))
    cls1, loc1 = alex.run_search(x[1:2], alex.run_template(z[1:2]))
    # batched convolutions may sum in another order: float32 rounding only
    np.testing.assert_allclose(cls3[1:2], cls1, rtol=0, atol=1e-5 * np.abs(cls1).max())
    np.testing.assert_allclose(loc3[1:2], loc1, rtol=0, atol=1e-5 * np.abs(loc1).max())


def test_outputs_belong_to_the_caller(alex):
    z, x = _crops(alex.spec, 1)
    k = alex.run_template(z)
    cls, _ = alex.run_search(x, k)
    keep = cls.copy()
    cls[...] = 0
    np.testing.assert_array_equal(alex.run_search(x, k)[0], keep)


def test_bad_inputs_raise_input_errors(alex):
    z, x = _crops(alex.spec, 2)
    k = alex.run_template(z)
    with pytest.raises(InputError, match="kernels were made for 2"):
        alex.run_search(x[:1], k)
    with pytest.raises(InputError, match="kernel"):
        alex.run_search(x, Kernels(2, k.arrays[:1]))
    with pytest.raises(InputError, match="float32"):
        alex.run_template(z.astype(np.float64))
    with pytest.raises(InputError, match="expected"):
        alex.run_search(z, k)


def test_from_checkpoint_by_name_and_by_yaml_path(tmp_path):
    model = build_random_model(default_config("alex"), seed=9)
    path = save_checkpoint(model, tmp_path / "model.pth")
    for config in ("alex", CONFIG_DIR / "alex.yaml"):
        backend = TorchBackend.from_checkpoint(config, path)
        assert backend.random_weights is False and backend.load_report.tensors == 75
        z, x = _crops(backend.spec, 1)
        with torch.inference_mode():
            want = model.track_from_kernels(torch.from_numpy(x), model.template_kernels(torch.from_numpy(z)))
        cls, loc = backend.run_search(x, backend.run_template(z))
        np.testing.assert_array_equal(cls, want[0].numpy())
        np.testing.assert_array_equal(loc, want[1].numpy())


def test_open_backend_reaches_the_torch_backend(tmp_path):
    backend = open_backend("alex", seed=4)
    assert isinstance(backend, TorchBackend) and backend.random_weights
    with pytest.raises(CheckpointError, match="no such file"):
        open_backend("alex", checkpoint=str(tmp_path / "missing.pth"))


def test_runtime_imports_neither_torch_nor_export():
    code = ("import sys, runtime, runtime.backends, runtime.backends.base, runtime.backends.pyt; "
            "bad = [m for m in sys.modules if m == 'torch' or m.split('.')[0] == 'export']; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(CONFIG_DIR.parents[1]))
    assert r.returncode == 0, r.stdout + r.stderr

"""The TensorRT backend on a GPU: engines against ONNX Runtime per precision, CUDA-graph replay against
plain execution, no allocation in steady state, and the load-time refusals that need a GPU to reach.

All tests are marked ``gpu``; on a machine without one they are skipped with the reason (conftest).
Engines are built here from the tiny contract graphs with whichever product is installed (TensorRT
preferred, else TensorRT-RTX) through the real ``engines.build`` CLI.
"""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from runtime.engine_meta import read_sidecar, write_sidecar
from runtime.errors import ContractError, InputError

pytestmark = pytest.mark.gpu
MAX_BATCH = 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from engines.build import main
    from tests.tiny_graphs import write_tiny_folder

    folder = write_tiny_folder(tmp_path_factory.mktemp("trt_gpu") / "tiny", fp16=True, int8=True, plugin=False)
    assert main([str(folder), "--precision", "fp32,fp16,int8", "--max-batch", str(MAX_BATCH), "--json"]) == 0
    return folder


def crops(shape_of, n, seed):
    return np.random.default_rng(seed).uniform(0, 255, shape_of(n)).astype(np.float32)


def ort_pair(folder, precision, template, search):
    import onnxruntime as ort

    t = ort.InferenceSession(str(folder / f"template.{precision}.standard.onnx"), providers=["CPUExecutionProvider"])
    s = ort.InferenceSession(str(folder / f"search.{precision}.standard.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in t.get_outputs()]
    kernels = dict(zip(names, t.run(names, {"template": template})))
    return s.run(["cls", "loc"], {"search": search, **kernels})


@pytest.mark.parametrize("engine", ["template.fp32.standard.engine", "search.fp32.standard.engine",
                                    "template.fp16.standard.engine", "search.fp16.standard.engine",
                                    "template.int8.standard.engine"])
def test_engine_matches_onnxruntime_on_its_graph(folder, engine):
    from engines.selfcheck import TOLERANCE, check_engine, recorded_inputs
    from runtime.contract import ModelSpec

    spec = ModelSpec.from_json(read_sidecar(folder / engine).model_spec)
    row = check_engine(folder / engine, recorded_inputs(folder, spec, batch=MAX_BATCH), None)
    assert row.status == "pass", row  # bound: engines.selfcheck.TOLERANCE (rounding of the precision)
    assert row.scaled <= TOLERANCE[engine.split(".")[1]]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_backend_outputs_match_onnxruntime(folder, precision):
    from engines.selfcheck import TOLERANCE
    from runtime.backends.trt import TrtBackend

    with TrtBackend.from_dir(folder, precision=precision, flavour="standard") as be:
        z, x = crops(be.spec.template_shape, 2, 0), crops(be.spec.search_shape, 2, 1)
        cls, loc = be.run_search(x, be.run_template(z))
    ref_cls, ref_loc = ort_pair(folder, precision, z, x)
    for got, ref in ((cls, ref_cls), (loc, ref_loc)):
        assert np.abs(got - ref).max() <= TOLERANCE[precision] * np.abs(ref).max()


def test_cuda_graph_replay_equals_plain_execution(folder):
    from runtime.backends.trt import TrtBackend

    with TrtBackend.from_dir(folder, flavour="standard") as graph_be, \
            TrtBackend.from_dir(folder, flavour="standard", cuda_graph=False) as plain_be:
        z = crops(graph_be.spec.template_shape, 2, 0)
        kg, kp = graph_be.run_template(z), plain_be.run_template(z)
        for frame in range(5):
            x = crops(graph_be.spec.search_shape, 2, 10 + frame)
            g, p = graph_be.run_search(x, kg), plain_be.run_search(x, kp)
            np.testing.assert_array_equal(g[0], p[0])  # same kernels, same inputs: bit-identical
            np.testing.assert_array_equal(g[1], p[1])
        assert graph_be.graph_active, "the search step was never captured into a CUDA graph"
        assert not plain_be.graph_active


def test_steady_state_frames_allocate_no_gpu_or_pinned_memory(folder):
    from runtime.backends import cuda_mem
    from runtime.backends.trt import TrtBackend

    rt = cuda_mem.cudart()
    with TrtBackend.from_dir(folder, flavour="standard") as be:
        kernels = be.run_template(crops(be.spec.template_shape, 2, 0))
        x = crops(be.spec.search_shape, 2, 1)
        for _ in range(3):  # warm-up: first run, then capture
            be.run_search(x, kernels)
        count = dict(cuda_mem.ALLOCATIONS)
        free_before = cuda_mem.check(rt.cudaMemGetInfo(), "cudaMemGetInfo")[0]
        for _ in range(20):
            be.run_search(x, kernels)
        free_after = cuda_mem.check(rt.cudaMemGetInfo(), "cudaMemGetInfo")[0]
    assert cuda_mem.ALLOCATIONS == count  # our own cudaMalloc/cudaMallocHost calls: exact everywhere
    if cuda_mem.device_is_integrated():
        # Jetson: the GPU shares system memory, so free memory moves with any host allocation (Python's
        # included) and cannot show what the GPU side did; the allocation counter above is the check.
        return
    assert free_after == free_before


def test_batch_outside_the_profile_is_an_input_error(folder):
    from runtime.backends.trt import TrtBackend

    with TrtBackend.from_dir(folder, flavour="standard") as be:
        assert be.max_batch == MAX_BATCH
        with pytest.raises(InputError, match=f"exceed this backend's maximum batch {MAX_BATCH}"):
            be.run_template(crops(be.spec.template_shape, MAX_BATCH + 1, 0))


def test_kernels_of_an_earlier_template_run_still_work(folder):
    from runtime.backends.trt import TrtBackend

    with TrtBackend.from_dir(folder, flavour="standard") as be:
        za, zb = crops(be.spec.template_shape, 1, 0), crops(be.spec.template_shape, 1, 1)
        x = crops(be.spec.search_shape, 1, 2)
        first = be.run_search(x, be.run_template(za))
        ka = be.run_template(za)
        be.run_search(x, be.run_template(zb))  # overwrites the device kernels
        again = be.run_search(x, ka)
    np.testing.assert_array_equal(first[0], again[0])


@pytest.mark.parametrize("change, message", [({"product_version": "0.0.0"}, "built with"),
                                             ({"runs_on": ("0.0",)}, "built for compute capability 0.0")])
def test_engine_from_another_version_or_gpu_is_refused(folder, tmp_path, change, message):
    from runtime.backends.trt import TrtBackend

    copy = shutil.copytree(folder, tmp_path / "copy")
    engine = copy / "search.fp32.standard.engine"
    write_sidecar(engine, dataclasses.replace(read_sidecar(engine), **change))
    with pytest.raises(ContractError, match=f"(?s){message}.*python -m engines.build"):
        TrtBackend.from_dir(copy, flavour="standard")


def test_plugin_engine_pair_matches_the_standard_twin(tmp_path):
    """The DepthwiseXCorr plugin (engines/plugin, built by engines.plugin_build) inside a real engine."""
    from engines.build import _default_plugin, main
    from engines.selfcheck import TOLERANCE
    from engines.trt_compat import probe
    from runtime.backends.trt import TrtBackend
    from tests.tiny_graphs import write_tiny_folder

    plugin = _default_plugin()
    if plugin is None or not probe("tensorrt").plugins:
        pytest.skip("needs TensorRT with plugin layers and artifacts/plugin/libsiamrpn_xcorr_plugin.so "
                    "(python -m engines.plugin_build)")
    folder = write_tiny_folder(tmp_path / "tiny", plugin=True)
    assert main([str(folder), "--product", "tensorrt", "--flavour", "plugin,standard", "--plugin-lib", str(plugin),
                 "--json"]) == 0
    with TrtBackend.from_dir(folder, flavour="plugin") as be:
        assert read_sidecar(folder / "search.fp32.plugin.engine").plugin_sha256
        z, x = crops(be.spec.template_shape, 2, 0), crops(be.spec.search_shape, 2, 1)
        cls, loc = be.run_search(x, be.run_template(z))
    ref_cls, ref_loc = ort_pair(folder, "fp32", z, x)
    for got, ref in ((cls, ref_cls), (loc, ref_loc)):
        assert np.abs(got - ref).max() <= TOLERANCE["fp32"] * np.abs(ref).max()

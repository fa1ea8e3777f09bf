"""The DepthwiseXCorr plugin inside real TensorRT engines, on a GPU: plugin engine vs numpy, vs the
standard-op (grouped Conv) engine, vs ONNX Runtime; the FP16 error bound; engine serialisation; trtexec.

UNVERIFIED until run on a machine with an NVIDIA GPU, TensorRT >= 10.3 (Python bindings) and cuda-python:
every test here is marked ``gpu`` and skips elsewhere. They are written against TensorRT's documented
Python API (Builder, OnnxParser, IPluginRegistry.load_library, execute_async_v3).

The plugin library is taken from $SIAMRPN_XCORR_PLUGIN, else artifacts/plugin/libsiamrpn_xcorr_plugin.so,
else built into a temporary folder with engines.plugin_build (needs nvcc, cmake and TensorRT headers).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engines import plugin_build as pb
from runtime.contract import XCORR_DOMAIN, XCORR_OP, XCORR_VERSION

pytestmark = pytest.mark.gpu

U32 = 2.0 ** -24
C = 256
SHAPES = {"r50": (29, 29, 5, 5), "alexnet": (24, 24, 4, 4)}
MAX_BATCH = 4


def dw_xcorr_ref(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """float64 reference, out[n,c,i,j] = sum_{u,v} x[n,c,i+u,j+v] k[n,c,u,v]."""
    h, w = k.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (h, w), axis=(2, 3))
    return np.einsum("ncijuv,ncuv->ncij", win, k.astype(np.float64))


def error_bound(x, k, orders: int = 1, out: np.ndarray | None = None) -> np.ndarray:
    """float32 accumulation of kh*kw products (exact for float16 inputs) errs by <= n*u*sum|xk| per
    summation order (orders=2 when two float32 results of different summation orders are compared); a
    float16 output ``out`` adds half a float16 ulp of the larger of |out| and |reference|."""
    n_terms = k.shape[2] * k.shape[3]
    bound = orders * n_terms * U32 * dw_xcorr_ref(np.abs(x), np.abs(k))
    if out is not None and out.dtype == np.float16:
        mag = np.maximum(np.abs(dw_xcorr_ref(x, k)), np.abs(out.astype(np.float64))).astype(np.float16)
        bound = bound + 0.5 * np.spacing(mag).astype(np.float64)
    return bound + 1e-30


# ---- ONNX models (made here with onnx.helper) ----

def plugin_onnx(h, w, kh, kw, dtype) -> bytes:
    """One siamrpn::DepthwiseXCorr node; batch is the symbolic dimension N."""
    from onnx import TensorProto, helper

    elem = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", elem, ["N", C, h, w])
    k = helper.make_tensor_value_info("k", elem, ["N", C, kh, kw])
    out = helper.make_tensor_value_info("out", elem, ["N", C, h - kh + 1, w - kw + 1])
    node = helper.make_node(XCORR_OP, ["x", "k"], ["out"], domain=XCORR_DOMAIN)
    graph = helper.make_graph([node], "xcorr_plugin", [x, k], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(XCORR_DOMAIN, XCORR_VERSION)])
    return model.SerializeToString()


def standard_onnx(n, h, w, kh, kw) -> bytes:
    """The standard-op twin: grouped Conv over (1, N*C, H, W) with the kernels as runtime weights. Static N,
    because Conv's group attribute is N*C."""
    from onnx import TensorProto, helper, numpy_helper

    ho, wo = h - kh + 1, w - kw + 1
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, C, h, w])
    k = helper.make_tensor_value_info("k", TensorProto.FLOAT, [n, C, kh, kw])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [n, C, ho, wo])
    shapes = [numpy_helper.from_array(np.array(s, np.int64), name) for name, s in
              [("xs", [1, n * C, h, w]), ("ks", [n * C, 1, kh, kw]), ("os", [n, C, ho, wo])]]
    nodes = [helper.make_node("Reshape", ["x", "xs"], ["x1"]),       # (1, N*C, H, W)
             helper.make_node("Reshape", ["k", "ks"], ["k1"]),       # (N*C, 1, kh, kw)
             helper.make_node("Conv", ["x1", "k1"], ["o1"], group=n * C),  # (1, N*C, Ho, Wo)
             helper.make_node("Reshape", ["o1", "os"], ["out"])]     # (N, C, Ho, Wo)
    graph = helper.make_graph(nodes, "xcorr_standard", [x, k], [out], initializer=shapes)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


# ---- TensorRT helpers ----

@pytest.fixture(scope="module")
def trt():
    return pytest.importorskip("tensorrt", reason="TensorRT Python bindings are not installed")


@pytest.fixture(scope="module")
def plugin_library(tmp_path_factory) -> Path:
    given = os.environ.get("SIAMRPN_XCORR_PLUGIN")
    if given:
        return Path(given)
    installed = pb.DEFAULT_OUT_DIR / pb.LIBRARY_NAME
    if installed.is_file():
        return installed
    out = tmp_path_factory.mktemp("plugin")
    plan = pb.plan_build(pb.probe_environment(), os.environ, None, out, out / "build")
    if not plan.ok:
        pytest.skip("plugin library not built and cannot be built here: " + "; ".join(plan.missing))
    return pb.run_plan(plan)[0]


@pytest.fixture(scope="module")
def loaded_plugin(trt, plugin_library):
    from runtime.backends.trt import load_plugin_library

    handle = load_plugin_library(trt, plugin_library)
    creator = trt.get_plugin_registry().get_creator(XCORR_OP, str(XCORR_VERSION), XCORR_DOMAIN)
    assert creator is not None, "the library loaded but DepthwiseXCorr/1/siamrpn is not registered"
    return handle


def build_engine(trt, onnx_bytes: bytes, shapes: dict[str, tuple], strongly_typed: bool, expect_plugin: bool):
    """shapes: input name -> (min, opt, max) shapes. Returns a deserialised ICudaEngine."""
    from runtime.backends.trt import product_logger

    logger = product_logger(trt)  # one logger per process: TensorRT keeps the first one's pointer
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        raise AssertionError("; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
    layer_types = {network.get_layer(i).type for i in range(network.num_layers)}
    assert (trt.LayerType.PLUGIN_V3 in layer_types) == expect_plugin
    config = builder.create_builder_config()
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 convolutions would dominate the comparison error
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "build_serialized_network failed (see TensorRT's log)"
    return deserialize(trt, bytes(serialized))


_RUNTIMES = []  # each IRuntime must outlive the engines it deserialised


def deserialize(trt, blob: bytes):
    from runtime.backends.trt import product_logger

    runtime = trt.Runtime(product_logger(trt))
    _RUNTIMES.append(runtime)
    engine = runtime.deserialize_cuda_engine(blob)
    assert engine is not None
    return engine


def run_engine(trt, engine, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from runtime.backends.cuda_mem import DeviceBuffer, PinnedArray, Stream, copy_dtoh, copy_htod

    context = engine.create_execution_context()
    stream = Stream()
    keep = []
    for name, array in feeds.items():
        context.set_input_shape(name, array.shape)
        host = PinnedArray(array.shape, array.dtype)
        host.array[...] = array
        device = DeviceBuffer(array.nbytes)
        copy_htod(device, host, array.nbytes, stream)
        context.set_tensor_address(name, device.ptr)
        keep += [host, device]
    shape = tuple(context.get_tensor_shape("out"))
    dtype = np.dtype(trt.nptype(engine.get_tensor_dtype("out")))
    out_host = PinnedArray(shape, dtype)
    out_device = DeviceBuffer(out_host.nbytes)
    context.set_tensor_address("out", out_device.ptr)
    assert context.execute_async_v3(stream.ptr)
    copy_dtoh(out_host, out_device, out_host.nbytes, stream)
    stream.synchronize()
    result = out_host.array.copy()
    for item in keep + [out_host, out_device]:
        item.close()
    stream.close()
    return result


def plugin_engine(trt, model: str, dtype):
    h, w, kh, kw = SHAPES[model]
    shapes = {"x": ((1, C, h, w), (1, C, h, w), (MAX_BATCH, C, h, w)),
              "k": ((1, C, kh, kw), (1, C, kh, kw), (MAX_BATCH, C, kh, kw))}
    return build_engine(trt, plugin_onnx(h, w, kh, kw, dtype), shapes, strongly_typed=True, expect_plugin=True)


def inputs(model: str, n: int, dtype, seed: int = 0):
    h, w, kh, kw = SHAPES[model]
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (n, C, h, w)).astype(dtype), rng.uniform(-1, 1, (n, C, kh, kw)).astype(dtype))


# ---- tests ----

@pytest.mark.parametrize("model", sorted(SHAPES))
def test_plugin_engine_fp32_matches_numpy_for_batch_1_and_3(trt, loaded_plugin, model):
    engine = plugin_engine(trt, model, np.float32)
    for n in (1, 3):
        x, k = inputs(model, n, np.float32, seed=n)
        out = run_engine(trt, engine, {"x": x, "k": k})
        assert np.all(np.abs(out - dw_xcorr_ref(x, k)) <= error_bound(x, k))


@pytest.mark.parametrize("model", sorted(SHAPES))
def test_plugin_engine_fp16_stays_within_the_fp16_bound(trt, loaded_plugin, model):
    engine = plugin_engine(trt, model, np.float16)
    for n in (1, 3):
        x, k = inputs(model, n, np.float16, seed=10 + n)
        out = run_engine(trt, engine, {"x": x, "k": k})
        assert out.dtype == np.float16
        assert np.all(np.abs(out.astype(np.float64) - dw_xcorr_ref(x, k)) <= error_bound(x, k, out=out))


def test_plugin_engine_runs_every_batch_of_the_profile(trt, loaded_plugin):
    engine = plugin_engine(trt, "r50", np.float32)
    for n in range(1, MAX_BATCH + 1):
        x, k = inputs("r50", n, np.float32, seed=20 + n)
        assert run_engine(trt, engine, {"x": x, "k": k}).shape == (n, C, 25, 25)


@pytest.mark.parametrize("n", [1, 3])
def test_plugin_engine_matches_standard_op_engine(trt, loaded_plugin, n):
    h, w, kh, kw = SHAPES["r50"]
    fixed = {"x": ((n, C, h, w),) * 3, "k": ((n, C, kh, kw),) * 3}
    standard = build_engine(trt, standard_onnx(n, h, w, kh, kw), fixed, strongly_typed=False, expect_plugin=False)
    plugin = plugin_engine(trt, "r50", np.float32)
    x, k = inputs("r50", n, np.float32, seed=30 + n)
    diff = np.abs(run_engine(trt, plugin, {"x": x, "k": k}) - run_engine(trt, standard, {"x": x, "k": k}))
    assert np.all(diff <= error_bound(x, k, orders=2))


def test_plugin_engine_matches_onnxruntime_on_the_standard_twin(trt, loaded_plugin):
    import onnxruntime as ort

    h, w, kh, kw = SHAPES["r50"]
    x, k = inputs("r50", 3, np.float32, seed=40)
    session = ort.InferenceSession(standard_onnx(3, h, w, kh, kw), providers=["CPUExecutionProvider"])
    (expected,) = session.run(["out"], {"x": x, "k": k})
    out = run_engine(trt, plugin_engine(trt, "r50", np.float32), {"x": x, "k": k})
    assert np.all(np.abs(out - expected) <= error_bound(x, k, orders=2))


def test_plugin_engine_survives_serialisation(trt, loaded_plugin):
    engine = plugin_engine(trt, "r50", np.float16)
    blob = bytes(engine.serialize())
    x, k = inputs("r50", 2, np.float16, seed=50)
    # Deserialising recreates the plugin through the creator in the runtime phase, from its (empty) fields.
    again = deserialize(trt, blob)
    np.testing.assert_array_equal(run_engine(trt, again, {"x": x, "k": k}), run_engine(trt, engine, {"x": x, "k": k}))


def find_trtexec() -> str | None:
    return shutil.which("trtexec") or next(
        (p for p in ("/usr/src/tensorrt/bin/trtexec",) if os.access(p, os.X_OK)), None)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
def test_trtexec_builds_and_runs_with_dynamic_plugins(tmp_path, plugin_library, dtype):
    trtexec = find_trtexec()
    if trtexec is None:
        pytest.skip("trtexec not found on PATH or in /usr/src/tensorrt/bin")
    onnx_path = tmp_path / "xcorr.onnx"
    onnx_path.write_bytes(plugin_onnx(*SHAPES["r50"], dtype))
    proc = subprocess.run([trtexec, f"--onnx={onnx_path}", f"--dynamicPlugins={plugin_library}",
                           "--stronglyTyped", "--minShapes=x:1x256x29x29,k:1x256x5x5",
                           "--optShapes=x:1x256x29x29,k:1x256x5x5", "--maxShapes=x:4x256x29x29,k:4x256x5x5",
                           "--shapes=x:3x256x29x29,k:3x256x5x5", "--iterations=20", "--duration=0"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_trtexec_loads_the_static_registration_variant(tmp_path, plugin_library):
    trtexec = find_trtexec()
    static = plugin_library.parent / pb.STATIC_LIBRARY_NAME
    if trtexec is None or not static.is_file():
        pytest.skip("needs trtexec and libsiamrpn_xcorr_plugin_static.so (built only where libnvinfer is found)")
    onnx_path = tmp_path / "xcorr.onnx"
    onnx_path.write_bytes(plugin_onnx(*SHAPES["r50"], np.float32))
    proc = subprocess.run([trtexec, f"--onnx={onnx_path}", f"--staticPlugins={static}",
                           "--shapes=x:1x256x29x29,k:1x256x5x5", "--iterations=10", "--duration=0"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]

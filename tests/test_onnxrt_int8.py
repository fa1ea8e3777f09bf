"""ONNX Runtime runs our INT8 Q/DQ graphs with exact integer arithmetic on every x86 CPU.

Without VNNI, ORT's fused INT8 Conv multiplies u8 x s8 with VPMADDUBSW, whose 16-bit pair sums
saturate; the result is not a little off but wrong (the trained lite0 lost 11 AUC points in INT8, of
which 7 were this). ``runtime.backends.onnxrt.session_options`` turns on ORT's exact kernels
(``session.x64quantprecision``). The reference is the same graph with every optimisation disabled:
ORT then runs QuantizeLinear, DequantizeLinear and a float Conv one by one, which is the arithmetic
the Q/DQ graph defines (and TensorRT's int32 accumulation reproduces).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def _saturating_qdq_conv() -> "onnx.ModelProto":
    """Q/DQ -> 1x1 Conv (32 -> 16, int8 weights 127, bias) -> Q/DQ, on ReLU6-range inputs: every
    pair of products is 127 * 127 * 2 in int8 units, past the 16-bit limit once shifted to u8."""
    from onnx import TensorProto, helper, numpy_helper

    c, o = 32, 16
    inits = [numpy_helper.from_array(np.array(6 / 127, np.float32), "x_scale"),
             numpy_helper.from_array(np.array(0.25, np.float32), "y_scale"),
             numpy_helper.from_array(np.array(0, np.int8), "zero"),
             numpy_helper.from_array(np.full((o, c, 1, 1), 127, np.int8), "w_int8"),
             numpy_helper.from_array(np.full(o, 0.01, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(o, np.int8), "w_zero"),
             numpy_helper.from_array(np.zeros(o, np.float32), "bias")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "zero"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "x_scale", "zero"], ["x_dq"]),
             helper.make_node("DequantizeLinear", ["w_int8", "w_scale", "w_zero"], ["w"], axis=0),
             helper.make_node("Conv", ["x_dq", "w", "bias"], ["y"]),
             helper.make_node("QuantizeLinear", ["y", "y_scale", "zero"], ["y_q"]),
             helper.make_node("DequantizeLinear", ["y_q", "y_scale", "zero"], ["out"])]
    graph = helper.make_graph(nodes, "qdq_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 16, 16])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, o, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model, opts) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.full((1, 32, 16, 16), 6.0, np.float32)})[0]


def _reference(model) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return _run(model, opts)


def test_project_sessions_compute_qdq_conv_exactly():
    from runtime.backends.onnxrt import session_options

    model = _saturating_qdq_conv()
    expected = _reference(model)
    # 32 inputs of 6.0 x weights 1.27 = 243.8, clipped by the output range to 127 * 0.25 = 31.75
    assert expected.max() == pytest.approx(31.75)
    np.testing.assert_array_equal(_run(model, session_options(ort)), expected)


def _has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # cannot tell: treat as unaffected
    return bool(re.search(r"\b(avx512_vnni|avx_vnni)\b", flags)) or "avx2" not in flags


@pytest.mark.skipif(_has_vnni(), reason="this CPU has VNNI (or no AVX2): ORT's default INT8 kernels are exact here")
def test_default_ort_options_saturate_on_this_cpu():
    """Shows the test above can fail: on an AVX2 CPU without VNNI the default options are wrong."""
    model = _saturating_qdq_conv()
    assert np.abs(_run(model, ort.SessionOptions()) - _reference(model)).max() > 10.0

"""The exported graphs in a TensorRT-family ONNX parser: **TensorRT-RTX** (``tensorrt_rtx``), not TensorRT.

Full TensorRT cannot be installed on a GPU-less CI machine; TensorRT-RTX ships a CPU-only ahead-of-time
builder with the same Builder / OnnxParser API (spec/toolchain.md section 1). What this proves: the
standard-op twin (Loop of Conv whose weights are a runtime tensor, dynamic batch) parses and builds
into an engine with a 1..4 batch profile. What it does not prove: FP16/INT8 builds, the
DepthwiseXCorr plugin, or running an engine (no GPU); those are engines/ tests marked ``gpu``.
No trt.Runtime is ever constructed (without a driver it cannot deserialize, and the lean one crashes).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from runtime.contract import artifact_name
from test_onnx_export import export_once

trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu12, the dev extra) is not installed")

MAX_BATCH = 4


@pytest.fixture(scope="module")
def alex_dir(tmp_path_factory) -> Path:
    return export_once(tmp_path_factory, "alex")


def parse(path: Path):
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # RTX networks are strongly typed by default
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(path))
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    return ok, errors, builder, network, parser


def test_the_product_under_test_is_tensorrt_rtx():
    assert trt.__name__ == "tensorrt_rtx"
    assert not hasattr(trt.BuilderFlag, "FP16")  # RTX has no precision flags; real TensorRT does


@pytest.mark.parametrize("graph", ["template", "search"])
def test_standard_twin_parses_and_builds_an_engine_with_the_tensorrt_rtx_cpu_builder(alex_dir, graph):
    ok, errors, builder, network, parser = parse(alex_dir / artifact_name(graph, "fp32", "standard", "onnx"))
    assert ok, errors
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = tuple(tensor.shape)
        assert dims[0] == -1, f"{tensor.name}: batch axis should be dynamic, got {dims}"
        profile.set_shape(tensor.name, (1,) + dims[1:], (1,) + dims[1:], (MAX_BATCH,) + dims[1:])
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None and serialized.nbytes > 0


def test_custom_op_twin_fails_in_tensorrt_rtx_naming_the_missing_depthwise_xcorr_plugin(alex_dir):
    """RTX cannot load our plugin, so the parse must fail, and say which plugin is missing."""
    ok, errors, *_ = parse(alex_dir / artifact_name("search", "fp32", "plugin", "onnx"))
    assert not ok
    assert errors and all("DepthwiseXCorr" in e and "Plugin not found" in e for e in errors), errors

"""The exported graphs in a TensorRT-family ONNX parser: **TensorRT-RTX** (``tensorrt_rtx``), not TensorRT.

Full TensorRT cannot be installed on a GPU-less CI machine; TensorRT-RTX ships a CPU-only ahead-of-time
builder with the same Builder / OnnxParser API. What this proves: the standard-op twin (Loop of Conv
whose weights are a runtime tensor, dynamic batch) parses and builds into an engine with a 1..4 batch
profile; with the DepthwiseXCorr plugin library built from engines/plugin (TensorRT headers needed),
the parser finds the creator from the node's plugin_namespace/plugin_version attributes on the first
lookup, the way TensorRT 10.0-10.3's parser must (it has no fallback to the node's domain). What it
does not prove: running an engine (no GPU); those are tests marked ``gpu``.
No trt.Runtime is ever constructed (without a driver it cannot deserialize, and the lean one crashes).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from runtime.contract import artifact_name
from test_onnx_export import export_once
from runtime.backends.trt import product_logger
from tests.plugin_library import rtx_library_shim, rtx_plugin_library, run_rtx_child

trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu12, the dev extra) is not installed")

MAX_BATCH = 4


@pytest.fixture(scope="module")
def alex_dir(tmp_path_factory) -> Path:
    return export_once(tmp_path_factory, "alex")


def parse(path: Path):
    logger = product_logger(trt)   # the process's one RTX logger (TensorRT keeps the first one's pointer)
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


@pytest.fixture(scope="module")
def plugin_parse(tmp_path_factory):
    """The exported plugin-flavour search graph built by TensorRT-RTX with the plugin library and a verbose
    logger, in a child process (tests/plugin_library.py says why)."""
    library, shim = rtx_plugin_library(tmp_path_factory), rtx_library_shim(tmp_path_factory)  # may skip: first
    onnx_path = export_once(tmp_path_factory, "alex") / artifact_name("search", "fp32", "plugin", "onnx")
    engine = tmp_path_factory.mktemp("rtx_plugin") / "search.fp32.plugin.engine"
    return run_rtx_child(library, "--build", str(onnx_path), str(engine), shim=shim)


@pytest.mark.slow
def test_parser_finds_the_plugin_from_the_node_attributes_without_the_domain_fallback(plugin_parse):
    log = plugin_parse.log
    assert plugin_parse.returncode == 0, log[-3000:]
    assert log.count("Searching for plugin: DepthwiseXCorr, plugin_version: 1, plugin_namespace: siamrpn") == 2, log
    assert log.count("Successfully created plugin: DepthwiseXCorr") == 2
    # RTX's parser, unlike 10.0-10.3's, retries with the node's domain when the attribute lookup fails;
    # on an export without the attributes these lines appear (checker and importer, once per node)
    assert "Plugin not found with node attribute namespace" not in log
    assert "node domain namespace" not in log


@pytest.mark.slow
def test_exported_plugin_search_graph_builds_with_the_plugin_in_tensorrt_rtx(plugin_parse):
    assert plugin_parse.returncode == 0, plugin_parse.log[-3000:]
    (result,) = plugin_parse.results
    assert result["ok"], result
    assert (result["precision"], result["flavour"]) == ("fp32", "plugin") and result["engine_bytes"] > 0
    # alex: 256 channels, 24x24 search features, 4x4 kernels -> 21x21, batch dynamic (-1 / ?)
    assert "DepthwiseXCorr getOutputShapes: x (?, 256, 24, 24), k (?, 256, 4, 4) -> output (?, 256, 21, 21)" \
        in plugin_parse.log

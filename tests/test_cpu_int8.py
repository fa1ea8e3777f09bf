"""The ONNX Runtime CPU INT8 placement (``calibration.cpu_int8``): which nodes become integer kernels,
what stays float, the metadata that ties the pair to its FP32 export, and closeness to FP32.

The model is the contract-shaped tiny model of tests/tiny_graphs.py (4 channels, standard xcorr as a
Loop over targets), with a Relu in front of the xcorr as in every pysot head (conv_search = Conv+BN+ReLU).
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from calibration import CalibrationError
from calibration import cpu_int8
from runtime.contract import META_CALIBRATION, META_EXPORT_ID, META_PRECISION, META_XCORR
from runtime.variants import variant_problem
from tests.tiny_graphs import tiny_search_plugin, tiny_search_standard, tiny_template

ort = pytest.importorskip("onnxruntime")


def _search_with_relu(seed=1, shift=-0.5):
    """The tiny standard search graph with ``Relu(Conv(search) + shift)`` feeding the xcorr Loop: with
    a negative shift about half the Conv's outputs are negative, so losing that Relu shows."""
    from export.xcorr_op import expand_xcorr_nodes
    from tests.tiny_graphs import set_meta

    model = tiny_search_plugin(seed)
    conv = model.graph.node[0]
    conv.output[0] = "feat_pre"
    conv.name = "conv_search"
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.full(4, shift, np.float32), "b_s"))
    conv.input.append("b_s")
    model.graph.node.insert(1, helper.make_node("Relu", ["feat_pre"], ["feat"], name="relu_search"))
    return set_meta(expand_xcorr_nodes(model), META_XCORR, "standard")


class _Calib:
    """What quantize_cpu_pair reads from a calibration set: feeds per graph and the set's sha256."""

    set_sha256 = "cd" * 32

    def feeds_for(self, path, batch=1):
        rng = np.random.default_rng(0)
        if "template" in path.name:
            return [{"template": rng.uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)} for _ in range(12)]
        return [_search_feed(rng) for _ in range(12)]


def _search_feed(rng):
    return {"search": rng.uniform(0, 255, (1, 3, 16, 16)).astype(np.float32) / 25.0,
            "kernel_cls": rng.standard_normal((1, 4, 4, 4)).astype(np.float32),
            "kernel_loc": rng.standard_normal((1, 4, 4, 4)).astype(np.float32)}


@pytest.fixture
def folder(tmp_path):
    onnx.save(tiny_template(), str(tmp_path / "template.fp32.standard.onnx"))
    onnx.save(_search_with_relu(), str(tmp_path / "search.fp32.standard.onnx"))
    return tmp_path


def _props(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _session(path, optimized=None):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # QDQ fusions, no layout
    if optimized:
        opts.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _rel_err(folder, search_path, feeds):
    ref, q = _session(folder / "search.fp32.standard.onnx"), _session(search_path)
    errs = []
    for feed in feeds:
        for a, b in zip(ref.run(None, feed), q.run(None, feed)):
            errs.append(np.abs(a - b).mean() / np.abs(a).mean())
    return float(np.mean(errs))


def test_convs_become_qlinearconv_and_the_xcorr_loop_stays_float(folder):
    _, search = cpu_int8.quantize_cpu_pair(folder, _Calib())
    _session(search, optimized=folder / "optimized.onnx")
    optimized = onnx.load(str(folder / "optimized.onnx"))
    ops = [n.op_type for n in optimized.graph.node]
    # conv_search (its output is quantized for the xcorr input) runs as ORT's integer kernel
    assert "QLinearConv" in ops
    assert not [n for n in optimized.graph.node if n.op_type == "Conv" and n.name == "conv_search"]
    loop = next(n for n in onnx.load(str(search)).graph.node if n.op_type == "Loop")
    body_ops = {n.op_type for n in loop.attribute[0].g.node}
    assert "Conv" in body_ops and not body_ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv"}


def test_weights_are_int8_per_channel_and_activations_uint8(folder):
    _, search = cpu_int8.quantize_cpu_pair(folder, _Calib())
    model = onnx.load(str(search))
    inits = {i.name: i for i in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and n.name.startswith("conv_search"))
    producers = {o: n for n in model.graph.node for o in n.output}
    w_dq, x_dq = producers[conv.input[1]], producers[conv.input[0]]
    assert inits[w_dq.input[0]].data_type == onnx.TensorProto.INT8
    assert list(inits[w_dq.input[1]].dims) == [4]                  # one scale per output channel
    assert inits[x_dq.input[2]].data_type == onnx.TensorProto.UINT8


def test_the_relu_in_front_of_the_xcorr_survives_quantization(folder, monkeypatch):
    feeds = [_search_feed(np.random.default_rng(s)) for s in (10, 11, 12)]
    _, search = cpu_int8.quantize_cpu_pair(folder, _Calib())
    # 8-bit activations and weights on a 4-channel model: a few % of the mean |output|
    assert _rel_err(folder, search, feeds) < 0.05
    # Without the Identity that shows ORT's quantizer the Loop's read, it folds the Relu away and the
    # xcorr reads negative values: far off. (This is the failure the workaround exists for.)
    monkeypatch.setattr(cpu_int8, "_explicit_subgraph_reads", lambda model: 0)
    _, broken = cpu_int8.quantize_cpu_pair(folder, _Calib(), folder / "broken")
    assert _rel_err(folder, broken, feeds) > 0.2


def test_the_pair_carries_the_int8_metadata_of_its_fp32_export(folder):
    template, search = cpu_int8.quantize_cpu_pair(folder, _Calib())
    assert (template.name, search.name) == ("template.int8.cpu.onnx", "search.int8.cpu.onnx")
    fp32 = _props(folder / "search.fp32.standard.onnx")
    cal_ids = set()
    for path in (template, search):
        props = _props(path)
        assert props[META_PRECISION] == "int8" and props[META_XCORR] == "standard"
        assert props[META_EXPORT_ID] == fp32[META_EXPORT_ID]
        cal = json.loads(props[META_CALIBRATION])
        assert cal["placement"] == cpu_int8.PLACEMENT and cal["set_sha256"] == _Calib.set_sha256
        cal_ids.add(cal["calibration_id"])
    assert len(cal_ids) == 1 and "" not in cal_ids
    assert variant_problem(folder, "int8", "cpu", "onnx") is None


def test_a_pair_from_two_runs_is_refused(folder):
    template, _ = cpu_int8.quantize_cpu_pair(folder, _Calib())
    model = onnx.load(str(template))
    cal = json.loads(_props(template)[META_CALIBRATION])
    for p in model.metadata_props:
        if p.key == META_CALIBRATION:
            p.value = json.dumps(dict(cal, calibration_id="another-run"))
    onnx.save(model, str(template))
    assert "different calibrations" in variant_problem(folder, "int8", "cpu", "onnx")


def test_the_backend_opens_the_cpu_pair_and_names_the_kernel_path(folder):
    from runtime.backends.onnxrt import OrtBackend

    cpu_int8.quantize_cpu_pair(folder, _Calib())
    backend = OrtBackend.from_dir(folder, precision="int8", flavour="cpu", threads=1)
    assert backend.flavour == "standard" and backend.int8_kernels.startswith("INT8 kernel path ")
    rng = np.random.default_rng(3)
    kernels = backend.run_template(rng.uniform(0, 255, (1, 3, 8, 8)).astype(np.float32))
    cls, loc = backend.run_search(rng.uniform(0, 10, (1, 3, 16, 16)).astype(np.float32), kernels)
    assert cls.shape == (1, 2, 11, 11) and loc.shape == (1, 4, 11, 11)


def test_a_pair_is_current_only_for_the_same_graphs_and_options(folder):
    cpu_int8.quantize_cpu_pair(folder, _Calib(), samples=8)
    assert cpu_int8.pair_is_current(folder, _Calib(), samples=8)
    assert not cpu_int8.pair_is_current(folder, _Calib(), samples=4)
    onnx.save(_search_with_relu(seed=7), str(folder / "search.fp32.standard.onnx"))
    assert not cpu_int8.pair_is_current(folder, _Calib(), samples=8)


def test_only_the_fp32_standard_graphs_are_accepted_as_source(tmp_path):
    onnx.save(tiny_search_standard(), str(tmp_path / "search.fp32.standard.onnx"))
    with pytest.raises(CalibrationError, match="template.fp32.standard.onnx"):
        cpu_int8.quantize_cpu_pair(tmp_path, _Calib())            # no template graph
    onnx.save(tiny_search_plugin(), str(tmp_path / "plugin.onnx"))
    with pytest.raises(CalibrationError, match="standard export"):
        cpu_int8.quantize_cpu_bytes(tmp_path / "plugin.onnx", [{}], calibration_id="x", set_sha256="y")


@pytest.mark.parametrize("needs_exact", [True, False])
def test_exact_int8_kernels_are_requested_only_where_the_cpu_saturates(monkeypatch, needs_exact):
    from runtime import cpu_features
    from runtime.backends.onnxrt import session_options

    flags = "fpu avx avx2" + ("" if needs_exact else " avx512f avx512bw avx512_vnni")
    monkeypatch.setattr(cpu_features, "detect", lambda *a: cpu_features.parse_cpuinfo(f"flags : {flags}\n", "x86_64"))
    opts = session_options(ort, 1)
    if needs_exact:
        assert opts.get_session_config_entry("session.x64quantprecision") == "1"
    else:
        with pytest.raises(RuntimeError):       # ORT raises for a key that was never set
            opts.get_session_config_entry("session.x64quantprecision")


def test_precision_report_compares_the_cpu_pair_as_its_own_variant(folder):
    from calibration.report import open_variants

    cpu_int8.quantize_cpu_pair(folder, _Calib())
    fp32, variants = open_variants(folder, "standard", ("int8", "int8-cpu"))
    assert list(variants) == ["int8-cpu"]               # no TensorRT-placed int8 pair in this folder
    assert variants["int8-cpu"].search_path.name == "search.int8.cpu.onnx"


def test_the_latency_table_says_which_int8_kernels_ran():
    from bench.report import latency_markdown

    stage = {"median_ms": 5.0, "p90_ms": 6.0, "p99_ms": 7.0}
    summary = {"runs": {"ort-int8-cpu": {"run": {}, "stages": {"search": stage, "track_e2e": stage},
                                         "int8_kernels": "INT8 kernel path vnni: exact and fast"}},
               "environment": {}}
    assert "- ort-int8-cpu: INT8 kernel path vnni" in latency_markdown(summary)


def test_a_stale_cpu_pair_is_refused_with_the_command_that_remakes_it(folder):
    from runtime.variants import refusal_message

    cpu_int8.quantize_cpu_pair(folder, _Calib())
    for name, model in (("template", tiny_template()), ("search", _search_with_relu())):
        for p in model.metadata_props:
            if p.key == META_EXPORT_ID:
                p.value = "a-new-export"                        # the FP32 pair was re-exported since
        onnx.save(model, str(folder / f"{name}.fp32.standard.onnx"))
    reason = variant_problem(folder, "int8", "cpu", "onnx")
    assert "but the FP32 graphs are from export a-new-export" in reason
    assert "siamtrack quantize-cpu" in refusal_message(folder, "onnx", "int8", "cpu", reason)

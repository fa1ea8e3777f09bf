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


def _as_if_from_another_run(path):
    """Rewrite the graph's calibration id, as a graph left over from another quantize run has."""
    model = onnx.load(str(path))
    cal = json.loads(_props(path)[META_CALIBRATION])
    for p in model.metadata_props:
        if p.key == META_CALIBRATION:
            p.value = json.dumps(dict(cal, calibration_id="another-run"))
    onnx.save(model, str(path))


def test_a_pair_from_two_runs_is_refused(folder):
    template, _ = cpu_int8.quantize_cpu_pair(folder, _Calib())
    _as_if_from_another_run(template)
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


# ------------------------------------------------------------------------- the long-term search graph

LOST_SIDE = 24      # the tiny graphs' "831": a larger crop through the same network


def _lost_graph():
    """The tiny standard search graph with a LOST_SIDE input, labelled as the long-term graph (the same
    weights, as an export's search_lost graph has)."""
    from runtime.contract import LOST_GRAPH, META_GRAPH
    from tests.tiny_graphs import set_meta

    model = _search_with_relu()
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert model.graph.input[0].name == "search"
    dims[2].dim_value = dims[3].dim_value = LOST_SIDE
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim[2:]:
            d.dim_param = "S"                    # the response map grows with the crop
    del model.graph.value_info[:]
    return set_meta(model, META_GRAPH, LOST_GRAPH)


@pytest.fixture
def lt_folder(folder):
    """A long-term export: the three FP32 standard graphs, each saying the model has a lost search size."""
    import dataclasses

    from runtime.contract import META_MODEL_SPEC
    from tests.tiny_graphs import TINY, set_meta

    spec = dataclasses.replace(TINY, lost_instance_size=LOST_SIDE, lost_score_size=LOST_SIDE - 5).to_json()
    for name, model in (("template", onnx.load(str(folder / "template.fp32.standard.onnx"))),
                        ("search", onnx.load(str(folder / "search.fp32.standard.onnx"))),
                        ("search_lost", _lost_graph())):
        onnx.save(set_meta(model, META_MODEL_SPEC, spec), str(folder / f"{name}.fp32.standard.onnx"))
    return folder


def test_a_long_term_export_gets_its_lost_graph_placed_for_the_cpu_too(lt_folder):
    paths = cpu_int8.quantize_cpu_pair(lt_folder, _Calib())
    assert [p.name for p in paths] == ["template.int8.cpu.onnx", "search.int8.cpu.onnx",
                                       "search_lost.int8.cpu.onnx"]
    lost, search = (json.loads(_props(p)[META_CALIBRATION]) for p in (paths[2], paths[1]))
    assert lost["calibration_id"] == search["calibration_id"] and "mosaics" in lost["feeds"]
    assert _props(paths[2])[META_PRECISION] == "int8"
    assert variant_problem(lt_folder, "int8", "cpu", "onnx") is None
    # integer kernels there too, and close to its FP32 graph on mosaic-like and on fresh large crops
    _session(paths[2], optimized=lt_folder / "opt_lost.onnx")
    assert "QLinearConv" in [n.op_type for n in onnx.load(str(lt_folder / "opt_lost.onnx")).graph.node]
    ref, q = _session(lt_folder / "search_lost.fp32.standard.onnx"), _session(paths[2])
    rng = np.random.default_rng(5)
    errs = []
    for _ in range(6):
        feed = _search_feed(rng)
        feed["search"] = rng.uniform(0, 255, (1, 3, LOST_SIDE, LOST_SIDE)).astype(np.float32) / 25.0
        for a, b in zip(ref.run(None, feed), q.run(None, feed)):
            assert a.shape[2:] == (LOST_SIDE - 5, LOST_SIDE - 5)
            errs.append(np.abs(a - b).mean() / np.abs(a).mean())
    assert np.mean(errs) < 0.1, errs


def test_mosaic_feeds_tile_the_recorded_crops_and_keep_each_feeds_kernels():
    rng = np.random.default_rng(0)
    feeds = [_search_feed(rng) for _ in range(5)]
    mosaics = cpu_int8.mosaic_feeds(feeds, LOST_SIDE)
    assert len(mosaics) == 5
    for i, m in enumerate(mosaics):
        assert m["search"].shape == (1, 3, LOST_SIDE, LOST_SIDE) and m["search"].flags.c_contiguous
        assert np.array_equal(m["kernel_cls"], feeds[i]["kernel_cls"])
        # tiles row by row: feed i, then i+1 to its right, then i+2 below (16 px crops, 2 x 2 tiles)
        assert np.array_equal(m["search"][:, :, :16, :16], feeds[i]["search"])
        assert np.array_equal(m["search"][:, :, :16, 16:], feeds[(i + 1) % 5]["search"][:, :, :, :8])
        assert np.array_equal(m["search"][:, :, 16:, :16], feeds[(i + 2) % 5]["search"][:, :, :8, :])


def test_the_long_term_backend_opens_the_cpu_lost_graph(lt_folder):
    from runtime.backends.onnxrt import OrtBackend

    cpu_int8.quantize_cpu_pair(lt_folder, _Calib())
    backend = OrtBackend.from_dir(lt_folder, precision="int8", flavour="cpu", threads=1)
    assert backend.lost_path is not None and backend.lost_path.name == "search_lost.int8.cpu.onnx"
    assert not backend.lost_unavailable
    rng = np.random.default_rng(4)
    kernels = backend.run_template(rng.uniform(0, 255, (1, 3, 8, 8)).astype(np.float32))
    cls, loc = backend.run_search(rng.uniform(0, 10, (1, 3, LOST_SIDE, LOST_SIDE)).astype(np.float32), kernels)
    assert cls.shape == (1, 2, LOST_SIDE - 5, LOST_SIDE - 5) and loc.shape == (1, 4, LOST_SIDE - 5, LOST_SIDE - 5)


def test_a_lost_graph_from_another_run_is_left_unused_and_makes_the_pair_stale(lt_folder):
    from runtime.variants import lost_problem

    cpu_int8.quantize_cpu_pair(lt_folder, _Calib(), samples=8)
    assert cpu_int8.pair_is_current(lt_folder, _Calib(), samples=8)
    _as_if_from_another_run(lt_folder / "search_lost.int8.cpu.onnx")
    assert "another-run" in lost_problem(lt_folder, "int8", "cpu", "onnx")
    assert not cpu_int8.pair_is_current(lt_folder, _Calib(), samples=8)


def test_a_pair_made_before_the_export_had_a_lost_graph_is_stale_after(folder):
    # build.sh --only-stale then remakes the pair with the long-term graph instead of keeping it
    cpu_int8.quantize_cpu_pair(folder, _Calib(), samples=8)
    assert cpu_int8.pair_is_current(folder, _Calib(), samples=8)
    onnx.save(_lost_graph(), str(folder / "search_lost.fp32.standard.onnx"))
    assert not cpu_int8.pair_is_current(folder, _Calib(), samples=8)
    cpu_int8.quantize_cpu_pair(folder, _Calib(), samples=8)
    assert cpu_int8.pair_is_current(folder, _Calib(), samples=8)
    assert (folder / "search_lost.int8.cpu.onnx").is_file()


def test_the_long_term_tracker_on_a_cpu_pair_without_its_lost_graph_names_the_command(lt_folder):
    # a pair made by a version that made no lost graph: refused when the tracker is opened, with the fix
    from runtime.backends.onnxrt import OrtBackend
    from runtime.errors import ContractError
    from runtime.tracker_choice import tracker_config_for

    cpu_int8.quantize_cpu_pair(lt_folder, _Calib())
    (lt_folder / "search_lost.int8.cpu.onnx").unlink()
    backend = OrtBackend.from_dir(lt_folder, precision="int8", flavour="cpu", threads=1)
    with pytest.raises(ContractError, match=r"search_lost\.int8\.cpu\.onnx is missing.*siamtrack quantize-cpu"):
        tracker_config_for(backend, "long-term")
    assert not tracker_config_for(backend, "short-term").long_term

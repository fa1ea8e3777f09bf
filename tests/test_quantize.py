"""INT8 Q/DQ quantization: graph structure, calibration determinism, ONNX Runtime runs, bad input.

A hand-built miniature search graph has every structure the real graphs have: a first Conv on the
image, a residual Add, a depth-wise Conv with constant weights, ``conv_search``, the xcorr (custom op
or its grouped-Conv twin with runtime weights) and a two-Conv head with bias.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from calibration import CalibrationError
from calibration.quantize import ort_session, quantize, ranges_path
from runtime.contract import META_CALIBRATION, META_PRECISION, XCORR_DOMAIN, XCORR_OP

C = 4   # channels
HW = 16  # search side
K = 3   # kernel side


def _conv(name, x, w, out, pad=0, group=1, bias=None):
    inputs = [x, w] + ([bias] if bias else [])
    return helper.make_node("Conv", inputs, [out], name=name, pads=[pad] * 4, group=group)


def mini_search_model(xcorr: str = "plugin", seed: int = 0) -> onnx.ModelProto:
    """search (N,3,16,16) + kernel_cls (N,4,3,3) -> cls (N,2,10,10); float32, opset 17.

    xcorr "plugin": one siamrpn::DepthwiseXCorr node; "standard": the exporter's standard-op twin.
    """
    rng = np.random.default_rng(seed)

    def w(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:])))
                                       .astype(np.float32), name)

    inits = [w("w_first", C, 3, 3, 3), w("w_res", C, C, 3, 3), w("w_dw", C, 1, 3, 3),
             w("w_search", C, C, 3, 3), w("w_head0", C, C, 1, 1), w("w_head1", 2, C, 1, 1),
             numpy_helper.from_array(rng.standard_normal(2).astype(np.float32), "b_head1")]
    nodes = [
        _conv("first_conv", "search", "w_first", "f0", pad=1),
        helper.make_node("Relu", ["f0"], ["f1"], name="relu0"),
        _conv("res_conv", "f1", "w_res", "r0", pad=1),
        helper.make_node("Add", ["r0", "f1"], ["r1"], name="residual_add"),
        helper.make_node("Relu", ["r1"], ["r2"], name="relu1"),
        _conv("dw_conv", "r2", "w_dw", "d0", pad=1, group=C),
        _conv("conv_search", "d0", "w_search", "s0"),
        helper.make_node("Relu", ["s0"], ["s1"], name="relu2"),
    ]
    nodes.append(helper.make_node(XCORR_OP, ["s1", "kernel_cls"], ["x0"], name="xcorr", domain=XCORR_DOMAIN))
    nodes += [_conv("head0", "x0", "w_head0", "h0"),
              helper.make_node("Relu", ["h0"], ["h1"], name="relu3"),
              _conv("head1", "h1", "w_head1", "cls", bias="b_head1")]
    graph = helper.make_graph(
        nodes, "mini_search",
        [helper.make_tensor_value_info("search", TensorProto.FLOAT, ["N", 3, HW, HW]),
         helper.make_tensor_value_info("kernel_cls", TensorProto.FLOAT, ["N", C, K, K])],
        [helper.make_tensor_value_info("cls", TensorProto.FLOAT, ["N", 2, 10, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(XCORR_DOMAIN, 1)])
    if xcorr == "standard":
        from export.xcorr_op import expand_xcorr_nodes   # the exporter's own standard-op twin (a Loop)

        model = expand_xcorr_nodes(model)
    entry = model.metadata_props.add()
    entry.key, entry.value = META_PRECISION, "fp32"
    return model


def mini_feeds(n: int = 6, seed: int = 1) -> list[dict[str, np.ndarray]]:
    """Image-like search crops (0..255) and kernels of the scale conv features have."""
    rng = np.random.default_rng(seed)
    return [{"search": rng.uniform(0, 255, (1, 3, HW, HW)).astype(np.float32),
             "kernel_cls": rng.standard_normal((1, C, K, K)).astype(np.float32)} for _ in range(n)]


@pytest.fixture(params=["plugin", "standard"])
def fp32_path(request, tmp_path):
    path = tmp_path / f"search.fp32.{request.param}.onnx"
    onnx.save(mini_search_model(request.param), str(path))
    return path


def _nodes(model):
    return {n.name: n for n in model.graph.node}


def _init(model, name):
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name)


def _consumers(model, tensor):
    return [n for n in model.graph.node if tensor in n.input]


def _producer(model, tensor):
    return next((n for n in model.graph.node if tensor in n.output), None)


def test_every_quantized_conv_has_per_channel_symmetric_int8_weights(fp32_path, tmp_path):
    out = quantize(fp32_path, mini_feeds(), tmp_path / "q.onnx", method="max")
    model = onnx.load(str(out))
    quantized = [n for n in model.graph.node if n.op_type == "Conv" and n.name != "xcorr"]
    assert {n.name for n in quantized} == {"first_conv", "res_conv", "dw_conv", "conv_search", "head0", "head1"}
    for conv in quantized:
        wdq = _producer(model, conv.input[1])
        assert wdq.op_type == "DequantizeLinear"
        assert next(a.i for a in wdq.attribute if a.name == "axis") == 0
        wq, scale, zp = (_init(model, i) for i in wdq.input)
        assert wq.dtype == np.int8 and np.abs(wq.astype(int)).max() <= 127   # symmetric: -128 never used
        assert scale.shape == (wq.shape[0],) and zp.shape == (wq.shape[0],)   # one scale per out channel
        assert zp.dtype == np.int8 and not zp.any()
        xdq = _producer(model, conv.input[0])
        assert xdq.op_type == "DequantizeLinear" and _producer(model, xdq.input[0]).op_type == "QuantizeLinear"
        assert _init(model, xdq.input[2]).dtype == np.int8 and _init(model, xdq.input[2]) == 0
        assert _init(model, xdq.input[1]).shape == ()                           # per-tensor activations


def test_weight_scales_equal_channel_absmax_over_127(fp32_path, tmp_path):
    # Independent reference: symmetric per-channel INT8 maps each channel's max |w| to 127.
    out = quantize(fp32_path, mini_feeds(), tmp_path / "q.onnx", method="max")
    w = numpy_helper.to_array(next(i for i in onnx.load(str(fp32_path)).graph.initializer
                                   if i.name == "w_search"))
    expect = np.abs(w.reshape(C, -1)).max(axis=1) / 127
    np.testing.assert_allclose(_init(onnx.load(str(out)), "w_search_scale"), expect, rtol=1e-6)


def test_max_method_scale_is_observed_absmax_of_the_conv_input(tmp_path):
    path = tmp_path / "search.fp32.standard.onnx"
    onnx.save(mini_search_model("standard"), str(path))
    feeds = mini_feeds()
    out = quantize(path, feeds, tmp_path / "q.onnx", method="max")
    expect = max(np.abs(f["search"]).max() for f in feeds) / 127      # first conv reads the raw image
    assert _init(onnx.load(str(out)), "search_scale") == pytest.approx(expect, rel=1e-6)


def test_xcorr_node_passes_through_untouched_with_float_inputs(tmp_path):
    path = tmp_path / "search.fp32.plugin.onnx"
    onnx.save(mini_search_model("plugin"), str(path))
    model = onnx.load(str(quantize(path, mini_feeds(), tmp_path / "q.onnx", method="max")))
    xcorr = _nodes(model)["xcorr"]
    assert (xcorr.domain, xcorr.op_type, list(xcorr.input)) == (XCORR_DOMAIN, XCORR_OP, ["s1", "kernel_cls"])
    assert _producer(model, "s1").op_type == "Relu"          # float: no Q/DQ inserted before the plugin
    assert all(n.op_type not in ("QuantizeLinear", "DequantizeLinear") for n in _consumers(model, "s1"))
    assert _producer(model, "kernel_cls") is None            # still the float graph input


def test_residual_skip_input_is_quantized_and_conv_output_is_not(fp32_path, tmp_path):
    model = onnx.load(str(quantize(fp32_path, mini_feeds(), tmp_path / "q.onnx", method="max")))
    add = _nodes(model)["residual_add"]
    assert add.input[0] == "r0"                                # Conv output feeds the Add directly
    assert _producer(model, add.input[1]).op_type == "DequantizeLinear"


@pytest.mark.parametrize("keep, kept", [
    ("first", {"first_conv"}),
    ("xcorr", {"conv_search"}),
    ("head", {"head0", "head1"}),
    ("dw_conv", {"dw_conv"}),
    ("first:3", {"first_conv", "res_conv", "dw_conv"}),
])
def test_keep_fp_leaves_chosen_convs_float(fp32_path, tmp_path, keep, kept):
    model = onnx.load(str(quantize(fp32_path, mini_feeds(), tmp_path / "q.onnx", method="max", keep_fp=[keep])))
    for name in ("first_conv", "res_conv", "dw_conv", "conv_search", "head0", "head1"):
        conv = _nodes(model)[name]
        weight_is_dq = (_producer(model, conv.input[1]) or conv).op_type == "DequantizeLinear"
        assert weight_is_dq == (name not in kept), name
    calib = json.loads({p.key: p.value for p in model.metadata_props}[META_CALIBRATION])
    assert set(calib["keep_fp"]) == kept


def test_head_outputs_stay_float_graph_outputs(fp32_path, tmp_path):
    model = onnx.load(str(quantize(fp32_path, mini_feeds(), tmp_path / "q.onnx", method="max")))
    assert _producer(model, "cls").name == "head1"            # no Q/DQ after the head
    assert model.graph.output[0].name == "cls"


@pytest.mark.parametrize("method", ["max", "percentile", "entropy"])
def test_onnxruntime_runs_the_int8_graph_close_to_fp32(fp32_path, tmp_path, method):
    feeds = mini_feeds(8)
    out = quantize(fp32_path, feeds, tmp_path / "q.onnx", method=method)
    ref = ort_session(fp32_path).run(["cls"], feeds[0])[0]
    got = ort_session(out).run(["cls"], feeds[0])[0]
    assert got.shape == ref.shape and np.isfinite(got).all()
    # Six INT8 layers on calibration data: error a small fraction of the output's spread. 10% is a
    # loose bound (measured ~1-3%); a mis-wired scale or zero point gives errors of order 100%.
    assert np.abs(got - ref).mean() < 0.1 * ref.std()


def test_same_data_gives_same_scales(tmp_path):
    path = tmp_path / "search.fp32.plugin.onnx"
    onnx.save(mini_search_model("plugin"), str(path))
    a = quantize(path, mini_feeds(), tmp_path / "a.onnx", method="entropy")
    b = quantize(path, mini_feeds(), tmp_path / "b.onnx", method="entropy")
    assert a.read_bytes() == b.read_bytes()
    assert json.loads(ranges_path(a).read_text()) == json.loads(ranges_path(b).read_text())


def test_metadata_records_precision_method_and_set_hash(tmp_path):
    path = tmp_path / "search.fp32.plugin.onnx"
    onnx.save(mini_search_model("plugin"), str(path))
    props_a = {p.key: p.value for p in onnx.load(str(quantize(path, mini_feeds(), tmp_path / "a.onnx",
                                                              method="percentile"))).metadata_props}
    props_b = {p.key: p.value for p in onnx.load(str(quantize(path, mini_feeds(seed=2), tmp_path / "b.onnx",
                                                              method="percentile"))).metadata_props}
    assert props_a[META_PRECISION] == "int8"
    a, b = json.loads(props_a[META_CALIBRATION]), json.loads(props_b[META_CALIBRATION])
    assert (a["method"], a["samples"], a["percentile"]) == ("percentile", 6, 99.99)
    assert a["set_sha256"] != b["set_sha256"]                 # different data, different hash


def test_empty_calibration_set_is_refused_and_nothing_written(fp32_path, tmp_path):
    with pytest.raises(CalibrationError, match="empty"):
        quantize(fp32_path, [], tmp_path / "q.onnx")
    assert list(tmp_path.glob("q*")) == []


def test_feeds_for_another_graph_are_refused(fp32_path, tmp_path):
    bad = [{"template": np.zeros((1, 3, 127, 127), np.float32)}]
    with pytest.raises(CalibrationError, match="inputs"):
        quantize(fp32_path, bad, tmp_path / "q.onnx")
    wrong_shape = [{"search": np.zeros((1, 3, 20, 20), np.float32), "kernel_cls": np.zeros((1, C, K, K), np.float32)}]
    with pytest.raises(CalibrationError, match="collect it again"):
        quantize(fp32_path, wrong_shape, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


def test_unknown_custom_op_is_refused(tmp_path):
    model = mini_search_model("plugin")
    model.graph.node[1].domain, model.graph.node[1].op_type = "acme", "FancyRelu"
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    with pytest.raises(CalibrationError, match="acme::FancyRelu"):
        quantize(path, mini_feeds(), tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


def test_already_quantized_graph_is_refused(fp32_path, tmp_path):
    q = quantize(fp32_path, mini_feeds(), tmp_path / "q.onnx", method="max")
    with pytest.raises(CalibrationError, match="int8 graph"):
        quantize(q, mini_feeds(), tmp_path / "qq.onnx")


def test_unknown_keep_fp_name_is_refused(fp32_path, tmp_path):
    with pytest.raises(CalibrationError, match="no_such_node"):
        quantize(fp32_path, mini_feeds(), tmp_path / "q.onnx", keep_fp=["no_such_node"])
    with pytest.raises(CalibrationError, match="first:N must be a whole number"):
        quantize(fp32_path, mini_feeds(), tmp_path / "q.onnx", keep_fp=["first:x"])
    assert not (tmp_path / "q.onnx").exists()


def test_percentile_range_is_the_hand_computed_quantile():
    from calibration.ranges import AbsHistogram, amax_percentile

    # |x| = 0..999 once each on 1000 unit bins: half the mass lies below 500, 99 % below 990.
    hist = AbsHistogram(1000.0, num_bins=1000)
    hist.add(np.arange(1000, dtype=np.float32))
    assert amax_percentile(hist, 50.0) == pytest.approx(500.0)
    assert amax_percentile(hist, 99.0) == pytest.approx(990.0)


def _entropy_reference(counts: np.ndarray, edges: np.ndarray, nq: int = 128) -> float:
    """TensorRT's KL threshold search written the slow, literal way (one threshold at a time), with
    pytorch-quantization's zero-bin replacement and its tie rule (the largest threshold wins)."""
    counts = counts.copy()
    counts[0] = counts[1]
    best_i, best = len(counts), np.inf
    for i in range(nq, len(counts) + 1):
        p = counts[:i].astype(np.float64)
        p[i - 1] += counts[i:].sum()
        group = np.digitize(np.arange(i), np.linspace(0, i, nq + 1)) - 1
        q = np.zeros(i)
        for g in range(nq):
            members = [j for j in range(i) if group[j] == g and counts[j] > 0]
            for j in members:
                q[j] = counts[members].sum() / len(members)
        if q.sum() == 0:
            continue
        p, q = p / p.sum(), q / q.sum()
        s = p > 0
        kl = np.inf if np.any(q[s] == 0) else float(np.sum(p[s] * np.log(p[s] / q[s])))
        if kl <= best:
            best_i, best = i, kl
    return float(edges[best_i])


@pytest.mark.parametrize("dist", ["normal", "relu", "heavy_tail"])
def test_entropy_range_matches_the_literal_kl_search(dist):
    from calibration.ranges import AbsHistogram, amax_entropy

    rng = np.random.default_rng(3)
    data = {"normal": rng.standard_normal(50000), "relu": np.maximum(rng.standard_normal(50000), 0),
            "heavy_tail": rng.laplace(size=50000) ** 3}[dist]
    hist = AbsHistogram(float(np.abs(data).max()), num_bins=256)   # 256 bins keep the literal loop fast
    hist.add(data.astype(np.float32))
    assert amax_entropy(hist) == pytest.approx(_entropy_reference(hist.counts, hist.edges), rel=1e-12)


def test_entropy_range_is_not_pulled_down_by_the_exact_zeros_of_relu6():
    """Half of a ReLU6 output is exactly 0. That spike says nothing about where to clip (0 is exact at
    any scale); counted as data it dominates the KL search, which then clips hard: here at 1.11, cutting
    11 % of the non-zero values (on the trained lite0 it gave tracking AUC 0.026)."""
    from calibration.ranges import AbsHistogram, amax_entropy

    rng = np.random.default_rng(5)
    n = 200000
    data = rng.exponential(0.5, n) * (rng.random(n) > 0.5)      # half exact zeros, the rest mean 0.5
    data = np.clip(data, 0.0, 6.0)
    data[0] = 6.0
    hist = AbsHistogram(6.0)
    hist.add(data.astype(np.float32))
    # The 99th percentile of the non-zero values is 0.5 * ln(100) = 2.3; KL must keep at least that.
    assert amax_entropy(hist) > 2.3


def _channel_means(model, feeds, tensors):
    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    for t in tensors:
        aug.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    sess = ort_session(aug)
    outs = [sess.run(tensors, f) for f in feeds]
    return {t: np.concatenate([o[k] for o in outs]).astype(np.float64).mean(axis=(0, 2, 3))
            for k, t in enumerate(tensors)}


@pytest.mark.parametrize("conv, data_in, bias, groups", [("res_conv", "f1", None, 1),
                                                         ("dw_conv", "r2", None, C),
                                                         ("head1", "h1", "b_head1", 1)])
def test_bias_absorbs_the_mean_shift_of_weight_rounding(tmp_path, conv, data_in, bias, groups):
    """bias' = bias - sum over taps of (dequantized int8 weight - float weight) x input channel mean,
    recomputed here from the written graph and the calibration data."""
    fp32 = mini_search_model("plugin")
    path = tmp_path / "search.fp32.plugin.onnx"
    onnx.save(fp32, str(path))
    feeds = mini_feeds(8)
    q = onnx.load(str(quantize(path, feeds, tmp_path / "q.onnx")))
    node = _nodes(q)[conv]
    w_name = _producer(q, node.input[1]).input[0]                   # the INT8 initializer behind the DQ
    scale = _init(q, _producer(q, node.input[1]).input[1])
    w_float = _init(fp32, next(n.input[1] for n in fp32.graph.node if n.name == conv)).astype(np.float64)
    err = _init(q, w_name).astype(np.float64) * scale.reshape(-1, 1, 1, 1) - w_float   # (O, I/G, kh, kw)
    mean = _channel_means(fp32, feeds, [data_in])[data_in].reshape(groups, -1)
    out_ch = err.shape[0]
    mean_per_out = mean[np.arange(out_ch) // (out_ch // groups)]                          # (O, I/G)
    shift = (err.sum(axis=(2, 3)) * mean_per_out).sum(axis=1)
    original = _init(fp32, bias).astype(np.float64) if bias else np.zeros(out_ch)
    assert len(node.input) == 3, "a Conv without bias gets one to hold the correction"
    np.testing.assert_allclose(_init(q, node.input[2]), original - shift, rtol=1e-5, atol=1e-6)
    assert np.abs(shift).max() > 1e-4                                # the check is not vacuous


def test_without_bias_correction_the_exported_biases_are_kept(tmp_path):
    path = tmp_path / "search.fp32.plugin.onnx"
    onnx.save(mini_search_model("plugin"), str(path))
    q = onnx.load(str(quantize(path, mini_feeds(), tmp_path / "q.onnx", bias_correction=False)))
    nodes = _nodes(q)
    assert len(nodes["dw_conv"].input) == 2
    np.testing.assert_array_equal(_init(q, nodes["head1"].input[2]), _init(mini_search_model("plugin"), "b_head1"))
    props = {p.key: p.value for p in q.metadata_props}
    assert json.loads(props[META_CALIBRATION])["bias_correction"] is False

"""FP16 conversion: graph types, the xcorr pass-through, keep-FP32 options, ORT runs, bad input."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from calibration.quantize import ort_session
from export.fp16 import META_FP16, convert_fp16
from runtime.contract import META_PRECISION, XCORR_DOMAIN, XCORR_OP
from runtime.errors import ContractError, InputError
from test_quantize import mini_feeds, mini_search_model


@pytest.fixture(params=["plugin", "standard"])
def fp32_path(request, tmp_path):
    path = tmp_path / f"search.fp32.{request.param}.onnx"
    onnx.save(mini_search_model(request.param), str(path))
    return path


def _elem(vi):
    return vi.type.tensor_type.elem_type


def _weight_dtype(model, conv_name):
    conv = next(n for n in model.graph.node if n.name == conv_name)
    init = {i.name: i for i in model.graph.initializer}
    return init[conv.input[1]].data_type


def test_weights_are_float16_and_io_stays_float32_by_default(fp32_path, tmp_path):
    model = onnx.load(str(convert_fp16(fp32_path, tmp_path / "h.onnx")))
    for conv in ("first_conv", "res_conv", "conv_search", "head0", "head1"):
        assert _weight_dtype(model, conv) == TensorProto.FLOAT16, conv
    assert all(_elem(v) == TensorProto.FLOAT for v in list(model.graph.input) + list(model.graph.output))


def test_io_fp16_makes_inputs_and_outputs_float16(fp32_path, tmp_path):
    model = onnx.load(str(convert_fp16(fp32_path, tmp_path / "h.onnx", io="fp16")))
    assert all(_elem(v) == TensorProto.FLOAT16 for v in list(model.graph.input) + list(model.graph.output))


def test_xcorr_node_is_untouched_and_reads_float32(tmp_path):
    src = tmp_path / "search.fp32.plugin.onnx"
    onnx.save(mini_search_model("plugin"), str(src))
    model = onnx.load(str(convert_fp16(src, tmp_path / "h.onnx")))
    xcorr = next(n for n in model.graph.node if n.op_type == XCORR_OP)
    assert (xcorr.domain, xcorr.name, len(xcorr.input)) == (XCORR_DOMAIN, "xcorr", 2)
    producers = {o: n for n in model.graph.node for o in n.output}
    for name in xcorr.input:   # a Cast to float32 or the float32 graph input itself
        node = producers.get(name)
        if node is not None:
            assert node.op_type == "Cast" and node.attribute[0].i == TensorProto.FLOAT


def test_xcorr_fp16_option_feeds_it_float16(tmp_path):
    src = tmp_path / "search.fp32.plugin.onnx"
    onnx.save(mini_search_model("plugin"), str(src))
    model = onnx.load(str(convert_fp16(src, tmp_path / "h.onnx", xcorr="fp16")))
    xcorr = next(n for n in model.graph.node if n.op_type == XCORR_OP)
    producers = {o: n for n in model.graph.node for o in n.output}
    feature = producers[xcorr.input[0]]
    assert feature.op_type == "Relu"   # no Cast back to float32: the Relu computes in float16


def test_keep_fp32_node_stays_float32(fp32_path, tmp_path):
    model = onnx.load(str(convert_fp16(fp32_path, tmp_path / "h.onnx", keep_fp32_nodes=["head0"])))
    assert _weight_dtype(model, "head0") == TensorProto.FLOAT
    assert _weight_dtype(model, "head1") == TensorProto.FLOAT16


def test_keep_fp32_op_type_stays_float32(tmp_path):
    src = tmp_path / "search.fp32.plugin.onnx"
    onnx.save(mini_search_model("plugin"), str(src))
    model = onnx.load(str(convert_fp16(src, tmp_path / "h.onnx", keep_fp32_ops=["Conv"])))
    assert all(_weight_dtype(model, c) == TensorProto.FLOAT for c in ("first_conv", "dw_conv", "head1"))


def test_onnxruntime_runs_fp16_close_to_fp32(fp32_path, tmp_path):
    out = convert_fp16(fp32_path, tmp_path / "h.onnx")
    feed = mini_feeds(1)[0]
    ref = ort_session(fp32_path).run(["cls"], feed)[0]
    got = ort_session(out).run(["cls"], feed)[0]
    assert got.dtype == np.float32
    # float16 keeps ~3 significant digits per op; six layers stay well inside 1% of the output spread.
    assert np.abs(got - ref).max() < 0.01 * ref.std()


def test_metadata_records_fp16_choices(fp32_path, tmp_path):
    model = onnx.load(str(convert_fp16(fp32_path, tmp_path / "h.onnx", keep_fp32_ops=["Relu"])))
    props = {p.key: p.value for p in model.metadata_props}
    assert props[META_PRECISION] == "fp16"
    assert json.loads(props[META_FP16])["keep_fp32_ops"] == ["Relu"]


def test_converting_a_variant_is_refused(fp32_path, tmp_path):
    half = convert_fp16(fp32_path, tmp_path / "h.onnx")
    with pytest.raises(ContractError, match="fp16 graph"):
        convert_fp16(half, tmp_path / "hh.onnx")
    assert not (tmp_path / "hh.onnx").exists()


def test_unknown_keep_node_is_refused(fp32_path, tmp_path):
    with pytest.raises(InputError, match="nope"):
        convert_fp16(fp32_path, tmp_path / "h.onnx", keep_fp32_nodes=["nope"])
    assert not (tmp_path / "h.onnx").exists()

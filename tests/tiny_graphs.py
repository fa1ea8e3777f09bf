"""Tiny graphs that follow the export contract (names, metadata) with a 4-channel model, laid out as
the export stage lays them out; the standard twin of the search graph comes from
export.xcorr_op.expand_xcorr_nodes, the production path. Used by the engine-build and TensorRT-backend
tests.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.contract import META_PRECISION, META_XCORR, XCORR_NODE_ATTRIBUTES, GraphMeta, ModelSpec, TrackerConfig

TINY = ModelSpec(variant="tiny", exemplar_size=8, instance_size=16, score_size=11, anchor_num=1,
                 levels=("",), kernel_channels=4, kernel_size=4)


# --- tiny contract graphs (onnx.helper) ------------------------------------------------------------
def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(graph, graph_name, flavour, precision="fp32", export_id="tiny-1", domains=()):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]
                              + [helper.make_opsetid(d, 1) for d in domains])
    meta = GraphMeta(graph=graph_name, spec=TINY, tracker=TrackerConfig(), source_sha256="0" * 64,
                     export_id=export_id, xcorr=flavour, precision=precision)
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def tiny_template(seed=0, batch="N"):
    """template (N,3,8,8) -> kernel_cls, kernel_loc (N,4,4,4): one 5x5 Conv each."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((4, 3, 5, 5)) * 0.1).astype(np.float32), n)
             for n in ("w_kc", "w_kl")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["template", "w_kc"], ["kernel_cls"]),
         helper.make_node("Conv", ["template", "w_kl"], ["kernel_loc"])], "template",
        [_vi("template", [batch, 3, 8, 8])], [_vi("kernel_cls", [batch, 4, 4, 4]), _vi("kernel_loc", [batch, 4, 4, 4])],
        inits)
    return _model(graph, "template", "standard")


def tiny_search_plugin(seed=1):
    """search (N,3,16,16) + kernels -> cls (N,2,11,11), loc (N,4,11,11), xcorr as siamrpn::DepthwiseXCorr."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.1).astype(np.float32), "w_s"),
             numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w_c"),
             numpy_helper.from_array(rng.standard_normal((4, 4, 1, 1)).astype(np.float32), "w_l")]
    nodes = [helper.make_node("Conv", ["search", "w_s"], ["feat"]),
             helper.make_node("DepthwiseXCorr", ["feat", "kernel_cls"], ["xc"], domain="siamrpn", name="xc_cls",
                              **dict(XCORR_NODE_ATTRIBUTES)),
             helper.make_node("DepthwiseXCorr", ["feat", "kernel_loc"], ["xl"], domain="siamrpn", name="xc_loc",
                              **dict(XCORR_NODE_ATTRIBUTES)),
             helper.make_node("Conv", ["xc", "w_c"], ["cls"]),
             helper.make_node("Conv", ["xl", "w_l"], ["loc"])]
    graph = helper.make_graph(
        nodes, "search",
        [_vi("search", ["N", 3, 16, 16]), _vi("kernel_cls", ["N", 4, 4, 4]), _vi("kernel_loc", ["N", 4, 4, 4])],
        [_vi("cls", ["N", 2, 11, 11]), _vi("loc", ["N", 4, 11, 11])], inits,
        value_info=[_vi("feat", ["N", 4, 14, 14]), _vi("xc", ["N", 4, 11, 11]), _vi("xl", ["N", 4, 11, 11])])
    return _model(graph, "search", "plugin", domains=("siamrpn",))


def set_meta(model, key, value):
    for entry in model.metadata_props:
        if entry.key == key:
            entry.value = value
    return model


def tiny_search_standard(seed=1):
    from export.xcorr_op import expand_xcorr_nodes

    return set_meta(expand_xcorr_nodes(tiny_search_plugin(seed)), META_XCORR, "standard")


def _rename_uses(graph, old, new):
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        for attr in node.attribute:
            if attr.type == attr.GRAPH:
                _rename_uses(attr.g, old, new)


def _to_half(graph):
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for vi in list(graph.value_info) + list(graph.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == attr.GRAPH:
                _to_half(attr.g)


def to_fp16(model):
    """Every float tensor float16 inside, float32 graph inputs/outputs (Casts at the edges)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    outputs = [o.name for o in g.output]
    _to_half(g)
    for o in g.output:
        o.type.tensor_type.elem_type = TensorProto.FLOAT
    casts_in = []
    for i in g.input:
        _rename_uses(g, i.name, i.name + "_h")
        casts_in.append(helper.make_node("Cast", [i.name], [i.name + "_h"], to=TensorProto.FLOAT16))
    for node in g.node:
        node.output[:] = [o + "_h" if o in outputs else o for o in node.output]
    nodes = casts_in + list(g.node) + [helper.make_node("Cast", [n + "_h"], [n], to=TensorProto.FLOAT) for n in outputs]
    del g.node[:]
    g.node.extend(nodes)
    return set_meta(out, META_PRECISION, "fp16")


def to_qdq_template(model):
    """INT8 Q/DQ (symmetric, per tensor) on the template input and on every Conv weight."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    weights = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    inits = [numpy_helper.from_array(np.array(255 / 127, np.float32), "s_in"),
             numpy_helper.from_array(np.array(0, np.int8), "zp")]
    nodes = [helper.make_node("QuantizeLinear", ["template", "s_in", "zp"], ["template_q"]),
             helper.make_node("DequantizeLinear", ["template_q", "s_in", "zp"], ["template_dq"])]
    for node in list(g.node):
        w = weights[node.input[1]]
        scale = float(np.abs(w).max() / 127)
        inits += [numpy_helper.from_array(np.clip(np.round(w / scale), -127, 127).astype(np.int8), node.input[1] + "_q"),
                  numpy_helper.from_array(np.array(scale, np.float32), node.input[1] + "_s")]
        nodes.append(helper.make_node("DequantizeLinear", [node.input[1] + "_q", node.input[1] + "_s", "zp"],
                                      [node.input[1] + "_dq"]))
        nodes.append(helper.make_node("Conv", ["template_dq", node.input[1] + "_dq"], list(node.output)))
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(inits)
    return set_meta(out, META_PRECISION, "int8")


def write_tiny_folder(folder, fp16=False, int8=False, plugin=True):
    """The tiny export as the export stage lays it out: <graph>.<precision>.<flavour>.onnx."""
    folder.mkdir(parents=True, exist_ok=True)
    template, search = tiny_template(), tiny_search_standard()
    models = {"template.fp32.standard.onnx": template, "search.fp32.standard.onnx": search}
    if plugin:
        models["template.fp32.plugin.onnx"] = set_meta(tiny_template(), META_XCORR, "plugin")
        models["search.fp32.plugin.onnx"] = tiny_search_plugin()
    if fp16:
        models["template.fp16.standard.onnx"] = to_fp16(template)
        models["search.fp16.standard.onnx"] = to_fp16(search)
    if int8:
        models["template.int8.standard.onnx"] = to_qdq_template(template)
    for name, model in models.items():
        onnx.save(model, str(folder / name))
    return folder

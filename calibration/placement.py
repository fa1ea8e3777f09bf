"""Where Q/DQ goes: which Convs get INT8, which tensors get a Q/DQ pair, what stays float.

Rules (TensorRT explicit quantization; see ``calibration.quantize`` for the whole picture): every Conv
with constant weights is quantized unless ``keep_fp`` names it or its group; residual Adds get a Q/DQ
on their skip input; the depth-wise xcorr (custom node, runtime-weight Conv, or the standard twin's
Loop) and anything only it reads stay float. Works on ``onnx.ModelProto`` with named nodes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from calibration import CalibrationError
from runtime.contract import XCORR_DOMAIN, XCORR_OP

KEEP_GROUPS = ("first", "xcorr", "head")
# Ops a walk from the xcorr back to its producing Conv may pass (shape/elementwise, one data input).
_PASS_THROUGH = {"Relu", "Clip", "BatchNormalization", "Reshape", "Identity", "Cast", "Slice",
                 "LeakyRelu", "Flatten", "Transpose", "Squeeze", "Unsqueeze"}
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger",
              "QLinearMatMul", "DynamicQuantizeLinear"}


@dataclass(frozen=True)
class QuantPlan:
    """What gets quantized. Node names refer to the (named) input graph.

    convs: Conv nodes whose data input and weights get INT8. kept: node name -> why it stays float.
    activations: tensors that get a Q/DQ pair (conv data inputs and residual skip inputs).
    xcorr_nodes: the depth-wise xcorr nodes (never quantized).
    """

    convs: tuple[str, ...]
    kept: dict[str, str]
    activations: tuple[str, ...]
    residual_inputs: tuple[str, ...]
    xcorr_nodes: tuple[str, ...]


def name_nodes(model) -> None:
    """Give every unnamed node a unique name (Q/DQ names and the range report refer to nodes)."""
    seen = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def _is_xcorr(node, initializers: set[str]) -> bool:
    """The custom node, a Conv whose weights are a runtime tensor, or a Loop running such a Conv
    (``export.xcorr_op.expand_xcorr_nodes`` writes the standard twin as a Loop over targets)."""
    if node.domain == XCORR_DOMAIN and node.op_type == XCORR_OP:
        return True
    if node.op_type == "Conv":
        return len(node.input) > 1 and node.input[1] not in initializers
    if node.op_type == "Loop":
        body = next(a.g for a in node.attribute if a.name == "body")
        local = {i.name for i in body.initializer}
        return any(_is_xcorr(n, local) for n in body.node)
    return False


def _xcorr_inputs(node) -> list[str]:
    """Tensors the xcorr reads: node inputs, or for a Loop the outer-scope names its body uses."""
    if node.op_type != "Loop":
        return list(node.input)
    body = next(a.g for a in node.attribute if a.name == "body")
    defined = {i.name for i in body.input} | {i.name for i in body.initializer}
    defined |= {o for n in body.node for o in n.output}
    return list(dict.fromkeys(i for n in body.node for i in n.input if i and i not in defined))


def check_quantizable(model, where: str) -> None:
    """Refuse graphs this quantizer cannot handle, naming the node."""
    opsets = {o.domain: o.version for o in model.opset_import}
    if opsets.get("", opsets.get("ai.onnx", 0)) < 13:
        raise CalibrationError(f"{where}: ONNX opset {opsets.get('', '?')} has no per-channel "
                               "QuantizeLinear (needs >= 13); re-export with a newer opset")
    for node in model.graph.node:
        if node.op_type in _QUANT_OPS:
            raise CalibrationError(f"{where}: node {node.name} is already a quantization op "
                                   f"({node.op_type}); quantize the FP32 export, not a quantized graph")
        if node.domain not in ("", "ai.onnx") and not (node.domain == XCORR_DOMAIN and node.op_type == XCORR_OP):
            raise CalibrationError(
                f"{where}: node {node.name} is op {node.domain}::{node.op_type}, which this quantizer does "
                f"not know (only standard ONNX ops and {XCORR_DOMAIN}::{XCORR_OP} pass through); its input "
                "precision cannot be chosen. Export the standard-op flavour or add the op to the quantizer")


def plan(model, keep_fp: Iterable[str] = (), residual: bool = True) -> QuantPlan:
    """Decide which Convs and tensors get Q/DQ. ``model`` must have named nodes (``name_nodes``)."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_inputs = {i.name for i in graph.input} - inits
    xcorr = [n for n in graph.node if _is_xcorr(n, inits)]
    candidates = [n for n in graph.node if n.op_type == "Conv" and not _is_xcorr(n, inits)]
    names = {n.name for n in graph.node}

    kept: dict[str, str] = {}
    for item in keep_fp:
        count = _first_count(item)
        if count is not None:
            for n in candidates[:count]:
                kept[n.name] = f"{item}: one of the first {count} Convs"
        elif item == "first":
            for n in candidates:
                if n.input[0] in graph_inputs:
                    kept[n.name] = "first: reads the image"
        elif item == "xcorr":
            starts = [t for n in xcorr for t in _xcorr_inputs(n)]
            starts += [o.name for o in graph.output if o.name.startswith("kernel_")]
            for t in starts:
                conv = _conv_upstream(t, producers)
                if conv is not None:
                    kept[conv.name] = "xcorr: makes an xcorr input"
        elif item == "head":
            for conv in _convs_downstream([o for n in xcorr for o in n.output], consumers):
                kept[conv.name] = "head: after the xcorr"
        elif item in names:
            kept[item] = "named by keep_fp"
        else:
            raise CalibrationError(f"keep_fp: {item!r} is neither a group ({', '.join(KEEP_GROUPS)}, first:N) "
                                   "nor a node of this graph; list node names with netron")
    convs = [n for n in candidates if n.name not in kept]
    acts = list(dict.fromkeys(n.input[0] for n in convs))
    residual_inputs: list[str] = []
    if residual:
        after_xcorr = {n.name for n in _nodes_downstream([o for n in xcorr for o in n.output], consumers)}
        quantized = {n.name for n in convs}
        for n in graph.node:
            if n.op_type != "Add" or n.name in after_xcorr or len(n.input) != 2 or any(i in inits for i in n.input):
                continue
            skip = _residual_skip(n, producers, consumers, quantized)
            if skip is not None and skip not in residual_inputs:
                residual_inputs.append(skip)
    acts += [t for t in residual_inputs if t not in acts]
    return QuantPlan(tuple(n.name for n in convs), kept, tuple(acts), tuple(residual_inputs),
                     tuple(n.name for n in xcorr))


def _first_count(item: str) -> int | None:
    """``first:N`` -> N (the first N Convs in graph order: the high-resolution layers, where INT8
    costs the most accuracy and the least time); anything else -> None."""
    name, sep, num = item.partition(":")
    if name != "first" or not sep:
        return None
    if not num.isdigit() or int(num) < 1:
        raise CalibrationError(f"keep_fp: {item!r}: N in first:N must be a whole number >= 1, e.g. first:3")
    return int(num)


def _conv_upstream(tensor: str, producers: dict):
    node = producers.get(tensor)
    while node is not None and node.op_type in _PASS_THROUGH:
        node = producers.get(node.input[0])
    return node if node is not None and node.op_type == "Conv" else None


def _nodes_downstream(tensors: list[str], consumers: dict) -> list:
    seen, out, todo = set(), [], list(tensors)
    while todo:
        for node in consumers.get(todo.pop(), []):
            if node.name in seen:
                continue
            seen.add(node.name)
            out.append(node)
            todo.extend(node.output)
    return out


def _convs_downstream(tensors: list[str], consumers: dict) -> list:
    return [n for n in _nodes_downstream(tensors, consumers) if n.op_type == "Conv"]


def _residual_skip(add, producers: dict, consumers: dict, quantized: set[str]) -> str | None:
    """The input of a residual ``add`` that should carry Q/DQ, or None when it is not residual.

    TensorRT fuses the Add into the Conv producing one input when the other input is quantized; that
    other one is the skip: not made by a quantized Conv, or else the one also read elsewhere (the
    block input that the next Conv reads too; MobileNetV2 blocks end in a linear Conv).
    """
    from_conv = [i in producers and producers[i].name in quantized for i in add.input]
    if not any(from_conv):
        return None
    if not all(from_conv):
        return add.input[from_conv.index(False)]
    fan_out = [len(consumers.get(i, [])) for i in add.input]
    return add.input[0] if fan_out[0] > fan_out[1] else add.input[1]

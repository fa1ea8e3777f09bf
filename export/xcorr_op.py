"""The depth-wise cross-correlation in its three forms: torch reference, custom ONNX node, standard ops.

``out[b, c, i, j] = sum_{u,v} x[b, c, i+u, j+v] * k[b, c, u, v]`` (no padding, stride 1, no kernel flip);
x (N, C, H, W) and k (N, C, h, w) float32 give (N, C, H-h+1, W-w+1). Every target b has its own kernel.

- ``dw_xcorr`` runs it in PyTorch (pysot's grouped-conv formulation) and, inside ``torch.onnx.export
  (dynamo=True)``, emits one ``siamrpn::DepthwiseXCorr`` node (version 1) whose output shape, dynamic batch
  included, is recorded in the graph (``torch.onnx.ops.symbolic``; the legacy exporter loses the shape).
  The node carries the string attributes ``plugin_namespace="siamrpn"`` and ``plugin_version="1"``
  (``XCORR_NODE_ATTRIBUTES``): TensorRT's ONNX parser finds a plugin creator by op type plus these two
  attributes (defaults "1" and ""), and TensorRT 10.0-10.3 never falls back to the node's domain.
  ONNX Runtime's Python op ignores them.
- ``expand_xcorr_nodes`` rewrites every such node of an exported ONNX graph into standard ops, giving the
  "standard" twin. ONNX ``Conv`` takes ``group`` as a static attribute, so pysot's ``groups = N*C`` cannot
  express a dynamic N; the twin therefore loops over targets (``Loop``, trip count N) and runs one
  ``Conv(group=C)`` per target whose weights are that target's kernel input. ONNX Runtime and the
  TensorRT-RTX parser/builder accept it with a dynamic batch profile (tests/test_trt_rtx_parse.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from runtime.contract import XCORR_DOMAIN, XCORR_NODE_ATTRIBUTES, XCORR_OP, XCORR_VERSION

XCORR_QUALNAME = f"{XCORR_DOMAIN}::{XCORR_OP}"


def dw_xcorr_reference(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """pysot's ``xcorr_depthwise``: x (N, C, H, W), k (N, C, h, w) -> (N, C, H-h+1, W-w+1)."""
    n, c = x.shape[:2]
    out = F.conv2d(x.reshape(1, n * c, x.shape[2], x.shape[3]),        # (1, N*C, H, W)
                   k.reshape(n * c, 1, k.shape[2], k.shape[3]),         # (N*C, 1, h, w)
                   groups=n * c)                                        # (1, N*C, Ho, Wo)
    return out.reshape(n, c, out.shape[2], out.shape[3])               # (N, C, Ho, Wo)


def dw_xcorr(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The reference in eager mode; one custom ONNX node with its output shape during ONNX export."""
    if torch.onnx.is_in_onnx_export():
        shape = (x.shape[0], x.shape[1], x.shape[2] - k.shape[2] + 1, x.shape[3] - k.shape[3] + 1)
        return torch.onnx.ops.symbolic(XCORR_QUALNAME, (x, k), dict(XCORR_NODE_ATTRIBUTES), dtype=x.dtype,
                                       shape=shape, version=XCORR_VERSION)
    return dw_xcorr_reference(x, k)


def is_xcorr_node(node) -> bool:
    return node.domain == XCORR_DOMAIN and node.op_type == XCORR_OP


def expand_xcorr_nodes(model):
    """Return a copy of ``model`` (onnx.ModelProto, opset >= 13) with every DepthwiseXCorr node replaced
    by the standard-op loop described in the module docstring, and the ``siamrpn`` opset import removed.

    The kernel input of each node must have a static (C, h, w) shape in the graph (graph input or
    value_info), as the exporter writes it; the replacement keeps the node's output name, so the recorded
    output shape stays valid.
    """
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    shapes = _static_shapes(graph)
    new_nodes = []
    for index, node in enumerate(graph.node):
        if not is_xcorr_node(node):
            new_nodes.append(node)
            continue
        kernel_shape = shapes.get(node.input[1])
        if kernel_shape is None or len(kernel_shape) != 4 or not all(kernel_shape[1:]):
            raise ValueError(f"DepthwiseXCorr node {node.name or index}: kernel input {node.input[1]!r} has "
                             f"no static (C, h, w) shape in the graph ({kernel_shape})")
        new_nodes.extend(_loop_nodes(node, f"{node.name or 'xcorr'}_{index}", channels=kernel_shape[1]))
    del graph.node[:]
    graph.node.extend(new_nodes)
    kept = [op for op in out.opset_import if op.domain != XCORR_DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(kept)
    return out


def _static_shapes(graph) -> dict[str, list[int]]:
    """name -> dims (0 for a symbolic dim) of every graph input, output and value_info."""
    found = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            found[vi.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in vi.type.tensor_type.shape.dim]
    return found


def _loop_nodes(node, prefix: str, channels: int) -> list:
    """Nodes computing ``node``'s output with one Conv(group=C) per target (ONNX Loop over axis 0)."""
    from onnx import TensorProto, helper

    x, k = node.input[0], node.input[1]
    p = prefix
    zero = helper.make_tensor(f"{p}_zero", TensorProto.INT64, [], [0])
    axis0 = helper.make_tensor(f"{p}_axis0", TensorProto.INT64, [1], [0])
    axis1 = helper.make_tensor(f"{p}_axis1", TensorProto.INT64, [1], [1])
    body = helper.make_graph(
        [helper.make_node("Gather", [x, f"{p}_i"], [f"{p}_xb"], axis=0, name=f"{p}_gather_x"),      # (C, H, W)
         helper.make_node("Gather", [k, f"{p}_i"], [f"{p}_kb"], axis=0, name=f"{p}_gather_k"),      # (C, h, w)
         helper.make_node("Unsqueeze", [f"{p}_xb", f"{p}_axis0"], [f"{p}_xb4"], name=f"{p}_x4"),    # (1, C, H, W)
         helper.make_node("Unsqueeze", [f"{p}_kb", f"{p}_axis1"], [f"{p}_kb4"], name=f"{p}_k4"),    # (C, 1, h, w)
         helper.make_node("Conv", [f"{p}_xb4", f"{p}_kb4"], [f"{p}_ob4"], group=channels,
                          name=f"{p}_conv"),                                                          # (1, C, Ho, Wo)
         helper.make_node("Squeeze", [f"{p}_ob4", f"{p}_axis0"], [f"{p}_ob"], name=f"{p}_squeeze"),  # (C, Ho, Wo)
         # the body's condition is a constant: TensorRT does not register the body's condition
         # input when the Loop has none, so it must not be read
         helper.make_node("Constant", [], [f"{p}_cond_out"], name=f"{p}_cond",
                          value=helper.make_tensor(f"{p}_true", TensorProto.BOOL, [], [True]))],
        f"{p}_body",
        [helper.make_tensor_value_info(f"{p}_i", TensorProto.INT64, []),
         helper.make_tensor_value_info(f"{p}_cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(f"{p}_cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info(f"{p}_ob", TensorProto.FLOAT, None)],
        initializer=[axis0, axis1])
    return [
        helper.make_node("Constant", [], [f"{p}_zero"], value=zero, name=f"{p}_zero"),
        helper.make_node("Shape", [x], [f"{p}_shape"], name=f"{p}_shape"),
        helper.make_node("Gather", [f"{p}_shape", f"{p}_zero"], [f"{p}_n"], axis=0, name=f"{p}_n"),  # scalar N
        # Loop stacks the per-target (C, Ho, Wo) results along a new axis 0 -> (N, C, Ho, Wo). No
        # termination condition (empty input): a trip count alone, which TensorRT maps to a plain
        # counted loop without warning that a condition could end it early.
        helper.make_node("Loop", [f"{p}_n", ""], [node.output[0]], body=body, name=f"{p}_loop"),
    ]

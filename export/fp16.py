"""FP16 copies of FP32 exports: weights and compute in float16, chosen ops kept in float32.

TensorRT 11 takes precision from the graph (strong typing), so the FP16 variant is decided here and the
engine builder builds what it is given. Conversion uses ONNX Runtime's own converter
(``onnxruntime.transformers.float16``, shipped in the onnxruntime wheel: nothing extra to install),
which inserts Cast nodes at every float16/float32 boundary and converts Loop bodies (the standard
xcorr twin) too.

I/O types (``io``):
- ``fp32`` (default): inputs ``template``/``search``/``kernel_*`` and outputs stay float32, so every
  runtime backend feeds the FP16 graphs exactly like the FP32 ones (Casts sit just inside the graph).
- ``fp16``: inputs and outputs are float16; callers must feed float16 (halves the host<->device copies
  on a Jetson, but the runtime's backends validate float32 crops, so only a custom pipeline uses it).

The xcorr (``siamrpn::DepthwiseXCorr``) node is copied through untouched. ``xcorr="fp32"`` (default)
keeps its inputs and output float32 (Casts around it), which the ONNX Runtime Python op requires;
``xcorr="fp16"`` feeds it float16, which the TensorRT plugin supports but ONNX Runtime cannot run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from runtime.contract import META_PRECISION, META_PREFIX, XCORR_DOMAIN, XCORR_OP, merge_metadata_props, sha256_file
from runtime.errors import ContractError, InputError

META_FP16 = META_PREFIX + "fp16"   # JSON: io, xcorr, keep_fp32_ops, keep_fp32_nodes, converter
IO_CHOICES = ("fp32", "fp16")


def convert_fp16(onnx_path: str | Path, out_path: str | Path, *, io: str = "fp32", xcorr: str = "fp32",
                 keep_fp32_ops=(), keep_fp32_nodes=()) -> Path:
    """Write an FP16 copy of the FP32 graph ``onnx_path`` to ``out_path`` (atomically); returns it.

    keep_fp32_ops: op types (e.g. "Softmax") left in float32 on top of the converter's own list.
    keep_fp32_nodes: node names left in float32. Metadata: ``siamrpn.precision = fp16`` and
    ``siamrpn.fp16`` (JSON of these choices).
    """
    import onnx
    import onnxruntime
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if io not in IO_CHOICES or xcorr not in IO_CHOICES:
        raise InputError(f"io={io!r}, xcorr={xcorr!r}: each must be one of {', '.join(IO_CHOICES)}")
    model = _load_fp32(onnx_path)
    names = {n.name for n in model.graph.node}
    unknown = sorted(set(keep_fp32_nodes) - names)
    if unknown:
        raise InputError(f"--keep-fp32-node {', '.join(unknown)}: no such node in {onnx_path}; "
                         "list node names with `polygraphy inspect model FILE --show layers`")
    before = [_signature(n) for n in model.graph.node if _is_xcorr(n)]
    _declare_xcorr_outputs(model)
    block_ops = list(DEFAULT_OP_BLOCK_LIST) + list(keep_fp32_ops) + ([XCORR_OP] if xcorr == "fp32" else [])
    converted = convert_float_to_float16(model, keep_io_types=(io == "fp32"), op_block_list=block_ops,
                                         node_block_list=list(keep_fp32_nodes))
    after = [_signature(n) for n in converted.graph.node if _is_xcorr(n)]
    if before != after:
        raise ContractError(f"{onnx_path}: the FP16 converter changed the {XCORR_DOMAIN}::{XCORR_OP} node(s); "
                            "this is a bug in export.fp16")
    info = fp16_info(onnx_path, io=io, xcorr=xcorr, keep_fp32_ops=keep_fp32_ops, keep_fp32_nodes=keep_fp32_nodes,
                     converter_version=onnxruntime.__version__)
    merge_metadata_props(converted, {META_PRECISION: "fp16", META_FP16: json.dumps(info, sort_keys=True)})
    _toposort(converted.graph)   # the converter appends its input Casts last; parsers need order
    onnx.checker.check_model(converted)
    from export.to_onnx import save_onnx_atomic

    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_onnx_atomic(converted, out_path)
    return out_path


def fp16_info(onnx_path: Path, *, io: str, xcorr: str, keep_fp32_ops=(), keep_fp32_nodes=(),
              converter_version: str | None = None) -> dict:
    """The ``siamrpn.fp16`` record of a conversion: its options, the converter and the sha256 of the FP32
    source graph, so an FP16 graph that is current for its source and options is recognised."""
    if converter_version is None:
        from importlib.metadata import version

        converter_version = version("onnxruntime")
    return {"io": io, "xcorr": xcorr, "keep_fp32_ops": sorted(keep_fp32_ops),
            "keep_fp32_nodes": sorted(keep_fp32_nodes),
            "converter": f"onnxruntime.transformers.float16 {converter_version}",
            "source_graph_sha256": sha256_file(onnx_path)}


def is_current(onnx_path: Path, out_path: Path, **options) -> bool:
    """True when ``out_path`` is the FP16 conversion of ``onnx_path`` as it is now, with ``options``
    (the keyword arguments of ``convert_fp16``), and carries its export id."""
    from runtime.contract import META_EXPORT_ID
    from runtime.onnx_meta import read_metadata

    if not out_path.is_file():
        return False
    try:
        props = read_metadata(out_path)
        recorded = json.loads(props.get(META_FP16, "{}"))
        export_id = read_metadata(onnx_path).get(META_EXPORT_ID)
    except (ContractError, ValueError):
        return False
    return (props.get(META_PRECISION) == "fp16" and props.get(META_EXPORT_ID) == export_id
            and recorded == fp16_info(onnx_path, **options))


def _declare_xcorr_outputs(model) -> None:
    """Give xcorr outputs a float32 value_info when the exporter did not: the converter only inserts
    the Cast after a float32-kept node whose output type it can see (shape inference skips custom ops)."""
    from onnx import TensorProto, helper

    known = {v.name for v in list(model.graph.value_info) + list(model.graph.output)}
    for node in model.graph.node:
        if _is_xcorr(node):
            for out in node.output:
                if out not in known:
                    model.graph.value_info.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))


def _toposort(graph) -> None:
    """Reorder ``graph.node`` so every node follows the producers of what it reads (stable otherwise).

    Subgraph nodes (a Loop body) read outer tensors by name without listing them as inputs, so those
    names count as inputs of the Loop node here.
    """
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in _reads(node)):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({n for node in rest for n in _reads(node)} - available)
            raise ContractError(
                f"the FP16 converter left tensors {missing[:5]} without a producer; this happens when an op "
                "type inside the standard xcorr twin's Loop body (Conv, Gather...) is kept in FP32. Keep "
                "those nodes by name instead, or convert the plugin flavour")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def _reads(node) -> set[str]:
    names = set(node.input)
    for attr in node.attribute:
        for sub in ([attr.g] if attr.type == attr.GRAPH else list(attr.graphs)):
            local = {i.name for i in sub.input} | {i.name for i in sub.initializer}
            local |= {o for n in sub.node for o in n.output}
            names |= {i for n in sub.node for i in _reads(n)} - local
    return names


def _is_xcorr(node) -> bool:
    return node.domain == XCORR_DOMAIN and node.op_type == XCORR_OP


def _signature(node) -> tuple:
    """What must survive conversion: identity, attributes and arity (input names change: Casts)."""
    return (node.name, node.domain, node.op_type, tuple(a.SerializeToString() for a in node.attribute),
            len(node.input), len(node.output))


def _load_fp32(path: Path):
    import onnx

    if not path.is_file():
        raise InputError(f"{path}: no such ONNX file; export the model first (`siamtrack export`)")
    try:
        model = onnx.load(str(path))
    except Exception as err:  # protobuf DecodeError and friends for non-ONNX bytes
        raise InputError(f"{path}: not a readable ONNX model ({type(err).__name__}); re-export it") from None
    precision = {p.key: p.value for p in model.metadata_props}.get(META_PRECISION, "fp32")
    if precision != "fp32":
        raise ContractError(f"{path}: is a {precision} graph; convert the FP32 export, not a variant")
    return model




def main(argv: list[str] | None = None) -> int:
    from runtime.contract import ALL_GRAPHS, LOST_GRAPH, XCORR_FLAVOURS, artifact_name

    parser = argparse.ArgumentParser(
        prog="siamtrack fp16",
        description="Make FP16 graphs (weights and compute float16) from an FP32 export.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  siamtrack fp16 artifacts/r50                      # both graphs, every flavour present\n"
               "  siamtrack fp16 artifacts/r50 --keep-fp32-op Softmax --keep-fp32-node search:/neck/Conv\n"
               "  siamtrack fp16 artifacts/r50 --io fp16 --xcorr fp16   # TensorRT-only graphs\n"
               "writes template.fp16.<flavour>.onnx and search.fp16.<flavour>.onnx next to the FP32 ones\n"
               "(and search_lost.fp16.<flavour>.onnx for a long-term export; search:NODE applies to it too).\n"
               "--io fp32 (default) keeps float32 inputs/outputs so every backend feeds them unchanged;\n"
               "--xcorr fp32 (default) keeps the xcorr op in float32 (ONNX Runtime's op needs it).")
    parser.add_argument("model_dir", type=Path, help="folder with template/search .fp32.<flavour>.onnx")
    parser.add_argument("--io", choices=IO_CHOICES, default="fp32", help="graph input/output type")
    parser.add_argument("--xcorr", choices=IO_CHOICES, default="fp32", help="xcorr input/output type")
    parser.add_argument("--keep-fp32-op", action="append", default=[], help="op type kept float32 (repeat)")
    parser.add_argument("--keep-fp32-node", action="append", default=[], metavar="GRAPH:NODE",
                        help="node kept float32, GRAPH template, search or search_lost (repeat)")
    parser.add_argument("--flavour", choices=XCORR_FLAVOURS, action="append", help="default: all present")
    parser.add_argument("--out-dir", type=Path, help="default: model_dir")
    parser.add_argument("--only-stale", action="store_true",
                        help="leave an FP16 graph alone (and say \"up to date\") when it was converted from the FP32 "
                             "graph as it is now, with these options")
    parser.add_argument("--json", action="store_true", help="print written paths as JSON")
    args = parser.parse_args(argv)
    flavours = args.flavour or [f for f in XCORR_FLAVOURS
                                if (args.model_dir / artifact_name("search", "fp32", f, "onnx")).is_file()]
    if not flavours:
        raise InputError(f"{args.model_dir}: no search.fp32.<flavour>.onnx; export the model first")
    bad = [n for n in args.keep_fp32_node if n.split(":", 1)[0] not in ALL_GRAPHS or ":" not in n]
    if bad:
        raise InputError(f"--keep-fp32-node {', '.join(bad)}: expected GRAPH:NODE with GRAPH template, search "
                         "or search_lost")
    written, current = [], []
    for flavour in flavours:
        for graph in ALL_GRAPHS:
            src = args.model_dir / artifact_name(graph, "fp32", flavour, "onnx")
            if graph == LOST_GRAPH and not src.is_file():
                continue   # a short-term export has no long-term search graph
            out = (args.out_dir or args.model_dir) / artifact_name(graph, "fp16", flavour, "onnx")
            # the long-term graph is the search network traced larger: same node names, same choices
            owners = (graph, "search") if graph == LOST_GRAPH else (graph,)
            nodes = sorted({n.split(":", 1)[1] for n in args.keep_fp32_node if n.split(":", 1)[0] in owners})
            options = dict(io=args.io, xcorr=args.xcorr, keep_fp32_ops=args.keep_fp32_op, keep_fp32_nodes=nodes)
            if args.only_stale and src.is_file() and is_current(src, out, **options):
                current.append(str(out))
                continue
            written.append(str(convert_fp16(src, out, **options)))
    if args.json:
        print(json.dumps({"written": written, "up_to_date": current}))
    else:
        print("\n".join([f"up to date: {p}" for p in current] + written))
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack fp16"))

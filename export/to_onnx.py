"""Export a SiamRPN++ model as a template/search ONNX pair, in the custom-op and standard-op flavours.

``export_pair`` traces the two graphs of ``export.graphs`` once each with ``torch.onnx.export(dynamo=True)``
(batch axis N dynamic), simplifies them with onnxsim, derives the standard-op search graph from the
custom-op one (``export.xcorr_op.expand_xcorr_nodes``), embeds the ``siamrpn.*`` metadata of
``runtime.contract.GraphMeta``, checks each with ``onnx.checker`` and writes it atomically as
``<out>/<graph>.fp32.<flavour>.onnx``. The runtime needs nothing but these files.

A model with a long-term lost size (a long-term pysot config, or ``--lost-search``) gets a third graph,
``search_lost.fp32.<flavour>.onnx``: the search graph traced for the large crop (831 -> 97x97 for r50),
from the same weights, with the same export id and metadata (``siamrpn.graph = search_lost``).

    python -m export.to_onnx --config r50 --checkpoint model.pth --out artifacts/r50
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from runtime.contract import (CLS_OUTPUT, LOC_OUTPUT, LOST_GRAPH, META_EXPORTER, META_RANDOM, META_SOURCE,
                              SEARCH_INPUT, TEMPLATE_INPUT,
                              XCORR_FLAVOURS, GraphMeta, ModelSpec, TrackerConfig, artifact_name,
                              sha256_file)
from runtime.errors import InputError

DEFAULT_OPSET = 17          # TensorRT 8.6 (JetPack 6) parses up to opset 17
TRACE_BATCH = 2             # torch.export specialises a batch of 1 to a constant; 2 keeps N symbolic
MAX_BATCH = 64              # upper bound declared to torch.export for the symbolic N


@dataclass(frozen=True)
class ExportResult:
    """What ``export_pair`` wrote. paths: (graph, flavour) -> file, graph in {"template", "search"} and
    "search_lost" when ``spec.lost_instance_size`` is set."""

    out_dir: Path
    paths: dict
    spec: ModelSpec
    tracker: TrackerConfig
    export_id: str
    source_sha256: str
    source: str
    random_weights: bool
    opset: int
    up_to_date: tuple = ()     # (graph, flavour) files left as they were: same export id already there

    def path(self, graph: str, flavour: str) -> Path:
        return self.paths[(graph, flavour)]

    def to_json(self) -> dict:
        return {"out_dir": str(self.out_dir), "export_id": self.export_id, "source": self.source,
                "source_sha256": self.source_sha256, "random_weights": self.random_weights,
                "opset": self.opset, "variant": self.spec.variant,
                "files": {f"{g}.{f}": str(p) for (g, f), p in sorted(self.paths.items())},
                "up_to_date": [f"{g}.{f}" for g, f in self.up_to_date]}


def export_pair(cfg, model, out_dir: str | Path, flavours=XCORR_FLAVOURS, *, source_sha256: str,
                source: str = "", random_weights: bool = False, opset: int = DEFAULT_OPSET,
                progress=None, only_stale: bool = False, lost_search: bool = False) -> ExportResult:
    """Export ``model`` (an ``export.model.SiamRPN`` built from ``cfg``, weights loaded) to ``out_dir``.

    flavours: any of "plugin" (xcorr as one ``siamrpn::DepthwiseXCorr`` node) and "standard" (loop of
    grouped Convs). source_sha256: sha256 of the checkpoint (``state_dict_sha256`` for random weights).
    progress: optional callable(str) told about each step. only_stale: write only the files that do not
    already carry this export's id (the id is a hash of the checkpoint, the model and tracker settings
    and the exporter versions), and trace nothing when every file does. lost_search: also write the
    long-term tracker's large search graph for a model whose config has no lost size (a short-term
    config; sizes from ``cfg.tracker.lost_instance_size``); a long-term config always gets it.
    """
    flavours = tuple(dict.fromkeys(flavours))
    bad = [f for f in flavours if f not in XCORR_FLAVOURS]
    if bad or not flavours:
        raise InputError(f"flavours {flavours}: expected one or more of {', '.join(XCORR_FLAVOURS)}")
    if opset < 13:
        raise InputError(f"opset {opset}: the export needs opset 13 or newer (Unsqueeze with axes input)")
    step = progress or (lambda _msg: None)
    spec = cfg.model_spec()
    if lost_search:
        from export.graphs import lost_search_spec

        spec = lost_search_spec(cfg, spec)   # ConfigError when the lost size gives no whole anchor grid
    graphs = ("template", "search", LOST_GRAPH) if spec.lost_instance_size else ("template", "search")
    model = model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    exporter = _exporter_versions(opset)
    export_id = _export_id(source_sha256, spec, cfg.tracker, exporter)
    paths = {(g, f): out_dir / artifact_name(g, "fp32", f, "onnx") for f in flavours for g in graphs}
    current = tuple(k for k, p in paths.items() if only_stale and _is_current(p, export_id, k[1]))
    result = ExportResult(out_dir=out_dir, paths=paths, spec=spec, tracker=cfg.tracker, export_id=export_id,
                          source_sha256=source_sha256, source=source, random_weights=random_weights, opset=opset,
                          up_to_date=current)
    if len(current) == len(paths):
        return result

    stale = {g for (g, _f) in paths if (g, _f) not in current}   # trace only what some file still needs
    traced = {}
    if "template" in stale:
        step("tracing template graph")
        traced["template"] = _finish(_trace_template(model, spec, opset), opset)
    if "search" in stale:
        step("tracing search graph")
        traced["search"] = _finish(_trace_search(model, spec, opset), opset)
    if LOST_GRAPH in stale:
        step("tracing long-term search graph")
        traced[LOST_GRAPH] = _finish(_trace_search(model, spec, opset, spec.lost_instance_size), opset)
    for flavour in flavours:
        step(f"writing {flavour} graphs")
        for graph in graphs:
            if (graph, flavour) in current:
                continue
            proto = traced[graph] if flavour == "plugin" or graph == "template" else _expand(traced[graph])
            meta = GraphMeta(graph=graph, spec=spec, tracker=cfg.tracker, source_sha256=source_sha256,
                             export_id=export_id, xcorr=flavour, precision="fp32",
                             extra={META_EXPORTER: json.dumps(exporter, sort_keys=True),
                                    META_SOURCE: source, META_RANDOM: "true" if random_weights else "false"})
            save_onnx_atomic(_with_metadata(proto, meta), paths[(graph, flavour)])
    return result


def _is_current(path: Path, export_id: str, flavour: str) -> bool:
    """``path`` is a readable FP32 graph of this flavour carrying ``export_id``."""
    from runtime.contract import META_EXPORT_ID, META_PRECISION, META_XCORR
    from runtime.errors import ContractError
    from runtime.onnx_meta import read_metadata

    if not path.is_file():
        return False
    try:
        props = read_metadata(path)
    except ContractError:
        return False
    return (props.get(META_EXPORT_ID) == export_id and props.get(META_XCORR) == flavour
            and props.get(META_PRECISION, "fp32") == "fp32")


# ------------------------------------------------------------------------------------------------
# tracing


def _trace_template(model, spec: ModelSpec, opset: int):
    import torch

    from export.graphs import TemplateGraph

    z = torch.rand(spec.template_shape(TRACE_BATCH)) * 255
    batch = torch.export.Dim("N", min=1, max=MAX_BATCH)
    return _dynamo_export(TemplateGraph(model).eval(), (z,), [TEMPLATE_INPUT], list(spec.kernel_names),
                          {"template": {0: batch}}, opset)


def _trace_search(model, spec: ModelSpec, opset: int, size: int | None = None):
    """The search graph for ``size`` crops (default the instance size; the lost size for search_lost)."""
    import torch

    from export.graphs import SearchGraph

    x = torch.rand(spec.search_shape(TRACE_BATCH, size)) * 255
    kernels = tuple(torch.rand(spec.kernel_shape(TRACE_BATCH, k)) for k in spec.kernel_names)
    batch = torch.export.Dim("N", min=1, max=MAX_BATCH)
    dynamic = {"search": {0: batch}, "kernels": tuple({0: batch} for _ in spec.kernel_names)}
    return _dynamo_export(SearchGraph(model).eval(), (x, *kernels), [SEARCH_INPUT, *spec.kernel_names],
                          [CLS_OUTPUT, LOC_OUTPUT], dynamic, opset)


def _dynamo_export(module, args, input_names, output_names, dynamic_shapes, opset):
    """torch.onnx.export(dynamo=True) -> onnx.ModelProto, with the exporter's chatter silenced."""
    import torch

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, input_names=input_names,
                                        output_names=output_names, dynamic_shapes=dynamic_shapes,
                                        opset_version=opset, verbose=False)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    return program.model_proto


# ------------------------------------------------------------------------------------------------
# ONNX post-processing


def _finish(proto, opset: int):
    """Strip exporter-internal annotations, name the xcorr nodes, set the oldest IR version that carries
    ``opset`` (older TensorRT parsers reject newer IR versions), simplify and check."""
    import onnx
    import onnxsim

    from export.xcorr_op import is_xcorr_node

    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    kernel_of = {}
    for node in proto.graph.node:
        if is_xcorr_node(node):
            # the kernel input is a graph input named kernel_<head><level>
            node.name = "xcorr_" + node.input[1].removeprefix("kernel_")
            kernel_of[node.name] = node.input[1]
    proto.ir_version = _min_ir_version(opset)
    simplified, ok = onnxsim.simplify(proto)
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified graph")
    onnx.checker.check_model(simplified, full_check=True)
    return simplified


def _expand(search_plugin):
    import onnx

    from export.xcorr_op import expand_xcorr_nodes

    standard = expand_xcorr_nodes(search_plugin)
    onnx.checker.check_model(standard, full_check=True)
    return standard


def _min_ir_version(opset: int) -> int:
    import onnx

    versions = [ir for _release, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE if ai_onnx >= opset]
    return min(versions) if versions else onnx.IR_VERSION


def _with_metadata(proto, meta: GraphMeta):
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.metadata_props[:]
    onnx.helper.set_model_props(out, meta.to_props())
    out.producer_name = "siamtrack"
    out.producer_version = _project_version()
    out.doc_string = (f"SiamRPN++ {meta.spec.variant}: {meta.graph} graph, xcorr {meta.xcorr}, "
                      "inputs BGR float32 0..255 NCHW; contract in runtime/contract.py")
    return out


def save_onnx_atomic(proto, path: Path) -> None:
    """onnx.save through a temporary file in the same folder, fsynced, then renamed (runtime.atomic)."""
    import onnx

    from runtime.atomic import atomic_path

    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))


# ------------------------------------------------------------------------------------------------
# provenance


def state_dict_sha256(model) -> str:
    """sha256 over every state_dict tensor (name, dtype, shape, bytes) in key order: the provenance of
    weights that have no checkpoint file (seeded random weights)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _export_id(source_sha256: str, spec: ModelSpec, tracker: TrackerConfig, exporter: dict) -> str:
    """Same inputs give the same id, so re-exporting a checkpoint keeps old pairs compatible."""
    text = json.dumps([source_sha256, spec.to_json(), tracker.to_json(), exporter], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _exporter_versions(opset: int) -> dict:
    import onnx
    import onnxsim
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxsim": str(onnxsim.__version__),
            "siamtrack": _project_version(), "opset": opset, "exporter": "torch.onnx dynamo"}


def _project_version() -> str:
    try:
        from importlib.metadata import version

        return version("siamtrack")
    except Exception:  # not installed (running from a checkout)
        return "0+checkout"


# ------------------------------------------------------------------------------------------------
# CLI

EPILOG = """\
examples:
  # a pysot checkpoint, both flavours (custom op + standard ops) into artifacts/r50
  python -m export.to_onnx --config r50 --checkpoint siamrpn_r50_l234_dwxcorr/model.pth
  # your own pysot experiment file, standard-op graphs only
  python -m export.to_onnx --config experiments/siamrpn_mobilev2_l234_dwxcorr/config.yaml \\
      --checkpoint model.pth --out artifacts/mobilev2 --flavour standard
  # seeded random weights (tests the pipeline; the files are marked random)
  python -m export.to_onnx --config alex --random-seed 0 --out /tmp/alex

Writes <out>/template.fp32.<flavour>.onnx and <out>/search.fp32.<flavour>.onnx, plus
<out>/search_lost.fp32.<flavour>.onnx (the long-term tracker's 831 search) for a long-term config
(TRACK.TYPE SiamRPNLTTracker) or with --lost-search. The files carry their
contract (sizes, anchors, tracker values, checkpoint sha256) in metadata; `siamtrack track --model <out>`
needs nothing else. "plugin" graphs hold the custom node siamrpn::DepthwiseXCorr (v1) for the TensorRT
plugin / the ONNX Runtime extensions op; "standard" graphs use only standard ONNX ops.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siamtrack export", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="pysot config.yaml, or a built-in name: r50, r50_otb, mobilev2, alex")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="pysot model.pth to export")
    src.add_argument("--random-seed", type=int, help="export seeded random weights instead (marked random)")
    p.add_argument("--out", help="output folder (default artifacts/<config name>)")
    p.add_argument("--flavour", default="both", choices=["plugin", "standard", "both"],
                   help="xcorr flavour(s) to write (default both)")
    p.add_argument("--lost-search", action="store_true",
                   help="also export the long-term tracker's large search graph (search_lost.*: "
                        "TRACK.LOST_INSTANCE_SIZE, 831 for pysot's configs) for a short-term config, so "
                        "`--tracker long-term` can run it; automatic for a long-term config")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--only-stale", action="store_true",
                   help="write only the files that do not already hold this export (same checkpoint, config and "
                        "exporter versions: same export id); say \"up to date\" when none needs writing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from export.config import resolve_config
    from export.model import build_model

    cfg = resolve_config(args.config)
    model = build_model(cfg)
    if args.checkpoint:
        from export.checkpoint import load_checkpoint

        if not Path(args.checkpoint).is_file():
            raise InputError(f"--checkpoint {args.checkpoint}: no such file; pass a pysot model.pth")
        load_checkpoint(model, args.checkpoint, cfg)
        sha, source, random_weights = sha256_file(args.checkpoint), Path(args.checkpoint).name, False
    else:
        from export.checkpoint import randomize_

        randomize_(model, args.random_seed)
        sha, source, random_weights = state_dict_sha256(model), f"random-seed:{args.random_seed}", True
    out = Path(args.out) if args.out else Path("artifacts") / Path(str(args.config)).stem
    flavours = XCORR_FLAVOURS if args.flavour == "both" else (args.flavour,)
    result = _export_with_progress(cfg, model, out, flavours, sha, source, random_weights, args.opset,
                                   quiet=args.json, only_stale=args.only_stale, lost_search=args.lost_search)
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    note = " (RANDOM weights: tests the pipeline, tracks nothing)" if random_weights else ""
    if len(result.up_to_date) == len(result.paths):
        print(f"up to date: {out} already holds export {result.export_id} of {cfg.name}{note}")
        return 0
    print(f"exported {cfg.name}{note} -> {out}  [export id {result.export_id}]")
    for key, path in sorted(result.paths.items()):
        print(f"  {path}  ({path.stat().st_size / 1e6:.1f} MB){'  up to date' if key in result.up_to_date else ''}")
    return 0


def _export_with_progress(cfg, model, out, flavours, sha, source, random_weights, opset, quiet, only_stale=False,
                          lost_search=False):
    steps = 3 + len(flavours)
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is None or quiet:
        return export_pair(cfg, model, out, flavours, source_sha256=sha, source=source,
                           random_weights=random_weights, opset=opset, only_stale=only_stale,
                           lost_search=lost_search)
    with tqdm(total=steps, desc="export", unit="step", file=sys.stderr, leave=False) as bar:
        started = []

        def progress(msg: str) -> None:
            if started:  # a new step begins: the previous one is done
                bar.update(1)
            started.append(msg)
            bar.set_postfix_str(msg)

        result = export_pair(cfg, model, out, flavours, source_sha256=sha, source=source,
                             random_weights=random_weights, opset=opset, progress=progress, only_stale=only_stale,
                             lost_search=lost_search)
        bar.update(steps - bar.n)
    return result


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack export"))

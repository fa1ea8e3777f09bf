"""INT8 graphs placed for ONNX Runtime's CPU kernels: ``template.int8.cpu.onnx`` / ``search.int8.cpu.onnx``.

Why a second INT8 placement. ``calibration.quantize`` places Q/DQ for TensorRT: a DequantizeLinear on
every Conv's input and weight and nothing on its output. ONNX Runtime can only fuse ``DQ -> Conv -> Q``
into its integer kernel (QLinearConv), so on those graphs every Conv runs in float after dequantizing
its weights on each call: on the trained lite0 search graph, 1 thread, that is 2x slower than FP32
(24 vs 12 ms). This module writes a copy of the standard-xcorr FP32 graphs placed for ORT instead:

- ONNX Runtime's own quantizer (``onnxruntime.quantization.quantize_static``, QDQ format): u8
  activations with a zero point (ranges from the calibration set), s8 weights per output channel,
  symmetric, int32 biases. Every Conv with constant weights gets DQ on its inputs and Q on its output,
  so ORT's optimizer fuses it into QLinearConv (depth-wise included); residual Adds become QLinearAdd;
  Relu/Clip vanish into the Q range (a u8 range starting at 0 is the ReLU). u8 x s8 is what the VNNI
  instruction multiplies (``runtime.cpu_features``).
- The depth-wise xcorr stays float: in the standard flavour it is a Loop over the N targets running a
  Conv whose weights are that target's template kernels, a runtime tensor. QLinearConv pre-packs
  constant weights; a runtime weight would be re-quantized and re-packed per target per frame, with a
  range that changes per target (no calibrated range fits every template), and the xcorr is a small
  part of the FP32 time (lite0: the 4 Loops are ~11 % of the FP32 search). It is what bounds lite0's
  speed-up: in the INT8 search it is ~40 % of the time (ORT profile, 1 thread: QLinearConv 54 %, the
  Loops 21 % and the float Convs inside them 18 %, QLinearAdd 3 %, Q/DQ 2 %).
  Its search-side input is quantized (the Conv making it fuses into QLinearConv) and dequantized
  before the Loop; its output is quantized for the head's first Conv.
- Bias correction as in ``calibration.quantize`` (each quantized Conv's float bias absorbs the mean
  shift its weight rounding causes, measured on the calibration set), applied to the float graph
  before ORT rounds the weights the same way (symmetric per channel, -127..127).
- MinMax ranges over ``samples`` feeds spread over the set (default 64). Measured on the trained
  lite0 search graph, 40 held-out crops, mean |int8 - fp32| / mean |fp32| of cls / loc: MinMax 5.0 % /
  20.0 % in 2 s; ORT's Percentile 99.99 8.8 % / 42 % in 48 s (its percentile of signed tensors clips
  badly); MinMax + bias correction 3.4 % / 17.8 %, the default. (TensorRT placement, for comparison:
  4.8 % / 11.5 %.) Tracking cost (``siamtrack precision-report``, 40 held-out generated sequences):
  mean IoU with the FP32 boxes 0.802 for both placements, AUC change -3.6 +- 2.7 points here against
  -1.5 +- 2.5 for the TensorRT placement (paired SE; their difference is within the noise).

A workaround: ORT's quantizer does not see tensors that a subgraph reads by name (the Loop body reads
the search features from the main graph). It then folds the Relu in front of the Loop into a Q range
and the Loop reads the raw Conv output, negative values included: wrong results. ``_explicit_subgraph_reads``
adds an Identity in the main graph for each such read, so the quantizer sees that consumer.

Only the standard flavour: ORT's quantizer calibrates through its own session, which cannot run the
plugin flavour's custom op, and the plugin xcorr (a Python op on ORT) is slower anyway.

A long-term export's third graph (``search_lost``: the same network on the 831 px lost-state crop) gets
its CPU placement too, ``search_lost.int8.cpu.onnx``, else the long-term tracker on these graphs would
meet a missing graph on its first lost frame. The calibration set holds search-size crops only, so the
lost graph is calibrated on mosaics of them: each feed tiles several recorded search crops (different
sequences and frames) into one lost-size crop, with one recorded template's kernels. The tiles are real
crops of the kind the tracker cuts, so the activation ranges MinMax takes are those of real content;
the seams add edges a real crop does not have, which can only widen a range a little. The three graphs
share one ``calibration_id``, so ``runtime.variants`` refuses a lost graph left from another run.

The CPU kernels must be exact for these graphs to mean anything: u8 x s8 is exact with VNNI (x86) and
on ARM; x86 CPUs without VNNI run ORT's exact u8 x u8 kernels (``runtime.backends.onnxrt.session_options``).

Threads (``threads=`` / ``--threads``): two kinds of ONNX Runtime session run here. Ours (the bias
correction's calibration pass, ``calibration.quantize.ort_session``) take the count directly.
``quantize_static`` opens its calibration session itself, with ``SessionOptions()`` of its own
(``onnxruntime/quantization/calibrate.py``, ``CalibraterBase.create_inference_session``, checked in
onnxruntime 1.32): neither its arguments nor ``extra_options`` reach that session's options (only its
execution providers). ``_calibrator_threads`` therefore replaces that one method while
``quantize_static`` runs, opening the same session (same graph, providers and graph optimisation level,
none) with ``threads`` intra-op threads, one inter-op thread and no spinning. Without ``threads``
nothing is replaced: the library's session, as before.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np

from calibration import CalibrationError
from runtime.contract import (CPU_INT8_FLAVOUR, GRAPHS, LOST_GRAPH, META_CALIBRATION, META_PRECISION, SEARCH_INPUT,
                              artifact_name, merge_metadata_props)

QUANTIZER_ID = "siamtrack-ort-qdq/1"
PLACEMENT = "onnxruntime-cpu"
SOURCE_FLAVOUR = "standard"   # the FP32 graphs this placement is made from
DEFAULT_SAMPLES = 64


# ------------------------------------------------------------------------------------------- graph prep

def _explicit_subgraph_reads(model) -> int:
    """For every main-graph tensor read inside a subgraph (Loop/If/Scan body), add an Identity just
    before the node holding that subgraph and make the subgraph read its output. Returns how many.
    ORT's quantizer only sees main-graph consumers (module doc)."""
    from onnx import AttributeProto, helper

    produced = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    nodes, count = [], 0
    for node in model.graph.node:
        aliases = {}
        for attr in node.attribute:
            if attr.type != AttributeProto.GRAPH:
                continue
            for inner in attr.g.node:
                for k, name in enumerate(inner.input):
                    if name in produced:
                        alias = aliases.setdefault(name, f"{name}_read_by_{node.name}")
                        inner.input[k] = alias
        for name, alias in aliases.items():
            nodes.append(helper.make_node("Identity", [name], [alias], name=alias))
            count += 1
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return count


def _correct_biases(model, feeds: list[Mapping[str, np.ndarray]], threads: int | None = None) -> int:
    """Bias correction for every Conv with constant weights, for the weight rounding ORT's quantizer
    will apply (symmetric per output channel, scale max|w| / 127). Returns the number of Convs.
    threads: intra-op threads of the calibration session (None: ONNX Runtime's default)."""
    from onnx import numpy_helper

    from calibration.quantize import calibrate

    inits = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in inits]
    if not convs:
        return 0
    cal = calibrate(model, tuple(sorted({n.input[0] for n in convs})), feeds, "max", threads=threads)
    for node in convs:
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        out_ch, in_per_group = w.shape[0], w.shape[1]
        amax = np.abs(w.reshape(out_ch, -1)).max(axis=1)
        scale = np.where(amax > 0, amax / 127.0, 1.0).reshape(-1, *([1] * (w.ndim - 1)))
        err = np.clip(np.rint(w / scale), -127, 127) * scale - w             # what rounding adds
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        mean_in = cal.channel_mean[node.input[0]].reshape(groups, in_per_group)[
            np.arange(out_ch) // (out_ch // groups)]                         # (O, I/G)
        shift = np.einsum("oi,oi->o", err.reshape(out_ch, in_per_group, -1).sum(axis=2), mean_in)
        has_bias = len(node.input) > 2 and node.input[2]
        bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64) if has_bias else np.zeros(out_ch)
        name = f"{node.name}_bias_corrected"   # one per Conv: a shared bias would need two corrections
        model.graph.initializer.append(numpy_helper.from_array((bias - shift).astype(np.float32), name))
        if has_bias:
            node.input[2] = name
        else:
            while len(node.input) < 2:
                node.input.append("")
            node.input.append(name)
    _drop_unused_initializers(model)
    return len(convs)


def _drop_unused_initializers(model) -> None:
    """Remove initializers no node reads (the biases replaced above): ORT warns about each one."""
    from onnx import AttributeProto

    def reads(graph):
        for node in graph.node:
            yield from node.input
            for attr in node.attribute:
                if attr.type == AttributeProto.GRAPH:
                    yield from reads(attr.g)

    used = set(reads(model.graph)) | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


# ------------------------------------------------------------------------------------------ calibration

def spread(feeds: Iterable[Mapping[str, np.ndarray]], total: int, samples: int) -> list[dict]:
    """About ``samples`` of ``total`` feeds, evenly spaced (every sequence of the set contributes)."""
    stride = max(1, total // max(samples, 1))
    return [dict(f) for i, f in enumerate(feeds) if i % stride == 0][:samples]


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a list of feed dicts."""

    def __init__(self, feeds: list[dict]):
        self._it: Iterator[dict] = iter(feeds)

    def get_next(self):
        return next(self._it, None)


@contextlib.contextmanager
def _quiet_ort_quantizer():
    """ORT's quantizer logs a "consider pre-processing" warning through the root logger on every
    call; it concerns symbolic shape inference we do not need (static shapes per input)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@contextlib.contextmanager
def _calibrator_threads(threads: int | None):
    """While active, the calibration session ``quantize_static`` opens has ``threads`` intra-op threads,
    one inter-op thread and no spinning (module doc: the quantizer has no option for it). None: no change."""
    if threads is None:
        yield
        return
    import onnxruntime as ort
    from onnxruntime.quantization import calibrate as ort_calibrate

    from runtime.backends.onnxrt import session_options

    base = getattr(ort_calibrate, "CalibraterBase", None)
    original = getattr(base, "create_inference_session", None)
    if original is None:
        raise CalibrationError(
            f"onnxruntime {ort.__version__}: its quantizer no longer opens the calibration session in "
            "CalibraterBase.create_inference_session, so --threads cannot reach it; run without --threads "
            "(ONNX Runtime's default pool), or update calibration/cpu_int8.py for this version")

    def create_inference_session(calibrator):
        opts = session_options(ort, threads)
        # as the library's own method: the augmented graph unoptimised, on the calibrator's providers
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        calibrator.infer_session = ort.InferenceSession(calibrator.augmented_model_path, sess_options=opts,
                                                        providers=calibrator.execution_providers)

    base.create_inference_session = create_inference_session
    try:
        yield
    finally:
        base.create_inference_session = original


def quantize_cpu_bytes(fp32_path: str | Path, feeds: list[dict], *, calibration_id: str,
                       set_sha256: str, bias_correction: bool = True, threads: int | None = None,
                       feeds_made_as: str = "") -> bytes:
    """The CPU-placed INT8 copy of the FP32 standard-xcorr graph ``fp32_path`` (serialised), calibrated
    on ``feeds`` (``{input_name: float32 array}`` dicts for that graph). Metadata as every INT8 graph:
    ``siamrpn.precision = int8``, ``siamrpn.calibration`` JSON (placement, method, samples, set sha256,
    ``calibration_id``, the FP32 source's sha256); the rest is the FP32 graph's. threads: intra-op
    threads of every ONNX Runtime session calibrating it, ORT's quantizer's included (module doc);
    None: ONNX Runtime's default. feeds_made_as: how the feeds were made when they are not the
    set's own crops for this graph (recorded in the metadata)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from runtime.backends import check_threads
    from runtime.contract import META_XCORR, sha256_file

    threads = check_threads(threads)

    fp32_path = Path(fp32_path)
    if not fp32_path.is_file():
        raise CalibrationError(f"{fp32_path}: no such ONNX file; export the model first (`siamtrack export`)")
    model = onnx.load(str(fp32_path))
    props = {p.key: p.value for p in model.metadata_props}
    if props.get(META_PRECISION, "fp32") != "fp32" or props.get(META_XCORR) != SOURCE_FLAVOUR:
        raise CalibrationError(f"{fp32_path}: is a {props.get(META_PRECISION, 'fp32')}/{props.get(META_XCORR)} "
                               f"graph; the CPU INT8 placement is made from the FP32 {SOURCE_FLAVOUR} export")
    if not feeds:
        raise CalibrationError(f"{fp32_path}: the calibration set is empty; collect samples with "
                               "`siamtrack calibrate` first")
    from calibration.placement import name_nodes

    name_nodes(model)
    corrected = _correct_biases(model, feeds, threads) if bias_correction else 0
    _explicit_subgraph_reads(model)
    with tempfile.TemporaryDirectory(prefix="siamtrack-cpu-int8-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        with _quiet_ort_quantizer(), _calibrator_threads(threads):
            quantize_static(
                str(src), str(dst), _Reader(feeds), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                reduce_range=False, calibrate_method=CalibrationMethod.MinMax,
                op_types_to_quantize=["Conv", "Add", "Relu", "Clip"],
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "QuantizeBias": True})
        out = onnx.load(str(dst))
    calib = {"placement": PLACEMENT, "method": "minmax", "samples": len(feeds), "set_sha256": set_sha256,
             "quantizer": QUANTIZER_ID, "bias_correction": bias_correction, "bias_corrected_convs": corrected,
             "calibration_id": calibration_id, "source_graph_sha256": sha256_file(fp32_path),
             "activations": "u8 asymmetric per tensor", "weights": "s8 symmetric per output channel"}
    if feeds_made_as:
        calib["feeds"] = feeds_made_as
    del out.metadata_props[:]
    merge_metadata_props(out, {**props, META_PRECISION: "int8", META_CALIBRATION: json.dumps(calib, sort_keys=True)})
    return out.SerializeToString()


# ---------------------------------------------------------------------------------------------- pairs

def cpu_calibration_id(template_fp32: Path, search_fp32: Path, set_sha256: str, *, samples: int,
                       bias_correction: bool, lost_fp32: Path | None = None) -> str:
    """One id for a CPU INT8 pair (and its long-term graph): same FP32 graphs, calibration set and
    options -> same id (every graph carries it; ``runtime.variants`` refuses a pair mixed from two runs)."""
    from runtime.contract import sha256_file

    parts = [sha256_file(template_fp32), sha256_file(search_fp32), set_sha256, samples, bias_correction,
             QUANTIZER_ID]
    if lost_fp32 is not None:      # appended, so a short-term pair keeps the id it had before
        parts.append(sha256_file(lost_fp32))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def pair_paths(out_dir: str | Path) -> tuple[Path, Path]:
    return tuple(Path(out_dir) / artifact_name(g, "int8", CPU_INT8_FLAVOUR, "onnx") for g in GRAPHS)


def source_paths(model_dir: str | Path) -> tuple[Path, Path]:
    return tuple(Path(model_dir) / artifact_name(g, "fp32", SOURCE_FLAVOUR, "onnx") for g in GRAPHS)


def lost_paths(model_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path] | None:
    """(FP32 standard source, CPU INT8 output) of the long-term search graph, or None when the export
    has none (a short-term export)."""
    src = Path(model_dir) / artifact_name(LOST_GRAPH, "fp32", SOURCE_FLAVOUR, "onnx")
    if not src.is_file():
        return None
    return src, Path(out_dir or model_dir) / artifact_name(LOST_GRAPH, "int8", CPU_INT8_FLAVOUR, "onnx")


def _input_side(onnx_path: Path) -> int:
    """The spatial side of the graph's search input (a fixed dim of the exported graph)."""
    import onnx

    for value in onnx.load(str(onnx_path), load_external_data=False).graph.input:
        if value.name == SEARCH_INPUT:
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 4 and dims[3].dim_value > 0:
                return int(dims[3].dim_value)
    raise CalibrationError(f"{onnx_path}: no fixed-size {SEARCH_INPUT!r} input (N, 3, S, S); re-export the model")


def mosaic_feeds(search_feeds: list[Mapping[str, np.ndarray]], side: int) -> list[dict]:
    """Feeds for the long-term search graph (``side`` px crops) made from search-graph feeds: feed i
    tiles the search crops of feeds i, i+1, ... (row by row, cut to ``side``) and keeps feed i's kernels.
    Each search feed is (1, 3, s, s) with s <= side."""
    if not search_feeds:
        return []
    crops = [np.asarray(f[SEARCH_INPUT]) for f in search_feeds]
    step = crops[0].shape[-1]
    tiles = -(-side // step)                                   # per row and column, ceil
    out = []
    for i, feed in enumerate(search_feeds):
        canvas = np.empty((1, 3, tiles * step, tiles * step), dtype=np.float32)
        for k in range(tiles * tiles):
            r, c = divmod(k, tiles)
            canvas[:, :, r * step:(r + 1) * step, c * step:(c + 1) * step] = crops[(i + k) % len(crops)]
        out.append({**{name: np.asarray(v) for name, v in feed.items() if name != SEARCH_INPUT},
                    SEARCH_INPUT: np.ascontiguousarray(canvas[:, :, :side, :side])})
    return out


def _run_plan(model_dir, calib, out_dir, samples: int, bias_correction: bool):
    """(lost, calibration id, output paths) of a run over ``model_dir``'s FP32 standard sources:
    ``lost_paths`` (None for a short-term export) and the template, search[, lost] outputs. The one place
    ``quantize_cpu_pair`` (which writes them) and ``pair_is_current`` (which checks them) agree on."""
    lost = lost_paths(model_dir, out_dir)
    cal_id = cpu_calibration_id(*source_paths(model_dir), calib.set_sha256, samples=samples,
                                bias_correction=bias_correction, lost_fp32=lost[0] if lost else None)
    return lost, cal_id, pair_paths(out_dir or model_dir) + ((lost[1],) if lost else ())


def quantize_cpu_pair(model_dir: str | Path, calib, out_dir: str | Path | None = None, *,
                      samples: int = DEFAULT_SAMPLES, bias_correction: bool = True,
                      threads: int | None = None) -> list[Path]:
    """Write ``template.int8.cpu.onnx`` and ``search.int8.cpu.onnx`` from ``model_dir``'s FP32 standard
    pair and ``calib`` (a ``calibration.feeds.CalibrationSet``), and ``search_lost.int8.cpu.onnx`` when
    the export has a long-term graph (calibrated on mosaics of the search feeds, module doc): all or
    none (``runtime.atomic``). threads: intra-op threads of the ONNX Runtime calibration sessions
    (``quantize_cpu_bytes``). Returns the written paths (template, search[, lost])."""
    from runtime.atomic import write_group
    from runtime.backends import check_threads

    threads = check_threads(threads)

    if samples < 1:
        raise CalibrationError(f"samples {samples}: expected at least 1 calibration sample per graph")
    sources = source_paths(model_dir)
    for src in sources:
        if not src.is_file():
            raise CalibrationError(f"{src}: missing; the CPU INT8 graphs are made from the FP32 {SOURCE_FLAVOUR} "
                                   f"export (`siamtrack export ... --flavour both`)")
    lost, cal_id, outs = _run_plan(model_dir, calib, out_dir, samples, bias_correction)
    files = {}
    search_feeds = []
    for graph, src, out in zip(GRAPHS, sources, outs):      # the pair; the lost graph below
        feeds = calib.feeds_for(src, batch=1)
        chosen = spread(feeds, len(feeds), samples)
        if graph == "search":
            search_feeds = chosen           # the long-term graph's mosaics are made of these
        files[out] = quantize_cpu_bytes(src, chosen, calibration_id=cal_id, set_sha256=calib.set_sha256,
                                        bias_correction=bias_correction, threads=threads)
    if lost is not None:
        files[lost[1]] = quantize_cpu_bytes(lost[0], mosaic_feeds(search_feeds, _input_side(lost[0])),
                                            calibration_id=cal_id, set_sha256=calib.set_sha256,
                                            bias_correction=bias_correction, threads=threads,
                                            feeds_made_as="mosaics of the search graph's calibration crops")
    outs[0].parent.mkdir(parents=True, exist_ok=True)
    write_group(files)
    return list(outs)


def pair_is_current(model_dir: str | Path, calib, out_dir: str | Path | None = None, *,
                    samples: int = DEFAULT_SAMPLES, bias_correction: bool = True) -> bool:
    """True when the CPU INT8 pair exists and was made from these FP32 graphs, set and options."""
    from runtime.variants import calibration_info

    if not all(s.is_file() for s in source_paths(model_dir)):
        return False
    _, want, outs = _run_plan(model_dir, calib, out_dir, samples, bias_correction)
    return all(p.is_file() and calibration_info(p).get("calibration_id") == want for p in outs)


# ------------------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    from runtime.cli_args import positive_int

    parser = argparse.ArgumentParser(
        prog="siamtrack quantize-cpu",
        description="Make INT8 graphs placed for ONNX Runtime's CPU kernels (QLinearConv: u8 activations, "
                    "s8 per-channel weights) from the FP32 standard export and a calibration set recorded "
                    "by `siamtrack calibrate`. Writes template.int8.cpu.onnx and search.int8.cpu.onnx (and "
                    "search_lost.int8.cpu.onnx for a long-term export, calibrated on mosaics of the search "
                    "crops); the TensorRT-placed *.int8.standard/plugin.onnx graphs are left alone.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  siamtrack quantize-cpu artifacts/lite0 --calib artifacts/lite0/calib\n"
               "  siamtrack latency --run onnxruntime:artifacts/lite0,precision=int8,flavour=cpu\n"
               "then `--backend auto --precision int8` picks these graphs on ONNX Runtime.\n"
               "Fast where the CPU multiplies u8 x s8 exactly in hardware: x86 with AVX-512 VNNI or\n"
               "AVX-VNNI, ARM with the dot-product extension (`siamtrack latency` says which path runs).")
    parser.add_argument("model_dir", type=Path, help="folder with template/search.fp32.standard.onnx")
    parser.add_argument("--calib", type=Path, required=True, help="calibration folder (manifest.json)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                        help=f"calibration samples per graph, spread over the set (default {DEFAULT_SAMPLES})")
    parser.add_argument("--no-bias-correction", action="store_true",
                        help="keep the exported float biases (default: corrected for the weight rounding)")
    parser.add_argument("--out-dir", type=Path, help="default: model_dir")
    parser.add_argument("--only-stale", action="store_true",
                        help='leave the pair alone (and say "up to date") when it was made from these FP32 '
                             "graphs, this calibration set and these options")
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads of the intra-op pool of each ONNX Runtime calibration session (one "
                             "inter-op thread, idle threads do not spin); default: the library's. ONNX "
                             "Runtime's quantizer has no option for its own calibration session, so siamtrack "
                             "sets it by replacing the quantizer's session-opening method "
                             "(CalibraterBase.create_inference_session) while it runs")
    parser.add_argument("--json", action="store_true", help="print written paths as JSON")
    args = parser.parse_args(argv)
    from calibration.feeds import load_calibration

    calib = load_calibration(args.calib)
    opts = dict(samples=args.samples, bias_correction=not args.no_bias_correction)
    out_dir = args.out_dir or args.model_dir
    if args.only_stale and pair_is_current(args.model_dir, calib, out_dir, **opts):
        if args.json:
            print(json.dumps({"written": [], "up_to_date": [CPU_INT8_FLAVOUR]}))
        else:
            graphs = "template,search" + (",search_lost" if lost_paths(args.model_dir, out_dir) else "")
            print(f"up to date: {out_dir}/{{{graphs}}}.int8.{CPU_INT8_FLAVOUR}.onnx (same FP32 graphs, "
                  f"calibration set {calib.set_sha256[:12]} and options)")
        return 0
    outs = quantize_cpu_pair(args.model_dir, calib, out_dir, threads=args.threads, **opts)
    if args.json:
        print(json.dumps({"written": [str(p) for p in outs], "up_to_date": []}))
    else:
        print("\n".join(str(p) for p in outs))
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack quantize-cpu"))

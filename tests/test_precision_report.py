"""Precision report and latency bench on a micro export that follows the graph contract.

The micro export is a real template/search ONNX pair (built with onnx.helper, seeded random weights)
with the contract's names, metadata and both xcorr flavours, small enough (15/31 px crops) that the
whole FP32 -> calibrate -> FP16/INT8 -> report chain runs in seconds through the runtime's own
OrtBackend and tracker.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime.contract import (META_PRECISION, XCORR_DOMAIN, XCORR_OP, GraphMeta, ModelSpec, TrackerConfig,
                              artifact_name)

pytestmark = pytest.mark.slow   # the module fixture records, calibrates and converts (~20 s on 2 cores)

MICRO_SPEC = ModelSpec(variant="micro", exemplar_size=15, instance_size=31, score_size=11, anchor_num=5,
                       levels=("",), kernel_channels=4, kernel_size=5)
MICRO_TRACKER = TrackerConfig(exemplar_size=15, instance_size=31)   # score size (31-15)//8+1+8 = 11


def _w(rng, name, *shape, gain=1.0):
    std = gain * np.sqrt(2.0 / np.prod(shape[1:])) / 255.0 if shape[1] == 3 else gain * np.sqrt(2.0 / np.prod(shape[1:]))
    return numpy_helper.from_array((rng.standard_normal(shape) * std).astype(np.float32), name)


def _graphs(seed: int):
    rng = np.random.default_rng(seed)
    c = MICRO_SPEC.kernel_channels
    t_inits = [_w(rng, "t_w0", c, 3, 3, 3), _w(rng, "t_wc", c, c, 3, 3), _w(rng, "t_wl", c, c, 3, 3)]
    template = helper.make_graph(
        [helper.make_node("Conv", ["template", "t_w0"], ["t0"], strides=[2, 2], name="t_conv0"),   # N,4,7,7
         helper.make_node("Relu", ["t0"], ["t1"], name="t_relu"),
         helper.make_node("Conv", ["t1", "t_wc"], ["kernel_cls"], name="t_conv_cls"),               # N,4,5,5
         helper.make_node("Conv", ["t1", "t_wl"], ["kernel_loc"], name="t_conv_loc")],
        "template", [helper.make_tensor_value_info("template", TensorProto.FLOAT, ["N", 3, 15, 15])],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, ["N", c, 5, 5]) for k in ("kernel_cls", "kernel_loc")],
        t_inits)
    s_inits = [_w(rng, "s_w0", c, 3, 3, 3), _w(rng, "s_w1", c, c, 3, 3, gain=0.5),
               _w(rng, "s_hc", 10, c, 1, 1, gain=0.3), _w(rng, "s_hl", 20, c, 1, 1, gain=0.05),
               numpy_helper.from_array(np.zeros(10, np.float32), "s_bc"),
               numpy_helper.from_array(np.zeros(20, np.float32), "s_bl")]
    search = helper.make_graph(
        [helper.make_node("Conv", ["search", "s_w0"], ["s0"], strides=[2, 2], name="s_conv0"),     # N,4,15,15
         helper.make_node("Relu", ["s0"], ["s1"], name="s_relu0"),
         helper.make_node("Conv", ["s1", "s_w1"], ["s2"], pads=[1, 1, 1, 1], name="s_conv1"),
         helper.make_node("Add", ["s2", "s1"], ["s3"], name="s_residual"),
         helper.make_node(XCORR_OP, ["s3", "kernel_cls"], ["xc"], domain=XCORR_DOMAIN, name="xcorr_cls"),  # N,4,11,11
         helper.make_node(XCORR_OP, ["s3", "kernel_loc"], ["xl"], domain=XCORR_DOMAIN, name="xcorr_loc"),
         helper.make_node("Conv", ["xc", "s_hc", "s_bc"], ["cls"], name="head_cls"),
         helper.make_node("Conv", ["xl", "s_hl", "s_bl"], ["loc"], name="head_loc")],
        "search",
        [helper.make_tensor_value_info("search", TensorProto.FLOAT, ["N", 3, 31, 31])]
        + [helper.make_tensor_value_info(k, TensorProto.FLOAT, ["N", c, 5, 5]) for k in ("kernel_cls", "kernel_loc")],
        [helper.make_tensor_value_info("cls", TensorProto.FLOAT, ["N", 10, 11, 11]),
         helper.make_tensor_value_info("loc", TensorProto.FLOAT, ["N", 20, 11, 11])],
        s_inits, value_info=[helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", c, 11, 11]) for x in ("xc", "xl")])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(XCORR_DOMAIN, 1)]
    return (helper.make_model(template, opset_imports=opsets[:1]), helper.make_model(search, opset_imports=opsets))


def write_micro_export(folder: Path, seed: int = 0, export_id: str = "micro-0") -> Path:
    """template/search.fp32.{plugin,standard}.onnx with contract metadata (random weights)."""
    from export.xcorr_op import expand_xcorr_nodes

    folder.mkdir(parents=True, exist_ok=True)
    template, search = _graphs(seed)
    for flavour in ("plugin", "standard"):
        s = search if flavour == "plugin" else expand_xcorr_nodes(search)
        for graph, proto in (("template", template), ("search", s)):
            meta = GraphMeta(graph=graph, spec=MICRO_SPEC, tracker=MICRO_TRACKER, source_sha256=f"sha-{seed}",
                             export_id=export_id, xcorr=flavour, precision="fp32",
                             extra={"siamrpn.random_weights": "true"})
            m = onnx.ModelProto()
            m.CopyFrom(proto)
            onnx.helper.set_model_props(m, meta.to_props())
            onnx.save(m, str(folder / artifact_name(graph, "fp32", flavour, "onnx")))
    return folder


def micro_sequences(count: int = 2, frames: int = 12):
    """Short synthetic sequences (bench.synth, test seeds) as collect/report inputs, with ground truth."""
    from bench.synth import TEST_SEEDS, SynthConfig, generate
    from calibration.collect import SequenceInput

    out = []
    for seed in TEST_SEEDS[:count]:
        s = generate(seed, SynthConfig(width=96, height=72, frames=frames))
        seq = SequenceInput(s.name, s.frames, np.asarray(s.init_box, np.float64))
        seq.gt_xywh, seq.absent = s.gt_xywh, s.absent
        out.append(seq)
    return out


@pytest.fixture(scope="module")
def micro_chain(tmp_path_factory):
    """FP32 micro export + calibration set + FP16 and INT8 (plugin flavour) variants."""
    from calibration.collect import JitterConfig, collect, model_identity
    from calibration.feeds import load_calibration
    from calibration.quantize import quantize
    from export.fp16 import convert_fp16
    from runtime.backends.onnxrt import OrtBackend

    root = write_micro_export(tmp_path_factory.mktemp("micro"))
    with OrtBackend.from_dir(root, flavour="plugin") as fp32:
        collect(micro_sequences(), fp32, root / "calib", model_identity=model_identity(root, "plugin"),
                jitter=JitterConfig(templates=2, searches=1), min_samples=8)
    calib = load_calibration(root / "calib")
    for graph in ("template", "search"):
        src = root / artifact_name(graph, "fp32", "plugin", "onnx")
        quantize(src, calib.feeds_for(src), root / artifact_name(graph, "int8", "plugin", "onnx"), method="entropy")
        convert_fp16(src, root / artifact_name(graph, "fp16", "plugin", "onnx"))
    return root


def test_report_covers_every_variant_with_errors_and_agreement(micro_chain):
    from calibration.report import evaluate

    report = evaluate(micro_chain, micro_sequences(), flavour="plugin")
    assert set(report["variants"]) == {"fp16", "int8"} and report["random_weights"] is True
    for p, r in report["variants"].items():
        e = r["output_error"]
        assert 0 <= e["cls_mean"] <= e["cls_max"] and 0 <= e["loc_mean"] <= e["loc_max"]
        assert 0 <= r["mean_iou_vs_fp32"] <= 1 and 0 <= r["auc_vs_fp32"] <= 1
        assert r["auc_gt"] is not None and r["auc_gt_delta_points"] is not None
    # float16 rounds each op to ~1e-3 relative; INT8 to ~1/127 of each range: FP16 must be the closer one.
    assert report["variants"]["fp16"]["output_error"]["cls_mean"] < report["variants"]["int8"]["output_error"]["cls_mean"]
    assert report["variants"]["int8"]["calibration"]["method"] == "entropy"


def test_fp32_compared_with_itself_agrees_perfectly(micro_chain, tmp_path):
    # A "variant" that is the FP32 graph under another name must give zero error and IoU 1: checks the
    # report's plumbing with an independently known answer.
    import shutil

    from calibration.report import evaluate

    for graph in ("template", "search"):
        m = onnx.load(str(micro_chain / artifact_name(graph, "fp32", "plugin", "onnx")))
        next(p for p in m.metadata_props if p.key == META_PRECISION).value = "fp16"
        onnx.save(m, str(tmp_path / artifact_name(graph, "fp16", "plugin", "onnx")))
        shutil.copy(micro_chain / artifact_name(graph, "fp32", "plugin", "onnx"), tmp_path)
    r = evaluate(tmp_path, micro_sequences(1), flavour="plugin")["variants"]["fp16"]
    assert r["output_error"]["cls_max"] == 0 and r["mean_iou_vs_fp32"] == pytest.approx(1.0)
    # pysot's success curve counts IoU > t over 21 thresholds 0..1; IoU 1 fails only t = 1: AUC 20/21.
    assert r["auc_vs_fp32"] == pytest.approx(20 / 21) and r["auc_gt_delta_points"] == pytest.approx(0.0)


def test_per_sequence_changes_add_up_to_the_headline_with_their_standard_error(micro_chain):
    from calibration.report import evaluate

    r = evaluate(micro_chain, micro_sequences(), flavour="plugin")["variants"]["int8"]
    per = r["per_sequence"]
    assert len(per) == len(micro_sequences())
    delta = np.array([100 * (v["auc_gt"] - v["auc_gt_fp32"]) for v in per.values()])
    assert r["auc_gt_delta_points"] == pytest.approx(delta.mean())
    assert r["auc_gt_delta_se_points"] == pytest.approx(delta.std(ddof=1) / np.sqrt(len(delta)))
    assert r["sequences_worse"] == (delta < -1).sum() and r["sequences_better"] == (delta > 1).sum()


def test_variant_from_another_export_is_refused(micro_chain, tmp_path):
    import shutil

    from calibration.report import evaluate
    from runtime.errors import ContractError

    other = write_micro_export(tmp_path / "other", seed=1, export_id="micro-1")
    for graph in ("template", "search"):
        shutil.copy(micro_chain / artifact_name(graph, "int8", "plugin", "onnx"), other)
    with pytest.raises(ContractError, match="built from export micro-0"):
        evaluate(other, micro_sequences(1), flavour="plugin")


def test_report_cli_prints_json_and_table(micro_chain, capsys):
    from calibration.report import main

    assert main([str(micro_chain), "--synthetic", "1", "--frames", "6", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["variants"]) == {"fp16", "int8"}
    assert main([str(micro_chain), "--synthetic", "1", "--frames", "6", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "int8" in out and "RANDOM WEIGHTS" in out


def test_latency_bench_times_every_precision_with_ratio(micro_chain):
    from bench.precision_latency import measure

    result = measure(micro_chain, "plugin", repeats=3, warmup=1)
    assert set(result["precisions"]) == {"fp32", "fp16", "int8"}
    assert result["precisions"]["fp32"]["search_ratio_vs_fp32"] == pytest.approx(1.0)
    assert all(r["search_ms_median"] > 0 for r in result["precisions"].values())

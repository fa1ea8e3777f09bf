"""What each precision costs: FP16/INT8 variants against the FP32 graphs and the FP32 tracker.

For every variant (``template/search.<precision>.<flavour>.onnx`` next to the FP32 pair, and
``int8-cpu``: the ONNX Runtime INT8 placement ``*.int8.cpu.onnx`` of ``calibration.cpu_int8``, whatever
``--flavour`` says, since it is made from the standard graphs whose outputs equal the plugin ones):
- output error: the FP32 tracker runs each sequence; every template and search crop it makes is also
  run through the variant (its own template graph, then its search graph with its own kernels), and
  the |variant - FP32| of ``cls`` and ``loc`` is summarised as max and mean;
- tracking agreement: the variant's own tracker runs the same sequences; per frame IoU with the FP32
  tracker's box (mean IoU), success AUC with the FP32 boxes as ground truth, and success AUC against
  the real ground truth next to FP32's own (the difference, in AUC points x100, is what the
  acceptance bounds of issue 6 speak about: FP16 within 0.5, INT8 within 1.5 on a trained model).
Frame 0 (the init box, identical for every run) is left out of all tracking numbers.

Numbers from random weights (export metadata ``siamrpn.random_weights = true``) are labelled as such:
they exercise the graphs, but do not predict the cost of a precision on a trained model.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calibration import CalibrationError
from runtime.backends.base import Backend, Kernels
from runtime.contract import CPU_INT8_FLAVOUR, XCORR_FLAVOURS, artifact_name

CPU_INT8_VARIANT = "int8-cpu"   # report label of (int8, cpu)
VARIANT_PRECISIONS = ("fp16", "int8", CPU_INT8_VARIANT)


@dataclass
class OutputError:
    """Running max and mean of |variant - fp32| over all search calls, for cls and loc."""

    cls_max: float = 0.0
    loc_max: float = 0.0
    cls_sum: float = 0.0
    loc_sum: float = 0.0
    count: int = 0

    def add(self, cls_ref, loc_ref, cls, loc) -> None:
        dc, dl = np.abs(cls - cls_ref), np.abs(loc - loc_ref)
        self.cls_max, self.loc_max = max(self.cls_max, float(dc.max())), max(self.loc_max, float(dl.max()))
        self.cls_sum += float(dc.sum())
        self.loc_sum += float(dl.sum())
        self.count += dc.size

    def summary(self) -> dict:
        n = max(self.count, 1)
        return {"cls_max": self.cls_max, "cls_mean": self.cls_sum / n,
                "loc_max": self.loc_max, "loc_mean": self.loc_sum / n}


@dataclass
class VariantResult:
    precision: str
    calibration: dict | None
    output_error: dict = field(default_factory=dict)
    mean_iou_vs_fp32: float = float("nan")
    auc_vs_fp32: float = float("nan")
    auc_gt: float | None = None
    auc_gt_delta_points: float | None = None
    # Paired over sequences: the standard error of the mean per-sequence AUC change, in points. Tracking
    # is chaotic (a tiny change can flip one sequence from followed to lost), so a change smaller than
    # about twice this is not evidence of a cost.
    auc_gt_delta_se_points: float | None = None
    sequences_worse: int | None = None   # per-sequence AUC change below -1 point
    sequences_better: int | None = None  # above +1 point
    per_sequence: dict = field(default_factory=dict)


class ShadowBackend(Backend):
    """Runs the FP32 backend for the tracker and every variant on the same inputs, measuring errors."""

    def __init__(self, fp32: Backend, variants: dict[str, Backend]):
        self.fp32, self.variants = fp32, variants
        self.name, self.spec, self.tracker_config = "shadow", fp32.spec, fp32.tracker_config
        self.errors = {p: OutputError() for p in variants}
        self._kernels: dict[str, Kernels] = {}

    def _template_impl(self, crops):
        self._kernels = {p: b.run_template(crops) for p, b in self.variants.items()}
        return self.fp32.run_template(crops)

    def _search_impl(self, crops, kernels):
        cls_ref, loc_ref = self.fp32.run_search(crops, kernels)
        for p, b in self.variants.items():
            cls, loc = b.run_search(crops, self._kernels[p])
            self.errors[p].add(cls_ref, loc_ref, cls, loc)
        return cls_ref, loc_ref


def run_tracker(backend: Backend, seq) -> np.ndarray:
    """(T, 4) boxes of one run over ``seq`` (frame 0 = the init box)."""
    from runtime.tracker import SiamRPNTracker

    tracker = SiamRPNTracker(backend)
    boxes = []
    for i, frame in enumerate(seq.frames):
        if i == 0:
            tracker.init(frame, seq.init_box_xywh)
            boxes.append(np.asarray(seq.init_box_xywh, np.float64))
        else:
            boxes.append(tracker.track(frame).box_xywh)
    return np.stack(boxes)


def _auc(gt, pred, absent=None) -> float:
    from bench.metrics import success_curve

    return float(success_curve(gt, pred, absent).mean())


def open_variants(model_dir: Path, flavour: str, precisions=VARIANT_PRECISIONS, threads: int | None = None):
    """(fp32 backend, {precision: backend}) for the variants present; ContractError when a variant
    comes from another export than the FP32 pair. threads: intra-op threads of every session (None:
    the backend's default, the CPUs this process may use)."""
    from runtime.backends import check_threads
    from runtime.backends.onnxrt import OrtBackend
    from runtime.errors import ContractError

    threads = check_threads(threads)
    fp32 = OrtBackend.from_dir(model_dir, precision="fp32", flavour=flavour, threads=threads)
    variants = {}
    for p in precisions:
        precision, fl = ("int8", CPU_INT8_FLAVOUR) if p == CPU_INT8_VARIANT else (p, flavour)
        if not (model_dir / artifact_name("search", precision, fl, "onnx")).is_file():
            continue
        backend = OrtBackend.from_dir(model_dir, precision=precision, flavour=fl, threads=threads)
        if (backend.meta.export_id, backend.meta.source_sha256) != (fp32.meta.export_id, fp32.meta.source_sha256):
            raise ContractError(
                f"{backend.search_path}: built from export {backend.meta.export_id} but the FP32 pair in "
                f"{model_dir} is export {fp32.meta.export_id}; rebuild the {p} variant from this export "
                "(siamtrack fp16 / siamtrack quantize)")
        if backend.meta.precision != precision:
            raise ContractError(f"{backend.search_path}: metadata says precision {backend.meta.precision}, "
                                f"the file name says {precision}; rebuild it")
        variants[p] = backend
    if not variants:
        raise CalibrationError(f"{model_dir}: no FP16/INT8 {flavour} variants to compare; make them with "
                               "`siamtrack fp16` / `siamtrack quantize`")
    return fp32, variants


def evaluate(model_dir: str | Path, sequences, flavour: str = "plugin", precisions=VARIANT_PRECISIONS,
             progress: bool = False, threads: int | None = None) -> dict:
    """Compare every variant in ``model_dir`` with its FP32 pair over ``sequences`` (SequenceInput with
    in-memory or lazy frames, optional ``gt_xywh`` / ``absent``). Returns the JSON-ready report.
    threads: intra-op threads of each ONNX Runtime session (None: the CPUs this process may use)."""
    from tqdm import tqdm

    from bench.metrics import iou_xywh

    model_dir = Path(model_dir)
    fp32, variants = open_variants(model_dir, flavour, precisions, threads)
    shadow = ShadowBackend(fp32, variants)
    ious = {p: [] for p in variants}
    auc_ref = {p: [] for p in variants}
    auc_gt = {p: [] for p in variants}
    auc_gt_fp32 = []
    names = []
    for seq in tqdm(list(sequences), desc="sequences", disable=not progress):
        names.append(seq.name)
        ref = run_tracker(shadow, seq)
        gt = getattr(seq, "gt_xywh", None)
        absent = getattr(seq, "absent", None)
        if gt is not None:
            auc_gt_fp32.append(_auc(gt[1:], ref[1:], None if absent is None else absent[1:]))
        for p, backend in variants.items():
            boxes = run_tracker(backend, seq)
            ious[p].append(iou_xywh(ref[1:], boxes[1:]))
            auc_ref[p].append(_auc(ref[1:], boxes[1:]))
            if gt is not None:
                auc_gt[p].append(_auc(gt[1:], boxes[1:], None if absent is None else absent[1:]))
    results = {}
    for p, backend in variants.items():
        calib = backend.meta.extra.get("siamrpn.calibration")
        r = VariantResult(p, json.loads(calib) if calib else None, shadow.errors[p].summary(),
                          float(np.mean(np.concatenate(ious[p]))), float(np.mean(auc_ref[p])))
        r.per_sequence = {n: {"mean_iou_vs_fp32": float(np.mean(i))} for n, i in zip(names, ious[p])}
        if auc_gt[p]:
            r.auc_gt = float(np.mean(auc_gt[p]))
            r.auc_gt_delta_points = 100.0 * (r.auc_gt - float(np.mean(auc_gt_fp32)))
            delta = 100.0 * (np.asarray(auc_gt[p]) - np.asarray(auc_gt_fp32))      # (sequences,) points
            if len(delta) > 1:
                r.auc_gt_delta_se_points = float(delta.std(ddof=1) / np.sqrt(len(delta)))
            r.sequences_worse, r.sequences_better = int((delta < -1).sum()), int((delta > 1).sum())
            for n, a, a32 in zip(names, auc_gt[p], auc_gt_fp32):
                r.per_sequence[n].update({"auc_gt": float(a), "auc_gt_fp32": float(a32)})
        results[p] = asdict(r)
    random = fp32.random_weights
    for b in [fp32, *variants.values()]:
        b.close()
    return {"model_dir": str(model_dir), "flavour": flavour, "export_id": fp32.meta.export_id,
            "random_weights": random, "sequences": [s.name for s in sequences],
            "frames": int(sum(len(c) + 1 for c in next(iter(ious.values())))),
            "fp32_auc_gt": float(np.mean(auc_gt_fp32)) if auc_gt_fp32 else None, "variants": results}


def format_table(report: dict) -> str:
    head = (f"{'variant':8} {'cls max':>9} {'cls mean':>9} {'loc max':>9} {'loc mean':>9} "
            f"{'mean IoU':>9} {'AUC/fp32':>9} {'AUC gt':>8} {'dAUC pts':>9} {'+-SE':>6} {'worse/better':>13}")
    lines = [f"{report['model_dir']} ({report['flavour']}), {len(report['sequences'])} sequence(s), "
             f"{report['frames']} frames; FP32 AUC vs ground truth: "
             + ("-" if report["fp32_auc_gt"] is None else f"{report['fp32_auc_gt']:.3f}"), head]
    for p, r in report["variants"].items():
        e = r["output_error"]
        gt = "-" if r["auc_gt"] is None else f"{r['auc_gt']:.3f}"
        delta = "-" if r["auc_gt_delta_points"] is None else f"{r['auc_gt_delta_points']:+.2f}"
        se = "-" if r["auc_gt_delta_se_points"] is None else f"{r['auc_gt_delta_se_points']:.2f}"
        flips = "-" if r["sequences_worse"] is None else f"{r['sequences_worse']}/{r['sequences_better']}"
        lines.append(f"{p:8} {e['cls_max']:9.4f} {e['cls_mean']:9.5f} {e['loc_max']:9.4f} {e['loc_mean']:9.5f} "
                     f"{r['mean_iou_vs_fp32']:9.3f} {r['auc_vs_fp32']:9.3f} {gt:>8} {delta:>9} {se:>6} {flips:>13}")
    if report["random_weights"]:
        lines.append("RANDOM WEIGHTS: these numbers exercise the graphs; they do NOT predict the cost of "
                     "FP16/INT8 on a trained model.")
    return "\n".join(lines)


def _synthetic(count: int, frames: int):
    from bench.synth import TEST_SEEDS, SynthConfig, generate
    from calibration.collect import SequenceInput

    out = []
    for seed in TEST_SEEDS[:count]:
        s = generate(seed, SynthConfig(frames=frames))
        seq = SequenceInput(s.name, s.frames, np.asarray(s.init_box, np.float64))
        seq.gt_xywh, seq.absent = s.gt_xywh, s.absent
        out.append(seq)
    return out


def main(argv: list[str] | None = None) -> int:
    from runtime.cli_args import positive_int

    parser = argparse.ArgumentParser(
        prog="siamtrack precision-report",
        description="Measure what FP16 and INT8 variants cost against the FP32 graphs and tracker.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  siamtrack precision-report artifacts/mobilev2 --synthetic 4\n"
               "  siamtrack precision-report artifacts/r50 --dataset otb:/data/OTB100 --limit 10 --json\n"
               "columns: max/mean |variant - fp32| of cls and loc; mean IoU with the FP32 tracker's boxes;\n"
               "success AUC with FP32 boxes as ground truth; AUC against the real ground truth and its\n"
               "difference to FP32 in points (x100), with its paired standard error over sequences and\n"
               "how many sequences lost / gained more than 1 point. Tracking is chaotic: judge a difference\n"
               "against its SE, and use tens of sequences.")
    parser.add_argument("model_dir", type=Path, help="folder with the FP32 pair and its variants")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="FORMAT:ROOT (otb, uav123, lasot, got10k, vot, folder)")
    src.add_argument("--synthetic", type=int, metavar="N", help="N synthetic test sequences (bench.synth)")
    src.add_argument("--video", type=Path, help="a video or image folder (with --box); no ground truth")
    parser.add_argument("--box", help="x,y,w,h in the first frame (with --video)")
    parser.add_argument("--frames", type=int, default=60, help="frames per synthetic sequence")
    parser.add_argument("--limit", type=int, help="at most this many dataset sequences")
    parser.add_argument("--flavour", choices=XCORR_FLAVOURS, default="plugin")
    parser.add_argument("--precision", choices=VARIANT_PRECISIONS, action="append",
                        help="default: all present; int8 is the TensorRT placement, int8-cpu ONNX Runtime's "
                             "(*.int8.cpu.onnx, `siamtrack quantize-cpu`)")
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads of ONNX Runtime's intra-op pool, per session (FP32 and every "
                             "variant); default: the library's (all usable CPUs)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from calibration.collect import sequence_from_video, sequences_from_dataset

    if args.synthetic:
        sequences = _synthetic(args.synthetic, args.frames)
    elif args.dataset:
        fmt, _, root = args.dataset.partition(":")
        sequences = []
        for s in sequences_from_dataset(fmt, Path(root), None, args.limit):
            s.gt_xywh, s.absent = s.frames.seq.gt_xywh, s.frames.seq.absent
            sequences.append(s)
    else:
        from runtime.errors import InputError

        if not args.box:
            raise InputError("--video needs --box x,y,w,h")
        sequences = [sequence_from_video(args.video, args.box)]
    report = evaluate(args.model_dir, sequences, args.flavour, args.precision or VARIANT_PRECISIONS,
                      progress=not (args.quiet or args.json), threads=args.threads)
    print(json.dumps(report, indent=1) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack precision-report"))

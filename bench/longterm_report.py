"""``siamtrack longterm-report``: the short-term and the long-term tracker on the same generated long-term
sequences (the target leaves the view or hides behind an occluder and reappears elsewhere), one model.

Both trackers run through ``bench.accuracy`` (same result files, resumable); the table compares:

- LT-F / LT-Pr / LT-Re: the VOT long-term challenge's F-score and the precision and recall at its best
  confidence threshold (``bench.lt_metrics``), each tracker over all sequences; the F standard error is
  the leave-one-sequence-out jackknife;
- dF: long-term minus short-term F-score, with a PAIRED jackknife error (the same sequence left out of
  both), which cancels what the two share (how hard each sequence is);
- AUC: the one-pass success AUC (pysot's), mean over sequences, and dAUC with the paired standard error
  of the per-sequence differences (``std(d, ddof=1) / sqrt(n)``);
- re-detection: reappearances found again (IoU > 0.5 before the target leaves again) and the mean delay
  in frames from the reappearance to that frame (``bench.lt_metrics`` module doc);
- confident miss: the share of frames (1..T-1) where the box misses (IoU < 0.1, absent frames included)
  while the score is at least 0.85 (the long-term tracker's confidence_low): a box on an occluder or a
  distractor that the tracker believes in.

Writes ``<out>/longterm_report.json`` and ``<out>/longterm_report.md``; prints the table (or the JSON).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from bench import failure_modes, lt_metrics, metrics
from bench.runs import Run
from runtime import atomic
from runtime.cli_args import positive_int
from runtime.errors import InputError

DEFAULT_MODEL = "models/lite0/config.yaml"
DEFAULT_CHECKPOINT = "models/lite0/model.pth"
CONFIDENT = 0.85        # pysot LT config's CONFIDENCE_LOW: a score the long-term tracker trusts
TRACKERS = ("short-term", "long-term")


def _paired_se(a, b) -> float | None:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else None


def _mean_se(a) -> tuple[float, float | None]:
    a = np.asarray(a, np.float64)
    return float(a.mean()), (float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else None)


def score_run(run: Run, sequences, out_dir: Path) -> dict:
    """Per-sequence LT inputs, AUCs and confident misses of one run's result files."""
    from bench.accuracy import _image_wh, read_records

    folder = out_dir / "results" / run.name
    lt, auc, confident_miss, names = [], [], [], []
    for seq in sequences:
        records = read_records(folder / f"{seq.name}.txt", len(seq), "ope")
        scores = failure_modes.read_scores(folder / f"{seq.name}{failure_modes.SCORES_SUFFIX}", len(seq))
        if scores is None:
            raise InputError(f"{folder}: no per-frame scores for {seq.name}; delete the run folder and re-run")
        item = lt_metrics.sequence_lt(seq.gt_xywh, records, scores, seq.absent, _image_wh(seq))
        lt.append(item)
        auc.append(metrics.ope_scores(seq.gt_xywh, records).auc)
        confident_miss.append(float(np.mean((item.overlaps < 0.1) & (item.confidence >= CONFIDENT))))
        names.append(seq.name)
    return {"lt": lt, "auc": np.array(auc), "confident_miss": np.array(confident_miss), "names": names}


def compare(scored: dict[str, dict]) -> dict:
    """The report's numbers from ``score_run`` of the short-term and the long-term run."""
    st, ltr = scored["short-term"], scored["long-term"]
    lt_scores = {k: lt_metrics.longterm_scores(v["lt"]) for k, v in scored.items()}
    out = {"sequences": len(st["names"]), "trackers": {}}
    for name, s in scored.items():
        sc = lt_scores[name]
        auc, auc_se = _mean_se(s["auc"])
        miss, miss_se = _mean_se(s["confident_miss"])
        out["trackers"][name] = {
            "lt_fscore": sc.fscore, "lt_fscore_se": lt_metrics.jackknife_fscore(sc),
            "lt_precision": sc.precision, "lt_recall": sc.recall,
            "lt_threshold": sc.threshold if math.isfinite(sc.threshold) else str(sc.threshold),
            "auc": auc, "auc_se": auc_se, "confident_miss": miss, "confident_miss_se": miss_se,
            **lt_metrics.redetection_summary(s["lt"]),
            "per_sequence": [dict(name=n, auc=float(a), **v) for n, a, v in
                             zip(s["names"], s["auc"], sc.sequence_values())],
        }
    out["delta_fscore"] = lt_scores["long-term"].fscore - lt_scores["short-term"].fscore
    out["delta_fscore_se"] = lt_metrics.jackknife_fscore(lt_scores["long-term"], lt_scores["short-term"])
    out["delta_auc"] = float(np.mean(ltr["auc"] - st["auc"]))
    out["delta_auc_se"] = _paired_se(ltr["auc"], st["auc"])
    return out


def markdown(result: dict) -> str:
    from bench.report import markdown_table

    rows = []
    for name, t in result["trackers"].items():
        delay = t["redetect_delay_mean"]
        rows.append([name, f"{t['lt_fscore']:.3f} ± {t['lt_fscore_se'] or 0:.3f}", t["lt_precision"], t["lt_recall"],
                     f"{t['auc']:.3f} ± {t['auc_se'] or 0:.3f}", f"{t['redetected']}/{t['reappearances']}",
                     None if delay is None else round(delay, 1), t["confident_miss"]])
    head = ["tracker", "LT-F ± SE", "LT-Pr", "LT-Re", "AUC ± SE", "re-detected", "delay (frames)",
            "confident miss"]
    cfg = result.get("config", {})
    return "\n".join([
        f"# Short-term vs long-term tracker: {result['sequences']} generated long-term sequences "
        f"({cfg.get('frames')} frames, {cfg.get('size')}), {cfg.get('model')} on {cfg.get('backend')}", "",
        markdown_table(head, rows), "",
        f"dF (long - short) = {result['delta_fscore']:+.3f} ± {result['delta_fscore_se'] or 0:.3f} (paired jackknife "
        f"SE over sequences); dAUC = {result['delta_auc']:+.3f} ± {result['delta_auc_se'] or 0:.3f} (paired SE).", "",
        "LT-F: VOT long-term F-score (max over confidence thresholds of 2PrRe/(Pr+Re)); LT-Pr/LT-Re at that "
        "threshold. re-detected: reappearances with IoU > 0.5 before the target left again; delay: mean frames "
        f"from reappearance to that frame. confident miss: frames with IoU < 0.1 and score >= {CONFIDENT}.", ""])


EPILOG = """\
examples:
  # the shipped model on PyTorch (runs the 831 px lost-state crop natively), 20 sequences
  siamtrack longterm-report --count 20 --out artifacts/longterm-report
  # an export with the large search graph (siamtrack export ... --lost-search) on ONNX Runtime
  siamtrack longterm-report --model artifacts/lite0 --backend onnxruntime --count 20 --out artifacts/lt-ort

Sequences come from `siamtrack synth --long-term` (test seeds, written under OUT/data and reused while
current). Results are resumable per sequence, as with `siamtrack accuracy`.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="siamtrack longterm-report", description=__doc__.split("\n\n")[0],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"pysot config or artifact folder (default {DEFAULT_MODEL})")
    p.add_argument("--checkpoint", help=f"pysot model.pth (default {DEFAULT_CHECKPOINT} with the default model)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "tensorrt"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--count", type=positive_int, default=20, help="generated sequences (default 20)")
    p.add_argument("--frames", type=int, default=120, help="frames per sequence (default 120)")
    p.add_argument("--size", default="320x240", help="WxH of the frames (default 320x240)")
    p.add_argument("--out", required=True, help="output folder (data/, results/, longterm_report.json/.md)")
    p.add_argument("--workers", type=positive_int, default=1, help="tracking processes (spawn)")
    p.add_argument("--threads", type=positive_int, default=1, help="intra-op threads per worker")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    args = p.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size {args.size!r}: expected WxH, e.g. 320x240") from None

    from bench import synth
    from bench.accuracy import run_all
    from bench.sequences import read_dataset

    cfg = synth.SynthConfig(width=w, height=h, frames=args.frames, long_term=True)
    seeds = range(synth.TEST_SEEDS.start, synth.TEST_SEEDS.start + args.count)
    synth.long_term_events(seeds.start, cfg)                 # too few frames: say so before anything runs
    out = Path(args.out)
    data = out / "data"
    if not synth.set_is_current(data, seeds, cfg):
        synth.write_set(data, seeds, cfg)
    sequences = read_dataset("folder", data).sequences
    checkpoint = args.checkpoint or (DEFAULT_CHECKPOINT if args.model == DEFAULT_MODEL else None)
    runs = [Run(args.backend, args.model, args.precision, checkpoint=checkpoint, tracker=t, label=t) for t in TRACKERS]
    outcomes, _ = run_all(runs, sequences, out, "ope", args.workers, args.threads,
                          progress=sys.stderr.isatty() and not args.json)
    errors = [o for o in outcomes if o.error]
    if errors:
        raise InputError(f"{len(errors)} sequence run(s) failed, e.g. {errors[0].run_name} / {errors[0].seq_name}: "
                         f"{errors[0].error}")
    result = compare({run.tracker: score_run(run, sequences, out) for run in runs})
    result["config"] = {"model": args.model, "checkpoint": checkpoint, "backend": args.backend,
                        "precision": args.precision, "frames": args.frames, "size": args.size,
                        "seeds": [seeds.start, seeds.stop - 1], "synth": synth.set_request(seeds, cfg)["config"]}
    text = markdown(result)
    atomic.write_text(out / "longterm_report.json", json.dumps(result, indent=1))
    atomic.write_text(out / "longterm_report.md", text)
    print(json.dumps(result, indent=1) if args.json else text)
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack longterm-report"))

"""``siamtrack accuracy``: run backends over a dataset, write per-sequence results, score and plot them.

Protocols (pysot ``tools/test.py`` behaviour):
- ``ope`` (OTB, UAV123, LaSOT, folder, GOT-10k): initialise on frame 0 with the ground-truth box shifted
  by +0.5 px (pysot's ``get_axis_aligned_bbox`` then ``cx - (w-1)/2``), track every other frame, never
  reset. The result file has one ``x,y,w,h`` line per frame, the first being that init box.
- ``vot``: the reset protocol. A frame whose overlap with the ground truth is 0 is a failure, written as
  ``2``; the next 4 frames are skipped (``0``) and the tracker re-initialises 5 frames after the failure
  (``1``). Other lines are ``x,y,w,h`` boxes.

Layout of ``--out``: ``results/<run>/<sequence>.txt`` (+ ``<sequence>.json``: frames, seconds, failures;
+ ``<sequence>.scores.txt``: the tracker's per-frame score, ope only, for ``bench.failure_modes``),
``summary.md``, ``summary.json``, ``success.png``, ``precision.png``, ``norm_precision.png``. A sequence
whose result file already exists with one line per frame, made by the same files (``Run.fingerprint``),
is not run again (resume after an interrupt); a re-exported or re-quantized model is tracked anew.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import failure_modes, lt_metrics, metrics
from bench.runs import Run, parse_runs
from bench.sequences import FORMATS, LAYOUTS, Sequence, SequenceProblem, is_plain_name, read_dataset
from runtime import atomic
from runtime.cli_args import TRACKER_HELP, positive_int
from runtime.errors import InputError, SiamTrackError
from runtime.protocol import box_to_vot_polygon, one_pass_init_box, vot_init_box
from runtime.tracker_choice import TRACKER_CHOICES

PROTOCOLS = ("ope", "vot")


# ------------------------------------------------------------------ tracking loops

def track_ope(tracker, seq: Sequence, scores_out: list | None = None) -> tuple[np.ndarray, float]:
    """One-pass evaluation: (T, 4) boxes (row 0 = init box) and seconds spent in init/track calls.
    ``scores_out``, when given, receives each frame's ``TrackResult.score`` (NaN for the init frame)."""
    init_box = one_pass_init_box(seq.init_box)                    # pysot test.py's axis-aligned init
    boxes = np.zeros((len(seq), 4))
    seconds = 0.0
    for i in range(len(seq)):
        frame = seq.frame(i)
        t0 = time.perf_counter()
        if i == 0:
            tracker.init(frame, init_box)
            boxes[0] = init_box
            result = None
        else:
            result = tracker.track(frame)
            boxes[i] = result.box_xywh
        seconds += time.perf_counter() - t0
        if scores_out is not None:
            scores_out.append(float("nan") if result is None else float(result.score))
    return boxes, seconds


def track_vot(tracker, seq: Sequence) -> tuple[list, float, int]:
    """Reset protocol: per-frame records (code int or (4,) box), seconds, failures."""
    regions = seq.gt_regions or [box_to_vot_polygon(b) for b in seq.gt_xywh]
    records: list = []
    restart, failures, seconds = 0, 0, 0.0
    for i in range(len(seq)):
        if i < restart:
            records.append(metrics.VOT_SKIPPED)
            continue
        frame = seq.frame(i)
        t0 = time.perf_counter()
        if i == restart:
            tracker.init(frame, vot_init_box(regions[i]))
            records.append(metrics.VOT_INIT)
        else:
            box = tracker.track(frame).box_xywh
            overlap = metrics.vot_overlap(box, regions[i], (frame.shape[1], frame.shape[0]))
            if overlap > 0:
                records.append(np.asarray(box))
            else:
                records.append(metrics.VOT_FAILURE)
                restart = i + metrics.VOT_SKIP
                failures += 1
        seconds += time.perf_counter() - t0
    return records, seconds, failures


# ------------------------------------------------------------------ result files

def write_records(path: Path, records) -> None:
    """One line per frame: ``x,y,w,h`` or a single VOT code; written atomically."""
    lines = []
    for r in records:
        r = np.ravel(np.asarray(r, dtype=np.float64))
        lines.append(f"{int(r[0])}\n" if r.size == 1 else ",".join(f"{v:.4f}" for v in r) + "\n")
    atomic.write_text(path, "".join(lines))


def read_records(path: Path, n_frames: int, protocol: str):
    """Parse a result file; InputError naming the file when its length or columns are wrong.

    ope -> (T, 4) float64; vot -> list of int codes / (4,) boxes.
    """
    if not path.is_file():
        raise InputError(f"{path}: result file is missing")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = [p for p in line.replace("\t", ",").replace(" ", ",").split(",") if p]
        if not parts:
            continue
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InputError(f"{path}:{lineno}: {line!r} is not numbers") from None
        ok = len(values) == 4 or (protocol == "vot" and len(values) in (1, 8))
        if not ok:
            raise InputError(f"{path}:{lineno}: {len(values)} values, expected 4 (x,y,w,h)"
                             + (" or a 1-number VOT code" if protocol == "vot" else ""))
        rows.append(int(values[0]) if len(values) == 1 else np.array(values))
    if len(rows) != n_frames:
        raise InputError(f"{path}: {len(rows)} lines but the sequence has {n_frames} frames; delete the file "
                         "to re-run this sequence")
    return np.array(rows) if protocol == "ope" else rows


def _result_done(path: Path, n_frames: int, fingerprint: str) -> bool:
    meta = path.with_suffix(".json")
    if not path.is_file() or not meta.is_file():
        return False
    try:
        if json.loads(meta.read_text()).get("fingerprint") != fingerprint:
            return False
    except (ValueError, AttributeError):
        return False
    return sum(1 for line in path.read_text().splitlines() if line.strip()) == n_frames


# ------------------------------------------------------------------ workers

@dataclass(frozen=True)
class Task:
    run: Run
    seq: Sequence
    protocol: str
    out_dir: str
    fingerprint: str = ""


@dataclass(frozen=True)
class TaskOutcome:
    run_name: str
    seq_name: str
    error: str | None = None
    seconds: float = 0.0
    frames: int = 0


_OPEN: dict = {}
_THREADS: list[int | None] = [None]      # this process's --threads, set by _worker_init


def _worker_init(threads: int) -> None:
    # Set before any backend imports its library, so OpenMP/MKL pools start with this many threads;
    # the backend itself gets the number too (ONNX Runtime's pool ignores these variables).
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    _THREADS[0] = threads


def _tracker_for(run: Run):
    from runtime.tracker_choice import open_tracker

    if run not in _OPEN:
        _OPEN[run] = run.open(threads=_THREADS[0])
    return open_tracker(_OPEN[run], run.tracker)   # long-term without the large graph: one clear error


def run_task(task: Task) -> TaskOutcome:
    """Track one sequence with one run and write its result file; errors come back as text."""
    out = Path(task.out_dir) / "results" / task.run.name
    try:
        if not is_plain_name(task.seq.name):                 # the name becomes a file name under --out
            raise InputError(f"sequence name {task.seq.name!r} is not a plain file name; refusing to write "
                             "its results outside --out")
        tracker = _tracker_for(task.run)
        frame_scores: list = []
        if task.protocol == "vot":
            records, seconds, failures = track_vot(tracker, task.seq)
        else:
            records, seconds = track_ope(tracker, task.seq, frame_scores)
            failures = 0
        out.mkdir(parents=True, exist_ok=True)
        write_records(out / f"{task.seq.name}.txt", records)
        if frame_scores:                                     # before the .json that marks the sequence done
            failure_modes.write_scores(out / f"{task.seq.name}{failure_modes.SCORES_SUFFIX}", frame_scores)
        (out / f"{task.seq.name}.json").write_text(json.dumps(
            {"frames": len(task.seq), "seconds": seconds, "failures": failures, "fingerprint": task.fingerprint}))
        return TaskOutcome(task.run.name, task.seq.name, None, seconds, len(task.seq))
    except SiamTrackError as err:
        return TaskOutcome(task.run.name, task.seq.name, str(err))
    except Exception as err:  # a bug or a library failure: report it for this sequence, keep going
        return TaskOutcome(task.run.name, task.seq.name, f"{type(err).__name__}: {err}")


def run_all(runs: list[Run], sequences: list[Sequence], out_dir: Path, protocol: str, workers: int = 1,
            threads: int = 1, progress: bool = True) -> tuple[list[TaskOutcome], int]:
    """Run every (run, sequence) pair not yet done. Returns (outcomes of the pairs run, pairs skipped)."""
    from tqdm import tqdm

    tasks, skipped = [], 0
    for run in runs:
        fingerprint = run.fingerprint()
        for seq in sequences:
            if _result_done(out_dir / "results" / run.name / f"{seq.name}.txt", len(seq), fingerprint):
                skipped += 1
            else:
                tasks.append(Task(run, seq, protocol, str(out_dir), fingerprint))
    outcomes: list[TaskOutcome] = []
    bar = tqdm(total=len(tasks), desc="tracking", unit="seq", disable=not progress or not tasks)
    if workers <= 1:
        _worker_init(threads)
        for t in tasks:
            outcomes.append(run_task(t))
            bar.update(1)
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(threads,)) as pool:
            for outcome in pool.imap_unordered(run_task, tasks):
                outcomes.append(outcome)
                bar.update(1)
    bar.close()
    _OPEN.clear()
    return outcomes, skipped


# ------------------------------------------------------------------ scoring

def evaluate(runs: list[Run], sequences: list[Sequence], out_dir: Path, protocol: str,
             eao_edition: str = metrics.EAO_DEFAULT_EDITION) -> dict:
    """Score every run's result files. Returns the summary dict written to summary.json.

    Per run: "overall" numbers, "curves" (mean success/precision/normalised-precision curves), "sequences"
    (per-sequence numbers) and "problems" (sequences that could not be scored, with the reason).
    ``eao_edition``: the VOT edition whose (low, high) length range the EAO averages over.
    """
    summary = {"protocol": protocol, "runs": {}, "norm_precision_definitions": {
        "norm_prec_pysot": "pysot: normalised precision at threshold 0.20 (index 20 of arange(0,51)/100)"}}
    if protocol == "vot":
        low, high = metrics.EAO_RANGES[eao_edition]
        summary["eao_range"] = {"edition": eao_edition, "low": low, "high": high}
    for run in runs:
        summary["runs"][run.name] = _evaluate_run(run, sequences, out_dir, protocol, eao_edition)
    return summary


def _evaluate_run(run: Run, sequences: list[Sequence], out_dir: Path, protocol: str,
                  eao_edition: str = metrics.EAO_DEFAULT_EDITION) -> dict:
    folder = out_dir / "results" / run.name
    per_seq, problems, ope, got_ious, vot_overlaps, vot_failures = {}, [], [], [], [], []
    modes: dict[str, failure_modes.FailureModes] = {}
    eao_runs: list[metrics.VotTrajectory] = []
    lt_sequences: dict[str, lt_metrics.SequenceLT] = {}
    seconds = frames = 0.0
    for seq in sequences:
        try:
            records = read_records(folder / f"{seq.name}.txt", len(seq), protocol)
            timing = folder / f"{seq.name}.json"
            if timing.is_file():
                t = json.loads(timing.read_text())
                seconds, frames = seconds + t["seconds"], frames + t["frames"]
            if protocol == "vot":
                regions = seq.gt_regions or [metrics.xywh_to_poly(b) for b in seq.gt_xywh]
                wh = _image_wh(seq)
                overlaps, fails = metrics.vot_accuracy_robustness(records, regions, wh)
                vot_overlaps.append(overlaps)
                vot_failures.append(fails)
                eao_runs.append(metrics.vot_eao_trajectory(records, regions, wh))
                per_seq[seq.name] = {"accuracy": _nanmean(overlaps), "failures": fails}
                continue
            if seq.attributes.get("gt_first_only"):
                per_seq[seq.name] = {"note": "ground truth withheld (GOT-10k test): submit to the server"}
                continue
            scores = metrics.ope_scores(seq.gt_xywh, records, metrics.pysot_absent(seq.dataset, seq.absent))
            ope.append(scores)
            entry = scores.summary()
            scores_file = folder / f"{seq.name}{failure_modes.SCORES_SUFFIX}"
            frame_scores = failure_modes.read_scores(scores_file, len(seq))
            modes[seq.name] = failure_modes.failure_modes(seq.gt_xywh, records, frame_scores,
                                                          metrics.pysot_absent(seq.dataset, seq.absent))
            entry.update(modes[seq.name].to_dict())
            if frame_scores is not None:
                lt_sequences[seq.name] = lt_metrics.sequence_lt(seq.gt_xywh, records, frame_scores, seq.absent,
                                                                _image_wh(seq))
            if seq.dataset == "got10k":
                cover = seq.attributes.get("cover")
                visible = cover > 0 if cover is not None else ~seq.absent
                ious = metrics.got10k_ious(seq.gt_xywh, records, _image_wh(seq), visible)
                got_ious.append(ious)
                entry.update(metrics.got10k_scores([ious]))
            per_seq[seq.name] = entry
        except (SiamTrackError, ValueError) as err:
            problems.append({"sequence": seq.name, "error": str(err)})
    result = {"run": run.to_dict(), "sequences": per_seq, "problems": problems,
              "tracker_fps": frames / seconds if seconds > 0 else None}
    if protocol == "vot":
        result["overall"] = metrics.vot_summary(vot_overlaps, vot_failures) if vot_overlaps else {}
        if eao_runs:
            eao = metrics.expected_average_overlap(eao_runs, eao_edition)
            result["overall"]["eao"] = None if np.isnan(eao) else eao     # None: every sequence < low
    elif ope:
        mean = metrics.mean_ope(ope)
        result["overall"] = mean.summary()
        result["curves"] = {"success": mean.success.tolist(), "precision": mean.precision.tolist(),
                            "norm_precision": mean.norm_precision.tolist()}
        if got_ious:
            result["overall"].update(metrics.got10k_scores(got_ious))
        mode_stats = failure_modes.summarize(modes)             # mean over sequences, and its standard error
        result["overall"].update({k: v["mean"] for k, v in mode_stats.items()})
        result["failure_modes_se"] = {k: v["se"] for k, v in mode_stats.items()}
        if lt_sequences and any(np.any(seq.absent[1:]) for seq in sequences if seq.name in lt_sequences):
            _add_long_term(result, lt_sequences)
    else:
        result["overall"] = {}
    result["overall"]["sequences_scored"] = len(per_seq) - sum("note" in v for v in per_seq.values())
    return result


def _add_long_term(result: dict, lt_sequences: dict[str, lt_metrics.SequenceLT]) -> None:
    """VOT-LT precision / recall / F-score (``bench.lt_metrics``) and re-detection delay: overall (F with
    its jackknife standard error over sequences) and per sequence (at the dataset's best threshold)."""
    scores = lt_metrics.longterm_scores(list(lt_sequences.values()))
    overall = lt_metrics.summary(scores, list(lt_sequences.values()))
    threshold = overall["lt_threshold"]
    overall["lt_threshold"] = threshold if np.isfinite(threshold) else str(threshold)   # JSON has no inf
    result["overall"].update(overall)
    for (name, seq_lt), values in zip(lt_sequences.items(), scores.sequence_values()):
        delays = seq_lt.redetect_delays
        result["sequences"][name].update(values, reappearances=seq_lt.reappearances, redetected=len(delays),
                                          redetect_delay_mean=float(np.mean(delays)) if delays else None)
    result["lt_se"] = {k: lt_metrics.sequence_se(scores, k) for k in ("lt_precision", "lt_recall")}
    result["lt_se"]["lt_fscore"] = overall["lt_fscore_se"]


def _require_results(runs: list[Run], sequences: list[Sequence], out_dir: Path) -> None:
    """--evaluate-only scores existing files: a run with none of them is a mistake (wrong --out or --run
    label), not a score of 0."""
    for run in runs:
        folder = out_dir / "results" / run.name
        if not any((folder / f"{seq.name}.txt").is_file() for seq in sequences):
            raise InputError(f"--evaluate-only: no result file for run {run.name!r} in {folder} (expected "
                             f"<sequence>.txt for the {len(sequences)} sequence(s)); check --out and the run's "
                             "label=, or drop --evaluate-only to track")


def _nanmean(a) -> float | None:
    a = np.asarray(a, dtype=np.float64)
    return float(np.nanmean(a)) if np.any(~np.isnan(a)) else None


def _image_wh(seq: Sequence) -> tuple[int, int]:
    if "image_wh" in seq.attributes:
        return tuple(seq.attributes["image_wh"])
    h, w = seq.frame(0).shape[:2]
    return w, h


# ------------------------------------------------------------------ CLI

EPILOG = """\
examples:
  # two backends over OTB100, 2 worker processes, resumable
  siamtrack accuracy --format otb --dataset /data/OTB100 --out artifacts/acc-otb \\
      --run torch:r50_otb,checkpoint=model.pth --run onnxruntime:artifacts/r50_otb,precision=int8 --workers 2
  # VOT2018 with the reset protocol
  siamtrack accuracy --format vot --dataset /data/VOT2018 --run tensorrt:artifacts/r50,precision=fp16 --out artifacts/acc-vot
  # score result files that already exist (e.g. copied from pysot), without tracking
  siamtrack accuracy --format otb --dataset /data/OTB100 --out artifacts/acc-otb --run torch:r50_otb --evaluate-only
  # a self-contained demo: 3 generated sequences, random weights
  siamtrack accuracy --synth 3 --synth-frames 20 --run torch:alex --out artifacts/acc-demo
  # short-term vs long-term tracker on generated long-term sequences (the target leaves and comes back)
  siamtrack accuracy --synth 20 --synth-long-term --synth-frames 150 --out artifacts/acc-lt \
      --run torch:models/lite0/config.yaml,checkpoint=models/lite0/model.pth,tracker=short-term \
      --run torch:models/lite0/config.yaml,checkpoint=models/lite0/model.pth,tracker=long-term

--run is BACKEND:MODEL[,precision=..][,flavour=..][,checkpoint=..][,seed=..][,tracker=..][,label=..]; torch
without a checkpoint uses seeded random weights (the scores then test the pipeline, not the tracker).
Long-term measures: when the sequences have frames where the target is absent, the table adds the VOT
long-term challenge's tracking precision, recall and F-score (LT-Pr, LT-Re, LT-F: the best F over
confidence thresholds on the tracker's per-frame score; bench.lt_metrics) and the re-detection delay
(frames from the target's reappearance until the box has IoU > 0.5 with it again); per sequence and with
standard errors in summary.json.
Scores follow pysot's toolkit for every format: absent flags count for LaSOT only; normalised precision is
pysot's value at 0.20. GOT-10k AO/SR pool all frames, as its toolkit does; VOT gives EAO (pysot's
eao_benchmark; VOT2016/2017/2019 ranges when the dataset folder is named so, else VOT2018), accuracy, robustness.
Dataset layouts:
""" + "".join(f"  {k:7s} {v}\n" for k, v in LAYOUTS.items())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siamtrack accuracy", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, help="a backend/model to evaluate (repeatable)")
    p.add_argument("--tracker", default="auto", choices=TRACKER_CHOICES,
                   help="the tracker of runs that do not say tracker=... . " + TRACKER_HELP)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="dataset root on disk (see layouts below)")
    src.add_argument("--synth", type=int, metavar="N", help="generate N synthetic test sequences instead")
    p.add_argument("--format", choices=FORMATS, default="folder", help="layout of --dataset (default: folder)")
    p.add_argument("--split", help="GOT-10k split (val/test) when --dataset is the GOT-10k root")
    p.add_argument("--sequences", nargs="+", help="only these sequence names")
    p.add_argument("--protocol", choices=PROTOCOLS, help="default: vot for --format vot, else ope")
    p.add_argument("--out", required=True, help="output folder (results/, summary, plots)")
    p.add_argument("--workers", type=positive_int, default=1, help="processes tracking sequences in parallel (spawn)")
    p.add_argument("--threads", type=positive_int, default=1, help="intra-op threads per worker (pysot tests with 1)")
    p.add_argument("--synth-frames", type=int, default=60, help="frames per generated sequence (default 60)")
    p.add_argument("--synth-size", default="320x240", help="WxH of generated frames")
    p.add_argument("--synth-long-term", action="store_true",
                   help="generated sequences where the target leaves the view or is fully occluded for a "
                        "while and reappears elsewhere (bench.synth long-term events; use >= 100 frames)")
    p.add_argument("--evaluate-only", action="store_true", help="score existing result files, track nothing")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (table and JSON only)")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout instead of the table")
    return p


def _load_sequences(args, out_dir: Path) -> tuple[list[Sequence], list[SequenceProblem]]:
    if args.synth is not None:
        from bench.synth import TEST_SEEDS, SynthConfig, write_sequence

        try:
            w, h = (int(v) for v in args.synth_size.lower().split("x"))
        except ValueError:
            raise InputError(f"--synth-size {args.synth_size!r}: expected WxH, e.g. 320x240") from None
        cfg = SynthConfig(width=w, height=h, frames=args.synth_frames, long_term=args.synth_long_term)
        data = out_dir / ("data-long-term" if args.synth_long_term else "data")
        for seed in range(TEST_SEEDS.start, TEST_SEEDS.start + args.synth):
            folder = data / f"synth-{seed:07d}"
            if not (folder / "groundtruth.txt").is_file():
                write_sequence(seed, folder, cfg)
        load = read_dataset("folder", data, names=args.sequences)
    else:
        load = read_dataset(args.format, args.dataset, split=args.split, names=args.sequences)
    return load.sequences, load.problems


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runs = [dataclasses.replace(r, tracker=args.tracker) if r.tracker == "auto" else r for r in parse_runs(args.run)]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol = args.protocol or ("vot" if args.format == "vot" and args.synth is None else "ope")
    sequences, load_problems = _load_sequences(args, out_dir)
    outcomes: list[TaskOutcome] = []
    skipped = 0
    if args.evaluate_only:
        _require_results(runs, sequences, out_dir)
    else:
        outcomes, skipped = run_all(runs, sequences, out_dir, protocol, args.workers, args.threads,
                                    progress=sys.stderr.isatty() or not args.json)
    edition = metrics.eao_edition(None if args.synth is not None else args.dataset)
    summary = evaluate(runs, sequences, out_dir, protocol, edition)
    summary["dataset"] = {"format": "synth" if args.synth is not None else args.format,
                          "root": str(out_dir / "data") if args.synth is not None else args.dataset,
                          "sequences": len(sequences),
                          "load_problems": [{"sequence": p.name, "error": p.message} for p in load_problems]}
    summary["run_errors"] = [{"run": o.run_name, "sequence": o.seq_name, "error": o.error}
                             for o in outcomes if o.error]
    summary["skipped_already_done"] = skipped
    from bench import report

    plots = report.write_accuracy_report(summary, out_dir, plots=not args.no_plots)
    if args.json:
        print(json.dumps(summary, indent=1, default=report.json_default))
    else:
        print(report.accuracy_markdown(summary))
        print("\nwritten: " + ", ".join(str(p) for p in [out_dir / "summary.md", out_dir / "summary.json", *plots]))
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack accuracy"))

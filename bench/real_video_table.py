"""The before/after table of the real-video set: models against each other and a still box, per sequence.

For each run (a model with the tracker values its config or export carries) and for the static-box
baseline (frame 0's box held still, never reporting a loss): AUC, precision@20, the median scale error
and the distractor fraction (``bench.failure_modes``) on every sequence of one split, their means with
the standard error over sequences, and for every run after the first the paired difference to the first
run: the mean of the per-sequence differences and its standard error ``std(d, ddof=1) / sqrt(n)``.
Pairing removes what the sequences share (a hard clip is hard for both models), so it is the error that
says whether one model beats another on these sequences.

This is the *final* table: the held-out split is scored here once, after every choice was made on the
tuning split (``bench.tune_tracker``), never to make one.

    python -m bench.real_video_table --split heldout --run old=onnxruntime:artifacts/lite0 \\
        --run new=torch:artifacts/new/config.yaml,checkpoint=artifacts/new/model.pth --out runs/heldout.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from runtime.errors import InputError

COLUMNS = ("auc", "prec20", "scale_error", "distractor")


def split_sequences(split: str, root: str | Path | None = None):
    from bench.real_video import SET_ROOT, load_splits
    from bench.sequences import read_dataset

    root = Path(root) if root else SET_ROOT
    splits = load_splits(root)
    if split not in splits:
        raise InputError(f"--split {split}: the set has the splits {sorted(splits)}")
    loaded = read_dataset("otb", root, names=splits[split])
    if loaded.problems or len(loaded.sequences) != len(splits[split]):
        raise InputError(f"{root}: could not read {splits[split]} ({'; '.join(p.message for p in loaded.problems)})")
    return loaded.sequences


def static_row(sequences) -> dict:
    """The still box's numbers per sequence (score 1 on every frame: it never says it lost the target)."""
    from bench.failure_modes import failure_modes, static_boxes
    from bench.metrics import ope_scores

    out = {c: {} for c in COLUMNS}
    for seq in sequences:
        boxes = static_boxes(seq.gt_xywh)
        ope = ope_scores(seq.gt_xywh, boxes)
        fm = failure_modes(seq.gt_xywh, boxes, np.ones(len(seq)))
        out["auc"][seq.name], out["prec20"][seq.name] = ope.auc, ope.prec20
        out["scale_error"][seq.name], out["distractor"][seq.name] = fm.scale_error, fm.distractor_fraction
    return out


def run_row(run_text: str, sequences, threads: int = 1) -> dict:
    from bench.runs import parse_run
    from bench.tune_tracker import score_cell

    backend = parse_run(run_text).open(threads=threads)
    cell = score_cell(backend, backend.tracker_config, {}, sequences)
    return {"auc": cell.auc, "prec20": cell.prec20, "scale_error": cell.scale_error, "distractor": cell.distractor,
            "tracker": dataclasses.asdict(backend.tracker_config)}


def mean_se(values) -> tuple[float, float | None]:
    v = np.asarray(list(values), dtype=np.float64)
    return float(v.mean()), (float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None)


def summarise(rows: dict) -> dict:
    """Means +- SE per row and column; paired differences of every row to the first one."""
    names = list(rows)
    first = rows[names[0]]
    out = {}
    for name, row in rows.items():
        entry = {}
        for c in COLUMNS:
            mean, se = mean_se(row[c].values())
            entry[c] = {"mean": mean, "se": se}
            if name != names[0]:
                d = [row[c][s] - first[c][s] for s in row[c]]
                dm, dse = mean_se(d)
                entry[c]["paired_diff_to_" + names[0]] = {"mean": dm, "se": dse}
        out[name] = entry
    return out


def markdown(rows: dict, summary: dict) -> str:
    names = list(rows)
    seqs = list(rows[names[0]]["auc"])
    lines = []
    for c in COLUMNS:
        lines.append(f"\n**{c}**\n")
        lines.append("| run | " + " | ".join(seqs) + " | mean +- SE | paired diff to " + names[0] + " |")
        lines.append("|" + "---|" * (len(seqs) + 3))
        for name in names:
            s = summary[name][c]
            se = f"{s['se']:.3f}" if s["se"] is not None else "-"
            diff = s.get("paired_diff_to_" + names[0])
            dtext = f"{diff['mean']:+.3f} +- {diff['se']:.3f}" if diff else ""
            lines.append(f"| {name} | " + " | ".join(f"{rows[name][c][q]:.3f}" for q in seqs)
                         + f" | {s['mean']:.3f} +- {se} | {dtext} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.real_video_table", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True,
                   help="LABEL=RUN, RUN as `siamtrack accuracy --run` takes it (repeatable; the first is the "
                        "reference of the paired differences)")
    p.add_argument("--split", default="heldout", help="a split of splits.json (default heldout)")
    p.add_argument("--dataset", help="real-video set root (default bench/data/real_video)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write rows and summary to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    from runtime import atomic

    args = build_parser().parse_args(argv)
    sequences = split_sequences(args.split, args.dataset)
    rows = {}
    for item in args.run:
        label, sep, text = item.partition("=")
        if not sep or not label or not text:
            raise InputError(f"--run {item}: expected LABEL=RUN, e.g. old=onnxruntime:artifacts/lite0")
        rows[label] = run_row(text, sequences, args.threads)
    rows["static box"] = static_row(sequences)
    summary = summarise({k: {c: v[c] for c in COLUMNS} for k, v in rows.items()})
    print(markdown(rows, summary))
    if args.out:
        atomic.write_text(args.out, json.dumps({"split": args.split, "runs": args.run, "rows": rows,
                                                "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "python -m bench.real_video_table"))

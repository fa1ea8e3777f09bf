"""Tune the tracker's PENALTY_K / WINDOW_INFLUENCE / LR for one model on the real-video TUNING split.

pysot tunes these three values per model (its ``tools/tune.py`` searches them on a validation set);
they decide how much a scale or aspect change costs, how strongly the cosine window holds the box near
its last position, and how fast the box size follows the network. A model trained on other data needs
other values, so the shipped defaults (pysot's) are only a starting point.

The search is a small grid, scored by the mean success AUC over the tuning sequences of
``bench/data/real_video`` (``splits.json``), with the median scale error as the tie-break. With only
four tuning sequences a single best cell can be a spike of luck, so the recommendation is the cell whose
own score and its grid neighbours' (one step along each axis) have the best mean: a plateau, not a peak.
The held-out split is refused: it is only scored once, for the final before/after table.

    python -m bench.tune_tracker --run onnxruntime:artifacts/lite0 --out runs/tune-lite0.json
    python -m bench.tune_tracker --run torch:models/lite0/config.yaml,checkpoint=models/lite0/model.pth \\
        --penalty-k 0.04,0.1 --window-influence 0.44 --lr 0.2,0.4
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.errors import InputError

DEFAULT_GRID = {
    "penalty_k": (0.04, 0.1, 0.2),
    "window_influence": (0.3, 0.44),
    "lr": (0.05, 0.1, 0.2, 0.4),
}
AXES = tuple(DEFAULT_GRID)


@dataclass(frozen=True)
class CellScore:
    """One grid cell: the values, per-sequence numbers, and their means over the sequences."""

    values: dict                # {"penalty_k": .., "window_influence": .., "lr": ..}
    auc: dict                   # {sequence: AUC}
    prec20: dict
    scale_error: dict           # median |log area ratio| per sequence
    distractor: dict            # distractor fraction per sequence

    @property
    def mean_auc(self) -> float:
        return float(np.mean(list(self.auc.values())))

    @property
    def mean_scale_error(self) -> float:
        return float(np.mean(list(self.scale_error.values())))

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), mean_auc=self.mean_auc, mean_scale_error=self.mean_scale_error)


def tuning_sequences(root: str | Path | None = None, split: str = "tuning"):
    """The named split's sequences of the real-video set, frames decoded once and kept in memory."""
    from bench.real_video import SET_ROOT, load_splits
    from bench.sequences import read_dataset

    if split != "tuning":
        raise InputError(f"--split {split}: only the tuning split may be used to choose tracker values; the "
                         "held-out split is scored once, for the final before/after table")
    root = Path(root) if root else SET_ROOT
    names = load_splits(root)[split]
    loaded = read_dataset("otb", root, names=names)
    if loaded.problems or len(loaded.sequences) != len(names):
        raise InputError(f"{root}: could not read the tuning sequences {names} "
                         f"({'; '.join(p.message for p in loaded.problems)})")
    return [dataclasses.replace(s, frames=[s.frame(i) for i in range(len(s))]) for s in loaded.sequences]


# Zoom applied to each tuning sequence for its "zoomed" variant: linear size factor reached at the last
# frame (> 1 zooms in, < 1 out). The four tuning targets keep their size within about +-30 % of area, so
# on them alone a tracker that never changes its box size scores best; these variants put real content
# through a known scale change, so a low LR has to show that it still follows size.
ZOOMS = {"carphone-1": 1 / 1.8, "carphone-2": 1.8, "bikes_brakelight": 1.8, "bikes_cyclist": 1 / 1.8}


def zoomed(seq, factor: float):
    """``seq`` with a steady zoom about the target's centre: frame t is scaled by ``factor ** (t / (T - 1))``
    around the centre of its ground-truth box (the target keeps its path, its size changes; frame size
    kept, border filled with the frame's mean), boxes mapped with it."""
    import cv2

    gt = np.asarray(seq.gt_xywh, dtype=np.float64)
    frames, boxes = [], np.empty_like(gt)
    n = len(seq)
    for t in range(n):
        z = factor ** (t / max(n - 1, 1))
        img = seq.frame(t)
        cx, cy = gt[t, 0] + gt[t, 2] / 2, gt[t, 1] + gt[t, 3] / 2
        m = np.array([[z, 0, (1 - z) * cx], [0, z, (1 - z) * cy]])
        mean = tuple(float(v) for v in img.mean(axis=(0, 1)))
        frames.append(cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=mean))
        x, y, w, h = gt[t]
        boxes[t] = (z * x + (1 - z) * cx, z * y + (1 - z) * cy, z * w, z * h)
    # clip to the frame, as the stored ground truth is (a box may leave the view when zooming in)
    height, width = frames[0].shape[:2]
    x1, y1 = np.clip(boxes[:, 0], 0, width), np.clip(boxes[:, 1], 0, height)
    x2, y2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width), np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
    boxes = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    return dataclasses.replace(seq, name=f"{seq.name}-zoom{factor:.2f}", frames=frames, gt_xywh=boxes)


def with_zoomed_variants(sequences):
    return list(sequences) + [zoomed(s, ZOOMS[s.name]) for s in sequences if s.name in ZOOMS]


def score_cell(backend, base_config, values: dict, sequences) -> CellScore:
    """Track every sequence once (one-pass) with the tracker values ``values`` and score it."""
    from bench.accuracy import track_ope
    from bench.failure_modes import failure_modes
    from bench.metrics import ope_scores
    from runtime.tracker import SiamRPNTracker

    config = dataclasses.replace(base_config, **values)
    auc, prec, scale, distractor = {}, {}, {}, {}
    for seq in sequences:
        tracker = SiamRPNTracker(backend, config)
        scores: list = []
        boxes, _ = track_ope(tracker, seq, scores)
        ope = ope_scores(seq.gt_xywh, boxes)
        fm = failure_modes(seq.gt_xywh, boxes, np.asarray(scores))
        auc[seq.name], prec[seq.name] = ope.auc, ope.prec20
        scale[seq.name], distractor[seq.name] = fm.scale_error, fm.distractor_fraction
    return CellScore(dict(values), auc, prec, scale, distractor)


def plateau_scores(cells: list[CellScore], grid: dict) -> list[float]:
    """Per cell: the mean AUC of the cell and its neighbours one grid step away along each axis; a
    neighbour beyond the grid's edge counts as the cell itself, so edge cells average as many values
    as inner ones (and a one-sided neighbourhood does not favour the edges)."""
    index = {tuple(grid[a].index(c.values[a]) for a in AXES): c.mean_auc for c in cells}
    out = []
    for c in cells:
        key = tuple(grid[a].index(c.values[a]) for a in AXES)
        near = [index[key]]
        for axis in range(len(AXES)):
            if len(grid[AXES[axis]]) < 2:              # an axis that is not searched has no neighbours
                continue
            for step in (-1, 1):
                other = list(key)
                other[axis] += step
                near.append(index.get(tuple(other), index[key]))
        out.append(float(np.mean(near)))
    return out


def search(backend, grid: dict, sequences, progress=None) -> list[CellScore]:
    base = backend.tracker_config
    cells = []
    combos = list(itertools.product(*(grid[a] for a in AXES)))
    for n, combo in enumerate(combos, 1):
        cells.append(score_cell(backend, base, dict(zip(AXES, combo)), sequences))
        if progress:
            c = cells[-1]
            progress(f"[{n}/{len(combos)}] " + " ".join(f"{a}={v}" for a, v in c.values.items())
                     + f"  AUC {c.mean_auc:.3f}  scale err {c.mean_scale_error:.2f}")
    return cells


def recommend(cells: list[CellScore], grid: dict) -> dict:
    """The plateau choice (best neighbourhood-mean AUC, then lower scale error) and the raw best cell."""
    plateau = plateau_scores(cells, grid)
    order = sorted(range(len(cells)), key=lambda i: (-round(plateau[i], 3), cells[i].mean_scale_error))
    raw = max(range(len(cells)), key=lambda i: (round(cells[i].mean_auc, 3), -cells[i].mean_scale_error))
    return {"plateau": dict(cells[order[0]].values, neighbourhood_auc=plateau[order[0]],
                            mean_auc=cells[order[0]].mean_auc),
            "raw_best": dict(cells[raw].values, mean_auc=cells[raw].mean_auc)}


def markdown(cells: list[CellScore], grid: dict) -> str:
    plateau = plateau_scores(cells, grid)
    names = list(cells[0].auc)
    head = "| penalty_k | window | lr | mean AUC | neighbourhood AUC | mean scale err | " + " | ".join(names) + " |"
    rows = [head, "|" + "---|" * (6 + len(names))]
    for c, p in sorted(zip(cells, plateau), key=lambda t: -t[0].mean_auc):
        v = c.values
        rows.append(f"| {v['penalty_k']} | {v['window_influence']} | {v['lr']} | {c.mean_auc:.3f} | {p:.3f} | "
                    f"{c.mean_scale_error:.2f} | " + " | ".join(f"{c.auc[n]:.3f}" for n in names) + " |")
    return "\n".join(rows)


def _floats(text: str) -> tuple:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{text!r}: expected comma-separated numbers, e.g. 0.04,0.1,0.2") from None
    if not values:
        raise InputError("an empty list of values")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.tune_tracker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="onnxruntime:artifacts/lite0",
                   help="the model, as `siamtrack accuracy --run` takes it (default onnxruntime:artifacts/lite0)")
    p.add_argument("--dataset", help="real-video set root (default bench/data/real_video)")
    p.add_argument("--split", default="tuning", help="only 'tuning' is accepted (the held-out split is refused)")
    for axis, values in DEFAULT_GRID.items():
        p.add_argument("--" + axis.replace("_", "-"), default=",".join(str(v) for v in values),
                       help=f"grid values (default {','.join(str(v) for v in values)})")
    p.add_argument("--no-zoom", action="store_true",
                   help="score the tuning sequences only, without their zoomed variants (see ZOOMS)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the backend (default 1)")
    p.add_argument("--out", help="write every cell's numbers and the recommendation to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    from bench.runs import parse_run
    from runtime import atomic

    args = build_parser().parse_args(argv)
    grid = {axis: _floats(getattr(args, axis)) for axis in AXES}
    sequences = tuning_sequences(args.dataset, args.split)
    if not args.no_zoom:
        sequences = with_zoomed_variants(sequences)
    backend = parse_run(args.run).open(threads=args.threads)
    cells = search(backend, grid, sequences, progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(markdown(cells, grid))
    choice = recommend(cells, grid)
    print(json.dumps(choice, indent=1))
    if args.out:
        atomic.write_text(args.out, json.dumps({"run": args.run, "grid": grid, "sequences": [s.name for s in sequences],
                                                "cells": [c.to_dict() for c in cells], "recommendation": choice},
                                               indent=1))
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "python -m bench.tune_tracker"))

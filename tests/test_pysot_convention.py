"""Every dataset format, read from disk and scored by ``siamtrack accuracy``'s scorer, gives pysot's
OPEBenchmark numbers: absent flags count for LaSOT only; a NaN ground-truth row (UAV123) is a miss for
success and a *hit* for precision (pysot's quirk), with every frame in the denominator.

Each case is 4 frames of 100x100 with a 20x20 target; the result is perfect except where noted, so the
expected precision@20 is counted by hand.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import accuracy
from bench.runs import Run
from bench.sequences import read_dataset

BOX = [30.0, 30.0, 20.0, 20.0]
FAR = [80.0, 80.0, 20.0, 20.0]            # centre 70.7 px away: a miss at 20 px, IoU 0
NAN = [float("nan")] * 4


def _frames(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), np.zeros((100, 100, 3), np.uint8))


def _rows(rows) -> str:
    return "".join(",".join("NaN" if np.isnan(v) else f"{v:g}" for v in r) + "\n" for r in rows)


def _write(fmt: str, root: Path, gt, flags=None) -> tuple[Path, str]:
    """Lay out one 4-frame sequence in format ``fmt``; ``flags``: per-frame 0/1 absent (occluded)."""
    flags = flags or [0] * len(gt)
    if fmt == "otb":
        _frames(root / "Seq" / "img", [f"{i:04d}.jpg" for i in range(1, len(gt) + 1)])
        (root / "Seq" / "groundtruth_rect.txt").write_text(_rows(gt))
        return root, "Seq"
    if fmt == "uav123":
        _frames(root / "data_seq" / "UAV123" / "seq", [f"{i:06d}.jpg" for i in range(1, len(gt) + 1)])
        (root / "anno" / "UAV123").mkdir(parents=True)
        (root / "anno" / "UAV123" / "seq.txt").write_text(_rows(gt))
        return root, "seq"
    if fmt == "lasot":
        seq = root / "cat" / "cat-1"
        _frames(seq / "img", [f"{i:08d}.jpg" for i in range(1, len(gt) + 1)])
        (seq / "groundtruth.txt").write_text(_rows(gt))
        (seq / "full_occlusion.txt").write_text(",".join(map(str, flags)))
        (seq / "out_of_view.txt").write_text(",".join("0" * len(gt)))
        return root, "cat-1"
    if fmt == "got10k":
        seq = root / "val" / "GOT-10k_Val_000001"
        _frames(seq, [f"{i:08d}.jpg" for i in range(1, len(gt) + 1)])
        (seq / "groundtruth.txt").write_text(_rows(gt))
        (seq / "absence.label").write_text("".join(f"{f}\n" for f in flags))
        (seq / "cover.label").write_text("".join(f"{0 if f else 8}\n" for f in flags))
        return root / "val", "GOT-10k_Val_000001"
    if fmt == "folder":
        seq = root / "seq"
        _frames(seq / "img", [f"{i:08d}.jpg" for i in range(1, len(gt) + 1)])
        (seq / "groundtruth.txt").write_text(_rows(gt))
        (seq / "absent.txt").write_text("".join(f"{f}\n" for f in flags))
        return root, "seq"
    raise AssertionError(fmt)


def _score(fmt: str, root: Path, name: str, pred, tmp_path: Path) -> dict:
    seqs = read_dataset(fmt, root).sequences
    assert [s.name for s in seqs] == [name]
    run = Run("torch", "alex", label="r")
    out = tmp_path / "out"
    (out / "results" / "r").mkdir(parents=True)
    accuracy.write_records(out / "results" / "r" / f"{name}.txt", np.array(pred))
    summary = accuracy.evaluate([run], seqs, out, "ope")
    json.dumps(summary, default=float)
    return summary["runs"]["r"]["overall"]


# (format, ground truth, absent flags, result, expected success AUC, expected precision@20)
# success AUC of one perfect frame = 20/21 (IoU 1 > t for t < 1), so k perfect frames of 4 give k/4 * 20/21.
CASES = [
    ("otb", [BOX] * 4, None, [BOX, BOX, BOX, FAR], 3 / 4 * 20 / 21, 3 / 4),
    # NaN row at frame 1: pysot scores it as a success miss and a precision *hit*; 4 frames counted
    ("uav123", [BOX, NAN, BOX, BOX], None, [BOX, BOX, BOX, FAR], 2 / 4 * 20 / 21, 3 / 4),
    # LaSOT: the occluded frame 1 is dropped from both trajectories, the denominator stays 4
    ("lasot", [BOX] * 4, [0, 1, 0, 0], [BOX] * 4, 3 / 4 * 20 / 21, 3 / 4),
    # pysot applies no absent flags outside LaSOT: every frame is scored
    ("got10k", [BOX] * 4, [0, 1, 0, 0], [BOX] * 4, 20 / 21, 1.0),
    ("folder", [BOX] * 4, [0, 1, 0, 0], [BOX] * 4, 20 / 21, 1.0),
]


@pytest.mark.parametrize("fmt, gt, flags, pred, auc, prec20", CASES, ids=[c[0] for c in CASES])
def test_reader_and_scorer_give_pysots_numbers(fmt, gt, flags, pred, auc, prec20, tmp_path):
    root, name = _write(fmt, tmp_path / "data", gt, flags)
    overall = _score(fmt, root, name, pred, tmp_path)
    assert overall["auc"] == pytest.approx(auc, abs=1e-12)
    assert overall["prec20"] == pytest.approx(prec20, abs=1e-12)


# ------------------------------------------------------------------ pysot's OPEBenchmark, dev only

class _Video:
    def __init__(self, name, gt, pred, absent=None):
        self.name, self.gt_traj, self.pred_trajs = name, gt, {"ours": pred}
        if absent is not None:                   # pysot's LaSOT json: 1 = target present
            self.absent = np.array(absent, np.int8)


@pytest.mark.parametrize("fmt", ["uav123", "lasot", "otb"])
def test_reader_and_scorer_equal_pysot_ope_benchmark_on_random_sequences(fmt, tmp_path):
    from test_eao import pysot_toolkit_module

    ope = pysot_toolkit_module("ope_benchmark")
    rng = np.random.default_rng({"uav123": 1, "lasot": 2, "otb": 3}[fmt])
    n = 40
    gt = np.column_stack([rng.uniform(5, 60, n), rng.uniform(5, 60, n), rng.uniform(8, 30, n),
                          rng.uniform(8, 30, n)]).round(2)           # exact through the text file
    flags = (rng.random(n) < 0.2).astype(int)
    flags[0] = 0
    if fmt == "uav123":
        gt[flags == 1] = np.nan                  # UAV123 marks a missing target with a NaN row
    pred = gt + rng.normal(0, 8, gt.shape)
    pred[0] = gt[0]
    pred = np.nan_to_num(pred, nan=40.0)
    pred[:, 2:] = np.abs(pred[:, 2:]) + 1
    root, name = _write(fmt, tmp_path / "data", gt.tolist(), flags.tolist())
    ours = _score(fmt, root, name, pred.round(4), tmp_path)
    video = _Video(name, gt, pred.round(4), 1 - flags if fmt == "lasot" else None)
    bench = ope.OPEBenchmark([video])
    success = np.mean(list(bench.eval_success("ours")["ours"].values())[0])
    prec = list(bench.eval_precision("ours")["ours"].values())[0][20]
    norm = list(bench.eval_norm_precision("ours")["ours"].values())[0][20]
    assert ours["auc"] == pytest.approx(success, abs=1e-12)
    assert ours["prec20"] == pytest.approx(prec, abs=1e-12)
    assert ours["norm_prec_pysot"] == pytest.approx(norm, abs=1e-12)

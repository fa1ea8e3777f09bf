"""siamtrack accuracy: end to end on generated sequences, resume, bad input per sequence, VOT resets.

The tracking tests use the AlexNet config with seeded random weights (the smallest model) on a few short
sequences, so they check the pipeline, not tracking quality.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import accuracy, metrics, report
from bench.sequences import Sequence, read_dataset
from bench.synth import SynthConfig, write_sequence



def _need_torch():
    pytest.importorskip("torch", reason="the tracking runs use the PyTorch backend")


def _png_ok(path: Path) -> bool:
    img = cv2.imread(str(path))
    return img is not None and img.shape[0] >= 300 and img.shape[1] >= 400 and img.std() > 5


@pytest.mark.slow
def test_synth_run_with_two_workers_writes_results_table_and_plots_then_resumes(tmp_path):
    _need_torch()
    out = tmp_path / "acc"
    args = ["--synth", "3", "--synth-frames", "6", "--synth-size", "320x240", "--run", "torch:alex",
            "--out", str(out), "--workers", "2"]
    assert accuracy.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"]["torch-alex-fp32-random0"]
    assert run["overall"]["sequences_scored"] == 3 and not run["problems"] and not summary["run_errors"]
    assert 0.0 <= run["overall"]["auc"] <= 1.0
    assert "| torch-alex-fp32-random0 (random weights) |" in (out / "summary.md").read_text()
    for name in ("success.png", "precision.png", "norm_precision.png"):
        assert _png_ok(out / name)
    seqs = read_dataset("folder", out / "data").sequences
    for seq in seqs:
        boxes = np.loadtxt(out / "results" / "torch-alex-fp32-random0" / f"{seq.name}.txt", delimiter=",")
        assert boxes.shape == (6, 4)
        # first line: pysot's init box, the ground truth shifted by half a pixel (4-decimal file)
        np.testing.assert_allclose(boxes[0], seq.gt_xywh[0] + [0.5, 0.5, 0, 0], atol=1e-4)
    stamp = {p: p.stat().st_mtime_ns for p in (out / "results").rglob("*.txt")}
    assert accuracy.main(args) == 0                          # resume: everything is already done
    again = json.loads((out / "summary.json").read_text())
    assert again["skipped_already_done"] == 3
    assert {p: p.stat().st_mtime_ns for p in (out / "results").rglob("*.txt")} == stamp


@pytest.mark.slow
def test_bad_sequences_are_reported_and_the_good_one_is_tracked(tmp_path):
    _need_torch()
    data = tmp_path / "data"
    cfg = SynthConfig(width=160, height=120, frames=4)
    write_sequence(1_000_010, data / "good", cfg)
    for name in ("missing_frame", "bad_columns", "bad_nan"):
        shutil.copytree(data / "good", data / name)
    (data / "missing_frame" / "img" / "00000002.jpg").unlink()
    gt = (data / "good" / "groundtruth.txt").read_text().splitlines()
    (data / "bad_columns" / "groundtruth.txt").write_text("\n".join(gt[:2] + ["1,2,3"] + gt[3:]) + "\n")
    (data / "bad_nan" / "groundtruth.txt").write_text("\n".join(gt[:3] + ["1,nan,3,4"]) + "\n")
    out = tmp_path / "acc"
    assert accuracy.main(["--dataset", str(data), "--run", "torch:alex", "--out", str(out), "--no-plots"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    problems = {p["sequence"]: p["error"] for p in summary["dataset"]["load_problems"]}
    assert set(problems) == {"missing_frame", "bad_columns", "bad_nan"}
    assert "00000002.jpg is missing" in problems["missing_frame"]
    assert summary["runs"]["torch-alex-fp32-random0"]["overall"]["sequences_scored"] == 1
    md = (out / "summary.md").read_text()
    assert "## Problems" in md and "bad_nan" in md


def test_evaluate_only_scores_existing_results_and_reports_a_wrong_length_file(tmp_path):
    data = tmp_path / "data"
    cfg = SynthConfig(width=160, height=120, frames=6, occlusion=False)   # no absent frames
    for seed in (1_000_020, 1_000_021):
        write_sequence(seed, data / f"s{seed}", cfg)
    seqs = read_dataset("folder", data).sequences
    out = tmp_path / "acc"
    for label, noise in (("perfect", 0.0), ("jitter", 6.0)):
        folder = out / "results" / label
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for seq in seqs:
            boxes = seq.gt_xywh + np.concatenate([rng.normal(0, noise, (len(seq), 2)), np.zeros((len(seq), 2))], 1)
            accuracy.write_records(folder / f"{seq.name}.txt", boxes)
    bad = out / "results" / "jitter" / f"{seqs[1].name}.txt"
    bad.write_text("".join(bad.read_text().splitlines(True)[:-1]))        # one line short
    args = ["--dataset", str(data), "--out", str(out), "--evaluate-only",
            "--run", "torch:alex,label=perfect", "--run", "torch:alex,label=jitter"]
    assert accuracy.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    perfect, jitter = summary["runs"]["perfect"], summary["runs"]["jitter"]
    # boxes equal to the ground truth: IoU 1 beats every threshold but 1.0 (strict >), written to 4 decimals
    assert perfect["overall"]["auc"] == pytest.approx(20 / 21, abs=1e-9)
    assert perfect["overall"]["prec20"] == 1.0 and perfect["overall"]["sequences_scored"] == 2
    assert jitter["overall"]["sequences_scored"] == 1
    assert "5 lines but the sequence has 6 frames" in jitter["problems"][0]["error"]
    assert _png_ok(out / "success.png") and _png_ok(out / "precision.png")
    (out / "success.png").unlink()
    assert report.main([str(out / "summary.json"), "--plots"]) == 0      # re-render from the JSON alone
    assert _png_ok(out / "success.png")


class _ScriptedTracker:
    """Returns preset boxes: tests the reset protocol's bookkeeping, not a backend."""

    def __init__(self, boxes):
        self.boxes, self.inits, self.i = boxes, [], 0

    def init(self, frame, box):
        self.inits.append(self.i)

    def track(self, frame):
        self.i += 1
        box = self.boxes[self.i]

        class R:
            box_xywh = np.asarray(box, dtype=np.float64)
        return R()


def test_vot_protocol_marks_failure_skips_four_and_reinitialises_five_frames_later():
    gt = np.array([[10, 10, 20, 20.]] * 12)
    frames = [np.zeros((100, 100, 3), np.uint8)] * 12
    seq = Sequence("v", frames, gt, np.zeros(12, bool), dataset="vot")
    far = [80, 80, 5, 5]
    # track() calls in order: frames 1,2,3 (3 fails), then after re-init at 8: frames 9,10,11
    tracker = _ScriptedTracker([None, gt[1], gt[2], far, gt[9], gt[10], gt[11]])
    records, _, failures = accuracy.track_vot(tracker, seq)
    codes = [r if np.size(r) == 1 else "box" for r in records]
    assert codes == [1, "box", "box", 2, 0, 0, 0, 0, 1, "box", "box", "box"]
    assert failures == 1
    overlaps, fails = metrics.vot_accuracy_robustness(records, [metrics.xywh_to_poly(b) for b in gt], (100, 100))
    assert fails == 1 and np.all(np.isnan(overlaps))       # every box frame is inside a 10-frame burn-in


def test_got10k_val_results_get_ao_and_success_rates(tmp_path):
    root = tmp_path / "val"
    boxes = np.array([[10, 10, 20, 20.], [12, 10, 20, 20.], [30, 30, 20, 20.]])
    for name in ("GOT-10k_Val_000001", "GOT-10k_Val_000002"):
        seq_dir = root / name
        seq_dir.mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(seq_dir / f"{i + 1:08d}.jpg"), np.zeros((64, 64, 3), np.uint8))
        accuracy.write_records(seq_dir / "groundtruth.txt", boxes)
        (seq_dir / "cover.label").write_text("8\n8\n8\n" if name.endswith("1") else "8\n8\n0\n")
    out = tmp_path / "acc"
    res = out / "results" / "r"
    res.mkdir(parents=True)
    pred = boxes.copy()
    pred[2] = [40, 40, 20, 20]          # frame 2: 10x10 overlap -> IoU 100 / 700
    for name in ("GOT-10k_Val_000001", "GOT-10k_Val_000002"):
        accuracy.write_records(res / f"{name}.txt", pred)
    args = ["--format", "got10k", "--dataset", str(root), "--out", str(out), "--evaluate-only",
            "--run", "torch:alex,label=r", "--no-plots"]
    assert accuracy.main(args) == 0
    overall = json.loads((out / "summary.json").read_text())["runs"]["r"]["overall"]
    # pooled frames: seq 1 frames 1, 2 (IoU 1, 1/7); seq 2 frame 1 only (frame 2 has cover 0)
    assert overall["ao"] == pytest.approx((1 + 1 / 7 + 1) / 3, abs=1e-9)
    assert overall["sr50"] == pytest.approx(2 / 3) and overall["sr75"] == pytest.approx(2 / 3)


def test_run_fingerprint_follows_the_bytes_of_its_own_precision_only(tmp_path):
    from bench.runs import parse_run

    for name in ("template.int8.standard.onnx", "search.int8.standard.onnx", "search.fp32.standard.onnx"):
        (tmp_path / name).write_bytes(b"graph " + name.encode())
    int8 = parse_run(f"onnxruntime:{tmp_path},precision=int8")
    before = int8.fingerprint()
    (tmp_path / "search.fp32.standard.onnx").write_bytes(b"re-exported fp32")
    assert int8.fingerprint() == before                     # another precision's file: same results
    (tmp_path / "search.int8.standard.onnx").write_bytes(b"re-quantized int8")
    assert int8.fingerprint() != before                     # its own graph changed: track again


def test_a_result_made_by_other_files_is_not_reused(tmp_path):
    path = tmp_path / "seq.txt"
    path.write_text("1,2,3,4\n5,6,7,8\n")
    path.with_suffix(".json").write_text(json.dumps({"frames": 2, "fingerprint": "old"}))
    assert accuracy._result_done(path, 2, "old")
    assert not accuracy._result_done(path, 2, "new")
    path.with_suffix(".json").write_text(json.dumps({"frames": 2}))   # written before fingerprints existed
    assert not accuracy._result_done(path, 2, "old")

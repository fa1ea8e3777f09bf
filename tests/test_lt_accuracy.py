"""siamtrack accuracy on sequences with absent frames: VOT long-term Pr/Re/F and re-detection delay in the
table and summary.json; the tracker choice in --run / --tracker. Result files are written by hand (no
tracker runs), so the expected numbers follow from the boxes and scores."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench import accuracy, failure_modes
from bench.runs import parse_run
from bench.sequences import read_dataset
from bench.synth import SynthConfig, write_sequence
from runtime.errors import InputError

LT = SynthConfig(width=96, height=72, frames=50, long_term=True, occlusion=False, blur=False)


def _write_run(out, label, seqs, absent_score):
    folder = out / "results" / label
    folder.mkdir(parents=True)
    for seq in seqs:
        boxes = seq.gt_xywh.copy()
        for i in range(1, len(boxes)):                 # out of view: the box stays where it was
            if not np.all(np.isfinite(boxes[i])):
                boxes[i] = boxes[i - 1]
        scores = np.where(seq.absent, absent_score, 0.95)
        scores[0] = np.nan
        accuracy.write_records(folder / f"{seq.name}.txt", boxes)
        failure_modes.write_scores(folder / f"{seq.name}{failure_modes.SCORES_SUFFIX}", scores)


@pytest.fixture(scope="module")
def lt_summary(tmp_path_factory):
    root = tmp_path_factory.mktemp("lt")
    data, out = root / "data", root / "acc"
    for seed in (1_000_030, 1_000_031):
        write_sequence(seed, data / f"s{seed}", LT)
    seqs = read_dataset("folder", data).sequences
    _write_run(out, "knows", seqs, absent_score=0.1)       # low confidence while the target is away
    _write_run(out, "stubborn", seqs, absent_score=0.95)   # confident on the stale box
    assert accuracy.main(["--dataset", str(data), "--out", str(out), "--evaluate-only", "--no-plots",
                          "--run", "torch:alex,label=knows", "--run", "torch:alex,label=stubborn"]) == 0
    return json.loads((out / "summary.json").read_text()), (out / "summary.md").read_text()


def test_long_term_scores_reward_a_tracker_that_knows_the_target_is_gone(lt_summary):
    summary, _ = lt_summary
    knows, stubborn = summary["runs"]["knows"], summary["runs"]["stubborn"]
    # the boxes are the ground truth (4 decimals) on visible frames: Pr = Re = 1 for the one that reports
    # only those frames; the stubborn one also reports the absent frames (overlap 0), costing precision
    assert knows["overall"]["lt_fscore"] == pytest.approx(1.0, abs=1e-3)
    assert knows["overall"]["lt_precision"] == pytest.approx(1.0, abs=1e-3)
    assert stubborn["overall"]["lt_recall"] == pytest.approx(1.0, abs=1e-3)
    assert stubborn["overall"]["lt_precision"] < 0.9 and stubborn["overall"]["lt_fscore"] < 0.95
    assert knows["overall"]["reappearances"] == 4 and knows["overall"]["redetected"] == 4   # 2 per sequence
    assert knows["overall"]["redetect_delay_mean"] == 0.0
    assert set(knows["lt_se"]) == {"lt_precision", "lt_recall", "lt_fscore"}
    for entry in knows["sequences"].values():
        assert {"lt_precision", "lt_recall", "lt_fscore", "reappearances", "redetect_delay_mean"} <= set(entry)


def test_the_table_shows_the_long_term_columns_and_says_what_they_are(lt_summary):
    _, md = lt_summary
    assert "| LT-F" in md and "Redetect delay (fr)" in md and "VOT long-term F-score" in md


def test_no_long_term_columns_without_absent_frames(tmp_path):
    data, out = tmp_path / "data", tmp_path / "acc"
    write_sequence(1_000_032, data / "s", SynthConfig(width=96, height=72, frames=6, occlusion=False))
    seqs = read_dataset("folder", data).sequences
    _write_run(out, "plain", seqs, absent_score=0.1)
    assert accuracy.main(["--dataset", str(data), "--out", str(out), "--evaluate-only", "--no-plots",
                          "--run", "torch:alex,label=plain"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "lt_fscore" not in summary["runs"]["plain"]["overall"]
    assert "LT-F" not in (out / "summary.md").read_text()


def test_run_takes_a_tracker_and_names_itself_after_it():
    assert parse_run("torch:alex,tracker=long-term").name == "torch-alex-fp32-random0-long-term"
    assert parse_run("torch:alex").tracker == "auto" and parse_run("torch:alex").name == "torch-alex-fp32-random0"
    with pytest.raises(InputError, match="tracker 'lt' is not one of"):
        parse_run("torch:alex,tracker=lt")


def test_accuracy_tracker_flag_applies_to_runs_without_their_own(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(accuracy, "run_all", lambda runs, *a, **k: (seen.extend(runs), ([], 0))[1])
    monkeypatch.setattr(accuracy, "evaluate", lambda *a, **k: {"protocol": "ope", "runs": {}})
    accuracy.main(["--synth", "1", "--synth-frames", "3", "--synth-size", "64x48", "--out", str(tmp_path),
                   "--no-plots", "--tracker", "long-term", "--run", "torch:alex",
                   "--run", "torch:alex,tracker=short-term,label=st"])
    assert [r.tracker for r in seen] == ["long-term", "short-term"]

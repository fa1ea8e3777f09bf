"""siamtrack longterm-report: the comparison's arithmetic on scripted per-sequence inputs (no tracking)."""
from __future__ import annotations

import numpy as np
import pytest

from bench import longterm_report as report
from bench.lt_metrics import SequenceLT
from runtime.errors import InputError


def _scored(rng, quality: float, n: int = 6) -> dict:
    lt = [SequenceLT(np.clip(rng.uniform(0, 1, 40) * quality, 0, 1), rng.uniform(0, 1, 40), 35, (1, 3), 2)
          for _ in range(n)]
    return {"lt": lt, "auc": rng.uniform(0, 1, n) * quality, "confident_miss": rng.uniform(0, 0.5, n),
            "names": [f"s{i}" for i in range(n)]}


def test_identical_trackers_differ_by_zero_with_zero_paired_error():
    same = _scored(np.random.default_rng(0), 1.0)
    result = report.compare({"short-term": same, "long-term": same})
    assert result["delta_fscore"] == 0.0 and result["delta_fscore_se"] == 0.0
    assert result["delta_auc"] == 0.0 and result["delta_auc_se"] == 0.0
    assert result["trackers"]["long-term"]["lt_fscore_se"] > 0          # unpaired, each has its own spread


def test_a_better_tracker_shows_a_positive_difference_and_the_table_says_so():
    rng = np.random.default_rng(1)
    short, long = _scored(rng, 0.5), _scored(np.random.default_rng(1), 1.0)
    result = report.compare({"short-term": short, "long-term": long})
    assert result["delta_fscore"] > 0 and result["delta_auc"] > 0
    t = result["trackers"]["short-term"]
    assert (t["reappearances"], t["redetected"], t["redetect_delay_mean"]) == (12, 12, 2.0)
    assert len(t["per_sequence"]) == 6 and {"name", "auc", "lt_fscore"} <= set(t["per_sequence"][0])
    text = report.markdown(dict(result, config={"frames": 40, "size": "64x48", "model": "m", "backend": "torch"}))
    assert "dF (long - short) = +" in text and "| long-term" in text and "12/12" in text


def test_too_few_frames_is_refused_before_anything_is_generated(tmp_path):
    with pytest.raises(InputError, match="frames"):
        report.main(["--frames", "20", "--count", "2", "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()

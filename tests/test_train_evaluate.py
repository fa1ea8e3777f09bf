"""The issue-5 measurements: baselines, centre-bias statistics and the response-bias probe."""
from __future__ import annotations

import numpy as np
import pytest

from train.evaluate import StaticTracker, centre_mass, error_by_offset, response_bias, success_auc


def test_a_flat_response_has_centre_mass_one_and_a_centre_peak_more():
    flat = np.ones((25, 25))
    peaked = flat.copy()
    peaked[10:15, 10:15] = 5.0
    assert centre_mass(flat) == pytest.approx(1.0)
    # the central 5x5 holds 125 of 725 units; a flat map would hold 25/625 of the total
    assert centre_mass(peaked) == pytest.approx((125 / 725) / (25 / 625))


def test_error_by_offset_averages_within_each_bin():
    offsets = np.array([5.0, 10.0, 20.0, 70.0])
    errors = np.array([1.0, 3.0, 8.0, 40.0])
    out = error_by_offset(offsets, errors)
    assert out["0-16px"] == 2.0 and out["16-32px"] == 8.0 and out[">64px"] == 40.0
    assert np.isnan(out["32-48px"])


def test_the_static_baseline_scores_exactly_its_overlap_with_a_still_target():
    from bench.sequences import Sequence

    frames = [np.zeros((60, 80, 3), np.uint8)] * 4
    gt = np.array([[10, 10, 20, 20]] * 4, dtype=np.float64)
    seq = Sequence("still", frames, gt, np.zeros(4, bool))
    auc, per_seq = success_auc(StaticTracker, [seq])
    # pysot's axis-aligned init shifts the box by +0.5 px: IoU = 19.5^2 / (2*400 - 19.5^2) on every frame
    iou = 19.5 ** 2 / (800 - 19.5 ** 2)
    expected = np.mean([float(iou > t) for t in np.arange(0, 1.05, 0.05)])
    assert auc == pytest.approx(expected) and per_seq == [pytest.approx(expected)]


def test_response_bias_reports_one_map_and_one_error_per_sample():
    from bench.synth import SynthConfig, generate
    from runtime.backends.pyt import TorchBackend

    backend = TorchBackend.random("alex", seed=0)
    seqs = [generate(1_000_000, SynthConfig(width=200, height=160, frames=3))]
    mean_map, offsets, errors = response_bias(backend, seqs, samples=3, rng=np.random.default_rng(0))
    assert mean_map.shape == (21, 21) and ((mean_map >= 0) & (mean_map <= 1)).all()
    assert offsets.shape == errors.shape == (3,) and (offsets <= 64 * np.sqrt(2)).all()

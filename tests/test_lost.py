"""The lost/found state machine: hysteresis on the score, with hand-worked score sequences."""
from __future__ import annotations

import pytest

from runtime.errors import InputError
from runtime.lost import LostMonitor, LostPolicy, TrackState

T, L = TrackState.TRACKING, TrackState.LOST
POLICY = LostPolicy(lost_below=0.3, found_above=0.5, frames_to_lose=3, frames_to_find=2)


def _run(scores, policy=POLICY):
    monitor = LostMonitor(policy)
    return [monitor.update(s) for s in scores]


def test_starts_tracking_and_stays_on_strong_scores():
    assert _run([0.9, 0.8, 0.95]) == [T, T, T]


def test_lost_only_after_the_configured_run_of_weak_scores():
    assert _run([0.9, 0.1, 0.2, 0.1, 0.1]) == [T, T, T, L, L]


def test_a_weak_run_broken_by_a_middling_score_starts_over():
    # 0.4 is neither weak (< 0.3) nor strong (>= 0.5): it resets the weak count
    assert _run([0.1, 0.1, 0.4, 0.1, 0.1, 0.1]) == [T, T, T, T, T, L]


def test_middling_scores_do_not_bring_a_lost_target_back():
    assert _run([0.1, 0.1, 0.1, 0.45, 0.45, 0.45, 0.45]) == [T, T, L, L, L, L, L]


def test_found_again_after_the_configured_run_of_strong_scores():
    assert _run([0.1, 0.1, 0.1, 0.6, 0.1, 0.6, 0.7, 0.9]) == [T, T, L, L, L, L, T, T]


def test_found_threshold_is_inclusive_and_lost_threshold_exclusive():
    policy = LostPolicy(lost_below=0.3, found_above=0.5, frames_to_lose=1, frames_to_find=1)
    assert _run([0.3, 0.29, 0.5], policy) == [T, L, T]


def test_nan_score_counts_as_weak():
    assert _run([float("nan")] * 3) == [T, T, L]


def test_reset_returns_to_tracking_and_forgets_runs():
    monitor = LostMonitor(POLICY)
    for s in (0.1, 0.1, 0.1):
        monitor.update(s)
    assert monitor.state is L
    monitor.reset()
    assert monitor.state is T
    assert [monitor.update(s) for s in (0.1, 0.1)] == [T, T]  # the earlier weak run does not carry over


@pytest.mark.parametrize("kwargs", [dict(lost_below=0.5, found_above=0.5), dict(lost_below=0.6, found_above=0.4),
                                    dict(found_above=1.5), dict(frames_to_lose=0), dict(frames_to_find=0)])
def test_policies_without_a_hysteresis_band_are_refused(kwargs):
    with pytest.raises(InputError):
        LostPolicy(**kwargs)


def test_state_values_are_the_json_words():
    assert (T.value, L.value) == ("tracking", "lost")

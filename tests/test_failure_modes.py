"""bench.failure_modes: scale, aspect and distractor numbers on hand-computed cases."""
import math

import numpy as np
import pytest

from bench import failure_modes as fm
from runtime.lost import LostMonitor, LostPolicy, TrackState

LOG2, LOG4 = math.log(2), math.log(4)


def _gt(n, box=(0, 0, 10, 10)):
    return np.tile(np.asarray(box, dtype=float), (n, 1))


def test_scale_error_is_the_median_absolute_log_area_ratio():
    gt = _gt(4)
    pred = np.array([[0, 0, 10, 10], [0, 0, 20, 20], [0, 0, 10, 10], [0, 0, 5, 5]], dtype=float)
    # frames 1..3: area x4, x1, x1/4 -> |log| = log4, 0, log4 -> median log4
    assert fm.failure_modes(gt, pred).scale_error == pytest.approx(LOG4)


def test_scale_bias_keeps_the_sign_so_runaway_growth_is_positive():
    gt = _gt(4)
    grows = np.array([[0, 0, 10, 10], [0, 0, 20, 20], [0, 0, 20, 20], [0, 0, 5, 5]], dtype=float)
    assert fm.failure_modes(gt, grows).scale_bias == pytest.approx(LOG4)
    shrinks = np.array([[0, 0, 10, 10], [0, 0, 5, 5], [0, 0, 5, 5], [0, 0, 20, 20]], dtype=float)
    assert fm.failure_modes(gt, shrinks).scale_bias == pytest.approx(-LOG4)


def test_frame_zero_is_not_scored_because_the_tracker_is_given_that_box():
    gt = _gt(3)
    pred = np.array([[0, 0, 1000, 1000], [0, 0, 20, 10], [0, 0, 20, 10]], dtype=float)
    assert fm.failure_modes(gt, pred).frames == 2
    assert fm.failure_modes(gt, pred).scale_error == pytest.approx(LOG2)
    assert fm.failure_modes(gt, pred, skip_first=False).frames == 3


def test_aspect_error_is_the_median_absolute_log_of_the_width_to_height_ratios():
    gt = _gt(4, (0, 0, 10, 20))                  # w/h = 0.5
    pred = np.array([[0, 0, 10, 20], [0, 0, 20, 20], [0, 0, 10, 40], [0, 0, 20, 40]], dtype=float)
    # w/h = 1, 0.25, 0.5 -> |log| = log2, log2, 0 -> median log2
    assert fm.failure_modes(gt, pred).aspect_error == pytest.approx(LOG2)


def test_a_square_box_on_a_tall_target_has_aspect_error_but_no_scale_error():
    gt = _gt(2, (0, 0, 10, 40))                  # area 400, w/h 0.25
    pred = np.array([[0, 0, 10, 40], [0, 0, 20, 20]], dtype=float)   # area 400, w/h 1
    out = fm.failure_modes(gt, pred)
    assert out.scale_error == pytest.approx(0.0)
    assert out.aspect_error == pytest.approx(LOG4)


def test_distractor_fraction_counts_missed_frames_only_while_the_score_says_tracking():
    gt = _gt(5)
    far = [100, 100, 10, 10]
    pred = np.array([[0, 0, 10, 10], far, far, [0, 0, 10, 10], far], dtype=float)
    scores = np.array([np.nan, 0.9, 0.1, 0.9, np.nan])
    out = fm.failure_modes(gt, pred, scores)
    # frame 1: miss + confident (distractor); 2: miss but lost; 3: on target; 4: miss, no score
    assert out.miss_fraction == pytest.approx(3 / 4)
    assert out.distractor_fraction == pytest.approx(1 / 4)


def test_the_iou_threshold_is_0_1_computed_as_pysot_overlap():
    gt = _gt(3)
    # IoU 10/190 = 0.053 (a miss) and 20/180 = 0.111 (not a miss)
    pred = np.array([[0, 0, 10, 10], [9, 0, 10, 10], [8, 0, 10, 10]], dtype=float)
    out = fm.failure_modes(gt, pred, scores=np.ones(3))
    assert out.miss_fraction == pytest.approx(1 / 2)
    assert out.distractor_fraction == pytest.approx(1 / 2)


def test_the_lost_threshold_is_the_lost_monitors_and_a_score_at_it_counts_as_tracking():
    assert fm.LOST_BELOW == LostPolicy().lost_below
    # the monitor calls a score equal to lost_below strong enough not to count towards LOST
    monitor = LostMonitor(LostPolicy(frames_to_lose=1))
    assert monitor.update(fm.LOST_BELOW) is TrackState.TRACKING
    gt, pred = _gt(2), np.array([[0, 0, 10, 10], [100, 100, 10, 10]], dtype=float)
    assert fm.failure_modes(gt, pred, scores=[1.0, fm.LOST_BELOW]).distractor_fraction == 1.0
    assert fm.failure_modes(gt, pred, scores=[1.0, fm.LOST_BELOW - 1e-9]).distractor_fraction == 0.0


def test_distractor_fraction_is_none_without_scores():
    assert fm.failure_modes(_gt(3), _gt(3)).distractor_fraction is None


def test_frames_without_ground_truth_or_flagged_absent_are_not_scored():
    gt = _gt(4)
    gt[2] = np.nan
    pred = np.array([[0, 0, 10, 10], [0, 0, 20, 20], [0, 0, 40, 40], [0, 0, 20, 20]], dtype=float)
    out = fm.failure_modes(gt, pred, absent=[False, False, False, True])
    assert out.frames == 1
    assert out.scale_error == pytest.approx(LOG4)


def test_a_degenerate_predicted_box_is_an_infinite_scale_error_not_a_skipped_frame():
    gt = _gt(4)
    pred = np.array([[0, 0, 10, 10], [0, 0, 0, 10], [0, 0, np.nan, 10], [0, 0, 10, 10]], dtype=float)
    out = fm.failure_modes(gt, pred, scores=np.ones(4))
    assert out.frames == 3
    assert out.scale_error == math.inf                 # median of [inf, inf, 0]
    assert out.miss_fraction == pytest.approx(2 / 3)


def test_static_boxes_hold_the_first_ground_truth_box():
    gt = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 9, 9]], dtype=float)
    assert fm.static_boxes(gt).tolist() == [[1, 2, 3, 4]] * 3


def test_mean_se_is_the_mean_and_the_standard_error_of_the_mean():
    mean, se = fm.mean_se([1.0, 2.0, 3.0, 4.0, None])
    assert mean == pytest.approx(2.5)
    assert se == pytest.approx(math.sqrt(5 / 3) / 2)     # std(ddof=1) = sqrt(5/3), n = 4
    assert fm.mean_se([3.0]) == (3.0, None)
    assert fm.mean_se([None]) == (None, None)


def test_an_infinite_sequence_value_keeps_the_mean_infinite():
    assert fm.mean_se([0.1, math.inf]) == (math.inf, None)


def test_summarize_gives_mean_se_and_count_per_metric():
    a = fm.FailureModes(10, 0.1, 0.1, 0.2, 0.0, None)
    b = fm.FailureModes(10, 0.3, -0.3, 0.4, 0.5, None)
    out = fm.summarize({"a": a, "b": b})
    assert out["scale_error"]["mean"] == pytest.approx(0.2)
    assert out["scale_error"]["se"] == pytest.approx(0.1)
    assert out["distractor_fraction"] == {"mean": None, "se": None, "n": 0}


def test_mismatched_lengths_are_an_error_naming_both_counts():
    with pytest.raises(ValueError, match="3 boxes but the ground truth has 4"):
        fm.failure_modes(_gt(4), _gt(3))
    with pytest.raises(ValueError, match="2 scores"):
        fm.failure_modes(_gt(4), _gt(4), scores=[1, 1])


def test_scores_files_round_trip_with_nan_for_the_init_frame(tmp_path):
    path = tmp_path / f"seq{fm.SCORES_SUFFIX}"
    fm.write_scores(path, [np.nan, 0.5, 0.25])
    assert path.read_text() == "nan\n0.500000\n0.250000\n"
    np.testing.assert_array_equal(fm.read_scores(path, 3), [np.nan, 0.5, 0.25])


def test_a_missing_scores_file_means_no_scores_and_a_short_one_is_an_error(tmp_path):
    from runtime.errors import InputError

    assert fm.read_scores(tmp_path / "none.scores.txt", 3) is None
    fm.write_scores(tmp_path / "s.scores.txt", [np.nan, 0.5])
    with pytest.raises(InputError, match="2 scores but the sequence has 3 frames"):
        fm.read_scores(tmp_path / "s.scores.txt", 3)


# ------------------------------------------------------------------ in `siamtrack accuracy` reports

class _FixedTracker:
    """Stands in for SiamRPNTracker in the evaluation loop: always answers the same box and score."""

    def __init__(self, box, score):
        self.box, self.score = np.asarray(box, dtype=float), score

    def init(self, frame, box):
        pass

    def track(self, frame):
        from types import SimpleNamespace

        return SimpleNamespace(box_xywh=self.box, score=self.score)


def _sequence(n=3):
    from bench.sequences import Sequence

    return Sequence("seq", [np.zeros((60, 80, 3), np.uint8)] * n, _gt(n), np.zeros(n, bool), dataset="otb")


def test_the_one_pass_loop_hands_back_each_frames_score_with_nan_for_the_init_frame():
    from bench import accuracy

    scores = []
    boxes, _ = accuracy.track_ope(_FixedTracker([40, 40, 10, 10], 0.75), _sequence(), scores)
    assert boxes.shape == (3, 4)
    np.testing.assert_array_equal(scores, [np.nan, 0.75, 0.75])


def test_accuracy_summaries_carry_the_failure_modes_per_sequence_and_overall(tmp_path):
    from bench import accuracy, report
    from bench.runs import parse_run

    run, seq = parse_run("torch:alex,label=fixed"), _sequence()
    folder = tmp_path / "results" / "fixed"
    folder.mkdir(parents=True)
    # frames 1, 2: a box 4x the area, far from the target, with a confident score -> distractor
    accuracy.write_records(folder / "seq.txt", [[0, 0, 10, 10], [40, 40, 20, 20], [40, 40, 20, 20]])
    fm.write_scores(folder / f"seq{fm.SCORES_SUFFIX}", [np.nan, 0.9, 0.9])
    summary = accuracy.evaluate([run], [seq], tmp_path, "ope")
    entry = summary["runs"]["fixed"]["sequences"]["seq"]
    assert entry["scale_error"] == pytest.approx(LOG4)
    assert entry["distractor_fraction"] == 1.0
    assert summary["runs"]["fixed"]["overall"]["distractor_fraction"] == 1.0
    assert "Distractor" in report.accuracy_markdown(summary)


def test_results_without_a_scores_file_are_scored_without_a_distractor_fraction(tmp_path):
    from bench import accuracy
    from bench.runs import parse_run

    run, seq = parse_run("torch:alex,label=fixed"), _sequence()
    (tmp_path / "results" / "fixed").mkdir(parents=True)
    accuracy.write_records(tmp_path / "results" / "fixed" / "seq.txt", [[0, 0, 10, 10]] * 3)
    entry = accuracy.evaluate([run], [seq], tmp_path, "ope")["runs"]["fixed"]["sequences"]["seq"]
    assert entry["scale_error"] == 0.0 and entry["distractor_fraction"] is None

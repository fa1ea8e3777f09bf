"""Is the target still tracked? A two-state machine on the tracker's score, with hysteresis.

A SiamRPN score is noisy frame to frame; one threshold would flicker between states. So the target is
declared LOST only after ``frames_to_lose`` consecutive scores below ``lost_below``, and TRACKING again
only after ``frames_to_find`` consecutive scores at or above ``found_above`` (a higher bar). Scores in
between keep the current state and reset both runs. While LOST the caller must report no box: the
tracker's box then is a guess, and a stale box reported as tracked is worse than none.

The long-term tracker (``--tracker long-term``) knows better than this rule: it has its own lost state,
with its own hysteresis (pysot's ``CONFIDENCE_LOW`` / ``CONFIDENCE_HIGH``), and searches differently
while in it. Its ``TrackResult.lost`` is passed to ``update(score, tracker_lost=...)`` and the state
follows it frame by frame, so what the user sees is what the tracker does.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class TrackState(str, enum.Enum):
    TRACKING = "tracking"
    LOST = "lost"


@dataclass(frozen=True)
class LostPolicy:
    """Thresholds on the tracker score (0..1, the penalised best-anchor score of pysot's tracker).

    lost_below < found_above; frames counts >= 1. Defaults suit pysot's SiamRPN++ where a held target
    scores ~0.9+ and a lost one drifts under ~0.3.
    """

    lost_below: float = 0.3
    found_above: float = 0.5
    frames_to_lose: int = 3
    frames_to_find: int = 2

    def __post_init__(self):
        from runtime.errors import InputError

        if not (0.0 <= self.lost_below < self.found_above <= 1.0):
            raise InputError(f"lost threshold {self.lost_below} must be below the found threshold "
                             f"{self.found_above}, both within 0..1 (e.g. --lost-threshold 0.3 --found-threshold 0.5)")
        if self.frames_to_lose < 1 or self.frames_to_find < 1:
            raise InputError(f"frame counts must be >= 1, got lose={self.frames_to_lose} find={self.frames_to_find}")


class LostMonitor:
    """Feed it each frame's score; it answers the state. Starts TRACKING (right after init)."""

    def __init__(self, policy: LostPolicy | None = None):
        self.policy = policy or LostPolicy()
        self.reset()

    def reset(self) -> None:
        """Back to TRACKING, e.g. after the user re-selected the target."""
        self.state = TrackState.TRACKING
        self._weak = 0
        self._strong = 0

    def update(self, score: float, tracker_lost: bool | None = None) -> TrackState:
        """Score of the newest frame (NaN counts as weak) -> the state to report for that frame.

        tracker_lost: the long-term tracker's own state after this frame; when given it decides (and the
        score runs start afresh, so a later switch back to the score rule does not inherit them)."""
        if tracker_lost is not None:
            self._weak = self._strong = 0
            self.state = TrackState.LOST if tracker_lost else TrackState.TRACKING
            return self.state
        p = self.policy
        weak = not math.isfinite(score) or score < p.lost_below
        strong = not weak and score >= p.found_above
        self._weak = self._weak + 1 if weak else 0
        self._strong = self._strong + 1 if strong else 0
        if self.state is TrackState.TRACKING and self._weak >= p.frames_to_lose:
            self.state = TrackState.LOST
        elif self.state is TrackState.LOST and self._strong >= p.frames_to_find:
            self.state = TrackState.TRACKING
        return self.state

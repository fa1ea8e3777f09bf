"""Bounded statistics for a live run that may last weeks: memory does not grow with the frame count.

A camera at 30 FPS makes 2.6 million frames a day; keeping every latency in a list costs ~100 bytes a
frame (a float object plus a list slot) forever. ``RecentSamples`` keeps the newest ``capacity``
samples in a fixed numpy ring buffer (percentiles are exact over that window: the window is the whole
run while it is shorter than ``capacity``) and the count, mean and maximum over the whole run.
"""
from __future__ import annotations

import numpy as np

DEFAULT_WINDOW = 10_000  # ~5.5 minutes at 30 FPS; 80 KB per statistic


class RecentSamples:
    """The last ``capacity`` float samples (ring buffer) plus whole-run count, mean and max."""

    def __init__(self, capacity: int = DEFAULT_WINDOW):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        # np.full touches every page now: np.zeros would map them lazily and the resident size would
        # creep up while the window fills (an apparent leak in the first minutes of a soak)
        self._ring = np.full(capacity, np.nan, dtype=np.float64)
        self.count = 0
        self._total = 0.0
        self.max: float | None = None

    def add(self, value: float) -> None:
        value = float(value)
        self._ring[self.count % len(self._ring)] = value
        self.count += 1
        self._total += value
        self.max = value if self.max is None or value > self.max else self.max

    @property
    def window(self) -> int:
        """How many samples the percentiles cover (the newest ones)."""
        return min(self.count, len(self._ring))

    def recent(self) -> np.ndarray:
        """The newest ``window`` samples, oldest first (a copy)."""
        n, cap = self.window, len(self._ring)
        if self.count <= cap:
            return self._ring[:n].copy()
        start = self.count % cap
        return np.concatenate([self._ring[start:], self._ring[:start]])

    def percentile(self, q: float) -> float | None:
        """numpy's (linear) percentile ``q`` of the newest ``window`` samples; None when empty."""
        return float(np.percentile(self._ring[:self.window], q)) if self.count else None

    def mean(self) -> float | None:
        """Mean over the whole run."""
        return self._total / self.count if self.count else None

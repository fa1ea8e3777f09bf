"""An optional per-stage wall-clock timer for the tracker (``SiamRPNTracker(..., timer=StageTimer())``).

The tracker times these stages: "crop" (uint8 crops from the frame), "preprocess" (crops -> float32
NCHW blob), "template" and "search" (backend calls), "postprocess" (scores -> new state). The default
``NULL_TIMER`` records nothing and costs one attribute lookup and an empty ``with`` per stage.
"""
from __future__ import annotations

from collections import defaultdict
from time import perf_counter

STAGES = ("crop", "preprocess", "template", "search", "postprocess")


class _Span:
    __slots__ = ("_samples", "_start")

    def __init__(self, samples: list):
        self._samples = samples
        self._start = 0.0

    def __enter__(self):
        self._start = perf_counter()
        return self

    def __exit__(self, *exc):
        self._samples.append(perf_counter() - self._start)
        return False


class StageTimer:
    """Collects ``perf_counter`` durations in seconds: ``samples[name]`` is one float per timed call."""

    def __init__(self):
        self.samples: dict[str, list[float]] = defaultdict(list)

    def stage(self, name: str) -> _Span:
        """Context manager timing one run of stage ``name``."""
        return _Span(self.samples[name])

    def reset(self) -> None:
        self.samples.clear()


class _NullSpan:
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class NullTimer:
    """The default: same API as StageTimer, records nothing."""

    _SPAN = _NullSpan()

    def __init__(self):
        self.samples: dict[str, list[float]] = {}

    def stage(self, name: str) -> _NullSpan:
        return self._SPAN

    def reset(self) -> None:
        pass


NULL_TIMER = NullTimer()

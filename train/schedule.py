"""Learning-rate schedule: pysot's warm-up then log decay, per step instead of per epoch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """Warm-up from ``warmup_lr`` to ``base_lr`` over ``warmup_steps`` (geometric, as pysot's 'step'
    warm-up approximates), then log-space decay from ``base_lr`` to ``end_lr`` at ``total_steps``."""

    total_steps: int
    warmup_steps: int = 0
    warmup_lr: float = 0.001
    base_lr: float = 0.005
    end_lr: float = 0.0005

    def lr(self, step: int) -> float:
        if self.warmup_steps and step < self.warmup_steps:
            t = step / self.warmup_steps
            return float(self.warmup_lr * (self.base_lr / self.warmup_lr) ** t)
        span = max(self.total_steps - self.warmup_steps - 1, 1)
        t = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return float(np.exp(np.log(self.base_lr) + t * (np.log(self.end_lr) - np.log(self.base_lr))))

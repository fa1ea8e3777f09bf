"""Activation ranges for symmetric INT8: max, percentile and entropy (TensorRT's KL method).

Every method returns ``amax`` (float > 0), the magnitude mapped to +-127, so the scale is
``amax / 127`` and the zero point 0 (TensorRT accepts only symmetric activations).

The histogram methods work on |x| over ``[0, absmax]`` with ``NUM_BINS`` bins, which needs the absolute
maximum first; ``quantize`` therefore makes two passes over the calibration set. Everything here is
plain numpy in a fixed order, so the same data always gives the same ranges.
"""
from __future__ import annotations

import numpy as np

METHODS = ("max", "percentile", "entropy")
NUM_BINS = 2048
# Symmetric INT8 on |x| has 128 levels (0..127); TensorRT's entropy calibrator uses the same count.
NUM_QUANTIZED_BINS = 128
# Below this the tensor was (almost) always zero during calibration; the floor keeps the scale finite.
AMAX_FLOOR = 1e-6


class AbsHistogram:
    """Histogram of |x| on fixed edges ``linspace(0, absmax, NUM_BINS + 1)``, accumulated over batches."""

    def __init__(self, absmax: float, num_bins: int = NUM_BINS):
        self.absmax = max(float(absmax), AMAX_FLOOR)
        self.edges = np.linspace(0.0, self.absmax, num_bins + 1)
        self.counts = np.zeros(num_bins, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        counts, _ = np.histogram(np.abs(values.astype(np.float64, copy=False)), bins=self.edges)
        self.counts += counts


def amax_percentile(hist: AbsHistogram, percentile: float) -> float:
    """Upper edge of the first bin where the cumulative share of |x| reaches ``percentile`` (0-100]."""
    total = hist.counts.sum()
    if total == 0:
        return AMAX_FLOOR
    cdf = np.cumsum(hist.counts) / total
    idx = int(np.searchsorted(cdf, percentile / 100.0, side="left"))
    idx = min(idx, len(hist.counts) - 1)
    return max(float(hist.edges[idx + 1]), AMAX_FLOOR)


def amax_entropy(hist: AbsHistogram, num_quantized_bins: int = NUM_QUANTIZED_BINS) -> float:
    """The clipping threshold minimising KL(P || Q) between the clipped reference P and its
    ``num_quantized_bins``-level quantized version Q: TensorRT's legacy entropy calibrator, as in
    NVIDIA's pytorch-quantization ``_compute_amax_entropy`` (start bin = levels, stride 1; empty fine
    bins stay empty in Q; outliers folded into P's last kept bin; ties go to the largest threshold).

    The first bin's count is replaced by the second's, as pytorch-quantization does: after ReLU/ReLU6
    (and zero padding) a large share of values is exactly 0, which every symmetric scale represents
    exactly. Left in, that spike dominates P, and spreading it over a group of Q costs so much that the
    smallest threshold always wins (lite0: ReLU6 outputs clipped at 0.4-3 instead of ~6; tracking AUC
    0.026).

    All candidate thresholds are evaluated at once from cumulative sums: for threshold i, fine bin j
    falls in group ``g`` with ``ceil(g*i/L) <= j < ceil((g+1)*i/L)``, Q spreads each group's mass evenly
    over its non-empty bins, so KL splits into per-bin sums (prefix sums) and per-group sums.
    """
    b = hist.counts.astype(np.float64)
    if len(b) > 1:
        b[0] = b[1]
    n, nq = len(b), num_quantized_bins
    total = b.sum()
    if total == 0 or n < nq:
        return max(float(hist.edges[-1]), AMAX_FLOOR) if total else AMAX_FLOOR
    i = np.arange(nq, n + 1)                                                   # (M,) candidate thresholds
    cb = np.concatenate([[0.0], np.cumsum(b)])                                 # (n+1,) prefix sums
    cnz = np.concatenate([[0.0], np.cumsum(b > 0)])                           # non-empty bin counts
    p_all = b / total
    plogp = np.where(b > 0, p_all * np.log(np.where(b > 0, p_all, 1.0)), 0.0)
    cplogp = np.concatenate([[0.0], np.cumsum(plogp)])
    edges = np.ceil(np.linspace(0.0, i, nq + 1, axis=1)).astype(np.int64)     # (M, nq+1) group edges
    group_sum = cb[edges[:, 1:]] - cb[edges[:, :-1]]                           # (M, nq)
    group_nz = cnz[edges[:, 1:]] - cnz[edges[:, :-1]]
    mean = np.divide(group_sum, group_nz, out=np.zeros_like(group_sum), where=group_nz > 0)
    kept = cb[i]                                                               # (M,) mass below threshold
    last = b[i - 1]
    weight = group_sum.copy()
    weight[:, -1] -= last                                                      # last bin handled apart
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q = np.log(mean / kept[:, None])
        cross = np.where(weight > 0, weight / total * log_q, 0.0).sum(axis=1)
        p_last = (last + (total - kept)) / total
        q_last = np.where(last > 0, mean[:, -1] / kept, 0.0)
        last_term = np.where(p_last > 0, p_last * np.log(p_last / q_last), 0.0)
        kl = cplogp[i - 1] - cross + last_term
    kl = np.where((kept > 0) & np.isfinite(kl), kl, np.inf)
    best = len(kl) - 1 - int(np.argmin(kl[::-1]))
    return max(float(hist.edges[i[best]]), AMAX_FLOOR)

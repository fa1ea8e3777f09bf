"""Failure modes that the success AUC hides: a box that grows or shrinks away from the target, a box
whose shape collapses (a tall target tracked by a square box), and a box that sits, confidently, on
something else. Pure numpy over arrays; one sequence at a time, then a mean with its standard error.

Inputs per sequence: ``gt_xywh`` (T, 4) and ``pred_xywh`` (T, 4) float, ``[x, y, w, h]`` in 0-based
pixels (the convention of ``bench.metrics``), optionally ``scores`` (T,) float: the tracker's per-frame
score (``TrackResult.score``, the raw foreground probability of the chosen anchor, 0..1).

Frames counted ("scored frames"): those with a ground-truth box (finite, w > 0 and h > 0) that is not
flagged ``absent``, except frame 0, where the tracker is given the box (``skip_first``). Over them:

- ``scale_error``: median of ``|log(area_pred / area_gt)|``. 0 is the right size; log 2 = 0.69 means
  twice (or half) the area. A predicted box with no positive finite area counts as an infinite error
  (a failure, not a frame to skip).
- ``scale_bias``: median of the signed ``log(area_pred / area_gt)``: > 0 the box is too large, < 0 too
  small. Says which way the scale ran.
- ``aspect_error``: median of ``|log((w/h)_pred / (w/h)_gt)|``. log 2 = 0.69: twice too wide or tall.
- ``miss_fraction``: fraction of frames with IoU < 0.1 (the box is mostly not on the target).
- ``distractor_fraction``: fraction of frames with IoU < 0.1 while ``score >= lost_below``: the box is on
  something else and the tracker still says it is tracking (``runtime.lost``'s threshold: a score
  below it is what the lost monitor counts as weak). None when no scores are given. A tracker without a
  score (the static-box baseline) never reports a loss; pass ``scores=np.ones(T)`` for it, then this
  equals ``miss_fraction``.

IoU is ``bench.metrics.iou_xywh`` (pysot's ``overlap_ratio``), so these numbers agree with the success
curve on what a frame's overlap is.

Per-frame scores next to a result file: ``<sequence>.scores.txt``, one number per frame, ``nan`` for
frame 0 (init, no score); ``write_scores`` / ``read_scores``. A result made without it (older runs,
result files copied from pysot) simply has no distractor fraction.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.metrics import iou_xywh
from runtime.lost import LostPolicy

DISTRACTOR_IOU = 0.1                       # below this the box lies mostly on something else
LOST_BELOW = LostPolicy().lost_below       # the lost monitor's "weak score" threshold (0.3)
METRICS = ("scale_error", "scale_bias", "aspect_error", "miss_fraction", "distractor_fraction")
SCORES_SUFFIX = ".scores.txt"


@dataclass(frozen=True)
class FailureModes:
    """One sequence's failure-mode numbers (see the module doc); None where not measurable."""

    frames: int                             # scored frames
    scale_error: float | None
    scale_bias: float | None
    aspect_error: float | None
    miss_fraction: float | None
    distractor_fraction: float | None       # None without scores

    def to_dict(self) -> dict:
        return asdict(self)


def _boxes(a, what: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{what} must be (T, 4) x,y,w,h boxes, got shape {arr.shape}")
    return arr


def scored_frames(gt_xywh, absent=None, skip_first: bool = True) -> np.ndarray:
    """(T,) bool: frames with a usable ground-truth box, not absent, and (by default) not frame 0."""
    gt = _boxes(gt_xywh, "ground truth")
    with np.errstate(invalid="ignore"):
        keep = np.all(np.isfinite(gt), axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    if absent is not None:
        keep &= ~np.asarray(absent, dtype=bool)
    if skip_first and len(keep):
        keep[0] = False
    return keep


def _positive(w: np.ndarray, h: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(w) & np.isfinite(h) & (w > 0) & (h > 0)


def log_area_ratio(gt_xywh, pred_xywh) -> np.ndarray:
    """(T,) ``log(area_pred / area_gt)``; +inf where the prediction has no positive finite area, NaN
    where the ground truth has none."""
    gt, pred = _boxes(gt_xywh, "ground truth"), _boxes(pred_xywh, "result")
    out = np.full(len(gt), np.nan)
    ok_gt = _positive(gt[:, 2], gt[:, 3])
    ok_pred = _positive(pred[:, 2], pred[:, 3])
    both = ok_gt & ok_pred
    out[both] = np.log(pred[both, 2] * pred[both, 3]) - np.log(gt[both, 2] * gt[both, 3])
    out[ok_gt & ~ok_pred] = np.inf
    return out


def log_aspect_ratio(gt_xywh, pred_xywh) -> np.ndarray:
    """(T,) ``log((w/h)_pred / (w/h)_gt)``; +inf / NaN as in ``log_area_ratio``."""
    gt, pred = _boxes(gt_xywh, "ground truth"), _boxes(pred_xywh, "result")
    out = np.full(len(gt), np.nan)
    ok_gt = _positive(gt[:, 2], gt[:, 3])
    ok_pred = _positive(pred[:, 2], pred[:, 3])
    both = ok_gt & ok_pred
    out[both] = np.log(pred[both, 2] / pred[both, 3]) - np.log(gt[both, 2] / gt[both, 3])
    out[ok_gt & ~ok_pred] = np.inf
    return out


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if len(values) else None


def failure_modes(gt_xywh, pred_xywh, scores=None, absent=None, lost_below: float = LOST_BELOW,
                  skip_first: bool = True) -> FailureModes:
    """One sequence's failure-mode numbers over its scored frames (module doc)."""
    gt, pred = _boxes(gt_xywh, "ground truth"), _boxes(pred_xywh, "result")
    if len(gt) != len(pred):
        raise ValueError(f"result has {len(pred)} boxes but the ground truth has {len(gt)} frames")
    keep = scored_frames(gt, absent, skip_first)
    n = int(keep.sum())
    log_area = log_area_ratio(gt, pred)[keep]
    log_aspect = log_aspect_ratio(gt, pred)[keep]
    # a degenerate predicted box has IoU 0 (not NaN): it is on nothing
    iou = np.nan_to_num(iou_xywh(gt[keep], pred[keep]), nan=0.0)
    miss = iou < DISTRACTOR_IOU
    distractor = None
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64).ravel()
        if len(s) != len(gt):
            raise ValueError(f"{len(s)} scores but the ground truth has {len(gt)} frames")
        with np.errstate(invalid="ignore"):
            confident = np.isfinite(s[keep]) & (s[keep] >= lost_below)   # NaN: no claim of tracking
        distractor = float(np.mean(miss & confident)) if n else None
    return FailureModes(
        frames=n,
        scale_error=_median(np.abs(log_area)),
        scale_bias=_median(log_area),
        aspect_error=_median(np.abs(log_aspect)),
        miss_fraction=float(np.mean(miss)) if n else None,
        distractor_fraction=distractor)


def static_boxes(gt_xywh) -> np.ndarray:
    """The static-box baseline: frame 0's ground-truth box held still for every frame, (T, 4)."""
    gt = _boxes(gt_xywh, "ground truth")
    return np.repeat(gt[:1], len(gt), axis=0)


def mean_se(values) -> tuple[float | None, float | None]:
    """Mean over the values that are not None/NaN, and its standard error ``std(ddof=1) / sqrt(n)``
    (None below 2 values). An infinite value (a sequence of degenerate boxes) makes the mean infinite
    and the error None: a failure stays visible instead of being dropped."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[~np.isnan(v)]
    if not len(v):
        return None, None
    if not np.all(np.isfinite(v)):
        return float(np.mean(v)), None
    se = float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None
    return float(np.mean(v)), se


def summarize(per_sequence: dict[str, FailureModes]) -> dict:
    """``{metric: {"mean": .., "se": .., "n": ..}}`` over sequences (each sequence weighs the same)."""
    out = {}
    for name in METRICS:
        values = [getattr(fm, name) for fm in per_sequence.values()]
        mean, se = mean_se(values)
        out[name] = {"mean": mean, "se": se, "n": sum(1 for v in values if v is not None and not np.isnan(v))}
    return out


def write_scores(path: str | Path, scores) -> None:
    """Per-frame scores, one per line (``nan`` where there is none), written atomically."""
    from runtime import atomic

    values = np.asarray(scores, dtype=np.float64).ravel()
    atomic.write_text(path, "".join(f"{v:.6f}\n" if np.isfinite(v) else "nan\n" for v in values))


def read_scores(path: str | Path, n_frames: int) -> np.ndarray | None:
    """(T,) float64 scores from ``write_scores``' file; None when there is no such file. InputError naming
    the file when its length is not ``n_frames`` or a line is not a number."""
    from runtime.errors import InputError

    path = Path(path)
    if not path.is_file():
        return None
    try:
        values = np.array([float(line) for line in path.read_text().split()], dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: expected one number (or nan) per line; delete it to re-run the sequence") from None
    if len(values) != n_frames:
        raise InputError(f"{path}: {len(values)} scores but the sequence has {n_frames} frames; delete it "
                         "(and the result file) to re-run the sequence")
    return values

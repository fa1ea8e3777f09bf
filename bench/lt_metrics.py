"""Long-term tracking measures as the VOT long-term challenge defines them (VOT2018-LT onwards). Pure numpy.

A long-term tracker reports, on every frame, a box and a confidence that the target is there. With a
confidence threshold ``tau`` the frames it *reports* are those with ``confidence >= tau``. Per sequence
(Lukezic et al., "Now you see me: evaluating performance in long-term visual tracking", and the VOT
toolkit's ``vot.analysis.longterm.compute_tpr_curves``):

- tracking precision ``Pr(tau)`` = mean overlap over the reported frames (1 when none is reported);
- tracking recall ``Re(tau)`` = sum of the overlaps over the reported frames / number of frames where the
  target is visible;
- the overlap of a frame whose target is absent is 0 (a box where there is nothing to find), so a
  confident box on an absent frame lowers precision and never adds recall.

Over a dataset the curves are averaged over sequences (each sequence weighs the same), then
``F(tau) = 2 Pr Re / (Pr + Re)`` and the **F-score is the maximum of F over tau**; Pr and Re are reported
at that ``tau``. The thresholds are the toolkit's (``determine_thresholds``): 98 values spread evenly over
the sorted confidences of all frames of all sequences of that tracker, plus +inf and -inf.

Conventions of this module (where the toolkit's inputs differ):
- Frame 0 (the tracker is given the box there) is not a prediction and is left out of both counts; the
  toolkit stores an empty region with confidence 0 there, which only adds 1 to the visible count.
- Overlap is the IoU of the two boxes clipped to the image (the toolkit's "bounded" overlap), in
  continuous coordinates: the same as the toolkit's pixel-raster overlap for whole-pixel boxes.

Re-detection delay (not a VOT measure; said here because it is ours): for each reappearance, a frame
``t`` where the target is visible and frame ``t - 1`` was absent, the delay is the number of frames from
``t`` until the first frame ``t' >= t`` of that visible stretch where the box has IoU > 0.5 with the
target (0 = found on the first visible frame). A reappearance not re-detected before the target leaves
again (or the sequence ends) is counted in ``reappearances`` but not in ``redetected``; the mean delay is
over the re-detected ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

THRESHOLD_RESOLUTION = 100      # the toolkit's default: 98 spread thresholds + inf + -inf
REDETECT_IOU = 0.5


def determine_thresholds(scores, resolution: int = THRESHOLD_RESOLUTION) -> np.ndarray:
    """The VOT toolkit's confidence thresholds: NaN dropped, sorted descending, ``resolution - 2`` evenly
    spread values (all of them when fewer), with +inf first and -inf last. Returns (K,) float64."""
    values = np.asarray([s for s in np.ravel(np.asarray(scores, dtype=np.float64)) if not math.isnan(s)])
    values = np.sort(values)[::-1]
    if len(values) > resolution - 2:
        delta = math.floor(len(values) / (resolution - 2))
        idx = np.round(np.linspace(delta, len(values) - delta, num=resolution - 2)).astype(int)
        values = values[idx]
    return np.concatenate([[np.inf], values, [-np.inf]])


def bounded_iou(gt_xywh, pred_xywh, image_wh) -> np.ndarray:
    """(T, 4), (T, 4) boxes -> (T,) IoU of the boxes clipped to ``[0, W] x [0, H]``; 0 where either box
    is empty (NaN, or no area inside the image)."""
    w_img, h_img = image_wh
    a, b = np.asarray(gt_xywh, np.float64), np.asarray(pred_xywh, np.float64)

    def corners(box):
        x1, y1 = np.clip(box[:, 0], 0, w_img), np.clip(box[:, 1], 0, h_img)
        x2, y2 = np.clip(box[:, 0] + box[:, 2], 0, w_img), np.clip(box[:, 1] + box[:, 3], 0, h_img)
        return x1, y1, x2, y2

    ax1, ay1, ax2, ay2 = corners(a)
    bx1, by1, bx2, by2 = corners(b)
    inter = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None) * \
        np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    return np.nan_to_num(np.clip(iou, 0, 1), nan=0.0)


def lt_overlaps(gt_xywh, pred_xywh, visible, image_wh) -> np.ndarray:
    """Per-frame overlaps of the long-term measures: bounded IoU where the target is visible, 0 where it
    is absent (the tracker always reports a box). (T,) float64."""
    visible = np.asarray(visible, dtype=bool)
    return np.where(visible, bounded_iou(gt_xywh, pred_xywh, image_wh), 0.0)


def pr_re_curves(overlaps, confidence, n_visible: int, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """One sequence's precision and recall at each threshold (the toolkit's ``compute_tpr_curves``).

    overlaps, confidence: (T,) over the evaluated frames (a NaN confidence is never reported: NaN >= tau
    is False). n_visible: frames where the target is visible.
    Returns ((K,), (K,)) float64.
    """
    overlaps, confidence = np.asarray(overlaps, np.float64), np.asarray(confidence, np.float64)
    precision, recall = np.ones(len(thresholds)), np.zeros(len(thresholds))
    with np.errstate(invalid="ignore"):
        for k, tau in enumerate(thresholds):
            reported = confidence >= tau
            if reported.any():
                precision[k] = overlaps[reported].mean()
                recall[k] = overlaps[reported].sum() / n_visible if n_visible else 0.0
    return precision, recall


def f_curve(precision, recall) -> np.ndarray:
    """F(tau) = 2 Pr Re / (Pr + Re); 0 where both are 0."""
    pr, re = np.asarray(precision, np.float64), np.asarray(recall, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(2 * pr * re / (pr + re), nan=0.0)


@dataclass(frozen=True)
class SequenceLT:
    """What one sequence contributes: per-frame overlaps (T-1,) and confidences over frames 1..T-1, the
    visible count, and the re-detection events."""

    overlaps: np.ndarray
    confidence: np.ndarray
    n_visible: int
    redetect_delays: tuple[int, ...]     # one per re-detected reappearance
    reappearances: int


def sequence_lt(gt_xywh, pred_xywh, scores, absent, image_wh) -> SequenceLT:
    """Prepare one sequence: ``scores`` (T,) are the tracker's confidences (NaN at frame 0), ``absent``
    (T,) bool. Frame 0 is dropped (see the module doc)."""
    gt = np.asarray(gt_xywh, np.float64)
    visible = ~np.asarray(absent, dtype=bool) & np.all(np.isfinite(gt), axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    pred = np.asarray(pred_xywh, np.float64)
    overlaps = lt_overlaps(gt, pred, visible, image_wh)
    delays, events = redetection_delays(overlaps, visible)
    return SequenceLT(overlaps[1:], np.asarray(scores, np.float64)[1:], int(visible[1:].sum()), delays, events)


def redetection_delays(overlaps, visible, iou: float = REDETECT_IOU) -> tuple[tuple[int, ...], int]:
    """(delays of the re-detected reappearances, number of reappearances); see the module doc."""
    visible = np.asarray(visible, dtype=bool)
    delays, events = [], 0
    for t in range(1, len(visible)):
        if not (visible[t] and not visible[t - 1]):
            continue
        events += 1
        u = t
        while u < len(visible) and visible[u]:
            if overlaps[u] > iou:
                delays.append(u - t)
                break
            u += 1
    return tuple(delays), events


@dataclass(frozen=True)
class LongTermScores:
    """Dataset-level VOT-LT numbers: curves over ``thresholds``, and the point of the best F."""

    thresholds: np.ndarray
    precision_curve: np.ndarray       # (K,) mean over sequences
    recall_curve: np.ndarray
    per_sequence_precision: np.ndarray   # (S, K)
    per_sequence_recall: np.ndarray
    best: int                          # index of the best F

    @property
    def fscore_curve(self) -> np.ndarray:
        return f_curve(self.precision_curve, self.recall_curve)

    @property
    def fscore(self) -> float:
        return float(self.fscore_curve[self.best])

    @property
    def precision(self) -> float:
        return float(self.precision_curve[self.best])

    @property
    def recall(self) -> float:
        return float(self.recall_curve[self.best])

    @property
    def threshold(self) -> float:
        return float(self.thresholds[self.best])

    def sequence_values(self) -> list[dict]:
        """Per sequence: Pr, Re and F at the dataset's best threshold (their means are the dataset's Pr
        and Re; the mean of the F values is not the dataset F, which is F of the means)."""
        pr, re = self.per_sequence_precision[:, self.best], self.per_sequence_recall[:, self.best]
        return [{"lt_precision": float(p), "lt_recall": float(r), "lt_fscore": float(f)}
                for p, r, f in zip(pr, re, f_curve(pr, re))]


def longterm_scores(sequences: list[SequenceLT], thresholds=None) -> LongTermScores:
    """Average the sequences' curves and pick the best F (first maximum, as the toolkit's ``index``)."""
    if not sequences:
        raise ValueError("no sequences to score")
    if thresholds is None:
        thresholds = determine_thresholds(np.concatenate([s.confidence for s in sequences]))
    curves = [pr_re_curves(s.overlaps, s.confidence, s.n_visible, thresholds) for s in sequences]
    pr = np.array([c[0] for c in curves])
    re = np.array([c[1] for c in curves])
    mean_pr, mean_re = pr.mean(axis=0), re.mean(axis=0)
    best = int(np.argmax(f_curve(mean_pr, mean_re)))
    return LongTermScores(np.asarray(thresholds, np.float64), mean_pr, mean_re, pr, re, best)


def jackknife_fscore(scores: LongTermScores, other: LongTermScores | None = None) -> float | None:
    """Standard error over sequences of the dataset F-score (or, with ``other`` scored on the same
    sequences, of ``F - F_other``: a paired error), by the leave-one-sequence-out jackknife with the
    thresholds fixed: ``sqrt((n-1)/n * sum (theta_i - mean theta)^2)``. None below 2 sequences."""
    n = len(scores.per_sequence_precision)
    if n < 2 or (other is not None and len(other.per_sequence_precision) != n):
        return None

    def fmax(s: LongTermScores, keep) -> float:
        return float(np.max(f_curve(s.per_sequence_precision[keep].mean(0), s.per_sequence_recall[keep].mean(0))))

    thetas = []
    for i in range(n):
        keep = np.arange(n) != i
        thetas.append(fmax(scores, keep) - (fmax(other, keep) if other is not None else 0.0))
    thetas = np.asarray(thetas)
    return float(math.sqrt((n - 1) / n * np.sum((thetas - thetas.mean()) ** 2)))


def sequence_se(scores: LongTermScores, key: str) -> float | None:
    """Standard error over sequences (``std(ddof=1) / sqrt(n)``) of a ``sequence_values`` entry
    ("lt_precision" or "lt_recall": their mean is the dataset value); None below 2 sequences."""
    values = np.array([v[key] for v in scores.sequence_values()])
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None


def redetection_summary(sequences: list[SequenceLT]) -> dict:
    """Pooled over sequences: reappearances, re-detected ones, their rate and mean delay (frames)."""
    delays = [d for s in sequences for d in s.redetect_delays]
    events = sum(s.reappearances for s in sequences)
    return {"reappearances": events, "redetected": len(delays),
            "redetect_rate": len(delays) / events if events else None,
            "redetect_delay_mean": float(np.mean(delays)) if delays else None}


def summary(scores: LongTermScores, sequences: list[SequenceLT]) -> dict:
    """The numbers ``siamtrack accuracy`` reports: Pr, Re, F at the best threshold, its SE, re-detection."""
    return {"lt_precision": scores.precision, "lt_recall": scores.recall, "lt_fscore": scores.fscore,
            "lt_fscore_se": jackknife_fscore(scores), "lt_threshold": scores.threshold,
            **redetection_summary(sequences)}

"""Anchor targets for one search crop, as pysot's ``AnchorTarget`` assigns them.

Coordinates are search-crop pixels (0..instance_size-1) with the crop centre at ``instance_size // 2``
(127 for a 255 crop). Anchors are laid out (A, S, S): anchor-major, then row (y), then column (x), the
same order as the runtime's flattened candidates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.contract import TrackerConfig


@dataclass(frozen=True)
class TargetRules:
    """pysot TRAIN.* label assignment values."""

    thr_high: float = 0.6
    thr_low: float = 0.3
    pos_num: int = 16
    total_num: int = 64
    neg_num: int = 16


@dataclass(frozen=True)
class AnchorTargets:
    """Labels for one search crop.

    cls: (A, S, S) int64, 1 positive, 0 negative, -1 ignored.
    delta: (4, A, S, S) float32 regression targets (dx, dy, dw, dh); all zero for a negative pair.
    delta_weight: (A, S, S) float32, 1/num_pos on positives, 0 elsewhere.
    overlap: (A, S, S) float32 IoU of each anchor with the target (zeros for a negative pair).
    """

    cls: np.ndarray
    delta: np.ndarray
    delta_weight: np.ndarray
    overlap: np.ndarray


def training_anchors(config: TrackerConfig) -> tuple[np.ndarray, np.ndarray]:
    """Anchors in absolute search-crop coordinates.

    Returns (corners (4, A, S, S) x1,y1,x2,y2 and centres (4, A, S, S) cx,cy,w,h), float32, centred on
    ``instance_size // 2``, with the runtime's anchor sizes and grid.
    """
    from runtime.anchors import anchor_table

    a, s = config.anchor_num, config.score_size
    grid = anchor_table(config).reshape(a, s, s, 4).transpose(3, 0, 1, 2)  # (4, A, S, S) cx,cy,w,h
    centre = grid.astype(np.float32).copy()
    centre[0] += config.instance_size // 2
    centre[1] += config.instance_size // 2
    cx, cy, w, h = centre
    corners = np.stack([cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5]).astype(np.float32)
    return corners, centre


def iou_corners(corners: np.ndarray, box_xyxy: np.ndarray) -> np.ndarray:
    """IoU of anchors (4, ...) with one box, corner form, no +1 (pysot's utils.bbox.IoU)."""
    x1, y1, x2, y2 = corners
    tx1, ty1, tx2, ty2 = (float(v) for v in box_xyxy)
    iw = np.clip(np.minimum(x2, tx2) - np.maximum(x1, tx1), 0, None)
    ih = np.clip(np.minimum(y2, ty2) - np.maximum(y1, ty1), 0, None)
    inter = iw * ih
    union = (x2 - x1) * (y2 - y1) + (tx2 - tx1) * (ty2 - ty1) - inter
    return inter / union


def _keep_random(where: tuple[np.ndarray, ...], keep: int, rng: np.random.Generator):
    num = where[0].shape[0]
    if num <= keep:
        return where, num
    pick = rng.permutation(num)[:keep]
    return tuple(w[pick] for w in where), keep


def assign_targets(box_xyxy: np.ndarray, config: TrackerConfig, rng: np.random.Generator, negative: bool = False,
                   rules: TargetRules = TargetRules(), anchors=None) -> AnchorTargets:
    """Label every anchor for a target box ``box_xyxy`` (search-crop pixels, corner form).

    A negative pair (template and search show different objects) marks ``rules.neg_num`` anchors of the
    7x7 cells around the target's cell as negatives and nothing else, exactly as pysot.
    """
    corners, centre = anchors if anchors is not None else training_anchors(config)
    a, s = config.anchor_num, config.score_size
    cls = -np.ones((a, s, s), dtype=np.int64)
    delta = np.zeros((4, a, s, s), dtype=np.float32)
    delta_weight = np.zeros((a, s, s), dtype=np.float32)
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    tcx, tcy, tw, th = (x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1
    if negative:
        half = config.instance_size // 2
        cx = s // 2 + int(np.ceil((tcx - half) / config.stride + 0.5))
        cy = s // 2 + int(np.ceil((tcy - half) / config.stride + 0.5))
        region = np.zeros((a, s, s), dtype=bool)
        region[:, max(0, cy - 3):min(s, cy + 4), max(0, cx - 3):min(s, cx + 4)] = True
        neg, _ = _keep_random(np.where(region), rules.neg_num, rng)
        cls[neg] = 0
        return AnchorTargets(cls, delta, delta_weight, np.zeros((a, s, s), dtype=np.float32))
    acx, acy, aw, ah = centre
    delta[0] = (tcx - acx) / aw
    delta[1] = (tcy - acy) / ah
    delta[2] = np.log(tw / aw)
    delta[3] = np.log(th / ah)
    overlap = iou_corners(corners, np.array([x1, y1, x2, y2])).astype(np.float32)
    pos, pos_num = _keep_random(np.where(overlap > rules.thr_high), rules.pos_num, rng)
    neg, _ = _keep_random(np.where(overlap < rules.thr_low), rules.total_num - rules.pos_num, rng)
    cls[pos] = 1
    delta_weight[pos] = 1.0 / (pos_num + 1e-6)
    cls[neg] = 0
    return AnchorTargets(cls, delta, delta_weight, overlap)

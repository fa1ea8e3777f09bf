"""From raw head outputs to new target states: pysot ``SiamRPNTracker.track`` after the model call.

All functions take N targets at once and never modify their inputs (pysot decodes ``loc`` in place).
Candidate order is anchor-major, then row, then column (see ``runtime.anchors``); K = A*S*S.

Arithmetic follows pysot under numpy >= 2 dtype rules, made explicit so numpy 1.x gives the same
result: softmax and box decoding in float32 (as pysot's torch/numpy float32 arrays), the penalties,
window, smoothing and clipping in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.contract import TrackerConfig


def foreground_scores(cls: np.ndarray) -> np.ndarray:
    """cls (N, 2A, S, S) with channels [bg x A, fg x A] -> (N, K) float32 foreground softmax."""
    n = cls.shape[0]
    logits = np.asarray(cls, dtype=np.float32).reshape(n, 2, -1)      # (N, 2 [bg, fg], K)
    peak = np.maximum(logits[:, 0], logits[:, 1])                      # (N, K)
    bg = np.exp(logits[:, 0] - peak)
    fg = np.exp(logits[:, 1] - peak)
    return fg / (bg + fg)


def decode_boxes(loc: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """loc (N, 4A, S, S) [dx x A, dy x A, dw x A, dh x A], anchors (K, 4) float32 [cx, cy, w, h] ->
    (N, 4, K) float32 boxes [cx, cy, w, h] in search-crop pixels, cx/cy relative to the crop centre.
    A new array; ``loc`` is left untouched.
    """
    n = loc.shape[0]
    delta = np.asarray(loc, dtype=np.float32).reshape(n, 4, -1)        # (N, 4, K), a view
    out = np.empty(delta.shape, dtype=np.float32)
    out[:, 0] = delta[:, 0] * anchors[:, 2] + anchors[:, 0]
    out[:, 1] = delta[:, 1] * anchors[:, 3] + anchors[:, 1]
    out[:, 2:] = np.exp(np.ascontiguousarray(delta[:, 2:]))            # (N, 2, K)
    out[:, 2] *= anchors[:, 2]
    out[:, 3] *= anchors[:, 3]
    return out


def _change(ratio: np.ndarray) -> np.ndarray:
    return np.maximum(ratio, 1.0 / ratio)


def _padded_side(w, h):
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


def penalties(boxes: np.ndarray, size_wh: np.ndarray, scale_z: np.ndarray, config: TrackerConfig) -> np.ndarray:
    """Scale- and ratio-change penalty (N, K) float64.

    boxes (N, 4, K) float32 decoded crop boxes; size_wh (N, 2) float64 current sizes in frame pixels;
    scale_z (N,) float64 crop pixels per frame pixel (``exemplar_size / s_z``).
    """
    pred_side = _padded_side(boxes[:, 2], boxes[:, 3]).astype(np.float64)          # (N, K)
    size = np.asarray(size_wh, dtype=np.float64)
    cur_side = _padded_side(size[:, 0] * scale_z, size[:, 1] * scale_z)            # (N,)
    s_c = _change(pred_side / cur_side[:, None])
    pred_ratio = (boxes[:, 2] / boxes[:, 3]).astype(np.float64)                     # (N, K)
    r_c = _change((size[:, 0] / size[:, 1])[:, None] / pred_ratio)
    return np.exp(-(r_c * s_c - 1) * config.penalty_k)


@dataclass(frozen=True)
class Selection:
    """The chosen candidate per target, in frame pixels (N targets).

    center_xy, size_wh: (N, 2) float64 new state (clipped, size smoothed). score: (N,) float32 raw
    foreground score of the chosen candidate. index: (N,) int64 flat candidate index.
    """

    center_xy: np.ndarray
    size_wh: np.ndarray
    score: np.ndarray
    index: np.ndarray


def select(cls: np.ndarray, loc: np.ndarray, center_xy: np.ndarray, size_wh: np.ndarray,
           scale_z: np.ndarray, frame_hw: tuple[int, int], config: TrackerConfig,
           anchors: np.ndarray, window: np.ndarray) -> Selection:
    """pysot's track step after the model: score, decode, penalise, window, argmax, smooth, clip.

    center_xy, size_wh: (N, 2) float64 current state in frame pixels; scale_z: (N,) float64;
    frame_hw: (H, W) of the frame being tracked; anchors (K, 4) float32; window (K,) float64.
    """
    score = foreground_scores(cls)                                  # (N, K) float32
    boxes = decode_boxes(loc, anchors)                              # (N, 4, K) float32
    penalty = penalties(boxes, size_wh, scale_z, config)            # (N, K) float64
    pscore = penalty * score
    pscore = pscore * (1 - config.window_influence) + window * config.window_influence
    best = np.argmax(pscore, axis=1)                                # first index on ties
    rows = np.arange(len(best))
    chosen = boxes[rows, :, best].astype(np.float64) / np.asarray(scale_z, np.float64)[:, None]   # (N, 4)
    best_score = score[rows, best]
    lr = penalty[rows, best] * best_score.astype(np.float64) * config.lr        # (N,)

    center = np.asarray(center_xy, dtype=np.float64)
    size = np.asarray(size_wh, dtype=np.float64)
    cx = chosen[:, 0] + center[:, 0]
    cy = chosen[:, 1] + center[:, 1]
    width = size[:, 0] * (1 - lr) + chosen[:, 2] * lr
    height = size[:, 1] * (1 - lr) + chosen[:, 3] * lr
    frame_h, frame_w = frame_hw
    # pysot's _bbox_clip: centre inside [0, W] x [0, H] (inclusive), size in [10, W] x [10, H].
    cx = np.maximum(0.0, np.minimum(cx, frame_w))
    cy = np.maximum(0.0, np.minimum(cy, frame_h))
    width = np.maximum(10.0, np.minimum(width, frame_w))
    height = np.maximum(10.0, np.minimum(height, frame_h))
    return Selection(center_xy=np.stack([cx, cy], axis=1), size_wh=np.stack([width, height], axis=1),
                     score=best_score, index=best)

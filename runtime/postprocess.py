"""From raw head outputs to new target states: pysot ``SiamRPNTracker.track`` after the model call,
and the long-term variant's state rule (``SiamRPNLTTracker``: ``long_term_update``).

All functions take N targets at once and never modify their inputs (pysot decodes ``loc`` in place).
Candidate order is anchor-major, then row, then column (see ``runtime.anchors``); K = A*S*S.

Arithmetic follows pysot under numpy >= 2 dtype rules, made explicit so numpy 1.x gives the same
result: softmax and box decoding in float32 (as pysot's torch/numpy float32 arrays), the penalties,
window, smoothing and clipping in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runtime.contract import TrackerConfig


def foreground_scores(cls: np.ndarray) -> np.ndarray:
    """cls (N, 2A, S, S) with channels [bg x A, fg x A] -> (N, K) float32 foreground softmax."""
    n = cls.shape[0]
    logits = np.asarray(cls, dtype=np.float32).reshape(n, 2, -1)      # (N, 2 [bg, fg], K)
    peak = np.maximum(logits[:, 0], logits[:, 1])                      # (N, K)
    # exp(bg - peak), exp(fg - peak), fg / (bg + fg): the same float32 operations in the same order,
    # written into two arrays instead of six (fewer allocations on the per-frame path)
    bg = np.subtract(logits[:, 0], peak)
    np.exp(bg, out=bg)
    fg = np.subtract(logits[:, 1], peak, out=peak)
    np.exp(fg, out=fg)
    bg += fg
    return np.divide(fg, bg, out=fg)


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


# pysot's SiamRPNLTTracker hard-codes this window influence for the lost state (it is no config key):
# the large crop is then searched on score and penalty alone, wherever the target reappears.
LOST_WINDOW_INFLUENCE = 0.001


@dataclass(frozen=True)
class Selection:
    """The chosen candidate per target, in frame pixels (N targets).

    center_xy, size_wh: (N, 2) float64 new state (size smoothed; clipped to the frame by ``select``, not
    by ``choose``). score: (N,) float32 raw foreground score of the chosen candidate. index: (N,) int64
    flat candidate index.
    """

    center_xy: np.ndarray
    size_wh: np.ndarray
    score: np.ndarray
    index: np.ndarray


# Per (anchors, window, influence) constants of one response map, built once: the anchor table as four
# contiguous rows (a column of the (K, 4) table is a strided view, 3x slower to read) and the window
# term ``window * influence`` (the same product pysot forms every frame, so the same float64 values).
@dataclass(frozen=True, eq=False)
class _Grid:
    anchor_x: np.ndarray    # (K,) float32
    anchor_y: np.ndarray
    anchor_w: np.ndarray
    anchor_h: np.ndarray
    window_term: np.ndarray  # (K,) float64


_GRIDS: dict[tuple[int, int, float], tuple[np.ndarray, np.ndarray, _Grid]] = {}


def _grid(anchors: np.ndarray, window: np.ndarray, influence: float) -> _Grid:
    """Constants for ``choose``; cached only for arrays that cannot change under the cache (read-only and
    owning their data, as ``runtime.anchors`` returns them); others are converted on every call."""
    key = (id(anchors), id(window), float(influence))
    hit = _GRIDS.get(key)
    if hit is not None and hit[0] is anchors and hit[1] is window \
            and not anchors.flags.writeable and not window.flags.writeable:
        return hit[2]                    # the same read-only arrays it was made from (owndata checked then)
    cacheable = all(not a.flags.writeable and a.flags.owndata for a in (anchors, window))
    rows = np.ascontiguousarray(np.asarray(anchors, dtype=np.float32).T)          # (4, K)
    grid = _Grid(rows[0], rows[1], rows[2], rows[3], np.asarray(window, dtype=np.float64) * influence)
    if cacheable:
        if len(_GRIDS) >= 16:
            _GRIDS.clear()
        _GRIDS[key] = (anchors, window, grid)     # the arrays are kept, so their ids stay theirs
    return grid


# Only the argmax of pscore and the values at it leave ``choose``. Since the penalty is at most 1 (both
# change factors are >= 1, so exp's argument is <= 0) and every step after it is a monotone float64
# operation, ``bound = score * (1 - influence) + window * influence`` is >= pscore element for element,
# in rounded arithmetic too. So the penalty, which costs most, is computed exactly (pysot's operations,
# dtypes and order) for the candidates whose bound reaches a pscore already found, and the first
# maximum among them is pysot's argmax. Not when the bound argument does not hold (non-finite or huge
# outputs, odd config): then, and when too many candidates remain, every candidate is computed.
_BOUND_MARGIN = 0.25          # first guess: candidates whose bound is within 0.25 * (1 - influence) of the top
_MAX_LOG_SIZE_DELTA = 20.0    # |dw|, |dh| below this keep every penalty finite (exp(20) * 104 px ~ 5e10)


def _pscore_at(idx, score, dw, dh, grid: _Grid, cur_side: float, cur_ratio: float, keep: float,
               penalty_k: float):
    """(penalty, pscore, w, h) of one target's candidates ``idx`` (index array or slice), with the
    operations of ``decode_boxes`` + ``penalties`` + choose's pscore, element for element."""
    w = np.exp(dw[idx])                                   # float32, as decode_boxes
    w *= grid.anchor_w[idx]
    h = np.exp(dh[idx])
    h *= grid.anchor_h[idx]
    pad = w + h
    pad *= 0.5                                            # _padded_side in float32
    side = w + pad
    side *= h + pad
    np.sqrt(side, out=side)
    s_c = np.divide(side, cur_side, dtype=np.float64)     # pred_side.astype(f64) / cur_side
    np.maximum(s_c, np.divide(1.0, s_c), out=s_c)
    r_c = np.divide(cur_ratio, w / h, dtype=np.float64)   # ratio / (w / h).astype(f64)
    np.maximum(r_c, np.divide(1.0, r_c), out=r_c)
    r_c *= s_c
    np.subtract(1.0, r_c, out=r_c)                        # -(x - 1) == 1 - x exactly (rounding is symmetric)
    r_c *= penalty_k
    penalty = np.exp(r_c, out=r_c)
    pscore = np.multiply(penalty, score[idx])
    pscore *= keep
    pscore += grid.window_term[idx]
    return penalty, pscore, w, h


def choose(cls: np.ndarray, loc: np.ndarray, center_xy: np.ndarray, size_wh: np.ndarray,
           scale_z: np.ndarray, config: TrackerConfig, anchors: np.ndarray, window: np.ndarray,
           window_influence: float | None = None) -> Selection:
    """pysot's track step after the model, up to (not including) the clip: score, decode, penalise,
    window, argmax, move and smooth. Shared by the short-term and the long-term tracker.

    center_xy, size_wh: (N, 2) float64 current state in frame pixels; scale_z: (N,) float64;
    anchors (K, 4) float32 and window (K,) float64 of the response map the outputs have (S x S);
    window_influence: default ``config.window_influence`` (LOST_WINDOW_INFLUENCE for a lost target).
    Same values as pysot (argmax and everything at it), computed for the candidates that can win.
    """
    influence = config.window_influence if window_influence is None else window_influence
    grid = _grid(anchors, window, influence)
    keep = 1 - influence
    score = foreground_scores(cls)                                  # (N, K) float32
    n, k = score.shape
    delta = np.asarray(loc, dtype=np.float32).reshape(n, 4, k)      # (N, 4, K), a view
    center = np.asarray(center_xy, dtype=np.float64).tolist()
    size = np.asarray(size_wh, dtype=np.float64).tolist()
    scales = np.asarray(scale_z, dtype=np.float64).reshape(n).tolist()
    bound_ok = config.penalty_k >= 0 and 0 <= influence <= 1
    bound = np.empty(k, dtype=np.float64)
    new_center, new_size, best, best_score = [], [], [], []
    # Per target, in Python floats where the values are scalars: float64 arithmetic is IEEE double
    # either way (same operations, same order), and a Python float operation is ~20x cheaper than a
    # numpy call on a 1-element array.
    for t in range(n):
        (width, height), scale = size[t], scales[t]
        side_w, side_h = width * scale, height * scale
        pad = (side_w + side_h) * 0.5
        cur_side = math.sqrt((side_w + pad) * (side_h + pad))       # _padded_side, float64
        cur_ratio = width / height
        args = (score[t], delta[t, 2], delta[t, 3], grid, cur_side, cur_ratio, keep, config.penalty_k)
        found = None
        wh_delta = delta[t, 2:]
        if bound_ok and math.isfinite(cur_side) and cur_side > 0 and math.isfinite(cur_ratio) and cur_ratio > 0 \
                and -_MAX_LOG_SIZE_DELTA < wh_delta.min() and wh_delta.max() < _MAX_LOG_SIZE_DELTA:
            np.multiply(score[t], keep, out=bound, dtype=np.float64)
            bound += grid.window_term
            guess = bound.max() - _BOUND_MARGIN * keep              # NaN for a NaN score: no candidate
            idx = np.flatnonzero(bound >= guess)
            if 0 < len(idx) <= k // 4:
                found = _pscore_at(idx, *args)
                if found[1].max() < guess:                          # the guess was too high: widen
                    idx = np.flatnonzero(bound >= found[1].max())
                    found = _pscore_at(idx, *args) if len(idx) <= k // 4 else None
        if found is not None:
            penalty, pscore, w, h = found
        else:                                                       # every candidate
            idx = None
            penalty, pscore, w, h = _pscore_at(slice(None), *args)
        j = int(np.argmax(pscore))                                  # first index on ties, as pysot
        i = j if idx is None else int(idx[j])
        # the box centre is decoded at the chosen candidate only (decode_boxes' float32 operations)
        x = delta[t, 0, i] * grid.anchor_w[i] + grid.anchor_x[i]
        y = delta[t, 1, i] * grid.anchor_h[i] + grid.anchor_y[i]
        chosen_x, chosen_y = float(x) / scale, float(y) / scale
        chosen_w, chosen_h = float(w[j]) / scale, float(h[j]) / scale
        lr = float(penalty[j]) * float(score[t, i]) * config.lr
        new_center.append((chosen_x + center[t][0], chosen_y + center[t][1]))
        new_size.append((width * (1 - lr) + chosen_w * lr, height * (1 - lr) + chosen_h * lr))
        best.append(i)
        best_score.append(score[t, i])
    return Selection(center_xy=np.array(new_center, dtype=np.float64).reshape(n, 2),
                     size_wh=np.array(new_size, dtype=np.float64).reshape(n, 2),
                     score=np.array(best_score, dtype=np.float32), index=np.array(best, dtype=np.int64))


def clip_to_frame(center_xy: np.ndarray, size_wh: np.ndarray, frame_hw: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """pysot's ``_bbox_clip``: centre inside [0, W] x [0, H] (inclusive), size in [10, W] x [10, H].
    (N, 2), (N, 2) float64 -> new (N, 2), (N, 2) float64. A NaN stays NaN (the tracker's degenerate-state
    check reports it on the next frame; pysot's Python ``max(0, min(nan, W))`` would make it 0)."""
    frame_h, frame_w = frame_hw
    limits = (float(frame_w), float(frame_h))
    return _clamped(center_xy, 0.0, limits), _clamped(size_wh, 10.0, limits)


def _clamped(values, low: float, limits: tuple[float, float]) -> np.ndarray:
    """(N, 2) -> (N, 2) float64 ``max(low, min(v, limit))`` per column, NaN kept. min then max, in this
    order (np.clip would give W, not 10, for a frame narrower than 10 px); in Python floats, which round
    alike and cost a tenth of numpy's calls on a few values."""
    rows = np.asarray(values, dtype=np.float64).reshape(-1, 2).tolist()
    out = [[v if v != v else max(low, min(v, hi)) for v, hi in zip(row, limits)] for row in rows]
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def select(cls: np.ndarray, loc: np.ndarray, center_xy: np.ndarray, size_wh: np.ndarray,
           scale_z: np.ndarray, frame_hw: tuple[int, int], config: TrackerConfig,
           anchors: np.ndarray, window: np.ndarray) -> Selection:
    """The short-term step (pysot ``SiamRPNTracker.track``): ``choose``, then clip; the clipped box is
    the new state.

    center_xy, size_wh: (N, 2) float64 current state in frame pixels; scale_z: (N,) float64;
    frame_hw: (H, W) of the frame being tracked; anchors (K, 4) float32; window (K,) float64.
    """
    chosen = choose(cls, loc, center_xy, size_wh, scale_z, config, anchors, window)
    center, size = clip_to_frame(chosen.center_xy, chosen.size_wh, frame_hw)
    return Selection(center_xy=center, size_wh=size, score=chosen.score, index=chosen.index)


@dataclass(frozen=True)
class LongTermStep:
    """The long-term tracker's outcome for N targets.

    center_xy, size_wh: (N, 2) float64 new state, NOT clipped (pysot's LT tracker stores the state before
    ``_bbox_clip``). box_center_xy, box_size_wh: (N, 2) float64 the clipped box it reports. lost: (N,)
    bool, the lost state for the next frame. score: (N,) float32 raw score of the chosen candidate.
    """

    center_xy: np.ndarray
    size_wh: np.ndarray
    box_center_xy: np.ndarray
    box_size_wh: np.ndarray
    lost: np.ndarray
    score: np.ndarray


def long_term_update(chosen: Selection, center_xy: np.ndarray, size_wh: np.ndarray, lost: np.ndarray,
                     frame_hw: tuple[int, int], config: TrackerConfig) -> LongTermStep:
    """pysot ``SiamRPNLTTracker.track`` after the argmax, for N targets (``chosen`` from ``choose``).

    The quirks kept for parity, in pysot's order:
    - the RAW score of the chosen candidate (not the penalised or windowed one) is compared with the
      thresholds, in float32: pysot compares a numpy float32 scalar with a Python float, which numpy >= 2
      does in float32 (a score of exactly float32(0.998) is not above CONFIDENCE_HIGH 0.998);
    - below CONFIDENCE_LOW the state keeps its old centre and size (no move, no size update);
    - the state is stored BEFORE the clip, only the reported box is clipped (the short-term tracker
      stores the clipped box), so a lost target's centre may lie outside the frame;
    - the lost flag is set below CONFIDENCE_LOW and cleared above CONFIDENCE_HIGH; in between it stays
      as it was, while the state does move (score >= CONFIDENCE_LOW).
    center_xy, size_wh: (N, 2) float64 state before this frame; lost: (N,) bool lost state before it.
    """
    score = np.asarray(chosen.score, dtype=np.float32)
    low, high = np.float32(config.confidence_low), np.float32(config.confidence_high)
    keep = (score >= low)[:, None]                                   # (N, 1) bool: update the state
    center = np.where(keep, chosen.center_xy, np.asarray(center_xy, dtype=np.float64))
    size = np.where(keep, chosen.size_wh, np.asarray(size_wh, dtype=np.float64))
    box_center, box_size = clip_to_frame(center, size, frame_hw)
    now_lost = np.where(score < low, True, np.where(score > high, False, np.asarray(lost, dtype=bool)))
    return LongTermStep(center_xy=center, size_wh=size, box_center_xy=box_center, box_size_wh=box_size,
                        lost=now_lost, score=score)

"""Anchor table and cosine window of the SiamRPN response map, as pysot's ``SiamRPNTracker`` builds them.

Candidate index ``n = a*S*S + i*S + j`` (a = anchor, i = row (y), j = column (x)), S = score size; this
is the flat order of pysot's ``permute(1, 2, 3, 0).view(K, -1)`` and of every array here.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from runtime.contract import TrackerConfig


def anchor_sizes(config: TrackerConfig) -> np.ndarray:
    """(A, 2) float32 anchor (w, h) in search-crop pixels, ratio-major then scale (pysot ``Anchors``).

    Sizes come from integer truncation of ``sqrt(stride^2 / r)`` and of ``ws * r``, with the ratios used
    literally (0.33, not 1/3): r50 gives 104x32, 88x40, 64x64, 40x80, 32x96.
    """
    area = config.stride * config.stride
    sizes = []
    for ratio in config.ratios:
        ws = int(math.sqrt(area * 1.0 / ratio))
        hs = int(ws * ratio)
        for scale in config.scales:
            sizes.append((ws * scale, hs * scale))
    return np.asarray(sizes, dtype=np.float32)


@lru_cache(maxsize=16)
def _anchor_table(config: TrackerConfig, size: int) -> np.ndarray:
    stride = config.stride
    wh = anchor_sizes(config)                                     # (A, 2)
    num = wh.shape[0]
    origin = -(size // 2) * stride
    offsets = (origin + stride * np.arange(size)).astype(np.float32)   # (S,) crop-centre offsets, px
    # the table owns its data (not a reshaped view), so read-only means unchangeable: postprocess caches
    # constants derived from it on that condition
    table = np.empty((num * size * size, 4), dtype=np.float32)
    cells = table.reshape(num, size, size, 4)                     # (A, S rows, S cols, [cx, cy, w, h])
    cells[..., 0] = offsets[None, None, :]
    cells[..., 1] = offsets[None, :, None]
    cells[..., 2] = wh[:, 0, None, None]
    cells[..., 3] = wh[:, 1, None, None]
    table.setflags(write=False)
    return table


def anchor_table(config: TrackerConfig, score_size: int | None = None) -> np.ndarray:
    """(A*S*S, 4) float32 anchors ``[cx, cy, w, h]``; cx, cy are offsets in search-crop pixels from the
    crop centre (-96..+96 for r50). S is ``score_size``, default ``config.score_size``; the long-term
    tracker also asks for ``config.lost_score_size`` (97 for r50: -384..+384), built the same way as pysot's
    ``generate_anchor(score_size)``. Cached per (config, S) and read-only: copy before changing it.
    """
    return _anchor_table(config, config.score_size if score_size is None else int(score_size))


@lru_cache(maxsize=16)
def _window(config: TrackerConfig, size: int) -> np.ndarray:
    hanning = np.hanning(size)                                    # symmetric Hann, zeros at both ends
    window = np.tile(np.outer(hanning, hanning).flatten(), config.anchor_num)   # (A*S*S,) float64
    window = window if window.flags.owndata else window.copy()   # owning its data, as the table
    window.setflags(write=False)
    return window


def cosine_window(config: TrackerConfig, score_size: int | None = None) -> np.ndarray:
    """(A*S*S,) float64 cosine window, the same S x S Hann map repeated per anchor (outer ring is 0).
    S as in ``anchor_table``. Cached per (config, S) and read-only.
    """
    return _window(config, config.score_size if score_size is None else int(score_size))

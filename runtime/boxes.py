"""Box conventions of pysot's tracker (0-based pixel coordinates, ``[x, y, w, h]`` arrays in float64).

pysot's two conventions disagree and we keep both for parity: ``init`` takes the centre of
a box as ``x + (w - 1)/2`` while ``track`` reports ``cx - w/2``, a constant 0.5 px shift.
"""
from __future__ import annotations

import numpy as np


def xywh_to_center_size(boxes_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) ``[x, y, w, h]`` -> centres (N, 2) ``x + (w-1)/2, y + (h-1)/2`` and sizes (N, 2) ``w, h``
    (pysot ``init``)."""
    boxes = np.asarray(boxes_xywh, dtype=np.float64)
    center = boxes[:, :2] + (boxes[:, 2:] - 1) / 2
    return center, boxes[:, 2:].copy()


def center_size_to_xywh(center_xy: np.ndarray, size_wh: np.ndarray) -> np.ndarray:
    """Centres and sizes (..., 2) -> ``[cx - w/2, cy - h/2, w, h]`` (..., 4) (pysot ``track`` output)."""
    center = np.asarray(center_xy, dtype=np.float64)
    size = np.asarray(size_wh, dtype=np.float64)
    return np.concatenate([center - size / 2, size], axis=-1)

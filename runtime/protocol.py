"""Benchmark-protocol conventions a tracking client needs, next to the tracker that uses them.

pysot's ``tools/test.py`` (and so every published SiamRPN++ number) feeds the tracker boxes through two
conventions that are not the tracker's own; a client that wants pysot's numbers (the ``accuracy``
command, the TraX server, a user's evaluation script) must apply them the same way:

- **One-pass init shift.** For axis-aligned ground truth, test.py calls ``get_axis_aligned_bbox``
  (centre ``x + w/2``) and then initialises with ``[cx - (w-1)/2, cy - (h-1)/2, w, h]``, i.e. the box
  moved by +0.5 px in x and y (``one_pass_init_box``). The first result line of a one-pass run is that
  shifted box.
- **VOT region -> box.** A VOT region (8 polygon numbers, or 4 ``x,y,w,h`` numbers) becomes the
  tracker's ``[x, y, w, h]`` through the same ``get_axis_aligned_bbox`` + init formula
  (``vot_region_to_box``); an axis-aligned box goes back to pysot's inclusive-corner polygon with
  ``box_to_vot_polygon``. For a VOT ground-truth *rectangle*, test.py first makes that polygon, so the
  init box is the rectangle itself; ``vot_init_box`` applies both rules, as a VOT client needs.

All boxes are float64 ``[x, y, w, h]`` in 0-based frame pixels. Pure numpy.
"""
from __future__ import annotations

import numpy as np

ONE_PASS_INIT_SHIFT_XY = (0.5, 0.5)


def one_pass_init_box(gt_xywh) -> np.ndarray:
    """(4,) ground-truth box -> (4,) box to give ``init`` in a one-pass (OPE) run, as pysot does:
    ``[x + 0.5, y + 0.5, w, h]``."""
    box = np.asarray(gt_xywh, dtype=np.float64).reshape(4).copy()
    box[:2] += ONE_PASS_INIT_SHIFT_XY
    return box


def box_to_vot_polygon(box_xywh) -> np.ndarray:
    """(4,) xywh -> (8,) corners as pysot's ``tools/test.py`` builds them for an axis-aligned VOT box
    (inclusive ``+w-1`` pixel corners)."""
    x, y, w, h = (float(v) for v in np.ravel(box_xywh))
    return np.array([x, y, x, y + h - 1, x + w - 1, y + h - 1, x + w - 1, y])


def vot_region_to_box(region) -> np.ndarray:
    """pysot ``get_axis_aligned_bbox`` then its init box ``[cx-(w-1)/2, cy-(h-1)/2, w, h]``.

    8 values: centre = mean of the corners; (w, h) = the extents scaled by sqrt(A1/A2) plus 1, where A1
    is the product of the first two edge lengths (the polygon's area when it is a rectangle) and A2 the
    extents' area. 4 values (x,y,w,h): centre x + w/2. Returns (4,) float64.
    """
    r = np.asarray(region, dtype=np.float64).ravel()
    if r.size == 8:
        cx, cy = np.mean(r[0::2]), np.mean(r[1::2])
        x1, x2, y1, y2 = r[0::2].min(), r[0::2].max(), r[1::2].min(), r[1::2].max()
        a1 = np.linalg.norm(r[0:2] - r[2:4]) * np.linalg.norm(r[2:4] - r[4:6])
        a2 = (x2 - x1) * (y2 - y1)
        s = np.sqrt(a1 / a2) if a2 > 0 else 1.0
        w, h = s * (x2 - x1) + 1, s * (y2 - y1) + 1
    elif r.size == 4:
        cx, cy, w, h = r[0] + r[2] / 2, r[1] + r[3] / 2, r[2], r[3]
    else:
        raise ValueError(f"a VOT region has 4 or 8 numbers, got {r.size}")
    return np.array([cx - (w - 1) / 2, cy - (h - 1) / 2, w, h])


def vot_init_box(region) -> np.ndarray:
    """The box pysot's ``tools/test.py`` initialises with for a VOT ground-truth region: a 4-number
    rectangle is first turned into its inclusive-corner polygon (so the box is the rectangle itself),
    then ``vot_region_to_box``. (4,) float64 ``[x, y, w, h]``."""
    r = np.asarray(region, dtype=np.float64).ravel()
    return vot_region_to_box(box_to_vot_polygon(r) if r.size == 4 else r)

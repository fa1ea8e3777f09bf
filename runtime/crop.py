"""Square crops around targets, exactly as pysot's ``SiameseTracker.get_subwindow`` makes them.

Cropping (uint8, HWC) and preprocessing (``to_blob``: float32 NCHW) are separate functions so their
costs can be timed separately.

Geometry of a crop of side ``sz`` (integer frame pixels) centred at ``(cx, cy)`` (float, 0-based):
``xmin = floor(cx - (sz + 1)/2 + 0.5)``, ``xmax = xmin + sz - 1`` (same for y). Pixels outside the
frame take the per-channel mean of the first frame, **truncated** to uint8 (127.9 -> 127), as pysot's
write of a float64 mean into its uint8 padded frame does. The patch is then resized to the model size
with ``cv2.resize`` (INTER_LINEAR) on uint8, unless the sizes already agree.

pysot pads the whole frame before slicing; every padded cell gets the same mean value, so building
only the ``sz x sz`` patch (the in-frame part plus constant borders, ``cv2.copyMakeBorder``) gives the
same bytes without allocating the padded frame (tests/test_crop.py checks this against a
transcription of pysot's padding).

Allocation is capped: a crop of side ``sz`` that reaches outside the frame builds an ``sz x sz x 3``
patch, which for a huge box is gigabytes (a 12000x9000 box: a 40000 px search crop, 4.8 GB). Above
``MAX_EXACT_CROP_SIDE`` the crop is instead sampled straight from the frame with ``cv2.warpAffine``
(the same geometry as the resize; OpenCV's remap rounds its bilinear weights differently, so a pixel
may differ from pysot's by one grey level: tests/test_crop.py), allocating only the output. Below the cap, and for
any crop inside the frame (a view, no allocation), the bytes are pysot's.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

MAX_EXACT_CROP_SIDE = 6144  # px: a 113 MB padded patch; covers every crop of a 1920x1080 frame


def crop_origin(center: float, crop_side: int) -> int:
    """First pixel (x or y) of a ``crop_side`` crop centred at ``center``: ``floor(c - (sz+1)/2 + 0.5)``."""
    return int(math.floor(float(center) - (crop_side + 1) / 2 + 0.5))


def _patch(frame: np.ndarray, center_xy, crop_side: int, avg_chans) -> np.ndarray:
    """The un-resized ``crop_side`` x ``crop_side`` x 3 uint8 patch (a view when fully inside the frame)."""
    height, width = frame.shape[:2]
    xmin = crop_origin(center_xy[0], crop_side)
    ymin = crop_origin(center_xy[1], crop_side)
    xmax = xmin + crop_side          # exclusive
    ymax = ymin + crop_side
    if xmin >= 0 and ymin >= 0 and xmax <= width and ymax <= height:
        return frame[ymin:ymax, xmin:xmax]
    fill = pad_value(avg_chans)
    x0, x1 = max(xmin, 0), min(xmax, width)        # the in-frame part of the crop, frame coordinates
    y0, y1 = max(ymin, 0), min(ymax, height)
    if x0 >= x1 or y0 >= y1:                       # no overlap at all: a flat patch
        patch = np.empty((crop_side, crop_side, 3), dtype=np.uint8)
        patch[...] = fill
        return patch
    # copyMakeBorder writes the constant bands and the in-frame pixels in one pass, ~100x faster than
    # filling a numpy array with a broadcast (3,) value
    return cv2.copyMakeBorder(frame[y0:y1, x0:x1], y0 - ymin, ymax - y1, x0 - xmin, xmax - x1,
                              cv2.BORDER_CONSTANT, value=tuple(int(v) for v in fill))


def pad_value(avg_chans) -> np.ndarray:
    """(3,) uint8 padding colour: the float mean truncated toward zero, as numpy's float64 -> uint8
    cast in pysot's ``te_im[...] = avg_chans`` does (127.9 -> 127)."""
    return np.asarray(avg_chans, dtype=np.float64).astype(np.uint8)


def get_subwindow(frame: np.ndarray, center_xy, out_size: int, crop_side: int, avg_chans,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Crop one target.

    frame: HxWx3 uint8 BGR. center_xy: (cx, cy) float frame pixels. crop_side: int side in frame pixels
    (>= 1). avg_chans: (3,) per-channel fill value (float, truncated). out: optional contiguous
    (out_size, out_size, 3) uint8 destination. Returns (out_size, out_size, 3) uint8, never a view of
    ``frame``.
    """
    crop_side = int(crop_side)
    if out is None:
        out = np.empty((out_size, out_size, 3), dtype=np.uint8)
    if crop_side > MAX_EXACT_CROP_SIDE and not _inside(frame, center_xy, crop_side):
        return _sampled_crop(frame, center_xy, out_size, crop_side, avg_chans, out)
    patch = _patch(frame, center_xy, crop_side, avg_chans)
    if crop_side == out_size:
        out[...] = patch
    else:
        cv2.resize(patch, (out_size, out_size), dst=out, interpolation=cv2.INTER_LINEAR)
    return out


def _inside(frame: np.ndarray, center_xy, crop_side: int) -> bool:
    xmin, ymin = crop_origin(center_xy[0], crop_side), crop_origin(center_xy[1], crop_side)
    return xmin >= 0 and ymin >= 0 and xmin + crop_side <= frame.shape[1] and ymin + crop_side <= frame.shape[0]


def _sampled_crop(frame, center_xy, out_size: int, crop_side: int, avg_chans, out: np.ndarray) -> np.ndarray:
    """A huge crop without its patch: each output pixel is sampled where cv2.resize would sample the
    padded patch, ``x = xmin + (dx + 0.5) * sz / out - 0.5`` (same for y), outside the frame the fill."""
    scale = crop_side / out_size
    xmin, ymin = crop_origin(center_xy[0], crop_side), crop_origin(center_xy[1], crop_side)
    to_frame = np.array([[scale, 0.0, xmin + 0.5 * scale - 0.5],
                         [0.0, scale, ymin + 0.5 * scale - 0.5]])
    fill = tuple(int(v) for v in pad_value(avg_chans))
    cv2.warpAffine(frame, to_frame, (out_size, out_size), dst=out,
                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    return out


def crop_targets(frame: np.ndarray, centers_xy: np.ndarray, out_size: int, crop_sides,
                 avg_chans: np.ndarray) -> np.ndarray:
    """Crop N targets from one frame.

    centers_xy: (N, 2) float frame pixels; crop_sides: (N,) int; avg_chans: (N, 3).
    Returns (N, out_size, out_size, 3) uint8 BGR.
    """
    n = len(crop_sides)
    patches = np.empty((n, out_size, out_size, 3), dtype=np.uint8)
    for i in range(n):
        get_subwindow(frame, centers_xy[i], out_size, int(crop_sides[i]), avg_chans[i], out=patches[i])
    return patches


def to_blob(patches: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 BGR -> (N, 3, S, S) float32 BGR 0..255 (no normalisation, no channel swap)."""
    return np.ascontiguousarray(patches.transpose(0, 3, 1, 2), dtype=np.float32)

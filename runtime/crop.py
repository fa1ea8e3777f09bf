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

Per-frame cost (``CropWorkspace``): a target whose context reaches outside a 1280x720 frame easily has a
2000-3000 px search crop; building its padded patch each frame writes 20-30 MB into freshly mapped
pages (1-3.5 ms), while ``cv2.resize`` reads only the ~2 x 255 rows it samples (0.15 ms). A tracker
therefore keeps one padded canvas per target between frames: the constant bands are written once, and
each frame only the in-frame rectangle is copied in (at most one frame) and the part of last frame's
rectangle it no longer covers is reset to the fill. The canvas holds the same bytes as the patch, so
the crop is still pysot's, byte for byte. A one-warp crop (``cv2.warpAffine`` straight from the frame)
would be cheaper still but rounds differently, so it is kept for the over-the-cap case only.
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np

MAX_EXACT_CROP_SIDE = 6144  # px: a 113 MB padded patch; covers every crop of a 1920x1080 frame
_SMALL_CANVAS = 1024        # px: a PaddingCanvas's first backing (3 MB)


def crop_origin(center: float, crop_side: int) -> int:
    """First pixel (x or y) of a ``crop_side`` crop centred at ``center``: ``floor(c - (sz+1)/2 + 0.5)``."""
    return int(math.floor(float(center) - (crop_side + 1) / 2 + 0.5))


def _patch(frame: np.ndarray, xmin: int, ymin: int, crop_side: int, fill: np.ndarray) -> np.ndarray:
    """The un-resized ``crop_side`` x ``crop_side`` x 3 uint8 patch at origin (xmin, ymin) (a view when
    fully inside the frame); ``fill``: the (3,) uint8 padding colour (``pad_value``)."""
    height, width = frame.shape[:2]
    xmax = xmin + crop_side          # exclusive
    ymax = ymin + crop_side
    if _inside(frame.shape, xmin, ymin, crop_side):
        return frame[ymin:ymax, xmin:xmax]
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
                  out: np.ndarray | None = None, canvas: "PaddingCanvas | None" = None) -> np.ndarray:
    """Crop one target.

    frame: HxWx3 uint8 BGR. center_xy: (cx, cy) float frame pixels. crop_side: int side in frame pixels
    (>= 1). avg_chans: (3,) per-channel fill value (float, truncated). out: optional contiguous
    (out_size, out_size, 3) uint8 destination. canvas: optional ``PaddingCanvas`` kept between calls
    for the same target (same bytes, no per-call padded patch). Returns (out_size, out_size, 3) uint8,
    never a view of ``frame``.
    """
    crop_side = int(crop_side)
    if out is None:
        out = np.empty((out_size, out_size, 3), dtype=np.uint8)
    xmin, ymin = crop_origin(center_xy[0], crop_side), crop_origin(center_xy[1], crop_side)
    inside = _inside(frame.shape, xmin, ymin, crop_side)
    fill = None if inside else pad_value(avg_chans)
    if crop_side > MAX_EXACT_CROP_SIDE and not inside:
        return _sampled_crop(frame, xmin, ymin, out_size, crop_side, fill, out)
    if canvas is not None and not inside and crop_side <= canvas.max_side:
        patch = canvas.patch(frame, xmin, ymin, crop_side, fill, out_size)
    else:
        patch = _patch(frame, xmin, ymin, crop_side, fill)
    if crop_side == out_size:
        out[...] = patch
        return out
    if not inside:
        cut = _fill_cut(frame.shape, xmin, ymin, crop_side, out_size)
        if cut is not None:
            return _resize_cut(patch, out, out_size, cut, fill)
    cv2.resize(patch, (out_size, out_size), dst=out, interpolation=cv2.INTER_LINEAR)
    return out


# -- resizing less than the whole padded patch --------------------------------------------------------
# cv2.resize (INTER_LINEAR) maps output column dx to source column sx = floor(fx), fx = float32((dx + 0.5)
# * scale - 0.5), scale = 1 / (out / side) in float64, the same for any source width as long as the scale
# factor is the same double; it clamps a tap past the last column to that column. So when the patch's
# last columns are fill (the crop sticks out of the frame's right edge), resizing only its first ``src``
# columns with ``fx = out / side`` (the factor cv2 derives from the full sizes) gives the same first ``dst``
# output columns, provided column ``src - 1`` is still fill (a clamped tap then reads the fill the full
# patch has there) and output column ``dst`` samples fill only; every later output column is then the
# fill exactly (a constant row stays constant through both fixed-point passes). Rows likewise at the
# bottom. A cut at the top or left would shift the mapping, so those bands are still resized.
# tests/test_crop.py compares the two on random geometry.

def _cut_extent(side: int, out_size: int, used: int) -> tuple[int, int]:
    """(source extent, output extent) along one axis whose first ``used`` source pixels are not the
    right/bottom fill band; (side, out_size) when no cut is possible."""
    if used >= side - 1 or side <= out_size or side == 2 * out_size:
        return side, out_size                # no band; an upscale; cv2's exact-2x shortcut (INTER_AREA)
    inv = out_size / side
    scale = 1.0 / inv
    src = used + 2 + int(math.ceil(scale))   # past the last used pixel by more than one output step
    dst = int(round(src * inv))              # cv2: saturate_cast<int>(src * fx), half to even like round()
    if src >= side or dst >= out_size:
        return side, out_size
    if math.floor(np.float32((dst + 0.5) * scale - 0.5)) < used:   # output column dst must read fill only
        return side, out_size
    return src, dst


def _fill_cut(frame_shape, xmin: int, ymin: int, crop_side: int, out_size: int):
    """((src rows, dst rows), (src cols, dst cols)) of the patch at origin (xmin, ymin) when it sticks
    out of the frame's bottom or right edge, or None when neither can be cut."""
    height, width = frame_shape[:2]
    rows = _cut_extent(crop_side, out_size, max(min(ymin + crop_side, height) - ymin, 0))
    cols = _cut_extent(crop_side, out_size, max(min(xmin + crop_side, width) - xmin, 0))
    if rows[0] == crop_side and cols[0] == crop_side:
        return None
    return rows, cols


def _resize_cut(patch: np.ndarray, out: np.ndarray, out_size: int, cut, fill) -> np.ndarray:
    (src_rows, dst_rows), (src_cols, dst_cols) = cut
    factor = out_size / patch.shape[0]
    part = out[:dst_rows, :dst_cols]
    got = cv2.resize(patch[:src_rows, :src_cols], None, dst=part, fx=factor, fy=factor,
                     interpolation=cv2.INTER_LINEAR)
    if got.shape != part.shape:              # cv2 sized its output otherwise: the cut does not hold here
        return cv2.resize(patch, (out_size, out_size), dst=out, interpolation=cv2.INTER_LINEAR)
    if got is not part and not np.shares_memory(got, part):
        part[...] = got
    fill_row = np.empty((1, out_size, 3), dtype=np.uint8)
    fill_row[...] = fill
    out[dst_rows:] = fill_row
    out[:dst_rows, dst_cols:] = fill_row[:, dst_cols:]
    return out


def _inside(frame_shape, xmin: int, ymin: int, crop_side: int) -> bool:
    return xmin >= 0 and ymin >= 0 and xmin + crop_side <= frame_shape[1] and ymin + crop_side <= frame_shape[0]


def _sampled_crop(frame, xmin: int, ymin: int, out_size: int, crop_side: int, fill, out: np.ndarray) -> np.ndarray:
    """A huge crop without its patch: each output pixel is sampled where cv2.resize would sample the
    padded patch, ``x = xmin + (dx + 0.5) * sz / out - 0.5`` (same for y), outside the frame the fill."""
    scale = crop_side / out_size
    to_frame = np.array([[scale, 0.0, xmin + 0.5 * scale - 0.5],
                         [0.0, scale, ymin + 0.5 * scale - 0.5]])
    cv2.warpAffine(frame, to_frame, (out_size, out_size), dst=out, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(int(v) for v in fill))
    return out


def crop_targets(frame: np.ndarray, centers_xy: np.ndarray, out_size: int, crop_sides,
                 avg_chans: np.ndarray, workspace: "CropWorkspace | None" = None, targets=None) -> np.ndarray:
    """Crop N targets from one frame.

    centers_xy: (N, 2) float frame pixels; crop_sides: (N,) int; avg_chans: (N, 3).
    Returns (N, out_size, out_size, 3) uint8 BGR. With a ``workspace`` the result is the workspace's
    buffer, OVERWRITTEN by the next call with the same N and size (the bytes are the same either way);
    targets: (N,) which of the workspace's per-target canvases each crop uses (default 0..N-1), so a
    call for a subset of the targets keeps each target on its own canvas.
    """
    n = len(crop_sides)
    if workspace is None:
        patches = np.empty((n, out_size, out_size, 3), dtype=np.uint8)
    else:
        patches = workspace.buffer((n, out_size, out_size, 3), np.uint8)
    for i in range(n):
        canvas = workspace.canvas(int(targets[i]) if targets is not None else i) if workspace is not None else None
        get_subwindow(frame, centers_xy[i], out_size, int(crop_sides[i]), avg_chans[i], out=patches[i],
                      canvas=canvas)
    return patches


def to_blob(patches: np.ndarray, out: np.ndarray | None = None, scratch: np.ndarray | None = None) -> np.ndarray:
    """(N, S, S, 3) uint8 BGR -> (N, 3, S, S) float32 BGR 0..255 (no normalisation, no channel swap).

    out: optional C-contiguous (N, 3, S, S) float32 destination (e.g. ``CropWorkspace.blob_for``), which
    is returned. scratch: optional C-contiguous (3, S, S) uint8 array for the planes (e.g.
    ``CropWorkspace.planes_for``), so that no call allocates."""
    n, side = patches.shape[0], patches.shape[1]
    if out is None:
        out = np.empty((n, 3, side, side), dtype=np.float32)
    planes = [scratch[0], scratch[1], scratch[2]] if scratch is not None else None
    for i in range(n):
        # cv2.split makes three contiguous planes in one pass; converting those is 2x faster than one
        # strided numpy transpose-and-cast of the whole patch (0.05 vs 0.09 ms for 255x255)
        for c, plane in enumerate(cv2.split(patches[i], planes)):
            np.copyto(out[i, c], plane, casting="unsafe")                # uint8 -> float32 is exact
    return out


class PaddingCanvas:
    """One target's padded patch, kept between frames (see the module docstring).

    ``patch(frame, xmin, ymin, side, fill)`` returns the ``side`` x ``side`` x 3 uint8 view that equals
    pysot's padded patch at that origin: ``fill`` everywhere, the frame's pixels where they overlap.
    The view is OVERWRITTEN by the next call. Memory: a backing array of at most 1024^2 x 3 bytes,
    replaced once, when a patch outgrows it, by one of ``max_side``^2 x 3 bytes of address space (kept
    until the canvas is dropped), of which only the square used so far is written (what that keeps
    resident: ``CropWorkspace``); larger patches are left to the caller.
    """

    def __init__(self, max_side: int = 4096):
        self.max_side = int(max_side)
        self._backing: np.ndarray | None = None        # (M, M, 3) uint8; the patch is its top-left corner
        self._fill: tuple[int, int, int] | None = None
        self._fill_row: np.ndarray | None = None        # (1, M, 3) uint8 of the fill colour
        self._frame_rect: tuple[int, int, int, int] | None = None   # (y0, y1, x0, x1) holding frame pixels
        self._filled = 0      # backing[:_filled, :_filled] holds the fill outside _frame_rect; beyond, garbage

    def patch(self, frame: np.ndarray, xmin: int, ymin: int, side: int, fill, out_size: int | None = None) -> np.ndarray:
        """out_size: the side the patch will be resized to (cv2.resize, INTER_LINEAR); then only the
        patch rows that resize can read are brought up to date (the others keep older pixels)."""
        fill = tuple(int(v) for v in fill)
        if side > self.max_side:
            raise ValueError(f"a {side} px patch does not fit a {self.max_side} px canvas")
        if self._backing is None or self._backing.shape[0] < side or fill != self._fill:
            self._allocate(side, fill)
        if side > self._filled:          # first use of this much of the backing: fill the new L-shaped band
            # in steps of at least a quarter: a target growing a few pixels a frame would otherwise pay
            # for a full-height column band (one strided write per row, ~1 ms at 2600 px) every frame
            done = self._filled
            upto = min(self._backing.shape[0], max(side, done + done // 4))
            self._backing[:upto, done:upto] = self._fill_row[:, : upto - done]
            self._backing[done:upto, :done] = self._fill_row[:, :done]
            self._filled = upto
        height, width = frame.shape[:2]
        x0, x1 = max(xmin, 0), min(xmin + side, width)       # the in-frame part, frame coordinates
        y0, y1 = max(ymin, 0), min(ymin + side, height)
        rect = (y0 - ymin, y1 - ymin, x0 - xmin, x1 - xmin) if x0 < x1 and y0 < y1 else None   # patch coordinates
        if self._frame_rect is not None:
            for band in _uncovered(self._frame_rect, rect):
                self._reset(band)
        if rect is not None:
            rows = _sampled_rows(side, out_size)
            if rows is None:
                self._backing[rect[0]:rect[1], rect[2]:rect[3]] = frame[y0:y1, x0:x1]
            else:
                rows = rows[(rows >= rect[0]) & (rows < rect[1])]       # patch rows inside the frame
                self._backing[rows, rect[2]:rect[3]] = frame[rows + ymin, x0:x1]
        self._frame_rect = rect
        return self._backing[:side, :side]

    def _allocate(self, side: int, fill: tuple[int, int, int]) -> None:
        # two sizes only: a small backing first (3 MB, under numpy's 4 MB huge-page threshold, so a
        # target padded at the frame's edge keeps a few hundred KB resident, not a 2 MB page per touched
        # stretch), then, once outgrown, max_side at once: np.empty only reserves address space (pages are
        # mapped as the fill reaches them), whereas growing by steps meant filling a fresh array again
        # and again, which stalled the frames of a runaway target's growing crop for 10-85 ms each
        if self._backing is None or self._backing.shape[0] < side:
            first_fits = self._backing is None and side <= _SMALL_CANVAS
            size = min(_SMALL_CANVAS, self.max_side) if first_fits else self.max_side
            self._backing = np.empty((size, size, 3), dtype=np.uint8)
        self._fill_row = np.empty((1, self._backing.shape[1], 3), dtype=np.uint8)
        self._fill_row[...] = fill
        self._fill, self._frame_rect, self._filled = fill, None, 0

    def _reset(self, rect: tuple[int, int, int, int]) -> None:
        y0, y1, x0, x1 = rect        # whole rows of the fill: ~100x faster than broadcasting a (3,) value
        self._backing[y0:y1, x0:x1] = self._fill_row[:, : x1 - x0]


@functools.lru_cache(maxsize=256)
def _sampled_rows(side: int, out_size: int | None) -> np.ndarray | None:
    """Patch rows ``cv2.resize(patch, (out_size, out_size), INTER_LINEAR)`` reads, or None (all).

    OpenCV reads rows ``sy`` and ``sy + 1`` for output row ``dy``, with ``sy = floor(fy)``,
    ``fy = float32((dy + 0.5) * scale - 0.5)`` and ``scale = 1 / (out_size / side)`` in float64 (its
    ``scale_y = 1. / inv_scale_y``); the same float64 and float32 operations here give the same rows.
    tests/test_crop.py poisons every other row to prove nothing else is read. A 2600 px crop of a
    1280x720 frame then copies ~140 of the frame's 720 rows. Up to 3x downscaling, where 2/3 or more of
    the rows are read, one contiguous copy of the rectangle beats numpy's gather-scatter of a row list."""
    if out_size is None or side <= 3 * out_size:
        return None                          # copy the whole rectangle
    fy = ((np.arange(out_size) + 0.5) * (1.0 / (out_size / side)) - 0.5).astype(np.float32)
    sy = np.floor(fy).astype(np.intp)
    rows = np.unique(np.clip(np.concatenate([sy, sy + 1]), 0, side - 1))
    rows.setflags(write=False)
    return rows


def _uncovered(old: tuple[int, int, int, int], new: tuple[int, int, int, int] | None):
    """The parts of rectangle ``old`` (y0, y1, x0, x1) outside rectangle ``new``: up to four bands."""
    oy0, oy1, ox0, ox1 = old
    if new is None:
        return [old]
    ny0, ny1, nx0, nx1 = new
    bands = [(oy0, min(oy1, ny0), ox0, ox1), (max(oy0, ny1), oy1, ox0, ox1)]   # rows above / below new
    my0, my1 = max(oy0, ny0), min(oy1, ny1)                                     # rows shared with new
    bands += [(my0, my1, ox0, min(ox1, nx0)), (my0, my1, max(ox0, nx1), ox1)]   # left / right of new
    return [b for b in bands if b[0] < b[1] and b[2] < b[3]]


class CropWorkspace:
    """Memory one tracker reuses from frame to frame: a ``PaddingCanvas`` per target and the crop and
    blob arrays. Pass it to ``crop_targets`` and ``to_blob``; arrays it hands out are OVERWRITTEN by the
    next call. Not thread-safe: one workspace per tracker.

    max_canvas_side: largest padded patch kept (px); a 4096 px canvas reserves 50 MB of address space,
    resident only in the rows its crops have reached (whole 12 KB rows, and with transparent huge pages
    whole 2 MB pages: grown to 1100 / 1600 / 2400 px it keeps 17 / 22 / 34 MB). Bigger crops build their
    patch per call, as without a workspace.
    """

    def __init__(self, max_canvas_side: int = 4096):
        self.max_canvas_side = int(max_canvas_side)
        self._canvases: list[PaddingCanvas] = []
        self._buffers: dict[tuple, np.ndarray] = {}

    def canvas(self, index: int) -> PaddingCanvas:
        while len(self._canvases) <= index:
            self._canvases.append(PaddingCanvas(self.max_canvas_side))
        return self._canvases[index]

    def buffer(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype``, the same one on every call with those."""
        key = (shape, dtype)          # as the caller spells them (np.dtype() per call costs more than the lookup)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(shape, dtype=dtype)
        return buf

    def blob_for(self, patches: np.ndarray) -> np.ndarray:
        """The (N, 3, S, S) float32 destination for ``to_blob(patches, out=...)``."""
        n, side = patches.shape[0], patches.shape[1]
        return self.buffer((n, 3, side, side), np.float32)

    def planes_for(self, patches: np.ndarray) -> np.ndarray:
        """The (3, S, S) uint8 scratch planes for ``to_blob(patches, scratch=...)``."""
        side = patches.shape[1]
        return self.buffer((3, side, side), np.uint8)

    def release(self) -> None:
        """Drop every canvas and buffer (re-made on the next use)."""
        self._canvases.clear()
        self._buffers.clear()

"""Check and normalise what a caller hands the tracker: frames and boxes.

Frames: the tracker works on HxWx3 uint8 BGR (OpenCV's layout). Such a frame is passed through as is
(no copy). Two other layouts are converted, everything else is an InputError:
- grayscale HxW or HxWx1 uint8: replicated to three equal channels (``cv2.COLOR_GRAY2BGR``), which is
  what ``cv2.imread(..., IMREAD_COLOR)`` gives for a gray image;
- BGRA HxWx4 uint8: the alpha channel is dropped (a contiguous copy of the BGR planes), not blended.

Boxes: ``[x, y, w, h]`` in 0-based frame pixels, one box (4,) or N boxes (N, 4). Width and height
must be > 0 and finite, and a box must overlap the frame. A box partly outside the frame is accepted,
as pysot accepts it: the crop pads the outside with the frame's mean colour. A box wider or higher than
``MAX_BOX_FRAME_MULTIPLE`` times the frame is refused: no target that size can be in view (it is a typo,
or a box from another resolution), and its context crop would be enormous.
"""
from __future__ import annotations

import cv2
import numpy as np

from runtime.errors import InputError

MAX_BOX_FRAME_MULTIPLE = 2  # a box may be at most this many times the frame's width and height


def _describe(frame) -> str:
    if isinstance(frame, np.ndarray):
        return f"array of dtype {frame.dtype} and shape {frame.shape}"
    return f"{type(frame).__name__}"


def as_bgr_frame(frame, what: str = "frame") -> np.ndarray:
    """Return ``frame`` as HxWx3 uint8 BGR; see the module docstring for accepted layouts."""
    expected = "an HxWx3 uint8 BGR image (as cv2.imread returns), HxW/HxWx1 gray or HxWx4 BGRA"
    if not isinstance(frame, np.ndarray):
        raise InputError(f"{what}: got a {_describe(frame)}, expected {expected}. "
                         "Pass a numpy array (e.g. from cv2.imread or cv2.VideoCapture.read).")
    if frame.dtype != np.uint8:
        raise InputError(f"{what}: got an {_describe(frame)}, expected {expected}. Convert it first, e.g. "
                         "np.clip(frame, 0, 255).astype(np.uint8) for a 0..255 float image.")
    shape = frame.shape
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and shape[2] not in (1, 3, 4)):
        raise InputError(f"{what}: got an {_describe(frame)}, expected {expected}.")
    if shape[0] == 0 or shape[1] == 0:
        raise InputError(f"{what}: the image is empty ({_describe(frame)}); the source returned no pixels. "
                         "Check that the video/camera delivered a frame.")
    if frame.ndim == 3 and shape[2] == 3:
        return frame
    if frame.ndim == 3 and shape[2] == 4:
        return np.ascontiguousarray(frame[:, :, :3])
    gray = frame if frame.ndim == 2 else frame[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2BGR)


def as_boxes(box_xywh, frame_hw: tuple[int, int], what: str = "box") -> tuple[np.ndarray, bool]:
    """Validate one box (4,) or N boxes (N, 4) ``[x, y, w, h]`` against a frame of size (H, W).

    Returns ((N, 4) float64 copy, single) where ``single`` says a lone (4,) box was given.
    """
    try:
        boxes = np.array(box_xywh, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {box_xywh!r} is not numeric; expected [x, y, w, h] in pixels "
                         "or an (N, 4) array of such boxes") from None
    single = boxes.ndim == 1
    if single:
        boxes = boxes[None, :]
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] < 1:
        raise InputError(f"{what}: shape {np.shape(box_xywh)}, expected (4,) [x, y, w, h] or (N, 4) with N >= 1")
    height, width = frame_hw
    for i, (x, y, w, h) in enumerate(boxes):
        name = what if single else f"{what} {i}"
        if not np.all(np.isfinite((x, y, w, h))):
            raise InputError(f"{name}: [x, y, w, h] = {[x, y, w, h]} has a NaN or infinite value; "
                             "expected finite pixel coordinates")
        if w <= 0 or h <= 0:
            raise InputError(f"{name}: width and height must be > 0, got w={w:g}, h={h:g}; "
                             "draw or pass a box with a positive size")
        k = MAX_BOX_FRAME_MULTIPLE
        if w > k * width or h > k * height:
            raise InputError(f"{name}: [x, y, w, h] = [{x:g}, {y:g}, {w:g}, {h:g}] is {w:g}x{h:g} px, more than "
                             f"{k}x the {width}x{height} frame; expected the target's box in this frame's "
                             "pixels, as x,y,w,h (not x1,y1,x2,y2, not from a larger resolution)")
        if x + w <= 0 or y + h <= 0 or x >= width or y >= height:
            raise InputError(f"{name}: [x, y, w, h] = [{x:g}, {y:g}, {w:g}, {h:g}] lies entirely outside "
                             f"the {width}x{height} frame; expected a box overlapping the frame "
                             "(0-based pixels, x to the right, y down)")
    return boxes, single

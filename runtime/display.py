"""Drawing the tracking overlay, and a window for it when a display exists.

Importing this module never opens a window: ``cv2.imshow`` is only called by ``Window``, which refuses
to be created without a display (headless OpenCV wheels have no GUI, SSH sessions have no $DISPLAY).
Drawing (``draw_overlay``) works anywhere and is what ``--record`` writes.
"""
from __future__ import annotations

import os
import re
import sys

import cv2
import numpy as np

from runtime.errors import InputError
from runtime.frames import as_boxes

# BGR. LOST is red and labelled in words too, so it is distinct without colour vision.
COLOUR_TRACKING = (0, 200, 0)
COLOUR_LOST = (0, 0, 255)
COLOUR_TEXT = (255, 255, 255)
COLOUR_PANEL = (0, 0, 0)

KEY_QUIT = {ord("q"), ord("Q"), 27}  # 27 = Esc
KEY_PAUSE = {ord(" ")}
KEY_RESELECT = {ord("r"), ord("R")}


def display_available() -> tuple[bool, str]:
    """(available, reason): OpenCV built with a GUI, and a display server to talk to."""
    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), flags=re.MULTILINE)
    if gui and gui.group(1).upper() in ("NONE", "NO", "OFF"):
        return False, ("this OpenCV has no GUI (a headless wheel); install opencv-python, or JetPack's "
                       "python3-opencv, or run with --headless")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display ($DISPLAY is not set: an SSH or service session); run with --headless"
    return True, "display available"


def draw_overlay(frame: np.ndarray, *, box_xywh: tuple[float, float, float, float] | None, score: float | None,
                 state: str, fps: float | None, backend: str, note: str = "",
                 frame_index: int | None = None) -> np.ndarray:
    """A copy of ``frame`` (HxWx3 uint8 BGR) with the box (pixels, x/y top-left), score, FPS and backend.

    ``state`` "lost" draws no box and a red TARGET LOST banner; ``note`` adds a line (e.g. "PAUSED");
    ``frame_index`` starts the first line with "#<index>" (the source's frame number).
    """
    out = frame.copy()
    lost = state == "lost"
    colour = COLOUR_LOST if lost else COLOUR_TRACKING
    if box_xywh is not None and not lost:
        x, y, w, h = (int(round(v)) for v in box_xywh)
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
    score_text = "-" if score is None else f"{score:.2f}"
    fps_text = "-" if not fps else f"{fps:.1f}"
    first = f"{backend}  {fps_text} FPS  score {score_text}"
    if frame_index is not None:
        first = f"#{frame_index}  {first}"
    lines = [first, "TARGET LOST" if lost else state.upper()]
    if note:
        lines.append(note)
    scale = max(0.4, min(out.shape[:2]) / 600)
    y = 0
    for i, text in enumerate(lines):
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(out, (0, y), (tw + 8, y + th + base + 6), COLOUR_LOST if (lost and i == 1) else COLOUR_PANEL, -1)
        cv2.putText(out, text, (4, y + th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, COLOUR_TEXT, 1, cv2.LINE_AA)
        y += th + base + 6
    if lost:
        cv2.rectangle(out, (0, 0), (out.shape[1] - 1, out.shape[0] - 1), COLOUR_LOST, 3)
    return out


def validate_box(box_xywh, frame_shape: tuple[int, ...], subject: str = "--box") -> tuple[float, float, float, float]:
    """A selection as (x, y, w, h) floats in pixels of a frame of shape ``frame_shape`` (H, W, ...).

    Raises InputError for an empty selection (w or h under 1 px: a click without a drag, or a cancelled
    selectROI, which returns 0,0,0,0) and for the cases ``runtime.frames.as_boxes`` refuses.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    if not (w >= 1 and h >= 1):
        raise InputError(f"{subject}: the selection {w:g}x{h:g} px is empty; drag a rectangle around the target "
                         "(or pass --box x,y,w,h with width and height of at least 1 px)")
    as_boxes((x, y, w, h), frame_shape[:2], what=subject)
    return x, y, w, h


class Window:
    """An OpenCV window for the live loop. Raises InputError when there is no display."""

    def __init__(self, title: str = "siamtrack"):
        ok, reason = display_available()
        if not ok:
            raise InputError(f"cannot open a window: {reason}")
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, image: np.ndarray) -> None:
        cv2.imshow(self.title, image)

    def poll_key(self, delay_ms: int = 1) -> int:
        """Key code pressed within ``delay_ms`` (also lets the window redraw), or -1."""
        key = cv2.waitKey(max(1, delay_ms))
        return -1 if key < 0 else key & 0xFF

    def select_box(self, image: np.ndarray) -> tuple[float, float, float, float]:
        """Let the user drag the target box (Enter/Space confirms, c cancels); validated (x, y, w, h)."""
        x, y, w, h = cv2.selectROI(self.title, image, showCrosshair=True, fromCenter=False)
        return validate_box((x, y, w, h), image.shape, subject="mouse selection")

    def close(self) -> None:
        cv2.destroyWindow(self.title)
        cv2.waitKey(1)

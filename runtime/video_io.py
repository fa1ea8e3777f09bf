"""Read every frame of a video file or an image folder, in order (offline tracking and benchmarks).

Live sources that may drop frames (cameras, streams) live in ``runtime.sources``/``runtime.capture``;
here no frame is ever skipped. Frames are HxWx3 uint8 BGR as OpenCV reads them.

Every frame of a sequence must have the first frame's size: a box is in the pixels of the frame it was
given on, so an image of another size (a folder of mixed sizes) would put every later box in wrong
coordinates without a word. Such a frame is an InputError naming it and both sizes.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from runtime.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder`` sorted by name (OTB/GOT-10k name frames 0001.jpg, 00000001.jpg...)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def check_frame_size(frame: np.ndarray, first_shape: tuple[int, ...], where: str) -> None:
    """InputError when ``frame`` (HxWx3) is not the size of the sequence's first frame (``first_shape``)."""
    if frame.shape[:2] != first_shape[:2]:
        (h0, w0), (h1, w1) = first_shape[:2], frame.shape[:2]
        raise InputError(f"{where} is {w1}x{h1} pixels but the sequence started at {w0}x{h0}; boxes are in "
                         "the pixels of the first frame, so every frame must have its size: resize the images "
                         "to one size (or split the folder where the size changes)")


def read_image(path: Path) -> np.ndarray:
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise InputError(f"{path}: cannot be read as an image (corrupt or unsupported format)")
    return frame


class FrameReader:
    """Iterate the frames of a video file or an image folder.

    ``start``/``stop``: only frames ``start <= i < stop`` (0-based; stop None: to the end). A video's
    earlier frames are decoded and dropped (seeking is not frame-exact for every codec).
    ``len(reader)`` is the number of frames in that range: exact for folders, from OpenCV's estimate of
    the frame count for videos. ``fps`` is the video's frame rate, or None for folders.
    """

    def __init__(self, path: str | os.PathLike, *, start: int = 0, stop: int | None = None):
        self.path = Path(path)
        self.fps: float | None = None
        if start < 0 or (stop is not None and stop <= start):
            raise ValueError(f"frame range [{start}, {stop}) is empty or negative")
        self.start, self.stop = start, stop
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file or folder; pass a video file or a folder of images")
        if self.path.is_dir():
            self._images = list_images(self.path)
            if not self._images:
                raise InputError(f"{self.path}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            self._count = len(self._images)
        else:
            self._images = None
            cap = cv2.VideoCapture(str(self.path))
            ok = cap.isOpened()
            self._count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if ok else 0
            fps = cap.get(cv2.CAP_PROP_FPS) if ok else 0.0
            cap.release()
            if not ok:
                raise InputError(f"{self.path}: OpenCV cannot open this as a video (unreadable or unsupported "
                                 "codec); convert it to H.264 .mp4 or pass a folder of images")
            self.fps = fps if fps and fps > 0 else None

    @property
    def total_frames(self) -> int:
        """Frames of the whole file or folder (OpenCV's estimate for a video), ignoring start/stop."""
        return self._count

    def __len__(self) -> int:
        end = self._count if self.stop is None else min(self.stop, self._count)
        return max(0, end - self.start)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._images is not None:
            first_shape = None
            for i, p in enumerate(self._images[self.start:self.stop], start=self.start):
                frame = read_image(p)
                first_shape = first_shape or frame.shape
                check_frame_size(frame, first_shape, f"{p} (frame {i})")
                yield frame
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            n = 0
            first_shape = None
            while self.stop is None or n < self.stop:
                if n < self.start:
                    if not cap.grab():
                        break
                    n += 1
                    continue
                ok, frame = cap.read()
                if not ok:
                    break
                first_shape = first_shape or frame.shape
                check_frame_size(frame, first_shape, f"{self.path} frame {n}")
                n += 1
                yield frame
            if n == 0:
                raise InputError(f"{self.path}: the video has no decodable frames")
        finally:
            cap.release()

"""Read every frame of a video file or an image folder, in order (offline tracking and benchmarks).

Live sources that may drop frames (cameras, streams) live in ``runtime.sources``/``runtime.capture``;
here no frame is ever skipped. Frames are HxWx3 uint8 BGR as OpenCV reads them.
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


def read_image(path: Path) -> np.ndarray:
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise InputError(f"{path}: cannot be read as an image (corrupt or unsupported format)")
    return frame


class FrameReader:
    """Iterate the frames of a video file or an image folder.

    ``len(reader)`` is exact for folders and OpenCV's estimate for videos. ``fps`` is the video's
    frame rate, or None for folders.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.fps: float | None = None
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

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._images is not None:
            for p in self._images:
                yield read_image(p)
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            n = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                n += 1
                yield frame
            if n == 0:
                raise InputError(f"{self.path}: the video has no decodable frames")
        finally:
            cap.release()

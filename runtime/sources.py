"""Where live frames come from: parse ``--source`` into a typed ``SourceSpec`` and open it.

Accepted forms (one argument, told apart by shape):

==============================================  ==========  ==============================================
``csi://0?width=1280&height=720&fps=30&flip=0``  ``csi``     Jetson CSI camera via GStreamer nvarguscamerasrc
``0`` / ``/dev/video0``                          ``v4l2``    USB/V4L2 camera by index or device path
``rtsp://host/path``, ``http(s)://host/path``    ``stream``  network stream, opened by FFmpeg
``clip.mp4``                                     ``file``    video file
``frames/``                                      ``folder``  folder of images, sorted by name
``synthetic://?width=320&height=240&fps=30``     ``synthetic`` drawn test pattern (no camera needed)
==============================================  ==========  ==============================================

Every opened source implements ``FrameSource``: ``read() -> (ok, frame)`` (frame HxWx3 uint8 BGR),
``release()``, ``fps`` (float or None), ``live`` (True when frames arrive at the device's pace and a
read failure means a drop, False for files and folders where it means the end).

The GStreamer pipeline for a CSI camera is built only from validated integers (``CsiParams``), never
from user text, so ``--source`` cannot add pipeline elements.
"""
from __future__ import annotations

import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np

from runtime.errors import InputError, SiamTrackError
from runtime.video_io import check_frame_size, list_images, read_image

KINDS = ("csi", "v4l2", "stream", "file", "folder", "synthetic")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
DEFAULT_OPEN_TIMEOUT_S = 10.0

# Sane bounds for a camera mode; anything outside is a typo, not a sensor.
_SIDE_RANGE = (16, 8192)
_FPS_RANGE = (1, 1000)
_SENSOR_RANGE = (0, 15)
_FLIP_RANGE = (0, 7)  # nvvidconv flip-method: 0 none, 1 ccw90, 2 180, 3 cw90, 4 hflip, 5 ur-diag, 6 vflip, 7 ul-diag


class SourceError(SiamTrackError):
    """A camera, stream or file that cannot be opened or stopped delivering frames."""


class FrameSource(Protocol):
    fps: float | None
    live: bool
    name: str

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


def _bounded_int(key: str, value, lo: int, hi: int, subject: str) -> int:
    """``value`` as an int within [lo, hi]; accepts only plain decimal digits from text."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str):
        value = int(value) if re.fullmatch(r"[0-9]{1,6}", value) else None
    if not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"{subject}: {key}={value!r} is not allowed; expected a whole number from {lo} to {hi}")
    return value


@dataclass(frozen=True)
class CsiParams:
    """A Jetson CSI camera mode. All fields are validated ints, so the pipeline text is safe by type."""

    sensor_id: int = 0
    width: int = 1280
    height: int = 720
    fps: int = 30
    flip: int = 0

    def __post_init__(self):
        subject = "--source csi://"
        for key, (lo, hi) in (("sensor_id", _SENSOR_RANGE), ("width", _SIDE_RANGE), ("height", _SIDE_RANGE),
                              ("fps", _FPS_RANGE), ("flip", _FLIP_RANGE)):
            object.__setattr__(self, key, _bounded_int(key, getattr(self, key), lo, hi, subject))


@dataclass(frozen=True)
class SyntheticParams:
    """A drawn test pattern: a textured square moving on a Lissajous path at ``fps`` frames per second.

    ``frames``: stop after this many frames (None: endless, like a camera).
    """

    width: int = 320
    height: int = 240
    fps: int = 30
    frames: int | None = None

    def __post_init__(self):
        subject = "--source synthetic://"
        for key, (lo, hi) in (("width", (64, 4096)), ("height", (64, 4096)), ("fps", _FPS_RANGE)):
            object.__setattr__(self, key, _bounded_int(key, getattr(self, key), lo, hi, subject))
        if self.frames is not None:
            object.__setattr__(self, "frames", _bounded_int("frames", self.frames, 1, 10**6, subject))


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source``. ``location``: device path, URL or filesystem path ("" for csi/synthetic).

    ``index`` is the V4L2 camera number (``/dev/video<index>``); ``csi``/``synthetic`` hold their modes.
    """

    kind: str
    location: str = ""
    index: int | None = None
    csi: CsiParams | None = None
    synthetic: SyntheticParams | None = None
    text: str = field(default="", compare=False)

    @property
    def live(self) -> bool:
        return self.kind in ("csi", "v4l2", "stream", "synthetic")


def _query(text: str, allowed: tuple[str, ...], subject: str) -> dict[str, str]:
    parts = urlsplit(text)
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
    if parts.query and not pairs:
        raise InputError(f"{subject}: cannot read the options {parts.query!r}; write them as ?key=value&key=value")
    out: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise InputError(f"{subject}: unknown option {key!r}; allowed: {', '.join(allowed)}")
        out[key] = value
    return out


def _parse_csi(text: str) -> SourceSpec:
    parts = urlsplit(text)
    if parts.path not in ("", "/") or parts.fragment:
        raise InputError(f"--source {text!r}: a CSI source is csi://<sensor-id>?width=..&height=..&fps=..&flip=..")
    opts = _query(text, ("width", "height", "fps", "flip"), f"--source {text!r}")
    params = CsiParams(sensor_id=parts.netloc or "0", **opts)
    return SourceSpec("csi", csi=params, text=text)


def _parse_synthetic(text: str) -> SourceSpec:
    parts = urlsplit(text)
    if parts.netloc or parts.path not in ("", "/"):
        raise InputError(f"--source {text!r}: write the test pattern as synthetic://?width=..&height=..&fps=..&frames=..")
    opts = _query(text, ("width", "height", "fps", "frames"), f"--source {text!r}")
    return SourceSpec("synthetic", synthetic=SyntheticParams(**opts), text=text)


def _parse_stream(text: str) -> SourceSpec:
    parts = urlsplit(text)
    if not parts.hostname or any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise InputError(f"--source {text!r}: not a usable stream URL; expected e.g. rtsp://192.168.1.10:8554/cam")
    return SourceSpec("stream", location=text, text=text)


def parse_source(text: str) -> SourceSpec:
    """``--source`` text -> SourceSpec; raises InputError naming the form that was expected."""
    text = str(text).strip()
    if not text:
        raise InputError("--source is empty; pass a camera (0, /dev/video0, csi://0), a stream URL, a video or a folder")
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme == "csi":
        return _parse_csi(text)
    if scheme == "synthetic":
        return _parse_synthetic(text)
    if scheme in STREAM_SCHEMES:
        return _parse_stream(text)
    if scheme:
        raise InputError(f"--source {text!r}: unknown scheme {scheme}://; use csi://, rtsp://, http(s)://, "
                         "synthetic://, a camera index or /dev/videoN, a video file or an image folder")
    if re.fullmatch(r"[0-9]{1,3}", text):
        return SourceSpec("v4l2", location=f"/dev/video{int(text)}", index=int(text), text=text)
    match = re.fullmatch(r"/dev/video([0-9]{1,3})", text)
    if match:
        return SourceSpec("v4l2", location=text, index=int(match.group(1)), text=text)
    path = Path(text).expanduser()
    if path.is_dir():
        return SourceSpec("folder", location=str(path), text=text)
    if path.is_file():
        return SourceSpec("file", location=str(path), text=text)
    raise InputError(f"--source {text!r}: no such file or folder, and not a camera or stream; pass a camera index "
                     "(0), /dev/videoN, csi://<sensor-id>, rtsp://..., http(s)://..., a video file or an image folder")


def gstreamer_csi_pipeline(params: CsiParams) -> str:
    """The nvarguscamerasrc pipeline for ``params``: NVMM NV12 from the ISP, converted to BGRx by the VIC
    (nvvidconv, hardware), BGRx->BGR on the CPU (appsink cannot take BGR from NVMM), newest buffer only."""
    if not isinstance(params, CsiParams):
        raise TypeError("gstreamer_csi_pipeline takes a validated CsiParams, never free text")
    p = params
    return (f"nvarguscamerasrc sensor-id={p.sensor_id} ! "
            f"video/x-raw(memory:NVMM), width={p.width}, height={p.height}, framerate={p.fps}/1, format=NV12 ! "
            f"nvvidconv flip-method={p.flip} ! "
            f"video/x-raw, width={p.width}, height={p.height}, format=BGRx ! "
            "videoconvert ! video/x-raw, format=BGR ! "
            "appsink drop=true max-buffers=1 sync=false")


def opencv_has_gstreamer(build_info: str | None = None) -> bool:
    """True when this cv2 was built with GStreamer (read from cv2.getBuildInformation())."""
    info = cv2.getBuildInformation() if build_info is None else build_info
    match = re.search(r"^\s*GStreamer:\s*(\S+)", info, flags=re.MULTILINE)
    return bool(match) and match.group(1).upper() not in ("NO", "OFF")


GSTREAMER_MISSING = (
    "this OpenCV ({version}) was built without GStreamer, which a CSI camera needs. On a Jetson, use JetPack's "
    "system OpenCV: `sudo apt install python3-opencv` (or nvidia-opencv), then `pip uninstall opencv-python "
    "opencv-python-headless` in this environment so the system cv2 is imported (create the venv with "
    "--system-site-packages). Check with: python -c \"import cv2; print(cv2.getBuildInformation())\" | grep GStreamer")


class Cv2Source:
    """A cv2.VideoCapture as a FrameSource."""

    def __init__(self, cap, name: str, live: bool):
        self._cap = cap
        self.name = name
        self.live = live
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and 0 < fps < 1000 else None

    def read(self) -> tuple[bool, np.ndarray | None]:
        ok, frame = self._cap.read()
        return (True, frame) if ok and frame is not None and frame.size else (False, None)

    def release(self) -> None:
        self._cap.release()


class FolderSource:
    """Images of a folder in name order, as a finite FrameSource (``fps`` from the caller, default None)."""

    live = False

    def __init__(self, folder: str | os.PathLike, fps: float | None = None):
        self.name = str(folder)
        self.fps = fps
        self._images = list_images(Path(folder))
        if not self._images:
            raise SourceError(f"{folder}: the folder holds no images; pass a folder of .jpg/.png frames")
        self._next = 0
        self._first_shape: tuple[int, ...] | None = None

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._next >= len(self._images):
            return False, None
        path = self._images[self._next]
        frame = read_image(path)
        self._first_shape = self._first_shape or frame.shape
        try:
            check_frame_size(frame, self._first_shape, f"{path} (frame {self._next})")
        except InputError as err:
            raise SourceError(str(err)) from None
        self._next += 1
        return True, frame

    def release(self) -> None:
        self._next = len(self._images)


class SyntheticSource:
    """A camera stand-in: ``read()`` blocks until the next frame is due at ``fps`` and draws it.

    The picture depends only on the time since ``epoch`` (time.monotonic seconds), so a source reopened
    after a simulated drop shows the object where it would be now, as a real camera would.
    ``drop_after``: after this many frames ``read()`` fails, as an unplugged camera does.
    With ``params.frames`` set the source is finite, like a file: ``live`` is False, frames are numbered
    0, 1, 2... without waiting (the grabber paces them) and ``read()`` fails after the last one.
    The target is a ``side``-px square with a fixed random texture; ``box_at(i)`` is its exact box (x, y, w, h)
    in frame ``i`` (counted from ``epoch``).
    """

    def __init__(self, params: SyntheticParams | None = None, *, epoch: float | None = None,
                 drop_after: int | None = None, seed: int = 0):
        self.params = params or SyntheticParams()
        self.fps = float(self.params.fps)
        self.live = self.params.frames is None
        self.name = f"synthetic {self.params.width}x{self.params.height}@{self.params.fps}"
        self.epoch = time.monotonic() if epoch is None else epoch
        self.drop_after = drop_after
        rng = np.random.default_rng(seed)
        p = self.params
        self.side = max(16, min(p.width, p.height) // 5)
        self._texture = rng.integers(0, 256, (self.side, self.side, 3), dtype=np.uint8)
        self._background = (rng.integers(0, 60, (p.height, p.width, 3), dtype=np.uint8) + 40).astype(np.uint8)
        self._served = 0
        self._last_index = -1
        self._released = False

    def box_at(self, index: int) -> tuple[int, int, int, int]:
        p, t = self.params, index / self.params.fps
        cx = p.width / 2 + (p.width / 2 - self.side) * math.sin(2 * math.pi * 0.25 * t)
        cy = p.height / 2 + (p.height / 2 - self.side) * math.sin(2 * math.pi * 0.17 * t)
        return int(round(cx - self.side / 2)), int(round(cy - self.side / 2)), self.side, self.side

    def draw(self, index: int) -> np.ndarray:
        frame = self._background.copy()
        x, y, w, h = self.box_at(index)
        frame[y:y + h, x:x + w] = self._texture
        return frame

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._released or (self.drop_after is not None and self._served >= self.drop_after):
            return False, None
        if self.params.frames is not None and self._last_index + 1 >= self.params.frames:
            return False, None
        index = self._last_index + 1
        if self.live:
            # the next frame due after the last one served, never one from the past (a camera does not replay)
            index = max(index, int((time.monotonic() - self.epoch) * self.fps))
            delay = self.epoch + index / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self._last_index = index
        self._served += 1
        return True, self.draw(index)

    def release(self) -> None:
        self._released = True


def _check_device(spec: SourceSpec) -> None:
    if os.name == "posix" and Path("/dev").is_dir() and not Path(spec.location).exists():
        present = sorted(str(p) for p in Path("/dev").glob("video[0-9]*"))
        listing = ", ".join(present) if present else "none"
        raise SourceError(f"--source {spec.text or spec.location}: camera {spec.location} does not exist "
                          f"(video devices here: {listing}); plug the camera in, or list cameras with "
                          "`v4l2-ctl --list-devices`")


def _capture_args(spec: SourceSpec, timeout_s: float) -> tuple[tuple, str]:
    """(cv2.VideoCapture arguments, human name). Native open/read timeouts where the backend has them."""
    ms = int(timeout_s * 1000)
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    if spec.kind == "csi":
        return (gstreamer_csi_pipeline(spec.csi), cv2.CAP_GSTREAMER), f"CSI camera {spec.csi.sensor_id}"
    if spec.kind == "v4l2":
        return (spec.location, cv2.CAP_V4L2, timeouts), f"camera {spec.location}"
    if spec.kind == "stream":
        return (spec.location, cv2.CAP_FFMPEG, timeouts), f"stream {spec.location}"
    return (spec.location,), f"video {spec.location}"


# Threads given up on while inside a capture driver (an open past its deadline, a read that would not
# stop). Python cannot interrupt them, and one that returns into the interpreter while it shuts down is
# killed mid-unwind inside FFmpeg/GStreamer's C++ code: "terminate called without an active exception",
# SIGABRT, exit code 134 instead of the message's 1. So at exit we wait for them (FFmpeg's own open/read
# timeout, set to the same deadline, makes them return shortly), and if one is still stuck after
# ABANDONED_GRACE_S we end the process with os._exit after flushing, skipping the shutdown that crashes.
ABANDONED_GRACE_S = 5.0
_abandoned: list[threading.Thread] = []
_abandoned_lock = threading.Lock()
_exit_hook = []  # non-empty once the atexit hook is registered
exit_code_if_stuck = 1  # the exit code os._exit uses then; the camera command sets its run's code


def abandon_thread(thread: threading.Thread) -> None:
    """Register a daemon ``thread`` stuck in a capture driver, to be waited for (bounded) at exit.
    Threads that have ended meanwhile are dropped, so a stream that times out every reconnect for
    weeks does not grow the list."""
    import atexit

    with _abandoned_lock:
        if not _exit_hook:
            atexit.register(_wait_for_abandoned)
            _exit_hook.append(True)
        _abandoned[:] = [t for t in _abandoned if t.is_alive()] + [thread]


def _wait_for_abandoned(grace_s: float | None = None) -> None:
    import sys

    deadline = time.monotonic() + (ABANDONED_GRACE_S if grace_s is None else grace_s)
    with _abandoned_lock:
        threads = list(_abandoned)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(exit_code_if_stuck)


def _open_bounded(factory, args: tuple, timeout_s: float, name: str):
    """Run the (possibly blocking) capture constructor with a deadline.

    A constructor stuck in a driver cannot be interrupted from Python: after ``timeout_s`` we give up on
    it; its daemon thread releases the capture if it ever returns, so nothing leaks into the caller, and
    it is registered with ``abandon_thread`` so interpreter exit waits for it instead of crashing.
    """
    box: dict = {}
    abandoned = threading.Event()

    def target():
        try:
            cap = factory(*args)
        except Exception as exc:  # cv2 raises cv2.error for some backends instead of returning closed
            box["error"] = exc
            return
        if abandoned.is_set():
            cap.release()
            return
        box["cap"] = cap

    worker = threading.Thread(target=target, name=f"open {name}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        abandoned.set()
        abandon_thread(worker)
        raise SourceError(f"{name}: did not open within {timeout_s:g} s; check that it is reachable and sends "
                          "video (try it in `ffplay` or `gst-launch-1.0`), or raise --open-timeout")
    if "error" in box:
        raise SourceError(f"{name}: OpenCV failed to open it ({box['error']}); check the address and format")
    return box["cap"]


def open_source(spec: SourceSpec, *, timeout_s: float = DEFAULT_OPEN_TIMEOUT_S, folder_fps: float | None = None,
                factory=None) -> FrameSource:
    """Open ``spec`` within ``timeout_s`` seconds, or raise SourceError saying why and what to do.

    ``factory`` replaces cv2.VideoCapture (tests); ``folder_fps`` paces an image folder in real time.
    """
    if spec.kind == "synthetic":
        return SyntheticSource(spec.synthetic)
    if spec.kind == "folder":
        return FolderSource(spec.location, fps=folder_fps)
    if spec.kind == "csi" and factory is None and not opencv_has_gstreamer():
        raise SourceError(f"--source {spec.text}: " + GSTREAMER_MISSING.format(version=cv2.__version__))
    if spec.kind == "v4l2":
        _check_device(spec)
    args, name = _capture_args(spec, timeout_s)
    cap = _open_bounded(factory or cv2.VideoCapture, args, timeout_s, name)
    if not cap.isOpened():
        cap.release()
        raise SourceError(_not_opened_message(spec, name))
    if spec.kind == "v4l2":
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer driver buffers: less latency before our newest-frame slot
    return Cv2Source(cap, name, live=spec.live)


def _not_opened_message(spec: SourceSpec, name: str) -> str:
    if spec.kind == "v4l2":
        return (f"{name}: exists but could not be opened; it may be in use by another program (check with "
                f"`fuser {spec.location}`), or you may lack permission (add yourself to the `video` group)")
    if spec.kind == "csi":
        return (f"{name}: nvarguscamerasrc did not start; check the ribbon cable and sensor id, that no other "
                "program holds the camera, and restart the daemon: `sudo systemctl restart nvargus-daemon`")
    if spec.kind == "stream":
        return (f"{name}: could not be opened (unreachable, refused, wrong path or unsupported codec); "
                "check the URL with `ffplay <url>`")
    return f"{name}: OpenCV cannot decode this file; convert it to H.264 .mp4 or pass a folder of images"

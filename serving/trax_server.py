"""``siamtrack trax``: the tracker as a TraX server, so the VOT toolkit (or any TraX client) can run it.

The client (``vot-toolkit``, or ``trax.Client`` from ``vot-trax``) starts this command and talks TraX
over its stdin/stdout. Each session: ``initialize`` (an image + one region) starts the target, each
``frame`` returns the tracked box as a rectangle with a ``confidence`` property (the raw score). The
VOT toolkit decides failures and re-initialises itself (the reset protocol lives in the client).

Conventions, the same as ``siamtrack accuracy --format vot`` (pysot's ``tools/test.py``):
- the init region goes through ``runtime.protocol.vot_init_box``: a polygon through pysot's
  ``get_axis_aligned_bbox`` rule, a rectangle through its inclusive-corner polygon (so it is used as is);
- images: a file path (read with OpenCV, BGR), an encoded buffer (JPEG/PNG), or a raw memory image, which
  TraX defines as RGB and is converted to BGR;
- **TraX carries regions as float32.** Coordinates that float32 cannot hold exactly (most decimals)
  reach the tracker up to ~1e-5 px off, and pysot's crop origin ``floor(centre - (side+1)/2 + 0.5)``
  moves by one pixel when the centre sits exactly on a .5 boundary; the boxes then differ from a
  float64 run by more than rounding. Ground truth in multiples of 1/2^k px (like integer VOT polygons)
  is carried exactly and gives the same boxes as ``siamtrack accuracy --format vot``.

Nothing but TraX may reach the protocol's stdout: the server moves the channel to private file
descriptors (``TRAX_IN``/``TRAX_OUT``, which libtrax reads) and points fd 1 at stderr before it opens the
model, so a library that prints cannot corrupt the stream.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from runtime.errors import BackendUnavailable, InputError, SiamTrackError

EPILOG = """\
examples:
  # what the VOT toolkit runs (see README "VOT toolkit over TraX" for the trackers.ini entry)
  siamtrack trax --model artifacts/lite0
  siamtrack trax --model artifacts/lite0 --backend onnxruntime --precision int8 --threads 1
  siamtrack trax --model config.yaml --checkpoint model.pth          # pysot files, PyTorch
  # VOT long-term (VOT-LT) experiments: the long-term tracker; the confidence it reports is the score
  siamtrack trax --model artifacts/lite0 --tracker long-term

This command speaks TraX on stdin/stdout and is meant to be started by a TraX client, not by hand.
Errors go to stderr (the toolkit's tracker log) and the process exits 1.
"""


def build_parser() -> argparse.ArgumentParser:
    from runtime.cli_args import add_model_args, add_tracker_arg

    p = argparse.ArgumentParser(prog="siamtrack trax", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_tracker_arg(p)
    p.add_argument("--name", default="siamtrack", help="tracker name reported to the client")
    return p


def _import_trax():
    try:
        import trax
        import trax.server  # noqa: F401  (the submodule holds Server)
    except ImportError as err:
        raise BackendUnavailable(f"the TraX bindings are not installed ({err}); pip install vot-trax "
                                 "(or bash setup.sh --dev)") from None
    return trax


def _private_channel() -> None:
    """Give libtrax the protocol pipes on fresh descriptors and send everything else on fd 1 to stderr.

    libtrax uses TRAX_SOCKET, else TRAX_IN/TRAX_OUT, else fds 0/1. Without this, any print or library
    banner on stdout would be read by the client as a (broken) protocol message."""
    if os.environ.get("TRAX_SOCKET") or (os.environ.get("TRAX_IN") and os.environ.get("TRAX_OUT")):
        return
    sys.stdout.flush()
    os.environ["TRAX_IN"] = str(os.dup(0))
    os.environ["TRAX_OUT"] = str(os.dup(1))
    os.dup2(2, 1)


def region_numbers(region) -> np.ndarray:
    """A trax Region -> 4 numbers (rectangle x, y, w, h) or 8 (4-corner polygon). InputError otherwise."""
    from trax import Region

    if region.type == Region.RECTANGLE:
        return np.array(region.bounds(), dtype=np.float64)
    if region.type == Region.POLYGON:
        points = [region.get(i) for i in range(region.size())]
        if len(points) != 4:
            raise InputError(f"a polygon region with {len(points)} points; SiamRPN++ is initialised from "
                             "a rectangle or a 4-corner polygon (VOT2016-2019 ground truth)")
        return np.array(points, dtype=np.float64).ravel()
    raise InputError(f"a {region.type} region; this tracker takes rectangles or polygons (no masks)")


def read_frame(images: dict) -> np.ndarray:
    """The colour image of a TraX request -> HxWx3 uint8 BGR."""
    import cv2
    from trax import Image

    image = images.get("color")
    if image is None:
        raise InputError("the request carries no 'color' image channel")
    kind = image.type()                          # a method on trax images (a property on regions)
    if kind == Image.PATH:
        frame = cv2.imread(image.path(), cv2.IMREAD_COLOR)
        if frame is None:
            raise InputError(f"{image.path()}: cannot be read as an image")
        return frame
    if kind == Image.BUFFER:
        frame = cv2.imdecode(np.frombuffer(image.buffer(), dtype=np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            raise InputError("an image buffer that OpenCV cannot decode (expected JPEG or PNG)")
        return frame
    if kind == Image.MEMORY:
        array = image.array()
        if array.ndim == 3 and array.shape[2] == 3:
            return np.ascontiguousarray(array[:, :, ::-1])              # TraX memory images are RGB
        return cv2.cvtColor(np.ascontiguousarray(array.reshape(array.shape[:2])), cv2.COLOR_GRAY2BGR)
    raise InputError(f"image type {kind!r} is not supported (send a path, buffer or memory image)")


def serve(tracker, server) -> int:
    """Answer requests until the client quits. Returns the number of frames tracked."""
    from trax import Rectangle, TraxStatus

    frames = 0
    while True:
        request = server.wait()
        if request.type == TraxStatus.QUIT:
            return frames
        objects = request.objects or []
        if request.type == TraxStatus.INITIALIZE or objects:
            if len(objects) != 1:
                raise InputError(f"{len(objects)} objects to initialise; this server tracks one target per "
                                 "session (start one session per object)")
            region, _ = objects[0]
            box = _init_box(region_numbers(region))
            tracker.init(read_frame(request.image), box)
            server.status([(Rectangle.create(*map(float, box)), {"confidence": 1.0})])
            continue
        result = tracker.track(read_frame(request.image))
        frames += 1
        x, y, w, h = (float(v) for v in result.box_xywh)
        server.status([(Rectangle.create(x, y, w, h), {"confidence": float(result.score)})])


def _init_box(numbers: np.ndarray) -> np.ndarray:
    from runtime.protocol import vot_init_box

    box = vot_init_box(numbers)
    if not (np.all(np.isfinite(box)) and box[2] >= 1 and box[3] >= 1):
        raise InputError(f"init region {numbers.tolist()} gives box {box.tolist()}; a target needs a finite "
                         "box at least 1 px wide and high")
    return box


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    trax = _import_trax()
    _private_channel()
    from siamtrack.api import Tracker

    tracker = Tracker.open(args.model, checkpoint=args.checkpoint, backend=args.backend, precision=args.precision,
                           flavour=args.flavour, seed=args.random_seed, threads=args.threads,
                           tracker=args.tracker)
    print(f"siamtrack trax: {tracker!r} ready", file=sys.stderr)
    from trax import Image, Region
    from trax.server import Server

    server = Server([Region.RECTANGLE, Region.POLYGON], [Image.PATH, Image.BUFFER, Image.MEMORY],
                    ["color"], tracker_name=args.name, tracker_description="SiamRPN++ (siamtrack)",
                    tracker_family="siamrpn")
    try:
        frames = serve(tracker, server)
    except SiamTrackError as err:
        server.quit(reason=str(err))
        raise
    except trax.TraxException as err:
        raise InputError(f"TraX session failed ({err}); the client closed the connection or sent an "
                         "invalid message") from None
    print(f"siamtrack trax: session ended after {frames} tracked frames", file=sys.stderr)
    server.quit()
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack trax"))

"""Command-line pieces shared by the tracking commands (``track``, ``camera``)."""
from __future__ import annotations

import argparse

from runtime.errors import InputError


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x,y,w,h"`` (pixels, 0-based) -> four floats; width and height must be at least 1 px."""
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InputError(f"--box {text!r}: expected four numbers x,y,w,h in pixels (e.g. --box 120,80,60,40)")
    if not (values[2] >= 1 and values[3] >= 1):
        raise InputError(f"--box {text!r}: width and height must be at least 1 px; give the target's size")
    return values  # type: ignore[return-value]


def positive_int(text: str) -> int:
    """argparse type for counts such as --threads and --workers: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model/--checkpoint/--random-seed/--backend/--precision/--flavour/--threads, as ``open_backend``
    takes them."""
    p.add_argument("--model", required=True,
                   help="artifact folder (ONNX pair / engines), pysot config.yaml, or r50|r50_otb|mobilev2|alex")
    p.add_argument("--checkpoint", help="pysot model.pth (with a config --model)")
    p.add_argument("--random-seed", type=int, help="seeded random weights instead of a checkpoint (tests only)")
    p.add_argument("--backend", default="auto", choices=["auto", "tensorrt", "onnxruntime", "torch"],
                   help="auto picks the fastest that can run here (default)")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"],
                   help="precision of the artifacts (default: the best present for the chosen backend)")
    p.add_argument("--flavour", choices=["plugin", "standard"], help="xcorr flavour of the artifacts")
    p.add_argument("--threads", type=positive_int,
                   help="CPU threads of ONNX Runtime's intra-op pool (torch's for a PyTorch model); default: "
                        "the library's (all usable CPUs). TensorRT ignores it")


TRACKER_HELP = (
    "short-term: pysot's SiamRPN++ tracker. long-term: pysot's SiamRPNLTTracker: when the score drops "
    "under its confidence_low (0.85) the target is lost and the tracker searches a large crop "
    "(lost_instance_size, 831 px) around the last position, with no size update, until a score above "
    "confidence_high (0.998) finds it again; needs an export with the large search graph (`siamtrack "
    "export ... --lost-search`). auto (default): what the model's config says (pysot TRACK.TYPE)")


def add_tracker_arg(p: argparse.ArgumentParser) -> None:
    """--tracker {auto,short-term,long-term} (``runtime.tracker_choice``)."""
    from runtime.tracker_choice import TRACKER_CHOICES

    p.add_argument("--tracker", default="auto", choices=TRACKER_CHOICES, help=TRACKER_HELP)


def open_backend_from_args(args: argparse.Namespace):
    from runtime.backends import open_backend

    return open_backend(args.model, checkpoint=args.checkpoint, backend=args.backend,
                        precision=args.precision, flavour=args.flavour, seed=args.random_seed,
                        threads=args.threads)

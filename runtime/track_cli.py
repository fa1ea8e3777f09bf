"""``siamtrack track``: track one target through a video file or an image folder."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from runtime.cli_args import add_model_args, open_backend_from_args, parse_box
from runtime.errors import InputError

EPILOG = """\
examples:
  # exported artifacts (ONNX Runtime, or TensorRT engines when a GPU is present)
  siamtrack track --model artifacts/default --video clip.mp4 --box 120,80,60,40
  # a pysot checkpoint as it is
  siamtrack track --model config.yaml --checkpoint model.pth --video frames/ --box 120,80,60,40 \\
      --out boxes.txt --save-video annotated.mp4
  # seeded random weights (tests the path, tracks nothing meaningful)
  siamtrack track --model alex --random-seed 0 --video clip.mp4 --box 120,80,60,40

Boxes are x,y,w,h in 0-based pixels of the frame. --out writes one box per frame, the first being the
init box, in the format pysot's toolkit reads.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siamtrack track", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--video", required=True, help="video file or folder of images")
    p.add_argument("--box", required=True, help="init box x,y,w,h on the first frame")
    p.add_argument("--out", help="write one box per frame (x,y,w,h) to this file")
    p.add_argument("--save-video", help="write an annotated video (.mp4 or .avi)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    return p


def _atomic_write_lines(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    box = parse_box(args.box)

    import cv2
    import numpy as np

    from runtime.tracker import SiamRPNTracker
    from runtime.video_io import FrameReader

    reader = FrameReader(args.video)
    backend = open_backend_from_args(args)
    random_weights = bool(getattr(backend, "random_weights", False))
    if random_weights and not args.json:
        print("note: the model has seeded RANDOM weights; the boxes below test the pipeline, not tracking",
              file=sys.stderr)
    tracker = SiamRPNTracker(backend)
    writer = None
    lines: list[str] = []
    track_seconds = 0.0
    wall_start = time.perf_counter()
    try:
        for index, frame in enumerate(reader):
            t0 = time.perf_counter()
            if index == 0:
                tracker.init(frame, np.asarray(box, dtype=np.float64))
                out_box, score = np.asarray(box, dtype=np.float64), 1.0
            else:
                result = tracker.track(frame)
                out_box, score = result.box_xywh, result.score
            track_seconds += time.perf_counter() - t0 if index else 0.0
            lines.append(",".join(f"{v:.4f}" for v in out_box) + "\n")
            if args.save_video:
                if writer is None:
                    writer = _open_writer(cv2, args.save_video, frame, reader.fps or 30.0)
                writer.write(_draw(cv2, frame, out_box, score))
    finally:
        if writer is not None:
            writer.release()
        backend.close()
    wall = time.perf_counter() - wall_start
    tracked = max(len(lines) - 1, 0)
    if args.out:
        _atomic_write_lines(Path(args.out), lines)
    summary = {
        "frames": len(lines), "backend": backend.name, "random_weights": random_weights,
        "tracker_fps": tracked / track_seconds if track_seconds > 0 else None,
        "end_to_end_fps": len(lines) / wall if wall > 0 else None,
        "boxes": args.out, "video": args.save_video,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        fps = f"{summary['tracker_fps']:.1f}" if summary["tracker_fps"] else "n/a"
        print(f"tracked {len(lines)} frames with {backend.name}: {fps} FPS (tracker), "
              f"{summary['end_to_end_fps']:.1f} FPS end to end incl. decoding"
              + (f"; boxes -> {args.out}" if args.out else ""))
    return 0


def _open_writer(cv2, path: str, frame, fps: float):
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.lower().endswith(".mp4") else "MJPG"))
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(path, fourcc, fps, (w, h))
    if not writer.isOpened():
        raise InputError(f"--save-video {path}: OpenCV cannot write this file; use .mp4 or .avi")
    return writer


def _draw(cv2, frame, box, score):
    img = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    x, y, w, h = (int(round(v)) for v in box)
    cv2.rectangle(img, (x, y), (x + w, y + h), (0, 255, 0), 2)
    cv2.putText(img, f"{score:.2f}", (x, max(y - 5, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
    return img


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack track"))

"""``siamtrack track``: track one target through a video file or an image folder."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from runtime.cli_args import add_model_args, add_tracker_arg, open_backend_from_args, parse_box
from runtime.errors import InputError

EPILOG = """\
examples:
  # exported artifacts (ONNX Runtime, or TensorRT engines when a GPU is present)
  siamtrack track --model artifacts/lite0 --video clip.mp4 --box 120,80,60,40
  # a pysot checkpoint as it is
  siamtrack track --model config.yaml --checkpoint model.pth --video frames/ --box 120,80,60,40 \\
      --out boxes.txt --save-video annotated.mp4
  # frames 100..399 only; the box is on frame 100
  siamtrack track --model artifacts/lite0 --video clip.mp4 --start-frame 100 --end-frame 399 \\
      --box 120,80,60,40 --out boxes.txt
  # the long-term tracker (re-detects a target that left the view; needs an export with the large
  # search graph: siamtrack export ... --lost-search)
  siamtrack track --model artifacts/lite0 --tracker long-term --video clip.mp4 --box 120,80,60,40
  # seeded random weights (tests the path, tracks nothing meaningful)
  siamtrack track --model alex --random-seed 0 --video clip.mp4 --box 120,80,60,40

Boxes are x,y,w,h in 0-based pixels of the frame. --out writes one box per processed frame, the first
being the init box, in the format pysot's toolkit reads. Frame numbers are 0-based; --end-frame is
included. Every frame must have the first frame's size. The chosen backend, precision and flavour are
printed first (and are in --json); a progress bar runs on a terminal (not with --json or when stderr is
redirected). --save-video draws the camera overlay: frame number, backend, FPS, score and the state
(init / tracking / lost, lost after 3 scores under 0.3 as in `siamtrack camera`; with the long-term
tracker, lost while the tracker itself is in its lost state). Output paths are
checked (and missing folders created) before any tracking.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siamtrack track", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_tracker_arg(p)
    p.add_argument("--video", required=True, help="video file or folder of images")
    p.add_argument("--box", required=True, help="init box x,y,w,h on the first tracked frame")
    p.add_argument("--start-frame", type=int, default=0, metavar="N",
                   help="first frame to track, 0-based (default 0); --box is on this frame")
    p.add_argument("--end-frame", type=int, metavar="M", help="last frame to track, included (default: the last)")
    p.add_argument("--out", help="write one box per frame (x,y,w,h) to this file")
    p.add_argument("--save-video", help="write an annotated video (.mp4 or .avi)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    return p


def _atomic_write_lines(path: Path, lines: list[str]) -> None:
    from runtime.atomic import write_text

    write_text(path, "".join(lines))


def _check_args(args) -> None:
    """Everything that can be checked before a frame is read or a model loaded."""
    if args.start_frame < 0:
        raise InputError(f"--start-frame {args.start_frame}: expected a frame number >= 0 (0-based)")
    if args.end_frame is not None and args.end_frame < args.start_frame:
        raise InputError(f"--end-frame {args.end_frame} is before --start-frame {args.start_frame}; "
                         "expected start <= end (both 0-based, end included)")
    from runtime.outputs import prepare_output

    if args.out:
        prepare_output(args.out, "--out")
    if args.save_video:
        prepare_output(args.save_video, "--save-video")


def describe_backend(backend) -> dict:
    """{"backend", "precision", "flavour"} of an opened backend (None where it has no such notion)."""
    meta = getattr(backend, "meta", None)
    precision = getattr(backend, "precision", None) or getattr(meta, "precision", None)
    if precision is None and backend.name == "torch":
        precision = "fp32"
    return {"backend": backend.name, "precision": precision, "flavour": getattr(backend, "flavour", None)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    box = parse_box(args.box)
    _check_args(args)

    import numpy as np
    from tqdm import tqdm

    from runtime.frames import as_boxes
    from runtime.tracker_choice import open_tracker, tracker_name
    from runtime.video_io import FrameReader

    stop = None if args.end_frame is None else args.end_frame + 1
    reader = FrameReader(args.video, start=args.start_frame, stop=stop)
    frames = iter(reader)
    first = next(frames, None)
    if first is None:
        raise InputError(f"--start-frame {args.start_frame}: {args.video} has no frame there "
                         f"(it has {reader.total_frames} frames); pass a smaller --start-frame")
    as_boxes(box, first.shape[:2], what="--box")  # before the model loads: a wrong box fails at once
    backend = open_backend_from_args(args)
    try:   # an export without the large search graph asked for long-term fails here, not frames later
        tracker = open_tracker(backend, args.tracker)
    except BaseException:
        backend.close()
        raise
    chosen = dict(describe_backend(backend), tracker=tracker_name(tracker.config))
    random_weights = bool(getattr(backend, "random_weights", False))
    if not args.json:
        print(f"backend {chosen['backend']}, precision {chosen['precision'] or 'n/a'}, "
              f"flavour {chosen['flavour'] or 'n/a'}, {chosen['tracker']} tracker", file=sys.stderr)
        if random_weights:
            print("note: the model has seeded RANDOM weights; the boxes below test the pipeline, not tracking",
                  file=sys.stderr)
    video = _AnnotatedVideo(args.save_video, reader.fps or 30.0, chosen["backend"]) if args.save_video else None
    lines: list[str] = []
    lost_frames = 0
    track_seconds = 0.0
    wall_start = time.perf_counter()
    progress = tqdm(total=len(reader) or None, desc="track", unit="frame", file=sys.stderr, leave=False,
                    disable=args.json or not sys.stderr.isatty())
    try:
        for offset, frame in enumerate(_chain(first, frames)):
            t0 = time.perf_counter()
            if offset == 0:
                tracker.init(frame, np.asarray(box, dtype=np.float64))
                out_box, score, lost = np.asarray(box, dtype=np.float64), None, None
            else:
                result = tracker.track(frame)
                out_box, score = result.box_xywh, result.score
                lost = bool(result.lost) if tracker.config.long_term else None
                lost_frames += bool(lost)
            track_seconds += time.perf_counter() - t0 if offset else 0.0
            lines.append(",".join(f"{v:.4f}" for v in out_box) + "\n")
            if video is not None:
                video.write(frame, args.start_frame + offset, out_box, score, offset / track_seconds
                            if track_seconds > 0 else None, tracker_lost=lost)
            progress.update()
    finally:
        progress.close()
        if video is not None:
            video.close()
        backend.close()
    wall = time.perf_counter() - wall_start
    tracked = max(len(lines) - 1, 0)
    if args.out:
        _write_boxes(Path(args.out), lines)
    summary = {
        "frames": len(lines), "start_frame": args.start_frame, "end_frame": args.start_frame + len(lines) - 1,
        **chosen, "random_weights": random_weights,
        "tracker_fps": tracked / track_seconds if track_seconds > 0 else None,
        "end_to_end_fps": len(lines) / wall if wall > 0 else None,
        "boxes": args.out, "video": args.save_video,
        # frames the long-term tracker spent in its lost state (None: the short-term tracker has none)
        "lost_frames": lost_frames if tracker.config.long_term else None,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        fps = f"{summary['tracker_fps']:.1f}" if summary["tracker_fps"] else "n/a"
        print(f"tracked {len(lines)} frames with {backend.name}: {fps} FPS (tracker), "
              f"{summary['end_to_end_fps']:.1f} FPS end to end incl. decoding"
              + (f"; boxes -> {args.out}" if args.out else ""))
    return 0


def _chain(first, rest):
    yield first
    yield from rest


def _write_boxes(path: Path, lines: list[str]) -> None:
    from runtime.outputs import output_error

    try:
        _atomic_write_lines(path, lines)
    except OSError as err:  # a disk that filled up during the run; the temp file is already removed
        raise output_error(err, "--out", path) from None


class _AnnotatedVideo:
    """--save-video: each frame with the camera overlay (runtime.display.draw_overlay), the state from
    the camera's lost/found rule (runtime.lost defaults)."""

    def __init__(self, path: str, fps: float, backend: str):
        from runtime.lost import LostMonitor

        self.path, self.fps, self.backend = path, fps, backend
        self.monitor = LostMonitor()
        self.writer = None

    def write(self, frame, index: int, box, score, tracker_fps, tracker_lost: bool | None = None) -> None:
        """tracker_lost: the long-term tracker's own lost state for this frame (None: short-term, the
        score rule decides)."""
        import cv2

        from runtime.display import draw_overlay

        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.lower().endswith(".mp4") else "MJPG"))
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(self.path, fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise InputError(f"--save-video {self.path}: OpenCV cannot write this file; use .mp4 or .avi")
        if score is None:
            self.monitor.reset()
            state = "init"
        else:
            state = self.monitor.update(float(score), tracker_lost=tracker_lost).value
        self.writer.write(draw_overlay(frame, box_xywh=box, score=score, state=state, fps=tracker_fps,
                                       backend=self.backend, frame_index=index))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack track"))

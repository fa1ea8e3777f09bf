"""``siamtrack camera``: track a target live from a camera, stream, video or image folder."""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys

from runtime.cli_args import add_model_args, add_tracker_arg, open_backend_from_args, parse_box
from runtime.errors import InputError

EPILOG = """\
sources (--source):
  csi://0?width=1280&height=720&fps=30&flip=0   Jetson CSI camera (GStreamer, hardware conversion)
  0  or  /dev/video0                          USB / V4L2 camera
  rtsp://host:8554/cam   http://host/video.mjpg network stream
  clip.mp4   frames/                          video file, image folder (same path as a camera)
  synthetic://?width=320&height=240&fps=30    drawn moving target, for a demo without a camera

examples:
  # Jetson: CSI camera, engines in artifacts/lite0 (build.sh), pick the target with the mouse
  siamtrack camera --source csi://0 --model artifacts/lite0
  # headless on a robot: JSON lines to stdout, annotated recording
  siamtrack camera --source /dev/video0 --model artifacts/lite0 --box 300,200,80,60 \\
      --headless --json-out - --record run.mp4
  # a video through the live path, seeded random weights (tests the path, tracks nothing meaningful)
  siamtrack camera --source clip.mp4 --model alex --random-seed 0 --box 120,80,60,40 --headless \\
      --json-out boxes.jsonl --max-frames 100
  # the tracker on a Triton server (siamtrack triton-serve); `siamtrack camera --server X --help`
  siamtrack camera --server 127.0.0.1:8001 --source clip.mp4 --box 120,80,60,40 --headless --json-out -

keys (window): r re-select the target, space pause/resume, q or Esc quit.
JSON lines: frame, t_wall, t_mono, box ([x,y,w,h] or null when lost), score, state (init|tracking|lost),
latency_ms (capture to result), track_ms. The target is "lost" after --lost-frames scores under
--lost-threshold, and found again after --found-frames scores at or above --found-threshold. With the
long-term tracker (--tracker long-term, or auto with a long-term config) the state is the tracker's own:
lost while it searches its large crop, found when a score above its confidence_high brings it back (the
four --lost/--found options then do not apply).

ending a run: SIGINT (Ctrl-C) or SIGTERM (kill, systemd) ends it after the current frame: the recording
is finalised, the summary printed, and the exit code is 130 (SIGINT) or 143 (SIGTERM); a second signal
stops at once. A JSON-lines reader that goes away (--json-out - | head) ends the run quietly, exit 0.
Errors (a source that does not open, a full disk, ...) exit 1 with the reason.
"""

# exit codes of a run ended by a signal: 128 + the signal number, as a shell reports a killed process
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siamtrack camera", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="camera, stream, video file or image folder (see below)")
    p.add_argument("--box", help="target x,y,w,h on the first frame (required with --headless)")
    add_model_args(p)
    add_tracker_arg(p)
    p.add_argument("--json-out", metavar="FILE|-", help="write one JSON line per frame to FILE, or - for stdout")
    p.add_argument("--record", metavar="FILE", help="write the annotated video (.mp4 or .avi)")
    p.add_argument("--headless", action="store_true", help="no window (needs --box)")
    p.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    p.add_argument("--pace", default="realtime", choices=["realtime", "every-frame"],
                   help="files/folders: realtime = at their fps, skipping frames like a camera (default); "
                        "every-frame = each frame, as fast as the tracker goes")
    p.add_argument("--folder-fps", type=float, default=30.0, help="frame rate of an image folder (default 30)")
    p.add_argument("--lost-threshold", type=float, default=0.3, help="score under which a frame is weak")
    p.add_argument("--found-threshold", type=float, default=0.5, help="score at or above which a frame is strong")
    p.add_argument("--lost-frames", type=int, default=3, help="weak frames in a row before LOST")
    p.add_argument("--found-frames", type=int, default=2, help="strong frames in a row before TRACKING again")
    p.add_argument("--open-timeout", type=float, default=10.0, help="seconds to open the source / get a frame")
    p.add_argument("--stall-timeout", type=float,
                   help="give up after this many seconds without a frame (default: keep reconnecting)")
    p.add_argument("--reconnect-max-delay", type=float, default=5.0, help="cap of the reconnect backoff (s)")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")
    return p


def _check_args(args) -> None:
    if args.headless and not args.box:
        raise InputError("--headless needs --box x,y,w,h: there is no window to select the target in")
    if args.json and args.json_out == "-":
        raise InputError("--json and --json-out - both write to stdout; send the lines to a file instead")
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames {args.max_frames}: expected a positive number of frames")
    for name in ("open_timeout", "reconnect_max_delay", "folder_fps"):
        if not getattr(args, name) > 0:
            raise InputError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive number")
    from runtime.outputs import prepare_output

    if args.json_out:
        prepare_output(args.json_out, "--json-out")
    if args.record:
        prepare_output(args.record, "--record")


@contextlib.contextmanager
def _signals_stop(stop):
    """While inside: SIGINT/SIGTERM ask the loop to end after the current frame (``stop``); a second
    signal raises KeyboardInterrupt to stop at once. Outside the main thread (a caller's worker) the
    handlers cannot be installed and signals keep their default behaviour."""
    def request(signum, _frame):
        if stop.reason is not None:
            raise KeyboardInterrupt
        stop.request(signal.Signals(signum).name)

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, request)
    except ValueError:  # not the main thread
        pass
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _open_lines(path: str):
    from runtime.outputs import output_error

    try:
        return open(path, "w", buffering=1)  # line-buffered: a reader (tail -f) sees each frame at once
    except OSError as err:
        raise output_error(err, "--json-out", path) from None


def _quiet_opencv() -> None:
    import cv2

    with contextlib.suppress(Exception):  # older cv2 builds lack cv2.utils.logging
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def main(argv: list[str] | None = None, open_tracker=None) -> int:
    """open_tracker: optional ``args -> (tracker, handle)`` replacing the local model (handle has
    ``name`` and ``close()``); serving.triton.camera passes a Triton stream here (runtime imports no
    other stage: the caller brings it)."""
    args = build_parser().parse_args(argv)
    _check_args(args)
    from runtime.live import StopRequest

    with _signals_stop(StopRequest()) as stop:
        return _run(args, stop, open_tracker)


def _run(args, stop, open_tracker=None) -> int:
    box = parse_box(args.box) if args.box else None

    from runtime import sources
    from runtime.capture import LatestFrameGrabber, ReconnectPolicy
    from runtime.display import Window, display_available
    from runtime.live import LiveConfig, Recorder, run_live
    from runtime.lost import LostPolicy
    from runtime.sources import open_source, parse_source

    _quiet_opencv()
    spec = parse_source(args.source)
    policy = LostPolicy(args.lost_threshold, args.found_threshold, args.lost_frames, args.found_frames)
    if not args.headless:
        ok, reason = display_available()
        if not ok:
            raise InputError(f"cannot show the tracking window: {reason}")

    def opener():
        return open_source(spec, timeout_s=args.open_timeout, folder_fps=args.folder_fps)

    source = opener()  # fail fast on a bad source, before loading a model
    with contextlib.ExitStack() as stack:
        stack.callback(source.release)
        from runtime.tracker_choice import open_tracker as local_tracker

        if open_tracker is None:
            backend, tracker = open_backend_from_args(args), None
        else:  # a caller's tracker, e.g. a stream on a Triton server (serving.triton.camera)
            if args.tracker == "long-term":
                raise InputError("--tracker long-term needs a local model (--model): the tracker served "
                                 "over --server is the short-term one")
            tracker, backend = open_tracker(args)
        stack.callback(backend.close)
        if getattr(backend, "random_weights", False):
            print("note: the model has seeded RANDOM weights; the boxes test the pipeline, not tracking",
                  file=sys.stderr)
        tracker = tracker or local_tracker(backend, args.tracker)   # checks the lost search graph now
        json_out = sys.stdout if args.json_out == "-" else (
            stack.enter_context(_open_lines(args.json_out)) if args.json_out else None)
        recorder = Recorder(args.record, source.fps or args.folder_fps) if args.record else None
        if recorder is not None:
            stack.callback(recorder.close)
        window = None if args.headless else Window(f"siamtrack: {args.source}")
        if window is not None:
            stack.callback(window.close)
        grabber = LatestFrameGrabber(opener, source=source, pace=args.pace,
                                     reconnect=ReconnectPolicy(max_delay_s=args.reconnect_max_delay),
                                     fallback_fps=args.folder_fps)
        stack.enter_context(grabber)
        long_term = bool(getattr(getattr(tracker, "config", None), "long_term", False))
        config = LiveConfig(backend_name=backend.name, policy=policy, max_frames=args.max_frames,
                            first_frame_timeout_s=args.open_timeout, stall_timeout_s=args.stall_timeout,
                            tracker_lost_state=long_term)
        summary = run_live(grabber, tracker, box=box, window=window, json_out=json_out, recorder=recorder,
                           config=config, stop=stop)
    code = SIGNAL_EXIT_CODES.get(summary.end_reason, 0)
    sources.exit_code_if_stuck = code  # if a capture thread is still stuck in a driver at exit
    report = dict(summary.to_dict(), backend=backend.name, source=args.source,
                  tracker="long-term" if long_term else "short-term",
                  random_weights=bool(getattr(backend, "random_weights", False)))
    if args.json:
        print(json.dumps(report), flush=True)
    else:
        print(f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} FPS, {backend.name}); "
              f"skipped {summary.skipped}, lost {summary.lost_frames}, reconnects {summary.reconnects}; "
              f"latency p50 {summary.latency_ms_p50} ms; ended: {summary.end_reason}", file=sys.stderr)
    return code


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack camera"))

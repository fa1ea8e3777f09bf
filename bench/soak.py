"""Soak: the live loop (``runtime.live.run_live``) for many frames, to show that its memory stays flat.

A camera at 30 FPS makes 2.6 million frames a day, so anything the loop keeps per frame grows without
end. This bench runs ``--frames`` frames of the synthetic camera (``synthetic://``, drawn in memory,
delivered losslessly as fast as the tracker goes) through the real loop with the real
``SiamRPNTracker`` on ``--model``, JSON lines written to /dev/null as ``--json-out`` would write them,
and reports:

- resident memory (RSS, from /proc/self/statm) after ``--warmup`` frames and at the end, and the
  growth between them (the target: under 1 MB);
- latency (capture to result, ms) p50/p99 over the first and the last 1,000 frames: a loop that slows
  down as it runs (a list growing, a sort per frame) shows up here;
- the loop's own summary (``LiveSummary``).

The bench keeps only the first and last 1,000 latencies and a few RSS samples, so it adds nothing per
frame itself. A bench script, not a test: 100,000 frames take minutes even with a tiny model.

    python -m bench.soak --model artifacts/lite0 --frames 100000 --out soak.json
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from runtime.errors import InputError

EDGE = 1000  # frames in the "first" and "last" latency windows


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; ru_maxrss peak elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _LineProbe:
    """A JSON-lines sink: writes each line to ``sink`` (as --json-out does) and keeps the latency of the
    first and last EDGE frames and RSS samples at ``warmup`` frames and every ``every`` frames."""

    def __init__(self, sink, warmup: int, every: int, total: int):
        self.sink, self.warmup, self.every, self.total = sink, warmup, every, total
        self.count = 0
        self.first: list[float] = []
        self.last: collections.deque[float] = collections.deque(maxlen=EDGE)
        self.rss: list[tuple[int, int]] = [(0, rss_bytes())]

    def write(self, text: str) -> int:
        self.sink.write(text)
        latency = json.loads(text)["latency_ms"]
        self.count += 1
        if len(self.first) < EDGE:
            self.first.append(latency)
        self.last.append(latency)
        if self.count in (self.warmup, self.total) or self.count % self.every == 0:
            self.rss.append((self.count, rss_bytes()))
        return len(text)

    def flush(self) -> None:
        self.sink.flush()


def _percentiles(values) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3), "p99_ms": round(float(np.percentile(arr, 99)), 3),
            "n": int(arr.size)}


def soak(model: str, frames: int, *, warmup: int = 1000, width: int = 320, height: int = 240,
         threads: int | None = None) -> dict:
    """Run the loop for ``frames`` frames on ``model``; the report as a dict (see the module docstring)."""
    from runtime.backends import open_backend
    from runtime.capture import PACE_EVERY_FRAME, LatestFrameGrabber
    from runtime.live import LiveConfig, run_live
    from runtime.sources import SourceError, SyntheticParams, SyntheticSource
    from runtime.tracker import SiamRPNTracker

    def no_reopen():
        raise SourceError("the soak source is finite and never reopened")

    backend = open_backend(model, **({} if threads is None else {"threads": threads}))
    tracker = SiamRPNTracker(backend)
    source = SyntheticSource(SyntheticParams(width=width, height=height, fps=30, frames=frames))
    box = source.box_at(0)
    started = time.monotonic()
    with open(os.devnull, "w") as devnull:
        probe = _LineProbe(devnull, warmup=min(warmup, frames), every=max(1, frames // 20), total=frames)
        with LatestFrameGrabber(no_reopen, source=source, pace=PACE_EVERY_FRAME) as grabber:
            summary = run_live(grabber, tracker, box=box, json_out=probe, config=LiveConfig(backend_name=backend.name))
    seconds = time.monotonic() - started
    backend.close()
    rss_warm = next(r for n, r in probe.rss if n == probe.warmup)
    rss_end = probe.rss[-1][1]  # at the last frame, before the teardown
    return {
        "model": str(model), "backend": backend.name, "frames": summary.frames, "seconds": round(seconds, 1),
        "frame_size": [width, height], "warmup_frames": probe.warmup,
        "rss_mib_at_warmup": round(rss_warm / 2**20, 2), "rss_mib_at_end": round(rss_end / 2**20, 2),
        "rss_growth_after_warmup_kib": round((rss_end - rss_warm) / 1024, 1),
        "rss_samples": [[n, round(r / 2**20, 2)] for n, r in probe.rss],
        "latency_first": _percentiles(probe.first), "latency_last": _percentiles(probe.last),
        "summary": summary.to_dict(),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="artifact folder (ONNX pair / engines) to track with")
    p.add_argument("--frames", type=int, default=100_000, help="frames to run (default 100000, at most 1e6)")
    p.add_argument("--warmup", type=int, default=1000, help="frames before the baseline RSS sample (default 1000)")
    p.add_argument("--size", default="320x240", help="synthetic frame size WxH (default 320x240)")
    p.add_argument("--threads", type=int, help="CPU threads of the backend (default: the library's)")
    p.add_argument("--out", help="also write the report as JSON to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.frames <= 10**6 or args.warmup < 1:
        raise InputError("--frames must be 1..1000000 and --warmup >= 1")
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size {args.size!r}: expected WxH, e.g. 320x240") from None
    report = soak(args.model, args.frames, warmup=args.warmup, width=width, height=height, threads=args.threads)
    first, last = report["latency_first"], report["latency_last"]
    print(f"{report['frames']} frames in {report['seconds']} s ({report['backend']}, {args.model})\n"
          f"RSS after {report['warmup_frames']} frames {report['rss_mib_at_warmup']} MiB, at the end "
          f"{report['rss_mib_at_end']} MiB: growth {report['rss_growth_after_warmup_kib']} KiB\n"
          f"latency first {first['n']} frames p50 {first['p50_ms']} ms p99 {first['p99_ms']} ms; "
          f"last {last['n']} p50 {last['p50_ms']} ms p99 {last['p99_ms']} ms")
    if args.out:
        from runtime.atomic import write_text

        write_text(args.out, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    sys.exit(run_main(main, "python -m bench.soak"))

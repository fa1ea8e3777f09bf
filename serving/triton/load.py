"""``siamtrack triton-load``: drive N concurrent synthetic camera streams against a Triton server and
report frames/s and latency percentiles, for the two designs side by side in one run:

- ``server-raw`` / ``server-jpeg``: state on the server (the ``tracker`` model). The client sends each
  frame (raw BGR, or JPEG) and gets the box; crops are made on the server, all streams of a batch go
  to ``search_net`` in one call.
- ``client-kernels``: state on the client (``SiamRPNTracker(RemoteBackend)``). The client crops and
  sends the float32 search crop plus the stream's template kernels to ``search_net`` each frame; Triton's
  dynamic batcher merges concurrent streams.

Each stream is a thread with its own gRPC client; latency is one ``track`` call as the client sees it
(encode, wire, queue, inference, decode). Frames come from ``bench.synth`` (seeded, so a rerun sends the
same pixels). Numbers are for the machine they run on; the client threads share its CPU with the server.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from runtime import atomic

MODES = ("server-raw", "server-jpeg", "client-kernels")


def synthetic_streams(n: int, frames: int, width: int, height: int):
    """n lists of (frames) HxWx3 uint8 frames and their first boxes (bench.synth seeds 0..n-1)."""
    from bench.synth import SynthConfig, iter_frames

    cfg = SynthConfig(width=width, height=height, frames=frames)
    out = []
    for seed in range(n):
        items = list(itertools.islice(iter_frames(seed, cfg), frames))
        out.append(([i.frame for i in items], items[0].box_xywh))
    return out


def _make_tracker(mode: str, url: str):
    from runtime.tracker import SiamRPNTracker
    from serving.triton.client import RemoteBackend, TritonTracker

    if mode == "client-kernels":
        backend = RemoteBackend(url)
        return SiamRPNTracker(backend), backend
    tracker = TritonTracker(url, encoding="jpeg" if mode == "server-jpeg" else "raw")
    return tracker, tracker


def run_streams(url: str, mode: str, streams) -> dict:
    """Run every stream concurrently; returns frames/s, latency percentiles (ms) and request bytes."""
    latencies: list[list[float]] = [[] for _ in streams]
    wire: list[list[int]] = [[] for _ in streams]
    errors: list[str] = []
    ready = threading.Barrier(len(streams) + 1)

    def one(i):
        frames, box = streams[i]
        try:
            tracker, meter = _make_tracker(mode, url)
            tracker.init(frames[0], box)
        except Exception as err:  # reported in the result, the other streams go on
            errors.append(f"stream {i}: {err}")
            ready.wait()
            return
        ready.wait()
        try:
            for frame in frames[1:]:
                t0 = time.perf_counter()
                tracker.track(frame)
                latencies[i].append(time.perf_counter() - t0)
                wire[i].append(meter.last_request_bytes)
        except Exception as err:
            errors.append(f"stream {i}: {err}")
        finally:
            if hasattr(tracker, "close"):
                tracker.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(streams))]
    for t in threads:
        t.start()
    ready.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = np.array([x for lat in latencies for x in lat]) * 1e3
    count = int(flat.size)
    return {
        "mode": mode, "streams": len(streams), "frames": count, "wall_s": round(wall, 3),
        "fps": round(count / wall, 2) if wall > 0 else 0.0,
        "p50_ms": round(float(np.percentile(flat, 50)), 2) if count else None,
        "p99_ms": round(float(np.percentile(flat, 99)), 2) if count else None,
        "request_kib": round(float(np.mean([b for w in wire for b in w])) / 1024, 1) if count else None,
        "errors": errors,
    }


def format_table(rows: list[dict]) -> str:
    head = f"{'mode':<15} {'streams':>7} {'frames':>6} {'frames/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'KiB/req':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['mode']:<15} {r['streams']:>7} {r['frames']:>6} {r['fps']:>9.1f} "
                     f"{(r['p50_ms'] or 0):>8.1f} {(r['p99_ms'] or 0):>8.1f} {(r['request_kib'] or 0):>8.1f}"
                     + (f"  ({len(r['errors'])} errors)" if r["errors"] else ""))
    return "\n".join(lines)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(data, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="siamtrack triton-load",
        description="Concurrent synthetic camera streams against Triton: frames/s and p50/p99 latency for "
                    "server-side state (raw or JPEG frames) vs client-held kernels, in one run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  siamtrack triton-load --repo triton/lite0 --streams 1,8,32 --frames 20 --out runs/triton-load.json
  siamtrack triton-load --server 127.0.0.1:8001 --modes server-jpeg --streams 8

With --repo the bundled tritonserver is started on 127.0.0.1 for the run and stopped afterwards.
Latency is per track() call as the client sees it; frames/s counts every stream's frames over the
wall time of the whole group.""")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--repo", help="start the bundled server on this repository (siamtrack triton-repo)")
    where.add_argument("--server", help="gRPC URL of a running server, host:port")
    p.add_argument("--streams", default="1,8,32", help="comma-separated stream counts (default 1,8,32)")
    p.add_argument("--frames", type=int, default=20, help="frames per stream, the first is the START (default 20)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    p.add_argument("--size", default="320x240", help="frame size WxH (default 320x240)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = p.parse_args(argv)
    from runtime.errors import InputError

    try:
        counts = [int(x) for x in args.streams.split(",") if x]
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--streams {args.streams!r} / --size {args.size!r}: expected e.g. 1,8,32 and 320x240") from None
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not counts or min(counts) < 1 or args.frames < 2:
        raise InputError(f"modes {unknown or modes}, streams {counts}, frames {args.frames}: expected modes from "
                         f"{', '.join(MODES)}, stream counts >= 1 and at least 2 frames")
    server = None
    if args.repo:
        from serving.triton.server import start_server

        server = start_server(args.repo)
    url = server.grpc_url if server else args.server
    rows = []
    try:
        streams_all = synthetic_streams(max(counts), args.frames, width, height)
        for mode in modes:
            run_streams(url, mode, streams_all[:1])          # warm-up: sessions, threads, connections
        # modes interleaved per stream count, so a change in the machine's other load hits them alike
        for n in counts:
            for mode in modes:
                rows.append(run_streams(url, mode, streams_all[:n]))
                if not args.json:
                    print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        if server:
            server.stop()
    result = {"url": url, "frame_size": [width, height], "frames_per_stream": args.frames, "cpus": os.cpu_count(),
              "results": rows}
    if args.out:
        _write_json(Path(args.out), result)
    print(json.dumps(result) if args.json else "\n" + format_table(rows))
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack triton-load"))

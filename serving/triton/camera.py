"""``siamtrack camera --server HOST:PORT ...``: the live camera loop with the tracker on a Triton server.

The dispatcher sends ``camera`` here when ``--server`` is given. Everything else (sources, lost state,
window, recording, JSON lines) is ``runtime.camera_cli`` unchanged: this module only hands it a
``TritonTracker`` instead of a local model, so the JSON lines are the same as local tracking's.
"""
from __future__ import annotations

import argparse

from runtime.errors import InputError

HELP = """extra options with --server (the rest as in `siamtrack camera --help`, without --model):
  --server HOST:PORT        gRPC endpoint of a Triton server serving a `siamtrack triton-repo` repository
  --encoding raw|jpeg       send frames raw (exact) or as JPEG (smaller, lossy; default raw)
  --jpeg-quality Q          JPEG quality (default 90)
  --reconnect-wait S        if the server stops or restarts, wait up to S seconds and restart the stream
                            from the last box (default 30; 0 = fail at once)

example:
  siamtrack triton-serve --repo triton/lite0 --grpc-port 8001 &
  siamtrack camera --server 127.0.0.1:8001 --source clip.mp4 --box 120,80,60,40 --headless --json-out -"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--server", required=True)
    p.add_argument("--encoding", default="raw", choices=("raw", "jpeg"))
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--reconnect-wait", type=float, default=30.0)
    ours, rest = p.parse_known_args(argv)
    if any(a in ("-h", "--help") for a in rest):
        print(HELP)
        return 0
    if any(a == "--model" or a.startswith("--model=") for a in rest):
        raise InputError("--server and --model exclude each other: the model is the one the server serves")
    from runtime.camera_cli import main as camera_main
    from serving.triton.client import TritonTracker

    def open_tracker(_args):
        tracker = TritonTracker(ours.server, encoding=ours.encoding, jpeg_quality=ours.jpeg_quality,
                                reconnect=ours.reconnect_wait > 0, reconnect_wait_s=ours.reconnect_wait)
        return tracker, tracker

    # --model is required by the local parser; the server decides the model, so name it for the report
    return camera_main(rest + ["--model", f"triton://{ours.server}"], open_tracker=open_tracker)

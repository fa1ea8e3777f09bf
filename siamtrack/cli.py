"""``siamtrack <command> ...``: a table of stage entry points, imported only when chosen.

Each entry is a ``"module:function"`` string so that no stage imports another and ``--help`` stays
instant. Every entry point takes ``argv`` (list of str) and returns an exit code.
"""
from __future__ import annotations

import importlib
import sys

# name -> (entry point, one-line help). Order is the order of the data flow.
COMMANDS: dict[str, tuple[str, str]] = {
    "track": ("runtime.track_cli:main", "track one target through a video or image folder"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: siamtrack <command> [options]   (siamtrack <command> --help for details)", "",
             "SiamRPN++ from a pysot checkpoint to TensorRT engines, and tracking with any backend.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"siamtrack: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func = COMMANDS[name][0].split(":")
    entry = getattr(importlib.import_module(module), func)
    from runtime.errors import SiamTrackError

    try:
        return int(entry(rest) or 0)
    except SiamTrackError as err:
        print(f"siamtrack {name}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"siamtrack {name}: interrupted", file=sys.stderr)
        return 130

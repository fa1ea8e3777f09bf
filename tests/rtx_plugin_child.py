"""Child process for the TensorRT-RTX plugin tests (run by tests/plugin_library.py, see why there).

    python -m tests.rtx_plugin_child LIBRARY [--build ONNX ENGINE]...

Registers LIBRARY with TensorRT-RTX's plugin registry the way the build stage does
(``engines.trt_compat.TrtApi.load_plugin_library``), prints the registry's creators, then builds each
ONNX file with ``engines.build.build_engine`` and TensorRT's verbose log. Marked lines for the parent:
    CHILD-CREATORS {"all": [[name, version, namespace], ...], "found": [name, version, namespace] | null}
    CHILD-RESULT {"onnx": ..., "ok": true, "precision": ..., "flavour": ..., "engine_bytes": ..., ...}
``found`` is ``get_creator`` asked for the identity the export stage writes on the node.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def mark(tag: str, payload: dict) -> None:
    """Print a marked line after everything TensorRT logged so far (its C++ logger writes through C stdio,
    which is block-buffered on a pipe)."""
    import ctypes

    sys.stdout.flush()
    ctypes.CDLL(None).fflush(None)
    print(f"{tag} {json.dumps(payload)}", flush=True)


def main(argv: list[str]) -> int:
    from engines import trt_compat
    from engines.build import build_engine
    from runtime.contract import XCORR_NODE_ATTRIBUTES, XCORR_OP
    from runtime.engine_meta import EngineBuildOptions
    from runtime.errors import SiamTrackError

    library, rest = Path(argv[0]), argv[1:]
    api = trt_compat.load("tensorrt_rtx")
    api.load_plugin_library(library)
    registry = api.trt.get_plugin_registry()
    attrs = dict(XCORR_NODE_ATTRIBUTES)
    creator = registry.get_creator(XCORR_OP, attrs["plugin_version"], attrs["plugin_namespace"])
    found = None if creator is None else [creator.name, creator.plugin_version, creator.plugin_namespace]
    everything = [[c.name, c.plugin_version, c.plugin_namespace] for c in registry.all_creators]
    mark("CHILD-CREATORS", {"all": everything, "found": found})
    while rest:
        if rest[0] != "--build" or len(rest) < 3:
            print(f"usage: python -m tests.rtx_plugin_child LIBRARY [--build ONNX ENGINE]... (got {rest})")
            return 2
        onnx_path, engine_path, rest = Path(rest[1]), Path(rest[2]), rest[3:]
        row = {"onnx": onnx_path.name}
        try:
            info = build_engine(onnx_path, engine_path, EngineBuildOptions(max_batch=3), api=api,
                                plugin_library=library, verbose=True)
            row.update(ok=True, precision=info.sidecar.precision, flavour=info.sidecar.flavour,
                       engine_bytes=info.sidecar.engine_bytes, plugin_sha256=info.sidecar.plugin_sha256,
                       io_dtypes=info.sidecar.io_dtypes)
        except SiamTrackError as exc:
            row.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        mark("CHILD-RESULT", row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

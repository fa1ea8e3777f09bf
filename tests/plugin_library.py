"""The DepthwiseXCorr plugin library for tests, and a TensorRT-RTX child process to load it into.

Header-dependent tests need TensorRT headers, which no package registry ships. Point them at one or more
include folders (os.pathsep-separated) with SIAMRPN_TRT_HEADER_DIRS, or at one with TENSORRT_INCLUDE /
TENSORRT_ROOT; e.g. headers of the NVIDIA/TensorRT GitHub release/10.3 and release/11.1 branches:
    SIAMRPN_TRT_HEADER_DIRS=/tmp/trt-10.3/include:/tmp/trt-11.1/include pytest tests/test_plugin_build.py
Without them those tests skip with that reason.

TensorRT-RTX runs in a child process (tests/rtx_plugin_child.py), for two reasons:
- its ONNX parser, on importing a plugin node, dlopens ``libtensorrt_rtx.so`` by that unversioned name,
  and the pip wheel ships only ``libtensorrt_rtx.so.1``: the dlopen fails, the parser's
  ``std::runtime_error("Unable to open library: libtensorrt_rtx.so ...")`` escapes a path that cannot
  throw, and the process aborts ("terminate called without an active exception", engines/plugin/README.md).
  ``rtx_library_shim`` makes a folder holding that name as a link to the wheel's library, and the child
  gets it on LD_LIBRARY_PATH, which the dynamic loader reads only at process start.
- a plugin library can be registered once per process, and a regression that aborts must fail one test,
  not end the test session.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from engines import plugin_build as pb

ROOT = Path(__file__).resolve().parents[1]


def header_dirs() -> list[str]:
    listed = os.environ.get("SIAMRPN_TRT_HEADER_DIRS", "")
    dirs = [d for d in listed.split(os.pathsep) if d]
    if not dirs:
        include, _ = pb.find_tensorrt_include(os.environ)
        dirs = [include] if include else []
    return dirs


HEADER_DIRS = header_dirs()
NO_HEADERS = ("no TensorRT headers: set SIAMRPN_TRT_HEADER_DIRS (or TENSORRT_INCLUDE / TENSORRT_ROOT) to "
              "TensorRT include folders; no package registry ships them")
needs_headers = pytest.mark.skipif(not HEADER_DIRS, reason=NO_HEADERS)
needs_rtx = pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None,
                               reason="TensorRT-RTX (pip install tensorrt-rtx-cu12, the dev extra) is not installed")


def plugin_library(tmp_path_factory, include: str | None = None) -> Path:
    """``python -m engines.plugin_build``'s library (CMake + nvcc, sm_87) against ``include`` (default: the
    first header folder), built once per test session and shared by every module that asks."""
    if not HEADER_DIRS:
        pytest.skip(NO_HEADERS)
    include = include or HEADER_DIRS[0]
    version = ".".join(map(str, header_version(include) or ())) or Path(include).parent.name
    out = tmp_path_factory.getbasetemp() / f"plugin-trt{version}"
    library = out / pb.LIBRARY_NAME
    if library.is_file():
        return library
    found = pb.probe_environment({**os.environ, "TENSORRT_INCLUDE": include})
    plan = pb.plan_build(found, {"TENSORRT_INCLUDE": include}, "87", out, out / "build")
    if not plan.ok:
        pytest.skip("cannot build the plugin here: " + "; ".join(plan.missing))
    (built,) = pb.run_plan(plan)
    return built


def header_version(include: str) -> tuple[int, int, int] | None:
    version = Path(include) / "NvInferVersion.h"
    return pb.parse_tensorrt_version(version.read_text()) if version.is_file() else None


def rtx_plugin_library(tmp_path_factory) -> Path:
    """The library built against TensorRT 11.x headers, the ABI TensorRT-RTX 1.7 follows: since 11.0
    ILoggerFinder derives from IVersionedInterface, so TensorRT-RTX's logger finder has findLogger in
    vtable slot 4, where a library built with 10.x headers calls slot 0 (getAPILanguage, which returns 0)
    and never gets a logger (engines/plugin/README.md)."""
    if not HEADER_DIRS:
        pytest.skip(NO_HEADERS)
    newer = [d for d in HEADER_DIRS if (header_version(d) or (0,)) >= (11, 0)]
    if not newer:
        pytest.skip("TensorRT-RTX 1.7 follows the TensorRT 11 plugin ABI: add a TensorRT 11.x include folder "
                    f"to SIAMRPN_TRT_HEADER_DIRS (have {HEADER_DIRS})")
    return plugin_library(tmp_path_factory, newer[0])


def rtx_library_shim(tmp_path_factory) -> Path:
    """A folder with ``libtensorrt_rtx.so`` linking to the wheel's ``libtensorrt_rtx.so.1`` (module docstring)."""
    spec = importlib.util.find_spec("tensorrt_rtx_libs")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tensorrt_rtx_libs (the TensorRT-RTX wheel's libraries) is not installed")
    real = Path(next(iter(spec.submodule_search_locations))) / "libtensorrt_rtx.so.1"
    if not real.is_file():
        pytest.skip(f"{real} not found: the TensorRT-RTX wheel's layout changed")
    shim = tmp_path_factory.getbasetemp() / "rtx-shim"
    link = shim / "libtensorrt_rtx.so"
    if not link.is_symlink():
        shim.mkdir(exist_ok=True)
        link.symlink_to(real)
    return shim


@dataclass(frozen=True)
class ChildRun:
    """What the child printed: creators, one result per --build (with "log": that build's log lines), and
    the whole log (TensorRT's included)."""

    returncode: int
    creators: list
    found: list | None
    results: list
    log: str


def run_rtx_child(library: Path, *args: str, shim: Path | None = None, timeout: float = 300) -> ChildRun:
    """Run ``python -m tests.rtx_plugin_child LIBRARY ARGS...`` and parse its marked output lines."""
    env = dict(os.environ)
    if shim is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(shim), env.get("LD_LIBRARY_PATH", "")) if p)
    proc = subprocess.run([sys.executable, "-m", "tests.rtx_plugin_child", str(library), *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    creators, found, results, segment = [], None, [], []
    for line in proc.stdout.splitlines():
        tag, _, payload = line.partition(" ")
        if tag == "CHILD-CREATORS":
            data = json.loads(payload)
            creators, found = data["all"], data["found"]
            segment = []
        elif tag == "CHILD-RESULT":
            results.append({**json.loads(payload), "log": "\n".join(segment)})  # this build's own log lines
            segment = []
        else:
            segment.append(line)
    return ChildRun(proc.returncode, creators, found, results, proc.stdout)


def header_creator_identity() -> tuple[str, str, str]:
    """(name, version, namespace) the C++ creator registers under, read from depthwise_xcorr_plugin.h's
    ``constexpr char const* kXCorrPlugin{Name,Version,Namespace} = "...";``."""
    import re

    text = (pb.SOURCE_DIR / "depthwise_xcorr_plugin.h").read_text()
    found = dict(re.findall(r'constexpr\s+char\s+const\s*\*\s*kXCorrPlugin(Name|Version|Namespace)\s*=\s*"([^"]*)"\s*;',
                            text))
    assert set(found) == {"Name", "Version", "Namespace"}, f"creator constants not found in the header: {found}"
    return found["Name"], found["Version"], found["Namespace"]

"""TensorRT-side checks that do not need a GPU: the supported versions, the one logger per product,
plugin paths made absolute, output shapes checked after set_input_shape, and the CUDA-graph capture
failure path. TensorRT itself is exercised through TensorRT-RTX's CPU builder where it takes part."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime.engine_meta import read_sidecar, write_sidecar
from runtime.errors import BackendUnavailable, ContractError
from runtime.gpu import gpu_status

ROOT = Path(__file__).resolve().parents[1]
needs_rtx = pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None,
                               reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) is the TensorRT here")


# ---- supported versions (14.5) ----

@pytest.mark.parametrize("version", ["8.6.2.3", "8.5.2", "10.0.1.6", "10.2.0"])
def test_tensorrt_older_than_10_3_is_refused_naming_jetpack_6_1(version):
    from runtime.backends.trt import version_problem

    problem = version_problem("tensorrt", version)
    assert problem and "10.3" in problem and "JetPack 6.1" in problem


@pytest.mark.parametrize("product, version", [("tensorrt", "10.3.0.30"), ("tensorrt", "10.16.1.11"),
                                              ("tensorrt", "11.4.0.106"), ("tensorrt_rtx", "1.7.1.116"),
                                              ("tensorrt_rtx", "1.0.0")])
def test_supported_versions_pass_and_tensorrt_rtx_keeps_its_own_numbering(product, version):
    from runtime.backends.trt import version_problem

    assert version_problem(product, version) is None


def test_an_engine_built_by_tensorrt_8_6_is_refused_before_the_gpu_is_asked(tmp_path):
    """JetPack 6.0's TensorRT 8.6: refused from the sidecar, with the way out, on any machine."""
    from runtime.backends.trt import TrtBackend, run_engine

    folder = _rtx_engines(tmp_path)
    for name in ("template.fp32.standard.engine", "search.fp32.standard.engine"):
        write_sidecar(folder / name, dataclasses.replace(read_sidecar(folder / name), product="tensorrt",
                                                         product_version="8.6.2.3"))
    with pytest.raises(ContractError, match="(?s)8.6.2.3.*JetPack 6.1"):
        TrtBackend.from_dir(folder)
    with pytest.raises(ContractError, match="(?s)8.6.2.3.*JetPack 6.1"):
        run_engine(folder / "search.fp32.standard.engine", {})


def test_the_engine_builder_refuses_tensorrt_8_6_too():
    """Only the module's version string is read before the refusal (no TensorRT call is involved)."""
    from types import SimpleNamespace

    from engines.trt_compat import TrtApi

    with pytest.raises(BackendUnavailable, match="(?s)TensorRT 8.6.2.3 is older than 10.3.*JetPack 6.1"):
        TrtApi(SimpleNamespace(__version__="8.6.2.3"), "tensorrt")


@pytest.mark.parametrize("has_flag, has_precision_flags, flag_set, expected", [
    (False, True, False, False),   # TensorRT 8.6: no STRONGLY_TYPED flag, weak typing only
    (True, True, False, False),    # TensorRT 10.x network created without the flag
    (True, True, True, True),      # TensorRT 10.x network created with it
    (True, False, False, True),    # TensorRT 11 / TensorRT-RTX: no precision flags, always strongly typed
    (False, False, False, True),   # a future TensorRT that dropped the flag too
])
def test_strong_typing_is_only_assumed_where_weak_typing_does_not_exist(has_flag, has_precision_flags, flag_set,
                                                                         expected):
    from engines.trt_compat import strongly_typed

    assert strongly_typed(has_flag, has_precision_flags, flag_set) is expected


@needs_rtx
def test_tensorrt_rtx_networks_are_strongly_typed():
    from engines import trt_compat

    api = trt_compat.load("tensorrt_rtx")
    builder = api.trt.Builder(api.logger())
    assert api.is_strongly_typed(builder.create_network(api.network_flags()))


# ---- one logger per product (14.3) ----

@needs_rtx
def test_runtime_and_builder_share_one_logger_per_product():
    import tensorrt_rtx

    from engines import trt_compat
    from runtime.backends.trt import product_logger

    api = trt_compat.load("tensorrt_rtx")
    first = product_logger(tensorrt_rtx)
    assert api.logger() is first and api.logger(verbose=True) is first and product_logger(tensorrt_rtx) is first
    assert first.min_severity == tensorrt_rtx.Logger.WARNING  # verbose is a severity, set per use
    api.logger(verbose=True)
    assert first.min_severity == tensorrt_rtx.Logger.VERBOSE
    api.logger()


@needs_rtx
def test_building_engines_creates_no_second_logger(tmp_path):
    """Counts tensorrt_rtx.Logger constructions in a fresh process while real engines are built twice."""
    code = textwrap.dedent(f"""
        import tensorrt_rtx
        created = []
        class CountingLogger(tensorrt_rtx.Logger):
            def __init__(self, *args):
                super().__init__(*args)
                created.append(self)
        tensorrt_rtx.Logger = CountingLogger
        from engines.build import main
        from tests.tiny_graphs import write_tiny_folder
        folder = write_tiny_folder(__import__("pathlib").Path({str(tmp_path)!r}) / "tiny", plugin=False)
        for force in ([], ["--force"]):
            assert main([str(folder), "--product", "tensorrt_rtx", "--json", *force]) == 0
        print("loggers:", len(created))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "loggers: 1" in out.stdout, out.stdout


def test_no_product_code_or_test_constructs_its_own_logger():
    """Complements the identity tests above: a new `trt.Logger(` call would bypass product_logger."""
    offenders = []
    for folder in ("runtime", "engines"):
        for path in (ROOT / folder).rglob("*.py"):
            for no, line in enumerate(path.read_text().splitlines(), 1):
                if ".Logger(" in line and "def product_logger" not in line and "_LOGGERS[" not in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{no}")
    for name in ("test_plugin_gpu.py", "test_trt_backend_gpu.py", "test_trt_backend_cpu.py", "test_trt_rtx_parse.py",
                 "test_engine_build_rtx.py"):
        for no, line in enumerate((ROOT / "tests" / name).read_text().splitlines(), 1):
            if ".Logger(" in line:
                offenders.append(f"tests/{name}:{no}")
    assert offenders == []


# ---- plugin paths are made absolute (14.4) ----

class _RecordingRegistry:
    """Stands in for the plugin registry only to record the path our code hands over; what TensorRT
    does with a relative name (dlopen's library search) is documented dlopen behaviour, not tested here."""

    def __init__(self):
        self.paths = []

    def load_library(self, path):
        self.paths.append(path)
        return object()


def test_a_plugin_name_without_a_slash_is_loaded_by_absolute_path(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from runtime.backends import trt

    (tmp_path / "libmine.so").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    registry = _RecordingRegistry()
    fake = SimpleNamespace(__name__="recording_only", get_plugin_registry=lambda: registry)
    monkeypatch.setattr(trt, "_LOADED_PLUGINS", {})
    trt.load_plugin_library(fake, "libmine.so")
    assert registry.paths == [str(tmp_path / "libmine.so")]


# ---- output shapes after set_input_shape (14.8) ----

def test_an_output_shape_other_than_the_spec_is_a_contract_error_naming_both():
    from runtime.backends.trt import check_output_shapes

    check_output_shapes("search.fp32.standard.engine", {"cls": (2, 10, 25, 25)}, {"cls": (2, 10, 25, 25)})
    wanted = r"cls: engine gives \(2, 10, 17, 17\), the model spec says \(2, 10, 25, 25\)"
    with pytest.raises(ContractError, match=wanted):
        check_output_shapes("search.fp32.standard.engine", {"cls": (2, 10, 17, 17), "loc": (2, 20, 25, 25)},
                            {"cls": (2, 10, 25, 25), "loc": (2, 20, 25, 25)})


# ---- CUDA-graph capture failure (14.9) ----

class _RecordingCudart:
    """Records the CUDA runtime calls CudaGraph.capture makes; answers like cuda-python's (err, value)."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        if name.startswith("cudaStreamCaptureMode"):
            return SimpleEnum()

        def call(*args):
            self.calls.append((name, args))
            return (0, 0xC0FFEE) if name == "cudaStreamEndCapture" else (0,)
        return call


class SimpleEnum:
    cudaStreamCaptureModeThreadLocal = 2


def test_a_failed_capture_destroys_the_graph_end_capture_returned(monkeypatch):
    from runtime.backends import cuda_mem

    rt = _RecordingCudart()
    monkeypatch.setattr(cuda_mem, "cudart", lambda: rt)
    stream = object.__new__(cuda_mem.Stream)
    stream.handle = 7

    def work():
        raise BackendUnavailable("execute_async_v3 failed")

    with pytest.raises(BackendUnavailable):
        cuda_mem.CudaGraph.capture(stream, work)
    names = [name for name, _ in rt.calls]
    assert names[:2] == ["cudaStreamBeginCapture", "cudaStreamEndCapture"]
    assert ("cudaGraphDestroy", (0xC0FFEE,)) in rt.calls


# ---- integrated GPUs (14.7) ----

@pytest.mark.skipif(gpu_status()[0], reason="checks the no-GPU path; this machine has a GPU")
def test_integrated_query_names_the_cuda_call_without_a_gpu():
    from runtime.backends import cuda_mem

    with pytest.raises(BackendUnavailable, match="cudaGetDeviceProperties"):
        cuda_mem.device_is_integrated()


# ---- helpers ----

_BUILT = {}


def _rtx_engines(tmp_path):
    if importlib.util.find_spec("tensorrt_rtx") is None:
        pytest.skip("TensorRT-RTX (pip install tensorrt-rtx-cu12) builds the engines this test loads")
    if "folder" not in _BUILT:
        from engines.build import main
        from tests.tiny_graphs import write_tiny_folder

        folder = write_tiny_folder(tmp_path / "built" / "tiny", plugin=False)
        assert main([str(folder), "--product", "tensorrt_rtx", "--json"]) == 0
        _BUILT["folder"] = folder
    return shutil.copytree(_BUILT["folder"], tmp_path / "copy")


def _header_dir_for_rtx() -> str | None:
    """A TensorRT 11 include folder from SIAMRPN_TRT_HEADER_DIRS (TensorRT-RTX loads plugins built
    against the 11.x plugin interface)."""
    from engines import plugin_build as pb

    for folder in filter(None, os.environ.get("SIAMRPN_TRT_HEADER_DIRS", "").split(os.pathsep)):
        version_file = Path(folder) / "NvInferVersion.h"
        version = pb.parse_tensorrt_version(version_file.read_text()) if version_file.is_file() else None
        if version and version[0] >= 11:
            return folder
    return None


@pytest.mark.slow
@needs_rtx
def test_a_real_plugin_named_without_a_slash_is_found_in_the_current_folder(tmp_path):
    """Builds the DepthwiseXCorr plugin (CMake + nvcc, ~10 s) and loads it into TensorRT-RTX's registry
    by its bare file name from the folder it is in: dlopen alone would search the library path instead."""
    from engines import plugin_build as pb

    include = _header_dir_for_rtx()
    if include is None:
        pytest.skip("needs TensorRT 11.x headers in SIAMRPN_TRT_HEADER_DIRS (no package registry ships them)")
    plan = pb.plan_build(pb.probe_environment({**os.environ, "TENSORRT_INCLUDE": include}),
                         {"TENSORRT_INCLUDE": include}, "87", tmp_path / "plugin", tmp_path / "build")
    if not plan.ok:
        pytest.skip("cannot build the plugin here: " + "; ".join(plan.missing))
    (library,) = pb.run_plan(plan)
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import tensorrt_rtx
        from runtime.backends.trt import load_plugin_library
        load_plugin_library(tensorrt_rtx, {library.name!r})
        creator = tensorrt_rtx.get_plugin_registry().get_creator("DepthwiseXCorr", "1", "siamrpn")
        print("creator:", None if creator is None else creator.name)
    """)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(library.parent), env=env)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "creator: DepthwiseXCorr" in out.stdout

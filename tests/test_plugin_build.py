"""Building the DepthwiseXCorr plugin library: the environment -> build-plan decision (pure), the plugin
sources against real TensorRT headers, the built library's entry points and creator, and the creator's
identity against the one the export stage writes on the ONNX node.

Header-dependent tests need TensorRT headers, which no package registry ships (tests/plugin_library.py
says how to provide them); without them those tests skip with that reason.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engines import plugin_build as pb
from runtime.contract import XCORR_NODE_ATTRIBUTES, XCORR_OP
from runtime.errors import InputError
from tests.plugin_library import HEADER_DIRS, header_creator_identity, needs_headers, needs_rtx, plugin_library, \
    rtx_plugin_library, run_rtx_child

EVERYTHING = pb.FoundTools(nvcc="/usr/local/cuda/bin/nvcc", nvcc_archs=("75", "80", "86", "87", "89", "90"),
                           cmake="/usr/bin/cmake", cmake_version=(3, 25), cxx="/usr/bin/g++",
                           tensorrt_include="/usr/include/aarch64-linux-gnu", tensorrt_version=(10, 3, 0),
                           nvinfer_library=None, gpu_arch="87", gpu_source="test")


def plan(found=EVERYTHING, environ=None, arch=None):
    return pb.plan_build(found, environ or {}, arch, "/out", "/out/build")


def replace(**changes):
    import dataclasses

    return dataclasses.replace(EVERYTHING, **changes)


# ---- plan_build: pure decisions ----

def test_plan_targets_the_gpu_of_this_machine():
    p = plan()
    assert p.ok and p.archs == ("87",)
    configure = p.commands[0]
    assert "-DCMAKE_CUDA_ARCHITECTURES=87" in configure
    assert "-DTENSORRT_INCLUDE=/usr/include/aarch64-linux-gnu" in configure
    assert p.commands[1][:2] == ("/usr/bin/cmake", "--build")


@pytest.mark.parametrize("given", ["89", "sm_89", "compute_89", "8.9"])
def test_arch_argument_overrides_the_gpu(given):
    assert plan(arch=given).archs == ("89",)


def test_no_gpu_and_no_arch_asks_for_arch():
    p = plan(replace(gpu_arch=None))
    assert not p.ok and p.commands == ()
    assert any("--arch" in m for m in p.missing)


def test_missing_headers_say_where_they_were_looked_for_and_how_to_provide_them():
    p = plan(replace(tensorrt_include=None, tensorrt_version=None), environ={"TENSORRT_ROOT": "/opt/trt"})
    assert not p.ok
    (message,) = p.missing
    assert "/opt/trt/include" in message and "TENSORRT_ROOT" in message


def test_tensorrt_older_than_10_3_is_refused_with_the_fallback_named():
    (message,) = plan(replace(tensorrt_version=(8, 6, 1))).missing
    assert "8.6.1" in message and "10.3" in message and "--flavour standard" in message


def test_missing_nvcc_and_cmake_are_each_reported():
    p = plan(replace(nvcc=None, nvcc_archs=(), cmake=None))
    assert len(p.missing) == 2
    assert any("nvcc" in m for m in p.missing) and any("cmake" in m for m in p.missing)


def test_an_arch_this_nvcc_cannot_target_is_reported():
    # CUDA 13 dropped Xavier (sm_72); the plan must say so instead of failing inside nvcc.
    (message,) = plan(arch="72").missing
    assert "sm_72" in message


def test_static_registration_library_only_when_libnvinfer_is_found():
    assert plan().libraries == (pb.LIBRARY_NAME,)
    with_lib = plan(replace(nvinfer_library="/usr/lib/aarch64-linux-gnu/libnvinfer.so"))
    assert with_lib.libraries == (pb.LIBRARY_NAME, pb.STATIC_LIBRARY_NAME)


def test_tensorrt_root_is_passed_to_cmake():
    assert "-DTENSORRT_ROOT=/opt/trt" in plan(environ={"TENSORRT_ROOT": "/opt/trt"}).commands[0]


@pytest.mark.parametrize("bad", ["", "sm", "8", "ampere", "sm_x7"])
def test_bad_arch_is_an_input_error(bad):
    with pytest.raises(InputError, match="--arch"):
        pb.normalise_arch(bad)


def test_tensorrt_version_read_from_10x_style_header():
    text = "#define NV_TENSORRT_MAJOR 10 //!< major\n#define NV_TENSORRT_MINOR 3\n#define NV_TENSORRT_PATCH 0\n"
    assert pb.parse_tensorrt_version(text) == (10, 3, 0)


def test_tensorrt_version_read_through_11x_indirection():
    text = ("#define TRT_MAJOR_ENTERPRISE 11\n#define TRT_MINOR_ENTERPRISE 1\n#define TRT_PATCH_ENTERPRISE 0\n"
            "#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE\n#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE\n"
            "#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE\n")
    assert pb.parse_tensorrt_version(text) == (11, 1, 0)


def test_include_search_order_prefers_explicit_settings():
    dirs = pb.tensorrt_include_candidates({"TENSORRT_INCLUDE": "/a", "TENSORRT_ROOT": "/b"})
    assert dirs[:2] == ["/a", "/b/include"] and "/usr/include/aarch64-linux-gnu" in dirs


def test_cli_without_prerequisites_exits_3_and_lists_what_is_missing(tmp_path, monkeypatch, capsys):
    if pb.find_tensorrt_include({})[0] is not None:
        pytest.skip("this machine has system TensorRT headers, so they cannot be made to be missing")
    monkeypatch.delenv("TENSORRT_INCLUDE", raising=False)
    monkeypatch.delenv("TENSORRT_ROOT", raising=False)
    assert pb.main(["--out", str(tmp_path), "--arch", "87"]) == pb.EXIT_CANNOT_BUILD
    assert "NvInferRuntime.h" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# ---- against real TensorRT headers ----

header_params = pytest.mark.parametrize("trt_include", HEADER_DIRS or [None],
                                        ids=lambda d: Path(d).parent.name if d else "none")


def cxx_flags(trt_include: str) -> list[str]:
    cuda_include = pb.cuda_include_dir(pb.find_nvcc(os.environ), os.environ)
    if cuda_include is None:
        pytest.skip("CUDA headers (cuda_runtime_api.h) not found; the plugin sources include them")
    return ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-isystem", trt_include, "-isystem", cuda_include,
            f"-I{pb.SOURCE_DIR}"]


@needs_headers
@header_params
@pytest.mark.parametrize("source,defines", [("depthwise_xcorr_plugin.cpp", []), ("plugin_entry.cpp", []),
                                            ("plugin_entry.cpp", ["-DSIAMRPN_XCORR_STATIC_REGISTRATION"])],
                         ids=["plugin", "entry-dynamic", "entry-static"])
def test_plugin_sources_compile_warning_free_against_tensorrt_headers(trt_include, source, defines):
    cxx = shutil.which("g++") or shutil.which("c++")
    proc = subprocess.run([cxx, *cxx_flags(trt_include), *defines, "-fsyntax-only", str(pb.SOURCE_DIR / source)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def built_plugin(tmp_path_factory):
    """The library built by `python -m engines.plugin_build` (CMake + nvcc) against the first header dir,
    and the output of plugin_smoke.cpp run on it (one name=value line per check)."""
    library = plugin_library(tmp_path_factory)
    smoke = tmp_path_factory.mktemp("smoke") / "plugin_smoke"
    cxx = shutil.which("g++") or shutil.which("c++")
    subprocess.run([cxx, *cxx_flags(HEADER_DIRS[0]), str(pb.SOURCE_DIR / "plugin_smoke.cpp"), "-o", str(smoke),
                    "-ldl"], check=True)
    proc = subprocess.run([str(smoke), str(library)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    return library, checks


@pytest.mark.slow
def test_build_installs_library_with_provenance(built_plugin):
    library, _ = built_plugin
    meta = json.loads((library.parent / (pb.LIBRARY_NAME + ".json")).read_text())
    assert meta["cuda_architectures"] == ["87"]
    assert meta["plugin"] == {"name": "DepthwiseXCorr", "version": "1", "namespace": "siamrpn"}
    assert meta["sources_sha256"] == pb.sources_sha256()


@pytest.mark.slow
def test_library_exports_only_the_tensorrt_entry_points(built_plugin):
    library, _ = built_plugin
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) not found")
    symbols = subprocess.run([nm, "-D", "--defined-only", str(library)], capture_output=True, text=True,
                             check=True).stdout.split()
    exported = {s for s in symbols if s in {"getCreators", "setLoggerFinder", "getPluginCreators"}}
    assert exported == {"getCreators", "setLoggerFinder"}
    assert not [s for s in symbols if "siamrpn" in s]  # hidden visibility: no C++ symbols leak


@pytest.mark.slow
def test_creator_identity_matches_the_onnx_node(built_plugin):
    from runtime.contract import XCORR_DOMAIN, XCORR_OP, XCORR_VERSION

    _, checks = built_plugin
    assert checks["nb_creators"] == "1"
    assert checks["creator_interface"] == "PLUGIN CREATOR_V3ONE"
    assert (checks["name"], checks["version"], checks["namespace"]) == (XCORR_OP, str(XCORR_VERSION), XCORR_DOMAIN)


@pytest.mark.slow
def test_plugin_exposes_the_three_v3_capabilities(built_plugin):
    _, checks = built_plugin
    assert (checks["core_kind"], checks["build_kind"], checks["runtime_kind"]) == (
        "PLUGIN_V3ONE_CORE", "PLUGIN_V3ONE_BUILD", "PLUGIN_V3ONE_RUNTIME")
    assert checks["created"] == checks["created_runtime"] == "1"  # unknown node attributes are accepted


@pytest.mark.slow
def test_only_linear_fp32_or_fp16_with_matching_types_is_accepted(built_plugin):
    _, checks = built_plugin
    assert (checks["supports_fp32"], checks["supports_fp16"]) == ("1", "1")
    assert (checks["supports_mixed"], checks["supports_int8"], checks["supports_chw4"]) == ("0", "0", "0")
    assert (checks["output_type_rc"], checks["output_type_is_half"]) == ("0", "1")


@pytest.mark.slow
def test_shape_checks_accept_dynamic_batch_and_reject_mismatches(built_plugin):
    _, checks = built_plugin
    assert checks["configure_dynamic_batch"] == "0" and checks["shape_change_ok"] == "0"
    assert checks["configure_channel_mismatch"] == "-1"
    assert checks["configure_kernel_too_big"] == "-1"
    assert checks["shape_change_batch_mismatch"] == "-1"


@pytest.mark.slow
def test_plugin_serialises_no_fields_and_clones(built_plugin):
    _, checks = built_plugin
    assert checks["serialized_fields"] == "0" and checks["creator_fields"] == "0"
    assert checks["clone_ok"] == "1" and checks["attach_ok"] == "1"


# ---- the creator's identity is the one the ONNX node names ----

def test_plugin_header_declares_the_identity_the_export_writes_on_the_node():
    """TensorRT's ONNX parser asks the registry for (op_type, plugin_version, plugin_namespace) of the node;
    the creator registers under the header's constants. Both must be the same triple."""
    attrs = dict(XCORR_NODE_ATTRIBUTES)
    assert header_creator_identity() == (XCORR_OP, attrs["plugin_version"], attrs["plugin_namespace"])


@pytest.mark.slow
@needs_rtx
def test_tensorrt_rtx_registry_finds_the_built_creator_under_the_node_identity(tmp_path_factory):
    """The real library loaded by TensorRT-RTX's plugin registry (load_library): all_creators lists it,
    and get_creator with the node's (op_type, plugin_version, plugin_namespace) returns it."""
    run = run_rtx_child(rtx_plugin_library(tmp_path_factory))
    assert run.returncode == 0, run.log[-3000:]
    attrs = dict(XCORR_NODE_ATTRIBUTES)
    node_identity = [XCORR_OP, attrs["plugin_version"], attrs["plugin_namespace"]]
    assert node_identity in run.creators
    assert run.found == node_identity

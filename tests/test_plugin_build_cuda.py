"""The plugin build's toolchain checks: nvcc's CUDA major must be TensorRT's (a plugin linking
libcudart.so.13 fails beside TensorRT for CUDA 12 on an older driver), a matching nvcc is picked when
several are installed, and find_nvinfer finds exactly what CMake's find_library in plugin/CMakeLists.txt
finds (so the static variant is expected exactly when CMake builds it)."""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

import pytest

from engines import plugin_build as pb

EVERYTHING = pb.FoundTools(nvcc="/usr/local/cuda/bin/nvcc", nvcc_archs=("75", "80", "86", "87", "89", "90"),
                           cmake="/usr/bin/cmake", cmake_version=(3, 25), cxx="/usr/bin/g++",
                           tensorrt_include="/usr/include/aarch64-linux-gnu", tensorrt_version=(10, 3, 0),
                           nvinfer_library=None, gpu_arch="87", gpu_source="test")


def plan(**changes):
    return pb.plan_build(dataclasses.replace(EVERYTHING, **changes), {}, None, "/out", "/out/build")


# ---- nvcc vs TensorRT CUDA major ----

def test_nvcc_13_with_tensorrt_for_cuda_12_is_refused_with_the_fix():
    p = plan(nvcc_cuda=(13, 0), tensorrt_cuda_major=12, tensorrt_cuda_source="dpkg libnvinfer10 10.3.0.30-1+cuda12.5")
    assert not p.ok and p.commands == ()
    (message,) = p.missing
    assert "CUDA 13.0" in message and "CUDA 12" in message and "libnvinfer10" in message
    assert "libcudart.so.13" in message and "CUDACXX" in message


def test_matching_majors_build():
    assert plan(nvcc_cuda=(12, 6), tensorrt_cuda_major=12).ok


def test_an_unknown_tensorrt_cuda_major_is_not_guessed():
    assert plan(nvcc_cuda=(13, 0), tensorrt_cuda_major=None).ok


def test_parse_nvcc_version():
    text = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 12.6, V12.6.68\n"
    assert pb.parse_nvcc_version(text) == (12, 6)
    assert pb.parse_nvcc_version("") is None


def test_a_matching_nvcc_is_picked_when_several_are_installed():
    candidates = [("/usr/local/cuda/bin/nvcc", (13, 0)), ("/usr/local/cuda-12.6/bin/nvcc", (12, 6))]
    assert pb.choose_nvcc(candidates, 12, None) == candidates[1]
    assert pb.choose_nvcc(candidates, None, None) == candidates[0]
    assert pb.choose_nvcc(candidates, 11, None) == candidates[0]  # none matches: plan_build says so
    assert pb.choose_nvcc([], 12, None) is None


def test_cudacxx_is_taken_as_given():
    candidates = [("/opt/cuda13/nvcc", (13, 0)), ("/usr/local/cuda-12.6/bin/nvcc", (12, 6))]
    assert pb.choose_nvcc(candidates, 12, "/opt/cuda13/nvcc") == candidates[0]


def test_versioned_toolkits_are_candidates(tmp_path):
    tools = []
    for version in ("12.6", "13.0"):
        nvcc = tmp_path / f"cuda-{version}" / "bin" / "nvcc"
        nvcc.parent.mkdir(parents=True)
        nvcc.write_text("#!/bin/sh\n")
        nvcc.chmod(0o755)
        tools.append(str(nvcc))
    found = pb.nvcc_candidates({}, which=lambda name: None, versioned=tools[::-1])
    assert found[-2:] == tools[::-1]


def test_tensorrt_root_named_for_its_cuda_gives_the_major(tmp_path):
    root = tmp_path / "TensorRT-10.3.0.26.Linux.x86_64-gnu.cuda-12.5"
    root.mkdir()
    assert pb.tensorrt_cuda_major({"TENSORRT_ROOT": str(root)})[0] == 12


# ---- find_nvinfer == CMake's find_library ----

def test_the_unversioned_library_is_what_counts(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libnvinfer.so.10").write_bytes(b"")
    root_only = pb.nvinfer_search_dirs({"TENSORRT_ROOT": str(tmp_path)})[:2]  # without the system folders
    assert pb.find_nvinfer({"TENSORRT_ROOT": str(tmp_path)}, dirs=root_only) is None
    (tmp_path / "lib" / "libnvinfer.so").symlink_to("libnvinfer.so.10")
    assert pb.find_nvinfer({"TENSORRT_ROOT": str(tmp_path)}) == str(tmp_path / "lib" / "libnvinfer.so")


def test_the_found_library_is_handed_to_cmake():
    p = plan(nvinfer_library="/opt/trt/lib/libnvinfer.so")
    assert "-DNVINFER_LIBRARY=/opt/trt/lib/libnvinfer.so" in p.commands[0]
    assert pb.STATIC_LIBRARY_NAME in p.libraries


def _cmake_find_nvinfer(tmp_path, root) -> str | None:
    """Run the find_library(NVINFER_LIBRARY ...) call of plugin/CMakeLists.txt, verbatim, in a project
    of its own (no compilers needed), with TENSORRT_ROOT = root."""
    text = (pb.SOURCE_DIR / "CMakeLists.txt").read_text()
    call = re.search(r"find_library\(NVINFER_LIBRARY.*?\)\n", text, re.S).group(0)
    project = tmp_path / "probe"
    project.mkdir()
    (project / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.18)\nproject(probe LANGUAGES NONE)\n"
                                            + call + 'message(STATUS "NVINFER=${NVINFER_LIBRARY}")\n')
    out = subprocess.run([shutil.which("cmake"), "-S", str(project), "-B", str(project / "b"),
                          f"-DTENSORRT_ROOT={root}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    value = re.search(r"NVINFER=(.*)", out.stdout).group(1).strip()
    return None if value.endswith("NOTFOUND") else value


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
@pytest.mark.parametrize("files", [("libnvinfer.so.10",), ("libnvinfer.so.10", "libnvinfer.so"),
                                   ("libnvinfer.so.11",)], ids=["versioned-only", "with-dev-link", "11-only"])
def test_find_nvinfer_agrees_with_cmake(tmp_path, files):
    if pb.find_nvinfer({}) is not None:
        pytest.skip("this machine has a system libnvinfer, which both would find whatever TENSORRT_ROOT holds")
    root = tmp_path / "trt"
    (root / "lib").mkdir(parents=True)
    for name in files:
        (root / "lib" / name).write_bytes(b"\x7fELF")
    assert pb.find_nvinfer({"TENSORRT_ROOT": str(root)}) == _cmake_find_nvinfer(tmp_path, root)

"""The cuda-python major follows the machine's CUDA: chosen from the driver and TensorRT (pure, injected
facts), installed by the default `bash setup.sh` on a machine with a driver, and a cuda-python newer than
the driver is explained at run time instead of being reported as "no GPU"."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.cuda_versions import (CudaFacts, bindings_driver_problem, choose_cuda_python, cuda_for_driver_branch,
                                   parse_driver_version_int, parse_l4t_release, parse_nvidia_smi,
                                   parse_proc_driver_version, tensorrt_cuda_from_distributions,
                                   tensorrt_cuda_from_dpkg)

ROOT = Path(__file__).resolve().parents[1]


# ---- the choice ----

def test_jetpack_6_gets_cuda_python_12():
    choice = choose_cuda_python(CudaFacts((12, 6), "libcuda", 12, "dpkg libnvinfer10 10.3.0.30-1+cuda12.5"))
    assert choice.requirement == "cuda-python>=12.6,<13" and not choice.warning
    assert "CUDA 12.6" in choice.reason and "libnvinfer10" in choice.reason


def test_a_cuda_12_desktop_driver_without_known_tensorrt_gets_12():
    assert choose_cuda_python(CudaFacts((12, 4), "nvidia-smi")).requirement == "cuda-python>=12.6,<13"


def test_a_cuda_13_driver_with_tensorrt_for_cuda_12_matches_tensorrt():
    assert choose_cuda_python(CudaFacts((13, 0), "libcuda", 12, "pip tensorrt-cu12")).requirement == \
        "cuda-python>=12.6,<13"


def test_a_cuda_13_driver_with_tensorrt_for_cuda_13_gets_13():
    assert choose_cuda_python(CudaFacts((13, 0), "libcuda", 13, "pip tensorrt-cu13")).requirement == \
        "cuda-python>=13.0,<14"


def test_tensorrt_newer_than_the_driver_is_warned_about_and_the_driver_decides():
    choice = choose_cuda_python(CudaFacts((12, 6), "libcuda", 13, "pip tensorrt-cu13"))
    assert choice.requirement == "cuda-python>=12.6,<13"
    assert "cannot run" in choice.warning and ">= 580" in choice.warning


def test_no_driver_installs_nothing():
    choice = choose_cuda_python(CudaFacts(None))
    assert choice.requirement is None and not choice.warning


def test_a_cuda_11_driver_is_too_old_and_names_jetpack_6_1():
    choice = choose_cuda_python(CudaFacts((11, 4), "/etc/nv_tegra_release"))
    assert choice.requirement is None and "JetPack 6.1" in choice.warning


# ---- the facts, parsed ----

def test_driver_version_parsers():
    assert parse_driver_version_int(12060) == (12, 6) and parse_driver_version_int(0) is None
    assert parse_nvidia_smi("| NVIDIA-SMI 550.54.14   Driver Version: 550.54.14   CUDA Version: 12.4     |") == (12, 4)
    assert parse_proc_driver_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 "
                                     "01:44:30 UTC 2024\nGCC version:  gcc 12") == (12, 4)
    assert cuda_for_driver_branch("580.65.06") == (13, 0) and cuda_for_driver_branch("535.183.01") == (12, 2)
    assert parse_l4t_release("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64") == (12, 6)
    assert parse_l4t_release("# R35 (release), REVISION: 5.0, GCID: 1, BOARD: t186ref, EABI: aarch64")[0] == 11


def test_tensorrt_cuda_major_parsers():
    listing = "libnvinfer-dev\t10.3.0.30-1+cuda12.5\nlibnvinfer10\t10.3.0.30-1+cuda12.5\n"
    assert tensorrt_cuda_from_dpkg(listing)[0] == 12
    assert tensorrt_cuda_from_distributions(["numpy", "tensorrt_cu13_libs", "tensorrt-cu13"])[0] == 13
    # a full TensorRT wheel wins over TensorRT-RTX's
    assert tensorrt_cuda_from_distributions(["tensorrt_rtx_cu12", "tensorrt-cu13"]) == (13, "pip tensorrt-cu13")
    assert tensorrt_cuda_from_distributions(["tensorrt_rtx_cu12"])[0] == 12
    assert tensorrt_cuda_from_distributions(["tensorrt"]) == (None, "")


# ---- the run-time explanation ----

def test_cuda_python_13_on_a_cuda_12_driver_says_which_to_install():
    from runtime.gpu import explain_device_count

    available, reason = explain_device_count("cudaErrorInsufficientDriver", None, "13.4.4", (12, 6))
    assert not available
    assert "cuda-python 13.4.4 is built for CUDA 13" in reason and "CUDA 12.6" in reason
    assert "pip install 'cuda-python>=12.6,<13'" in reason


def test_the_explanation_reaches_the_backend_refusal(monkeypatch):
    from runtime import gpu
    from runtime.backends.trt import require_gpu
    from runtime.errors import BackendUnavailable

    monkeypatch.setattr(gpu, "gpu_status", lambda: gpu.explain_device_count("cudaErrorInsufficientDriver", None,
                                                                           "13.4.4", (12, 6)))
    with pytest.raises(BackendUnavailable, match=r"pip install 'cuda-python>=12.6,<13'"):
        require_gpu("TensorRT engine x")


def test_no_driver_stays_a_plain_no_gpu():
    from runtime.gpu import explain_device_count

    assert bindings_driver_problem("13.4.4", None) is None
    assert explain_device_count("cudaErrorInsufficientDriver", None, "13.4.4", None) == (
        False, "no usable GPU: cudaGetDeviceCount returned cudaErrorInsufficientDriver")
    assert bindings_driver_problem("12.9.0", (12, 6)) is None and bindings_driver_problem("12.9.0", (13, 0)) is None


# ---- setup.sh ----

def test_the_chooser_runs_on_a_bare_system_python():
    """-S: no site-packages at all, as with the system python3 before the virtualenv exists."""
    out = subprocess.run([sys.executable, "-S", "-m", "runtime.cuda_versions", "--json"], capture_output=True,
                         text=True, cwd=str(ROOT), timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"requirement"' in out.stdout


@pytest.mark.parametrize("args", [[], ["--dev"]], ids=["default", "dev"])
def test_setup_installs_the_chosen_cuda_python_with_the_project(tmp_path, args):
    """Runs the real setup.sh in a copy of the repository whose .venv/bin/python is a stand-in that
    answers the chooser with a CUDA 12 machine's requirement and records every pip call."""
    repo = tmp_path / "repo"
    (repo / "runtime").mkdir(parents=True)
    shutil.copy(ROOT / "setup.sh", repo / "setup.sh")
    log = tmp_path / "pip.log"
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"""#!/usr/bin/env bash
if [[ "$1 $2" == "-m runtime.cuda_versions" ]]; then echo 'cuda-python>=12.6,<13'; exit 0; fi
if [[ "$1 $2" == "-m pip" ]]; then printf '%s\\n' "$*" >> {log}; exit 0; fi
if [[ "$1" == "-c" ]]; then echo "python 3.10"; exit 0; fi
exit 0
""")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    out = subprocess.run(["bash", str(repo / "setup.sh"), *args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHON": str(python)})
    assert out.returncode == 0, out.stdout + out.stderr
    project_installs = [line for line in log.read_text().splitlines() if " -e " in f" {line} "]
    assert project_installs and all("cuda-python>=12.6,<13" in line for line in project_installs), log.read_text()

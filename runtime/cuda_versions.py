"""Which CUDA major this machine can run, and the cuda-python requirement that fits it.

cuda-python's major follows CUDA's: cuda-bindings 13 needs a driver for CUDA 13 (>= 580) and answers
every call with cudaErrorInsufficientDriver on an older one (JetPack 6: CUDA 12.6). An unpinned
``cuda-python`` resolves to the newest major, so the requirement is chosen here from two facts:

- the CUDA version the driver supports (``cuDriverGetVersion`` from libcuda, else nvidia-smi, else the
  kernel module's version, else the Jetson L4T release), and
- the CUDA major TensorRT was built for (its pip wheel ``tensorrt-cu12``..., its Debian package version
  ``10.3.0.30-1+cuda12.5``, or the libcudart its libnvinfer names).

``choose_cuda_python(facts)`` is pure (tested with injected facts); ``probe_facts()`` gathers them.
Standard library only: ``setup.sh`` runs ``python3 -m runtime.cuda_versions`` before the virtualenv
exists, and the runtime imports it to explain a refused GPU.
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import json
import mmap
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass

# Driver branch -> newest CUDA version it supports (NVIDIA's CUDA release notes, table 3).
DRIVER_BRANCH_CUDA = ((580, (13, 0)), (575, (12, 9)), (570, (12, 8)), (565, (12, 7)), (560, (12, 6)),
                      (555, (12, 5)), (550, (12, 4)), (545, (12, 3)), (535, (12, 2)), (530, (12, 1)),
                      (525, (12, 0)), (450, (11, 0)))
# Jetson Linux (L4T) major release -> CUDA of its JetPack: R35 = JetPack 5 (11.4), R36 = JetPack 6 (12.x),
# R38 = JetPack 7 (13.0). R36.2/36.3 ship 12.2, R36.4 ships 12.6; the major is what matters here.
L4T_CUDA = {35: (11, 4), 36: (12, 2), 38: (13, 0)}
# The oldest cuda-python of a major that we ask for: 12.6 is where cuda.bindings (the layout the runtime
# prefers) appeared; both layouts work with runtime.backends.cuda_mem.
MIN_CUDA_PYTHON = {12: "12.6"}
# TensorRT >= 10.3 (the oldest the project supports) is built for CUDA 12 or newer.
MIN_CUDA_MAJOR = 12


@dataclass(frozen=True)
class CudaFacts:
    """driver_cuda: (major, minor) the installed driver supports, None without a driver.
    tensorrt_cuda_major: the CUDA major TensorRT was built for, None when unknown or not installed.
    The *_source fields say where each fact came from (for the message)."""

    driver_cuda: tuple[int, int] | None
    driver_source: str = ""
    tensorrt_cuda_major: int | None = None
    tensorrt_source: str = ""


@dataclass(frozen=True)
class CudaPythonChoice:
    """requirement: a pip requirement such as ``cuda-python>=12.6,<13``, or None (install none).
    reason: one sentence saying why. warning: a problem the user must fix, "" when none."""

    requirement: str | None
    major: int | None
    reason: str
    warning: str = ""


def requirement_for(major: int) -> str:
    low = MIN_CUDA_PYTHON.get(major, f"{major}.0")
    return f"cuda-python>={low},<{major + 1}"


def choose_cuda_python(facts: CudaFacts) -> CudaPythonChoice:
    """The cuda-python major for this machine: TensorRT's CUDA major when the driver can run it, else the
    driver's. Pure."""
    if facts.driver_cuda is None:
        return CudaPythonChoice(None, None, "no NVIDIA driver found, so the TensorRT backend cannot run here")
    drv_major, drv_minor = facts.driver_cuda
    driver = f"the driver supports CUDA {drv_major}.{drv_minor} ({facts.driver_source})"
    trt = facts.tensorrt_cuda_major
    warning = ""
    if trt is None:
        major, why = drv_major, f"{driver}; TensorRT's CUDA major is unknown"
    elif trt <= drv_major:
        # A newer driver runs older CUDA majors; match TensorRT's so one CUDA generation is in the process.
        major, why = trt, f"{driver}; TensorRT is built for CUDA {trt} ({facts.tensorrt_source})"
    else:
        major, why = drv_major, f"{driver}; TensorRT is built for CUDA {trt} ({facts.tensorrt_source})"
        warning = (f"TensorRT here is built for CUDA {trt}, which this driver (CUDA {drv_major}.{drv_minor}) "
                   f"cannot run: update the NVIDIA driver{' to >= 580' if trt >= 13 else ''} or install "
                   f"TensorRT built for CUDA {drv_major}")
    if major < MIN_CUDA_MAJOR:
        return CudaPythonChoice(None, major, why, f"CUDA {major} is too old for TensorRT >= 10.3 (the oldest "
                                                 "this project runs): on Jetson use JetPack 6.1 or newer")
    return CudaPythonChoice(requirement_for(major), major, why, warning)


def bindings_driver_problem(bindings_version: str | None, driver_cuda: tuple[int, int] | None) -> str | None:
    """Why cuda-python ``bindings_version`` cannot work with a driver for ``driver_cuda``; None if it can
    (or when either is unknown). Pure."""
    if not bindings_version or driver_cuda is None:
        return None
    match = re.match(r"(\d+)", bindings_version)
    if not match or int(match.group(1)) <= driver_cuda[0]:
        return None
    major = int(match.group(1))
    return (f"cuda-python {bindings_version} is built for CUDA {major}, but this NVIDIA driver supports CUDA "
            f"{driver_cuda[0]}.{driver_cuda[1]}{' (CUDA 13 needs driver >= 580)' if major >= 13 else ''}; "
            f"install the matching major: pip install '{requirement_for(driver_cuda[0])}' "
            "(bash setup.sh chooses it)")


# ---- parsing (pure) ----

def parse_driver_version_int(value: int) -> tuple[int, int] | None:
    """cuDriverGetVersion's 12060 -> (12, 6); 0 (no driver) -> None."""
    return (value // 1000, (value % 1000) // 10) if value > 0 else None


def parse_nvidia_smi(text: str) -> tuple[int, int] | None:
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def cuda_for_driver_branch(driver_version: str) -> tuple[int, int] | None:
    """'550.54.14' -> (12, 4): the newest CUDA that driver branch supports."""
    match = re.match(r"(\d+)\.", driver_version.strip())
    if not match:
        return None
    branch = int(match.group(1))
    return next((cuda for low, cuda in DRIVER_BRANCH_CUDA if branch >= low), None)


def parse_proc_driver_version(text: str) -> tuple[int, int] | None:
    """/proc/driver/nvidia/version: 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14 ...'."""
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)", text)
    return cuda_for_driver_branch(match.group(1)) if match else None


def parse_l4t_release(text: str) -> tuple[int, int] | None:
    """/etc/nv_tegra_release: '# R36 (release), REVISION: 4.0, ...' -> CUDA of that JetPack."""
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)", text)
    if not match:
        return None
    release, revision = int(match.group(1)), int(match.group(2))
    if release == 36 and revision >= 4:
        return (12, 6)
    return L4T_CUDA.get(release)


def tensorrt_cuda_from_distributions(names: list[str]) -> tuple[int | None, str]:
    """pip distribution names -> CUDA major: tensorrt-cu12 / tensorrt_cu13_libs; TensorRT-RTX's
    tensorrt_rtx_cu12 only when no full TensorRT wheel is installed."""
    full, rtx = None, None
    for name in names:
        norm = name.lower().replace("_", "-")
        m = re.match(r"tensorrt-(rtx-)?cu(\d+)(?:-|$)", norm)
        if m and m.group(1):
            rtx = rtx or (int(m.group(2)), f"pip {name}")
        elif m:
            full = full or (int(m.group(2)), f"pip {name}")
    found = full or rtx
    return (found[0], found[1]) if found else (None, "")


def tensorrt_cuda_from_dpkg(listing: str) -> tuple[int | None, str]:
    """`dpkg-query -W 'libnvinfer*'` lines 'libnvinfer10\\t10.3.0.30-1+cuda12.5' -> 12."""
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 2:
            m = re.search(r"\+cuda(\d+)\.", parts[1])
            if m:
                return int(m.group(1)), f"dpkg {parts[0]} {parts[1]}"
    return None, ""


# ---- probing (impure) ----

def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read(4096)
    except OSError:
        return ""


def driver_cuda_from_libcuda() -> tuple[int, int] | None:
    """cuDriverGetVersion needs no cuInit and no device; it fails only when libcuda cannot be loaded."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
        value = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(value)) != 0:
            return None
        return parse_driver_version_int(value.value)
    except (OSError, AttributeError):
        return None


def probe_driver() -> tuple[tuple[int, int] | None, str]:
    found = driver_cuda_from_libcuda()
    if found:
        return found, "libcuda cuDriverGetVersion"
    smi = shutil.which("nvidia-smi")
    if smi:
        found = parse_nvidia_smi(_run([smi]))
        if found:
            return found, "nvidia-smi"
    found = parse_proc_driver_version(_read("/proc/driver/nvidia/version"))
    if found:
        return found, "/proc/driver/nvidia/version"
    found = parse_l4t_release(_read("/etc/nv_tegra_release"))
    if found:
        return found, "/etc/nv_tegra_release"
    return None, ""


def libnvinfer_cudart_major() -> tuple[int | None, str]:
    """The libcudart.so.N that a libnvinfer on this machine names (dynamic dependency or dlopen string)."""
    dirs = [os.path.join(os.environ["TENSORRT_ROOT"], d) for d in ("lib", "lib64") if os.environ.get("TENSORRT_ROOT")]
    dirs += ["/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib", "/usr/local/lib"]
    seen = set()
    for folder in dirs:
        for path in sorted(glob.glob(os.path.join(folder, "libnvinfer.so.*"))):
            if os.path.realpath(path) in seen:  # libnvinfer.so.10 -> libnvinfer.so.10.3.0: read once
                continue
            seen.add(os.path.realpath(path))
            try:
                with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    m = re.search(rb"libcudart\.so\.(\d+)", data)
            except (OSError, ValueError):
                continue
            if m:
                return int(m.group(1)), f"{path} names libcudart.so.{m.group(1).decode()}"
    return None, ""


def probe_tensorrt_cuda() -> tuple[int | None, str]:
    from importlib import metadata

    names = [d.metadata["Name"] or "" for d in metadata.distributions()]
    found = tensorrt_cuda_from_distributions(names)
    if found[0] is None and shutil.which("dpkg-query"):
        found = tensorrt_cuda_from_dpkg(_run(["dpkg-query", "-W", "libnvinfer*", "python3-libnvinfer*"]))
    if found[0] is None:
        found = libnvinfer_cudart_major()
    return found


def probe_facts() -> CudaFacts:
    driver, driver_source = probe_driver()
    trt, trt_source = probe_tensorrt_cuda() if driver else (None, "")
    return CudaFacts(driver, driver_source, trt, trt_source)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m runtime.cuda_versions",
        description="Choose the cuda-python requirement for this machine from the NVIDIA driver's CUDA version "
                    "and TensorRT's CUDA major. Prints the requirement on stdout (nothing without a driver) and "
                    "why on stderr. Used by setup.sh; runs with any Python >= 3.10, no packages needed.",
        epilog="example: pip install \"$(python3 -m runtime.cuda_versions)\"")
    p.add_argument("--json", action="store_true", help="print facts and choice as JSON instead")
    args = p.parse_args(argv)
    facts = probe_facts()
    choice = choose_cuda_python(facts)
    if args.json:
        print(json.dumps({"facts": asdict(facts), "choice": asdict(choice)}, indent=2))
        return 0
    if choice.requirement:
        print(choice.requirement)
        print(f"cuda-python: {choice.requirement} because {choice.reason}", file=sys.stderr)
    if choice.warning:
        print(f"cuda-python: WARNING: {choice.warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

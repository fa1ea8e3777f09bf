"""Build the DepthwiseXCorr TensorRT plugin library (engines/plugin) for the GPU of this machine.

``probe_environment()`` looks for the tools (nvcc, cmake, a C++ compiler), the TensorRT headers and the
GPU's compute capability; ``plan_build()`` turns what was found into a ``BuildPlan`` (pure: tested
directly); ``run_plan()`` runs CMake and copies the library atomically into ``artifacts/plugin/``.

Outputs (in ``--out``, default ``artifacts/plugin/``):
    libsiamrpn_xcorr_plugin.so        for IPluginRegistry.load_library / trtexec --dynamicPlugins
    libsiamrpn_xcorr_plugin_static.so for trtexec --staticPlugins (only when libnvinfer is found)
    libsiamrpn_xcorr_plugin.so.json   provenance: TensorRT version, CUDA architectures, source hash
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from runtime.engine_meta import PROJECT_PLUGIN_DIR
from runtime.errors import InputError, SiamTrackError

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = Path(__file__).resolve().parent / "plugin"
DEFAULT_OUT_DIR = PROJECT_PLUGIN_DIR  # the runtime loads plugin libraries from here (runtime.engine_meta)
LIBRARY_NAME = "libsiamrpn_xcorr_plugin.so"
STATIC_LIBRARY_NAME = "libsiamrpn_xcorr_plugin_static.so"
MIN_TENSORRT = (10, 3)
MIN_CMAKE = (3, 18)
EXIT_CANNOT_BUILD = 3

# Compute capability of Jetson modules, read from /proc/device-tree/compatible when no CUDA query works.
TEGRA_ARCH = {"tegra234": "87", "tegra194": "72", "tegra186": "62", "tegra210": "53"}
SYSTEM_INCLUDE_DIRS = ("/usr/include/aarch64-linux-gnu", "/usr/include/x86_64-linux-gnu", "/usr/include",
                       "/usr/local/include")
SYSTEM_LIB_DIRS = ("/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib", "/usr/local/lib")
PLUGIN_SOURCES = ("CMakeLists.txt", "xcorr_math.h", "depthwise_xcorr_kernel.h", "depthwise_xcorr_kernel.cu",
                  "depthwise_xcorr_plugin.h", "depthwise_xcorr_plugin.cpp", "plugin_entry.cpp")


class PluginBuildError(SiamTrackError):
    """CMake or the compiler failed on a machine that has every prerequisite."""


@dataclass(frozen=True)
class FoundTools:
    """What probe_environment() found. None / empty = not found.

    tensorrt_include: folder holding NvInferRuntime.h; tensorrt_version: (major, minor, patch) read from
    NvInferVersion.h next to it; nvcc_archs: the numeric architectures ``nvcc --list-gpu-arch`` accepts
    ("75", "87", ...); gpu_arch: compute capability of device 0 as "87"; gpu_source says how it was found.
    nvcc_cuda: (major, minor) of the chosen nvcc; tensorrt_cuda_major: the CUDA major TensorRT was built
    for (None when unknown), and tensorrt_cuda_source where that was read. nvinfer_library: what CMake's
    find_library(nvinfer) finds (libnvinfer.so, never a versioned name).
    """

    nvcc: str | None = None
    nvcc_archs: tuple[str, ...] = ()
    cmake: str | None = None
    cmake_version: tuple[int, ...] = ()
    cxx: str | None = None
    tensorrt_include: str | None = None
    tensorrt_version: tuple[int, int, int] | None = None
    nvinfer_library: str | None = None
    gpu_arch: str | None = None
    gpu_source: str = ""
    nvcc_cuda: tuple[int, int] | None = None
    tensorrt_cuda_major: int | None = None
    tensorrt_cuda_source: str = ""


@dataclass(frozen=True)
class BuildPlan:
    """Everything needed to build, or the reasons it cannot be built here.

    ``missing`` holds one sentence per absent prerequisite (what, where it was looked for, how to provide
    it); the plan can run only when it is empty. ``commands`` are argv lists run in order.
    """

    missing: tuple[str, ...]
    archs: tuple[str, ...]
    tensorrt_include: str | None
    tensorrt_version: tuple[int, int, int] | None
    build_dir: str
    out_dir: str
    commands: tuple[tuple[str, ...], ...]
    libraries: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.missing

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self) | {"ok": self.ok}, indent=2)


def normalise_arch(text: str) -> str:
    """'87', 'sm_87', 'compute_87', '8.7' -> '87'. Raises InputError for anything else."""
    value = text.strip().lower()
    for prefix in ("sm_", "compute_"):
        if value.startswith(prefix):
            value = value[len(prefix):]
    if re.fullmatch(r"\d\.\d", value):
        value = value.replace(".", "")
    if not re.fullmatch(r"\d{2,3}[a-z]?", value):
        raise InputError(f"--arch {text!r} is not a CUDA architecture; expected e.g. 87 (Jetson Orin), "
                         "89 (RTX 40xx), sm_86 or 8.7")
    return value


def parse_tensorrt_version(version_header_text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from NvInferVersion.h; follows 11.x's TRT_*_ENTERPRISE indirection."""
    defines = dict(re.findall(r"#define\s+(\w+)\s+(\w+)", version_header_text))

    def resolve(name: str) -> int | None:
        value = defines.get(name)
        for _ in range(4):  # NV_TENSORRT_MAJOR -> TRT_MAJOR_ENTERPRISE -> 11
            if value is None or value.isdigit():
                break
            value = defines.get(value)
        return int(value) if value is not None and value.isdigit() else None

    parts = [resolve(f"NV_TENSORRT_{p}") for p in ("MAJOR", "MINOR", "PATCH")]
    return None if None in parts else (parts[0], parts[1], parts[2])


def tensorrt_include_candidates(environ: Mapping[str, str]) -> list[str]:
    """Where to look for NvInferRuntime.h, most specific first."""
    dirs = []
    if environ.get("TENSORRT_INCLUDE"):
        dirs.append(environ["TENSORRT_INCLUDE"])
    if environ.get("TENSORRT_ROOT"):
        dirs.append(str(Path(environ["TENSORRT_ROOT"]) / "include"))
    return dirs + list(SYSTEM_INCLUDE_DIRS)


def plan_build(found: FoundTools, environ: Mapping[str, str], arch: str | None, out_dir: str | Path,
               build_dir: str | Path) -> BuildPlan:
    """Turn what was found (and --arch) into a BuildPlan. Pure: no file system, no processes.

    The architecture is --arch if given, else the GPU's. A plan with missing prerequisites has no commands.
    """
    missing = []
    if not found.nvcc:
        missing.append("nvcc (CUDA compiler) not found on PATH, in $CUDACXX or /usr/local/cuda/bin; install the "
                       "CUDA toolkit (JetPack: `sudo apt install cuda-toolkit-12-6` or nvidia-jetpack) or put nvcc "
                       "on PATH")
    if not found.cmake:
        missing.append(f"cmake >= {'.'.join(map(str, MIN_CMAKE))} not found; install it (`sudo apt install cmake` "
                       "or `pip install cmake`)")
    elif found.cmake_version and tuple(found.cmake_version[:2]) < MIN_CMAKE:
        missing.append(f"cmake {'.'.join(map(str, found.cmake_version))} is older than "
                       f"{'.'.join(map(str, MIN_CMAKE))}; `pip install cmake` gives a newer one")
    if not found.cxx:
        missing.append("no C++ compiler (g++/c++) found; install build-essential")
    if not found.tensorrt_include:
        looked = ", ".join(tensorrt_include_candidates(environ))
        missing.append(f"TensorRT headers (NvInferRuntime.h) not found in {looked}; install TensorRT "
                       "(JetPack ships them; on a desktop set TENSORRT_ROOT to the unpacked TensorRT folder, "
                       "or TENSORRT_INCLUDE to its include dir)")
    elif found.tensorrt_version is None or found.tensorrt_version[:2] < MIN_TENSORRT:
        have = ".".join(map(str, found.tensorrt_version)) if found.tensorrt_version else "unknown"
        missing.append(f"TensorRT {have} in {found.tensorrt_include} is too old: the IPluginV3 plugin needs "
                       f">= {'.'.join(map(str, MIN_TENSORRT))}; use the standard-op engines (--flavour standard)")
    archs: tuple[str, ...] = ()
    if arch is not None:
        archs = (normalise_arch(arch),)
    elif found.gpu_arch:
        archs = (found.gpu_arch,)
    else:
        missing.append("no GPU found to choose the CUDA architecture; pass --arch (87 = Jetson Orin, "
                       "86 = RTX 30xx, 89 = RTX 40xx)")
    if found.nvcc and found.nvcc_cuda and found.tensorrt_cuda_major and found.nvcc_cuda[0] != found.tensorrt_cuda_major:
        have = ".".join(map(str, found.nvcc_cuda))
        missing.append(f"{found.nvcc} is CUDA {have}, but TensorRT is built for CUDA {found.tensorrt_cuda_major} "
                       f"({found.tensorrt_cuda_source}): the plugin would link "
                       f"libcudart.so.{found.nvcc_cuda[0]}, which "
                       "fails to load beside TensorRT on a driver without that CUDA major. Install the CUDA "
                       f"{found.tensorrt_cuda_major} toolkit and point CUDACXX at its nvcc "
                       f"(e.g. CUDACXX=/usr/local/cuda-{found.tensorrt_cuda_major}.x/bin/nvcc)")
    if found.nvcc and found.nvcc_archs:
        unsupported = [a for a in archs if a not in found.nvcc_archs]
        if unsupported:
            missing.append(f"this nvcc cannot target sm_{', sm_'.join(unsupported)} (it supports "
                           f"{', '.join(found.nvcc_archs)}); use the CUDA toolkit of the device's JetPack/driver")
    libraries = (LIBRARY_NAME,) + ((STATIC_LIBRARY_NAME,) if found.nvinfer_library else ())
    if missing:
        return BuildPlan(tuple(missing), archs, found.tensorrt_include, found.tensorrt_version, str(build_dir),
                         str(out_dir), (), libraries)
    configure = (found.cmake, "-S", str(SOURCE_DIR), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                 f"-DCMAKE_CUDA_COMPILER={found.nvcc}", f"-DCMAKE_CXX_COMPILER={found.cxx}",
                 f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(archs)}", f"-DTENSORRT_INCLUDE={found.tensorrt_include}")
    if environ.get("TENSORRT_ROOT"):
        configure += (f"-DTENSORRT_ROOT={environ['TENSORRT_ROOT']}",)
    if found.nvinfer_library:  # CMake links exactly the library we found (and installs the static variant)
        configure += (f"-DNVINFER_LIBRARY={found.nvinfer_library}",)
    build = (found.cmake, "--build", str(build_dir), "--parallel", "2")
    return BuildPlan((), archs, found.tensorrt_include, found.tensorrt_version, str(build_dir), str(out_dir),
                     (configure, build), libraries)


# ---- probing (impure) ----

def _run_text(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def find_nvcc(environ: Mapping[str, str], which: Callable[[str], str | None] = shutil.which) -> str | None:
    """$CUDACXX, then PATH, then /usr/local/cuda/bin (JetPack installs there without touching PATH)."""
    candidates = nvcc_candidates(environ, which)
    return candidates[0] if candidates else None


def nvcc_candidates(environ: Mapping[str, str], which: Callable[[str], str | None] = shutil.which,
                    versioned: Sequence[str] | None = None) -> list[str]:
    """Every executable nvcc, most preferred first: $CUDACXX, PATH, /usr/local/cuda/bin, then the
    versioned toolkits /usr/local/cuda-X.Y/bin (newest first), so a matching one can be picked."""
    if versioned is None:
        versioned = sorted(glob.glob("/usr/local/cuda-*/bin/nvcc"), key=_toolkit_version_key, reverse=True)
    found = []
    for candidate in (environ.get("CUDACXX"), which("nvcc"), "/usr/local/cuda/bin/nvcc", *versioned):
        if candidate and os.access(candidate, os.X_OK) and candidate not in found:
            found.append(candidate)
    return found


def _toolkit_version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"cuda-(\d+)\.(\d+)", path)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def parse_nvcc_version(text: str) -> tuple[int, int] | None:
    """`nvcc --version`'s 'Cuda compilation tools, release 12.6, V12.6.68' -> (12, 6)."""
    match = re.search(r"release (\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def choose_nvcc(candidates: Sequence[tuple[str, tuple[int, int] | None]], tensorrt_cuda_major: int | None,
                explicit: str | None) -> tuple[str, tuple[int, int] | None] | None:
    """(path, CUDA version) of the nvcc to build with. Pure. $CUDACXX (``explicit``) is always taken as
    given (plan_build reports a mismatch); otherwise the first whose CUDA major is TensorRT's, else the
    first. None when there is no candidate."""
    if not candidates:
        return None
    if explicit:
        return next((c for c in candidates if c[0] == explicit), candidates[0])
    if tensorrt_cuda_major is not None:
        for candidate in candidates:
            if candidate[1] and candidate[1][0] == tensorrt_cuda_major:
                return candidate
    return candidates[0]


def tensorrt_cuda_major(environ: Mapping[str, str]) -> tuple[int | None, str]:
    """The CUDA major of the TensorRT the plugin is built for: TENSORRT_ROOT's folder name
    (TensorRT-10.3.0.26.Linux.x86_64-gnu.cuda-12.5) or the libcudart its libnvinfer names, else the
    Debian packages (JetPack: libnvinfer10 10.3.0.30-1+cuda12.5), else a full TensorRT pip wheel
    (tensorrt-cu12). TensorRT-RTX wheels do not count: the plugin is for TensorRT."""
    from runtime import cuda_versions as cv

    root = environ.get("TENSORRT_ROOT")
    if root:
        match = re.search(r"cuda-(\d+)\.\d+", Path(root).resolve().name)
        if match:
            return int(match.group(1)), f"TENSORRT_ROOT {root}"
    found = cv.libnvinfer_cudart_major()
    if found[0] is None and shutil.which("dpkg-query"):
        found = cv.tensorrt_cuda_from_dpkg(_run_text(["dpkg-query", "-W", "libnvinfer*"]))
    if found[0] is None:
        from importlib import metadata

        names = [d.metadata["Name"] or "" for d in metadata.distributions()]
        found = cv.tensorrt_cuda_from_distributions([n for n in names if "rtx" not in n.lower()])
    return found


def cuda_include_dir(nvcc: str | None, environ: Mapping[str, str]) -> str | None:
    """Folder with cuda_runtime_api.h / cuda_fp16.h for host-compiler builds: next to nvcc (following
    symlinks), then $CUDA_HOME / $CUDA_PATH, then /usr/local/cuda. A wrapper script named nvcc has no
    include folder beside it, hence the fallbacks."""
    candidates = []
    if nvcc:
        candidates.append(Path(nvcc).resolve().parent.parent / "include")
    candidates += [Path(environ[v]) / "include" for v in ("CUDA_HOME", "CUDA_PATH") if environ.get(v)]
    candidates.append(Path("/usr/local/cuda/include"))
    for folder in candidates:
        if (folder / "cuda_runtime_api.h").is_file():
            return str(folder)
    return None


def find_tensorrt_include(environ: Mapping[str, str]) -> tuple[str | None, tuple[int, int, int] | None]:
    for folder in tensorrt_include_candidates(environ):
        if (Path(folder) / "NvInferRuntime.h").is_file():
            version_file = Path(folder) / "NvInferVersion.h"
            text = version_file.read_text(errors="replace") if version_file.is_file() else ""
            return folder, parse_tensorrt_version(text)
    return None, None


# CMake's find_library(NVINFER_LIBRARY nvinfer ...) in plugin/CMakeLists.txt looks, in each folder, for
# lib<name> + each of CMAKE_FIND_LIBRARY_SUFFIXES (.so then .a on Linux): never libnvinfer.so.10, which only
# the runtime loader uses. find_nvinfer must find exactly what CMake finds, or the static variant is
# expected but never built (or built but never installed).
NVINFER_NAMES = ("libnvinfer.so", "libnvinfer.a")


def nvinfer_search_dirs(environ: Mapping[str, str]) -> list[str]:
    """find_library's HINTS (${TENSORRT_ROOT}/lib, /lib64) then PATHS, as in plugin/CMakeLists.txt."""
    dirs = []
    if environ.get("TENSORRT_ROOT"):
        dirs += [str(Path(environ["TENSORRT_ROOT"]) / sub) for sub in ("lib", "lib64")]
    return dirs + list(SYSTEM_LIB_DIRS)


def find_nvinfer(environ: Mapping[str, str], dirs: Sequence[str] | None = None) -> str | None:
    for folder in nvinfer_search_dirs(environ) if dirs is None else dirs:
        for name in NVINFER_NAMES:
            if (Path(folder) / name).is_file():
                return str(Path(folder) / name)
    return None


def query_gpu_arch() -> tuple[str | None, str]:
    """Compute capability of device 0 as '87', and how it was found."""
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, props = cudart.cudaGetDeviceProperties(0)
        if int(err) == 0:
            return f"{props.major}{props.minor}", "cudaGetDeviceProperties(0)"
    except Exception:  # no cuda-python, or no driver: fall through to the other probes
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        first = _run_text([smi, "--query-gpu=compute_cap", "--format=csv,noheader"]).strip().splitlines()
        if first and re.fullmatch(r"\d+\.\d+", first[0].strip()):
            return first[0].strip().replace(".", ""), "nvidia-smi"
    compatible = Path("/proc/device-tree/compatible")
    if compatible.is_file():
        text = compatible.read_bytes().decode(errors="replace")
        for soc, arch in TEGRA_ARCH.items():
            if soc in text:
                return arch, f"/proc/device-tree/compatible ({soc})"
    return None, ""


def probe_environment(environ: Mapping[str, str] | None = None) -> FoundTools:
    """Look for every prerequisite on this machine (runs `nvcc --list-gpu-arch` and `cmake --version`)."""
    environ = os.environ if environ is None else environ
    trt_cuda, trt_cuda_source = tensorrt_cuda_major(environ)
    candidates = [(path, parse_nvcc_version(_run_text([path, "--version"]))) for path in nvcc_candidates(environ)]
    chosen = choose_nvcc(candidates, trt_cuda, environ.get("CUDACXX"))
    nvcc, nvcc_cuda = chosen if chosen else (None, None)
    listed = set(re.findall(r"compute_(\d+[a-z]?)", _run_text([nvcc, "--list-gpu-arch"]))) if nvcc else set()
    nvcc_archs = tuple(sorted(listed, key=lambda a: (int(re.match(r"\d+", a).group()), a)))
    cmake = shutil.which("cmake")
    cmake_version = ()
    if cmake:
        match = re.search(r"version (\d+)\.(\d+)", _run_text([cmake, "--version"]))
        cmake_version = tuple(int(g) for g in match.groups()) if match else ()
    cxx = environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    include, version = find_tensorrt_include(environ)
    gpu_arch, gpu_source = query_gpu_arch()
    return FoundTools(nvcc=nvcc, nvcc_archs=nvcc_archs, cmake=cmake, cmake_version=cmake_version, cxx=cxx,
                      tensorrt_include=include, tensorrt_version=version, nvinfer_library=find_nvinfer(environ),
                      gpu_arch=gpu_arch, gpu_source=gpu_source, nvcc_cuda=nvcc_cuda, tensorrt_cuda_major=trt_cuda,
                      tensorrt_cuda_source=trt_cuda_source)


# ---- running ----

def sources_sha256() -> str:
    """One hash over the plugin sources, so a library built from other sources is recognised as stale."""
    digest = hashlib.sha256()
    for name in PLUGIN_SOURCES:
        digest.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes())
    return digest.hexdigest()


def _atomic_copy(src: Path, dst: Path) -> None:
    from runtime.atomic import atomic_path

    with atomic_path(dst, mode=0o755) as tmp:
        shutil.copyfile(src, tmp)


def _atomic_write_text(text: str, dst: Path) -> None:
    from runtime.atomic import write_text

    write_text(dst, text, mode=0o644)


def run_plan(plan: BuildPlan, verbose: bool = False) -> list[Path]:
    """Run the plan's commands and install its libraries into plan.out_dir. Returns the installed paths."""
    if not plan.ok:
        raise SiamTrackError("the plugin cannot be built here: " + "; ".join(plan.missing))
    Path(plan.build_dir).mkdir(parents=True, exist_ok=True)
    for argv in plan.commands:
        proc = subprocess.run(list(argv), capture_output=not verbose, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join(((proc.stdout or "") + (proc.stderr or "")).splitlines()[-25:])
            raise PluginBuildError(f"plugin build step `{' '.join(argv)}` failed (exit {proc.returncode}); "
                                   f"last lines:\n{tail}\nFix the error above, or use the standard-op engines "
                                   "(--flavour standard)")
    out_dir = Path(plan.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    installed = []
    for name in plan.libraries:
        built = Path(plan.build_dir) / name
        if not built.is_file():
            raise PluginBuildError(f"CMake finished but {built} is missing; rerun with --verbose to see why")
        _atomic_copy(built, out_dir / name)
        installed.append(out_dir / name)
    provenance = {"libraries": list(plan.libraries), "cuda_architectures": list(plan.archs),
                  "tensorrt_version": ".".join(map(str, plan.tensorrt_version or ())),
                  "tensorrt_include": plan.tensorrt_include, "sources_sha256": sources_sha256(),
                  "plugin": {"name": "DepthwiseXCorr", "version": "1", "namespace": "siamrpn"}}
    _atomic_write_text(json.dumps(provenance, indent=2) + "\n", out_dir / (LIBRARY_NAME + ".json"))
    return installed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siamtrack plugin",
        description="Build the DepthwiseXCorr TensorRT plugin (engines/plugin) for this machine's GPU. Needs "
                    "nvcc, cmake, a C++ compiler and TensorRT >= 10.3 headers; says what is missing otherwise "
                    f"(exit code {EXIT_CANNOT_BUILD}).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  siamtrack plugin                                    # Jetson / desktop with TensorRT\n"
               "  TENSORRT_ROOT=/opt/TensorRT-10.3 siamtrack plugin --arch 89\n"
               "  siamtrack plugin --dry-run --json                   # show what would run\n"
               "then: trtexec --onnx=search.fp16.plugin.onnx "
               "--dynamicPlugins=artifacts/plugin/libsiamrpn_xcorr_plugin.so --fp16")
    parser.add_argument("--arch", help="CUDA architecture, e.g. 87 (Orin) or 89; default: the GPU's")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="install folder (default %(default)s)")
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="CMake build folder (default: <out>/build)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, build nothing")
    parser.add_argument("--json", action="store_true", help="machine-readable plan/result on stdout")
    parser.add_argument("--verbose", action="store_true", help="show CMake and compiler output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    build_dir = args.build_dir or (args.out / "build")
    plan = plan_build(probe_environment(), os.environ, args.arch, args.out, build_dir)
    if args.dry_run or not plan.ok:
        if args.json:
            print(plan.to_json())
        elif plan.ok:
            for argv_ in plan.commands:
                print(" ".join(argv_))
        if not plan.ok:
            print("plugin not built:\n  - " + "\n  - ".join(plan.missing), file=sys.stderr)
            return EXIT_CANNOT_BUILD
        return 0
    installed = run_plan(plan, verbose=args.verbose)
    if args.json:
        print(json.dumps({"ok": True, "installed": [str(p) for p in installed], "archs": list(plan.archs)}))
    else:
        print("\n".join(str(p) for p in installed))
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack plugin"))

"""Is there a usable NVIDIA GPU? Asked through cuda-python's runtime API, which answers cleanly
without a driver (cudaErrorInsufficientDriver) instead of crashing like TensorRT's Runtime does."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def gpu_status() -> tuple[bool, str]:
    """(available, reason). Never constructs a TensorRT object; safe on any machine."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python layout (JetPack 6 ships 12.x)
        except ImportError:
            return False, "cuda-python is not installed (pip install cuda-python), so no GPU can be used"
    try:
        err, count = cudart.cudaGetDeviceCount()
    except Exception as exc:  # a broken driver install raises from the loader
        return False, f"CUDA runtime failed to load: {exc}"
    if int(err) == 0:
        return explain_device_count("cudaSuccess", count, None, None)
    from runtime.cuda_versions import driver_cuda_from_libcuda

    return explain_device_count(getattr(err, "name", str(err)), count, _bindings_version(), driver_cuda_from_libcuda())


def explain_device_count(err_name: str, count: int | None, bindings_version: str | None,
                         driver_cuda: tuple[int, int] | None) -> tuple[bool, str]:
    """(available, reason) from cudaGetDeviceCount's answer. A cuda-python major newer than the driver's
    CUDA answers cudaErrorInsufficientDriver on a working GPU: say so, with the requirement that fits."""
    from runtime.cuda_versions import bindings_driver_problem

    if err_name != "cudaSuccess":
        problem = bindings_driver_problem(bindings_version, driver_cuda)
        if problem:
            return False, problem
        return False, f"no usable GPU: cudaGetDeviceCount returned {err_name}"
    if not count:
        return False, "no usable GPU: the CUDA driver reports 0 devices"
    return True, f"{count} CUDA device(s)"


def _bindings_version() -> str | None:
    from importlib import metadata

    for dist in ("cuda-bindings", "cuda-python"):  # cuda-bindings carries the CUDA major from 12.6 on
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None

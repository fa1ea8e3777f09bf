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
    if int(err) != 0:
        return False, f"no usable GPU: cudaGetDeviceCount returned {getattr(err, 'name', err)}"
    if not count:
        return False, "no usable GPU: the CUDA driver reports 0 devices"
    return True, f"{count} CUDA device(s)"

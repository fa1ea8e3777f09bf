"""``siamrpn::DepthwiseXCorr`` (version 1) for ONNX Runtime: vectorised numpy behind an
onnxruntime-extensions Python op.

``dw_xcorr_numpy(x, k)``: x (N, C, H, W), k (N, C, h, w) float32 -> (N, C, H-h+1, W-w+1) float32,
``out[n, c, i, j] = sum_{u,v} x[n, c, i+u, j+v] * k[n, c, u, v]`` (cross-correlation, no padding).

An exception raised inside a Python custom op aborts the whole process (pybind11 terminates), so the
registered op never raises: it records what went wrong in ``OP_ERRORS`` and returns NaNs, and the
backend (which validates shapes before every run anyway) turns a recorded error into an exception
after the run. ``load_extensions`` imports onnxruntime-extensions without letting it pull in torch or
onnx (its package __init__ imports both when they are importable).
"""
from __future__ import annotations

import sys

import numpy as np

from runtime.contract import XCORR_DOMAIN, XCORR_OP
from runtime.errors import BackendUnavailable

# Messages of failed op calls since the backend last cleared it; the backend raises on a non-empty list.
OP_ERRORS: list[str] = []
_REGISTERED: list[str] = []  # the extensions library path, once the op is registered


def dw_xcorr_numpy(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Depth-wise cross-correlation (see module docstring); returns a C-contiguous float32 array."""
    n, c, h_in, w_in = x.shape
    kh, kw = k.shape[2:]
    h_out, w_out = h_in - kh + 1, w_in - kw + 1
    # Work on flattened planes: output pixel p = i*W + j reads x_flat[p + u*W + v], so every kernel tap
    # is one contiguous slice; pixels with j >= w_out are computed too and dropped at the end.
    xf = x.reshape(n * c, h_in * w_in)                       # (N*C, H*W)
    kf = k.reshape(n * c, kh * kw)                           # (N*C, h*w)
    span = (h_out - 1) * w_in + w_out
    acc = xf[:, :span] * kf[:, 0:1]                          # (N*C, span)
    tmp = np.empty_like(acc)
    for u in range(kh):
        for v in range(kw):
            if u == 0 and v == 0:
                continue
            off = u * w_in + v
            np.multiply(xf[:, off:off + span], kf[:, u * kw + v:u * kw + v + 1], out=tmp)
            acc += tmp
    full = np.empty((n * c, h_out * w_in), np.float32)
    full[:, :span] = acc
    return np.ascontiguousarray(full.reshape(n, c, h_out, w_in)[:, :, :, :w_out])   # (N, C, Ho, Wo)


def xcorr_input_problem(x_shape, k_shape, x_dtype=np.float32, k_dtype=np.float32) -> str | None:
    """Why (x, k) cannot be correlated, or None when they can."""
    if np.dtype(x_dtype) != np.float32 or np.dtype(k_dtype) != np.float32:
        return f"inputs must be float32, got {np.dtype(x_dtype)} and {np.dtype(k_dtype)}"
    if len(x_shape) != 4 or len(k_shape) != 4:
        return f"inputs must be 4-D, got shapes {tuple(x_shape)} and {tuple(k_shape)}"
    if tuple(x_shape[:2]) != tuple(k_shape[:2]):
        return f"batch/channels differ: features {tuple(x_shape)} vs kernel {tuple(k_shape)}"
    if x_shape[0] < 1 or min(k_shape[2:]) < 1 or k_shape[2] > x_shape[2] or k_shape[3] > x_shape[3]:
        return f"kernel {tuple(k_shape)} does not fit in features {tuple(x_shape)}"
    return None


def _guarded_xcorr(x, k):
    """The body ONNX Runtime calls: never raises (see module docstring)."""
    try:
        x = np.asarray(x)
        k = np.asarray(k)
        problem = xcorr_input_problem(x.shape, k.shape, x.dtype, k.dtype)
        if problem is None:
            return dw_xcorr_numpy(x, k)
        OP_ERRORS.append(f"{XCORR_OP}: {problem}")
    except BaseException as err:  # noqa: BLE001 - anything escaping here kills the process
        OP_ERRORS.append(f"{XCORR_OP}: {type(err).__name__}: {err}")
    try:
        shape = (max(int(x.shape[0]), 1), max(int(x.shape[1]), 1),
                 max(int(x.shape[2]) - int(k.shape[2]) + 1, 1), max(int(x.shape[3]) - int(k.shape[3]) + 1, 1))
    except BaseException:  # noqa: BLE001
        shape = (1, 1, 1, 1)
    return np.full(shape, np.nan, np.float32)


def load_extensions():
    """Import onnxruntime_extensions (lib-only: torch/onnx blocked while it loads, unless the process
    already imported them). Raises BackendUnavailable when it is not installed."""
    loaded = sys.modules.get("onnxruntime_extensions")
    if loaded is not None:
        return loaded
    blocked = [name for name in ("torch", "onnx") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # makes "import torch" raise ImportError, which the package tolerates
    try:
        import onnxruntime_extensions
    except ImportError as err:
        raise BackendUnavailable(
            f"onnxruntime-extensions is not installed ({err}); the custom-op graphs (*.plugin.onnx) need it "
            "for the siamrpn::DepthwiseXCorr op. Install it (pip install onnxruntime-extensions) or use the "
            "standard-op graphs (--flavour standard)") from None
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return onnxruntime_extensions


def register_xcorr_op() -> str:
    """Register the op with onnxruntime-extensions (once per process); returns the custom-op library
    path to pass to ``SessionOptions.register_custom_ops_library``."""
    if _REGISTERED:
        return _REGISTERED[0]
    ext = load_extensions()
    ext.onnx_op(op_type=f"{XCORR_DOMAIN}::{XCORR_OP}",
                inputs=[ext.PyCustomOpDef.dt_float, ext.PyCustomOpDef.dt_float],
                outputs=[ext.PyCustomOpDef.dt_float])(_guarded_xcorr)
    _REGISTERED.append(ext.get_library_path())
    return _REGISTERED[0]

"""The DepthwiseXCorr CUDA kernel on a CPU machine: it compiles for Orin (sm_87) and Ada (sm_89), and its
math (engines/plugin/xcorr_math.h, the same functions the kernel calls) matches numpy when built for the
host and walked exactly as the kernel walks planes and strips (engines/plugin/xcorr_host_shim.cpp).

Reference: out[n,c,i,j] = sum_{u,v} x[n,c,i+u,j+v] * k[n,c,u,v] in float64 (numpy sliding windows).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest

from engines.plugin_build import SOURCE_DIR, cuda_include_dir, find_nvcc

U32 = 2.0 ** -24  # unit roundoff of float32


def dw_xcorr_ref(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """float64 reference. x (N,C,H,W), k (N,C,h,w) -> (N,C,H-h+1,W-w+1)."""
    h, w = k.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (h, w), axis=(2, 3))  # N,C,Ho,Wo,h,w
    return np.einsum("ncijuv,ncuv->ncij", win, k.astype(np.float64))


def abs_products_sum(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """sum_{u,v} |x*k| per output: the scale of the floating-point error bound of the sum."""
    return dw_xcorr_ref(np.abs(x.astype(np.float64)), np.abs(k.astype(np.float64)))


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory) -> ctypes.CDLL:
    cxx = shutil.which("g++") or shutil.which("c++")
    include = cuda_include_dir(find_nvcc(os.environ), os.environ)
    if cxx is None or include is None:
        pytest.skip("needs a C++ compiler and the CUDA headers (cuda_fp16.h) to build the host shim")
    out = tmp_path_factory.mktemp("xcorr_host") / "libxcorr_host.so"
    subprocess.run([cxx, "-std=c++17", "-O2", "-shared", "-fPIC", f"-I{include}",
                    str(SOURCE_DIR / "xcorr_host_shim.cpp"), "-o", str(out)], check=True)
    lib = ctypes.CDLL(str(out))
    for name in ("siamrpn_xcorr_strip_f32", "siamrpn_xcorr_strip_f16",
                 "siamrpn_xcorr_element_f32", "siamrpn_xcorr_element_f16"):
        getattr(lib, name).argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int32] * 6
        getattr(lib, name).restype = ctypes.c_int
    lib.siamrpn_xcorr_staged_stride.argtypes = [ctypes.c_int32] * 3
    lib.siamrpn_xcorr_staged_stride.restype = ctypes.c_int32
    lib.siamrpn_xcorr_plan.argtypes = [ctypes.c_int32] * 4 + [ctypes.POINTER(ctypes.c_int32)]
    return lib


def run_host(lib: ctypes.CDLL, path: str, x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """path: 'strip' (the shared-memory kernel) or 'element' (the global-memory fallback)."""
    x = np.ascontiguousarray(x)
    k = np.ascontiguousarray(k)
    n, c, h, w = x.shape
    kh, kw = k.shape[2:]
    out = np.full((n, c, h - kh + 1, w - kw + 1), np.nan, dtype=x.dtype)
    suffix = "f16" if x.dtype == np.float16 else "f32"
    rc = getattr(lib, f"siamrpn_xcorr_{path}_{suffix}")(x.ctypes.data, k.ctypes.data, out.ctypes.data,
                                                        n, c, h, w, kh, kw)
    assert rc == 0
    return out


def assert_fp32_close(out: np.ndarray, x: np.ndarray, k: np.ndarray) -> None:
    # A sequential float32 FMA chain of n = kh*kw terms errs by at most n*u*sum|x*k| (u = 2^-24), so this is
    # a bound, not a guess; an index error gives differences of order sum|x*k| itself.
    n_terms = k.shape[2] * k.shape[3]
    bound = n_terms * U32 * abs_products_sum(x, k) + 1e-30
    assert np.all(np.abs(out.astype(np.float64) - dw_xcorr_ref(x, k)) <= bound)


def assert_fp16_close(out: np.ndarray, x: np.ndarray, k: np.ndarray) -> None:
    # float16 inputs: products are exact in float32, the float32 sum errs by <= n*u*sum|x*k|, and the final
    # rounding to float16 adds at most half a float16 ulp. Anything beyond that is a real error.
    ref = dw_xcorr_ref(x, k)
    n_terms = k.shape[2] * k.shape[3]
    mag = np.maximum(np.abs(ref), np.abs(out.astype(np.float64))).astype(np.float16)
    bound = 0.5 * np.spacing(mag).astype(np.float64) + n_terms * U32 * abs_products_sum(x, k)
    assert np.all(np.abs(out.astype(np.float64) - ref) <= bound)


def random_inputs(rng, n, c, h, w, kh, kw, dtype):
    x = rng.uniform(-1, 1, size=(n, c, h, w)).astype(dtype)
    k = rng.uniform(-1, 1, size=(n, c, kh, kw)).astype(dtype)
    return x, k


# SiamRPN++ shapes (r50/mobilenet: 29x29 search, 5x5 kernel; alexnet: 24x24, 4x4) and odd shapes that hit
# the generic path and partial (tail) strips.
SIAMRPN_SHAPES = [(29, 29, 5, 5), (24, 24, 4, 4)]
ODD_SHAPES = [(10, 12, 3, 3), (9, 17, 1, 6), (7, 7, 7, 7), (13, 11, 3, 2), (29, 29, 5, 4)]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("hw", SIAMRPN_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_strip_path_matches_numpy_on_siamrpn_shapes(host_lib, batch, dtype, hw):
    rng = np.random.default_rng(hash((batch, hw)) % 2**32)
    x, k = random_inputs(rng, batch, 256, *hw, dtype)
    out = run_host(host_lib, "strip", x, k)
    (assert_fp16_close if dtype == np.float16 else assert_fp32_close)(out, x, k)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
def test_strip_path_matches_numpy_on_random_shapes(host_lib, batch, dtype):
    rng = np.random.default_rng(7 + batch)
    for hw in ODD_SHAPES:
        c = int(rng.integers(1, 9))
        x, k = random_inputs(rng, batch, c, *hw, dtype)
        out = run_host(host_lib, "strip", x, k)
        (assert_fp16_close if dtype == np.float16 else assert_fp32_close)(out, x, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
def test_element_fallback_matches_numpy(host_lib, dtype):
    rng = np.random.default_rng(11)
    for batch, hw in [(1, (29, 29, 5, 5)), (3, (13, 11, 3, 2))]:
        x, k = random_inputs(rng, batch, 5, *hw, dtype)
        out = run_host(host_lib, "element", x, k)
        (assert_fp16_close if dtype == np.float16 else assert_fp32_close)(out, x, k)


def test_is_cross_correlation_not_convolution(host_lib):
    # Hand-computed: with k = [[1, 0], [0, -1]], out[i,j] = x[i,j] - x[i+1,j+1] = -5 for x = arange(16)
    # as 4x4 (a flipped kernel, i.e. convolution, would give +5).
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    k = np.array([[1, 0], [0, -1]], dtype=np.float32).reshape(1, 1, 2, 2)
    for path in ("strip", "element"):
        np.testing.assert_array_equal(run_host(host_lib, path, x, k), np.full((1, 1, 3, 3), -5, np.float32))


def test_each_plane_uses_its_own_kernel(host_lib):
    # Hand-computed: all-ones x and per-(n,c) constant kernels v: every output of plane (n,c) is 25*v.
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = np.ones((2, 3, 29, 29), np.float32)
    k = np.broadcast_to(values[:, :, None, None], (2, 3, 5, 5)).copy()
    out = run_host(host_lib, "strip", x, k)
    np.testing.assert_array_equal(out, np.broadcast_to(25 * values[:, :, None, None], out.shape))


@pytest.mark.parametrize("h,w,kh,kw,expected", [
    # (R, strips per plane, threads, shared bytes, uses shared memory), worked out by hand:
    # 29x29/5x5: Wo=25 -> 5 strips of 5 per row x 25 rows = 125 -> 128 threads. Rows padded to the first
    # stride >= 29 that is = 25 (mod 32), i.e. 57: (29*57 + 25 taps) * 4 B.
    (29, 29, 5, 5, (5, 125, 128, (29 * 57 + 25) * 4, 1)),
    # 24x24/4x4: Wo=21 -> 3 strips of 7 x 21 rows = 63 -> 64 threads; stride = 21 (mod 32) and >= 24: 53.
    (24, 24, 4, 4, (7, 63, 64, (24 * 53 + 16) * 4, 1)),
    # 200x200 planes need 160 KB > 48 KB of shared memory: global fallback (R, strips still reported).
    (200, 200, 5, 5, (5, 196 * 40, 256, 0, 0)),
])
def test_launch_plan_for_siamrpn_shapes(host_lib, h, w, kh, kw, expected):
    out = (ctypes.c_int32 * 5)()
    host_lib.siamrpn_xcorr_plan(h, w, kh, kw, out)
    assert tuple(out) == expected


@pytest.mark.parametrize("h,w,kh,kw,r", [(29, 29, 5, 5, 5), (24, 24, 4, 4, 7), (13, 11, 3, 2, 5)])
def test_staged_rows_make_every_warp_load_conflict_free(host_lib, h, w, kh, kw, r):
    # Shared memory has 32 four-byte banks; a warp's load is one wavefront only if its 32 lanes hit 32
    # different banks. Lane s computes strip s (row i = s // per, first column j0 = (s % per) * r) and loads
    # x[(i+u)*stride + j0 + c] for every kernel row u and window column c.
    stride = host_lib.siamrpn_xcorr_staged_stride(w, kw, r)
    ho, wo = h - kh + 1, w - kw + 1
    per = -(-wo // r)
    assert stride >= per * r + kw - 1 and stride >= w  # every read stays inside its staged row
    strips = ho * per
    for first in range(0, strips, 32):
        lanes = range(first, min(first + 32, strips))
        for u in range(kh):
            for c in range(r + kw - 1):
                banks = [((s // per + u) * stride + (s % per) * r + c) % 32 for s in lanes]
                assert len(set(banks)) == len(banks)


@pytest.mark.slow
def test_kernel_compiles_with_nvcc_for_orin_and_ada(tmp_path):
    nvcc = find_nvcc(os.environ)
    if nvcc is None:
        pytest.skip("nvcc not found (PATH, $CUDACXX, /usr/local/cuda/bin): the CUDA kernel cannot be compiled here")
    obj = tmp_path / "xcorr.o"
    proc = subprocess.run([nvcc, "-c", "-O3", "-std=c++17", "-Xcompiler", "-fPIC",
                           "-gencode=arch=compute_87,code=sm_87", "-gencode=arch=compute_89,code=sm_89",
                           str(SOURCE_DIR / "depthwise_xcorr_kernel.cu"), "-o", str(obj)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert obj.stat().st_size > 0

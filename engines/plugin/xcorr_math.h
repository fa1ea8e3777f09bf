// Index arithmetic and per-output math of the depth-wise cross-correlation, shared by the CUDA kernel
// (depthwise_xcorr_kernel.cu) and the host test build (xcorr_host_shim.cpp), so the CPU test against
// numpy checks the very code the GPU runs.
//
// Op: out[n,c,i,j] = sum_{u<kh, v<kw} x[n,c,i+u,j+v] * k[n,c,u,v]
//     x (N,C,H,W), k (N,C,kh,kw), out (N,C,H-kh+1,W-kw+1); linear NCHW; no flip, no padding, stride 1.
//
// A "plane" is one (n,c) pair: x plane H*W, kernel plane kh*kw, output plane Ho*Wo, all contiguous.
// A "strip" is R horizontally adjacent outputs of one output row; one GPU thread computes one strip so the
// R+kw-1 inputs of a kernel row are read once from shared memory for R*kw multiply-adds.
#pragma once

#include <cmath>
#include <cstdint>
#include <cuda_fp16.h>

#if defined(__CUDACC__)
#define XCORR_HD __host__ __device__ __forceinline__
#else
#define XCORR_HD inline
#endif

namespace siamrpn
{

struct XCorrShape
{
    int32_t n;  // batch
    int32_t c;  // channels
    int32_t h;  // search height
    int32_t w;  // search width
    int32_t kh; // kernel height
    int32_t kw; // kernel width

    XCORR_HD int32_t ho() const { return h - kh + 1; }
    XCORR_HD int32_t wo() const { return w - kw + 1; }
    XCORR_HD int64_t planes() const { return static_cast<int64_t>(n) * c; }
    XCORR_HD bool valid() const { return n > 0 && c > 0 && kh > 0 && kw > 0 && h >= kh && w >= kw; }
};

// Inputs are widened to float before any arithmetic: the product of two FP16 values has at most 22
// significant bits and is therefore exact in FP32, so FP16 inputs get exact products and FP32 accumulation.
XCORR_HD float toFloat(float v) { return v; }
XCORR_HD float toFloat(__half v) { return __half2float(v); }

template <typename T>
XCORR_HD T fromFloat(float v);
template <>
XCORR_HD float fromFloat<float>(float v) { return v; }
template <>
XCORR_HD __half fromFloat<__half>(float v) { return __float2half_rn(v); }

// Strips per output row for strip width R.
XCORR_HD int32_t stripsPerRow(int32_t wo, int32_t r) { return (wo + r - 1) / r; }

// Strip index s (row-major over output rows, then strips) -> output row i and first column j0.
XCORR_HD void decodeStrip(int32_t s, int32_t wo, int32_t r, int32_t& i, int32_t& j0)
{
    int32_t const per = stripsPerRow(wo, r);
    i = s / per;
    j0 = (s - i * per) * r;
}

// Row stride (in floats) of a staged x plane. Lane s of a warp computes strip s = i*per + m (per strips per
// row, j0 = m*R); its first input of kernel row u is at (i+u)*stride + m*R. With stride = per*R (mod 32)
// that address is R*s + u*stride (mod 32), so when R is odd the 32 lanes of a load hit 32 different banks
// (unpadded 29-float rows cost ~1.6 wavefronts per load). The stride also covers the last strip of a row,
// which reads R+kw-1 inputs from j0 even when fewer than R outputs are valid: those extra columns are zero
// and their results are discarded, and no read leaves its row.
XCORR_HD int32_t stagedRowStride(int32_t w, int32_t kw, int32_t r)
{
    int32_t const per = stripsPerRow(w - kw + 1, r);
    int32_t const need = (per * r + kw - 1) > w ? (per * r + kw - 1) : w;
    int32_t const target = (per * r) % 32;
    return need + ((target - need % 32) + 32) % 32;
}

// Floats one staged x plane occupies (shared memory on the GPU, scratch on the host).
XCORR_HD int32_t stagedPlaneFloats(int32_t h, int32_t w, int32_t kw, int32_t r)
{
    return h * stagedRowStride(w, kw, r);
}

// R outputs out[i, j0 .. j0+R-1] of one plane. x: staged plane (float, row stride xStride);
// k: kernel plane (float, kh*kw row-major). KH/KW > 0 fix the kernel size at compile time (full unroll,
// the kernel taps stay in registers); 0 means "use the runtime kh/kw".
template <int R, int KH, int KW>
XCORR_HD void xcorrStrip(float const* x, int32_t xStride, float const* k, int32_t kh, int32_t kw, int32_t i,
    int32_t j0, float (&acc)[R])
{
    int32_t const khEff = KH > 0 ? KH : kh;
    int32_t const kwEff = KW > 0 ? KW : kw;
#if defined(__CUDACC__)
#pragma unroll
#endif
    for (int r = 0; r < R; ++r)
    {
        acc[r] = 0.0f;
    }
#if defined(__CUDACC__)
#pragma unroll
#endif
    for (int32_t u = 0; u < khEff; ++u)
    {
        float const* row = x + static_cast<int64_t>(i + u) * xStride + j0;
#if defined(__CUDACC__)
#pragma unroll
#endif
        for (int32_t v = 0; v < kwEff; ++v)
        {
            float const tap = k[u * kwEff + v];
#if defined(__CUDACC__)
#pragma unroll
#endif
            for (int r = 0; r < R; ++r)
            {
                acc[r] = fmaf(row[r + v], tap, acc[r]);
            }
        }
    }
}

// One output out[i, j] read straight from an unstaged plane of any input type (the fallback kernel for
// planes too large for shared memory uses this).
template <typename T>
XCORR_HD float xcorrElement(T const* x, int32_t xStride, T const* k, int32_t kh, int32_t kw, int32_t i, int32_t j)
{
    float acc = 0.0f;
    for (int32_t u = 0; u < kh; ++u)
    {
        T const* row = x + static_cast<int64_t>(i + u) * xStride + j;
        for (int32_t v = 0; v < kw; ++v)
        {
            acc = fmaf(toFloat(row[v]), toFloat(k[u * kw + v]), acc);
        }
    }
    return acc;
}

// Strip width chosen for a kernel size: 5x5 on 29x29 gives 25 outputs per row = 5 strips of 5 (125 threads
// per plane); 4x4 on 24x24 gives 21 = 3 strips of 7 (63 threads). Anything else uses 5. Odd widths keep
// the staged-plane loads free of bank conflicts (see stagedRowStride).
XCORR_HD int32_t stripWidthFor(int32_t kh, int32_t kw)
{
    return (kh == 4 && kw == 4) ? 7 : 5;
}

} // namespace siamrpn

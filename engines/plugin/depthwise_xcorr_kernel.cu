// Depth-wise cross-correlation kernels, shaped for SiamRPN++'s RPN heads:
// search 29x29 (or 24x24), kernel 5x5 (or 4x4), 256 channels, batch N.
//
// Design: one block per (n,c) plane. The block stages the x plane and the kernel taps into shared memory
// as float (coalesced loads, one conversion per element), then each thread computes one strip of R
// adjacent outputs (xcorrStrip, shared with the host test build). With the kernel size fixed at compile
// time the taps sit in registers and each kernel row costs R+kw-1 shared loads for R*kw FMAs
// (5x5, R=5: 9 loads per 25 FMAs instead of 25). The staged rows are padded so a warp's loads hit 32
// distinct banks (stagedRowStride). Writes are row-major per strip.
#include "depthwise_xcorr_kernel.h"

#include <algorithm>

namespace siamrpn
{
namespace
{

template <typename T, int R, int KH, int KW>
__global__ void xcorrSharedKernel(T const* __restrict__ x, T const* __restrict__ k, T* __restrict__ out,
    XCorrShape s)
{
    extern __shared__ float smem[];
    int32_t const stride = stagedRowStride(s.w, s.kw, R);
    int32_t const staged = s.h * stride;
    int32_t const taps = s.kh * s.kw;
    int32_t const ho = s.ho();
    int32_t const wo = s.wo();
    int64_t const plane = blockIdx.x;
    float* xs = smem;
    float* ks = smem + staged;

    T const* xp = x + plane * s.h * s.w;
    T const* kp = k + plane * taps;
    for (int32_t e = threadIdx.x; e < staged; e += blockDim.x)
    {
        int32_t const row = e / stride;
        int32_t const col = e - row * stride;
        xs[e] = col < s.w ? toFloat(xp[row * s.w + col]) : 0.0f;
    }
    for (int32_t e = threadIdx.x; e < taps; e += blockDim.x)
    {
        ks[e] = toFloat(kp[e]);
    }
    __syncthreads();

    T* op = out + plane * static_cast<int64_t>(ho) * wo;
    int32_t const strips = ho * stripsPerRow(wo, R);
    for (int32_t st = threadIdx.x; st < strips; st += blockDim.x)
    {
        int32_t i;
        int32_t j0;
        decodeStrip(st, wo, R, i, j0);
        float acc[R];
        xcorrStrip<R, KH, KW>(xs, stride, ks, s.kh, s.kw, i, j0, acc);
#pragma unroll
        for (int r = 0; r < R; ++r)
        {
            if (j0 + r < wo)
            {
                op[i * wo + j0 + r] = fromFloat<T>(acc[r]);
            }
        }
    }
}

// Planes too large for shared memory: one thread per output, straight from global memory.
template <typename T>
__global__ void xcorrGlobalKernel(T const* __restrict__ x, T const* __restrict__ k, T* __restrict__ out,
    XCorrShape s)
{
    int64_t const ho = s.ho();
    int64_t const wo = s.wo();
    int64_t const total = s.planes() * ho * wo;
    for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < total;
         o += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        int64_t const plane = o / (ho * wo);
        int64_t const rem = o - plane * ho * wo;
        int32_t const i = static_cast<int32_t>(rem / wo);
        int32_t const j = static_cast<int32_t>(rem - i * wo);
        out[o] = fromFloat<T>(xcorrElement(x + plane * s.h * s.w, s.w, k + plane * s.kh * s.kw, s.kh, s.kw, i, j));
    }
}

template <typename T, int R, int KH, int KW>
cudaError_t launchShared(XCorrLaunch const& plan, T const* x, T const* k, T* out, XCorrShape const& s,
    cudaStream_t stream)
{
    // gridDim.x allows 2^31-1 blocks; N*C beyond that is rejected by the caller's shape check.
    dim3 const grid(static_cast<uint32_t>(s.planes()));
    xcorrSharedKernel<T, R, KH, KW><<<grid, plan.threads, plan.sharedBytes, stream>>>(x, k, out, s);
    return cudaGetLastError();
}

template <typename T>
cudaError_t launchTyped(T const* x, T const* k, T* out, XCorrShape const& s, cudaStream_t stream)
{
    XCorrLaunch const plan = planXCorrLaunch(s);
    if (!plan.useShared)
    {
        int64_t const total = s.planes() * s.ho() * s.wo();
        int64_t const blocks = std::min<int64_t>((total + 255) / 256, 65535);
        xcorrGlobalKernel<T><<<static_cast<uint32_t>(blocks), 256, 0, stream>>>(x, k, out, s);
        return cudaGetLastError();
    }
    if (s.kh == 5 && s.kw == 5)
    {
        return launchShared<T, 5, 5, 5>(plan, x, k, out, s, stream);
    }
    if (s.kh == 4 && s.kw == 4)
    {
        return launchShared<T, 7, 4, 4>(plan, x, k, out, s, stream);
    }
    return launchShared<T, 5, 0, 0>(plan, x, k, out, s, stream);
}

} // namespace

cudaError_t launchDepthwiseXCorr(XCorrDType dtype, void const* x, void const* k, void* out, XCorrShape const& s,
    cudaStream_t stream)
{
    if (!s.valid() || s.planes() > 0x7fffffffLL)
    {
        return cudaErrorInvalidValue;
    }
    if (dtype == XCorrDType::kFLOAT16)
    {
        return launchTyped(static_cast<__half const*>(x), static_cast<__half const*>(k), static_cast<__half*>(out),
            s, stream);
    }
    return launchTyped(static_cast<float const*>(x), static_cast<float const*>(k), static_cast<float*>(out), s,
        stream);
}

} // namespace siamrpn

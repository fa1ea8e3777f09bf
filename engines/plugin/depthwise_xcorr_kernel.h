// Launcher of the depth-wise cross-correlation CUDA kernels. Independent of TensorRT so the kernel
// translation unit compiles (and is tested) without TensorRT headers.
#pragma once

#include <cuda_runtime_api.h>

#include "xcorr_math.h"

namespace siamrpn
{

enum class XCorrDType : int32_t
{
    kFLOAT32 = 0,
    kFLOAT16 = 1,
};

// Largest staged plane (x plane + pad + kernel taps, in bytes) kept in shared memory; larger planes go to
// the global-memory fallback. 48 KiB is the per-block limit without opting in to more.
constexpr int32_t kMaxSharedBytes = 48 * 1024;

// Threads per block and how many planes a block computes, for one shape (pure: used by the launcher and
// reported by the README's floor estimate).
struct XCorrLaunch
{
    int32_t stripWidth;     // R
    int32_t stripsPerPlane; // Ho * ceil(Wo / R)
    int32_t threads;        // multiple of 32, >= stripsPerPlane unless capped at 256
    int32_t sharedBytes;    // dynamic shared memory per block
    bool useShared;         // false: global-memory fallback, one thread per output
};

inline XCorrLaunch planXCorrLaunch(XCorrShape const& s)
{
    XCorrLaunch p{};
    p.stripWidth = stripWidthFor(s.kh, s.kw);
    p.stripsPerPlane = s.ho() * stripsPerRow(s.wo(), p.stripWidth);
    int32_t const warps = (p.stripsPerPlane + 31) / 32;
    p.threads = warps < 1 ? 32 : (warps > 8 ? 256 : warps * 32);
    int64_t const bytes
        = (static_cast<int64_t>(stagedPlaneFloats(s.h, s.w, s.kw, p.stripWidth)) + s.kh * s.kw) * sizeof(float);
    p.useShared = bytes <= kMaxSharedBytes;
    p.sharedBytes = p.useShared ? static_cast<int32_t>(bytes) : 0;
    return p;
}

// Enqueue out = xcorr(x, k) on stream. Pointers are device pointers to linear NCHW tensors of dtype.
// Returns cudaSuccess or the launch error; allocates nothing.
cudaError_t launchDepthwiseXCorr(XCorrDType dtype, void const* x, void const* k, void* out, XCorrShape const& s,
    cudaStream_t stream);

} // namespace siamrpn

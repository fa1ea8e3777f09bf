// Host (CPU) build of the kernel's per-strip and per-element math, loaded by tests/test_plugin_kernel.py
// through ctypes and compared with numpy. It walks planes and strips exactly as the CUDA kernel does
// (staging into a padded float plane, same strip width, same tail masking), so the index arithmetic the
// GPU runs is the one tested here. Test-only; not part of the plugin library.
#include <cstdint>
#include <vector>

#include "depthwise_xcorr_kernel.h"

namespace
{
using siamrpn::XCorrShape;

template <typename T, int R, int KH, int KW>
void stripPath(T const* x, T const* k, T* out, XCorrShape const& s)
{
    int32_t const stride = siamrpn::stagedRowStride(s.w, s.kw, R);
    int32_t const staged = s.h * stride;
    int32_t const taps = s.kh * s.kw;
    int32_t const ho = s.ho();
    int32_t const wo = s.wo();
    std::vector<float> xs(static_cast<size_t>(staged));
    std::vector<float> ks(static_cast<size_t>(taps));
    for (int64_t plane = 0; plane < s.planes(); ++plane)
    {
        T const* xp = x + plane * s.h * s.w;
        for (int32_t e = 0; e < staged; ++e)
        {
            int32_t const row = e / stride;
            int32_t const col = e - row * stride;
            xs[e] = col < s.w ? siamrpn::toFloat(xp[row * s.w + col]) : 0.0f;
        }
        for (int32_t e = 0; e < taps; ++e)
        {
            ks[e] = siamrpn::toFloat(k[plane * taps + e]);
        }
        T* op = out + plane * static_cast<int64_t>(ho) * wo;
        int32_t const strips = ho * siamrpn::stripsPerRow(wo, R);
        for (int32_t st = 0; st < strips; ++st)
        {
            int32_t i;
            int32_t j0;
            siamrpn::decodeStrip(st, wo, R, i, j0);
            float acc[R];
            siamrpn::xcorrStrip<R, KH, KW>(xs.data(), stride, ks.data(), s.kh, s.kw, i, j0, acc);
            for (int r = 0; r < R; ++r)
            {
                if (j0 + r < wo)
                {
                    op[i * wo + j0 + r] = siamrpn::fromFloat<T>(acc[r]);
                }
            }
        }
    }
}

template <typename T>
int stripDispatch(T const* x, T const* k, T* out, XCorrShape const& s)
{
    if (!s.valid())
    {
        return 1;
    }
    int32_t const r = siamrpn::stripWidthFor(s.kh, s.kw);
    // Same specialisations as launchTyped in depthwise_xcorr_kernel.cu.
    if (s.kh == 5 && s.kw == 5 && r == 5)
    {
        stripPath<T, 5, 5, 5>(x, k, out, s);
    }
    else if (s.kh == 4 && s.kw == 4 && r == 7)
    {
        stripPath<T, 7, 4, 4>(x, k, out, s);
    }
    else if (r == 5)
    {
        stripPath<T, 5, 0, 0>(x, k, out, s);
    }
    else
    {
        return 2;
    }
    return 0;
}

template <typename T>
int elementPath(T const* x, T const* k, T* out, XCorrShape const& s)
{
    if (!s.valid())
    {
        return 1;
    }
    int64_t const ho = s.ho();
    int64_t const wo = s.wo();
    int64_t const total = s.planes() * ho * wo;
    for (int64_t o = 0; o < total; ++o)
    {
        int64_t const plane = o / (ho * wo);
        int64_t const rem = o - plane * ho * wo;
        int32_t const i = static_cast<int32_t>(rem / wo);
        int32_t const j = static_cast<int32_t>(rem - i * wo);
        out[o] = siamrpn::fromFloat<T>(
            siamrpn::xcorrElement(x + plane * s.h * s.w, s.w, k + plane * s.kh * s.kw, s.kh, s.kw, i, j));
    }
    return 0;
}

XCorrShape shapeOf(int32_t n, int32_t c, int32_t h, int32_t w, int32_t kh, int32_t kw)
{
    return XCorrShape{n, c, h, w, kh, kw};
}
} // namespace

extern "C"
{
// Shared-memory kernel path (strips). FP16 buffers are IEEE binary16 bit patterns (numpy float16).
int siamrpn_xcorr_strip_f32(float const* x, float const* k, float* out, int32_t n, int32_t c, int32_t h, int32_t w,
    int32_t kh, int32_t kw)
{
    return stripDispatch(x, k, out, shapeOf(n, c, h, w, kh, kw));
}

int siamrpn_xcorr_strip_f16(void const* x, void const* k, void* out, int32_t n, int32_t c, int32_t h, int32_t w,
    int32_t kh, int32_t kw)
{
    return stripDispatch(static_cast<__half const*>(x), static_cast<__half const*>(k), static_cast<__half*>(out),
        shapeOf(n, c, h, w, kh, kw));
}

// Global-memory fallback path (one output per thread).
int siamrpn_xcorr_element_f32(float const* x, float const* k, float* out, int32_t n, int32_t c, int32_t h,
    int32_t w, int32_t kh, int32_t kw)
{
    return elementPath(x, k, out, shapeOf(n, c, h, w, kh, kw));
}

int siamrpn_xcorr_element_f16(void const* x, void const* k, void* out, int32_t n, int32_t c, int32_t h, int32_t w,
    int32_t kh, int32_t kw)
{
    return elementPath(static_cast<__half const*>(x), static_cast<__half const*>(k), static_cast<__half*>(out),
        shapeOf(n, c, h, w, kh, kw));
}

// Row stride of the staged (shared-memory) x plane, in floats.
int32_t siamrpn_xcorr_staged_stride(int32_t w, int32_t kw, int32_t r)
{
    return siamrpn::stagedRowStride(w, kw, r);
}

// Launch plan the CUDA launcher would use: {stripWidth, stripsPerPlane, threads, sharedBytes, useShared}.
void siamrpn_xcorr_plan(int32_t h, int32_t w, int32_t kh, int32_t kw, int32_t* out5)
{
    siamrpn::XCorrLaunch const p = siamrpn::planXCorrLaunch(shapeOf(1, 1, h, w, kh, kw));
    out5[0] = p.stripWidth;
    out5[1] = p.stripsPerPlane;
    out5[2] = p.threads;
    out5[3] = p.sharedBytes;
    out5[4] = p.useShared ? 1 : 0;
}
}

// Entry points of the plugin shared library.
//
// Default build (libsiamrpn_xcorr_plugin.so): the two symbols TensorRT 10+ looks up when it loads a plugin
// library dynamically (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, polygraphy --plugins):
//   extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder*)
//   extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
// getPluginCreators is not exported: it returns IPluginCreator (the V2 creator type, deprecated in 10.0),
// and this library has only a V3 creator.
//
// With SIAMRPN_XCORR_STATIC_REGISTRATION (libsiamrpn_xcorr_plugin_static.so, for trtexec --staticPlugins or
// a plain dlopen): the creator registers itself with getPluginRegistry() when the library is loaded, which
// needs libnvinfer at link time. That variant leaves getCreators out, so the creator cannot be registered
// twice (loadLibrary fails when a creator is already registered).
#include "depthwise_xcorr_plugin.h"

#include <mutex>

// The library is built with hidden visibility; only these entry points are exported. (TensorRT's own
// TENSORRTAPI expands to nothing outside TensorRT's build.)
#define SIAMRPN_EXPORT extern "C" __attribute__((visibility("default")))

namespace siamrpn
{
namespace
{
std::mutex gLoggerMutex;
nvinfer1::ILoggerFinder* gLoggerFinder{nullptr};
} // namespace

namespace
{
void logPlugin(nvinfer1::ILogger::Severity severity, char const* message) noexcept
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    if (gLoggerFinder == nullptr)
    {
        return;
    }
    nvinfer1::ILogger* logger = gLoggerFinder->findLogger();
    if (logger != nullptr)
    {
        logger->log(severity, message);
    }
}
} // namespace

void logPluginError(char const* message) noexcept
{
    logPlugin(nvinfer1::ILogger::Severity::kERROR, message);
}

void logPluginVerbose(char const* message) noexcept
{
    logPlugin(nvinfer1::ILogger::Severity::kVERBOSE, message);
}
} // namespace siamrpn

// ILoggerFinder derives from IVersionedInterface since TensorRT 11.0, which moves findLogger from vtable slot 0
// to slot 4: a library built with 10.x headers and loaded by 11.x / TensorRT-RTX gets no logger (README.md).
SIAMRPN_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    std::lock_guard<std::mutex> lock(siamrpn::gLoggerMutex);
    if (siamrpn::gLoggerFinder == nullptr && finder != nullptr)
    {
        siamrpn::gLoggerFinder = finder;
    }
}

#if defined(SIAMRPN_XCORR_STATIC_REGISTRATION)
namespace
{
struct StaticRegistration
{
    StaticRegistration()
    {
        static siamrpn::DepthwiseXCorrPluginCreator creator;
        getPluginRegistry()->registerCreator(creator, siamrpn::kXCorrPluginNamespace);
    }
};
StaticRegistration const gStaticRegistration{};
} // namespace
#else
SIAMRPN_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static siamrpn::DepthwiseXCorrPluginCreator sCreator;
    static nvinfer1::IPluginCreatorInterface* const sCreators[] = {&sCreator};
    nbCreators = 1;
    return sCreators;
}
#endif

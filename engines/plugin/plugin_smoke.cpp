// Test-only host program: loads the plugin library the way TensorRT's loadLibrary does (dlopen + getCreators)
// and exercises every call that needs no GPU and no TensorRT library: creator identity, createPlugin for both
// phases, the capability interfaces, type/format negotiation, configurePlugin/onShapeChange shape checks,
// serialised fields and clone. Prints one "name=value" line per check; tests/test_plugin_build.py reads them.
// getOutputShapes (needs TensorRT's IExprBuilder) and enqueue (needs a GPU) are covered by the gpu tests.
#include <NvInferRuntime.h>

#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <memory>

using namespace nvinfer1;

namespace
{
DynamicPluginTensorDesc desc(DataType type, TensorFormat format, Dims dims)
{
    DynamicPluginTensorDesc d{};
    d.desc.type = type;
    d.desc.format = format;
    d.desc.dims = dims;
    d.min = dims;
    d.max = dims;
    return d;
}

Dims dims4(int64_t a, int64_t b, int64_t c, int64_t e)
{
    Dims d{};
    d.nbDims = 4;
    d.d[0] = a;
    d.d[1] = b;
    d.d[2] = c;
    d.d[3] = e;
    return d;
}

int supports(IPluginV3OneBuild* build, DataType x, DataType k, DataType o, TensorFormat f = TensorFormat::kLINEAR)
{
    DynamicPluginTensorDesc io[3] = {desc(x, f, dims4(1, 256, 29, 29)), desc(k, f, dims4(1, 256, 5, 5)),
        desc(o, f, dims4(1, 256, 25, 25))};
    int ok = 1;
    for (int pos = 0; pos < 3; ++pos)
    {
        ok = ok && build->supportsFormatCombination(pos, io, 2, 1);
    }
    return ok;
}
} // namespace

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::fprintf(stderr, "usage: %s <plugin library>\n", argv[0]);
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
    {
        std::printf("dlopen_error=%s\n", dlerror());
        return 1;
    }
    using GetCreators = IPluginCreatorInterface* const* (*) (int32_t&);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    std::printf("has_getCreators=%d\n", getCreators != nullptr);
    std::printf("has_setLoggerFinder=%d\n", dlsym(lib, "setLoggerFinder") != nullptr);
    if (getCreators == nullptr)
    {
        return 1;
    }
    int32_t nb = 0;
    IPluginCreatorInterface* const* creators = getCreators(nb);
    std::printf("nb_creators=%d\n", nb);
    std::printf("creator_interface=%s\n", creators[0]->getInterfaceInfo().kind);
    auto* creator = static_cast<IPluginCreatorV3One*>(creators[0]);
    std::printf("name=%s\nversion=%s\nnamespace=%s\n", creator->getPluginName(), creator->getPluginVersion(),
        creator->getPluginNamespace());
    std::printf("creator_fields=%d\n", creator->getFieldNames()->nbFields);

    // The ONNX parser forwards node attributes as fields; an unknown one must be accepted.
    char const ns[] = "siamrpn";
    PluginField field("plugin_namespace", ns, PluginFieldType::kCHAR, static_cast<int32_t>(sizeof(ns)));
    PluginFieldCollection fc{1, &field};
    std::unique_ptr<IPluginV3> plugin(creator->createPlugin("xcorr", &fc, TensorRTPhase::kBUILD));
    std::unique_ptr<IPluginV3> runtimePlugin(creator->createPlugin("xcorr", nullptr, TensorRTPhase::kRUNTIME));
    std::printf("created=%d\ncreated_runtime=%d\n", plugin != nullptr, runtimePlugin != nullptr);
    if (!plugin)
    {
        return 1;
    }
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* rt = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    std::printf("core_kind=%s\nbuild_kind=%s\nruntime_kind=%s\n", core->getInterfaceInfo().kind,
        build->getInterfaceInfo().kind, rt->getInterfaceInfo().kind);
    std::printf("core_name=%s\ncore_namespace=%s\n", core->getPluginName(), core->getPluginNamespace());
    std::printf("nb_outputs=%d\n", build->getNbOutputs());

    std::printf("supports_fp32=%d\n", supports(build, DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT));
    std::printf("supports_fp16=%d\n", supports(build, DataType::kHALF, DataType::kHALF, DataType::kHALF));
    std::printf("supports_mixed=%d\n", supports(build, DataType::kHALF, DataType::kFLOAT, DataType::kHALF));
    std::printf("supports_int8=%d\n", supports(build, DataType::kINT8, DataType::kINT8, DataType::kINT8));
    std::printf("supports_chw4=%d\n",
        supports(build, DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT, TensorFormat::kCHW4));

    DataType inTypes[2] = {DataType::kHALF, DataType::kHALF};
    DataType outType = DataType::kFLOAT;
    int32_t const rc = build->getOutputDataTypes(&outType, 1, inTypes, 2);
    std::printf("output_type_rc=%d\noutput_type_is_half=%d\n", rc, outType == DataType::kHALF);

    DynamicPluginTensorDesc good[2] = {desc(DataType::kFLOAT, TensorFormat::kLINEAR, dims4(-1, 256, 29, 29)),
        desc(DataType::kFLOAT, TensorFormat::kLINEAR, dims4(-1, 256, 5, 5))};
    DynamicPluginTensorDesc out[1] = {desc(DataType::kFLOAT, TensorFormat::kLINEAR, dims4(-1, 256, 25, 25))};
    DynamicPluginTensorDesc badC[2] = {good[0], desc(DataType::kFLOAT, TensorFormat::kLINEAR, dims4(-1, 128, 5, 5))};
    DynamicPluginTensorDesc bigK[2] = {good[0], desc(DataType::kFLOAT, TensorFormat::kLINEAR, dims4(-1, 256, 31, 5))};
    std::printf("configure_dynamic_batch=%d\n", build->configurePlugin(good, 2, out, 1));
    std::printf("configure_channel_mismatch=%d\n", build->configurePlugin(badC, 2, out, 1));
    std::printf("configure_kernel_too_big=%d\n", build->configurePlugin(bigK, 2, out, 1));

    PluginTensorDesc runIn[2] = {good[0].desc, good[1].desc};
    runIn[0].dims = dims4(3, 256, 29, 29);
    runIn[1].dims = dims4(3, 256, 5, 5);
    PluginTensorDesc runOut[1] = {out[0].desc};
    runOut[0].dims = dims4(3, 256, 25, 25);
    std::printf("shape_change_ok=%d\n", rt->onShapeChange(runIn, 2, runOut, 1));
    runIn[1].dims = dims4(1, 256, 5, 5);
    std::printf("shape_change_batch_mismatch=%d\n", rt->onShapeChange(runIn, 2, runOut, 1));

    std::printf("serialized_fields=%d\n", rt->getFieldsToSerialize()->nbFields);
    std::unique_ptr<IPluginV3> copy(plugin->clone());
    std::unique_ptr<IPluginV3> attached(rt->attachToContext(nullptr));
    std::printf("clone_ok=%d\nattach_ok=%d\n", copy != nullptr && copy.get() != plugin.get(), attached != nullptr);
    return 0;
}

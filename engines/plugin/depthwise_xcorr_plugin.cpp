// DepthwiseXCorr IPluginV3: shape inference, format negotiation and the enqueue that launches the kernel in
// depthwise_xcorr_kernel.cu. See depthwise_xcorr_plugin.h for the op contract.
#include "depthwise_xcorr_plugin.h"

#include "depthwise_xcorr_kernel.h"

#include <cstdint>
#include <cstdio>
#include <limits>
#include <new>

using nvinfer1::DataType;
using nvinfer1::DimensionOperation;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::IExprBuilder;
using nvinfer1::IPluginCapability;
using nvinfer1::IPluginV3;
using nvinfer1::PluginCapabilityType;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;

namespace siamrpn
{
namespace
{
constexpr int32_t kNbInputs = 2;
constexpr int32_t kNbOutputs = 1;
constexpr int32_t kRank = 4;

bool isSupportedType(DataType t)
{
    return t == DataType::kFLOAT || t == DataType::kHALF;
}

bool fitsInt32(int64_t v)
{
    return v >= 0 && v <= std::numeric_limits<int32_t>::max();
}

// Both inputs of rank 4 with equal N and C (where known) and a kernel no larger than the search map.
// Dimensions of -1 are dynamic at build time and are checked again in onShapeChange.
bool compatibleDims(nvinfer1::Dims const& x, nvinfer1::Dims const& k)
{
    if (x.nbDims != kRank || k.nbDims != kRank)
    {
        return false;
    }
    for (int32_t d = 0; d < 2; ++d)
    {
        if (x.d[d] >= 0 && k.d[d] >= 0 && x.d[d] != k.d[d])
        {
            return false;
        }
    }
    for (int32_t d = 2; d < kRank; ++d)
    {
        if (x.d[d] >= 0 && k.d[d] >= 0 && k.d[d] > x.d[d])
        {
            return false;
        }
    }
    return true;
}

// ---- verbose call log (build time only; enqueue never logs) ----

char const* typeName(DataType t)
{
    switch (t)
    {
    case DataType::kFLOAT: return "float32";
    case DataType::kHALF: return "float16";
    case DataType::kINT8: return "int8";
    case DataType::kINT32: return "int32";
    default: return "other";
    }
}

char const* formatName(TensorFormat f)
{
    return f == TensorFormat::kLINEAR ? "linear" : "non-linear";
}

// "(N, C, H, W)" with -1 for a dynamic dimension.
void formatDims(char* out, size_t size, nvinfer1::Dims const& d)
{
    int used = std::snprintf(out, size, "(");
    for (int32_t i = 0; i < d.nbDims && used > 0 && static_cast<size_t>(used) < size; ++i)
    {
        used += std::snprintf(out + used, size - used, i == 0 ? "%lld" : ", %lld", static_cast<long long>(d.d[i]));
    }
    if (used > 0 && static_cast<size_t>(used) < size)
    {
        std::snprintf(out + used, size - used, ")");
    }
}

// "(?, 4, 11, 11)": constants as numbers, anything decided at run time as "?".
void formatExprs(char* out, size_t size, DimsExprs const& d)
{
    int used = std::snprintf(out, size, "(");
    for (int32_t i = 0; i < d.nbDims && used > 0 && static_cast<size_t>(used) < size; ++i)
    {
        char const* sep = i == 0 ? "" : ", ";
        bool const known = d.d[i] != nullptr && d.d[i]->isConstant();
        used += known ? std::snprintf(out + used, size - used, "%s%lld", sep,
                            static_cast<long long>(d.d[i]->getConstantValue()))
                      : std::snprintf(out + used, size - used, "%s?", sep);
    }
    if (used > 0 && static_cast<size_t>(used) < size)
    {
        std::snprintf(out + used, size - used, ")");
    }
}
} // namespace

// ---- IPluginV3 ----

IPluginCapability* DepthwiseXCorrPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* DepthwiseXCorrPlugin::clone() noexcept
{
    auto* copy = new (std::nothrow) DepthwiseXCorrPlugin(*this);
    if (copy == nullptr)
    {
        logPluginError("DepthwiseXCorr: out of host memory while cloning the plugin");
    }
    return copy;
}

// ---- IPluginV3OneCore ----

char const* DepthwiseXCorrPlugin::getPluginName() const noexcept
{
    return kXCorrPluginName;
}

char const* DepthwiseXCorrPlugin::getPluginVersion() const noexcept
{
    return kXCorrPluginVersion;
}

char const* DepthwiseXCorrPlugin::getPluginNamespace() const noexcept
{
    return kXCorrPluginNamespace;
}

// ---- IPluginV3OneBuild ----

int32_t DepthwiseXCorrPlugin::getNbOutputs() const noexcept
{
    return kNbOutputs;
}

int32_t DepthwiseXCorrPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || !isSupportedType(inputTypes[0])
        || inputTypes[1] != inputTypes[0])
    {
        logPluginError("DepthwiseXCorr: expected 2 inputs of one type (float32 or float16) and 1 output");
        return -1;
    }
    outputTypes[0] = inputTypes[0];
    char line[160];
    std::snprintf(line, sizeof(line), "DepthwiseXCorr getOutputDataTypes: inputs %s, %s -> output %s",
        typeName(inputTypes[0]), typeName(inputTypes[1]), typeName(outputTypes[0]));
    logPluginVerbose(line);
    return 0;
}

int32_t DepthwiseXCorrPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
    DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
    IExprBuilder& exprBuilder) noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || inputs[0].nbDims != kRank || inputs[1].nbDims != kRank)
    {
        logPluginError("DepthwiseXCorr: expected inputs x (N,C,H,W) and k (N,C,h,w)");
        return -1;
    }
    DimsExprs const& x = inputs[0];
    DimsExprs const& k = inputs[1];
    nvinfer1::IDimensionExpr const* one = exprBuilder.constant(1);
    outputs[0].nbDims = kRank;
    outputs[0].d[0] = x.d[0];
    outputs[0].d[1] = x.d[1];
    for (int32_t d = 2; d < kRank; ++d)
    {
        // H - h + 1 (and W - w + 1): valid cross-correlation, stride 1, no padding.
        nvinfer1::IDimensionExpr const* diff = exprBuilder.operation(DimensionOperation::kSUB, *x.d[d], *k.d[d]);
        if (diff == nullptr || one == nullptr)
        {
            return -1;
        }
        outputs[0].d[d] = exprBuilder.operation(DimensionOperation::kSUM, *diff, *one);
    }
    char xs[96], ks[96], os[96], line[360];
    formatExprs(xs, sizeof(xs), x);
    formatExprs(ks, sizeof(ks), k);
    formatExprs(os, sizeof(os), outputs[0]);
    std::snprintf(line, sizeof(line), "DepthwiseXCorr getOutputShapes: x %s, k %s -> output %s", xs, ks, os);
    logPluginVerbose(line);
    return 0;
}

bool DepthwiseXCorrPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= kNbInputs + kNbOutputs)
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    // Linear only; position 0 chooses the type, the kernel and the output follow it.
    bool const accepted = desc.format == TensorFormat::kLINEAR
        && (pos == 0 ? isSupportedType(desc.type) : desc.type == inOut[0].desc.type);
    char line[160];
    std::snprintf(line, sizeof(line), "DepthwiseXCorr supportsFormatCombination: position %d %s %s -> %s",
        static_cast<int>(pos), typeName(desc.type), formatName(desc.format), accepted ? "accepted" : "rejected");
    logPluginVerbose(line);
    return accepted;
}

int32_t DepthwiseXCorrPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || !compatibleDims(in[0].desc.dims, in[1].desc.dims))
    {
        logPluginError("DepthwiseXCorr: x and k must be rank 4 with equal N and C, and k no larger than x");
        return -1;
    }
    char xs[96], ks[96], line[320];
    formatDims(xs, sizeof(xs), in[0].desc.dims);
    formatDims(ks, sizeof(ks), in[1].desc.dims);
    std::snprintf(line, sizeof(line), "DepthwiseXCorr configurePlugin: x %s %s %s, k %s %s %s",
        typeName(in[0].desc.type), formatName(in[0].desc.format), xs, typeName(in[1].desc.type),
        formatName(in[1].desc.format), ks);
    logPluginVerbose(line);
    return 0;
}

size_t DepthwiseXCorrPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0;
}

// ---- IPluginV3OneRuntime ----

int32_t DepthwiseXCorrPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || !compatibleDims(in[0].dims, in[1].dims))
    {
        logPluginError("DepthwiseXCorr: runtime shapes of x and k are incompatible");
        return -1;
    }
    return 0;
}

int32_t DepthwiseXCorrPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    nvinfer1::Dims const& x = inputDesc[0].dims;
    nvinfer1::Dims const& k = inputDesc[1].dims;
    for (int32_t d = 0; d < kRank; ++d)
    {
        if (!fitsInt32(x.d[d]) || !fitsInt32(k.d[d]))
        {
            logPluginError("DepthwiseXCorr: a dimension does not fit in int32");
            return -1;
        }
    }
    XCorrShape const shape{static_cast<int32_t>(x.d[0]), static_cast<int32_t>(x.d[1]), static_cast<int32_t>(x.d[2]),
        static_cast<int32_t>(x.d[3]), static_cast<int32_t>(k.d[2]), static_cast<int32_t>(k.d[3])};
    if (x.d[0] != k.d[0] || x.d[1] != k.d[1] || !shape.valid())
    {
        logPluginError("DepthwiseXCorr: x and k disagree on N or C, or k is larger than x");
        return -1;
    }
    XCorrDType const dtype = inputDesc[0].type == DataType::kHALF ? XCorrDType::kFLOAT16 : XCorrDType::kFLOAT32;
    cudaError_t const err = launchDepthwiseXCorr(dtype, inputs[0], inputs[1], outputs[0], shape, stream);
    if (err != cudaSuccess)
    {
        logPluginError(cudaGetErrorString(err));
        return -1;
    }
    return 0;
}

IPluginV3* DepthwiseXCorrPlugin::attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept
{
    // Stateless: no per-context resources, so each context gets a plain copy.
    return clone();
}

PluginFieldCollection const* DepthwiseXCorrPlugin::getFieldsToSerialize() noexcept
{
    return &mFieldsToSerialize;
}

// ---- Creator ----

char const* DepthwiseXCorrPluginCreator::getPluginName() const noexcept
{
    return kXCorrPluginName;
}

char const* DepthwiseXCorrPluginCreator::getPluginVersion() const noexcept
{
    return kXCorrPluginVersion;
}

char const* DepthwiseXCorrPluginCreator::getPluginNamespace() const noexcept
{
    return kXCorrPluginNamespace;
}

PluginFieldCollection const* DepthwiseXCorrPluginCreator::getFieldNames() noexcept
{
    return &mFieldNames;
}

IPluginV3* DepthwiseXCorrPluginCreator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* /*fc*/, nvinfer1::TensorRTPhase /*phase*/) noexcept
{
    // Fields are ignored on purpose: the op has no attributes, and the ONNX parser may forward node
    // attributes such as plugin_namespace.
    auto* plugin = new (std::nothrow) DepthwiseXCorrPlugin();
    if (plugin == nullptr)
    {
        logPluginError("DepthwiseXCorr: out of host memory while creating the plugin");
    }
    return plugin;
}

} // namespace siamrpn

// TensorRT IPluginV3 for siamrpn::DepthwiseXCorr (name "DepthwiseXCorr", version "1", namespace "siamrpn").
// TensorRT's ONNX parser looks a creator up as (op type, node attribute plugin_version, default "1", node
// attribute plugin_namespace, default ""); 10.0-10.3 never try the node's domain. The export stage therefore
// writes plugin_namespace="siamrpn" and plugin_version="1" on every DepthwiseXCorr node (runtime/contract.py
// XCORR_NODE_ATTRIBUTES), and tests compare those with the constants below.
//
// Inputs  0: x (N, C, H, W)   float32 or float16, linear NCHW
//         1: k (N, C, kh, kw) same type
// Output  0: (N, C, H-kh+1, W-kw+1), same type.
// No plugin fields: getFieldNames is empty, so the parser forwards none of the node's attributes (plugin_namespace
// and plugin_version only select the creator); fields passed anyway are ignored.
// Written against TensorRT 10.3 .. 11.x headers (the V3 interfaces are identical across that range). Build it
// against the headers of the TensorRT that loads it: ILoggerFinder's vtable changed in 11.0 (README.md).
#pragma once

#include <NvInferRuntime.h>

#include <string>
#include <vector>

namespace siamrpn
{

constexpr char const* kXCorrPluginName = "DepthwiseXCorr";
constexpr char const* kXCorrPluginVersion = "1";
constexpr char const* kXCorrPluginNamespace = "siamrpn";

class DepthwiseXCorrPlugin final : public nvinfer1::IPluginV3,
                                   public nvinfer1::IPluginV3OneCore,
                                   public nvinfer1::IPluginV3OneBuild,
                                   public nvinfer1::IPluginV3OneRuntime
{
public:
    DepthwiseXCorrPlugin() = default;
    DepthwiseXCorrPlugin(DepthwiseXCorrPlugin const&) = default;
    ~DepthwiseXCorrPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    // No serialised fields: the op has no attributes and every size is read from the tensor descriptors.
    nvinfer1::PluginFieldCollection mFieldsToSerialize{0, nullptr};
};

class DepthwiseXCorrPluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    DepthwiseXCorrPluginCreator() = default;
    ~DepthwiseXCorrPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    nvinfer1::PluginFieldCollection mFieldNames{0, nullptr};
};

// Log through the ILogger that TensorRT handed to setLoggerFinder (silent when none was given). The build-time
// methods log each call at kVERBOSE (TensorRT's verbose log shows how it negotiated types, formats and shapes).
void logPluginError(char const* message) noexcept;
void logPluginVerbose(char const* message) noexcept;

} // namespace siamrpn

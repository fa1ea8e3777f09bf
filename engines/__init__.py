"""Engine stage: TensorRT (10.3 .. 11.x) and TensorRT-RTX engines from the exported ONNX variants.

trt_compat (which product, what it can do), plan (pure build decisions), build (the TensorRT calls and
the ``python -m engines.build`` CLI), selfcheck (engines against ONNX Runtime on recorded inputs).
"""

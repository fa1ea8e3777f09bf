"""Light runtime: numpy tracker math, backends (ONNX Runtime, TensorRT, PyTorch) behind one interface.

Importing this package never imports torch, TensorRT or onnx; each backend imports its library itself.
"""

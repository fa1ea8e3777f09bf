"""Calibration stage: record crops as the FP32 tracker sees them, then make INT8 Q/DQ graphs from them.

``collect`` records template/search crops and the template kernels that go with each search crop into
``.npz`` shards plus a ``manifest.json``; ``feeds`` turns shards into ``{input_name: array}`` dicts;
``quantize`` inserts Q/DQ pairs (TensorRT explicit quantization) from calibrated ranges; ``cpu_int8``
places them for ONNX Runtime's CPU integer kernels instead (``*.int8.cpu.onnx``); ``report``
measures what each precision costs against the FP32 tracker.
"""
from runtime.errors import SiamTrackError


class CalibrationError(SiamTrackError):
    """A calibration set or a graph that cannot be calibrated or quantized as asked."""

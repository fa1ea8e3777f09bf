"""A few dozen lines around cuda-python: pinned host and device buffers, a stream, async copies,
CUDA-graph capture, and errors that name the CUDA call.

Every CUDA failure becomes ``BackendUnavailable`` (a SiamTrackError) with the call and CUDA's own
message. Works with cuda-python >= 12 in either layout (``cuda.bindings.runtime`` from 12.6, the older
``cuda.cudart`` that JetPack 6 ships). Nothing here runs at import time.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from runtime.errors import BackendUnavailable

# Counts cudaMalloc / cudaMallocHost calls so tests can prove steady-state frames allocate nothing.
ALLOCATIONS = {"device": 0, "pinned": 0}


@functools.lru_cache(maxsize=1)
def cudart():
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        try:
            from cuda import cudart as rt
        except ImportError:
            raise BackendUnavailable("cuda-python is not installed; the TensorRT backend needs it for "
                                     "memory and streams: pip install cuda-python") from None
    return rt


def check(result, call: str):
    """Unpack a cuda-python ``(err, *values)`` tuple; raise BackendUnavailable naming ``call`` on error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        _, text = cudart().cudaGetErrorString(err)
        name = getattr(err, "name", str(int(err)))
        raise BackendUnavailable(f"CUDA call {call} failed: {name}: {text.decode(errors='replace')}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_identity(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of ``device``; raises when there is no GPU."""
    prop = check(cudart().cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}"


def device_is_integrated(device: int = 0) -> bool:
    """True for a GPU that shares system memory with the CPU (Jetson): there cudaMemGetInfo's free
    memory moves with every host allocation, so it cannot show that the GPU side allocated nothing."""
    prop = check(cudart().cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    return bool(prop.integrated)


class Stream:
    """One non-blocking CUDA stream (graph capture needs a non-default stream)."""

    def __init__(self):
        rt = cudart()
        self.handle = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def synchronize(self) -> None:
        check(cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            check(cudart().cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None


class DeviceBuffer:
    """``nbytes`` of device memory; ``ptr`` is the address TensorRT binds."""

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        self.ptr = int(check(cudart().cudaMalloc(max(self.nbytes, 1)), "cudaMalloc"))
        ALLOCATIONS["device"] += 1

    def close(self) -> None:
        if self.ptr:
            check(cudart().cudaFree(self.ptr), "cudaFree")
            self.ptr = 0


class PinnedArray:
    """A page-locked host ndarray of ``shape`` / ``dtype`` (``.array``), for truly async copies."""

    def __init__(self, shape: tuple[int, ...], dtype=np.float32):
        dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * dtype.itemsize
        self.ptr = int(check(cudart().cudaMallocHost(max(self.nbytes, 1)), "cudaMallocHost"))
        ALLOCATIONS["pinned"] += 1
        raw = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=dtype).reshape(shape)

    def close(self) -> None:
        if self.ptr:
            self.array = None
            check(cudart().cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0


def copy_htod(dst: DeviceBuffer, src: PinnedArray, nbytes: int, stream: Stream) -> None:
    rt = cudart()
    check(rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                             stream.handle), "cudaMemcpyAsync(host->device)")


def copy_dtoh(dst: PinnedArray, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
    rt = cudart()
    check(rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                             stream.handle), "cudaMemcpyAsync(device->host)")


def _discard_capture(rt, stream: Stream) -> None:
    """End a capture that failed, so the stream is usable again, and destroy the (partial) graph
    cudaStreamEndCapture hands back: it is ours to free even though it will never run."""
    result = rt.cudaStreamEndCapture(stream.handle)
    graph = result[1] if isinstance(result, tuple) and len(result) > 1 else None
    if graph is not None and int(graph) != 0:
        rt.cudaGraphDestroy(graph)
    rt.cudaGetLastError()  # clear the sticky capture error so the next plain run is not blamed for it


class CudaGraph:
    """A captured, instantiated CUDA graph replayed with ``launch``."""

    def __init__(self, graph, graph_exec):
        self.graph, self.graph_exec = graph, graph_exec

    @classmethod
    def capture(cls, stream: Stream, work) -> "CudaGraph":
        """Record everything ``work()`` enqueues on ``stream``; a failure ends the capture and raises."""
        rt = cudart()
        check(rt.cudaStreamBeginCapture(stream.handle, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
              "cudaStreamBeginCapture")
        try:
            work()
        except BaseException:
            _discard_capture(rt, stream)
            raise
        graph = check(rt.cudaStreamEndCapture(stream.handle), "cudaStreamEndCapture")
        try:
            graph_exec = check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        except BackendUnavailable:
            rt.cudaGraphDestroy(graph)
            raise
        return cls(graph, graph_exec)

    def launch(self, stream: Stream) -> None:
        check(cudart().cudaGraphLaunch(self.graph_exec, stream.handle), "cudaGraphLaunch")

    def close(self) -> None:
        if self.graph_exec is not None:
            cudart().cudaGraphExecDestroy(self.graph_exec)
            cudart().cudaGraphDestroy(self.graph)
            self.graph_exec = self.graph = None

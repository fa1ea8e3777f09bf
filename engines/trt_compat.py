"""Which TensorRT is installed, and what its builder can do: the one place in the build stage where
product and version differences are handled, each by probing for the capability, not by version tables.

Supported: TensorRT 10.3 (JetPack 6.1) to 11.x (module ``tensorrt``) and TensorRT-RTX (``tensorrt_rtx``, 1.x);
older TensorRT is refused with that message (``runtime.backends.trt.version_problem``).
Facts this module relies on (docs.nvidia.com/deeplearning/tensorrt, tensorrt-rtx):
- strongly typed networks: opt-in ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` on 10.x, always on
  in 11.x where the flag is accepted and ignored; RTX accepts it too. Precision comes from the graph.
- TensorRT times kernels on the GPU while building, so it needs one; TensorRT-RTX's AOT phase does not.
- TensorRT-RTX: a timing cache forces the AOT step to look for a GPU and has no effect on its engines
  (RTX 1.1 release notes), and its Python network has no ``add_plugin_v3``; its ONNX parser does add
  plugin layers, in a process that can dlopen ``libtensorrt_rtx.so`` (engines/plugin/README.md).
The runtime side (product import, plugin library loading) lives in ``runtime.backends.trt`` because the
runtime may not import this stage; it is re-exported here so the builder uses the same code.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from runtime.backends.trt import import_product, load_plugin_library, product_logger, version_problem
from runtime.engine_meta import PRODUCTS, RTX_DEFAULT_TARGETS
from runtime.errors import BackendUnavailable

# Products that compile ahead of time on the CPU, without a GPU (TensorRT-RTX's AOT phase).
_AOT_PRODUCTS = {"tensorrt_rtx"}


@dataclass(frozen=True)
class Toolkit:
    """What the installed TensorRT product offers, as plain data (the build planner's input).

    product: "tensorrt" | "tensorrt_rtx" | None (nothing importable); version: its ``__version__``.
    builds_without_gpu: True for an AOT builder. plugins: the network can hold plugin layers, so the
    custom-op ("plugin") flavour can be built. timing_cache: a persistent timing cache speeds up rebuilds.
    missing: why no product could be imported (when product is None).
    """

    product: str | None
    version: str = ""
    builds_without_gpu: bool = False
    plugins: bool = False
    timing_cache: bool = False
    missing: str = ""


class TrtApi:
    """The imported module plus thin, capability-checked helpers used by ``engines.build``."""

    def __init__(self, module, product: str):
        self.trt, self.product, self.version = module, product, str(module.__version__)
        problem = version_problem(product, self.version)
        if problem:
            raise BackendUnavailable(problem)

    def toolkit(self) -> Toolkit:
        trt = self.trt
        return Toolkit(
            product=self.product, version=self.version,
            builds_without_gpu=self.product in _AOT_PRODUCTS,
            plugins=hasattr(trt.INetworkDefinition, "add_plugin_v3"),
            timing_cache=hasattr(trt.IBuilderConfig, "create_timing_cache") and self.product not in _AOT_PRODUCTS,
        )

    def load_plugin_library(self, path):
        """Register a plugin library's creators before parsing (the runtime loads it the same way)."""
        return load_plugin_library(self.trt, path)

    def logger(self, verbose: bool = False):
        """The product's one process-wide logger (runtime.backends.trt.product_logger)."""
        return product_logger(self.trt, verbose)

    def network_flags(self) -> int:
        """Flags for a strongly typed network; 0 where strong typing is the only mode and the flag is gone."""
        flag = getattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        return 0 if flag is None else 1 << int(flag)

    def is_strongly_typed(self, network) -> bool:
        """True when ``network`` honours the graph's types. Where weak typing no longer exists (no
        precision builder flags: TensorRT 11, TensorRT-RTX) every network is strongly typed, whatever
        the deprecated flag reports."""
        flag = getattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        return strongly_typed(has_flag=flag is not None, has_precision_flags=hasattr(self.trt.BuilderFlag, "FP16"),
                              flag_set=flag is not None and bool(network.get_flag(flag)))

    def set_workspace(self, config, nbytes: int) -> None:
        config.set_memory_pool_limit(self.trt.MemoryPoolType.WORKSPACE, int(nbytes))

    def set_optimization_level(self, config, level: int) -> bool:
        """Set the builder optimisation level (0..5); False where the builder has no such setting."""
        if not hasattr(config, "builder_optimization_level"):
            return False
        config.builder_optimization_level = int(level)
        return True

    def set_compute_targets(self, config, targets: tuple[str, ...]) -> tuple[str, ...]:
        """AOT targets (e.g. ("8.6",)) for a TensorRT-RTX build; returns what the engine will run on."""
        if self.product not in _AOT_PRODUCTS:
            return ()
        if not targets:
            return RTX_DEFAULT_TARGETS
        enum = self.trt.ComputeCapability
        members = [getattr(enum, "SM" + t.replace(".", ""), None) for t in targets]
        unknown = [t for t, m in zip(targets, members) if m is None]
        if unknown:
            known = sorted(k[2:] for k in enum.__members__ if k.startswith("SM"))
            raise BackendUnavailable(f"{self.product} {self.version} cannot target compute capability "
                                     f"{', '.join(unknown)}; it knows SM {', '.join(known)}")
        config.num_compute_capabilities = len(members)
        for i, member in enumerate(members):
            config.set_compute_capability(member, i)
        return tuple(targets)

    def attach_timing_cache(self, config, blob: bytes):
        """Load a serialized timing cache (empty bytes: a new one) into ``config``; None if unsupported."""
        if not self.toolkit().timing_cache:
            return None
        cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(cache, ignore_mismatch=False) and blob:
            cache = config.create_timing_cache(b"")  # unusable old cache: start a new one, overwrite it later
            config.set_timing_cache(cache, ignore_mismatch=False)
        return cache

    def serialize_timing_cache(self, config) -> bytes | None:
        if not self.toolkit().timing_cache:
            return None
        cache = config.get_timing_cache()
        return None if cache is None else bytes(memoryview(cache.serialize()))

    def dtype_name(self, dtype) -> str:
        """numpy's name for a TensorRT DataType ("float32", "float16", "int8"), else TensorRT's own."""
        import numpy as np

        try:
            return np.dtype(self.trt.nptype(dtype)).name
        except (TypeError, KeyError):
            return str(dtype).split(".")[-1].lower()


def strongly_typed(has_flag: bool, has_precision_flags: bool, flag_set: bool) -> bool:
    """Does a network honour the graph's types? Where the FP16/INT8 builder flags exist (TensorRT 8.x-10.x)
    weak typing exists too, and only a network created with STRONGLY_TYPED is strongly typed; a TensorRT
    without that flag (8.6) never is. Without precision flags (TensorRT 11, TensorRT-RTX) every network is."""
    if not has_precision_flags:
        return True
    return has_flag and flag_set


def load(product: str | None = None) -> TrtApi:
    """Import ``product``, or with None the first importable of tensorrt, tensorrt_rtx."""
    if product is not None:
        return TrtApi(import_product(product), product)
    problems = []
    for name in PRODUCTS:
        try:
            return TrtApi(importlib.import_module(name), name)
        except (ImportError, BackendUnavailable) as exc:  # not installed, or a version we do not support
            problems.append(f"{name}: {exc}")
    raise BackendUnavailable("no TensorRT Python module can be imported (" + "; ".join(problems) + "). "
                             "On Jetson, TensorRT comes with JetPack; on a desktop install TensorRT, or "
                             "`pip install tensorrt-rtx-cu12` for TensorRT-RTX ahead-of-time engines.")


def probe(product: str | None = None) -> Toolkit:
    """What is installed, without raising: Toolkit(product=None, missing=...) when nothing is."""
    try:
        return load(product).toolkit()
    except BackendUnavailable as exc:
        return Toolkit(product=None, missing=str(exc))

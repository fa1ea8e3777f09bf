"""The one interface every inference backend implements.

A backend turns template crops into per-target correlation kernels, and search crops plus those
kernels into the raw head outputs. It knows nothing about boxes, anchors or frames: that is the
tracker's job (``runtime.tracker``), shared by every backend.

Subclasses implement ``_template_impl`` and ``_search_impl``; the public methods validate names, shapes
and dtypes once here, so a bad array never reaches ONNX Runtime (where an error inside a Python custom
op aborts the process) or TensorRT.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from runtime.contract import ModelSpec, TrackerConfig
from runtime.errors import ContractError, InputError


class Kernels:
    """Per-target template kernels as returned by ``run_template``; opaque to the tracker.

    ``arrays`` is a tuple in ``spec.kernel_names`` order, each (N, C, k, k) float32, when the backend
    keeps them on the host. A device backend may keep them on the GPU instead and set ``arrays`` to
    None; then ``device`` holds whatever handle it needs. ``n`` is the number of targets.
    """

    __slots__ = ("n", "arrays", "device")

    def __init__(self, n: int, arrays: tuple[np.ndarray, ...] | None = None, device: Any = None):
        self.n = n
        self.arrays = arrays
        self.device = device


class Backend(ABC):
    """Inference for one exported model.

    Attributes set by subclasses: ``name`` (short id, e.g. "onnxruntime"), ``spec`` (ModelSpec),
    ``tracker_config`` (TrackerConfig, from the model's config or the graph metadata),
    ``max_batch`` (largest N accepted, or None for no limit), ``lost_unavailable`` (why the export's large
    search graph is not running here and what to do, for the error on the lost crop; "" otherwise).
    """

    name: str = "backend"
    spec: ModelSpec
    tracker_config: TrackerConfig
    max_batch: int | None = None
    lost_unavailable: str = ""

    def run_template(self, crops: np.ndarray) -> Kernels:
        """crops: (N, 3, E, E) float32, BGR 0..255 -> Kernels for those N targets."""
        self._check_batch(crops, self.spec.template_shape, "template crops")
        return self._template_impl(crops)

    def run_search(self, crops: np.ndarray, kernels: Kernels) -> tuple[np.ndarray, np.ndarray]:
        """crops: (N, 3, X, X) float32 BGR 0..255 -> (cls (N, 2A, S, S), loc (N, 4A, S, S)) float32.

        X is ``spec.instance_size``, or ``spec.lost_instance_size`` (the long-term tracker's large crop,
        S = ``spec.lost_score_size``) when the export has a large search graph. The returned arrays
        belong to the caller (a backend that reuses output buffers copies them).
        """
        side = crops.shape[-1] if isinstance(crops, np.ndarray) and crops.ndim == 4 else None
        if side is not None and side > self.spec.instance_size and not self.spec.lost_instance_size:
            # a larger crop than the model's is the long-term tracker asking for its lost-state search
            if self.lost_unavailable:   # the backend found one, unusable or missing for this variant
                raise ContractError(f"{self.name}: search crops of {side} px need the long-term (lost) search "
                                    f"graph: {self.lost_unavailable}")
            raise ContractError(
                f"{self.name}: search crops of {side} px need the long-term (lost) search graph, which "
                f"this export does not have (it runs {self.spec.search_sizes}); re-export the checkpoint "
                "with `siamtrack export ... --lost-search` (automatic for a long-term config)")
        size = side if side in self.spec.search_sizes else None
        n = self._check_batch(crops, lambda k: self.spec.search_shape(k, size), "search crops")
        if kernels.n != n:
            raise InputError(f"search crops hold {n} targets but the kernels were made for {kernels.n}; "
                             "run the template for the same targets first")
        return self._search_impl(crops, kernels)

    def close(self) -> None:
        """Release native resources (sessions, engines, device memory). Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @abstractmethod
    def _template_impl(self, crops: np.ndarray) -> Kernels: ...

    @abstractmethod
    def _search_impl(self, crops: np.ndarray, kernels: Kernels) -> tuple[np.ndarray, np.ndarray]: ...

    def _check_batch(self, arr: np.ndarray, shape_of, what: str) -> int:
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.ndim != 4:
            got = f"{type(arr).__name__} {getattr(arr, 'dtype', '')} {getattr(arr, 'shape', '')}".strip()
            raise InputError(f"{self.name}: {what} must be a 4-D float32 array, got {got}")
        n = arr.shape[0]
        if n < 1 or arr.shape != shape_of(n):
            raise InputError(f"{self.name}: {what} have shape {arr.shape}, expected {shape_of(n)} (N >= 1)")
        if self.max_batch is not None and n > self.max_batch:
            raise InputError(f"{self.name}: {n} targets exceed this backend's maximum batch {self.max_batch}; "
                             "rebuild the engine with a larger batch profile or track fewer targets")
        return n

    def check_kernels(self, kernels: tuple[np.ndarray, ...]) -> int:
        """Validate a host kernel tuple against the spec; returns N."""
        names = self.spec.kernel_names
        if len(kernels) != len(names):
            raise InputError(f"{self.name}: expected {len(names)} kernels {names}, got {len(kernels)}")
        n = kernels[0].shape[0]
        for name, k in zip(names, kernels):
            if k.dtype != np.float32 or k.shape != self.spec.kernel_shape(n, name):
                raise InputError(f"{self.name}: kernel {name} is {k.dtype} {k.shape}, "
                                 f"expected float32 {self.spec.kernel_shape(n, name)}")
        return n

"""Open a backend from what the user points at, importing only that backend's library.

``model`` is one of:
- a folder of exported artifacts (``template.<precision>.<flavour>.onnx`` / ``.engine`` pairs), run by
  ONNX Runtime or TensorRT;
- a pysot ``config.yaml`` or a built-in config name (``r50``, ``r50_otb``, ``mobilev2``, ``alex``), run
  by PyTorch with ``checkpoint`` (a pysot ``model.pth``) or, for tests and demos, seeded random weights.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from runtime.backends.base import Backend, Kernels
from runtime.errors import InputError

# The only place the runtime names another stage: PyTorch is loaded when, and only when, asked for.
_LAZY = {
    "torch": "runtime.backends.pyt:TorchBackend",
    "onnxruntime": "runtime.backends.onnxrt:OrtBackend",
    "tensorrt": "runtime.backends.trt:TrtBackend",
}
BACKEND_NAMES = tuple(_LAZY)
BUILTIN_CONFIGS = ("r50", "r50_otb", "mobilev2", "alex", "lite0")

__all__ = ["Backend", "Kernels", "BACKEND_NAMES", "open_backend", "backend_class", "check_threads"]


def backend_class(name: str) -> type[Backend]:
    if name not in _LAZY:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    module, attr = _LAZY[name].split(":")
    return getattr(importlib.import_module(module), attr)


def is_pysot_model(model: str) -> bool:
    return model in BUILTIN_CONFIGS or Path(model).suffix in (".yaml", ".yml")


def check_threads(threads) -> int | None:
    """None (the library's default) or a positive int; InputError for anything else (0, -1, "two")."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads={threads!r}: expected a whole number of CPU threads >= 1 (or leave it "
                         "unset for the library's default)")
    return threads


def open_backend(model: str, *, checkpoint: str | None = None, backend: str = "auto",
                 precision: str | None = None, flavour: str | None = None, seed: int | None = None,
                 threads: int | None = None) -> Backend:
    """Open ``model`` with ``backend`` ("auto" picks the fastest that can run here; see
    ``runtime.backend_choice``). ``precision``/``flavour`` None pick the best present for that backend.
    ``seed`` (PyTorch only) builds seeded random weights when no checkpoint is given; such a backend has
    ``random_weights = True``. ``threads``: intra-op CPU threads of ONNX Runtime's sessions (per session)
    or of torch (process-wide, ``torch.set_num_threads``); None keeps the library's default (ONNX
    Runtime: the CPUs this process may use). TensorRT runs on the GPU and ignores it.
    """
    model = str(model)
    threads = check_threads(threads)
    if Path(model).suffix == ".pth":
        raise InputError(f"{model}: a checkpoint is not a model description; pass the pysot config with "
                         "--model config.yaml (or a name: r50, mobilev2, alex) and the weights with --checkpoint")
    if is_pysot_model(model):
        if backend not in ("auto", "torch"):
            raise InputError(f"{model} is a PyTorch model description; backend {backend!r} needs exported "
                             "artifacts: run `siamtrack export` (or build.sh) and pass the output folder")
        cls = backend_class("torch")
        if checkpoint:
            return cls.from_checkpoint(model, checkpoint, threads=threads)
        if seed is None:
            raise InputError(f"{model}: no --checkpoint given; pass a pysot model.pth, or --random-seed N "
                             "to run seeded random weights (tracks nothing meaningful)")
        return cls.random(model, seed=seed, threads=threads)
    folder = Path(model)
    if not folder.is_dir():
        raise InputError(f"{model}: not a folder of exported artifacts, a pysot config .yaml, or one of "
                         f"{', '.join(BUILTIN_CONFIGS)}")
    from runtime.backend_choice import choose_artifact_backend

    choice = choose_artifact_backend(folder, requested=backend, precision=precision, flavour=flavour)
    cls = backend_class(choice.backend)
    if choice.backend == "torch":
        return cls.from_checkpoint(choice.config_path, choice.checkpoint_path, threads=threads)
    if choice.backend == "onnxruntime":
        return cls.from_dir(folder, precision=choice.precision, flavour=choice.flavour, threads=threads)
    return cls.from_dir(folder, precision=choice.precision, flavour=choice.flavour)

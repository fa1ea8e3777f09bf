"""PyTorch backend: the reference model from a pysot config and checkpoint (or seeded random weights).

The one declared place where the runtime reaches into the export stage; torch and ``export`` are
imported only when this backend is constructed, and no other runtime module imports this file
(``runtime.backends`` names it as a lazy string).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.backends.base import Backend, Kernels


class TorchBackend(Backend):
    """Runs ``export.model.SiamRPN`` on the CPU under ``torch.inference_mode``.

    Kernels stay on the host: ``Kernels.arrays`` holds float32 numpy arrays in ``spec.kernel_names``
    order, each (N, C, k, k). The model is fully convolutional, so it runs the long-term tracker's
    large crop natively: ``spec`` carries the config's lost size (``export.graphs.lost_search_spec``)
    whenever that size gives a whole anchor grid, long-term config or not. Attributes: ``cfg`` (export.config.ModelConfig), ``model``,
    ``random_weights`` (True when built by ``random``), ``load_report`` (export.checkpoint.LoadReport
    or None).
    """

    name = "torch"

    def __init__(self, cfg, model, threads: int | None = None):
        import torch

        self._torch = torch
        if threads is not None:
            torch.set_num_threads(int(threads))  # process-wide: torch has no per-model setting
        self.cfg = cfg
        self.model = model.eval()
        self.spec = _spec_with_lost_size(cfg)
        self.tracker_config = cfg.tracker
        self.random_weights = False
        self.load_report = None

    @classmethod
    def from_checkpoint(cls, config: str | Path, checkpoint: str | Path,
                        threads: int | None = None) -> "TorchBackend":
        """config: built-in name (r50, r50_otb, mobilev2, alex) or a pysot config.yaml;
        checkpoint: pysot model.pth. Raises ConfigError / CheckpointError with readable messages."""
        import torch

        from export.checkpoint import load_checkpoint
        from export.config import resolve_config
        from export.model import build_model

        cfg = resolve_config(config)
        with torch.device("meta"):  # the checkpoint supplies every tensor: skip the random init
            model = build_model(cfg)
        report = load_checkpoint(model, checkpoint, cfg)
        backend = cls(cfg, model, threads=threads)
        backend.load_report = report
        return backend

    @classmethod
    def random(cls, config: str | Path, seed: int = 0, threads: int | None = None) -> "TorchBackend":
        """Seeded random weights (deterministic everywhere; tracks nothing meaningful)."""
        from export.checkpoint import build_random_model
        from export.config import resolve_config

        cfg = resolve_config(config)
        backend = cls(cfg, build_random_model(cfg, seed), threads=threads)
        backend.random_weights = True
        return backend

    def _template_impl(self, crops: np.ndarray) -> Kernels:
        torch = self._torch
        with torch.inference_mode():
            kernels = self.model.template_kernels(torch.from_numpy(crops))
        return Kernels(crops.shape[0], tuple(k.numpy().astype(np.float32, copy=True) for k in kernels))

    def _search_impl(self, crops: np.ndarray, kernels: Kernels) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        self.check_kernels(kernels.arrays)
        with torch.inference_mode():
            cls, loc = self.model.track_from_kernels(
                torch.from_numpy(crops), [torch.from_numpy(np.ascontiguousarray(k)) for k in kernels.arrays])
        return cls.numpy().copy(), loc.numpy().copy()


def _spec_with_lost_size(cfg):
    """cfg's ModelSpec plus its lost search size; without it when that size makes no whole anchor grid
    (a short-term config's unused TRACK.LOST_INSTANCE_SIZE must not stop it from loading)."""
    from export.config import ConfigError
    from export.graphs import lost_search_spec

    spec = cfg.model_spec()
    try:
        return lost_search_spec(cfg, spec)
    except ConfigError:
        return spec

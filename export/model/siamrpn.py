"""The whole SiamRPN++ network with pysot's module names (``backbone``, ``neck``, ``rpn_head``).

Two ways to run it:
- pysot's stateful pair ``template(z)`` then ``track(x)`` (same results as pysot's ModelBuilder);
- the split the exported graphs use: ``template_kernels(z)`` gives every correlation kernel, and
  ``track_from_kernels(x, kernels)`` is the whole search path given them.
Images are (N, 3, H, W) float32, BGR, 0..255, no normalisation. Sample n of the search batch is
correlated with kernel n only.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class SiamRPN(nn.Module):
    """backbone -> neck (optional; absent for AlexNet) -> rpn_head (DepthwiseRPN or MultiRPN)."""

    def __init__(self, backbone: nn.Module, neck: nn.Module | None, rpn_head: nn.Module):
        super().__init__()
        self.backbone = backbone
        if neck is not None:  # no attribute at all without a neck, so no "neck." keys either
            self.neck = neck
        self.rpn_head = rpn_head
        self.zf = None

    @property
    def has_neck(self) -> bool:
        return hasattr(self, "neck")

    def features(self, img: torch.Tensor):
        """Backbone then neck: a list of (N, C, h, w) per level, or one tensor for a single level."""
        f = self.backbone(img)
        return self.neck(f) if self.has_neck else f

    def template_kernels(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """z (N, 3, E, E) -> every ``conv_kernel`` output, each (N, C, k, k), in
        ``ModelSpec.kernel_names`` order: kernel_cls2, kernel_loc2, kernel_cls3, ... (or cls, loc)."""
        return tuple(self.rpn_head.kernels(self.features(z)))

    def track_from_kernels(self, x: torch.Tensor, kernels) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, 3, X, X) and the kernels of ``template_kernels`` -> cls (N, 2A, S, S), loc (N, 4A, S, S)."""
        return self.rpn_head.from_kernels(self.features(x), list(kernels))

    def template(self, z: torch.Tensor) -> None:
        """pysot API: keep the template features (``self.zf``) for the following ``track`` calls."""
        self.zf = self.features(z)

    def track(self, x: torch.Tensor) -> dict:
        """pysot API: {'cls': (N,2A,S,S), 'loc': (N,4A,S,S), 'mask': None} against ``self.zf``."""
        if self.zf is None:
            raise RuntimeError("call template(z) before track(x)")
        cls, loc = self.rpn_head(self.zf, self.features(x))
        return {"cls": cls, "loc": loc, "mask": None}

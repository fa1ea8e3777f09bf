"""RPN heads as in pysot ``models/head/rpn.py``: DepthwiseXCorr, DepthwiseRPN, MultiRPN.

Each head is split in two halves so the template path can run once per target:
``kernels(z_f)`` is the template half (the ``conv_kernel`` outputs), ``from_kernels(x_f, kernels)``
the search half (``conv_search``, depth-wise xcorr, ``head``, level fusion). ``forward`` is the two in
sequence, exactly pysot's forward.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from export.model.xcorr import xcorr_depthwise


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DepthwiseXCorr(nn.Module):
    """conv_kernel (template) and conv_search (search): 3x3 conv, no padding, BN, ReLU;
    head: 1x1 conv + BN + ReLU + 1x1 conv with bias (indices 0, 1, 3 hold parameters).

    r50, template (N,256,7,7) -> kernel (N,256,5,5); search (N,256,31,31) -> (N,256,29,29)
    -> xcorr (N,256,25,25) -> head (N,out_channels,25,25).
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int, kernel_size: int = 3,
                 hidden_kernel_size: int = 5):
        super().__init__()
        del hidden_kernel_size  # accepted for pysot signature compatibility; pysot never uses it
        self.conv_kernel = _conv_bn_relu(in_channels, hidden, kernel_size)
        self.conv_search = _conv_bn_relu(in_channels, hidden, kernel_size)
        self.head = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, kernel_size=1),
        )

    def make_kernel(self, z_f: torch.Tensor) -> torch.Tensor:
        return self.conv_kernel(z_f)

    def from_kernel(self, x_f: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        return self.head(xcorr_depthwise(self.conv_search(x_f), kernel))

    def forward(self, z_f: torch.Tensor, x_f: torch.Tensor) -> torch.Tensor:
        return self.from_kernel(x_f, self.make_kernel(z_f))


class DepthwiseRPN(nn.Module):
    """One level: ``cls`` gives (N, 2A, S, S), ``loc`` gives (N, 4A, S, S)."""

    def __init__(self, anchor_num: int = 5, in_channels: int = 256, out_channels: int = 256):
        super().__init__()
        self.cls = DepthwiseXCorr(in_channels, out_channels, 2 * anchor_num)
        self.loc = DepthwiseXCorr(in_channels, out_channels, 4 * anchor_num)

    def kernels(self, z_f: torch.Tensor) -> list[torch.Tensor]:
        """[kernel_cls, kernel_loc], each (N, out_channels, k, k)."""
        return [self.cls.make_kernel(z_f), self.loc.make_kernel(z_f)]

    def from_kernels(self, x_f: torch.Tensor, kernels) -> tuple[torch.Tensor, torch.Tensor]:
        k_cls, k_loc = kernels
        return self.cls.from_kernel(x_f, k_cls), self.loc.from_kernel(x_f, k_loc)

    def forward(self, z_f: torch.Tensor, x_f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_kernels(x_f, self.kernels(z_f))


def _mean(outputs: list[torch.Tensor]) -> torch.Tensor:
    # sum() then divide, in pysot's order, so the result matches it bit for bit
    return sum(outputs) / len(outputs)


def _weighted_sum(outputs: list[torch.Tensor], weight: torch.Tensor) -> torch.Tensor:
    total = outputs[0] * weight[0]
    for i in range(1, len(outputs)):
        total = total + outputs[i] * weight[i]
    return total


class MultiRPN(nn.Module):
    """DepthwiseRPN per level (``rpn2``, ``rpn3``, ...) fused by softmax(``cls_weight``/``loc_weight``)
    when weighted, else by the plain mean."""

    def __init__(self, anchor_num: int, in_channels: list[int], weighted: bool = False):
        super().__init__()
        self.weighted = weighted
        self.num = len(in_channels)
        for i, ch in enumerate(in_channels):
            self.add_module(f"rpn{i + 2}", DepthwiseRPN(anchor_num, ch, ch))
        if weighted:
            self.cls_weight = nn.Parameter(torch.ones(len(in_channels)))
            self.loc_weight = nn.Parameter(torch.ones(len(in_channels)))

    def kernels(self, z_fs) -> list[torch.Tensor]:
        """[kernel_cls2, kernel_loc2, kernel_cls3, ...] (level-major, cls before loc)."""
        out = []
        for i, z_f in enumerate(z_fs):
            out += getattr(self, f"rpn{i + 2}").kernels(z_f)
        return out

    def from_kernels(self, x_fs, kernels) -> tuple[torch.Tensor, torch.Tensor]:
        if len(x_fs) != self.num or len(kernels) != 2 * self.num:
            raise ValueError(f"MultiRPN with {self.num} levels got {len(x_fs)} search features "
                             f"and {len(kernels)} kernels")
        cls, loc = [], []
        for i, x_f in enumerate(x_fs):
            c, l = getattr(self, f"rpn{i + 2}").from_kernels(x_f, kernels[2 * i:2 * i + 2])
            cls.append(c)
            loc.append(l)
        if self.weighted:
            return (_weighted_sum(cls, F.softmax(self.cls_weight, 0)),
                    _weighted_sum(loc, F.softmax(self.loc_weight, 0)))
        return _mean(cls), _mean(loc)

    def forward(self, z_fs, x_fs) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_kernels(x_fs, self.kernels(z_fs))

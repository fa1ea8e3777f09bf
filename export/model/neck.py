"""The neck (pysot ``ADJUST``): 1x1 conv + BN per level, then a centre crop of small (template) maps."""
from __future__ import annotations

import torch
import torch.nn as nn

# Feature maps narrower than this are template features and get centre-cropped (pysot's rule).
CROP_BELOW_WIDTH = 20


class AdjustLayer(nn.Module):
    """(N, in, H, W) -> (N, out, H, W), or (N, out, c, c) centred when W < 20 (c = center_size).

    The crop is decided by the width at run time, after BN; for a 15x15 template map it keeps
    [4:11] in both axes.
    """

    def __init__(self, in_channels: int, out_channels: int, center_size: int = 7):
        super().__init__()
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.center_size = center_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if x.size(3) < CROP_BELOW_WIDTH:
            left = (x.size(3) - self.center_size) // 2
            right = left + self.center_size
            x = x[:, :, left:right, left:right]  # (N, out, c, c)
        return x


class AdjustAllLayer(nn.Module):
    """One AdjustLayer per level, named ``downsample2``, ``downsample3``, ... (``downsample`` if one)."""

    def __init__(self, in_channels: list[int], out_channels: list[int], center_size: int = 7):
        super().__init__()
        self.num = len(out_channels)
        if self.num == 1:
            self.downsample = AdjustLayer(in_channels[0], out_channels[0], center_size)
        else:
            for i in range(self.num):
                self.add_module(f"downsample{i + 2}",
                                AdjustLayer(in_channels[i], out_channels[i], center_size))

    def forward(self, features):
        if self.num == 1:
            return self.downsample(features)
        return [getattr(self, f"downsample{i + 2}")(f) for i, f in enumerate(features)]

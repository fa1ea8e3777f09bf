"""AlexNet as in pysot ``models/backbone/alexnet.py`` (``alexnetlegacy``): one ``features`` Sequential.

A 127 input gives 256x6x6 features, a 287 input 256x26x26 (no padding anywhere; the last conv has
BN but no ReLU). Parameterised indices: 0, 1, 4, 5, 8, 9, 11, 12, 14, 15.
"""
from __future__ import annotations

import torch
import torch.nn as nn

CHANNELS = (3, 96, 256, 384, 384, 256)


class AlexNetLegacy(nn.Module):
    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        c = [3 if x == 3 else int(x * width_mult) for x in CHANNELS]
        self.features = nn.Sequential(
            nn.Conv2d(c[0], c[1], kernel_size=11, stride=2),
            nn.BatchNorm2d(c[1]),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[1], c[2], kernel_size=5),
            nn.BatchNorm2d(c[2]),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], kernel_size=3),
            nn.BatchNorm2d(c[3]),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], kernel_size=3),
            nn.BatchNorm2d(c[4]),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[4], c[5], kernel_size=3),
            nn.BatchNorm2d(c[5]),
        )
        self.feature_size = c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def alexnetlegacy(width_mult: float = 1.0) -> AlexNetLegacy:
    return AlexNetLegacy(width_mult=width_mult)

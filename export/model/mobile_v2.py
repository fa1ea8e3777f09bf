"""MobileNetV2 with dilated late stages, as in pysot ``models/backbone/mobile_v2.py``.

Modules ``layer0`` (3x3 stride-2 conv with padding 0, BN, ReLU6) and ``layer1..layer7`` (inverted
residual stages). With width 1.4 the outputs of layers 3, 5, 7 have 44, 134 and 448 channels, at
15x15 for a 127 input and 31x31 for a 255 input.
"""
from __future__ import annotations

import torch
import torch.nn as nn

# (expand ratio t, channels c, blocks n, stride s, dilation d) of layers 1..7
STAGES = (
    (1, 16, 1, 1, 1),
    (6, 24, 2, 2, 1),
    (6, 32, 3, 2, 1),
    (6, 64, 4, 1, 2),
    (6, 96, 3, 1, 2),
    (6, 160, 3, 1, 4),
    (6, 320, 1, 1, 4),
)


def conv_bn(inp: int, oup: int, stride: int, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, padding, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expand + BN + ReLU6, 3x3 depth-wise + BN + ReLU6, 1x1 project + BN; residual when shapes allow.

    ``conv`` Sequential indices 0, 1, 3, 4, 6, 7 hold the parameters (pysot key names).
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, dilation: int = 1):
        super().__init__()
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        padding = dilation if dilation > 1 else 2 - stride  # 0 for stride 2, as in pysot
        hidden = inp * expand_ratio
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, padding, dilation=dilation, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """Returns the outputs of ``used_layers`` (indices into layer0..layer7): a list, or one tensor."""

    def __init__(self, width_mult: float = 1.0, used_layers: list[int] = (3, 5, 7)):
        super().__init__()
        self.used_layers = list(used_layers)
        input_channel = int(32 * width_mult)
        self.layer0 = conv_bn(3, input_channel, 2, 0)
        last_dilation = 1
        for idx, (t, c, n, s, d) in enumerate(STAGES, start=1):
            output_channel = int(c * width_mult)
            blocks = []
            for i in range(n):
                if i == 0:
                    # the first block of a stage that raises the dilation still uses the old one
                    dd = d if d == last_dilation else max(d // 2, 1)
                    blocks.append(InvertedResidual(input_channel, output_channel, s, t, dd))
                else:
                    blocks.append(InvertedResidual(input_channel, output_channel, 1, t, d))
                input_channel = output_channel
            last_dilation = d
            self.add_module(f"layer{idx}", nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor):
        outputs = []
        for idx in range(8):
            x = getattr(self, f"layer{idx}")(x)
            outputs.append(x)
        out = [outputs[i] for i in self.used_layers]
        return out[0] if len(out) == 1 else out


def mobilenetv2(width_mult: float = 1.0, used_layers: list[int] = (3, 5, 7)) -> MobileNetV2:
    return MobileNetV2(width_mult=width_mult, used_layers=list(used_layers))

"""ResNet-50 with atrous (dilated) layers 3 and 4, as in pysot ``models/backbone/resnet_atrous.py``.

Differs from torchvision in ways that change both the weights' shapes and the output sizes: conv1 has
padding 0, the stride-2 3x3 conv of layer2 block 0 has padding 0, the downsample convs of layers 2-4
are 3x3, and block 0 of the dilated layers halves its dilation. Overall stride 8: a 127 input gives
15x15 features at layers 2-4, a 255 input 31x31.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        padding = 2 - stride  # 0 for the stride-2 block: the feature sizes above depend on it
        if downsample is not None and dilation > 1:
            dilation = dilation // 2  # the first block of a dilated layer still sees the old grid
            padding = dilation
        if stride != 1 and dilation != 1:
            raise ValueError("a Bottleneck has stride 1 or dilation 1")
        if dilation > 1:
            padding = dilation
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride,
                               padding=padding, bias=False, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNet(nn.Module):
    """Returns the outputs of ``used_layers`` (0 = stem after ReLU, 1..4 = layer1..4), a list, or a
    single tensor when only one layer is used. Layers 3/4 exist only when used (pysot's key set)."""

    def __init__(self, block: type[Bottleneck], layers: list[int], used_layers: list[int]):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.used_layers = list(used_layers)
        self.layer3 = (self._make_layer(block, 256, layers[2], stride=1, dilation=2)
                       if 3 in used_layers else nn.Identity())
        self.layer4 = (self._make_layer(block, 512, layers[3], stride=1, dilation=4)
                       if 4 in used_layers else nn.Identity())
        _init_like_pysot(self)

    def _make_layer(self, block: type[Bottleneck], planes: int, blocks: int,
                    stride: int = 1, dilation: int = 1) -> nn.Sequential:
        downsample = None
        out_planes = planes * block.expansion
        if stride != 1 or self.inplanes != out_planes:
            if stride == 1 and dilation == 1:
                conv = nn.Conv2d(self.inplanes, out_planes, kernel_size=1, stride=stride, bias=False)
            else:
                dd, padding = (dilation // 2, dilation // 2) if dilation > 1 else (1, 0)
                conv = nn.Conv2d(self.inplanes, out_planes, kernel_size=3, stride=stride,
                                 bias=False, padding=padding, dilation=dd)
            downsample = nn.Sequential(conv, nn.BatchNorm2d(out_planes))
        layers = [block(self.inplanes, planes, stride, downsample, dilation=dilation)]
        self.inplanes = out_planes
        layers += [block(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor):
        x_ = self.relu(self.bn1(self.conv1(x)))
        p1 = self.layer1(self.maxpool(x_))
        p2 = self.layer2(p1)
        p3 = self.layer3(p2)
        p4 = self.layer4(p3)
        out = [(x_, p1, p2, p3, p4)[i] for i in self.used_layers]
        return out[0] if len(out) == 1 else out


def _init_like_pysot(model: nn.Module) -> None:
    """pysot's constructor init (only visible with random weights): He-normal over k*k*out, BN 1/0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, (2.0 / n) ** 0.5)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet50(used_layers: list[int] = (2, 3, 4)) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], used_layers=list(used_layers))

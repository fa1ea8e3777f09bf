"""The reference SiamRPN++ model; ``build_model(cfg)`` gives the network for a ModelConfig."""
from __future__ import annotations

import torch.nn as nn

from export.model.alexnet import AlexNetLegacy
from export.model.mobile_v2 import MobileNetV2
from export.model.neck import AdjustAllLayer, AdjustLayer
from export.model.resnet_atrous import resnet50
from export.model.rpn import DepthwiseRPN, MultiRPN
from export.model.siamrpn import SiamRPN
from export.model.xcorr import xcorr_depthwise

__all__ = ["SiamRPN", "build_model", "build_backbone", "build_neck", "build_rpn_head", "xcorr_depthwise"]


def build_backbone(cfg) -> nn.Module:
    """cfg: export.config.BackboneConfig."""
    if cfg.type == "resnet50":
        return resnet50(used_layers=list(cfg.used_layers))
    if cfg.type == "mobilenetv2":
        return MobileNetV2(width_mult=cfg.width_mult, used_layers=list(cfg.used_layers))
    if cfg.type == "alexnetlegacy":
        return AlexNetLegacy(width_mult=cfg.width_mult)
    if cfg.type == "efficientnet_lite0":
        from export.model.efficientnet_lite import EfficientNetLite

        return EfficientNetLite(used_blocks=tuple(cfg.used_layers))
    raise ValueError(f"unsupported backbone {cfg.type!r}")


def build_neck(cfg) -> nn.Module | None:
    """cfg: export.config.AdjustConfig; None when ADJUST.ADJUST is false."""
    if not cfg.adjust:
        return None
    if cfg.type == "AdjustAllLayer":
        return AdjustAllLayer(list(cfg.in_channels), list(cfg.out_channels), cfg.center_size)
    if cfg.type == "AdjustLayer":
        return AdjustLayer(cfg.in_channels[0], cfg.out_channels[0], cfg.center_size)
    raise ValueError(f"unsupported neck {cfg.type!r}")


def build_rpn_head(cfg) -> nn.Module:
    """cfg: export.config.RpnConfig."""
    if cfg.type == "MultiRPN":
        return MultiRPN(cfg.anchor_num, list(cfg.in_channels), weighted=cfg.weighted)
    if cfg.type == "DepthwiseRPN":
        return DepthwiseRPN(cfg.anchor_num, cfg.in_channels[0], cfg.out_channels)
    raise ValueError(f"unsupported RPN head {cfg.type!r}")


def build_model(cfg) -> SiamRPN:
    """cfg: export.config.ModelConfig -> SiamRPN in eval mode (pysot's constructor init weights)."""
    model = SiamRPN(build_backbone(cfg.backbone), build_neck(cfg.adjust), build_rpn_head(cfg.rpn))
    return model.eval()

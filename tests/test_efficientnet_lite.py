"""The EfficientNet-Lite0 backbone loads the shipped ImageNet weights correctly for BGR 0..255 input.

Evidence that keys, block order, BN epsilon and the folded input normalisation are right: with the
checkpoint's own classifier appended, real photographs are classified as what they show.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from export.model.efficientnet_lite import (LITE0_STAGES, EfficientNetLite, MBConvBlock, _bn,
                                            fold_imagenet_normalisation, lite0_checkpoint_path,
                                            load_imagenet_lite0)

skimage_data = pytest.importorskip("skimage.data")


class _Lite0Classifier(nn.Module):
    """The full ImageNet network (original strides, all 16 blocks, head) reusing the backbone blocks."""

    def __init__(self):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = torch.clamp(self._bn0(self._conv_stem(x)), 0, 6)
        for b in self._blocks:
            x = b(x)
        x = torch.clamp(self._bn1(self._conv_head(x)), 0, 6)
        return self._fc(x.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def classifier():
    state = torch.load(lite0_checkpoint_path(), map_location="cpu", weights_only=True)
    net = _Lite0Classifier().eval()
    net.load_state_dict(fold_imagenet_normalisation(state), strict=True)
    return net


def _top5(net, rgb: np.ndarray) -> list[int]:
    bgr = cv2.resize(rgb[..., ::-1], (224, 224), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(bgr.transpose(2, 0, 1).astype(np.float32))[None]    # raw BGR 0..255
    with torch.no_grad():
        return net(x)[0].topk(5).indices.tolist()


def test_a_cat_photo_is_classified_as_a_cat(classifier):
    # ImageNet classes 281-285 are tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert _top5(classifier, skimage_data.chelsea())[0] in range(281, 286)


def test_a_coffee_photo_is_classified_as_a_cup(classifier):
    # 967 espresso, 968 cup, 504 coffee mug
    assert {967, 968, 504} & set(_top5(classifier, skimage_data.coffee())[:3])


def test_tracking_backbone_gives_pysot_feature_sizes():
    b = EfficientNetLite((4, 10)).eval()
    with torch.no_grad():
        z = b(torch.zeros(1, 3, 127, 127))
        x = b(torch.zeros(2, 3, 255, 255))
    assert [tuple(t.shape) for t in z] == [(1, 40, 15, 15), (1, 112, 15, 15)]
    assert [tuple(t.shape) for t in x] == [(2, 40, 31, 31), (2, 112, 31, 31)]


def test_tracking_backbone_loads_every_tensor_it_has_from_the_checkpoint():
    b = EfficientNetLite((4, 10))
    unused = load_imagenet_lite0(b, lite0_checkpoint_path())
    assert "_fc.weight" in unused and "_blocks.11._project_conv.weight" in unused
    assert not any(k.startswith("_blocks.10.") for k in unused)

"""Shapes, key names and the template/search split of export.model (the reference SiamRPN++ network).

Expected values are pysot's: its backbone, neck and head definitions and experiment configs
(read from pysot's code and checked by building pysot's ModelBuilder); none come from running ours.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from export.checkpoint import build_random_model
from export.config import default_config
from export.model import build_model
from export.model.neck import AdjustLayer
from export.model.rpn import MultiRPN
from export.model.xcorr import xcorr_depthwise

# spec section 1/2/8: backbone outputs per used layer, (C, H, W) for the template and the search crop
BACKBONE_SHAPES = {
    "r50": ([(512, 15, 15), (1024, 15, 15), (2048, 15, 15)], [(512, 31, 31), (1024, 31, 31), (2048, 31, 31)]),
    "mobilev2": ([(44, 15, 15), (134, 15, 15), (448, 15, 15)], [(44, 31, 31), (134, 31, 31), (448, 31, 31)]),
    "alex": ([(256, 6, 6)], [(256, 26, 26)]),
}
# spec section 9
KEY_COUNTS = {"r50": 458, "r50_otb": 456, "mobilev2": 450, "alex": 75}


@functools.lru_cache(maxsize=None)
def _meta_model(name: str):  # shapes only; never run or mutated
    with torch.device("meta"):
        return build_model(default_config(name))


def _run_recording(name: str, n: int = 1, seed: int = 0, pysot_path: bool = True):
    """Random-weight model through the split path (template_kernels, track_from_kernels) and, if
    pysot_path, through template()/track() too; records backbone, neck and conv_kernel outputs."""
    cfg = default_config(name)
    model = build_random_model(cfg, seed=0)
    rs = np.random.RandomState(seed)
    e, x = cfg.tracker.exemplar_size, cfg.tracker.instance_size
    z = torch.from_numpy((rs.random_sample((n, 3, e, e)) * 255).astype(np.float32))
    s = torch.from_numpy((rs.random_sample((n, 3, x, x)) * 255).astype(np.float32))
    seen = {"backbone": [], "neck": [], "conv_kernel": {}}

    def record(part):
        def hook(_module, _inputs, out):
            seen[part].append([tuple(t.shape) for t in (out if isinstance(out, list) else [out])])
        return hook

    model.backbone.register_forward_hook(record("backbone"))
    if model.has_neck:
        model.neck.register_forward_hook(record("neck"))
    def record_kernel(key):
        def hook(_module, _inputs, out):
            if key not in seen["conv_kernel"]:  # the first call is template_kernels' own
                seen["conv_kernel"][key] = out.clone()
        return hook

    for mname, module in model.rpn_head.named_modules():
        if mname.endswith("conv_kernel"):
            module.register_forward_hook(record_kernel(mname))
    with torch.inference_mode():
        kernels = model.template_kernels(z)
        cls, loc = model.track_from_kernels(s, kernels)
        ref = None
        if pysot_path:
            model.template(z)
            ref = model.track(s)
    return dict(model=model, z=z, s=s, kernels=kernels, cls=cls, loc=loc, ref=ref, seen=seen)


@pytest.fixture(scope="module")
def r50_run():
    # r50 forwards are the expensive part of this file: the split path only. That it equals
    # pysot's template()/track() is shown against pysot's own outputs in test_pysot_model_parity.py.
    return _run_recording("r50", pysot_path=False)


@pytest.fixture(scope="module")
def small_runs():
    return {name: _run_recording(name) for name in ("mobilev2", "alex")}


def _run(name, r50_run, small_runs):
    return r50_run if name == "r50" else small_runs[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r50", "mobilev2", "alex"])
def test_backbone_feature_shapes_for_template_and_search(name, r50_run, small_runs):
    seen = _run(name, r50_run, small_runs)["seen"]["backbone"]
    template, search = BACKBONE_SHAPES[name]
    assert seen[0] == [(1,) + s for s in template]
    assert seen[1] == [(1,) + s for s in search]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r50", "mobilev2"])
def test_neck_gives_256_channels_cropping_only_the_template(name, r50_run, small_runs):
    seen = _run(name, r50_run, small_runs)["seen"]["neck"]
    assert seen[0] == [(1, 256, 7, 7)] * 3   # 15x15 cropped to the centre 7x7
    assert seen[1] == [(1, 256, 31, 31)] * 3  # 31 >= 20: not cropped


@pytest.mark.slow
@pytest.mark.parametrize("name,kernel,score", [("r50", 5, 25), ("mobilev2", 5, 25), ("alex", 4, 21)])
def test_head_kernel_and_output_shapes(name, kernel, score, r50_run, small_runs):
    run = _run(name, r50_run, small_runs)
    levels = 1 if name == "alex" else 3
    assert [tuple(k.shape) for k in run["kernels"]] == [(1, 256, kernel, kernel)] * (2 * levels)
    assert tuple(run["cls"].shape) == (1, 10, score, score)
    assert tuple(run["loc"].shape) == (1, 20, score, score)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilev2", "alex"])
def test_split_path_equals_pysot_track(name, small_runs):
    run = small_runs[name]
    # same operations in the same order: bit-identical
    assert torch.equal(run["cls"], run["ref"]["cls"])
    assert torch.equal(run["loc"], run["ref"]["loc"])
    assert run["ref"]["mask"] is None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r50", "mobilev2", "alex"])
def test_random_weights_give_sane_outputs(name, r50_run, small_runs):
    run = _run(name, r50_run, small_runs)
    for t in (run["cls"], run["loc"]) + tuple(run["kernels"]):
        assert torch.isfinite(t).all()
    # O(0.1..10): neither exploding through the residual stack nor vanishing
    assert 0.1 < float(run["cls"].std()) < 10 and 0.1 < float(run["loc"].std()) < 10


@pytest.mark.slow
def test_template_kernels_follow_kernel_names_order(r50_run):
    names = default_config("r50").model_spec().kernel_names
    assert names == ("kernel_cls2", "kernel_loc2", "kernel_cls3", "kernel_loc3", "kernel_cls4", "kernel_loc4")
    produced_by = [f"rpn{lvl}.{head}.conv_kernel" for lvl in (2, 3, 4) for head in ("cls", "loc")]
    for name, module, got in zip(names, produced_by, r50_run["kernels"]):
        assert torch.equal(got, r50_run["seen"]["conv_kernel"][module]), name


@pytest.mark.slow
def test_alex_kernels_are_cls_then_loc(small_runs):
    assert default_config("alex").model_spec().kernel_names == ("kernel_cls", "kernel_loc")
    run = small_runs["alex"]
    assert torch.equal(run["kernels"][0], run["seen"]["conv_kernel"]["cls.conv_kernel"])
    assert torch.equal(run["kernels"][1], run["seen"]["conv_kernel"]["loc.conv_kernel"])


def test_batch_of_two_equals_two_single_calls():
    # whole network on AlexNet (cheap); the multi-level head is checked for r50 below
    two = _run_recording("alex", n=2, seed=5)
    model = two["model"]
    with torch.inference_mode():
        for i in range(2):
            k = model.template_kernels(two["z"][i:i + 1])
            cls, loc = model.track_from_kernels(two["s"][i:i + 1], k)
            # batched convolutions may sum in another order: float32 rounding only
            tol = 1e-5 * float(cls.abs().max())
            assert torch.allclose(two["cls"][i:i + 1], cls, rtol=0, atol=tol)
            assert torch.allclose(two["loc"][i:i + 1], loc, rtol=0, atol=1e-5 * float(loc.abs().max()))
            for kb, k1 in zip(two["kernels"], k):
                assert torch.allclose(kb[i:i + 1], k1, rtol=0, atol=1e-5 * float(k1.abs().max()))


@pytest.mark.slow
def test_r50_head_batch_of_two_equals_two_single_calls(r50_run):
    # The backbone and neck are per-sample convolutions; the batch-sensitive part is the head
    # (xcorr folds the batch into channels). Checked on random neck features to spare r50 forwards.
    head = r50_run["model"].rpn_head
    g = torch.Generator().manual_seed(3)
    zf = [torch.randn(2, 256, 7, 7, generator=g) for _ in range(3)]
    xf = [torch.randn(2, 256, 31, 31, generator=g) for _ in range(3)]
    with torch.inference_mode():
        kernels = head.kernels(zf)
        cls, loc = head.from_kernels(xf, kernels)
        for i in range(2):
            c1, l1 = head([f[i:i + 1] for f in zf], [f[i:i + 1] for f in xf])
            assert torch.allclose(cls[i:i + 1], c1, rtol=0, atol=1e-5 * float(c1.abs().max()))
            assert torch.allclose(loc[i:i + 1], l1, rtol=0, atol=1e-5 * float(l1.abs().max()))


@pytest.mark.parametrize("name,count", sorted(KEY_COUNTS.items()))
def test_state_dict_key_count(name, count):
    assert len(_meta_model(name).state_dict()) == count


def test_r50_parameter_count():
    assert sum(p.numel() for p in _meta_model("r50").parameters()) == 53_950_624


def test_r50_example_keys_and_shapes():
    shapes = {k: tuple(v.shape) for k, v in _meta_model("r50").state_dict().items()}
    expected = {  # spec section 9
        "backbone.conv1.weight": (64, 3, 7, 7),
        "backbone.bn1.weight": (64,),
        "backbone.layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "backbone.layer2.0.conv1.weight": (128, 256, 1, 1),
        "backbone.layer2.0.conv2.weight": (128, 128, 3, 3),
        "backbone.layer2.0.conv3.weight": (512, 128, 1, 1),
        "backbone.layer2.0.bn3.running_var": (512,),
        "backbone.layer2.0.downsample.0.weight": (512, 256, 3, 3),
        "backbone.layer2.0.downsample.1.weight": (512,),
        "backbone.layer3.0.downsample.0.weight": (1024, 512, 3, 3),
        "backbone.layer4.0.conv2.weight": (512, 512, 3, 3),
        "backbone.layer4.0.downsample.0.weight": (2048, 1024, 3, 3),
        "neck.downsample2.downsample.0.weight": (256, 512, 1, 1),
        "neck.downsample2.downsample.1.running_mean": (256,),
        "neck.downsample3.downsample.0.weight": (256, 1024, 1, 1),
        "neck.downsample4.downsample.0.weight": (256, 2048, 1, 1),
        "rpn_head.cls_weight": (3,),
        "rpn_head.loc_weight": (3,),
        "rpn_head.rpn2.cls.conv_kernel.0.weight": (256, 256, 3, 3),
        "rpn_head.rpn2.cls.conv_kernel.1.num_batches_tracked": (),
        "rpn_head.rpn2.cls.conv_search.0.weight": (256, 256, 3, 3),
        "rpn_head.rpn2.cls.head.0.weight": (256, 256, 1, 1),
        "rpn_head.rpn2.cls.head.1.running_var": (256,),
        "rpn_head.rpn2.cls.head.3.weight": (10, 256, 1, 1),
        "rpn_head.rpn2.cls.head.3.bias": (10,),
        "rpn_head.rpn4.loc.head.3.weight": (20, 256, 1, 1),
        "rpn_head.rpn4.loc.head.3.bias": (20,),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    prefixes = {".".join(k.split(".")[:2]) for k in shapes}
    assert prefixes == {"backbone.conv1", "backbone.bn1", "backbone.layer1", "backbone.layer2",
                        "backbone.layer3", "backbone.layer4", "neck.downsample2", "neck.downsample3",
                        "neck.downsample4", "rpn_head.rpn2", "rpn_head.rpn3", "rpn_head.rpn4",
                        "rpn_head.cls_weight", "rpn_head.loc_weight"}
    blocks = {int(k.split(".")[2]) for k in shapes if k.startswith("backbone.layer3.")}
    assert blocks == set(range(6))


def test_alex_and_mobilev2_key_patterns():
    alex = {k.split(".")[2] for k in _meta_model("alex").state_dict() if k.startswith("backbone.")}
    assert alex == {"0", "1", "4", "5", "8", "9", "11", "12", "14", "15"}
    assert not any(k.startswith("neck.") for k in _meta_model("alex").state_dict())
    mobile = _meta_model("mobilev2").state_dict()
    assert {k.split(".")[1] for k in mobile if k.startswith("backbone.")} == {f"layer{i}" for i in range(8)}
    assert {k.split(".")[4] for k in mobile if k.startswith("backbone.layer1.")} <= {"0", "1", "3", "4", "6", "7"}
    assert "rpn_head.cls_weight" not in mobile  # unweighted fusion


# (conv2 (stride, padding, dilation), downsample conv (kernel, stride, padding, dilation) or None)
RESNET_GEOMETRY = {  # spec section 2 table
    "layer1.0": ((1, 1, 1), (1, 1, 0, 1)), "layer1.1": ((1, 1, 1), None),
    "layer2.0": ((2, 0, 1), (3, 2, 0, 1)), "layer2.3": ((1, 1, 1), None),
    "layer3.0": ((1, 1, 1), (3, 1, 1, 1)), "layer3.5": ((1, 2, 2), None),
    "layer4.0": ((1, 2, 2), (3, 1, 2, 2)), "layer4.2": ((1, 4, 4), None),
}


@pytest.mark.parametrize("block", sorted(RESNET_GEOMETRY))
def test_resnet_atrous_conv_geometry(block):
    bb = _meta_model("r50").backbone
    layer, idx = block.split(".")
    b = getattr(bb, layer)[int(idx)]
    conv2, down = RESNET_GEOMETRY[block]
    assert (b.conv2.stride[0], b.conv2.padding[0], b.conv2.dilation[0]) == conv2
    if down is None:
        assert b.downsample is None
    else:
        c = b.downsample[0]
        assert (c.kernel_size[0], c.stride[0], c.padding[0], c.dilation[0]) == down
    assert (bb.conv1.kernel_size, bb.conv1.stride, bb.conv1.padding) == ((7, 7), (2, 2), (0, 0))


def test_xcorr_depthwise_is_per_sample_per_channel_cross_correlation():
    rs = np.random.RandomState(0)
    x = rs.standard_normal((2, 3, 6, 7)).astype(np.float32)
    k = rs.standard_normal((2, 3, 2, 3)).astype(np.float32)
    want = np.zeros((2, 3, 5, 5), np.float64)
    for b in range(2):
        for c in range(3):
            for i in range(5):
                for j in range(5):
                    want[b, c, i, j] = (x[b, c, i:i + 2, j:j + 3] * k[b, c]).sum()  # no flip
    got = xcorr_depthwise(torch.from_numpy(x), torch.from_numpy(k)).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)  # float32 sums of 6 O(1) products


def test_neck_crops_the_centre_after_batchnorm():
    layer = AdjustLayer(4, 3).eval()
    with torch.no_grad():
        layer.downsample[1].running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
        layer.downsample[1].running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
        x = torch.randn(2, 4, 15, 15, generator=torch.Generator().manual_seed(0))
        full = layer.downsample(x)
        assert torch.equal(layer(x), full[:, :, 4:11, 4:11])  # l = (15 - 7) // 2 = 4
        wide = torch.randn(1, 4, 20, 20)
        assert tuple(layer(wide).shape) == (1, 3, 20, 20)  # width 20 is not < 20: no crop
        assert tuple(layer(torch.randn(1, 4, 19, 19)).shape) == (1, 3, 7, 7)


@pytest.mark.parametrize("weighted", [True, False])
def test_multirpn_fusion(weighted):
    torch.manual_seed(0)
    head = MultiRPN(anchor_num=1, in_channels=[4, 4, 4], weighted=weighted).eval()
    if weighted:
        with torch.no_grad():
            head.cls_weight.copy_(torch.log(torch.tensor([1.0, 2.0, 5.0])))  # softmax = 1/8, 2/8, 5/8
            head.loc_weight.copy_(torch.zeros(3))                            # softmax = 1/3 each
    zf = [torch.randn(1, 4, 7, 7) for _ in range(3)]
    xf = [torch.randn(1, 4, 11, 11) for _ in range(3)]
    with torch.no_grad():
        cls, loc = head(zf, xf)
        per_level = [getattr(head, f"rpn{i + 2}")(zf[i], xf[i]) for i in range(3)]
    cw = (1 / 8, 2 / 8, 5 / 8) if weighted else (1 / 3,) * 3
    want_cls = sum(w * c for w, (c, _) in zip(cw, per_level))
    want_loc = sum(l for _, l in per_level) / 3
    assert torch.allclose(cls, want_cls, atol=1e-6) and torch.allclose(loc, want_loc, atol=1e-6)

"""export.config: pysot config.yaml files -> ModelConfig, built-in configs, ModelSpec.

Expected tracker values are the table of spec section 8 (pysot's experiments/*/config.yaml).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from export.config import (BUILTIN_NAMES, ConfigError, ModelConfig, builtin_names, default_config,
                           load_config, resolve_config)
from runtime.backends import BUILTIN_CONFIGS
from runtime.contract import ModelSpec
from runtime.errors import SiamTrackError

# name: (PENALTY_K, WINDOW_INFLUENCE, LR, INSTANCE_SIZE, BASE_SIZE, score size), spec section 8
TRACK_TABLE = {
    "r50": (0.05, 0.42, 0.38, 255, 8, 25),
    "r50_otb": (0.24, 0.5, 0.25, 255, 8, 25),
    "mobilev2": (0.04, 0.4, 0.5, 255, 8, 25),
    "alex": (0.16, 0.40, 0.30, 287, 0, 21),
}

# A pysot experiment file as pysot's training configs write it: training sections included.
PYSOT_TRAINING_YAML = """\
META_ARC: "siamrpn_r50_l234_dwxcorr_8gpu"

BACKBONE:
    TYPE: "resnet50"
    KWARGS:
        used_layers: [2, 3, 4]
    PRETRAINED: 'pretrained_models/resnet50.model'
    TRAIN_LAYERS: ['layer2', 'layer3', 'layer4']
    TRAIN_EPOCH: 10
    LAYERS_LR: 0.1

ADJUST:
    ADJUST: true
    TYPE: "AdjustAllLayer"
    KWARGS:
        in_channels: [512, 1024, 2048]
        out_channels: [256, 256, 256]

RPN:
    TYPE: 'MultiRPN'
    KWARGS:
        anchor_num: 5
        in_channels: [256, 256, 256]
        weighted: true

MASK:
    MASK: false

ANCHOR:
    STRIDE: 8
    RATIOS: [0.33, 0.5, 1, 2, 3]
    SCALES: [8]
    ANCHOR_NUM: 5

TRACK:
    TYPE: 'SiamRPNTracker'
    PENALTY_K: 0.04
    WINDOW_INFLUENCE: 0.44
    LR: 0.33
    EXEMPLAR_SIZE: 127
    INSTANCE_SIZE: 255
    BASE_SIZE: 8
    CONTEXT_AMOUNT: 0.5

TRAIN:
    EPOCH: 20
    START_EPOCH: 0
    BATCH_SIZE: 28
    BASE_LR: 0.005
    LR:
        TYPE: 'log'
        KWARGS:
            start_lr: 0.005
            end_lr: 0.0005

DATASET:
    NAMES:
    - 'VID'
    - 'COCO'
    VIDEOS_PER_EPOCH: 600000
"""


def _write(tmp_path, text, name="config.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", sorted(TRACK_TABLE))
def test_builtin_tracker_values_match_pysot_table(name):
    t = default_config(name).tracker
    penalty_k, window, lr, instance, base, score = TRACK_TABLE[name]
    assert (t.penalty_k, t.window_influence, t.lr) == (penalty_k, window, lr)
    assert (t.exemplar_size, t.instance_size, t.base_size, t.context_amount) == (127, instance, base, 0.5)
    assert (t.stride, t.ratios, t.scales, t.anchor_num) == (8, (0.33, 0.5, 1.0, 2.0, 3.0), (8.0,), 5)
    assert t.score_size == score


def test_builtin_names_are_the_runtime_names():
    assert set(BUILTIN_NAMES) == set(BUILTIN_CONFIGS)


def test_builtin_model_parts():
    r50, otb, mobile, alex = (default_config(n) for n in ("r50", "r50_otb", "mobilev2", "alex"))
    assert (r50.backbone.type, r50.backbone.used_layers) == ("resnet50", (2, 3, 4))
    assert (r50.adjust.in_channels, r50.adjust.out_channels) == ((512, 1024, 2048), (256, 256, 256))
    assert (r50.rpn.type, r50.rpn.weighted, otb.rpn.weighted) == ("MultiRPN", True, False)
    assert (mobile.backbone.type, mobile.backbone.width_mult, mobile.backbone.used_layers) == \
        ("mobilenetv2", 1.4, (3, 5, 7))
    assert (mobile.adjust.in_channels, mobile.rpn.weighted) == ((44, 134, 448), False)
    assert (alex.backbone.type, alex.backbone.width_mult, alex.adjust.adjust) == ("alexnetlegacy", 1.0, False)
    assert (alex.rpn.type, alex.rpn.in_channels, alex.rpn.out_channels) == ("DepthwiseRPN", (256,), 256)
    assert r50.name == "siamrpn_r50_l234_dwxcorr"


@pytest.mark.parametrize("name,levels,ksize,instance,score", [
    ("r50", ("2", "3", "4"), 5, 255, 25), ("r50_otb", ("2", "3", "4"), 5, 255, 25),
    ("mobilev2", ("2", "3", "4"), 5, 255, 25), ("alex", ("",), 4, 287, 21)])
def test_model_spec(name, levels, ksize, instance, score):
    spec = default_config(name).model_spec()
    assert isinstance(spec, ModelSpec)
    assert (spec.levels, spec.kernel_channels, spec.kernel_size) == (levels, 256, ksize)
    assert (spec.exemplar_size, spec.instance_size, spec.score_size, spec.anchor_num) == (127, instance, score, 5)
    assert ModelSpec.from_json(spec.to_json()) == spec


def test_pysot_training_config_loads_ignoring_training_keys(tmp_path):
    cfg = load_config(_write(tmp_path, PYSOT_TRAINING_YAML))
    assert cfg.name == "siamrpn_r50_l234_dwxcorr_8gpu"
    assert (cfg.tracker.penalty_k, cfg.tracker.window_influence, cfg.tracker.lr) == (0.04, 0.44, 0.33)
    assert cfg.backbone == default_config("r50").backbone and cfg.rpn == default_config("r50").rpn
    assert cfg.source == str(tmp_path / "config.yaml")


def test_config_is_frozen():
    cfg = default_config("r50")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "x"  # type: ignore[misc]


def test_missing_track_keys_take_pysot_defaults(tmp_path):
    text = PYSOT_TRAINING_YAML.replace("    PENALTY_K: 0.04\n", "").replace("    LR: 0.33\n", "")
    t = load_config(_write(tmp_path, text)).tracker
    assert (t.penalty_k, t.lr) == (0.04, 0.4)  # pysot/core/config.py defaults


def test_resolve_config_accepts_name_or_path(tmp_path):
    assert resolve_config("alex") == default_config("alex")
    assert isinstance(resolve_config(_write(tmp_path, PYSOT_TRAINING_YAML)), ModelConfig)


@pytest.mark.parametrize("old,new,words", [
    ('TYPE: "resnet50"', 'TYPE: "resnet18"', ["BACKBONE.TYPE", "resnet18", "resnet50"]),
    ("TYPE: 'MultiRPN'", "TYPE: 'UPChannelRPN'", ["RPN.TYPE", "UPChannelRPN"]),
    ("MASK: false", "MASK: true", ["MASK.MASK", "SiamMask"]),
    ("TYPE: 'SiamRPNTracker'", "TYPE: 'SiamMaskTracker'", ["TRACK.TYPE", "SiamMaskTracker"]),
    ("    PRETRAINED:", "    BOGUS: [512, 1024, 2048]\n    PRETRAINED:", ["BACKBONE.BOGUS"]),
    # a key only pysot's long-term config sets, contradicting the KWARGS it repeats
    ("    PRETRAINED:", "    CHANNELS: [256, 512, 1024]\n    PRETRAINED:",
     ["BACKBONE.CHANNELS", "ADJUST.KWARGS.in_channels"]),
    ("        weighted: true", "        weighted: true\n        bogus: 1", ["RPN.KWARGS.bogus"]),
    ("ANCHOR_NUM: 5", "ANCHOR_NUM: 7", ["ANCHOR.ANCHOR_NUM", "7"]),
    ("META_ARC:", "SOMETHING: 1\nMETA_ARC:", ["SOMETHING"]),
])
def test_unsupported_or_invalid_configs_are_rejected_by_key(tmp_path, old, new, words):
    _assert_rejected_naming(tmp_path, PYSOT_TRAINING_YAML, old, new, words)


def _assert_rejected_naming(tmp_path, yaml_text: str, old: str, new: str, words) -> None:
    """``yaml_text`` with ``old`` replaced by ``new`` is refused by load_config, and the message names
    the file and every one of ``words``."""
    assert old in yaml_text
    path = _write(tmp_path, yaml_text.replace(old, new, 1))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg and all(w in msg for w in words), msg


def test_inconsistent_base_size_is_rejected_by_model_spec(tmp_path):
    cfg = load_config(_write(tmp_path, PYSOT_TRAINING_YAML.replace("BASE_SIZE: 8", "BASE_SIZE: 0")))
    with pytest.raises(ConfigError, match="BASE_SIZE"):
        cfg.model_spec()  # the network gives 25x25 but the anchor grid would be 17x17


@pytest.mark.parametrize("content", ["- just\n- a list\n", "BACKBONE: [unclosed\n", "\x00\x01binary"])
def test_non_config_files_give_config_errors(tmp_path, content):
    with pytest.raises(ConfigError, match="config"):
        load_config(_write(tmp_path, content))


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="r50, r50_otb, mobilev2, alex"):
        default_config("r101")
    with pytest.raises(SiamTrackError, match="built-in names"):
        resolve_config("resnet")  # neither a built-in name nor a file


@pytest.mark.parametrize("name", builtin_names())
def test_every_shipped_config_loads_and_has_a_consistent_spec(name):
    cfg = default_config(name)
    spec = cfg.model_spec()  # raises when the network's score map and the anchor grid disagree
    assert spec.score_size == cfg.tracker.score_size and spec.anchor_num == cfg.tracker.anchor_num


# pysot's experiments/siamrpn_r50_l234_dwxcorr_lt/config.yaml, key for key: BACKBONE.CHANNELS,
# ADJUST.ADJUST_CHANNEL and RPN.WEIGHTED are not in pysot's schema (its yacs raises KeyError on them),
# TRACK.LOST_INSTANCE_SIZE is absent (pysot's default 831 applies).
PYSOT_LT_YAML = """\
META_ARC: "siamrpn_r50_l234_dwxcorr"

BACKBONE:
    TYPE: "resnet50"
    KWARGS:
        used_layers: [2, 3, 4]
    CHANNELS: [512, 1024, 2048]

ADJUST:
    ADJUST: true
    TYPE: "AdjustAllLayer"
    ADJUST_CHANNEL: [128, 256, 512]
    KWARGS:
        in_channels: [512, 1024, 2048]
        out_channels: [128, 256, 512]

RPN:
    TYPE: 'MultiRPN'
    WEIGHTED: True
    KWARGS:
        anchor_num: 5
        in_channels: [128, 256, 512]
        weighted: true

MASK:
    MASK: False

ANCHOR:
    STRIDE: 8
    RATIOS: [0.33, 0.5, 1, 2, 3]
    SCALES: [8]
    ANCHOR_NUM: 5

TRACK:
    TYPE: 'SiamRPNLTTracker'
    PENALTY_K: 0.05
    WINDOW_INFLUENCE: 0.28
    LR: 0.22
    EXEMPLAR_SIZE: 127
    INSTANCE_SIZE: 255
    BASE_SIZE: 8
    CONTEXT_AMOUNT: 0.5
    CONFIDENCE_LOW: 0.8
    CONFIDENCE_HIGH: 0.998
"""
# The same tracker on the r50 (VOT) network, whose checkpoint is pysot's default model
R50_LT_YAML = PYSOT_LT_YAML.replace("[128, 256, 512]", "[256, 256, 256]")


def _assert_pysot_lt(cfg: ModelConfig) -> None:
    t = cfg.tracker
    assert t.long_term and (t.confidence_low, t.confidence_high) == (0.8, 0.998)
    assert (t.lost_instance_size, t.lost_score_size, t.score_size) == (831, 97, 25)
    assert (t.penalty_k, t.window_influence, t.lr) == (0.05, 0.28, 0.22)
    assert cfg.adjust.out_channels == (128, 256, 512) and cfg.rpn.in_channels == (128, 256, 512)
    assert cfg.rpn.weighted


def test_pysot_long_term_config_loads_unchanged(tmp_path):
    _assert_pysot_lt(load_config(_write(tmp_path, PYSOT_LT_YAML)))


def test_pysot_long_term_config_from_a_pysot_checkout_loads_unchanged():
    root = os.environ.get("PYSOT_ROOT")
    if not root:
        pytest.skip("PYSOT_ROOT is not set: set it to a STVIR/pysot checkout to read its own LT config")
    _assert_pysot_lt(load_config(Path(root) / "experiments" / "siamrpn_r50_l234_dwxcorr_lt" / "config.yaml"))


def test_short_term_configs_keep_pysot_long_term_defaults_and_stay_short_term():
    t = default_config("r50").tracker
    assert not t.long_term and (t.lost_instance_size, t.confidence_low, t.confidence_high) == (831, 0.85, 0.998)


@pytest.mark.parametrize("old,new,words", [
    ("    CONTEXT_AMOUNT: 0.5\n    CONFIDENCE", "    CONTEXT_AMOUNT: 0.5\n    LOST_INSTANCE_SIZE: 830\n    CONFIDENCE",
     ["TRACK.LOST_INSTANCE_SIZE 830", "EXEMPLAR_SIZE 127", "STRIDE 8", "823 or 831"]),
    ("INSTANCE_SIZE: 255", "INSTANCE_SIZE: 256", ["TRACK.INSTANCE_SIZE 256", "255 or 263"]),
    ("    CONTEXT_AMOUNT: 0.5\n    CONFIDENCE", "    CONTEXT_AMOUNT: 0.5\n    LOST_INSTANCE_SIZE: 255\n    CONFIDENCE",
     ["TRACK.LOST_INSTANCE_SIZE 255", "larger than", "INSTANCE_SIZE 255"]),
    ("CONFIDENCE_LOW: 0.8", "CONFIDENCE_LOW: 0.999", ["CONFIDENCE_LOW 0.999", "CONFIDENCE_HIGH 0.998"]),
    ("ADJUST_CHANNEL: [128, 256, 512]", "ADJUST_CHANNEL: [256, 256, 256]",
     ["ADJUST.ADJUST_CHANNEL", "ADJUST.KWARGS.out_channels"]),
])
def test_bad_long_term_configs_are_rejected_by_key(tmp_path, old, new, words):
    _assert_rejected_naming(tmp_path, PYSOT_LT_YAML, old, new, words)


def test_a_long_term_model_spec_carries_the_lost_search_size_measured_on_the_network(tmp_path):
    spec = load_config(_write(tmp_path, R50_LT_YAML)).model_spec()
    assert (spec.instance_size, spec.score_size, spec.lost_instance_size, spec.lost_score_size) == (255, 25, 831, 97)
    assert spec.search_sizes == (255, 831) and spec.cls_shape(2, 831) == (2, 10, 97, 97)
    larger = load_config(_write(tmp_path, R50_LT_YAML.replace("CONTEXT_AMOUNT: 0.5",
                                                              "CONTEXT_AMOUNT: 0.5\n    LOST_INSTANCE_SIZE: 639")))
    assert (larger.model_spec().lost_instance_size, larger.model_spec().lost_score_size) == (639, 73)
    assert default_config("r50").model_spec().lost_instance_size == 0   # short-term: no large graph


def test_pysot_long_term_network_keeps_its_per_level_kernel_channels(tmp_path):
    # Its neck gives 128/256/512 channels per level: the spec carries them, each kernel its own.
    spec = load_config(_write(tmp_path, PYSOT_LT_YAML)).model_spec()
    assert spec.level_channels == (128, 256, 512)
    assert [spec.kernel_shape(1, k) for k in spec.kernel_names] == [
        (1, 128, 5, 5), (1, 128, 5, 5), (1, 256, 5, 5), (1, 256, 5, 5), (1, 512, 5, 5), (1, 512, 5, 5)]
    with pytest.raises(ValueError, match="pass the kernel name"):
        spec.kernel_shape(1)                       # no silent "first level's shape" for a mixed spec
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert default_config("r50").model_spec().level_channels == ()   # uniform levels: unchanged JSON meaning


def _shared_storage_checkpoint(path, key_shapes: dict) -> None:
    """A pysot-layout state dict whose tensors are views of one zero storage: a file of the largest
    tensor's size (torch.save stores a shared storage once), enough to exercise key/shape loading."""
    import torch

    biggest = max(int(np.prod(s)) for s in key_shapes.values())
    store = torch.zeros(biggest)
    state = {k: (store[:int(np.prod(s))].view(s) if not k.endswith("num_batches_tracked")
                 else torch.zeros(s, dtype=torch.int64)) for k, s in key_shapes.items()}
    torch.save(state, path)


def _pysot_keys(name: str) -> dict:
    listing = str(np.load(Path(__file__).parent / "data" / "pysot_model" / f"{name}.npz")["keys"])
    return {k: tuple(json.loads(s)) for k, _, s in (line.partition(" ") for line in listing.splitlines())}


def test_an_r50_checkpoint_loads_into_the_long_term_tracker_on_the_r50_network(tmp_path):
    import torch

    from export.checkpoint import load_checkpoint
    from export.model import build_model

    path = tmp_path / "model.pth"
    _shared_storage_checkpoint(path, _pysot_keys("r50"))   # pysot's own r50 key/shape listing
    cfg = load_config(_write(tmp_path, R50_LT_YAML))
    with torch.device("meta"):
        model = build_model(cfg)
    assert load_checkpoint(model, path, cfg).tensors == 458


def test_an_r50_checkpoint_with_pysot_s_long_term_network_names_the_differing_shapes(tmp_path):
    import torch

    from export.checkpoint import load_checkpoint
    from export.model import build_model
    from runtime.errors import CheckpointError

    path = tmp_path / "model.pth"
    _shared_storage_checkpoint(path, _pysot_keys("r50"))
    cfg = load_config(_write(tmp_path, PYSOT_LT_YAML))
    with torch.device("meta"):
        model = build_model(cfg)
    with pytest.raises(CheckpointError, match=r"(?s)0 missing, 0 unexpected.*neck\.downsample2"):
        load_checkpoint(model, path, cfg)


def test_pysot_long_term_network_has_pysot_s_keys_and_shapes(tmp_path):
    """Our build of the LT config against pysot's own ModelBuilder for it (listing recorded with the
    tracker fixture, tests/data/pysot_lt_tracker/README.md): r50's 458 key names, its own neck/head shapes."""
    import torch

    from export.model import build_model

    fixture = np.load(Path(__file__).parent / "data" / "pysot_lt_tracker" / "pysot_lt_tracker_replay.npz")
    with torch.device("meta"):
        model = build_model(load_config(_write(tmp_path, PYSOT_LT_YAML)))
    ours = "\n".join(f"{k} {list(v.shape)}" for k, v in model.state_dict().items())
    assert ours == str(fixture["model_keys"])
    assert [line.split(" ")[0] for line in ours.splitlines()] == list(_pysot_keys("r50"))

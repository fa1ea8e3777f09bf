"""export.config: pysot config.yaml files -> ModelConfig, built-in configs, ModelSpec.

Expected tracker values are the table of spec section 8 (pysot's experiments/*/config.yaml).
"""
from __future__ import annotations

import dataclasses

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
    ("TYPE: 'SiamRPNTracker'", "TYPE: 'SiamRPNLTTracker'", ["TRACK.TYPE", "SiamRPNLTTracker"]),
    ("    PRETRAINED:", "    CHANNELS: [512, 1024, 2048]\n    PRETRAINED:", ["BACKBONE.CHANNELS"]),
    ("        weighted: true", "        weighted: true\n        bogus: 1", ["RPN.KWARGS.bogus"]),
    ("ANCHOR_NUM: 5", "ANCHOR_NUM: 7", ["ANCHOR.ANCHOR_NUM", "7"]),
    ("META_ARC:", "SOMETHING: 1\nMETA_ARC:", ["SOMETHING"]),
])
def test_unsupported_or_invalid_configs_are_rejected_by_key(tmp_path, old, new, words):
    assert old in PYSOT_TRAINING_YAML
    path = _write(tmp_path, PYSOT_TRAINING_YAML.replace(old, new, 1))
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

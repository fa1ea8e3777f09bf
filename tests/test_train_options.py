"""Fine-tuning options of `siamtrack train`: train only the backbone's last blocks, a wider search-crop
scale jitter, and a digest that still resumes runs started before these options existed."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from bench.synth import SynthConfig, generate
from runtime.errors import InputError
from train.loop import LATE_FIELDS, TrainConfig, TrainError, main, train

TINY = SynthConfig(width=200, height=160, frames=6, distractors=0, occlusion=False)


@pytest.fixture(scope="module")
def sequences():
    return [generate(s, TINY) for s in (21, 22)]


def _lite0(**kw):
    base = dict(config="lite0", steps=2, batch=2, warmup_steps=1, pretrained=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_unfreeze_blocks_trains_the_last_blocks_and_keeps_the_rest():
    from train.loop import _param_groups, _set_backbone_trainable, build_training_model

    cfg = _lite0(unfreeze_at=0, unfreeze_blocks=2)
    _, model = build_training_model(cfg)
    _set_backbone_trainable(model, cfg, True)
    trainable = {n.split(".")[2] for n, p in model.backbone.named_parameters(prefix="backbone") if p.requires_grad}
    assert trainable == {"6", "7"}                    # lite0 has blocks 0..7: only the last two train
    backbone_group = _param_groups(model, cfg, True)[1]
    assert backbone_group["lr_mult"] == cfg.backbone_lr_mult
    assert {id(p) for p in backbone_group["params"]} == {
        id(p) for p in model.backbone.parameters() if p.requires_grad}
    whole = dataclasses.replace(cfg, unfreeze_blocks=None)
    _set_backbone_trainable(model, whole, True)
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_unfreeze_blocks_beyond_the_backbone_is_refused(tmp_path, sequences):
    with pytest.raises(TrainError, match="1..8"):
        train(_lite0(unfreeze_at=0, unfreeze_blocks=9), tmp_path, sequences=sequences, quiet=True)


def test_unfreeze_blocks_without_unfreeze_at_is_refused_on_the_command_line(tmp_path):
    with pytest.raises(InputError, match="--unfreeze-at"):
        main(["--unfreeze-blocks", "2", "--out", str(tmp_path)])


def test_search_scale_reaches_the_pair_sampler():
    from runtime.contract import TrackerConfig
    from train.augment import SEARCH_AUG
    from train.loop import pair_config

    assert pair_config(TrainConfig(), TrackerConfig()).search_aug == SEARCH_AUG     # pysot's by default
    wide = pair_config(TrainConfig(search_scale=0.35, search_shift=32), TrackerConfig()).search_aug
    assert (wide.scale, wide.shift, wide.blur) == (0.35, 32, SEARCH_AUG.blur)


def test_runs_started_before_the_late_options_keep_their_digest():
    cfg = TrainConfig()
    # the digest as computed before search_scale / unfreeze_blocks existed
    old = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in LATE_FIELDS}
    assert cfg.digest() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert TrainConfig(search_scale=0.35).digest() != cfg.digest()

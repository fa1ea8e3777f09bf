"""Training runs deterministically, checkpoints in pysot layout, resumes, and refuses bad input.

Uses the small AlexNet config with a random backbone and two tiny generated sequences so a few steps
take seconds; the shipped model's own run is recorded in models/lite0/CARD.md.
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.synth import SynthConfig, generate
from runtime.errors import SiamTrackError
from train.loop import TrainConfig, TrainError, train
from train.pairs import PairSampler

TINY = SynthConfig(width=200, height=160, frames=6, distractors=0, occlusion=False)


@pytest.fixture(scope="module")
def sequences():
    return [generate(s, TINY) for s in (11, 12)]


def _cfg(**kw):
    base = dict(config="alex", steps=3, batch=2, warmup_steps=1, pretrained=False, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def test_same_seed_gives_the_same_loss_curve(tmp_path, sequences):
    a = train(_cfg(), tmp_path / "a", sequences=sequences, quiet=True)
    b = train(_cfg(), tmp_path / "b", sequences=sequences, quiet=True)
    # identical inputs, order and initialisation on the same CPU: equal to float rounding of the sums
    np.testing.assert_allclose(np.array(a.losses), np.array(b.losses), rtol=0, atol=1e-6)
    assert len(a.losses) == 3 and np.isfinite(np.array(a.losses)).all()


def test_checkpoint_is_a_pysot_flat_state_dict_that_loads_strictly(tmp_path, sequences):
    import torch

    from export.config import default_config
    from export.model import build_model

    train(_cfg(), tmp_path, sequences=sequences, quiet=True)
    state = torch.load(tmp_path / "model.pth", map_location="cpu", weights_only=True)
    assert len(state) == 75 and "rpn_head.cls.conv_kernel.0.weight" in state
    build_model(default_config("alex")).load_state_dict(state, strict=True)
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "loss.png").stat().st_size > 1000


def test_an_interrupted_run_resumed_gives_the_uninterrupted_loss_curve(tmp_path, sequences):
    straight = train(_cfg(steps=4), tmp_path / "straight", sequences=sequences, quiet=True)
    first = train(_cfg(steps=4), tmp_path / "split", sequences=sequences, quiet=True, stop_after=2)
    assert first.step == 2
    resumed = train(_cfg(steps=4), tmp_path / "split", sequences=sequences, quiet=True, resume=True)
    assert resumed.step == 4
    # model, optimiser momentum and both random generators are restored, so steps 3-4 repeat exactly
    np.testing.assert_allclose(np.array(resumed.losses), np.array(straight.losses), rtol=0, atol=1e-6)


def test_resume_from_a_run_with_other_settings_is_refused(tmp_path, sequences):
    train(_cfg(), tmp_path, sequences=sequences, quiet=True)
    with pytest.raises(TrainError, match="other settings"):
        train(_cfg(search_shift=0.0), tmp_path, sequences=sequences, quiet=True, resume=True)


def test_sequences_without_two_visible_boxes_give_no_usable_pairs():
    seq = generate(13, TINY)
    seq.gt_xywh[1:] = np.nan
    with pytest.raises(SiamTrackError, match="no usable training pairs"):
        PairSampler([seq])


def test_zero_size_boxes_are_never_sampled():
    seq = generate(14, TINY)
    seq.gt_xywh[2:, 2] = 0.0                      # only frames 0 and 1 remain usable
    sampler = PairSampler([seq])
    assert sampler.frames[0].tolist() == [0, 1]

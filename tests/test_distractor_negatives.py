"""Distractor negatives (issue 20, DaSiamRPN's semantic negatives): generated sequences record where their
distractors are, and a share of the negative training pairs is centred on one of them instead of on an
unrelated target. Off by default, and then pysot's sampling and random stream are untouched."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench import synth
from bench.sequences import Sequence
from runtime.errors import InputError
from train.augment import AugmentConfig
from train.pairs import PairConfig, PairSampler, crop511

SCENE = synth.SynthConfig(width=200, height=150, frames=12, distractors=2, occlusion=False, blur=False,
                          lighting=False, max_rotation_deg=0.0)
NO_JITTER = AugmentConfig(shift=0, scale=0, blur=0, color=0)


def _sequence(seed=7):
    return synth.generate(seed, SCENE)


def test_generated_sequences_record_each_distractors_box_per_frame():
    seq = _sequence()
    boxes = seq.attributes["distractor_xywh"]
    assert boxes.shape == (12, 2, 4)
    frames = list(synth.iter_frames(7, SCENE))
    for i, item in enumerate(frames):
        assert np.array_equal(item.distractor_xywh, boxes[i])
        assert np.array_equal(item.frame, seq.frames[i])
    # clipped to the frame, and they move from frame to frame as the distractors do
    assert (boxes[..., 0] >= 0).all() and (boxes[..., 0] + boxes[..., 2] <= 200 + 1e-9).all()
    assert not np.allclose(boxes[0], boxes[-1])


def test_the_recorded_box_is_the_extent_of_the_drawn_distractor():
    # rebuild the first frame's movers from the same random stream and draw each distractor alone
    seed = 11
    rng = np.random.default_rng(seed)
    _, _, distractors, _ = synth._sequence_movers(rng, SCENE, synth.source_paths(synth.split_of_seed(seed)))
    recorded = next(synth.iter_frames(seed, SCENE)).distractor_xywh
    for d, box in zip(distractors, recorded):
        mask = d.paste(np.zeros((150, 200, 3), np.float32))
        ys, xs = np.nonzero(mask > 0.5)
        assert len(xs) > 0
        np.testing.assert_allclose(box, [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()],
                                   atol=1.5)


def _pairs(sampler, n, seed=0):
    rng = np.random.default_rng(seed)
    return [sampler.sample(rng) for _ in range(n)]


def test_distractor_negatives_are_centred_on_a_distractor_of_the_templates_sequence():
    seq = _sequence()
    cfg = PairConfig(neg=1.0, neg_distractor=1.0, search_aug=NO_JITTER, template_aug=NO_JITTER)
    sampler = PairSampler([seq], cfg)
    expected = []       # every search crop a distractor negative could be: each frame, each distractor
    for f in range(len(seq)):
        for box in seq.attributes["distractor_xywh"][f]:
            if box[2] >= 8 and box[3] >= 8:
                x_img = crop511(seq.frame(f), box, cfg.tracker)
                lo = (511 - 255) // 2
                expected.append(x_img[lo:lo + 255, lo:lo + 255].astype(np.float32).transpose(2, 0, 1))
    for pair in _pairs(sampler, 6):
        assert pair.negative and (pair.targets.cls != 1).all()          # labelled as a negative pair
        close = [float(np.abs(pair.search - e).mean()) for e in expected]
        assert min(close) < 1.0, "the search crop is not centred on any distractor of the sequence"


def test_off_by_default_and_inert_when_off():
    seq = _sequence()
    assert PairConfig().neg_distractor == 0.0
    bare = Sequence(name=seq.name, frames=seq.frames, gt_xywh=seq.gt_xywh, absent=seq.absent)   # no boxes
    a = _pairs(PairSampler([seq, _sequence(8)]), 12)
    b = _pairs(PairSampler([bare, _sequence(8)]), 12)
    for x, y in zip(a, b):           # the recorded boxes change nothing: same pairs, same random stream
        assert np.array_equal(x.search, y.search) and np.array_equal(x.template, y.template)
        assert x.negative == y.negative


def test_sequences_without_distractor_boxes_fall_back_to_ordinary_negatives():
    seq = _sequence()
    bare = Sequence(name="real", frames=seq.frames, gt_xywh=seq.gt_xywh, absent=seq.absent)
    other = synth.generate(9, dataclasses.replace(SCENE, distractors=0))
    sampler = PairSampler([bare, other], PairConfig(neg=1.0, neg_distractor=1.0))
    assert all(p.negative for p in _pairs(sampler, 6))


def test_distractor_negatives_change_the_pairs_when_on():
    seq = _sequence()
    on = _pairs(PairSampler([seq, _sequence(8)], PairConfig(neg=1.0, neg_distractor=1.0)), 6)
    off = _pairs(PairSampler([seq, _sequence(8)], PairConfig(neg=1.0)), 6)
    assert any(not np.array_equal(x.search, y.search) for x, y in zip(on, off))


def test_train_option_keeps_old_digests_and_is_checked(tmp_path):
    from train.loop import LATE_FIELDS, TrainConfig, build_parser, main, pair_config
    from runtime.contract import TrackerConfig

    assert LATE_FIELDS["neg_distractor"] == 0.0
    assert TrainConfig(neg_distractor=0.6).digest() != TrainConfig().digest()
    args = build_parser().parse_args(["--out", "x", "--neg-distractor", "0.6"])
    assert args.neg_distractor == 0.6
    assert pair_config(TrainConfig(neg_distractor=0.6), TrackerConfig()).neg_distractor == 0.6
    with pytest.raises(InputError, match="--neg-distractor"):
        main(["--out", str(tmp_path), "--neg-distractor", "1.5"])

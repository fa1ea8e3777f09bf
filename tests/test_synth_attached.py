"""bench.synth attached targets (issue 20): the target is a window of a larger pasted body, the ground
truth stays the window, the default leaves every sequence as it was, and `siamtrack train` passes it on."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bench import synth
from runtime.errors import InputError
from test_synth import assert_box_is_mask_extent

PLAIN = synth.SynthConfig(width=160, height=120, frames=10, distractors=0, occlusion=False, blur=False,
                          lighting=False, max_rotation_deg=0.0)
ATTACHED = dataclasses.replace(PLAIN, attached=1.0)


def test_default_is_off_and_draws_nothing_new():
    assert synth.SynthConfig().attached == 0.0
    a = synth.generate(1_000_003, synth.SynthConfig(width=160, height=120, frames=6))
    b = synth.generate(1_000_003, synth.SynthConfig(width=160, height=120, frames=6, attached=0.0))
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    assert np.array_equal(a.gt_xywh, b.gt_xywh)


def test_the_manifest_of_a_default_set_is_unchanged():
    assert "attached" not in synth.set_request([1], synth.SynthConfig())["config"]
    assert synth.set_request([1], synth.SynthConfig(attached=0.5))["config"]["attached"] == 0.5


def test_attached_target_keeps_the_plain_targets_path_and_box():
    # the body comes from its own random stream, so the target moves exactly as without it
    for seed in (1_000_010, 1_000_011, 5):
        plain = list(synth.iter_frames(seed, PLAIN))
        att = list(synth.iter_frames(seed, ATTACHED))
        boxes_p = np.array([f.box_xywh for f in plain])
        boxes_a = np.array([f.box_xywh for f in att])
        np.testing.assert_allclose(boxes_a, boxes_p, atol=1e-6)
        # the background (drawn first) is the same; something beyond the box differs: the body
        outside = np.ones(plain[0].frame.shape[:2], bool)
        x, y, w, h = boxes_p[0]
        outside[max(int(y) - 1, 0):int(np.ceil(y + h)) + 1, max(int(x) - 1, 0):int(np.ceil(x + w)) + 1] = False
        diff = np.abs(att[0].frame.astype(int) - plain[0].frame.astype(int)).sum(axis=2) > 0
        assert diff[outside].sum() > 0.2 * w * h          # at least a quarter-side strip of body outside the box
        assert not diff[outside].all()                    # the rest of the frame is the same background


def test_box_is_the_extent_of_the_window_not_of_the_body():
    for seed in (1_000_012, 1_000_013):
        for item in synth.iter_frames(seed, ATTACHED):
            assert_box_is_mask_extent(item)          # the window's mask, not the body's
            assert item.visible_fraction == 1.0 and not item.absent


def test_body_moves_rigidly_with_the_target():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)
    m = synth._Mover(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8), 80, 60, 0, 0, 20.0, 30.0)
    synth._attach_body(np.random.default_rng(4), m, img)
    x0, y0, x1, y1 = m.window
    assert (x1 - x0, y1 - y0) == (20, 30) and m.patch.shape[:2] != (30, 20)
    for scale, angle, cx in ((1.0, 0.0, 80), (1.3, 5.0, 95), (0.7, -3.0, 70)):
        m.scale, m.angle, m.cx = scale, angle, cx
        t = m.matrix()
        centre = t @ np.array([(x0 + x1) / 2, (y0 + y1) / 2, 1.0])
        np.testing.assert_allclose(centre, [cx, 60])    # the window's centre is the target's position
        # one affine map for window and body: the body's corners keep their offset in window units
        ph, pw = m.patch.shape[:2]
        corner = t @ np.array([0.0, 0.0, 1.0]) - centre
        expect = t[:, :2] @ np.array([-(x0 + x1) / 2, -(y0 + y1) / 2])
        np.testing.assert_allclose(corner, expect)


def test_attached_sequences_are_deterministic_and_a_share_of_them():
    cfg = dataclasses.replace(PLAIN, frames=3, attached=0.5)
    a, b = synth.generate(1_000_020, cfg), synth.generate(1_000_020, cfg)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    plain = dataclasses.replace(cfg, attached=0.0)
    changed = sum(not np.array_equal(synth.generate(s, cfg).frames[0], synth.generate(s, plain).frames[0])
                  for s in range(1_000_030, 1_000_050))
    assert 4 <= changed <= 16                              # about half of 20


def test_synth_cli_writes_attached_sets_and_refuses_bad_fractions(tmp_path):
    synth.main(["--out", str(tmp_path / "s"), "--count", "1", "--frames", "2", "--size", "96x72",
                "--attached", "1"])
    assert json.loads((tmp_path / "s" / synth.SET_MANIFEST).read_text())["config"]["attached"] == 1.0
    with pytest.raises(InputError, match="--attached"):
        synth.main(["--out", str(tmp_path / "t"), "--attached", "1.5"])


def test_train_passes_the_fraction_to_the_generated_sequences(monkeypatch):
    from train import loop

    seen = []
    monkeypatch.setattr(synth, "generate", lambda seed, cfg: seen.append(cfg.attached) or seed)
    assert loop.load_sequences(["synth:2"], 4, 0, 0.5) == [0, 1]
    assert loop.load_sequences(["synth:1"], 4, 0) == [0]
    assert seen == [0.5, 0.5, 0.0]


def test_train_option_keeps_old_digests_and_is_checked(tmp_path):
    from train.loop import LATE_FIELDS, TrainConfig, build_parser, main

    assert LATE_FIELDS["synth_attached"] == 0.0
    assert TrainConfig(synth_attached=0.5).digest() != TrainConfig().digest()
    assert build_parser().parse_args(["--out", "x", "--synth-attached", "0.5"]).synth_attached == 0.5
    assert "--synth-attached" in build_parser().format_help()
    with pytest.raises(InputError, match="--synth-attached"):
        main(["--out", str(tmp_path), "--synth-attached", "2"])

"""The shipped default model (models/lite0) loads strictly and tracks held-out sequences.

Guards the committed checkpoint and config against silent breakage (a renamed module, a changed
backbone, a corrupted file): such a model would fall to the static baseline's level.
"""
from __future__ import annotations


import pytest

from tests.conftest import ROOT

MODEL = ROOT / "models" / "lite0"


def test_shipped_checkpoint_loads_strictly_with_its_config():
    from runtime.backends.pyt import TorchBackend

    backend = TorchBackend.from_checkpoint(str(MODEL / "config.yaml"), str(MODEL / "model.pth"))
    assert backend.load_report.tensors == len(backend.model.state_dict())
    assert backend.spec.kernel_names == ("kernel_cls2", "kernel_loc2", "kernel_cls3", "kernel_loc3")


@pytest.mark.slow
def test_shipped_model_beats_the_static_baseline_on_held_out_sequences():
    from bench.synth import TEST_SEEDS, SynthConfig, generate
    from runtime.backends.pyt import TorchBackend
    from runtime.tracker import SiamRPNTracker
    from train.evaluate import StaticTracker, success_auc

    seqs = [generate(TEST_SEEDS.start + i, SynthConfig(frames=30)) for i in range(3)]
    backend = TorchBackend.from_checkpoint(str(MODEL / "config.yaml"), str(MODEL / "model.pth"))
    trained, _ = success_auc(lambda: SiamRPNTracker(backend), seqs)
    static, _ = success_auc(StaticTracker, seqs)
    # models/lite0/CARD.md measures a gap of about 0.4 AUC on 10 such sequences; 0.15 leaves room for
    # the variance of 3 short sequences while still failing for a model that does not track
    assert trained > static + 0.15, (trained, static)


# A held-out real-video target (bench/data/real_video, splits.json): the rabbit's body while the camera
# zooms in, so its box grows about 8x in area over 132 frames. The shipped model must follow that size:
# median |log(area_pred / area_gt)| below SCALE_BOUND, and track better than a box held still.
REAL_SEQUENCE = "bunny-2"
# Measured 0.98 for models/lite0 (models/lite0/CARD.md, "Real video"); a box that keeps its first size
# scores 2.06 and the tracker values tuned on the tuning split (LR 0.02, size nearly frozen) 1.83.
# 1.4 (a box within e^1.4 = 4x of the target's area at the median frame) leaves 0.4 for platform
# differences in the float math and fails both of those, and any box that runs further away in scale.
SCALE_BOUND = 1.4


def _track_real(backend, config=None):
    from bench.accuracy import track_ope
    from bench.failure_modes import failure_modes, static_boxes
    from bench.metrics import ope_scores
    from bench.real_video import SET_ROOT
    from bench.sequences import read_dataset
    from runtime.tracker import SiamRPNTracker

    seq = read_dataset("otb", SET_ROOT, names=[REAL_SEQUENCE]).sequences[0]
    boxes, _ = track_ope(SiamRPNTracker(backend, config), seq)
    static = ope_scores(seq.gt_xywh, static_boxes(seq.gt_xywh)).auc
    return failure_modes(seq.gt_xywh, boxes).scale_error, ope_scores(seq.gt_xywh, boxes).auc, static


@pytest.mark.slow
def test_shipped_model_follows_the_target_size_on_held_out_real_video():
    from runtime.backends.pyt import TorchBackend

    backend = TorchBackend.from_checkpoint(str(MODEL / "config.yaml"), str(MODEL / "model.pth"))
    scale_error, auc, static_auc = _track_real(backend)
    assert scale_error < SCALE_BOUND, scale_error
    # measured 0.47 against 0.17 for the still box; a model with an untrained head scores 0.01 here (its
    # scale error, 0.75, alone would pass: a box that wanders keeps a plausible size)
    assert auc > static_auc + 0.15, (auc, static_auc)

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

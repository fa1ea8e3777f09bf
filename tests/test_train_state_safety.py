"""`siamtrack train --resume` never runs code from train_state.pt: it loads tensors and plain data only."""
from __future__ import annotations

import pytest

from bench.synth import SynthConfig, generate
from train.loop import TrainConfig, TrainError, train

TINY = SynthConfig(width=200, height=160, frames=6, distractors=0, occlusion=False)


class _WritesMarker:
    """Unpickling this calls open(marker, "w"): stands in for any code a crafted file could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _cfg(**kw):
    base = dict(config="alex", steps=2, batch=2, warmup_steps=1, pretrained=False, seed=5)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def sequences():
    return [generate(s, TINY) for s in (11, 12)]


def test_a_train_state_holding_a_pickled_object_is_refused_before_it_runs(tmp_path, sequences):
    import torch

    marker = tmp_path / "code-ran"
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"digest": _cfg().digest(), "payload": _WritesMarker(marker)}, run / "train_state.pt")
    with pytest.raises(TrainError, match="refused to resume"):
        train(_cfg(), run, sequences=sequences, quiet=True, resume=True)
    assert not marker.exists()


def test_the_state_written_by_train_holds_only_tensors_and_plain_data(tmp_path, sequences):
    import torch

    train(_cfg(), tmp_path, sequences=sequences, quiet=True, stop_after=1)
    saved = torch.load(tmp_path / "train_state.pt", map_location="cpu", weights_only=True)
    assert isinstance(saved["rng"], str) and isinstance(saved["state"], str)   # JSON text


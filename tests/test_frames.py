"""Frame and box validation: what the tracker accepts, converts and refuses."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.errors import InputError
from runtime.frames import as_bgr_frame, as_boxes


def test_bgr_uint8_frame_passes_through_without_copy():
    frame = np.zeros((4, 5, 3), np.uint8)
    assert as_bgr_frame(frame) is frame


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 1)])
def test_gray_frame_is_replicated_to_three_channels(shape):
    gray = np.arange(20, dtype=np.uint8).reshape(shape)
    bgr = as_bgr_frame(gray)
    assert bgr.shape == (4, 5, 3) and bgr.dtype == np.uint8
    for ch in range(3):
        np.testing.assert_array_equal(bgr[..., ch], gray.reshape(4, 5))


def test_bgra_frame_drops_alpha():
    bgra = np.random.default_rng(0).integers(0, 256, (4, 5, 4), dtype=np.uint8)
    bgr = as_bgr_frame(bgra)
    np.testing.assert_array_equal(bgr, bgra[..., :3])
    assert bgr.flags.c_contiguous


@pytest.mark.parametrize("bad, words", [
    (np.zeros((4, 5, 3), np.float32), "float32"),
    (np.zeros((4, 5, 2), np.uint8), "(4, 5, 2)"),
    (np.zeros((2, 4, 5, 3), np.uint8), "(2, 4, 5, 3)"),
    (np.zeros((0, 5, 3), np.uint8), "empty"),
    (None, "NoneType"),
    ([[1, 2, 3]], "list"),
])
def test_unusable_frames_raise_input_error_naming_the_problem(bad, words):
    with pytest.raises(InputError, match="frame") as err:
        as_bgr_frame(bad)
    assert words in str(err.value)


def test_single_box_and_box_array_are_accepted():
    boxes, single = as_boxes([1, 2, 3, 4], (10, 10))
    assert single and boxes.shape == (1, 4) and boxes.dtype == np.float64
    boxes, single = as_boxes(np.array([[1, 2, 3, 4], [0, 0, 5, 5]]), (10, 10))
    assert not single and boxes.shape == (2, 4)


def test_box_partly_outside_the_frame_is_accepted():
    boxes, _ = as_boxes([-5, 7, 10, 10], (10, 10))
    np.testing.assert_array_equal(boxes, [[-5, 7, 10, 10]])


@pytest.mark.parametrize("box, words", [
    ([1, 2, 0, 4], "> 0"),
    ([1, 2, 3, -1], "> 0"),
    ([1, float("nan"), 3, 4], "NaN"),
    ([1, 2, float("inf"), 4], "NaN"),
    ([-20, 2, 20, 4], "outside"),       # ends exactly at x = 0
    ([2, -9, 3, 4], "outside"),
    ([10, 2, 3, 4], "outside"),         # starts at x = W
    ([2, 10, 3, 4], "outside"),
    ([1, 2, 3], "shape"),
    ([["a", 2, 3, 4]], "numeric"),
])
def test_bad_boxes_raise_input_error(box, words):
    with pytest.raises(InputError) as err:
        as_boxes(box, (10, 10))
    assert words in str(err.value)


@pytest.mark.parametrize("box", [[0, 0, 12000, 9000], [0, 0, 1e9, 5], [0, 0, 5, 21]])
def test_a_box_more_than_twice_the_frame_is_refused_saying_why(box):
    with pytest.raises(InputError, match=r"more than 2x the 10x10 frame"):
        as_boxes(box, (10, 10))


def test_a_box_up_to_twice_the_frame_is_accepted():
    boxes, _ = as_boxes([-5, -5, 20, 20], (10, 10))
    assert boxes.tolist() == [[-5, -5, 20, 20]]


def test_the_tracker_refuses_a_billion_pixel_box_instead_of_running_out_of_memory(tmp_path):
    from runtime.backends import open_backend
    from runtime.tracker import SiamRPNTracker
    from tiny_tracker_model import write_tiny_tracker_model

    tracker = SiamRPNTracker(open_backend(str(write_tiny_tracker_model(tmp_path))))
    with pytest.raises(InputError, match="more than 2x"):
        tracker.init(np.zeros((240, 320, 3), np.uint8), [0, 0, 1e9, 100])


def test_frame_reader_refuses_a_folder_whose_frame_size_changes(tmp_path):
    import cv2

    from runtime.video_io import FrameReader

    for i, size in enumerate(((40, 50), (40, 50), (60, 50))):
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), np.zeros((*size, 3), np.uint8))
    frames = iter(FrameReader(tmp_path))
    next(frames), next(frames)
    with pytest.raises(InputError, match=r"0002\.png \(frame 2\) is 50x60 pixels but the sequence started at 50x40"):
        next(frames)

"""bench.synth long-term sequences: the target leaves the view or is fully occluded for a while and
reappears elsewhere; absent flags and ground truth say exactly when and where."""
from __future__ import annotations


import numpy as np
import pytest

from bench import synth
from bench.sequences import read_dataset
from runtime.errors import InputError

# no sweeping occluder: every absence here comes from a long-term event
LT = synth.SynthConfig(width=160, height=120, frames=60, long_term=True, occlusion=False, blur=False)
SEEDS = (1_000_001, 1_000_002, 1_000_003)


@pytest.fixture(scope="module")
def sequences():
    return {seed: list(synth.iter_frames(seed, LT)) for seed in SEEDS}


def test_schedule_alternates_kinds_inside_the_sequence_with_visible_frames_between():
    for seed in SEEDS:
        events = synth.long_term_events(seed, LT)
        assert len(events) == LT.absences
        assert {e.kind for e in events} == {synth.OUT_OF_VIEW, synth.OCCLUSION}
        lo, hi = LT.absence_frames
        assert all(lo <= e.stop - e.start <= hi for e in events)
        assert events[0].start >= 10 and events[-1].stop + synth.MIN_VISIBLE_FRAMES <= LT.frames
        assert all(b.start - a.stop >= synth.MIN_VISIBLE_FRAMES for a, b in zip(events, events[1:]))


def test_absent_exactly_during_the_events(sequences):
    for seed, items in sequences.items():
        during = np.zeros(LT.frames, bool)
        for e in synth.long_term_events(seed, LT):
            during[e.start:e.stop] = True
            assert all(items[i].event == e.kind for i in range(e.start, e.stop))
        assert [it.absent for it in items] == during.tolist()


def test_out_of_view_frames_have_no_box_and_occluded_ones_keep_the_hidden_box(sequences):
    for seed, items in sequences.items():
        for e in synth.long_term_events(seed, LT):
            for it in items[e.start:e.stop]:
                if e.kind == synth.OUT_OF_VIEW:
                    assert np.all(np.isnan(it.box_xywh)) and it.visible_fraction == 0.0
                else:   # fully covered by the static occluder, its exact box still known
                    assert np.all(np.isfinite(it.box_xywh)) and it.visible_fraction < 0.02


def test_the_target_reappears_far_from_where_it_was_last_seen(sequences):
    short = min(LT.width, LT.height)

    def centre(box):
        return np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])

    for seed, items in sequences.items():
        for e in synth.long_term_events(seed, LT):
            before, after = centre(items[e.start - 1].box_xywh), centre(items[e.stop].box_xywh)
            # placed >= a third of the short side away, then one motion step (<= max_speed px) on that frame;
            # the box centre may also shift a few px where the box is clipped at the frame edge
            assert np.hypot(*(after - before)) >= short / 3 - LT.max_speed - 4
            assert items[e.stop].visible_fraction > 0.5


def test_long_term_sequences_are_deterministic_and_options_do_nothing_when_off():
    a = list(synth.iter_frames(1_000_004, LT))
    b = list(synth.iter_frames(1_000_004, LT))
    assert all(np.array_equal(x.frame, y.frame) for x, y in zip(a, b))
    short = synth.SynthConfig(width=96, height=64, frames=8)
    tweaked = synth.SynthConfig(width=96, height=64, frames=8, absences=5, absence_frames=(1, 2))
    assert all(np.array_equal(x.frame, y.frame) for x, y in zip(synth.iter_frames(1_000_004, short),
                                                                 synth.iter_frames(1_000_004, tweaked)))
    # a short-term set's manifest keeps its old keys, so existing generated sets stay current
    assert "long_term" not in synth.set_request([1], short)["config"]
    assert synth.set_request([1], LT)["config"]["long_term"] is True


def test_written_long_term_sequence_reads_back_with_nan_rows_and_absent_flags(tmp_path):
    synth.write_sequence(1_000_001, tmp_path / "s", LT)
    seq = read_dataset("folder", tmp_path).sequences[0]
    ref = synth.generate(1_000_001, LT)
    assert seq.absent.tolist() == ref.absent.tolist()
    assert np.array_equal(np.isnan(seq.gt_xywh), np.isnan(ref.gt_xywh)) and np.isnan(seq.gt_xywh).any()


def test_too_short_for_its_absences_is_refused_with_a_frame_count(tmp_path):
    with pytest.raises(InputError, match=r"use at least \d+ frames"):
        synth.main(["--out", str(tmp_path), "--count", "1", "--frames", "20", "--long-term"])
    assert not any(tmp_path.iterdir())
    assert len(synth.long_term_events(1_000_000, synth.SynthConfig(frames=60, long_term=True))) == 2

"""A generated sequence set is complete or refused: an interrupted `synth` never calibrates INT8 on part
of the data, and build.sh's calibration steps skip only when their inputs are unchanged."""
from __future__ import annotations

import pytest

import bench.synth as synth
from runtime.errors import InputError

SMALL = ["--split", "train", "--frames", "6", "--size", "96x72"]


def _interrupted_synth(root, monkeypatch, count=3, after=1):
    """`siamtrack synth --count 3` stopped by Ctrl-C after ``after`` sequences."""
    real, done = synth.write_sequence, []

    def write_then_interrupt(*args, **kw):
        if len(done) == after:
            raise KeyboardInterrupt
        done.append(real(*args, **kw))
        return done[-1]

    monkeypatch.setattr(synth, "write_sequence", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        synth.main(["--out", str(root), "--count", str(count), *SMALL])
    monkeypatch.setattr(synth, "write_sequence", real)


def test_calibration_refuses_a_set_whose_generation_was_interrupted(tmp_path, monkeypatch):
    from calibration.collect import sequences_from_dataset

    _interrupted_synth(tmp_path / "seqs", monkeypatch)
    with pytest.raises(InputError, match="incomplete generated set.*interrupted"):
        sequences_from_dataset("folder", tmp_path / "seqs", None, None)


def test_only_stale_regenerates_an_interrupted_set_and_then_says_up_to_date(tmp_path, monkeypatch, capsys):
    root = tmp_path / "seqs"
    _interrupted_synth(root, monkeypatch)
    capsys.readouterr()
    assert synth.main(["--out", str(root), "--count", "3", "--only-stale", *SMALL]) == 0
    assert "wrote 3 sequences" in capsys.readouterr().out
    assert len(synth.check_set(root)["sequences"]) == 3
    assert synth.main(["--out", str(root), "--count", "3", "--only-stale", *SMALL]) == 0
    assert "up to date" in capsys.readouterr().out


def test_a_smaller_set_written_over_a_larger_one_leaves_no_extra_sequence(tmp_path):
    cfg = synth.SynthConfig(width=96, height=72, frames=4)
    synth.write_set(tmp_path, [1, 2, 3], cfg)
    synth.write_set(tmp_path, [1, 2], cfg)
    assert synth.check_set(tmp_path)["sequences"] == ["synth-0000001", "synth-0000002"]
    assert not (tmp_path / "synth-0000003").exists()


def test_a_sequence_missing_from_a_complete_set_is_refused(tmp_path):
    import shutil

    synth.write_set(tmp_path, [1, 2], synth.SynthConfig(width=96, height=72, frames=4))
    shutil.rmtree(tmp_path / "synth-0000002")
    with pytest.raises(InputError, match="missing synth-0000002"):
        synth.check_set(tmp_path)


@pytest.mark.parametrize("args, message", [(["--count", "0"], "--count 0: nothing to generate"),
                                           (["--frames", "1"], "--frames 1: a sequence needs at least 2")])
def test_synth_refuses_an_empty_request_with_a_clear_message(tmp_path, args, message):
    with pytest.raises(InputError, match=message):
        synth.main(["--out", str(tmp_path / "s"), *args])
    assert not (tmp_path / "s").exists()


def test_collect_only_stale_skips_an_unchanged_set_and_redoes_a_changed_one(tmp_path, capsys):
    from calibration.collect import main
    from test_precision_report import write_micro_export

    model = write_micro_export(tmp_path / "m")
    seqs = tmp_path / "seqs"
    synth.write_set(seqs, [1, 2], synth.SynthConfig(width=96, height=72, frames=8))
    argv = [str(model), "--dataset", f"folder:{seqs}", "--out", str(tmp_path / "calib"), "--min-samples", "4",
            "--quiet", "--only-stale"]
    assert main(argv) == 0 and "recorded" in capsys.readouterr().out
    assert main(argv) == 0 and "up to date" in capsys.readouterr().out
    synth.write_set(seqs, [1, 2], synth.SynthConfig(width=96, height=72, frames=9))   # the data changed
    assert main(argv) == 0 and "recorded" in capsys.readouterr().out

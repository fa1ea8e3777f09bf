"""--tracker {auto,short-term,long-term}: chosen at open time in track, camera and the Python API; a
long-term request of an export without the large search graph fails at once naming the export command;
the live loop's lost state follows the long-term tracker's own state."""
from __future__ import annotations

import dataclasses
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest

from runtime.capture import PACE_EVERY_FRAME, LatestFrameGrabber
from runtime.errors import ContractError
from runtime.live import LiveConfig, run_live
from runtime.lost import LostMonitor, TrackState
from runtime.sources import SourceError, SyntheticParams, SyntheticSource
from runtime.tracker_choice import tracker_config_for
from tiny_tracker_model import TINY_TRACKER

BOX = "20,20,24,24"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    import cv2

    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:04d}.png"), rng.integers(0, 255, (72, 96, 3), dtype=np.uint8))
    return folder


def _fake_backend(lost_size: int, long_term: bool = False):
    spec = SimpleNamespace(instance_size=TINY_TRACKER.instance_size, lost_instance_size=lost_size)
    return SimpleNamespace(name="fake", spec=spec, tracker_config=dataclasses.replace(
        TINY_TRACKER, long_term=long_term, lost_instance_size=lost_size or 831))


def test_auto_takes_the_configs_choice_and_the_explicit_choices_override_it():
    assert tracker_config_for(_fake_backend(40, long_term=True), "auto").long_term is True
    assert tracker_config_for(_fake_backend(40, long_term=False), "auto").long_term is False
    assert tracker_config_for(_fake_backend(40, long_term=True), "short-term").long_term is False
    assert tracker_config_for(_fake_backend(40, long_term=False), "long-term").long_term is True


def test_long_term_without_the_large_search_graph_names_the_export_command():
    with pytest.raises(ContractError, match=r"siamtrack export \.\.\. --lost-search"):
        tracker_config_for(_fake_backend(0), "long-term")
    with pytest.raises(ContractError, match="model's config asks for the long-term tracker"):
        tracker_config_for(_fake_backend(0, long_term=True), "auto")
    assert tracker_config_for(_fake_backend(0, long_term=False), "auto").long_term is False


def test_track_refuses_long_term_on_an_export_without_the_lost_graph(tiny_model, frames, capsys):
    from runtime.errors import run_main
    from runtime.track_cli import main

    code = run_main(main, "siamtrack track", ["--model", str(tiny_model), "--video", str(frames), "--box", BOX,
                                              "--tracker", "long-term"])
    err = capsys.readouterr().err
    assert code == 1 and "--lost-search" in err and "Traceback" not in err


def test_track_reports_which_tracker_ran(tiny_model, frames, capsys):
    from runtime.track_cli import main

    assert main(["--model", str(tiny_model), "--video", str(frames), "--box", BOX, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tracker"] == "short-term" and summary["lost_frames"] is None


def test_camera_refuses_long_term_before_tracking(tiny_model, tmp_path):
    from runtime.camera_cli import main

    out = tmp_path / "lines.jsonl"
    with pytest.raises(ContractError, match="--lost-search"):
        main(["--source", "synthetic://?width=96&height=72&fps=30", "--model", str(tiny_model), "--box", BOX,
              "--headless", "--max-frames", "2", "--json-out", str(out), "--tracker", "long-term"])
    assert not out.exists() or not out.read_text().strip()      # no frame was processed


def test_api_open_takes_a_tracker_choice(tiny_model):
    from siamtrack import Tracker

    with pytest.raises(ContractError, match="--lost-search"):
        Tracker.open(tiny_model, tracker="long-term")
    with Tracker.open(tiny_model, tracker="short-term") as tracker:
        assert tracker.long_term is False


@pytest.mark.parametrize("command", ["track", "camera", "accuracy", "trax"])
def test_help_teaches_what_long_term_does_and_needs(command, capsys):
    import importlib

    module = {"track": "runtime.track_cli", "camera": "runtime.camera_cli", "accuracy": "bench.accuracy",
              "trax": "serving.trax_server"}[command]
    with pytest.raises(SystemExit):
        importlib.import_module(module).main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--tracker", "long-term", "831", "--lost-search", "confidence_low"):
        assert words in text, words


def test_lost_monitor_follows_the_long_term_trackers_state_whatever_the_score():
    monitor = LostMonitor()
    assert monitor.update(0.99, tracker_lost=True) is TrackState.LOST        # at once, no 3-frame rule
    assert monitor.update(0.01, tracker_lost=False) is TrackState.TRACKING
    assert monitor.update(0.01) is TrackState.TRACKING                       # the score rule starts afresh


class _LTResult:
    def __init__(self, box, score, lost):
        self.box_xywh, self.score, self.lost = np.asarray(box, float), score, lost


class _LTStub:
    config = SimpleNamespace(long_term=True)

    def __init__(self, lost):
        self.lost, self.i = list(lost), 0

    def init(self, frame, box):
        self.box = np.asarray(box, float)

    def track(self, frame):
        lost = self.lost[min(self.i, len(self.lost) - 1)]
        self.i += 1
        return _LTResult(self.box, 0.95, lost)          # a confident score: the score rule would never lose


def _no_reopen():
    raise SourceError("test source cannot be reopened")


@pytest.mark.parametrize("follow", [True, False])
def test_live_loop_state_is_the_long_term_trackers_own(follow):
    src = SyntheticSource(SyntheticParams(fps=100, frames=6))
    out = io.StringIO()
    with LatestFrameGrabber(_no_reopen, source=src, pace=PACE_EVERY_FRAME) as grabber:
        summary = run_live(grabber, _LTStub([False, True, True, False, False]), box=(10, 10, 20, 20),
                           json_out=out, config=LiveConfig(tracker_lost_state=follow))
    states = [json.loads(line)["state"] for line in out.getvalue().splitlines()]
    if follow:
        assert states == ["init", "tracking", "lost", "lost", "tracking", "tracking"]
        assert summary.lost_frames == 2
    else:
        assert states == ["init"] + ["tracking"] * 5

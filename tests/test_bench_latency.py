"""siamtrack latency: per-stage statistics, several runs in fresh processes, one table, JSON."""
from __future__ import annotations

import json
import time

import pytest

from bench import latency, report


def test_stage_stats_are_median_and_linear_percentiles_in_ms():
    s = latency.stage_stats([0.001, 0.002, 0.003, 0.004])
    assert s["median_ms"] == pytest.approx(2.5)
    assert s["p90_ms"] == pytest.approx(3.7)      # numpy linear interpolation: 1 + 0.9 * 3
    assert s["p99_ms"] == pytest.approx(3.97)
    assert s["n"] == 4 and latency.stage_stats([]) == {}


def test_wall_cpu_timer_separates_waiting_from_computing():
    timer = latency.WallCpuTimer()
    with timer.stage("sleep"):
        time.sleep(0.05)
    with timer.stage("sleep"):
        time.sleep(0.05)
    assert len(timer.samples["sleep"]) == 2 and min(timer.samples["sleep"]) >= 0.05
    # sleeping costs (almost) no CPU; 25 ms of slack for a loaded machine's accounting granularity
    assert max(timer.cpu_samples["sleep"]) < 0.025


@pytest.mark.slow
def test_two_runs_in_fresh_processes_give_one_table_with_ratios_and_json(tmp_path, capsys):
    pytest.importorskip("torch", reason="the runs use the PyTorch backend")
    out = tmp_path / "lat.json"
    code = latency.main(["--run", "torch:alex", "--run", "torch:alex,seed=1,label=alex-seed1",
                         "--run", "onnxruntime:/nonexistent/folder", "--iterations", "3", "--warmup", "1",
                         "--template-iters", "2", "--size", "320x240", "--threads", "1", "--out", str(out)])
    assert code == 1                                           # one run failed; the others are measured
    table = capsys.readouterr().out
    data = json.loads(out.read_text())
    first, second = data["runs"]["torch-alex-fp32-random0"], data["runs"]["alex-seed1"]
    for r in (first, second):
        for stage in ("crop", "preprocess", "template", "search", "postprocess", "track_e2e"):
            st = r["stages"][stage]
            assert st["median_ms"] > 0 and st["p90_ms"] >= st["median_ms"] and st["p99_ms"] >= st["p90_ms"]
            assert st["cpu_median_ms"] >= 0
        assert r["stages"]["track_e2e"]["n"] == 3 and r["stages"]["template"]["n"] == 2
        # the child loaded torch and a model: its peak exceeds what it had before opening the backend
        assert r["peak_rss_mib"] > r["rss_before_open_mib"] > 0
        assert r["fps"] == pytest.approx(1000 / r["stages"]["track_e2e"]["median_ms"])
    assert "error" in data["runs"]["onnxruntime-folder-fp32"]
    assert "x first run" in table and "alex-seed1" in table and "## Errors" in table
    assert report.latency_markdown(data) == table.rstrip("\n") + "\n"


def test_host_time_is_each_track_call_minus_its_search_and_is_reported_with_its_cpu_time(tmp_path):
    # the tiny tracker model runs the real tracker and ONNX Runtime in milliseconds
    from tiny_tracker_model import write_tiny_tracker_model

    from bench.runs import Run

    model = write_tiny_tracker_model(tmp_path / "tiny")
    params = {"warmup": 1, "iterations": 6, "template_iters": 2, "frame_wh": [160, 120], "threads": 1}
    result = latency.measure(Run("onnxruntime", str(model), flavour="standard"), params)
    host, e2e, search = (result["stages"][k] for k in ("host", "track_e2e", "search"))
    assert host["n"] == e2e["n"] == search["n"] == 6
    # per frame host = e2e - search, so no statistic of host can exceed the same one of e2e
    assert 0 < host["min_ms"] <= e2e["min_ms"] and host["median_ms"] <= e2e["median_ms"]
    assert "cpu_median_ms" in host
    assert "host" in report.latency_markdown({"runs": {"tiny": result}, "environment": {}})


def test_the_replayed_host_path_repeats_the_recorded_run_box_for_box(tmp_path):
    # host_replay plays the recorded network outputs back through a new tracker over the same frames: the
    # same host work (same crops, same boxes, bit for bit) without the network on this CPU between frames
    from tiny_tracker_model import write_tiny_tracker_model

    from bench.runs import Run

    model = write_tiny_tracker_model(tmp_path / "tiny")
    params = {"warmup": 1, "iterations": 6, "template_iters": 2, "frame_wh": [160, 120], "threads": 1}
    result = latency.measure(Run("onnxruntime", str(model), flavour="standard"), params)
    replay = result["stages"]["host_replay"]
    assert replay["n"] == 6 and replay["min_ms"] > 0 and "cpu_median_ms" in replay
    assert result["replay_identical"] is True
    assert "host_replay" in report.latency_markdown({"runs": {"tiny": result}, "environment": {}})


def test_a_replay_that_takes_other_steps_is_flagged_not_reported_as_comparable():
    # outputs played back in the wrong order move the boxes elsewhere: the replay must say so
    import numpy as np

    from bench.synth import SynthConfig, TEST_SEEDS, iter_frames
    from runtime.backends.pyt import TorchBackend

    items = list(iter_frames(TEST_SEEDS.start, SynthConfig(width=160, height=120, frames=8)))
    frames = [it.frame for it in items]
    backend = TorchBackend.random("alex", seed=0)
    recorder = latency._Recorder(backend)
    from runtime.tracker import SiamRPNTracker

    tracker = SiamRPNTracker(recorder)
    tracker.init(frames[0], items[0].box_xywh)
    params = {"warmup": 0}
    for i in range(6):
        recorder.results.append(tracker.track(latency._track_frame(frames, i)))
    assert latency._replay_host(backend, recorder, frames, items[0].box_xywh, params)[2] is True
    recorder.outputs.reverse()
    assert latency._replay_host(backend, recorder, frames, items[0].box_xywh, params)[2] is False
    assert np.isfinite(recorder.results[-1].box_xywh).all()

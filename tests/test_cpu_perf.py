"""siamtrack cpu-perf: which rows a model folder gives, and how the table's ratio column is computed.

The measurements themselves are a benchmark (bench/cpu_perf.py, README performance section), not a
test: nothing here times anything.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from bench import cpu_perf
from bench.runs import Run


def _touch_pair(folder: Path, precision: str, flavour: str) -> None:
    for graph in ("template", "search"):
        (folder / f"{graph}.{precision}.{flavour}.onnx").write_bytes(b"")


def test_rows_are_the_variants_present_then_pytorch(tmp_path):
    _touch_pair(tmp_path, "fp32", "standard")
    _touch_pair(tmp_path, "int8", "standard")
    (tmp_path / "template.fp32.plugin.onnx").write_bytes(b"")      # half a pair: not a row
    torch_run = Run("torch", "r50", seed=0)
    rows = cpu_perf.plan_rows(tmp_path, torch_run)
    assert [r.label for r in rows] == ["ORT FP32 standard", "ORT INT8 (TensorRT placement)", "PyTorch backend"]
    assert rows[1].run.precision == "int8" and rows[1].run.flavour == "standard"


def test_the_cpu_int8_flavour_is_a_row_when_its_pair_exists(tmp_path):
    from runtime.contract import CPU_INT8_FLAVOUR

    _touch_pair(tmp_path, "fp32", "standard")
    assert "ORT INT8 (CPU placement)" not in [r.label for r in cpu_perf.plan_rows(tmp_path, None)]
    _touch_pair(tmp_path, "int8", CPU_INT8_FLAVOUR)
    row = cpu_perf.plan_rows(tmp_path, None)[-1]
    assert row.label == "ORT INT8 (CPU placement)" and row.run.flavour == CPU_INT8_FLAVOUR


def test_the_unshared_row_turns_weight_sharing_off_in_its_child_only(tmp_path):
    _touch_pair(tmp_path, "fp32", "standard")
    rows = cpu_perf.plan_rows(tmp_path, None, unshared=True)
    assert [r.env for r in rows] == [{}, {"SIAMTRACK_SHARE_WEIGHTS": "0"}]


def _cell(e2e_ms, host_ms=1.0):
    return {"stages": {"track_e2e": {"median_ms": e2e_ms, "cpu_median_ms": e2e_ms},
                       "host": {"median_ms": host_ms, "cpu_median_ms": host_ms}},
            "peak_rss_mib": 100.0, "load_average": [1.0, 1.0, 1.0]}


def test_speed_is_pytorch_ms_over_the_rows_ms_per_thread_setting():
    one, two = (name for name, _, _ in cpu_perf.THREAD_SETTINGS)
    results = {"ORT FP32 standard": {one: _cell(20.0), two: _cell(10.0)},
               "PyTorch backend": {one: _cell(30.0), two: _cell(30.0)}}
    cells = {(c["row"], c["setting"]): c for c in cpu_perf.summarize(results)}
    assert cells[("ORT FP32 standard", one)]["speed_vs_reference"] == pytest.approx(1.5)
    assert cells[("ORT FP32 standard", two)]["speed_vs_reference"] == pytest.approx(3.0)
    assert cells[("PyTorch backend", one)]["speed_vs_reference"] == pytest.approx(1.0)


def test_without_a_pytorch_row_there_is_no_ratio_and_a_failed_cell_shows_its_error():
    one, two = (name for name, _, _ in cpu_perf.THREAD_SETTINGS)
    results = {"ORT FP32 standard": {one: _cell(20.0), two: {"error": "timed out after 10 s"}}}
    cells = {(c["row"], c["setting"]): c for c in cpu_perf.summarize(results)}
    assert cells[("ORT FP32 standard", one)]["speed_vs_reference"] is None
    assert cells[("ORT FP32 standard", two)]["error"] == "timed out after 10 s"
    summary = {"model": "m", "frames": 60, "clip_name": "clip.mp4", "frame_wh": "1280x720", "results": results,
               "environment": {"cpu": {"model": "cpu", "cores": 2, "avx2": True, "avx512": False, "vnni": False,
                                       "int8_kernels": "k"}, "python": "3", "onnxruntime": "1"}}
    table = cpu_perf.format_table(summary)
    assert "error: timed out" in table and "avx2" in table and "1280x720" in table


def test_a_missing_model_folder_is_one_clear_error(tmp_path):
    from runtime.errors import InputError

    with pytest.raises(InputError, match="not a folder"):
        cpu_perf.main([str(tmp_path / "nope")])

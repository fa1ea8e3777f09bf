"""Atomic writes are durable: the temp file is fsynced before the rename and the folder after it.

A power cut after an unsynced rename can leave an empty or partial file under the final name (the data
and the folder entry reach the disk in any order). Each test records the fsync and rename system calls
that one writer makes and checks their order.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime import atomic


@pytest.fixture
def calls(monkeypatch):
    """Record ("fsync", path) and ("replace", src, dst) in order (paths resolved from the fd)."""
    log: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, *a, **kw):
        log.append(("replace", str(Path(src).resolve()), str(Path(dst).resolve())))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


def assert_durable(log, target: Path):
    """``target`` was renamed into place from a temp file that was fsynced before, and its folder after."""
    target = target.resolve()
    renames = [i for i, c in enumerate(log) if c[0] == "replace" and c[2] == str(target)]
    assert renames, f"no rename onto {target}: {log}"
    i = renames[-1]
    tmp = log[i][1]
    assert ("fsync", tmp) in log[:i], f"temp file not fsynced before the rename: {log}"
    assert ("fsync", str(target.parent)) in log[i + 1:], f"folder not fsynced after the rename: {log}"


def test_write_bytes_fsyncs_file_then_renames_then_fsyncs_folder(tmp_path, calls):
    atomic.write_bytes(tmp_path / "a.bin", b"abc")
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    assert_durable(calls, tmp_path / "a.bin")


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_written_files_are_readable_by_other_users_like_open_would_make_them(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_write_group_syncs_every_file_before_replacing_any(tmp_path, calls):
    a, b = tmp_path / "a", tmp_path / "b"
    atomic.write_group({a: b"1", b: b"2"})
    first_replace = next(i for i, c in enumerate(calls) if c[0] == "replace")
    assert sum(c[0] == "fsync" for c in calls[:first_replace]) == 2
    assert ("fsync", str(tmp_path.resolve())) in calls[first_replace:]
    assert a.read_bytes() == b"1" and b.read_bytes() == b"2"


def test_replace_dir_syncs_the_files_inside_before_the_rename(tmp_path, calls):
    tmp = tmp_path / ".set.tmp"
    (tmp / "sub").mkdir(parents=True)
    (tmp / "sub" / "f.txt").write_text("x")
    (tmp_path / "set").mkdir()
    atomic.replace_dir(tmp, tmp_path / "set")
    i = next(i for i, c in enumerate(calls) if c[0] == "replace")
    assert ("fsync", str((tmp / "sub" / "f.txt").resolve())) in calls[:i]
    assert ("fsync", str(tmp_path.resolve())) in calls[i + 1:]
    assert (tmp_path / "set" / "sub" / "f.txt").read_text() == "x"


# --- every writer of the project goes through it -------------------------------------------------

def test_engine_sidecar_writer_is_durable(tmp_path, calls):
    from runtime.engine_meta import write_atomic

    write_atomic(tmp_path / "x.engine.json", b"{}")
    assert_durable(calls, tmp_path / "x.engine.json")


def test_onnx_writer_is_durable(tmp_path, calls):
    import onnx

    from export.to_onnx import save_onnx_atomic

    model = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    save_onnx_atomic(model, tmp_path / "m.onnx")
    assert_durable(calls, tmp_path / "m.onnx")


def test_checkpoint_writer_is_durable(tmp_path, calls):
    import torch

    from export.checkpoint import save_checkpoint

    save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "model.pth")
    assert_durable(calls, tmp_path / "model.pth")


def test_quantized_graph_writer_is_durable(tmp_path, calls):
    from calibration.quantize import atomic_write_bytes

    atomic_write_bytes(tmp_path / "s.onnx", b"x", extra={tmp_path / "s.ranges.json": b"{}"})
    assert_durable(calls, tmp_path / "s.onnx")
    assert_durable(calls, tmp_path / "s.ranges.json")


def test_track_boxes_writer_is_durable(tmp_path, calls):
    from runtime.track_cli import _atomic_write_lines

    _atomic_write_lines(tmp_path / "boxes.txt", ["1,2,3,4\n"])
    assert_durable(calls, tmp_path / "boxes.txt")


def test_plugin_library_install_is_durable_and_executable(tmp_path, calls):
    from engines.plugin_build import _atomic_copy

    src = tmp_path / "built.so"
    src.write_bytes(b"\x7fELF")
    (tmp_path / "out").mkdir()
    _atomic_copy(src, tmp_path / "out" / "lib.so")
    assert_durable(calls, tmp_path / "out" / "lib.so")
    assert (tmp_path / "out" / "lib.so").stat().st_mode & 0o111


def test_synth_sequence_writer_is_durable(tmp_path, calls):
    from bench.synth import SynthConfig, write_sequence

    write_sequence(1_000_001, tmp_path / "seq", SynthConfig(width=64, height=48, frames=2))
    assert_durable(calls, tmp_path / "seq")

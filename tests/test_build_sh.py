"""build.sh: arguments checked before any work, one build per folder, steps that skip unchanged inputs,
and one clear line per skipped step.

One small build (seeded random lite0 weights, FP32 + FP16, no tracking run) is made once for the module
(about 20 s on 2 cores); the other tests rerun build.sh on copies of it.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--random-seed", "0", "--precisions", "fp32,fp16", "--no-eval"]


def build(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "build.sh"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def section(stdout: str, step: str) -> str:
    """The lines build.sh printed under '== <step>' (up to the next step header)."""
    text = stdout.replace("\r", "\n")
    match = re.search(rf"^== {re.escape(step)}.*?$(.*?)(?=^== |\Z)", text, re.S | re.M)
    assert match, f"no step {step} in:\n{stdout}"
    return match.group(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("build") / "m"
    proc = build(*SMALL, "--out", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


def _copy(built, tmp_path) -> Path:
    out = tmp_path / "m"
    shutil.copytree(built[0], out, symlinks=True)
    return out


@pytest.mark.parametrize("args, message", [
    (["--precisions", "fp32,fp64"], "--precisions: unknown value 'fp64'"),
    (["--config"], "--config needs a value"),
    (["--flavours", "plugin,cuda"], "--flavours: unknown value 'cuda'"),
    (["--max-batch", "0"], "--max-batch 0: expected a whole number from 1 to 64"),
    (["--random-seed", "1", "--checkpoint", "models/lite0/model.pth"], "exclude each other"),
])
def test_bad_arguments_are_refused_before_any_step_runs(tmp_path, args, message):
    started = time.monotonic()
    proc = build(*args, "--out", tmp_path / "never")
    assert proc.returncode == 2 and message in proc.stderr
    assert "unbound variable" not in proc.stderr and "== 1/7" not in proc.stdout
    assert not (tmp_path / "never").exists() and time.monotonic() - started < 10


def test_a_second_build_into_a_locked_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    with open(out / ".build.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        proc = build(*SMALL, "--out", out)
    assert proc.returncode == 1
    assert f"another build (PID {os.getpid()}) is writing {out}" in proc.stderr
    assert not list(out.glob("*.onnx"))


def test_a_rerun_with_unchanged_inputs_says_up_to_date_and_rewrites_nothing(built, tmp_path):
    out = _copy(built, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.onnx")}
    proc = build(*SMALL, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in section(proc.stdout, "1/7")
    assert section(proc.stdout, "2/7").count("up to date") == 4          # 2 graphs x 2 flavours
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.onnx")} == before


def test_only_the_stale_variant_is_regenerated(built, tmp_path):
    """An FP16 graph left from another export (a build killed between steps) is rebuilt, nothing else."""
    import onnx

    from runtime.contract import META_EXPORT_ID, merge_metadata_props

    out = _copy(built, tmp_path)
    stale = out / "search.fp16.standard.onnx"
    model = onnx.load(str(stale))
    merge_metadata_props(model, {META_EXPORT_ID: "from-an-older-export"})
    onnx.save(model, str(stale))
    proc = build(*SMALL, "--out", out)
    assert proc.returncode == 0, proc.stderr
    step2 = section(proc.stdout, "2/7")
    assert step2.count("up to date") == 3 and f"\n{stale}\n" in step2
    from runtime.onnx_meta import read_metadata

    assert read_metadata(stale)[META_EXPORT_ID] == read_metadata(out / "search.fp32.standard.onnx")[META_EXPORT_ID]


def test_skipped_steps_say_why_once_on_stdout(built):
    stdout = built[1].stdout
    step4, step5, step6 = (section(stdout, s) for s in ("4/7", "5/7", "6/7"))
    if shutil.which("nvcc"):
        assert "nvcc" not in step4.split("skipped:")[-1]                 # never blames an installed nvcc
    assert "plugin not built" in step4 or "skipped: plugin" not in step4  # the missing prerequisite, on stdout
    assert len(re.findall(r"skipped", step5)) == 1                       # one line, not one per engine
    assert "skipped: no engines" in step6 or "pass" in step6


def test_help_documents_verify_and_force():
    proc = build("--help")
    assert proc.returncode == 0 and "--verify" in proc.stdout and "--force" in proc.stdout


def test_verify_runs_last_and_passes_without_a_gpu(built, tmp_path):
    from runtime.gpu import gpu_status

    if gpu_status()[0]:
        pytest.skip("on a GPU machine --verify builds and times engines (minutes)")
    proc = build(*SMALL, "--out", _copy(built, tmp_path), "--verify")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.index("== 7/7") < proc.stdout.index("== verify") < proc.stdout.index("build.sh: done")


def test_a_short_term_build_says_the_long_term_graph_is_skipped_and_how_to_add_it(built):
    step1 = section(built[1].stdout, "1/7")
    assert "long-term search graph: skipped" in step1 and "--lost-search" in step1
    assert not list(built[0].glob("search_lost.*"))


def test_lost_search_adds_the_large_graph_and_its_variants_then_stays_up_to_date(built, tmp_path):
    out = _copy(built, tmp_path)
    proc = build(*SMALL, "--lost-search", "--out", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {p.name for p in out.glob("search_lost.*.onnx")} == {
        f"search_lost.{p}.{f}.onnx" for p in ("fp32", "fp16") for f in ("plugin", "standard")}
    rerun = build(*SMALL, "--lost-search", "--out", out)
    assert rerun.returncode == 0, rerun.stderr
    assert "up to date" in section(rerun.stdout, "1/7")
    assert section(rerun.stdout, "2/7").count("up to date") == 6          # 3 graphs x 2 flavours

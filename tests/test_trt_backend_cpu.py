"""The TensorRT backend on a machine without a GPU: every refusal is a clear SiamTrackError, raised
before any TensorRT object exists (TensorRT's Runtime without a GPU crashes the process).

The engines are real TensorRT-RTX AOT builds of the tiny graphs (tests/test_engine_build_rtx.py).
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import textwrap

import pytest

from runtime.engine_meta import read_sidecar, write_sidecar
from runtime.errors import BackendUnavailable, ContractError, InputError
from runtime.gpu import gpu_status

no_gpu = pytest.mark.skipif(gpu_status()[0], reason="checks the no-GPU path; this machine has a GPU")


@pytest.fixture()
def folder(tiny_rtx_engines, tmp_path):
    return shutil.copytree(tiny_rtx_engines, tmp_path / "copy")


@no_gpu
def test_no_gpu_is_refused_before_tensorrt_is_even_imported(tiny_rtx_engines):
    """Run in a fresh interpreter so sys.modules shows whether TensorRT was imported at all."""
    code = textwrap.dedent(f"""
        import sys
        from runtime.backends.trt import TrtBackend
        from runtime.errors import BackendUnavailable
        try:
            TrtBackend.from_dir({str(tiny_rtx_engines)!r})
        except BackendUnavailable as exc:
            print("refused:", exc)
        print("imported:", sorted(m for m in ("tensorrt", "tensorrt_rtx", "tensorrt_lean") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(_root()))
    assert out.returncode == 0, out.stderr
    assert "refused: TensorRT engine" in out.stdout and "needs an NVIDIA GPU: " + gpu_status()[1] in out.stdout
    assert "imported: []" in out.stdout


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


@no_gpu
def test_run_engine_without_gpu_is_refused(tiny_rtx_engines):
    from runtime.backends.trt import run_engine

    with pytest.raises(BackendUnavailable, match="needs an NVIDIA GPU"):
        run_engine(tiny_rtx_engines / "template.fp32.standard.engine", {})


def test_missing_engines_name_the_build_command(tmp_path):
    from runtime.backends.trt import TrtBackend

    with pytest.raises(InputError, match=r"search\.fp16\.standard\.engine.*python -m engines\.build"):
        TrtBackend.from_dir(tmp_path, precision="fp16", flavour="standard")


def test_engine_without_sidecar_is_refused(folder):
    from runtime.backends.trt import TrtBackend

    (folder / "search.fp32.standard.engine.json").unlink()
    with pytest.raises(ContractError, match="no sidecar search.fp32.standard.engine.json"):
        TrtBackend.from_dir(folder)


def test_engine_built_from_another_onnx_is_refused_with_the_rebuild_command(folder):
    import onnx

    from runtime.backends.trt import TrtBackend
    from tests.tiny_graphs import tiny_search_standard

    onnx.save(tiny_search_standard(seed=5), str(folder / "search.fp32.standard.onnx"))
    with pytest.raises(ContractError, match=r"(?s)search.fp32.standard.onnx changed.*python -m engines.build"):
        TrtBackend.from_dir(folder)


def test_missing_plugin_library_is_named(folder):
    from runtime.backends.trt import TrtBackend

    engine = folder / "search.fp32.standard.engine"
    write_sidecar(engine, dataclasses.replace(read_sidecar(engine), plugin_library="libsiamrpn_xcorr_plugin.so",
                                              plugin_sha256="f" * 64))
    with pytest.raises(ContractError, match=r"needs plugin library .*libsiamrpn_xcorr_plugin.so, which is missing"):
        TrtBackend.from_dir(folder)


def test_template_and_search_from_different_exports_are_refused(folder):
    from runtime.backends.trt import TrtBackend

    engine = folder / "template.fp32.standard.engine"
    write_sidecar(engine, dataclasses.replace(read_sidecar(engine), export_id="another-export"))
    with pytest.raises(ContractError, match="come from different exports"):
        TrtBackend.from_dir(folder)


@no_gpu
def test_cuda_errors_name_the_failing_call():
    from runtime.backends import cuda_mem

    with pytest.raises(BackendUnavailable, match=r"CUDA call cudaGetDeviceProperties failed: cudaError"):
        cuda_mem.device_identity()
    with pytest.raises(BackendUnavailable, match=r"CUDA call cudaStreamCreateWithFlags failed"):
        cuda_mem.Stream()


@no_gpu
def test_selfcheck_reports_every_engine_skipped_with_the_reason(tiny_rtx_engines, capsys):
    from engines.selfcheck import main

    assert main([str(tiny_rtx_engines)]) == 0
    out = capsys.readouterr().out
    for name in ("template.fp32.standard.engine", "search.fp32.standard.engine"):
        line = next(l for l in out.splitlines() if l.startswith(name))
        assert line.endswith(f"skipped: no GPU ({gpu_status()[1]})")

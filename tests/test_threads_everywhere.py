"""`--threads N` reaches every ONNX Runtime session (and torch) of the commands that create them outside
the tracking runtime: precision-report, calibrate, quantize, quantize-cpu, selfcheck (its ONNX Runtime
reference), train-eval (torch) and the nets a Triton repository serves (triton-repo). Issue 17: each session runs N intra-op threads, one inter-op thread,
and its idle pool threads do not spin.

Each command runs its real code path on the micro export of test_precision_report (15/31 px crops,
both xcorr flavours); ``onnxruntime.InferenceSession`` is replaced by a subclass that keeps every
session made, and each session's options are read back from the session itself. N is one more than the
CPUs this process may use, so it differs from every library default (the backend's: the usable CPUs;
ONNX Runtime's: 0, "choose").
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from runtime.contract import artifact_name
from test_precision_report import MICRO_SPEC, micro_sequences, write_micro_export

THREADS = len(os.sched_getaffinity(0)) + 1
SPINNING_KEY = "session.intra_op.allow_spinning"


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    """FP32 micro export (both flavours), a calibration set recorded from it, and an FP16 plugin variant."""
    from calibration.collect import JitterConfig, collect, model_identity
    from export.fp16 import convert_fp16
    from runtime.backends.onnxrt import OrtBackend

    root = write_micro_export(tmp_path_factory.mktemp("micro"))
    with OrtBackend.from_dir(root, flavour="plugin", threads=1) as fp32:
        collect(micro_sequences(1, 8), fp32, root / "calib", model_identity=model_identity(root, "plugin"),
                jitter=JitterConfig(templates=1, searches=1), min_samples=4)
    for graph in ("template", "search"):
        convert_fp16(root / artifact_name(graph, "fp32", "plugin", "onnx"),
                     root / artifact_name(graph, "fp16", "plugin", "onnx"))
    return root


@pytest.fixture
def sessions(monkeypatch):
    """Every ONNX Runtime session created while the test runs: SimpleNamespace(session, source)."""
    import onnxruntime as ort

    made = _Sessions()
    real = ort.InferenceSession

    class Recording(real):
        def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None, **kwargs):
            super().__init__(path_or_bytes, sess_options, providers, provider_options, **kwargs)
            made.append(SimpleNamespace(session=self, source=path_or_bytes if isinstance(path_or_bytes, str)
                                        else "<bytes>"))

    monkeypatch.setattr(ort, "InferenceSession", Recording)
    made.real = real    # to run a graph without recording it
    return made


class _Sessions(list):
    real: type


def _running(made):
    """The sessions that run inference: without those the backend opens only to write an optimised
    copy of a small graph (``runtime.backends.onnxrt_shared``, ``optimized_model_filepath`` set), which
    are closed without a run."""
    return [r for r in made if not r.session.get_session_options().optimized_model_filepath]


def _assert_threads(made, threads=THREADS, at_least=1):
    made = _running(made)
    assert len(made) >= at_least, f"expected at least {at_least} ONNX Runtime sessions, saw {len(made)}"
    for rec in made:
        opts = rec.session.get_session_options()
        where = f"session on {rec.source}"
        assert opts.intra_op_num_threads == threads, where
        assert opts.inter_op_num_threads == 1, where
        assert opts.get_session_config_entry(SPINNING_KEY) == "0", where


# ------------------------------------------------------------------------------------------ commands

def test_calibrate_runs_the_fp32_model_with_the_thread_count(micro, sessions, tmp_path):
    import cv2

    from calibration.collect import main

    seq = micro_sequences(1, 6)[0]
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(seq.frames):
        cv2.imwrite(str(frames / f"{i:04d}.png"), frame)
    box = ",".join(f"{v:g}" for v in seq.init_box_xywh)
    assert main([str(micro), "--video", str(frames), "--box", box, "--out", str(tmp_path / "calib"),
                 "--flavour", "plugin", "--jitter-templates", "1", "--min-samples", "2", "--quiet", "--json",
                 "--threads", str(THREADS)]) == 0
    _assert_threads(sessions, at_least=2)     # template and search graph


def test_quantize_calibrates_with_the_thread_count(micro, sessions, tmp_path):
    from calibration.quantize import main

    assert main([str(micro), "--calib", str(micro / "calib"), "--flavour", "plugin", "--out-dir", str(tmp_path),
                 "--quiet", "--json", "--threads", str(THREADS)]) == 0
    _assert_threads(sessions, at_least=2)     # one calibration session per graph


def test_quantize_without_threads_keeps_onnx_runtimes_default(micro, sessions, tmp_path):
    from calibration.quantize import main

    assert main([str(micro), "--calib", str(micro / "calib"), "--flavour", "plugin", "--out-dir", str(tmp_path),
                 "--quiet", "--json"]) == 0
    assert _running(sessions) and all(r.session.get_session_options().intra_op_num_threads == 0
                                      for r in _running(sessions))


def test_quantize_cpu_reaches_our_sessions_and_the_ort_quantizers_own(micro, sessions, tmp_path):
    from calibration.cpu_int8 import main
    from onnxruntime.quantization import calibrate as ort_calibrate

    method = ort_calibrate.CalibraterBase.create_inference_session
    assert main([str(micro), "--calib", str(micro / "calib"), "--out-dir", str(tmp_path), "--samples", "4",
                 "--json", "--threads", str(THREADS)]) == 0
    quantizer = [r for r in sessions if str(r.source).endswith("augmented_model.onnx")]
    assert len(quantizer) == 2, [r.source for r in sessions]   # ORT's calibration session, per graph
    _assert_threads(sessions, at_least=4)     # + the bias correction's calibration pass, per graph
    assert ort_calibrate.CalibraterBase.create_inference_session is method   # put back afterwards


def test_precision_report_opens_every_variant_with_the_thread_count(micro, sessions, capsys):
    from calibration.report import main

    assert main([str(micro), "--synthetic", "1", "--frames", "4", "--flavour", "plugin", "--precision", "fp16",
                 "--json", "--threads", str(THREADS)]) == 0
    assert set(json.loads(capsys.readouterr().out)["variants"]) == {"fp16"}
    _assert_threads(sessions, at_least=4)     # FP32 and FP16 template + search


def test_selfcheck_runs_its_onnx_runtime_reference_with_the_thread_count(micro, sessions, tmp_path, monkeypatch,
                                                                         capsys):
    # No GPU needed: the engine run is the only part replaced (by the same ONNX graph on a session that
    # is not recorded); the sidecars say what engines.build would write for the standard FP32 pair.
    import engines.selfcheck as selfcheck
    import runtime.backends.trt as trt
    import runtime.gpu as gpu

    for graph in ("template", "search"):
        shutil.copy(micro / artifact_name(graph, "fp32", "standard", "onnx"), tmp_path)
        (tmp_path / artifact_name(graph, "fp32", "standard", "engine")).write_bytes(b"not an engine")

    def read_sidecar(engine):
        graph = engine.name.split(".")[0]
        return SimpleNamespace(graph=graph, precision="fp32", flavour="standard", max_batch=2,
                               onnx_file=artifact_name(graph, "fp32", "standard", "onnx"),
                               model_spec=MICRO_SPEC.to_json())

    def run_engine(engine, feeds, plugin_library=None):
        sess = sessions.real(str(engine.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, {i.name: feeds[i.name] for i in sess.get_inputs()})))

    monkeypatch.setattr(selfcheck, "read_sidecar", read_sidecar)
    monkeypatch.setattr(gpu, "gpu_status", lambda: (True, ""))
    monkeypatch.setattr(trt, "run_engine", run_engine)
    assert selfcheck.main([str(tmp_path), "--json", "--threads", str(THREADS)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["pass", "pass"]
    _assert_threads(sessions, at_least=3)     # template reference; search: its kernels + its reference


def test_train_eval_runs_torch_with_the_thread_count(tmp_path, monkeypatch):
    import torch

    import train.evaluate as evaluate
    from export.checkpoint import build_random_model, save_checkpoint
    from export.config import resolve_config

    run = tmp_path / "alex"
    run.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "export" / "configs" / "alex.yaml", run / "config.yaml")
    save_checkpoint(build_random_model(resolve_config(str(run / "config.yaml")), 0), run / "model.pth")
    short = evaluate.test_sequences
    monkeypatch.setattr(evaluate, "test_sequences", lambda n, fast=False: short(n, fast, frames=3))
    seen = []
    auc = evaluate.success_auc

    def success_auc(factory, sequences):
        seen.append(torch.get_num_threads())
        return auc(factory, sequences)

    monkeypatch.setattr(evaluate, "success_auc", success_auc)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if THREADS != 1 else 2)
        assert evaluate.main(["--model", str(run), "--sequences", "1", "--bias-samples", "1", "--json",
                              "--threads", str(THREADS)]) == 0
    finally:
        torch.set_num_threads(before)
    assert seen and all(n == THREADS for n in seen), seen


# ---------------------------------------------------------------------------------------------- parsers

def test_triton_repository_threads_reach_the_sessions_the_server_opens(micro, sessions, tmp_path):
    # Triton's python backend opens the sessions, so the thread count is a repository setting
    # (`siamtrack triton-repo --threads`): written into each net's config, read back by the model at load
    import re

    from serving.triton.configs import SEARCH_MODEL, TEMPLATE_MODEL
    from serving.triton.models.nets import SearchNet, TemplateNet
    from serving.triton.repo import MODEL_VERSION
    from serving.triton.repo import main as repo_main

    repo = tmp_path / "repo"
    assert repo_main([str(micro), "--out", str(repo), "--threads", str(THREADS), "--json"]) == 0
    for net, name in ((TemplateNet, TEMPLATE_MODEL), (SearchNet, SEARCH_MODEL)):
        text = (repo / name / "config.pbtxt").read_text()
        params = dict(re.findall(r'key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"', text))
        assert params["threads"] == str(THREADS)
        # what the python backend hands a model at load: its config as JSON and where its files are
        args = {"model_config": json.dumps({"parameters": {k: {"string_value": v} for k, v in params.items()}}),
                "model_repository": str(repo / name), "model_version": MODEL_VERSION}
        net().initialize(args)
    _assert_threads(sessions, at_least=4)     # template and search graph, in each net


COMMANDS = {
    "precision-report": ("calibration.report", ["m", "--synthetic", "1"]),
    "train-eval": ("train.evaluate", ["--model", "m"]),
    "calibrate": ("calibration.collect", ["m", "--video", "v", "--box", "1,1,2,2"]),
    "quantize": ("calibration.quantize", ["m", "--calib", "c"]),
    "quantize-cpu": ("calibration.cpu_int8", ["m", "--calib", "c"]),
    "selfcheck": ("engines.selfcheck", ["f"]),
}


@pytest.mark.parametrize("value", ["0", "-1", "two"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_threads_below_one_is_refused_by_the_parser(command, value, capsys):
    import importlib

    module, args = COMMANDS[command]
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(module).main(args + ["--threads", value])
    assert exc.value.code == 2
    assert f"argument --threads: {value!r} is not a whole number >= 1" in capsys.readouterr().err


def test_every_command_lists_threads_in_its_help(capsys):
    import importlib

    from siamtrack.cli import COMMANDS as TABLE

    for command, (module, _) in COMMANDS.items():
        assert TABLE[command][0].split(":")[0] == module
        with pytest.raises(SystemExit):
            importlib.import_module(module).main(["--help"])
        assert "--threads THREADS" in capsys.readouterr().out, command


def test_the_python_api_refuses_zero_threads(micro, tmp_path):
    from calibration.cpu_int8 import quantize_cpu_pair
    from calibration.feeds import load_calibration
    from calibration.quantize import quantize_pair
    from calibration.report import evaluate
    from engines.selfcheck import selfcheck
    from runtime.errors import InputError

    calib = load_calibration(micro / "calib")
    src = [micro / artifact_name(g, "fp32", "plugin", "onnx") for g in ("template", "search")]
    calls = [lambda: evaluate(micro, [], threads=0),
             lambda: quantize_pair(*src, calib, tmp_path, "plugin", threads=0),
             lambda: quantize_cpu_pair(micro, calib, tmp_path, threads=0),
             lambda: selfcheck(tmp_path, threads=0)]
    for call in calls:
        with pytest.raises(InputError, match="threads=0"):
            call()

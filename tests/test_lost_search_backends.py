"""The long-term search graph (``search_lost``) in every backend, the engine plan, the engine build,
the self-check and the latency report, on the tiny long-term export of tests/lost_graphs.py
(search 16 px -> 11x11, search_lost 24 px -> 19x19, same weights).

TensorRT engines are real TensorRT-RTX ahead-of-time builds (no GPU here); what they do at run time is
not claimed (tests/test_trt_backend_gpu.py runs on a GPU machine).
"""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from engines.plan import BUILD, SKIP, BuildRequest, Listing, Machine, OnnxArtifact, make_plan, profile_shapes
from engines.trt_compat import Toolkit
from runtime.engine_meta import EngineBuildOptions, read_sidecar, write_sidecar
from runtime.errors import BackendUnavailable, ContractError
from runtime.gpu import gpu_status
from tests.lost_graphs import LOST_MAP, LOST_SIDE, TINY_LT, write_tiny_lt_folder

rtx = pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None,
                         reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) provides the CPU builder")
no_gpu = pytest.mark.skipif(gpu_status()[0], reason="checks the no-GPU path; this machine has a GPU")


@pytest.fixture(scope="module")
def lt_folder(tmp_path_factory):
    return write_tiny_lt_folder(tmp_path_factory.mktemp("lt") / "tiny", plugin=True)


# --- ONNX Runtime ------------------------------------------------------------------------------------

@pytest.mark.parametrize("flavour", ["standard", "plugin"])
def test_onnxruntime_runs_each_crop_size_on_its_own_graph(lt_folder, flavour):
    from runtime.backends.onnxrt import OrtBackend

    rng = np.random.default_rng(0)
    z = rng.uniform(0, 255, (2, 3, 8, 8)).astype(np.float32)
    x_lost = rng.uniform(0, 255, (2, 3, LOST_SIDE, LOST_SIDE)).astype(np.float32)
    with OrtBackend.from_dir(lt_folder, flavour=flavour) as backend:
        assert backend.spec == TINY_LT and backend.lost_path.name == f"search_lost.fp32.{flavour}.onnx"
        kernels = backend.run_template(z)
        cls, loc = backend.run_search(x_lost, kernels)
        assert cls.shape == (2, 2, LOST_MAP, LOST_MAP) and loc.shape == (2, 4, LOST_MAP, LOST_MAP)
        # the lost graph is the search network on a larger crop: its centre 16 px window gives the
        # search graph's 11x11 map, in the middle of the 19x19 one
        small, _ = backend.run_search(np.ascontiguousarray(x_lost[:, :, 4:20, 4:20]), kernels)
    np.testing.assert_allclose(cls[:, :, 4:15, 4:15], small, rtol=1e-5, atol=1e-5)


def test_onnxruntime_can_leave_the_lost_graph_closed(lt_folder):
    from runtime.backends.onnxrt import OrtBackend

    with OrtBackend.from_dir(lt_folder, lost=False) as backend:
        assert backend.lost_path is None and backend.spec.lost_instance_size == 0
        kernels = backend.run_template(np.zeros((1, 3, 8, 8), np.float32))
        with pytest.raises(ContractError, match="--lost-search"):
            backend.run_search(np.zeros((1, 3, LOST_SIDE, LOST_SIDE), np.float32), kernels)


# --- engine plan (pure) ------------------------------------------------------------------------------

RTX = Toolkit(product="tensorrt_rtx", version="1.7.1.116", builds_without_gpu=True, plugins=False, timing_cache=False)
NO_GPU = Machine(None, "no usable GPU")


def _listing(*names):
    return Listing({n: OnnxArtifact(n, n[:8].ljust(64, "0"), TINY_LT, "e1", ".plugin." in n and "template" not in n)
                    for n in names})


def test_plan_adds_a_lost_engine_with_a_profile_at_the_lost_size():
    names = [f"{g}.fp32.standard.onnx" for g in ("template", "search", "search_lost")]
    plan = make_plan(BuildRequest(Path("/art"), options=EngineBuildOptions(max_batch=3, opt_batch=2)),
                     _listing(*names), RTX, NO_GPU)
    jobs = {j.engine.name: j for j in plan.jobs}
    lost = jobs["search_lost.fp32.standard.engine"]
    assert lost.action == BUILD and lost.graph == "search_lost"
    assert lost.profile["search"] == ((1, 3, 24, 24), (2, 3, 24, 24), (3, 3, 24, 24))
    assert jobs["search.fp32.standard.engine"].profile["search"][2] == (3, 3, 16, 16)


def test_plan_of_a_short_term_export_has_no_lost_engine():
    plan = make_plan(BuildRequest(Path("/art")), _listing("template.fp32.standard.onnx", "search.fp32.standard.onnx"),
                     RTX, NO_GPU)
    assert not [j for j in plan.jobs if j.graph == "search_lost"]


def test_lost_engine_is_skipped_with_its_search_partner():
    names = [f"{g}.fp32.plugin.onnx" for g in ("template", "search", "search_lost")]
    plan = make_plan(BuildRequest(Path("/art"), flavours=("plugin",)), _listing(*names), RTX, NO_GPU)
    lost = next(j for j in plan.jobs if j.graph == "search_lost")
    assert lost.action == SKIP and "no plugin layers" in lost.reasons[0]


def test_profile_shapes_of_the_lost_graph():
    shapes = profile_shapes("search_lost", TINY_LT, EngineBuildOptions(max_batch=4, opt_batch=1))
    assert shapes["search"] == ((1, 3, 24, 24), (1, 3, 24, 24), (4, 3, 24, 24))
    assert shapes["kernel_cls"] == ((1, 4, 4, 4), (1, 4, 4, 4), (4, 4, 4, 4))


# --- TensorRT-RTX build, TensorRT backend checks, self-check ------------------------------------------

@pytest.fixture(scope="module")
def lt_engines(tmp_path_factory):
    if importlib.util.find_spec("tensorrt_rtx") is None:
        pytest.skip("TensorRT-RTX (pip install tensorrt-rtx-cu12) builds the engines")
    from engines.build import main

    folder = write_tiny_lt_folder(tmp_path_factory.mktemp("lt-engines") / "tiny")
    assert main([str(folder), "--product", "tensorrt_rtx", "--json", "--max-batch", "3", "--opt-batch", "2"]) == 0
    return folder


@rtx
def test_rtx_builds_the_lost_engine_at_the_lost_size(lt_engines):
    meta = read_sidecar(lt_engines / "search_lost.fp32.standard.engine")
    assert (meta.graph, meta.precision, meta.flavour) == ("search_lost", "fp32", "standard")
    assert meta.profile["search"] == [(1, 3, 24, 24), (2, 3, 24, 24), (3, 3, 24, 24)]
    assert meta.export_id == read_sidecar(lt_engines / "search.fp32.standard.engine").export_id


@rtx
@no_gpu
def test_trt_backend_accepts_the_lost_engine_then_needs_a_gpu(lt_engines):
    from runtime.backends.trt import TrtBackend

    # every sidecar check passes (template, search, search_lost); only then is the GPU asked for
    with pytest.raises(BackendUnavailable, match="needs an NVIDIA GPU"):
        TrtBackend(lt_engines / "template.fp32.standard.engine", lt_engines / "search.fp32.standard.engine",
                   lost_engine=lt_engines / "search_lost.fp32.standard.engine")
    with pytest.raises(BackendUnavailable, match="needs an NVIDIA GPU"):
        TrtBackend.from_dir(lt_engines, flavour="standard")


@rtx
def test_trt_backend_refuses_a_lost_engine_from_another_export(lt_engines, tmp_path):
    import shutil

    from runtime.backends.trt import TrtBackend
    from runtime.variants import lost_problem

    folder = shutil.copytree(lt_engines, tmp_path / "copy")
    engine = folder / "search_lost.fp32.standard.engine"
    write_sidecar(engine, dataclasses.replace(read_sidecar(engine), export_id="another"))
    with pytest.raises(ContractError, match="must be the search_lost engine of search.fp32.standard.engine"):
        TrtBackend(folder / "template.fp32.standard.engine", folder / "search.fp32.standard.engine",
                   lost_engine=engine)
    # opening the folder leaves it out (the pair still runs) and keeps the reason for the large crop
    assert "is from export another" in lost_problem(folder, "fp32", "standard", "engine")


@rtx
@no_gpu
def test_selfcheck_lists_the_lost_engine(lt_engines, capsys):
    from engines.selfcheck import main

    assert main([str(lt_engines)]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("search_lost.fp32.standard.engine"))
    assert "skipped: no GPU" in line


def test_selfcheck_feeds_the_lost_engine_lost_crops(lt_folder, tmp_path):
    from types import SimpleNamespace

    from engines.selfcheck import feeds_for, recorded_inputs

    inputs = recorded_inputs(tmp_path, TINY_LT, batch=2)
    assert inputs["search_lost"].shape == (2, 3, 24, 24) and inputs["search"].shape == (2, 3, 16, 16)
    # the three sidecar fields feeds_for reads
    meta = SimpleNamespace(graph="search_lost", precision="fp32", max_batch=2)
    feeds = feeds_for(lt_folder, meta, inputs)
    assert feeds["search"].shape == (2, 3, 24, 24) and feeds["kernel_cls"].shape == (2, 4, 4, 4)


# --- latency -----------------------------------------------------------------------------------------

def test_latency_times_the_lost_search_as_its_own_stage(lt_folder):
    from bench.latency import _time_lost_search, stage_stats
    from bench.report import latency_markdown
    from runtime.backends.onnxrt import OrtBackend

    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    with OrtBackend.from_dir(lt_folder) as backend:
        wall, cpu = _time_lost_search(backend, frame, {"warmup": 1, "template_iters": 3})
    assert len(wall) == len(cpu) == 3
    summary = {"runs": {"ort": {"run": {}, "stages": {"search": stage_stats(wall), "search_lost": stage_stats(wall)}}}}
    rows = [l for l in latency_markdown(summary).splitlines() if "| search_lost |" in l]
    assert len(rows) == 1


def test_latency_times_the_lost_search_only_when_the_run_has_it_on_purpose(lt_folder):
    from types import SimpleNamespace

    from bench.latency import _times_lost_search
    from runtime.backends.onnxrt import OrtBackend
    from runtime.contract import TrackerConfig

    with OrtBackend.from_dir(lt_folder) as with_graph, OrtBackend.from_dir(lt_folder, lost=False) as without:
        assert _times_lost_search(with_graph) and not _times_lost_search(without)
    # a PyTorch model runs any crop: timed for a long-term config only
    torch_like = SimpleNamespace(spec=TINY_LT, tracker_config=TrackerConfig())
    assert not _times_lost_search(torch_like)
    torch_like.tracker_config = TrackerConfig(long_term=True)
    assert _times_lost_search(torch_like)


# --- siamtrack verify --------------------------------------------------------------------------------

def test_verify_plans_the_lost_engines_of_a_long_term_export(tmp_path):
    from engines.verify_plan import Options, make_plan

    def items(plan, name):
        return {i.name for c in plan if c.name == name for i in c.items}

    short = make_plan(Options(tmp_path / "art", tmp_path / "report", flavours=("standard",)))
    long = make_plan(Options(tmp_path / "art", tmp_path / "report", flavours=("standard",), lost_search=True))
    added = {f"search_lost.{p}.standard.engine" for p in ("fp32", "fp16", "int8")}
    assert items(long, "engines.standard") - items(short, "engines.standard") == added
    assert items(long, "selfcheck") - items(short, "selfcheck") == added
    assert not any(n.startswith("search_lost") for n in items(short, "selfcheck"))


def test_verify_sees_a_long_term_export_in_the_artifacts_folder(lt_folder, tmp_path):
    from engines.verify import build_parser, options_from_args

    assert options_from_args(build_parser().parse_args(["--artifacts", str(lt_folder)])).lost_search
    assert not options_from_args(build_parser().parse_args(["--artifacts", str(tmp_path)])).lost_search


@pytest.mark.slow
def test_rtx_builds_the_plugin_flavour_lost_engine_with_the_plugin_at_the_lost_size(tmp_path_factory):
    """TensorRT-RTX's own builder calls the DepthwiseXCorr plugin with the lost graph's shapes (feature map
    22x22 from the 24 px crop, 19x19 out); needs TensorRT headers (tests/plugin_library.py)."""
    from tests.plugin_library import rtx_library_shim, rtx_plugin_library, run_rtx_child

    library, shim = rtx_plugin_library(tmp_path_factory), rtx_library_shim(tmp_path_factory)
    folder = write_tiny_lt_folder(tmp_path_factory.mktemp("lt-plugin") / "tiny", plugin=True)
    onnx_path = folder / "search_lost.fp32.plugin.onnx"
    run = run_rtx_child(library, "--build", str(onnx_path), str(folder / "search_lost.fp32.plugin.engine"), shim=shim)
    assert run.returncode == 0, run.log[-4000:]
    result = next(r for r in run.results if r["onnx"] == onnx_path.name)
    assert result["ok"] and result["engine_bytes"] > 0, result
    assert "DepthwiseXCorr getOutputShapes: x (?, 4, 22, 22), k (?, 4, 4, 4) -> output (?, 4, 19, 19)" in result["log"]

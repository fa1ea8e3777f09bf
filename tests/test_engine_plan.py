"""The build plan (engines.plan): pure decisions about which engines to build, from what, and how.

Toolkit and Machine are the planner's own plain-data inputs (what engines.trt_compat and the GPU probe
report), not stand-ins for TensorRT: no TensorRT call is simulated here.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engines.plan import (BUILD, FRESH, SKIP, BuildRequest, Listing, Machine, OnnxArtifact, make_plan, profile_shapes,
                          timing_cache_path, validate_options)
from engines.trt_compat import Toolkit
from runtime.contract import ModelSpec
from runtime.engine_meta import RTX_DEFAULT_TARGETS, EngineBuildOptions, EngineSidecar

R50 = ModelSpec(variant="r50", exemplar_size=127, instance_size=255, score_size=25, anchor_num=5,
                levels=("2", "3", "4"), kernel_channels=256, kernel_size=5)
FOLDER = Path("/art/r50")
TRT10 = Toolkit(product="tensorrt", version="10.3.0.30", builds_without_gpu=False, plugins=True, timing_cache=True)
RTX = Toolkit(product="tensorrt_rtx", version="1.7.1.116", builds_without_gpu=True, plugins=False, timing_cache=False)
ORIN = Machine(("Orin", "8.7"))
NO_GPU = Machine(None, "no usable GPU: cudaGetDeviceCount returned cudaErrorInsufficientDriver")
PLUGIN = Path("/plugin/libsiamrpn_xcorr_plugin.so")


def artifact(name: str) -> OnnxArtifact:
    custom = name.startswith("search.") and ".plugin." in name
    return OnnxArtifact(name, sha256=name[:8].ljust(64, "0"), spec=R50, export_id="e1", uses_custom_op=custom)


def listing(*names: str, sidecars=None, plugin_sha=None) -> Listing:
    return Listing({n: artifact(n) for n in names}, sidecars or {}, plugin_sha)


FP32_STD = ("template.fp32.standard.onnx", "search.fp32.standard.onnx")
ALL = tuple(f"{g}.{p}.{f}.onnx" for g in ("template", "search") for p in ("fp32", "fp16", "int8")
            for f in ("standard", "plugin"))


def jobs(plan):
    return {j.engine.name: j for j in plan.jobs}


def test_one_engine_per_graph_precision_and_flavour_named_for_them():
    req = BuildRequest(FOLDER, precisions=("fp16", "int8"), flavours=("standard",))
    plan = make_plan(req, listing(*ALL), TRT10, ORIN)
    assert sorted(jobs(plan)) == ["search.fp16.standard.engine", "search.int8.standard.engine",
                                  "template.fp16.standard.engine", "template.int8.standard.engine"]
    job = jobs(plan)["search.int8.standard.engine"]
    assert (job.onnx, job.engine, job.action) == (FOLDER / "search.int8.standard.onnx",
                                                  FOLDER / "search.int8.standard.engine", BUILD)


def test_missing_variant_is_skipped_with_the_step_that_makes_it():
    plan = make_plan(BuildRequest(FOLDER, precisions=("int8",)), listing(*FP32_STD), TRT10, ORIN)
    job = jobs(plan)["search.int8.standard.engine"]
    assert job.action == SKIP
    assert "search.int8.standard.onnx not found" in job.reasons[0] and "quantize" in job.reasons[0]


def test_profile_is_batch_1_opt_max_over_every_input():
    shapes = profile_shapes("search", R50, EngineBuildOptions(max_batch=8, opt_batch=2))
    assert sorted(shapes) == sorted(["search", "kernel_cls2", "kernel_loc2", "kernel_cls3", "kernel_loc3",
                                     "kernel_cls4", "kernel_loc4"])
    assert shapes["search"] == ((1, 3, 255, 255), (2, 3, 255, 255), (8, 3, 255, 255))
    assert shapes["kernel_loc4"] == ((1, 256, 5, 5), (2, 256, 5, 5), (8, 256, 5, 5))
    assert profile_shapes("template", R50, EngineBuildOptions(max_batch=3)) == \
        {"template": ((1, 3, 127, 127), (1, 3, 127, 127), (3, 3, 127, 127))}


def test_full_tensorrt_without_gpu_skips_everything_and_says_why():
    plan = make_plan(BuildRequest(FOLDER), listing(*FP32_STD), TRT10, NO_GPU)
    for job in plan.jobs:
        assert job.action == SKIP
        assert "timing kernels on a GPU" in job.reasons[0] and "cudaErrorInsufficientDriver" in job.reasons[0]
    assert plan.timing_cache is None


def test_rtx_builds_without_gpu_and_uses_no_timing_cache():
    plan = make_plan(BuildRequest(FOLDER), listing(*FP32_STD), RTX, NO_GPU)
    assert {j.action for j in plan.jobs} == {BUILD}
    assert plan.timing_cache is None  # RTX: a timing cache needs a GPU and does not change the engine


def test_no_tensorrt_at_all_is_a_skip_with_the_install_hint():
    none = Toolkit(product=None, missing="no TensorRT Python module can be imported (...)")
    plan = make_plan(BuildRequest(FOLDER), listing(*FP32_STD), none, ORIN)
    assert all(j.action == SKIP and "no TensorRT Python module" in j.reasons[0] for j in plan.jobs)


def test_plugin_flavour_needs_the_library_only_for_the_search_graph():
    req = BuildRequest(FOLDER, flavours=("plugin",), plugin_library=PLUGIN)
    plan = make_plan(req, listing(*ALL, plugin_sha="f" * 64), TRT10, ORIN)
    assert jobs(plan)["search.fp32.plugin.engine"].plugin_library == PLUGIN
    assert jobs(plan)["template.fp32.plugin.engine"].plugin_library is None
    assert {j.action for j in plan.jobs} == {BUILD}


def test_template_engine_is_not_built_when_its_search_partner_is_skipped():
    plan = make_plan(BuildRequest(FOLDER, flavours=("plugin",)), listing(*ALL), RTX, NO_GPU)
    template = jobs(plan)["template.fp32.plugin.engine"]
    assert template.action == SKIP
    assert template.reasons[0].startswith("its search engine is skipped: ") and "no plugin layers" in template.reasons[0]


@pytest.mark.parametrize("toolkit, plugin, sha, expected", [
    (RTX, PLUGIN, "f" * 64, "no plugin layers"),
    (TRT10, None, None, "no plugin library was found"),
    (TRT10, PLUGIN, "", "does not exist"),
])
def test_plugin_search_engine_skips(toolkit, plugin, sha, expected):
    req = BuildRequest(FOLDER, flavours=("plugin",), plugin_library=plugin)
    job = jobs(make_plan(req, listing(*ALL, plugin_sha=sha), toolkit, ORIN))["search.fp32.plugin.engine"]
    assert job.action == SKIP and expected in job.reasons[0]


def test_one_timing_cache_per_product_version_and_gpu_shared_by_all_engines():
    plan = make_plan(BuildRequest(FOLDER, precisions=("fp32", "fp16")), listing(*ALL), TRT10, ORIN)
    assert plan.timing_cache == FOLDER / "timing" / "tensorrt-10.3.0.30-orin-sm87.cache"
    other_gpu = timing_cache_path(FOLDER, "tensorrt", "10.3.0.30", ("NVIDIA GeForce RTX 4090", "8.9"))
    other_version = timing_cache_path(FOLDER, "tensorrt", "10.7.0.23", ("Orin", "8.7"))
    assert len({plan.timing_cache, other_gpu, other_version}) == 3
    assert other_gpu.name == "tensorrt-10.3.0.30-nvidia-geforce-rtx-4090-sm89.cache"


def built(name: str, **changes) -> EngineSidecar:
    graph, precision, flavour = name.split(".")[:3]
    base = EngineSidecar(
        engine_file=name, graph=graph, precision=precision, flavour=flavour, product="tensorrt",
        product_version="10.3.0.30", gpu_name="Orin", compute_capability="8.7", runs_on=("8.7",),
        onnx_file=f"{graph}.{precision}.{flavour}.onnx", onnx_sha256=artifact(f"{graph}.{precision}.{flavour}.onnx").sha256,
        export_id="e1", build_options=EngineBuildOptions(), profile={})
    return dataclasses.replace(base, **changes)


def test_engines_with_a_matching_sidecar_are_fresh():
    sidecars = {n: built(n) for n in ("template.fp32.standard.engine", "search.fp32.standard.engine")}
    plan = make_plan(BuildRequest(FOLDER), listing(*FP32_STD, sidecars=sidecars), TRT10, ORIN)
    assert {j.action for j in plan.jobs} == {FRESH}


@pytest.mark.parametrize("change, reason", [
    ({"product_version": "10.2.0.19"}, "built with tensorrt 10.2.0.19"),
    ({"gpu_name": "RTX 3090", "compute_capability": "8.6", "runs_on": ("8.6",)}, "built for compute capability 8.6"),
    ({"onnx_sha256": "0" * 64}, "search.fp32.standard.onnx changed"),
    ({"build_options": EngineBuildOptions(workspace_mib=512)}, "workspace_mib 512 -> 1024"),
])
def test_stale_engines_are_rebuilt_with_the_reason(change, reason):
    sidecars = {"search.fp32.standard.engine": built("search.fp32.standard.engine", **change),
                "template.fp32.standard.engine": built("template.fp32.standard.engine")}
    plan = make_plan(BuildRequest(FOLDER), listing(*FP32_STD, sidecars=sidecars), TRT10, ORIN)
    assert jobs(plan)["template.fp32.standard.engine"].action == FRESH
    search = jobs(plan)["search.fp32.standard.engine"]
    assert search.action == BUILD and any(reason in r for r in search.reasons), search.reasons


def test_force_rebuilds_fresh_engines():
    sidecars = {n: built(n) for n in ("template.fp32.standard.engine", "search.fp32.standard.engine")}
    plan = make_plan(BuildRequest(FOLDER, force=True), listing(*FP32_STD, sidecars=sidecars), TRT10, ORIN)
    assert [j.reasons for j in plan.jobs] == [("--force",), ("--force",)]


def test_rtx_engine_is_fresh_on_a_cpu_only_machine():
    rtx = {n: built(n, product="tensorrt_rtx", product_version="1.7.1.116", gpu_name="", compute_capability="",
                    runs_on=RTX_DEFAULT_TARGETS) for n in ("template.fp32.standard.engine", "search.fp32.standard.engine")}
    plan = make_plan(BuildRequest(FOLDER), listing(*FP32_STD, sidecars=rtx), RTX, NO_GPU)
    assert {j.action for j in plan.jobs} == {FRESH}
    # ...and is rebuilt when full TensorRT on a GPU plans the same folder.
    plan = make_plan(BuildRequest(FOLDER), listing(*FP32_STD, sidecars=rtx), TRT10, ORIN)
    assert {j.action for j in plan.jobs} == {BUILD}


@pytest.mark.parametrize("options, problem", [
    (EngineBuildOptions(max_batch=0), "--max-batch must be >= 1"),
    (EngineBuildOptions(max_batch=2, opt_batch=3), "--opt-batch must be within 1..max-batch 2"),
    (EngineBuildOptions(optimization_level=6), "--opt-level must be within 0..5"),
    (EngineBuildOptions(workspace_mib=0), "--workspace-mib must be >= 1"),
])
def test_invalid_options_are_named(options, problem):
    assert any(problem in p for p in validate_options(options))
    assert validate_options(EngineBuildOptions()) == []


MISSING = Toolkit(product=None, missing="No module named 'tensorrt'")


@pytest.mark.parametrize("requested, installed, machine, expected", [
    ("auto", {"tensorrt": TRT10, "tensorrt_rtx": RTX}, ORIN, "tensorrt"),
    ("auto", {"tensorrt": MISSING, "tensorrt_rtx": RTX}, ORIN, "tensorrt_rtx"),
    ("auto", {"tensorrt": MISSING, "tensorrt_rtx": RTX}, NO_GPU, None),  # RTX AOT only when asked for
    ("tensorrt_rtx", {"tensorrt": TRT10, "tensorrt_rtx": RTX}, NO_GPU, "tensorrt_rtx"),
    ("tensorrt", {"tensorrt": MISSING, "tensorrt_rtx": RTX}, ORIN, None),
])
def test_product_choice(requested, installed, machine, expected):
    from engines.plan import choose_product

    chosen = choose_product(requested, installed, machine)
    assert chosen.product == expected
    if requested == "auto" and expected is None:
        assert "pass --product tensorrt_rtx" in chosen.missing

"""The engine sidecar: its JSON round trip, atomic writing, and the staleness check run at load."""
from __future__ import annotations

import dataclasses
import os
import stat

import pytest

from runtime.engine_meta import (RTX_DEFAULT_TARGETS, CurrentEnv, EngineBuildOptions, EngineSidecar, check_fresh,
                                 read_sidecar, sidecar_path, stale_message, write_sidecar)
from runtime.errors import ContractError


def sidecar(**changes) -> EngineSidecar:
    base = EngineSidecar(
        engine_file="search.fp16.plugin.engine", graph="search", precision="fp16", flavour="plugin",
        product="tensorrt", product_version="10.3.0.30", gpu_name="Orin", compute_capability="8.7",
        runs_on=("8.7",), onnx_file="search.fp16.plugin.onnx", onnx_sha256="a" * 64, export_id="e1",
        build_options=EngineBuildOptions(max_batch=4), profile={"search": [(1, 3, 255, 255), (1, 3, 255, 255),
                                                                           (4, 3, 255, 255)],
                                                                "kernel_cls2": [(1, 256, 5, 5), (1, 256, 5, 5),
                                                                                (3, 256, 5, 5)]},
        plugin_library="libsiamrpn_xcorr_plugin.so", plugin_sha256="b" * 64)
    return dataclasses.replace(base, **changes)


def same_machine(**changes) -> CurrentEnv:
    base = CurrentEnv(product="tensorrt", product_version="10.3.0.30", gpu_name="Orin", compute_capability="8.7",
                      onnx_sha256="a" * 64, plugin_sha256="b" * 64, build_options=EngineBuildOptions(max_batch=4))
    return dataclasses.replace(base, **changes)


def test_sidecar_json_round_trip_is_lossless():
    s = sidecar()
    assert EngineSidecar.from_json(s.to_json()) == s


def test_max_batch_is_the_smallest_profile_maximum():
    assert sidecar().max_batch == 3  # search allows 4, kernel_cls2 only 3


def test_write_sidecar_is_atomic_and_readable_by_others(tmp_path):
    engine = tmp_path / "search.fp16.plugin.engine"
    path = write_sidecar(engine, sidecar())
    assert path == sidecar_path(engine) == tmp_path / "search.fp16.plugin.engine.json"
    assert os.listdir(tmp_path) == [path.name]  # no temp file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    assert read_sidecar(engine) == sidecar()


def test_missing_sidecar_says_how_to_rebuild(tmp_path):
    with pytest.raises(ContractError, match="engines.build"):
        read_sidecar(tmp_path / "x.engine")


def test_corrupt_sidecar_is_a_contract_error(tmp_path):
    sidecar_path(tmp_path / "x.engine").write_text("{not json")
    with pytest.raises(ContractError, match="not a readable engine sidecar"):
        read_sidecar(tmp_path / "x.engine")


def test_future_schema_is_refused(tmp_path):
    sidecar_path(tmp_path / "x.engine").write_text(sidecar(schema=99).to_json())
    with pytest.raises(ContractError, match="schema 99"):
        read_sidecar(tmp_path / "x.engine")


def test_same_machine_same_inputs_is_fresh():
    assert check_fresh(sidecar(), same_machine()) == []


def test_unchecked_fields_do_not_make_it_stale():
    env = CurrentEnv(product="tensorrt", product_version="10.3.0.30")  # load time before asking the GPU
    assert check_fresh(sidecar(), env) == []


@pytest.mark.parametrize("env, expected", [
    (same_machine(product_version="10.7.0.23"), "built with tensorrt 10.3.0.30, this machine has tensorrt 10.7.0.23"),
    (same_machine(product="tensorrt_rtx", product_version="1.7.1"), "this machine has tensorrt_rtx 1.7.1"),
    (same_machine(compute_capability="8.6", gpu_name="RTX 3090"), "compute capability 8.7, this GPU (RTX 3090) is 8.6"),
    (same_machine(gpu_name="Jetson AGX Orin 64GB"), "built on Orin, this GPU is Jetson AGX Orin 64GB"),
    (same_machine(onnx_sha256="c" * 64), "search.fp16.plugin.onnx changed"),
    (same_machine(plugin_sha256=""), "plugin library libsiamrpn_xcorr_plugin.so is missing"),
    (same_machine(plugin_sha256="d" * 64), "plugin library libsiamrpn_xcorr_plugin.so changed"),
    (same_machine(build_options=EngineBuildOptions(max_batch=8)), "build options changed: max_batch 4 -> 8"),
])
def test_each_mismatch_is_one_named_reason(env, expected):
    reasons = check_fresh(sidecar(), env)
    assert len(reasons) == 1 and expected in reasons[0], reasons


def test_rtx_aot_engine_runs_on_any_of_its_targets_whatever_the_gpu_name():
    rtx = sidecar(product="tensorrt_rtx", product_version="1.7.1.116", gpu_name="", compute_capability="",
                  runs_on=RTX_DEFAULT_TARGETS, plugin_library=None, plugin_sha256=None)
    env = CurrentEnv("tensorrt_rtx", "1.7.1.116", gpu_name="NVIDIA GeForce RTX 4090", compute_capability="8.9")
    assert check_fresh(rtx, env) == []
    turing = dataclasses.replace(env, compute_capability="7.5", gpu_name="RTX 2080 Ti")
    assert "this GPU (RTX 2080 Ti) is 7.5" in check_fresh(rtx, turing)[0]


def test_stale_message_lists_reasons_and_the_rebuild_command(tmp_path):
    text = stale_message(tmp_path / "search.fp16.plugin.engine", ["a reason", "another"])
    assert "  - a reason\n  - another" in text
    assert f"python -m engines.build {tmp_path}" in text and "build.sh" in text


def test_build_options_round_trip_keeps_tuples():
    opts = EngineBuildOptions(compute_targets=("8.6", "8.9"))
    assert EngineBuildOptions.from_dict(opts.to_dict()) == opts

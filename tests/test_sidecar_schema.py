"""Malformed engine sidecars: every defect is a ContractError naming the problem (never AttributeError,
RecursionError or UnicodeDecodeError, never silently accepted), and the engine build plan treats the
engine as stale, with that reason, so `siamtrack engines --dry-run` offers the rebuild."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from runtime.engine_meta import EngineBuildOptions, EngineSidecar, read_sidecar, sidecar_path
from runtime.errors import ContractError


def valid() -> dict:
    sidecar = EngineSidecar(
        engine_file="search.fp32.standard.engine", graph="search", precision="fp32", flavour="standard",
        product="tensorrt", product_version="10.3.0.30", gpu_name="Orin", compute_capability="8.7",
        runs_on=("8.7",), onnx_file="search.fp32.standard.onnx", onnx_sha256="a" * 64, export_id="e1",
        build_options=EngineBuildOptions(max_batch=4),
        profile={"search": [(1, 3, 255, 255), (1, 3, 255, 255), (4, 3, 255, 255)]})
    return json.loads(sidecar.to_json())


def with_changes(**changes) -> bytes:
    raw = valid()
    raw.update(changes)
    return json.dumps(raw).encode()


def with_profile_batch(batch) -> bytes:
    raw = valid()
    raw["profile"]["search"][2][0] = batch
    return json.dumps(raw).encode()


MALFORMED = {
    "null": b"null",
    "a list": b"[1, 2]",
    "a string": b'"sidecar"',
    "a number": b"42",
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "non-UTF-8": b'{"schema": 1, "gpu_name": "\xff\xfe"}',
    "negative max batch": with_profile_batch(-1),
    "zero max batch": with_profile_batch(0),
    "huge max batch": with_profile_batch(10 ** 9),
    "huge build max batch": with_changes(build_options={**valid()["build_options"], "max_batch": 10 ** 9}),
    "runs_on a string": with_changes(runs_on="8.7"),
    "runs_on numbers": with_changes(runs_on=[8.7]),
    "graph a number": with_changes(graph=5),
    "product unknown": with_changes(product="tensorrt_lean"),
    "build_options a list": with_changes(build_options=[4]),
    "profile a string": with_changes(profile="search"),
    "profile empty": with_changes(profile={}),
    "profile shapes of strings": with_changes(profile={"search": [["1"], ["1"], ["4"]]}),
    "max batch a bool": with_changes(build_options={**valid()["build_options"], "max_batch": True}),
    "engine_bytes a string": with_changes(engine_bytes="12"),
    "io_dtypes a list": with_changes(io_dtypes=["float32"]),
    "onnx_sha256 not hex": with_changes(onnx_sha256="z" * 64),
    "unknown field": with_changes(run_this="rm -rf /"),
    "missing field": json.dumps({k: v for k, v in valid().items() if k != "profile"}).encode(),
    "too large": b" " * (2 << 20) + json.dumps(valid()).encode(),
    "model_spec not JSON": with_changes(model_spec="{"),
    "model_spec a list": with_changes(model_spec="[]"),
    "model_spec huge size": with_changes(model_spec=json.dumps({
        "variant": "x", "exemplar_size": 10 ** 9, "instance_size": 255, "score_size": 25, "anchor_num": 5,
        "levels": ["2"], "kernel_channels": 256, "kernel_size": 5})),
}


def write(tmp_path, body: bytes):
    engine = tmp_path / "search.fp32.standard.engine"
    sidecar_path(engine).write_bytes(body)
    return engine


def test_the_valid_sidecar_used_here_is_accepted(tmp_path):
    assert read_sidecar(write(tmp_path, json.dumps(valid()).encode())).max_batch == 4


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_sidecar_is_a_contract_error_that_says_rebuild(tmp_path, case):
    with pytest.raises(ContractError, match=r"(?s)sidecar.*(rebuild|Rebuild)"):
        read_sidecar(write(tmp_path, MALFORMED[case]))


def test_the_error_names_the_bad_field(tmp_path):
    with pytest.raises(ContractError, match="runs_on must be a list of compute capabilities"):
        read_sidecar(write(tmp_path, MALFORMED["runs_on a string"]))
    with pytest.raises(ContractError, match="max batch 1000000000 is outside 1..1024"):
        read_sidecar(write(tmp_path, MALFORMED["huge max batch"]))
    with pytest.raises(ContractError, match="not UTF-8"):
        read_sidecar(write(tmp_path, MALFORMED["non-UTF-8"]))


def test_a_sidecar_that_is_a_folder_is_a_contract_error(tmp_path):
    engine = tmp_path / "search.fp32.standard.engine"
    sidecar_path(engine).mkdir()
    with pytest.raises(ContractError):
        read_sidecar(engine)


# ---- the build plan offers the rebuild ----


@pytest.mark.parametrize("case", ["null", "non-UTF-8", "runs_on a string", "deep nesting"])
def test_engines_dry_run_offers_the_rebuild_of_an_engine_with_a_malformed_sidecar(tiny_rtx_engines, tmp_path, capsys, case):
    from engines.build import main

    folder = shutil.copytree(tiny_rtx_engines, tmp_path / "copy")
    sidecar_path(folder / "search.fp32.standard.engine").write_bytes(MALFORMED[case])
    capsys.readouterr()
    assert main([str(folder), "--product", "tensorrt_rtx", "--dry-run", "--json"]) == 0
    rows = {r["engine"]: r for r in json.loads(capsys.readouterr().out)["engines"]}
    search, template = rows["search.fp32.standard.engine"], rows["template.fp32.standard.engine"]
    assert search["action"] == "build" and "its sidecar is invalid" in search["reasons"][0], search
    assert template["action"] == "fresh"


def test_selfcheck_reports_a_malformed_sidecar_on_its_row(tiny_rtx_engines, tmp_path, capsys):
    from engines.selfcheck import main

    folder = shutil.copytree(tiny_rtx_engines, tmp_path / "copy")
    sidecar_path(folder / "search.fp32.standard.engine").write_bytes(b"null")
    main([str(folder)])
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("search.fp32.standard.engine"))
    assert "not a readable engine sidecar" in line


def test_sidecar_round_trip_still_lossless_for_an_rtx_engine():
    s = EngineSidecar.from_json(json.dumps(valid()))
    rtx = dataclasses.replace(s, product="tensorrt_rtx", product_version="1.7.1.116", runs_on=("8.0", "12.0"))
    assert EngineSidecar.from_json(rtx.to_json()) == rtx

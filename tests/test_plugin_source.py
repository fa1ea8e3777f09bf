"""An engine sidecar never decides which shared library is loaded.

A plugin library comes only from a path the user passes, the project's plugin build output
(artifacts/plugin/), or a file of the engine's own folder named without any path component (and not a
link leading out of it). A sidecar may name the library (file name + sha256), nothing more. Crafted
sidecars (absolute path, ../, a link out of the folder) are refused before any GPU or TensorRT check,
even when the sha256 they carry matches the file they point at.
"""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from runtime.contract import sha256_file
from runtime.engine_meta import read_sidecar, sidecar_path, write_sidecar
from runtime.errors import ContractError

PLUGIN = "libsiamrpn_xcorr_plugin.so"


@pytest.fixture()
def folder(tiny_rtx_engines, tmp_path):
    return shutil.copytree(tiny_rtx_engines, tmp_path / "engines")


@pytest.fixture()
def evil(tmp_path):
    """A library outside the engine folder, e.g. planted by whoever wrote the sidecar."""
    path = tmp_path / "elsewhere" / PLUGIN
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF not really a plugin")
    return path


def craft(folder, plugin_library: str, sha: str):
    """Rewrite the search sidecar's JSON directly, as an attacker would (no validation on the way)."""
    path = sidecar_path(folder / "search.fp32.standard.engine")
    raw = json.loads(path.read_text())
    raw.update(plugin_library=plugin_library, plugin_sha256=sha)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("how", ["absolute", "dotdot"])
def test_a_sidecar_naming_a_path_is_refused_by_the_backend(folder, evil, how):
    from runtime.backends.trt import TrtBackend

    name = str(evil) if how == "absolute" else f"../elsewhere/{PLUGIN}"
    craft(folder, name, sha256_file(evil))
    with pytest.raises(ContractError, match="plugin_library may only name a file"):
        TrtBackend.from_dir(folder)


def test_a_sidecar_naming_a_path_is_refused_by_run_engine(folder, evil):
    from runtime.backends.trt import run_engine

    craft(folder, str(evil), sha256_file(evil))
    with pytest.raises(ContractError, match="plugin_library may only name a file"):
        run_engine(folder / "search.fp32.standard.engine", {})


def test_a_link_in_the_engine_folder_leading_out_of_it_is_refused(folder, evil):
    from runtime.backends.trt import TrtBackend

    (folder / PLUGIN).symlink_to(evil)
    craft(folder, PLUGIN, sha256_file(evil))
    wanted = f"(?s)needs plugin library {PLUGIN}, which is missing.*outside the engine's folder"
    with pytest.raises(ContractError, match=wanted):
        TrtBackend.from_dir(folder)


def test_a_link_in_the_engine_folder_leading_out_of_it_is_refused_by_run_engine(folder, evil):
    from runtime.backends.trt import run_engine

    (folder / PLUGIN).symlink_to(evil)
    craft(folder, PLUGIN, sha256_file(evil))
    with pytest.raises(ContractError, match="outside the engine's folder"):
        run_engine(folder / "search.fp32.standard.engine", {})


def test_selfcheck_never_loads_a_library_a_sidecar_points_at(folder, evil, capsys):
    from engines.selfcheck import main

    craft(folder, str(evil), sha256_file(evil))
    main([str(folder)])
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("search.fp32.standard.engine"))
    assert "plugin_library may only name a file" in line


# ---- where the library is found (plugin_library_for) ----

def sidecar_naming(folder, name=PLUGIN, sha="0" * 64):
    return dataclasses.replace(read_sidecar(folder / "search.fp32.standard.engine"), plugin_library=name,
                               plugin_sha256=sha)


def test_a_plain_file_of_the_engine_folder_is_used(folder, tmp_path):
    (folder / PLUGIN).write_bytes(b"plugin")
    meta = sidecar_naming(folder, sha=sha256_file(folder / PLUGIN))
    from runtime.engine_meta import plugin_library_for

    got = plugin_library_for(folder / "search.fp32.standard.engine", meta, project_dir=tmp_path / "none")
    assert got == folder / PLUGIN and got.is_absolute()


def test_the_project_plugin_build_output_is_used(folder, tmp_path):
    from runtime.engine_meta import plugin_library_for

    project = tmp_path / "artifacts-plugin"
    project.mkdir()
    (project / PLUGIN).write_bytes(b"plugin")
    meta = sidecar_naming(folder, sha=sha256_file(project / PLUGIN))
    assert plugin_library_for(folder / "search.fp32.standard.engine", meta, project_dir=project) == project / PLUGIN


def test_the_copy_whose_sha256_matches_wins(folder, tmp_path):
    from runtime.engine_meta import plugin_library_for

    project = tmp_path / "artifacts-plugin"
    project.mkdir()
    (folder / PLUGIN).write_bytes(b"an old build")
    (project / PLUGIN).write_bytes(b"the build the engine was made with")
    meta = sidecar_naming(folder, sha=sha256_file(project / PLUGIN))
    assert plugin_library_for(folder / "search.fp32.standard.engine", meta, project_dir=project) == project / PLUGIN


def test_an_explicit_path_is_the_users_choice(folder, evil):
    from runtime.engine_meta import plugin_library_for

    meta = sidecar_naming(folder)
    assert plugin_library_for(folder / "search.fp32.standard.engine", meta, explicit=evil) == evil


def test_a_hand_made_sidecar_with_a_path_is_refused_too(folder, evil):
    from runtime.engine_meta import plugin_library_for

    meta = sidecar_naming(folder, name=str(evil))
    with pytest.raises(ContractError, match="may only name a file"):
        plugin_library_for(folder / "search.fp32.standard.engine", meta)


def test_a_sidecar_with_a_path_cannot_be_written_and_read_back(folder, evil):
    engine = folder / "search.fp32.standard.engine"
    write_sidecar(engine, sidecar_naming(folder, name=f"../{PLUGIN}"))
    with pytest.raises(ContractError, match="plugin_library may only name a file"):
        read_sidecar(engine)


@pytest.mark.parametrize("field, value", [("onnx_file", "/etc/passwd"), ("onnx_file", "../x.onnx"),
                                          ("engine_file", "../x.engine")])
def test_no_other_file_a_sidecar_names_may_carry_a_path(folder, field, value):
    path = sidecar_path(folder / "search.fp32.standard.engine")
    raw = json.loads(path.read_text())
    raw[field] = value
    path.write_text(json.dumps(raw))
    with pytest.raises(ContractError, match=f"{field} must be a file name without a path"):
        read_sidecar(folder / "search.fp32.standard.engine")


def test_engine_build_writes_file_names_only(tiny_rtx_engines):
    raw = json.loads(sidecar_path(tiny_rtx_engines / "search.fp32.standard.engine").read_text())
    assert raw["onnx_file"] == "search.fp32.standard.onnx" and raw["plugin_library"] is None

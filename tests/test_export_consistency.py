"""Precision variants left from another export, or an INT8 pair from two calibrations, are never used.

A build killed between steps leaves FP32 graphs of the new checkpoint beside FP16/INT8 graphs (and
engines) of the old one. Every artifact carries its export id; a variant whose id differs from the FP32
graphs' is refused when asked for by precision and skipped, with the reason, by the automatic choice.
"""
from __future__ import annotations

import onnx
import pytest

from runtime.backend_choice import Probe, choose_backend, probe
from runtime.contract import META_CALIBRATION, META_EXPORT_ID, merge_metadata_props
from runtime.engine_meta import EngineBuildOptions, EngineSidecar, write_sidecar
from runtime.errors import ContractError
from tests.tiny_graphs import set_meta, to_fp16, to_qdq_template, tiny_search_standard, tiny_template, \
    write_tiny_folder


def _restamp(path, key, value):
    model = onnx.load(str(path))
    merge_metadata_props(model, {key: value})
    onnx.save(model, str(path))


def _folder(tmp_path):
    folder = write_tiny_folder(tmp_path / "m", fp16=True, plugin=False)
    onnx.save(to_qdq_template(tiny_template()), str(folder / "template.int8.standard.onnx"))
    onnx.save(set_meta(to_fp16(tiny_search_standard()), "siamrpn.precision", "int8"),
              str(folder / "search.int8.standard.onnx"))
    return folder


def test_a_consistent_folder_has_nothing_refused(tmp_path):
    assert probe(_folder(tmp_path)).refused == {}


def test_fp16_graphs_from_an_older_export_are_refused_when_asked_for(tmp_path):
    from runtime.backends import open_backend

    folder = _folder(tmp_path)
    for graph in ("template", "search"):
        _restamp(folder / f"{graph}.fp16.standard.onnx", META_EXPORT_ID, "old-export")
    with pytest.raises(ContractError, match=r"old-export.*tiny-1.*build\.sh"):
        open_backend(str(folder), backend="onnxruntime", precision="fp16")


def test_one_stale_graph_of_a_pair_is_enough_to_refuse_it(tmp_path):
    folder = _folder(tmp_path)
    _restamp(folder / "search.int8.standard.onnx", META_EXPORT_ID, "old-export")
    assert "search.int8.standard.onnx is from export old-export" in probe(folder).refused[("onnx", "int8", "standard")]


def test_a_matching_variant_still_opens(tmp_path):
    from runtime.backends import open_backend

    with open_backend(str(_folder(tmp_path)), backend="onnxruntime", precision="fp16") as backend:
        assert backend.meta.precision == "fp16"


def test_an_int8_pair_from_two_calibrations_is_refused(tmp_path):
    folder = _folder(tmp_path)
    _restamp(folder / "template.int8.standard.onnx", META_CALIBRATION, '{"calibration_id": "aaaa"}')
    _restamp(folder / "search.int8.standard.onnx", META_CALIBRATION, '{"calibration_id": "bbbb"}')
    reason = probe(folder).refused[("onnx", "int8", "standard")]
    assert "different calibrations" in reason


def _sidecar(folder, graph, precision, export_id):
    engine = folder / f"{graph}.{precision}.standard.engine"
    engine.write_bytes(b"not an engine")
    write_sidecar(engine, EngineSidecar(
        engine_file=engine.name, graph=graph, precision=precision, flavour="standard", product="tensorrt",
        product_version="10.3.0", gpu_name="Orin", compute_capability="8.7", runs_on=("8.7",),
        onnx_file=f"{graph}.{precision}.standard.onnx", onnx_sha256="0" * 64, export_id=export_id,
        build_options=EngineBuildOptions(), profile={graph: [(1, 3, 8, 8)] * 3}))


def test_engines_built_from_an_older_export_are_refused_by_their_sidecar(tmp_path):
    folder = _folder(tmp_path)
    for graph in ("template", "search"):
        _sidecar(folder, graph, "int8", "old-export")
        _sidecar(folder, graph, "fp16", "tiny-1")
    refused = probe(folder).refused
    assert ("engine", "int8", "standard") in refused and ("engine", "fp16", "standard") not in refused


def _facts(refused):
    pairs = frozenset({("int8", "standard"), ("fp16", "standard"), ("fp32", "standard")})
    return Probe(tensorrt_importable=True, gpu=True, gpu_reason="1 CUDA device(s)", engines=pairs,
                 onnxruntime_importable=True, onnx_pairs=pairs, torch_importable=False, refused=refused,
                 folder="m")


def test_the_automatic_choice_skips_stale_int8_engines_and_says_why():
    choice = choose_backend(_facts({("engine", "int8", "standard"): "from export old"}))
    assert (choice.backend, choice.precision) == ("tensorrt", "fp16")
    assert any("skipped int8.standard" in r and "from export old" in r for r in choice.reasons)


def test_asking_for_the_stale_precision_is_refused_with_the_fix():
    with pytest.raises(ContractError, match=r"refusing the int8\.standard engines.*siamtrack engines m"):
        choose_backend(_facts({("engine", "int8", "standard"): "from export old"}), precision="int8")


def test_opening_a_folder_warns_about_the_variant_it_passed_over(tmp_path):
    from runtime.backend_choice import StaleVariantWarning, choose_artifact_backend

    folder = _folder(tmp_path)
    _restamp(folder / "search.int8.standard.onnx", META_EXPORT_ID, "old-export")
    (folder / "template.fp32.standard.onnx").unlink()      # ONNX Runtime would now prefer int8, then fp16
    (folder / "search.fp32.standard.onnx").rename(folder / "search.fp32.plugin.onnx")
    with pytest.warns(StaleVariantWarning, match="skipped int8.standard"):
        choice = choose_artifact_backend(folder, requested="onnxruntime", flavour="standard")
    assert choice.precision == "fp16"

"""The long-term tracker's large search graph (``search_lost``) through export, FP16 and INT8.

One export of seeded random AlexNet weights per module, with the lost size shrunk from pysot's 831 to
351 (still a whole anchor grid: (351 - 127) / 8 = 28 steps, a 29x29 map) so the three graphs trace and
run in seconds; the production path is the same (``export_pair(..., lost_search=True)`` is what
``siamtrack export --lost-search`` calls). r50 with 831 was measured by hand (README).

Tolerance for ONNX Runtime vs PyTorch: max|ort - torch| / max|torch| < 1e-5, as in
tests/test_onnx_export.py (float32 both, different summation orders).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest

from runtime.contract import META_CALIBRATION, META_EXPORT_ID, META_GRAPH, LOST_GRAPH, GraphMeta
from runtime.onnx_meta import read_graph_meta, read_metadata

LOST = 351
LOST_MAP = 29   # (351 - 127) // 8 + 1 for AlexNet (no BASE_SIZE)
REL_TOL = 1e-5


def _alex_lt_cfg(lost: int = LOST):
    from export.config import default_config

    cfg = default_config("alex")
    return dataclasses.replace(cfg, tracker=dataclasses.replace(cfg.tracker, lost_instance_size=lost))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from export.checkpoint import build_random_model
    from export.to_onnx import export_pair, state_dict_sha256

    cfg = _alex_lt_cfg()
    model = build_random_model(cfg, 0)
    out = tmp_path_factory.mktemp("lost-export")
    result = export_pair(cfg, model, out, source_sha256=state_dict_sha256(model), source="random-seed:0",
                         random_weights=True, lost_search=True)
    return cfg, model, result


def _crops(spec, n=2, side=None, seed=1):
    rng = np.random.default_rng(seed)
    z = (rng.random(spec.template_shape(n)) * 255).astype(np.float32)
    x = (rng.random(spec.search_shape(n, side)) * 255).astype(np.float32)
    return z, x


def rel_err(got, ref):
    return float(np.abs(got - ref).max() / np.abs(ref).max())


# --- export ----------------------------------------------------------------------------------------

def test_lost_search_graph_is_written_for_both_flavours_from_the_same_export(exported):
    _cfg, _model, result = exported
    for flavour in ("plugin", "standard"):
        lost = result.out_dir / f"search_lost.fp32.{flavour}.onnx"
        assert result.path(LOST_GRAPH, flavour) == lost and lost.is_file()
        metas = {g: read_graph_meta(result.out_dir / f"{g}.fp32.{flavour}.onnx")
                 for g in ("template", "search", LOST_GRAPH)}
        assert metas[LOST_GRAPH].graph == LOST_GRAPH
        assert len({m.export_id for m in metas.values()}) == 1
        assert len({m.spec for m in metas.values()}) == 1
        assert (metas[LOST_GRAPH].spec.lost_instance_size, metas[LOST_GRAPH].spec.lost_score_size) == (LOST, LOST_MAP)
        # the same metadata keys as the pair (provenance, exporter versions, random-weights flag)
        assert set(read_metadata(lost)) == set(read_metadata(result.out_dir / f"search.fp32.{flavour}.onnx"))


def test_lost_search_graph_takes_the_lost_crop_and_gives_the_lost_map(exported):
    _cfg, _model, result = exported
    model = onnx.load(str(result.path(LOST_GRAPH, "plugin")), load_external_data=False)

    def dims(vi):
        return [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim]

    inputs = {i.name: dims(i) for i in model.graph.input}
    outputs = {o.name: dims(o) for o in model.graph.output}
    assert inputs["search"][1:] == [3, LOST, LOST] and isinstance(inputs["search"][0], str)   # batch stays dynamic
    assert outputs["cls"][1:] == [10, LOST_MAP, LOST_MAP] and outputs["loc"][1:] == [20, LOST_MAP, LOST_MAP]


@pytest.mark.parametrize("flavour", ["standard", "plugin"])
def test_onnxruntime_matches_pytorch_on_the_lost_crop(exported, flavour):
    import torch

    from runtime.backends.onnxrt import OrtBackend

    _cfg, model, result = exported
    with OrtBackend.from_dir(result.out_dir, flavour=flavour) as backend:
        z, x = _crops(backend.spec, side=LOST)
        cls, loc = backend.run_search(x, backend.run_template(z))
    with torch.inference_mode():
        ref_cls, ref_loc = model.track_from_kernels(torch.from_numpy(x), model.template_kernels(torch.from_numpy(z)))
    assert cls.shape == (2, 10, LOST_MAP, LOST_MAP)
    assert rel_err(cls, ref_cls.numpy()) < REL_TOL and rel_err(loc, ref_loc.numpy()) < REL_TOL


def test_the_pytorch_backend_runs_the_lost_crop_natively():
    from runtime.backends.pyt import TorchBackend

    backend = TorchBackend.random("alex", seed=0)
    assert backend.spec.lost_instance_size == 831 and backend.spec.lost_score_size == 89
    z, x = _crops(backend.spec, n=1, side=831)
    cls, loc = backend.run_search(x, backend.run_template(z))
    assert cls.shape == (1, 10, 89, 89) and loc.shape == (1, 20, 89, 89)


def test_a_lost_size_without_a_whole_anchor_grid_is_refused_before_tracing(tmp_path):
    from export.config import ConfigError
    from export.checkpoint import build_random_model
    from export.to_onnx import export_pair

    cfg = _alex_lt_cfg(350)   # (350 - 127) / 8 = 27.9 anchor steps
    with pytest.raises(ConfigError, match=r"LOST_INSTANCE_SIZE 350.*multiple of ANCHOR.STRIDE 8"):
        export_pair(cfg, build_random_model(cfg, 0), tmp_path, source_sha256="0" * 64, lost_search=True)
    assert not list(tmp_path.glob("*.onnx"))


def test_export_cli_offers_lost_search():
    from export.to_onnx import build_parser

    text = build_parser().format_help()
    assert "--lost-search" in text and "search_lost" in text


# --- the large crop without the large graph --------------------------------------------------------

def test_a_folder_without_the_lost_graph_names_the_export_command(exported, tmp_path):
    from runtime.backends.onnxrt import OrtBackend
    from runtime.errors import ContractError

    _cfg, _model, result = exported
    for graph in ("template", "search"):
        (tmp_path / f"{graph}.fp32.standard.onnx").write_bytes(result.path(graph, "standard").read_bytes())
    with OrtBackend.from_dir(tmp_path) as backend:
        assert backend.spec.lost_instance_size == 0   # says what it can run
        z, _ = _crops(backend.spec, n=1)
        x = np.zeros((1, 3, LOST, LOST), np.float32)   # what the long-term tracker asks for when lost
        kernels = backend.run_template(z)
        with pytest.raises(ContractError, match=r"siamtrack export .*--lost-search"):
            backend.run_search(x, kernels)


def test_a_lost_graph_from_another_export_is_left_unused_and_named_on_the_lost_crop(exported, tmp_path):
    """A short-term re-export into a folder that held a long-term export leaves the old search_lost
    graph behind: the pair must still open and track; only the large crop is refused, with the reason."""
    from runtime.backends.onnxrt import OrtBackend
    from runtime.errors import ContractError
    from runtime.variants import lost_problem, variant_problem
    from tests.tiny_graphs import set_meta

    _cfg, _model, result = exported
    for graph in ("template", "search"):
        (tmp_path / f"{graph}.fp32.standard.onnx").write_bytes(result.path(graph, "standard").read_bytes())
    stale = set_meta(onnx.load(str(result.path(LOST_GRAPH, "standard"))), META_EXPORT_ID, "0123456789abcdef")
    onnx.save(stale, str(tmp_path / "search_lost.fp32.standard.onnx"))
    assert variant_problem(tmp_path, "fp32", "standard", "onnx") is None
    assert "search_lost.fp32.standard.onnx is from export 0123456789abcdef" in lost_problem(
        tmp_path, "fp32", "standard", "onnx")
    with OrtBackend.from_dir(tmp_path) as backend:
        assert backend.lost_path is None and backend.spec.lost_instance_size == 0
        z, x = _crops(backend.spec, n=1)
        kernels = backend.run_template(z)
        assert backend.run_search(x, kernels)[0].shape[-1] == backend.spec.score_size
        with pytest.raises(ContractError, match=r"from export 0123456789abcdef.*--lost-search"):
            backend.run_search(np.zeros((1, 3, LOST, LOST), np.float32), kernels)
    with pytest.raises(ContractError, match="different exports"):   # named explicitly, it is refused
        OrtBackend(tmp_path / "template.fp32.standard.onnx", tmp_path / "search.fp32.standard.onnx",
                   lost_path=tmp_path / "search_lost.fp32.standard.onnx")


# --- precision variants ----------------------------------------------------------------------------

def test_fp16_variant_of_the_lost_graph_is_written_and_close_to_fp32(exported, tmp_path, capsys):
    from export.fp16 import main as fp16_main
    from runtime.backends.onnxrt import OrtBackend

    _cfg, _model, result = exported
    for graph in ("template", "search", LOST_GRAPH):
        (tmp_path / f"{graph}.fp32.standard.onnx").write_bytes(result.path(graph, "standard").read_bytes())
    assert fp16_main([str(tmp_path), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["written"]
    assert str(tmp_path / "search_lost.fp16.standard.onnx") in written
    meta = read_graph_meta(tmp_path / "search_lost.fp16.standard.onnx")
    assert (meta.graph, meta.precision, meta.export_id) == (LOST_GRAPH, "fp16", result.export_id)
    outs = {}
    for precision in ("fp32", "fp16"):
        with OrtBackend.from_dir(tmp_path, precision=precision) as backend:
            z, x = _crops(backend.spec, n=1, side=LOST)
            outs[precision] = backend.run_search(x, backend.run_template(z))
    # FP16 weights and compute: ~1e-3 relative per layer over AlexNet's 5 convs and the head
    assert rel_err(outs["fp16"][0], outs["fp32"][0]) < 2e-2
    # a variant folder whose large graph was never made says which file and which step
    (tmp_path / "search_lost.fp16.standard.onnx").unlink()
    from runtime.errors import ContractError

    with OrtBackend.from_dir(tmp_path, precision="fp16") as backend:
        kernels = backend.run_template(_crops(backend.spec, n=1)[0])
        with pytest.raises(ContractError, match=r"search_lost.fp16.standard.onnx is missing.*fp16 variants"):
            backend.run_search(np.zeros((1, 3, LOST, LOST), np.float32), kernels)


class _SearchCalib:
    """What quantize_pair reads from a calibration set (feeds per graph, the set's sha256): crops of the
    model's own geometry, kernels from its template graph."""

    set_sha256 = "cd" * 32

    def __init__(self, folder):
        from runtime.backends.onnxrt import OrtBackend

        self.backend = OrtBackend.from_dir(folder, lost=False)

    def feeds_for(self, path):
        meta = GraphMeta.from_props(read_metadata(path))
        z, x = _crops(self.backend.spec, n=1, seed=3)
        if meta.graph == "template":
            return [{"template": z}]
        kernels = self.backend.run_template(z)
        return [{"search": x, **dict(zip(self.backend.spec.kernel_names, kernels.arrays))}]


def test_int8_lost_graph_reuses_the_search_ranges_under_one_calibration_id(exported, tmp_path):
    from calibration.quantize import pair_is_current, quantize_pair, ranges_path
    from runtime.variants import variant_problem

    _cfg, _model, result = exported
    fp32 = {g: result.path(g, "standard") for g in ("template", "search", LOST_GRAPH)}
    outs = quantize_pair(fp32["template"], fp32["search"], _SearchCalib(result.out_dir), tmp_path, "standard",
                         method="max", lost_fp32=fp32[LOST_GRAPH])
    assert [p.name for p in outs] == ["template.int8.standard.onnx", "search.int8.standard.onnx",
                                      "search_lost.int8.standard.onnx"]
    calib = {p.name: json.loads(read_metadata(p)[META_CALIBRATION]) for p in outs}
    assert len({c["calibration_id"] for c in calib.values()}) == 1
    assert calib["search_lost.int8.standard.onnx"]["ranges_from"] == "search"
    search_ranges, lost_ranges = (json.loads(ranges_path(tmp_path / f"{g}.int8.standard.onnx").read_text())
                                  for g in ("search", LOST_GRAPH))
    assert lost_ranges["activations"] == search_ranges["activations"]
    assert read_metadata(outs[2])[META_GRAPH] == LOST_GRAPH
    opts = dict(method="max", keep_fp=[], percentile=99.99, residual=True, bias_correction=True)
    assert pair_is_current(fp32["template"], fp32["search"], _SearchCalib(result.out_dir), tmp_path, "standard",
                           lost_fp32=fp32[LOST_GRAPH], **opts)
    for graph in ("template", "search", LOST_GRAPH):   # the folder as build.sh leaves it
        (tmp_path / f"{graph}.fp32.standard.onnx").write_bytes(fp32[graph].read_bytes())
    assert variant_problem(tmp_path, "int8", "standard", "onnx") is None


def test_an_int8_lost_graph_from_another_calibration_is_left_unused(exported, tmp_path):
    from calibration.quantize import quantize_pair
    from runtime.variants import lost_problem, variant_problem
    from tests.tiny_graphs import set_meta

    _cfg, _model, result = exported
    fp32 = {g: result.path(g, "standard") for g in ("template", "search", LOST_GRAPH)}
    for graph, path in fp32.items():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    quantize_pair(fp32["template"], fp32["search"], _SearchCalib(result.out_dir), tmp_path, "standard",
                  method="max", lost_fp32=fp32[LOST_GRAPH])
    lost = tmp_path / "search_lost.int8.standard.onnx"
    model = onnx.load(str(lost))
    info = json.loads(read_metadata(lost)[META_CALIBRATION])
    onnx.save(set_meta(model, META_CALIBRATION, json.dumps(dict(info, calibration_id="ffff"))), str(lost))
    assert variant_problem(tmp_path, "int8", "standard", "onnx") is None   # the pair itself is fine
    assert "has calibration ffff" in lost_problem(tmp_path, "int8", "standard", "onnx")


def test_the_lost_graph_is_never_calibrated_on_its_own(exported):
    from calibration import CalibrationError
    from calibration.feeds import CalibrationSet

    _cfg, _model, result = exported
    meta = read_graph_meta(result.path("search", "standard"))
    calib = CalibrationSet(result.out_dir, {"model": {"spec": json.loads(meta.spec.to_json())}, "shards": [],
                                            "set_sha256": "0"})
    with pytest.raises(CalibrationError, match="search graph's ranges"):
        calib.feeds_for(result.path(LOST_GRAPH, "standard"))

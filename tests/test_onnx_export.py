"""The exported ONNX pair: graph structure, metadata, and numerics against the PyTorch model.

Exports use seeded random weights with random BatchNorm statistics (export.checkpoint.randomize_), so
a wrongly folded BN, a missing level or a swapped kernel shows up as a large error. AlexNet (single RPN
level, 4x4 kernels, 287 search) is the everyday model; one multi-level MobileNetV2 export with
*weighted* fusion (the r50 VOT setting) covers folding of the softmax level weights.

Tolerance: outputs are compared by relative error max|ort - torch| / max|torch| < 1e-5: both compute
in float32 with different summation orders (BN folded into the conv by the exporter, oneDNN vs MLAS
kernels), which gives ~1e-7 per layer; 1e-5 leaves margin yet is far below what any graph error gives.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from runtime.contract import (META_EXPORTER, NORMALISATION, XCORR_DOMAIN, XCORR_OP, XCORR_VERSION,
                              artifact_name)

REL_TOL = 1e-5
SEED = 0


def export_once(tmp_path_factory, config: str, seed: int = SEED, name: str | None = None) -> Path:
    """Export ``config`` (built-in name or yaml path) with the CLI into a per-session folder, once per
    session (a later call, from any test module, reuses the files)."""
    from export.to_onnx import main

    out = tmp_path_factory.getbasetemp() / f"export-{name or config}-{seed}"
    done = out / "export.json"
    if not done.is_file():
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["--config", str(config), "--random-seed", str(seed), "--out", str(out), "--json"]) == 0
        done.write_text(buf.getvalue())
    return out


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def torch_reference(config, seed: int, z: np.ndarray, x: np.ndarray):
    import torch

    from export.checkpoint import randomize_
    from export.config import resolve_config
    from export.model import build_model

    model = randomize_(build_model(resolve_config(config)), seed)
    with torch.inference_mode():
        kernels = model.template_kernels(torch.from_numpy(z))
        cls, loc = model.track_from_kernels(torch.from_numpy(x), kernels)
    return [k.numpy() for k in kernels], cls.numpy(), loc.numpy()


def ort_outputs(folder: Path, flavour: str, z: np.ndarray, x: np.ndarray):
    from runtime.backends.onnxrt import OrtBackend

    with OrtBackend.from_dir(folder, flavour=flavour) as backend:
        kernels = backend.run_template(z)
        cls, loc = backend.run_search(x, kernels)
    return list(kernels.arrays), cls, loc


def crops(spec, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    z = (rng.random(spec.template_shape(n)) * 255).astype(np.float32)
    x = (rng.random(spec.search_shape(n)) * 255).astype(np.float32)
    return z, x


@pytest.fixture(scope="module")
def alex_dir(tmp_path_factory) -> Path:
    return export_once(tmp_path_factory, "alex")


@pytest.fixture(scope="module")
def weighted_mobilev2(tmp_path_factory) -> tuple[Path, Path]:
    """MobileNetV2 with RPN weighted fusion switched on: (config yaml, export folder)."""
    from export.config import CONFIG_DIR

    text = (CONFIG_DIR / "mobilev2.yaml").read_text()
    assert "weighted: false" in text
    cfg = tmp_path_factory.getbasetemp() / "mobilev2_weighted.yaml"
    cfg.write_text(text.replace("weighted: false", "weighted: true"))
    return cfg, export_once(tmp_path_factory, str(cfg), name="mobilev2w")


@pytest.fixture(scope="module")
def per_level_mobilev2(tmp_path_factory) -> tuple[Path, Path]:
    """MobileNetV2 whose neck gives each level its own width (32/64/128), as pysot's long-term r50 config
    does (128/256/512): kernels then differ in channels per level (ModelSpec.level_channels)."""
    from export.config import CONFIG_DIR

    text = (CONFIG_DIR / "mobilev2.yaml").read_text()
    assert text.count("[256, 256, 256]") == 2        # ADJUST out_channels and RPN in_channels
    cfg = tmp_path_factory.getbasetemp() / "mobilev2_per_level.yaml"
    cfg.write_text(text.replace("[256, 256, 256]", "[32, 64, 128]"))
    return cfg, export_once(tmp_path_factory, str(cfg), name="mobilev2pl")


def load(path: Path):
    import onnx

    return onnx.load(str(path))


# -------------------------------------------------------------------------------------------------
# numerics


@pytest.mark.parametrize("flavour", ["plugin", "standard"])
def test_alex_pair_matches_pytorch_for_two_targets(alex_dir, flavour):
    from export.config import default_config

    z, x = crops(default_config("alex").model_spec(), n=2)
    ref_k, ref_cls, ref_loc = torch_reference("alex", SEED, z, x)
    got_k, got_cls, got_loc = ort_outputs(alex_dir, flavour, z, x)
    for got, ref in zip(got_k, ref_k):
        assert got.shape == ref.shape and rel_err(got, ref) < REL_TOL
    assert rel_err(got_cls, ref_cls) < REL_TOL
    assert rel_err(got_loc, ref_loc) < REL_TOL


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["plugin", "standard"])
def test_multilevel_weighted_fusion_is_folded_exactly(weighted_mobilev2, flavour):
    config, folder = weighted_mobilev2
    from export.config import load_config

    cfg = load_config(config)
    assert cfg.rpn.weighted and len(cfg.rpn.levels) == 3
    z, x = crops(cfg.model_spec(), n=1)
    ref_k, ref_cls, ref_loc = torch_reference(config, SEED, z, x)
    got_k, got_cls, got_loc = ort_outputs(folder, flavour, z, x)
    assert len(got_k) == 6
    for got, ref in zip(got_k, ref_k):
        assert got.shape == (1, 256, 5, 5) and rel_err(got, ref) < REL_TOL
    assert got_cls.shape == (1, 10, 25, 25) and rel_err(got_cls, ref_cls) < REL_TOL
    assert got_loc.shape == (1, 20, 25, 25) and rel_err(got_loc, ref_loc) < REL_TOL


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["plugin", "standard"])
def test_per_level_kernel_channels_export_and_run_like_pytorch(per_level_mobilev2, flavour):
    config, folder = per_level_mobilev2
    from export.config import load_config

    spec = load_config(config).model_spec()
    assert spec.level_channels == (32, 64, 128)
    z, x = crops(spec, n=2)
    ref_k, ref_cls, ref_loc = torch_reference(config, SEED, z, x)
    got_k, got_cls, got_loc = ort_outputs(folder, flavour, z, x)
    assert [k.shape[1] for k in got_k] == [32, 32, 64, 64, 128, 128]
    for got, ref in zip(got_k, ref_k):
        assert got.shape == ref.shape and rel_err(got, ref) < REL_TOL
    assert rel_err(got_cls, ref_cls) < REL_TOL and rel_err(got_loc, ref_loc) < REL_TOL


def test_multilevel_search_graph_has_no_fusion_parameters(weighted_mobilev2):
    """The softmax of cls_weight/loc_weight is folded: no Softmax node, no (3,) weight inputs."""
    _, folder = weighted_mobilev2
    graph = load(folder / artifact_name("search", "fp32", "standard", "onnx")).graph
    assert "Softmax" not in {n.op_type for n in graph.node}
    assert [i.name for i in graph.input] == ["search"] + [f"kernel_{h}{lvl}" for lvl in "234" for h in ("cls", "loc")]


# -------------------------------------------------------------------------------------------------
# graph structure


def test_plugin_search_graph_has_one_custom_node_per_xcorr_with_recorded_shape(alex_dir):
    model = load(alex_dir / artifact_name("search", "fp32", "plugin", "onnx"))
    custom = [n for n in model.graph.node if n.domain == XCORR_DOMAIN]
    assert [(n.op_type, list(n.input)[1]) for n in custom] == [(XCORR_OP, "kernel_cls"), (XCORR_OP, "kernel_loc")]
    assert {o.domain: o.version for o in model.opset_import}[XCORR_DOMAIN] == XCORR_VERSION
    shapes = {vi.name: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in model.graph.value_info}
    for node in custom:
        dims = shapes[node.output[0]]
        # alex: search features 256x24x24 correlated with 256x4x4 kernels -> 21x21; batch stays symbolic
        assert isinstance(dims[0], str) and dims[0] and dims[1:] == [256, 21, 21]


def test_standard_search_graph_uses_only_standard_ops_and_convolves_with_the_kernel_input(alex_dir):
    model = load(alex_dir / artifact_name("search", "fp32", "standard", "onnx"))
    assert {o.domain for o in model.opset_import} == {""}
    loops = [n for n in model.graph.node if n.op_type == "Loop"]
    assert len(loops) == 2
    for loop in loops:
        body = next(a.g for a in loop.attribute if a.name == "body")
        conv = next(n for n in body.node if n.op_type == "Conv")
        assert next(a.i for a in conv.attribute if a.name == "group") == 256
        # the Conv weights trace back (Unsqueeze <- Gather) to a kernel graph input
        producer = {o: n for n in body.node for o in n.output}
        gather = producer[producer[conv.input[1]].input[0]]
        assert gather.op_type == "Gather" and gather.input[0].startswith("kernel_")
    assert not [n for n in model.graph.node if n.domain not in ("", "ai.onnx")]


@pytest.mark.parametrize("graph", ["template", "search"])
def test_every_input_and_output_has_a_dynamic_batch_axis(alex_dir, graph):
    model = load(alex_dir / artifact_name(graph, "fp32", "standard", "onnx"))
    for vi in list(model.graph.input) + list(model.graph.output):
        first = vi.type.tensor_type.shape.dim[0]
        assert first.dim_param and not first.HasField("dim_value"), vi.name


@pytest.mark.parametrize("graph", ["template", "search"])
@pytest.mark.parametrize("flavour", ["plugin", "standard"])
def test_written_graphs_pass_the_full_onnx_checker(alex_dir, graph, flavour):
    import onnx

    onnx.checker.check_model(str(alex_dir / artifact_name(graph, "fp32", flavour, "onnx")), full_check=True)


def test_export_writes_exactly_the_four_named_files(alex_dir):
    names = sorted(p.name for p in alex_dir.iterdir() if p.suffix == ".onnx" or p.name.startswith("."))
    assert names == sorted(artifact_name(g, "fp32", f, "onnx") for g in ("template", "search")
                           for f in ("plugin", "standard"))


# -------------------------------------------------------------------------------------------------
# metadata


def test_metadata_round_trips_the_config_and_provenance(alex_dir):
    import torch

    from export.checkpoint import randomize_
    from export.config import default_config
    from export.model import build_model
    from export.to_onnx import state_dict_sha256
    from runtime.onnx_meta import read_graph_meta, read_onnx_summary

    cfg = default_config("alex")
    sha = state_dict_sha256(randomize_(build_model(cfg), SEED))
    metas = {}
    for graph in ("template", "search"):
        for flavour in ("plugin", "standard"):
            path = alex_dir / artifact_name(graph, "fp32", flavour, "onnx")
            meta = read_graph_meta(path)
            assert (meta.graph, meta.xcorr, meta.precision) == (graph, flavour, "fp32")
            assert meta.spec == cfg.model_spec() and meta.tracker == cfg.tracker
            assert meta.source_sha256 == sha
            assert meta.extra["siamrpn.random_weights"] == "true"
            assert meta.extra["siamrpn.source"] == f"random-seed:{SEED}"
            assert json.loads(meta.extra[META_EXPORTER])["torch"] == torch.__version__
            props = read_onnx_summary(path).metadata
            assert props["siamrpn.normalisation"] == NORMALISATION
            metas[(graph, flavour)] = meta
    assert len({m.export_id for m in metas.values()}) == 1


def test_metadata_reader_agrees_with_the_onnx_package(alex_dir):
    """runtime.onnx_meta parses protobuf by hand; onnx's own parser is the independent reference."""
    from runtime.onnx_meta import read_onnx_summary

    path = alex_dir / artifact_name("search", "fp32", "plugin", "onnx")
    model = load(path)
    summary = read_onnx_summary(path)
    assert summary.metadata == {p.key: p.value for p in model.metadata_props}
    assert summary.opsets == {o.domain: o.version for o in model.opset_import}
    assert summary.ir_version == model.ir_version
    assert summary.custom_ops == tuple(sorted({(n.domain, n.op_type) for n in model.graph.node
                                               if n.domain not in ("", "ai.onnx")}))


def test_custom_node_counts_match_the_number_of_xcorrs(alex_dir):
    model = load(alex_dir / artifact_name("search", "fp32", "plugin", "onnx"))
    counts = Counter((n.domain, n.op_type) for n in model.graph.node)
    assert counts[(XCORR_DOMAIN, XCORR_OP)] == 2  # alex: one level x {cls, loc}


def plugin_lookup_keys(model) -> list[tuple]:
    """(op_type, plugin_version, plugin_namespace) of every custom node, as TensorRT's ONNX parser reads them
    (string attributes only: it calls attrs.get<std::string>)."""
    keys = []
    for node in model.graph.node:
        if node.domain == XCORR_DOMAIN:
            strings = {a.name: a.s.decode() for a in node.attribute if a.type == a.STRING}
            keys.append((node.op_type, strings.get("plugin_version"), strings.get("plugin_namespace")))
    return keys


def test_plugin_nodes_name_the_creator_declared_in_the_plugin_header(alex_dir):
    """Without plugin_namespace the parser of TensorRT 10.0-10.3 (JetPack 6) asks for namespace "" and
    never finds the creator, which registers under "siamrpn" (engines/plugin/depthwise_xcorr_plugin.h)."""
    from tests.plugin_library import header_creator_identity

    model = load(alex_dir / artifact_name("search", "fp32", "plugin", "onnx"))
    assert plugin_lookup_keys(model) == [header_creator_identity()] * 2


@pytest.mark.slow
def test_fp16_and_int8_variants_keep_the_plugin_lookup_attributes(alex_dir, tmp_path):
    from calibration.quantize import quantize
    from export.fp16 import convert_fp16
    from runtime.backends.onnxrt import OrtBackend
    from tests.plugin_library import header_creator_identity

    fp32 = alex_dir / artifact_name("search", "fp32", "plugin", "onnx")
    variants = [convert_fp16(fp32, tmp_path / f"search.fp16.{x}.onnx", xcorr=x) for x in ("fp32", "fp16")]
    with OrtBackend.from_dir(alex_dir, flavour="plugin") as backend:
        z, x = crops(backend.spec, n=1)
        kernels = backend.run_template(z)
    feeds = [{"search": x, **dict(zip(backend.spec.kernel_names, kernels.arrays))}]
    variants.append(quantize(fp32, feeds, tmp_path / "search.int8.plugin.onnx", method="max"))
    for path in variants:
        assert plugin_lookup_keys(load(path)) == [header_creator_identity()] * 2, path.name


def test_cli_rejects_a_missing_checkpoint(tmp_path):
    from export.to_onnx import main
    from runtime.errors import SiamTrackError

    with pytest.raises(SiamTrackError, match="no such file"):
        main(["--config", "alex", "--checkpoint", str(tmp_path / "nope.pth"), "--out", str(tmp_path)])

"""The real engine-build code (engines.build) run against TensorRT-RTX's CPU-only AOT builder.

Product exercised: ``tensorrt_rtx`` (TensorRT for RTX), whose Builder / strongly typed network /
OnnxParser / builder config / build_serialized_network mirror TensorRT's. It cannot deserialize or run
what it builds here (no GPU); TensorRT 10.x/11.x itself is not installable on this machine, so nothing
here proves full TensorRT's behaviour. Its Python network API has no add_plugin_v3, but its ONNX parser
adds IPluginV3 layers: with the DepthwiseXCorr library built from engines/plugin (TensorRT 11.x headers
needed) the plugin-flavour engines build ahead of time on the CPU, in a child process
(tests/plugin_library.py says why), and TensorRT itself calls the plugin's build-time methods.

The tiny graphs (tests/tiny_graphs.py) follow the contract (input/output names, metadata) with a
4-channel model; the standard twin of the search graph comes from export.xcorr_op.expand_xcorr_nodes.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import pytest

from runtime.contract import GraphMeta, ModelSpec
from runtime.engine_meta import RTX_DEFAULT_TARGETS, EngineBuildOptions, read_sidecar
from runtime.errors import ContractError, InputError
from tests.tiny_graphs import TINY, tiny_template, tiny_search_standard, to_fp16, to_qdq_template, write_tiny_folder


# --- tests -----------------------------------------------------------------------------------------
pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None,
                                reason="TensorRT-RTX (pip install tensorrt-rtx-cu12) provides the CPU builder")


def _build_main(folder, *extra, capsys):
    from engines.build import main

    rc = main([str(folder), "--product", "tensorrt_rtx", "--json", *extra])
    report = json.loads(capsys.readouterr().out)
    return rc, {row["engine"]: row for row in report["engines"]}


@pytest.fixture()
def tiny_folder(tmp_path):
    return write_tiny_folder(tmp_path / "tiny")


def test_rtx_builds_the_fp32_standard_pair_without_a_gpu(tiny_folder, capsys):
    rc, rows = _build_main(tiny_folder, "--max-batch", "3", "--opt-batch", "2", capsys=capsys)
    assert rc == 0
    for graph in ("template", "search"):
        assert rows[f"{graph}.fp32.standard.engine"]["status"].startswith("built"), rows
        engine = tiny_folder / f"{graph}.fp32.standard.engine"
        meta = read_sidecar(engine)
        assert engine.stat().st_size == meta.engine_bytes > 0
        assert (meta.product, meta.graph, meta.precision, meta.flavour) == ("tensorrt_rtx", graph, "fp32", "standard")
        assert meta.runs_on == RTX_DEFAULT_TARGETS and meta.gpu_name == ""
        assert ModelSpec.from_json(meta.model_spec) == TINY
    search = read_sidecar(tiny_folder / "search.fp32.standard.engine")
    assert search.profile["search"] == [(1, 3, 16, 16), (2, 3, 16, 16), (3, 3, 16, 16)]
    assert search.profile["kernel_loc"] == [(1, 4, 4, 4), (2, 4, 4, 4), (3, 4, 4, 4)]
    assert search.io_dtypes == {n: "float32" for n in ("search", "kernel_cls", "kernel_loc", "cls", "loc")}


def test_second_build_rebuilds_nothing(tiny_folder, capsys):
    _build_main(tiny_folder, capsys=capsys)
    engine = tiny_folder / "search.fp32.standard.engine"
    before = engine.stat().st_mtime_ns
    rc, rows = _build_main(tiny_folder, capsys=capsys)
    assert rc == 0 and {r["action"] for r in rows.values() if "standard" in r["engine"]} == {"fresh"}
    assert engine.stat().st_mtime_ns == before


def test_changed_onnx_rebuilds_only_its_engine(tiny_folder, capsys):
    _build_main(tiny_folder, capsys=capsys)
    onnx.save(tiny_search_standard(seed=7), str(tiny_folder / "search.fp32.standard.onnx"))
    _, rows = _build_main(tiny_folder, capsys=capsys)
    assert rows["template.fp32.standard.engine"]["action"] == "fresh"
    assert rows["search.fp32.standard.engine"]["action"] == "build"
    assert "search.fp32.standard.onnx changed" in " ".join(rows["search.fp32.standard.engine"]["reasons"])


def test_changed_max_batch_rebuilds_both(tiny_folder, capsys):
    _build_main(tiny_folder, capsys=capsys)
    _, rows = _build_main(tiny_folder, "--max-batch", "6", capsys=capsys)
    for graph in ("template", "search"):
        row = rows[f"{graph}.fp32.standard.engine"]
        assert row["action"] == "build" and "max_batch 4 -> 6" in " ".join(row["reasons"])


def test_plugin_search_graph_is_skipped_by_rtx_with_the_reason(tiny_folder, capsys):
    rc, rows = _build_main(tiny_folder, "--flavour", "plugin", "--dry-run", capsys=capsys)
    assert rc == 0
    assert rows["template.fp32.plugin.engine"]["action"] == "skip"  # half a pair is not built
    skipped = rows["search.fp32.plugin.engine"]
    assert skipped["action"] == "skip" and "no plugin layers" in skipped["reasons"][0]


def test_custom_op_graph_without_plugin_is_a_parser_error_naming_the_op(tiny_folder):
    from engines import trt_compat
    from engines.build import build_engine

    with pytest.raises(ContractError, match="(?s)DepthwiseXCorr.*--plugin-lib"):
        build_engine(tiny_folder / "search.fp32.plugin.onnx", tiny_folder / "x.engine",
                     api=trt_compat.load("tensorrt_rtx"))
    assert not (tiny_folder / "x.engine").exists()


def test_missing_plugin_library_is_refused_before_parsing(tiny_folder):
    from engines import trt_compat
    from engines.build import build_engine

    with pytest.raises(ContractError, match="plugin library .*libnothere.so does not exist"):
        build_engine(tiny_folder / "search.fp32.plugin.onnx", tiny_folder / "x.engine",
                     plugin_library=tiny_folder / "libnothere.so", api=trt_compat.load("tensorrt_rtx"))


def test_a_library_without_plugins_is_refused_by_the_registry(tiny_folder):
    """A real shared library that registers no plugin creator: TensorRT-RTX's registry returns None."""
    import ctypes.util
    from pathlib import Path

    from engines import trt_compat
    from engines.build import build_engine

    libz = next((p for p in (Path("/lib/x86_64-linux-gnu/libz.so.1"), Path("/usr/lib/libz.so.1")) if p.is_file()), None)
    if libz is None:
        pytest.skip(f"no libz.so.1 found to load (ctypes finds {ctypes.util.find_library('z')})")
    with pytest.raises(ContractError, match="could not load plugin library"):
        build_engine(tiny_folder / "search.fp32.plugin.onnx", tiny_folder / "x.engine", plugin_library=libz,
                     api=trt_compat.load("tensorrt_rtx"))


def test_fixed_batch_graph_cannot_get_a_batch_profile(tmp_path):
    from engines import trt_compat
    from engines.build import build_engine

    onnx.save(tiny_template(batch=1), str(tmp_path / "template.fp32.standard.onnx"))
    with pytest.raises(ContractError, match="fixed batch 1"):
        build_engine(tmp_path / "template.fp32.standard.onnx", tmp_path / "t.engine",
                     EngineBuildOptions(max_batch=4), api=trt_compat.load("tensorrt_rtx"))


def test_rtx_targets_are_recorded_and_unknown_ones_refused(tiny_folder, capsys):
    from runtime.errors import BackendUnavailable

    _build_main(tiny_folder, "--rtx-targets", "8.6", capsys=capsys)
    assert read_sidecar(tiny_folder / "template.fp32.standard.engine").runs_on == ("8.6",)
    from engines import trt_compat
    from engines.build import build_engine

    with pytest.raises(BackendUnavailable, match="7.2"):  # Xavier: no RTX target exists for it
        build_engine(tiny_folder / "template.fp32.standard.onnx", tiny_folder / "t.engine",
                     EngineBuildOptions(compute_targets=("7.2",)), api=trt_compat.load("tensorrt_rtx"))


def test_bad_options_are_refused_before_any_work(tiny_folder):
    from engines.build import main

    with pytest.raises(InputError, match="--max-batch must be >= 1"):
        main([str(tiny_folder), "--max-batch", "0"])
    with pytest.raises(InputError, match="--precision"):
        main([str(tiny_folder), "--precision", "fp8"])


@pytest.mark.parametrize("graph, maker", [("template.fp16", lambda: to_fp16(tiny_template())),
                                          ("search.fp16", lambda: to_fp16(tiny_search_standard())),
                                          ("template.int8", lambda: to_qdq_template(tiny_template()))])
def test_rtx_parser_accepts_strongly_typed_precision_graphs(tmp_path, graph, maker):
    """Which precision graphs TensorRT-RTX's parser and AOT builder accept (reported to the lead): FP16
    graphs with float32 I/O, and an INT8 Q/DQ convolution graph. Precision comes from the graph only."""
    from engines import trt_compat
    from engines.build import build_engine

    path = tmp_path / f"{graph}.standard.onnx"
    onnx.save(maker(), str(path))
    info = build_engine(path, tmp_path / f"{graph}.standard.engine", api=trt_compat.load("tensorrt_rtx"))
    assert info.sidecar.precision == graph.split(".")[1]
    assert set(info.sidecar.io_dtypes.values()) == {"float32"}  # the contract keeps graph I/O float32


@pytest.mark.slow
def test_real_exported_standard_twin_and_its_int8_variant_build(tmp_path, capsys):
    """The export stage's own standard twin of a random-weight AlexNet, and the calibration stage's INT8
    Q/DQ variant of it (2 random calibration samples: only the graph structure matters here), through
    the real build CLI."""
    to_onnx = pytest.importorskip("export.to_onnx", reason="export.to_onnx (H5) not available")
    out = tmp_path / "alex"
    assert to_onnx.main(["--config", "alex", "--random-seed", "0", "--out", str(out), "--flavour", "standard",
                         "--json"]) == 0
    capsys.readouterr()
    precisions = "fp32,int8" if _quantize_pair(out) else "fp32"
    rc, rows = _build_main(out, "--max-batch", "2", "--precision", precisions, capsys=capsys)
    assert rc == 0
    for name in [f"{g}.{p}.standard.engine" for g in ("template", "search") for p in precisions.split(",")]:
        assert rows[name]["status"].startswith("built"), rows
        assert read_sidecar(out / name).precision == name.split(".")[1]


def _quantize_pair(out) -> bool:
    """INT8 variants via calibration.quantize (H8) when it is importable; False when it is not."""
    try:
        from calibration.quantize import quantize
    except ImportError:
        return False
    import onnxruntime as ort

    spec = read_meta(out / "search.fp32.standard.onnx").spec
    rng = np.random.default_rng(0)
    template_feeds = [{"template": rng.uniform(0, 255, spec.template_shape(1)).astype(np.float32)} for _ in range(2)]
    quantize(out / "template.fp32.standard.onnx", template_feeds, out / "template.int8.standard.onnx", method="max")
    sess = ort.InferenceSession(str(out / "template.fp32.standard.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    search_feeds = [{"search": rng.uniform(0, 255, spec.search_shape(1)).astype(np.float32),
                     **dict(zip(names, sess.run(names, f)))} for f in template_feeds]
    quantize(out / "search.fp32.standard.onnx", search_feeds, out / "search.int8.standard.onnx", method="max")
    return True


def read_meta(path):
    model = onnx.load(str(path), load_external_data=False)
    return GraphMeta.from_props({p.key: p.value for p in model.metadata_props})


# --- the DepthwiseXCorr plugin inside TensorRT-RTX's AOT builder ------------------------------------
def test_plugin_graph_exported_without_lookup_attributes_is_refused_with_a_re_export_hint(tmp_path):
    """An export made before plugin_namespace/plugin_version were written would rely on the parser's
    fallback to the node's domain, which TensorRT 10.0-10.3 does not have: refused before parsing."""
    from engines import trt_compat
    from engines.build import build_engine
    from tests.tiny_graphs import tiny_search_plugin

    old = tiny_search_plugin()
    for node in old.graph.node:
        del node.attribute[:]
    onnx.save(old, str(tmp_path / "search.fp32.plugin.onnx"))
    with pytest.raises(ContractError, match=r"(?s)xc_cls, xc_loc lack .*plugin_namespace=\"siamrpn\".*Re-export"):
        build_engine(tmp_path / "search.fp32.plugin.onnx", tmp_path / "x.engine", api=trt_compat.load("tensorrt_rtx"))
    assert not (tmp_path / "x.engine").exists()


def _plugin_variants(folder):
    """The tiny plugin-flavour search graph and its FP16/INT8 variants made by the product's own stages:
    file name -> (precision, type the plugin must run in)."""
    from calibration.quantize import quantize
    from export.fp16 import convert_fp16
    from tests.tiny_graphs import tiny_search_plugin

    fp32 = folder / "search.fp32.plugin.onnx"
    onnx.save(tiny_search_plugin(), str(fp32))
    convert_fp16(fp32, folder / "search.fp16.plugin.onnx", xcorr="fp16")          # plugin in float16
    convert_fp16(fp32, folder / "search.fp16-xcorr32.plugin.onnx", xcorr="fp32")  # Casts around it
    rng = np.random.default_rng(0)
    feeds = [{"search": rng.uniform(0, 255, TINY.search_shape(1)).astype(np.float32),
              **{k: rng.standard_normal(TINY.kernel_shape(1)).astype(np.float32) for k in TINY.kernel_names}}
             for _ in range(2)]
    quantize(fp32, feeds, folder / "search.int8.plugin.onnx", method="max")
    return {"search.fp32.plugin.onnx": ("fp32", "float32"), "search.fp16.plugin.onnx": ("fp16", "float16"),
            "search.fp16-xcorr32.plugin.onnx": ("fp16", "float32"), "search.int8.plugin.onnx": ("int8", "float32")}


@pytest.fixture(scope="module")
def rtx_plugin_builds(tmp_path_factory):
    """Every plugin variant built by engines.build.build_engine in one TensorRT-RTX child process with a
    verbose logger: file name -> (expected precision, plugin type, child result with its own log)."""
    from tests.plugin_library import rtx_library_shim, rtx_plugin_library, run_rtx_child

    library, shim = rtx_plugin_library(tmp_path_factory), rtx_library_shim(tmp_path_factory)
    folder = tmp_path_factory.mktemp("rtx_plugin")
    variants = _plugin_variants(folder)
    args = [a for name in variants for a in ("--build", str(folder / name), str(folder / (name[:-4] + "engine")))]
    run = run_rtx_child(library, *args, shim=shim)
    assert run.returncode == 0, run.log[-4000:]
    results = {r["onnx"]: r for r in run.results}
    assert sorted(results) == sorted(variants), run.log[-4000:]
    return {name: (*expected, results[name]) for name, expected in variants.items()}, library


@pytest.mark.slow
@pytest.mark.parametrize("name", ["search.fp32.plugin.onnx", "search.fp16.plugin.onnx",
                                  "search.fp16-xcorr32.plugin.onnx", "search.int8.plugin.onnx"])
def test_rtx_builds_plugin_flavour_engines_ahead_of_time_on_cpu(rtx_plugin_builds, name):
    from runtime.contract import sha256_file

    builds, library = rtx_plugin_builds
    precision, _, result = builds[name]
    assert result["ok"], result
    assert (result["precision"], result["flavour"]) == (precision, "plugin") and result["engine_bytes"] > 0
    assert result["plugin_sha256"] == sha256_file(library)  # the sidecar ties the engine to this library
    assert set(result["io_dtypes"].values()) == {"float32"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["search.fp32.plugin.onnx", "search.fp16.plugin.onnx",
                                  "search.fp16-xcorr32.plugin.onnx", "search.int8.plugin.onnx"])
def test_tensorrt_calls_the_plugins_build_methods_with_the_graphs_types_and_shapes(rtx_plugin_builds, name):
    """The plugin logs each build-time call at kVERBOSE through TensorRT's logger; these lines come from
    TensorRT-RTX's own builder calling it (tiny graph: x (N,4,14,14), k (N,4,4,4), N dynamic)."""
    builds, _ = rtx_plugin_builds
    _, dtype, result = builds[name]
    log = result["log"]
    assert "DepthwiseXCorr getOutputShapes: x (?, 4, 14, 14), k (?, 4, 4, 4) -> output (?, 4, 11, 11)" in log
    assert f"DepthwiseXCorr getOutputDataTypes: inputs {dtype}, {dtype} -> output {dtype}" in log
    for position in range(3):  # x, k, output: linear in the graph's type is chosen, other formats refused
        assert f"DepthwiseXCorr supportsFormatCombination: position {position} {dtype} linear -> accepted" in log
    assert (f"DepthwiseXCorr configurePlugin: x {dtype} linear (-1, 4, 14, 14), k {dtype} linear (-1, 4, 4, 4)"
            in log)
    other = "float16" if dtype == "float32" else "float32"
    assert f"getOutputDataTypes: inputs {other}" not in log  # the type is the graph's, nothing else is tried

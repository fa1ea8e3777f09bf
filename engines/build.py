"""Build TensorRT engines from the ONNX variants of one export: ``python -m engines.build FOLDER``.

``build_engine`` is the thin TensorRT part (strongly typed network, ONNX parser, one optimisation
profile over the batch, workspace limit, optimisation level, persistent timing cache), ``main`` turns
a folder into a plan (``engines.plan``) and carries it out, rebuilding only stale engines.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engines import trt_compat
from engines.plan import BUILD, FRESH, SKIP, BuildPlan, BuildRequest, Listing, Machine, OnnxArtifact, \
    choose_product, make_plan, validate_options
from runtime.contract import ALL_GRAPHS, PRECISIONS, XCORR_DOMAIN, XCORR_FLAVOURS, XCORR_NODE_ATTRIBUTES, XCORR_OP, \
    GraphMeta, sha256_file
from runtime.engine_meta import PRODUCTS, EngineBuildOptions, EngineSidecar, read_sidecar, sidecar_path, write_atomic, \
    write_sidecar
from runtime.errors import BackendUnavailable, ContractError, InputError, SiamTrackError


class EngineBuildError(SiamTrackError):
    """TensorRT parsed the graph but could not build an engine from it."""


@dataclass(frozen=True)
class EngineInfo:
    """A built engine: its file, its sidecar, and what building it took."""

    engine: Path
    sidecar: EngineSidecar
    seconds: float


def build_engine(onnx_path: str | Path, out_path: str | Path, options: EngineBuildOptions = EngineBuildOptions(),
                 *, api: trt_compat.TrtApi | None = None, plugin_library: str | Path | None = None,
                 timing_cache: str | Path | None = None, gpu: tuple[str, str] | None = None,
                 verbose: bool = False) -> EngineInfo:
    """Parse ``onnx_path`` (an export of this project) and write ``out_path`` + ``<out_path>.json``.

    Precision comes from the graph (FP32, FP16 or INT8 Q/DQ) through a strongly typed network.
    gpu: (name, compute capability) of the build GPU for the sidecar; None for an AOT build without one.
    """
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    api = api or trt_compat.load()
    if not api.toolkit().builds_without_gpu:
        gpu = gpu or _build_gpu(api)  # TensorRT's builder times kernels on the GPU: never start it without one
    meta = _read_graph_meta(onnx_path)
    start = time.perf_counter()
    if plugin_library is not None:
        api.load_plugin_library(plugin_library)
    logger = api.logger(verbose)
    builder = api.trt.Builder(logger)
    network = builder.create_network(api.network_flags())
    if not api.is_strongly_typed(network):
        raise EngineBuildError(f"{api.product} {api.version} did not create a strongly typed network; the "
                               "precision of the graph would not be honoured")
    parser = api.trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ContractError(f"{onnx_path}: {api.product} {api.version}'s ONNX parser rejected the graph:\n  "
                            + "\n  ".join(errors) + _parse_hint(meta))
    config = builder.create_builder_config()
    profile = _add_profile(api, builder, network, config, meta, options, onnx_path)
    api.set_workspace(config, options.workspace_mib << 20)
    api.set_optimization_level(config, options.optimization_level)
    runs_on = api.set_compute_targets(config, options.compute_targets) or ((gpu[1],) if gpu else ())
    if timing_cache is not None:
        cache_file = Path(timing_cache)
        api.attach_timing_cache(config, cache_file.read_bytes() if cache_file.is_file() else b"")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{onnx_path}: {api.product} {api.version} could not build an engine (see its "
                               "log above); try a larger --workspace-mib or a lower --opt-level")
    data = bytes(memoryview(serialized))
    sidecar_path(out_path).unlink(missing_ok=True)  # never leave an old sidecar describing a new engine
    write_atomic(out_path, data)
    if timing_cache is not None:
        _save_timing_cache(api, config, Path(timing_cache))
    sidecar = EngineSidecar(
        engine_file=out_path.name, graph=meta.graph, precision=meta.precision, flavour=meta.xcorr,
        product=api.product, product_version=api.version, gpu_name=gpu[0] if gpu else "",
        compute_capability=gpu[1] if gpu else "", runs_on=tuple(runs_on),
        # File names only: a sidecar names files, it never says where code is loaded from (engine_meta).
        onnx_file=onnx_path.name, onnx_sha256=sha256_file(onnx_path), export_id=meta.export_id,
        build_options=options, profile=profile,
        plugin_library=Path(plugin_library).name if plugin_library else None,
        plugin_sha256=sha256_file(plugin_library) if plugin_library else None,
        io_dtypes=_io_dtypes(api, network), model_spec=meta.spec.to_json(), tracker_config=meta.tracker.to_json(),
        engine_sha256=_sha256_bytes(data), engine_bytes=len(data),
        built_at_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(time.perf_counter() - start, 3))
    write_sidecar(out_path, sidecar)
    return EngineInfo(out_path, sidecar, sidecar.build_seconds)


def _build_gpu(api) -> tuple[str, str]:
    machine = machine_gpu()
    if machine.gpu is None:
        raise BackendUnavailable(f"{api.product} {api.version} builds engines on a GPU and there is none here "
                                 f"({machine.gpu_reason}); build on the target device, or use TensorRT-RTX "
                                 "(--product tensorrt_rtx) for ahead-of-time RTX engines")
    return machine.gpu


def _read_graph_meta(onnx_path: Path) -> GraphMeta:
    import onnx

    if not onnx_path.is_file():
        raise InputError(f"{onnx_path}: ONNX file not found")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # protobuf raises assorted types for a corrupt file
        raise ContractError(f"{onnx_path}: not a readable ONNX file ({exc}); re-export it") from None
    _check_plugin_lookup_attributes(model, onnx_path)
    return GraphMeta.from_props({p.key: p.value for p in model.metadata_props}, where=str(onnx_path))


def _check_plugin_lookup_attributes(model, onnx_path: Path) -> None:
    """Refuse DepthwiseXCorr nodes without the plugin_namespace/plugin_version string attributes (exports
    made before they were written): TensorRT 10.0-10.3's ONNX parser (JetPack 6) finds the plugin only
    through them, and newer parsers would find it only through their fallback to the node's domain."""
    wanted = dict(XCORR_NODE_ATTRIBUTES)
    stale = []
    for node in model.graph.node:
        if node.domain == XCORR_DOMAIN and node.op_type == XCORR_OP:
            got = {a.name: a.s.decode() for a in node.attribute if a.type == a.STRING}
            if any(got.get(name) != value for name, value in wanted.items()):
                stale.append(node.name or node.output[0])
    if stale:
        expected = ", ".join(f'{name}="{value}"' for name, value in XCORR_NODE_ATTRIBUTES)
        raise ContractError(f"{onnx_path}: {XCORR_DOMAIN}::{XCORR_OP} node(s) {', '.join(stale)} lack the string "
                            f"attributes {expected} that TensorRT's ONNX parser needs to find the plugin (the file "
                            "was exported by an older version of this project). Re-export it: `bash build.sh` "
                            "again, or `siamtrack export` followed by `siamtrack fp16` / `siamtrack quantize` for "
                            "the FP16/INT8 variants.")


def _add_profile(api, builder, network, config, meta: GraphMeta, options: EngineBuildOptions, onnx_path: Path) -> dict:
    from engines.plan import profile_shapes

    wanted = profile_shapes(meta.graph, meta.spec, options)
    inputs = {network.get_input(i).name: network.get_input(i) for i in range(network.num_inputs)}
    if sorted(inputs) != sorted(wanted):
        raise ContractError(f"{onnx_path}: graph inputs are {sorted(inputs)}, the contract expects {sorted(wanted)}; "
                            "re-export with this version of the project")
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in wanted.items():
        if inputs[name].shape[0] != -1 and hi[0] != 1:
            raise ContractError(f"{onnx_path}: input {name} has a fixed batch {inputs[name].shape[0]}, so no "
                                f"profile up to {hi[0]} targets exists; re-export with a dynamic batch")
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    return {name: [list(s) for s in shapes] for name, shapes in wanted.items()}


def _io_dtypes(api, network) -> dict:
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    tensors += [network.get_output(i) for i in range(network.num_outputs)]
    return {t.name: api.dtype_name(t.dtype) for t in tensors}


def _parse_hint(meta: GraphMeta) -> str:
    if meta.xcorr == "plugin":
        return (f"\nThe plugin flavour needs the {XCORR_DOMAIN}::DepthwiseXCorr plugin: pass --plugin-lib, or "
                "build the standard flavour.")
    return ""


def _save_timing_cache(api, config, path: Path) -> None:
    blob = api.serialize_timing_cache(config)
    if blob:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, blob)


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# --- folder -> plan -> engines -------------------------------------------------------------------
def list_folder(folder: Path, plugin_library: Path | None) -> Listing:
    """Hash and read the metadata of every ONNX variant in ``folder``; read every engine sidecar."""
    import onnx

    found = {}
    for path in sorted(folder.glob("*.onnx")):
        parts = path.name.split(".")
        if len(parts) != 4 or parts[0] not in ALL_GRAPHS or parts[1] not in PRECISIONS or parts[2] not in XCORR_FLAVOURS:
            continue
        model = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        meta = GraphMeta.from_props(props, where=str(path))
        custom = any(n.domain == XCORR_DOMAIN for n in model.graph.node)
        found[path.name] = OnnxArtifact(path.name, sha256_file(path), meta.spec, meta.export_id, custom)
    sidecars, unreadable = {}, {}
    for path in folder.glob("*.engine"):
        try:
            sidecars[path.name] = read_sidecar(path)
        except ContractError as exc:  # an engine without a valid sidecar is rebuilt, and the plan says why
            unreadable[path.name] = str(exc)
    plugin_sha = None
    if plugin_library is not None:
        plugin_sha = sha256_file(plugin_library) if Path(plugin_library).is_file() else ""
    return Listing(found, sidecars, plugin_sha, unreadable)


def machine_gpu() -> Machine:
    from runtime.gpu import gpu_status

    available, reason = gpu_status()
    if not available:
        return Machine(None, reason)
    from runtime.backends.cuda_mem import device_identity

    return Machine(device_identity(), "")


def run_plan(plan: BuildPlan, request: BuildRequest, api, machine: Machine, verbose: bool = False,
             progress: bool = True) -> dict[str, str]:
    """Build every ``build`` job; returns engine name -> "built (N s)" or "failed: ..."."""
    from tqdm import tqdm

    results = {}
    todo = plan.by_action(BUILD)
    for job in tqdm(todo, desc="engines", unit="engine", disable=not progress or not todo, file=sys.stderr):
        try:
            info = build_engine(job.onnx, job.engine, request.options, api=api, plugin_library=job.plugin_library,
                                timing_cache=plan.timing_cache, gpu=machine.gpu, verbose=verbose)
            results[job.label] = f"built in {info.seconds:.1f} s"
        except SiamTrackError as exc:
            results[job.label] = f"failed: {exc}"
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="siamtrack engines",
        description="Build TensorRT engines (one per graph, precision and flavour) from the ONNX variants in "
                    "FOLDER, next to them as <graph>.<precision>.<flavour>.engine with a .engine.json sidecar. "
                    "Only missing or stale engines are built.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  siamtrack engines artifacts/mobilev2                            # FP32 standard-op engines\n"
               "  siamtrack engines artifacts/r50 --precision fp32,fp16,int8 --flavour plugin,standard \\\n"
               "      --plugin-lib artifacts/plugin/libsiamrpn_xcorr_plugin.so --max-batch 8\n"
               "  siamtrack engines artifacts/r50 --product tensorrt_rtx           # RTX AOT engines, no GPU needed\n"
               "  siamtrack engines artifacts/r50 --dry-run --json                # only print the plan\n")
    p.add_argument("folder", type=Path, help="folder of ONNX variants written by the export stage")
    p.add_argument("--precision", default="fp32", help="comma-separated subset of fp32,fp16,int8 (default fp32)")
    p.add_argument("--flavour", default="standard", help="comma-separated subset of standard,plugin (default standard)")
    p.add_argument("--max-batch", type=int, default=4, help="largest number of targets per call (default 4)")
    p.add_argument("--opt-batch", type=int, default=1, help="batch TensorRT tunes for (default 1)")
    p.add_argument("--workspace-mib", type=int, default=1024, help="builder workspace limit in MiB (default 1024)")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimisation level 0..5 (default 3)")
    p.add_argument("--product", choices=("auto", "tensorrt", "tensorrt_rtx"), default="auto",
                   help="TensorRT product to build with (auto: tensorrt if importable, else tensorrt_rtx when "
                        "a GPU is present; RTX engines without a GPU only when asked for)")
    p.add_argument("--rtx-targets", default="", help="TensorRT-RTX AOT compute capabilities, e.g. 8.6,8.9 "
                                                     "(default: RTX's portable set)")
    p.add_argument("--plugin-lib", type=Path, help="DepthwiseXCorr plugin library for the plugin flavour (default: "
                                                    "artifacts/plugin/libsiamrpn_xcorr_plugin.so when it exists, "
                                                    "as `siamtrack plugin` writes it)")
    p.add_argument("--force", action="store_true", help="rebuild even engines that are up to date")
    p.add_argument("--dry-run", action="store_true", help="print the plan, build nothing")
    p.add_argument("--json", action="store_true", help="print the plan and results as JSON")
    p.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")
    return p


def _split(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise InputError(f"{flag} {text!r}: expected a comma-separated subset of {', '.join(allowed)}")
    return items


def request_from_args(args) -> BuildRequest:
    options = EngineBuildOptions(max_batch=args.max_batch, opt_batch=args.opt_batch, workspace_mib=args.workspace_mib,
                                 optimization_level=args.opt_level,
                                 compute_targets=tuple(t for t in args.rtx_targets.split(",") if t))
    problems = validate_options(options)
    if problems:
        raise InputError("; ".join(problems))
    if not args.folder.is_dir():
        raise InputError(f"{args.folder}: not a folder; pass the folder the export stage wrote (e.g. artifacts/r50)")
    return BuildRequest(folder=args.folder, precisions=_split(args.precision, PRECISIONS, "--precision"),
                        flavours=_split(args.flavour, XCORR_FLAVOURS, "--flavour"), options=options,
                        plugin_library=args.plugin_lib or _default_plugin(), force=args.force)


def _default_plugin() -> Path | None:
    from engines.plugin_build import DEFAULT_OUT_DIR, LIBRARY_NAME

    path = DEFAULT_OUT_DIR / LIBRARY_NAME
    return path if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    request = request_from_args(args)
    machine = machine_gpu()
    toolkit = choose_product(args.product, {name: trt_compat.probe(name) for name in PRODUCTS}, machine)
    if args.product != "auto" and toolkit.product is None:
        raise InputError(f"--product {args.product}: {toolkit.missing}")
    plan = make_plan(request, list_folder(request.folder, request.plugin_library), toolkit, machine)
    results = {}
    if not args.dry_run and plan.by_action(BUILD):
        results = run_plan(plan, request, trt_compat.load(toolkit.product), machine, args.verbose,
                           progress=not args.json)
    _report(plan, toolkit, machine, results, args.json)
    return 1 if any(r.startswith("failed") for r in results.values()) else 0


def _report(plan: BuildPlan, toolkit, machine: Machine, results: dict, as_json: bool) -> None:
    rows = []
    for job in plan.jobs:
        status = results.get(job.label) or {BUILD: "would build", FRESH: "up to date", SKIP: "skipped"}[job.action]
        rows.append({"engine": job.label, "action": job.action, "status": status, "reasons": list(job.reasons)})
    if as_json:
        print(json.dumps({"product": toolkit.product, "version": toolkit.version,
                          "gpu": list(machine.gpu) if machine.gpu else None, "gpu_reason": machine.gpu_reason,
                          "timing_cache": str(plan.timing_cache) if plan.timing_cache else None, "engines": rows},
                         indent=2))
        return
    where = f"{toolkit.product} {toolkit.version}" if toolkit.product else "no TensorRT"
    gpu = f"{machine.gpu[0]} (sm {machine.gpu[1]})" if machine.gpu else f"no GPU ({machine.gpu_reason})"
    print(f"engines: {where}; {gpu}")
    width = max((len(r["engine"]) for r in rows), default=0)
    for r in rows:
        detail = r["status"] if r["action"] != SKIP else "skipped: " + "; ".join(r["reasons"])
        if r["action"] == BUILD and not r["status"].startswith("failed"):
            detail += f" ({'; '.join(r['reasons'])})"
        print(f"  {r['engine']:<{width}}  {detail}")


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack engines"))

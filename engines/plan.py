"""The build plan: which engines to build from which ONNX variants, with which plugin library, profile
shapes and timing cache, and which existing engines are still fresh. Pure: data in, data out.

``make_plan(request, listing, toolkit, machine)`` decides; ``engines.build`` gathers the inputs (reads
the folder, hashes files, probes TensorRT and the GPU) and carries the plan out.

A long-term export's ``search_lost`` graph (the 831 crop) gets its own engine,
``search_lost.<precision>.<flavour>.engine``, with one profile over the batch at that fixed size, planned
beside the search engine of the same variant. Not a second optimisation profile in the search engine:
TensorRT tunes each profile separately anyway (the build costs the same), a two-profile engine needs a
context per profile (two activation buffers, as two engines), and the runtime's 255 path stays the
single-profile engine it was. The cost of two engines is the weights twice in device memory.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from runtime.contract import GRAPHS, LOST_GRAPH, PRECISIONS, XCORR_FLAVOURS, ModelSpec, artifact_name
from runtime.engine_meta import MAX_BATCH_LIMIT, CurrentEnv, EngineBuildOptions, EngineSidecar, check_fresh

BUILD, FRESH, SKIP = "build", "fresh", "skip"


@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for. plugin_library: path of the DepthwiseXCorr plugin .so (plugin flavour)."""

    folder: Path
    precisions: tuple[str, ...] = ("fp32",)
    flavours: tuple[str, ...] = ("standard",)
    options: EngineBuildOptions = EngineBuildOptions()
    plugin_library: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class OnnxArtifact:
    """One ONNX variant found in the folder. uses_custom_op: the graph holds siamrpn::DepthwiseXCorr."""

    name: str
    sha256: str
    spec: ModelSpec
    export_id: str
    uses_custom_op: bool


@dataclass(frozen=True)
class Listing:
    """The folder's contents: ONNX variants by file name, sidecars of existing engines by engine file
    name, the sha256 of the requested plugin library ("" when that file is missing), and engine file
    name -> why its sidecar is missing or invalid (such an engine is rebuilt, with that reason)."""

    onnx: dict[str, OnnxArtifact] = field(default_factory=dict)
    sidecars: dict[str, EngineSidecar] = field(default_factory=dict)
    plugin_sha256: str | None = None
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Machine:
    """The builder's view of this machine. gpu: (name, compute capability) or None; gpu_reason says why not."""

    gpu: tuple[str, str] | None
    gpu_reason: str = ""


@dataclass(frozen=True)
class EngineJob:
    """One engine: ``action`` is build, fresh (up to date) or skip; ``reasons`` say why."""

    graph: str
    precision: str
    flavour: str
    onnx: Path
    engine: Path
    action: str
    reasons: tuple[str, ...]
    profile: dict = field(default_factory=dict)
    plugin_library: Path | None = None

    @property
    def label(self) -> str:
        return self.engine.name


@dataclass(frozen=True)
class BuildPlan:
    jobs: tuple[EngineJob, ...]
    timing_cache: Path | None
    product: str | None

    def by_action(self, action: str) -> list[EngineJob]:
        return [j for j in self.jobs if j.action == action]


def profile_shapes(graph: str, spec: ModelSpec, options: EngineBuildOptions) -> dict:
    """Input name -> (min, opt, max) shapes: batch 1, ``opt_batch`` and ``max_batch`` targets; the
    search_lost graph at ``spec.lost_instance_size``."""
    batches = (1, options.opt_batch, options.max_batch)
    if graph == "template":
        return {"template": tuple(spec.template_shape(n) for n in batches)}
    size = spec.lost_instance_size if graph == LOST_GRAPH else None
    shapes = {"search": tuple(spec.search_shape(n, size) for n in batches)}
    shapes.update({k: tuple(spec.kernel_shape(n, k) for n in batches) for k in spec.kernel_names})
    return shapes


def timing_cache_path(folder: Path, product: str, version: str, gpu: tuple[str, str]) -> Path:
    """One cache per product, version and GPU model: TensorRT refuses (or mis-tunes with) a cache from
    another version or device, and every engine of the folder shares the kernels it times."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu[0]).strip("-").lower() or "gpu"
    return folder / "timing" / f"{product}-{version}-{slug}-sm{gpu[1].replace('.', '')}.cache"


def validate_options(options: EngineBuildOptions) -> list[str]:
    """Problems with the options themselves (empty when they are usable)."""
    problems = []
    if not 1 <= options.max_batch <= MAX_BATCH_LIMIT:
        problems.append(f"--max-batch must be >= 1 and <= {MAX_BATCH_LIMIT} (got {options.max_batch})")
    if not 1 <= options.opt_batch <= max(options.max_batch, 1):
        problems.append(f"--opt-batch must be within 1..max-batch {options.max_batch} (got {options.opt_batch})")
    if options.workspace_mib < 1:
        problems.append(f"--workspace-mib must be >= 1 (got {options.workspace_mib})")
    if not 0 <= options.optimization_level <= 5:
        problems.append(f"--opt-level must be within 0..5 (got {options.optimization_level})")
    return problems


def choose_product(requested: str, installed: dict, machine: Machine):
    """The Toolkit to build with. requested: "auto", "tensorrt" or "tensorrt_rtx"; installed: product ->
    Toolkit (product None when it cannot be imported). "auto" takes TensorRT when importable, else
    TensorRT-RTX on a machine with a GPU; RTX ahead-of-time engines without a GPU only when asked for."""
    from engines.trt_compat import Toolkit

    if requested != "auto":
        return installed[requested]
    trt, rtx = installed.get("tensorrt"), installed.get("tensorrt_rtx")
    if trt is not None and trt.product:
        return trt
    if rtx is not None and rtx.product:
        if machine.gpu:
            return rtx
        return Toolkit(product=None, missing=f"TensorRT is not installed; TensorRT-RTX {rtx.version} is, and can "
                                             "build RTX engines without a GPU: pass --product tensorrt_rtx")
    return trt or rtx or Toolkit(product=None, missing="no TensorRT product was probed")


def make_plan(request: BuildRequest, listing: Listing, toolkit, machine: Machine) -> BuildPlan:
    """Decide every engine of ``request``. ``toolkit`` is an ``engines.trt_compat.Toolkit``."""
    cache = None
    if toolkit.product and toolkit.timing_cache and machine.gpu:
        cache = timing_cache_path(request.folder, toolkit.product, toolkit.version, machine.gpu)
    jobs = []
    for p in request.precisions:
        for f in request.flavours:
            template, search = (_decide(request, listing, toolkit, machine, g, p, f) for g in GRAPHS)
            if search.action == SKIP and template.action == BUILD:  # half a pair is of no use to the runtime
                template = dataclasses.replace(template, action=SKIP,
                                               reasons=(f"its search engine is skipped: {search.reasons[0]}",))
            jobs += [template, search]
            if artifact_name(LOST_GRAPH, p, f, "onnx") in listing.onnx:   # a long-term export
                lost = _decide(request, listing, toolkit, machine, LOST_GRAPH, p, f)
                if search.action == SKIP and lost.action == BUILD:   # useless without the pair
                    lost = dataclasses.replace(lost, action=SKIP,
                                               reasons=(f"its search engine is skipped: {search.reasons[0]}",))
                jobs.append(lost)
    return BuildPlan(tuple(jobs), cache, toolkit.product)


def _decide(request, listing, toolkit, machine, graph, precision, flavour) -> EngineJob:
    if precision not in PRECISIONS or flavour not in XCORR_FLAVOURS:
        raise ValueError(f"unknown precision/flavour {precision}/{flavour}")
    onnx_name = artifact_name(graph, precision, flavour, "onnx")
    engine = request.folder / artifact_name(graph, precision, flavour, "engine")
    art = listing.onnx.get(onnx_name)

    def job(action, *reasons, plugin=None):
        profile = profile_shapes(graph, art.spec, request.options) if art else {}
        return EngineJob(graph, precision, flavour, request.folder / onnx_name, engine, action, tuple(reasons),
                         profile, plugin)

    if art is None:
        return job(SKIP, f"{onnx_name} not found in {request.folder}: {_make_variant_hint(precision, flavour)}")
    if not toolkit.product:
        return job(SKIP, toolkit.missing)
    if not machine.gpu and not toolkit.builds_without_gpu:
        return job(SKIP, f"{toolkit.product} {toolkit.version} builds engines by timing kernels on a GPU, and "
                         f"there is none here ({machine.gpu_reason}); build on the target device, or use "
                         "--product tensorrt_rtx for RTX ahead-of-time engines")
    plugin = None
    if art.uses_custom_op:
        if not toolkit.plugins:
            # Its ONNX parser can add plugin layers, but only in a process started with an unversioned
            # libtensorrt_rtx.so on LD_LIBRARY_PATH (the wheel ships .so.1 alone; engines/plugin/README.md)
            return job(SKIP, f"{toolkit.product} {toolkit.version}'s Python network API has no plugin layers "
                             "(add_plugin_v3), so this tool does not build the custom DepthwiseXCorr op with it; "
                             "use the standard flavour (engines/plugin/README.md: building it by hand)")
        if request.plugin_library is None:
            return job(SKIP, "the graph uses the DepthwiseXCorr custom op and no plugin library was found: "
                             "build it with `python -m engines.plugin_build`, or pass --plugin-lib PATH")
        if listing.plugin_sha256 == "":
            return job(SKIP, f"plugin library {request.plugin_library} does not exist; build it with "
                             "`python -m engines.plugin_build`")
        plugin = request.plugin_library
    stale = _staleness(request, listing, toolkit, machine, engine, art, plugin)
    if stale is None:
        return job(FRESH, "up to date", plugin=plugin)
    return job(BUILD, *stale, plugin=plugin)


def _staleness(request, listing, toolkit, machine, engine, art, plugin) -> list[str] | None:
    """Reasons to (re)build ``engine``, or None when its sidecar shows it is fresh."""
    if request.force:
        return ["--force"]
    sidecar = listing.sidecars.get(engine.name)
    if engine.name in listing.unreadable:
        return [f"its sidecar is invalid: {listing.unreadable[engine.name]}"]
    if sidecar is None:
        return ["no engine yet"]
    env = CurrentEnv(product=toolkit.product, product_version=toolkit.version,
                     gpu_name=machine.gpu[0] if machine.gpu else None,
                     compute_capability=machine.gpu[1] if machine.gpu else None,
                     onnx_sha256=art.sha256, plugin_sha256=listing.plugin_sha256 if plugin else None,
                     build_options=request.options)
    reasons = check_fresh(sidecar, env)
    if plugin is None and sidecar.plugin_sha256:
        reasons.append("built with a plugin library, but the graph no longer needs one")
    return reasons or None


def _make_variant_hint(precision: str, flavour: str) -> str:
    if precision == "fp32":
        return f"export it first (`siamtrack export ... --flavour {flavour}`)"
    if precision == "fp16":
        return "make the FP16 variant first (export/fp16.py, run by build.sh)"
    return "make the INT8 Q/DQ variant first (calibration/quantize.py, run by build.sh)"

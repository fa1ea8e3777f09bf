"""The pure half of ``siamtrack verify``: what it checks (``make_plan``), whether each check and item
can run here (``evaluate`` over ``Facts`` and the results so far), and the exit code of a set of results.

Nothing here looks at a file, imports TensorRT or starts a process, so every branch is tested on CPU.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from runtime.contract import GRAPHS, LOST_GRAPH, PRECISIONS, artifact_name

PASS, FAIL, SKIPPED = "pass", "fail", "skipped"
EXIT_OK, EXIT_FAILED, EXIT_INCOMPLETE = 0, 1, 3
LIMIT_S = 600   # the whole verification must fit in 10 minutes on a desktop GPU with the default model
UNVERIFIED = ("This command has not yet been run on a GPU: its GPU steps are unverified until someone runs "
              "it on a machine with an NVIDIA GPU and TensorRT.")

# Seconds per step on a desktop GPU with the default model (lite0); the sum stays under LIMIT_S. A step
# that runs longer is stopped and reported as failed; --time-scale stretches them (e.g. 3 on a Jetson).
BUDGET_S = {"provenance": 15, "plugin": 60, "engines.standard": 90, "engines.plugin": 90, "selfcheck": 45,
            "gpu-tests": 120, "latency": 75, "accuracy": 75}


@dataclass(frozen=True)
class Sizes:
    """How much the comparison steps measure: few repeats, a handful of generated sequences, to fit
    the budget. threads: ONNX Runtime's CPU threads in the latency/accuracy runs (at most 4, never more
    than the CPUs: oversubscribed threads make the CPU side the slowest step)."""

    latency_iterations: int = 30
    latency_warmup: int = 5
    latency_template_iters: int = 10
    accuracy_sequences: int = 6
    accuracy_frames: int = 50
    threads: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))


@dataclass(frozen=True)
class Options:
    """What to verify. Paths are absolute (the steps run with the project root as working folder)."""

    artifacts: Path
    report_dir: Path
    precisions: tuple[str, ...] = PRECISIONS
    flavours: tuple[str, ...] = ("plugin", "standard")
    max_batch: int = 4
    config: str | None = None
    checkpoint: Path | None = None
    time_scale: float = 1.0
    sizes: Sizes = Sizes()
    python: str = sys.executable
    # the export has the long-term search graph (search_lost.*): its ONNX files, engines and self-check
    # rows are verified like the pair's
    lost_search: bool = False

    @property
    def graphs(self) -> tuple[str, ...]:
        return GRAPHS + ((LOST_GRAPH,) if self.lost_search else ())


@dataclass(frozen=True)
class ItemSpec:
    """One reported item of a check. prerequisites: see ``evaluate``. args: what the item adds to the
    check's command when it runs (e.g. its ``--run``). produces: what it makes, named in the reason of
    items that need it ("plugin library"). reference: the item it is compared with (same check)."""

    name: str
    prerequisites: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    produces: str = ""
    reference: str = ""


@dataclass(frozen=True)
class Check:
    """One step. Exactly one of ``argv`` (a subprocess; its runnable items' args are appended) or
    ``function`` ("module:function", called with (check, options) -> list of ItemResult) is set.
    parser: how the subprocess's output becomes item results (a key of PARSERS). output: a file the
    step writes for the parser (JUnit XML, an accuracy folder). dynamic: items are discovered by the
    step itself (pytest), not listed in the plan."""

    name: str
    title: str
    budget_s: float
    prerequisites: tuple[str, ...] = ()
    items: tuple[ItemSpec, ...] = ()
    argv: tuple[str, ...] = ()
    function: str = ""
    parser: str = ""
    output: str = ""
    dynamic: bool = False

    def command(self, items: tuple[ItemSpec, ...] | None = None) -> tuple[str, ...]:
        items = self.items if items is None else items
        return self.argv + tuple(a for item in items for a in item.args)


@dataclass(frozen=True)
class ItemResult:
    """status: pass | fail | skipped; detail: the reason (skipped, fail) or a note; figures: numbers.
    reasons: a skipped item's distinct reasons (detail joins them)."""

    name: str
    status: str
    detail: str = ""
    figures: dict = field(default_factory=dict)
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    name: str
    title: str
    status: str
    items: tuple[ItemResult, ...]
    seconds: float = 0.0
    budget_s: float = 0.0
    command: str = ""
    log: str = ""


# ------------------------------------------------------------------ the plan (pure)

def _engine(graph: str, precision: str, flavour: str) -> str:
    return artifact_name(graph, precision, flavour, "engine")


def _onnx_file(options: Options, graph: str, precision: str, flavour: str) -> str:
    return "file:" + str(options.artifacts / artifact_name(graph, precision, flavour, "onnx"))


def _budget(options: Options, name: str) -> float:
    return BUDGET_S[name] * options.time_scale


def make_plan(options: Options) -> list[Check]:
    """Every check for ``options``, in the order they run. Pure: looks at no file and no library."""
    py, out, s = options.python, str(options.artifacts), options.sizes
    plan: list[Check] = []
    if options.checkpoint is not None:
        plan.append(Check(
            "provenance", f"every ONNX variant was exported from {options.checkpoint.name}",
            _budget(options, "provenance"), (f"file:{options.checkpoint}",),
            tuple(ItemSpec(artifact_name(g, p, f, "onnx"), (_onnx_file(options, g, p, f),))
                  for p in options.precisions for f in options.flavours for g in options.graphs),
            function="engines.verify_steps:check_provenance"))
    from engines.plugin_build import DEFAULT_OUT_DIR, LIBRARY_NAME

    plugin_lib = DEFAULT_OUT_DIR / LIBRARY_NAME
    if "plugin" in options.flavours:
        plan.append(Check(
            "plugin", "build the DepthwiseXCorr plugin library for this GPU", _budget(options, "plugin"),
            ("gpu", "plugin-toolchain"), (ItemSpec(LIBRARY_NAME, produces="plugin library"),),
            argv=(py, "-m", "engines.plugin_build", "--json"), parser="plugin"))
    for flavour in options.flavours:
        needs = ("gpu", "tensorrt") + ((f"item:plugin/{LIBRARY_NAME}",) if flavour == "plugin" else ())
        argv = (py, "-m", "engines.build", out, "--product", "tensorrt", "--precision", ",".join(options.precisions),
                "--flavour", flavour, "--max-batch", str(options.max_batch), "--json")
        if flavour == "plugin":
            argv += ("--plugin-lib", str(plugin_lib))
        plan.append(Check(
            f"engines.{flavour}", f"build the {flavour}-flavour engines (only missing or stale ones)",
            _budget(options, f"engines.{flavour}"), needs,
            tuple(ItemSpec(_engine(g, p, flavour), (_onnx_file(options, g, p, flavour),),
                           produces=f"engine {_engine(g, p, flavour)}")
                  for p in options.precisions for g in options.graphs),
            argv=argv, parser="engines"))
    plan.append(Check(
        "selfcheck", "each engine against ONNX Runtime on recorded inputs (max error vs tolerance)",
        _budget(options, "selfcheck"), ("gpu", "tensorrt", "onnxruntime"),
        tuple(ItemSpec(_engine(g, p, f), (f"item:engines.{f}/{_engine(g, p, f)}",))
              for p in options.precisions for f in options.flavours for g in options.graphs),
        argv=(py, "-m", "engines.selfcheck", out, "--json"), parser="selfcheck"))
    junit = options.report_dir / "logs" / "gpu-tests.xml"
    plan.append(Check(
        "gpu-tests", "the tests marked gpu (pytest -m gpu), one result per test", _budget(options, "gpu-tests"),
        ("gpu", "pytest"), (),
        argv=(py, "-m", "pytest", "-m", "gpu", "tests", "-v", "-p", "no:cacheprovider", "-o", "addopts=",
              "--continue-on-collection-errors",
              f"--junitxml={junit}"), parser="pytest", output=str(junit), dynamic=True))
    plan.append(Check(
        "latency", "TensorRT vs ONNX Runtime: template, search and end-to-end median latency",
        _budget(options, "latency"), (), _comparison_items(options),
        argv=(py, "-m", "bench.latency", "--iterations", str(s.latency_iterations), "--warmup",
              str(s.latency_warmup), "--template-iters", str(s.latency_template_iters), "--threads",
              str(s.threads), "--timeout", str(round(_budget(options, "latency"))), "--json"), parser="latency"))
    accuracy_dir = options.report_dir / "accuracy"
    plan.append(Check(
        "accuracy", f"TensorRT vs ONNX Runtime tracking {s.accuracy_sequences} generated sequences: AUC and "
        "box agreement", _budget(options, "accuracy"), (), _comparison_items(options),
        argv=(py, "-m", "bench.accuracy", "--synth", str(s.accuracy_sequences), "--synth-frames",
              str(s.accuracy_frames), "--out", str(accuracy_dir), "--threads", str(s.threads), "--no-plots",
              "--json"), parser="accuracy", output=str(accuracy_dir)))
    return plan


def _comparison_items(options: Options) -> tuple[ItemSpec, ...]:
    """ONNX Runtime per precision (standard twin: plain ONNX Runtime), then TensorRT per precision and
    flavour, each compared with ONNX Runtime of its precision."""
    out, items = str(options.artifacts), []
    for p in options.precisions:
        ort = f"onnxruntime-{p}"
        items.append(ItemSpec(ort, ("onnxruntime",) + tuple(_onnx_file(options, g, p, "standard") for g in GRAPHS),
                              ("--run", f"onnxruntime:{out},precision={p},flavour=standard,label={ort}")))
        for f in options.flavours:
            name = f"tensorrt-{p}-{f}"
            needs = ("gpu", "tensorrt") + tuple(f"item:engines.{f}/{_engine(g, p, f)}" for g in GRAPHS)
            items.append(ItemSpec(name, needs, ("--run", f"tensorrt:{out},precision={p},flavour={f},label={name}"),
                                  reference=ort))
    return tuple(items)


# ------------------------------------------------------------------ prerequisites (pure)

@dataclass(frozen=True)
class Facts:
    """This machine, as the prerequisites see it: None means available, a string says why not.
    files: the paths among the plan's ``file:`` prerequisites that exist."""

    gpu: str | None = None
    tensorrt: str | None = None
    plugin_toolchain: str | None = None
    onnxruntime: str | None = None
    pytest: str | None = None
    files: frozenset[str] = frozenset()


def evaluate(prerequisites: tuple[str, ...], plan: list[Check], facts: Facts,
             results: dict[str, ItemResult] | None) -> tuple[str, ...]:
    """Why ``prerequisites`` are not met (empty: they are), each reason once, in order.

    "gpu", "tensorrt", "plugin-toolchain", "onnxruntime", "pytest": a fact of the machine.
    "file:PATH": PATH exists. "item:CHECK/ITEM": that item passed; ``results`` (item id -> result) holds
    what has run, and with ``results`` None (a dry run) the item's own prerequisites are evaluated instead,
    i.e. what would happen if the plan ran now.
    """
    reasons: list[str] = []
    for prereq in prerequisites:
        kind, _, arg = prereq.partition(":")
        if kind == "file":
            found = [] if arg in facts.files else [f"{Path(arg).name} not found in {Path(arg).parent}: run "
                                                   "`bash build.sh` (with the same --out) first"]
        elif kind == "item":
            found = _item_reasons(arg, plan, facts, results)
        else:
            value = getattr(facts, kind.replace("-", "_"))
            found = [value] if value else []
        reasons += [r for r in found if r not in reasons]
    return tuple(reasons)


def _item_reasons(item_id: str, plan: list[Check], facts: Facts, results: dict | None) -> list[str]:
    check_name, _, item_name = item_id.partition("/")
    check = next((c for c in plan if c.name == check_name), None)
    spec = next((i for i in check.items if i.name == item_name), None) if check else None
    what = spec.produces if spec and spec.produces else item_id
    if results is not None and item_id in results:
        r = results[item_id]
        if r.status == PASS:
            return []
        if r.status == FAIL:
            return [f"{what} failed in step {check_name}: {r.detail}"]
        return [f"{what} not built"] + list(r.reasons or (r.detail,))
    if check is None or spec is None:
        return [f"{what}: no step of this plan makes it"]
    if results is not None:
        return [f"{what} not built (its step has not run)"]
    inner = evaluate(check.prerequisites + spec.prerequisites, plan, facts, None)
    return [f"{what} not built"] + list(inner) if inner else []


def item_reasons(check: Check, plan: list[Check], facts: Facts, results: dict | None) -> dict[str, tuple[str, ...]]:
    """Item name -> reasons it cannot run (empty: it can)."""
    shared = evaluate(check.prerequisites, plan, facts, results)
    out = {}
    for item in check.items:
        own = evaluate(item.prerequisites, plan, facts, results)
        out[item.name] = shared + tuple(r for r in own if r not in shared)
    if check.dynamic:
        out["*"] = shared
    return out


def exit_code(gpu_available: bool, results: list[CheckResult]) -> int:
    """0 when there is no GPU (nothing was meant to run) or all ran and passed; 1 on any failure;
    3 when nothing failed but something could not run."""
    if not gpu_available:
        return EXIT_OK
    statuses = [i.status for r in results for i in r.items] + [r.status for r in results]
    if FAIL in statuses:
        return EXIT_FAILED
    return EXIT_INCOMPLETE if SKIPPED in statuses else EXIT_OK


def check_status(items: tuple[ItemResult, ...]) -> str:
    statuses = {i.status for i in items}
    if FAIL in statuses:
        return FAIL
    return PASS if PASS in statuses else SKIPPED




"""``siamtrack verify`` / ``python -m engines.verify``: the first run on a GPU as one command, one report.

UNVERIFIED ON A GPU: this command has not been run on a machine with a GPU and TensorRT yet. Its plan,
prerequisite evaluation, report, exit codes and no-GPU path are tested on CPU (tests/test_verify.py);
the GPU steps only call the project's own CLIs (plugin_build, engines.build, selfcheck, pytest -m gpu,
bench.latency, bench.accuracy) and parse their --json output, so the first GPU run verifies this too.

Interface (``build.sh --verify`` calls exactly this)::

    python -m engines.verify --artifacts DIR [--config C] [--checkpoint P] [--precisions fp32,fp16,int8]
        [--flavours plugin,standard] [--max-batch N] [--report DIR] [--time-scale X] [--dry-run] [--json]

    exit 0: every check ran and passed, or there is no GPU here (one line says so; nothing runs)
    exit 1: at least one check failed
    exit 2: bad arguments
    exit 3: nothing failed, but some checks could not run on this GPU machine (each reason is printed)

What runs, in order (each step a subprocess with a time budget; ``--dry-run`` lists them with the reason
each would be skipped here):

    provenance       with --checkpoint: every ONNX variant was exported from that checkpoint
    plugin           build the DepthwiseXCorr plugin library (engines.plugin_build)
    engines.<f>      build every engine of flavour f, FP32/FP16/INT8, template and search (engines.build)
    selfcheck        each engine against ONNX Runtime on recorded inputs (engines.selfcheck)
    gpu-tests        pytest -m gpu, one result per test (JUnit XML)
    latency          TensorRT (each precision and flavour) vs ONNX Runtime (each precision): template,
                     search and end-to-end medians (bench.latency)
    accuracy         the same runs over generated sequences: AUC, and box agreement with ONNX Runtime
                     (bench.accuracy)

Design: ``engines.verify_plan`` is pure (``make_plan``: Options -> list of Check with prerequisites per
check and per item; ``evaluate``: prerequisites + Facts about the machine + results so far -> reasons;
``exit_code``), ``engines.verify_steps`` turns each step's output into item results,
``engines.verify_report`` writes report.md and report.json atomically; this module probes the machine,
runs the plan (``run_plan``) and is the CLI.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from engines.verify_plan import EXIT_OK, FAIL, LIMIT_S, PASS, SKIPPED, UNVERIFIED, Check, CheckResult, Facts, \
    ItemResult, ItemSpec, Options, check_status, item_reasons, make_plan
from engines.verify_report import make_report, not_checked, reason_legend, write_report
from engines.verify_steps import PARSERS, StepOutput, output_tail
from runtime.contract import LOST_GRAPH, PRECISIONS, XCORR_FLAVOURS
from runtime.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ facts (impure)

def probe_facts(plan: list[Check]) -> Facts:
    """Ask the machine. Constructs no TensorRT object (runtime.gpu asks cuda-python)."""
    import importlib.util

    from runtime.gpu import gpu_status

    available, gpu_reason = gpu_status()
    tensorrt = None
    from engines import trt_compat

    toolkit = trt_compat.probe("tensorrt")
    if toolkit.product is None:
        tensorrt = f"TensorRT not installed: {toolkit.missing}"
    plugin = None
    if any(c.name == "plugin" for c in plan):
        from engines import plugin_build as pb

        missing = pb.plan_build(pb.probe_environment(), os.environ, None, pb.DEFAULT_OUT_DIR,
                                pb.DEFAULT_OUT_DIR / "build").missing
        plugin = ("plugin cannot be built here: " + "; ".join(missing)) if missing else None
    files = {p.partition(":")[2] for c in plan for p in c.prerequisites + tuple(
        q for i in c.items for q in i.prerequisites) if p.startswith("file:")}
    return Facts(
        gpu=None if available else gpu_reason, tensorrt=tensorrt, plugin_toolchain=plugin,
        onnxruntime=None if importlib.util.find_spec("onnxruntime") else "ONNX Runtime not installed",
        pytest=None if importlib.util.find_spec("pytest") else "pytest not installed (bash setup.sh --dev)",
        files=frozenset(f for f in files if Path(f).is_file()))


def machine_summary(facts: Facts) -> dict:
    """Versions and the GPU, for the report header."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    gpu = None
    if facts.gpu is None:
        from runtime.backends.cuda_mem import device_identity

        try:
            name, cc = device_identity()
            gpu = f"{name} (compute capability {cc})"
        except Exception as exc:  # the header must not cost the report
            gpu = f"present, but its properties could not be read ({exc})"
    trt = None
    if facts.tensorrt is None:
        from engines import trt_compat

        trt = trt_compat.probe("tensorrt").version
    return {"gpu": gpu or f"none: {facts.gpu}", "tensorrt": trt or "not installed",
            "onnxruntime": version("onnxruntime"),
            "cuda-python": version("cuda-python") or version("cuda-bindings"), "python": platform.python_version(),
            "platform": platform.platform()}


# ------------------------------------------------------------------ running

def run_command(argv: tuple[str, ...], budget_s: float, log_stem: Path) -> StepOutput:
    """Run ``argv`` in the project root in its own process group; stop the group at ``budget_s``.
    stdout and stderr are kept in ``<log_stem>.out`` / ``.err``."""
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(f"{log_stem}.out", "w+") as out, open(f"{log_stem}.err", "w+") as err:
        proc = subprocess.Popen(list(argv), cwd=ROOT, stdout=out, stderr=err, start_new_session=True)
        try:
            code = proc.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            code = None
        except KeyboardInterrupt:  # its own session does not see the terminal's Ctrl-C: stop it here
            _stop_group(proc)
            raise
        out.seek(0), err.seek(0)
        return StepOutput(code, out.read(), err.read(), time.perf_counter() - start)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the step's own process group (it started it; nothing else is in it)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_plan(plan: list[Check], facts: Facts, options: Options, say=print) -> list[CheckResult]:
    """Run every check whose prerequisites hold (items whose prerequisites fail are skipped with the
    reason); returns one CheckResult per check, in plan order."""
    results: list[CheckResult] = []
    done: dict[str, ItemResult] = {}
    for n, check in enumerate(plan, 1):
        reasons = item_reasons(check, plan, facts, done)
        runnable = tuple(i for i in check.items if not reasons[i.name])
        can_run = bool(runnable) or (check.dynamic and not reasons["*"])
        skipped = [_skip(i.name, reasons[i.name]) for i in check.items if reasons[i.name]]
        if not can_run:
            if check.dynamic:
                skipped.append(_skip("(all tests)", reasons["*"]))
            result = CheckResult(check.name, check.title, SKIPPED, tuple(skipped), 0.0, check.budget_s)
            say(f"[{n}/{len(plan)}] {check.name}: skipped ({len(skipped)} item(s), reasons at the end)")
        else:
            say(f"[{n}/{len(plan)}] {check.name} (budget {check.budget_s:.0f} s): {check.title}")
            items, seconds, log = _execute(check, runnable, options)
            order = {i.name: k for k, i in enumerate(check.items)}
            items = sorted(items + skipped, key=lambda r: order.get(r.name, len(order)))
            result = CheckResult(check.name, check.title, check_status(tuple(items)), tuple(items), round(seconds, 1),
                                 check.budget_s, " ".join(check.command(runnable)) if check.argv else check.function,
                                 log)
            counts = {s: sum(i.status == s for i in items) for s in (PASS, FAIL, SKIPPED)}
            say(f"    {result.status} in {seconds:.0f} s: {counts[PASS]} pass, {counts[FAIL]} fail, "
                f"{counts[SKIPPED]} skipped")
        results.append(result)
        done.update({f"{check.name}/{i.name}": i for i in result.items})
    return results


def _skip(name: str, reasons: tuple[str, ...]) -> ItemResult:
    return ItemResult(name, SKIPPED, "; ".join(reasons), reasons=tuple(reasons))


def _execute(check: Check, runnable: tuple[ItemSpec, ...], options: Options) -> tuple[list[ItemResult], float, str]:
    if check.function:
        module, func = check.function.split(":")
        start = time.perf_counter()
        try:
            items = getattr(importlib.import_module(module), func)(replace(check, items=runnable), options)
        except Exception as exc:  # a broken file or a bug in the check: report it for its items, keep going
            items = [ItemResult(i.name, FAIL, f"{type(exc).__name__}: {exc}") for i in runnable]
        return list(items), time.perf_counter() - start, ""
    stem = options.report_dir / "logs" / check.name
    if check.parser == "pytest":
        Path(check.output).unlink(missing_ok=True)  # a report of an earlier run must not pass for this one
    step = run_command(check.command(runnable), check.budget_s, stem)
    log = str(stem.relative_to(options.report_dir)) + ".out/.err"
    if step.returncode is None:
        tail = output_tail(step.stderr or step.stdout)
        why = (f"stopped at its budget of {check.budget_s:.0f} s (on a slower machine rerun with --time-scale 2 "
               f"or more){'; last output: ' + tail if tail else ''}")
        partial = PARSERS[check.parser](step, replace(check, items=runnable)) if check.parser == "pytest" else []
        reported = {i.name for i in partial}
        return partial + [ItemResult(i.name, FAIL, why) for i in runnable if i.name not in reported] + (
            [ItemResult("(rest of the tests)", FAIL, why)] if check.dynamic else []), step.seconds, log
    try:
        items = PARSERS[check.parser](step, replace(check, items=runnable))
    except (ValueError, KeyError, TypeError) as exc:   # output not in the expected form: the step failed
        why = f"exit code {step.returncode}, output not understood ({exc}): {output_tail(step.stderr or step.stdout)}"
        return [ItemResult(i.name, FAIL, why) for i in runnable] or [ItemResult("(step)", FAIL, why)], step.seconds, log
    reported = {i.name for i in items}
    why = f"the step did not report it (exit code {step.returncode}): {output_tail(step.stderr or step.stdout)}"
    missing = [ItemResult(i.name, FAIL, why) for i in runnable if i.name not in reported]
    return items + missing, step.seconds, log


# ------------------------------------------------------------------ CLI

def dry_run_listing(plan: list[Check], facts: Facts) -> tuple[list[dict], list[str]]:
    """Every check with each item's skip reasons on this machine (empty: it would run), and the
    numbered legend of distinct reasons."""
    checks, pairs = [], []
    for check in plan:
        reasons = item_reasons(check, plan, facts, None)
        entry = {"name": check.name, "title": check.title, "budget_s": check.budget_s,
                 "command": " ".join(check.command()) if check.argv else check.function, "items": []}
        names = [i.name for i in check.items] + (["(all tests)"] if check.dynamic else [])
        for name in names:
            why = reasons["*" if name == "(all tests)" else name]
            entry["items"].append({"name": name, "would_run": not why, "skip_reasons": list(why)})
            if why:
                pairs.append((f"{check.name}/{name}", why))
        checks.append(entry)
    return checks, reason_legend(pairs)[1]


def _print_dry_run(checks: list[dict], legend: list[str], total: float, limit: float, gpu: str | None) -> None:
    print(f"siamtrack verify --dry-run: {sum(len(c['items']) for c in checks)} items in {len(checks)} checks, "
          f"budget {total:.0f} s (limit {limit:.0f} s); [n] = reason it would be skipped here, listed below")
    if gpu:
        print(f"no GPU here ({gpu}): `siamtrack verify` itself stops at that and runs nothing; the list shows "
              "what each item needs besides")
    for c in checks:
        print(f"\n{c['name']} (budget {c['budget_s']:.0f} s): {c['title']}\n  $ {c['command']}")
        for item in c["items"]:
            nums = [legend.index(r) + 1 for r in item["skip_reasons"]]
            print(f"  - {item['name']}: " + ("would run" if not nums else "skipped " + "".join(f"[{k}]" for k in nums)))
    if legend:
        print("\nreasons:")
        print("\n".join(f"  [{k}] {text}" for k, text in enumerate(legend, 1)))


EPILOG = f"""\
examples:
  siamtrack verify --artifacts artifacts/lite0                 # after bash build.sh, on the GPU machine
  siamtrack verify --artifacts artifacts/lite0 --dry-run       # what would run here, and what not and why
  siamtrack verify --artifacts artifacts/r50 --checkpoint model.pth --flavours standard --time-scale 3
  bash build.sh --verify                                       # build, then this

Writes <report>/report.md and report.json (default <artifacts>/verify/), with pass / fail / not checked
per item and the figures, plus logs/ with each step's output. Every step has a time budget (printed at
the start; the total fits {LIMIT_S // 60} minutes on a desktop GPU with the default model); a step over
its budget is stopped and fails. Exit codes: 0 all passed or no GPU here (one line, nothing runs),
1 a check failed, 3 nothing failed but something could not be checked (the reasons are printed).
{UNVERIFIED}
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="siamtrack verify", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="On a machine with an NVIDIA GPU and TensorRT: build the plugin and every engine (plugin "
                    "and standard flavours, FP32/FP16/INT8), run the engine self-check, the gpu tests, and "
                    "the TensorRT vs ONNX Runtime latency and accuracy comparison; write one report.")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts/lite0"),
                   help="the folder build.sh wrote (default artifacts/lite0)")
    p.add_argument("--config", help="the pysot config the artifacts came from (recorded in the report)")
    p.add_argument("--checkpoint", type=Path,
                   help="the checkpoint they came from: checks every ONNX variant was exported from it")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="comma list of fp32,fp16,int8 (default all)")
    p.add_argument("--flavours", default="plugin,standard", help="comma list of plugin,standard (default both)")
    p.add_argument("--max-batch", type=int, default=4, help="largest targets per call in the engines; use "
                                                            "build.sh's value (default 4), or engines are rebuilt")
    p.add_argument("--report", type=Path, help="report folder (default <artifacts>/verify)")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply every step's time budget (default 1: a "
                                                                 "desktop GPU; e.g. 3 on a Jetson)")
    p.add_argument("--dry-run", action="store_true",
                   help="list every check and why it would be skipped here; run nothing")
    p.add_argument("--json", action="store_true", help="print JSON (the dry-run listing, or the report) on stdout")
    return p


def _split(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items or any(t not in allowed for t in items):
        raise InputError(f"{flag} {text!r}: expected a comma-separated subset of {', '.join(allowed)}")
    return items


def options_from_args(args) -> Options:
    if args.max_batch < 1 or args.time_scale <= 0:
        raise InputError("--max-batch must be >= 1 and --time-scale > 0")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise InputError(f"--checkpoint {args.checkpoint}: file not found")
    artifacts = args.artifacts.resolve()
    return Options(artifacts=artifacts, report_dir=(args.report or artifacts / "verify").resolve(),
                   precisions=_split(args.precisions, PRECISIONS, "--precisions"),
                   flavours=_split(args.flavours, XCORR_FLAVOURS, "--flavours"), max_batch=args.max_batch,
                   config=args.config, checkpoint=args.checkpoint.resolve() if args.checkpoint else None,
                   time_scale=args.time_scale,
                   lost_search=any(artifacts.glob(f"{LOST_GRAPH}.fp32.*.onnx")))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = options_from_args(args)
    plan = make_plan(options)
    total = sum(c.budget_s for c in plan)
    if args.dry_run:
        facts = probe_facts(plan)
        checks, legend = dry_run_listing(plan, facts)
        limit = LIMIT_S * options.time_scale
        if args.json:
            print(json.dumps({"budget_s": total, "limit_s": limit, "gpu": facts.gpu or "available",
                              "checks": checks, "reasons": legend, "unverified": UNVERIFIED}, indent=1))
        else:
            _print_dry_run(checks, legend, total, limit, facts.gpu)
        return EXIT_OK
    from runtime.gpu import gpu_status

    available, reason = gpu_status()
    if not available:
        print(json.dumps({"gpu": False, "reason": reason, "verified": [], "exit_code": EXIT_OK}) if args.json else
              f"siamtrack verify: nothing to verify without a GPU ({reason}); --dry-run lists what would run")
        return EXIT_OK
    if not options.artifacts.is_dir():
        raise InputError(f"--artifacts {args.artifacts}: not a folder; run `bash build.sh` first (its --out)")
    return _run(plan, options, total, args.json)


def _run(plan: list[Check], options: Options, total: float, as_json: bool) -> int:
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if as_json else (lambda text: print(text, flush=True))
    say("budget: " + ", ".join(f"{c.name} {c.budget_s:.0f} s" for c in plan)
        + f" = {total:.0f} s (limit {LIMIT_S * options.time_scale:.0f} s)")
    facts = probe_facts(plan)
    machine = machine_summary(facts)
    say("machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()))
    start = time.perf_counter()
    results = run_plan(plan, facts, options, say)
    report = make_report(results, options, machine, time.perf_counter() - start,
                         "siamtrack verify " + " ".join(sys.argv[1:]))
    md, js = write_report(report, options.report_dir)
    refs, legend = reason_legend(not_checked(results))
    if legend:
        say("\ncould not check:")
        for item, nums in refs.items():
            say(f"  {item}: [{', '.join(map(str, nums))}]")
        for k, text in enumerate(legend, 1):
            say(f"  [{k}] {text}")
    failed = [(f"{r.name}/{i.name}", i.detail) for r in results for i in r.items if i.status == FAIL]
    for item, detail in failed:
        say(f"FAILED {item}: {detail}")
    if as_json:
        print(json.dumps(report, indent=1, default=str))
    say(f"\nverify: {report['verdict']} ({report['summary'][PASS]} pass, {report['summary'][FAIL]} fail, "
        f"{report['summary'][SKIPPED]} not checked) in {report['elapsed_s']:.0f} s; report: {md} and {js}")
    return report["exit_code"]


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack verify"))

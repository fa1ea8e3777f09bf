"""How each ``siamtrack verify`` step's output becomes item results: one parser per step, reading the
``--json`` output of the project's own CLIs (plugin_build, engines.build, engines.selfcheck,
bench.latency, bench.accuracy) or pytest's JUnit XML, plus the in-process provenance check.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from engines.verify_plan import FAIL, PASS, SKIPPED, Check, ItemResult, Options


@dataclass(frozen=True)
class StepOutput:
    """What a step's process left: exit code (None: stopped at its budget), its output, its duration."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float


def json_output(stdout: str):
    """The JSON document a ``--json`` step printed. Tolerates lines printed before or after it (a library
    or a plugin writing to stdout); raises ValueError when there is none."""
    decoder, text = json.JSONDecoder(), stdout.strip()
    starts = [0] + [m.start() + 1 for m in re.finditer(r"\n[\[{]", text)]
    for start in starts:
        try:
            return decoder.raw_decode(text, start)[0]
        except ValueError:
            continue
    raise ValueError("no JSON document on stdout")


def output_tail(text: str, lines: int = 3) -> str:
    """The last ``lines`` non-empty lines of ``text`` on one line, for a failure's detail."""
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)[-600:]


# ------------------------------------------------------------------ parsers: step output -> item results

def parse_plugin(step: StepOutput, check: Check) -> list[ItemResult]:
    """engines.plugin_build --json: exit 0 {"installed", "archs"}; exit 3 the plan with "missing"."""
    name = check.items[0].name
    if step.returncode == 3:
        missing = json_output(step.stdout)["missing"]
        return [ItemResult(name, SKIPPED, "plugin cannot be built here: " + "; ".join(missing), reasons=tuple(missing))]
    if step.returncode != 0:
        return [ItemResult(name, FAIL, f"plugin build failed (exit {step.returncode}): {output_tail(step.stderr, 8)}")]
    data = json_output(step.stdout)
    return [ItemResult(name, PASS, "built: " + ", ".join(data["installed"]), {"archs": data["archs"]})]


def parse_engines(step: StepOutput, check: Check) -> list[ItemResult]:
    """engines.build --json: {"engines": [{"engine", "action", "status", "reasons"}]}."""
    items = []
    for row in json_output(step.stdout)["engines"]:
        status, reasons = row["status"], "; ".join(row["reasons"])
        if status.startswith("failed"):
            items.append(ItemResult(row["engine"], FAIL, status))
        elif row["action"] == "skip":
            items.append(ItemResult(row["engine"], SKIPPED, reasons))
        elif row["action"] == "fresh":
            items.append(ItemResult(row["engine"], PASS, "up to date"))
        else:
            seconds = re.search(r"built in ([\d.]+) s", status)
            items.append(ItemResult(row["engine"], PASS if seconds else FAIL, f"{status} ({reasons})",
                                    {"build_s": float(seconds.group(1))} if seconds else {}))
    return items


def parse_selfcheck(step: StepOutput, check: Check) -> list[ItemResult]:
    """engines.selfcheck --json: rows of engines.selfcheck.CheckRow; only the planned engines count."""
    wanted, items = {i.name for i in check.items}, []
    for row in json_output(step.stdout):
        if row["engine"] not in wanted:
            continue
        status = row["status"]
        figures = {k: row[k] for k in ("max_abs", "max_rel", "scaled", "tolerance") if row.get(k) is not None}
        if status == "pass":
            items.append(ItemResult(row["engine"], PASS, f"vs {row['reference']}", figures))
        elif status.startswith("skipped"):
            items.append(ItemResult(row["engine"], SKIPPED, status.partition(": ")[2]))
        else:
            items.append(ItemResult(row["engine"], FAIL, f"{status} vs {row['reference']}"
                                    + (f": max_abs/max|ref| {row['scaled']:.3g} > {row['tolerance']}"
                                       if row.get("scaled") is not None else ""), figures))
    return items


_PYTEST_LINE = re.compile(r"^(\S+::\S+)\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")


def parse_pytest(step: StepOutput, check: Check) -> list[ItemResult]:
    """One item per test from the JUnit XML (``check.output``); when the run was stopped before
    writing it, from the ``-v`` progress lines printed so far."""
    xml = Path(check.output)
    items = junit_items(xml.read_text()) if step.returncode is not None and xml.is_file() else []
    if items:
        return items
    if step.returncode == 5:
        return [ItemResult("(no tests)", SKIPPED, "pytest collected no test marked gpu")]
    status = {"PASSED": PASS, "XFAIL": PASS, "FAILED": FAIL, "ERROR": FAIL, "XPASS": FAIL, "SKIPPED": SKIPPED}
    items = [ItemResult(m.group(1), status[m.group(2)], "" if status[m.group(2)] == PASS else m.group(2).lower())
             for m in map(_PYTEST_LINE.match, step.stdout.splitlines()) if m]
    if step.returncode is not None and not items:
        raise ValueError("no JUnit XML and no test lines")
    return items


def junit_items(xml_text: str) -> list[ItemResult]:
    """pytest's JUnit XML -> one ItemResult per testcase, named ``tests.test_x::test_y[param]`` (its
    classname and name)."""
    import xml.etree.ElementTree as ET

    items = []
    for case in ET.fromstring(xml_text).iter("testcase"):
        name = "::".join(part for part in (case.get("classname"), case.get("name")) if part) or "?"
        verdict = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        if verdict is None:
            items.append(ItemResult(name, PASS, figures={"seconds": float(case.get("time") or 0)}))
        elif verdict.tag == "skipped":
            reason = verdict.get("message", "")
            items.append(ItemResult(name, SKIPPED, re.sub(r"^Skipped:\s*", "", reason)))
        else:
            message = (verdict.get("message") or verdict.text or "").strip().splitlines()
            items.append(ItemResult(name, FAIL, f"{verdict.tag}: " + (message[0][:400] if message else "")))
    return items


def parse_latency(step: StepOutput, check: Check) -> list[ItemResult]:
    """bench.latency --json. Figures per run: template, search, end-to-end median ms and FPS. A TensorRT
    run fails if its search stage is not faster than ONNX Runtime's on the CPU (it then is not running
    on the GPU as intended); other differences are figures, not verdicts."""
    runs, figures, items = json_output(step.stdout)["runs"], {}, []
    for spec in check.items:
        run = runs.get(spec.name)
        if run is None:
            continue
        if run.get("error"):
            items.append(ItemResult(spec.name, FAIL, run["error"]))
            continue
        stages = run["stages"]
        figures[spec.name] = {"template_ms": stages["template"].get("median_ms"),
                              "search_ms": stages["search"].get("median_ms"),
                              "e2e_ms": stages["track_e2e"].get("median_ms"), "fps": run.get("fps")}
        items.append(ItemResult(spec.name, PASS, "", figures[spec.name]))
    for k, item in enumerate(items):
        spec = next(i for i in check.items if i.name == item.name)
        ref, mine = figures.get(spec.reference), figures.get(item.name)
        if not spec.reference or mine is None:
            continue
        if ref is None:
            items[k] = replace(item, detail=f"no {spec.reference} figures to compare with")
            continue
        mine = dict(mine, search_speedup=ref["search_ms"] / mine["search_ms"],
                    e2e_speedup=ref["e2e_ms"] / mine["e2e_ms"])
        slow = mine["search_speedup"] <= 1.0
        items[k] = replace(item, status=FAIL if slow else PASS, figures=mine,
                           detail=(f"search {mine['search_ms']:.2f} ms is not faster than {spec.reference} on the CPU "
                                   f"({ref['search_ms']:.2f} ms)") if slow else f"vs {spec.reference}")
    return items


def auc_tolerance(n_sequences: int) -> float:
    """Largest |AUC(TensorRT) - AUC(ONNX Runtime)| accepted for the same graph. With n sequences one
    sequence flipping between followed and lost moves the mean AUC by up to 1/n, and output rounding
    alone (FP16, TF32) flips sequences now and then (README, known gaps); 0.02 covers the small shifts
    of the rest. Catches a broken engine, not a subtle one: the self-check does that."""
    return 1.0 / max(n_sequences, 1) + 0.02


def parse_accuracy(step: StepOutput, check: Check) -> list[ItemResult]:
    """bench.accuracy --json. Figures per run: AUC, precision@20, tracker FPS; a TensorRT run also gets
    the AUC difference and the mean per-frame IoU between its boxes and ONNX Runtime's."""
    summary = json_output(step.stdout)
    errors = {}
    for e in summary.get("run_errors", []):
        errors.setdefault(e["run"], f"{e['sequence']}: {e['error']}")
    n_seq = summary["dataset"]["sequences"]
    items, figures = [], {}
    for spec in check.items:
        run = summary["runs"].get(spec.name)
        if run is None:
            continue
        if spec.name in errors or run["overall"].get("auc") is None:
            items.append(ItemResult(spec.name, FAIL, errors.get(spec.name, "no sequence could be scored")))
            continue
        figures[spec.name] = {"auc": run["overall"]["auc"], "prec20": run["overall"].get("prec20"),
                              "fps": run.get("tracker_fps"), "sequences": run["overall"].get("sequences_scored")}
        items.append(ItemResult(spec.name, PASS, "", figures[spec.name]))
    tol = auc_tolerance(n_seq)
    for k, item in enumerate(items):
        spec = next(i for i in check.items if i.name == item.name)
        if not spec.reference or item.status != PASS:
            continue
        ref = figures.get(spec.reference)
        if ref is None:
            items[k] = replace(item, detail=f"no {spec.reference} result to compare with")
            continue
        mine = dict(figures[item.name], delta_auc=figures[item.name]["auc"] - ref["auc"],
                    box_iou_vs_reference=box_agreement(Path(check.output), item.name, spec.reference))
        bad = abs(mine["delta_auc"]) > tol
        items[k] = replace(item, status=FAIL if bad else PASS, figures=mine,
                           detail=f"|AUC - {spec.reference}| {'>' if bad else '<='} {tol:.3f} "
                                  f"(1/{n_seq} sequences + 0.02)")
    return items


def box_agreement(accuracy_dir: Path, run: str, reference: str) -> float | None:
    """Mean IoU, over every frame of every sequence both runs tracked, between their boxes."""
    import numpy as np

    from bench.metrics import iou_xywh

    ious = []
    for mine in sorted((accuracy_dir / "results" / run).glob("*.txt")):
        theirs = accuracy_dir / "results" / reference / mine.name
        if theirs.is_file():
            a, b = (np.loadtxt(p, delimiter=",", ndmin=2) for p in (mine, theirs))
            if a.shape == b.shape and a.shape[1:] == (4,):
                ious.append(iou_xywh(a, b))
    return float(np.nanmean(np.concatenate(ious))) if ious else None


PARSERS = {"plugin": parse_plugin, "engines": parse_engines, "selfcheck": parse_selfcheck, "pytest": parse_pytest,
           "latency": parse_latency, "accuracy": parse_accuracy}


def check_provenance(check: Check, options: Options) -> list[ItemResult]:
    """Each planned ONNX variant's recorded source sha256 equals the checkpoint's: the folder was
    exported from this checkpoint, not from an older one."""
    from runtime.contract import sha256_file
    from runtime.errors import ContractError
    from runtime.onnx_meta import read_graph_meta

    want = sha256_file(options.checkpoint)
    items = []
    for spec in check.items:
        path = options.artifacts / spec.name
        try:
            meta = read_graph_meta(path)   # metadata only; ContractError for a missing or foreign file
        except ContractError as exc:
            items.append(ItemResult(spec.name, FAIL, str(exc)))
            continue
        if meta.source_sha256 == want:
            items.append(ItemResult(spec.name, PASS, f"source sha256 {want[:12]}"))
        else:
            items.append(ItemResult(spec.name, FAIL, f"exported from source sha256 {meta.source_sha256[:12]}, but "
                                    f"{options.checkpoint.name} is {want[:12]}: re-run build.sh with this checkpoint"))
    return items

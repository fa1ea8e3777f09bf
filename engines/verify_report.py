"""The ``siamtrack verify`` report: one JSON-able dict from the results, rendered as Markdown, both
written atomically; and the numbered list of what could not be checked, and why.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

from engines.verify_plan import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, FAIL, LIMIT_S, PASS, SKIPPED, UNVERIFIED, \
    CheckResult, ItemResult, Options, exit_code


def not_checked(results: list[CheckResult]) -> list[tuple[str, tuple[str, ...]]]:
    """(item id, reasons) of everything that did not run."""
    return [(f"{r.name}/{i.name}", i.reasons or (i.detail,)) for r in results for i in r.items if i.status == SKIPPED]


def reason_legend(pairs: list[tuple[str, tuple[str, ...]]]) -> tuple[dict[str, list[int]], list[str]]:
    """Number each distinct reason once: (item -> its reason numbers, the reasons in order)."""
    legend: list[str] = []
    refs: dict[str, list[int]] = {}
    for item, reasons in pairs:
        for reason in reasons:
            if reason not in legend:
                legend.append(reason)
            refs.setdefault(item, []).append(legend.index(reason) + 1)
    return refs, legend


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def report_markdown(report: dict) -> str:
    results = [_result_from_dict(r) for r in report["checks"]]
    counts = report["summary"]
    lines = [f"# siamtrack verify: {report['verdict']}", "", f"> {UNVERIFIED}", "",
             f"- created: {report['created_utc']} (took {report['elapsed_s']:.0f} s; budget "
             f"{report['budget_s']:.0f} s, limit {LIMIT_S * report['options']['time_scale']:.0f} s)",
             f"- artifacts: `{report['options']['artifacts']}`; command: `{report['command']}`"]
    lines += [f"- {k}: {v}" for k, v in report["machine"].items()]
    lines += ["", f"**{counts[PASS]} pass, {counts[FAIL]} fail, {counts[SKIPPED]} not checked**; exit code "
              f"{report['exit_code']}", ""]
    refs, legend = reason_legend(not_checked(results))
    for r in results:
        lines += [f"## {r.name}: {r.status}", "", f"{r.title}. {r.seconds:.0f} s of {r.budget_s:.0f} s"
                  + (f"; `{r.command}`" if r.command else "") + (f"; log `{r.log}`" if r.log else ""), "",
                  "| item | result | figures | detail |", "|---|---|---|---|"]
        for i in r.items:
            figs = ", ".join(f"{k} {_fmt(v)}" for k, v in i.figures.items() if v is not None)
            detail = i.detail.replace("|", "\\|").replace("\n", " ")
            if i.status == SKIPPED:   # the reasons repeat across items: number them, list them once below
                detail = "not checked: " + ", ".join(f"[{k}]" for k in refs[f"{r.name}/{i.name}"])
            lines.append(f"| {i.name} | {i.status} | {figs} | {detail} |")
        lines.append("")
    if legend:
        lines += ["## Not checked, and why", ""]
        lines += [f"- {item}: [{', '.join(map(str, nums))}]" for item, nums in refs.items()]
        lines += [""] + [f"- [{k}] {text}" for k, text in enumerate(legend, 1)] + [""]
    return "\n".join(lines)


def _result_from_dict(d: dict) -> CheckResult:
    return CheckResult(**{**d, "items": tuple(ItemResult(**{**i, "reasons": tuple(i["reasons"])}) for i in d["items"])})


def make_report(results: list[CheckResult], options: Options, machine: dict, elapsed_s: float,
                command: str, gpu_available: bool = True) -> dict:
    """The JSON-able report: options, machine, one entry per check with its items, summary, exit code."""
    items = [i for r in results for i in r.items]
    code = exit_code(gpu_available, results)
    verdict = {EXIT_OK: "all checks passed", EXIT_FAILED: "FAILED", EXIT_INCOMPLETE: "passed, but incomplete"}[code]
    return {"schema": 1, "verdict": verdict, "exit_code": code, "unverified": UNVERIFIED,
            "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "command": command,
            "elapsed_s": round(elapsed_s, 1), "budget_s": sum(r.budget_s for r in results),
            "options": json.loads(json.dumps(asdict(options), default=str)), "machine": machine,
            "summary": {s: sum(i.status == s for i in items) for s in (PASS, FAIL, SKIPPED)},
            "checks": [asdict(r) for r in results]}


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    """report.json and report.md in ``folder``, each written atomically (temp file + rename)."""
    from runtime.engine_meta import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / "report.md", folder / "report.json"
    write_atomic(js, (json.dumps(report, indent=1, default=str) + "\n").encode())
    write_atomic(md, report_markdown(report).encode())
    return md, js

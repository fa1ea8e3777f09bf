"""``siamtrack verify``: the plan, the prerequisites, the runner, the parsers of each step's output, the
report, the exit codes and the no-GPU path, all on CPU.

Nothing here pretends TensorRT ran: the runner is exercised with checks whose prerequisites fail (they
must be reported skipped, with the reason, without running), with real CPU commands (a step that
overruns its budget, real pytest, real engines.build and bench latency/accuracy on ONNX Runtime), and
the verdict rules of the comparisons with numbers written here, named as such.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from engines.verify_plan import BUDGET_S, EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, FAIL, LIMIT_S, PASS, SKIPPED, \
    Check, CheckResult, Facts, ItemResult, ItemSpec, Options, Sizes, evaluate, exit_code, item_reasons, make_plan
from engines.verify_steps import StepOutput, auc_tolerance, parse_accuracy, parse_engines, parse_latency, \
    parse_plugin, parse_pytest, parse_selfcheck
from runtime.gpu import gpu_status
from tests.conftest import ROOT

NO_GPU = "no usable GPU: cudaGetDeviceCount returned cudaErrorInsufficientDriver"
ENGINE_NAMES = {f"{g}.{p}.{f}.engine" for g in ("template", "search") for p in ("fp32", "fp16", "int8")
                for f in ("plugin", "standard")}


def options(tmp_path, **kw) -> Options:
    kw.setdefault("artifacts", tmp_path / "art")
    return Options(report_dir=tmp_path / "report", **kw)


def all_files(plan) -> frozenset[str]:
    """Every file the plan's prerequisites name, as if build.sh had written them all."""
    return frozenset(p[5:] for c in plan for p in c.prerequisites + tuple(q for i in c.items for q in i.prerequisites)
                     if p.startswith("file:"))


def by_name(plan, name) -> Check:
    return next(c for c in plan if c.name == name)


# ------------------------------------------------------------------ the plan

def test_plan_builds_plugin_then_every_engine_then_checks_compares_and_reports(tmp_path):
    plan = make_plan(options(tmp_path))
    assert [c.name for c in plan] == ["plugin", "engines.plugin", "engines.standard", "selfcheck", "gpu-tests",
                                      "latency", "accuracy"]
    built = {i.name for c in plan if c.name.startswith("engines.") for i in c.items}
    assert built == ENGINE_NAMES                           # both flavours x FP32/FP16/INT8 x template/search
    assert {i.name for i in by_name(plan, "selfcheck").items} == ENGINE_NAMES
    runs = {i.name: i.reference for i in by_name(plan, "latency").items}
    assert runs == {i.name: i.reference for i in by_name(plan, "accuracy").items}
    assert runs["tensorrt-int8-plugin"] == "onnxruntime-int8" and runs["onnxruntime-fp16"] == ""
    assert len(runs) == 3 + 6
    assert by_name(plan, "gpu-tests").argv[1:5] == ("-m", "pytest", "-m", "gpu")


def test_plan_without_the_plugin_flavour_neither_builds_nor_uses_the_plugin(tmp_path):
    plan = make_plan(options(tmp_path, flavours=("standard",)))
    assert "plugin" not in [c.name for c in plan] and "engines.plugin" not in [c.name for c in plan]
    assert not any("plugin" in i.name for c in plan for i in c.items)


def test_a_checkpoint_adds_the_provenance_check_of_every_onnx_variant(tmp_path):
    ckpt = tmp_path / "model.pth"
    plan = make_plan(options(tmp_path, checkpoint=ckpt))
    assert plan[0].name == "provenance" and plan[0].function.endswith(":check_provenance")
    assert len(plan[0].items) == 12 and plan[0].prerequisites == (f"file:{ckpt}",)


def test_budgets_fit_ten_minutes_and_scale_for_slower_devices(tmp_path):
    plan = make_plan(options(tmp_path, checkpoint=tmp_path / "m.pth"))
    assert sum(c.budget_s for c in plan) == sum(BUDGET_S.values()) <= LIMIT_S
    slow = make_plan(options(tmp_path, time_scale=3.0))
    assert [c.budget_s for c in slow] == [3 * c.budget_s for c in make_plan(options(tmp_path))]


# ------------------------------------------------------------------ prerequisites

def test_without_a_gpu_every_tensorrt_item_names_the_gpu_reason_and_onnxruntime_items_do_not(tmp_path):
    plan = make_plan(options(tmp_path))
    facts = Facts(gpu=NO_GPU, files=all_files(plan))
    for check in plan:
        reasons = item_reasons(check, plan, facts, None)
        for item in check.items:
            if item.name.startswith("onnxruntime-"):
                assert reasons[item.name] == (), item
            else:
                assert NO_GPU in reasons[item.name], (check.name, item.name)
    assert item_reasons(by_name(plan, "gpu-tests"), plan, facts, None)["*"] == (NO_GPU,)


def test_missing_plugin_toolchain_skips_plugin_engines_and_their_checks_but_not_the_standard_ones(tmp_path):
    plan = make_plan(options(tmp_path))
    why = "plugin cannot be built here: nvcc (CUDA compiler) not found"
    facts = Facts(plugin_toolchain=why, files=all_files(plan))
    standard = item_reasons(by_name(plan, "engines.standard"), plan, facts, None)
    assert set(standard.values()) == {()}
    plugin = item_reasons(by_name(plan, "engines.plugin"), plan, facts, None)
    assert all(r == ("plugin library not built", why) for r in plugin.values())
    check = item_reasons(by_name(plan, "selfcheck"), plan, facts, None)
    assert check["search.fp16.plugin.engine"] == ("engine search.fp16.plugin.engine not built",
                                                  "plugin library not built", why)
    assert check["search.fp16.standard.engine"] == ()
    latency = item_reasons(by_name(plan, "latency"), plan, facts, None)
    assert why in latency["tensorrt-int8-plugin"] and latency["tensorrt-int8-standard"] == ()


def test_a_missing_onnx_variant_is_named_with_the_step_that_makes_it(tmp_path):
    plan = make_plan(options(tmp_path))
    reasons = evaluate(by_name(plan, "engines.standard").items[3].prerequisites, plan, Facts(), None)
    assert reasons == (f"search.fp16.standard.onnx not found in {tmp_path / 'art'}: run `bash build.sh` (with the "
                       "same --out) first",)


def test_an_engine_that_failed_to_build_blocks_its_checks_with_the_failure(tmp_path):
    plan = make_plan(options(tmp_path))
    done = {"engines.standard/search.fp32.standard.engine": ItemResult("search.fp32.standard.engine", FAIL,
                                                                       "failed: the parser rejected the graph")}
    reasons = item_reasons(by_name(plan, "selfcheck"), plan, Facts(files=all_files(plan)), done)
    assert reasons["search.fp32.standard.engine"] == (
        "engine search.fp32.standard.engine failed in step engines.standard: failed: the parser rejected the graph",)


# ------------------------------------------------------------------ exit codes

def result(*statuses) -> CheckResult:
    items = tuple(ItemResult(f"i{k}", s) for k, s in enumerate(statuses))
    return CheckResult("c", "t", statuses[0], items)


@pytest.mark.parametrize("gpu, statuses, code", [
    (True, (PASS, PASS), EXIT_OK),
    (True, (PASS, FAIL, SKIPPED), EXIT_FAILED),
    (True, (PASS, SKIPPED), EXIT_INCOMPLETE),
    (False, (SKIPPED, SKIPPED), EXIT_OK),        # no GPU: nothing was meant to run
])
def test_exit_code_is_failure_then_incompleteness_and_zero_without_a_gpu(gpu, statuses, code):
    assert exit_code(gpu, [result(*statuses)]) == code


# ------------------------------------------------------------------ the runner

def test_checks_whose_prerequisites_fail_are_skipped_with_the_reason_and_never_run(tmp_path):
    from engines.verify import run_plan

    marker = tmp_path / "ran"
    check = Check("plugin", "would touch a file", 30, ("gpu",), (ItemSpec("lib.so"),),
                  argv=(sys.executable, "-c", f"open({str(marker)!r}, 'w')"), parser="plugin")
    (res,) = run_plan([check], Facts(gpu=NO_GPU), options(tmp_path), say=lambda _: None)
    assert res.status == SKIPPED and res.items == (ItemResult("lib.so", SKIPPED, NO_GPU, reasons=(NO_GPU,)),)
    assert not marker.exists()


def test_a_step_over_its_budget_is_stopped_and_fails_naming_the_budget(tmp_path):
    from engines.verify import run_plan

    check = Check("plugin", "sleeps", 1.0, (), (ItemSpec("lib.so"),),
                  argv=(sys.executable, "-c", "import time; time.sleep(60)"), parser="plugin")
    start = time.perf_counter()
    (res,) = run_plan([check], Facts(), options(tmp_path), say=lambda _: None)
    assert time.perf_counter() - start < 15
    assert res.status == FAIL and "stopped at its budget of 1 s" in res.items[0].detail
    assert (tmp_path / "report" / "logs" / "plugin.out").is_file()


@pytest.fixture(scope="module")
def random_export(tmp_path_factory) -> Path:
    """A real lite0 export (FP32, standard twin, seeded random weights): what ONNX Runtime runs."""
    from export.to_onnx import main

    out = tmp_path_factory.mktemp("verify") / "lite0"
    assert main(["--config", "lite0", "--random-seed", "0", "--out", str(out), "--flavour", "standard",
                 "--json"]) == 0
    return out


@pytest.mark.slow   # ~15 s: a lite0 export, then two short bench runs in fresh processes
def test_the_onnxruntime_side_of_the_comparisons_runs_and_tensorrt_items_say_why_not(tmp_path, random_export):
    from engines.verify import probe_facts, run_plan
    from engines.verify_report import make_report, write_report

    opts = options(tmp_path, artifacts=random_export, precisions=("fp32",), flavours=("standard",),
                   sizes=Sizes(latency_iterations=3, latency_warmup=1, latency_template_iters=2,
                               accuracy_sequences=1, accuracy_frames=8, threads=1))
    # only the comparisons: the engines they need come from no step of this plan, on any machine
    plan = [c for c in make_plan(opts) if c.name in ("latency", "accuracy")]
    latency, accuracy = run_plan(plan, probe_facts(plan), opts, say=lambda _: None)
    ort, trt = latency.items
    assert ort.name == "onnxruntime-fp32" and ort.status == PASS
    assert ort.figures["search_ms"] > 0 and ort.figures["e2e_ms"] >= ort.figures["search_ms"]
    assert trt.name == "tensorrt-fp32-standard" and trt.status == SKIPPED
    assert "engines.standard/template.fp32.standard.engine: no step of this plan makes it" in trt.reasons
    ort, trt = accuracy.items
    assert ort.status == PASS and 0 <= ort.figures["auc"] <= 1 and ort.figures["sequences"] == 1
    assert trt.status == SKIPPED
    md, js = write_report(make_report([latency, accuracy], opts, {"gpu": "none"}, 1.0, "test"), opts.report_dir)
    data = json.loads(js.read_text())
    assert data["summary"] == {PASS: 2, FAIL: 0, SKIPPED: 2} and data["exit_code"] == EXIT_INCOMPLETE
    assert "| onnxruntime-fp32 | pass | template_ms" in md.read_text()


# ------------------------------------------------------------------ each step's output

def test_plugin_step_that_cannot_build_is_skipped_with_each_missing_prerequisite():
    from engines.plugin_build import FoundTools, plan_build

    plan = plan_build(FoundTools(), {}, None, "out", "build")       # nothing found: what exit 3 prints
    check = Check("plugin", "t", 1, items=(ItemSpec("libsiamrpn_xcorr_plugin.so"),))
    (item,) = parse_plugin(StepOutput(3, plan.to_json(), "plugin not built: ...", 1.0), check)
    assert item.status == SKIPPED and "nvcc (CUDA compiler) not found" in item.detail
    assert "TensorRT headers (NvInferRuntime.h) not found" in item.detail


def test_engine_build_output_is_read_per_engine_with_its_reason(tmp_path, capsys):
    from engines.build import main
    from tests.tiny_graphs import write_tiny_folder

    folder = write_tiny_folder(tmp_path / "tiny", plugin=False)       # FP32 only: FP16 has no ONNX variant
    main([str(folder), "--precision", "fp16", "--flavour", "standard", "--dry-run", "--json"])
    out = capsys.readouterr().out
    check = make_plan(options(tmp_path, artifacts=folder, precisions=("fp16",), flavours=("standard",)))[0]
    items = parse_engines(StepOutput(0, out, "", 1.0), check)
    assert {i.name for i in items} == {"template.fp16.standard.engine", "search.fp16.standard.engine"}
    assert all(i.status == SKIPPED and "fp16.standard.onnx not found" in i.detail for i in items)


def test_selfcheck_rows_become_items_with_their_errors_and_only_planned_engines_count():
    from engines.selfcheck import CheckRow

    rows = [CheckRow("search.fp16.plugin.engine", "search.fp16.standard.onnx", "pass", 0.01, 0.2, 0.003, 0.05),
            CheckRow("search.int8.plugin.engine", "search.int8.standard.onnx", "FAIL", 9.0, 3.0, 0.5, 0.2),
            CheckRow("template.fp32.plugin.engine", "template.fp32.standard.onnx", "skipped: no GPU (x)"),
            CheckRow("other.engine", "-", "FAIL")]
    check = Check("selfcheck", "t", 1, items=tuple(ItemSpec(r.engine) for r in rows[:3]))
    ok, bad, skipped = parse_selfcheck(StepOutput(1, json.dumps([asdict(r) for r in rows]), "", 1.0), check)
    assert ok.status == PASS and ok.figures == {"max_abs": 0.01, "max_rel": 0.2, "scaled": 0.003, "tolerance": 0.05}
    assert bad.status == FAIL and "0.5 > 0.2" in bad.detail
    assert skipped.status == SKIPPED and skipped.detail == "no GPU (x)"


def test_pytest_results_are_read_per_test_from_its_junit_xml(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok():\n    pass\n"
        "def test_broken():\n    assert 1 == 2\n"
        "def test_needs_x():\n    pytest.skip('needs X')\n")
    xml = tmp_path / "out.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_sample.py"), "-v", "-p",
                           "no:cacheprovider", "-o", "addopts=", f"--junitxml={xml}", "--rootdir", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    check = Check("gpu-tests", "t", 1, output=str(xml), dynamic=True)
    items = {i.name.split("::")[-1]: i for i in parse_pytest(StepOutput(proc.returncode, proc.stdout, "", 1.0), check)}
    assert items["test_ok"].status == PASS
    assert items["test_broken"].status == FAIL and "assert 1 == 2" in items["test_broken"].detail
    assert items["test_needs_x"].status == SKIPPED and items["test_needs_x"].detail == "needs X"
    # stopped before the XML existed: the -v lines printed so far still count
    xml.unlink()
    partial = parse_pytest(StepOutput(None, proc.stdout, "", 1.0), check)
    assert {i.name.split("::")[-1]: i.status for i in partial} == {"test_ok": PASS, "test_broken": FAIL,
                                                                   "test_needs_x": SKIPPED}


def latency_summary(trt_search_ms: float, ort_search_ms: float) -> str:
    """bench.latency's --json shape, with numbers written here (not a measurement)."""
    def run(search):
        stages = {"template": {"median_ms": 1.0}, "search": {"median_ms": search},
                  "track_e2e": {"median_ms": search + 2.0}}
        return {"stages": stages, "fps": 1000 / (search + 2.0)}

    return json.dumps({"runs": {"onnxruntime-fp16": run(ort_search_ms), "tensorrt-fp16-standard": run(trt_search_ms),
                                "tensorrt-fp16-plugin": {"error": "engine could not be opened"}}})


LATENCY = Check("latency", "t", 1, items=(ItemSpec("onnxruntime-fp16"), ItemSpec("tensorrt-fp16-standard",
                                          reference="onnxruntime-fp16"),
                                          ItemSpec("tensorrt-fp16-plugin", reference="onnxruntime-fp16")))


def test_latency_items_carry_stage_medians_and_the_speedup_over_onnxruntime():
    ort, trt, broken = parse_latency(StepOutput(1, latency_summary(2.0, 20.0), "", 1.0), LATENCY)
    assert ort.status == PASS and ort.figures["search_ms"] == 20.0 and ort.figures["template_ms"] == 1.0
    assert trt.status == PASS and trt.figures["search_speedup"] == pytest.approx(10.0)
    assert trt.figures["e2e_speedup"] == pytest.approx(22.0 / 4.0)
    assert broken.status == FAIL and broken.detail == "engine could not be opened"


def test_a_tensorrt_run_not_faster_than_onnxruntime_on_the_cpu_fails():
    _, trt, _ = parse_latency(StepOutput(0, latency_summary(25.0, 20.0), "", 1.0), LATENCY)
    assert trt.status == FAIL and "not faster than onnxruntime-fp16" in trt.detail


def accuracy_summary(trt_auc: float, ort_auc: float, n: int) -> str:
    """bench.accuracy's --json shape, with numbers written here (not a measurement)."""
    def run(auc):
        return {"overall": {"auc": auc, "prec20": 0.5, "sequences_scored": n}, "tracker_fps": 100.0}

    return json.dumps({"runs": {"onnxruntime-int8": run(ort_auc), "tensorrt-int8-standard": run(trt_auc)},
                       "dataset": {"sequences": n}, "run_errors": []})


ACCURACY = Check("accuracy", "t", 1, items=(ItemSpec("onnxruntime-int8"),
                                            ItemSpec("tensorrt-int8-standard", reference="onnxruntime-int8")))


@pytest.mark.parametrize("trt_auc, status", [(0.60, PASS), (0.45, PASS), (0.35, FAIL), (0.85, FAIL)])
def test_tensorrt_auc_must_stay_within_one_flipped_sequence_of_onnxruntime(tmp_path, trt_auc, status):
    check = Check(**{**ACCURACY.__dict__, "output": str(tmp_path)})
    assert auc_tolerance(6) == pytest.approx(1 / 6 + 0.02)
    _, trt = parse_accuracy(StepOutput(0, accuracy_summary(trt_auc, 0.60, 6), "", 1.0), check)
    assert trt.status == status and trt.figures["delta_auc"] == pytest.approx(trt_auc - 0.60)
    assert trt.figures["box_iou_vs_reference"] is None          # no result files in this folder


def test_provenance_passes_only_variants_exported_from_the_given_checkpoint(tmp_path):
    import onnx

    from engines.verify_steps import check_provenance
    from runtime.contract import META_SOURCE_SHA, sha256_file
    from tests.tiny_graphs import set_meta, write_tiny_folder

    folder = write_tiny_folder(tmp_path / "tiny", plugin=False)
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"weights")
    path = folder / "search.fp32.standard.onnx"
    onnx.save(set_meta(onnx.load(str(path)), META_SOURCE_SHA, sha256_file(ckpt)), str(path))
    opts = options(tmp_path, artifacts=folder, precisions=("fp32",), flavours=("standard",), checkpoint=ckpt)
    template, search = check_provenance(make_plan(opts)[0], opts)
    assert search.status == PASS
    assert template.status == FAIL and "re-run build.sh with this checkpoint" in template.detail


# ------------------------------------------------------------------ the report

def test_report_is_written_atomically_as_json_and_markdown_with_every_item(tmp_path):
    from engines.verify_report import make_report, write_report

    results = [CheckResult("selfcheck", "each engine vs ORT", FAIL, (
        ItemResult("search.fp16.standard.engine", PASS, "vs x", {"scaled": 0.0031}),
        ItemResult("search.int8.standard.engine", FAIL, "FAIL vs y: 0.5 > 0.2"),
        ItemResult("search.fp16.plugin.engine", SKIPPED, "plugin library not built; nvcc not found",
                   reasons=("plugin library not built", "nvcc not found"))), 3.0, 45.0, "python -m engines.selfcheck")]
    report = make_report(results, options(tmp_path), {"gpu": "RTX"}, 3.0, "siamtrack verify")
    md, js = write_report(report, tmp_path / "out")
    data = json.loads(js.read_text())
    assert data["exit_code"] == EXIT_FAILED and data["summary"] == {PASS: 1, FAIL: 1, SKIPPED: 1}
    assert data["checks"][0]["items"][2]["reasons"] == ["plugin library not built", "nvcc not found"]
    text = md.read_text()
    assert "| search.fp16.standard.engine | pass | scaled 0.0031 | vs x |" in text
    assert "| search.int8.standard.engine | fail |  | FAIL vs y: 0.5 > 0.2 |" in text
    assert "| search.fp16.plugin.engine | skipped |  | not checked: [1], [2] |" in text
    assert "- [1] plugin library not built" in text and "- [2] nvcc not found" in text
    assert "unverified until someone runs it" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.md"]  # no temp files


# ------------------------------------------------------------------ the command

def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engines.verify", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


no_gpu_here = pytest.mark.skipif(gpu_status()[0], reason="this machine has a GPU: verify would really run here")


@no_gpu_here
def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(tmp_path):
    proc = run_cli("--artifacts", str(tmp_path / "art"), "--report", str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "without a GPU" in proc.stdout and gpu_status()[1] in proc.stdout
    assert "Traceback" not in proc.stderr and not (tmp_path / "rep").exists()


@no_gpu_here
def test_dry_run_lists_every_check_with_its_skip_reasons_on_this_machine(tmp_path):
    proc = run_cli("--artifacts", str(tmp_path / "art"), "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [c["name"] for c in data["checks"]] == ["plugin", "engines.plugin", "engines.standard", "selfcheck",
                                                   "gpu-tests", "latency", "accuracy"]
    assert data["gpu"] == gpu_status()[1] and data["budget_s"] <= data["limit_s"] == LIMIT_S
    for check in data["checks"]:
        for item in check["items"]:
            assert not item["would_run"] and item["skip_reasons"], (check["name"], item)
            if not item["name"].startswith("onnxruntime-"):
                assert gpu_status()[1] in item["skip_reasons"]
            else:                                        # ONNX Runtime needs no GPU, only the exported graphs
                assert all("not found" in r for r in item["skip_reasons"])
    text = run_cli("--artifacts", str(tmp_path / "art"), "--dry-run").stdout
    planned = sum(BUDGET_S.values()) - BUDGET_S["provenance"]      # no --checkpoint: no provenance check
    assert f"budget {planned} s (limit {LIMIT_S} s)" in text and f"[1] {gpu_status()[1]}" in text


def test_help_teaches_with_examples_and_says_it_is_unverified_on_a_gpu():
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert "examples:" in proc.stdout and "--dry-run" in proc.stdout and "bash build.sh --verify" in proc.stdout
    assert "unverified" in proc.stdout


def test_a_wrong_precision_is_a_user_error_with_the_choices():
    proc = run_cli("--precisions", "fp64", "--dry-run")
    assert proc.returncode == 1 and "siamtrack verify: error: --precisions 'fp64'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_step_json_is_found_among_lines_a_library_printed_around_it():
    from engines.verify_steps import json_output

    assert json_output('[W] a warning\n{\n "runs": {"a": 1}\n}\ntrailing note\n') == {"runs": {"a": 1}}
    with pytest.raises(ValueError):
        json_output("siamtrack engines: error: no TensorRT\n")

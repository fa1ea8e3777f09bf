"""ONNX Runtime CPU latency of the FP32, FP16 and INT8 variants of one export, in one run.

Every precision present (``template/search.<precision>.<flavour>.onnx``) is opened through the
runtime's ``OrtBackend`` (what the tracker runs), fed the same image-like crops and kernels, and timed
round-robin (fp32, fp16, int8, fp32, ...) so machine load hits every variant alike. Reported: median
and p90 milliseconds per call for the template and search graphs, and each variant's median search
latency as a ratio to FP32 (< 1 = faster).

On CPU this measures ONNX Runtime's kernels, not TensorRT's: ORT runs Q/DQ graphs with INT8 kernels
(QLinearConv) on x86, while FP16 Conv has no fast CPU kernel and is usually slower than FP32 there.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from runtime.cli_args import positive_int

PRECISIONS = ("fp32", "fp16", "int8")


def _inputs(spec, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    template = rng.integers(0, 256, spec.template_shape(batch)).astype(np.float32)
    search = rng.integers(0, 256, spec.search_shape(batch)).astype(np.float32)
    return template, search


def measure(model_dir: str | Path, flavour: str = "plugin", repeats: int = 20, warmup: int = 3,
            batch: int = 1, threads: int | None = None, progress: bool = False,
            allow_spinning: bool = False) -> dict:
    """Time every precision present in ``model_dir``; returns the JSON-ready result. allow_spinning:
    let the sessions' idle pool threads spin (ONNX Runtime's default; the backend turns it off)."""
    import os

    from tqdm import tqdm

    from runtime.backends import onnxrt
    from runtime.backends.onnxrt import OrtBackend
    from runtime.contract import artifact_name
    from runtime.errors import InputError

    model_dir = Path(model_dir)
    present = [p for p in PRECISIONS if (model_dir / artifact_name("search", p, flavour, "onnx")).is_file()]
    if "fp32" not in present:
        raise InputError(f"{model_dir}: no search.fp32.{flavour}.onnx; export the model first")
    onnxrt.ALLOW_SPINNING = allow_spinning
    try:
        backends = {p: OrtBackend.from_dir(model_dir, precision=p, flavour=flavour, threads=threads) for p in present}
    finally:
        onnxrt.ALLOW_SPINNING = False
    spec = backends["fp32"].spec
    template, search = _inputs(spec, batch, seed=0)
    kernels = {p: b.run_template(template) for p, b in backends.items()}
    times = {p: {"template": [], "search": []} for p in present}
    for i in tqdm(range(warmup + repeats), desc="latency", disable=not progress):
        for p, b in backends.items():
            t0 = time.perf_counter()
            b.run_template(template)
            t1 = time.perf_counter()
            b.run_search(search, kernels[p])
            t2 = time.perf_counter()
            if i >= warmup:
                times[p]["template"].append((t1 - t0) * 1e3)
                times[p]["search"].append((t2 - t1) * 1e3)
    result = {"model_dir": str(model_dir), "flavour": flavour, "batch": batch, "repeats": repeats,
              "threads": backends["fp32"].threads, "variant": spec.variant, "spinning": allow_spinning,
              "load_average": list(os.getloadavg()), "precisions": {}}
    base = float(np.median(times["fp32"]["search"]))
    for p in present:
        t, s = np.array(times[p]["template"]), np.array(times[p]["search"])
        result["precisions"][p] = {"template_ms_median": float(np.median(t)), "template_ms_p90": float(np.percentile(t, 90)),
                                   "search_ms_median": float(np.median(s)), "search_ms_p90": float(np.percentile(s, 90)),
                                   "search_ratio_vs_fp32": float(np.median(s)) / base}
    for b in backends.values():
        b.close()
    return result


def format_table(result: dict) -> str:
    load = result.get("load_average")
    lines = [f"{result['model_dir']} ({result['variant']}, {result['flavour']}), ONNX Runtime CPU, "
             f"{result['threads']} thread(s), spinning {'on' if result.get('spinning') else 'off'}, "
             f"batch {result['batch']}, {result['repeats']} runs"
             + (f", load average {load[0]:.2f}" if load else ""),
             f"{'precision':10} {'template ms':>12} {'search ms':>10} {'search p90':>11} {'vs fp32':>8}"]
    for p, r in result["precisions"].items():
        lines.append(f"{p:10} {r['template_ms_median']:12.1f} {r['search_ms_median']:10.1f} "
                     f"{r['search_ms_p90']:11.1f} {r['search_ratio_vs_fp32']:8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="siamtrack precision-latency",
        description="ONNX Runtime CPU latency of FP32 vs FP16 vs INT8 graphs of one export, in one run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  siamtrack precision-latency artifacts/mobilev2\n"
               "  siamtrack precision-latency artifacts/r50 --repeats 50 --threads 1 --json\n"
               "the ratio column is median search latency / FP32's (< 1 means faster). CPU numbers say\n"
               "nothing about TensorRT on a GPU; on the Jetson use\n"
               "`siamtrack latency --run tensorrt:artifacts/r50,precision=int8` for that.")
    parser.add_argument("model_dir", type=Path, help="folder with the FP32 pair and its variants")
    parser.add_argument("--flavour", choices=("plugin", "standard"), default="plugin")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per graph (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    parser.add_argument("--batch", type=int, default=1, help="targets per call (default 1)")
    parser.add_argument("--threads", type=positive_int, help="ONNX Runtime intra-op threads (default: all usable)")
    parser.add_argument("--allow-spinning", action="store_true",
                        help="let idle ONNX Runtime pool threads spin (the library's default, off in the "
                             "backend): shows what alternating sessions cost with it on")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = measure(args.model_dir, args.flavour, args.repeats, args.warmup, args.batch, args.threads,
                     progress=not args.json, allow_spinning=args.allow_spinning)
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack precision-latency"))

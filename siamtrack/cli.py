"""``siamtrack <command> ...``: a table of stage entry points, imported only when chosen.

Each entry is a ``"module:function"`` string so that no stage imports another and ``--help`` stays
instant. Every entry point takes ``argv`` (list of str) and returns an exit code.
"""
from __future__ import annotations

import importlib
import sys

# name -> (entry point, one-line help). Order is the order of the data flow.
COMMANDS: dict[str, tuple[str, str]] = {
    # training
    "train": ("train.loop:main", "train SiamRPN++ (spatial-aware sampling) on generated or your own sequences"),
    "train-eval": ("train.evaluate:main", "AUC vs untrained/static baselines, and the centre-bias ablation"),
    # checkpoint -> deployable artifacts
    "export": ("export.to_onnx:main", "pysot checkpoint -> template/search ONNX pair (custom-op and standard twins)"),
    "fp16": ("export.fp16:main", "FP16 variants of an export (keep chosen ops in FP32)"),
    "calibrate": ("calibration.collect:main", "record calibration crops and kernels as the FP32 tracker sees them"),
    "quantize": ("calibration.quantize:main", "INT8 Q/DQ variants from a calibration set (max, percentile, entropy)"),
    "quantize-cpu": ("calibration.cpu_int8:main",
                     "INT8 graphs placed for ONNX Runtime's CPU kernels (QLinearConv, u8s8): *.int8.cpu.onnx"),
    "precision-report": ("calibration.report:main", "error and tracking agreement of each precision vs FP32"),
    "plugin": ("engines.plugin_build:main", "build the DepthwiseXCorr TensorRT plugin library for this GPU"),
    "engines": ("engines.build:main",
                "build TensorRT engines (only missing or stale ones) from the exported ONNX variants"),
    "selfcheck": ("engines.selfcheck:main", "run each engine on recorded inputs against ONNX Runtime; max error per engine"),
    "verify": ("engines.verify:main", "on a GPU: plugin, every engine, self-check, gpu tests, TensorRT vs ORT; one report"),
    # tracking
    "track": ("runtime.track_cli:main", "track one target through a video or image folder"),
    "camera": ("runtime.camera_cli:main",
               "track live from a camera, stream, video or image folder (window or headless JSON lines)"),
    "trax": ("serving.trax_server:main", "serve the tracker over TraX (stdin/stdout) for the VOT toolkit"),
    "triton-repo": ("serving.triton.repo:main", "export folder -> Triton model repository (batched nets + per-stream tracker)"),
    "triton-serve": ("serving.triton.server:main", "run the bundled Triton server on such a repository (127.0.0.1, CPU)"),
    "triton-load": ("serving.triton.load:main", "N concurrent streams against a Triton server: frames/s, p50/p99 latency"),
    # measuring
    "accuracy": ("bench.accuracy:main",
                 "run backends over a tracking dataset: result files, AUC/precision/AO/VOT tables, plots"),
    "latency": ("bench.latency:main", "per-stage latency, FPS and peak memory of backends, each in a fresh process"),
    "synth": ("bench.synth:main", "write seeded synthetic tracking sequences with exact ground truth"),
    "longterm-report": ("bench.longterm_report:main",
                        "short-term vs long-term tracker on generated long-term sequences: F-score, re-detection"),
    "precision-latency": ("bench.precision_latency:main", "ONNX Runtime CPU latency of FP32 vs FP16 vs INT8"),
    "cpu-perf": ("bench.cpu_perf:main",
                 "every CPU backend/precision end to end on a real 1280x720 clip vs PyTorch, 1 and 2 threads"),
    "report": ("bench.report:main", "re-render an accuracy or latency summary JSON as a table (and plots)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: siamtrack <command> [options]   (siamtrack <command> --help for details)", "",
             "SiamRPN++ from a pysot checkpoint to TensorRT engines, and tracking with any backend.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"siamtrack: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func = COMMANDS[name][0].split(":")
    if name == "camera" and any(x == "--server" or x.startswith("--server=") for x in rest):
        module, func = "serving.triton.camera", "main"   # tracker on a Triton server; runtime imports no serving
    entry = getattr(importlib.import_module(module), func)
    from runtime.errors import run_main

    return run_main(entry, f"siamtrack {name}", rest)

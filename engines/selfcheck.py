"""Run every engine of a folder on recorded inputs and compare it with ONNX Runtime on its ONNX graph:
``python -m engines.selfcheck FOLDER``. Prints the max error per engine, polygraphy-style.

Reference: ONNX Runtime (CPU) on the engine's own ONNX; for the plugin flavour, on the standard-op twin
of the same precision (same arithmetic, and plain ONNX Runtime cannot run the custom op). The search
engine is fed the kernels ONNX Runtime computes from the recorded template crops, so each engine is
judged alone. A long-term export's ``search_lost`` engine is checked the same way on large crops
(``search_lost`` in the inputs file, or seeded ones). Without a GPU every engine is reported as
skipped, with the reason.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.contract import LOST_GRAPH, ModelSpec, artifact_name
from runtime.engine_meta import EngineSidecar, read_sidecar, write_atomic
from runtime.errors import ContractError, InputError, SiamTrackError

INPUTS_FILE = "selfcheck_inputs.npz"

# Pass if max|engine - reference| <= TOLERANCE * max|reference| (per output). FP32 engines may use TF32
# convolutions (TensorRT's default on Ampere and newer: 10-bit mantissa, ~1e-3 relative per product,
# accumulated over a deep network), FP16 has an 11-bit mantissa over the whole graph, INT8 quantises
# every activation to 8 bits; the bounds leave ~5x headroom over those rounding levels.
TOLERANCE = {"fp32": 1e-2, "fp16": 5e-2, "int8": 2e-1}


@dataclass(frozen=True)
class CheckRow:
    """One engine's result. status: "pass", "FAIL", or "skipped: <reason>"; errors are None when skipped.

    max_abs: max |engine - reference| over all outputs. max_rel: polygraphy's elementwise
    max |a - b| / |b|. scaled: max_abs / max |reference| (what the tolerance applies to).
    """

    engine: str
    reference: str
    status: str
    max_abs: float | None = None
    max_rel: float | None = None
    scaled: float | None = None
    tolerance: float | None = None


def recorded_inputs(folder: Path, spec: ModelSpec, path: Path | None = None, batch: int = 2) -> dict[str, np.ndarray]:
    """{"template": (B,3,E,E), "search": (B,3,X,X)} float32 0..255 from ``path``; without one, from
    ``folder/selfcheck_inputs.npz``, recorded there (seeded) on first use so every rerun sees the same.
    With a lost size in ``spec`` also "search_lost" (B,3,L,L): from the file when it has them, else
    seeded (the same every run, not written: a file recorded before the long-term graph stays valid)."""
    path = path or folder / INPUTS_FILE
    if path.is_file():
        with np.load(path) as data:
            feeds = {k: data[k].astype(np.float32) for k in ("template", "search", LOST_GRAPH) if k in data}
        checks = [("template", spec.template_shape), ("search", spec.search_shape)]
        if spec.lost_instance_size and LOST_GRAPH in feeds:
            checks.append((LOST_GRAPH, lambda n: spec.search_shape(n, spec.lost_instance_size)))
        for key, shape in checks:
            arr = feeds.get(key)
            if arr is None or arr.ndim != 4 or arr.shape != shape(arr.shape[0]):
                raise InputError(f"{path}: needs array {key!r} shaped {shape(batch)} (any batch), got "
                                 f"{None if arr is None else arr.shape}")
        return _with_lost_crops(feeds, spec, batch)
    rng = np.random.default_rng(20261129)
    feeds = {"template": rng.uniform(0, 255, spec.template_shape(batch)).astype(np.float32),
             "search": rng.uniform(0, 255, spec.search_shape(batch)).astype(np.float32)}
    import io

    buf = io.BytesIO()
    np.savez(buf, **feeds)
    write_atomic(path, buf.getvalue())
    return _with_lost_crops(feeds, spec, batch)


def _with_lost_crops(feeds: dict[str, np.ndarray], spec: ModelSpec, batch: int) -> dict[str, np.ndarray]:
    if spec.lost_instance_size and LOST_GRAPH not in feeds:
        rng = np.random.default_rng(20261203)
        shape = spec.search_shape(batch, spec.lost_instance_size)
        feeds = {**feeds, LOST_GRAPH: rng.uniform(0, 255, shape).astype(np.float32)}
    return feeds


def _ort_run(onnx_path: Path, feeds: dict[str, np.ndarray], threads: int | None = None) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    from runtime.backends.onnxrt import session_options

    # Same options as the ORT backend: the exact INT8 kernels make ORT a fair reference for an INT8 engine;
    # ``threads`` intra-op threads (None: ORT's default), idle pool threads not spinning while TensorRT runs.
    opts = session_options(ort, threads)
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {i.name: feeds[i.name] for i in sess.get_inputs()})))


def reference_onnx(folder: Path, meta: EngineSidecar) -> Path:
    if meta.flavour == "standard":
        return folder / meta.onnx_file
    return folder / artifact_name(meta.graph, meta.precision, "standard", "onnx")


def feeds_for(folder: Path, meta: EngineSidecar, inputs: dict[str, np.ndarray],
              threads: int | None = None) -> dict[str, np.ndarray]:
    """The engine's inputs: the template crops, or the search crops plus ONNX Runtime's kernels for them
    (``threads``: that session's intra-op threads)."""
    n = min(len(inputs["template"]), len(inputs["search"]), meta.max_batch)
    if meta.graph == "template":
        return {"template": inputs["template"][:n]}
    template = folder / artifact_name("template", meta.precision, "standard", "onnx")
    if not template.is_file():
        template = folder / artifact_name("template", "fp32", "standard", "onnx")
    kernels = _ort_run(template, {"template": inputs["template"][:n]}, threads)
    crops = inputs[LOST_GRAPH if meta.graph == LOST_GRAPH else "search"]
    return {"search": crops[:n], **kernels}


def compare(engine_out: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> tuple[float, float, float]:
    """(max_abs, max elementwise rel, max_abs / max |reference|) over every output both have."""
    max_abs = max_rel = scaled = 0.0
    for name, ref in reference.items():
        diff = np.abs(engine_out[name].astype(np.float64) - ref)
        max_abs = max(max_abs, float(diff.max()))
        max_rel = max(max_rel, float((diff / np.maximum(np.abs(ref), 1e-12)).max()))
        scaled = max(scaled, float(diff.max() / max(np.abs(ref).max(), 1e-12)))
    return max_abs, max_rel, scaled


def check_engine(engine: Path, inputs: dict[str, np.ndarray] | None, gpu_reason: str | None,
                 plugin_library: Path | None = None, threads: int | None = None) -> CheckRow:
    """plugin_library: explicit plugin path for plugin engines (else the engine's folder or the project's
    plugin build output; never a path from the sidecar). threads: intra-op threads of the ONNX Runtime
    reference sessions (None: ORT's default)."""
    folder = engine.parent
    try:
        meta = read_sidecar(engine)
    except ContractError as exc:
        return CheckRow(engine.name, "-", f"skipped: {exc}")
    ref = reference_onnx(folder, meta)
    if gpu_reason:
        return CheckRow(engine.name, ref.name, f"skipped: no GPU ({gpu_reason})")
    if not ref.is_file():
        return CheckRow(engine.name, ref.name, f"skipped: reference {ref.name} not found")
    from runtime.backends.trt import run_engine

    feeds = feeds_for(folder, meta, inputs, threads)
    expected = _ort_run(ref, feeds, threads)
    try:
        got = run_engine(engine, feeds, plugin_library)
    except SiamTrackError as exc:
        return CheckRow(engine.name, ref.name, f"FAIL: {exc}")
    max_abs, max_rel, scaled = compare(got, expected)
    tol = TOLERANCE[meta.precision]
    return CheckRow(engine.name, ref.name, "pass" if scaled <= tol else "FAIL", max_abs, max_rel, scaled, tol)


def selfcheck(folder: Path, inputs_path: Path | None = None, batch: int = 2,
              plugin_library: Path | None = None, threads: int | None = None) -> list[CheckRow]:
    """One row per engine in ``folder``. threads: intra-op threads of the ONNX Runtime reference sessions
    (None: ORT's default); TensorRT ignores it."""
    from runtime.backends import check_threads
    from runtime.gpu import gpu_status

    threads = check_threads(threads)
    engines = sorted(folder.glob("*.engine"))
    available, reason = gpu_status()
    inputs = None
    if available and engines:
        readable = []
        for engine in engines:  # an invalid sidecar is reported on its own row by check_engine
            try:
                readable.append(read_sidecar(engine))
            except ContractError:
                continue
        if readable:
            inputs = recorded_inputs(folder, ModelSpec.from_json(readable[0].model_spec), inputs_path, batch)
    return [check_engine(e, inputs, None if available else reason, plugin_library, threads) for e in engines]


def format_table(rows: list[CheckRow]) -> str:
    def num(x):
        return "-" if x is None else f"{x:.3g}"

    table = [("engine", "reference (ONNX Runtime)", "max_abs", "max_rel", "abs/|ref|max", "tol", "result")]
    table += [(r.engine, r.reference, num(r.max_abs), num(r.max_rel), num(r.scaled), num(r.tolerance), r.status)
              for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in table)


def main(argv: list[str] | None = None) -> int:
    from runtime.cli_args import positive_int

    p = argparse.ArgumentParser(
        prog="siamtrack selfcheck",
        description="Run each TensorRT engine in FOLDER on recorded inputs and compare it with ONNX Runtime "
                    "on its ONNX graph; prints the max error per engine. Exit code 1 if any engine fails.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  siamtrack selfcheck artifacts/r50\n"
               "  siamtrack selfcheck artifacts/r50 --inputs calib/crops.npz --json\n"
               f"inputs: an .npz with 'template' (N,3,E,E) and 'search' (N,3,X,X) float32 BGR 0..255 crops\n"
               f"(and optionally 'search_lost' (N,3,L,L) for a long-term export's large-crop engine);\n"
               f"by default FOLDER/{INPUTS_FILE}, recorded (seeded) on first use.\n"
               f"pass when max|engine - reference| <= tol * max|reference|; tol: {TOLERANCE}")
    p.add_argument("folder", type=Path)
    p.add_argument("--inputs", type=Path, help="recorded crops (.npz with template and search arrays)")
    p.add_argument("--batch", type=int, default=2, help="targets per run when inputs are recorded here (default 2)")
    p.add_argument("--plugin-lib", type=Path, help="DepthwiseXCorr plugin library for plugin engines (default: the "
                                                    "file the sidecar names, from FOLDER or artifacts/plugin/)")
    p.add_argument("--threads", type=positive_int,
                   help="CPU threads of the intra-op pool of each ONNX Runtime reference session (one "
                        "inter-op thread, idle threads do not spin); default: the library's. TensorRT "
                        "ignores it")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    if not args.folder.is_dir():
        raise InputError(f"{args.folder}: not a folder of engines (run `python -m engines.build` first)")
    rows = selfcheck(args.folder, args.inputs, args.batch, args.plugin_lib, args.threads)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    elif rows:
        print(format_table(rows))
    else:
        print(f"selfcheck: no .engine files in {args.folder}")
    return 1 if any(r.status.startswith("FAIL") for r in rows) else 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack selfcheck"))

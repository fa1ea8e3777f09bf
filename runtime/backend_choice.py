"""Which backend runs a model folder here, and why: a pure decision over a probe of the machine.

Preference for speed: TensorRT engines on a GPU, then ONNX Runtime on the ONNX pair, then PyTorch on a
pysot config + checkpoint. ``probe`` gathers the facts (imports are only *located*, never executed, and
no TensorRT Runtime is ever constructed: without a driver it crashes the process); ``choose_backend`` is
pure, so every branch is testable on any machine.

Artifact names follow ``runtime.contract.artifact_name``: a pair is ``template.<p>.<f>.<ext>`` plus
``search.<p>.<f>.<ext>``, p in fp32|fp16|int8, f in plugin|standard, ext onnx|engine; and the ONNX
Runtime INT8 placement ``template.int8.cpu.onnx`` / ``search.int8.cpu.onnx`` (``calibration.cpu_int8``).

A variant pair whose export id differs from the FP32 graphs' (left by an interrupted build) or whose
INT8 graphs come from two calibrations is never chosen (``runtime.variants``): the automatic choice
skips it and says why; an explicitly requested precision that only such a pair offers is refused.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from runtime.contract import CPU_INT8_FLAVOUR, PRECISIONS, XCORR_FLAVOURS, artifact_name
from runtime.errors import BackendUnavailable, ContractError, InputError

ORDER = ("tensorrt", "onnxruntime", "torch")
# Without a measurement on the target, these orders encode the usual ranking. TensorRT: INT8 > FP16 >
# FP32 and the plugin xcorr (one fused kernel) over grouped Conv. ONNX Runtime on CPU: FP32 first (its
# FP16 graphs insert casts and run slower on CPU), and the standard grouped Conv over the Python custom op.
TRT_PRECISION_ORDER = ("int8", "fp16", "fp32")
TRT_FLAVOUR_ORDER = ("plugin", "standard")
# INT8 is never picked by ``auto`` alone (FP32 comes first): it changes the boxes (precision-report
# measures by how much), so it runs when the user asks for int8. Then the ``cpu`` placement comes
# first: the TensorRT-placed INT8 graphs dequantize every weight and run each Conv in float on ORT,
# slower than FP32 on any CPU (lite0: 2x), while the cpu graphs run ORT's integer kernels.
ORT_PRECISION_ORDER = ("fp32", "int8", "fp16")
ORT_FLAVOUR_ORDER = (CPU_INT8_FLAVOUR, "standard", "plugin")


@dataclass(frozen=True)
class Probe:
    """Facts about this machine and one model folder.

    engines / onnx_pairs: (precision, flavour) pairs whose template+search files both exist.
    torch_model: a pysot config + checkpoint is present (paths in config_path / checkpoint_path).
    refused: {(kind, precision, flavour): reason} for pairs that must not be used (kind "engine" or
    "onnx"; ``runtime.variants.folder_problems``). folder: where the facts were gathered (for messages).
    """

    tensorrt_importable: bool
    gpu: bool
    gpu_reason: str
    engines: frozenset[tuple[str, str]]
    onnxruntime_importable: bool
    onnx_pairs: frozenset[tuple[str, str]]
    torch_importable: bool
    torch_model: bool = False
    config_path: str | None = None
    checkpoint_path: str | None = None
    refused: dict = field(default_factory=dict, hash=False)
    unpaired: tuple[str, ...] = ()       # artifact files whose template/search twin is missing
    folder: str = ""
    int8_kernels: str = ""               # ORT's INT8 kernel path on this CPU (runtime.cpu_features)


@dataclass(frozen=True)
class BackendChoice:
    """The backend to open (one of ``ORDER``), the artifact pair it uses (precision and flavour; None for
    torch) and one human sentence per backend considered, saying why it was taken or passed over.
    config_path / checkpoint_path: the pysot files when the choice is torch, else None."""

    backend: str
    precision: str | None
    flavour: str | None
    reasons: tuple[str, ...]
    config_path: str | None = None
    checkpoint_path: str | None = None


def _variants(ext: str) -> list[tuple[str, str]]:
    """Every (precision, flavour) an artifact of ``ext`` can have."""
    found = [(p, f) for p in PRECISIONS for f in XCORR_FLAVOURS]
    return found + [("int8", CPU_INT8_FLAVOUR)] if ext == "onnx" else found


def _pairs(folder: Path, ext: str) -> frozenset[tuple[str, str]]:
    return frozenset((p, f) for p, f in _variants(ext)
                     if (folder / artifact_name("template", p, f, ext)).is_file()
                     and (folder / artifact_name("search", p, f, ext)).is_file())


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def probe(folder: str | Path) -> Probe:
    """Look at ``folder`` and the installed libraries. Imports nothing heavy; asks the GPU through
    ``runtime.gpu.gpu_status`` (cuda-python), never through TensorRT."""
    from runtime.backends.onnxrt import int8_kernel_description
    from runtime.gpu import gpu_status
    from runtime.variants import folder_problems

    folder = Path(folder)
    gpu, gpu_reason = gpu_status()
    configs = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    checkpoints = sorted(folder.glob("*.pth"))
    return Probe(
        tensorrt_importable=_importable("tensorrt") or _importable("tensorrt_rtx"), gpu=gpu, gpu_reason=gpu_reason,
        engines=_pairs(folder, "engine"), onnxruntime_importable=_importable("onnxruntime"),
        onnx_pairs=_pairs(folder, "onnx"), torch_importable=_importable("torch"),
        torch_model=bool(configs and checkpoints),
        config_path=str(configs[0]) if configs else None,
        checkpoint_path=str(checkpoints[0]) if checkpoints else None,
        refused=folder_problems(folder), folder=str(folder), unpaired=_unpaired(folder),
        int8_kernels=int8_kernel_description())


def _pick(available: frozenset, precision: str | None, flavour: str | None,
          p_order: tuple[str, ...], f_order: tuple[str, ...], refused: dict | None = None,
          skipped: list | None = None) -> tuple[str, str] | None:
    """The first wanted pair in preference order; pairs in ``refused`` are passed over and appended to
    ``skipped`` as (precision, flavour, reason)."""
    for p in ([precision] if precision else p_order):
        for f in ([flavour] if flavour else f_order):
            if (p, f) in available:
                if refused and (p, f) in refused:
                    if skipped is not None:
                        skipped.append((p, f, refused[(p, f)]))
                    continue
                return p, f
    return None


def _refused(facts: Probe, kind: str) -> dict:
    return {(p, f): reason for (k, p, f), reason in facts.refused.items() if k == kind}


def _pick_checked(facts: Probe, kind: str, available: frozenset, precision, flavour, p_order, f_order,
                  reasons: list[str], name: str):
    """``_pick`` that passes over refused pairs, says so in ``reasons``, and raises ContractError when
    the precision the user asked for exists only as refused pairs."""
    skipped: list = []
    pick = _pick(available, precision, flavour, p_order, f_order, _refused(facts, kind), skipped)
    for p, f, why in skipped:
        reasons.append(f"{name}: skipped {p}.{f} {'engines' if kind == 'engine' else 'ONNX pair'}: {why}")
    if pick is None and skipped and precision is not None:
        from runtime.variants import refusal_message

        p, f, why = skipped[0]
        raise ContractError(refusal_message(facts.folder or "the model folder", kind, p, f, why))
    return pick


def _unpaired(folder: Path) -> tuple[str, ...]:
    """Names of template/search artifacts present without their twin (e.g. only the template ONNX)."""
    lone = []
    for ext in ("onnx", "engine"):
        for p, f in _variants(ext):
            have = {g: (folder / artifact_name(g, p, f, ext)).is_file() for g in ("template", "search")}
            if have["template"] != have["search"]:
                lone.append(artifact_name("template" if have["template"] else "search", p, f, ext))
    return tuple(lone)


def _missing_twins(facts: Probe, ext: str) -> str:
    """'; template.fp32.standard.onnx is present but search.fp32.standard.onnx is missing' or ''."""
    parts = []
    for name in facts.unpaired:
        if name.endswith("." + ext):
            graph, rest = name.split(".", 1)
            parts.append(f"{name} is present but {'search' if graph == 'template' else 'template'}.{rest} "
                         "is missing")
    return "; " + "; ".join(parts) if parts else ""


def _describe(pairs: frozenset) -> str:
    return ", ".join(f"{p}.{f}" for p, f in sorted(pairs)) or "none"


def _want(precision: str | None, flavour: str | None) -> str:
    return f"{precision or 'any precision'}/{flavour or 'any flavour'}"


def choose_backend(facts: Probe, requested: str = "auto", precision: str | None = None,
                   flavour: str | None = None) -> BackendChoice:
    """The fastest backend ``facts`` allow (or check ``requested``); raises BackendUnavailable with
    every reason when none can run. ``precision``/``flavour`` None: the fastest pair present."""
    if requested not in ("auto",) + ORDER:
        raise InputError(f"--backend {requested!r}: choose auto, {', '.join(ORDER)}")
    reasons: list[str] = []
    candidates = ORDER if requested == "auto" else (requested,)
    for name in candidates:
        choice = _consider(name, facts, precision, flavour, reasons)
        if choice is not None:
            torch = name == "torch"
            return BackendChoice(name, choice[0], choice[1], tuple(reasons),
                                 config_path=facts.config_path if torch else None,
                                 checkpoint_path=facts.checkpoint_path if torch else None)
    raise BackendUnavailable("no backend can run this model here: " + "; ".join(reasons) +
                             ". Install the missing library or build the missing artifacts (build.sh).")


def _consider(name: str, facts: Probe, precision, flavour, reasons: list[str]):
    """(precision, flavour) if backend ``name`` can run, else None; appends the reason either way."""
    want = _want(precision, flavour)
    if name == "tensorrt":
        if not facts.tensorrt_importable:
            reasons.append("tensorrt: neither tensorrt nor tensorrt_rtx is installed (JetPack ships tensorrt)")
        elif not facts.gpu:
            reasons.append(f"tensorrt: {facts.gpu_reason}")
        else:
            pick = _pick_checked(facts, "engine", facts.engines, precision, flavour, TRT_PRECISION_ORDER,
                                 TRT_FLAVOUR_ORDER, reasons, name)
            if pick:
                reasons.append(f"tensorrt: chosen, engines {pick[0]}.{pick[1]} on {facts.gpu_reason}")
                return pick
            reasons.append(f"tensorrt: no engine pair for {want} (pairs present: {_describe(facts.engines)}"
                           f"{_missing_twins(facts, 'engine')})")
        return None
    if name == "onnxruntime":
        if not facts.onnxruntime_importable:
            reasons.append("onnxruntime: not installed (pip install onnxruntime)")
            return None
        pick = _pick_checked(facts, "onnx", facts.onnx_pairs, precision, flavour, ORT_PRECISION_ORDER,
                             ORT_FLAVOUR_ORDER, reasons, name)
        if pick:
            reasons.append(f"onnxruntime: chosen, ONNX pair {pick[0]}.{pick[1]}" + _int8_note(facts, pick))
            return pick
        reasons.append(f"onnxruntime: no ONNX pair for {want} (pairs present: {_describe(facts.onnx_pairs)}"
                       f"{_missing_twins(facts, 'onnx')})")
        return None
    if not facts.torch_importable:
        reasons.append("torch: PyTorch is not installed")
    elif not facts.torch_model:
        reasons.append("torch: no pysot config .yaml with a .pth checkpoint in the folder")
    else:
        reasons.append(f"torch: chosen, {facts.config_path} with {facts.checkpoint_path}")
        return (None, None)
    return None


def _int8_note(facts: Probe, pick: tuple[str, str]) -> str:
    """What an INT8 pick means on ONNX Runtime: the kernel path, or why the pair will be slow."""
    if pick[0] != "int8":
        return ""
    if pick[1] != CPU_INT8_FLAVOUR:
        return (f" (placed for TensorRT: on ONNX Runtime its Convs run in float after dequantizing, slower than "
                f"FP32; `siamtrack quantize-cpu {facts.folder or 'MODEL_DIR'} --calib ...` makes the CPU INT8 pair)")
    return f" ({facts.int8_kernels})" if facts.int8_kernels else ""


def choose_artifact_backend(folder: str | Path, requested: str = "auto", precision: str | None = None,
                            flavour: str | None = None) -> BackendChoice:
    """``choose_backend`` over ``probe(folder)``; what ``runtime.backends.open_backend`` calls. Pairs passed
    over because they do not belong with the FP32 export are also reported as a warning (stderr)."""
    import warnings

    choice = choose_backend(probe(folder), requested, precision, flavour)
    for reason in choice.reasons:
        if ": skipped " in reason:
            warnings.warn(f"{folder}: {reason}", StaleVariantWarning, stacklevel=3)
    return choice


class StaleVariantWarning(UserWarning):
    """A precision variant was passed over because it does not belong with the folder's FP32 export."""

"""Which precision variants of an artifact folder belong with its FP32 export, and which must be refused.

build.sh writes the FP32 pair first and the FP16 / INT8 graphs and the engines after it. A build that is
killed between steps (or an FP32 re-export by hand) leaves FP32 files of the new checkpoint beside
variants of the old one. Every artifact carries the export id of the FP32 graphs it came from (ONNX
metadata ``siamrpn.export_id``; an engine's sidecar ``export_id``), so a variant whose export id differs
from the FP32 graphs' is found here and refused (or, when the precision was not asked for, skipped)
instead of being tracked with silently. An INT8 pair must also carry one calibration id in both graphs
(``calibration.quantize.quantize_pair``), or its template and search came from two calibrations.
A long-term export's third graph (``search_lost.*``) must match the pair it sits beside (same export
id, FP32 included; same calibration id for INT8), or ``lost_problem`` says why it is left unused. It
never makes the pair itself unusable: a short-term re-export into a folder that held a long-term one
leaves an old search_lost graph behind, and the short-term tracker must still run; asking for the
large crop then gives the reason and the export command.

Reads only metadata (``runtime.onnx_meta.read_metadata``) and sidecars: no onnx, no TensorRT.
"""
from __future__ import annotations

import json
from pathlib import Path

from runtime.contract import (CPU_INT8_FLAVOUR, LOST_GRAPH, META_CALIBRATION, META_EXPORT_ID, PRECISIONS,
                              XCORR_FLAVOURS, artifact_name)
from runtime.errors import ContractError

KINDS = ("onnx", "engine")
# What reading a damaged sidecar or graph can raise; such a pair is refused with the reason, never a crash.
_UNREADABLE = (ContractError, ValueError, TypeError, AttributeError, KeyError, RecursionError, OSError)


def calibration_info(path: str | Path) -> dict:
    """The ``siamrpn.calibration`` JSON of an INT8 graph ({} when absent or unreadable)."""
    from runtime.onnx_meta import read_metadata

    try:
        return json.loads(read_metadata(path).get(META_CALIBRATION, "{}"))
    except (ValueError, ContractError):
        return {}


def _export_id(path: Path, kind: str) -> str:
    if kind == "onnx":
        from runtime.onnx_meta import read_metadata

        return read_metadata(path).get(META_EXPORT_ID, "")
    from runtime.engine_meta import read_sidecar

    return read_sidecar(path).export_id


def _pair(folder: Path, precision: str, flavour: str, kind: str) -> tuple[Path, Path] | None:
    t, s = (folder / artifact_name(g, precision, flavour, kind) for g in ("template", "search"))
    return (t, s) if t.is_file() and s.is_file() else None


def fp32_export_ids(folder: str | Path, flavour: str) -> tuple[set[str], str]:
    """(export ids, where they were read) of the FP32 graphs a ``flavour`` variant must match: the FP32
    ONNX files of that flavour, else of any flavour (one export writes both), else the FP32 engines'
    sidecars. Empty when the folder has no FP32 artifact to compare with. The ``cpu`` INT8 flavour is
    made from the standard FP32 graphs and compared with them."""
    folder = Path(folder)
    if flavour == CPU_INT8_FLAVOUR:
        flavour = "standard"
    for flavours, kind in (((flavour,), "onnx"), (XCORR_FLAVOURS, "onnx"), ((flavour,), "engine")):
        paths = [folder / artifact_name(g, "fp32", f, kind) for f in flavours for g in ("template", "search")]
        paths = [p for p in paths if p.is_file()]
        if paths:
            ids = set()
            for p in paths:
                try:
                    ids.add(_export_id(p, kind))
                except _UNREADABLE:
                    continue    # an unreadable FP32 file is reported when it is opened
            return ids, ", ".join(p.name for p in paths)
    return set(), ""


def variant_problem(folder: str | Path, precision: str, flavour: str, kind: str) -> str | None:
    """Why the ``kind`` ("onnx" or "engine") pair ``precision``/``flavour`` in ``folder`` must not be
    used, or None when it matches the FP32 export (or is absent, or there is nothing to compare with)."""
    folder = Path(folder)
    pair = _pair(folder, precision, flavour, kind)
    if pair is None or (kind == "onnx" and precision == "fp32"):
        return None
    try:
        ids = {p.name: _export_id(p, kind) for p in pair}
    except _UNREADABLE as err:
        return str(err) if isinstance(err, ContractError) else f"unreadable ({type(err).__name__}: {err})"
    reference, where = fp32_export_ids(folder, flavour)
    if len(reference) > 1:
        return (f"the FP32 graphs themselves mix exports {', '.join(sorted(reference))} ({where}): an export "
                "was interrupted; re-export before using any variant")
    if reference:
        ref = next(iter(reference))
        stale = {name: i for name, i in ids.items() if i != ref}
        if stale:
            listed = ", ".join(f"{name} is from export {i or '(none)'}" for name, i in stale.items())
            return f"{listed}, but the FP32 graphs are from export {ref} (a build was interrupted, or the model re-exported)"
    if kind == "onnx" and precision == "int8":
        cal = {p.name: calibration_info(p).get("calibration_id", "") for p in pair}
        if len(set(cal.values())) > 1:
            listed = ", ".join(f"{name} has calibration {c or '(none)'}" for name, c in cal.items())
            return f"{listed}: the two graphs come from different calibrations (quantize was interrupted)"
    return None


def lost_problem(folder: str | Path, precision: str, flavour: str, kind: str) -> str | None:
    """Why the ``search_lost`` graph (kind "onnx") or engine ("engine") beside the ``precision``/``flavour``
    pair in ``folder`` must be left unused, or None when it belongs with the pair (or either is absent)."""
    folder = Path(folder)
    pair = _pair(folder, precision, flavour, kind)
    lost = folder / artifact_name(LOST_GRAPH, precision, flavour, kind)
    if pair is None or not lost.is_file():
        return None
    try:
        lost_id, search_id = _export_id(lost, kind), _export_id(pair[1], kind)
    except _UNREADABLE as err:
        return f"{lost.name} is unreadable ({type(err).__name__}: {err})"
    if lost_id != search_id:
        return (f"{lost.name} is from export {lost_id or '(none)'} but {pair[1].name} from export "
                f"{search_id or '(none)'} (an older long-term export, or an interrupted build)")
    if kind == "onnx" and precision == "int8":
        cal_lost, cal_search = (calibration_info(p).get("calibration_id", "") for p in (lost, pair[1]))
        if cal_lost != cal_search:
            return (f"{lost.name} has calibration {cal_lost or '(none)'} but {pair[1].name} has "
                    f"{cal_search or '(none)'} (quantize was interrupted)")
    return None


def folder_problems(folder: str | Path) -> dict[tuple[str, str, str], str]:
    """{(kind, precision, flavour): reason} for every variant pair in ``folder`` that must be refused."""
    found = {}
    for kind in KINDS:
        for precision in PRECISIONS:
            for flavour in XCORR_FLAVOURS:
                reason = variant_problem(folder, precision, flavour, kind)
                if reason:
                    found[(kind, precision, flavour)] = reason
    reason = variant_problem(folder, "int8", CPU_INT8_FLAVOUR, "onnx")   # ONNX Runtime's INT8 placement
    if reason:
        found[("onnx", "int8", CPU_INT8_FLAVOUR)] = reason
    return found


def fix_hint(folder: str | Path, kind: str, precision: str) -> str:
    """The commands that regenerate a refused variant."""
    folder = Path(folder)
    if kind == "engine":
        how = f"`siamtrack engines {folder}` (rebuilds stale engines)"
    elif precision == "int8":
        how = f"`siamtrack calibrate {folder} ... --overwrite` then `siamtrack quantize {folder} --calib ...`"
    else:
        how = f"`siamtrack fp16 {folder}`"
    return (f"Rerun build.sh with the same --out (it regenerates only what is stale), or regenerate it with "
            f"{how}, or delete the stale {precision} files")


def refusal_message(folder: str | Path, kind: str, precision: str, flavour: str, reason: str) -> str:
    """One error text: which files, why, and what to do."""
    what = "engines" if kind == "engine" else "ONNX graphs"
    hint = fix_hint(folder, kind, precision)
    if flavour == CPU_INT8_FLAVOUR:
        hint = (f"Rerun build.sh with the same --out (it regenerates only what is stale), or regenerate them with "
                f"`siamtrack quantize-cpu {folder} --calib ...`, or delete the stale int8.cpu files")
    return f"{folder}: refusing the {precision}.{flavour} {what}: {reason}. {hint}."

"""The sidecar written next to every TensorRT engine, and the check that refuses a stale one.

An engine (``search.fp16.standard.engine``) is only valid for the TensorRT product and version that
built it, the GPU it was tuned on, the ONNX graph it was parsed from and, for the plugin flavour, the
exact plugin library. ``<engine>.json`` records all of that; ``check_fresh`` compares it with what the
machine has now and lists every reason the engine must be rebuilt.

Pure: no TensorRT, no CUDA, no onnx import. The TensorRT backend and the engine builder both use it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import ContractError

SIDECAR_SCHEMA = 1
PRODUCTS = ("tensorrt", "tensorrt_rtx")
SIDECAR_SUFFIX = ".json"

# TensorRT-RTX AOT engines run on any of these when no target was set (its CPU-only AOT default:
# docs.nvidia.com/deeplearning/tensorrt-rtx/latest/inference-library/cpu-engines.html).
RTX_DEFAULT_TARGETS = ("8.0", "8.6", "8.9", "12.0")


@dataclass(frozen=True)
class EngineBuildOptions:
    """The options an engine was built with; a change in any of them makes the engine stale.

    max_batch / opt_batch: the batch (target count) profile is min 1, opt ``opt_batch``, max ``max_batch``.
    workspace_mib: builder workspace memory-pool limit in MiB. optimization_level: 0..5 (TensorRT's
    builder optimisation level; 3 is TensorRT's default). compute_targets: TensorRT-RTX AOT targets
    such as ("8.6",), empty for TensorRT or for RTX's portable default.
    """

    max_batch: int = 4
    opt_batch: int = 1
    workspace_mib: int = 1024
    optimization_level: int = 3
    compute_targets: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "EngineBuildOptions":
        raw = dict(raw)
        raw["compute_targets"] = tuple(raw.get("compute_targets", ()))
        return cls(**{k: v for k, v in raw.items() if k in {f.name for f in dataclasses.fields(cls)}})


@dataclass(frozen=True)
class EngineSidecar:
    """Provenance of one engine file. Paths are stored relative to the engine's folder where possible.

    compute_capability: "8.7" style of the GPU the engine was built on ("" for a TensorRT-RTX AOT build
    without a GPU). runs_on: compute capabilities the engine may run on (one entry for TensorRT; RTX's
    AOT targets). profile: input name -> [min, opt, max] shapes of the single optimisation profile.
    io_dtypes: tensor name -> dtype name as the built network declares it ("float32", "float16", ...).
    model_spec / tracker_config carry the graph's metadata so a folder of engines runs without onnx.
    """

    engine_file: str
    graph: str
    precision: str
    flavour: str
    product: str
    product_version: str
    gpu_name: str
    compute_capability: str
    runs_on: tuple[str, ...]
    onnx_file: str
    onnx_sha256: str
    export_id: str
    build_options: EngineBuildOptions
    profile: dict
    plugin_library: str | None = None
    plugin_sha256: str | None = None
    io_dtypes: dict = field(default_factory=dict)
    model_spec: str = ""          # ModelSpec JSON copied from the ONNX metadata
    tracker_config: str = ""      # TrackerConfig JSON copied from the ONNX metadata
    engine_sha256: str = ""
    engine_bytes: int = 0
    built_at_utc: str = ""
    build_seconds: float = 0.0
    schema: int = SIDECAR_SCHEMA

    @property
    def max_batch(self) -> int:
        """Largest batch every input's profile accepts."""
        return min(int(shapes[2][0]) for shapes in self.profile.values())

    def to_json(self) -> str:
        raw = dataclasses.asdict(self)
        raw["build_options"] = self.build_options.to_dict()
        return json.dumps(raw, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "sidecar") -> "EngineSidecar":
        try:
            raw = json.loads(text)
            if raw.get("schema") != SIDECAR_SCHEMA:
                raise ContractError(f"{where}: sidecar schema {raw.get('schema')!r}, this version reads "
                                    f"{SIDECAR_SCHEMA}. Rebuild the engine with `python -m engines.build`.")
            raw["build_options"] = EngineBuildOptions.from_dict(raw["build_options"])
            raw["runs_on"] = tuple(raw["runs_on"])
            raw["profile"] = {k: [tuple(s) for s in v] for k, v in raw["profile"].items()}
            return cls(**raw)
        except ContractError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ContractError(f"{where}: not a readable engine sidecar ({exc}). Delete it and the engine "
                                "beside it, then rebuild with `python -m engines.build`.") from None


@dataclass(frozen=True)
class CurrentEnv:
    """What this machine offers now, to compare with a sidecar. ``None`` means "not checked".

    gpu_name / compute_capability: None when there is no GPU to ask (a CPU-only build machine).
    onnx_sha256: of the ONNX file the sidecar names, or None when it is not beside the engine.
    plugin_sha256: of the plugin library that would be loaded; "" when that library is missing.
    build_options: the options a build would use now (None at load time: any options are acceptable).
    """

    product: str
    product_version: str
    gpu_name: str | None = None
    compute_capability: str | None = None
    onnx_sha256: str | None = None
    plugin_sha256: str | None = None
    build_options: EngineBuildOptions | None = None


def sidecar_path(engine_path: str | Path) -> Path:
    """``search.fp16.standard.engine`` -> ``search.fp16.standard.engine.json``."""
    return Path(str(engine_path) + SIDECAR_SUFFIX)


def write_sidecar(engine_path: str | Path, sidecar: EngineSidecar) -> Path:
    path = sidecar_path(engine_path)
    write_atomic(path, sidecar.to_json().encode())
    return path


def read_sidecar(engine_path: str | Path) -> EngineSidecar:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise ContractError(f"{engine_path}: no sidecar {path.name} beside the engine, so its TensorRT "
                            "version, GPU and source ONNX are unknown. Rebuild it with `python -m "
                            "engines.build <folder>` (or build.sh), which writes both.")
    return EngineSidecar.from_json(path.read_text(), where=str(path))


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temp file in the same folder, then rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the artifact from other users
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_fresh(sidecar: EngineSidecar, env: CurrentEnv) -> list[str]:
    """Every reason ``sidecar``'s engine cannot be used with ``env``; empty when it is fresh."""
    reasons = []
    built = f"{sidecar.product} {sidecar.product_version}"
    if (sidecar.product, sidecar.product_version) != (env.product, env.product_version):
        reasons.append(f"built with {built}, this machine has {env.product} {env.product_version}")
    reasons += _gpu_reasons(sidecar, env)
    if env.onnx_sha256 is not None and env.onnx_sha256 != sidecar.onnx_sha256:
        reasons.append(f"{sidecar.onnx_file} changed since the engine was built (sha256 "
                       f"{env.onnx_sha256[:12]} now, {sidecar.onnx_sha256[:12]} then)")
    if sidecar.plugin_sha256 and env.plugin_sha256 is not None:
        if env.plugin_sha256 == "":
            reasons.append(f"plugin library {sidecar.plugin_library} is missing")
        elif env.plugin_sha256 != sidecar.plugin_sha256:
            reasons.append(f"plugin library {sidecar.plugin_library} changed since the engine was built")
    if env.build_options is not None and env.build_options != sidecar.build_options:
        diff = _option_diff(sidecar.build_options, env.build_options)
        reasons.append(f"build options changed: {diff}")
    return reasons


def _gpu_reasons(sidecar: EngineSidecar, env: CurrentEnv) -> list[str]:
    if env.compute_capability is None:
        return []
    if env.compute_capability not in sidecar.runs_on:
        return [f"built for compute capability {', '.join(sidecar.runs_on)}, this GPU "
                f"({env.gpu_name}) is {env.compute_capability}"]
    # A TensorRT engine is tuned for one GPU model; an RTX AOT engine is portable within its targets.
    if sidecar.product == "tensorrt" and env.gpu_name is not None and env.gpu_name != sidecar.gpu_name:
        return [f"built on {sidecar.gpu_name}, this GPU is {env.gpu_name}"]
    return []


def _option_diff(old: EngineBuildOptions, new: EngineBuildOptions) -> str:
    a, b = old.to_dict(), new.to_dict()
    return ", ".join(f"{k} {a[k]} -> {b[k]}" for k in a if a[k] != b[k])


def stale_message(engine_path: str | Path, reasons: list[str]) -> str:
    """One error text for a stale engine: what is wrong and the command that rebuilds it."""
    engine_path = Path(engine_path)
    lines = [f"{engine_path}: this engine cannot be used here:"] + [f"  - {r}" for r in reasons]
    lines.append(f"Rebuild the stale engines with `python -m engines.build {engine_path.parent}` "
                 "(or rerun build.sh); only stale engines are rebuilt.")
    return "\n".join(lines)

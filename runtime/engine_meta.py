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
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import ContractError

SIDECAR_SCHEMA = 1
PRODUCTS = ("tensorrt", "tensorrt_rtx")
SIDECAR_SUFFIX = ".json"

# TensorRT-RTX AOT engines run on any of these when no target was set (its CPU-only AOT default:
# docs.nvidia.com/deeplearning/tensorrt-rtx/latest/inference-library/cpu-engines.html).
RTX_DEFAULT_TARGETS = ("8.0", "8.6", "8.9", "12.0")

# Sanity limits of a sidecar: a real one is a few kB; no tracker runs thousands of targets per call.
MAX_SIDECAR_BYTES = 1 << 20
MAX_BATCH_LIMIT = 1024
MAX_DIM = 1 << 16
# The project's own plugin build output (engines.plugin_build writes here); with a path the user passes
# and the engine's own folder, the only places a plugin library is ever loaded from.
PROJECT_PLUGIN_DIR = Path(__file__).resolve().parents[1] / "artifacts" / "plugin"


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
    def from_json(cls, text: str | bytes, where: str = "sidecar") -> "EngineSidecar":
        """Parse and validate a sidecar (types, ranges, file names): any defect is a ContractError that
        names the field and says to rebuild, never another exception type."""
        def bad(problem: str) -> ContractError:
            return ContractError(f"{where}: not a readable engine sidecar ({problem}). Delete it and the engine "
                                 "beside it, then rebuild with `python -m engines.build` (or build.sh).")

        if isinstance(text, bytes):
            if len(text) > MAX_SIDECAR_BYTES:
                raise bad(f"{len(text)} bytes, more than the {MAX_SIDECAR_BYTES} a sidecar can hold")
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise bad(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
        try:
            raw = json.loads(text)
        except RecursionError:
            raise bad("JSON nested too deeply") from None
        except ValueError as exc:
            raise bad(f"not JSON: {exc}") from None
        if not isinstance(raw, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(raw), "a number")
            raise bad(f"JSON {kind}, expected an object")
        if raw.get("schema") != SIDECAR_SCHEMA:
            raise ContractError(f"{where}: sidecar schema {raw.get('schema')!r:.40}, this version reads "
                                f"{SIDECAR_SCHEMA}. Rebuild the engine with `python -m engines.build`.")
        problems = sidecar_problems(raw)
        if problems:
            raise bad("; ".join(problems[:5]))
        raw = dict(raw)
        raw["build_options"] = EngineBuildOptions.from_dict(raw["build_options"])
        raw["runs_on"] = tuple(raw["runs_on"])
        raw["profile"] = {k: [tuple(s) for s in v] for k, v in raw["profile"].items()}
        return cls(**raw)


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
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        raise ContractError(f"{path}: cannot read the engine sidecar ({exc.strerror}); rebuild the engine with "
                            "`python -m engines.build`") from None
    return EngineSidecar.from_json(data, where=str(path))


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temp file in the same folder, fsync, rename it over ``path`` (runtime.atomic)."""
    from runtime.atomic import write_bytes

    write_bytes(path, data)


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


# --- validation -----------------------------------------------------------------------------------
def is_plain_file_name(value) -> bool:
    """A file name with no path component: no separator, not "." or "..", no NUL."""
    return (isinstance(value, str) and value not in ("", ".", "..") and "/" not in value and "\\" not in value
            and "\0" not in value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sha256(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


_STRINGS = ("graph", "precision", "flavour", "product", "product_version", "gpu_name", "compute_capability",
            "export_id", "model_spec", "tracker_config", "engine_sha256", "built_at_utc")


def sidecar_problems(raw: dict) -> list[str]:
    """Every schema violation of a parsed sidecar object (empty when valid): types, ranges, and that the
    files it names are plain names in the engine's folder, never paths."""
    problems = []
    known = {f.name for f in dataclasses.fields(EngineSidecar)}
    unknown = sorted(str(k)[:40] for k in raw if k not in known)
    if unknown:
        problems.append(f"unknown fields {unknown[:5]}")
    required = {f.name for f in dataclasses.fields(EngineSidecar)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(raw))
    if missing:
        problems.append(f"missing fields {missing}")
    for key in _STRINGS:
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"{key} must be a string, not {type(raw[key]).__name__}")
    if raw.get("product") not in (None, *PRODUCTS) and isinstance(raw.get("product"), str):
        problems.append(f"product {raw['product'][:40]!r} is not one of {', '.join(PRODUCTS)}")
    for key in ("engine_file", "onnx_file"):
        if key in raw and not is_plain_file_name(raw[key]):
            problems.append(f"{key} must be a file name without a path, not {str(raw[key])[:80]!r}")
    plugin, plugin_sha = raw.get("plugin_library"), raw.get("plugin_sha256")
    if plugin is not None and not is_plain_file_name(plugin):
        problems.append(f"plugin_library may only name a file (where it is loaded from is never read from a "
                        f"sidecar), not {str(plugin)[:80]!r}")
    if (plugin is None) != (plugin_sha is None):
        problems.append("plugin_library and plugin_sha256 must be given together")
    if plugin_sha is not None and not _is_sha256(plugin_sha):
        problems.append("plugin_sha256 must be 64 lowercase hex digits")
    if "onnx_sha256" in raw and not _is_sha256(raw["onnx_sha256"]):
        problems.append("onnx_sha256 must be 64 lowercase hex digits")
    runs_on = raw.get("runs_on", [])
    if not isinstance(runs_on, list) or not all(isinstance(c, str) and _is_capability(c) for c in runs_on):
        problems.append(f"runs_on must be a list of compute capabilities like \"8.7\", not {str(runs_on)[:80]!r}")
    problems += _profile_problems(raw.get("profile", {}))
    problems += _model_json_problems(raw)
    problems += _options_problems(raw.get("build_options", {}))
    io = raw.get("io_dtypes", {})
    if not isinstance(io, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in io.items()):
        problems.append("io_dtypes must map tensor names to dtype names")
    if not _is_int(raw.get("engine_bytes", 0)) or raw.get("engine_bytes", 0) < 0:
        problems.append("engine_bytes must be an integer >= 0")
    seconds = raw.get("build_seconds", 0.0)
    if not (_is_int(seconds) or isinstance(seconds, float)) or not 0 <= seconds < 1e9:
        problems.append("build_seconds must be a number >= 0")
    return problems


def _model_json_problems(raw: dict) -> list[str]:
    """model_spec / tracker_config are JSON inside the sidecar; the TensorRT backend sizes its buffers
    from model_spec, so its numbers must be sane integers."""
    from runtime.contract import ModelSpec, TrackerConfig

    problems = []
    for key, kind in (("model_spec", ModelSpec), ("tracker_config", TrackerConfig)):
        text = raw.get(key, "")
        if not isinstance(text, str) or not text:
            continue
        try:
            value = kind.from_json(text)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError, ContractError) as exc:
            problems.append(f"{key} is not a valid {kind.__name__} ({type(exc).__name__})")
            continue
        if kind is ModelSpec:
            sizes = (value.exemplar_size, value.instance_size, value.score_size, value.anchor_num,
                     value.kernel_channels, value.kernel_size)
            if not all(_is_int(v) and 1 <= v <= MAX_DIM for v in sizes) or not all(
                    isinstance(level, str) for level in value.levels):
                problems.append(f"model_spec sizes must be integers within 1..{MAX_DIM}")
    return problems


def _is_capability(text: str) -> bool:
    major, _, minor = text.partition(".")
    return major.isdigit() and minor.isdigit() and len(text) <= 6


def _profile_problems(profile) -> list[str]:
    if not isinstance(profile, dict) or not profile:
        return ["profile must map each input name to [min, opt, max] shapes"]
    for name, shapes in profile.items():
        ok = isinstance(shapes, list) and len(shapes) == 3 and all(
            isinstance(s, list) and 1 <= len(s) <= 8 and all(_is_int(d) for d in s) for s in shapes)
        if not ok:
            return [f"profile[{str(name)[:40]!r}] must be [min, opt, max] shapes of positive integers"]
        batches = [s[0] for s in shapes]
        if not all(1 <= b <= MAX_BATCH_LIMIT for b in batches):
            return [f"profile[{name[:40]!r}] max batch {shapes[2][0]} is outside 1..{MAX_BATCH_LIMIT} "
                    f"(batches {batches})"]
        if not all(1 <= d <= MAX_DIM for s in shapes for d in s[1:]):
            return [f"profile[{name[:40]!r}] has a dimension outside 1..{MAX_DIM}"]
    return []


def _options_problems(options) -> list[str]:
    if not isinstance(options, dict):
        return ["build_options must be an object"]
    limits = {"max_batch": (1, MAX_BATCH_LIMIT), "opt_batch": (1, MAX_BATCH_LIMIT), "workspace_mib": (1, 1 << 24),
              "optimization_level": (0, 5)}
    problems = [f"build_options.{k} must be an integer within {lo}..{hi}" for k, (lo, hi) in limits.items()
                if k in options and not (_is_int(options[k]) and lo <= options[k] <= hi)]
    targets = options.get("compute_targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) and _is_capability(t) for t in targets):
        problems.append("build_options.compute_targets must be a list of compute capabilities")
    return problems


# --- where a plugin library comes from -----------------------------------------------------------
def plugin_library_for(engine_path: str | Path, sidecar: EngineSidecar, explicit: str | Path | None = None,
                       project_dir: Path = PROJECT_PLUGIN_DIR) -> Path | None:
    """The plugin library to load for ``sidecar``'s engine, as an absolute path; None when it needs none.

    A sidecar only NAMES its library (file name + sha256); it never decides where it is loaded from.
    In order: ``explicit`` (a path the user passed), else the file of that name in the engine's own
    folder (not a symlink leading out of it), else in the project's plugin build output. Among those,
    the first whose sha256 matches the sidecar wins; if none matches, the first found (so the staleness
    check reports "changed"). Raises ContractError when none exists.
    """
    if not sidecar.plugin_library:
        return None
    if explicit is not None:
        return Path(explicit).absolute()
    name = sidecar.plugin_library
    if not is_plain_file_name(name):  # from_json refuses these; a hand-made EngineSidecar must too
        raise ContractError(f"{engine_path}: the sidecar names plugin library {name!r} with a path; a sidecar "
                            "may only name a file. Rebuild the engine with `python -m engines.build`.")
    folder = Path(engine_path).absolute().parent
    found, refused = [], []
    for candidate in (folder / name, Path(project_dir) / name):
        if not candidate.is_file():
            continue
        if candidate.parent == folder and candidate.resolve().parent != folder.resolve():
            refused.append(f"{candidate} is a link to {candidate.resolve()}, outside the engine's folder")
            continue
        found.append(candidate)
    for candidate in found:
        if sidecar.plugin_sha256 and _sha256(candidate) == sidecar.plugin_sha256:
            return candidate
    if found:
        return found[0]
    detail = ("; refused: " + "; ".join(refused)) if refused else ""
    raise ContractError(f"{engine_path}: the engine needs plugin library {name}, which is missing (looked in "
                        f"{folder} and {project_dir}{detail}). Build the plugin (`python -m engines.plugin_build`), "
                        "pass its path explicitly (--plugin-lib), or use the standard-op engines (--flavour standard).")


def _sha256(path: Path) -> str:
    from runtime.contract import sha256_file

    return sha256_file(path)

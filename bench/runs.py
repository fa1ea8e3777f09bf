"""What one benchmark "run" is: a backend, a model, a precision; parsed from ``--run`` and opened lazily.

Syntax: ``BACKEND:MODEL[,key=value ...]`` with keys ``precision`` (fp32|fp16|int8), ``flavour``
(plugin|standard, or cpu for int8 on ONNX Runtime), ``checkpoint`` (pysot model.pth, PyTorch only), ``seed`` (PyTorch random weights when
no checkpoint; default 0), ``tracker`` (auto|short-term|long-term, ``runtime.tracker_choice``; default
auto) and ``label`` (the name used in tables, plots and result folders).

Examples::

    torch:r50                                  # pysot r50 config, seeded random weights
    torch:configs/r50.yaml,checkpoint=model.pth
    onnxruntime:artifacts/r50,precision=int8,flavour=standard
    tensorrt:artifacts/r50,precision=fp16,label=trt-fp16

A ``Run`` is a frozen dataclass of strings and numbers, so it pickles into worker processes, which open
the backend themselves (``Run.open``): no session or engine ever crosses a process boundary.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.contract import ARTIFACT_FLAVOURS, PRECISIONS
from runtime.errors import InputError
from runtime.tracker_choice import TRACKER_CHOICES

RUN_BACKENDS = ("torch", "onnxruntime", "tensorrt")
_KEYS = ("precision", "flavour", "checkpoint", "seed", "tracker", "label")


@dataclass(frozen=True)
class Run:
    backend: str
    model: str
    precision: str = "fp32"
    flavour: str | None = None
    checkpoint: str | None = None
    seed: int | None = None
    label: str | None = None
    tracker: str = "auto"

    @property
    def name(self) -> str:
        """Table/plot/folder name: the label, else ``backend-model-precision`` in safe characters."""
        if self.label:
            return self.label
        model = Path(self.model).name or self.model
        text = f"{self.backend}-{model}-{self.precision}"
        if self.backend == "torch" and not self.checkpoint:
            text += f"-random{self.seed or 0}"
        if self.tracker != "auto":
            text += f"-{self.tracker}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text)

    @property
    def random_weights(self) -> bool:
        return self.backend == "torch" and not self.checkpoint

    def open(self, threads: int | None = None):
        """Open the runtime backend (imports only that backend's library); ``threads``: intra-op CPU
        threads of ONNX Runtime / torch (None: the library's default)."""
        from runtime.backends import open_backend

        seed = (self.seed or 0) if self.random_weights else None
        return open_backend(self.model, checkpoint=self.checkpoint, backend=self.backend,
                            precision=self.precision, flavour=self.flavour, seed=seed, threads=threads)

    def fingerprint(self) -> str:
        """sha256 over this run's options and the bytes of every file it would load: the variant's
        graphs/engines (and their sidecars) in a model folder, or the config and checkpoint. Results
        made by other files (re-exported, re-quantized, retrained) do not match, so they are re-run."""
        import hashlib
        import json

        options = asdict(self)
        if options["tracker"] == "auto":     # as before the key existed: earlier results stay valid
            del options["tracker"]
        h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
        model = Path(self.model)
        if model.is_dir():
            files = sorted(p for p in model.iterdir() if p.is_file() and f".{self.precision}." in p.name)
        else:
            files = [model] if model.is_file() else []
        if self.checkpoint:
            files.append(Path(self.checkpoint))
        for path in files:
            h.update(path.name.encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        return h.hexdigest()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["name"] = self.name
        d["random_weights"] = self.random_weights
        return d


def parse_run(text: str) -> Run:
    """``BACKEND:MODEL[,key=value...]`` -> Run; InputError naming the part that is wrong."""
    head, *opts = [p.strip() for p in text.split(",")]
    backend, sep, model = head.partition(":")
    if not sep or not model:
        raise InputError(f"--run {text!r}: expected BACKEND:MODEL[,key=value...], e.g. torch:r50 or "
                         "onnxruntime:artifacts/r50,precision=fp16")
    if backend not in RUN_BACKENDS:
        raise InputError(f"--run {text!r}: backend {backend!r} is not one of {', '.join(RUN_BACKENDS)}")
    values: dict = {}
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq or key not in _KEYS:
            raise InputError(f"--run {text!r}: option {opt!r} is not key=value with key in {', '.join(_KEYS)}")
        values[key] = value
    if values.get("precision", "fp32") not in PRECISIONS:
        raise InputError(f"--run {text!r}: precision {values['precision']!r} is not one of {', '.join(PRECISIONS)}")
    if values.get("flavour") not in (None, *ARTIFACT_FLAVOURS):   # cpu: ONNX Runtime's INT8 placement
        raise InputError(f"--run {text!r}: flavour {values['flavour']!r} is not one of {', '.join(ARTIFACT_FLAVOURS)}")
    if values.get("tracker", "auto") not in TRACKER_CHOICES:
        raise InputError(f"--run {text!r}: tracker {values['tracker']!r} is not one of {', '.join(TRACKER_CHOICES)}")
    if "seed" in values:
        try:
            values["seed"] = int(values["seed"])
        except ValueError:
            raise InputError(f"--run {text!r}: seed must be an integer") from None
    return Run(backend=backend, model=model, **values)


def parse_runs(texts: list[str]) -> list[Run]:
    runs = [parse_run(t) for t in texts]
    names = [r.name for r in runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"--run: two runs share the name {dup[0]!r}; add label=... to tell them apart")
    return runs

"""Load, save and randomise SiamRPN++ weights in pysot's state_dict layout.

``load_checkpoint`` accepts what pysot writes: a flat state_dict (released ``model.pth``), a
``{'state_dict': ...}`` training snapshot, and keys prefixed with ``module.`` (DataParallel). It loads
with ``weights_only=True`` and strict key matching; any mismatch raises CheckpointError with a short
list of the differences and a guess of which built-in config the file fits.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from runtime.contract import sha256_file
from runtime.errors import CheckpointError

_SHOW = 8  # differences listed per kind in an error message


@dataclass(frozen=True)
class LoadReport:
    """What ``load_checkpoint`` found. layout: "flat" or "state_dict" (a training snapshot wrapper);
    prefix_stripped: the keys carried DataParallel's "module." prefix; tensors: entries loaded
    (BN num_batches_tracked included); sha256: of the file, for provenance metadata."""

    path: str
    sha256: str
    layout: str
    prefix_stripped: bool
    tensors: int


def load_checkpoint(model: nn.Module, path: str | Path, cfg=None) -> LoadReport:
    """Load a pysot checkpoint into ``model`` strictly. cfg (export.config.ModelConfig, optional) only
    names the configured model in error messages. ``model`` may be built on the 'meta' device (then
    the loaded tensors are assigned, skipping the constructor's random init)."""
    path = Path(path)
    state, layout = _read_state_dict(path)
    state, stripped = _strip_prefix(state, "module.")
    _check_keys(model, state, path, cfg)
    expected = model.state_dict()
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}  # e.g. a half-precision save
    # a model built on the 'meta' device (no init cost) takes the loaded tensors as they are
    on_meta = any(t.is_meta for t in expected.values())
    model.load_state_dict(state, strict=True, assign=on_meta)
    return LoadReport(str(path), sha256_file(path), layout, stripped, len(state))


def save_checkpoint(model: nn.Module, path: str | Path) -> Path:
    """Write the flat pysot layout (what pysot's demo loads) atomically: temp file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    from runtime.atomic import atomic_path

    with atomic_path(path) as tmp:   # temp file, fsync, rename, fsync the folder
        torch.save(state, tmp)
    return path


# ----------------------------------------------------------------------------------------------
# reading


def _read_state_dict(path: Path) -> tuple[dict, str]:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file; pass the pysot model.pth of your model "
                              "(e.g. experiments/siamrpn_r50_l234_dwxcorr/model.pth)")
    if not path.is_file():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file; pass the model.pth inside it")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types (UnpicklingError, RuntimeError, EOFError ...)
        raise CheckpointError(_unreadable_message(path, e)) from None
    layout = "flat"
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj, layout = obj["state_dict"], "state_dict"
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path}: loads, but holds {_describe(obj)} instead of a state_dict "
                              "(a mapping of parameter names to tensors); pass pysot's model.pth or a "
                              "training snapshot with a 'state_dict' entry")
    return obj, layout


def _unreadable_message(path: Path, e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "weights_only" in str(e) or "Weights only load failed" in str(e):
        return (f"{path}: holds Python objects besides tensors, so it is not loaded (weights_only=True "
                "guards against code in pickles). If you trust the file, re-save only its state_dict: "
                "torch.save(torch.load(p, weights_only=False)['state_dict'], 'model.pth')")
    size = path.stat().st_size
    return (f"{path}: not a readable PyTorch checkpoint ({size} bytes; {type(e).__name__}: {text[:160]}). "
            "The file may be truncated or of another kind; download pysot's model.pth again")


def _describe(obj) -> str:
    if isinstance(obj, dict):
        keys = list(obj)[:5]
        return f"a dict with keys {keys}{' ...' if len(obj) > 5 else ''}"
    return f"a {type(obj).__name__}"


def _strip_prefix(state: dict, prefix: str) -> tuple[dict, bool]:
    if not any(k.startswith(prefix) for k in state):
        return state, False
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}, True


# ----------------------------------------------------------------------------------------------
# key comparison and the "which config is this" guess


def _shapes(state: dict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def _check_keys(model: nn.Module, state: dict, path: Path, cfg) -> None:
    expected = _shapes(model.state_dict())
    found = _shapes(state)
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [k for k in expected if k in found and expected[k] != found[k]]
    if not (missing or unexpected or wrong):
        return
    subject = f"the {cfg.name} model ({cfg.source})" if cfg is not None else "the configured model"
    lines = [f"{path}: does not fit {subject}: {len(missing)} missing, {len(unexpected)} unexpected, "
             f"{len(wrong)} with other shapes (file has {len(found)} tensors, model expects {len(expected)}).",
             guess_config(found)]
    lines += _listing("missing", missing, lambda k: f"{k} {expected[k]}")
    lines += _listing("unexpected", unexpected, lambda k: f"{k} {found[k]}")
    lines += _listing("shape differs", wrong, lambda k: f"{k}: file {found[k]}, model {expected[k]}")
    raise CheckpointError("\n".join(lines))


def _listing(title: str, keys: list[str], fmt) -> list[str]:
    if not keys:
        return []
    more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return [f"  {title}{more}:"] + [f"    {fmt(k)}" for k in keys[:_SHOW]]


def builtin_key_shapes() -> dict[str, dict[str, tuple[int, ...]]]:
    """{built-in config name: {state_dict key: shape}}, from models built on the 'meta' device."""
    from export.config import builtin_names, default_config
    from export.model import build_model

    if not _BUILTIN_SHAPES:
        for name in builtin_names():
            with torch.device("meta"):
                _BUILTIN_SHAPES[name] = _shapes(build_model(default_config(name)).state_dict())
    return _BUILTIN_SHAPES


_BUILTIN_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {}


def guess_config(found: dict[str, tuple[int, ...]]) -> str:
    """One sentence naming the built-in config whose keys and shapes the checkpoint matches."""
    if not any(k.startswith("rpn_head.") for k in found):
        return ("It has no rpn_head.* tensors, so it is not a tracker checkpoint (an ImageNet backbone "
                "such as pretrained_models/resnet50.model?); pass the trained SiamRPN++ model.pth.")
    scores = {}
    for name, shapes in builtin_key_shapes().items():
        same = sum(1 for k, s in found.items() if shapes.get(k) == s)
        scores[name] = same / max(len(found), len(shapes))
    best = max(scores, key=scores.get)
    if scores[best] == 1.0:
        return f"This looks like a {best} checkpoint: use the built-in config {best!r} (or its pysot config.yaml)."
    return (f"It matches no built-in config exactly (closest: {best}, {scores[best]:.0%} of keys and "
            f"shapes); pass the config.yaml the model was trained with.")


# ----------------------------------------------------------------------------------------------
# random weights


def random_state_dict(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random values for every entry of ``model.state_dict()`` (the model may live on the
    'meta' device: only names, shapes and module types are read).

    Deterministic across machines and versions: numpy's frozen ``RandomState`` stream, drawn in
    state_dict order as 24-bit uniform integers. The scales keep activations O(1) through the whole
    network for 0..255 input: uniform variance-preserving convs (1/sqrt(fan_in)), the first conv
    scaled by 1/128 (raw pixel input), residual branches damped by a small closing-BN gamma. BN running
    mean/var are random (not 0/1) so BN folding is exercised. num_batches_tracked is 0.
    """
    rng = np.random.RandomState(seed)
    modules = dict(model.named_modules())
    out = {}
    for key, t in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            out[key] = torch.zeros((), dtype=torch.long)
            continue
        module = modules.get(owner)
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
        low, high = _random_range(tuple(t.shape), owner, leaf, is_bn)
        out[key] = torch.from_numpy(_uniform(rng, tuple(t.shape), low, high))
    return out


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Overwrite every parameter and BN running statistic of ``model`` with ``random_state_dict``
    values, in place; a model on the 'meta' device gets real CPU tensors. Returns it in eval mode."""
    on_meta = any(t.is_meta for t in model.state_dict().values())
    model.load_state_dict(random_state_dict(model, seed), strict=True, assign=on_meta)
    return model.eval()


def build_random_model(cfg, seed: int = 0) -> nn.Module:
    """build_model(cfg) with seeded random weights, without paying for the constructor's init."""
    from export.model import build_model

    with torch.device("meta"):
        model = build_model(cfg)
    return randomize_(model, seed)


def _uniform(rng: np.random.RandomState, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    u = rng.randint(0, 1 << 24, size=shape, dtype=np.uint32).astype(np.float32) * np.float32(2.0 ** -24)
    return (np.float32(low) + np.float32(high - low) * u).astype(np.float32, copy=False)


def _random_range(shape: tuple[int, ...], owner: str, leaf: str, is_bn: bool) -> tuple[float, float]:
    if is_bn:
        # the BN closing a residual branch (ResNet bn3, MobileNet conv.7) gets a small gamma so the
        # residual sums stay O(1) over 16 blocks
        tail = owner.endswith(".bn3") or owner.endswith(".conv.7")
        return {"weight": (0.1, 0.3) if tail else (0.5, 1.5), "bias": (-0.2, 0.2),
                "running_mean": (-0.2, 0.2), "running_var": (0.5, 2.0)}[leaf]
    if len(shape) == 4:  # conv weight (out, in/groups, kh, kw)
        bound = (3.0 / (shape[1] * shape[2] * shape[3])) ** 0.5 / (128.0 if shape[1] == 3 else 1.0)
        return -bound, bound
    if leaf in ("cls_weight", "loc_weight"):  # MultiRPN level weights, softmaxed
        return -1.0, 1.0
    return -0.1, 0.1  # conv biases

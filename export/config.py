"""pysot experiment ``config.yaml`` -> frozen dataclasses describing one SiamRPN++ model and tracker.

``load_config(path)`` reads pysot's files as they are (``META_ARC``, ``BACKBONE.TYPE/KWARGS``,
``ADJUST.*``, ``RPN.TYPE/KWARGS``, ``ANCHOR.*``, ``TRACK.*``); training sections (``TRAIN``,
``DATASET``, ``BACKBONE.PRETRAINED`` ...) are ignored, keys pysot itself would reject are rejected
(except the three its own long-term config sets, see ``_LEGACY_KEYS``), and model types this project
cannot build raise ConfigError. ``TRACK.TYPE: SiamRPNLTTracker`` gives a long-term TrackerConfig
(CONFIDENCE_LOW/HIGH, LOST_INSTANCE_SIZE) whose ModelSpec also names the large search crop.
``default_config(name)`` reads the built-in copies in ``export/configs/<name>.yaml`` (r50, r50_otb,
mobilev2, alex).

Missing ``TRACK.*``/``ANCHOR.*`` keys take pysot's own defaults (``pysot/core/config.py``:
PENALTY_K 0.04, WINDOW_INFLUENCE 0.44, LR 0.4, LOST_INSTANCE_SIZE 831 ...), exactly as pysot would.
Search sizes must give an integer score map ((X - EXEMPLAR_SIZE) a multiple of STRIDE); pysot's floor
division would otherwise misplace every anchor without a word.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.contract import ModelSpec, TrackerConfig
from runtime.errors import InputError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# pysot's published models; every export/configs/<name>.yaml is a valid built-in name as well
BUILTIN_NAMES = ("r50", "r50_otb", "mobilev2", "alex", "lite0")

# pysot's backbones, plus this project's own EfficientNet-Lite0 (export/model/efficientnet_lite.py)
BACKBONE_TYPES = ("resnet50", "mobilenetv2", "alexnetlegacy", "efficientnet_lite0")
NECK_TYPES = ("AdjustAllLayer", "AdjustLayer")
RPN_TYPES = ("MultiRPN", "DepthwiseRPN")
# SiamRPNLTTracker: pysot's long-term tracker (TrackerConfig.long_term), same network
TRACKER_TYPES = ("SiamRPNTracker", "SiamRPNLTTracker")
LONG_TERM_TYPE = "SiamRPNLTTracker"

# pysot's schema (pysot/core/config.py). Sections whose contents we never read are listed as None.
_SCHEMA: dict[str, tuple[str, ...] | None] = {
    "TRAIN": None,
    "DATASET": None,
    "BACKBONE": ("TYPE", "KWARGS", "PRETRAINED", "TRAIN_LAYERS", "LAYERS_LR", "TRAIN_EPOCH", "CHANNELS"),
    "ADJUST": ("ADJUST", "KWARGS", "TYPE", "ADJUST_CHANNEL"),
    "RPN": ("TYPE", "KWARGS", "WEIGHTED"),
    "MASK": ("MASK", "TYPE", "KWARGS"),
    "REFINE": ("REFINE", "TYPE"),
    "ANCHOR": ("STRIDE", "RATIOS", "SCALES", "ANCHOR_NUM"),
    "TRACK": ("TYPE", "PENALTY_K", "WINDOW_INFLUENCE", "LR", "EXEMPLAR_SIZE", "INSTANCE_SIZE",
              "BASE_SIZE", "CONTEXT_AMOUNT", "LOST_INSTANCE_SIZE", "CONFIDENCE_LOW", "CONFIDENCE_HIGH",
              "MASK_THERSHOLD", "MASK_OUTPUT_SIZE"),
}
_TOP_LEVEL_SCALARS = ("META_ARC", "CUDA")
# Keys that pysot's own schema lacks but its experiments/siamrpn_r50_l234_dwxcorr_lt/config.yaml sets
# (written for an older pysot, so pysot's yacs raises KeyError on them). They repeat a KWARGS value;
# we accept them so that file loads unchanged, and check that they agree with the KWARGS they repeat.
_LEGACY_KEYS = {("BACKBONE", "CHANNELS"): ("ADJUST", "in_channels"),
                ("ADJUST", "ADJUST_CHANNEL"): ("ADJUST", "out_channels"),
                ("RPN", "WEIGHTED"): ("RPN", "weighted")}

# pysot's defaults for the keys we read (pysot/core/config.py)
_PYSOT_TRACK_DEFAULTS = {"TYPE": "SiamRPNTracker", "PENALTY_K": 0.04, "WINDOW_INFLUENCE": 0.44,
                         "LR": 0.4, "EXEMPLAR_SIZE": 127, "INSTANCE_SIZE": 255, "BASE_SIZE": 8,
                         "CONTEXT_AMOUNT": 0.5, "LOST_INSTANCE_SIZE": 831, "CONFIDENCE_LOW": 0.85,
                         "CONFIDENCE_HIGH": 0.998}
_PYSOT_ANCHOR_DEFAULTS = {"STRIDE": 8, "RATIOS": [0.33, 0.5, 1, 2, 3], "SCALES": [8]}


class ConfigError(InputError):
    """A pysot config file (or built-in name) that does not describe a model this project can build."""


@dataclass(frozen=True)
class BackboneConfig:
    """BACKBONE.TYPE and its KWARGS. used_layers: indices of the returned stages (resnet50: 0 = stem,
    1..4 = layer1..4; mobilenetv2: layer0..7); width_mult: channel multiplier (mobilenetv2, alexnet)."""

    type: str
    used_layers: tuple[int, ...] = ()
    width_mult: float = 1.0


@dataclass(frozen=True)
class AdjustConfig:
    """ADJUST.*: the neck. adjust False means no neck (AlexNet). center_size: template crop side."""

    adjust: bool
    type: str = "AdjustAllLayer"
    in_channels: tuple[int, ...] = ()
    out_channels: tuple[int, ...] = ()
    center_size: int = 7


@dataclass(frozen=True)
class RpnConfig:
    """RPN.*: MultiRPN (one DepthwiseRPN per level, in_channels per level, weighted or plain-mean
    fusion) or a single DepthwiseRPN (in_channels = (in,), out_channels = hidden width)."""

    type: str
    anchor_num: int
    in_channels: tuple[int, ...]
    out_channels: int
    weighted: bool = False

    @property
    def levels(self) -> tuple[str, ...]:
        """Kernel-name suffixes: ("2", "3", "4") for a 3-level MultiRPN, ("",) for a DepthwiseRPN."""
        if self.type == "MultiRPN":
            return tuple(str(i + 2) for i in range(len(self.in_channels)))
        return ("",)


@dataclass(frozen=True)
class AnchorConfig:
    """ANCHOR.*: stride in search-crop pixels, aspect ratios h/w, scales (anchor side = stride*scale)."""

    stride: int = 8
    ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    scales: tuple[float, ...] = (8.0,)

    @property
    def anchor_num(self) -> int:
        return len(self.ratios) * len(self.scales)


@dataclass(frozen=True)
class ModelConfig:
    """One pysot experiment: the network (backbone, adjust, rpn), its anchors and the tracker values.

    name: pysot's META_ARC (e.g. "siamrpn_r50_l234_dwxcorr"); source: the file it was read from.
    tracker: TRACK.* plus the ANCHOR values, as the runtime reads them.
    """

    name: str
    backbone: BackboneConfig
    adjust: AdjustConfig
    rpn: RpnConfig
    anchor: AnchorConfig
    tracker: TrackerConfig
    source: str = ""

    def model_spec(self) -> ModelSpec:
        """Tensor geometry of this model, measured by running it on shapes only (torch 'meta' device)."""
        kernel_shapes, score_size = _measure_geometry(self)
        if score_size != self.tracker.score_size:
            raise ConfigError(
                f"{self.source or self.name}: the network gives a {score_size}x{score_size} score map for "
                f"TRACK.INSTANCE_SIZE {self.tracker.instance_size}, but the tracker's anchor grid "
                f"((INSTANCE_SIZE - EXEMPLAR_SIZE) // STRIDE + 1 + BASE_SIZE) is {self.tracker.score_size}; "
                "fix TRACK.BASE_SIZE / INSTANCE_SIZE (pysot: BASE_SIZE 8 with a neck, 0 for AlexNet)")
        lost_instance, lost_score = 0, 0
        if self.tracker.long_term:  # the exporter then writes the large (lost-state) search graph as well
            lost_instance = self.tracker.lost_instance_size
            lost_score = _measure_geometry(self, lost_instance)[1]
            if lost_score != self.tracker.lost_score_size:
                raise ConfigError(
                    f"{self.source or self.name}: the network gives a {lost_score}x{lost_score} score map for "
                    f"TRACK.LOST_INSTANCE_SIZE {lost_instance}, but the long-term tracker's anchor grid is "
                    f"{self.tracker.lost_score_size}; fix TRACK.BASE_SIZE / LOST_INSTANCE_SIZE")
        return ModelSpec(
            variant=self.name,
            exemplar_size=self.tracker.exemplar_size,
            instance_size=self.tracker.instance_size,
            score_size=score_size,
            anchor_num=self.rpn.anchor_num,
            levels=self.rpn.levels,
            kernel_channels=kernel_shapes[0][1],
            kernel_size=kernel_shapes[0][2],
            # pysot's long-term r50 neck is 128/256/512: each level then keeps its own channel count
            level_channels=tuple(sh[1] for sh in kernel_shapes[::2]) if len(
                {sh[1] for sh in kernel_shapes}) > 1 else (),
            lost_instance_size=lost_instance,
            lost_score_size=lost_score,
        )


_GEOMETRY_CACHE: dict[tuple, tuple[tuple[tuple[int, ...], ...], int]] = {}


def _measure_geometry(cfg: ModelConfig, instance_size: int | None = None) -> tuple[tuple[tuple[int, ...], ...], int]:
    """(kernel shapes for N=1 in kernel_names order, score size for a search crop of ``instance_size``, default the config's),
    from a shapes-only forward; cached per network config and size."""
    x = cfg.tracker.instance_size if instance_size is None else instance_size
    key = (cfg.backbone, cfg.adjust, cfg.rpn, cfg.tracker.exemplar_size, x)
    if key not in _GEOMETRY_CACHE:
        _GEOMETRY_CACHE[key] = _run_geometry(cfg, x)
    return _GEOMETRY_CACHE[key]


def _run_geometry(cfg: ModelConfig, x: int) -> tuple[tuple[tuple[int, ...], ...], int]:
    import torch

    from export.model import build_model

    with torch.device("meta"):
        model = build_model(cfg)
        e = cfg.tracker.exemplar_size
        kernels = model.template_kernels(torch.empty(1, 3, e, e))
        cls, _ = model.track_from_kernels(torch.empty(1, 3, x, x), kernels)
    shapes = tuple(tuple(k.shape) for k in kernels)   # (cls, loc) per level, kernel_names order
    # Channels may differ per level (ModelSpec.level_channels); the kernel size and a level's cls/loc
    # pair may not: the contract holds one kernel side and one channel count per level.
    pairs_agree = all(shapes[i] == shapes[i + 1] for i in range(0, len(shapes), 2))
    if len({sh[2:] for sh in shapes}) != 1 or not pairs_agree or cls.shape[2] != cls.shape[3]:
        raise ConfigError(f"{cfg.source or cfg.name}: the RPN levels give kernels of shapes "
                          f"{list(shapes)} (ADJUST.KWARGS.out_channels {list(cfg.adjust.out_channels)}); "
                          "the export contract needs one kernel size, and one channel count per level")
    return shapes, int(cls.shape[2])


# ----------------------------------------------------------------------------------------------
# reading pysot yaml


def builtin_names() -> tuple[str, ...]:
    """BUILTIN_NAMES first, then any other export/configs/*.yaml stem."""
    extra = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem not in BUILTIN_NAMES)
    return BUILTIN_NAMES + tuple(extra)


def default_config(name: str) -> ModelConfig:
    """Built-in config by name: "r50" (siamrpn_r50_l234_dwxcorr, VOT values), "r50_otb", "mobilev2",
    "alex" (and any other file in export/configs/)."""
    if name not in builtin_names():
        raise ConfigError(f"unknown built-in config {name!r}; choose one of {', '.join(builtin_names())} "
                          "or pass the path of a pysot config.yaml")
    return load_config(CONFIG_DIR / f"{name}.yaml")


def resolve_config(name_or_path: str | Path) -> ModelConfig:
    """A built-in name (r50, r50_otb, mobilev2, alex, ...) or the path of a pysot config.yaml."""
    if isinstance(name_or_path, str) and name_or_path in builtin_names():
        return default_config(name_or_path)
    return load_config(name_or_path)


def load_config(path: str | Path) -> ModelConfig:
    """Read a pysot experiment config.yaml. Raises ConfigError naming the file and the bad key."""
    path = Path(path)
    raw = _read_yaml(path)
    where = str(path)
    _check_schema(raw, where)
    _check_legacy_keys(raw, where)
    _reject_unsupported_heads(raw, where)
    anchor = _anchor(raw.get("ANCHOR") or {}, where)
    rpn = _rpn(raw.get("RPN") or {}, where)
    if rpn.anchor_num != anchor.anchor_num:
        raise ConfigError(f"{where}: RPN.KWARGS.anchor_num is {rpn.anchor_num} but ANCHOR gives "
                          f"{len(anchor.ratios)} ratios x {len(anchor.scales)} scales = {anchor.anchor_num}")
    return ModelConfig(
        name=str(raw.get("META_ARC", path.parent.name or path.stem)),
        backbone=_backbone(raw.get("BACKBONE") or {}, where),
        adjust=_adjust(raw.get("ADJUST") or {}, where),
        rpn=rpn,
        anchor=anchor,
        tracker=_tracker(raw.get("TRACK") or {}, anchor, where),
        source=where,
    )


def _read_yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        hint = f" (built-in names: {', '.join(builtin_names())})" if not path.suffix else ""
        raise ConfigError(f"{path}: no such config file{hint}; pass a pysot experiments/*/config.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not readable as YAML ({type(e).__name__}: {e}); "
                          "expected a pysot experiment config.yaml") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a YAML mapping with BACKBONE, RPN, TRACK ... sections, "
                          f"got {type(raw).__name__}")
    return raw


def _check_schema(raw: dict, where: str) -> None:
    for key, value in raw.items():
        if key in _TOP_LEVEL_SCALARS:
            continue
        if key not in _SCHEMA:
            raise ConfigError(f"{where}: unknown top-level key {key!r}; pysot configs have "
                              f"{', '.join(_TOP_LEVEL_SCALARS + tuple(_SCHEMA))}")
        allowed = _SCHEMA[key]
        if allowed is None or value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise ConfigError(f"{where}: unknown key {key}.{unknown[0]} (pysot rejects it as well); "
                              f"{key} accepts {', '.join(allowed)}")


def _check_legacy_keys(raw: dict, where: str) -> None:
    for (section, key), (kw_section, kw_key) in _LEGACY_KEYS.items():
        value = (raw.get(section) or {}).get(key)
        if value is None:
            continue
        kwargs = (raw.get(kw_section) or {}).get("KWARGS") or {}
        if kw_key in kwargs and _plain(kwargs[kw_key]) != _plain(value):
            raise ConfigError(f"{where}: {section}.{key} is {value!r} but {kw_section}.KWARGS.{kw_key} is "
                              f"{kwargs[kw_key]!r}; the network is built from KWARGS, so make them agree "
                              f"(or drop {section}.{key}, which pysot's current schema does not have)")


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _reject_unsupported_heads(raw: dict, where: str) -> None:
    if (raw.get("MASK") or {}).get("MASK", False):
        raise ConfigError(f"{where}: MASK.MASK is true (SiamMask); this project exports SiamRPN++ only")
    if (raw.get("REFINE") or {}).get("REFINE", False):
        raise ConfigError(f"{where}: REFINE.REFINE is true (SiamMask refinement); not supported")


def _kwargs(section: dict, name: str, where: str, allowed: tuple[str, ...]) -> dict:
    kwargs = section.get("KWARGS") or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: {name}.KWARGS must be a mapping, got {kwargs!r}")
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: {name}.KWARGS.{unknown[0]} is not an argument of "
                          f"{section.get('TYPE')}; it takes {', '.join(allowed)}")
    return kwargs


def _require(kwargs: dict, key: str, name: str, where: str):
    if key not in kwargs:
        raise ConfigError(f"{where}: {name}.KWARGS.{key} is missing; pysot's {name} needs it")
    return kwargs[key]


def _int_tuple(value, key: str, where: str) -> tuple[int, ...]:
    seq = value if isinstance(value, (list, tuple)) else [value]
    try:
        return tuple(int(v) for v in seq)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} must be an integer or a list of integers, got {value!r}") from None


def _backbone(section: dict, where: str) -> BackboneConfig:
    btype = section.get("TYPE")
    if btype not in BACKBONE_TYPES:
        raise ConfigError(f"{where}: BACKBONE.TYPE {btype!r} is not supported; this project builds "
                          f"{', '.join(BACKBONE_TYPES)} (SiamRPN++ r50, mobilev2 and alex models)")
    if btype == "resnet50":
        kw = _kwargs(section, "BACKBONE", where, ("used_layers",))
        return BackboneConfig(btype, used_layers=_int_tuple(_require(kw, "used_layers", "BACKBONE", where),
                                                            "BACKBONE.KWARGS.used_layers", where))
    if btype == "mobilenetv2":
        kw = _kwargs(section, "BACKBONE", where, ("used_layers", "width_mult"))
        return BackboneConfig(btype, used_layers=_int_tuple(kw.get("used_layers", [3, 5, 7]),
                                                            "BACKBONE.KWARGS.used_layers", where),
                              width_mult=float(kw.get("width_mult", 1.0)))
    if btype == "efficientnet_lite0":  # used_layers: indices of the returned blocks
        kw = _kwargs(section, "BACKBONE", where, ("used_layers",))
        return BackboneConfig(btype, used_layers=_int_tuple(_require(kw, "used_layers", "BACKBONE", where),
                                                            "BACKBONE.KWARGS.used_layers", where))
    kw = _kwargs(section, "BACKBONE", where, ("width_mult",))
    return BackboneConfig(btype, width_mult=float(kw.get("width_mult", 1.0)))


def _adjust(section: dict, where: str) -> AdjustConfig:
    if not section.get("ADJUST", True):
        return AdjustConfig(adjust=False, type=str(section.get("TYPE", "AdjustAllLayer")))
    ntype = section.get("TYPE", "AdjustAllLayer")
    if ntype not in NECK_TYPES:
        raise ConfigError(f"{where}: ADJUST.TYPE {ntype!r} is not supported; use one of {', '.join(NECK_TYPES)}")
    kw = _kwargs(section, "ADJUST", where, ("in_channels", "out_channels", "center_size"))
    ins = _int_tuple(_require(kw, "in_channels", "ADJUST", where), "ADJUST.KWARGS.in_channels", where)
    outs = _int_tuple(_require(kw, "out_channels", "ADJUST", where), "ADJUST.KWARGS.out_channels", where)
    if len(ins) != len(outs) or (ntype == "AdjustLayer" and len(ins) != 1):
        raise ConfigError(f"{where}: ADJUST.KWARGS in_channels {list(ins)} and out_channels {list(outs)} "
                          f"must have one entry per level ({ntype})")
    return AdjustConfig(True, ntype, ins, outs, int(kw.get("center_size", 7)))


def _rpn(section: dict, where: str) -> RpnConfig:
    rtype = section.get("TYPE")
    if rtype not in RPN_TYPES:
        raise ConfigError(f"{where}: RPN.TYPE {rtype!r} is not supported; SiamRPN++ uses the depth-wise "
                          f"heads {', '.join(RPN_TYPES)}")
    if rtype == "MultiRPN":
        kw = _kwargs(section, "RPN", where, ("anchor_num", "in_channels", "weighted"))
        ins = _int_tuple(_require(kw, "in_channels", "RPN", where), "RPN.KWARGS.in_channels", where)
        return RpnConfig(rtype, int(_require(kw, "anchor_num", "RPN", where)), ins,
                         out_channels=ins[0], weighted=bool(kw.get("weighted", False)))
    kw = _kwargs(section, "RPN", where, ("anchor_num", "in_channels", "out_channels"))
    ins = _int_tuple(kw.get("in_channels", 256), "RPN.KWARGS.in_channels", where)
    return RpnConfig(rtype, int(kw.get("anchor_num", 5)), ins[:1], out_channels=int(kw.get("out_channels", 256)))


def _anchor(section: dict, where: str) -> AnchorConfig:
    s = {**_PYSOT_ANCHOR_DEFAULTS, **section}
    anchor = AnchorConfig(stride=int(s["STRIDE"]), ratios=tuple(float(r) for r in s["RATIOS"]),
                          scales=tuple(float(c) for c in s["SCALES"]))
    if "ANCHOR_NUM" in section and int(section["ANCHOR_NUM"]) != anchor.anchor_num:
        raise ConfigError(f"{where}: ANCHOR.ANCHOR_NUM is {section['ANCHOR_NUM']} but RATIOS x SCALES "
                          f"give {anchor.anchor_num} anchors")
    return anchor


def _tracker(section: dict, anchor: AnchorConfig, where: str) -> TrackerConfig:
    t = {**_PYSOT_TRACK_DEFAULTS, **section}
    if t["TYPE"] not in TRACKER_TYPES:
        raise ConfigError(f"{where}: TRACK.TYPE {t['TYPE']!r} is not supported; this project implements "
                          f"{', '.join(TRACKER_TYPES)} (short-term and long-term SiamRPN++ tracking)")
    try:
        config = TrackerConfig(
            exemplar_size=int(t["EXEMPLAR_SIZE"]), instance_size=int(t["INSTANCE_SIZE"]),
            base_size=int(t["BASE_SIZE"]), context_amount=float(t["CONTEXT_AMOUNT"]),
            penalty_k=float(t["PENALTY_K"]), window_influence=float(t["WINDOW_INFLUENCE"]),
            lr=float(t["LR"]), stride=anchor.stride, ratios=anchor.ratios, scales=anchor.scales,
            long_term=t["TYPE"] == LONG_TERM_TYPE, lost_instance_size=int(t["LOST_INSTANCE_SIZE"]),
            confidence_low=float(t["CONFIDENCE_LOW"]), confidence_high=float(t["CONFIDENCE_HIGH"]))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: a TRACK value is not a number ({e})") from None
    _check_search_size(config.instance_size, "TRACK.INSTANCE_SIZE", config, where)
    if config.long_term:
        _check_long_term(config, where)
    return config


def _check_search_size(size: int, key: str, config: TrackerConfig, where: str) -> None:
    """The anchor grid ``(X - EXEMPLAR_SIZE) // STRIDE + 1 + BASE_SIZE`` only lines up with the network's
    score map when ``X - EXEMPLAR_SIZE`` is a multiple of STRIDE (pysot's floor division would silently
    shift every anchor otherwise)."""
    e, stride = config.exemplar_size, config.stride
    if size > e and (size - e) % stride == 0:
        return
    below = e + max(stride, (size - e) // stride * stride)
    above = below + stride
    raise ConfigError(
        f"{where}: {key} {size} with TRACK.EXEMPLAR_SIZE {e} and ANCHOR.STRIDE {stride} does not give an "
        f"integer score map ({size} - {e} = {size - e} is not a positive multiple of {stride}); use "
        f"{key} {below} or {above} (EXEMPLAR_SIZE + k * STRIDE)")


def _check_long_term(config: TrackerConfig, where: str) -> None:
    _check_search_size(config.lost_instance_size, "TRACK.LOST_INSTANCE_SIZE", config, where)
    if config.lost_instance_size <= config.instance_size:
        raise ConfigError(f"{where}: TRACK.LOST_INSTANCE_SIZE {config.lost_instance_size} must be larger than "
                          f"TRACK.INSTANCE_SIZE {config.instance_size} (the long-term tracker searches a larger "
                          "crop once the target is lost; pysot's default is 831)")
    low, high = config.confidence_low, config.confidence_high
    if not 0.0 < low <= high < 1.0:
        raise ConfigError(f"{where}: TRACK.CONFIDENCE_LOW {low} and CONFIDENCE_HIGH {high} must satisfy "
                          "0 < LOW <= HIGH < 1 (pysot: 0.8 and 0.998 in its long-term config)")

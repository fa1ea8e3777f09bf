"""What crosses a stage boundary, defined once.

Every stage (export, calibration, engines, runtime, bench, train) agrees on these names, shapes and
metadata keys. Nothing here imports torch, onnx or TensorRT.

Graph contract (N = number of targets, dynamic; images are BGR float32 0..255, NCHW, no normalisation):

template graph
    input   ``template``            (N, 3, E, E)          E = exemplar size (127)
    outputs ``kernel_cls{L}``, ``kernel_loc{L}`` for each level L, each (N, C, k, k)
            (r50/mobilev2: levels 2,3,4, C=256, k=5; alexnet: one level named "", C=256, k=4)
search graph
    inputs  ``search`` (N, 3, X, X)  X = instance size (255, 287 for alexnet), plus every kernel above
    outputs ``cls`` (N, 2A, S, S) and ``loc`` (N, 4A, S, S); A anchors, S score size.
            cls channels: [bg anchor 0..A-1, fg anchor 0..A-1]; loc channels: [dx x A, dy x A, dw x A, dh x A].
search_lost graph (only when ModelSpec.lost_instance_size is set: the long-term tracker's lost state)
    the search graph for X = lost_instance_size (831), S = lost_score_size (97 for r50): same names.

xcorr flavours of the search graph
    plugin    one ``siamrpn::DepthwiseXCorr`` node (version 1) per correlation, output shape recorded,
              attributes ``XCORR_NODE_ATTRIBUTES`` (the TensorRT plugin's namespace and version);
              run by the TensorRT plugin (engines/plugin) or the ONNX Runtime Python op.
    standard  standard ops only: each correlation is an ONNX Loop over the N targets running
              Conv(group=C) with that target's kernel as weights (ONNX Conv's ``group`` is static, so
              pysot's N*C-group trick cannot keep N dynamic).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

CONTRACT_VERSION = 1

TEMPLATE_INPUT = "template"
SEARCH_INPUT = "search"
CLS_OUTPUT = "cls"
LOC_OUTPUT = "loc"

# ONNX custom op that the plugin and the ONNX Runtime Python op implement.
XCORR_DOMAIN = "siamrpn"
XCORR_OP = "DepthwiseXCorr"
XCORR_VERSION = 1
# String attributes on every DepthwiseXCorr node: TensorRT's ONNX parser looks the plugin creator up as
# (op_type, attribute plugin_version or "1", attribute plugin_namespace or ""); 10.0-10.3 (JetPack 6)
# never try the node's domain, so without them the creator (namespace "siamrpn") is not found.
XCORR_NODE_ATTRIBUTES = (("plugin_namespace", XCORR_DOMAIN), ("plugin_version", str(XCORR_VERSION)))

# ONNX metadata_props keys. Values are strings; structured ones are JSON.
META_PREFIX = "siamrpn."
META_CONTRACT = "siamrpn.contract_version"
META_GRAPH = "siamrpn.graph"                 # "template" | "search"
META_MODEL_SPEC = "siamrpn.model_spec"       # JSON of ModelSpec
META_TRACKER = "siamrpn.tracker_config"      # JSON of TrackerConfig
META_NORMALISATION = "siamrpn.normalisation" # always NORMALISATION
META_SOURCE_SHA = "siamrpn.source_sha256"    # sha256 of the checkpoint the graph was exported from
META_EXPORT_ID = "siamrpn.export_id"         # same value in a template/search pair from one export
META_XCORR = "siamrpn.xcorr"                 # "plugin" (custom op) | "standard" (grouped Conv)
META_PRECISION = "siamrpn.precision"         # "fp32" | "fp16" | "int8"
META_CALIBRATION = "siamrpn.calibration"     # JSON: method, set sha256, sample count (int8 only)
META_EXPORTER = "siamrpn.exporter"           # JSON: versions of torch, onnx, onnxsim, this project
META_SOURCE = "siamrpn.source"               # checkpoint file name, or "random-seed:<N>"
META_RANDOM = "siamrpn.random_weights"       # "true" when exported from seeded random weights

NORMALISATION = "bgr_0_255"
GRAPHS = ("template", "search")
# The long-term tracker's lost-state search graph: the search graph traced for the large crop
# (``ModelSpec.lost_instance_size``), same inputs/outputs and weights, written by the same export (same
# export id) only when the model has a lost size. A separate static graph, not a dynamic spatial axis
# (README, architecture: "The long-term search graph"). Not in GRAPHS: every model has that pair.
LOST_GRAPH = "search_lost"
ALL_GRAPHS = GRAPHS + (LOST_GRAPH,)
XCORR_FLAVOURS = ("plugin", "standard")
PRECISIONS = ("fp32", "fp16", "int8")
# INT8 placed for ONNX Runtime's CPU kernels (``calibration.cpu_int8``): the standard-xcorr graphs with
# Q/DQ around every Conv so ORT fuses them into QLinearConv. It sits in the flavour slot of the name
# (``search.int8.cpu.onnx``) because it is one more way to build the same graph, beside the TensorRT
# placement ``search.int8.standard.onnx``; only precision int8 and ext onnx have it (TensorRT never
# builds engines from it). Its graphs' ``siamrpn.xcorr`` metadata still says "standard".
CPU_INT8_FLAVOUR = "cpu"
ARTIFACT_FLAVOURS = XCORR_FLAVOURS + (CPU_INT8_FLAVOUR,)


@dataclass(frozen=True)
class TrackerConfig:
    """pysot's TRACK.* and ANCHOR.* values (defaults: siamrpn_r50_l234_dwxcorr, VOT-tuned)."""

    exemplar_size: int = 127
    instance_size: int = 255
    base_size: int = 8
    context_amount: float = 0.5
    penalty_k: float = 0.05
    window_influence: float = 0.42
    lr: float = 0.38
    stride: int = 8
    ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    scales: tuple[float, ...] = (8.0,)
    # pysot's long-term tracker (TRACK.TYPE SiamRPNLTTracker): below confidence_low it searches a
    # lost_instance_size crop; above confidence_high it is back to normal. Ignored when not long_term.
    long_term: bool = False
    lost_instance_size: int = 831
    confidence_low: float = 0.85
    confidence_high: float = 0.998

    @property
    def anchor_num(self) -> int:
        return len(self.ratios) * len(self.scales)

    @property
    def score_size(self) -> int:
        """Side of the response map: (X - E) // stride + 1 + base_size (25 for r50, 21 for alexnet)."""
        return (self.instance_size - self.exemplar_size) // self.stride + 1 + self.base_size

    @property
    def lost_score_size(self) -> int:
        """Side of the long-term tracker's lost-state response map: 97 for r50 with 831."""
        return (self.lost_instance_size - self.exemplar_size) // self.stride + 1 + self.base_size

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrackerConfig":
        raw = json.loads(text)
        raw["ratios"] = tuple(float(r) for r in raw["ratios"])
        raw["scales"] = tuple(float(s) for s in raw["scales"])
        return cls(**raw)


@dataclass(frozen=True)
class ModelSpec:
    """Tensor geometry of one exported model, enough to validate every backend's inputs and outputs.

    levels: RPN level suffixes, ("2", "3", "4") for the multi-level models, ("",) for a single RPN.
    kernel_channels, kernel_size: each kernel is (N, kernel_channels, kernel_size, kernel_size) float32.
    level_channels: per-level channel counts when the levels differ (pysot's long-term r50 neck is
    128/256/512), else empty; ``kernel_shape(n, name)`` then gives each kernel its own channels.
    """

    variant: str
    exemplar_size: int
    instance_size: int
    score_size: int
    anchor_num: int
    levels: tuple[str, ...]
    kernel_channels: int
    kernel_size: int
    # The long-term tracker's large search crop (pysot TRACK.LOST_INSTANCE_SIZE) and its score map;
    # 0 when the export has no large search graph (a short-term model).
    lost_instance_size: int = 0
    lost_score_size: int = 0
    level_channels: tuple[int, ...] = ()

    @property
    def kernel_names(self) -> tuple[str, ...]:
        return tuple(f"kernel_{head}{lvl}" for lvl in self.levels for head in ("cls", "loc"))

    def template_shape(self, n: int = 1) -> tuple[int, int, int, int]:
        return (n, 3, self.exemplar_size, self.exemplar_size)

    @property
    def search_sizes(self) -> tuple[int, ...]:
        """Search crop sides this export runs: the instance size, then the lost size if it has one."""
        return (self.instance_size, self.lost_instance_size) if self.lost_instance_size else (self.instance_size,)

    def _score(self, size: int | None) -> int:
        if size is None or size == self.instance_size:
            return self.score_size
        if self.lost_instance_size and size == self.lost_instance_size:
            return self.lost_score_size
        raise ValueError(f"search size {size} is not one of this export's {self.search_sizes}")

    def search_shape(self, n: int = 1, size: int | None = None) -> tuple[int, int, int, int]:
        """(N, 3, X, X); ``size`` picks the lost (long-term) crop side, default the instance size."""
        self._score(size)
        side = self.instance_size if size is None else size
        return (n, 3, side, side)

    def kernel_shape(self, n: int = 1, name: str | None = None) -> tuple[int, int, int, int]:
        """(N, C, k, k) of kernel ``name`` (one of ``kernel_names``); C is per level when the levels differ,
        so a caller that handles every kernel passes its name."""
        c = self.kernel_channels
        if self.level_channels:
            if name is None:
                raise ValueError(f"{self.variant}: kernels differ per level {self.level_channels}; "
                                 "pass the kernel name to kernel_shape")
            c = self.level_channels[self.kernel_names.index(name) // 2]
        return (n, c, self.kernel_size, self.kernel_size)

    def cls_shape(self, n: int = 1, size: int | None = None) -> tuple[int, int, int, int]:
        s = self._score(size)
        return (n, 2 * self.anchor_num, s, s)

    def loc_shape(self, n: int = 1, size: int | None = None) -> tuple[int, int, int, int]:
        s = self._score(size)
        return (n, 4 * self.anchor_num, s, s)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        raw = json.loads(text)
        raw["levels"] = tuple(raw["levels"])
        raw["level_channels"] = tuple(raw.get("level_channels", ()))
        return cls(**raw)


def artifact_name(graph: str, precision: str, flavour: str, ext: str) -> str:
    """``<graph>.<precision>.<flavour>.<ext>``, e.g. ``search.int8.plugin.onnx`` or
    ``search_lost.fp16.standard.engine``."""
    if graph not in ALL_GRAPHS or precision not in PRECISIONS or flavour not in ARTIFACT_FLAVOURS:
        raise ValueError(f"unknown artifact parts {graph!r}, {precision!r}, {flavour!r}")
    if flavour == CPU_INT8_FLAVOUR and (precision, ext) != ("int8", "onnx"):
        raise ValueError(f"the {CPU_INT8_FLAVOUR!r} flavour exists only as int8 ONNX graphs, not {precision} .{ext}")
    return f"{graph}.{precision}.{flavour}.{ext}"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def merge_metadata_props(model, updates: dict[str, str]) -> None:
    """Set ``updates`` in an ONNX ModelProto's metadata_props (keeping the other keys), sorted by key.

    Works on the protobuf field directly, so this module still imports no onnx.
    """
    props = {p.key: p.value for p in model.metadata_props}
    props.update(updates)
    del model.metadata_props[:]
    for key in sorted(props):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, props[key]

@dataclass(frozen=True)
class GraphMeta:
    """The siamrpn.* metadata of one ONNX graph, parsed."""

    graph: str
    spec: ModelSpec
    tracker: TrackerConfig
    source_sha256: str
    export_id: str
    xcorr: str
    precision: str
    extra: dict = field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        props = {
            META_CONTRACT: str(CONTRACT_VERSION),
            META_GRAPH: self.graph,
            META_MODEL_SPEC: self.spec.to_json(),
            META_TRACKER: self.tracker.to_json(),
            META_NORMALISATION: NORMALISATION,
            META_SOURCE_SHA: self.source_sha256,
            META_EXPORT_ID: self.export_id,
            META_XCORR: self.xcorr,
            META_PRECISION: self.precision,
        }
        props.update(self.extra)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "graph") -> "GraphMeta":
        """Parse metadata_props; raises ContractError naming ``where`` when keys are missing."""
        from runtime.errors import ContractError

        missing = [k for k in (META_CONTRACT, META_GRAPH, META_MODEL_SPEC, META_TRACKER) if k not in props]
        if missing:
            raise ContractError(
                f"{where}: not a SiamRPN export of this project (metadata keys {', '.join(missing)} are "
                "missing). Export the checkpoint with `siamtrack export` and pass the files it writes.")
        if props[META_CONTRACT] != str(CONTRACT_VERSION):
            raise ContractError(
                f"{where}: contract version {props[META_CONTRACT]} but this runtime reads "
                f"{CONTRACT_VERSION}. Re-export with this version of the project.")
        known = {META_CONTRACT, META_GRAPH, META_MODEL_SPEC, META_TRACKER, META_NORMALISATION,
                 META_SOURCE_SHA, META_EXPORT_ID, META_XCORR, META_PRECISION}
        return cls(
            graph=props[META_GRAPH],
            spec=ModelSpec.from_json(props[META_MODEL_SPEC]),
            tracker=TrackerConfig.from_json(props[META_TRACKER]),
            source_sha256=props.get(META_SOURCE_SHA, ""),
            export_id=props.get(META_EXPORT_ID, ""),
            xcorr=props.get(META_XCORR, "standard"),
            precision=props.get(META_PRECISION, "fp32"),
            extra={k: v for k, v in props.items() if k not in known},
        )

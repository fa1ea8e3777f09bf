"""Calibration shards -> re-iterable ``{input_name: float32 array}`` feed dicts for either graph.

Template feeds: ``{"template": (B, 3, E, E)}`` from every recorded template crop (tracked + jittered).
Search feeds: ``{"search": (B, 3, X, X), "kernel_cls2": (B, C, k, k), ...}``: each search crop with
the kernels of the template it was recorded with. Crops are stored as uint8 and returned as float32
0..255 BGR (what the tracker feeds). ``B`` is ``batch`` except for a shard's last, shorter batch.

``load_calibration`` verifies the manifest and every shard's sha256 before anything is read, so a
half-copied or edited set is refused instead of silently calibrating on other data.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration import CalibrationError
from calibration.collect import FORMAT, MANIFEST
from runtime.contract import LOST_GRAPH, SEARCH_INPUT, TEMPLATE_INPUT, ModelSpec


class Feeds:
    """Re-iterable feed dicts read shard by shard (one shard in memory at a time)."""

    def __init__(self, paths: list[Path], graph: str, kernel_names: tuple[str, ...], batch: int):
        self.paths, self.graph, self.kernel_names, self.batch = paths, graph, kernel_names, max(1, batch)

    def __iter__(self):
        for path in self.paths:
            with np.load(path) as shard:
                if self.graph == "template":
                    crops = shard["template"]
                    for i in range(0, len(crops), self.batch):
                        yield {TEMPLATE_INPUT: crops[i:i + self.batch].astype(np.float32)}
                    continue
                crops, owner = shard["search"], shard["search_template"]
                kernels = {name: shard[name] for name in self.kernel_names}
                for i in range(0, len(crops), self.batch):
                    rows = owner[i:i + self.batch]
                    feed = {SEARCH_INPUT: crops[i:i + self.batch].astype(np.float32)}
                    feed.update({name: np.ascontiguousarray(k[rows]) for name, k in kernels.items()})
                    yield feed

    def __len__(self) -> int:
        """Number of feed dicts (batches)."""
        key = "template" if self.graph == "template" else "search"
        total = 0
        for path in self.paths:
            with np.load(path) as shard:
                total += -(-len(shard[key]) // self.batch)
        return total


@dataclass
class CalibrationSet:
    """A verified calibration folder. ``manifest`` is manifest.json as written by ``collect``."""

    root: Path
    manifest: dict

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_json(json.dumps(self.manifest["model"]["spec"]))

    @property
    def set_sha256(self) -> str:
        return self.manifest["set_sha256"]

    def _paths(self) -> list[Path]:
        return [self.root / s["file"] for s in self.manifest["shards"]]

    def template_feeds(self, batch: int = 4) -> Feeds:
        return Feeds(self._paths(), "template", self.spec.kernel_names, batch)

    def search_feeds(self, batch: int = 4) -> Feeds:
        return Feeds(self._paths(), "search", self.spec.kernel_names, batch)

    def feeds_for(self, onnx_path: str | Path, batch: int = 4) -> Feeds:
        """Feeds for the graph at ``onnx_path`` after checking it is the model this set was recorded
        with (same geometry; for the search graph also the same export, since kernels are stored)."""
        import onnx

        from runtime.contract import GraphMeta

        onnx_path = Path(onnx_path)
        props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
        meta = GraphMeta.from_props(props, where=str(onnx_path))
        if _without_lost(meta.spec) != _without_lost(self.spec):
            raise CalibrationError(
                f"{self.root}: recorded for model geometry {self.spec.variant} ({self.spec.to_json()}) but "
                f"{onnx_path} is {meta.spec.variant} ({meta.spec.to_json()}); collect a calibration set "
                "with this export (`siamtrack calibrate`)")
        if meta.graph == LOST_GRAPH:
            raise CalibrationError(
                f"{onnx_path}: the long-term search graph is not calibrated on its own; it takes the search "
                "graph's ranges (calibration.quantize.quantize_pair, `siamtrack quantize` does it)")
        if meta.graph == "search":
            self._check_same_export(meta, onnx_path)
            return self.search_feeds(batch)
        return self.template_feeds(batch)

    def _check_same_export(self, meta, onnx_path: Path) -> None:
        rec = self.manifest["model"]
        same_export = rec.get("export_id") and rec["export_id"] == meta.export_id
        same_weights = rec.get("source_sha256") and rec["source_sha256"] == meta.source_sha256
        if not (same_export or same_weights):
            raise CalibrationError(
                f"{self.root}: its kernels were recorded with export {rec.get('export_id') or '?'} "
                f"(weights {rec.get('source_sha256', '')[:12] or '?'}), but {onnx_path} comes from export "
                f"{meta.export_id or '?'} (weights {meta.source_sha256[:12] or '?'}); search-graph ranges "
                "would be calibrated on another model's kernels. Collect again with this export")


def _without_lost(spec: ModelSpec) -> ModelSpec:
    """The geometry a calibration set depends on: the long-term lost size is left out, since the set
    holds instance-size crops only and a backend without the large graph reports no lost size."""
    import dataclasses

    return dataclasses.replace(spec, lost_instance_size=0, lost_score_size=0)


def load_calibration(root: str | Path, verify: bool = True) -> CalibrationSet:
    """Open a calibration folder; CalibrationError when the manifest or a shard is missing, changed
    (sha256), or the set is empty."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise CalibrationError(f"{root}: no {MANIFEST}; record a calibration set with `siamtrack calibrate`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CalibrationError(f"{path}: not valid JSON ({err}); record the set again") from None
    if manifest.get("format") != FORMAT:
        raise CalibrationError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}; record again")
    if not manifest.get("shards") or manifest.get("searches", 0) == 0:
        raise CalibrationError(f"{root}: the calibration set is empty (no search crops); record it again "
                               "with more or longer sequences")
    if verify:
        for shard in manifest["shards"]:
            file = root / shard["file"]
            if not file.is_file():
                raise CalibrationError(f"{file}: listed in {MANIFEST} but missing; copy the whole folder")
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            if digest != shard["sha256"]:
                raise CalibrationError(f"{file}: sha256 {digest[:12]} does not match the manifest "
                                       f"({shard['sha256'][:12]}); the shard changed: record the set again")
    return CalibrationSet(root, manifest)

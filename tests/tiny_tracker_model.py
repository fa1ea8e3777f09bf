"""A tiny exported model the real tracker can run in milliseconds: tests/tiny_graphs.py's standard-op
pair with a tracker config whose geometry matches it (exemplar 8, instance 16, 11x11 map, 1 anchor).
For tests of the tracking commands' plumbing (outputs, signals, progress), not of tracking quality."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from runtime.contract import LOC_OUTPUT, META_TRACKER, TrackerConfig

TINY_TRACKER = TrackerConfig(exemplar_size=8, instance_size=16, base_size=6, stride=2, ratios=(1.0,),
                             scales=(8.0,))


def write_tiny_tracker_model(folder: Path) -> Path:
    from tiny_graphs import write_tiny_folder

    write_tiny_folder(folder, plugin=False)
    for path in sorted(folder.glob("*.onnx")):
        model = onnx.load(str(path))
        for entry in model.metadata_props:
            if entry.key == META_TRACKER:
                entry.value = TINY_TRACKER.to_json()
        if path.name.startswith("search."):
            _damp_loc(model.graph)
        onnx.save(model, str(path))
    return folder


def _damp_loc(graph) -> None:
    """Scale the random loc output by 1e-3: raw, its exp() overflows and the boxes become NaN."""
    raw = LOC_OUTPUT + "_raw"
    for node in graph.node:
        node.output[:] = [raw if o == LOC_OUTPUT else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(1e-3, dtype=np.float32), "loc_damping"))
    graph.node.append(helper.make_node("Mul", [raw, "loc_damping"], [LOC_OUTPUT]))

"""The tiny contract graphs of tests/tiny_graphs.py as a long-term export: template, search (16 px crop,
11x11 map) and search_lost (24 px crop, 19x19 map), all from one export id, with a ModelSpec that has the
lost size. Same weights in both search graphs, as the exporter traces them from one model."""
from __future__ import annotations

import dataclasses

import onnx

from runtime.contract import META_GRAPH, META_MODEL_SPEC, META_XCORR
from tests.tiny_graphs import TINY, set_meta, tiny_search_plugin, tiny_template

LOST_SIDE, LOST_MAP = 24, 19
TINY_LT = dataclasses.replace(TINY, lost_instance_size=LOST_SIDE, lost_score_size=LOST_MAP)


def tiny_search_lost_plugin(seed=1):
    """tiny_search_plugin traced at the lost size: search (N,3,24,24) -> cls (N,2,19,19), loc (N,4,19,19)."""
    model = tiny_search_plugin(seed)
    sides = {"search": LOST_SIDE, "feat": LOST_SIDE - 2, "xc": LOST_MAP, "xl": LOST_MAP, "cls": LOST_MAP,
             "loc": LOST_MAP}
    g = model.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.name in sides:
            dims = vi.type.tensor_type.shape.dim
            dims[2].dim_value = dims[3].dim_value = sides[vi.name]
    return set_meta(model, META_GRAPH, "search_lost")


def _lt(model):
    return set_meta(model, META_MODEL_SPEC, TINY_LT.to_json())


def write_tiny_lt_folder(folder, plugin=False, lost=True):
    """template/search(/search_lost).fp32.standard(.plugin).onnx of a tiny long-term export."""
    from export.xcorr_op import expand_xcorr_nodes

    folder.mkdir(parents=True, exist_ok=True)
    models = {}
    for flavour in ("standard", "plugin") if plugin else ("standard",):
        graphs = {"template": set_meta(tiny_template(), META_XCORR, flavour), "search": tiny_search_plugin()}
        if lost:
            graphs["search_lost"] = tiny_search_lost_plugin()
        for graph, model in graphs.items():
            if flavour == "standard" and graph != "template":
                model = set_meta(expand_xcorr_nodes(model), META_XCORR, "standard")
            models[f"{graph}.fp32.{flavour}.onnx"] = _lt(model)
    for name, model in models.items():
        onnx.save(model, str(folder / name))
    return folder

"""The two exported graphs as nn.Modules wrapped around a built ``export.model.SiamRPN``.

``TemplateGraph``: template (N, 3, E, E) -> the ``conv_kernel`` output of every DepthwiseXCorr, each
(N, C, k, k), in ``ModelSpec.kernel_names`` order. It runs once per target; the search graph never
recomputes anything of the template side (pysot re-runs ``conv_kernel`` on every frame).

``SearchGraph``: search (N, 3, X, X) and those kernels -> cls (N, 2A, S, S), loc (N, 4A, S, S). The
depth-wise xcorr is ``export.xcorr_op.dw_xcorr`` (one custom node when exported); the level fusion
weights (softmax of ``cls_weight``/``loc_weight``, or pysot's plain mean) are constants of the graph.

Both share the model's modules (no copy), so the wrapped model must stay in eval mode.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from export.xcorr_op import dw_xcorr


class TemplateGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, template: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.template_kernels(template))


def _levels(rpn_head: nn.Module) -> list[nn.Module]:
    """The DepthwiseRPN of each level, in kernel order (rpn2, rpn3, ... or the single head)."""
    if hasattr(rpn_head, "cls") and hasattr(rpn_head, "loc"):
        return [rpn_head]
    levels = []
    while hasattr(rpn_head, f"rpn{len(levels) + 2}"):
        levels.append(getattr(rpn_head, f"rpn{len(levels) + 2}"))
    if not levels:
        raise ValueError(f"{type(rpn_head).__name__}: neither a DepthwiseRPN (cls, loc) nor a MultiRPN (rpn2 ...)")
    return levels


def _fusion_weights(rpn_head: nn.Module, name: str, count: int) -> torch.Tensor | None:
    """Folded softmax weights, or None for pysot's unweighted mean (kept as sum/len for bit parity)."""
    if count == 1 or not getattr(rpn_head, "weighted", False):
        return None
    with torch.no_grad():
        return F.softmax(getattr(rpn_head, name).detach().float(), 0).clone()


class SearchGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.levels = _levels(model.rpn_head)
        n = len(self.levels)
        for name in ("cls_weight", "loc_weight"):
            weights = _fusion_weights(model.rpn_head, name, n)
            self.register_buffer(f"{name}_folded", weights, persistent=False)

    def forward(self, search: torch.Tensor, *kernels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.features(search)
        if len(self.levels) == 1:
            features = [features]
        cls, loc = [], []
        for i, (rpn, x_f) in enumerate(zip(self.levels, features)):
            cls.append(self._branch(rpn.cls, x_f, kernels[2 * i]))       # (N, 2A, S, S)
            loc.append(self._branch(rpn.loc, x_f, kernels[2 * i + 1]))   # (N, 4A, S, S)
        return self._fuse(cls, self.cls_weight_folded), self._fuse(loc, self.loc_weight_folded)

    @staticmethod
    def _branch(dwx: nn.Module, x_f: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        return dwx.head(dw_xcorr(dwx.conv_search(x_f), kernel))

    @staticmethod
    def _fuse(outputs: list[torch.Tensor], weights: torch.Tensor | None) -> torch.Tensor:
        if len(outputs) == 1:
            return outputs[0]
        if weights is None:
            return sum(outputs) / len(outputs)  # pysot's order of operations
        total = outputs[0] * weights[0]
        for i in range(1, len(outputs)):
            total = total + outputs[i] * weights[i]
        return total


def lost_search_spec(cfg, spec):
    """``spec`` with the long-term tracker's large search size (``cfg.tracker.lost_instance_size``) and
    its score map, both checked: the size must give a whole number of anchor steps
    ((LOST_INSTANCE_SIZE - EXEMPLAR_SIZE) divisible by STRIDE, as pysot's score-size formula assumes),
    and the network's own map for that crop (a shapes-only forward) must be the tracker's anchor grid.
    Raises ``export.config.ConfigError`` naming the sizes otherwise. Returns ``spec`` unchanged when it
    already has a lost size (a long-term config)."""
    import dataclasses

    from export.config import ConfigError

    if spec.lost_instance_size:
        return spec
    t = cfg.tracker
    where = getattr(cfg, "source", "") or cfg.name
    size, extra = t.lost_instance_size, t.lost_instance_size - t.exemplar_size
    if size <= t.instance_size or extra % t.stride:
        raise ConfigError(
            f"{where}: TRACK.LOST_INSTANCE_SIZE {size} cannot make the long-term search graph: it must be larger "
            f"than INSTANCE_SIZE {t.instance_size} and (LOST_INSTANCE_SIZE - EXEMPLAR_SIZE {t.exemplar_size}) "
            f"must be a multiple of ANCHOR.STRIDE {t.stride}, or the score map is not a whole anchor grid "
            f"({extra} / {t.stride} = {extra / t.stride:.3g}); pysot's LT configs use 831 with 127 and 8")
    measured = _score_size_at(cfg, size)
    if measured != t.lost_score_size:
        raise ConfigError(
            f"{where}: the network gives a {measured}x{measured} score map for TRACK.LOST_INSTANCE_SIZE {size}, "
            f"but the tracker's anchor grid for it is {t.lost_score_size}x{t.lost_score_size}; fix "
            "TRACK.LOST_INSTANCE_SIZE / BASE_SIZE")
    return dataclasses.replace(spec, lost_instance_size=size, lost_score_size=measured)


def _score_size_at(cfg, size: int) -> int:
    """Side of the network's cls map for a ``size`` search crop, from a shapes-only ('meta') forward."""
    from export.model import build_model

    with torch.device("meta"):
        model = build_model(cfg)
        e = cfg.tracker.exemplar_size
        kernels = model.template_kernels(torch.empty(1, 3, e, e))
        cls, _ = model.track_from_kernels(torch.empty(1, 3, size, size), kernels)
    return int(cls.shape[2])

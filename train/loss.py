"""SiamRPN++ training loss, as pysot computes it (``pysot/models/loss.py`` + ``ModelBuilder.forward``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cls_log_softmax(cls: torch.Tensor) -> torch.Tensor:
    """(B, 2A, S, S) logits [bg x A, fg x A] -> (B, A, S, S, 2) log-probabilities [bg, fg]."""
    b, a2, h, w = cls.shape
    cls = cls.view(b, 2, a2 // 2, h, w)  # (B, 2, A, S, S)
    return F.log_softmax(cls.permute(0, 2, 3, 4, 1).contiguous(), dim=4)


def select_cross_entropy(log_prob: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """0.5 * NLL over positives + 0.5 * NLL over negatives; labels -1 are ignored.

    Each term is a mean over the selected anchors of the whole batch, and 0 when none are selected.
    """
    log_prob = log_prob.reshape(-1, 2)
    label = label.reshape(-1)
    total = log_prob.new_zeros(())
    for value in (1, 0):
        idx = (label == value).nonzero().squeeze(1)
        if idx.numel():
            total = total + 0.5 * F.nll_loss(log_prob.index_select(0, idx), label.index_select(0, idx))
    return total


def weighted_l1(loc: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum(|loc - target| over dx,dy,dw,dh * weight) / B.

    loc (B, 4A, S, S); target (B, 4, A, S, S); weight (B, A, S, S).
    """
    b, _, sh, sw = loc.shape
    diff = (loc.view(b, 4, -1, sh, sw) - target).abs().sum(dim=1)  # (B, A, S, S)
    return (diff * weight).sum() / b


def siamrpn_loss(cls: torch.Tensor, loc: torch.Tensor, label_cls: torch.Tensor, label_loc: torch.Tensor,
                 label_weight: torch.Tensor, cls_weight: float = 1.0, loc_weight: float = 1.2):
    """Returns (total, cls_loss, loc_loss) scalars."""
    cls_loss = select_cross_entropy(cls_log_softmax(cls), label_cls)
    loc_loss = weighted_l1(loc, label_loc, label_weight)
    return cls_weight * cls_loss + loc_weight * loc_loss, cls_loss, loc_loss

"""Depth-wise cross-correlation, the operation that joins the template and search branches."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def xcorr_depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel cross-correlation (no kernel flip, no padding, stride 1).

    x: (N, C, H, W) search features; kernel: (N, C, kh, kw) template kernels, same N and C.
    Returns (N, C, H - kh + 1, W - kw + 1):
    ``out[n, c, i, j] = sum_{u, v} x[n, c, i + u, j + v] * kernel[n, c, u, v]``.

    Sample n only ever meets kernel n: the batch is folded into the channel axis so one grouped
    convolution with N*C groups does every pair (pysot's ``xcorr_depthwise``, op for op).
    """
    n, c = kernel.size(0), kernel.size(1)
    x = x.reshape(1, n * c, x.size(2), x.size(3))                          # (1, N*C, H, W)
    kernel = kernel.reshape(n * c, 1, kernel.size(2), kernel.size(3))      # (N*C, 1, kh, kw)
    out = F.conv2d(x, kernel, groups=n * c)                                # (1, N*C, H', W')
    return out.reshape(n, c, out.size(2), out.size(3))                     # (N, C, H', W')

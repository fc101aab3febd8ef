"""Non-local (self-attention) block of Wang et al. (2018), as used by the paper's Table 4."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NonLocalBlock2d"]


class NonLocalBlock2d(nn.Module):
    """Embedded-Gaussian non-local block with a residual connection.

    ``y_i = x_i + W_z sum_j softmax_j(theta(x_i) . phi(x_j)) g(x_j)``, with ``theta``, ``phi``,
    ``g`` 1 x 1 convolutions to ``inter_channels`` and ``W_z`` a 1 x 1 convolution back to
    ``channels``. ``W_z`` starts at zero, so a freshly inserted block is the identity (the role
    of the zero-initialised batch-norm scale in Wang et al.; no batch norm here because the
    recurrent network runs on small batches). Cost ``O((H W)^2 C)`` per frame.

    Parameters
    ----------
    channels : int
        Channels of the input and output.
    inter_channels : int, optional
        Embedding channels; default ``max(channels // 2, 1)``.

    Shapes
    ------
    ``(B, channels, H, W) -> (B, channels, H, W)``.
    """

    def __init__(self, channels: int, inter_channels: int | None = None):
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        inter = max(channels // 2, 1) if inter_channels is None else int(inter_channels)
        if inter < 1:
            raise ValueError(f"inter_channels must be positive, got {inter_channels!r}")
        self.channels = channels
        self.inter_channels = inter
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.out = nn.Conv2d(inter, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]  # Conv2d has a bias here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape (B, {self.channels}, H, W), got {tuple(x.shape)}")
        b, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        k = self.phi(x).flatten(2)  # (B, C', HW)
        v = self.g(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        attention = torch.softmax(torch.bmm(q, k), dim=-1)  # (B, HW, HW)
        z = torch.bmm(attention, v).transpose(1, 2).reshape(b, self.inter_channels, h, w)
        return x + self.out(z)

"""Non-local (self-attention) block of Wang et al. (2018), as used by the paper's Table 4."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NonLocalBlock2d"]


class NonLocalBlock2d(nn.Module):
    """Embedded-Gaussian non-local block with a residual connection.

    ``y_i = x_i + W_z sum_j softmax_j(theta(x_i) . phi(x_j)) g(x_j)``, with ``theta``, ``phi``,
    ``g`` 1 x 1 convolutions to ``inter_channels`` and ``W_z`` a 1 x 1 convolution back to
    ``channels``. ``W_z`` starts at zero, so a freshly inserted block is the identity (the role
    of the zero-initialised batch-norm scale in Wang et al.; no batch norm here because the
    recurrent network runs on small batches).

    Parameters
    ----------
    channels : int
        Channels of the input and output.
    inter_channels : int, optional
        Embedding channels; default ``max(channels // 2, 1)``.
    subsample : int, default 1
        Max-pool ``phi(x)`` and ``g(x)`` by this factor per axis before the attention (the
        "subsampling" of Wang et al., Section 3.3): every position still attends over the whole
        frame, through ``(H / s) (W / s)`` pooled keys, and the pairwise cost drops by ``s^2``.
        ``H`` and ``W`` must then be multiples of ``s``.

    Notes
    -----
    Cost ``O(H W (H W / s^2) C')`` per image: at 32 x 32 with ``s = 1`` the attention matrix has a
    million entries per image, several times the cost of a 16-channel ConvLSTM cell.

    Shapes: ``(B, channels, H, W) -> (B, channels, H, W)``.

    Examples
    --------
    >>> block = NonLocalBlock2d(8, subsample=2)
    >>> x = torch.randn(2, 8, 6, 6)
    >>> torch.equal(block(x), x)  # W_z = 0 at initialisation: the identity
    True
    """

    def __init__(self, channels: int, inter_channels: int | None = None, subsample: int = 1):
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        inter = max(channels // 2, 1) if inter_channels is None else int(inter_channels)
        if inter < 1:
            raise ValueError(f"inter_channels must be positive, got {inter_channels!r}")
        if not isinstance(subsample, int) or isinstance(subsample, bool) or subsample < 1:
            raise ValueError(f"subsample must be a positive int, got {subsample!r}")
        self.channels = channels
        self.inter_channels = inter
        self.subsample = subsample
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
        s = self.subsample
        if h % s or w % s:
            raise ValueError(f"x's spatial size {h} x {w} is not a multiple of subsample={s}")
        key, value = self.phi(x), self.g(x)
        if s > 1:
            key, value = F.max_pool2d(key, s), F.max_pool2d(value, s)
        q = self.theta(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        k = key.flatten(2)  # (B, C', HW / s^2)
        v = value.flatten(2).transpose(1, 2)  # (B, HW / s^2, C')
        attention = torch.softmax(torch.bmm(q, k), dim=-1)  # (B, HW, HW / s^2)
        z = torch.bmm(attention, v).transpose(1, 2).reshape(b, self.inter_channels, h, w)
        return x + self.out(z)

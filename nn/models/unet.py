"""U-Net, ARMA U-Net and their non-local variants (the paper's Table 2).

The network is the U-Net of the paper's segmentation experiment (the official code's, after
Ronneberger et al. 2015 with batch norm): ``L`` levels of widths ``w_0 .. w_{L-1}`` (paper:
64, 128, 256, 512, 1024). Every level is a block of two 3 x 3 convolutions, each followed by
batch norm and ReLU; the encoder halves the resolution with 2 x 2 max pooling between levels.
The decoder upsamples by 2 (nearest neighbour) followed by one 3 x 3 convolution + BN + ReLU
to the next-lower width ("up-conv"), concatenates the encoder output of that level (skip
connection) and applies a block of two convolutions. A 1 x 1 convolution maps the last
``w_0`` channels to the output channels (logits).

The 3 x 3 convolution is a factory argument ``conv(in_channels, out_channels, kernel_size,
dilation) -> nn.Module`` with the signature of :func:`~arma_core.nn.models.conv2d_gate`
(``nn.Conv2d`` with bias and "same" padding, the default) and
:func:`~arma_core.nn.models.arma2d_gate` (``ARMA2d``): with the latter every convolution of
every block and up-conv is an ARMA layer, which is the paper's ARMA U-Net; the 1 x 1 output
convolution stays a convolution. ``armafy(UNet(...), exclude=UNET_ARMAFY_EXCLUDE)`` builds the
same network from a plain one (tested).

Parameter counts at the paper's widths, 3 input channels, 1 output channel (tested):
U-Net 34,527,041; ARMA U-Net (one length-3 AR factor per axis) 34,554,433. The paper's Table 2
prints 3.453M / 3.455M, ten times too small.

The non-local variants insert a :class:`~arma_core.nn.models.NonLocalBlock2d` after the
encoder blocks of ``nonlocal_levels`` (default of :func:`nonlocal_unet`: the bottom level, the
lowest resolution, where its ``O((H W)^2)`` cost is smallest). The paper's Table 2 cites the
non-local U-Net of Wang et al. (AAAI 2020) but the official code has no non-local U-Net; this
is a plain U-Net with non-local blocks, not Wang et al.'s architecture.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .convlstm import GateConvFactory, arma2d_gate, conv2d_gate
from .nonlocal_block import NonLocalBlock2d

__all__ = ["UNET_ARMAFY_EXCLUDE", "UNET_WIDTHS", "ConvFactory", "UNet", "nonlocal_unet", "unet"]

#: ``conv(in_channels, out_channels, kernel_size, dilation) -> nn.Module`` ("same" padding).
ConvFactory = GateConvFactory

#: The widths of the paper's U-Net (level 0 at full resolution, level 4 at 1/16).
UNET_WIDTHS = (64, 128, 256, 512, 1024)

#: Module names that :func:`arma_core.nn.armafy` must leave alone to turn a plain :class:`UNet`
#: into the ARMA U-Net: the 1 x 1 output convolution and the 1 x 1 convolutions inside the
#: non-local blocks.
UNET_ARMAFY_EXCLUDE = ("head", "nonlocal_blocks")


def _widths(widths: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(w) for w in widths)
    except TypeError:
        raise TypeError(f"widths must be a sequence of ints, got {widths!r}") from None
    if len(out) < 1 or any(w < 1 for w in out) or any(w != v for w, v in zip(out, widths)):
        raise ValueError(f"widths must be one or more positive ints, got {widths!r}")
    return out


def _block(conv: ConvFactory, in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3 x 3 convolutions, each with batch norm and ReLU."""
    return nn.Sequential(
        conv(in_channels, out_channels, 3, 1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        conv(out_channels, out_channels, 3, 1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _up(conv: ConvFactory, in_channels: int, out_channels: int) -> nn.Sequential:
    """Nearest-neighbour upsampling by 2, then a 3 x 3 convolution with batch norm and ReLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        conv(in_channels, out_channels, 3, 1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with a pluggable 3 x 3 convolution (plain, ARMA) and optional non-local blocks.

    Parameters
    ----------
    in_channels, out_channels : int
        Input channels (3 for RGB) and output channels (logits; 1 for a binary mask).
    widths : sequence of int
        Channels per level, full resolution first (paper: :data:`UNET_WIDTHS`); ``len(widths)``
        levels, ``len(widths) - 1`` poolings.
    conv : callable
        ``conv(in_channels, out_channels, kernel_size, dilation) -> nn.Module`` mapping
        ``(B, in, H, W)`` to ``(B, out, H, W)``; default :func:`conv2d_gate` (``nn.Conv2d``).
        :func:`arma2d_gate` gives the ARMA U-Net.
    nonlocal_levels : sequence of int
        Encoder levels (0 = full resolution, ``-1`` = bottom) followed by a
        :class:`NonLocalBlock2d` (embedding ``width // 2`` channels; the identity at
        initialisation).

    Notes
    -----
    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H, W)``; ``H`` and ``W`` must be multiples
    of ``2 ** (len(widths) - 1)``. With ARMA layers every level must also be at least 3 pixels
    wide (``ARMA2d`` raises otherwise).

    Examples
    --------
    >>> import torch
    >>> from arma_core.nn.models import UNet, arma2d_gate
    >>> net = UNet(1, 2, widths=(4, 8, 16))
    >>> net(torch.zeros(2, 1, 16, 16)).shape
    torch.Size([2, 2, 16, 16])
    >>> arma = UNet(1, 2, widths=(4, 8, 16), conv=arma2d_gate())
    >>> # 4 AR parameters per output channel of the 12 convolutions: 4 * (2 * (4 + 8 + 16) + 2 * (4 + 8) + (4 + 8))
    >>> sum(p.numel() for p in arma.parameters()) - sum(p.numel() for p in net.parameters())
    368
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        widths: Sequence[int] = UNET_WIDTHS,
        *,
        conv: ConvFactory = conv2d_gate,
        nonlocal_levels: Sequence[int] = (),
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not callable(conv):
            raise TypeError(f"conv must be a callable factory, got {type(conv).__name__}")
        w = _widths(widths)
        levels = len(w)
        chosen = set()
        for level in nonlocal_levels:
            if isinstance(level, bool) or not isinstance(level, int) or not -levels <= level < levels:
                raise ValueError(f"nonlocal_levels must hold ints in [-{levels}, {levels}), got {nonlocal_levels!r}")
            chosen.add(level % levels)
        self.widths = w
        self.nonlocal_levels = tuple(sorted(chosen))
        self.encoder = nn.ModuleList(_block(conv, in_channels if i == 0 else w[i - 1], w[i]) for i in range(levels))
        self.pool = nn.MaxPool2d(2)
        self.nonlocal_blocks = nn.ModuleDict({str(i): NonLocalBlock2d(w[i]) for i in self.nonlocal_levels})
        self.up = nn.ModuleList(_up(conv, w[i + 1], w[i]) for i in range(levels - 1))
        self.decoder = nn.ModuleList(_block(conv, 2 * w[i], w[i]) for i in range(levels - 1))
        self.head = nn.Conv2d(w[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
        factor = 2 ** (len(self.widths) - 1)
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(
                f"the input's height and width must be multiples of {factor} for a U-Net with "
                f"{len(self.widths)} levels, got {tuple(x.shape[-2:])}"
            )
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            if str(i) in self.nonlocal_blocks:
                x = self.nonlocal_blocks[str(i)](x)
            skips.append(x)
        for i in reversed(range(len(self.up))):
            x = self.decoder[i](torch.cat([skips[i], self.up[i](x)], dim=1))
        return self.head(x)


def unet(
    in_channels: int = 3,
    out_channels: int = 1,
    widths: Sequence[int] = UNET_WIDTHS,
    *,
    arma: bool = False,
    nonlocal_levels: Sequence[int] = (),
    **ar_options,
) -> UNet:
    """The paper's U-Net (``arma=False``) or ARMA U-Net (``arma=True``).

    Parameters
    ----------
    in_channels, out_channels, widths, nonlocal_levels
        As :class:`UNet`.
    arma : bool
        Every 3 x 3 convolution an :class:`~arma_core.nn.ARMA2d` (:func:`arma2d_gate`).
    **ar_options
        ``ar_order``, ``ar_boundary``, ``ar_region``, ``ar_dilation``, ``ar_init`` for
        :func:`arma2d_gate` (default: one factor per axis, circular boundary, strip region,
        identity start, as the official code's ARMA U-Net up to the region).

    Examples
    --------
    >>> from arma_core.nn.models import unet
    >>> sum(p.numel() for p in unet().parameters()), sum(p.numel() for p in unet(arma=True).parameters())
    (34527041, 34554433)
    """
    if ar_options and not arma:
        raise TypeError(f"AR options {sorted(ar_options)} were given with arma=False")
    conv = arma2d_gate(**ar_options) if arma else conv2d_gate
    return UNet(in_channels, out_channels, widths, conv=conv, nonlocal_levels=nonlocal_levels)


def nonlocal_unet(
    in_channels: int = 3,
    out_channels: int = 1,
    widths: Sequence[int] = UNET_WIDTHS,
    *,
    arma: bool = False,
    nonlocal_levels: Sequence[int] = (-1,),
    **ar_options,
) -> UNet:
    """:func:`unet` with a non-local block after the bottom encoder level (by default).

    Examples
    --------
    >>> from arma_core.nn.models import nonlocal_unet
    >>> sum(p.numel() for p in nonlocal_unet(widths=(8, 16)).parameters())
    7905
    """
    return unet(in_channels, out_channels, widths, arma=arma, nonlocal_levels=nonlocal_levels, **ar_options)

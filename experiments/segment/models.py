"""The segmentation models of ``arma segment``: the flat full-resolution networks of the
receptive-field benchmark and the four U-Nets of the paper's Table 2, by name.

Flat network (:class:`FlatSegNet`): ``depth`` layers of a ``kernel x kernel`` convolution
(dilation ``dilation``, "same" zero padding) + batch norm + ReLU at full resolution, ``width``
channels, then a 1 x 1 convolution to the logits. Its receptive field is
``1 + depth * dilation * (kernel - 1)`` pixels per axis; with an AR filter after every
convolution (``ar=True``: every convolution an :class:`arma_core.nn.ARMA2d`) every output pixel
sees the whole input.

U-Nets: :class:`arma_core.nn.models.UNet` at the widths the run asks for.

Examples
--------
>>> from arma_experiments.segment.models import SEGMENT_MODELS, build_model, count_parameters
>>> model = build_model("conv3", in_channels=1, out_channels=11, depth=6, width=32)
>>> model.receptive_field, count_parameters(model)
(13, 47307)
>>> count_parameters(build_model("arma3", in_channels=1, out_channels=11, depth=6, width=32)) - 47307
768
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from arma_core.nn.models import UNet, arma2d_gate, conv2d_gate

__all__ = ["SEGMENT_MODELS", "FlatSegNet", "ModelSpec", "build_model", "count_parameters"]


class FlatSegNet(nn.Module):
    """Full-resolution segmentation network: ``depth`` x (conv + BN + ReLU), 1 x 1 head.

    Parameters
    ----------
    in_channels, out_channels : int
    depth, width : int
        Number of convolution layers and their channels.
    kernel_size, dilation : int
        Of every convolution (odd kernel; "same" padding ``dilation * (kernel_size - 1) / 2``).
    ar : bool
        Every convolution an ``ARMA2d`` with one length-3 AR factor per axis.
    ar_boundary : str
        The AR solve's boundary rule (the paper's: ``"circular"``).

    Notes
    -----
    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        depth: int = 6,
        width: int = 32,
        kernel_size: int = 3,
        dilation: int = 1,
        ar: bool = False,
        ar_boundary: str = "circular",
    ):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("depth", depth),
            ("width", width),
            ("dilation", dilation),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        conv = arma2d_gate(ar_boundary=ar_boundary) if ar else conv2d_gate
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [
                conv(in_channels if i == 0 else width, width, kernel_size, dilation),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, out_channels, 1)
        self.ar = ar
        self.receptive_field = 1 + depth * dilation * (kernel_size - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass(frozen=True)
class ModelSpec:
    """A named model: its Table-2-style label, family and builder options."""

    label: str
    family: str  # "flat" or "unet"
    kernel_size: int = 3
    dilation: int = 1
    arma: bool = False
    nonlocal_block: bool = False
    paper: dict | None = None  # Table 2's row (ISIC), for the U-Nets


# Table 2 of the paper (ISIC 2018, mean +- std over 10 seeds; params as printed, 10x too small).
_TABLE2 = {
    "unet": {
        "params": "3.453M",
        "ACC": (0.946, 0.003),
        "SE": (0.884, 0.019),
        "SP": (0.977, 0.005),
        "PC": (0.857, 0.020),
        "F1": (0.842, 0.009),
        "JS": (0.754, 0.011),
    },
    "nonlocal-unet": {
        "params": "4.403M",
        "ACC": (0.945, 0.003),
        "SE": (0.877, 0.017),
        "SP": (0.973, 0.004),
        "PC": (0.844, 0.014),
        "F1": (0.831, 0.012),
        "JS": (0.741, 0.013),
    },
    "arma-unet": {
        "params": "3.455M",
        "ACC": (0.955, 0.003),
        "SE": (0.896, 0.011),
        "SP": (0.972, 0.005),
        "PC": (0.873, 0.011),
        "F1": (0.861, 0.007),
        "JS": (0.780, 0.009),
    },
    "nonlocal-arma-unet": {
        "params": "4.405M",
        "ACC": (0.960, 0.002),
        "SE": (0.909, 0.009),
        "SP": (0.968, 0.004),
        "PC": (0.870, 0.011),
        "F1": (0.870, 0.006),
        "JS": (0.790, 0.008),
    },
}

SEGMENT_MODELS: dict[str, ModelSpec] = {
    "conv3": ModelSpec("Conv 3x3", "flat"),
    "conv5": ModelSpec("Conv 5x5", "flat", kernel_size=5),
    "dilated-conv3": ModelSpec("Dilated conv 3x3 (d=2)", "flat", dilation=2),
    "arma3": ModelSpec("ARMA 3x3", "flat", arma=True),
    "unet": ModelSpec("U-Net", "unet", paper=_TABLE2["unet"]),
    "nonlocal-unet": ModelSpec("NL U-Net", "unet", nonlocal_block=True, paper=_TABLE2["nonlocal-unet"]),
    "arma-unet": ModelSpec("ARMA U-Net", "unet", arma=True, paper=_TABLE2["arma-unet"]),
    "nonlocal-arma-unet": ModelSpec(
        "NL ARMA U-Net", "unet", arma=True, nonlocal_block=True, paper=_TABLE2["nonlocal-arma-unet"]
    ),
}


def build_model(
    name: str,
    *,
    in_channels: int,
    out_channels: int,
    depth: int = 6,
    width: int = 32,
    widths: Sequence[int] = (64, 128, 256, 512, 1024),
    ar_boundary: str = "circular",
) -> nn.Module:
    """The model ``name`` of :data:`SEGMENT_MODELS`.

    Parameters
    ----------
    name : str
    in_channels, out_channels : int
    depth, width : int
        Flat networks only.
    widths : sequence of int
        U-Nets only (paper: 64 ... 1024).
    ar_boundary : str
        AR boundary rule of the ARMA models.
    """
    if name not in SEGMENT_MODELS:
        raise ValueError(f"model must be one of {sorted(SEGMENT_MODELS)}, got {name!r}")
    spec = SEGMENT_MODELS[name]
    if spec.family == "flat":
        return FlatSegNet(
            in_channels,
            out_channels,
            depth=depth,
            width=width,
            kernel_size=spec.kernel_size,
            dilation=spec.dilation,
            ar=spec.arma,
            ar_boundary=ar_boundary,
        )
    conv: Callable = arma2d_gate(ar_boundary=ar_boundary) if spec.arma else conv2d_gate
    return UNet(in_channels, out_channels, widths, conv=conv, nonlocal_levels=(-1,) if spec.nonlocal_block else ())


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

"""VGG-11 and ResNet-18 for 32 x 32 images whose convolutions all come from one factory.

The factory (:func:`conv_factory`) decides what every 3 x 3 (and 1 x 1 shortcut) convolution is:

- ``"conv"``: ``nn.Conv2d`` (the baseline);
- ``"strip"``: ``ARMA2d`` with Theorem 6's re-parameterization (``|f_-1 + f_1| < 1``);
- ``"diamond"``: ``ARMA2d`` with the official code's re-parameterization (``|f_-1| + |f_1| < 1``);
- ``"raw"``: ``ARMA2d(ar_region="raw")``, the taps themselves as parameters, unconstrained and
  solved by FFT division as the official code did: the "without re-parameterization" arm of the
  paper's Figure 5.

Every AR filter starts at zero (the identity), as in Figure 5, with circular boundaries (the
official layer's). An AR factor needs at least 3 samples along each axis; where a convolution's
output is smaller (VGG-11's last two convolutions see 2 x 2 maps at 32 x 32 input) the factory
returns a plain convolution, which is what the official layer effectively computes there (it
returns its input unfiltered).

Both networks follow the CIFAR-style layouts of the official code (``VGG.py`` / ``ResNet.py``):
VGG-11 ``64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M``, optional batch norm (the
official training script parses the flag but never passes it, so its VGG ran without), a
3-layer classifier with dropout, He-normal (fan-out) initialisation; ResNet-18: a 3 x 3 stem
without pooling, four stages of two basic blocks (64-128-256-512, strides 1-2-2-2), 1 x 1
projection shortcuts (ARMA too, as in the official code), global average pooling and one
linear layer. ``width`` scales every channel count (``width=0.25``: a quarter-width network).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from arma_core.nn import ARMA2d

__all__ = [
    "CONV_KINDS",
    "MODELS",
    "VGG11",
    "ConvFactory",
    "ResNet18",
    "build_model",
    "conv_factory",
    "count_parameters",
]

#: What a convolution of the networks can be (see the module docstring).
CONV_KINDS = ("conv", "strip", "diamond", "raw")

_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


@dataclasses.dataclass(frozen=True)
class ConvFactory:
    """Makes every convolution of a network; see :func:`conv_factory`."""

    kind: str = "conv"
    ar_order: int = 1
    ar_boundary: str = "circular"

    def __call__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, size: int, stride: int = 1, bias: bool = True
    ) -> nn.Conv2d:
        """A convolution with ``padding = kernel_size // 2`` whose output is ``size`` x ``size``.

        Returns ``nn.Conv2d`` for ``kind="conv"`` and where ``size < 3`` (no room for an AR
        factor), else :class:`arma_core.nn.ARMA2d` with ``ar_region=kind`` (an ``nn.Conv2d``
        subclass).
        """
        padding = kernel_size // 2
        if self.kind == "conv" or size < 3:
            return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        return ARMA2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            bias=bias,
            ar_order=self.ar_order,
            ar_boundary=self.ar_boundary,
            ar_region=self.kind,
            ar_init=0.0,
        )


def conv_factory(kind: str = "conv", *, ar_order: int = 1, ar_boundary: str = "circular") -> ConvFactory:
    """The convolution factory of :class:`VGG11` and :class:`ResNet18`.

    Parameters
    ----------
    kind : {"conv", "strip", "diamond", "raw"}
        Plain convolution, or ARMA2d with that AR region (``"raw"``: unconstrained taps).
    ar_order : int
        AR factors per axis (``Q``); the official ``a_kernel_size = 3`` is 1.
    ar_boundary : str
        Boundary rule of the AR solve; ``"circular"`` as the official code.

    Examples
    --------
    >>> make = conv_factory("strip")
    >>> type(make(3, 8, 3, size=32)).__name__, type(make(3, 8, 3, size=2)).__name__
    ('ARMA2d', 'Conv2d')
    """
    if kind not in CONV_KINDS:
        raise ValueError(f"kind must be one of {CONV_KINDS}, got {kind!r}")
    if isinstance(ar_order, bool) or not isinstance(ar_order, int) or ar_order < 1:
        raise ValueError(f"ar_order must be an integer >= 1, got {ar_order!r}")
    return ConvFactory(kind, ar_order, ar_boundary)


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _check_common(width: float, in_channels: int, num_classes: int, image_size: int) -> None:
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width must be a positive number, got {width!r}")
    for name, value, low in (
        ("in_channels", in_channels, 1),
        ("num_classes", num_classes, 2),
        ("image_size", image_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


class VGG11(nn.Module):
    """VGG-11 for small images (the official code's ``VGG('VGG11')``), any convolution.

    Parameters
    ----------
    conv : ConvFactory
        From :func:`conv_factory`.
    width : float
        Channel multiplier (1.0: 64 ... 512 channels, classifier 512 wide).
    in_channels, num_classes : int
    image_size : int
        Input height = width; must be divisible by 32 (five 2 x 2 max-pools).
    batch_norm : bool
        BatchNorm after every convolution (the official script's VGG ran without).
    dropout : bool
        Dropout (p = 0.5) before the classifier's first two linear layers, as the official code.

    Notes
    -----
    Input ``(N, in_channels, image_size, image_size)``; output logits ``(N, num_classes)``.

    Examples
    --------
    >>> net = VGG11(conv_factory("strip"), width=0.25, in_channels=1)
    >>> net(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        conv: ConvFactory,
        *,
        width: float = 1.0,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int = 32,
        batch_norm: bool = False,
        dropout: bool = True,
    ):
        super().__init__()
        _check_common(width, in_channels, num_classes, image_size)
        if image_size % 32:
            raise ValueError(f"image_size must be divisible by 32 (5 max-pools), got {image_size}")
        layers: list[nn.Module] = []
        size, channels = image_size, in_channels
        for item in _VGG11:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                size //= 2
                continue
            out = _scaled(int(item), width)
            layers.append(conv(channels, out, 3, size=size))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            channels = out
        self.features = nn.Sequential(*layers)
        flat = channels * size * size
        hidden = _scaled(512, width)
        drop = (lambda: nn.Dropout(0.5)) if dropout else nn.Identity
        self.classifier = nn.Sequential(
            drop(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            drop(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class _BasicBlock(nn.Module):
    def __init__(self, conv: ConvFactory, in_planes: int, planes: int, stride: int, size: int):
        super().__init__()
        size //= stride
        self.conv1 = conv(in_planes, planes, 3, size=size, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, size=size, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                conv(in_planes, planes, 1, size=size, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for small images (the official code's ``ResNet_('ResNet18')``), any convolution.

    Parameters
    ----------
    conv : ConvFactory
        From :func:`conv_factory`; also makes the 1 x 1 projection shortcuts.
    width : float
        Channel multiplier (1.0: stages of 64, 128, 256, 512 channels).
    in_channels, num_classes : int
    image_size : int
        Input height = width; divisible by 8 (three stride-2 stages).

    Notes
    -----
    Input ``(N, in_channels, image_size, image_size)``; output logits ``(N, num_classes)``.

    Examples
    --------
    >>> net = ResNet18(conv_factory("conv"), width=0.125, in_channels=3)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        conv: ConvFactory,
        *,
        width: float = 1.0,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int = 32,
    ):
        super().__init__()
        _check_common(width, in_channels, num_classes, image_size)
        if image_size % 8:
            raise ValueError(f"image_size must be divisible by 8 (three stride-2 stages), got {image_size}")
        planes = [_scaled(c, width) for c in (64, 128, 256, 512)]
        self.conv1 = conv(in_channels, planes[0], 3, size=image_size, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        stages, size, in_planes = [], image_size, planes[0]
        for i, p in enumerate(planes):
            stride = 1 if i == 0 else 2
            blocks = [_BasicBlock(conv, in_planes, p, stride, size), _BasicBlock(conv, p, p, 1, size // stride)]
            stages.append(nn.Sequential(*blocks))
            size //= stride
            in_planes = p
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(planes[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(torch.mean(out, dim=(-2, -1)), 1))


#: Names accepted by :func:`build_model`.
MODELS = ("vgg11", "resnet18")


def build_model(
    name: str,
    kind: str,
    *,
    width: float = 1.0,
    in_channels: int = 3,
    num_classes: int = 10,
    image_size: int = 32,
    batch_norm: bool = False,
    dropout: bool = True,
    ar_order: int = 1,
) -> nn.Module:
    """``VGG11`` or ``ResNet18`` (``name``) with convolutions of ``kind`` (see :func:`conv_factory`).

    ``batch_norm`` and ``dropout`` apply to VGG-11 only (ResNet-18 always has batch norm and no
    dropout).

    Examples
    --------
    >>> count_parameters(build_model("vgg11", "raw", width=0.25, in_channels=1)) > 0
    True
    """
    conv = conv_factory(kind, ar_order=ar_order)
    if name == "vgg11":
        return VGG11(
            conv,
            width=width,
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            batch_norm=batch_norm,
            dropout=dropout,
        )
    if name == "resnet18":
        return ResNet18(conv, width=width, in_channels=in_channels, num_classes=num_classes, image_size=image_size)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

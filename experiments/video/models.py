"""The networks of the paper's video tables by name, at the paper's size or scaled for a CPU.

The building blocks (:class:`arma_core.nn.models.ConvLSTMNet`, its cells and gate factories)
are the library's; this module names the configurations the paper reports (Table 3 and the
non-local variants of Table 4), with the paper's parameter counts and scores for the result
tables, and the network sizes of the presets (:data:`PAPER_SIZE`, :data:`CPU_SIZE`): every
model of a preset has the same depth, width and skip connections and differs only in its gate
convolution (kernel, dilation, AR part) and the non-local blocks.

Examples
--------
>>> net = build_video_model("arma-lstm", size=CPU_SIZE)
>>> count_parameters(net), count_parameters(build_video_model("convlstm3", size=CPU_SIZE))
(75617, 74593)
>>> count_parameters(build_video_model("convlstm3"))  # the paper's size: Table 3's 0.887M
887489
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from arma_core.nn.models import ConvLSTMNet, arma2d_gate

__all__ = [
    "CPU_SIZE",
    "PAPER_SIZE",
    "TABLE3_MODELS",
    "TABLE4_MODELS",
    "VIDEO_MODELS",
    "NetworkSize",
    "VideoModelSpec",
    "build_video_model",
    "count_parameters",
]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True)
class NetworkSize:
    """Depth and width of a :class:`~arma_core.nn.models.ConvLSTMNet`, shared by a preset's models.

    Attributes
    ----------
    hidden : int
        Hidden channels of every cell.
    blocks : int
        Number of blocks (a skip connection joins block ``b - skip_stride`` to block ``b``).
    cells_per_block : int
        ConvLSTM cells per block.
    skip_stride : int
        Stride of the skip connections (0: none).
    nonlocal_subsample : int
        Max-pooling of the non-local blocks' keys and values (Table 4's models only; see
        :class:`~arma_core.nn.models.NonLocalBlock2d`).
    """

    hidden: int = 32
    blocks: int = 4
    cells_per_block: int = 3
    skip_stride: int = 2
    nonlocal_subsample: int = 1

    def __post_init__(self):
        for name in ("hidden", "blocks", "cells_per_block", "nonlocal_subsample"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.skip_stride, int) or self.skip_stride < 0:
            raise ValueError(f"skip_stride must be a non-negative int, got {self.skip_stride!r}")


#: The paper's network: 4 blocks x 3 cells x 32 channels, skips every 2 blocks (Table 3's counts).
PAPER_SIZE = NetworkSize(32, 4, 3, 2)
#: The CPU preset's network: 4 blocks x 1 cell x 16 channels, skips every 2 blocks; non-local
#: blocks attend over 2 x 2 max-pooled keys (4x cheaper; at full resolution they cost 3-4 times
#: the rest of the network on 32 x 32 frames).
CPU_SIZE = NetworkSize(16, 4, 1, 2, 2)


@dataclass(frozen=True)
class VideoModelSpec:
    """A named network of Tables 3 and 4.

    ``paper_params`` is the parameter count as Table 3 prints it (in millions), ``None`` where
    the paper prints none (the non-local variants of Table 4); ``paper_table3`` maps a speed to
    the paper's ``(PSNR, SSIM)``; ``base`` names the model a non-local variant extends.
    """

    name: str
    label: str
    kernel_size: int = 3
    dilation: int = 1
    arma: bool = False
    nonlocal_blocks: int = 0
    paper_params: float | None = None
    paper_table3: dict = field(default_factory=dict)
    base: str | None = None

    def build(self, size: NetworkSize = PAPER_SIZE, **arma_options) -> ConvLSTMNet:
        """The network at ``size``; ``arma_options`` go to :func:`arma2d_gate` (ARMA models only)."""
        if arma_options and not self.arma:
            raise ValueError(f"model {self.name!r} has no AR part; got options {sorted(arma_options)}")
        gate = arma2d_gate(**arma_options) if self.arma else None
        return ConvLSTMNet(
            hidden_channels=(size.hidden,) * size.blocks,
            cells_per_block=size.cells_per_block,
            skip_stride=size.skip_stride,
            kernel_size=self.kernel_size,
            dilation=self.dilation,
            gate_conv=gate,
            nonlocal_after=_nonlocal_after(size.blocks, self.nonlocal_blocks),
            nonlocal_subsample=size.nonlocal_subsample,
        )


def _nonlocal_after(blocks: int, count: int) -> tuple[int, ...]:
    """The blocks followed by a non-local block: the ``count`` middle ones.

    Table 4 inserts two non-local blocks; where is not stated (the official code is broken).
    The middle blocks hold the deepest features before the output; with 4 blocks: (1, 2).
    """
    if count == 0:
        return ()
    if count > blocks:
        raise ValueError(f"{count} non-local blocks do not fit after {blocks} blocks")
    start = (blocks - count) // 2
    return tuple(range(start, start + count))


# Table 3 of the paper: (PSNR, SSIM) at speeds 1x, 2x, 3x.
_T3 = {
    "convlstm3": {1: (18.24, 0.867), 2: (16.62, 0.827), 3: (15.81, 0.810)},
    "convlstm5": {1: (19.58, 0.901), 2: (17.61, 0.856), 3: (16.99, 0.841)},
    "dilated-convlstm": {1: (19.16, 0.893), 2: (17.92, 0.858), 3: (17.48, 0.846)},
    "dilated-arma-lstm": {1: (19.72, 0.904), 2: (18.05, 0.870), 3: (17.65, 0.855)},
    "arma-lstm": {1: (19.72, 0.899), 2: (18.73, 0.881), 3: (18.13, 0.869)},
    # Table 4 (original speed only).
    "nonlocal-convlstm3": {1: (19.45, 0.895)},
    "nonlocal-convlstm5": {1: (19.18, 0.891)},
    "nonlocal-arma-lstm": {1: (19.62, 0.897)},
}

VIDEO_MODELS: dict[str, VideoModelSpec] = {
    spec.name: spec
    for spec in (
        VideoModelSpec("convlstm3", "Conv-LSTM (size 3)", 3, 1, False, 0, 0.887, _T3["convlstm3"]),
        VideoModelSpec("convlstm5", "Conv-LSTM (size 5)", 5, 1, False, 0, 2.462, _T3["convlstm5"]),
        VideoModelSpec("dilated-convlstm", "Dilated Conv-LSTM", 3, 2, False, 0, 0.887, _T3["dilated-convlstm"]),
        VideoModelSpec("dilated-arma-lstm", "Dilated ARMA-LSTM", 3, 2, True, 0, 0.893, _T3["dilated-arma-lstm"]),
        VideoModelSpec("arma-lstm", "ARMA-LSTM (size 3)", 3, 1, True, 0, 0.893, _T3["arma-lstm"]),
        VideoModelSpec(
            "nonlocal-convlstm3",
            "Non-local Conv-LSTM (size 3)",
            3,
            1,
            False,
            2,
            None,
            _T3["nonlocal-convlstm3"],
            "convlstm3",
        ),
        VideoModelSpec(
            "nonlocal-convlstm5",
            "Non-local Conv-LSTM (size 5)",
            5,
            1,
            False,
            2,
            None,
            _T3["nonlocal-convlstm5"],
            "convlstm5",
        ),
        VideoModelSpec(
            "nonlocal-arma-lstm",
            "Non-local ARMA-LSTM (size 3)",
            3,
            1,
            True,
            2,
            None,
            _T3["nonlocal-arma-lstm"],
            "arma-lstm",
        ),
    )
}

#: Table 3's models in the paper's row order.
TABLE3_MODELS = ("convlstm3", "convlstm5", "dilated-convlstm", "dilated-arma-lstm", "arma-lstm")
#: Table 4's non-local models.
TABLE4_MODELS = ("nonlocal-convlstm3", "nonlocal-convlstm5", "nonlocal-arma-lstm")


def build_video_model(name: str, size: NetworkSize = PAPER_SIZE, **arma_options) -> ConvLSTMNet:
    """Build a network of Table 3 / 4 by name (see :data:`VIDEO_MODELS`) at ``size``.

    Raises
    ------
    ValueError
        For an unknown ``name``.
    """
    if name not in VIDEO_MODELS:
        raise ValueError(f"unknown video model {name!r}; choose from {sorted(VIDEO_MODELS)}")
    return VIDEO_MODELS[name].build(size, **arma_options)

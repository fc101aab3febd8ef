"""ConvLSTM and ARMA-LSTM encoder-predictor networks of the paper's video experiments (Table 3).

The network is the one the paper calls "Conv-LSTM (size 3)" / "(size 5)": 4 blocks of 3
ConvLSTM cells with 32 hidden channels each, a skip connection that concatenates the output
of block ``b - skip_stride`` to the output of block ``b`` (for ``b >= skip_stride``) before it is
fed on, and a 1 x 1 output convolution followed by a sigmoid (frames live in ``[0, 1]``).
Every cell computes its four gates with one convolution over ``concat(input, hidden)``; the
ARMA-LSTM replaces that convolution by an :class:`arma_core.nn.ARMA2d`, so the AR filter acts
on all ``4 * hidden`` gate channels (Section 6 of the paper, "Pixel-level Video Prediction").

Parameter counts (the check that this is the paper's architecture, Table 3):
kernel 3: 887,489; kernel 5: 2,462,401; kernel 3 with one length-3 AR factor per axis:
893,633 (Table 3 prints 0.887M, 2.462M and 0.893M).

The gate convolution is pluggable: ``gate_conv(in_channels, out_channels, kernel_size,
dilation) -> nn.Module`` must map ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .nonlocal_block import NonLocalBlock2d

__all__ = [
    "ConvLSTMCell",
    "ConvLSTMNet",
    "GateConvFactory",
    "arma2d_gate",
    "conv2d_gate",
]

GateConvFactory = Callable[[int, int, int, int], nn.Module]


def _same_padding(kernel_size: int, dilation: int) -> int:
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd to keep the frame size, got {kernel_size}")
    return dilation * (kernel_size - 1) // 2


def conv2d_gate(in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> nn.Module:
    """Plain gate convolution: ``nn.Conv2d`` with bias and 'same' zero padding ``d (K - 1) / 2``."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        padding=_same_padding(kernel_size, dilation),
        dilation=dilation,
        bias=True,
    )


def arma2d_gate(
    *,
    ar_order: int = 1,
    ar_boundary: str = "circular",
    ar_region: str = "strip",
    ar_dilation: int = 1,
    ar_init: float = 0.0,
) -> GateConvFactory:
    """Factory of ARMA gate convolutions (the ARMA-LSTM of Table 3).

    Parameters
    ----------
    ar_order : int
        Number Q of length-3 AR factors per spatial axis (Table 3's ARMA-LSTM uses 1).
    ar_boundary, ar_region, ar_dilation, ar_init
        Passed to :class:`arma_core.nn.ARMA2d` unchanged (boundary rule of the AR solve, the
        stable region of the reparameterization, the AR dilation, initial ``theta``).

    Returns
    -------
    callable
        ``f(in_channels, out_channels, kernel_size, dilation) -> ARMA2d`` with 'same' padding.

    Raises
    ------
    ImportError
        When ``arma_core.nn.ARMA2d`` is not available.
    """
    try:
        from arma_core.nn import ARMA2d
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("arma2d_gate needs arma_core.nn.ARMA2d, which failed to import") from exc

    def make(in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> nn.Module:
        return ARMA2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=_same_padding(kernel_size, dilation),
            dilation=dilation,
            bias=True,
            ar_order=ar_order,
            ar_boundary=ar_boundary,
            ar_region=ar_region,
            ar_dilation=ar_dilation,
            ar_init=ar_init,
        )

    return make


class ConvLSTMCell(nn.Module):
    """One ConvLSTM cell without peepholes.

    ``[i, f, o, g] = gate_conv(concat(x, h))``; ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``;
    ``h' = sigmoid(o) tanh(c')``.

    Parameters
    ----------
    in_channels, hidden_channels : int
        Channels of the input ``x`` and of the hidden/cell states.
    kernel_size, dilation : int
        Gate convolution kernel (odd) and dilation; padding keeps the frame size.
    gate_conv : callable, optional
        ``gate_conv(in, out, kernel_size, dilation) -> nn.Module``; default :func:`conv2d_gate`.

    Notes
    -----
    Shapes: x: ``(B, in_channels, H, W)``; state: ``(h, c)`` each ``(B, hidden_channels, H, W)`` or
    ``None`` (zeros); returns ``h'`` and ``(h', c')``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
        gate_conv: GateConvFactory | None = None,
    ):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("hidden_channels", hidden_channels),
            ("kernel_size", kernel_size),
            ("dilation", dilation),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        _same_padding(kernel_size, dilation)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        factory = conv2d_gate if gate_conv is None else gate_conv
        self.gates = factory(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
            h, c = zeros, zeros
        else:
            h, c = state
        i, f, o, g = torch.chunk(self.gates(torch.cat([x, h], dim=1)), 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class ConvLSTMNet(nn.Module):
    """Stacked ConvLSTM encoder-predictor with skip connections (paper's video network).

    Parameters
    ----------
    input_channels : int
        Channels of a frame (1 for Moving-MNIST).
    hidden_channels : sequence of int
        Hidden channels of each block (paper: ``(32, 32, 32, 32)``).
    cells_per_block : int or sequence of int
        ConvLSTM cells per block (paper: 3).
    skip_stride : int
        The output of block ``b - skip_stride`` is concatenated to that of block ``b`` (paper: 2).
        ``0`` disables the skips.
    kernel_size, dilation : int
        Gate convolution kernel size and dilation, shared by every cell.
    gate_conv : callable, optional
        Gate convolution factory (:func:`conv2d_gate` by default, :func:`arma2d_gate` for ARMA-LSTM).
    nonlocal_after : sequence of int
        Insert a :class:`NonLocalBlock2d` after these blocks (Table 4 uses two blocks).
    nonlocal_subsample : int
        The non-local blocks' ``subsample`` (max-pooled keys and values; 1: none).

    Notes
    -----
    :meth:`forward` runs ``input_frames + future_frames - 1`` recurrent steps; the step ``t``
    predicts frame ``t + 1``. The first ``input_frames`` steps read the true frames; later steps
    read the previous prediction, or, with probability ``teacher_forcing_ratio`` per sequence,
    the true frame (scheduled sampling).
    """

    def __init__(
        self,
        input_channels: int = 1,
        hidden_channels: Sequence[int] = (32, 32, 32, 32),
        cells_per_block: int | Sequence[int] = 3,
        skip_stride: int = 2,
        kernel_size: int = 3,
        dilation: int = 1,
        gate_conv: GateConvFactory | None = None,
        nonlocal_after: Sequence[int] = (),
        nonlocal_subsample: int = 1,
    ):
        super().__init__()
        hidden_channels = tuple(int(h) for h in hidden_channels)
        num_blocks = len(hidden_channels)
        if num_blocks < 1:
            raise ValueError("hidden_channels must name at least one block")
        if isinstance(cells_per_block, int):
            cells_per_block = (cells_per_block,) * num_blocks
        cells_per_block = tuple(int(n) for n in cells_per_block)
        if len(cells_per_block) != num_blocks or min(cells_per_block) < 1:
            raise ValueError(
                f"cells_per_block must be a positive int or {num_blocks} positive ints, got {cells_per_block}"
            )
        if not isinstance(skip_stride, int) or skip_stride < 0:
            raise ValueError(f"skip_stride must be a non-negative int, got {skip_stride!r}")
        nonlocal_after = tuple(int(b) for b in nonlocal_after)
        for b in nonlocal_after:
            if not 0 <= b < num_blocks:
                raise ValueError(f"nonlocal_after entries must be in [0, {num_blocks}), got {b}")

        self.input_channels = input_channels
        self.hidden_channels = hidden_channels
        self.cells_per_block = cells_per_block
        self.skip_stride = skip_stride
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.nonlocal_after = nonlocal_after

        self.blocks = nn.ModuleList()
        channels = input_channels
        for b in range(num_blocks):
            cells = nn.ModuleList()
            for _ in range(cells_per_block[b]):
                cells.append(ConvLSTMCell(channels, hidden_channels[b], kernel_size, dilation, gate_conv))
                channels = hidden_channels[b]
            self.blocks.append(cells)
            channels = self._block_output_channels(b)
        self.nonlocal_blocks = nn.ModuleDict(
            {str(b): NonLocalBlock2d(hidden_channels[b], subsample=nonlocal_subsample) for b in nonlocal_after}
        )
        self.output = nn.Conv2d(channels, input_channels, kernel_size=1, bias=True)

    def _has_skip(self, b: int) -> bool:
        return self.skip_stride > 0 and b >= self.skip_stride

    def _block_output_channels(self, b: int) -> int:
        channels = self.hidden_channels[b]
        if self._has_skip(b):
            channels += self.hidden_channels[b - self.skip_stride]
        return channels

    def step(self, frame: torch.Tensor, states: list | None, *, logits: bool = False) -> tuple[torch.Tensor, list]:
        """One recurrent step: frame ``(B, C, H, W)`` -> next-frame prediction.

        The prediction is in ``(0, 1)``, or the output convolution's logits (before the
        sigmoid) with ``logits=True``; ``states`` is ``None`` at the first step, then what the
        previous step returned.
        """
        if states is None:
            states = [[None] * n for n in self.cells_per_block]
        x = frame
        outputs = []
        for b, cells in enumerate(self.blocks):
            assert isinstance(cells, nn.ModuleList)  # built so in __init__ (one ModuleList per block)
            for l, cell in enumerate(cells):
                x, states[b][l] = cell(x, states[b][l])
            if str(b) in self.nonlocal_blocks:
                x = self.nonlocal_blocks[str(b)](x)
            outputs.append(x)
            if self._has_skip(b):
                x = torch.cat([x, outputs[b - self.skip_stride]], dim=1)
        out = self.output(x)
        return (out if logits else torch.sigmoid(out)), states

    def forward(
        self,
        frames: torch.Tensor,
        input_frames: int = 10,
        future_frames: int = 10,
        teacher_forcing_ratio: float = 0.0,
        generator: torch.Generator | None = None,
        *,
        logits: bool = False,
    ) -> torch.Tensor:
        """Predict frames ``1 .. input_frames + future_frames - 1``.

        Parameters
        ----------
        frames : Tensor, shape (B, T, C, H, W)
            True frames; ``T >= input_frames``. With ``teacher_forcing_ratio > 0``, ``T`` must be
            ``input_frames + future_frames`` (the future frames are fed back for teacher forcing).
        input_frames, future_frames : int
            Observed and predicted frames (paper: 10 and 10).
        teacher_forcing_ratio : float in [0, 1]
            Probability, per sequence and step, of reading the true frame instead of the
            model's own prediction during the future steps.
        generator : torch.Generator, optional
            Source of the teacher-forcing coin flips.
        logits : bool
            Return the output convolution's logits instead of their sigmoid (for a
            cross-entropy loss such as ``binary_cross_entropy_with_logits``, which is exact
            where the sigmoid saturates). The recurrence is the same either way: the steps of
            the future read the sigmoid of the previous prediction.

        Returns
        -------
        Tensor, shape (B, input_frames + future_frames - 1, C, H, W)
            Output ``t`` predicts ``frames[:, t + 1]``; the last ``future_frames`` outputs are
            the forecast of the future. In ``(0, 1)``, or logits with ``logits=True``.
        """
        if frames.ndim != 5 or frames.shape[2] != self.input_channels:
            raise ValueError(f"frames must have shape (B, T, {self.input_channels}, H, W), got {tuple(frames.shape)}")
        if input_frames < 1 or future_frames < 1:
            raise ValueError(f"input_frames and future_frames must be >= 1, got {input_frames}, {future_frames}")
        if frames.shape[1] < input_frames:
            raise ValueError(f"frames has {frames.shape[1]} frames, fewer than input_frames={input_frames}")
        if not 0.0 <= teacher_forcing_ratio <= 1.0:
            raise ValueError(f"teacher_forcing_ratio must be in [0, 1], got {teacher_forcing_ratio}")
        total = input_frames + future_frames
        if teacher_forcing_ratio > 0 and frames.shape[1] < total:
            raise ValueError(f"teacher forcing needs all {total} frames, got {frames.shape[1]}")
        states = None
        predictions = []
        prediction: torch.Tensor | None = None
        for t in range(total - 1):
            if t < input_frames:
                x = frames[:, t]
            else:
                assert prediction is not None  # made at step t - 1 (input_frames >= 1)
                if teacher_forcing_ratio > 0:
                    coin = torch.rand(frames.shape[0], generator=generator, device="cpu")
                    mask = (coin < teacher_forcing_ratio).to(frames.dtype).to(frames.device)
                    mask = mask.view(-1, 1, 1, 1)
                    x = mask * frames[:, t] + (1 - mask) * prediction
                else:
                    x = prediction
            out, states = self.step(x, states, logits=True)
            prediction = torch.sigmoid(out)
            predictions.append(out if logits else prediction)
        return torch.stack(predictions, dim=1)

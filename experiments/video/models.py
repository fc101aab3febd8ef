"""The networks of the paper's video tables by name: Table 3 and Table 4's ConvLSTM / ARMA-LSTM.

The building blocks (:class:`arma_core.nn.models.ConvLSTMNet`, its cells and gate factories)
are the library's; this module only names the configurations the paper reports, with the
paper's parameter counts and scores for the result tables.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from arma_core.nn.models import ConvLSTMNet, arma2d_gate

__all__ = ["VideoModelSpec", "VIDEO_MODELS", "build_video_model", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True)
class VideoModelSpec:
    """A named network of Tables 3 and 4.

    ``paper_params`` is the parameter count as Table 3 prints it (in millions), ``None`` where
    the paper prints none (the non-local variants of Table 4).
    """

    name: str
    label: str
    kernel_size: int = 3
    dilation: int = 1
    arma: bool = False
    nonlocal_after: tuple[int, ...] = ()
    paper_params: float | None = None
    paper_table3: dict = field(default_factory=dict)

    def build(self, **arma_options) -> ConvLSTMNet:
        """The network; ``arma_options`` go to :func:`arma2d_gate` (ARMA models only)."""
        if arma_options and not self.arma:
            raise ValueError(f"model {self.name!r} has no AR part; got options {sorted(arma_options)}")
        gate = arma2d_gate(**arma_options) if self.arma else None
        return ConvLSTMNet(
            kernel_size=self.kernel_size,
            dilation=self.dilation,
            gate_conv=gate,
            nonlocal_after=self.nonlocal_after,
        )


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

# Table 4 inserts two non-local blocks; where is not stated (the official code is broken).
# We put them after the two middle blocks, where the features are deepest before the output.
_NONLOCAL_AFTER = (1, 2)

VIDEO_MODELS: dict[str, VideoModelSpec] = {
    spec.name: spec
    for spec in (
        VideoModelSpec("convlstm3", "Conv-LSTM (size 3)", 3, 1, False, (), 0.887, _T3["convlstm3"]),
        VideoModelSpec("convlstm5", "Conv-LSTM (size 5)", 5, 1, False, (), 2.462, _T3["convlstm5"]),
        VideoModelSpec("dilated-convlstm", "Dilated Conv-LSTM", 3, 2, False, (), 0.887,
                       _T3["dilated-convlstm"]),
        VideoModelSpec("dilated-arma-lstm", "Dilated ARMA-LSTM", 3, 2, True, (), 0.893,
                       _T3["dilated-arma-lstm"]),
        VideoModelSpec("arma-lstm", "ARMA-LSTM (size 3)", 3, 1, True, (), 0.893, _T3["arma-lstm"]),
        VideoModelSpec("nonlocal-convlstm3", "Non-local Conv-LSTM (size 3)", 3, 1, False,
                       _NONLOCAL_AFTER, None, _T3["nonlocal-convlstm3"]),
        VideoModelSpec("nonlocal-convlstm5", "Non-local Conv-LSTM (size 5)", 5, 1, False,
                       _NONLOCAL_AFTER, None, _T3["nonlocal-convlstm5"]),
        VideoModelSpec("nonlocal-arma-lstm", "Non-local ARMA-LSTM (size 3)", 3, 1, True,
                       _NONLOCAL_AFTER, None, _T3["nonlocal-arma-lstm"]),
    )
}


def build_video_model(name: str, **arma_options) -> ConvLSTMNet:
    """Build a network of Table 3 / 4 by name (see :data:`VIDEO_MODELS`).

    Raises
    ------
    ValueError
        For an unknown ``name``.
    """
    if name not in VIDEO_MODELS:
        raise ValueError(f"unknown video model {name!r}; choose from {sorted(VIDEO_MODELS)}")
    return VIDEO_MODELS[name].build(**arma_options)

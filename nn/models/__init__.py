"""Reusable networks built from ARMA layers.

- :class:`ConvLSTMNet` / :class:`ConvLSTMCell`: the paper's encoder-predictor for video, with
  the gate convolution as a factory argument (:func:`conv2d_gate`, :func:`arma2d_gate`);
- :class:`NonLocalBlock2d`: the non-local block of the paper's Table 4.

The configurations that reproduce the paper's tables are in the ``arma_experiments`` package
(``experiments/`` in the source tree), which builds on these.
"""
from .convlstm import (
    ConvLSTMCell,
    ConvLSTMNet,
    GateConvFactory,
    arma2d_gate,
    conv2d_gate,
)
from .nonlocal_block import NonLocalBlock2d

__all__ = [
    "ConvLSTMCell",
    "ConvLSTMNet",
    "GateConvFactory",
    "NonLocalBlock2d",
    "arma2d_gate",
    "conv2d_gate",
]

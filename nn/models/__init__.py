"""Reusable networks built from ARMA layers.

- :class:`ConvLSTMNet` / :class:`ConvLSTMCell`: the paper's encoder-predictor for video, with
  the gate convolution as a factory argument (:func:`conv2d_gate`, :func:`arma2d_gate`);
- :class:`NonLocalBlock2d`: the non-local block of the paper's Table 4;
- :class:`UNet` (:func:`unet`, :func:`nonlocal_unet`): the U-Net of the paper's Table 2 with the
  3 x 3 convolution as a factory argument (ARMA U-Net with :func:`arma2d_gate`).

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
from .unet import (
    UNET_ARMAFY_EXCLUDE,
    UNET_WIDTHS,
    ConvFactory,
    UNet,
    nonlocal_unet,
    unet,
)

__all__ = [
    "UNET_ARMAFY_EXCLUDE",
    "UNET_WIDTHS",
    "ConvFactory",
    "ConvLSTMCell",
    "ConvLSTMNet",
    "GateConvFactory",
    "NonLocalBlock2d",
    "UNet",
    "arma2d_gate",
    "conv2d_gate",
    "nonlocal_unet",
    "unet",
]

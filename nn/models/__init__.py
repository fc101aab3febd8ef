"""Networks built from ARMA layers: the paper's ConvLSTM / ARMA-LSTM video predictors (Table 3)."""
from .convlstm import (
    VIDEO_MODELS,
    ConvLSTMCell,
    ConvLSTMNet,
    VideoModelSpec,
    arma2d_gate,
    build_video_model,
    conv2d_gate,
    count_parameters,
)
from .nonlocal_block import NonLocalBlock2d

__all__ = [
    "VIDEO_MODELS",
    "ConvLSTMCell",
    "ConvLSTMNet",
    "VideoModelSpec",
    "arma2d_gate",
    "build_video_model",
    "conv2d_gate",
    "count_parameters",
    "NonLocalBlock2d",
]

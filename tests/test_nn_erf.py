"""``arma_core.nn.erf.erf``: Definition 2 for PyTorch models through autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

import arma_core
from arma_core.erf import LinearLayer, axis_radii, linear_erf, radius, variance_radius
from arma_core.nn.erf import erf


def _uniform_convs(L, K, ndim=2, dilation=1, padding_mode="zeros"):
    Conv = {1: nn.Conv1d, 2: nn.Conv2d}[ndim]
    layers = []
    for _ in range(L):
        c = Conv(1, 1, K, padding=dilation * (K // 2), dilation=dilation, bias=False, padding_mode=padding_mode)
        nn.init.constant_(c.weight, 1.0 / K**ndim)
        layers.append(c)
    return nn.Sequential(*layers).double()


@pytest.mark.parametrize("K", [3, 5])
@pytest.mark.parametrize("L", [1, 3, 5])
def test_uniform_cnn_grows_like_sqrt_L(L, K):
    """Linear CNN of L uniform KxK convs (Luo et al.; Theorem 3 with a = 0, d = 1).

    Compared quantity: the variance radius sqrt(Var_rows + Var_cols) of the 2-D map against
    sqrt(2 L (K^2 - 1) / 12), and each axis's standard deviation against sqrt(L (K^2 - 1) / 12).
    Exact (the input is large enough that zero padding never truncates the map).
    """
    n = 2 * L * (K - 1) + 7
    m = erf(_uniform_convs(L, K), (1, 1, n, n))
    assert m.shape == (n, n) and m.sum() == pytest.approx(1.0)
    assert variance_radius(m) == pytest.approx(math.sqrt(2 * L * (K * K - 1) / 12), rel=1e-10)
    assert axis_radii(m) == pytest.approx((math.sqrt(L * (K * K - 1) / 12),) * 2, rel=1e-10)
    np.testing.assert_allclose(m, m[::-1, ::-1], atol=1e-15)  # centred on the output pixel
    assert radius(m) < variance_radius(m)


def test_uniform_cnn_1d_with_dilation():
    L, K, d = 3, 3, 2
    n = 2 * L * d * (K - 1) + 5
    m = erf(_uniform_convs(L, K, ndim=1, dilation=d), (2, 1, n))
    assert variance_radius(m) == pytest.approx(math.sqrt(L * d * d * (K * K - 1) / 12), rel=1e-10)
    assert m[1::2].sum() == 0.0 if (n // 2) % 2 == 0 else m[0::2].sum() == 0.0  # dilated grid only


class _LinearARMA(nn.Module):
    """conv + arma_core.ar_solve (differentiable on torch tensors): one layer of linear_erf."""

    def __init__(self, layer: LinearLayer):
        super().__init__()
        w = torch.as_tensor(np.asarray(layer.weight))
        k = w.ndim - 2
        Conv = {1: nn.Conv1d, 2: nn.Conv2d}[k]
        pad = tuple(layer.dilation * (n - 1) // 2 for n in w.shape[2:])
        mode = "circular" if layer.boundary == "circular" else "zeros"
        self.conv = Conv(
            w.shape[1],
            w.shape[0],
            tuple(w.shape[2:]),
            padding=pad,
            dilation=layer.dilation,
            bias=False,
            padding_mode=mode,
        ).double()
        with torch.no_grad():
            self.conv.weight.copy_(w)
        self.taps = None if layer.taps is None else torch.as_tensor(np.asarray(layer.taps))
        self.boundary, self.ar_dilation = layer.boundary, layer.ar_dilation

    def forward(self, x):
        y = self.conv(x)
        if self.taps is not None:
            y = arma_core.ar_solve(y, self.taps, boundary=self.boundary, dilation=self.ar_dilation)
        return y


@pytest.mark.parametrize("boundary", ["zeros", "reflect"])
def test_autograd_erf_equals_linear_erf(boundary):
    """The torch route (autograd through ar_solve) and the array-API route agree exactly."""
    rng = np.random.default_rng(0)

    def taps(C):
        s, t = rng.uniform(-0.7, 0.7, size=(2, C, 2, 1))
        return np.stack([(s + t) / 2, np.ones_like(s), (s - t) / 2], axis=-1)

    layers = [
        LinearLayer(rng.normal(size=(3, 2, 3, 3)), taps(3), dilation=2, boundary=boundary),
        LinearLayer(rng.normal(size=(2, 3, 3, 1)), taps(2), boundary=boundary, ar_dilation=2),
    ]
    model = nn.Sequential(*[_LinearARMA(l) for l in layers])
    shape = (17, 15)
    m = erf(model, (1, 2) + shape, channels="each")
    np.testing.assert_allclose(m, np.asarray(linear_erf(layers, shape)), rtol=1e-9, atol=1e-14)


def test_linear_erf_on_torch_tensors():
    import array_api_compat.torch as xpt

    from arma_core.erf import required_size, uniform_layer

    lt = [uniform_layer(3, 2, taps=(-0.3, 1.0, -0.4), xp=xpt) for _ in range(2)]
    ln = [uniform_layer(3, 2, taps=(-0.3, 1.0, -0.4)) for _ in range(2)]
    lt[0] = lt[0]._replace(taps=lt[0].taps.clone().requires_grad_(True))
    assert required_size(lt) == required_size(ln)
    m = linear_erf(lt, 21)
    assert isinstance(m, torch.Tensor) and m.dtype == torch.float64
    np.testing.assert_allclose(m.detach().numpy(), np.asarray(linear_erf(ln, 21)), atol=1e-14)
    assert variance_radius(m) == pytest.approx(variance_radius(np.asarray(linear_erf(ln, 21))))


def test_arma_radius_against_theorem3_in_torch():
    """Causal AR (0, 1, -a) on both axes after a uniform 3x3 conv: per-axis std vs Eq. 4."""
    a, L, n = 0.6, 2, 81
    taps = torch.tensor([[[[0.0, 1.0, -a]], [[0.0, 1.0, -a]]]], dtype=torch.float64)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = _uniform_convs(1, 3)

        def forward(self, x):
            return arma_core.ar_solve(self.conv(x), taps, boundary="zeros")

    m = erf(nn.Sequential(Layer(), Layer()), (1, 1, n, n))
    expected = arma_core.erf.theorem3_radius(3, 1, a, layers=L)
    assert axis_radii(m) == pytest.approx((expected, expected), rel=1e-4)
    assert radius(m) < variance_radius(m)


def test_channels_sum_each_and_index():
    """Output channel 0 sees a 1-pixel kernel, channel 1 a 5x5 box: the three modes differ."""
    conv = nn.Conv2d(1, 2, 5, padding=2, bias=False).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 2, 2] = 10.0
        conv.weight[1, 0] = 1.0
    n = 11
    m0 = erf(conv, (1, 1, n, n), channels=0)
    m1 = erf(conv, (1, 1, n, n), channels=1)
    assert m0[n // 2, n // 2] == 1.0 and variance_radius(m0) == 0.0
    assert variance_radius(m1) == pytest.approx(math.sqrt(2 * 2.0))
    np.testing.assert_allclose(erf(conv, (1, 1, n, n), channels="each"), (m0 + m1) / 2, atol=1e-15)
    s = erf(conv, (1, 1, n, n))  # |d(y0 + y1)/dx|: centre 11, the rest 1, normalised
    assert s[n // 2, n // 2] == pytest.approx(11 / 35) and s.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="out of range"):
        erf(conv, (1, 1, n, n), channels=2)
    with pytest.raises(ValueError, match="channels"):
        erf(conv, (1, 1, n, n), channels="mean")


def test_layer_option_by_name_and_module():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(4, 1, 5, padding=2),
    ).double()
    x = torch.randn(2, 2, 21, 21, dtype=torch.float64)
    inner = erf(model, input=x, layer="2")
    np.testing.assert_allclose(inner, erf(model[:3], input=x), atol=1e-15)
    np.testing.assert_allclose(erf(model, input=x, layer=model[2]), inner, atol=1e-15)
    full = erf(model, input=x)
    assert variance_radius(full) > variance_radius(inner)
    with pytest.raises(ValueError, match="not a module name"):
        erf(model, input=x, layer="7")
    with pytest.raises(ValueError, match="not a submodule"):
        erf(model, input=x, layer=nn.ReLU())
    with pytest.raises(TypeError, match="layer"):
        erf(model, input=x, layer=3)


def test_layer_that_is_not_called():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Conv1d(1, 1, 3, padding=1)
            self.unused = nn.Conv1d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match="was not called"):
        erf(Skip(), (1, 1, 9), layer="unused")


def test_positions_are_recentred_and_averaged():
    model = _uniform_convs(2, 3, padding_mode="circular")  # circulant: every pixel has the same ERF
    n = 9
    centre = erf(model, (1, 1, n, n))
    np.testing.assert_allclose(erf(model, (1, 1, n, n), positions=[(3, 2), (6, 5)]), centre, atol=1e-15)
    np.testing.assert_allclose(erf(model, (1, 1, n, n), positions="all", wrap=True), centre, atol=1e-15)
    # without wrap, the border pixels' wrapped-around inputs are dropped: a different map
    assert not np.allclose(erf(model, (1, 1, n, n), positions="all"), centre)
    # zero padding: a corner pixel's ERF is cut by the border (the part outside is dropped)
    corner = erf(_uniform_convs(2, 3), (1, 1, n, n), positions=[(0, 0)])
    assert corner[: n // 2].sum() == 0.0 and corner[:, : n // 2].sum() == 0.0
    with pytest.raises(ValueError, match="not inside"):
        erf(model, (1, 1, n, n), positions=[(9, 0)])
    with pytest.raises(ValueError, match="positions"):
        erf(model, (1, 1, n, n), positions="centre")


def test_strided_output_and_global_output():
    model = nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False).double()
    nn.init.constant_(model.weight, 1.0)
    m = erf(model, (1, 1, 16, 16))  # output 8x8, centre 4 lies over input 2 * 4 = 8
    assert m.shape == (16, 16)
    assert variance_radius(m) == pytest.approx(math.sqrt(2 * 8 / 12))
    assert m[7:10, 7:10].sum() == pytest.approx(1.0)
    pooled = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    g = erf(pooled, (1, 1, 8, 8))  # (N, T) output: one "position", no recentring
    assert g.shape == (8, 8) and g.sum() == pytest.approx(1.0)


def test_seed_input_dtype_and_errors():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 1, 3, padding=1))
    a = erf(model, (2, 1, 12, 12), seed=5)
    state = torch.get_rng_state()
    np.testing.assert_array_equal(a, erf(model, (2, 1, 12, 12), seed=5))
    assert torch.equal(state, torch.get_rng_state())  # the global generator is untouched
    assert not np.array_equal(a, erf(model, (2, 1, 12, 12), seed=6))  # ReLU: data dependent
    x = torch.randn(2, 1, 12, 12)
    x0 = x.clone()
    erf(model, input=x)
    assert torch.equal(x, x0) and x.grad is None
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="input_shape"):
        erf(model)
    with pytest.raises(ValueError, match="input_shape"):
        erf(model, (12, 12))
    with pytest.raises(ValueError, match="disagrees"):
        erf(model, (1, 1, 12, 12), input=x)
    with pytest.raises(TypeError, match="model"):
        erf(lambda t: t, (1, 1, 4, 4))
    with pytest.raises(ValueError, match="does not depend"):
        erf(
            nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU())
            .requires_grad_(False)
            .apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Conv2d) else None),
            (1, 1, 5, 5),
        )


def test_reexported_from_arma_core_nn():
    import arma_core.nn as acnn

    model = _uniform_convs(1, 3)
    np.testing.assert_array_equal(acnn.erf(model, (1, 1, 7, 7)), erf(model, (1, 1, 7, 7)))

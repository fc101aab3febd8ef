"""Reparameterization (Theorem 7, corrected), the official mapping and the stability check.

The claims proved here:

- ``reparameterize(theta, "strip")`` lands strictly inside Theorem 6's strip
  ``|f_-1 + f_1| < f_0 = 1`` for every finite theta, in float32 and float64, checked on the
  stored taps both in their dtype and exactly (Python fractions); it reaches every point of the
  open strip (surjective) and its difference ``f_-1 - f_1`` is ``theta[..., 0]``.
- ``region="diamond"`` lands strictly inside ``|f_-1| + |f_1| < 1`` and is bit for bit the
  official code's mapping (``tanh / sqrt 2``, rotation by ``-pi/4``) where that is inside.
- ``stability_margin`` is the exact minimum of ``|A(w)|`` on the unit circle: never above the
  smallest singular value of the factor's circulant matrix (n = 512, dense SVD) or the minimum
  on a fine grid, and within the grid's O(1/n^2) sampling error of them.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from conftest import to_np, to_xp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import arma_core as ac

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

DTYPES = ["float32", "float64"]
WIDTH = {"float32": 32, "float64": 64}

# magnitudes around every regime: zero, subnormal, tiny, O(1), tanh saturation in float32
# (|x| > ~9) and float64 (|x| > ~19), large, and the largest finite numbers of each dtype
MAGNITUDES = [
    0.0,
    5e-324,
    1e-45,
    1e-30,
    1e-7,
    0.3,
    1.0,
    3.0,
    8.5,
    9.0,
    9.5,
    12.0,
    18.5,
    19.0,
    19.5,
    25.0,
    1e3,
    1e6,
    1.6e7,
    1e8,
    1e16,
    1e30,
    3.4e38,
    1e300,
    1.79e308,
]


def extremes(dtype: str) -> np.ndarray:
    """Every pair of +-MAGNITUDES representable (and finite) in ``dtype``: shape (m, 2)."""
    vals = []
    with np.errstate(over="ignore", under="ignore"):
        for v in MAGNITUDES:
            for x in (v, -v):
                y = np.asarray(x, dtype=dtype)
                if np.isfinite(y):
                    vals.append(y)
    vals = np.unique(np.array(vals, dtype=dtype))
    a, b = np.meshgrid(vals, vals, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=-1)


def thetas(dtype: str, max_rows: int = 24):
    """Hypothesis arrays (m, 2) of finite numbers mixing every scale, saturation included."""
    w = WIDTH[dtype]
    element = st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, width=w),
        st.floats(-40, 40, width=w),
        st.sampled_from([float(v) for v in extremes(dtype)[:, 0]]),
    )
    return arrays(dtype, st.tuples(st.integers(1, max_rows), st.just(2)), elements=element)


def to_lib(xp, a: np.ndarray, dtype: str):
    """``a`` (already in ``dtype``) as an array of ``xp``, values unchanged."""
    return to_xp(xp, a, dtype)


def fr(x) -> Fraction:
    return Fraction(float(x))  # float32 and float64 values are exact Python floats


def assert_strip(taps, theta, dtype):
    """Stored taps strictly in the strip, both in their dtype and exactly."""
    f = to_np(taps)  # float64 copy: exact for float32 and float64 values
    assert np.all(f[..., 1] == 1.0)
    assert np.all(np.isfinite(f))
    # the comparison the library makes, in the taps' own dtype
    left, right = taps[..., 0], taps[..., 2]
    in_dtype = to_np(abs(left + right) < 1)
    assert np.all(in_dtype), theta[~in_dtype.astype(bool)]
    for (l, _, r), th in zip(f.reshape(-1, 3), np.asarray(theta).reshape(-1, 2)):
        assert abs(fr(l) + fr(r)) < 1, (dtype, th, l, r)


def assert_diamond(taps, theta, dtype):
    f = to_np(taps)
    assert np.all(f[..., 1] == 1.0)
    left, right = taps[..., 0], taps[..., 2]
    assert np.all(to_np(abs(left) + abs(right) < 1))
    for (l, _, r), th in zip(f.reshape(-1, 3), np.asarray(theta).reshape(-1, 2)):
        assert abs(fr(l)) + abs(fr(r)) < 1, (dtype, th, l, r)


def assert_difference_is_theta0(taps, theta, dtype):
    """``f_-1 - f_1 == theta[..., 0]`` up to the rounding of the two stored taps."""
    f = to_np(taps).reshape(-1, 3)
    eps = Fraction(float(np.finfo(dtype).eps))
    tiny = Fraction(float(np.finfo(dtype).smallest_subnormal))
    for (l, _, r), th in zip(f, np.asarray(theta, dtype=np.float64).reshape(-1, 2)):
        err = abs(fr(l) - fr(r) - fr(th[0]))
        assert err <= 4 * eps * max(abs(fr(l)), abs(fr(r))) + 2 * tiny, (dtype, th, l, r)


# --------------------------------------------------------------------------------------------
# strip


@pytest.mark.parametrize("dtype", DTYPES)
def test_strip_extremes_every_namespace(xp, dtype):
    theta = extremes(dtype)
    taps = ac.reparameterize(to_lib(xp, theta, dtype), "strip")
    assert taps.dtype == getattr(xp, dtype) and tuple(taps.shape) == theta.shape[:-1] + (3,)
    assert_strip(taps, theta, dtype)
    assert_difference_is_theta0(taps, theta, dtype)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_strip_property(lib, dtype):
    xp = pytest.importorskip(lib)

    @PROPERTY
    @given(thetas(dtype))
    def check(theta):
        taps = ac.reparameterize(to_lib(xp, theta, dtype), "strip")
        assert_strip(taps, theta, dtype)
        assert_difference_is_theta0(taps, theta, dtype)

    check()


@pytest.mark.parametrize("dtype", DTYPES)
def test_strip_saturation_is_strictly_inside(dtype):
    """Where tanh rounds to +-1 the sum must still be below 1 in magnitude, not on the edge."""
    sat = 10.0 if dtype == "float32" else 19.5
    assert np.tanh(np.asarray(sat, dtype=dtype)) == 1  # the hazard is real in this dtype
    a1 = np.array([sat, -sat, 50.0, -50.0, 1e6, -1e30], dtype=dtype)
    for a0 in (0.0, 1e-30, 0.5, 3.0, -7.0, 1e6):
        theta = np.stack([np.full_like(a1, a0), a1], axis=-1)
        taps = ac.reparameterize(theta, "strip")
        assert_strip(taps, theta, dtype)
        s = taps[..., 0] + taps[..., 2]
        # still essentially saturated: the nudge moves a few ulps, no more
        assert np.all(np.abs(s) > 1 - 16 * np.finfo(dtype).eps * max(1.0, abs(a0)))


def test_identity_at_zero(xp):
    for dtype in DTYPES:
        for region in ("strip", "diamond"):
            taps = ac.reparameterize(to_xp(xp, np.zeros((2, 3, 2)), dtype), region)
            assert np.array_equal(to_np(taps), np.broadcast_to([0.0, 1.0, 0.0], (2, 3, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_strip_is_surjective(dtype):
    """theta = (d, atanh s) reproduces any target (s, d) of the open strip, to rounding."""
    eps = float(np.finfo(dtype).eps)

    @PROPERTY
    @given(
        st.floats(-1, 1, exclude_min=True, exclude_max=True),
        st.floats(-1e4, 1e4),
    )
    def check(s, d):
        s = float(np.asarray(s, dtype=dtype))
        if abs(s) >= 1:  # the float32 rounding of a target can land on the edge
            return
        theta = np.array([d, math.atanh(s)], dtype=dtype)
        d = float(theta[0])
        f = ac.reparameterize(theta, "strip")
        got_s, got_d = float(f[0]) + float(f[2]), float(f[0]) - float(f[2])
        tol = 8 * eps * (1 + abs(d))
        assert abs(got_s - s) <= tol, (s, d, got_s)
        assert abs(got_d - d) <= tol, (s, d, got_d)

    check()


# --------------------------------------------------------------------------------------------
# diamond


@pytest.mark.parametrize("dtype", DTYPES)
def test_diamond_extremes_every_namespace(xp, dtype):
    theta = extremes(dtype)
    taps = ac.reparameterize(to_lib(xp, theta, dtype), "diamond")
    assert taps.dtype == getattr(xp, dtype)
    assert_diamond(taps, theta, dtype)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_diamond_property(lib, dtype):
    xp = pytest.importorskip(lib)

    @PROPERTY
    @given(thetas(dtype))
    def check(theta):
        assert_diamond(ac.reparameterize(to_lib(xp, theta, dtype), "diamond"), theta, dtype)

    check()


def _official(alpha):
    """The official code's mapping, from its description (docs: notes/official-code.md).

    ``t = tanh(alpha) / sqrt(2)``, then rotation by ``-pi/4``; the constants are Python floats.
    Returns ``(left, right) = (f_-1, f_1)``.
    """
    import torch

    t = torch.tanh(alpha) / math.sqrt(2)
    t0, t1 = t[..., 0], t[..., 1]
    c, s = math.cos(-math.pi / 4), math.sin(-math.pi / 4)
    return t0 * c - t1 * s, t0 * s + t1 * c


@pytest.mark.parametrize("dtype", DTYPES)
def test_diamond_is_bit_for_bit_official(dtype):
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    alpha = (torch.rand((20000, 2), generator=gen, dtype=getattr(torch, dtype)) * 2 - 1) * 5
    left, right = _official(alpha)
    inside = (left.abs() + right.abs()) < 1
    assert bool(inside.all())  # |alpha| < 5: tanh stays below 1, the official taps are inside
    taps = ac.reparameterize(alpha, "diamond")
    assert torch.equal(taps[..., 0], left)
    assert torch.equal(taps[..., 2], right)
    assert torch.equal(taps[..., 1], torch.ones_like(left))
    # the official layout: the difference is driven by alpha[..., 0], the sum by alpha[..., 1]
    th = torch.tanh(alpha.double())
    tol = 4 * torch.finfo(alpha.dtype).eps
    assert torch.allclose((taps[..., 0] + taps[..., 2]).double(), th[..., 1], rtol=0, atol=tol)
    assert torch.allclose((taps[..., 0] - taps[..., 2]).double(), th[..., 0], rtol=0, atol=tol)


def test_diamond_bit_for_bit_property():
    torch = pytest.importorskip("torch")

    @PROPERTY
    @given(
        arrays(
            "float32",
            st.tuples(st.integers(1, 16), st.just(2)),
            elements=st.floats(-5, 5, width=32, exclude_min=True, exclude_max=True),
        )
    )
    def check(alpha):
        a = torch.asarray(alpha)
        left, right = _official(a)
        inside = (left.abs() + right.abs()) < 1
        taps = ac.reparameterize(a, "diamond")
        assert torch.equal(taps[..., 0][inside], left[inside])
        assert torch.equal(taps[..., 2][inside], right[inside])

    check()


# --------------------------------------------------------------------------------------------
# official_to_theta


def test_official_to_theta_layout(xp):
    rng = np.random.default_rng(0)
    T, P = 5, 3
    alpha = rng.normal(size=(T, P, 4))
    theta = ac.official_to_theta(to_xp(xp, alpha))
    assert tuple(theta.shape) == (T, 2, P, 2)
    th = to_np(theta)
    for t in range(T):
        for p in range(P):
            assert np.array_equal(th[t, 0, p], alpha[t, p, 0:2])  # height axis (dim -2)
            assert np.array_equal(th[t, 1, p], alpha[t, p, 2:4])  # width axis (dim -1)
    # with the diamond map: the official taps, f_-1 = (tanh a0 + tanh a1) / 2, f_1 = (tanh a1 - tanh a0) / 2
    taps = to_np(ac.reparameterize(theta, "diamond"))
    ta = np.tanh(alpha)
    assert np.allclose(taps[:, 0, :, 0], (ta[..., 0] + ta[..., 1]) / 2, atol=1e-15)
    assert np.allclose(taps[:, 0, :, 2], (ta[..., 1] - ta[..., 0]) / 2, atol=1e-15)
    assert np.allclose(taps[:, 1, :, 0], (ta[..., 2] + ta[..., 3]) / 2, atol=1e-15)
    assert np.allclose(taps[:, 1, :, 2], (ta[..., 3] - ta[..., 2]) / 2, atol=1e-15)
    with pytest.raises(ValueError, match="alpha"):
        ac.official_to_theta(to_xp(xp, alpha[..., :3]))
    with pytest.raises(ValueError, match="alpha"):
        ac.official_to_theta(to_xp(xp, alpha[0]))


# --------------------------------------------------------------------------------------------
# stability margin


def factor_families(rng, m: int) -> np.ndarray:
    """Random factors (f_-1, f_0, f_1): inside and outside the strip, f_-1 f_1 > 0 and < 0,
    non-unit (and negative) f_0. Shape (6 m, 3)."""
    out = []
    f0 = rng.uniform(0.2, 3.0, m)
    # inside the strip, any difference
    s = f0 * rng.uniform(-0.999, 0.999, m)
    d = rng.normal(scale=2.0, size=m)
    out.append(np.stack([(s + d) / 2, f0, (s - d) / 2], -1))
    # inside, both taps of one sign (the response's quadratic in cos w opens upwards)
    a = rng.uniform(0.01, 0.49, (m, 2)) * f0[:, None] * rng.choice([-1, 1], (m, 1))
    out.append(np.stack([a[:, 0], f0, a[:, 1]], -1))
    # outside, same signs: f_-1 f_1 > 0 (the minimum can sit inside the circle's arc)
    a = rng.uniform(0.3, 3.0, (m, 2)) * rng.choice([-1, 1], (m, 1))
    out.append(np.stack([a[:, 0], f0, a[:, 1]], -1))
    # outside, opposite signs: f_-1 f_1 < 0
    a = rng.uniform(0.3, 3.0, (m, 2)) * np.array([1.0, -1.0]) * rng.choice([-1, 1], (m, 1))
    out.append(np.stack([a[:, 0], f0, a[:, 1]], -1))
    # anything, negative f_0 included
    out.append(rng.normal(scale=1.5, size=(m, 3)))
    out.append(np.stack([rng.normal(size=m), -f0, rng.normal(size=m)], -1))
    return np.concatenate(out)


def circulant(f: np.ndarray, n: int) -> np.ndarray:
    """Dense ``(n, n)`` matrix of ``(A y)_i = f_-1 y[i+1] + f_0 y[i] + f_1 y[i-1]``, circular."""
    M = f[1] * np.eye(n)
    i = np.arange(n)
    M[i, (i + 1) % n] += f[0]
    M[i, (i - 1) % n] += f[2]
    return M


def grid_slack(f: np.ndarray, n: int) -> float:
    """How far above the true minimum of ``|A(w)|^2`` an ``n``-point grid's minimum can sit.

    ``|A(w)|^2`` is a trigonometric polynomial of degree 2 with coefficient sum at most
    ``L1^2`` (``L1 = |f_-1| + |f_0| + |f_1|``), so its second derivative is at most
    ``4 L1^2``; a grid point lies within ``pi / n`` of the minimiser, where the derivative is 0.
    """
    l1 = float(np.sum(np.abs(f)))
    return 2.0 * l1 * l1 * (math.pi / n) ** 2


SVD_N = 512


@pytest.fixture(scope="module")
def circulant_svd():
    """Random factors and the smallest singular value of their dense circulant matrices."""
    factors = factor_families(np.random.default_rng(42), 2)  # 12 dense SVDs of 512 x 512
    sv = np.linalg.svd(np.stack([circulant(f, SVD_N) for f in factors]), compute_uv=False)
    return factors, sv.min(axis=-1)


def test_margin_matches_dense_svd_of_circulant(xp, circulant_svd):
    factors, smin = circulant_svd
    n = SVD_N
    margin = to_np(ac.stability_margin(to_xp(xp, factors)))
    assert margin.shape == (len(factors),)
    for f, m, s in zip(factors, margin, smin):
        assert s >= m - 1e-12, (f, m, s)
        assert s * s <= m * m + grid_slack(f, n) + 1e-12, (f, m, s)


def test_margin_matches_fine_grid(xp):
    """The same claims on a 2^17-point grid, for many more factors."""
    rng = np.random.default_rng(7)
    n = 2**17
    factors = factor_families(rng, 40)
    margin = to_np(ac.stability_margin(to_xp(xp, factors)))
    w = 2 * np.pi * np.arange(n) / n
    e = np.exp(1j * w)
    for f, m in zip(factors, margin):
        g = np.min(np.abs(f[0] * e + f[1] + f[2] / e))
        assert g >= m - 1e-12, (f, m, g)
        assert g * g <= m * m + grid_slack(f, n) + 1e-12, (f, m, g)


def test_margin_property():
    """Random factors by hypothesis: never above the grid's minimum, and close to it."""
    n = 4096
    e = np.exp(2j * np.pi * np.arange(n) / n)

    @PROPERTY
    @given(arrays("float64", 3, elements=st.floats(-4, 4)))
    def check(f):
        m = float(ac.stability_margin(f))
        g = float(np.min(np.abs(f[0] * e + f[1] + f[2] / e)))
        assert g >= m - 1e-12, (f, m, g)
        assert g * g <= m * m + grid_slack(f, n) + 1e-12, (f, m, g)

    check()


@pytest.mark.parametrize("dtype", DTYPES)
def test_margin_inside_strip_is_f0_minus_abs_sum(xp, dtype):
    rng = np.random.default_rng(3)
    f0 = rng.uniform(0.1, 5.0, (4, 2, 3))
    s = f0 * rng.uniform(-1, 1, f0.shape) * (1 - 1e-3)
    d = rng.normal(scale=3.0, size=f0.shape)
    taps = np.stack([(s + d) / 2, f0, (s - d) / 2], axis=-1)
    taps_x = to_xp(xp, taps, dtype)
    margin = ac.stability_margin(taps_x)
    assert margin.dtype == getattr(xp, dtype) and tuple(margin.shape) == (4, 2, 3)
    t = to_np(taps_x)  # the taps as rounded to dtype
    expect = t[..., 1] - np.abs(t[..., 0] + t[..., 2])
    tol = 8 * np.finfo(dtype).eps * (np.abs(t).sum(-1))
    assert np.all(np.abs(to_np(margin) - expect) <= tol)
    # the identity and a pure delay-free scaling
    assert np.array_equal(to_np(ac.stability_margin(to_xp(xp, np.array([0.0, 2.0, 0.0]), dtype))), 2.0)


def test_margin_on_the_edge_is_zero():
    for f in ([0.5, 1.0, 0.5], [-0.25, 1.0, -0.75], [0.7, 1.0, 0.3], [2.0, 2.0, 2.0]):
        f = np.array(f)
        m = float(ac.stability_margin(f))
        assert m == 0.0, f
        if abs(f[0] + f[2]) == f[1]:
            assert not ac.is_stable(f)


# --------------------------------------------------------------------------------------------
# is_stable / check_stable


def _stable_taps(rng, C=3, k=2, Q=2):
    s = rng.uniform(-0.9, 0.9, (C, k, Q))
    d = rng.normal(size=(C, k, Q))
    return np.stack([(s + d) / 2, np.ones_like(s), (s - d) / 2], axis=-1)


def test_is_stable_and_check_stable(xp):
    rng = np.random.default_rng(1)
    taps = _stable_taps(rng)
    tx = to_xp(xp, taps)
    assert ac.is_stable(tx) is True
    assert ac.check_stable(tx) is tx
    for dtype in DTYPES:
        assert ac.is_stable(ac.reparameterize(to_xp(xp, rng.normal(scale=30, size=(3, 2, 2, 2)), dtype)))

    bad = taps.copy()
    bad[2, 1, 0] = [
        0.8,
        1.0,
        0.4,
    ]  # |s| = 1.2 > 1; min |A|^2 = 1 + 0.4^2 - 1.2^2 / 1.28 at cos w = -1.2 / 1.28
    bad[2, 1, 1] = [0.6, 1.0, 0.6]  # a second bad factor later in C order: not the one named
    assert ac.is_stable(to_xp(xp, bad)) is False
    with pytest.raises(ac.UnstableFilterError) as info:
        ac.check_stable(to_xp(xp, bad))
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.channel, err.axis, err.factor) == (2, 1, 0)
    assert err.margin == pytest.approx(math.sqrt(1 + 0.16 - 1.44 / 1.28), abs=1e-12)
    msg = str(err)
    assert "channel 2, axis 1, factor 0" in msg and "taps" in msg and "1.2" in msg

    # exactly on the edge |s| = f_0 is not inside the open strip
    edge = taps.copy()
    edge[0, 0, 1] = [0.25, 1.0, 0.75]
    assert ac.is_stable(to_xp(xp, edge)) is False
    with pytest.raises(ac.UnstableFilterError) as info:
        ac.check_stable(to_xp(xp, edge), name="my_taps")
    assert (info.value.channel, info.value.axis, info.value.factor) == (0, 0, 1)
    assert "my_taps" in str(info.value) and info.value.margin == 0.0

    # outside the strip with a positive margin (winding number 1) is still not called stable
    wind = taps.copy()
    wind[1, 0, 0] = [3.0, 1.0, -0.5]
    assert float(ac.stability_margin(to_xp(xp, wind[1, 0, 0]))) > 0
    assert ac.is_stable(to_xp(xp, wind)) is False


def test_non_finite_taps(xp):
    rng = np.random.default_rng(2)
    for value in (np.nan, np.inf, -np.inf):
        taps = _stable_taps(rng)
        taps[1, 0, 1, 2] = value
        tx = to_xp(xp, taps)
        assert ac.is_stable(tx) is False
        with pytest.raises(ValueError, match="taps contains NaN or inf") as info:
            ac.check_stable(tx)
        assert not isinstance(info.value, ac.UnstableFilterError)
        with pytest.raises(ValueError, match="taps contains NaN or inf"):
            ac.stability_margin(tx)

"""ERF of linear ARMA networks: Eq. 3, the variance radius, Theorem 3 (Eq. 4), its two-sided
analogue (docs/erf.md), ``linear_erf`` and the ``arma erf`` command."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arma_core import ar_solve, conv
from arma_core.erf import (
    LinearLayer,
    axis_radii,
    factor_moments,
    linear_erf,
    radius,
    required_size,
    separable_radius,
    theorem3_radius,
    uniform_layer,
    variance_radius,
)

# truncation of the size rule at this tol moves radii by ~tol/2, far below the 1% tolerance
TOL = 1e-3


def _line_response(taps, n=1 << 14):
    """Signed inverse response of one factor on a long circular line, centred at n // 2."""
    fm, f0, fp = taps
    w = 2 * np.pi * np.fft.fftfreq(n)
    h = np.fft.ifft(1.0 / (f0 + fp * np.exp(-1j * w) + fm * np.exp(1j * w))).real
    return np.fft.fftshift(h)


def _signed_moments(h):
    p = np.arange(h.size) - h.size // 2
    w = h / h.sum()
    mean = np.sum(p * w)
    return mean, np.sum(p * p * w) - mean**2


# ---------------------------------------------------------------------------------------------
# Eq. 4 and the closed forms


@pytest.mark.parametrize(
    "L, K, d, a, r2",
    [(1, 3, 1, 0.0, 2 / 3), (3, 3, 1, 0.6, 13.25), (5, 3, 2, 0.8, 340 / 3), (5, 3, 1, 0.9, 1360 / 3)],
)
def test_theorem3_reference_values(L, K, d, a, r2):
    assert theorem3_radius(K, d, a, layers=L) ** 2 == pytest.approx(r2, rel=1e-12)
    assert theorem3_radius([K] * L, d, [a] * L) ** 2 == pytest.approx(r2, rel=1e-12)


def test_theorem3_per_layer_sum_and_errors():
    per = [theorem3_radius(k, d, a) ** 2 for k, d, a in [(3, 1, 0.5), (5, 2, 0.0), (7, 1, 0.9)]]
    assert theorem3_radius([3, 5, 7], [1, 2, 1], [0.5, 0.0, 0.9]) ** 2 == pytest.approx(sum(per))
    assert theorem3_radius(3) == pytest.approx(math.sqrt(8 / 12))
    with pytest.raises(ValueError, match="0 <= a < 1"):
        theorem3_radius(3, 1, 1.0)
    with pytest.raises(ValueError, match="0 <= a < 1"):
        theorem3_radius(3, 1, -0.1)
    with pytest.raises(ValueError, match="number of layers"):
        theorem3_radius([3, 3], 1, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="kernel_sizes"):
        theorem3_radius(2.5)
    with pytest.raises(ValueError, match="layers"):
        theorem3_radius(3, layers=0)


def test_factor_moments_match_long_line_response():
    rng = np.random.default_rng(0)
    taps = [(0.0, 1.0, -0.9), (-0.45, 1.0, -0.45), (-0.1, 1.0, -0.7), (0.3, 1.0, -0.5), (0.2, 1.0, 0.3)]
    while len(taps) < 25:  # random stable factors in the strip |f_-1 + f_1| < f_0, mixed signs
        f0 = rng.uniform(0.5, 2.0)
        s = rng.uniform(-0.9, 0.9) * f0
        t = rng.uniform(-1.5, 1.5)
        taps.append(((s + t) / 2, f0, (s - t) / 2))
    mean, var = factor_moments(taps)
    for f, m, v in zip(taps, mean, var):
        m_num, v_num = _signed_moments(_line_response(f))
        assert m == pytest.approx(m_num, rel=1e-6, abs=1e-6), f
        assert v == pytest.approx(v_num, rel=1e-6, abs=1e-6), f
    assert factor_moments((0.0, 1.0, -0.6))[1] == pytest.approx(0.6 / 0.4**2)
    assert factor_moments((-0.3, 1.0, -0.3))[1] == pytest.approx(0.6 / 0.4)
    with pytest.raises(ValueError, match="unit circle"):
        factor_moments((0.0, 1.0, -1.0))
    with pytest.raises(ValueError, match="unit circle"):
        factor_moments((0.5, 0.5, 0.5))  # f_-1 = f_1, |s| > f_0: zero at cos w = -1/2
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        factor_moments((1.0, 0.0))


def test_inverse_response_is_nonnegative_iff_both_taps_nonpositive():
    """docs/erf.md: factor_moments gives a true variance exactly when f_-1, f_1 <= 0."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        fm, fp = rng.uniform(-1, 1, size=2)
        if abs(fm + fp) > 0.95 or min(abs(fm), abs(fp)) < 0.05:
            continue
        h = _line_response((fm, 1.0, fp), n=4096)
        h = h[np.abs(h) > 1e-12 * np.abs(h).max()]
        assert (h.min() >= 0) == (fm <= 0 and fp <= 0), (fm, fp)


def test_separable_radius_generalises_theorem3():
    for L, K, d, a in [(1, 3, 1, 0.0), (3, 5, 2, 0.6), (5, 3, 1, 0.9)]:
        assert separable_radius(K, d, (0.0, 1.0, -a), layers=L) == pytest.approx(theorem3_radius(K, d, a, layers=L))
    # symmetric factor: a / (1 - a); two factors per layer add; AR dilation scales by e^2
    assert separable_radius(3, 1, (-0.4, 1.0, -0.4), layers=2) ** 2 == pytest.approx(2 * (8 / 12 + 0.8 / 0.2))
    two = [(-0.4, 1.0, -0.4), (0.0, 1.0, -0.5)]
    assert separable_radius(1, 1, two) ** 2 == pytest.approx(4.0 + 2.0)
    assert separable_radius(1, 1, (0.0, 1.0, -0.5), ar_dilations=3) ** 2 == pytest.approx(9 * 2.0)
    per_layer = [[(0.0, 1.0, -0.5)], [(-0.2, 1.0, -0.2)]]
    assert separable_radius(3, [1, 2], per_layer) ** 2 == pytest.approx(8 / 12 + 2.0 + 32 / 12 + 0.4 / 0.6)
    with pytest.raises(ValueError, match="no real radius"):
        separable_radius(1, 1, (0.4, 1.0, 0.4))
    with pytest.raises(ValueError, match="taps"):
        separable_radius(3, 1, np.zeros((2, 2, 2, 3)))


# ---------------------------------------------------------------------------------------------
# radii of maps


def test_radius_of_simple_maps():
    delta = np.zeros((9, 9))
    delta[4, 4] = 5.0
    assert radius(delta) == 0.0 and variance_radius(delta) == 0.0
    # two pixels at offsets 0 and +3 along one axis: Eq. 3 = variance form = 1.5
    m = np.zeros(11)
    m[5] = m[8] = 1.0
    assert radius(m) == pytest.approx(1.5) and variance_radius(m) == pytest.approx(1.5)
    # symmetric pair at -3 and +3: |p| is constant (Eq. 3 = 0) but the variance radius is 3
    m = np.zeros(11)
    m[2] = m[8] = 1.0
    assert radius(m) == pytest.approx(0.0, abs=1e-12) and variance_radius(m) == pytest.approx(3.0)
    assert radius(m, centre=2) == pytest.approx(3.0)
    # 2-D: ring of 4 points at distance 2 around the centre
    m = np.zeros((7, 7))
    m[1, 3] = m[5, 3] = m[3, 1] = m[3, 5] = 1.0
    assert radius(m) == pytest.approx(0.0, abs=1e-12)
    assert variance_radius(m) == pytest.approx(2.0)
    assert axis_radii(m) == pytest.approx((math.sqrt(2.0), math.sqrt(2.0)))


def test_eq3_equals_variance_form_for_a_causal_line_and_not_in_2d():
    a = 0.7
    m = np.zeros(301)
    m[150 - np.arange(150)] = a ** np.arange(150.0)  # input offsets <= 0: a causal 1-D ERF
    assert radius(m) == pytest.approx(variance_radius(m), rel=1e-12)
    assert radius(m) == pytest.approx(theorem3_radius(1, 1, a), rel=1e-9)
    m2 = np.multiply.outer(m, m)
    assert radius(m2) < variance_radius(m2)
    assert variance_radius(m2) == pytest.approx(math.sqrt(2) * variance_radius(m), rel=1e-12)


def test_radius_errors():
    with pytest.raises(ValueError, match="negative"):
        radius(np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="sums to zero"):
        variance_radius(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        radius(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="one axis"):
        radius(np.array(1.0))
    with pytest.raises(TypeError, match="erf_map"):
        radius([1.0, 2.0])
    with pytest.raises(TypeError, match="real"):
        radius(np.ones(3, dtype=complex))


# ---------------------------------------------------------------------------------------------
# Theorem 3 checked on the exact ERF of linear networks


def _causal_network(L, K, d, a, ndim=1):
    return [uniform_layer(K, ndim, taps=(0.0, 1.0, -a), dilation=d, causal=True) for _ in range(L)]


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("K", [3, 5])
@pytest.mark.parametrize("L", [1, 3, 5])
def test_theorem3_on_linear_erf(L, K, d):
    """``y_i - a y_{i-1}`` = uniform causal MA (1-D, zeros boundary, centred impulse, size rule)."""
    for a in (0.0, 0.6, 0.8, 0.9):
        layers = _causal_network(L, K, d, a)
        m = np.asarray(linear_erf(layers, required_size(layers, TOL)))
        expected = theorem3_radius(K, d, a, layers=L)
        # causal support: Eq. 3 and the variance form coincide and both equal Eq. 4
        assert radius(m) == pytest.approx(expected, rel=0.01)
        assert variance_radius(m) == pytest.approx(expected, rel=0.01)
        assert radius(m) == pytest.approx(expected, rel=2e-3)  # the size rule's promise
        # the map lies at input offsets <= 0 (a causal output sees only earlier inputs)
        c = m.size // 2
        assert m[c + 1 :].sum() == 0.0


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("K", [3, 5])
@pytest.mark.parametrize("L", [1, 3, 5])
def test_two_sided_closed_form_on_linear_erf(L, K, d):
    """The analogue for two-sided factors (docs/erf.md): symmetric and lopsided, taps <= 0."""
    for a in (0.0, 0.6, 0.8, 0.9):
        for taps in [(-a / 2, 1.0, -a / 2), (-0.3 * a, 1.0, -0.7 * a)]:
            layers = [uniform_layer(K, 1, taps=taps, dilation=d) for _ in range(L)]
            m = np.asarray(linear_erf(layers, required_size(layers, TOL)))
            expected = separable_radius(K, d, taps, layers=L)
            assert variance_radius(m) == pytest.approx(expected, rel=0.01)
            assert variance_radius(m) == pytest.approx(expected, rel=2e-3)
    if L == 1 and K == 3 and d == 1:  # the symmetric closed form is a / (1 - a), not Eq. 4
        assert separable_radius(3, 1, (-0.45, 1.0, -0.45)) ** 2 == pytest.approx(8 / 12 + 9.0)


def test_radii_grow_with_depth_and_coefficient():
    table = {}
    for L in (1, 3, 5):
        for a in (0.0, 0.6, 0.8, 0.9):
            layers = [uniform_layer(3, 1, taps=(-a / 2, 1.0, -a / 2)) for _ in range(L)]
            table[L, a] = variance_radius(np.asarray(linear_erf(layers, required_size(layers, TOL))))
    for L in (1, 3, 5):
        vals = [table[L, a] for a in (0.0, 0.6, 0.8, 0.9)]
        assert all(x < y for x, y in zip(vals, vals[1:]))
    for a in (0.0, 0.6, 0.8, 0.9):
        vals = [table[L, a] for L in (1, 3, 5)]
        assert all(x < y for x, y in zip(vals, vals[1:]))


# ---------------------------------------------------------------------------------------------
# linear_erf itself


def test_linear_erf_2d_is_the_outer_product_of_the_1d_maps():
    for taps, causal in [((0.0, 1.0, -0.7), True), ((-0.4, 1.0, -0.3), False)]:
        l1 = [uniform_layer(3, 1, taps=taps, causal=causal, dilation=2) for _ in range(3)]
        l2 = [uniform_layer(3, 2, taps=taps, causal=causal, dilation=2) for _ in range(3)]
        m1 = np.asarray(linear_erf(l1, 61))
        m2 = np.asarray(linear_erf(l2, 61))
        np.testing.assert_allclose(m2, np.multiply.outer(m1, m1), atol=1e-14)
        assert axis_radii(m2) == pytest.approx((variance_radius(m1),) * 2, rel=1e-10)


def _network_matrix_rows(layers, n):
    """Rows ``J[t, c, s, :]`` of the network's Jacobian at the centre, by forward passes only."""
    S = int(layers[0].weight.shape[1])
    x = np.zeros((S * n, S, n))
    for s in range(S):
        for j in range(n):
            x[s * n + j, s, j] = 1.0
    y = x
    for l in layers:
        pad = l.dilation * (l.weight.shape[-1] - 1) // 2
        mode = "circular" if l.boundary == "circular" else "zeros"
        y = conv(y, l.weight, padding=pad, dilation=l.dilation, padding_mode=mode)
        if l.taps is not None:
            y = ar_solve(y, l.taps, boundary=l.boundary, dilation=l.ar_dilation)
    # y[(s, j), t, i] = dY[t, i] / dX[s, j]
    return y.reshape(S, n, -1, n)[:, :, :, n // 2]  # (S, n_in, T)


@pytest.mark.parametrize("boundary", ["zeros", "reflect", "replicate", "circular"])
def test_linear_erf_is_definition2_at_the_centre(boundary):
    """Multi-channel, two factors, dilations, every boundary: equal to the explicit Jacobian."""
    rng = np.random.default_rng(3)
    n = 17

    def taps(C):
        s = rng.uniform(-0.8, 0.8, size=(C, 1, 2))
        t = rng.uniform(-0.8, 0.8, size=(C, 1, 2))
        return np.stack([(s + t) / 2, np.ones_like(s), (s - t) / 2], axis=-1)

    layers = [
        LinearLayer(rng.normal(size=(3, 2, 3)), taps(3), dilation=2, boundary=boundary),
        LinearLayer(rng.normal(size=(2, 3, 5)), None, boundary=boundary),
        LinearLayer(rng.normal(size=(2, 2, 1)), taps(2), boundary=boundary, ar_dilation=2),
    ]
    J = np.abs(_network_matrix_rows(layers, n))  # (S, n, T)
    expected = np.mean(J / J.sum(axis=1, keepdims=True), axis=(0, 2))
    np.testing.assert_allclose(np.asarray(linear_erf(layers, n)), expected, rtol=1e-10, atol=1e-14)
    if boundary == "circular":  # shift invariant: the mirrored impulse response is the same map
        # (MA padding wraps too: the network is circulant)
        np.testing.assert_allclose(
            np.asarray(linear_erf(layers, n, method="impulse")), expected, rtol=1e-10, atol=1e-14
        )


def test_required_size_makes_truncation_negligible():
    layers = _causal_network(3, 3, 1, 0.9, ndim=1)
    (n,) = required_size(layers, 1e-4)
    big = variance_radius(np.asarray(linear_erf(layers, 2 * n + 1)))
    assert variance_radius(np.asarray(linear_erf(layers, n))) == pytest.approx(big, rel=1e-4)
    assert variance_radius(np.asarray(linear_erf(layers, n // 4))) < 0.9 * big  # too small: truncated
    assert required_size(layers, 1e-6)[0] > n
    assert required_size(_causal_network(1, 3, 1, 0.0), 1e-6, minimum=64) == (65,)
    assert required_size(_causal_network(2, 3, 1, 0.5, ndim=2), 1e-3) == required_size(
        _causal_network(2, 3, 1, 0.5, ndim=2), 1e-3
    )
    with pytest.raises(ValueError, match="tol"):
        required_size(layers, 0.0)


def test_linear_erf_on_array_api_strict():
    xps = pytest.importorskip("array_api_strict")
    layers_np = [uniform_layer(3, 2, taps=(-0.3, 1.0, -0.2)) for _ in range(2)]
    layers_st = [uniform_layer(3, 2, taps=(-0.3, 1.0, -0.2), xp=xps) for _ in range(2)]
    m = linear_erf(layers_st, (15, 13))
    assert type(m).__module__.startswith("array_api_strict") and tuple(m.shape) == (15, 13)
    np.testing.assert_allclose(np.asarray(m), np.asarray(linear_erf(layers_np, (15, 13))), atol=1e-14)
    assert variance_radius(m) == pytest.approx(variance_radius(np.asarray(m)))


def test_linear_erf_errors():
    w = np.ones((1, 1, 3)) / 3
    with pytest.raises(ValueError, match="previous layer"):
        linear_erf([LinearLayer(np.ones((2, 1, 3))), LinearLayer(np.ones((1, 3, 3)))], 9)
    with pytest.raises(ValueError, match="even kernel"):
        linear_erf([LinearLayer(np.ones((1, 1, 4)))], 9)
    with pytest.raises(ValueError, match="taps"):
        linear_erf([LinearLayer(w, np.zeros((1, 2, 1, 3)))], 9)
    with pytest.raises(ValueError, match="boundary"):
        linear_erf([LinearLayer(w, None, 1, "mirror")], 9)
    with pytest.raises(ValueError, match="method"):
        linear_erf([LinearLayer(w)], 9, method="exact")
    with pytest.raises(ValueError, match="odd sizes"):
        linear_erf([LinearLayer(w)], 10, method="impulse")
    with pytest.raises(ValueError, match="spatial axes"):
        linear_erf([LinearLayer(w)], (9, 9))
    with pytest.raises(ValueError, match="empty"):
        linear_erf([], 9)
    with pytest.raises(ValueError, match="does not depend"):
        linear_erf([LinearLayer(np.zeros((1, 1, 3)))], 9)
    with pytest.raises(TypeError, match=r"layers\[0\]"):
        linear_erf([object()], 9)
    with pytest.raises(ValueError, match="odd kernel_size"):
        uniform_layer(4)


# ---------------------------------------------------------------------------------------------
# arma erf


def test_cli_help(capsys):
    from arma_core.erf_cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--depths",
        "--coefficients",
        "--kernel-size",
        "--dilation",
        "--boundary",
        "--output",
        "--ar",
    ):
        assert option in out
    assert "Theorem 3" in out and "a/(1-a)^2" in out


@pytest.mark.parametrize(
    "argv",
    [["-a", "1.0"], ["-L", "0"], ["-k", "4"], ["--boundary", "mirror"], ["--tol", "2"], ["--bogus"]],
)
def test_cli_rejects_bad_arguments(argv, capsys):
    from arma_core.erf_cli import main

    assert main(argv + ["--no-plot"]) == 2
    assert "arma erf" in capsys.readouterr().err


def test_cli_table_matches_theorem3_and_writes_png(tmp_path, capsys):
    from arma_core.erf_cli import main

    out = tmp_path / "sub" / "erf.png"
    assert main(["-L", "1", "2", "-a", "0", "0.7", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in text
    rows = [line.split() for line in text.splitlines() if line[:2].strip().isdigit()]
    assert len(rows) == 4
    for row in rows:
        L, a, size = int(row[0]), float(row[1]), int(row[2])
        r_eq3, r_var, r_axis, theory = map(float, row[3:7])
        assert size >= 65
        assert theory == pytest.approx(math.sqrt(L * (8 / 12 + a / (1 - a) ** 2)), abs=1e-3)
        assert r_axis == pytest.approx(theory, rel=1e-3)
        assert r_var == pytest.approx(math.sqrt(2) * theory, rel=1e-3)
        assert r_eq3 < r_var


def test_cli_symmetric_and_python_m(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "arma_core", "erf", "--ar", "symmetric", "-L", "2", "-a", "0.5", "--no-plot"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    row = [line.split() for line in proc.stdout.splitlines() if line[:2].strip().isdigit()][0]
    assert float(row[6]) == pytest.approx(math.sqrt(2 * (8 / 12 + 0.5 / 0.5)), abs=1e-3)
    assert float(row[5]) == pytest.approx(float(row[6]), rel=1e-3)

"""taps_from_lfilter / taps_from_kernel against scipy.signal.lfilter and FFT division."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

import arma_core.polynomial as poly
from arma_core import ar_solve
from arma_core import reference as R
from arma_core.polynomial import taps_from_kernel, taps_from_lfilter


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def periodic(x, a):
    """Periodic steady state of ``lfilter([1], a, .)``: division by ``a``'s DFT."""
    n = x.shape[-1]
    return np.fft.irfft(np.fft.rfft(x) / np.fft.rfft(a, n), n)


def kernel_spectrum(kernel, n):
    """DFT (rfft grid) of the centred kernel ``kernel[P + j]`` at offsets ``j = -P..P``."""
    h = np.zeros(n)
    P = len(kernel) // 2
    for j in range(-P, P + 1):
        h[j % n] += kernel[P + j]
    return np.fft.rfft(h)


def tolerance(kernel) -> float:
    """1e-12, or more for an ill-conditioned kernel: rounding is amplified by max|K| / min|K|."""
    spectrum = np.abs(kernel_spectrum(kernel, 4096))
    return max(1e-12, 1e-15 * spectrum.max() / spectrum.min())


def divide(x, kernel):
    n = x.shape[-1]
    return np.fft.irfft(np.fft.rfft(x) / kernel_spectrum(kernel, n), n)


def check_stability(taps) -> bool:
    """Every solve here keeps the stability check (negative f_0 is in the strip)."""
    return True


def laurent(taps):
    p = np.ones(1)
    for f in taps[0, 0]:
        p = np.convolve(p, f)
    return p


# ---------------------------------------------------------------------------------------------
# causal: lfilter


def causal_case(seed: int, order: int):
    rng = np.random.default_rng(seed)
    poles = rng.uniform(-0.95, 0.95, order)
    gain = [1.0, 2.5, -0.4, -3.0][seed % 4]
    return gain * np.poly(poles)


CAUSAL = [(seed, order) for order in range(1, 6) for seed in (order, order + 10)]


@pytest.mark.parametrize("seed, order", CAUSAL)
@pytest.mark.parametrize("method", ["dense", "auto"])
def test_lfilter_zeros_matches_scipy(seed, order, method):
    a = causal_case(seed, order)
    taps = taps_from_lfilter(a)
    assert taps.shape == (1, 1, order, 3) and taps.dtype == np.float64
    x = np.random.default_rng(100 + seed).standard_normal((3, 1, 257))
    y = ar_solve(x, taps, boundary="zeros", method=method, check_stability=check_stability(taps))
    assert rel(y, lfilter([1.0], a, x, axis=-1)) < 1e-12


@pytest.mark.parametrize("seed, order", CAUSAL)
@pytest.mark.parametrize("method", ["fft", "dense"])
@pytest.mark.parametrize("n", [64, 65])
def test_lfilter_circular_is_the_periodic_steady_state(seed, order, method, n):
    a = causal_case(seed, order)
    taps = taps_from_lfilter(a)
    x = np.random.default_rng(200 + seed).standard_normal((2, 1, n))
    y = ar_solve(x, taps, boundary="circular", method=method, check_stability=check_stability(taps))
    assert rel(y, periodic(x, a)) < 1e-12


def test_lfilter_taps_form():
    a = -8.0 * np.poly([0.5, -0.25, 0.75])
    taps = taps_from_lfilter(a)[0, 0]
    assert np.all(taps[:, 0] == 0)  # causal
    np.testing.assert_allclose(np.abs(taps[:, 1]), 2.0)  # |a[0]|^(1/Q) each
    assert taps[0, 1] < 0 and np.all(taps[1:, 1] > 0)  # the sign on the first factor
    np.testing.assert_allclose(sorted(-taps[:, 2] / taps[:, 1]), [-0.25, 0.5, 0.75])
    np.testing.assert_allclose(laurent(taps[None, None])[3:], a, rtol=1e-14)


def test_lfilter_dilation_is_the_polynomial_in_z_to_the_minus_d():
    a = 1.5 * np.poly([0.8, -0.6, 0.3])
    d = 3
    stuffed = np.zeros(d * (len(a) - 1) + 1)
    stuffed[::d] = a
    taps = taps_from_lfilter(a)
    x = np.random.default_rng(1).standard_normal((1, 200))
    y = ar_solve(x, taps, boundary="zeros", dilation=d, method="dense")
    assert rel(y, lfilter([1.0], stuffed, x)) < 1e-12
    y = ar_solve(x, taps, boundary="circular", dilation=d, method="fft")
    assert rel(y, periodic(x, stuffed)) < 1e-12


def test_lfilter_with_numerator_and_other_axis():
    """lfilter(b, a, x, axis=0): the numerator first, then the solve on the moved axis."""
    a = np.poly([0.9, 0.2])
    b = [0.5, 0.25]
    x = np.random.default_rng(2).standard_normal((120, 4))
    t = np.moveaxis(lfilter(b, [1.0], x, axis=0), 0, -1)  # (4, 120): four channels
    taps = np.broadcast_to(taps_from_lfilter(a), (4, 1, 2, 3))
    y = np.moveaxis(ar_solve(t, taps, boundary="zeros"), -1, 0)
    assert rel(y, lfilter(b, a, x, axis=0)) < 1e-12


@pytest.mark.parametrize("m", [3, 4, 5])
def test_lfilter_multiple_real_root(m):
    """(1 - z^-1 / 2)^m: the eigenvalue solver returns complex pairs, merged back to real."""
    a = np.poly([0.5] * m)
    assert np.any(np.abs(np.roots(a).imag) > 1e-7)  # the premise: inexact, partly complex roots
    taps = taps_from_lfilter(a)
    np.testing.assert_allclose(taps[0, 0, :, 2], -0.5, rtol=1e-12)
    x = np.random.default_rng(3).standard_normal((1, 300))
    assert rel(ar_solve(x, taps, boundary="zeros"), lfilter([1.0], a, x)) < 1e-12


def test_lfilter_order_zero_and_trailing_zeros():
    np.testing.assert_array_equal(taps_from_lfilter([2.0]), [[[[0.0, 2.0, 0.0]]]])
    np.testing.assert_array_equal(taps_from_lfilter(np.float64(-3)), [[[[0.0, -3.0, 0.0]]]])
    np.testing.assert_allclose(taps_from_lfilter([1, -0.5, 0, 0]), [[[[0.0, 1.0, -0.5]]]])


def test_lfilter_input_kinds_and_copy():
    a = np.array([1.0, -0.5])
    ref = taps_from_lfilter(a)
    for variant in ([1, -0.5], (np.float32(1), np.float64(-0.5)), a.astype(np.float32)):
        np.testing.assert_array_equal(taps_from_lfilter(variant), ref)
    np.testing.assert_array_equal(taps_from_lfilter([2, 1]), [[[[0.0, 2.0, 1.0]]]])  # integers
    ref[...] = 7.0
    np.testing.assert_array_equal(a, [1.0, -0.5])


@pytest.mark.parametrize(
    "a, match",
    [
        ([0.0, 1.0], r"a\[0\] must be nonzero"),
        ([], "a is empty"),
        ([[1.0, 0.5]], "one-dimensional"),
        ([1.0, np.nan], "NaN or inf"),
        ([1.0, -1.5], r"pole at 1\.5 with modulus 1\.5, outside the unit circle"),
        ([1.0, -1.0], r"modulus 1, on \(or within tol of\) the unit circle"),
        ([1.0, -(1 - 1e-8)], r"within tol of\) the unit circle"),
        ([1.0, 0.0, 0.25], r"complex pole pair.*taps_from_kernel.*sosfilt"),
        (np.poly([0.5 + 1e-4j, 0.5 - 1e-4j]).real, "complex pole pair.*nearly real"),  # not merged
    ],
)
def test_lfilter_errors(a, match):
    with pytest.raises(ValueError, match=match):
        taps_from_lfilter(a)


def test_lfilter_type_and_tol_errors():
    with pytest.raises(TypeError, match="complex"):
        taps_from_lfilter([1.0, 0.5j])
    with pytest.raises(TypeError, match="real numbers"):
        taps_from_lfilter(["1", "x"])
    with pytest.raises(ValueError, match="tol"):
        taps_from_lfilter([1.0, 0.5], tol=1.5)
    with pytest.raises(TypeError, match="tol"):
        taps_from_lfilter([1.0, 0.5], tol="small")
    taps_from_lfilter([1.0, -(1 - 1e-8)], tol=1e-9)  # a smaller tol admits the pole


def test_reconstruction_check_names_the_mismatch(monkeypatch):
    """With no tolerance left, the last-bit rounding of the gain spread must be reported."""
    monkeypatch.setattr(poly, "RTOL", 0.0)
    with pytest.raises(ValueError, match=r"reproduce a only to a relative error of .*product"):
        taps_from_lfilter(3.7 * np.poly([0.9, -0.7, 0.3, 0.1]))
    with pytest.raises(ValueError, match="reproduce kernel only to a relative error"):
        taps_from_kernel(KERNELS["complex_mixed"])


# ---------------------------------------------------------------------------------------------
# two-sided: symmetric kernels


def kernel_from_roots(reals, complexes, gain):
    """The symmetric kernel with inside roots ``reals`` and ``complexes`` (and conjugates)."""
    p = np.real(np.poly(list(reals) + list(complexes) + [np.conj(c) for c in complexes]))
    return gain * np.convolve(p, p[::-1])


def real_kernel(seed, P, gain=1.0):
    rng = np.random.default_rng(seed)
    return kernel_from_roots(rng.uniform(0.1, 0.9, P) * rng.choice([-1, 1], P), [], gain)


def complex_kernel(seed, n_real, n_pairs, gain=1.0):
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.2, 0.85, n_pairs) * np.exp(1j * rng.uniform(0.3, 2.8, n_pairs))
    return kernel_from_roots(rng.uniform(-0.85, 0.85, n_real), c, gain)


BSPLINE3 = np.array([1.0, 4.0, 1.0]) / 6
BSPLINE5 = np.array([1.0, 26.0, 66.0, 26.0, 1.0]) / 120


def gaussian(sigma, truncate):
    P = int(np.ceil(truncate * sigma))
    g = np.exp(-(np.arange(-P, P + 1) ** 2) / (2 * sigma**2))
    return g / g.sum()


KERNELS = {
    "bspline3": BSPLINE3,
    "bspline5": BSPLINE5,
    "bspline3_squared": np.convolve(BSPLINE3, BSPLINE3),  # double reciprocal pair
    "bspline3_cubed": np.convolve(np.convolve(BSPLINE3, BSPLINE3), BSPLINE3),  # merged triple
    "real_P3": real_kernel(0, 3, 2.0),
    "real_P4_negative": real_kernel(1, 4, -0.5),
    "gaussian_complex": gaussian(1.0, 4.0),  # two strip factors, one complex quadruple
    "complex_1pair": complex_kernel(2, 0, 1),
    "complex_mixed": complex_kernel(3, 2, 1, 3.0),
    "complex_2pairs_negative": complex_kernel(4, 1, 2, -1.5),
}


def winding_number(f) -> int:
    w = np.linspace(0, 2 * np.pi, 4097)
    phase = np.unwrap(np.angle(f[0] * np.exp(1j * w) + f[1] + f[2] * np.exp(-1j * w)))
    return round((phase[-1] - phase[0]) / (2 * np.pi))


@pytest.mark.parametrize("name", KERNELS)
def test_kernel_product_and_form(name):
    kernel = KERNELS[name]
    taps = taps_from_kernel(kernel)
    P = len(kernel) // 2
    assert taps.shape == (1, 1, P, 3) and taps.dtype == np.float64
    assert rel(laurent(taps), kernel) < 1e-13
    f = taps[0, 0]
    strip = np.abs(f[:, 0] + f[:, 2]) < np.abs(f[:, 1])
    S = int(strip.sum())
    assert S == P if "complex" not in name else S < P
    assert np.all(strip[:S])  # strip factors first
    np.testing.assert_array_equal(f[:S, 0], f[:S, 2])  # symmetric
    assert [winding_number(g) for g in f] == [0] * S + [1, -1] * ((P - S) // 2)
    np.testing.assert_allclose(f[S::2], f[S + 1 :: 2, ::-1])  # (in, out) are mirror images
    assert f[0, 1] < 0 if "negative" in name and S else True


def test_bspline3_is_its_own_factor():
    np.testing.assert_allclose(taps_from_kernel([1, 4, 1]), [[[[1.0, 4.0, 1.0]]]], rtol=1e-15)
    np.testing.assert_allclose(taps_from_kernel(BSPLINE3), BSPLINE3[None, None, None], rtol=1e-15)


@pytest.mark.parametrize("degree", [7, 9, 13, 21])
def test_high_degree_bspline_prefilters(degree):
    """Samples of the degree-n B-spline at the integers: (n - 1) / 2 strip factors, exact."""
    interpolate = pytest.importorskip("scipy.interpolate")
    knots = np.arange(degree + 2) - (degree + 1) / 2
    P = (degree - 1) // 2
    kernel = interpolate.BSpline.basis_element(knots)(np.arange(-P, P + 1.0))
    taps = taps_from_kernel(kernel)
    assert taps.shape == (1, 1, P, 3)
    assert np.all(np.abs(taps[..., 0] + taps[..., 2]) < taps[..., 1])
    assert rel(laurent(taps), kernel) < 1e-12
    x = np.random.default_rng(degree).standard_normal((1, 80))
    assert rel(ar_solve(x, taps, boundary="circular"), divide(x, kernel)) < tolerance(kernel)


def test_bspline5_factors_are_the_known_poles():
    """The quintic B-spline's poles (Unser): -0.430575..., -0.0430963..."""
    f = taps_from_kernel(BSPLINE5)[0, 0]
    poles = [np.roots(g[::-1]) for g in f]  # z f_-1 + f_0 + f_1 / z = 0
    inside = sorted(float(r[np.abs(r) < 1][0].real) for r in poles)
    np.testing.assert_allclose(inside, [-0.4305753470999738, -0.04309628820326465], rtol=1e-12)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("n", [64, 65])
def test_kernel_circular_divides_by_the_spectrum(name, n):
    kernel = KERNELS[name]
    taps = taps_from_kernel(kernel)
    x = np.random.default_rng(n).standard_normal((2, 1, n))
    y = ar_solve(x, taps, boundary="circular", method="fft")
    assert rel(y, divide(x, kernel)) < tolerance(kernel)
    if np.all(np.abs(taps[..., 0] + taps[..., 2]) < taps[..., 1]):  # strip, f_0 > 0: every method
        y = ar_solve(x, taps, boundary="circular", method="dense")
        assert rel(y, divide(x, kernel)) < tolerance(kernel)


def odd_extension(y, P):
    """``y[-1] = 0, y[-1 - j] = -y[j - 1]`` (and mirrored at the right end), ``P`` samples each side."""
    return np.pad(np.pad(y, 1), P - 1, mode="reflect", reflect_type="odd")


EXTENSIONS = {
    "reflect": lambda y, P: np.pad(y, P, mode="reflect"),
    "replicate": lambda y, P: np.pad(y, P, mode="symmetric"),
    "zeros": odd_extension,
}


@pytest.mark.parametrize("boundary", EXTENSIONS)
@pytest.mark.parametrize("name", ["bspline5", "real_P3", "real_P4_negative"])
def test_real_kernel_boundaries_are_symmetric_extensions(boundary, name):
    kernel = KERNELS[name]
    P = len(kernel) // 2
    taps = taps_from_kernel(kernel)
    x = np.random.default_rng(5).standard_normal((1, 23))
    y = ar_solve(x, taps, boundary=boundary, method="dense", check_stability=check_stability(taps))
    back = np.convolve(EXTENSIONS[boundary](y[0], P), kernel, mode="valid")
    assert rel(back, x[0]) < tolerance(kernel)


def test_kernel_2d_broadcast_taps():
    """The separable 2-D cubic B-spline prefilter: one taps row broadcast to (C, k, Q, 3)."""
    x = np.random.default_rng(6).standard_normal((3, 16, 20))
    taps = np.broadcast_to(taps_from_kernel(BSPLINE3), (3, 2, 1, 3))
    y = ar_solve(x, taps, boundary="circular", method="fft")
    spec = kernel_spectrum(BSPLINE3, 16)
    spec = np.concatenate([spec, spec[-2:0:-1]])[:, None] * kernel_spectrum(BSPLINE3, 20)[None]
    assert rel(y, np.fft.irfft2(np.fft.rfft2(x) / spec, (16, 20))) < 1e-12


def test_winding_factors_are_ill_conditioned_off_circular():
    """Documented: factors with winding number +-1 make the truncated systems blow up with n."""
    f = taps_from_kernel(KERNELS["complex_1pair"])[0, 0]
    for boundary in ("zeros", "reflect", "replicate"):
        conds = [np.linalg.cond(R.factor_matrix(n, f[0], 1, boundary).toarray()) for n in (10, 40)]
        assert conds[1] > 1e4 * conds[0]
    conds = [np.linalg.cond(R.factor_matrix(n, f[0], 1, "circular").toarray()) for n in (10, 40)]
    assert conds[1] < 10 * conds[0]


def test_kernel_multiple_complex_quadruple():
    """A double complex quadruple: inexact roots that stay complex, paired and checked."""
    c = 0.6 * np.exp(1.1j)
    kernel = kernel_from_roots([], [c, c], 1.0)
    taps = taps_from_kernel(kernel)
    assert rel(laurent(taps), kernel) < 1e-10
    x = np.random.default_rng(7).standard_normal((1, 50))
    y = ar_solve(x, taps, boundary="circular", method="fft")
    assert rel(y, divide(x, kernel)) < 1e-9


def test_kernel_trimming_constant_and_inputs():
    np.testing.assert_allclose(taps_from_kernel([0, 1, 4, 1, 0]), [[[[1.0, 4.0, 1.0]]]], rtol=1e-15)
    np.testing.assert_array_equal(taps_from_kernel([0.0, 2.0, 0.0]), [[[[0.0, 2.0, 0.0]]]])
    np.testing.assert_array_equal(taps_from_kernel(np.float32(5)), [[[[0.0, 5.0, 0.0]]]])
    np.testing.assert_allclose(taps_from_kernel((np.float64(1), 4, np.int64(1))), taps_from_kernel([1.0, 4.0, 1.0]))


@pytest.mark.parametrize(
    "kernel, match",
    [
        ([1.0, 4.0, 4.0, 1.0], "odd length"),
        ([1.0, 4.0, 2.0], "symmetric"),
        ([0.0, 0.0, 0.0], "all zeros"),
        ([1.0, 1.0, 1.0], r"unit circle.*vanishes.*w = 2\.0944"),  # spectrum changes sign
        ([1.0, 2.0, 1.0], r"modulus 1.*w = 3\.14159"),  # spectrum touches zero at pi
        (np.convolve([1.0, -1.9, 1.0], BSPLINE3), "unit circle"),  # a pair on the circle
        ([[1.0, 4.0, 1.0]], "one-dimensional"),
        ([1.0, np.inf, 1.0], "NaN or inf"),
    ],
)
def test_kernel_errors(kernel, match):
    with pytest.raises(ValueError, match=match):
        taps_from_kernel(kernel)


def test_kernel_type_error():
    with pytest.raises(TypeError, match="kernel has complex dtype"):
        taps_from_kernel([1j, 4.0, 1j])


def test_docstring_examples_run():
    result = doctest.testmod(poly, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("order, kernel", [(3, [1.0, 4.0, 1.0]), (5, [1.0, 26.0, 66.0, 26.0, 1.0])])
def test_bspline_prefilter_matches_scipy_ndimage(order, kernel):
    """The B-spline coefficients: reflect, replicate, circular against spline_filter1d's modes."""
    ndimage = pytest.importorskip("scipy.ndimage")
    taps = taps_from_kernel(np.array(kernel) / sum(kernel))
    x = np.random.default_rng(8).standard_normal((2, 1, 37))
    for boundary, mode in [("reflect", "mirror"), ("replicate", "reflect"), ("circular", "grid-wrap")]:
        y = ar_solve(x, taps, boundary=boundary, method="dense")
        assert rel(y, ndimage.spline_filter1d(x, order, mode=mode)) < 1e-13


def test_math_doc_section_examples_run():
    """The worked examples of docs/math.md, section "Filters from polynomials", as a doctest."""
    path = Path(__file__).resolve().parents[1] / "docs" / "math.md"
    text = path.read_text()
    start = text.index("## Filters from polynomials")
    end = text.find("\n## ", start + 1)
    section = text[start : None if end < 0 else end]
    section = "\n".join("" if line.startswith("```") else line for line in section.splitlines())
    test = doctest.DocTestParser().get_doctest(section, {}, "math.md", str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert len(test.examples) > 10 and runner.failures == 0

"""ARFilter and the array functions as a signal-processing user meets them: adjoints (dot test)
on every row of the capability table, axes and channel layouts, broadcast taps, empty inputs,
the non-finite policy, negative f_0, filters outside the strip on circular signals, and the
dense method at large sizes (LU's growth on wrap-around matrices)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from conftest import TOL, random_taps, rel_err, to_np

import arma_core as ac
from arma_core import reference as R
from arma_core.backends import _lines
from arma_core.testing import assert_close, capability_cases, dottest

DILATIONS = (1, 2, 3)


def _dot_cases():
    out = []
    for p in capability_cases("solve") + capability_cases("apply"):
        case = p.values[0]
        for b in case.row.boundaries:
            out.append(pytest.param(case, b, id=f"{case.row.operation}-{p.id}-{b}", marks=p.marks))
    return out


@pytest.mark.parametrize("d", DILATIONS)
@pytest.mark.parametrize("case, boundary", _dot_cases())
def test_dottest_every_row(case, boundary, d):
    """<A x, y> = <x, A^T y> and <A^-1 x, y> = <x, A^-T y> for every library x method x
    boundary x dilation of the capability table (apply rows test apply, solve rows solve)."""
    if case.library == "dask":
        pytest.skip("dask arrays are tested against numpy in test_dask.py (dottest needs eager arrays)")
    rng = np.random.default_rng(d + len(boundary))
    for k, shape in ((1, (3, 2, 9)), (2, (2, 2, 5, 6)), (3, (2, 4, 5, 6))):
        taps = case.asarray(random_taps(rng, 2, k, 2, edge=1e-2))
        A = ac.ARFilter(
            taps,
            boundary=boundary,
            dilation=d,
            method=case.row.method if case.row.operation == "solve" else "auto",
        )
        if case.row.operation == "apply":
            dottest(A, shape)
        else:
            dottest(A, shape, solve=True, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# layouts: axes, channel axis, broadcast taps


def _causal(a1):
    return np.array([0.0, 1.0, -a1]).reshape(1, 1, 1, 3)


def test_the_five_layouts_of_a_signal_user():
    """Each is one call, no reshaping, equal to the lfilter call it replaces."""
    rng = np.random.default_rng(0)
    taps = _causal(0.6)
    lf = lambda x, axis=-1: scipy.signal.lfilter([1.0], [1.0, -0.6], x, axis=axis)  # noqa: E731
    x = rng.normal(size=50)
    assert_close(ac.ar_solve(x, taps, boundary="zeros"), lf(x))  # (n,)
    xb = rng.normal(size=(4, 50))
    assert_close(ac.ar_solve(xb, taps, boundary="zeros"), lf(xb))  # (batch, n)
    xc = rng.normal(size=(50, 3))
    assert_close(ac.ar_solve(xc, taps, boundary="zeros", axes=(0,)), lf(xc, axis=0))  # (n, C)
    x3 = rng.normal(size=(4, 50, 3))
    assert_close(ac.ar_solve(x3, taps, boundary="zeros", axes=(1,)), lf(x3, axis=1))  # middle axis
    x3b = rng.normal(size=(2, 3, 50))
    assert_close(ac.ar_solve(x3b, taps, boundary="zeros", axes=(-1,)), lf(x3b))


def test_channel_axis_with_per_channel_taps():
    rng = np.random.default_rng(1)
    taps = random_taps(rng, 3, 2, 1)
    x = rng.normal(size=(2, 6, 7, 3))  # channels last
    y = ac.ar_solve(x, taps, boundary="reflect", axes=(1, 2))
    ref = np.moveaxis(R.ar_solve(np.moveaxis(x, 3, 1), taps, "reflect"), 1, 3)
    assert rel_err(y, ref) < 1e-12
    # the spatial axes in another order: taps' axis 0 acts along the signal's axis 2
    y2 = ac.ar_solve(x, taps, boundary="reflect", axes=(2, 1), channel_axis=-1)
    ref2 = np.moveaxis(R.ar_solve(np.moveaxis(x, (3, 2, 1), (1, 2, 3)), taps, "reflect"), (1, 2, 3), (3, 2, 1))
    assert rel_err(y2, ref2) < 1e-12
    with pytest.raises(ValueError, match="t has 7 channels at axis 2"):
        ac.ar_solve(x, taps, axes=(0, 1), channel_axis=2)
    with pytest.raises(ValueError, match="axes=.*repeats"):
        ac.ar_solve(x, taps, axes=(1, 1))
    with pytest.raises(ValueError, match="taps has k=2"):
        ac.ar_solve(x, taps, axes=(1,))
    with pytest.raises(ValueError, match="channel_axis=1 is one of the filtered axes"):
        ac.ar_solve(x, taps, axes=(1, 2), channel_axis=1)


def test_one_channel_of_taps_filters_every_channel(xp):
    rng = np.random.default_rng(2)
    one = random_taps(rng, 1, 2, 2)
    x = rng.normal(size=(2, 5, 6, 7))
    for fn in (ac.ar_solve, ac.ar_solve_adjoint, ac.ar_apply, ac.ar_apply_adjoint):
        got = fn(xp.asarray(x), xp.asarray(one), boundary="replicate")
        expect = fn(x, np.broadcast_to(one, (5, 2, 2, 3)).copy(), boundary="replicate")
        assert rel_err(got, expect) < 1e-12, fn.__name__


# ---------------------------------------------------------------------------------------------
# empty inputs


@pytest.mark.parametrize("method", ["auto", "dense", "lines", "fft"])
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_empty_axes_of_every_kind(xp, boundary, method):
    if method == "fft" and boundary != "circular":
        pytest.skip("fft is exact for circular only")
    if method == "lines" and xp.__name__ == "array_api_strict":
        pytest.skip("the line solver runs on numpy and torch")
    rng = np.random.default_rng(3)
    taps2 = xp.asarray(random_taps(rng, 2, 2, 1))
    taps0 = xp.asarray(np.zeros((0, 2, 1, 3)))
    for shape, taps in (
        ((0, 2, 4, 5), taps2),
        ((3, 0, 4, 5), taps0),
        ((3, 2, 0, 5), taps2),
        ((3, 2, 4, 0), taps2),
    ):
        t = xp.asarray(np.zeros(shape))
        if boundary == "reflect" and 0 in shape[2:]:
            with pytest.raises(ValueError, match="boundary='reflect'"):
                ac.ar_solve(t, taps, boundary=boundary, method=method)
            continue
        for fn in (ac.ar_solve, ac.ar_solve_adjoint):
            y = fn(t, taps, boundary=boundary, method=method)
            assert tuple(y.shape) == shape and y.dtype == t.dtype
        assert tuple(ac.ar_apply(t, taps, boundary=boundary).shape) == shape


# ---------------------------------------------------------------------------------------------
# non-finite values


def _nan_pattern(method, boundary, taps, x, d=1):
    y = ac.ar_solve(x, taps, boundary=boundary, dilation=d, method=method, check_finite=False)
    return ~np.isfinite(to_np(y))


@pytest.mark.parametrize("method", ["auto", "dense", "lines"])
def test_nan_stays_within_the_support(method):
    """check_finite=False: a NaN makes NaN exactly the outputs that depend on it."""
    if method == "lines" and not _lines.available():
        pytest.skip("the compiled line solver is not built")
    x = np.arange(40.0).reshape(2, 20)
    x[0, 7] = np.nan
    with pytest.raises(ValueError, match="t contains NaN or inf"):
        ac.ar_solve(x, _causal(0.5), boundary="zeros", method=method)
    # causal, zeros: like lfilter, from the NaN on
    bad = _nan_pattern(method, "zeros", _causal(0.5), x)
    expect = np.zeros_like(bad)
    expect[0, 7:] = True
    assert np.array_equal(bad, expect)
    lf = scipy.signal.lfilter([1.0], [1.0, -0.5], x)
    fin = ~bad
    assert np.allclose(ac.ar_solve(x, _causal(0.5), boundary="zeros", method=method, check_finite=False)[fin], lf[fin])
    # anti-causal: up to the NaN; two-sided: the whole row; diagonal: the sample only
    anti = np.array([-0.5, 1.0, 0.0]).reshape(1, 1, 1, 3)
    expect = np.zeros_like(bad)
    expect[0, :8] = True
    assert np.array_equal(_nan_pattern(method, "zeros", anti, x), expect)
    two = np.array([0.2, 1.0, -0.3]).reshape(1, 1, 1, 3)
    expect = np.zeros_like(bad)
    expect[0] = True
    for b in ac.BOUNDARIES:
        if method == "fft" and b != "circular":
            continue
        assert np.array_equal(_nan_pattern(method, b, two, x), expect), b
    diag = np.array([0.0, 2.0, 0.0]).reshape(1, 1, 1, 3)
    expect = np.zeros_like(bad)
    expect[0, 7] = True
    assert np.array_equal(_nan_pattern(method, "reflect", diag, x), expect)
    # causal with dilation 3: the NaN's chain only (zeros); replicate also feeds every chain
    # from sample 0
    expect = np.zeros_like(bad)
    expect[0, 7::3] = True
    assert np.array_equal(_nan_pattern(method, "zeros", _causal(0.5), x, d=3), expect)
    x0 = np.arange(40.0).reshape(2, 20)
    x0[1, 0] = np.inf
    expect = np.zeros_like(bad)
    expect[1, :] = True
    assert np.array_equal(_nan_pattern(method, "replicate", _causal(0.5), x0, d=3), expect)


def test_nan_in_2d_stays_in_its_rows_for_causal_axes():
    taps = np.zeros((1, 2, 1, 3))
    taps[0, 0, 0] = [0.0, 1.0, -0.5]  # causal down the rows
    taps[0, 1, 0] = [0.0, 1.0, 0.0]  # identity across
    x = np.ones((6, 5))
    x[2, 3] = np.nan
    for method in ("auto", "dense") + (("lines",) if _lines.available() else ()):
        bad = ~np.isfinite(ac.ar_solve(x, taps, boundary="zeros", method=method, check_finite=False))
        expect = np.zeros_like(bad)
        expect[2:, 3] = True
        assert np.array_equal(bad, expect), method


# ---------------------------------------------------------------------------------------------
# stability: negative f_0, winding numbers


@pytest.mark.parametrize("method", ["auto", "dense", "lines", "fft"])
def test_negative_f0_is_stable_everywhere(xp, method):
    if method == "lines" and xp.__name__ == "array_api_strict":
        pytest.skip("the line solver runs on numpy and torch")
    if method == "lines" and not _lines.available():
        pytest.skip("the compiled line solver is not built")
    taps = np.array([0.0, -1.0, 0.5]).reshape(1, 1, 1, 3)  # lfilter([1], [-1, 0.5])
    assert ac.is_stable(taps) and float(ac.stability_margin(taps)[0, 0, 0]) == 0.5
    x = np.random.default_rng(4).normal(size=(3, 64))
    boundaries = ["circular"] if method == "fft" else ac.BOUNDARIES
    for b in boundaries:
        y = ac.ar_solve(xp.asarray(x), xp.asarray(taps), boundary=b, method=method)
        assert rel_err(y, R.ar_solve(x, taps, b)) < 1e-12, b
        if b == "zeros":
            assert rel_err(y, scipy.signal.lfilter([1.0], [-1.0, 0.5], x)) < 1e-12


def test_winding_factors_are_solved_on_circular_signals_only():
    taps = np.array([1.0, -0.5, 0.25]).reshape(1, 1, 1, 3)  # roots 0.25 +- 0.43i: winding +1
    x = np.random.default_rng(5).normal(size=(2, 32))
    assert not ac.is_stable(taps) and ac.is_stable(taps, boundary="circular")
    ref = R.ar_solve(x, taps, "circular")
    for method in ("auto", "fft", "dense"):
        assert rel_err(ac.ar_solve(x, taps, method=method), ref) < 1e-12
    missing = "needs every factor in the strip" if _lines.available() else "needs the compiled line solver"
    with pytest.raises(ValueError, match=f"method='lines' {missing}"):
        ac.ar_solve(x, taps, method="lines")
    for b in ("zeros", "reflect", "replicate"):
        with pytest.raises(ac.UnstableFilterError, match="winding number"):
            ac.ar_solve(x, taps, boundary=b)
    on_circle = np.array([0.5, 1.0, 0.5]).reshape(1, 1, 1, 3)
    with pytest.raises(ac.UnstableFilterError, match="vanishes on the unit circle"):
        ac.ar_solve(x, on_circle)


# ---------------------------------------------------------------------------------------------
# dense: exact at every size (no LU on wrap-around matrices)


def _wide_taps():
    """Stable taps from every region, including large |f_-1 - f_1| (off-diagonal dominant)."""
    return [
        (1.5, 1.0, -1.0),
        (1.02, 1.0, -0.28),
        (-3.0, 1.0, 3.5),
        (0.0, -1.0, 0.9),
        (40.0, 1.0, -39.5),
        (0.45, 1.0, 0.45),
    ]


@pytest.mark.parametrize("n", [64, 256, 1024])
def test_dense_exact_for_every_boundary_at_large_sizes(xp, n):
    if xp.__name__ == "array_api_strict" and n > 256:
        pytest.skip("array_api_strict's matmul is slow at n = 1024; numpy and torch cover it")
    rng = np.random.default_rng(n)
    x = rng.normal(size=(2, n))
    for f in _wide_taps():
        taps = np.array(f).reshape(1, 1, 1, 3)
        for b in ac.BOUNDARIES:
            y = ac.ar_solve(xp.asarray(x), xp.asarray(taps), boundary=b, method="dense")
            ref = R.ar_solve(x, taps, b)
            assert rel_err(y, ref) < TOL["float64"], (f, b)
            if b == "circular":
                fft = ac.ar_solve(x, taps, boundary=b, method="fft")
                assert rel_err(y, fft) < TOL["float64"], f


def test_filter_keeps_its_precomputation_between_calls():
    rng = np.random.default_rng(6)
    taps = random_taps(rng, 3, 2, 2)
    A = ac.ARFilter(taps, boundary="reflect")
    x = rng.normal(size=(4, 3, 9, 8))
    y1 = A.solve(x)
    assert A._cache, "the kernel kept nothing"
    kept = dict(A._cache)
    y2 = A.solve(x[:2])
    assert all(A._cache[k] is v for k, v in kept.items())  # reused, not rebuilt
    assert np.array_equal(y1[:2], y2)
    assert np.array_equal(A.T.solve(x), ac.ar_solve_adjoint(x, taps, boundary="reflect"))
    assert A.T.T.solve(x).tolist() == y1.tolist()
    assert "C=3, k=2, Q=2" in repr(A) and repr(A.T).endswith(".T")


def test_a_filter_decides_a_kind_of_signal_once():
    """What a signal's library, dtype, device and shape decide (namespace, dtypes, layout, row)
    is kept per those: a second call of the same kind takes it from the filter, the checks of
    values still run on every call (check_finite), another kind (dtype, shape, a list, another
    library) is decided on its own, and new taps (a layer's next filter) keep the rest but
    resolve the row again."""
    torch = pytest.importorskip("torch")

    def kept(f, kind):
        return [k for k in f._state if type(k) is tuple and k[0] == kind]

    rng = np.random.default_rng(7)
    taps = random_taps(rng, 2, 2, 1)
    A = ac.ARFilter(taps, boundary="circular")
    x = rng.normal(size=(3, 2, 8, 8))
    y = A.solve(x)
    calls = kept(A, "call")
    assert len(calls) == 1
    assert np.array_equal(A.solve(x), y) and kept(A, "call") == calls
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        A.solve(bad, check_finite=True)
    y32 = A.solve(x.astype(np.float32))
    assert y32.dtype == np.float64 and rel_err(y32, R.ar_solve(x.astype(np.float32), taps, "circular", 1)) < 1e-12
    assert len(kept(A, "call")) == 2
    with pytest.raises(TypeError, match="builtins.list"):
        A.solve(x.tolist())
    with pytest.raises(TypeError, match="different"):
        A.solve(torch.from_numpy(x))
    new = taps * 0.5 + np.array([0.0, 0.5, 0.0])
    B = A._retap(new, new)
    assert kept(B, "signal") == kept(A, "signal") and not kept(B, "call") and not kept(B, "row")
    assert rel_err(B.solve(x), R.ar_solve(x, B.taps, "circular", 1)) < 1e-12


def test_backends_page_is_generated_from_the_table():
    """docs/backends.md is the table's markdown: regenerate it with
    ``python -m arma_core.capabilities > docs/backends.md`` when this fails."""
    from pathlib import Path

    from arma_core.capabilities import markdown

    page = Path(__file__).resolve().parents[1] / "docs" / "backends.md"
    assert page.read_text() == markdown(), "docs/backends.md is stale"

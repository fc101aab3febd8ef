"""The paths that make calls cheap, against what they replace.

- the compiled line solver: results independent of the thread count, the one-pass causal
  factor against ``scipy.signal.lfilter``, 1-D rows grouped across channels, plans of long
  axes (pivots stored up to convergence, the edge correction stored where it is not
  negligible), the tiled transposes of the last axis;
- the checks: finiteness of large and small arrays, float32 sums that would overflow;
- the functional API: the filters kept for small NumPy taps (by content, never stale);
- the layers: the filter kept across calls (also with autograd) and rebuilt when ``theta``
  changes by any route, the one-node reparameterization against autograd through
  :func:`arma_core.reparameterize`, modules that pickle and copy after a forward.
"""

from __future__ import annotations

import copy
import io
import os
import pickle
import platform

import array_api_compat.numpy as compat_numpy
import numpy as np
import pytest
from conftest import random_taps, rel_err

import arma_core as ac
from arma_core import reference as R
from arma_core.backends import _lines
from arma_core.filters import reparameterize_host, reparameterize_jacobian, reparameterize_values, reparameterize_vjp

needs_lines = pytest.mark.skipif(not _lines.available(), reason="the compiled line solver is not built")


# ---------------------------------------------------------------------------------------------
# the compiled line solver


@needs_lines
@pytest.mark.parametrize("shape", [(3, 4, 40, 48), (2, 3, 10, 12, 14), (40, 3, 3000)])
def test_lines_results_do_not_depend_on_threads(shape):
    rng = np.random.default_rng(0)
    k = len(shape) - 2
    taps = random_taps(rng, 3, k, 2)
    t = rng.normal(size=shape).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    for b in ac.BOUNDARIES:
        y1 = _lines.solve(t, taps, boundary=b, dilation=1, threads=1)
        y3 = _lines.solve(t, taps, boundary=b, dilation=1, threads=3)
        assert np.array_equal(y1, y3), b
        w1, gt1 = _lines.solve_vjp(y1, g, taps, boundary=b, dilation=1, threads=1)
        w3, gt3 = _lines.solve_vjp(y1, g, taps, boundary=b, dilation=1, threads=3)
        assert np.array_equal(w1, w3) and np.array_equal(gt1, gt3), b


@needs_lines
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lines_causal_factor_in_one_pass(dtype):
    """f_-1 = 0 with the zeros rule: lfilter([1], [f_0, f_1]) per factor, rows of one channel
    and one row per channel, one and two factors (the second reads the first's output)."""
    scipy_signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(1)
    for shape, C, Q in [((4, 1, 700), 1, 1), ((1, 6, 700), 6, 1), ((2, 3, 500), 3, 2), ((5, 700), 1, 2)]:
        a = rng.uniform(-0.95, 0.95, size=(C, 1, Q))
        f0 = rng.uniform(0.5, 2.0, size=(C, 1, Q))
        taps = np.stack([np.zeros_like(a), f0, -a * f0], axis=-1).astype(dtype)
        t = rng.normal(size=shape).astype(dtype)
        y = ac.ar_solve(t, taps, boundary="zeros", method="lines")
        ref = t.astype(np.float64)
        for q in range(Q):
            coef = taps[:, 0, q].astype(np.float64)
            if C == 1:
                ref = scipy_signal.lfilter([1.0], [coef[0, 1], coef[0, 2]], ref, axis=-1)
            else:
                ref = np.stack(
                    [scipy_signal.lfilter([1.0], [coef[c, 1], coef[c, 2]], ref[..., c, :]) for c in range(C)], axis=-2
                )
        assert rel_err(y, ref) < (1e-5 if dtype == "float32" else 1e-12), (shape, C, Q)


@needs_lines
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_lines_1d_rows_across_channels(boundary):
    """Channels with fewer than 4 rows share the 4 recurrences in flight with other channels."""
    rng = np.random.default_rng(2)
    import array_api_compat.numpy as xnp

    from arma_core.solve import dense_kernel, solve_vjp

    for bshape, C, n, Q, d in [((), 5, 33, 1, 1), ((2,), 3, 20, 2, 2), ((1,), 7, 9, 3, 1)]:
        taps = random_taps(rng, C, 1, Q)
        t = rng.normal(size=bshape + (C, n))
        for adjoint in (False, True):
            fn = ac.ar_solve_adjoint if adjoint else ac.ar_solve
            y = fn(t, taps, boundary=boundary, dilation=d, method="lines")
            assert rel_err(y, R.ar_solve(t, taps, boundary, d, adjoint=adjoint)) < 1e-10, (bshape, C, adjoint)
            g = rng.normal(size=t.shape)
            w, gt = _lines.solve_vjp(y, g, taps, boundary=boundary, dilation=d, adjoint=adjoint)
            w2, gt2 = solve_vjp(xnp, dense_kernel, y, g, taps, boundary=boundary, dilation=d, adjoint=adjoint)
            assert rel_err(w, w2) < 1e-10 and rel_err(gt, gt2) < 1e-8, (bshape, C, adjoint)


@needs_lines
@pytest.mark.parametrize("boundary", ["circular", "reflect", "replicate"])
def test_lines_long_axes_with_fast_and_slow_decay(boundary):
    """Long lines: the pivots converge early (fast decay) or late (taps at the strip's edge,
    where the edge correction stays dense), against the FFT (circular) or the sparse reference."""
    rng = np.random.default_rng(3)
    n = 4000
    for s in (0.3, 1 - 1e-4):
        taps = np.array([[[[s / 2 + 0.2, 1.0, s / 2 - 0.2]]], [[[-s / 2, 1.0, -s / 2]]]])
        t = rng.normal(size=(3, 2, n))
        y = ac.ar_solve(t, taps, boundary=boundary, method="lines")
        if boundary == "circular":
            ref = ac.ar_solve(t, taps, boundary=boundary, method="fft")
        else:
            ref = R.ar_solve(t, taps, boundary, 1)
        assert rel_err(y, ref) < 1e-10, (s, boundary)


@needs_lines
def test_lines_tiled_transposes():
    """The last axis goes through 8 x 8 tiles: sizes that are and are not multiples of 8, strips
    with fewer rows than a tile."""
    rng = np.random.default_rng(4)
    for shape in [(8, 8), (9, 7), (33, 16), (5, 17), (31, 9), (3, 2, 24)]:
        taps = random_taps(rng, 2, len(shape), 2)
        t = rng.normal(size=(2, 2) + shape).astype(np.float32)
        for b in ("circular", "zeros"):
            y = ac.ar_solve(t, taps.astype(np.float32), boundary=b, method="lines")
            assert rel_err(y, R.ar_solve(t, taps, b, 1)) < 1e-5, (shape, b)


@pytest.fixture
def work32():
    """``set(flag)`` switches the line solver's float32 work copies; restored afterwards."""
    ext = _lines._ext()
    old = ext.set_work32(True)
    yield ext.set_work32
    ext.set_work32(old)


def _taps_with_sums(rng, sums, spread, k, Q):
    """Taps (len(sums), k, Q, 3), float64 values of float32 numbers: channel c's factors have
    |f_-1 + f_1| = sums[c] (random signs) and f_-1 - f_1 ~ N(0, spread^2)."""
    C = len(sums)
    s = np.asarray(sums, dtype=np.float64)[:, None, None] * rng.choice([-1.0, 1.0], size=(C, k, Q))
    d = rng.normal(scale=spread, size=(C, k, Q))
    taps = np.stack([(s + d) / 2, np.ones_like(s), (s - d) / 2], axis=-1)
    return taps.astype(np.float32).astype(np.float64)


@needs_lines
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_lines_float32_work_copies_against_the_reference(boundary, work32):
    """Float32 signals of well-conditioned channels run their recurrences in float32 (circular
    and zeros): the solve, the input gradient and the taps' gradient stay within a few float32
    roundings of the float64 reference (1e-6, ten times inside the 1e-5 contract) while differing
    from the float64 work copy's results (the path runs); channels past the conditioning bound,
    and reflect and replicate, keep the float64 work copy, bit for bit. Sizes that are and are
    not multiples of the 16-lane vectors and the 8 x 8 tiles, 3-D blocks, two factors, dilation
    2, long last axes with one factor (scalar chains) and with two (strips), more rows than one
    strip of the last axis holds; planes below 16 x 16 keep float64 (faster there)."""
    from arma_core.solve import dense_kernel, solve_vjp

    rng = np.random.default_rng(11)
    cases = [((16, 16), 1, 1), ((33, 24), 1, 1), ((17, 40), 2, 1), ((64, 64), 1, 1), ((5, 7, 16), 1, 1)]
    cases += [((20, 24), 1, 2), ((16, 150), 2, 1), ((3, 6, 16), 1, 2), ((2, 140), 1, 1), ((9, 12), 1, 1)]
    cases += [((70, 24), 1, 1), ((5, 30, 16), 1, 1)]  # 70 and 150 rows: two and three strips of 64
    for shape, Q, d in cases:
        k = len(shape)
        if boundary == "reflect" and min(shape) <= d:
            continue
        # channels 0-2 well conditioned (the float32 work copy), 3 at 0.9 (past the bound)
        taps = _taps_with_sums(rng, [0.0, 0.5, 0.7, 0.9], 0.3, k, Q)
        x = rng.normal(size=(2, 4) + shape).astype(np.float32)
        g = rng.normal(size=x.shape).astype(np.float32)
        kw = dict(boundary=boundary, dilation=d, threads=1)
        out = {}
        for flag in (True, False):
            work32(flag)
            y = _lines.solve(x, taps.astype(np.float32), **kw)
            w, gt = _lines.solve_vjp(y, g, taps.astype(np.float32), **kw)
            out[flag] = (y, w, gt)
        y64 = R.ar_solve(x.astype(np.float64), taps, boundary, d)
        w64, gt64 = solve_vjp(
            compat_numpy,
            dense_kernel,
            out[True][0].astype(np.float64),
            g.astype(np.float64),
            taps,
            boundary=boundary,
            dilation=d,
        )
        (y, w, gt), (y_, w_, _) = out[True], out[False]
        assert y.dtype == np.float32 and w.dtype == np.float32
        assert rel_err(y, y64) < 1e-6 and rel_err(w, w64) < 1e-6, (shape, Q, d)
        assert rel_err(gt, gt64) < 1e-5, (shape, Q, d)
        assert np.array_equal(y[:, 3], y_[:, 3]) and np.array_equal(w[:, 3], w_[:, 3]), (shape, Q, d)
        rows = int(np.prod(shape[:-1]))
        if shape[-1] > 128 and Q == 1 or boundary in ("reflect", "replicate") or min(rows, shape[-1]) < 16:
            # long last axes of one factor (the scalar chains), the edge rows of reflect and
            # replicate (no conditioning bound), planes below 16 x 16: float64 work copies
            assert np.array_equal(y, y_) and np.array_equal(w, w_), shape
        else:
            assert not np.array_equal(y[:, 1:3], y_[:, 1:3]), (shape, Q, d)


@pytest.fixture
def dense_max():
    """``set(n)`` bounds the planes that get dense inverses in the plans built next; restored."""
    ext = _lines._ext()
    old = ext.set_dense_max(16)
    yield ext.set_dense_max
    ext.set_dense_max(old)


@needs_lines
def test_lines_circular_small_planes_keep_one_row_per_circulant(dense_max):
    """A circular small plane's inverses are circulants: its plans hold each channel's first row
    (twice, 2 n values per axis) instead of n x n matrices, so a 128-channel 16 x 16 plan pair is
    a fraction of the other boundaries' (which hold the matrices), and building it does not
    scale with n^2 per channel. Both directions' plans at once equal one at a time, byte for
    byte (padding included)."""
    rng = np.random.default_rng(3)
    C, shape = 128, (16, 16)
    taps = np.ascontiguousarray(_taps_with_sums(rng, [0.2, 0.6], 0.3, 2, 1), dtype=np.float64)
    taps = np.ascontiguousarray(np.broadcast_to(taps[:1], (C,) + taps.shape[1:]))
    ext = _lines._ext()
    dense_max(16)
    sizes = {}
    for boundary in ("circular", "zeros"):
        args = (taps, C, 2, 1, shape, 1, getattr(ext, boundary.upper()))
        both = ext.plan(*args, 2, 1)
        assert both == (ext.plan(*args, 0, 1), ext.plan(*args, 1, 1))
        sizes[boundary] = len(both[0])
    matrices = C * 2 * 16 * 16 * 12  # float64 and float32 copies of two 16 x 16 matrices per channel
    assert sizes["zeros"] > matrices
    rows, header = C * 2 * 32 * 12, C * 2 * 3 * 8 + 4096  # 2 n values per axis; the taps and the header
    assert sizes["circular"] < rows + header < matrices / 4


@needs_lines
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_lines_dense_inverses_of_small_planes(boundary, dense_max, work32):
    """2-D planes of at most 8 rows of 4 or 8 samples, or at most 16 rows of 16, are solved with
    each axis's inverse as a dense matrix (in the plan): the solve, the input gradient and the
    taps' gradient against the float64 reference, forward and adjoint solves, one and two
    factors, dilation 1, 2 and past half an axis (circular: the inverses from the circulants'
    eigenvalues), float32 and float64 (rows of 16: float32 arithmetic for the
    well-conditioned channels, float64 for the others: the sums 0.2 and 0.6 pass work32_ok, 0.9
    does not), plans built one direction at a time and both at once; the plans carry the
    matrices in place of the factors (a plan of one direction refuses the other) and the results
    differ from the recurrences' in the last bits (the path runs). Other sizes (6 x 6, 16 x 8,
    32 x 16, 3-D blocks) keep the recurrences, bit for bit."""
    from arma_core.solve import dense_kernel, solve_vjp

    rng = np.random.default_rng(17)
    cases = [((4, 4), 1, 1), ((8, 8), 1, 1), ((8, 8), 2, 2), ((5, 8), 1, 1), ((8, 4), 2, 1), ((1, 4), 1, 1)]
    cases += [((16, 16), 1, 1), ((16, 16), 2, 2), ((12, 16), 1, 1), ((3, 16), 2, 1), ((1, 16), 1, 1)]
    cases += [((6, 6), 1, 1), ((16, 8), 1, 1), ((32, 16), 1, 1), ((2, 4, 4), 1, 1)]
    cases += [((8, 8), 1, 3), ((5, 16), 2, 7), ((4, 4), 3, 2)]  # dilations past half an axis (wrapping twice)
    for shape, Q, d in cases:
        if boundary == "reflect" and min(shape) <= d:
            continue
        rows, length = shape[0], shape[-1]
        dense = len(shape) == 2 and (rows <= 8 and length in (4, 8) or rows <= 16 and length == 16)
        taps = _taps_with_sums(rng, [0.2, 0.6, 0.9], 0.3, len(shape), Q)
        for dt, tol in ((np.float64, 1e-12), (np.float32, 1e-6)):
            x = rng.normal(size=(2, 3) + shape).astype(dt)
            g = rng.normal(size=x.shape).astype(dt)
            for adjoint in (False, True):
                kw = dict(boundary=boundary, dilation=d, adjoint=adjoint, threads=1)
                out = {}
                for n, both in ((16, False), (16, True), (0, False)):
                    dense_max(n)
                    cache: dict = {}
                    y = _lines.solve(x, taps.astype(dt), cache=cache, backward=both, **kw)
                    w, gt = _lines.solve_vjp(y, g, taps.astype(dt), cache=cache, **kw)
                    out[n, both] = (y, w, gt, cache)
                y, w, gt, cache = out[16, False]
                y64 = R.ar_solve(x.astype(np.float64), taps, boundary, d, adjoint=adjoint)
                w64, gt64 = solve_vjp(
                    compat_numpy,
                    dense_kernel,
                    y.astype(np.float64),
                    g.astype(np.float64),
                    taps,
                    boundary=boundary,
                    dilation=d,
                    adjoint=adjoint,
                )
                what = (shape, Q, d, dt.__name__, adjoint)
                assert rel_err(y, y64) < tol and rel_err(w, w64) < tol, what
                assert rel_err(gt, gt64) < 10 * tol, what
                # both directions' plans at once: the same plans, the same results
                for a, b in zip(out[16, False][:3], out[16, True][:3]):
                    assert np.array_equal(a, b), what
                plans = out[16, True][3]
                for key in out[0, False][3]:
                    assert plans[key] == cache[key], what
                same = [np.array_equal(a, b) for a, b in zip(out[16, False][:2], out[0, False][:2])]
                if not dense:
                    assert all(same), what
                elif dt == np.float64:
                    assert not any(same), what
                if dense and length == 16 and dt == np.float32:
                    # float32 arithmetic for the channels of work32_ok (circular, zeros; not the
                    # third channel): they change with the float32 work switched off, no other
                    work32(False)
                    y_off = _lines.solve(x, taps.astype(dt), **kw)
                    work32(True)
                    changed = [not np.array_equal(y[:, c], y_off[:, c]) for c in range(3)]
                    fast = boundary in ("circular", "zeros")
                    assert changed == [fast, fast, False], what
                if dense and adjoint:  # mixed precisions (the extension's out of another dtype)
                    other = np.float64 if dt == np.float32 else np.float32
                    mixed = _lines.solve(x, taps.astype(dt), out=np.empty(x.shape, other), **kw)
                    assert mixed.dtype == other and rel_err(mixed, y64) < 1e-6, what
                if dense:  # the plan of A holds A's inverses only: no A^T solve from it
                    plan = plans[("lines", shape, adjoint)]
                    with pytest.raises(ValueError, match="rev = transposed only"):
                        _lines._ext().solve(
                            x, np.empty_like(x), plan, 6, dt == np.float32, dt == np.float32, not adjoint, 1
                        )


@needs_lines
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_lines_large_planes_reach_the_output_through_the_work_copy(boundary):
    """Planes of 2048 samples and more (``STAGE_MIN``) get their last axis transposed back into
    the work copy and reach the output in one sequential pass (copied, or converted to float32):
    float64 and float32 signals (both work copies), one and two factors, 2-D and 3-D, sizes on
    both sides of the threshold (2016 and 2048 samples) and of the strips, against the reference;
    the input gradient (whose adjoint solve takes the same path) against the dense one."""
    from arma_core.solve import dense_kernel, solve_vjp

    rng = np.random.default_rng(13)
    cases = [((32, 63), 1), ((32, 64), 1), ((45, 70), 2), ((70, 33), 1), ((3, 20, 40), 1)]
    for shape, Q in cases:
        taps = _taps_with_sums(rng, [0.3, 0.6], 0.3, len(shape), Q)
        for dt in (np.float64, np.float32):
            x = rng.normal(size=(2, 2) + shape).astype(dt)
            g = rng.normal(size=x.shape).astype(dt)
            kw = dict(boundary=boundary, dilation=1, threads=1)
            y = _lines.solve(x, taps.astype(dt), **kw)
            w, _ = _lines.solve_vjp(y, g, taps.astype(dt), **kw)
            y64 = R.ar_solve(x.astype(np.float64), taps, boundary, 1)
            y_, g_ = y.astype(np.float64), g.astype(np.float64)
            w64, _ = solve_vjp(compat_numpy, dense_kernel, y_, g_, taps, boundary=boundary, dilation=1)
            tol = 1e-10 if dt == np.float64 else 1e-6
            assert y.dtype == w.dtype == dt
            assert rel_err(y, y64) < tol and rel_err(w, w64) < tol, (shape, Q, np.dtype(dt).name)


@needs_lines
def test_lines_float32_work_copy_rule(work32):
    """The bound is per channel and per factor, |f_0| + |f_-1| + |f_1| <= 8 (|f_0| - |f_-1 + f_1|):
    a symmetric factor qualifies up to |f_-1 + f_1| = 7/9, a lopsided one earlier, a scaled f_0
    the same as 1; float64 signals and the reflect rule never take the float32 work copy."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(1, 1, 16, 20)).astype(np.float32)

    def uses_float32_work(taps):
        taps = np.asarray(taps, dtype=np.float32).reshape(1, 2, 1, 3)
        work32(True)
        a = _lines.solve(x, taps, boundary="circular", dilation=1, threads=1)
        work32(False)
        b = _lines.solve(x, taps, boundary="circular", dilation=1, threads=1)
        return not np.array_equal(a, b)

    plain = [-0.1, 1.0, -0.1]
    assert uses_float32_work([plain, [-0.38, 1.0, -0.38]])  # 1.76 <= 8 x 0.24
    assert not uses_float32_work([plain, [-0.39, 1.0, -0.39]])  # 1.78 > 8 x 0.22
    assert uses_float32_work([[-0.35, 1.0, -0.35], plain])  # 1.7 <= 8 x 0.3
    assert not uses_float32_work([[-1.2, 1.0, 0.5], plain])  # the same sum, lopsided: 2.7 > 2.4
    assert uses_float32_work([[-0.76, 2.0, -0.76], plain])  # scaled: 3.52 <= 8 x 0.48
    work32(True)
    a = _lines.solve(x, np.array([plain, plain], np.float32).reshape(1, 2, 1, 3), boundary="reflect", dilation=1)
    work32(False)
    assert np.array_equal(
        a, _lines.solve(x, np.array([plain, plain], np.float32).reshape(1, 2, 1, 3), boundary="reflect", dilation=1)
    )
    work32(True)
    x64 = x.astype(np.float64)
    taps = np.array([plain, plain]).reshape(1, 2, 1, 3)
    y = _lines.solve(x64, taps, boundary="circular", dilation=1, threads=1)
    work32(False)
    assert np.array_equal(y, _lines.solve(x64, taps, boundary="circular", dilation=1, threads=1))


# ---------------------------------------------------------------------------------------------
# checks


@needs_lines  # without it the 100,000-sample zeros axis would take the dense method's n x n inverse
def test_check_finite_large_and_small_arrays():
    for n in (10, 100_000):
        x = np.ones(n, dtype=np.float32)
        ac.ar_solve(x, np.array([[[[0.2, 1.0, 0.1]]]], dtype=np.float32), boundary="zeros")
        for bad in (np.inf, -np.inf, np.nan):
            y = x.copy()
            y[n // 2] = bad
            with pytest.raises(ValueError, match="t contains NaN or inf"):
                ac.ar_solve(y, np.array([[[[0.2, 1.0, 0.1]]]], dtype=np.float32), boundary="zeros")
    # finite values whose sum overflows are not rejected
    ac.ar_solve(np.full(100_000, 1e300), np.array([[[[0.0, 1.0, 0.0]]]]), boundary="zeros")
    big = np.full(100_000, np.finfo(np.float32).max / 2, dtype=np.float32)
    ac.ar_solve(big, np.array([[[[0.0, 1.0, 0.0]]]], dtype=np.float32), boundary="zeros")


@needs_lines
def test_check_finite_of_large_torch_tensors():
    """The finiteness check sums a large array in its own dtype (float32 too): a non-finite
    sample makes the sum non-finite, and finite samples whose float32 sum overflows are found
    finite by the elementwise test that follows."""
    torch = pytest.importorskip("torch")
    taps = torch.tensor([[[[0.2, 1.0, 0.1]]]])
    for dtype in (torch.float32, torch.float64):
        x = torch.ones(4, 50_000, dtype=dtype)
        ac.ar_solve(x, taps.to(dtype), boundary="zeros")
        for bad in (float("inf"), float("-inf"), float("nan")):
            y = x.clone()
            y[2, 777] = bad
            with pytest.raises(ValueError, match="t contains NaN or inf"):
                ac.ar_solve(y, taps.to(dtype), boundary="zeros")
        big = torch.full((4, 50_000), torch.finfo(dtype).max / 2, dtype=dtype)
        y = ac.ar_solve(big, torch.tensor([[[[0.0, 1.0, 0.0]]]], dtype=dtype), boundary="zeros")
        assert torch.equal(y, big)
    # +inf and -inf together: their sum is NaN, still non-finite
    y = torch.ones(200_000)
    y[5], y[6] = float("inf"), float("-inf")
    with pytest.raises(ValueError, match="t contains NaN or inf"):
        ac.ar_solve(y, taps, boundary="zeros")


def test_strip_fact_of_the_stability_check_is_the_float64_one():
    """A filter records "every factor in the strip" from its stability check, which runs in the
    taps' dtype; the rules that ask (``method="lines"``) mean the float64 test. float32 sums
    that round to |f_0| are outside in float32 and inside in float64, never the reverse."""
    rng = np.random.default_rng(3)
    fm = rng.uniform(-0.9, 0.9, 400).astype(np.float32)
    fp = np.float32(1) - fm
    for i, s in enumerate(rng.integers(-2, 3, fm.size)):  # a few ulps either side of the edge
        for _ in range(abs(s)):
            fp[i] = np.nextafter(fp[i], np.float32(2 * np.sign(s)))
    in32 = np.abs(fm + fp) < 1
    in64 = np.abs(fm.astype(np.float64) + fp) < 1
    assert (in64 & ~in32).any() and in32.any() and not (in32 & ~in64).any()
    built = 0
    for j in range(fm.size):
        # with a second factor strictly inside: the fact is about every factor
        taps = np.array([[[[fm[j], 1.0, fp[j]]], [[0.1, 1.0, 0.2]]]], dtype=np.float32)
        assert ac.ARFilter(taps, boundary="circular", check_stability=False)._in_strip() == in64[j], j
        try:
            f = ac.ARFilter(taps, boundary="circular")
        except ac.UnstableFilterError:  # a zero response where the float32 sum is |f_0|
            assert fm[j] + fp[j] == 1, j
            continue
        assert f._in_strip() == in64[j], j
        built += 1
    assert built > fm.size // 2


# ---------------------------------------------------------------------------------------------
# layers

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("region", ["strip", "diamond"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reparameterize_vjp_matches_autograd(region, dtype):
    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(5)
    theta = 3 * torch.randn(40, 2, 2, 2, generator=gen, dtype=dt)
    theta[0, 0, 0] = torch.tensor([0.3, 40.0])  # tanh rounds to 1: clipped, no gradient
    theta[1, 0, 0] = torch.tensor([25.0, -30.0])
    theta.requires_grad_(True)
    taps = ac.reparameterize(theta, region)
    g = torch.randn(taps.shape, generator=gen, dtype=dt)
    taps.backward(g)
    tol = 1e-6 if dtype == "float32" else 1e-14
    jac = reparameterize_jacobian(theta.detach().numpy(), region)
    assert jac.shape == (40, 2, 2, 3, 2) and jac.dtype == theta.detach().numpy().dtype
    for got in (
        reparameterize_vjp(theta.detach(), g, region),
        reparameterize_vjp(theta.detach().numpy(), g.numpy(), region),
        (g.numpy()[..., None, :] @ jac)[..., 0, :],
        (g[..., None, :] @ reparameterize_jacobian(theta.detach(), region))[..., 0, :],
    ):
        got = torch.as_tensor(got)
        assert got.dtype == dt and torch.allclose(got, theta.grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("region", ["strip", "diamond"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_host_reparameterization_is_bit_for_bit_the_generic_one(region, dtype):
    """The layers' fused host path (taps and Jacobian in one pass) against the two generic
    functions, over scales that saturate tanh, that make the strip's nudge necessary, and NaN."""
    rng = np.random.default_rng(3)
    nudged = 0
    for trial in range(200):
        theta = (rng.normal(size=(6, 2, 3, 2)) * [1.0, 3.0] * rng.uniform(0.1, 40)).astype(dtype)
        theta[0, 0, 0] = (0.3, 50.0)  # tanh rounds to 1
        theta[0, 0, 1] = (-40.0, -50.0)
        if trial % 4 == 0:
            theta[2, 0, 0], theta[2, 1, 1] = (np.nan, 1.0), (1.0, np.nan)
        taps, jac = reparameterize_host(theta, region)
        want_taps = reparameterize_values(compat_numpy, theta, region)
        want_jac = reparameterize_jacobian(theta, region)
        assert taps.dtype == want_taps.dtype == jac.dtype == want_jac.dtype == dtype
        assert np.array_equal(taps, want_taps, equal_nan=True)
        assert np.array_equal(jac, want_jac, equal_nan=True)
        lim = np.nextafter(dtype(1), dtype(0))
        unnudged = (np.clip(np.tanh(theta[..., 1]), -lim, lim) - theta[..., 0]) / dtype(2)
        nudged += int(np.sum((taps[..., 2] != unnudged) & np.isfinite(unnudged)))
    if region == "strip":  # the rare branch ran
        assert nudged > 0
    with pytest.raises(ValueError, match="region"):
        reparameterize_host(np.zeros((1, 2), dtype), "square")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_strip_reparameterization_is_bit_for_bit_numpys(dtype):
    """The compiled strip pass against the NumPy one, compared as bit patterns (signed zeros,
    NaN payloads aside), over saturating, nudged, tiny, huge and NaN parameters; theta in
    another layout or dtype takes the NumPy path."""
    from arma_core.backends import _lines
    from arma_core.filters import _reparameterize_host_numpy

    if _lines.reparameterize_strip(np.zeros((1, 2), dtype)) is None:
        pytest.skip("the compiled line solver is not installed")
    rng = np.random.default_rng(11)
    itype = np.int32 if dtype == np.float32 else np.int64
    tiny = np.finfo(dtype).tiny
    nudged = 0
    for trial in range(300):
        theta = (rng.normal(size=(7, 2, 2, 2)) * rng.uniform(1e-3, 60, size=2)).astype(dtype)
        theta[0, 0] = [(0.3, 50.0), (-40.0, -50.0)]  # tanh rounds to +-1: clipped, slope 0
        theta[1, 0] = [(tiny, tiny / 4), (-0.0, 0.0)]  # subnormal and signed-zero inputs
        theta[1, 1] = [(1e30, 2.0), (-3e38, 0.5)]  # huge differences (left, right ~ +-a0 / 2)
        if trial % 3 == 0:
            theta[2, 0] = [(np.nan, 1.0), (1.0, np.nan)]
        got = _lines.reparameterize_strip(theta)
        assert got is not None
        want = _reparameterize_host_numpy(theta, "strip")
        for g, w in zip(got, want):
            assert g.dtype == w.dtype == dtype and g.shape == w.shape
            same = g.view(itype) == w.view(itype)
            assert np.all(same | (np.isnan(g) & np.isnan(w)))
        lim = np.nextafter(dtype(1), dtype(0))
        unnudged = (np.clip(np.tanh(theta[..., 1]), -lim, lim) - theta[..., 0]) / dtype(2)
        nudged += int(np.sum((got[0][..., 2] != unnudged) & np.isfinite(unnudged)))
    assert nudged > 0  # the nudge's branch ran
    theta = rng.normal(size=(4, 2, 1, 2)).astype(dtype)
    assert _lines.reparameterize_strip(np.asfortranarray(theta)) is None
    assert _lines.reparameterize_strip(theta.astype(np.float16)) is None
    for t in (np.asfortranarray(theta), theta):  # either way reparameterize_host is exact
        taps, jac = reparameterize_host(t, "strip")
        assert np.array_equal(taps, reparameterize_values(compat_numpy, theta, "strip"))
        assert np.array_equal(jac, reparameterize_jacobian(theta, "strip"))


def test_layer_keeps_the_reparameterization_jacobian_with_its_filter():
    """A CPU layer stores the Jacobian beside the taps; the backward uses it, and the gradient
    of theta is the generic one's."""
    from arma_core.backends.torch import jacobian_key
    from arma_core.nn import AR2d

    layer = AR2d(3, order=2)
    with torch.no_grad():
        layer.theta.normal_(generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 3, 9, 8, generator=torch.Generator().manual_seed(1))
    layer(x).square().sum().backward()
    f = layer._cached_filter[1]
    jac = f._cache[jacobian_key(layer.region)]
    assert np.array_equal(jac, reparameterize_jacobian(layer.theta.detach().numpy(), layer.region))
    # the host facts it gave the filter are the ones the filter would have computed itself
    fresh = ac.ARFilter(f.taps, boundary=layer.boundary, check_stability=False, check_finite=False)
    assert np.array_equal(f._host(), fresh._host()) and f._host().dtype == np.float64
    assert np.array_equal(f._host_native(), fresh._host_native()) and f._in_strip() is fresh._in_strip() is True
    got = layer.theta.grad.clone()
    layer.theta.grad = None
    theta = layer.theta.detach().clone().requires_grad_(True)
    y = ac.ARFilter(ac.reparameterize(theta, layer.region), boundary=layer.boundary).solve(x)
    y.square().sum().backward()
    # float32 sums: an entry that cancels (f_-1 and f_1's gradients of 1e6 giving 2e2) is only
    # as exact as the gradient's scale, in either computation
    assert torch.allclose(got, theta.grad, rtol=1e-5, atol=1e-5 * float(theta.grad.abs().max()))


def test_functional_api_keeps_filters_by_content(monkeypatch):
    from arma_core import operator as op

    monkeypatch.setattr(op, "_KEPT", type(op._KEPT)())
    monkeypatch.setattr(op, "_SEEN", type(op._SEEN)())
    rng = np.random.default_rng(7)
    taps = random_taps(rng, 3, 2, 2)
    t = rng.normal(size=(2, 3, 9, 7))
    for boundary in ("reflect", "zeros"):
        want = R.ar_solve(t, taps, boundary=boundary)
        for _ in range(3):
            assert rel_err(ac.ar_solve(t, taps, boundary=boundary), want) < 1e-12
    # one filter per (taps, boundary), kept from the second call and reused by the third
    assert len(op._KEPT) == 2
    kept = next(iter(op._KEPT.values()))
    assert kept.taps is not taps
    # the caller's array changed in place: its new values are solved, not the kept copy's
    taps[0, 0, 0] = [0.4, 1.0, 0.1]
    for _ in range(2):
        assert rel_err(ac.ar_solve(t, taps, boundary="reflect"), R.ar_solve(t, taps, boundary="reflect")) < 1e-12
    assert len(op._KEPT) == 3
    # taps seen once are not kept
    ac.ar_solve(t, taps * 0.5, boundary="reflect")
    assert len(op._KEPT) == 3
    # the adjoint and apply share nothing stale either
    y = ac.ar_solve_adjoint(t, taps, boundary="reflect")
    assert rel_err(ac.ar_apply_adjoint(y, taps, boundary="reflect"), t) < 1e-12
    # a filter that raised is not kept: the same call raises again
    bad = taps.copy()
    bad[0, 0, 0] = [0.9, 1.0, 0.9]
    for _ in range(2):
        with pytest.raises(ac.UnstableFilterError):
            ac.ar_solve(t, bad, boundary="reflect")
    # bounded, least recently used first out
    for i in range(op._KEPT_MAX + 5):
        for _ in range(2):
            ac.ar_solve(t[0, 0], np.array([0.01 * i, 1.0, 0.0]).reshape(1, 1, 1, 3), boundary="zeros", axes=(-1,))
    assert len(op._KEPT) == op._KEPT_MAX and len(op._SEEN) <= op._KEPT_MAX


def test_functional_api_shares_what_signals_decide(monkeypatch):
    """Filters of the functional API with new taps of the same dtype, shape and options share
    their signal entries (layouts, dtypes); other options or dtypes do not, the shared dict is
    bounded, and the results are the reference's either way."""
    from arma_core import operator as op

    for name in ("_KEPT", "_SEEN", "_KINDS"):
        monkeypatch.setattr(op, name, type(op._KEPT)())
    rng = np.random.default_rng(12)
    t = rng.normal(size=(2, 3, 9, 7))
    opts = dict(boundary="zeros", dilation=1)
    filters = [op._filter(random_taps(rng, 3, 2, 1), **opts) for _ in range(3)]
    for f in filters:
        assert rel_err(f.solve(t), R.ar_solve(t, f.taps, boundary="zeros")) < 1e-12
    assert filters[1]._kinds is filters[0]._kinds and filters[2]._kinds is filters[0]._kinds
    assert any(key[0] == "signal" for key in filters[0]._kinds)
    other = [
        op._filter(random_taps(rng, 3, 2, 1), boundary="reflect", dilation=1),
        op._filter(random_taps(rng, 3, 2, 1).astype(np.float32), **opts),
        op._filter(random_taps(rng, 4, 2, 1), **opts),
    ]
    assert all(f._kinds is not filters[0]._kinds for f in other)
    # a float32 signal with float64 taps still promotes: the shared entry is keyed by the signal
    t32 = t.astype(np.float32)
    y = op._filter(random_taps(rng, 3, 2, 1), **opts)
    assert y.solve(t32).dtype == np.float64
    # bounded: a full dict is replaced by the next filter's own
    monkeypatch.setattr(op, "_KINDS_MAX", 2)
    f = op._filter(random_taps(rng, 3, 2, 1), **opts)
    assert f._kinds is not filters[0]._kinds
    assert op._KINDS[(f.taps.dtype, f.taps.shape, *opts.items())] is f._kinds


@needs_lines
def test_lines_threads_only_where_the_extension_splits():
    """A call without ``threads`` asks the system for the CPUs only from the work the extension
    splits over threads of its own (``PARALLEL_WORK``, the extension's constant); given threads
    are passed as they are."""
    from arma_core.backends import _lines_c

    assert _lines.PARALLEL_WORK == _lines_c.OWN_THREAD_WORK
    assert _lines._threads(None, _lines.PARALLEL_WORK - 1) == 1
    assert _lines._threads(None, _lines.PARALLEL_WORK) == _lines.default_threads()
    assert _lines._threads(3, 1) == 3


def test_functional_api_does_not_keep_torch_taps(monkeypatch):
    torch = pytest.importorskip("torch")
    from arma_core import operator as op

    monkeypatch.setattr(op, "_KEPT", type(op._KEPT)())
    monkeypatch.setattr(op, "_SEEN", type(op._SEEN)())
    taps = torch.tensor(random_taps(np.random.default_rng(8), 2, 1, 1), requires_grad=True)
    t = torch.randn(3, 2, 10, dtype=torch.float64)
    for _ in range(3):
        ac.ar_solve(t, taps, boundary="reflect").sum().backward()
    assert len(op._KEPT) == 0 and len(op._SEEN) == 0 and taps.grad is not None


def test_functional_api_kept_filter_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(9)
    taps = random_taps(rng, 4, 2, 1)
    ts = [rng.normal(size=(1, 4, 33, 17)) for _ in range(16)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: ac.ar_solve(t, taps, boundary="replicate"), ts))
    for t, y in zip(ts, got):
        assert rel_err(y, R.ar_solve(t, taps, boundary="replicate")) < 1e-12


@pytest.mark.parametrize("region", ["strip", "diamond", "raw"])
def test_layer_keeps_its_filter_until_theta_changes(region):
    from arma_core.nn import ARMA2d

    torch.manual_seed(6)
    m = ARMA2d(3, 4, 3, padding=1, ar_region=region, ar_init=0.4, dtype=torch.float64)
    with torch.no_grad():
        m.ar.theta.add_(0.1 * torch.randn_like(m.ar.theta))
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    y1 = m(x)
    f1 = m.ar._cached_filter[1]
    y2 = m(x)  # with autograd too: the same filter, a new graph node per call
    assert m.ar._cached_filter[1] is f1 and torch.equal(y1, y2)
    (y1.sum() + 2 * y2.sum()).backward()
    grad = m.ar.theta.grad.clone()
    # the same gradient through the generic autograd path
    m.ar.theta.grad = None
    taps = m.ar._taps(m.ar.theta)
    conv = torch.nn.functional.conv2d(x, m.weight, m.bias, padding=1)
    method = "fft" if region == "raw" else "auto"
    y = ac.ar_solve(conv, taps, check_stability=False, method=method)
    (3 * y.sum()).backward()
    assert torch.allclose(grad, m.ar.theta.grad, rtol=1e-10, atol=1e-12)
    # changes by an optimizer step, through .data (as gradcheck perturbs), and by a new state
    for change in (
        lambda th: th.add_(0.01),
        lambda th: th.data.mul_(0.5),
        lambda th: m.ar.load_state_dict({"theta": torch.zeros_like(th)}),
    ):
        before = m.ar._cached_filter[1]
        with torch.no_grad():
            change(m.ar.theta)
        y3 = m(x)
        assert m.ar._cached_filter[1] is not before
        assert torch.allclose(
            y3, ac.ar_solve(conv.detach(), m.ar.taps().detach(), method=method, check_stability=False)
        )


@needs_lines
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_lines_solve_and_vjp_write_into_their_input(boundary, dtype):
    """The line solver reads each block into its work copy before writing any of it: ``solve``
    with ``out`` the input and ``solve_vjp`` with ``out`` the gradient give the bits of separate
    buffers (the torch node relies on it to reuse the buffers it owns), on every path: dense
    small planes, vectorised and odd planes, strips of long rows, 1-D and 3-D, two factors,
    dilation, one or two threads."""
    rng = np.random.default_rng(14)
    cases = [
        ((4, 6, 16, 16), 1, 1),
        ((2, 5, 8, 8), 1, 1),
        ((2, 5, 9, 12), 2, 1),
        ((3, 4, 33, 20), 1, 2),
        ((1, 2, 130, 300), 1, 1),
        ((2, 3, 5000), 1, 1),
        ((2, 3, 5, 6, 7), 1, 1),
    ]
    for shape, Q, d in cases:
        k = len(shape) - 2
        taps = random_taps(rng, shape[1], k, Q)
        x = rng.standard_normal(shape).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        for adjoint in (False, True):
            opts = dict(boundary=boundary, dilation=d, adjoint=adjoint)
            y = _lines.solve(x, taps, threads=1, **opts)
            w, gtaps = _lines.solve_vjp(y, g, taps, threads=1, **opts)
            for threads in (1, 2):
                inplace = x.copy()
                assert _lines.solve(inplace, taps, out=inplace, threads=threads, **opts) is inplace
                assert np.array_equal(inplace, y), (shape, adjoint, threads)
                g2 = g.copy()
                w2, gtaps2 = _lines.solve_vjp(y, g2, taps, out=g2, threads=threads, **opts)
                assert w2 is g2 and np.array_equal(w2, w) and np.array_equal(gtaps2, gtaps), (shape, adjoint, threads)


@needs_lines
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_lines_plans_of_both_directions_in_one_call(boundary):
    """``plan(both=True)`` builds the plans of ``A`` and ``A^T`` in one call of the extension,
    byte for byte the plans built one at a time, and keeps both."""
    rng = np.random.default_rng(11)
    for spatial, Q, d in [((40,), 1, 1), ((9, 12), 2, 1), ((5, 6, 7), 1, 2)]:
        taps = random_taps(rng, 3, len(spatial), Q)
        for transposed in (False, True):
            cache: dict = {}
            got = _lines.plan(taps, spatial, d, boundary, transposed, cache, 1, both=True)
            assert set(cache) == {("lines", spatial, False), ("lines", spatial, True)}
            for t in (False, True):
                assert cache[("lines", spatial, t)] == _lines.plan(taps, spatial, d, boundary, t, None, 1)
            assert got is cache[("lines", spatial, transposed)]
            # a kept plan is returned as it is (nothing rebuilt)
            assert (
                _lines.plan(taps, spatial, d, boundary, not transposed, cache, 1, both=True)
                is cache[("lines", spatial, not transposed)]
            )


@needs_lines
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_layer_lines_node_is_the_generic_nodes_bit_for_bit(boundary, dtype, monkeypatch):
    """A layer's solve on CPU tensors without the compiled node is one ``_LinesTheta`` node (the
    line solver's chain with its options kept): its output and both gradients equal
    ``ARSolveTheta``'s with the same filter bit for bit, the adjoint too; inputs that need no
    gradient get None. (The compiled node is compared with it in test_torch_node.py.)"""
    from arma_core.backends import torch as bt
    from arma_core.nn import AR2d

    monkeypatch.setattr(bt, "_NODE", None)
    torch.manual_seed(8)
    dt = getattr(torch, dtype)
    m = AR2d(5, boundary=boundary, init=0.4, dtype=dt)
    with torch.no_grad():
        m.theta.add_(0.3 * torch.randn_like(m.theta))
    x = torch.randn(2, 5, 7, 9, dtype=dt, requires_grad=True)
    g = torch.randn(2, 5, 7, 9, dtype=dt)
    y = m(x)
    assert type(y.grad_fn).__name__ == "_LinesThetaBackward"
    gx, gth = torch.autograd.grad(y, (x, m.theta), g)
    f = m._cached_filter[1]
    # and the sparse reference's: the output, and the input's gradient (the adjoint solve of g)
    taps64 = f.taps.numpy().astype(np.float64)
    tol = 1e-5 if dtype == "float32" else 1e-10
    assert rel_err(y.detach().numpy(), R.ar_solve(x.detach().numpy(), taps64, boundary=boundary)) < tol
    assert rel_err(gx.numpy(), R.ar_solve(g.numpy(), taps64, boundary=boundary, adjoint=True)) < tol
    for adjoint in (False, True):
        opts = dict(boundary=boundary, dilation=1, adjoint=adjoint, cache=f._cache)
        y1 = bt._LinesTheta.apply(x, m.theta, bt._LinesRun(f.taps, boundary, 1, adjoint, "strip", f._cache))
        y2 = bt.ARSolveTheta.apply(x, m.theta, None, "lines", *opts.values(), f.taps, "strip")
        assert torch.equal(y1, y2)
        if not adjoint:
            assert torch.equal(y1, y)
        g1 = torch.autograd.grad(y1, (x, m.theta), g)
        g2 = torch.autograd.grad(y2, (x, m.theta), g)
        assert all(torch.equal(a, b) for a, b in zip(g1, g2))
        if not adjoint:
            assert torch.equal(g1[0], gx) and torch.equal(g1[1], gth)
    # only theta, or only the signal, needs a gradient
    (only_theta,) = torch.autograd.grad(m(x.detach()), (m.theta,), g)
    assert torch.equal(only_theta, gth)
    m.theta.requires_grad_(False)
    (only_x,) = torch.autograd.grad(m(x), (x,), g)
    assert torch.equal(only_x, gx)


@needs_lines
def test_layer_reuses_its_bound_filter_until_theta_changes():
    """Calls with autograd between two changes of ``theta`` share one filter bound to the
    parameter; a change of values, a new parameter object (``functional_call``'s swap), a cast
    to another dtype and ``no_grad`` do not get it."""
    from arma_core.nn import AR2d

    torch.manual_seed(9)
    m = AR2d(3, init=0.3)
    x = torch.randn(1, 3, 8, 8)
    m(x)
    bound = m._cached_filter[3]
    assert bound is not None and bound._theta[0] is m.theta
    m(x).sum().backward()
    assert m._cached_filter[3] is bound
    with torch.no_grad():
        m.theta.add_(0.01)
    y = m(x)
    assert m._cached_filter[3] is not bound and m._cached_filter[3]._theta[0] is m.theta
    assert torch.equal(y, ac.ar_solve(x, m.taps().detach(), check_stability=False))
    other = torch.nn.Parameter(m.theta.detach() * 0.5)
    y_other = torch.func.functional_call(m, {"theta": other}, (x,))
    (g_other,) = torch.autograd.grad(y_other.sum(), (other,))
    assert g_other.abs().sum() > 0
    # (torch's tanh in _taps, numpy's in the layer: the taps may differ in the last bit)
    assert torch.allclose(y_other, ac.ar_solve(x, m._taps(other).detach(), check_stability=False), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert m(x).grad_fn is None


def _shortcut_case(node, monkeypatch):
    """An AR2d(3) with random theta on the compiled node or the Python node, its input and a
    gradient; skips where the compiled node is asked for and not built."""
    from arma_core.backends import torch as bt
    from arma_core.nn import AR2d

    if not node:
        monkeypatch.setattr(bt, "_NODE", None)
    elif bt.lines_node() is None:
        pytest.skip("the compiled node is not built")
    torch.manual_seed(12)
    m = AR2d(3, init=0.3)
    with torch.no_grad():
        m.theta.add_(0.3 * torch.randn_like(m.theta))
    return m, torch.randn(2, 3, 8, 9, requires_grad=True), torch.randn(2, 3, 8, 9)


def _refuse(*args, **kwargs):
    raise AssertionError("ARFilter.solve called")


@needs_lines
@pytest.mark.parametrize("node", [True, False], ids=["compiled-node", "python-node"])
def test_layer_shortcut_is_the_filters_solve(node, monkeypatch):
    """From its second call with autograd a CPU layer runs its filter's solve through the kept
    shortcut (``_solve_short``; ARFilter.solve is not called): the same output and gradients
    bit for bit."""
    m, x, g = _shortcut_case(node, monkeypatch)
    y1 = m(x)  # the filter's solve; the shortcut is made for the next calls
    grads1 = torch.autograd.grad(y1, (x, m.theta), g)
    runs = m._short.runs
    assert len(runs) == 1 and callable(next(iter(runs.values())))
    with monkeypatch.context() as mp:
        mp.setattr(ac.ARFilter, "solve", _refuse)
        y2 = m(x)
    assert torch.equal(y1, y2)
    grads2 = torch.autograd.grad(y2, (x, m.theta), g)
    assert all(torch.equal(a, b) for a, b in zip(grads1, grads2))


@needs_lines
@pytest.mark.parametrize("node", [True, False], ids=["compiled-node", "python-node"])
def test_layer_shortcut_follows_every_change(node, monkeypatch):
    """Whatever the filter's solve would see differently gets a new shortcut or the full path:
    theta changed in place, through ``.data`` or given new storage, the module's options, the
    input's shape or dtype, a cast of the module, theta frozen, no_grad; copies and pickles
    make their own."""
    m, x, g = _shortcut_case(node, monkeypatch)
    m(x)

    def expect(y, x):
        ref = ac.ar_solve(
            x.detach(), m.taps().detach(), boundary=m.boundary, dilation=m.dilation, check_stability=False
        )
        tol = dict(rtol=1e-5, atol=1e-6) if x.dtype == torch.float32 else dict(rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(y.detach(), ref, **tol)

    def new_storage(th):
        th.data = th.data.clone() * 0.8

    changes = [
        ("optimizer step", lambda: m.theta.add_(0.02)),
        (".data in place", lambda: m.theta.data.mul_(0.5)),
        ("new storage", lambda: new_storage(m.theta)),
        ("boundary", lambda: setattr(m, "boundary", "zeros")),
        ("dilation", lambda: setattr(m, "dilation", 2)),
    ]
    for what, change in changes:
        with torch.no_grad():
            change()
        for _ in range(2):  # the full path, then the new shortcut
            y = m(x)
            expect(y, x)
            gth = torch.autograd.grad(y, (m.theta,), g)[0]
            assert torch.isfinite(gth).all() and gth.abs().sum() > 0, what
    # the input's gradient is the adjoint solve of g, through the shortcut too
    (gx,) = torch.autograd.grad(m(x), (x,), g)
    A = ac.ARFilter(m.taps().detach(), boundary=m.boundary, dilation=m.dilation, check_stability=False)
    torch.testing.assert_close(gx, A.T.solve(g), rtol=1e-5, atol=1e-6)
    # another input shape, and the first one again
    x2 = torch.randn(1, 3, 10, 7)
    for _ in range(2):
        expect(m(x2), x2)
        expect(m(x), x)
    assert all(callable(m._short.runs[(torch.Tensor, t.shape, t.dtype, "zeros", 2, "strip")]) for t in (x, x2))
    # a cast of the module and its input
    m.double()
    x64 = x.detach().double()
    for _ in range(2):
        expect(m(x64), x64)
    # theta frozen, and no_grad: the filter's own paths
    m.theta.requires_grad_(False)
    with monkeypatch.context() as mp:
        mp.setattr(ac.ARFilter, "solve", _refuse)
        with pytest.raises(AssertionError, match="ARFilter.solve called"):
            m(x64)
    m.theta.requires_grad_(True)
    with torch.no_grad(), monkeypatch.context() as mp:
        mp.setattr(ac.ARFilter, "solve", _refuse)
        with pytest.raises(AssertionError, match="ARFilter.solve called"):
            m(x64)
    # copies and pickles leave the shortcut behind and make their own
    c = copy.deepcopy(m)
    assert "_short" not in c.__dict__ or c._short.theta is not m.theta
    expect(c(x64), x64)
    buf = io.BytesIO()
    torch.save(m, buf)
    pickle.dumps(m)


@needs_lines
def test_layer_shortcut_edge_cases():
    """theta given the same storage and bytes in another layout; an adapted (non-leaf) theta
    through ``functional_call`` (no shortcut, nothing kept of it); a new theta under
    ``no_grad`` (the former shortcuts dropped); an unbatched input (the convolution's output is
    a view: solved into a new tensor)."""
    import gc
    import weakref

    from arma_core.nn import AR2d, ARMA2d

    torch.manual_seed(15)
    m = AR2d(2, order=2, init=0.3)  # theta (2, 2, 2, 2): transposing axes 0 and 2 keeps the shape
    with torch.no_grad():
        m.theta.normal_(0, 0.4)
    x = torch.randn(1, 2, 8, 8, requires_grad=True)

    def expect(y):
        ref = ac.ar_solve(x.detach(), m.taps().detach(), boundary=m.boundary, check_stability=False)
        torch.testing.assert_close(y.detach(), ref, rtol=1e-5, atol=1e-6)

    m(x)
    expect(m(x))
    m.theta.data = m.theta.data.transpose(0, 2)  # same pointer and bytes, another layout
    expect(m(x))
    expect(m(x))
    # an adapted theta: the right result, and the layer keeps nothing of it
    adapted = m.theta * 0.5
    ref = m._taps(adapted).detach()
    y = torch.func.functional_call(m, {"theta": adapted}, (x,))
    torch.testing.assert_close(y.detach(), ac.ar_solve(x.detach(), ref, check_stability=False), rtol=1e-5, atol=1e-6)
    assert m.__dict__.get("_short") is None or m._short.theta is not adapted
    gone = weakref.ref(adapted)
    del adapted, y
    expect(m(x))  # the layer's own theta again
    gc.collect()
    assert gone() is None
    # a new theta under no_grad: the filter is remade and the former shortcuts go with it
    m(x)
    assert "_short" in m.__dict__
    with torch.no_grad():
        m.theta.mul_(0.9)
        expect(m(x))
    assert "_short" not in m.__dict__
    expect(m(x))
    # unbatched input to ARMA2d: the convolution's output is a view of a batched tensor
    a = ARMA2d(2, 3, 3, padding=1, ar_init=0.3)
    u = torch.randn(2, 6, 7, requires_grad=True)
    want = a.ar(torch.nn.functional.conv2d(u, a.weight, a.bias, padding=1))
    for _ in range(3):
        got = a(u)
        assert got._base is None and torch.equal(got, want)
        got.detach_()


@needs_lines
@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_arma_layer_solves_in_its_convolutions_output(memory_format):
    """ARMA2d's shortcut solves in the convolution's output (the layer's own tensor; the node's
    ``own``): output and the gradients of the input, weight, bias and theta are those of the
    convolution followed by AR2d, bit for bit, in either memory format."""
    from arma_core.backends import torch as bt
    from arma_core.nn import ARMA2d

    if bt.lines_node() is None:
        pytest.skip("the compiled node is not built")
    torch.manual_seed(13)
    m = ARMA2d(3, 4, 3, padding=1, ar_init=0.3)
    with torch.no_grad():
        m.ar.theta.add_(0.3 * torch.randn_like(m.ar.theta))
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    x = torch.randn(2, 3, 8, 9).to(memory_format=fmt).requires_grad_(True)
    g = torch.randn(2, 4, 8, 9)
    params = (x, m.weight, m.bias, m.ar.theta)
    conv = torch.nn.functional.conv2d(x, m.weight, m.bias, padding=1)
    want = m.ar(conv)
    want_grads = torch.autograd.grad(want, params, g)
    for call in range(3):  # the filter's path, then the shortcut
        y = m(x)
        if call and memory_format == "contiguous":
            assert y._version > 0  # written in place, into the convolution's output
        assert torch.equal(y, want)
        grads = torch.autograd.grad(y, params, g)
        assert all(torch.equal(a, b) for a, b in zip(grads, want_grads))


@pytest.mark.parametrize("region", ["strip", "raw"])
def test_layer_steps_leave_no_cyclic_garbage(region):
    """Training steps of a layer (a new filter after every change of ``theta``) free everything
    by reference counting: a reference cycle would keep each step's filter, with its plans,
    until the garbage collector runs."""
    import gc

    from arma_core.nn import ARMA2d

    torch.manual_seed(10)
    m = ARMA2d(4, 4, 3, padding=1, ar_init=0.3, ar_region=region)
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    x = torch.randn(2, 4, 8, 8)

    def step():
        opt.zero_grad(set_to_none=True)
        m(x).square().mean().backward()
        opt.step()

    for _ in range(3):
        step()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(5):
            step()
        gc.collect()
        assert gc.garbage == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@needs_lines
def test_layer_builds_both_plans_when_autograd_records():
    """A layer's solve recorded by autograd builds the backward's plan with the forward's; one
    without autograd builds the forward's only. After a change of ``theta`` the layer's filter
    is derived from the previous one (its layouts kept, its plans and rows new) and its output
    and gradients are the generic path's."""
    from arma_core.nn import AR2d

    torch.manual_seed(3)
    m = AR2d(4, boundary="zeros", init=0.3)
    x = torch.randn(2, 4, 8, 16, requires_grad=True)
    with torch.no_grad():
        m(x)
    plans = {k for k in m._cached_filter[1]._cache if k[0] == "lines"}
    assert plans == {("lines", (8, 16), False)}
    m(x).sum().backward()
    plans = {k for k in m._cached_filter[1]._cache if k[0] == "lines"}
    assert plans == {("lines", (8, 16), False), ("lines", (8, 16), True)}
    for _ in range(3):
        before = m._cached_filter[1]
        with torch.no_grad():
            m.theta.add_(0.05 * torch.randn_like(m.theta))
        x.grad, m.theta.grad = None, None
        g = torch.randn(2, 4, 8, 16)
        y = m(x)
        (y * g).sum().backward()
        f = m._cached_filter[1]
        assert f is not before and f._cache is not before._cache and f._state is not before._state
        assert not torch.equal(f.taps, before.taps)
        gx, gtheta = x.grad.clone(), m.theta.grad.clone()
        x.grad, m.theta.grad = None, None
        y2 = ac.ar_solve(x, m.taps(), boundary="zeros", method="dense")
        (y2 * g).sum().backward()
        assert torch.allclose(y, y2, atol=1e-5)
        assert torch.allclose(gx, x.grad, atol=1e-5) and torch.allclose(gtheta, m.theta.grad, atol=1e-4)
    # a module whose options change gets a filter with the new ones, not one derived from the kept
    m.boundary = "circular"
    with torch.no_grad():
        y = m(x)
    assert m._cached_filter[1].boundary == "circular"
    assert torch.allclose(y, ac.ar_solve(x.detach(), m.taps().detach(), boundary="circular", method="dense"), atol=1e-5)


def test_layer_pickles_and_copies_after_a_forward():
    from arma_core.nn import ARMA2d

    m = ARMA2d(2, 3, 3, padding=1, ar_init=0.5)
    x = torch.randn(1, 2, 6, 6)
    y = m(x)
    with torch.no_grad():
        m(x)
    for other in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert torch.equal(other(x), y)
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    assert torch.equal(torch.load(buf, weights_only=False)(x), y)


@needs_lines
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lines_taps_gradient_of_one_factor_planes(boundary, dtype):
    """2-D blocks with one factor per axis take the one-pass taps gradient (nine shifted sums
    over padded copies): every dilation, including dilations past the plane's size, and the
    vectorised path of dilation 1 with rows a multiple of 4 long (8-lane vectors for multiples of
    8; one-row planes included)."""
    import array_api_compat.numpy as xnp

    from arma_core.solve import dense_kernel, solve_vjp

    rng = np.random.default_rng(7)
    cases = [((6, 7), 1), ((5, 9), 2), ((3, 4), 3), ((8, 2), 2), ((16, 16), 1), ((2, 33), 5)]
    vec = [((1, 8), 1), ((2, 8), 1), ((3, 24), 1), ((7, 64), 1), ((8, 16), 2), ((4, 4), 1), ((5, 12), 1), ((1, 4), 1)]
    for shape, d in cases + vec + [((9, 20), 1), ((8, 4), 1)]:
        if boundary == "reflect" and min(shape) <= d:
            continue
        taps = random_taps(rng, 3, 2, 1)
        y = rng.normal(size=(2, 3) + shape)
        g = rng.normal(size=(2, 3) + shape)
        for adjoint in (False, True):
            w, gt = _lines.solve_vjp(
                y.astype(dtype), g.astype(dtype), taps.astype(dtype), boundary=boundary, dilation=d, adjoint=adjoint
            )
            y64, g64 = y.astype(dtype).astype(np.float64), g.astype(dtype).astype(np.float64)
            t64 = taps.astype(dtype).astype(np.float64)
            w2, gt2 = solve_vjp(xnp, dense_kernel, y64, g64, t64, boundary=boundary, dilation=d, adjoint=adjoint)
            tol = 1e-5 if dtype == "float32" else 1e-10
            assert rel_err(w, w2) < tol and rel_err(gt, gt2) < 10 * tol, (shape, d, adjoint)


@needs_lines
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lines_theta_grad_is_the_jacobian_product(dtype):
    """The compiled product of the taps' gradient (float64) with the reparameterization's
    Jacobian: float64 sums of the exact products, rounded once to the Jacobian's dtype (float64:
    numpy's product to rounding; float32: at least as close to the exact one as numpy's float32
    product); wrong sizes raise."""
    from arma_core.backends import _lines_c

    rng = np.random.default_rng(3)
    dt = np.dtype(dtype)
    for rows, m in [(1, 2), (7, 2), (256, 2), (5, 3), (0, 2)]:
        g = rng.normal(scale=1e3, size=(rows, 3))
        jac = rng.normal(size=(rows, 3, m)).astype(dt)
        out = np.empty((rows, m), dt)
        _lines_c.theta_grad(g, jac, out, dt == np.float32)
        exact = np.einsum("ri,rij->rj", g, jac.astype(np.float64))
        if dt == np.float64:
            assert np.allclose(out, exact, rtol=1e-14, atol=1e-12 * max(1.0, np.abs(exact).max(initial=0)))
        else:
            assert np.array_equal(out, exact.astype(np.float32))  # one rounding of float64 sums
            old = np.matmul(g[:, None, :], jac, dtype=dt)[:, 0, :]
            assert np.abs(out - exact).max(initial=0) <= np.abs(old - exact).max(initial=0)
    with pytest.raises(ValueError, match="theta_grad"):
        _lines_c.theta_grad(np.zeros((2, 3)), np.zeros((2, 3, 2), dt), np.empty((3, 2), dt), dt == np.float32)


def test_lines_huge_page_threshold_is_the_extensions():
    """``_lines.HUGE_MIN`` (what the torch kernels check before advising) is the extension's."""
    if not _lines.available():
        pytest.skip("the compiled line solver is not installed")
    from arma_core.backends import _lines_c

    assert _lines.HUGE_MIN == _lines_c.HUGE_MIN
    buf = np.empty(3 * _lines.HUGE_MIN // 8)
    _lines.advise_hugepages(buf.__array_interface__["data"][0], buf.nbytes)  # a hint: no error, no effect on values
    _lines.advise_hugepages(buf.__array_interface__["data"][0], 100)


@needs_lines
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lines_taps_facts_match_numpy(dtype):
    """A new filter's finiteness and strip checks run as one compiled pass: the same answers as
    the NumPy expressions in the taps' own dtype, at the strip's edge (where float32 rounding
    decides), with NaN, infinities, signed zeros and sums that overflow."""
    from arma_core._validate import _any_nonfinite
    from arma_core.filters import host_taps_facts, inside_strip

    rng = np.random.default_rng(13)
    dt = np.dtype(dtype)
    big = np.finfo(dt).max
    specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, big, -big]
    for trial in range(400):
        taps = rng.normal(scale=rng.choice([0.3, 1.0, 30.0]), size=(3, 2, 2, 3)).astype(dt)
        if trial % 4 == 1:  # at the strip's edge: |f_-1 + f_1| within a few ulps of |f_0|
            s = taps[..., 0] + taps[..., 2]
            taps[..., 1] = (np.abs(s) * (1 + rng.integers(-2, 3, s.shape) * np.finfo(dt).eps)).astype(dt)
        if trial % 4 == 2:
            taps.reshape(-1)[rng.integers(taps.size)] = rng.choice(specials)
        if trial % 4 == 3:
            taps[..., 0] = taps[..., 2] = big  # the sum overflows to inf
        with np.errstate(over="ignore", invalid="ignore"):
            want = (not _any_nonfinite(np, taps), bool(inside_strip(np, taps).all()))
        assert host_taps_facts(np.ascontiguousarray(taps)) == want, taps
    # other dtypes and layouts: None (the caller checks with NumPy)
    assert host_taps_facts(np.zeros((1, 1, 1, 3), np.float16)) is None
    assert host_taps_facts(np.zeros((2, 1, 1, 6), dt)[..., ::2]) is None


@needs_lines
def test_lines_accuracy_test_in_c_matches_numpy():
    """The auto rule's accuracy test runs in the extension; the numpy expression is the same."""
    rng = np.random.default_rng(8)
    for _ in range(200):
        taps = rng.normal(scale=rng.choice([0.3, 3.0, 30.0]), size=(3, 2, 2, 3))
        taps[..., 1] = rng.choice([-1.0, 1.0, 0.5])
        if rng.random() < 0.1:
            taps[0, 0, 0, rng.integers(3)] = np.nan
        for b in ac.BOUNDARIES:
            fm, f0, fp = taps.reshape(-1, 3).T
            ok = (abs(fm + fp) < abs(f0)) & ((abs(fm - fp) <= _lines.MAX_SPREAD * abs(f0)) | (b == "zeros"))
            assert _lines.accurate(taps, b) == bool(ok.all()), (taps, b)


_WITHOUT_EXTENSION = """
import sys
sys.modules["arma_core.backends._lines_c"] = None  # as if the install step had no C compiler
import numpy as np, torch
import arma_core as ac
from arma_core import reference as R
from arma_core.backends import _lines
from arma_core.nn import ARMA2d
assert not _lines.available()
rng = np.random.default_rng(9)
x = rng.normal(size=(2, 3, 7, 6))
taps = ac.reparameterize(rng.normal(scale=0.5, size=(3, 2, 2, 2)))
for b in ac.BOUNDARIES:
    y = ac.ar_solve(x, taps, boundary=b)
    err = np.abs(y - R.ar_solve(x, taps, boundary=b)).max() / np.abs(y).max()
    assert err < 1e-10, (b, err)
try:
    ac.ar_solve(x, taps, method="lines")
    raise AssertionError("method='lines' ran without the extension")
except ValueError as e:
    assert "_lines_c" in str(e), e
m = ARMA2d(3, 4, 3, padding=1, ar_boundary="reflect")
m(torch.randn(2, 3, 9, 8)).square().mean().backward()
assert m.ar.theta.grad is not None and bool(torch.isfinite(m.ar.theta.grad).all())
print("ok")
"""


def test_everything_runs_without_the_extension():
    """Without the compiled line solver (an install without a C compiler) ``auto`` takes the
    generic ``fft`` / ``dense`` methods, exact on every boundary; ``method="lines"`` says what
    is missing; layers train."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _WITHOUT_EXTENSION], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-2000:]


@pytest.mark.slow
def test_line_solver_vectors_are_native_on_avx2():
    """Every vector operation of the line solver is native to an AVX2 build (x86-64-v3, the
    instruction set of most x86 processors without AVX-512). A 64-byte vector type there is
    lowered piecewise through the stack, which once made the solver 4-10x slower on such
    machines; GCC reports every such operation under ``-Wvector-operation-performance``."""
    import shutil
    import subprocess
    import sysconfig
    from pathlib import Path

    cc = shutil.which("gcc")
    if cc is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs gcc on x86-64")
    src = Path(_lines.__file__).with_name("_lines_c.c")
    # ARMA_NO_WIDE: without the 8-lane form that only AVX-512 processors run (lanes_wide)
    cmd = [cc, "-O3", "-std=c99", "-march=x86-64-v3", "-DARMA_NO_CLONES", "-DARMA_NO_WIDE", "-ffp-contract=fast"]
    cmd += ["-Wvector-operation-performance", "-Wno-psabi", "-fPIC", "-c", "-o", os.devnull]
    cmd += ["-I" + sysconfig.get_paths()["include"], str(src)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    piecewise = [line for line in res.stderr.splitlines() if "expanded piecewise" in line]
    assert not piecewise, "\n".join(piecewise[:10])


@needs_lines
def test_line_solver_prefetches_the_next_block():
    """The solve and its backward ask for the next block's input while computing one (and the
    backward for the next block's ``y``). GCC 12 deleted every such request while the helper
    was a plain static function (interprocedural analysis found it free of side effects): the
    installed extension must contain prefetch instructions."""
    import shutil
    import subprocess

    from arma_core.backends import _lines_c

    objdump = shutil.which("objdump")
    if objdump is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs objdump on x86-64")
    res = subprocess.run([objdump, "-d", _lines_c.__file__], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("prefetcht0") >= 3  # the solve's input, the backward's g and y


_LANE_FORMS = """
import sys
import numpy as np
from arma_core.backends import _lines, _lines_c
rng = np.random.default_rng(5)
out = {"wide": _lines_c.LANES_WIDE}
for i, (shape, dtype, b) in enumerate([
    ((2, 3, 16, 16), np.float32, "circular"), ((1, 2, 9, 40), np.float64, "zeros"),
    ((2, 2, 33, 24), np.float32, "reflect"), ((1, 3, 8, 72), np.float64, "replicate"),
    ((2, 2, 5, 7, 16), np.float32, "circular"), ((2, 3, 20, 16), np.float32, "circular"),
    ((1, 2, 12, 16), np.float32, "zeros"), ((2, 3, 16, 16), np.float64, "zeros"),
]):
    k = len(shape) - 2
    f = rng.uniform(-0.3, 0.3, size=(shape[1], k, 1, 3)); f[..., 1] = 1.0
    x = rng.standard_normal(shape).astype(dtype); g = rng.standard_normal(shape).astype(dtype)
    y = np.empty_like(x); gx = np.empty_like(x)
    _lines.solve(x, f, boundary=b, dilation=1, adjoint=False, out=y, cache={}, threads=1)
    opts = dict(boundary=b, dilation=1, adjoint=False, cache={}, threads=1)
    _, gt = _lines.solve_vjp(y, g, f, need_taps=True, out=gx, **opts)
    out[f"y{i}"], out[f"gx{i}"], out[f"gt{i}"] = y, gx, gt
np.savez(sys.argv[1], **out)
"""


@pytest.mark.skipif(not _lines.available(), reason="the compiled line solver is not installed")
@pytest.mark.parametrize("wide", ["0", "1"])
def test_both_lane_forms_of_the_line_solver_agree(tmp_path, wide):
    """The line solver runs its 8-lane loops as one 64-byte vector where the processor has
    AVX-512 and as two 4-lane halves elsewhere (``_lines_c.LANES_WIDE``). Forced either way
    (``ARMA_LINES_WIDE``), the solve and the input gradient are bit-identical to the default
    form's and the taps' gradient (float64 sums in another order) agrees to 1e-12."""
    import subprocess
    import sys

    paths = {}
    for form in ("default", wide):
        env = {k: v for k, v in os.environ.items() if k != "ARMA_LINES_WIDE"}
        if form != "default":
            env["ARMA_LINES_WIDE"] = form
        paths[form] = tmp_path / f"{form}.npz"
        res = subprocess.run(
            [sys.executable, "-c", _LANE_FORMS, str(paths[form])], capture_output=True, text=True, timeout=120, env=env
        )
        assert res.returncode == 0, res.stderr[-2000:]
    ref, forced = np.load(paths["default"]), np.load(paths[wide])
    assert int(forced["wide"]) == int(wide)
    for key in ref.files:
        if key == "wide":
            continue
        if key.startswith("gt"):
            np.testing.assert_allclose(forced[key], ref[key], rtol=1e-12, atol=1e-12 * np.abs(ref[key]).max())
        else:
            assert np.array_equal(forced[key], ref[key]), key


def test_side_by_side_best_block_is_the_fastest_blocks_median(monkeypatch):
    """The benchmark harness: medians of all calls by default, the smallest block median with
    ``best_block`` (a slow spell covering most calls does not set an absolute time)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import timing

    # call durations (s) in the order the harness times them: 3 rounds x 2 callables x 3 calls
    durations = iter([5, 5, 5, 1, 1, 1, 2, 2, 9, 1, 1, 1, 5, 5, 5, 1, 1, 1])
    clock = [0.0]

    def perf_counter():
        return clock[0]

    def call():
        clock[0] += next(durations)

    monkeypatch.setattr(timing.time, "perf_counter", perf_counter)
    fns = {"a": call, "b": call}
    assert timing.side_by_side(fns, 9, warmup=0) == {"a": 5.0, "b": 1.0}
    durations = iter([5, 5, 5, 1, 1, 1, 2, 2, 9, 1, 1, 1, 5, 5, 5, 1, 1, 1])
    assert timing.side_by_side(fns, 9, warmup=0, best_block=True) == {"a": 2.0, "b": 1.0}


@pytest.mark.parametrize("boundary", ["circular", "zeros", "reflect"])
@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_unchecked_finite_numpy_solve_is_the_checked_one(boundary, dtype):
    """``check_finite=False`` on a NumPy signal without NaN or inf skips the containment
    passes (they cost several solves on small signals) and returns the checked solve bit for
    bit; a non-finite sample is still contained."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    if np.iscomplexobj(x):
        x = x + 1j * rng.standard_normal(x.shape)
    f = ac.ARFilter(ac.reparameterize(rng.normal(scale=0.5, size=(3, 2, 1, 2))), boundary=boundary)
    np.testing.assert_array_equal(f.solve(x, check_finite=False), f.solve(x))
    x[0, 1, 4, 4] = np.nan
    y = f.solve(x, check_finite=False)
    assert np.isnan(y[0, 1]).any() and np.isfinite(y[1]).all() and np.isfinite(y[0, 0]).all()


@pytest.mark.parametrize("keep", [False, True])
def test_layers_in_child_sets_only_the_heap_settings(monkeypatch, keep):
    """The harness's layer rows with freed memory kept (``cost.measure_layers_kept``): the
    measuring process gets glibc's two heap settings when asked and never inherits them
    otherwise; the rest of the environment is passed on, and its rows come back as rows."""
    import json
    import subprocess
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import cost
    import timing

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1")  # as a user's shell might have it
    monkeypatch.setenv("ARMA_SOMETHING", "kept")
    seen = {}
    row = dict(target="13.2", shape="4x64x16x16", what="w", a=2.0, b=1.0, ratio=2.0, goal=1.15, clone=None, le=True)

    def run(args, env, **kw):
        seen.update(env=env, args=args)
        return subprocess.CompletedProcess(args, 0, stdout="noise\n" + json.dumps([row]) + "\n", stderr="")

    monkeypatch.setattr(timing.subprocess, "run", run)
    rows = cost.measure_layers_kept(3, 2) if keep else cost.layers_in_child(3, False, 2)
    env = seen["env"]
    assert env["ARMA_SOMETHING"] == "kept"
    if keep:
        assert {k: env[k] for k in cost.KEEP_FREED} == cost.KEEP_FREED
        assert rows[0]["what"] == "w, freed memory kept"
    else:
        assert not set(cost.KEEP_FREED) & set(env)
        assert rows[0]["what"] == "w"
    assert seen["args"][-2:] == ["3", "2"]
    assert rows[0].met is False and rows[0]["ratio"] == 2.0


_KEEP_FREED_CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import cost

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

took = cost.keep_freed_here()
counts = []
for _ in range(2):  # 8 MiB, freed while a small block sits above it in the heap
    before = faults()
    a = np.ones(1 << 20)
    b = np.ones(1 << 14)
    del a
    counts.append(faults() - before)
    del b
print(json.dumps([took, counts]))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heap settings")
def test_keep_freed_here_keeps_a_freed_block_for_the_next_allocation():
    """asv's freed-memory-kept layer rows set glibc's heap in their own process: the second
    8 MiB allocation reuses the first's pages instead of faulting in new ones (a fresh
    process, so that pytest's own heap is left as it is)."""
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    import json
    import subprocess

    out = subprocess.run([sys.executable, "-c", _KEEP_FREED_CHILD, bench], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    took, (first, second) = json.loads(out.stdout.splitlines()[-1])
    assert took is True
    assert first > 100  # 8 MiB of fresh pages (fewer faults than pages: the kernel maps ahead)
    assert second < first // 10

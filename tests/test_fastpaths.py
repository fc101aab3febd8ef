"""The backends' fast paths against the exact references.

- ``method="lines"`` (compiled line solver, numba): forward and adjoint solves against
  ``arma_core.reference`` on every boundary, 1-D/2-D/3-D, Q = 1..3, dilation 1..3, float32 and
  float64, taps near the edge of the strip and the edge rows that defeat a naive elimination;
  its one-pass backward against the generic Theorem 4 VJP and ``gradcheck``.
- the Fourier-domain backward of ``method="fft"`` against the generic VJP and ``gradcheck``.
- numpy's ``scipy.fft`` path, the ``auto`` rules, the registry's method checks.

Tests of the compiled path skip when numba is not installed.
"""

from __future__ import annotations

import itertools

import array_api_compat.numpy as XNP
import numpy as np
import pytest
from array_api_compat import array_namespace
from conftest import TOL, random_taps, rel_err, to_np

import arma_core as ac
from arma_core import reference as R
from arma_core._array import device_kind, to_numpy
from arma_core.backends import _lines
from arma_core.capabilities import TABLE, resolve
from arma_core.solve import dense_kernel, solve_vjp

needs_numba = pytest.mark.skipif(not _lines.available(), reason="numba is not installed")

SHAPES = {
    1: [(9,), (8,), (1,), (2,), (5,)],
    2: [(5, 8), (6, 6), (1, 4), (7, 2), (3, 3)],
    3: [(3, 4, 5), (2, 1, 4), (4, 3, 2)],
}


def _cases(k, step=1):
    """A deterministic spread over shape, Q and dilation (every Q and d meets every shape)."""
    combos = list(itertools.product(SHAPES[k], (1, 2, 3), (1, 2, 3)))
    return combos[::step]


def _taps(rng, C, k, Q, i):
    """Alternate generic taps and taps within 1e-3 of the strip's edge."""
    return random_taps(rng, C, k, Q, edge=1e-3 if i % 2 else None)


# ---------------------------------------------------------------------------------------------
# lines: forward and adjoint solve against the reference


@needs_numba
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_lines_matches_reference(boundary, k):
    rng = np.random.default_rng(10 * k + len(boundary))
    for i, (shape, Q, d) in enumerate(_cases(k)):
        if boundary == "reflect" and min(shape) <= d:
            continue
        taps = _taps(rng, 2, k, Q, i)
        t = rng.normal(size=(2, 2) + shape)
        for dtype in ("float64", "float32"):
            tt, tp = t.astype(dtype), taps.astype(dtype)
            for adjoint in (False, True):
                fn = ac.ar_solve_adjoint if adjoint else ac.ar_solve
                y = fn(tt, tp, boundary=boundary, dilation=d, method="lines")
                assert y.dtype == tt.dtype and y.shape == tt.shape
                ref = R.ar_solve(tt, tp, boundary, d, adjoint=adjoint)
                e = rel_err(y, ref)
                assert e < TOL[dtype], (shape, Q, d, dtype, adjoint, e)


@needs_numba
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_lines_last_axis_in_several_strips(boundary):
    """The last axis is solved STRIP rows at a time after a transpose: blocks with more rows
    than one strip and a partial last strip (2-D and 3-D, every dilation, both solves); lines
    longer than STRIP_MAX_N go to the scalar chains when Q = 1, to strips otherwise."""
    from arma_core.backends import _lines_kernels

    S, N = _lines_kernels.STRIP, _lines_kernels.STRIP_MAX_N
    rng = np.random.default_rng(3)
    for i, (shape, Q, d) in enumerate(
        [
            ((S + 5, 6), 3, 1),
            ((2 * S, 7), 2, 2),
            ((3, S // 2 + 3, 4), 2, 1),
            ((S + 1, 9), 1, 3),
            ((5, N + 3), 1, 1),
            ((S + 2, N + 3), 2, 2),
        ]
    ):
        taps = _taps(rng, 2, len(shape), Q, i)
        t = rng.normal(size=(3, 2) + shape)
        for adjoint in (False, True):
            fn = ac.ar_solve_adjoint if adjoint else ac.ar_solve
            y = fn(t, taps, boundary=boundary, dilation=d, method="lines")
            ref = R.ar_solve(t, taps, boundary, d, adjoint=adjoint)
            assert rel_err(y, ref) < TOL["float64"], (shape, Q, d, adjoint)
        w, gt = _lines.solve_vjp(y, t, taps, boundary=boundary, dilation=d, adjoint=True)
        assert rel_err(w, R.ar_solve(t, taps, boundary, d)) < TOL["float64"], shape


@needs_numba
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_lines_1d_rows_grouped_by_channel(boundary):
    """1-D signals go 4 rows of one channel at a time: several batch axes, a row count per
    channel that is not a multiple of 4, forward, adjoint and the backward pass."""
    rng = np.random.default_rng(4)
    for i, (bshape, C, n, Q, d) in enumerate([((3, 5), 2, 37, 2, 1), ((6,), 3, 11, 1, 2), ((1,), 4, 20, 3, 1)]):
        taps = _taps(rng, C, 1, Q, i)
        t = rng.normal(size=bshape + (C, n))
        for adjoint in (False, True):
            fn = ac.ar_solve_adjoint if adjoint else ac.ar_solve
            y = fn(t, taps, boundary=boundary, dilation=d, method="lines")
            assert rel_err(y, R.ar_solve(t, taps, boundary, d, adjoint=adjoint)) < TOL["float64"], (
                bshape,
                adjoint,
            )
            g = rng.normal(size=t.shape)
            w, gt = _lines.solve_vjp(y, g, taps, boundary=boundary, dilation=d, adjoint=adjoint)
            w2, gt2 = solve_vjp(XNP, dense_kernel, y, g, taps, boundary=boundary, dilation=d, adjoint=adjoint)
            assert rel_err(w, w2) < 1e-10, (bshape, adjoint)
            assert np.max(np.abs(gt - gt2)) < 1e-10 * _vjp_scale(w2, y) * 10.0 ** (Q - 1), (bshape, adjoint)


@needs_numba
@pytest.mark.parametrize("boundary", ["replicate", "reflect", "circular", "zeros"])
def test_lines_edge_rows_that_stop_a_naive_elimination(boundary):
    """replicate's first pivot f_0 + f_1 is 0 at f_1 = -1 (inside the strip when |f_-1 - 1| < 1),
    its last f_0 + f_-1 is 0 at f_-1 = -1; reflect couples row 0 with f_-1 + f_1 only."""
    rng = np.random.default_rng(1)
    rows = [
        (0.9, 1.0, -1.0),
        (-1.0, 1.0, 0.5),
        (1.5, 1.0, -1.0),
        (-1.0, 1.0, 1.999),
        (0.0, 1.0, -0.999),
        (-0.9995, 1.0, 0.0),
        (3.0, 1.0, -3.5),
        (-0.4995, 1.0, -0.4995),
    ]
    taps = np.array(rows)[:, None, None, :].repeat(2, axis=1)  # (8, 2, 1, 3)
    for shape, d in [((6, 7), 1), ((9, 5), 2), ((4, 4), 3), ((2, 3), 1)]:
        if boundary == "reflect" and min(shape) <= d:
            continue
        t = rng.normal(size=(2, len(rows)) + shape)
        for adjoint in (False, True):
            fn = ac.ar_solve_adjoint if adjoint else ac.ar_solve
            y = fn(t, taps, boundary=boundary, dilation=d, method="lines")
            assert np.all(np.isfinite(y))
            assert rel_err(y, R.ar_solve(t, taps, boundary, d, adjoint=adjoint)) < 1e-10, (shape, d, adjoint)


@needs_numba
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_lines_long_lines_with_threads(boundary):
    """n >= 256 (the batched-LU hazard size of DESIGN.md) and a buffer large enough for the
    huge-page allocation path, with torch's thread count set."""
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        rng = np.random.default_rng(2)
        taps = random_taps(rng, 3, 1, 2, edge=1e-2)
        t = rng.normal(size=(2, 3, 300))
        y = ac.ar_solve(torch.asarray(t), torch.asarray(taps), boundary=boundary, dilation=2, method="lines")
        assert rel_err(y, R.ar_solve(t, taps, boundary, 2)) < 1e-10
        big = rng.normal(size=(1, 3, 600, 700)).astype(np.float32)  # 5 MB
        taps2 = random_taps(rng, 3, 2, 1).astype(np.float32)
        yb = ac.ar_solve(big, taps2, boundary=boundary, method="lines")
        back = ac.ar_apply(yb.astype(np.float64), taps2.astype(np.float64), boundary=boundary)
        assert rel_err(back, big) < 1e-5
    finally:
        torch.set_num_threads(old)


@needs_numba
def test_lines_torch_layouts_and_nan():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    taps = torch.asarray(random_taps(rng, 3, 2, 2))
    t = torch.asarray(rng.normal(size=(5, 4, 3, 2)))  # (W, H, C, B): non-contiguous once permuted
    tp = t.permute(3, 2, 1, 0)
    assert not tp.is_contiguous()
    y = ac.ar_solve(tp, taps, boundary="reflect", method="lines")
    assert rel_err(y, R.ar_solve(tp, taps, "reflect")) < 1e-10
    bad = tp.clone()
    bad[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="t contains NaN"):
        ac.ar_solve(bad, taps, method="lines")
    y = ac.ar_solve(bad, taps, method="lines", check_finite=False)  # two-sided: its whole plane
    assert torch.isnan(y[0, 1]).all() and torch.isfinite(y[1:]).all() and torch.isfinite(y[0, [0, 2]]).all()
    # an empty batch
    e = ac.ar_solve(torch.zeros(0, 3, 4, 5, dtype=torch.float64), taps, method="lines")
    assert e.shape == (0, 3, 4, 5)


# ---------------------------------------------------------------------------------------------
# lines: backward


def _vjp_scale(xp_left, right):
    return float(np.sqrt(np.sum(to_np(xp_left) ** 2) * np.sum(to_np(right) ** 2)))


@needs_numba
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_lines_vjp_matches_generic(boundary, k):
    """One-pass backward == arma_core.solve.solve_vjp (dense), grad_t and grad_taps.

    The taps gradient is a sum of products of the size of ``|grad_t| |y|``; it is compared on
    that scale (near the strip's edge its entries cancel and every method loses digits)."""
    rng = np.random.default_rng(20 + k)
    for i, (shape, Q, d) in enumerate(_cases(k, step=2)):
        if boundary == "reflect" and min(shape) <= d:
            continue
        taps = _taps(rng, 2, k, Q, i)
        y = rng.normal(size=(3, 2) + shape)
        g = rng.normal(size=(3, 2) + shape)
        for adjoint in (False, True):
            w, gt = _lines.solve_vjp(y, g, taps, boundary=boundary, dilation=d, adjoint=adjoint)
            w2, gt2 = solve_vjp(XNP, dense_kernel, y, g, taps, boundary=boundary, dilation=d, adjoint=adjoint)
            assert rel_err(w, w2) < 1e-10, (shape, Q, d, adjoint)
            scale = _vjp_scale(w2, y) * 10.0 ** (Q - 1)
            assert np.max(np.abs(gt - gt2)) < 1e-10 * scale, (shape, Q, d, adjoint)
            if i % 2 == 0:  # generic taps: the entries themselves agree
                assert rel_err(gt, gt2) < 1e-9, (shape, Q, d, adjoint)
            w3, none = _lines.solve_vjp(y, g, taps, boundary=boundary, dilation=d, adjoint=adjoint, need_taps=False)
            assert none is None and np.array_equal(w3, w)


@needs_numba
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_lines_gradcheck(boundary):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(30)
    for k, shape, Q, d in [(1, (7,), 3, 2), (2, (4, 5), 2, 1), (3, (3, 2, 4), 1, 1), (2, (5, 3), 1, 2)]:
        if boundary == "reflect" and min(shape) <= d:
            continue
        taps = torch.tensor(random_taps(rng, 2, k, Q, spread=1.0), requires_grad=True)
        t = torch.tensor(rng.normal(size=(2, 2) + shape), requires_grad=True)
        for fn in (ac.ar_solve, ac.ar_solve_adjoint):
            assert torch.autograd.gradcheck(
                lambda a, b: fn(a, b, boundary=boundary, dilation=d, method="lines"),
                (t, taps),
                fast_mode=True,
            )


@needs_numba
def test_lines_float32_backward_and_grad_of_t_only():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(31)
    taps64 = random_taps(rng, 3, 2, 2)
    t64 = rng.normal(size=(2, 3, 9, 11))
    g64 = rng.normal(size=t64.shape)
    t = torch.tensor(t64, dtype=torch.float32, requires_grad=True)
    taps = torch.tensor(taps64, dtype=torch.float32, requires_grad=True)
    y = ac.ar_solve(t, taps, boundary="replicate", method="lines")
    gt, gtaps = torch.autograd.grad(y, (t, taps), torch.tensor(g64, dtype=torch.float32))
    assert gt.dtype == torch.float32 and gtaps.dtype == torch.float32
    w2, gtaps2 = solve_vjp(
        XNP,
        dense_kernel,
        to_np(y),
        g64.astype(np.float32).astype(np.float64),
        to_np(taps),
        boundary="replicate",
        dilation=1,
    )
    assert rel_err(gt, w2) < 1e-5 and rel_err(gtaps, gtaps2) < 1e-4
    t2 = torch.tensor(t64, requires_grad=True)
    y2 = ac.ar_solve(t2, torch.tensor(taps64), boundary="zeros", method="lines")
    (gt2,) = torch.autograd.grad(y2, t2, torch.tensor(g64))
    assert rel_err(gt2, R.ar_solve(g64, taps64, "zeros", adjoint=True)) < 1e-10


# ---------------------------------------------------------------------------------------------
# fft: the Fourier-domain backward


@pytest.mark.parametrize("k", [1, 2, 3])
def test_fft_vjp_matches_generic_and_gradcheck(k):
    torch = pytest.importorskip("torch")
    from array_api_compat import array_namespace

    from arma_core.backends._fourier import fft_solve_vjp

    rng = np.random.default_rng(40 + k)
    for shape, Q, d in _cases(k, step=3):
        taps = random_taps(rng, 2, k, Q)
        y = rng.normal(size=(3, 2) + shape)
        g = rng.normal(size=(3, 2) + shape)
        for adjoint in (False, True):
            w2, gt2 = solve_vjp(XNP, dense_kernel, y, g, taps, boundary="circular", dilation=d, adjoint=adjoint)
            for xp, conv in ((XNP, np.asarray), (array_namespace(torch.zeros(1)), torch.asarray)):
                w, gt = fft_solve_vjp(xp, conv(y), conv(g), conv(taps), dilation=d, adjoint=adjoint)
                assert rel_err(w, w2) < 1e-10 and rel_err(gt, gt2) < 1e-10, (shape, Q, d, adjoint)
    shape, Q, d = SHAPES[k][0], 2, 1
    taps = torch.tensor(random_taps(rng, 2, k, Q, spread=1.0), requires_grad=True)
    t = torch.tensor(rng.normal(size=(2, 2) + shape), requires_grad=True)
    for fn in (ac.ar_solve, ac.ar_solve_adjoint):
        assert torch.autograd.gradcheck(lambda a, b: fn(a, b, dilation=d, method="fft"), (t, taps), fast_mode=True)


# ---------------------------------------------------------------------------------------------
# numpy's scipy.fft path, auto rules, registry


def test_numpy_fft_path_matches_reference():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(50)
    for shape, Q, d in [((6, 7), 2, 1), ((5,), 3, 2), ((3, 4, 5), 1, 1)]:
        k = len(shape)
        taps = random_taps(rng, 2, k, Q, edge=1e-3)
        t = rng.normal(size=(2, 2) + shape)
        for dtype in ("float64", "float32"):
            for adjoint in (False, True):
                fn = ac.ar_solve_adjoint if adjoint else ac.ar_solve
                y = fn(t.astype(dtype), taps.astype(dtype), dilation=d, method="fft")
                assert y.dtype == np.dtype(dtype)
                ref = R.ar_solve(t.astype(dtype), taps.astype(dtype), "circular", d, adjoint=adjoint)
                assert rel_err(y, ref) < TOL[dtype]


def _auto(x, taps, boundary):
    """The method ``method="auto"`` picks for signal ``x`` and ``taps`` (None: unknown)."""
    xp = array_namespace(x)
    dtype = str(x.dtype).replace("torch.", "")
    host = None if taps is None else to_numpy(taps)
    return resolve(
        "solve",
        xp,
        boundary=boundary,
        dtype=dtype,
        device=device_kind(x),
        shape=tuple(x.shape),
        taps=lambda: host,
    ).method


def test_auto_rules(monkeypatch):
    torch = pytest.importorskip("torch")
    t = torch.zeros(2, 3, 8, 8)
    taps = ac.reparameterize(torch.zeros(3, 2, 1, 2))
    lines = _lines.available()
    for b in ac.BOUNDARIES:
        expect = "lines" if lines else ("fft" if b == "circular" else "dense")
        assert _auto(t, taps, b) == _auto(t.numpy(), taps.numpy(), b) == expect
    # a factor whose |f_-1 - f_1| exceeds the line solver's accuracy bound: the exact fallback,
    # except for zeros, which has no edge correction
    wide = taps.clone()
    wide[1, 0, 0] = torch.tensor([0.5 * (0.3 + 100.0), 1.0, 0.5 * (0.3 - 100.0)])
    for b in ac.BOUNDARIES:
        expect = "lines" if lines and b == "zeros" else "fft" if b == "circular" else "dense"
        assert _auto(t, wide, b) == _auto(t.numpy(), wide.numpy(), b) == expect
    # a circular factor outside the strip (winding number 1): never the line solver
    winding = taps.clone()
    winding[0, 1, 0] = torch.tensor([1.0, -0.5, 0.25])
    assert _auto(t, winding, "circular") == "fft"
    # 1-D circular signals need MIN_ROWS_1D * Q rows per channel for the line solver
    taps1 = ac.reparameterize(torch.zeros(3, 1, 2, 2))  # C = 3, Q = 2: 8 rows needed
    for rows, b in [(7, "circular"), (8, "circular"), (1, "zeros"), (1, "reflect")]:
        t1 = torch.zeros(rows, 3, 50)
        enough = b != "circular" or rows >= _lines.MIN_ROWS_1D * 2
        expect = "lines" if lines and enough else "fft" if b == "circular" else "dense"
        assert _auto(t1, taps1, b) == _auto(t1.numpy(), taps1.numpy(), b) == expect, (rows, b)
    # unknown taps: only zeros (no edge correction, no accuracy bound) can take the line solver
    for b in ac.BOUNDARIES:
        expect = "lines" if lines and b == "zeros" else "fft" if b == "circular" else "dense"
        assert _auto(t, None, b) == expect, b
    # without numba the rows of the line solver are not available
    from arma_core import capabilities

    monkeypatch.setattr(capabilities, "_importable", lambda m: m != "numba")
    for b in ac.BOUNDARIES:
        expect = "fft" if b == "circular" else "dense"
        assert _auto(t, taps, b) == _auto(t.numpy(), taps.numpy(), b) == expect


def test_half_precision_is_computed_in_float32():
    """float16 signals and taps: the kernels run in float32 and the result is float16."""
    rng = np.random.default_rng(52)
    taps = random_taps(rng, 2, 2, 1).astype(np.float16)
    t = rng.normal(size=(2, 6, 7)).astype(np.float16)
    for b in ac.BOUNDARIES:
        y = ac.ar_solve(t, taps, boundary=b)
        assert y.dtype == np.float16
        ref = ac.ar_solve(t.astype(np.float32), taps.astype(np.float32), boundary=b)
        assert np.array_equal(y, ref.astype(np.float16))


def test_lines_accuracy_bound_is_honest():
    """At the spread bound the line solver still meets the float64 tolerance on every boundary."""
    if not _lines.available():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(51)
    D = _lines.MAX_SPREAD
    for b in ac.BOUNDARIES:
        for n in (2, 5, 33):
            for s in (0.999, 0.0, -0.999):
                taps = np.array([[[[(s + D) / 2, 1.0, (s - D) / 2]], [[(s - D) / 2, 1.0, (s + D) / 2]]]])
                assert _lines.accurate(taps, b)
                t = rng.normal(size=(2, 1, n, n + 1))
                y = ac.ar_solve(t, taps, boundary=b, method="lines")
                ref = R.ar_solve(t, taps, b, 1)
                assert rel_err(y, ref) < 1e-10, (b, n, s)


def test_backend_methods_are_checked():
    strict = pytest.importorskip("array_api_strict")
    t = strict.asarray(np.zeros((2, 5)))
    taps = strict.asarray(random_taps(np.random.default_rng(0), 2, 1, 1))
    with pytest.raises(ValueError, match="method='lines' does not run on array_api_strict"):
        ac.ar_solve(t, taps, method="lines")
    with pytest.raises(ValueError, match="method='nope'"):
        ac.ar_solve(np.zeros((2, 5)), random_taps(np.random.default_rng(0), 2, 1, 1), method="nope")
    lines = {(r.library, r.method): r for r in TABLE if r.operation == "solve"}
    assert set(lines[("numpy", "lines")].boundaries) == set(ac.BOUNDARIES)
    assert lines[("torch", "lines")].devices == ("cpu",)


@needs_numba
def test_lines_refuses_gpu_tensors():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    t = torch.zeros(2, 5, device="cuda", dtype=torch.float64)
    taps = torch.asarray(random_taps(np.random.default_rng(0), 2, 1, 1), device="cuda")
    with pytest.raises(ValueError, match="runs on cpu only"):
        ac.ar_solve(t, taps, method="lines")
    assert _auto(t, taps, "zeros") == "dense"

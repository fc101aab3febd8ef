"""ar_solve / ar_apply and their adjoints against the scipy.sparse reference, on every namespace."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from array_api_compat import device
from conftest import TOL, lib_name, random_taps, rel_err, to_np, to_xp

import arma_core as ac
from arma_core import reference as R
from arma_core.capabilities import methods
from arma_core.testing import capability_cases

SHAPES = {
    1: [(7,), (8,), (1,), (2,)],
    2: [(5, 8), (6, 6), (1, 4), (2, 3), (7, 2)],
    3: [(3, 4, 5), (2, 1, 4), (4, 4, 2)],
}
BATCHES = [(), (2,), (2, 1)]


def _cases(k):
    """A deterministic spread over shape, Q, dilation and batch axes for k spatial axes."""
    out = []
    combos = list(itertools.product(SHAPES[k], (1, 2, 3), (1, 2, 3)))
    for i, (shape, Q, d) in enumerate(combos):
        out.append((shape, Q, d, BATCHES[i % 3]))
    return out


def _methods(xp, boundary):
    return list(methods("solve", lib_name(xp), boundary)) + ["auto"]


def _boundary_cases(operation):
    """(case, boundary) for every row of the capability table and every boundary it is exact for."""
    out = []
    for p in capability_cases(operation):
        case = p.values[0]
        for b in case.row.boundaries:
            out.append(pytest.param(case, b, id=f"{p.id}-{b}", marks=p.marks))
    return out


@functools.cache
def _reference_set(k, boundary, dtype):
    """The inputs and reference solutions of :func:`test_solve_matches_reference` (computed
    once for every library and method that is tested on them)."""
    rng = np.random.default_rng(100 * k + len(boundary))
    C = 2
    out = []
    for shape, Q, d, batch in _cases(k):
        if boundary == "reflect" and min(shape) <= d:
            continue
        edge = 1e-3 if (Q + d) % 2 == 0 else None
        taps = random_taps(rng, C, k, Q, edge=edge).astype(dtype)
        t = rng.normal(size=batch + (C,) + shape).astype(dtype)
        refs = [R.ar_solve(t, taps, boundary, d, adjoint=a) for a in (False, True)]
        out.append(((shape, Q, d, batch), taps, t, refs))
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("case, boundary", _boundary_cases("solve"))
def test_solve_matches_reference(case, boundary, k, dtype):
    """Every row of the table (library x method), every boundary it claims, against the
    scipy.sparse reference: shapes odd/even/1, Q = 1..3, dilation 1..3, batch axes, taps near
    the edge of the strip; forward and adjoint; dtype, namespace, device and shape kept."""
    for (shape, Q, d, batch), taps_np, t_np, refs in _reference_set(k, boundary, dtype):
        taps = taps_np if case.library == "dask" else case.asarray(taps_np, dtype)
        t = case.asarray(t_np, dtype)
        for adjoint, ref in zip((False, True), refs):
            fn = ac.ar_solve_adjoint if adjoint else ac.ar_solve
            y = fn(t, taps, boundary=boundary, dilation=d, method=case.row.method)
            t_like = t
            if case.library == "dask":
                y, t_like = y.compute(), t_np
            assert type(y) is type(t_like) and y.dtype == t_like.dtype
            assert tuple(y.shape) == tuple(t_like.shape)
            assert device(y) == device(t_like)
            e = rel_err(y, ref)
            assert e < TOL[dtype], (shape, Q, d, batch, adjoint, e)


@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_apply_matches_reference_and_inverts_solve(xp, boundary):
    rng = np.random.default_rng(7)
    for k in (1, 2, 3):
        for shape, Q, d, batch in _cases(k)[::4]:
            if boundary == "reflect" and min(shape) <= d:
                continue
            taps = to_xp(xp, random_taps(rng, 3, k, Q))
            y = to_xp(xp, rng.normal(size=batch + (3,) + shape))
            t = ac.ar_apply(y, taps, boundary=boundary, dilation=d)
            assert rel_err(t, R.ar_apply(y, taps, boundary, d)) < 1e-12
            # A^T: <A y, z> == <y, A^T z>
            z = to_xp(xp, rng.normal(size=batch + (3,) + shape))
            lhs = np.sum(to_np(t) * to_np(z))
            rhs = np.sum(to_np(y) * to_np(ac.ar_apply_adjoint(z, taps, boundary=boundary, dilation=d)))
            assert abs(lhs - rhs) < 1e-10 * (1 + abs(lhs))
            # apply(solve(t)) == t, solve(apply(y)) == y
            for m in _methods(xp, boundary):
                back = ac.ar_apply(
                    ac.ar_solve(t, taps, boundary=boundary, dilation=d, method=m),
                    taps,
                    boundary=boundary,
                    dilation=d,
                )
                assert rel_err(back, t) < 1e-10
                assert rel_err(ac.ar_solve(t, taps, boundary=boundary, dilation=d, method=m), y) < 1e-9


@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
def test_solve_adjoint_dot_product(boundary):
    """<A^{-1} t, z> == <t, A^{-T} z> for every method."""
    rng = np.random.default_rng(3)
    for k, shape, Q, d in [(1, (9,), 2, 2), (2, (5, 6), 1, 1), (3, (3, 4, 5), 2, 1), (2, (4, 7), 3, 3)]:
        if boundary == "reflect" and min(shape) <= d:
            continue
        taps = random_taps(rng, 2, k, Q, edge=1e-2)
        t = rng.normal(size=(2, 2) + shape)
        z = rng.normal(size=(2, 2) + shape)
        for m in _methods(np, boundary):
            a = np.sum(ac.ar_solve(t, taps, boundary=boundary, dilation=d, method=m) * z)
            b = np.sum(t * ac.ar_solve_adjoint(z, taps, boundary=boundary, dilation=d, method=m))
            assert abs(a - b) < 1e-9 * (abs(a) + 1)


def test_reference_matrix_is_the_product_of_factor_matrices():
    rng = np.random.default_rng(5)
    taps = random_taps(rng, 2, 2, 2)
    A = R.ar_matrix((4, 5), taps, "reflect", 1).toarray()
    y = rng.normal(size=(2, 4, 5))
    assert np.allclose(A @ y.ravel(), R.ar_apply(y, taps, "reflect", 1).ravel())
    # solving through the dense matrix agrees with the factor-by-factor sparse solve
    t = rng.normal(size=(2, 4, 5))
    assert np.allclose(np.linalg.solve(A, t.ravel()), R.ar_solve(t, taps, "reflect", 1).ravel())


def test_factor_matrix_entries_follow_the_convention():
    """(A y)_i = f_-1 y[i+d] + f_0 y[i] + f_1 y[i-d]; reflect is numpy's 'reflect'."""
    f = (0.3, 1.0, -0.2)
    for boundary, mode in [
        ("circular", "wrap"),
        ("zeros", "constant"),
        ("reflect", "reflect"),
        ("replicate", "edge"),
    ]:
        for d in (1, 2):
            y = np.arange(1.0, 7.0)
            M = R.factor_matrix(6, f, d, boundary).toarray()
            p = np.pad(y, d, mode=mode)
            expect = f[0] * p[2 * d :] + f[1] * p[d:-d] + f[2] * p[: -2 * d]
            assert np.allclose(M @ y, expect), (boundary, d)


def test_fft_denominator_is_analytic_response():
    """The fft method's transfer function equals the FFT of the circular kernel."""
    rng = np.random.default_rng(11)
    taps = random_taps(rng, 1, 1, 2)
    n, d = 10, 3
    import array_api_compat.numpy as xnp

    D = ac.solve.denominator(xnp, taps, (n,), d, conj=False, dtype=np.complex128)[0]
    M = np.eye(n)
    for q in range(2):
        M = M @ R.factor_matrix(n, taps[0, 0, q], d, "circular").toarray()
    # a circulant's eigenvalues on e^{2 pi i j k / n} are the rfft of its first column (conjugated)
    assert np.allclose(D, np.fft.rfft(M[0])[: n // 2 + 1].conj(), atol=1e-12)


def test_torch_batched_inverse_hazard_guarded():
    """n >= 256 with threads set: the dense method must stay exact (DESIGN.md's hazard)."""
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        rng = np.random.default_rng(0)
        taps = random_taps(rng, 4, 1, 1, edge=1e-2)
        t = rng.normal(size=(4, 260))
        y = ac.ar_solve(torch.asarray(t), torch.asarray(taps), boundary="zeros", method="dense")
        assert rel_err(y, R.ar_solve(t, taps, "zeros")) < 1e-10
    finally:
        torch.set_num_threads(old)

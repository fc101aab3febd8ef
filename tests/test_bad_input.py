"""Bad input gets a clear exception that names the argument; never a pass-through, never NaN.

Every public entry point (``ar_solve``, ``ar_solve_adjoint``, ``ar_apply``,
``ar_apply_adjoint``, ``arma``, ``reparameterize``, ``stability_margin``) on every namespace.
The messages are matched on the argument's name and on what is wrong with it.
"""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import array_namespace
from conftest import lib_name, random_taps, rel_err, to_np, to_xp

import arma_core as ac
from arma_core import reference as R
from arma_core._array import to_numpy
from arma_core.capabilities import methods

SOLVES = [ac.ar_solve, ac.ar_solve_adjoint]
APPLIES = [ac.ar_apply, ac.ar_apply_adjoint]
SIGNAL_NAME = {ac.ar_solve: "t", ac.ar_solve_adjoint: "t", ac.ar_apply: "y", ac.ar_apply_adjoint: "z"}
AR = SOLVES + APPLIES
AR_IDS = [f.__name__ for f in AR]


def raises(exc, fn, *words):
    """``fn()`` raises ``exc`` whose message contains every one of ``words`` (literally)."""
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return info.value


def _other_library(xp):
    """A library different from ``xp`` (for mixing tests)."""
    if xp.__name__ == "numpy":
        return pytest.importorskip("torch")
    return np


def _case(xp, dtype="float64", *, C=2, k=2, Q=2, shape=(5, 6), batch=(3,)):
    rng = np.random.default_rng(0)
    taps = to_xp(xp, random_taps(rng, C, k, Q), dtype)
    t = to_xp(xp, rng.normal(size=batch + (C,) + shape), dtype)
    return t, taps


# --------------------------------------------------------------------------------------------
# the AR operators


@pytest.mark.parametrize("fn", AR, ids=AR_IDS)
def test_taps_shape(xp, fn):
    t, taps = _case(xp)
    for bad in (taps[..., :2], taps[0, ...], taps[:, :, :0, :], taps[..., None]):
        raises(ValueError, lambda: fn(t, bad), "taps", "(C, k, Q, 3)", str(tuple(bad.shape)))
    four_axes = to_xp(xp, np.tile([0.0, 1.0, 0.0], (2, 4, 1, 1)))
    raises(ValueError, lambda: fn(t, four_axes), "taps", "k = 1, 2 or 3")


@pytest.mark.parametrize("fn", AR, ids=AR_IDS)
def test_channel_mismatch(xp, fn):
    t, _ = _case(xp)
    _, taps3 = _case(xp, C=3)
    name = SIGNAL_NAME[fn]
    raises(ValueError, lambda: fn(t, taps3), f"{name} has 2 channels", "taps has C=3")


@pytest.mark.parametrize("fn", AR, ids=AR_IDS)
def test_unknown_boundary(xp, fn):
    t, taps = _case(xp)
    for b in ("wrap", "reflection", "Circular", ""):
        raises(ValueError, lambda: fn(t, taps, boundary=b), f"boundary={b!r}", "'circular'")


@pytest.mark.parametrize("fn", SOLVES, ids=[f.__name__ for f in SOLVES])
def test_unknown_method_and_inexact_fft(xp, fn):
    t, taps = _case(xp)
    raises(ValueError, lambda: fn(t, taps, method="lu"), "method='lu'", "'dense'")
    for b in ("zeros", "reflect", "replicate"):
        raises(
            ValueError,
            lambda: fn(t, taps, method="fft", boundary=b),
            "method='fft'",
            f"boundary={b!r}",
            "circular",
        )


@pytest.mark.parametrize("fn", AR, ids=AR_IDS)
def test_dilation(xp, fn):
    t, taps = _case(xp)
    for d in (0, -1):
        raises(ValueError, lambda: fn(t, taps, dilation=d), "dilation", "positive integer")
    for d in (1.5, True, None, "2"):
        raises(TypeError, lambda: fn(t, taps, dilation=d), "dilation", "positive integer")
    # integer scalars of numpy are integers
    assert rel_err(fn(t, taps, dilation=np.int64(2)), fn(t, taps, dilation=2)) == 0


@pytest.mark.parametrize("fn", AR, ids=AR_IDS)
def test_integer_and_complex_signals(xp, fn):
    """Integer and boolean signals are promoted to float64 (as lfilter does); complex signals
    are filtered as two real signals (the operator is real); integer or complex taps are not
    filters."""
    t, taps = _case(xp)
    t_np, taps_np = to_np(t), to_np(taps)
    for dt in ("int32", "int64", "bool"):
        ti = xp.asarray((t_np * 10).astype(dt))
        out = fn(ti, taps)
        assert out.dtype == xp.float64
        assert rel_err(out, fn(xp.asarray(to_np(ti)), taps)) < 1e-15
        raises(TypeError, lambda: fn(t, xp.asarray(taps_np.astype(dt))), "taps", "real floating dtype")
    if hasattr(xp, "complex128"):
        tc = xp.asarray(t_np + 1j * t_np[::-1])
        out = fn(tc, taps)
        assert out.dtype == xp.complex128
        expect = to_np(fn(t, taps)) + 1j * to_np(fn(xp.asarray(t_np[::-1].copy()), taps))
        got = to_numpy(out, dtype=None)
        assert np.max(np.abs(got - expect)) < 1e-12 * np.max(np.abs(expect))
        tapc = xp.asarray(taps_np.astype("complex128"))
        raises(TypeError, lambda: fn(t, tapc), "taps", "complex")


@pytest.mark.parametrize("fn", AR, ids=AR_IDS)
def test_mixed_precision_promotes(xp, fn):
    """float32 with float64 gives float64 (the array API's promotion), whichever is which."""
    t64, taps64 = _case(xp, "float64")
    t32, taps32 = _case(xp, "float32")
    for t, taps in ((t32, taps64), (t64, taps32)):
        out = fn(t, taps)
        assert out.dtype == xp.float64
        xpc = array_namespace(t)
        expect = fn(xpc.astype(t, xpc.float64), xpc.astype(taps, xpc.float64))
        assert rel_err(out, expect) < 1e-14


@pytest.mark.parametrize("fn", AR, ids=AR_IDS)
def test_mixed_libraries_and_non_arrays(xp, fn):
    t, taps = _case(xp)
    other = _other_library(xp)
    name = SIGNAL_NAME[fn]
    taps_other = other.asarray(to_np(taps))
    t_other = other.asarray(to_np(t))
    raises(TypeError, lambda: fn(t, taps_other), "different", f"{name}:", "taps:")
    raises(TypeError, lambda: fn(t_other, taps), "different", f"{name}:", "taps:")
    raises(TypeError, lambda: fn(to_np(t).tolist(), taps), name, "builtins.list")
    raises(TypeError, lambda: fn(t, 0.5), "taps", "builtins.float")


@pytest.mark.parametrize("fn", AR, ids=AR_IDS)
def test_non_finite_taps(xp, fn):
    t, taps = _case(xp)
    for value in (np.nan, np.inf, -np.inf):
        bad = to_np(taps)
        bad[1, 0, 1, 0] = value
        raises(ValueError, lambda: fn(t, xp.asarray(bad)), "taps contains NaN or inf")


@pytest.mark.parametrize("fn", SOLVES, ids=[f.__name__ for f in SOLVES])
def test_unstable_taps(xp, fn):
    t, taps = _case(xp)
    bad = to_np(taps)
    bad[1, 1, 0] = [0.7, 1.0, 0.3]  # on the edge: |f_-1 + f_1| = f_0
    err = raises(
        ac.UnstableFilterError,
        lambda: fn(t, xp.asarray(bad)),
        "taps is unstable",
        "channel 1, axis 1, factor 0",
    )
    assert (err.channel, err.axis, err.factor) == (1, 1, 0)
    bad[1, 1, 0] = [-1.5, 1.0, 0.2]
    raises(ac.UnstableFilterError, lambda: fn(t, xp.asarray(bad), boundary="zeros"), "channel 1, axis 1")


@pytest.mark.parametrize("fn", APPLIES, ids=[f.__name__ for f in APPLIES])
def test_apply_accepts_any_finite_taps(xp, fn):
    """A y is defined for every finite filter: applying an unstable one is not an error."""
    t, taps = _case(xp)
    bad = to_np(taps)
    bad[1, 1, 0] = [2.0, 1.0, 0.3]
    out = fn(t, xp.asarray(bad), boundary="reflect")
    if fn is ac.ar_apply:
        assert rel_err(out, R.ar_apply(t, bad, "reflect")) < 1e-12


@pytest.mark.parametrize("fn", AR, ids=AR_IDS)
def test_axis_too_short_for_reflect(xp, fn):
    rng = np.random.default_rng(1)
    taps = to_xp(xp, random_taps(rng, 2, 2, 1))
    name = SIGNAL_NAME[fn]
    for shape, d, axis in [((5, 2), 2, 1), ((3, 7), 3, 0), ((1, 4), 1, 0), ((4, 4), 4, 0)]:
        t = to_xp(xp, rng.normal(size=(2,) + shape))
        raises(
            ValueError,
            lambda: fn(t, taps, boundary="reflect", dilation=d),
            name,
            f"spatial axis {axis}",
            f"dilation={d}",
            f"at least {d + 1}",
        )
        fn(t, taps, boundary="replicate", dilation=d)  # the other rules have no such limit


@pytest.mark.parametrize("fn", AR, ids=AR_IDS)
def test_too_few_dimensions(xp, fn):
    t, taps = _case(xp)  # taps with k = 2 axes and C = 2 channels need (..., C, n_1, n_2)
    name = SIGNAL_NAME[fn]
    for bad in (t[0, 0, ...], t[0, 0, 0, ...], t[0, 0, 0, 0]):
        raises(ValueError, lambda: fn(bad, taps), name, "k=2 spatial axes", str(tuple(bad.shape)))


# --------------------------------------------------------------------------------------------
# arma


def _arma_case(xp, dtype="float64"):
    rng = np.random.default_rng(2)
    x = to_xp(xp, rng.normal(size=(2, 3, 6, 7)), dtype)
    w = to_xp(xp, rng.normal(size=(4, 3, 3, 3)), dtype)
    taps = to_xp(xp, random_taps(rng, 4, 2, 1), dtype)
    return x, w, taps


def test_arma_bad_input(xp):
    x, w, taps = _arma_case(xp)
    x_np, w_np, taps_np = to_np(x), to_np(w), to_np(taps)
    ok = ac.arma(x, w, taps, padding=1)
    assert tuple(ok.shape) == (2, 4, 6, 7)
    raises(TypeError, lambda: ac.arma(xp.asarray(x_np.astype("int64")), w, taps), "x", "real floating")
    raises(TypeError, lambda: ac.arma(x, w, xp.asarray(taps_np.astype("int64"))), "taps", "real floating")
    x32, w32, taps32 = _arma_case(xp, "float32")
    raises(TypeError, lambda: ac.arma(x32, w, taps), "x", "weight", "float32")
    # the AR part promotes as the array API does: float32 output of the conv, float64 taps
    assert ac.arma(x32, w32, taps, padding=1).dtype == taps.dtype
    other = _other_library(xp)
    raises(TypeError, lambda: ac.arma(x, other.asarray(w_np), taps), "x:", "weight:")
    raises(TypeError, lambda: ac.arma(x, w, other.asarray(taps_np), padding=1), "taps:")
    raises(ValueError, lambda: ac.arma(x, w, taps[:2, ...]), "taps has C=2", "weight has 4 output channels")
    raises(ValueError, lambda: ac.arma(x, w, taps[..., :2]), "taps", "(C, k, Q, 3)")
    raises(ValueError, lambda: ac.arma(x, w, taps, boundary="wrap"), "boundary='wrap'")
    raises(ValueError, lambda: ac.arma(x, w, taps, method="lu"), "method='lu'")
    raises(ValueError, lambda: ac.arma(x, w, taps, method="fft", boundary="zeros"), "method='fft'")
    raises(ValueError, lambda: ac.arma(x, w, taps, padding_mode="wrap"), "padding_mode='wrap'")
    bad = taps_np.copy()
    bad[3, 0, 0] = [0.5, 1.0, 0.5]
    raises(ac.UnstableFilterError, lambda: ac.arma(x, w, xp.asarray(bad)), "channel 3, axis 0, factor 0")
    bad[3, 0, 0] = [np.nan, 1.0, 0.5]
    raises(ValueError, lambda: ac.arma(x, w, xp.asarray(bad)), "taps contains NaN or inf")
    # the conv output is 4 x 5: reflect with AR dilation 4 needs at least 5 samples
    raises(
        ValueError,
        lambda: ac.arma(x, w, taps, boundary="reflect", ar_dilation=4),
        "the convolution's output",
        "ar_dilation=4",
        "at least 5",
    )
    raises(ValueError, lambda: ac.arma(x[0, 0, ...], w, taps), "x")


def test_arma_names_ar_dilation():
    x, w, taps = _arma_case(np)
    raises(ValueError, lambda: ac.arma(x, w, taps, ar_dilation=0), "ar_dilation")


# --------------------------------------------------------------------------------------------
# reparameterize / stability_margin


def test_reparameterize_bad_input(xp):
    good = to_np(to_xp(xp, np.zeros((3, 2))))
    for region in ("square", "Strip", ""):
        raises(ValueError, lambda: ac.reparameterize(xp.asarray(good), region), f"region={region!r}")
    for shape in ((3,), (3, 3), (2, 0), (2, 1)):
        raises(ValueError, lambda: ac.reparameterize(xp.asarray(np.zeros(shape))), "theta", "(..., 2)")
    raises(ValueError, lambda: ac.reparameterize(xp.asarray(np.float64(0.0))), "theta", "(..., 2)")
    raises(TypeError, lambda: ac.reparameterize(xp.asarray(np.zeros((3, 2), dtype="int64"))), "theta")
    raises(TypeError, lambda: ac.reparameterize(xp.asarray(np.zeros((3, 2), dtype=bool))), "theta")
    if hasattr(xp, "complex128"):
        raises(
            TypeError,
            lambda: ac.reparameterize(xp.asarray(np.zeros((3, 2), dtype="complex128"))),
            "theta",
            "complex",
        )
    for value in (np.nan, np.inf, -np.inf):
        bad = np.zeros((3, 2))
        bad[1, 1] = value
        raises(ValueError, lambda: ac.reparameterize(xp.asarray(bad)), "theta contains NaN or inf")
    raises(TypeError, lambda: ac.reparameterize([[0.0, 1.0]]), "theta", "builtins.list")


def test_stability_margin_bad_input(xp):
    for shape in ((2, 2), (3, 4), (0,)):
        raises(ValueError, lambda: ac.stability_margin(xp.asarray(np.zeros(shape))), "taps", "(..., 3)")
    raises(TypeError, lambda: ac.stability_margin(xp.asarray(np.zeros((2, 3), dtype="int64"))), "taps")
    if hasattr(xp, "complex128"):
        raises(
            TypeError,
            lambda: ac.stability_margin(xp.asarray(np.zeros((2, 3), dtype="complex128"))),
            "taps",
            "complex",
        )
    for value in (np.nan, np.inf):
        bad = np.tile([0.0, 1.0, 0.0], (2, 1))
        bad[1, 0] = value
        raises(ValueError, lambda: ac.stability_margin(xp.asarray(bad)), "taps contains NaN or inf")
    raises(TypeError, lambda: ac.stability_margin([0.0, 1.0, 0.0]), "taps", "builtins.list")
    raises(TypeError, lambda: ac.is_stable((0.0, 1.0, 0.0)), "taps", "builtins.tuple")
    raises(TypeError, lambda: ac.check_stable(xp.asarray(np.zeros((2, 3), dtype="int32"))), "taps")


# --------------------------------------------------------------------------------------------
# never a silent pass-through, never NaN


def _methods(xp, boundary):
    return ["auto"] + list(methods("solve", lib_name(xp), boundary))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tiny_images_are_solved_not_passed_through(xp, dtype):
    """1 x 1 (and 1-wide) images: the exact answer, never the input returned unchanged.

    The official code skips the AR step when an axis is shorter than the filter; here every
    boundary solves its (tiny) system, with two factors per axis and dilations beyond the size.
    """
    rng = np.random.default_rng(5)
    tol = 1e-12 if dtype == "float64" else 1e-5
    # f_0 != 1 so that even the zeros boundary's 1 x 1 system is not the identity
    taps_np = random_taps(rng, 2, 2, 2)
    taps_np[..., 1] = 1.5
    taps_np[..., [0, 2]] *= 1.5
    taps = to_xp(xp, taps_np, dtype)
    for shape, dilations in [((1, 1), (1, 3)), ((3, 1), (2,))]:
        t = to_xp(xp, rng.normal(size=(2, 2) + shape), dtype)
        for boundary in ac.BOUNDARIES:
            for d in dilations:
                if boundary == "reflect" and min(shape) <= d:
                    raises(
                        ValueError,
                        lambda: ac.ar_solve(t, taps, boundary=boundary, dilation=d),
                        "boundary='reflect'",
                        f"dilation={d}",
                    )
                    continue
                ref = R.ar_solve(t, taps, boundary, d)
                assert np.max(np.abs(ref - to_np(t))) > 0.1  # the true answer is not the input
                for m in _methods(xp, boundary):
                    y = ac.ar_solve(t, taps, boundary=boundary, dilation=d, method=m)
                    assert rel_err(y, ref) < tol, (shape, boundary, d, m)
                    ya = ac.ar_solve_adjoint(t, taps, boundary=boundary, dilation=d, method=m)
                    assert rel_err(ya, R.ar_solve(t, taps, boundary, d, adjoint=True)) < tol
                assert (
                    rel_err(ac.ar_apply(t, taps, boundary=boundary, dilation=d), R.ar_apply(t, taps, boundary, d)) < tol
                )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_taps_near_the_edge_give_finite_output(xp, dtype):
    """|f_-1 + f_1| = 1 - 1e-6 (margin 1e-6): finite output on every boundary and method;
    in float64 the residual of A y = t stays at rounding level."""
    rng = np.random.default_rng(6)
    # s = +-(1 - 2^-20) and d a multiple of 2^-10: f_-1, f_1 and their sum are exact in float32
    s = rng.choice([-1.0, 1.0], size=(2, 2, 2)) * (1 - 2.0**-20)
    d = rng.integers(-2048, 2049, size=(2, 2, 2)) * 2.0**-10
    taps_np = np.stack([(s + d) / 2, np.ones_like(s), (s - d) / 2], axis=-1)
    taps = to_xp(xp, taps_np, dtype)
    assert np.array_equal(to_np(taps), taps_np) and ac.is_stable(taps)
    t_np = rng.normal(size=(2, 2, 9, 8))
    t = to_xp(xp, t_np, dtype)
    for boundary in ac.BOUNDARIES:
        for m in _methods(xp, boundary):
            for fn in SOLVES:
                y = to_np(fn(t, taps, boundary=boundary, method=m))
                assert np.all(np.isfinite(y)), (boundary, m, fn.__name__)
                if dtype == "float64" and fn is ac.ar_solve:
                    back = R.ar_apply(y, taps_np, boundary)
                    assert np.max(np.abs(back - t_np)) < 1e-8 * np.max(np.abs(y)), (boundary, m)
    assert np.allclose(to_np(ac.stability_margin(taps)), 2.0**-20, rtol=1e-6, atol=0)

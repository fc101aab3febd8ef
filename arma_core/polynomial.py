"""Taps of 3-tap AR factors from a polynomial given the scipy way.

- :func:`taps_from_lfilter`: the causal denominator ``a`` of ``scipy.signal.lfilter(b, a, x)``;
  ``ar_solve(x, taps, boundary="zeros")`` then equals ``lfilter([1], a, x)``.
- :func:`taps_from_kernel`: a symmetric two-sided kernel such as the cubic B-spline's
  ``(1, 4, 1) / 6``; ``ar_solve(x, taps, boundary="circular")`` then divides by its spectrum.

Both factor the polynomial through its roots (companion-matrix eigenvalues), pair the roots in
real arithmetic, build the factors and check that their product gives the polynomial back.
``docs/math.md`` ("Filters from polynomials") has the math: which roots give exact factors for
which boundary, and why causal complex poles cannot.

The functions are host-side set-up code: they take numbers (lists, numpy arrays or scalars) and
return float64 numpy taps of shape ``(1, 1, Q, 3)`` for the user to convert to their array
library and broadcast over channels and axes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["taps_from_kernel", "taps_from_lfilter"]

#: the factors' product must match the given polynomial to this relative accuracy (max-norm)
RTOL = 1e-10
#: a near-real cluster of roots becomes one real multiple root when the polynomial stays this close
MERGE_RTOL = 1e-12
#: only conjugate pairs with ``|Im r| <= NEAR_REAL * max(1, |r|)`` are merge candidates
NEAR_REAL = 1e-3

_EPS = float(np.finfo(np.float64).eps)

Rebuild = Callable[[list[float], list[complex]], np.ndarray]


# ---------------------------------------------------------------------------------------------
# input


def _coefficients(values, name: str) -> np.ndarray:
    """``values`` as a fresh 1-D finite float64 array, or a clear error naming ``name``."""
    arr = np.asarray(values)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} has complex dtype {arr.dtype}; only real polynomials give real taps")
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must hold real numbers, got {values!r}") from exc
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = np.atleast_1d(arr).astype(np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one polynomial), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)):
        raise TypeError(f"tol must be a real number, got {tol!r}")
    if not 0 <= tol < 1:
        raise ValueError(f"tol must lie in [0, 1), got {tol!r}")
    return float(tol)


# ---------------------------------------------------------------------------------------------
# roots in real arithmetic


def _split(roots: np.ndarray) -> tuple[list[float], list[complex]]:
    """Real roots, and one root (``Im > 0``) of each conjugate pair.

    The eigenvalues of a real companion matrix come from a real Schur form, so a complex one
    and its conjugate are computed together; pairing them by sorted position is exact.
    """
    roots = np.asarray(roots, dtype=complex)
    tiny = 8 * _EPS * np.maximum(1.0, np.abs(roots))
    real = np.abs(roots.imag) <= tiny
    upper = np.sort_complex(roots[~real & (roots.imag > 0)])
    lower = np.sort_complex(roots[~real & (roots.imag < 0)].conj())
    if upper.size != lower.size:
        raise ValueError(f"could not pair the complex roots {roots[~real]} into conjugates")
    pairs = (upper + lower) / 2
    return sorted(roots[real].real.tolist()), pairs.tolist()


def _monic(reals: list[float], pairs: list[complex]) -> np.ndarray:
    """Real coefficients (highest power first) of ``prod (z - r)`` over the roots and pairs."""
    p = np.ones(1)
    for r in reals:
        p = np.convolve(p, [1.0, -r])
    for c in pairs:
        p = np.convolve(p, [1.0, -2.0 * c.real, abs(c) ** 2])
    return p


def _palindromic(reals: list[float], pairs: list[complex]) -> np.ndarray:
    """``p(z) z^P p(1/z)`` for the monic ``p`` of the roots inside the unit circle."""
    p = _monic(reals, pairs)
    return np.convolve(p, p[::-1])


def _mismatch(p: np.ndarray, target: np.ndarray) -> float:
    """Relative max-norm distance from ``target`` to the closest multiple of ``p``."""
    gain = (target @ p) / (p @ p)
    return float(np.max(np.abs(target - gain * p)) / np.max(np.abs(target)))


def _merge_multiple(reals: list[float], pairs: list[complex], rebuild: Rebuild, target: np.ndarray):
    """Turn near-real clusters (an inexact real multiple root) into one real multiple root.

    A real root of multiplicity ``m`` comes out of the eigenvalue solver as ``m`` roots spread
    by about ``eps^(1/m)`` around it, some of them as a complex pair: ``(z - 0.5)^3`` gives
    ``0.500002 +- 4e-6 i`` and ``0.499995``. Their mean is accurate (the sum of a cluster's roots
    is well conditioned), so a cluster around a near-real pair is replaced by ``m`` copies of its
    real mean whenever ``rebuild`` (roots -> polynomial) then still matches ``target`` to
    ``MERGE_RTOL`` (or better than before). A genuinely complex pair fails that test and stays.
    """
    err = _mismatch(rebuild(reals, pairs), target)
    for c in sorted(pairs, key=lambda c: abs(c.imag)):
        if c not in pairs or abs(c.imag) > NEAR_REAL * max(1.0, abs(c)):
            continue
        radius = 4 * abs(c.imag)
        near_r = [r for r in reals if abs(r - c.real) <= radius]
        near_p = [q for q in pairs if abs(q - c.real) <= radius]
        m = len(near_r) + 2 * len(near_p)
        centre = (sum(near_r) + 2 * sum(q.real for q in near_p)) / m
        new_reals = sorted([r for r in reals if r not in near_r] + [centre] * m)
        new_pairs = [q for q in pairs if q not in near_p]
        new_err = _mismatch(rebuild(new_reals, new_pairs), target)
        if new_err <= max(MERGE_RTOL, err):
            reals, pairs, err = new_reals, new_pairs, new_err
    return reals, pairs


# ---------------------------------------------------------------------------------------------
# factors


def _laurent(factors: np.ndarray) -> np.ndarray:
    """Coefficients of ``z^Q, ..., z^-Q`` of ``prod_q (f_-1 z + f_0 + f_1 z^-1)``; ``factors (Q, 3)``."""
    p = np.ones(1)
    for f in factors:
        p = np.convolve(p, f)
    return p


def _with_gain(factors: np.ndarray, gain: float) -> np.ndarray:
    """Scale the factors ``(Q, 3)`` by ``|gain|^(1/Q)`` each, the sign on the first; ``(1, 1, Q, 3)``."""
    out = factors * abs(gain) ** (1.0 / len(factors))
    if gain < 0:
        out[0] = -out[0]
    return out[None, None]


def _check_product(taps: np.ndarray, target: np.ndarray, name: str) -> None:
    """ValueError unless the factors' Laurent product reproduces ``target`` to ``RTOL``."""
    p = _laurent(taps[0, 0])
    err = float(np.max(np.abs(p - target)) / np.max(np.abs(target)))
    if not err <= RTOL:
        raise ValueError(
            f"the 3-tap factors reproduce {name} only to a relative error of {err:.2e} "
            f"(> {RTOL:.0e}): its roots are too clustered or ill-conditioned to be factored "
            f"reliably in float64 (product {p.tolist()}, expected {target.tolist()})"
        )


def _fmt(r) -> str:
    r = complex(r)
    return f"{r.real:.6g}" if r.imag == 0 else f"{r:.6g}"


def _constant(c: float) -> np.ndarray:
    return np.array([0.0, c, 0.0]).reshape(1, 1, 1, 3)


# ---------------------------------------------------------------------------------------------
# public


def _check_causal_roots(roots: np.ndarray, tol: float) -> None:
    for r in sorted(roots, key=abs, reverse=True):
        if abs(r) >= 1 - tol:
            where = "outside" if abs(r) > 1 + tol else "on (or within tol of)"
            raise ValueError(
                f"a has a pole at {_fmt(r)} with modulus {abs(r):.6g}, {where} the unit "
                f"circle (tol={tol:g}): lfilter([1], a, x) is not stable, and the taps would "
                "not be either; every pole must have modulus below 1 - tol"
            )


def _complex_pole_message(c: complex) -> str:
    msg = (
        f"a has the complex pole pair {c:.6g} and its conjugate (modulus {abs(c):.6g}): a "
        "causal second-order section spans delays 0, 1, 2 while a 3-tap factor spans -1, 0, "
        "1, and no product of invertible 3-tap factors is lfilter's lower-triangular system. "
        "Use taps_from_kernel for a zero-phase (symmetric two-sided) design, or "
        "scipy.signal.sosfilt for causal complex poles"
    )
    if abs(c.imag) <= NEAR_REAL * max(1.0, abs(c)):
        # a cluster of close real poles has roots that float64 coefficients cannot resolve
        msg += (
            ". The pair is nearly real: if a's poles are meant to be real, they are too "
            "clustered for its float64 coefficients to define them; build the taps from the "
            "poles themselves, (0, 1, -r) per pole r"
        )
    return msg


def _causal_factors(a: np.ndarray, tol: float) -> np.ndarray:
    """The monic causal factors ``(0, 1, -r)``, shape ``(p, 3)``, of the real poles of ``a``."""
    roots = np.roots(a)
    _check_causal_roots(roots, tol)
    reals, pairs = _merge_multiple(*_split(roots), _monic, a)
    if pairs:
        raise ValueError(_complex_pole_message(pairs[0]))
    r = np.asarray(reals)
    return np.stack([np.zeros_like(r), np.ones_like(r), -r], axis=-1)


def taps_from_lfilter(a, *, tol: float = 1e-6) -> np.ndarray:
    """Taps of causal 3-tap factors whose solve is ``scipy.signal.lfilter([1], a, x)``.

    ``a`` is a causal AR polynomial ``A(z) = a[0] + a[1] z^-1 + ... + a[p] z^-p`` (the
    denominator of ``lfilter(b, a, x)``). Every pole ``r`` (a root of ``a``) must be real with
    ``|r| < 1``; it becomes the causal factor ``(0, g, -g r)``, i.e. ``g (1 - r z^-1)``. The
    factors are lower bidiagonal and their product is the lower-triangular Toeplitz matrix of
    ``A``, so ``ar_solve(x, taps, boundary="zeros")`` equals ``lfilter([1], a, x)`` (zero
    initial conditions) exactly, and ``boundary="circular"`` gives the periodic steady state
    (division by ``A``'s DFT).

    Parameters
    ----------
    a : array_like, shape ``(p + 1,)``
        Real coefficients, ``a[0] != 0``; a list, numpy array or scalar. Trailing zeros add no
        pole and are dropped.
    tol : float
        Poles with modulus ``>= 1 - tol`` are rejected (near the unit circle the filter's gain
        ``1 / (1 - |r|)`` exceeds ``1 / tol``).

    Returns
    -------
    taps : numpy.ndarray, shape ``(1, 1, Q, 3)``, float64
        One channel, one axis, ``Q = p`` factors (the number of poles; ``Q = 1`` with the factor
        ``(0, a[0], 0)`` when there are none). Each factor has ``f_-1 = 0`` and
        ``|f_1| < |f_0| = |a[0]|^(1/Q)``; the sign of ``a[0]`` sits on the first factor's
        ``f_0`` (a negative ``f_0`` is in the strip ``|f_-1 + f_1| < |f_0|``: the stable filter
        times -1, accepted by every solver). Convert to your array library and dtype, and
        broadcast over channels and axes: ``np.broadcast_to(taps, (C, k, Q, 3))``. With
        ``dilation=d`` the solve inverts ``A(z^-d)`` (``a`` with ``d - 1`` zeros between its
        coefficients).

    Raises
    ------
    ValueError
        ``a`` empty, not 1-D, non-finite or with ``a[0] == 0``; a pole on, outside or within
        ``tol`` of the unit circle (naming it and its modulus); a complex pole pair (a causal
        second-order section spans delays 0..2, a factor spans -1..1, and no product of
        invertible 3-tap factors equals it: ``docs/math.md``, "Filters from polynomials");
        factors that do not reproduce ``a`` to ``RTOL``.
    TypeError
        Complex or non-numeric ``a``.

    See Also
    --------
    taps_from_kernel : symmetric two-sided (zero-phase) kernels, complex roots included.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import lfilter
    >>> from arma_core import ar_solve
    >>> from arma_core.polynomial import taps_from_lfilter
    >>> a = 2.0 * np.poly([0.9, -0.5, 0.25])    # a[0] = 2, real poles 0.9, -0.5, 0.25
    >>> taps = taps_from_lfilter(a)
    >>> taps.shape
    (1, 1, 3, 3)
    >>> x = np.random.default_rng(0).standard_normal((1, 100))    # (C, n)
    >>> y = ar_solve(x, taps, boundary="zeros")
    >>> bool(np.allclose(y, lfilter([1.0], a, x), rtol=1e-12, atol=1e-12))
    True
    >>> periodic = np.fft.irfft(np.fft.rfft(x) / np.fft.rfft(a, 100), 100)
    >>> bool(np.allclose(ar_solve(x, taps, boundary="circular"), periodic, atol=1e-12))
    True
    """
    a = _coefficients(a, "a")
    tol = _check_tol(tol)
    if a[0] == 0:
        raise ValueError(f"a[0] must be nonzero (lfilter divides by it), got a = {a.tolist()}")
    a = np.trim_zeros(a, "b")
    if a.size == 1:
        return _constant(a[0])
    factors = _causal_factors(a, tol)
    taps = _with_gain(factors, float(a[0]))
    _check_product(taps, np.concatenate([np.zeros(len(factors)), a]), "a")
    return taps


def _symmetric(kernel: np.ndarray) -> np.ndarray:
    """The odd-length symmetric ``kernel`` with its outer zeros trimmed, or a clear error."""
    if kernel.size % 2 == 0:
        raise ValueError(f"kernel must have odd length 2P + 1 (centred on its middle tap), got length {kernel.size}")
    scale = float(np.max(np.abs(kernel)))
    if scale == 0:
        raise ValueError("kernel is all zeros: it has no inverse")
    asym = float(np.max(np.abs(kernel - kernel[::-1])))
    if asym > 1e-12 * scale:
        raise ValueError(
            "kernel must be symmetric (kernel[j] == kernel[-1 - j]), got "
            f"max |kernel - kernel[::-1]| = {asym:.3g}; for a causal filter use taps_from_lfilter"
        )
    kernel = (kernel + kernel[::-1]) / 2
    lo = int(np.flatnonzero(kernel)[0])
    return kernel[lo : kernel.size - lo]


def _check_off_circle(roots: np.ndarray, tol: float) -> None:
    for r in roots:
        if abs(abs(r) - 1) <= tol:
            raise ValueError(
                f"kernel has the root {_fmt(r)} of modulus {abs(r):.6g}, on (or within "
                f"tol={tol:g} of) the unit circle: its spectrum kernel[P] + 2 sum_j kernel[P + j] "
                f"cos(j w) vanishes (or nearly) at w = {abs(np.angle(r)):.6g}, so dividing by it "
                "is singular"
            )


def _kernel_factors(reals: list[float], pairs: list[complex]) -> np.ndarray:
    """Factors ``(Q, 3)`` from the roots inside the unit circle, up to one overall gain.

    A real root ``rho`` (with its reciprocal) gives the symmetric factor with response
    ``1 - 2 cos(w) rho / (1 + rho^2)``: in the strip, ``f_0 = 1``. A pair ``(c, conj c)`` (with
    its reciprocals) gives ``(1, -2 Re c, |c|^2)`` (roots ``c, conj c``: winding number +1) and
    ``(|c|^2, -2 Re c, 1)`` (roots ``1/c, 1/conj c``: winding number -1), whose responses are
    complex conjugates on the unit circle, so their product is ``|.|^2 > 0``.
    """
    rows = []
    for rho in reals:
        side = -rho / (1.0 + rho * rho)  # -1 / (rho + 1/rho), without overflow for tiny rho
        rows.append([side, 1.0, side])
    for c in pairs:
        mid, m2 = -2.0 * c.real, abs(c) ** 2
        rows += [[1.0, mid, m2], [m2, mid, 1.0]]
    return np.asarray(rows, dtype=np.float64)


def _roots_inside(kernel: np.ndarray, tol: float) -> np.ndarray:
    """The ``P`` roots of the palindromic ``kernel`` inside the unit circle (one of each
    reciprocal pair), or a clear error for roots on the circle or unpaired roots."""
    P = kernel.size // 2
    roots = np.roots(kernel)
    _check_off_circle(roots, tol)
    inside = roots[np.abs(roots) < 1]
    if inside.size != P:
        raise ValueError(
            f"kernel's roots are not in reciprocal pairs to float64 accuracy ({inside.size} of "
            f"{2 * P} inside the unit circle): {roots.tolist()}"
        )
    return inside


def taps_from_kernel(kernel, *, tol: float = 1e-6) -> np.ndarray:
    """Taps of 3-tap factors whose product is a symmetric two-sided kernel.

    A symmetric kernel of odd length ``2P + 1`` is the Laurent polynomial
    ``K(z) = kernel[P] + sum_{j=1..P} kernel[P + j] (z^j + z^-j)`` with the real spectrum
    ``K(w) = kernel[P] + 2 sum_j kernel[P + j] cos(j w)``. The returned ``P`` factors
    ``(f_-1, f_0, f_1)`` multiply (as ``f_-1 z + f_0 + f_1 z^-1``) to ``K`` exactly, so
    ``ar_solve(x, taps, boundary="circular")`` divides by ``K(w)``: for ``(1, 4, 1) / 6`` it
    computes a cubic B-spline's coefficients from its samples.

    Parameters
    ----------
    kernel : array_like, shape ``(2P + 1,)``
        Real, symmetric (``kernel[j] == kernel[-1 - j]``, to 1e-12 relative), with a spectrum
        that does not vanish (one sign on the whole circle). Outer zeros are trimmed.
    tol : float
        Roots with ``| |r| - 1 | <= tol`` count as on the unit circle (rejected).

    Returns
    -------
    taps : numpy.ndarray, shape ``(1, 1, P, 3)``, float64
        One channel, one axis, ``P`` factors after trimming (``P = 0``: the one factor
        ``(0, kernel[0], 0)``). First a symmetric factor per real reciprocal root pair (in the
        strip ``|f_-1 + f_1| < |f_0|``), then per complex quadruple ``(c, conj c, 1/c, 1/conj c)``
        ``g (1, -2 Re c, |c|^2)`` and ``g (|c|^2, -2 Re c, 1)`` (winding numbers +1 and -1,
        outside the strip; no other real split exists). Each factor carries ``|gain|^(1/P)``; a
        negative spectrum puts the sign on the first factor's ``f_0``. Broadcast over channels
        and axes with ``np.broadcast_to(taps, (C, k, P, 3))``.

    Raises
    ------
    ValueError
        Even length, not symmetric, all zeros, non-finite or not 1-D; a root on or within
        ``tol`` of the unit circle (naming the root, its modulus and the frequency where the
        spectrum vanishes); factors that do not reproduce the kernel to ``RTOL``.
    TypeError
        Complex or non-numeric ``kernel``.

    See Also
    --------
    taps_from_lfilter : causal AR polynomials (``lfilter``'s ``a``).

    Notes
    -----
    ``circular`` is exact for every such kernel (``fft`` and ``dense`` solve the winding
    factors; the line solver rejects them). With only real root pairs, ``reflect``,
    ``replicate`` and ``zeros`` invert ``K`` on the whole-sample symmetric, half-sample
    symmetric and odd extension of the signal; with complex quadruples they are exponentially
    ill-conditioned in its length (``docs/math.md``, "Filters from polynomials").

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core import ar_solve
    >>> from arma_core.polynomial import taps_from_kernel
    >>> kernel = np.array([1.0, 26.0, 66.0, 26.0, 1.0]) / 120    # quintic B-spline prefilter
    >>> taps = taps_from_kernel(kernel)
    >>> taps.shape
    (1, 1, 2, 3)
    >>> bool(np.allclose(np.convolve(*taps[0, 0]), kernel, rtol=1e-14))    # product is the kernel
    True
    >>> x = np.random.default_rng(0).standard_normal((1, 64))            # (C, n)
    >>> y = ar_solve(x, taps, boundary="circular")
    >>> spectrum = np.fft.rfft(np.roll(np.pad(kernel, (0, 59)), -2))
    >>> bool(np.allclose(y, np.fft.irfft(np.fft.rfft(x) / spectrum, 64), atol=1e-12))
    True
    >>> y = ar_solve(x, taps, boundary="reflect")    # kernel on the mirrored signal gives x back
    >>> bool(np.allclose(np.convolve(np.pad(y[0], 2, mode="reflect"), kernel, "valid"), x[0]))
    True
    """
    kernel = _symmetric(_coefficients(kernel, "kernel"))
    tol = _check_tol(tol)
    if kernel.size == 1:
        return _constant(kernel[0])
    reals, pairs = _merge_multiple(*_split(_roots_inside(kernel, tol)), _palindromic, kernel)
    factors = _kernel_factors(reals, pairs)
    p = _laurent(factors)
    taps = _with_gain(factors, float((kernel @ p) / (p @ p)))
    _check_product(taps, kernel, "kernel")
    return taps

"""Stable separable AR filters: reparameterization and the exact stability check.

Conventions (``docs/math.md``): a length-3 factor ``(f_-1, f_0, f_1)`` acts along one axis as
``(A y)_i = f_-1 y[i+d] + f_0 y[i] + f_1 y[i-d]``; its frequency response is
``f_-1 e^{iwd} + f_0 + f_1 e^{-iwd}``. With ``s = f_-1 + f_1`` and ``t = f_-1 - f_1`` the
squared modulus is ``(f_0 + s cos w)^2 + t^2 sin^2 w``.
"""

from __future__ import annotations

import math

import array_api_compat.numpy as _compat_numpy
import numpy as np
from array_api_compat import device as _device

from ._array import to_numpy
from ._validate import UnstableFilterError, check_boundary, check_finite, check_float_dtype, namespace

__all__ = [
    "reparameterize",
    "reparameterize_vjp",
    "official_to_theta",
    "stability_margin",
    "is_stable",
    "check_stable",
    "UnstableFilterError",
]

from ._typing import REGIONS


def _below_one(xp, dtype, device):
    """The largest number of ``dtype`` below 1 (tanh saturates to exactly 1 in floating point)."""
    one = xp.ones((), dtype=dtype, device=device)
    return xp.nextafter(one, xp.zeros((), dtype=dtype, device=device))


_BELOW_ONE: dict = {}


def _largest_below_one(xp, x) -> float:
    """:func:`_below_one` of ``x``'s dtype as a Python float (exact in that dtype), memoised."""
    try:
        return _BELOW_ONE[(xp, x.dtype)]
    except (KeyError, TypeError):
        lim = float(_below_one(xp, x.dtype, _device(x)))
    try:
        _BELOW_ONE[(xp, x.dtype)] = lim
    except TypeError:  # an unhashable dtype
        pass
    return lim


def _clip(xp, x, lo: float, hi: float):
    """``xp.clip(x, lo, hi)``; numpy arrays take numpy's own clip (array-api-compat's generic one
    builds bound arrays and masks: a dozen operations for the layers' few host values)."""
    if type(x) is np.ndarray:
        return np.clip(x, lo, hi)
    return xp.clip(x, lo, hi)


def _nudge_strip(xp, left, right):
    """Move ``right`` by ulps until ``|left + right| < 1`` holds for the taps as stored.

    Rounding is monotone and 1 is representable, so ``|fl(a + b)| < 1`` implies the exact sum
    is below 1 too: the check in the working dtype is exact for the inequality. Rounding of the
    taps leaves the sum at most a couple of ulps outside, so a few steps always suffice.
    """
    for _ in range(8):
        tot = left + right
        if not bool(xp.any(xp.abs(tot) >= 1)):
            break
        inf = xp.full_like(right, math.inf)
        right = xp.where(tot >= 1, xp.nextafter(right, -inf), right)
        right = xp.where(tot <= -1, xp.nextafter(right, inf), right)
    return right


def _nudge_diamond(xp, left, right):
    """Shrink the larger-magnitude tap by ulps until ``|left| + |right| < 1`` as stored."""
    zero = xp.zeros_like(right)
    for _ in range(8):
        out = (xp.abs(left) + xp.abs(right)) >= 1
        if not bool(xp.any(out)):
            break
        left_big = xp.abs(left) >= xp.abs(right)
        left = xp.where(out & left_big, xp.nextafter(left, zero), left)
        right = xp.where(out & ~left_big, xp.nextafter(right, zero), right)
    return left, right


def reparameterize(theta, region: str = "strip"):
    """Map unconstrained parameters to stable AR taps (paper Theorem 7, corrected).

    Parameters
    ----------
    theta : array, shape ``(..., 2)``
        Unconstrained real parameters. ``theta[..., 0]`` drives the difference
        ``f_-1 - f_1`` and ``theta[..., 1]`` the sum ``f_-1 + f_1`` (the official layout).
    region : {"strip", "diamond"}
        ``"strip"``: Theorem 6's region ``|f_-1 + f_1| < 1`` exactly. The sum is
        ``tanh(theta[..., 1])`` and the difference is ``theta[..., 0]`` itself, so every point
        of the open strip is reached (the map is a bijection onto it in exact arithmetic).
        ``"diamond"``: the official code's map ``tanh(theta) / sqrt 2`` rotated by ``-pi/4``,
        i.e. ``|f_-1| + |f_1| < 1``; bit for bit the official result wherever that lies
        strictly inside the diamond. Eq. 9 as printed is neither (see ``docs/math.md``).

    Returns
    -------
    taps : array, shape ``(..., 3)``
        ``(f_-1, f_0 = 1, f_1)``, same namespace, device and dtype as ``theta``. For any finite
        ``theta`` the stored taps satisfy the region's strict inequality (where ``tanh``
        rounds to +-1 it is clamped to the largest float below 1, and the taps are nudged by an
        ulp where rounding would otherwise land on the edge). ``theta = 0`` gives ``(0, 1, 0)``.

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core import is_stable, reparameterize
    >>> reparameterize(np.zeros(2))                     # the identity filter
    array([0., 1., 0.])
    >>> theta = np.array([[0.3, 50.0], [-2.0, 0.5]])    # tanh(50) rounds to 1 in float64
    >>> taps = reparameterize(theta)
    >>> taps.shape, bool(np.all(np.abs(taps[..., 0] + taps[..., 2]) < 1)), is_stable(taps)
    ((2, 3), True, True)
    >>> diamond = reparameterize(theta, "diamond")
    >>> bool(np.all(np.abs(diamond[..., 0]) + np.abs(diamond[..., 2]) < 1))
    True
    """
    xp = namespace(theta, names=("theta",))
    check_float_dtype(xp, theta, "theta")
    if theta.ndim < 1 or theta.shape[-1] != 2:
        raise ValueError(f"theta must have shape (..., 2), got {tuple(theta.shape)}")
    if region not in REGIONS:
        raise ValueError(f"region={region!r} is not one of 'strip', 'diamond'")
    check_finite(xp, theta, "theta")
    return reparameterize_values(xp, theta, region)


def reparameterize_values(xp, theta, region: str):
    """:func:`reparameterize` of a ``theta`` already validated (real floating, ``(..., 2)``,
    finite, ``region`` known), in namespace ``xp``: the same operations without the checks."""
    lim = _largest_below_one(xp, theta)  # exact in theta's dtype
    a0, a1 = theta[..., 0], theta[..., 1]
    if region == "strip":
        s = _clip(xp, xp.tanh(a1), -lim, lim)
        left = (s + a0) / 2
        right = (s - a0) / 2
        right = _nudge_strip(xp, left, right)
    else:
        # the official code's operations, in its order, so the result is bit for bit its own
        c, sn = math.cos(-math.pi / 4), math.sin(-math.pi / 4)
        t0 = _clip(xp, xp.tanh(a0), -lim, lim) / math.sqrt(2)
        t1 = _clip(xp, xp.tanh(a1), -lim, lim) / math.sqrt(2)
        left = t0 * c - t1 * sn
        right = t0 * sn + t1 * c
        left, right = _nudge_diamond(xp, left, right)
    one = xp.ones_like(left)
    return xp.stack([left, one, right], axis=-1)


def reparameterize_host(theta: np.ndarray, region: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reparameterize_values` and :func:`reparameterize_jacobian` of a NumPy ``theta``
    in one pass: the taps ``(..., 3)`` and the Jacobian ``(..., 3, 2)``, bit for bit theirs.

    The layers' per-step path on CPU: a new ``theta`` after every optimizer step needs both
    (the taps for the forward solve, the Jacobian for the backward), and for the few values of
    a layer the cost is the number of NumPy calls, not arithmetic. ``tanh`` is evaluated once
    per component, the clip is ``minimum(maximum(...))`` (the same values as ``np.clip``, a
    fraction of its per-call cost) and the results are written into preallocated arrays
    instead of stacked. For ``"strip"`` with the compiled line solver installed, everything but
    the ``tanh`` runs in one compiled pass (``arma_core.backends._lines.reparameterize_strip``,
    the same IEEE operations in the same order): inside a training step, where the caches are
    cold, each NumPy call on a layer's few values costs several microseconds.
    ``theta``: validated as :func:`reparameterize_values` expects (real floating, ``(..., 2)``;
    a NaN gives NaN taps).

    Examples
    --------
    >>> import array_api_compat.numpy as xp
    >>> import numpy as np
    >>> from arma_core.filters import reparameterize_host, reparameterize_jacobian, reparameterize_values
    >>> theta = np.array([[0.3, -0.7], [1.0, 40.0]])
    >>> taps, jac = reparameterize_host(theta, "strip")
    >>> bool(np.array_equal(taps, reparameterize_values(xp, theta, "strip")))
    True
    >>> bool(np.array_equal(jac, reparameterize_jacobian(theta, "strip")))
    True
    """
    if region not in REGIONS:
        raise ValueError(f"region={region!r} is not one of 'strip', 'diamond'")
    if region == "strip":
        fast = _lines_host("reparameterize_strip")(theta)
        if fast is not None:
            return fast
    return _reparameterize_host_numpy(theta, region)


_LINES_HOST: dict = {}  # arma_core.backends._lines's host helpers, imported on first use


def _lines_host(name: str):
    """``arma_core.backends._lines.<name>``, imported lazily (the backends import the core)."""
    fn = _LINES_HOST.get(name)
    if fn is None:
        from .backends import _lines

        fn = _LINES_HOST[name] = getattr(_lines, name)
    return fn


def _reparameterize_host_numpy(theta: np.ndarray, region: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reparameterize_host` in NumPy (every region; the reference of the compiled strip)."""
    lim = _largest_below_one(_compat_numpy, theta)
    # scalars of theta's dtype: numpy's value-based casting of Python scalars costs more than
    # the arithmetic on a layer's few values
    dt = theta.dtype.type
    one, lo, hi = dt(1), dt(-lim), dt(lim)
    lead = theta.shape[:-1]
    taps = np.empty((*lead, 3), dtype=theta.dtype)
    jac = np.zeros((*lead, 3, 2), dtype=theta.dtype)
    a0, a1 = theta[..., 0], theta[..., 1]
    taps[..., 1] = one

    def slope(u):  # d clip(tanh(a)) / da: 0 where tanh is clipped (or NaN)
        w = one - u * u
        w[~(np.abs(u) <= hi)] = 0
        return w

    if region == "strip":
        t1 = np.tanh(a1)
        s = np.minimum(np.maximum(t1, lo), hi)
        left = (s + a0) / dt(2)
        right = (s - a0) / dt(2)
        if (np.abs(left + right) >= one).any():  # rare: rounding reached the edge
            right = _nudge_strip(np, left, right)
        w = slope(t1) * dt(0.5)
        jac[..., 0, 0], jac[..., 0, 1] = 0.5, w
        jac[..., 2, 0], jac[..., 2, 1] = -0.5, w
    else:
        c, sn = math.cos(-math.pi / 4), math.sin(-math.pi / 4)
        root2 = math.sqrt(2)
        u0, u1 = np.tanh(a0), np.tanh(a1)
        t0 = np.minimum(np.maximum(u0, lo), hi) / root2
        t1 = np.minimum(np.maximum(u1, lo), hi) / root2
        left, right = _nudge_diamond(np, t0 * c - t1 * sn, t0 * sn + t1 * c)
        w0, w1 = slope(u0) / root2, slope(u1) / root2
        jac[..., 0, 0], jac[..., 0, 1] = w0 * c, -w1 * sn
        jac[..., 2, 0], jac[..., 2, 1] = w0 * sn, w1 * c
    taps[..., 0], taps[..., 2] = left, right
    return taps, jac


def reparameterize_vjp(theta, grad_taps, region: str = "strip"):
    """The vector-Jacobian product of :func:`reparameterize`: ``dL/dtheta`` from ``dL/dtaps``.

    The derivative of the map as written (its Jacobian, :func:`reparameterize_jacobian`,
    applied to ``grad_taps``), as autograd would take it: ``tanh`` and the clip to the largest
    float below 1 (no gradient where ``tanh`` is clipped), the halving (strip) or the rotation
    (diamond). The ulp nudges that keep the rounded taps strictly inside the region count as
    the identity; ``f_0 = 1`` has no gradient.

    Parameters
    ----------
    theta : array, shape ``(..., 2)``
        The parameters given to :func:`reparameterize` (finite, real floating).
    grad_taps : array, shape ``(..., 3)``
        ``dL/dtaps``, same namespace and dtype.
    region : {"strip", "diamond"}

    Returns
    -------
    array, shape ``(..., 2)``: ``dL/dtheta``, in ``theta``'s namespace, device and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core.filters import reparameterize, reparameterize_vjp
    >>> theta = np.array([0.3, -0.7])
    >>> g = np.array([1.0, 0.0, 2.0])   # dL/d(f_-1, f_0, f_1)
    >>> eps = 1e-6
    >>> numeric = [(g @ reparameterize(theta + eps * e) - g @ reparameterize(theta - eps * e)) / (2 * eps)
    ...            for e in np.eye(2)]
    >>> np.allclose(reparameterize_vjp(theta, g), numeric)
    True
    """
    xp = namespace(theta, grad_taps, names=("theta", "grad_taps"))
    jac = reparameterize_jacobian(theta, region)
    return xp.matmul(grad_taps[..., None, :], jac)[..., 0, :]


def reparameterize_jacobian(theta, region: str = "strip"):
    """The Jacobian of :func:`reparameterize` at ``theta``, for many vector-Jacobian products.

    ``reparameterize_vjp(theta, g, region)`` is ``(g[..., None, :] @ J)[..., 0, :]`` with
    ``J = reparameterize_jacobian(theta, region)``. Computing ``J`` once and applying it by one
    matrix product is cheaper when the same ``theta`` meets several gradients, as in a layer
    called more than once between optimizer steps. The same conventions as
    :func:`reparameterize_vjp`: no gradient where ``tanh`` is clipped, the ulp nudges count as
    the identity, ``f_0 = 1`` has no gradient.

    Parameters
    ----------
    theta : array, shape ``(..., 2)``
        Finite, real floating.
    region : {"strip", "diamond"}

    Returns
    -------
    J : array, shape ``(..., 3, 2)``
        ``J[..., i, j] = d taps[..., i] / d theta[..., j]``, in ``theta``'s namespace and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core.filters import reparameterize_jacobian, reparameterize_vjp
    >>> theta = np.array([[0.3, -0.7], [1.0, 2.0]])
    >>> g = np.array([[1.0, 0.0, 2.0], [-1.0, 5.0, 0.5]])
    >>> J = reparameterize_jacobian(theta)
    >>> J.shape, np.allclose((g[..., None, :] @ J)[..., 0, :], reparameterize_vjp(theta, g))
    ((2, 3, 2), True)
    """
    xp = namespace(theta, names=("theta",))
    if region not in REGIONS:
        raise ValueError(f"region={region!r} is not one of 'strip', 'diamond'")
    lim = _largest_below_one(xp, theta)

    def tanh_slope(a):
        t = xp.tanh(a)
        return xp.where(xp.abs(t) <= lim, 1 - t * t, 0.0)

    zero = xp.zeros_like(theta[..., 0])
    if region == "strip":
        # left = (s + a0) / 2, right = (s - a0) / 2 with s = tanh(a1)
        w = tanh_slope(theta[..., 1]) * 0.5
        half = xp.full_like(zero, 0.5)
        entries = [half, w, zero, zero, -half, w]
    else:
        c, sn = math.cos(-math.pi / 4), math.sin(-math.pi / 4)
        root2 = math.sqrt(2)
        w0, w1 = tanh_slope(theta[..., 0]) / root2, tanh_slope(theta[..., 1]) / root2
        entries = [w0 * c, -w1 * sn, zero, zero, w0 * sn, w1 * c]
    # row-major (i, j): one stack, then the (3, 2) view
    return xp.reshape(xp.stack(entries, axis=-1), (*theta.shape[:-1], 3, 2))


def official_to_theta(alpha):
    """Official parameter layout ``(T, P, 4)`` -> ours ``(T, 2, P, 2)`` for ``region="diamond"``.

    The official ``alpha[t, p] = (a0, a1, a2, a3)`` builds the height-axis factor (dim -2) from
    ``(a0, a1)`` and the width-axis factor from ``(a2, a3)``; ``a0``/``a2`` drive the tap
    difference and ``a1``/``a3`` the sum, exactly like ``theta[..., 0]`` / ``theta[..., 1]``.
    ``reparameterize(official_to_theta(alpha), "diamond")`` gives the official taps,
    shape ``(T, 2, P, 3)``.

    Parameters
    ----------
    alpha : array, shape ``(T, P, 4)``
        The official ``autoregressive.a.alpha``, floating point.

    Returns
    -------
    theta : array, shape ``(T, 2, P, 2)``
        In ``alpha``'s namespace, dtype and device; axis 1 is (height, width).

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core import official_to_theta, reparameterize
    >>> alpha = np.random.default_rng(0).standard_normal((8, 1, 4))    # T = 8, P = 1
    >>> theta = official_to_theta(alpha)
    >>> theta.shape, bool(np.all(theta[:, 1, 0] == alpha[:, 0, 2:]))  # width factor: (a2, a3)
    ((8, 2, 1, 2), True)
    >>> reparameterize(theta, "diamond").shape
    (8, 2, 1, 3)
    """
    xp = namespace(alpha, names=("alpha",))
    check_float_dtype(xp, alpha, "alpha")
    if alpha.ndim != 3 or alpha.shape[-1] != 4:
        raise ValueError(f"alpha must have the official shape (T, P, 4), got {tuple(alpha.shape)}")
    T, P = alpha.shape[0], alpha.shape[1]
    return xp.permute_dims(xp.reshape(alpha, (T, P, 2, 2)), (0, 2, 1, 3))


def _sum_diff(xp, taps):
    f_m, f_0, f_p = taps[..., 0], taps[..., 1], taps[..., 2]
    return f_0, f_m + f_p, f_m - f_p


def stability_margin(taps):
    """Exact minimum over the unit circle of each factor's response modulus.

    Closed form, not a sampled grid: with ``c = cos w`` the squared modulus
    ``(f_0 + s c)^2 + t^2 (1 - c^2)`` is a quadratic in ``c`` on ``[-1, 1]``, so its minimum is
    at ``c = +-1`` (value ``(f_0 -+ s)^2``) or at the vertex ``c* = -f_0 s / (s^2 - t^2)`` when
    that is a minimum inside the interval. Inside the strip ``|s| < |f_0|`` this is exactly
    ``|f_0| - |s|``. The margin of a product of factors (one axis) is at least the product of
    theirs; the AR filter's conditioning at frequency ``w`` is ``1 / |A(w)|``.

    Parameters
    ----------
    taps : array, shape ``(..., 3)``; usually ``(C, k, Q, 3)``.

    Returns
    -------
    margin : array, shape ``(...)`` (``(C, k, Q)``), in ``taps``'s namespace and dtype.

    Raises
    ------
    ValueError
        NaN or inf taps (their margin would be NaN, not a number to compare).

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core import stability_margin
    >>> taps = np.array([[0.4, 1.0, 0.5],      # in the strip: 1 - |0.4 + 0.5|
    ...                  [1.0, -0.5, 0.25],    # outside the strip, no zero on the circle
    ...                  [0.5, 1.0, 0.5]])     # response 1 + cos(w) vanishes at w = pi
    >>> stability_margin(taps).round(6)
    array([0.1     , 0.649519, 0.      ])
    """
    xp = namespace(taps, names=("taps",))
    check_float_dtype(xp, taps, "taps")
    if taps.ndim < 1 or taps.shape[-1] != 3:
        raise ValueError(f"taps must have shape (..., 3), got {tuple(taps.shape)}")
    check_finite(xp, taps, "taps")
    f0, s, t = _sum_diff(xp, taps)
    ends = xp.minimum((f0 + s) ** 2, (f0 - s) ** 2)
    curv = s * s - t * t  # = 4 f_-1 f_1, the quadratic's leading coefficient
    safe = xp.where(curv > 0, curv, xp.ones_like(curv))
    cstar = -f0 * s / safe
    vertex = f0 * f0 + t * t - (f0 * s) ** 2 / safe
    inside = (curv > 0) & (xp.abs(cstar) < 1)
    m2 = xp.where(inside, xp.minimum(ends, vertex), ends)
    return xp.sqrt(xp.clip(m2, 0.0, None))


def inside_strip(xp, taps):
    """Boolean array ``(...)``: True where a factor is inside the open strip ``|s| < |f_0|``
    (False for NaN)."""
    return xp.abs(taps[..., 0] + taps[..., 2]) < xp.abs(taps[..., 1])


def _strip_violation(xp, taps):
    """Boolean array ``(...)``: True where a factor is outside the open strip ``|s| < |f_0|``."""
    return ~inside_strip(xp, taps)


def _violation(xp, taps, boundary):
    """Where a factor cannot be solved stably under ``boundary`` (see :func:`is_stable`)."""
    if boundary == "circular":
        return ~(stability_margin(taps) > 0)
    return _strip_violation(xp, taps)


def _check_taps_array(xp, taps, name):
    check_float_dtype(xp, taps, name)
    if taps.ndim < 1 or taps.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {tuple(taps.shape)}")


def is_stable(taps, boundary: str | None = None) -> bool:
    """Whether every factor can be solved stably.

    Parameters
    ----------
    taps : array, shape ``(..., 3)``
    boundary : {None, "circular", "zeros", "reflect", "replicate"}
        ``None`` (or any non-circular rule): every factor must lie in Theorem 6's open strip
        ``|f_-1 + f_1| < |f_0|``, the factors whose response has no zero on the unit circle and
        winding number 0 (for ``f_0 > 0`` the connected set containing the identity; a negative
        ``f_0`` is the same filter times -1). ``"circular"``: a nonzero response on the unit
        circle suffices (:func:`stability_margin` > 0): the circulant system is then invertible
        and well conditioned, while factors outside the strip (winding number +-1) make the
        causal recursion diverge and the zeros/reflect/replicate systems exponentially
        ill-conditioned with size.

    Returns
    -------
    bool
        False for NaN or inf taps.

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core import is_stable
    >>> is_stable(np.array([0.4, 1.0, 0.5]))            # |0.4 + 0.5| < 1
    True
    >>> is_stable(np.array([0.0, -1.0, 0.5]))           # lfilter([1], [-1, 0.5]): pole at 0.5
    True
    >>> is_stable(np.array([1.0, -0.5, 0.25]))          # roots 0.25 +- 0.43i: winding +1
    False
    >>> is_stable(np.array([1.0, -0.5, 0.25]), boundary="circular")
    True
    """
    xp = namespace(taps, names=("taps",))
    _check_taps_array(xp, taps, "taps")
    if boundary is not None:
        check_boundary(boundary)
    if not bool(xp.all(xp.isfinite(taps))):
        return False
    return not bool(xp.any(_violation(xp, taps, boundary)))


def check_stable(taps, *, name: str = "taps", boundary: str | None = None):
    """Raise :class:`UnstableFilterError` naming channel, axis and factor of the first bad factor.

    Parameters
    ----------
    taps : array, shape ``(C, k, Q, 3)``
        Or any ``(..., 3)``; the index is then reported as a tuple.
    name : str
        The argument name the message uses.
    boundary : {None, "circular", "zeros", "reflect", "replicate"}
        As for :func:`is_stable`.

    Returns
    -------
    taps
        Unchanged.

    Raises
    ------
    UnstableFilterError
        A factor that cannot be solved stably under ``boundary``; the message gives its taps,
        its margin and the reason, the attributes its index and margin.
    ValueError
        NaN or inf taps.

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core import UnstableFilterError, check_stable
    >>> taps = np.array([[[[0.3, 1.0, -0.2]], [[0.6, 1.0, 0.5]]]])    # (C, k, Q, 3) = (1, 2, 1, 3)
    >>> try:
    ...     check_stable(taps)
    ... except UnstableFilterError as err:
    ...     print(err.channel, err.axis, err.factor, round(err.margin, 4))
    0 1 0 0.0408
    >>> check_stable(taps, boundary="circular") is taps    # no zero on the unit circle
    True
    """
    xp = namespace(taps, names=(name,))
    _check_taps_array(xp, taps, name)
    if boundary is not None:
        check_boundary(boundary)
    check_finite(xp, taps, name)
    check_stable_validated(xp, taps, boundary, name)
    return taps


def host_taps_facts(taps: np.ndarray) -> tuple[bool, bool] | None:
    """``(finite, in_strip)`` of NumPy taps ``(..., 3)`` from the compiled line solver's one pass
    (the answers of :func:`arma_core._validate.check_finite_values` and of
    :func:`check_stable_validated`'s strip test, in the taps' dtype), or None (no extension,
    another dtype or layout: check with NumPy). A new filter's checks of a few values cost
    several NumPy calls each; the pass costs less than one."""
    return _lines_host("taps_facts")(taps)


def check_stable_validated(xp, taps, boundary: str | None, name: str = "taps") -> bool:
    """:func:`check_stable` for taps already validated (real floating, ``(..., 3)``, finite).

    Factors in the strip are stable for every boundary (for ``circular`` their margin is
    ``|f_0| - |f_-1 + f_1| > 0``), so the margins are computed only when one is outside it.

    Returns
    -------
    bool
        Whether every factor is in the strip ``|f_-1 + f_1| < |f_0|``, evaluated in the taps'
        dtype (False when a ``circular`` factor outside it passed the check).
    """
    if type(taps) is np.ndarray:
        # on the factors as rows: numpy's ufuncs cost less on 1-D views than on (C, k, Q) ones
        if np.logical_and.reduce(inside_strip(np, taps.reshape(-1, 3))):
            return True
    elif bool(xp.all(inside_strip(xp, taps))):
        return True
    bad = _violation(xp, taps, boundary) if boundary == "circular" else _strip_violation(xp, taps)
    if bool(xp.any(bad)):
        _raise_unstable(to_numpy(taps), to_numpy(bad, dtype=bool), name, boundary)
    return False


def _raise_unstable(taps, bad, name, boundary):
    """The :class:`UnstableFilterError` for the first True of ``bad`` (host arrays)."""
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    f = taps[idx]
    margin = float(stability_margin(f))
    s = abs(f[0] + f[2])
    if len(idx) == 3:
        where = f"channel {idx[0]}, axis {idx[1]}, factor {idx[2]}"
        kw = dict(channel=idx[0], axis=idx[1], factor=idx[2])
    else:
        where, kw = f"index {idx}", {}
    head = (
        f"{name} is unstable at {where}: (f_-1, f_0, f_1) = ({f[0]:.6g}, {f[1]:.6g}, "
        f"{f[2]:.6g}), stability margin {margin:.3g}"
    )
    if boundary == "circular" or margin == 0.0:
        why = "its response vanishes on the unit circle, so no boundary rule can solve it"
    else:
        why = (
            f"|f_-1 + f_1| = {s:.6g} >= |f_0| = {abs(f[1]):.6g} (Theorem 6 needs |f_-1 + f_1| "
            f"< |f_0|); such a factor (winding number +-1) can be solved only with "
            f"boundary='circular', where a nonzero response suffices"
        )
    raise UnstableFilterError(
        f"{head}: {why}. Use arma_core.reparameterize to get taps that are stable by construction.",
        margin=margin,
        **kw,
    )

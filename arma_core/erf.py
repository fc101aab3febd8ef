"""Effective receptive fields (ERF) of linear ARMA networks: Definition 2, Eq. 3, Theorem 3.

Everything here works on arrays of any array-API library (the namespace comes from the inputs)
and never needs torch; :func:`arma_core.nn.erf.erf` measures the ERF of an arbitrary PyTorch
model through autograd. ``docs/erf.md`` derives the closed forms and states the conventions.

Conventions
-----------
ERF maps are *centred*: the entry at index ``c + q`` (``c = n // 2`` per axis) is the weight of
the input pixel at offset ``q`` from the output pixel, i.e. Definition 2's ``ERF(p)`` at
``p = -q`` (the paper writes the input as ``X[i - p]`` for the output ``Y[i]``). This is the
"gradient image" the ERF literature draws. Radii do not depend on the sign of the offsets.

Definition 2 as printed normalises over *output positions* at a fixed offset, which makes the
ERF uniform for every shift-invariant network; we implement the intended normalisation over
*offsets*: each gradient map ``|dY_t / dX_s|`` is divided by its sum over offsets, and the maps
are then averaged over channel pairs ``(s, t)``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from array_api_compat import array_namespace, is_torch_array
from array_api_compat import device as _device

from ._array import to_numpy

__all__ = [
    "radius",
    "variance_radius",
    "axis_radii",
    "theorem3_radius",
    "factor_moments",
    "separable_radius",
    "LinearLayer",
    "uniform_layer",
    "linear_erf",
    "required_size",
]


# ---------------------------------------------------------------------------------------------
# radii of a measured map (Eq. 3 and the variance form)


def _distribution(erf_map, centre):
    """Float64 distribution ``w`` (sums to 1) and per-axis offset vectors of a centred map."""
    try:
        xp = array_namespace(erf_map)
    except TypeError as exc:
        raise TypeError(f"erf_map must be an array of an array-API library, got {type(erf_map).__name__}") from exc
    if is_torch_array(erf_map):  # a map that requires grad: radii are plain floats
        erf_map = erf_map.detach()
    if erf_map.ndim < 1:
        raise ValueError("erf_map must have at least one axis (a 1-D or 2-D ERF map)")
    if xp.isdtype(erf_map.dtype, "bool") or xp.isdtype(erf_map.dtype, "complex floating"):
        raise TypeError(f"erf_map must be real, got dtype {erf_map.dtype}")
    hi = getattr(xp, "float64", None) or erf_map.dtype
    w = xp.astype(erf_map, hi)
    if not bool(xp.all(xp.isfinite(w))):
        raise ValueError("erf_map contains NaN or inf")
    if bool(xp.any(w < 0)):
        raise ValueError(
            "erf_map has negative entries; an ERF map is a distribution of |gradients| (take the absolute value first)"
        )
    total = float(xp.sum(w))
    if total <= 0:
        raise ValueError("erf_map sums to zero: there is no receptive field to measure")
    w = w / total
    shape = tuple(int(n) for n in erf_map.shape)
    if centre is None:
        centre = tuple(n // 2 for n in shape)
    else:
        centre = tuple(float(c) for c in np.broadcast_to(np.asarray(centre, dtype=float), (len(shape),)))
    dev = _device(w)
    offsets = []
    for j, (n, c) in enumerate(zip(shape, centre)):
        view = [1] * len(shape)
        view[j] = n
        o = xp.asarray(np.arange(n, dtype=np.float64) - c, dtype=hi, device=dev)
        offsets.append(xp.reshape(o, tuple(view)))
    return xp, w, offsets


def radius(erf_map, *, centre=None) -> float:
    """ERF radius by the paper's Eq. 3: the standard deviation of the radial distance.

    ``r^2 = sum_p |p|^2 ERF(p) - (sum_p |p| ERF(p))^2`` with ``p`` the offset from the centre.

    Parameters
    ----------
    erf_map : array, shape ``(n_1, ..., n_k)``
        Non-negative ERF map (1-D or 2-D; any ``k`` works), centred: the output pixel sits at
        index ``n_j // 2`` along every axis unless ``centre`` says otherwise. It is normalised to
        a distribution here, so any positive scale is fine.
    centre : float or sequence of float, optional
        Index of the offset origin per axis (default ``n_j // 2``).

    Returns
    -------
    float
        ``r(ERF)`` of Eq. 3.

    Notes
    -----
    Eq. 3 is ``Var(|p|)``, which depends on where the origin is and is at most
    :func:`variance_radius` (``E|p|^2 - (E|p|)^2 <= E|p|^2 - |E p|^2`` because
    ``|E p| <= E|p|``). The two agree when all offsets lie on one ray from the origin, e.g. a
    causal 1-D network; Theorem 3 (Eq. 4) is a statement about the variance form.

    Examples
    --------
    Half the weight at the output pixel, half two pixels to its right: ``|p|`` is 0 or 2.

    >>> import numpy as np
    >>> from arma_core.erf import radius, variance_radius
    >>> m = np.zeros((5, 5))
    >>> m[2, 2] = m[2, 4] = 1.0
    >>> radius(m), variance_radius(m)
    (1.0, 1.0)
    >>> m = np.zeros((5, 5))
    >>> m[1, 2] = m[3, 2] = 1.0          # one pixel above and one below: |p| = 1 always
    >>> radius(m), variance_radius(m)
    (0.0, 1.0)
    """
    xp, w, offs = _distribution(erf_map, centre)
    sq = sum(o * o for o in offs)
    m2 = float(xp.sum(w * sq))
    m1 = float(xp.sum(w * xp.sqrt(sq)))
    return math.sqrt(max(m2 - m1 * m1, 0.0))


def _axis_variances(erf_map, centre=None):
    xp, w, offs = _distribution(erf_map, centre)
    out = []
    for o in offs:
        m1 = float(xp.sum(w * o))
        m2 = float(xp.sum(w * o * o))
        out.append(max(m2 - m1 * m1, 0.0))
    return out


def axis_radii(erf_map) -> tuple[float, ...]:
    """Per-axis standard deviations of an ERF map (the quantity Theorem 3 gives per axis).

    Parameters
    ----------
    erf_map : array, shape ``(n_1, ..., n_k)``
        Non-negative ERF map.

    Returns
    -------
    tuple of float, length ``k``
        ``sqrt(Var(p_j))`` for every axis ``j``, shift invariant (no centre needed).

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core.erf import axis_radii
    >>> m = np.zeros((5, 5))
    >>> m[1, 2] = m[3, 2] = 1.0          # offsets -1 and +1 along rows, 0 along columns
    >>> axis_radii(m)
    (1.0, 0.0)
    """
    return tuple(math.sqrt(v) for v in _axis_variances(erf_map))


def variance_radius(erf_map) -> float:
    """ERF radius as the square root of the summed per-axis position variances.

    ``r_var^2 = sum_j Var(p_j) = E|p|^2 - |E p|^2``: the quantity Theorem 3 (Eq. 4) is proved
    for. Unlike Eq. 3 (:func:`radius`) it does not depend on the origin, and it adds over
    layers (variances of a convolution of non-negative kernels add). For a 2-D separable
    network it is ``sqrt 2`` times the per-axis radius of Eq. 4.

    Parameters
    ----------
    erf_map : array, shape ``(n_1, ..., n_k)``
        Non-negative ERF map (normalised here).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core.erf import axis_radii, variance_radius
    >>> m = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, 1.0])    # row variance 1/2, column variance 1
    >>> [round(r, 6) for r in axis_radii(m)], round(variance_radius(m), 6)    # sqrt(1/2 + 1)
    ([0.707107, 1.0], 1.224745)
    """
    return math.sqrt(sum(_axis_variances(erf_map)))


# ---------------------------------------------------------------------------------------------
# closed forms


def _broadcast_layers(layers, **named):
    """Broadcast scalar-or-sequence arguments to ``L`` layers; returns ``(L, lists)``."""
    lengths = {}
    values = {}
    for name, v in named.items():
        arr = np.asarray(v, dtype=float)
        if arr.ndim > 1:
            raise ValueError(f"{name} must be a scalar or a 1-D sequence (one value per layer), got shape {arr.shape}")
        if arr.ndim == 1:
            if arr.size == 0:
                raise ValueError(f"{name} is empty")
            lengths[name] = arr.size
        values[name] = arr
    sizes = set(lengths.values())
    if layers is not None:
        if isinstance(layers, bool) or not isinstance(layers, (int, np.integer)) or layers < 1:
            raise ValueError(f"layers must be a positive integer, got {layers!r}")
        sizes.add(int(layers))
    if len(sizes) > 1:
        desc = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise ValueError(
            f"per-layer sequences disagree on the number of layers ({desc}"
            + (f", layers={layers}" if layers is not None else "")
            + ")"
        )
    L = sizes.pop() if sizes else 1
    return L, {k: np.broadcast_to(v, (L,)) for k, v in values.items()}


def _check_kd(K, d):
    if np.any(K < 1) or np.any(K != np.round(K)):
        raise ValueError(f"kernel_sizes must be positive integers, got {K.tolist()}")
    if np.any(d < 1) or np.any(d != np.round(d)):
        raise ValueError(f"dilations must be positive integers, got {d.tolist()}")


def theorem3_radius(kernel_sizes, dilations=1, a=0.0, *, layers=None) -> float:
    """ERF radius of the paper's linear causal ARMA network, Theorem 3 (Eq. 4).

    Layer ``l`` computes ``y_i - a_l y_{i-1} = sum_{p<K_l} (1 - a_l) / K_l * x_{i - d_l p}``;
    then ``r^2 = sum_l [d_l^2 (K_l^2 - 1) / 12 + a_l / (1 - a_l)^2]``.

    Parameters
    ----------
    kernel_sizes, dilations, a : scalar or sequence of length ``L``
        MA length ``K_l``, MA dilation ``d_l`` and AR coefficient ``0 <= a_l < 1`` per layer;
        scalars are used for every layer.
    layers : int, optional
        Number of layers ``L`` when all three are scalars (default 1).

    Returns
    -------
    float
        ``r(ERF)`` of Eq. 4: the standard deviation of the 1-D ERF, which is the per-axis
        radius (:func:`axis_radii`) of a separable 2-D network.

    Examples
    --------
    >>> from arma_core.erf import theorem3_radius
    >>> round(theorem3_radius(3, layers=4), 6)         # four 3-tap convolutions: sqrt(4 * 8/12)
    1.632993
    >>> round(theorem3_radius(3, a=[0.5, 0.8]), 6)     # sqrt(2 * 8/12 + 0.5/0.5**2 + 0.8/0.2**2)
    4.830459
    """
    L, v = _broadcast_layers(layers, kernel_sizes=kernel_sizes, dilations=dilations, a=a)
    K, d, a = v["kernel_sizes"], v["dilations"], v["a"]
    _check_kd(K, d)
    if np.any(~np.isfinite(a)) or np.any(a < 0) or np.any(a >= 1):
        raise ValueError(f"Theorem 3 needs 0 <= a < 1 for every layer, got a = {a.tolist()}")
    r2 = np.sum(d**2 * (K**2 - 1) / 12.0 + a / (1.0 - a) ** 2)
    return float(math.sqrt(r2))


def factor_moments(taps):
    """Signed mean and variance of the normalised inverse response of length-3 AR factors.

    For ``(A y)_i = f_-1 y[i+1] + f_0 y[i] + f_1 y[i-1]`` and ``h = A^{-1} delta`` on the
    infinite line (two-sided, decaying: the factor must be stable), with ``s = f_-1 + f_1``:

    ``mean = (f_-1 - f_1) / (f_0 + s)``,
    ``var = ((f_1 - f_-1)^2 - s (f_0 + s)) / (f_0 + s)^2``

    (``docs/erf.md`` derives both from the cumulant generating function ``log A(0) - log A(t)``).
    The mean is in output offsets (``h`` lives at ``p = output - input``). ``var`` is a true
    variance of the distribution ``h / sum h`` exactly when both ``f_-1 <= 0`` and ``f_1 <= 0``
    (then ``h >= 0``); otherwise ``h`` changes sign and these are signed moments (they still
    add under convolution). Causal ``(0, 1, -a)`` gives ``a / (1 - a)^2`` (Theorem 3);
    symmetric ``(-a/2, 1, -a/2)`` gives ``a / (1 - a)``.

    Parameters
    ----------
    taps : array_like, shape ``(..., 3)``
        ``(f_-1, f_0, f_1)``; with AR dilation ``d`` multiply the mean by ``d`` and the
        variance by ``d^2``.

    Returns
    -------
    mean, var : ndarray, shape ``(...)``, float64

    Raises
    ------
    ValueError
        When a factor has a zero on the unit circle (``|f(w)|`` vanishes) or is not length 3.

    Examples
    --------
    >>> from arma_core.erf import factor_moments
    >>> mean, var = factor_moments([0.0, 1.0, -0.5])      # causal: a / (1 - a), a / (1 - a)^2
    >>> float(mean), float(var)
    (1.0, 2.0)
    >>> mean, var = factor_moments([[-0.4, 1.0, -0.4], [0.0, 1.0, -0.5]])    # shape (2, 3)
    >>> mean.round(12).tolist(), var.round(12).tolist()    # symmetric: mean 0, var a / (1 - a)
    ([0.0, 1.0], [4.0, 2.0])
    """
    f = np.asarray(taps, dtype=np.float64)
    if f.ndim < 1 or f.shape[-1] != 3:
        raise ValueError(f"taps must have shape (..., 3) = (f_-1, f_0, f_1), got shape {f.shape}")
    fm, f0, fp = f[..., 0], f[..., 1], f[..., 2]
    s = fm + fp
    # |f(w)|^2 = (f0 + s cos w)^2 + (fm - fp)^2 sin^2 w vanishes only at w = 0, pi (f0 = -+s)
    # or, when fm = fp, where cos w = -f0 / s: an exact test, no frequency grid needed
    scale = np.maximum(np.abs(f0) + np.abs(fm) + np.abs(fp), 1e-300)
    eps = 1e-12 * scale
    singular = (np.abs(f0 + s) <= eps) | (np.abs(f0 - s) <= eps)
    singular |= (np.abs(fm - fp) <= eps) & (np.abs(s) >= np.abs(f0))
    if np.any(singular) or np.any(~np.isfinite(f)):
        raise ValueError(
            "taps has a factor with a zero on the unit circle (or a non-finite tap): "
            "its inverse response does not decay"
        )
    A0 = f0 + s
    mean = (fm - fp) / A0
    var = ((fp - fm) ** 2 - s * A0) / A0**2
    return mean, var


def separable_radius(kernel_sizes, dilations=1, taps=(0.0, 1.0, 0.0), ar_dilations=1, *, layers=None) -> float:
    """Per-axis ERF radius of a linear separable ARMA network with uniform MA (closed form).

    Generalises Theorem 3 to two-sided length-3 factors: layer ``l`` is a uniform MA of length
    ``K_l`` and dilation ``d_l`` along the axis, followed by the inverse of its AR factors
    ``q = 1..Q`` (AR dilation ``e_l``), so the per-axis variance is
    ``r^2 = sum_l [d_l^2 (K_l^2 - 1) / 12 + e_l^2 sum_q var(f_lq)]`` with ``var`` from
    :func:`factor_moments`. The MA may be causal or centred: shifts do not change variances.

    Parameters
    ----------
    kernel_sizes, dilations, ar_dilations : scalar or sequence of length ``L``
    taps : array_like, shape ``(3,)``, ``(Q, 3)`` or ``(L, Q, 3)``
        One factor for every layer, ``Q`` factors for every layer, or ``Q`` factors per layer.
        Each factor is ``(f_-1, f_0, f_1)``.
    layers : int, optional
        ``L`` when nothing else fixes it (default 1).

    Returns
    -------
    float
        The radius along one axis; a true standard deviation when every tap ``f_-1, f_1 <= 0``
        (non-negative response), else the square root of a signed second cumulant (raises if
        that is negative).

    Examples
    --------
    >>> from arma_core.erf import separable_radius, theorem3_radius
    >>> round(separable_radius(3, taps=(-0.4, 1.0, -0.4), layers=2), 6)    # sqrt(2 (8/12 + 0.8/0.2))
    3.05505
    >>> separable_radius(3, taps=(0.0, 1.0, -0.5)) == theorem3_radius(3, a=0.5)
    True
    """
    f = np.asarray(taps, dtype=np.float64)
    if f.ndim not in (1, 2, 3) or f.shape[-1] != 3:
        raise ValueError(f"taps must have shape (3,), (Q, 3) or (L, Q, 3), got shape {f.shape}")
    per_layer = f.shape[0] if f.ndim == 3 else None
    if per_layer is not None and layers is not None and per_layer != layers:
        raise ValueError(f"taps has {per_layer} layers but layers={layers}")
    L, v = _broadcast_layers(
        layers if layers is not None else per_layer,
        kernel_sizes=kernel_sizes,
        dilations=dilations,
        ar_dilations=ar_dilations,
    )
    K, d, e = v["kernel_sizes"], v["dilations"], v["ar_dilations"]
    _check_kd(K, d)
    if np.any(e < 1) or np.any(e != np.round(e)):
        raise ValueError(f"ar_dilations must be positive integers, got {e.tolist()}")
    f = f.reshape((1,) * (3 - f.ndim) + f.shape)  # (1 or L, Q, 3)
    f = np.broadcast_to(f, (L,) + f.shape[1:])
    _, var = factor_moments(f)  # (L, Q)
    r2 = float(np.sum(d**2 * (K**2 - 1) / 12.0 + e**2 * np.sum(var, axis=-1)))
    if r2 < 0:
        raise ValueError(f"the signed second cumulant is negative ({r2:.4g}): these taps have no real radius")
    return math.sqrt(r2)


# ---------------------------------------------------------------------------------------------
# linear networks


class LinearLayer(NamedTuple):
    """One layer of a linear ARMA network: ``y = A^{-1} (W * x)`` (Eq. 2 without bias).

    Attributes
    ----------
    weight : array, shape ``(C_out, C_in, K_1, ..., K_k)``
        MA kernel, applied as :func:`arma_core.conv` (cross-correlation) with "same" padding
        ``dilation * (K_j - 1) / 2`` (odd ``K_j``), zero padding (circular when
        ``boundary="circular"``).
    taps : array, shape ``(C_out, k, Q, 3)``, or None
        AR factors; None for a plain convolution layer.
    dilation : int
        MA dilation.
    boundary : {"zeros", "circular", "reflect", "replicate"}
        Boundary rule of the AR solve (:func:`arma_core.ar_solve`).
    ar_dilation : int
        AR dilation.

    Examples
    --------
    A one-channel 2-D layer: a 3x3 box filter, then the symmetric factor ``(-0.4, 1, -0.4)``
    along both axes.

    >>> import numpy as np
    >>> from arma_core.erf import LinearLayer, linear_erf, variance_radius
    >>> taps = np.tile([-0.4, 1.0, -0.4], (1, 2, 1, 1))     # (C_out, k, Q, 3) = (1, 2, 1, 3)
    >>> layer = LinearLayer(np.full((1, 1, 3, 3), 1 / 9), taps, boundary="circular")
    >>> m = linear_erf([layer], 65)
    >>> m.shape, round(variance_radius(m), 4)                 # sqrt(2 (8/12 + 0.8/0.2)) = 3.0551
    ((65, 65), 3.0551)
    """

    weight: Any
    taps: Any = None
    dilation: int = 1
    boundary: str = "zeros"
    ar_dilation: int = 1


def _uniform_kernel(K: int, ndim: int, causal: bool) -> np.ndarray:
    """The ``(1, 1, K', ..., K')`` float64 kernel of :func:`uniform_layer`."""
    if causal:
        line = np.zeros(2 * K - 1)
        line[:K] = 1.0 / K
    else:
        if K % 2 == 0:
            raise ValueError(f"a centred uniform kernel needs an odd kernel_size, got {K} (or use causal=True)")
        line = np.full(K, 1.0 / K)
    w = line
    for _ in range(ndim - 1):
        w = np.multiply.outer(w, line)
    return w[None, None]


def uniform_layer(
    kernel_size: int,
    ndim: int = 2,
    *,
    taps=None,
    dilation: int = 1,
    causal: bool = False,
    boundary: str = "zeros",
    ar_dilation: int = 1,
    xp=None,
    dtype=None,
) -> LinearLayer:
    """A one-channel layer with a uniform MA kernel and the same AR factor on every axis.

    Parameters
    ----------
    kernel_size : int
        MA length ``K`` along every axis; the kernel is ``1 / K^ndim`` on its support.
    ndim : int
        Number of spatial axes ``k``.
    taps : sequence of 3 floats or array ``(Q, 3)``, optional
        AR factor(s) ``(f_-1, f_0, f_1)`` used along every axis; None for a plain conv layer.
        Theorem 3's ``y_i - a y_{i-1}`` is ``(0, 1, -a)``.
    dilation : int
        MA dilation ``d``.
    causal : bool
        If True the MA reads ``x[i], x[i - d], ..., x[i - d (K - 1)]`` along every axis (Theorem
        3's network) - stored as a ``2K - 1`` kernel whose last ``K - 1`` taps are zero, so the
        "same" padding stays symmetric. If False it is centred (odd ``K``).
    boundary : str
        AR boundary rule; ar_dilation : int; see :class:`LinearLayer`.
    xp : array namespace, optional
        Library for the arrays (default NumPy); dtype defaults to its float64.

    Returns
    -------
    LinearLayer
        ``weight`` of shape ``(1, 1, K', ..., K')`` (``K' = K``, or ``2K - 1`` when causal),
        ``taps`` of shape ``(1, ndim, Q, 3)`` or None.

    Examples
    --------
    >>> from arma_core.erf import uniform_layer
    >>> layer = uniform_layer(3, 2, taps=(0.0, 1.0, -0.5), causal=True)    # Theorem 3, a = 0.5
    >>> layer.weight.shape, layer.taps.shape
    ((1, 1, 5, 5), (1, 2, 1, 3))
    >>> float(layer.weight.sum()), float(layer.weight[0, 0, 3:, :].sum())  # last K - 1 rows are 0
    (1.0, 0.0)
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive integer, got {kernel_size!r}")
    if isinstance(ndim, bool) or not isinstance(ndim, (int, np.integer)) or not 1 <= ndim <= 3:
        raise ValueError(f"ndim must be 1, 2 or 3, got {ndim!r}")
    w = _uniform_kernel(int(kernel_size), int(ndim), causal)
    if xp is None:
        xp = array_namespace(np.zeros(1))
    dtype = dtype if dtype is not None else xp.float64
    weight = xp.asarray(w, dtype=dtype)
    ar = None
    if taps is not None:
        f = np.asarray(taps, dtype=np.float64)
        if f.ndim == 1:
            f = f[None]
        if f.ndim != 2 or f.shape[-1] != 3:
            raise ValueError(f"taps must have shape (3,) or (Q, 3), got {np.shape(taps)}")
        ar = xp.asarray(np.broadcast_to(f, (1, ndim) + f.shape).copy(), dtype=dtype)
    return LinearLayer(weight, ar, int(dilation), boundary, int(ar_dilation))


def _as_layer(layer, i):
    if isinstance(layer, LinearLayer):
        return layer
    if isinstance(layer, dict):
        try:
            return LinearLayer(**layer)
        except TypeError as exc:
            raise TypeError(f"layers[{i}]: {exc}") from None
    if isinstance(layer, (tuple, list)):
        return LinearLayer(*layer)
    raise TypeError(f"layers[{i}] must be a LinearLayer, a dict or a tuple, got {type(layer).__name__}")


def _check_layers(layers):
    if isinstance(layers, (LinearLayer, dict)):
        layers = [layers]
    layers = [_as_layer(l, i) for i, l in enumerate(layers)]
    if not layers:
        raise ValueError("layers is empty")
    from ._validate import check_boundary, check_positive_int

    k = layers[0].weight.ndim - 2
    if k < 1:
        raise ValueError(
            f"layers[0].weight must have shape (C_out, C_in, K_1, ..., K_k), got {tuple(layers[0].weight.shape)}"
        )
    prev = None
    for i, l in enumerate(layers):
        w = l.weight
        if w.ndim != k + 2:
            raise ValueError(f"layers[{i}].weight has {w.ndim - 2} spatial axes, layers[0] has {k}")
        if any(int(n) % 2 == 0 for n in w.shape[2:]):
            raise ValueError(
                f"layers[{i}].weight has an even kernel size {tuple(w.shape[2:])}; 'same' padding needs odd sizes"
            )
        if prev is not None and w.shape[1] != prev:
            raise ValueError(f"layers[{i}].weight expects {w.shape[1]} input channels, the previous layer gives {prev}")
        prev = w.shape[0]
        check_positive_int(l.dilation, f"layers[{i}].dilation")
        check_positive_int(l.ar_dilation, f"layers[{i}].ar_dilation")
        check_boundary(l.boundary)
        if l.taps is not None and (l.taps.ndim != 4 or l.taps.shape[0] != w.shape[0] or l.taps.shape[1] != k):
            raise ValueError(
                f"layers[{i}].taps must have shape (C_out={w.shape[0]}, k={k}, Q, 3), got {tuple(l.taps.shape)}"
            )
    return layers, k


def _ma_padding(l):
    return tuple(l.dilation * (int(n) - 1) // 2 for n in l.weight.shape[2:])


def _padding_mode(l):
    return "circular" if l.boundary == "circular" else "zeros"


def _grid_shape(size, k: int, method: str) -> tuple[int, ...]:
    """``size`` as ``k`` positive ints (an int is used for every axis); odd for ``"impulse"``."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        shape = (int(size),) * k
    else:
        shape = tuple(int(n) for n in size)
        if len(shape) != k:
            raise ValueError(f"size has {len(shape)} entries but the layers have {k} spatial axes")
    if any(n < 1 for n in shape):
        raise ValueError(f"size must be positive, got {shape}")
    if method == "impulse" and any(n % 2 == 0 for n in shape):
        raise ValueError(f"method='impulse' needs odd sizes (a pixel at the exact centre), got {shape}")
    return shape


def _impulses(xp, C: int, shape, like):
    """``(C, C, *shape)``: batch ``c`` holds a unit impulse at the centre of channel ``c``."""
    e = np.zeros((C, C) + tuple(shape))
    centre = tuple(n // 2 for n in shape)
    for c in range(C):
        e[(c, c) + centre] = 1.0
    return xp.asarray(e, dtype=like.dtype, device=_device(like))


def _adjoint_response(xp, layers, shape, k: int):
    """``(T, S, *shape)``: the adjoint network's response to an impulse at each output channel."""
    from .conv import conv
    from .operator import ar_solve_adjoint

    spatial = tuple(range(2, k + 2))
    g = _impulses(xp, int(layers[-1].weight.shape[0]), shape, layers[0].weight)
    for l in reversed(layers):
        if l.taps is not None:
            g = ar_solve_adjoint(g, l.taps, boundary=l.boundary, dilation=l.ar_dilation)
        w_adj = xp.flip(xp.permute_dims(l.weight, (1, 0) + spatial), axis=spatial)
        g = conv(g, w_adj, padding=_ma_padding(l), dilation=l.dilation, padding_mode=_padding_mode(l))
    return g


def _mirrored_impulse_response(xp, layers, shape, k: int):
    """``(S, T, *shape)``: the network's response to an impulse at each input channel, mirrored
    through the centre."""
    from .conv import conv
    from .operator import ar_solve

    y = _impulses(xp, int(layers[0].weight.shape[1]), shape, layers[0].weight)
    for l in layers:
        y = conv(y, l.weight, padding=_ma_padding(l), dilation=l.dilation, padding_mode=_padding_mode(l))
        if l.taps is not None:
            y = ar_solve(y, l.taps, boundary=l.boundary, dilation=l.ar_dilation)
    return xp.flip(y, axis=tuple(range(2, k + 2)))


def _mean_of_normalised(xp, maps, k: int):
    """Mean over the leading two axes of ``|maps|``, each map normalised to sum 1 (zero maps are
    left out of the mean)."""
    a = xp.abs(maps)
    tot = xp.sum(a, axis=tuple(range(2, k + 2)), keepdims=True)
    valid = tot > 0
    n_valid = int(xp.sum(xp.astype(valid, xp.int64)))
    if n_valid == 0:
        raise ValueError("the network's output does not depend on its input (all gradients are zero)")
    norm = xp.where(valid, a / xp.where(valid, tot, xp.ones_like(tot)), xp.zeros_like(a))
    return xp.sum(norm, axis=(0, 1)) / n_valid


def linear_erf(layers, size, *, method: str = "gradient"):
    """Exact ERF map (Definition 2) of a linear ARMA network, 1-D, 2-D or 3-D.

    The network is ``x -> A_L^{-1}(W_L * ... A_1^{-1}(W_1 * x))``. Its ERF at the centre
    output pixel is ``|dY_t[c] / dX_s|``, i.e. row ``c`` of the network's matrix, computed
    exactly as the response of the *adjoint* network to an impulse at the output centre: per
    layer in reverse, :func:`arma_core.ar_solve_adjoint` then the transposed MA (correlation with
    the spatially flipped, channel-transposed kernel, same padding). For a shift-invariant network
    (circular boundary, or any boundary while the response stays away from the edges) this is the
    network's impulse response mirrored through the centre, which ``method="impulse"`` computes
    with :func:`arma_core.conv` and :func:`arma_core.ar_solve` directly.

    Parameters
    ----------
    layers : sequence of :class:`LinearLayer` (or dicts / tuples with its fields)
        First to last; arrays of one array-API library and floating dtype.
    size : int or sequence of int
        Spatial size ``(n_1, ..., n_k)`` (an int is used for every axis). Theorem 3 is about an
        infinite line: use :func:`required_size` for a size whose truncation is negligible.
    method : {"gradient", "impulse"}
        ``"gradient"`` (exact Definition 2 at the centre pixel for every boundary) or
        ``"impulse"`` (mirrored forward impulse response; needs odd sizes).

    Returns
    -------
    array, shape ``(n_1, ..., n_k)``
        The centred ERF map (index ``n_j // 2`` is the output pixel), non-negative, summing to 1:
        the mean over channel pairs ``(s, t)`` of ``|dY_t / dX_s|`` normalised over offsets
        (pairs with no response are left out). Same namespace and dtype as the weights.

    Examples
    --------
    Two layers of Theorem 3's causal network along one axis (3-tap uniform MA, ``a = 0.5``):

    >>> from arma_core.erf import axis_radii, linear_erf, required_size, theorem3_radius, uniform_layer
    >>> layers = [uniform_layer(3, 1, taps=(0.0, 1.0, -0.5), causal=True) for _ in range(2)]
    >>> m = linear_erf(layers, required_size(layers, 1e-9))
    >>> m.shape, round(float(m.sum()), 12)
    ((91,), 1.0)
    >>> round(axis_radii(m)[0], 6), round(theorem3_radius(3, a=0.5, layers=2), 6)
    (2.309401, 2.309401)
    """
    if method not in ("gradient", "impulse"):
        raise ValueError(f"method must be 'gradient' or 'impulse', got {method!r}")
    layers, k = _check_layers(layers)
    shape = _grid_shape(size, k, method)
    xp = array_namespace(*([l.weight for l in layers] + [l.taps for l in layers if l.taps is not None]))
    if method == "gradient":
        maps = _adjoint_response(xp, layers, shape, k)
    else:
        maps = _mirrored_impulse_response(xp, layers, shape, k)
    return _mean_of_normalised(xp, maps, k)


def _axis_envelope(layers, j: int, N: int):
    """Non-negative upper envelope (length ``N``, circular, output offsets) of axis ``j``'s marginal."""
    env = np.zeros(N)
    env[0] = 1.0
    w_grid = 2.0 * math.pi * np.fft.fftfreq(N)
    for l in layers:
        W = np.abs(to_numpy(l.weight))
        other = tuple(i for i in range(W.ndim) if i != j + 2)
        line = W.sum(axis=other)
        Kj = line.size
        ma = np.zeros(N)
        for idx in range(Kj):
            ma[(-(idx - (Kj - 1) // 2) * l.dilation) % N] += line[idx]  # output offset of tap idx
        lay = ma
        if l.taps is not None:
            f = to_numpy(l.taps)[:, j]  # (C, Q, 3)
            e = l.ar_dilation
            A = np.ones((f.shape[0], N), dtype=complex)
            for q in range(f.shape[1]):
                fm, f0, fp = (f[:, q, i][:, None] for i in range(3))
                A = A * (f0 + fp * np.exp(-1j * w_grid * e) + fm * np.exp(1j * w_grid * e))
            h = np.abs(np.fft.ifft(1.0 / A, axis=-1).real).max(axis=0)
            lay = np.fft.ifft(np.fft.fft(lay) * np.fft.fft(h)).real
        env = np.fft.ifft(np.fft.fft(env) * np.fft.fft(lay)).real
        env = np.maximum(env, 0.0)
    return env


def required_size(layers, tol: float = 1e-6, *, minimum: int = 1) -> tuple[int, ...]:
    """Smallest odd size per axis at which a centred ERF map is (almost) not truncated.

    The size rule: for each axis take the non-negative envelope of the network's response along
    it - the composition over layers of ``sum |W|`` (marginal of the MA kernel) and
    ``max_c |h_c|`` (inverse response of the most slowly decaying channel's AR factors), which
    bounds the true marginal pointwise and equals it for one-channel networks with non-negative
    responses (uniform MA, taps ``<= 0``). Find the smallest ``H`` with
    ``sum_{|n| > H} (1 + (n - mu)^2) env(n) <= tol * sum_n (1 + (n - mu)^2) env(n)`` (``mu`` the
    envelope's mean: the tail's share of the mass and of the variance), and return ``2 H + 1``.
    Cutting that tail changes the variance by about ``tol`` relative, the radius by about
    ``tol / 2``. The tails of a stable AR response decay geometrically, so ``H`` is the mean
    offset plus some tens of standard deviations at most.

    Parameters
    ----------
    layers : sequence of :class:`LinearLayer`
    tol : float
        Relative truncation allowed in the envelope's mass and second moment.
    minimum : int
        Lower bound on every returned size (it is made odd).

    Returns
    -------
    tuple of int
        One odd size per spatial axis.

    Examples
    --------
    >>> from arma_core.erf import linear_erf, required_size, uniform_layer
    >>> layers = [uniform_layer(3, 2, taps=(-0.4, 1.0, -0.4))] * 3
    >>> required_size(layers), required_size(layers, minimum=101)
    ((67, 67), (101, 101))
    >>> linear_erf(layers, required_size(layers)).shape
    (67, 67)
    """
    if not (0 < tol < 1):
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    layers, k = _check_layers(layers)
    sizes = []
    for j in range(k):
        N = 1024
        while True:
            env = _axis_envelope(layers, j, N)
            n = np.fft.fftfreq(N, 1.0 / N)
            far = np.abs(n) > N // 4
            if env[far].sum() <= 1e-3 * tol * env.sum() or N >= 2**22:
                break
            N *= 2
        mu = float(np.sum(n * env) / np.sum(env))
        wgt = (1.0 + (n - mu) ** 2) * env
        order = np.argsort(np.abs(n), kind="stable")
        absn = np.abs(n)[order]
        inside = np.cumsum(wgt[order])
        total = inside[-1]
        # last index of each |n| group, then the first H whose outside weight is small enough
        ok = (total - inside) <= tol * total
        last_of_group = np.r_[absn[1:] != absn[:-1], True]
        H = int(absn[np.argmax(ok & last_of_group)])
        size = max(2 * H + 1, int(minimum))
        sizes.append(size + 1 - size % 2)
    return tuple(sizes)

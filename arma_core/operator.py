"""The AR operator ``A`` as an object (:class:`ARFilter`) and the four array functions
(:func:`ar_solve`, :func:`ar_solve_adjoint`, :func:`ar_apply`, :func:`ar_apply_adjoint`),
which are thin wrappers around it.

One call's path: the filter validates the taps once (shape, dtype, finiteness, stability for
the boundary); each :meth:`ARFilter.solve` / :meth:`ARFilter.apply` validates the signal
(namespace, dtype promotion, layout of ``axes`` and channels, finiteness), asks
:func:`arma_core.capabilities.resolve` for the row of the table that runs it, and calls that
row's kernel once on the signal in the standard layout ``(..., C, n_1, ..., n_k)``. A filter
keeps each kernel's taps-dependent precomputation (the line solver's per-channel operators,
the FFT denominator, the dense inverses) between calls, so a filter applied to many batches
pays for it once.
"""

from __future__ import annotations

import functools
import operator as _op
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ._array import concrete, device_kind, device_of, to_numpy
from ._nonfinite import axis_kinds, reach
from ._typing import Boundary, Method
from ._validate import (
    check_boundary,
    check_finite,
    check_finite_values,
    check_positive_int,
    check_taps,
    finite_size,
    isdtype,
    namespace,
    promote_signal,
    raise_nonfinite,
)
from .capabilities import METHODS, resolve
from .filters import check_stable_validated, host_taps_facts, inside_strip, reparameterize

__all__ = ["ARFilter", "ar_solve", "ar_solve_adjoint", "ar_apply", "ar_apply_adjoint"]


# ---------------------------------------------------------------------------------------------
# layout: where the spatial and channel axes of a signal are


class _Layout(NamedTuple):
    """How a signal maps to the standard layout ``(..., C, n_1, ..., n_k)`` and back."""

    perm: tuple[int, ...] | None  # axes of the signal in standard order (None: already)
    insert: bool  # the standard layout has an inserted channel axis of size 1 (broadcast taps)
    k: int
    empty: bool
    standard: tuple  # the signal's shape in the standard layout

    def to_standard(self, xp, x):
        if self.perm is not None:
            x = xp.permute_dims(x, self.perm)
        return xp.expand_dims(x, axis=-self.k - 1) if self.insert else x

    def from_standard(self, xp, y):
        if self.insert:
            y = xp.squeeze(y, axis=-self.k - 1)
        if self.perm is not None:
            y = xp.permute_dims(y, tuple(int(i) for i in np.argsort(self.perm)))
        return y


def _axis_index(a: Any, nd: int, name: str) -> int:
    try:
        i = _op.index(a)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {a!r}") from None
    if not -nd <= i < nd:
        raise ValueError(f"{name}={a!r} is out of range for an array with {nd} dimension(s)")
    return i % nd


def _spatial_axes(shape, k: int, axes, name: str) -> list[int]:
    nd = len(shape)
    if axes is None:
        if nd < k:
            raise ValueError(
                f"{name} must have at least {k} dimension(s) for taps with k={k} spatial axes, got shape {tuple(shape)}"
            )
        return list(range(nd - k, nd))
    sp = [_axis_index(a, nd, "axes") for a in axes]
    if len(set(sp)) != len(sp):
        raise ValueError(f"axes={tuple(axes)!r} repeats an axis")
    return sp


def _channel(shape, sp, C: int, axes, channel_axis, name: str) -> int | None:
    """The signal's channel axis, or None when the taps (one channel) broadcast over all."""
    nd = len(shape)
    if channel_axis is not None:
        ch = _axis_index(channel_axis, nd, "channel_axis")
        if ch in sp:
            raise ValueError(f"channel_axis={channel_axis!r} is one of the filtered axes {tuple(sp)}")
    elif C == 1:
        return None
    elif axes is None:
        ch = nd - len(sp) - 1
        if ch < 0:
            raise ValueError(
                f"{name} must have shape (..., C, n_1, ..., n_{len(sp)}) for taps with C={C} "
                f"channels and k={len(sp)} spatial axes, got {nd} dimension(s) {tuple(shape)} "
                "(taps with one channel filter a signal of any shape)"
            )
    else:
        rest = [a for a in range(nd) if a not in sp]
        if not rest:
            raise ValueError(
                f"{name} of shape {tuple(shape)} has no axis left for the taps' "
                f"C={C} channels besides axes={tuple(axes)!r}"
            )
        ch = rest[-1]
    if C == 1:
        return None
    if shape[ch] != C:
        raise ValueError(f"{name} has {shape[ch]} channels at axis {ch} (shape {tuple(shape)}) but taps has C={C}")
    return ch


def _layout(
    shape, k: int, C: int, axes, channel_axis, name: str, boundary: str, dilation: int, dilation_name: str
) -> _Layout:
    nd = len(shape)
    if axes is None and channel_axis is None and nd > k and (C == 1 or shape[nd - k - 1] == C):
        # the standard layout itself (the common case): nothing to move
        sp, ch = list(range(nd - k, nd)), (nd - k - 1 if C != 1 else None)
    else:
        sp = _spatial_axes(shape, k, axes, name)
        ch = _channel(shape, sp, C, axes, channel_axis, name)
    for j, a in enumerate(sp):
        n = finite_size(shape[a], name, j)
        if boundary == "reflect" and n <= dilation:
            raise ValueError(
                f"{name}'s spatial axis {j} (axis {a}) has size {n}, but "
                f"boundary='reflect' with {dilation_name}={dilation} needs at "
                f"least {dilation + 1} samples"
            )
    order = [a for a in range(nd) if a not in sp and a != ch] + ([ch] if ch is not None else []) + sp
    perm = None if order == list(range(nd)) else tuple(order)
    standard = tuple(shape[a] for a in order)
    if ch is None:
        standard = standard[: len(standard) - k] + (1,) + standard[len(standard) - k :]
    return _Layout(perm, ch is None, k, any(s == 0 for s in shape), standard)


#: layouts are the same for every filter with the same options (a new filter per call, e.g.
#: new taps every call, meets the same few signal shapes)
_kept_layout = functools.lru_cache(maxsize=256)(_layout)


_DTYPE_NAMES: dict = {}


def _dtype_name(xp, dtype) -> str:
    try:
        return _DTYPE_NAMES[(xp, dtype)]
    except (KeyError, TypeError):
        pass
    name = next((n for n in ("float32", "float64", "float16") if getattr(xp, n, None) == dtype), str(dtype))
    try:
        _DTYPE_NAMES[(xp, dtype)] = name
    except TypeError:  # an unhashable dtype
        pass
    return name


# ---------------------------------------------------------------------------------------------
# the operator


class ARFilter:
    """The separable AR operator ``A`` of the paper's Eq. 5b / 7 as an object.

    ``A`` acts along ``k`` spatial axes; along each it is the product of ``Q`` length-3 factors
    ``(A y)_i = f_-1 y[i+d] + f_0 y[i] + f_1 y[i-d]``. :meth:`apply` computes ``A y``,
    :meth:`solve` solves ``A y = t``; ``.T`` is the transposed operator (``A^T``). The taps are
    validated once, here; each kernel's taps-dependent precomputation is kept between calls
    (and shared with ``.T``). The taps are read at construction: change them and build a new
    filter.

    Parameters
    ----------
    taps : array, shape ``(C, k, Q, 3)``
        Factors ``(f_-1, f_0, f_1)`` per channel, spatial axis and factor, real floating. With
        ``C = 1`` the filter applies to every channel (to every slice of a signal of any shape).
    boundary : {"circular", "zeros", "reflect", "replicate"}
        What ``y[i +- d]`` means outside an axis: ``numpy.pad`` modes ``"wrap"``,
        ``"constant"`` (0), ``"reflect"`` and ``"edge"``; ``scipy.ndimage`` modes
        ``"grid-wrap"``, ``"grid-constant"`` (cval 0), ``"mirror"`` and ``"nearest"``.
    dilation : int
        The AR dilation ``d``.
    axes : sequence of k ints, optional
        The signal's axes the filter acts along, in the order of the taps' axis 1; default the
        last ``k``.
    channel_axis : int, optional
        The signal's channel axis (only used with ``C > 1``); default the axis before the
        spatial ones when ``axes`` is not given, else the last axis not in ``axes``.
    method : {"auto", "fft", "dense", "lines"}
        How :meth:`solve` solves (:mod:`arma_core.capabilities`: ``docs/backends.md``).
    check_stability : bool
        Reject taps that cannot be solved stably with ``boundary`` (:func:`arma_core.is_stable`);
        ``False`` is for experiments with unconstrained taps (the solve then divides by
        whatever the response is).
    check_finite : bool
        Reject NaN and inf in the taps and, by default, in the signals (``ValueError`` naming
        the argument). With ``False`` nothing is checked and a non-finite signal sample makes
        exactly the output samples that depend on it NaN (costs a few elementwise passes).

    Attributes
    ----------
    taps, boundary, dilation, axes, channel_axis, method
        As given.
    channels, ndim, order : int
        ``C``, ``k`` and ``Q``.
    dtype, device
        The taps'.
    T : ARFilter
        The transposed operator.

    Examples
    --------
    >>> import numpy as np
    >>> from arma_core import ARFilter
    >>> taps = np.array([0.3, 1.0, -0.4]).reshape(1, 1, 1, 3)   # one factor, one axis
    >>> A = ARFilter(taps, boundary="zeros")
    >>> y = np.random.default_rng(0).normal(size=(4, 32))
    >>> np.allclose(A.solve(A.apply(y)), y)
    True
    >>> z = np.random.default_rng(1).normal(size=(4, 32))
    >>> np.isclose(np.sum(A.apply(y) * z), np.sum(y * A.T.apply(z)))   # <A y, z> = <y, A^T z>
    True
    """

    def __init__(
        self,
        taps,
        *,
        boundary: Boundary = "circular",
        dilation: int = 1,
        axes: Sequence[int] | None = None,
        channel_axis: int | None = None,
        method: Method = "auto",
        check_stability: bool = True,
        check_finite: bool = True,
        _names: tuple[str, str] = ("t", "dilation"),
        _contain: bool = True,
    ):
        # small taps of a lazy library are computed once, here (the signal stays lazy)
        if type(taps) is not np.ndarray:
            taps = concrete(taps)
        self._xp = namespace(taps, names=("taps",))
        self.boundary = check_boundary(boundary)
        self._names = _names
        self.dilation = check_positive_int(dilation, _names[1])
        check_taps(self._xp, taps, finite=False)
        # the checks of the values run on a host copy in the taps' own dtype (the same
        # comparisons as on the device, one transfer instead of a round trip per operation)
        host = to_numpy(taps, dtype=None) if check_finite or check_stability else None
        facts = None
        if host is not None:
            facts = host_taps_facts(host)  # (finite, in_strip) in one compiled pass, or None
            if facts is None:
                check_finite_values(np, host, "taps")
            elif not facts[0]:
                raise_nonfinite("taps")
        if method not in METHODS["solve"]:
            raise ValueError(f"method={method!r} is not one of {', '.join(repr(m) for m in METHODS['solve'])}")
        k = taps.shape[1]
        axes_t: tuple[Any, ...] | None = None
        if axes is not None:
            axes_t = tuple(axes) if isinstance(axes, (list, tuple)) else (axes,)
            if len(axes_t) != k:
                raise ValueError(
                    f"axes={axes_t!r} names {len(axes_t)} axes but taps has k={k} spatial axes (taps.shape[1])"
                )
        self.taps, self.axes, self.channel_axis, self.method = taps, axes_t, channel_axis, method
        self.check_stability, self.check_finite = check_stability, check_finite
        # layers neither check nor contain (no host sync, no extra passes): _contain=False
        self._contain = _contain
        self._adjoint = False
        self._cache: dict = {}
        self._state: dict = {}  # host copies of the taps and facts derived from them
        # what a kind of signal decides and does not depend on the taps' values (its layout and
        # signal entries, _call_of): shared with the filters _retap derives from this one
        self._kinds: dict = {}
        self._casts: dict = {}  # the taps in other dtypes
        self._theta = None  # (parameters, region) behind the taps (ARFilter._bind)
        if host is not None:
            self._state["native"] = host
        if (
            host is not None
            and check_stability
            and ((facts is not None and facts[1]) or check_stable_validated(np, host, self.boundary))
        ):
            # every factor in the strip in the taps' dtype (at most float64) is in it in float64
            # as well (there the sum is rounded no coarser, |f_0| is exact): _in_strip's answer
            if host.dtype.itemsize <= 8:
                self._state["strip"] = True

    # -- description

    @property
    def channels(self) -> int:
        return int(self.taps.shape[0])

    @property
    def ndim(self) -> int:
        return int(self.taps.shape[1])

    @property
    def order(self) -> int:
        return int(self.taps.shape[2])

    @property
    def dtype(self):
        return self.taps.dtype

    @property
    def device(self):
        return device_of(self.taps)

    @property
    def T(self) -> ARFilter:
        """The transposed operator ``A^T`` (shares this filter's precomputation)."""
        other = object.__new__(ARFilter)
        other.__dict__.update(self.__dict__)
        other._adjoint = not self._adjoint
        return other

    def __repr__(self) -> str:
        t = ".T" if self._adjoint else ""
        return (
            f"ARFilter(C={self.channels}, k={self.ndim}, Q={self.order}, boundary="
            f"{self.boundary!r}, dilation={self.dilation}, method={self.method!r}){t}"
        )

    # -- the two operations

    def apply(self, y, *, check_finite: bool | None = None, _name: str = "y"):
        """``A y`` (``A^T y`` for ``.T``): the left-hand side of Eq. 5b.

        Parameters
        ----------
        y : array, shape with the filter's spatial axes (and channel axis when ``C > 1``)
            Any numeric dtype (integer signals are promoted to float64, complex ones are
            filtered as two real signals); same library and device as the taps.
        check_finite : bool, optional
            Override the filter's setting for this signal.

        Returns
        -------
        array, shape of ``y``, the promoted dtype, same library and device.
        """
        return self._run(y, False, _name, check_finite)

    def solve(self, t, *, check_finite: bool | None = None, _name: str | None = None):
        """``A^{-1} t`` (``A^{-T} t`` for ``.T``): Eq. 5b solved exactly.

        Parameters and returns as :meth:`apply` (``t`` the right-hand side).
        """
        return self._run(t, True, self._names[0] if _name is None else _name, check_finite)

    # -- internals

    def _host(self) -> np.ndarray:
        """The taps on the host in float64 (for the auto rule's conditions)."""
        h = self._state.get("host")
        if h is None:
            h = self._state["host"] = to_numpy(self.taps)
        return h

    def _host_native(self) -> np.ndarray:
        """The taps on the host in their own dtype."""
        h = self._state.get("native")
        if h is None:
            h = self._state["native"] = to_numpy(self.taps, dtype=None)
        return h

    def _in_strip(self) -> bool:
        strip = self._state.get("strip")
        if strip is None:
            strip = self._state["strip"] = bool(inside_strip(np, self._host().reshape(-1, 3)).all())
        return strip

    def _taps_as(self, dtype):
        if self.taps.dtype == dtype:
            return self.taps
        key = str(dtype)
        if key not in self._casts:
            self._casts[key] = self._xp.astype(self.taps, dtype)
        return self._casts[key]

    def _know_host(self, native: np.ndarray, in_strip: bool) -> None:
        """Give a new filter facts its caller already has: ``native``, the taps on the host in
        their own dtype (the same values as ``self.taps``), and whether every factor is in the
        strip (a layer's reparameterization guarantees it). Saves the host copy and the check
        that the first solve would otherwise make. Not validated: for layers."""
        self._state["native"] = native
        self._state["host"] = native if native.dtype == np.float64 else native.astype(np.float64)
        if in_strip:
            self._state["strip"] = True

    def _retap(self, taps, native: np.ndarray) -> ARFilter:
        """A filter like this one (options, library, dtype, device, shape of the taps) whose
        taps are ``taps``, every factor in the strip, with ``native`` their host values in
        their own dtype. Keeps what does not depend on the taps' values (the layouts, namespaces
        and dtypes of the signals seen); plans, rows and casts start empty. Not validated: for
        layers whose reparameterization guarantees the strip (a new ``theta`` after an optimizer
        step)."""
        other = object.__new__(ARFilter)
        other.__dict__.update(self.__dict__)
        other.taps = taps
        other._adjoint = False
        other._theta = None
        other._cache = {}
        other._casts = {}
        other._state = {}  # self._kinds, which does not depend on the taps' values, is shared
        other._know_host(native, in_strip=True)
        return other

    def _bind(self, taps=None, theta=None) -> ARFilter:
        """This filter, sharing its precomputation, with ``taps`` in place of its own (the same
        values as another tensor, e.g. a node of an autograd graph) or with ``theta =
        (parameters, region)`` whose :func:`arma_core.reparameterize` its taps are: a solve then
        differentiates w.r.t. the parameters in one node (the torch kernels' ``theta``). Not
        validated: for layers that build their filters themselves."""
        other = object.__new__(ARFilter)
        other.__dict__.update(self.__dict__)
        if taps is not None:
            other.taps = taps
            other._casts = {}
        other._theta = theta
        return other

    def _run(self, x, solve: bool, name: str, check: bool | None):
        xp, dtype, real, lay, cap, kernel = self._call_of(x, solve, name)
        if lay.empty:
            return xp.zeros(x.shape, dtype=dtype, device=device_of(x))
        check = self.check_finite if check is None else check
        if check and not cap.lazy:
            check_finite(xp, x, name)
        taps = self._taps_as(real)
        opts = dict(boundary=self.boundary, dilation=self.dilation, adjoint=self._adjoint, cache=self._cache)
        if self._theta is not None:
            if solve and real == taps.dtype == self._theta[0].dtype:
                opts["theta"] = self._theta
            else:  # through the generic map, differentiable in any library
                theta, region = self._theta
                taps = self._xp.astype(reparameterize(theta, region), real)
        if cap.lazy:  # the values exist only when the graph runs: the check goes into it
            opts.update(check_finite=check, name=name)
        v = lay.to_standard(xp, x)
        work = dtype if isdtype(xp, dtype, "complex floating") else real
        if v.dtype != work:
            v = xp.astype(v, work)
        if solve and not check and self._contain:
            y = self._contained(xp, kernel, v, taps, opts)
        elif work != real:
            y = (
                xp.astype(kernel(xp, xp.real(v), taps, **opts), work)
                + xp.astype(kernel(xp, xp.imag(v), taps, **opts), work) * 1j
            )
        else:
            y = kernel(xp, v, taps, **opts)
        if y.dtype != dtype:
            y = xp.astype(y, dtype)
        return lay.from_standard(xp, y)

    def _shortcut(self, x, name: str | None = None):
        """:meth:`solve` of signals like ``x`` (its library, dtype, device and shape) as one
        callable ``run(x, own=False) -> y`` made by the kernel's backend (the kernel's ``shortcut``
        attribute, :func:`arma_core.backends.torch.lines_kernel`'s), or None where there is none:
        the same kernel and results without this method's steps, for a caller that keeps it
        while the filter and the kind of signal stay the same (the torch layers, from one
        optimizer step to the next). Only for a filter bound to ``theta`` whose signal needs no
        layout change, dtype change, check or containment."""
        name = self._names[0] if name is None else name
        xp, dtype, real, lay, cap, kernel = self._call_of(x, True, name)
        make = getattr(kernel, "shortcut", None)
        if make is None or self._theta is None or lay.empty or lay.perm is not None or lay.insert:
            return None
        if self._contain or self.check_finite:
            return None
        taps = self._taps_as(real)
        if not (dtype == real == x.dtype == taps.dtype == self._theta[0].dtype):
            return None
        opts = dict(boundary=self.boundary, dilation=self.dilation, adjoint=self._adjoint, cache=self._cache)
        return make(x, taps, theta=self._theta, **opts)

    def _call_of(self, x, solve: bool, name: str) -> tuple:
        """What a signal's library, dtype, device and shape decide about a call: its namespace,
        result dtype, kernel dtype, layout, capability row and kernel (the checks that raise
        for them run here). Kept per those: a layer calls its filter with the same kind of
        tensor every step, and these steps cost more than a small solve. The row depends on the
        taps too: a filter with new taps (``_retap``) keeps the rest (the ``"signal"`` entries)
        and resolves the row."""
        try:
            key: tuple | None = (type(x), x.dtype, device_of(x), tuple(x.shape), name)
            call = self._state.get(("call", solve, key))
        except (TypeError, AttributeError, ValueError):  # not an array (namespace() says so) or unhashable
            key, call = None, None
        if call is not None:
            return call
        signal = self._kinds.get(("signal", key)) if key is not None else None
        if signal is None:
            xp = namespace(x, self.taps, names=(name, "taps"), numpy_with_dask=True)
            dev = device_of(x)
            if type(x) is not np.ndarray and self._xp is xp and dev != device_of(self.taps):
                raise ValueError(f"{name} is on {dev} but taps is on {device_of(self.taps)}; move one of them")
            dtype, real = promote_signal(xp, x, self.taps.dtype, name)
            signal = (xp, dtype, real, self._layout_of(tuple(x.shape), name), device_kind(x))
            if key is not None:
                self._kinds[("signal", key)] = signal
        xp, dtype, real, lay, kind = signal
        cap = None if lay.empty else self._row(xp, real, lay, solve, kind)
        call = (xp, dtype, real, lay, cap, None if cap is None else cap.load())
        if key is not None:
            self._state[("call", solve, key)] = call
        return call

    def _layout_of(self, shape: tuple, name: str) -> _Layout:
        """:func:`_layout` of a signal shape, kept per shape (the filter's options are fixed)."""
        key = ("layout", shape, name)
        lay = self._kinds.get(key)
        if lay is None:
            args = (shape, self.ndim, self.channels, self.axes, self.channel_axis, name, self.boundary)
            try:
                lay = _kept_layout(*args, self.dilation, self._names[1])
            except TypeError:  # an unhashable axis argument: not kept across filters
                lay = _layout(*args, self.dilation, self._names[1])
            self._kinds[key] = lay
        return lay

    def _row(self, xp, real, lay: _Layout, solve: bool, device: str):
        """The capability row of a call on ``device`` (:func:`device_kind`), kept per library,
        dtype, device and layout (the rule depends on nothing else once the taps are fixed)."""
        key: tuple | None = ("row", solve, xp, real, device, lay)
        try:
            cap = self._state.get(key)
        except TypeError:  # an unhashable dtype: no memo
            key, cap = None, None
        if cap is None:
            if solve:
                cap = self._resolve_solve(xp, real, lay, device)
            else:
                cap = resolve("apply", xp, boundary=self.boundary, dtype=_dtype_name(xp, real), device=device)
            if key is not None:
                self._state[key] = cap
        return cap

    def _resolve_solve(self, xp, real, lay, device):
        cap = resolve(
            "solve",
            xp,
            method=self.method,
            boundary=self.boundary,
            dtype=_dtype_name(xp, real),
            device=device,
            shape=lay.standard,
            taps=self._host,
        )
        if cap.strip_only and not self._in_strip():
            raise ValueError(
                f"method={cap.method!r} needs every factor in the strip "
                "|f_-1 + f_1| < |f_0|; these taps are stable only for the circular "
                "boundary: use method='fft' or 'dense'"
            )
        return cap

    def _contained(self, xp, kernel, v, taps, opts):
        """The solve with non-finite samples contained to their support (``_nonfinite``)."""
        bad = ~xp.isfinite(v)
        # a NumPy signal without non-finite samples (the common case) skips the containment
        # passes, which cost several times the solve on small signals; elsewhere asking would
        # be a device sync
        clean_already = type(v) is np.ndarray and not bad.any()
        clean = v if clean_already else xp.where(bad, xp.zeros_like(v), v)
        if xp.isdtype(v.dtype, "complex floating"):
            y = (
                xp.astype(kernel(xp, xp.real(clean), taps, **opts), v.dtype)
                + xp.astype(kernel(xp, xp.imag(clean), taps, **opts), v.dtype) * 1j
            )
        else:
            y = kernel(xp, clean, taps, **opts)
        if clean_already:
            return y
        kinds = axis_kinds(self._host(), self.boundary)
        reached = reach(xp, bad, kinds, self.dilation, self.boundary)
        return xp.where(reached, xp.full_like(y, float("nan")), y)


# ---------------------------------------------------------------------------------------------
# the array functions


# -- the functional API's kept filters

#: Filters the functional API (:func:`ar_solve`, :func:`ar_apply`, their adjoints,
#: :func:`arma_core.arma`) keeps for small NumPy taps, keyed by the taps' dtype, shape and bytes
#: and the other arguments: solving many signals with the same coefficients (``lfilter(b, a,
#: x)`` in a loop) then pays the argument and stability checks and the solver's plan once,
#: as a kept :class:`ARFilter` does. A filter is kept from the second call with the same key
#: (taps seen once cost only the key), and keeps its own copy of the taps, so changing the
#: caller's array in place cannot change a kept filter.
_KEPT: OrderedDict = OrderedDict()
_SEEN: OrderedDict = OrderedDict()  # keys met once (bounded like _KEPT)
#: what kinds of signals decide (ARFilter._kinds: layouts, namespaces, dtypes), shared by the
#: functional API's filters of the same taps dtype, shape and options, whatever their values:
#: a call with new taps then pays the checks of its taps but not those of its signal again
#: (bounded like _KEPT; a shared dict stops being shared when it holds _KINDS_MAX entries)
_KINDS: OrderedDict = OrderedDict()
_KINDS_MAX = 256
_KEPT_LOCK = threading.Lock()
_KEPT_MAX = 32  # filters kept (least recently used dropped first)
_KEPT_NBYTES = 4096  # larger taps are rare and cheap to check next to their signal: not kept


def _bounded_put(d: OrderedDict, key, value) -> None:
    d[key] = value
    while len(d) > _KEPT_MAX:
        d.popitem(last=False)


def _filter(taps, **kwargs) -> ARFilter:
    """The :class:`ARFilter` of ``ARFilter(taps, **kwargs)``: a kept one for small NumPy taps.

    Only ``numpy.ndarray`` taps are kept (host memory, no autograd graph or device to hold on
    to); everything else builds a new filter. Errors are those of :class:`ARFilter` (a filter
    that raised is not kept, so the same call raises again).
    """
    if type(taps) is not np.ndarray or taps.nbytes > _KEPT_NBYTES:
        return ARFilter(taps, **kwargs)
    # the dtype itself (equal only with the same byte order) costs less than its name; the
    # keywords in the order of the calling function (each caller passes one order)
    options = (taps.dtype, taps.shape, *kwargs.items())
    key = (taps.tobytes(), *options)
    try:
        with _KEPT_LOCK:
            f = _KEPT.get(key)
            if f is not None:
                _KEPT.move_to_end(key)
                return f
            again = _SEEN.pop(key, False)
            if not again:
                _bounded_put(_SEEN, key, True)
    except TypeError:  # an unhashable argument (e.g. axes given as a list): nothing to key on
        return ARFilter(taps, **kwargs)
    f = ARFilter(np.array(taps, copy=True) if again else taps, **kwargs)
    with _KEPT_LOCK:
        kinds = _KINDS.get(options)
        if kinds is not None and len(kinds) < _KINDS_MAX:
            f._kinds = kinds
        else:
            _bounded_put(_KINDS, options, f._kinds)
        if again:
            _bounded_put(_KEPT, key, f)
    return f


def ar_solve(
    t,
    taps,
    *,
    boundary: Boundary = "circular",
    dilation: int = 1,
    method: Method = "auto",
    axes: Sequence[int] | None = None,
    channel_axis: int | None = None,
    check_finite: bool = True,
    check_stability: bool = True,
):
    """Solve the AR layer ``A * y = t`` exactly (the paper's Eq. 5b with Eq. 7's separable ``A``).

    Parameters
    ----------
    t : array, shape ``(..., C, n_1, ..., n_k)`` (default layout; see ``axes``)
        Right-hand side (the MA layer's output). Any numeric dtype: it is promoted with the
        taps (float32 with float64 gives float64; integers give float64 as in
        ``scipy.signal.lfilter``; complex signals are filtered as two real signals).
    taps : array, shape ``(C, k, Q, 3)``
        Stable length-3 factors ``(f_-1, f_0, f_1)`` (Theorem 6: ``|f_-1 + f_1| < |f_0|``; for
        ``boundary="circular"`` a nonzero response on the unit circle suffices), same library
        and device as ``t``; from :func:`arma_core.reparameterize`, or
        :func:`arma_core.taps_from_lfilter` / :func:`arma_core.taps_from_kernel`. ``C = 1``
        filters every channel (a signal of any shape).
    boundary : {"circular", "zeros", "reflect", "replicate"}
        Meaning of ``y[i +- d]`` outside an axis: ``numpy.pad``'s ``"wrap"``, ``"constant"``,
        ``"reflect"``, ``"edge"``; ``scipy.ndimage``'s ``"grid-wrap"``, ``"grid-constant"``,
        ``"mirror"``, ``"nearest"``. ``reflect`` needs ``n > dilation``.
    dilation : int
        AR dilation ``d`` (numpy integers accepted).
    method : {"auto", "fft", "dense", "lines"}
        ``fft`` is exact for ``circular`` only; ``dense`` for every boundary; ``lines`` (the
        compiled line solver, numpy and torch CPU arrays, needs the C extension built by the
        install step) for every boundary;
        ``auto`` picks the fastest exact one (``docs/backends.md``).
    axes : sequence of k ints, optional
        The axes to filter along (default the last ``k``): ``axes=(0,)`` filters an
        ``(n, channels)`` array down its columns, like ``lfilter(..., axis=0)``.
    channel_axis : int, optional
        The channel axis for taps with ``C > 1`` (default: before the spatial axes, or the
        last axis not in ``axes``).
    check_finite : bool
        Raise ``ValueError`` for NaN or inf in ``t`` or ``taps`` (default, as ``scipy.linalg``
        does). ``False``: no check, and a non-finite sample makes NaN exactly the outputs that
        depend on it (its causal future for a causal filter with ``zeros``).
    check_stability : bool
        ``False`` skips the stability check (experiments with unconstrained taps only).

    Returns
    -------
    y : array, the shape of ``t``, the promoted dtype, same library and device.

    Raises
    ------
    UnstableFilterError
        Taps that cannot be solved stably (naming channel, axis and factor).
    ValueError, TypeError
        Bad shapes, dtypes, boundary, method, axes, non-finite values, or an axis too short
        for the dilation (each message names the argument).

    Notes
    -----
    Sign convention: along one axis with ``boundary="zeros"``, taps ``(0, a[0], a[1])`` give
    ``scipy.signal.lfilter([1], [a[0], a[1]], t)`` (``f_1`` multiplies ``y[i - d]``; ``f_-1``
    multiplies ``y[i + d]``, the anti-causal side lfilter does not have).
    On torch tensors the solve is differentiable w.r.t. ``t`` and ``taps`` with the backward of
    Theorem 4 (Eq. 6), saving only ``y``.
    Small NumPy taps met a second time reuse the checked filter and its plans (kept by
    content, at most 32): a loop over many signals with the same coefficients costs about a
    third of a new filter per call. For other arrays, keep an :class:`ARFilter` yourself.

    Examples
    --------
    >>> import numpy as np, scipy.signal
    >>> import arma_core as ac
    >>> x = np.random.default_rng(0).normal(size=(3, 100))
    >>> taps = np.array([0.0, 1.0, -0.5]).reshape(1, 1, 1, 3)
    >>> np.allclose(ac.ar_solve(x, taps, boundary="zeros"), scipy.signal.lfilter([1], [1, -0.5], x))
    True
    >>> np.allclose(ac.ar_solve(x.T, taps, boundary="zeros", axes=(0,)),
    ...             scipy.signal.lfilter([1], [1, -0.5], x.T, axis=0))
    True
    """
    f = _filter(
        taps,
        boundary=boundary,
        dilation=dilation,
        axes=axes,
        channel_axis=channel_axis,
        method=method,
        check_stability=check_stability,
        check_finite=check_finite,
    )
    return f.solve(t)


def ar_solve_adjoint(
    t,
    taps,
    *,
    boundary: Boundary = "circular",
    dilation: int = 1,
    method: Method = "auto",
    axes: Sequence[int] | None = None,
    channel_axis: int | None = None,
    check_finite: bool = True,
    check_stability: bool = True,
):
    """Solve the transposed system ``A^T * y = t`` (Eq. 6b: ``dL/dT = A^{-T} dL/dY``).

    Same parameters, shapes and errors as :func:`ar_solve`.

    Examples
    --------
    >>> import numpy as np
    >>> import arma_core as ac
    >>> taps = np.array([0.2, 1.0, -0.3]).reshape(1, 1, 1, 3)
    >>> t = np.arange(8.0)
    >>> y = ac.ar_solve_adjoint(t, taps, boundary="reflect")
    >>> np.allclose(ac.ar_apply_adjoint(y, taps, boundary="reflect"), t)
    True
    """
    f = _filter(
        taps,
        boundary=boundary,
        dilation=dilation,
        axes=axes,
        channel_axis=channel_axis,
        method=method,
        check_stability=check_stability,
        check_finite=check_finite,
    )
    return f.T.solve(t)


def ar_apply(
    y,
    taps,
    *,
    boundary: Boundary = "circular",
    dilation: int = 1,
    axes: Sequence[int] | None = None,
    channel_axis: int | None = None,
    check_finite: bool = True,
):
    """Apply the AR operator: ``t = A * y`` (the left-hand side of the paper's Eq. 5b / Eq. 7).

    Parameters
    ----------
    y : array, shape ``(..., C, n_1, ..., n_k)`` (default layout)
        Any numeric dtype (promoted as in :func:`ar_solve`).
    taps : array, shape ``(C, k, Q, 3)``
        Any finite factors (no stability needed to apply them); ``C = 1`` broadcasts.
    boundary, dilation, axes, channel_axis, check_finite
        As :func:`ar_solve` (a non-finite sample reaches only its stencil here).

    Returns
    -------
    t : array, the shape of ``y``, the promoted dtype, same library and device.

    Examples
    --------
    >>> import numpy as np
    >>> import arma_core as ac
    >>> taps = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)   # 1*y[i+1] + 2*y[i] + 3*y[i-1]
    >>> ac.ar_apply(np.array([0.0, 1.0, 0.0, 0.0]), taps, boundary="zeros")
    array([1., 2., 3., 0.])
    """
    f = _filter(
        taps,
        boundary=boundary,
        dilation=dilation,
        axes=axes,
        channel_axis=channel_axis,
        check_stability=False,
        check_finite=check_finite,
    )
    return f.apply(y)


def ar_apply_adjoint(
    z,
    taps,
    *,
    boundary: Boundary = "circular",
    dilation: int = 1,
    axes: Sequence[int] | None = None,
    channel_axis: int | None = None,
    check_finite: bool = True,
):
    """Apply the transposed operator ``A^T z`` (used by Theorem 4's backward, Eq. 6).

    Same parameters and shapes as :func:`ar_apply`. For ``circular`` this is the filter with
    ``f_-1`` and ``f_1`` swapped; for the other boundaries the edge rows differ and the
    transpose is applied exactly as a scatter-add.

    Examples
    --------
    >>> import numpy as np
    >>> import arma_core as ac
    >>> taps = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    >>> ac.ar_apply_adjoint(np.array([0.0, 1.0, 0.0, 0.0]), taps, boundary="circular")
    array([3., 2., 1., 0.])
    """
    f = _filter(
        taps,
        boundary=boundary,
        dilation=dilation,
        axes=axes,
        channel_axis=channel_axis,
        check_stability=False,
        check_finite=check_finite,
    )
    return f.T.apply(z, _name="z")

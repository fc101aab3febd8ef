"""ARMA layers for PyTorch: ``AR{1,2,3}d`` and ``ARMA{1,2,3}d``, drop-ins for ``nn.Conv{1,2,3}d``.

An ARMA layer (paper Definition 5) is a convolution, the moving-average (MA) part, followed by an
autoregressive (AR) filter that is *solved*: its output ``y`` is the unique solution of
``A * y = conv(x)`` (Eq. 5), so every output sample sees the whole input. ``A`` is separable:
along each spatial axis it is a product of ``Q`` length-3 factors ``(f_-1, f_0 = 1, f_1)``
acting as ``(A y)_i = f_-1 y[i+d] + f_0 y[i] + f_1 y[i-d]`` (``d`` = AR dilation).

The learnable AR parameters ``theta`` of shape ``(C, k, Q, 2)`` (channel, spatial axis, factor,
2 numbers) are unconstrained; :func:`arma_core.reparameterize` maps them to taps inside a stable
region (paper Theorems 6 and 7, corrected as described in ``docs/math.md``), so no learning rate
can make the layer unstable. ``theta = 0`` is the identity filter.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple, cast

import array_api_compat
import torch
from torch import nn

import arma_core
from arma_core._typing import BOUNDARIES, Boundary
from arma_core.backends.torch import jacobian_key
from arma_core.filters import reparameterize_host, reparameterize_values

__all__ = [
    "AR1d",
    "AR2d",
    "AR3d",
    "ARMA1d",
    "ARMA2d",
    "ARMA3d",
    "REGIONS",
    "radius_from_init",
    "init_from_radius",
]

#: AR parameterizations a module accepts. "raw" is for experiments only (see :class:`AR2d`).
REGIONS = ("strip", "diamond", "raw")

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_AXES = {1: "L", 2: "H, W", 3: "D, H, W"}


# --------------------------------------------------------------------------------------------
# ar_init <-> receptive-field radius
# --------------------------------------------------------------------------------------------


def _check_init(init) -> float:
    if isinstance(init, bool) or not isinstance(init, numbers.Real):
        raise TypeError(f"init must be a real number in [0, 1), got {init!r}")
    init = float(init)
    if not (0.0 <= init < 1.0):
        raise ValueError(
            f"init={init!r} is outside [0, 1): the AR factors (-init/2, 1, -init/2) are stable "
            "only for init < 1 (Theorem 6: |f_-1 + f_1| < f_0), and init = 0 is the identity"
        )
    return init


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def radius_from_init(init: float, ndim: int = 2, order: int = 1, dilation: int = 1) -> float:
    """Receptive-field radius (pixels) of one AR filter initialised with ``init``.

    Every factor starts as ``(f_-1, f_0, f_1) = (-a/2, 1, -a/2)`` with ``a = init``. Its inverse
    (the AR filter's impulse response along one axis) is non-negative with variance
    ``a / (1 - a)`` (the two-sided counterpart of Theorem 3's ``a / (1 - a)^2`` for the causal
    filter ``{1, -a}``). Variances add over the ``order`` factors of an axis and scale with
    ``dilation**2``; as in Theorem 3 (Eq. 4) the squared radius is the sum over the ``ndim``
    axes of the per-axis variances::

        r^2 = ndim * order * dilation^2 * a / (1 - a)

    For a network, add this ``r^2`` to the MA part's and the other layers' (Theorem 3 adds
    ``d^2 (K^2 - 1) / 12`` per axis and layer for a uniform K-tap convolution).

    Parameters
    ----------
    init : float in [0, 1)
    ndim : int
        Number of spatial axes (1, 2 or 3).
    order : int
        Factors per axis (``Q``).
    dilation : int
        AR dilation.

    Returns
    -------
    float
        ``r``; 0 for ``init = 0`` and unbounded as ``init -> 1``.

    Examples
    --------
    >>> from arma_core.nn import radius_from_init
    >>> radius_from_init(0.8)                          # sqrt(2 * 0.8 / 0.2)
    2.8284271247461903
    >>> radius_from_init(0.5, ndim=3, order=2)         # sqrt(3 * 2 * 0.5 / 0.5)
    2.449489742783178
    """
    a = _check_init(init)
    ndim = _check_count(ndim, "ndim", 1)
    order = _check_count(order, "order", 1)
    dilation = _check_count(dilation, "dilation", 1)
    return math.sqrt(ndim * order * dilation**2 * a / (1.0 - a))


def init_from_radius(radius: float, ndim: int = 2, order: int = 1, dilation: int = 1) -> float:
    """The ``ar_init`` whose AR filter has receptive-field radius ``radius`` (pixels).

    Inverse of :func:`radius_from_init`: with ``v = radius^2 / (ndim * order * dilation^2)``
    the per-factor variance, ``init = v / (1 + v)``.

    Parameters
    ----------
    radius : float
        Receptive-field radius in pixels, finite and ``>= 0``.
    ndim, order, dilation : int
        As for :func:`radius_from_init`.

    Returns
    -------
    float
        ``init`` in ``[0, 1)``, e.g. for ``ARMA2d(..., ar_init=init)``.

    Examples
    --------
    >>> from arma_core.nn import init_from_radius, radius_from_init
    >>> init = init_from_radius(10.0)                  # v = 100 / 2, init = 50 / 51
    >>> round(init, 6), round(radius_from_init(init), 6)
    (0.980392, 10.0)
    """
    if isinstance(radius, bool) or not isinstance(radius, numbers.Real) or not (0.0 <= float(radius) < math.inf):
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
    ndim = _check_count(ndim, "ndim", 1)
    order = _check_count(order, "order", 1)
    dilation = _check_count(dilation, "dilation", 1)
    v = float(radius) ** 2 / (ndim * order * dilation**2)
    init = v / (1.0 + v)
    if init >= 1.0:  # radius so large that v/(1+v) rounds to 1
        raise ValueError(f"radius={radius!r} is too large to be represented by an init < 1")
    return init


# --------------------------------------------------------------------------------------------
# input checks shared by AR and ARMA modules
# --------------------------------------------------------------------------------------------


def _shape_text(k: int, channel_name: str = "C") -> str:
    return f"(N, {channel_name}, {_AXES[k]}) or ({channel_name}, {_AXES[k]})"


def _check_input(x, module: Any, channels: int, channel_arg: str) -> None:
    """Reject what ``nn.Conv{k}d`` would reject, but with a message in ``module``'s terms (its
    class name; ``k = module._k``). At every call of a layer: the messages are built only when
    they are raised."""
    k = module._k
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{type(module).__name__} expected a torch.Tensor input, got {type(x).__name__}")
    if not x.is_floating_point():  # complex dtypes included
        raise TypeError(
            f"{type(module).__name__} expected a real floating-point input (float32, float64, bfloat16 or "
            f"float16), got dtype {x.dtype}"
        )
    nd = x.ndim
    if nd != k + 2 and nd != k + 1:
        raise ValueError(
            f"{type(module).__name__} expected input of shape {_shape_text(k)} ({k} spatial dimension"
            f"{'s' if k > 1 else ''}), got shape {tuple(x.shape)} with {nd} dimensions"
        )
    c = x.shape[-k - 1]
    if c != channels:
        raise ValueError(
            f"{type(module).__name__} expected input of shape {_shape_text(k)} with C = {channel_arg} = "
            f"{channels} channels, got {c} channels in shape {tuple(x.shape)}"
        )


def _check_ar_size(y, module: Any, dilation: int, what: str, x=None) -> None:
    """Every spatial axis must hold the stencil ``i - d, i, i + d``: at least ``2 d + 1`` samples
    (``k = module._k`` axes; ``x``: the layer's input, whose spatial size the message quotes).

    On shorter axes the three taps alias onto each other (circular: ``i + d = i - d mod n``), so
    the layer would silently compute a different filter; the official code returns its input
    unfiltered in that case. Here it is an error.
    """
    k = module._k
    need = 2 * dilation + 1
    if min(y.shape[-k:]) < need:
        note = "" if x is None else f" (input spatial size {tuple(x.shape[-k:])})"
        raise ValueError(
            f"{type(module).__name__}: {what} has spatial size {tuple(y.shape[-k:])}{note}, but the AR "
            f"filter with dilation={dilation} needs at least 2 * dilation + 1 = {need} samples along "
            "every spatial axis (use a larger input, a smaller AR dilation, or leave this layer a "
            "plain convolution)"
        )


# --------------------------------------------------------------------------------------------
# AR modules
# --------------------------------------------------------------------------------------------


#: theta dtypes whose values a CPU layer compares as bytes through numpy
_HOST_DTYPES = (torch.float32, torch.float64)


class _Shortcuts(NamedTuple):
    """What a layer's kept shortcuts were made for (``_ARNd._solve_short``) and the shortcuts."""

    theta: torch.Tensor  # the parameter object
    ptr: int  # its data pointer
    view: Any  # a numpy view of it, whose bytes are its current values
    values: bytes  # the values the kept filter was made for
    runs: dict  # {(type, shape, dtype, boundary, dilation, region) of the input: shortcut or None}
    stride: tuple  # theta's strides and shape: the same storage may be given another layout
    shape: torch.Size


class _ARNd(nn.Module):
    _k: int = 0

    def __init__(
        self,
        channels: int,
        order: int = 1,
        boundary: Boundary = "circular",
        region: str = "strip",
        dilation: int = 1,
        init: float = 0.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.channels = _check_count(channels, "channels", 1)
        self.order = _check_count(order, "order", 1)
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary={boundary!r} is not one of {', '.join(map(repr, BOUNDARIES))}")
        if region not in REGIONS:
            raise ValueError(f"region={region!r} is not one of {', '.join(map(repr, REGIONS))}")
        self.boundary: Boundary = boundary
        self.region = region
        self.dilation = _check_count(dilation, "dilation", 1)
        self.init = _check_init(init)
        factory = {"device": device, "dtype": dtype}
        if dtype is not None and not torch.empty((), dtype=dtype).is_floating_point():
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        self.theta = nn.Parameter(torch.empty(self.channels, self._k, self.order, 2, **factory))
        self.reset_parameters()

    def __getstate__(self):
        # the kept filter (arma_core.ARFilter holds its array namespace) is rebuilt on demand
        state = dict(super().__getstate__())
        state.pop("_cached_filter", None)
        state.pop("_short", None)
        return state

    def reset_parameters(self) -> None:
        """Set every factor to ``(-init/2, 1, -init/2)`` (identity when ``init = 0``).

        strip / diamond: ``theta = (0, -atanh(init))`` (the sum ``f_-1 + f_1 = -init`` and the
        difference 0); raw: ``theta = (-init/2, -init/2)``, the taps themselves.
        """
        a = self.init
        with torch.no_grad():
            if self.region == "raw":
                self.theta.fill_(-a / 2)
            else:
                self.theta[..., 0].zero_()
                self.theta[..., 1].fill_(-math.atanh(a))

    def taps(self) -> torch.Tensor:
        """The AR taps ``(f_-1, f_0, f_1)``, shape ``(C, k, Q, 3)``, differentiable in ``theta``."""
        return self._taps(self.theta)

    def _taps_value(self, theta: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """:meth:`_taps` without autograd and without the checks of a public call (``theta``
        is this module's parameter: real floating, ``(C, k, Q, 2)``; a NaN gives NaN taps),
        and for a CPU ``theta`` also the reparameterization's Jacobian as a numpy array
        ``(C, k, Q, 3, 2)`` (None otherwise), which the backward of the solve needs."""
        if self.region == "raw":
            return self._taps(theta), None
        if theta.device.type == "cpu":
            # a dozen operations on a few values: numpy's per-call cost is a fraction of
            # torch's (the same formulas; the taps are inside the region either way), and
            # the Jacobian shares the tanh
            taps, jac = reparameterize_host(theta.detach().numpy(), self.region)
            return torch.from_numpy(taps), jac
        return reparameterize_values(array_api_compat.array_namespace(theta), theta, self.region), None

    def _taps(self, theta: torch.Tensor) -> torch.Tensor:
        if self.region == "raw":
            one = torch.ones_like(theta[..., :1])
            return torch.cat([theta[..., :1], one, theta[..., 1:]], dim=-1)
        return arma_core.reparameterize(theta, self.region)

    def _solve(self, x: torch.Tensor, *, who: str, own: bool = False) -> torch.Tensor:
        """``A^{-1} x`` in the right precision (the AR solve always runs in float32 or float64);
        ``own``: the caller owns ``x`` (nothing else refers to it), which may then hold the
        result."""
        if torch.compiler.is_compiling():
            return self._solve_eagerly(x, who=who)
        # eager: the common case first. These lines run at every call of the layer, several per
        # training step, often right after a convolution has pushed their code and data out of
        # the caches: there each Python step costs several microseconds, and the filter's steps
        # together as much as a small solve. A CPU call with autograd runs the shortcut kept
        # for its kind of input (_solve_short), after a few checks of what it was made for.
        short = self.__dict__.get("_short")
        if short is not None and x.is_cpu and torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"):
            theta = self._parameters.get("theta")
            # theta's object, storage (its device and dtype), layout and values; the input's kind
            if (
                theta is short.theta
                and theta.requires_grad
                and theta.data_ptr() == short.ptr
                and theta.stride() == short.stride
                and theta.shape == short.shape
                and short.view.tobytes() == short.values
            ):
                run = short.runs.get((type(x), x.shape, x.dtype, self.boundary, self.dilation, self.region))
                if run is not None:
                    return run(x, own)
        dt = x.dtype
        if (dt == torch.float32 or dt == torch.float64) and not torch.is_autocast_enabled(x.device.type):
            theta = self._parameters.get("theta")  # self.theta, without Module.__getattr__
            if theta is not None and theta.dtype == dt and x.numel():
                if theta.is_cpu and x.is_cpu and theta.requires_grad and theta.is_leaf and torch.is_grad_enabled():
                    return self._solve_short(x, theta, who, own)
                return self._filter(dt).solve(x)
        return self._solve_any(x, who=who)

    def _solve_short(self, x: torch.Tensor, theta: torch.Tensor, who: str, own: bool) -> torch.Tensor:
        """:meth:`_solve` of a non-empty float32 / float64 CPU input with autograd, ``theta`` a
        CPU leaf (a parameter) of its dtype that needs a gradient, outside autocast: the
        filter's solve, and for the next calls its kernel's one-call shortcut
        (:meth:`arma_core.ARFilter._shortcut`: the node the filter runs, the same results).

        ``_short`` (:class:`_Shortcuts`) is made after :meth:`_filter` and dropped by it
        whenever it makes a new filter, so its shortcuts serve while theta is the same object on the same storage,
        with the same layout and values (changes through ``.data`` included), for inputs of
        the same type, shape and dtype and the same module options. Non-leaf thetas (adapted
        parameters through ``torch.func.functional_call``) get no shortcut: it would keep their
        graph alive."""
        key = (type(x), x.shape, x.dtype, self.boundary, self.dilation, self.region)
        f = self._filter(x.dtype)
        cached = self.__dict__["_cached_filter"]
        short = self.__dict__.get("_short")
        if (
            short is None
            or short.theta is not theta
            or short.ptr != theta.data_ptr()
            or short.values is not cached[2]
            or short.stride != theta.stride()
            or short.shape != theta.shape
        ):
            view = theta.detach().numpy()
            short = _Shortcuts(theta, theta.data_ptr(), view, cached[2], {}, theta.stride(), theta.shape)
            self.__dict__["_short"] = short
        runs = short.runs
        run = runs.get(key, False)
        if run is False:
            # the filter bound to this very parameter (as _filter keeps it): its shortcut, if
            # any, solves with this theta's plans and Jacobian until the values change. It runs
            # this call too: a layer called once per optimizer step (a U-Net's) has a new theta
            # at every call
            run = runs[key] = f._shortcut(x, who) if cached[3] is f else None
        return f.solve(x) if run is None else run(x, own)

    # torch.compile runs the AR solve as it runs eagerly: its input checks and the stability
    # nudging of reparameterize() are data-dependent Python (each would be a graph break), and
    # inductor generates no code for the complex FFT or the per-axis inverses anyway. The
    # convolutions and everything else in the model are still compiled. (Eager calls do not
    # go through the decorator's frame switching: _solve tests is_compiling() instead.)
    @torch.compiler.disable
    def _solve_eagerly(self, x: torch.Tensor, *, who: str) -> torch.Tensor:
        return self._solve_any(x, who=who)

    def _solve_any(self, x: torch.Tensor, *, who: str) -> torch.Tensor:
        dev = x.device.type
        autocast = torch.is_autocast_enabled(dev) and x.dtype != torch.float64
        if autocast or x.dtype in _LOW_PRECISION:
            # Half precision cannot hold the AR filter's gain (up to 1 / (1 - |f_-1 + f_1|)
            # per factor) or an FFT's round-off, so the solve runs in float32, like the
            # reductions autocast keeps in float32.
            compute = torch.float32
            out_dtype = torch.get_autocast_dtype(dev) if autocast else x.dtype
        else:
            if self.theta.dtype != x.dtype:
                raise TypeError(
                    f"{who} got input of dtype {x.dtype} but its AR parameters are "
                    f"{self.theta.dtype}; convert one of them (e.g. module.to({x.dtype}))"
                )
            compute = out_dtype = x.dtype
        if x.numel() == 0:  # an empty batch, as nn.Conv*d allows (an empty FFT would raise)
            return x.to(out_dtype)
        if x.dtype != compute:
            x = x.to(compute)
        if autocast:
            with torch.autocast(dev, enabled=False):
                y = self._filter(compute).solve(x)
        else:
            y = self._filter(compute).solve(x)
        return y if y.dtype == out_dtype else y.to(out_dtype)

    def _filter(self, dtype: torch.dtype) -> arma_core.ARFilter:
        """The AR operator of the current ``theta`` in ``dtype``.

        Its taps are stable by construction (strip / diamond: proved in ``docs/math.md`` and
        tested for any finite ``theta``), so the filter is built without the stability check
        and without finiteness checks (no host sync on a GPU; a NaN ``theta`` gives NaN
        outputs, which a training loop sees as a non-finite loss). Raw taps are unconstrained
        and solved as the official code did (FFT division for circular), so training can leave
        the stable region. The filter, with the taps' values and the solver's per-channel
        operators, is kept until ``theta`` changes (its values, device or dtype, the compute
        dtype, or the module's boundary, dilation or region); after an optimizer step the new
        one is derived from it (``ARFilter._retap``): a recurrent network calling the layer at every time step builds it
        once per optimizer step. With autograd the solve is one node from the input and
        ``theta`` to the output (:class:`arma_core.backends.torch.ARSolveTheta`; for the line
        solver the compiled node ``arma_core.backends._lines_torch`` where it is built, else
        its Python twin ``_LinesTheta``, the same results bit for bit); the filter
        bound to the parameter for it is kept too, until ``theta`` changes or is replaced.
        """
        theta = self.theta
        # the options too: a filter is derived from the kept one only when they are the same
        key = (theta.device, theta.dtype, tuple(theta.shape), dtype, self.boundary, self.dilation, self.region)
        cached = self.__dict__.get("_cached_filter")
        # the values decide, not theta's version counter: changes through ``.data`` (as
        # gradcheck's perturbations) do not count as versions. On the CPU they are compared
        # as bytes (a fraction of torch.equal's cost; a NaN theta then keeps its filter)
        host = theta.device.type == "cpu" and theta.dtype in _HOST_DTYPES
        if host:
            theta_np = theta.detach().numpy()
            values: Any = theta_np.tobytes()
            hit = cached is not None and cached[0] == key and cached[2] == values
        else:
            hit = cached is not None and cached[0] == key and torch.equal(cached[2], theta)
        if hit and cached is not None:
            f = cached[1]
            bound = cached[3]
            if bound is not None and bound._theta[0] is theta and torch.is_grad_enabled() and theta.requires_grad:
                return bound  # bound to this very parameter by an earlier call (below)
        else:
            derive = False
            if host and self.region != "raw" and dtype == theta.dtype:
                # after an optimizer step: the new taps and the Jacobian in one host pass
                # (nothing to record), and the filter derived from the previous one (same
                # options, dtype and device: its per-shape layouts carry over; no checks, the
                # taps are in the strip by construction)
                taps_np, jac = reparameterize_host(theta_np, self.region)
                taps = torch.from_numpy(taps_np)
                derive = cached is not None and cached[0] == key
            else:
                detached = theta.detach()
                if not host:
                    values = detached.clone()
                with torch.no_grad():
                    taps, jac = self._taps_value(detached.to(dtype))
                if jac is not None:  # CPU: the taps' host values are at hand
                    taps_np = taps.numpy()
            if derive and cached is not None:
                f = cached[1]._retap(taps, taps_np)
            else:
                f = self._new_filter(taps)
                if jac is not None:
                    f._know_host(taps_np, in_strip=True)  # strip and diamond: by construction
            if jac is not None:
                f._cache[jacobian_key(self.region)] = jac  # where the solve node's backward looks
            self.__dict__["_cached_filter"] = (key, f, values, None)
            self.__dict__.pop("_short", None)  # the shortcuts of the former values
        if torch.is_grad_enabled() and theta.requires_grad:
            if self.region == "raw":
                f = f._bind(taps=self._taps(theta.to(dtype)))
            else:  # the solve's node maps the taps' gradient to theta's
                param = theta.to(dtype)
                f = f._bind(theta=(param, self.region))
                if param is theta:  # no cast node in between: this bound filter serves every call
                    # until theta changes (a recurrent network calls the layer at every time step)
                    self.__dict__["_cached_filter"] = self.__dict__["_cached_filter"][:3] + (f,)
        return f

    def _new_filter(self, taps: torch.Tensor) -> arma_core.ARFilter:
        raw = self.region == "raw"
        return arma_core.ARFilter(
            taps,
            boundary=self.boundary,
            dilation=self.dilation,
            method="fft" if raw and self.boundary == "circular" else "auto",
            check_stability=False,
            check_finite=False,
            _contain=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Solve ``A * y = x`` (Eq. 5) for ``y``.

        Parameters
        ----------
        x : Tensor, shape ``(N, C, *spatial)`` or ``(C, *spatial)``
            Every spatial size at least ``2 * dilation + 1``.

        Returns
        -------
        Tensor, same shape as ``x``. Its dtype is ``x``'s, or the autocast dtype inside
        ``torch.autocast`` (the solve itself runs in float32 there).
        """
        _check_input(x, self, self.channels, "channels")
        _check_ar_size(x, self, self.dilation, "the input")
        return self._solve(x, who=type(self).__name__)

    def extra_repr(self) -> str:
        s = f"{self.channels}, order={self.order}, boundary={self.boundary!r}, region={self.region!r}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.init != 0.0:
            s += f", init={self.init}"
        return s


_AR_DOC = """Learnable stable {k}-D autoregressive filter: ``y = A^{{-1}} x`` (paper Eq. 5).

    Parameters
    ----------
    channels : int
        ``C``; one independent filter per channel.
    order : int, default 1
        ``Q``, the number of length-3 factors per spatial axis (Definition 5). The official
        code's ``a_kernel_size = 2 Q + 1``.
    boundary : {{"circular", "zeros", "reflect", "replicate"}}, default "circular"
        What stands outside the input (the names of ``nn.Conv{k}d``'s ``padding_mode``).
        "circular" is the paper's FFT solve; every rule is solved exactly.
    region : {{"strip", "diamond", "raw"}}, default "strip"
        How ``theta`` maps to taps. "strip": Theorem 6's full stable region
        ``|f_-1 + f_1| < 1`` (sum ``tanh(theta[..., 1])``, difference ``theta[..., 0]``).
        "diamond": the official code's smaller ``|f_-1| + |f_1| < 1`` (needed to load its
        checkpoints). "raw": ``theta`` *are* the taps ``(f_-1, f_1)``, unconstrained -- for
        experiments such as the paper's Figure 5 only: no stability check, and the circular
        boundary is solved by FFT division as in the official code, so taps that leave the
        strip give a diverging (or, on the unit circle, non-finite) output instead of an error.
    dilation : int, default 1
        AR dilation ``d``: a factor couples ``y[i - d], y[i], y[i + d]``.
    init : float in [0, 1), default 0.0
        Initial AR magnitude ``a``: every factor starts as ``(-a/2, 1, -a/2)``, a symmetric
        low-pass whose receptive-field radius is
        ``sqrt({k} * order * dilation**2 * a / (1 - a))`` pixels
        (:func:`radius_from_init`, Theorem 3 / Figure 3). ``0`` is the identity.
    device, dtype
        Of ``theta``.

    Attributes
    ----------
    theta : Parameter, shape ``(channels, {k}, order, 2)``
        Axis 1 follows the input's spatial axes ({axes}).

    Notes
    -----
    Shape: input ``(N, C, {axes})`` or ``(C, {axes})``; output the same. Every spatial size must be at
    least ``2 * dilation + 1`` (a ``ValueError`` otherwise: no silent pass-through).

    Examples
    --------
    >>> import torch
    >>> import arma_core
    >>> from arma_core.nn import AR{k}d
    >>> ar = AR{k}d(4, init=0.5)
    >>> ar.theta.shape
    torch.Size([4, {k}, 1, 2])
    >>> x = torch.randn((2, 4) + (8,) * {k}, generator=torch.Generator().manual_seed(0))
    >>> y = ar(x)
    >>> y.shape == x.shape, torch.allclose(arma_core.ar_apply(y, ar.taps()), x, atol=1e-5)   # A y = x
    (True, True)
    """


class AR1d(_ARNd):
    _k = 1


class AR2d(_ARNd):
    _k = 2


class AR3d(_ARNd):
    _k = 3


for _cls in (AR1d, AR2d, AR3d):
    _cls.__doc__ = _AR_DOC.format(k=_cls._k, axes=_AXES[_cls._k])
del _cls


# --------------------------------------------------------------------------------------------
# ARMA modules
# --------------------------------------------------------------------------------------------

_AR_CLASSES = {1: AR1d, 2: AR2d, 3: AR3d}


class _ARMAMixin:
    """Convolution (``nn.Conv{k}d.forward``, untouched) followed by the AR solve.

    Mixed in before ``nn.Conv{k}d``: ``super().__init__`` is the convolution's, with its own
    arguments; the ``ar_*`` keywords build the AR part.
    """

    _k: int = 0
    # the convolution's attributes the mixin reads
    in_channels: int
    out_channels: int
    ar: _ARNd | None
    _modules: dict[str, Any]  # nn.Module's

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
        device=None,
        dtype=None,
        *,
        ar_order=1,
        ar_boundary="circular",
        ar_region="strip",
        ar_dilation=1,
        ar_init=0.0,
    ):
        # the convolution's own __init__ (next in the MRO; the mixin has no base of its own)
        cast(Any, super()).__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device=device,
            dtype=dtype,
        )
        self._init_ar(ar_order, ar_boundary, ar_region, ar_dilation, ar_init, {"device": device, "dtype": dtype})

    def _init_ar(self, ar_order, ar_boundary, ar_region, ar_dilation, ar_init, factory):
        ar_order = _check_count(ar_order, "ar_order", 0)
        if ar_order == 0:
            # Validate the other AR options anyway, so a typo is not silently ignored.
            _AR_CLASSES[self._k](1, 1, ar_boundary, ar_region, ar_dilation, ar_init, device="meta")
            self.ar = None
        else:
            self.ar = _AR_CLASSES[self._k](
                self.out_channels,
                order=ar_order,
                boundary=ar_boundary,
                region=ar_region,
                dilation=ar_dilation,
                init=ar_init,
                **factory,
            )

    def reset_parameters(self) -> None:
        cast(Any, super()).reset_parameters()
        ar = getattr(self, "ar", None)
        if ar is not None:
            ar.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self, self.in_channels, "in_channels")
        y = super().forward(x)  # type: ignore[misc]  # the convolution's (next in the MRO)
        ar = self._modules.get("ar")  # self.ar, without Module.__getattr__ (None: in __dict__)
        if ar is None:
            return y
        _check_ar_size(y, self, ar.dilation, "the convolution's output", x)
        return ar._solve(y, who=type(self).__name__, own=True)  # y: this call's own tensor


_ARMA_DOC = """Convolution followed by a stable learnable AR filter: a drop-in for ``nn.Conv{k}d``.

    ``y = A^{{-1}} (W * x + b)`` (paper Definition 5 / Eq. 5). The layer *is* an
    ``nn.Conv{k}d`` (subclass): ``weight``, ``bias``, ``padding="same"``, ``padding_mode``,
    groups and the state-dict keys are the convolution's, plus ``ar.theta`` of shape
    ``(out_channels, {k}, ar_order, 2)``. With ``ar_order=0`` (or ``ar_init=0`` before training)
    the output equals ``nn.Conv{k}d``'s bit for bit.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype
        Exactly as ``nn.Conv{k}d`` (``padding`` may be ``"same"`` or ``"valid"``).
    ar_order : int, default 1
        Factors per spatial axis, ``Q``; ``0`` disables the AR part (``self.ar is None``).
    ar_boundary : {{"circular", "zeros", "reflect", "replicate"}}, default "circular"
        Boundary rule of the AR solve (independent of the convolution's ``padding_mode``).
    ar_region : {{"strip", "diamond", "raw"}}, default "strip"
        Reparameterization of the AR taps; see :class:`AR{k}d`.
    ar_dilation : int, default 1
        Dilation of the AR factors.
    ar_init : float in [0, 1), default 0.0
        Initial AR magnitude; receptive-field radius of the AR part
        ``sqrt({k} * ar_order * ar_dilation**2 * ar_init / (1 - ar_init))`` pixels
        (:func:`radius_from_init`). ``0`` starts as the plain convolution.

    Notes
    -----
    Shape: input ``(N, C_in, {axes})`` or ``(C_in, {axes})``; output as ``nn.Conv{k}d``'s. Every
    spatial size of the convolution's output must be at least ``2 * ar_dilation + 1``.
    Inside ``torch.autocast`` the convolution runs in the autocast dtype and the AR solve in
    float32; the output has the autocast dtype. The AR solve keeps its output for the backward
    pass (Theorem 4 needs nothing else), so an activation applied to it must not work in place
    (``nn.ReLU(inplace=False)``); :func:`armafy` turns off ``inplace`` on the activations that
    follow a converted convolution in an ``nn.Sequential``.

    Examples
    --------
    >>> import torch
    >>> from arma_core.nn import ARMA{k}d
    >>> layer = ARMA{k}d(3, 8, 3, padding=1, ar_init=0.5)
    >>> sorted(layer.state_dict())
    ['ar.theta', 'bias', 'weight']
    >>> x = torch.randn((2, 3) + (8,) * {k}, generator=torch.Generator().manual_seed(0))
    >>> y = layer(x)
    >>> y.shape[:2], y.shape[2:] == x.shape[2:]
    (torch.Size([2, 8]), True)
    >>> plain = ARMA{k}d(3, 8, 3, padding=1, ar_order=0)    # the convolution alone, bit for bit
    >>> torch.equal(plain(x), torch.nn.functional.conv{k}d(x, plain.weight, plain.bias, padding=1))
    True
    """


class ARMA1d(_ARMAMixin, nn.Conv1d):
    _k = 1


class ARMA2d(_ARMAMixin, nn.Conv2d):
    _k = 2


class ARMA3d(_ARMAMixin, nn.Conv3d):
    _k = 3


for _arma in (ARMA1d, ARMA2d, ARMA3d):
    _arma.__doc__ = _ARMA_DOC.format(k=_arma._k, axes=_AXES[_arma._k])
del _arma

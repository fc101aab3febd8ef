"""PyTorch kernels: the AR solve as an autograd Function (Theorem 4) and conv via F.conv*d.

Each solve row of :mod:`arma_core.capabilities` for torch is one :class:`Solver`: a forward
kernel and its vector-Jacobian product, wrapped in :class:`ARSolve`, which saves only the
output ``y`` (Theorem 4 needs nothing else) and runs outside autocast:

- ``lines`` (CPU, the compiled extension installed): the line solver of
  :mod:`arma_core.backends._lines` on as many threads as ``torch.get_num_threads()``, forward
  and backward in one pass per channel plane each; a layer's solve (taps given by ``theta``) is
  one node: the compiled ``arma_core.backends._lines_torch`` where it is built
  (:func:`lines_node`), else :class:`_LinesTheta`, the same kernels with fewer Python steps
  around them than the generic chain (bit for bit the same results either way);
- ``fft``: the core's FFT kernel; the taps gradient in the Fourier domain
  (:mod:`arma_core.backends._fourier`);
- ``dense``: the core's dense kernel; the generic backward of :func:`arma_core.solve.solve_vjp`.

When neither input needs a gradient the forward kernel is called directly (no autograd node).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from arma_core.filters import reparameterize_jacobian, reparameterize_vjp
from arma_core.solve import dense_kernel as _dense
from arma_core.solve import fft_kernel as _fft
from arma_core.solve import solve_vjp

from . import _lines
from ._fourier import fft_solve_vjp
from ._torch_conv import conv_torch

__all__ = ["ARSolve", "ARSolveTheta", "Solver", "lines_kernel", "fft_kernel", "dense_kernel", "conv_kernel"]


# ---------------------------------------------------------------------------------------------
# the compiled line solver on CPU tensors


def _host(x: torch.Tensor):
    """A numpy view of a CPU tensor (copied only when not contiguous)."""
    return x.detach().contiguous().numpy()


def _empty_like(x: torch.Tensor) -> torch.Tensor:
    """A new tensor like the C-contiguous CPU tensor ``x`` (``torch.empty_like``: a third of
    ``torch.empty(shape, dtype=...)``'s cost on a small tensor), its large buffer backed by huge
    pages (``_lines.advise_hugepages``, asked only from its size up)."""
    out = torch.empty_like(x)
    if x.nbytes >= _lines.HUGE_MIN:
        _lines.advise_hugepages(out.data_ptr(), out.nbytes)
    return out


# The taps go to the line solver as a detached tensor: it reads their values only to build a
# plan that its cache does not hold yet (numpy converts them then), and their shape.
# Where the compiled node is loaded, its ``solve`` and ``vjp`` run these calls: the line
# solver's, with the work on torch's threads (threads of the solver's own would compete with
# torch's, awake after the operators around the solve); else (None) the solver's own.


def _lines_solve(xp, t, taps, *, boundary, dilation, adjoint, cache, backward=False):
    t = t.detach().contiguous()
    out = _empty_like(t)
    _lines.solve(
        t.numpy(),
        taps.detach(),
        boundary=boundary,
        dilation=dilation,
        adjoint=adjoint,
        out=out.numpy(),
        cache=cache,
        threads=torch.get_num_threads(),
        backward=backward,
        kernels=lines_node(),
    )
    return out


def _lines_solve_recorded(xp, t, taps, **opts):
    # a backward follows: a new filter's plans of both directions come from one call
    return _lines_solve(xp, t, taps, backward=True, **opts)


def _lines_vjp(xp, y, g, taps, *, boundary, dilation, adjoint, need_taps, cache):
    g = g.detach().contiguous()
    out = _empty_like(g)
    _, gtaps = _lines.solve_vjp(
        _host(y),
        g.numpy(),
        taps.detach(),
        boundary=boundary,
        dilation=dilation,
        adjoint=adjoint,
        need_taps=need_taps,
        out=out.numpy(),
        cache=cache,
        threads=torch.get_num_threads(),
        kernels=lines_node(),
    )
    if gtaps is not None:  # float64 (the callers cast it: ARSolveTheta's product does on the host)
        gtaps = torch.from_numpy(gtaps)
    return out, gtaps


def _fft_vjp(xp, y, g, taps, *, boundary, dilation, adjoint, need_taps, cache):
    return fft_solve_vjp(xp, y, g, taps, dilation=dilation, adjoint=adjoint, need_taps=need_taps, cache=cache)


def _dense_vjp(xp, y, g, taps, *, boundary, dilation, adjoint, need_taps, cache):
    if not need_taps:
        return _dense(xp, g, taps, boundary=boundary, dilation=dilation, adjoint=not adjoint, cache=cache), None
    return solve_vjp(xp, _dense, y, g, taps, boundary=boundary, dilation=dilation, adjoint=adjoint, cache=cache)


class Solver(NamedTuple):
    """A forward kernel and its vector-Jacobian product (Theorem 4); ``recorded`` is the
    forward an autograd node runs (its backward follows: it may prepare for it)."""

    forward: Callable[..., Any]
    vjp: Callable[..., Any]
    recorded: Callable[..., Any]
    host: bool = False  # numpy work on the tensors' memory: no torch operation for autocast to change


_SOLVERS = {
    "lines": Solver(_lines_solve, _lines_vjp, _lines_solve_recorded, host=True),
    "fft": Solver(_fft, _fft_vjp, _fft),
    "dense": Solver(_dense, _dense_vjp, _dense),
}


_NO_CONTEXT = contextlib.nullcontext()


def _no_autocast(x: torch.Tensor, solver: Solver):
    """A context without autocast on ``x``'s device for ``solver``'s kernels (nothing to enter
    when autocast is off there, or for a solver whose work is numpy's: ``Solver.host``)."""
    if solver.host:
        return _NO_CONTEXT
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return _NO_CONTEXT


def _first_order(backward):
    """``backward`` as a first-order derivative: called directly in an ordinary backward pass
    (autograd records nothing then), through ``once_differentiable`` under ``create_graph``
    (whose double backward it refuses); ``once_differentiable``'s own ``no_grad`` context
    costs more than the small solves themselves."""
    guarded = once_differentiable(backward)

    def wrapper(ctx, *grads):
        if torch.is_grad_enabled():
            return guarded(ctx, *grads)
        return backward(ctx, *grads)

    return wrapper


def _vjp(ctx, y, g, taps, need_taps):
    xp, solver, boundary, dilation, adjoint, cache = ctx.opts
    g = g.contiguous()
    with _no_autocast(g, solver):
        return solver.vjp(
            xp, y, g, taps, boundary=boundary, dilation=dilation, adjoint=adjoint, need_taps=need_taps, cache=cache
        )


def _forward(ctx, t, taps, xp, method, boundary, dilation, adjoint, cache):
    solver = _SOLVERS[method]
    ctx.opts = (xp, solver, boundary, dilation, adjoint, cache)
    with _no_autocast(t, solver):
        return solver.recorded(xp, t, taps, boundary=boundary, dilation=dilation, adjoint=adjoint, cache=cache)


class ARSolve(torch.autograd.Function):
    """``y = A^{-1} t`` (or ``A^{-T} t``) with the backward of Theorem 4; saves only ``y``."""

    @staticmethod
    def forward(ctx, t, taps, xp, method, boundary, dilation, adjoint, cache):
        y = _forward(ctx, t, taps, xp, method, boundary, dilation, adjoint, cache)
        ctx.save_for_backward(y, taps)
        return y

    @staticmethod
    @_first_order
    def backward(ctx, g):
        y, taps = ctx.saved_tensors
        gt, gtaps = _vjp(ctx, y, g, taps, ctx.needs_input_grad[1])
        if gtaps is not None and gtaps.dtype != taps.dtype:
            gtaps = gtaps.to(taps.dtype)
        return (gt if ctx.needs_input_grad[0] else None), gtaps, None, None, None, None, None, None


class ARSolveTheta(torch.autograd.Function):
    """:class:`ARSolve` for taps ``arma_core.reparameterize(theta, region)`` given as values: one
    node from ``(t, theta)`` to ``y``, whose backward maps the taps' gradient to ``theta``'s by
    :func:`arma_core.filters.reparameterize_vjp` (for CPU tensors: one matrix product with
    :func:`arma_core.filters.reparameterize_jacobian` in numpy, kept in the filter's cache).
    Saves ``y`` and ``theta``."""

    @staticmethod
    def forward(ctx, t, theta, xp, method, boundary, dilation, adjoint, cache, taps, region):
        y = _forward(ctx, t, taps, xp, method, boundary, dilation, adjoint, cache)
        ctx.save_for_backward(y, taps, theta)
        ctx.region = region
        return y

    @staticmethod
    @_first_order
    def backward(ctx, g):
        y, taps, theta = ctx.saved_tensors
        need_theta = ctx.needs_input_grad[1]
        gt, gtaps = _vjp(ctx, y, g, taps, need_theta)
        gtheta = None
        if need_theta:
            if theta.device.type == "cpu":
                *_, cache = ctx.opts  # the filter's cache (see _forward)
                gtheta = _theta_grad_host(theta, gtaps.detach().numpy(), ctx.region, cache)
            else:
                gtheta = reparameterize_vjp(theta, gtaps.to(theta.dtype), ctx.region)
        return (gt if ctx.needs_input_grad[0] else None), gtheta, None, None, None, None, None, None, None, None


def _theta_grad_host(theta, gtaps, region: str, cache) -> torch.Tensor:
    """The gradient of a CPU ``theta`` from the taps' (numpy ``gtaps``, float64): one matrix
    product with the reparameterization's Jacobian, kept with the filter (whose cache lives as
    long as theta's values), in theta's dtype."""
    jac = _host_jacobian(theta, region, cache)
    fn = _lines._host_function("theta_grad", jac)
    if fn is None or gtaps.dtype != np.float64 or not gtaps.flags.c_contiguous:
        return torch.from_numpy(np.matmul(gtaps[..., None, :], jac, dtype=jac.dtype)[..., 0, :])
    out = np.empty(jac.shape[:-2] + jac.shape[-1:], dtype=jac.dtype)
    fn(gtaps, jac, out, jac.dtype == np.float32)  # the same sums as the compiled node's
    return torch.from_numpy(out)


def _host_jacobian(theta, region: str, cache) -> np.ndarray:
    """The reparameterization's Jacobian of a CPU ``theta`` (numpy), kept in ``cache``."""
    key = jacobian_key(region)
    jac = cache.get(key) if cache is not None else None
    if jac is None:
        jac = reparameterize_jacobian(theta.detach().numpy(), region)
        if cache is not None:
            cache[key] = jac
    return jac


class _LinesRun:
    """A filter's line solves of CPU tensors with the options fixed: ``(taps, boundary, dilation,
    adjoint, region)`` and the filter's cache. What :class:`_LinesTheta` calls instead of
    :class:`ARSolveTheta`'s generic chain: a small solve's kernels take a few microseconds, and
    each Python frame and keyword list of that chain costs about one more inside a training
    step. Made per call (kept in the cache it refers to, it would form a reference cycle: a
    filter's plans would then wait for the garbage collector after every optimizer step)."""

    __slots__ = ("taps", "opts", "region", "cache")

    def __init__(self, taps, boundary, dilation, adjoint, region, cache) -> None:
        self.taps, self.region, self.cache = taps.detach(), region, cache
        self.opts = dict(boundary=boundary, dilation=dilation, adjoint=adjoint, cache=cache)

    def solve(self, t):
        return _lines_solve(None, t, self.taps, backward=True, **self.opts)

    def vjp(self, y, g, need_taps):
        return _lines_vjp(None, y, g, self.taps, need_taps=need_taps, **self.opts)


class _LinesTheta(torch.autograd.Function):
    """:class:`ARSolveTheta` for ``method="lines"`` with its options in one :class:`_LinesRun`
    (the same kernels, plans and products: bit for bit its results)."""

    @staticmethod
    def forward(ctx, t, theta, run):
        y = run.solve(t)
        ctx.save_for_backward(y, theta)
        ctx.run = run
        return y

    @staticmethod
    @_first_order
    def backward(ctx, g):
        y, theta = ctx.saved_tensors
        run, need = ctx.run, ctx.needs_input_grad
        gt, gtaps = run.vjp(y, g, need[1])
        gtheta = _theta_grad_host(theta, gtaps.numpy(), run.region, run.cache) if need[1] else None
        return (gt if need[0] else None), gtheta, None


def jacobian_key(region: str) -> tuple[str, str]:
    """The key of :func:`arma_core.filters.reparameterize_jacobian`'s numpy value in a filter's
    cache, where :class:`ARSolveTheta` looks for it (a layer that computes it together with the
    taps stores it there)."""
    return ("reparameterize_jacobian", region)


# ---------------------------------------------------------------------------------------------
# the compiled autograd node (backends/_lines_torch.cpp): _LinesTheta without Python

_NODE: Any = False  # not looked up yet; then the module, or None
#: the interface of the compiled node's functions this module calls (its ``NODE_VERSION``)
NODE_VERSION = 2
#: why the compiled node is not used (empty when it is; set by :func:`lines_node`)
NODE_STATUS = ""


def lines_node():
    """The compiled autograd node's module (``arma_core.backends._lines_torch``), or None.

    None when the environment variable ``ARMA_TORCH_NODE=0`` is set, the line solver or the node
    is not built (pip's isolated build cannot build the node; ``python setup.py build_ext
    --inplace`` with torch installed does), or it was built for another torch, another line
    solver or from another version of its source (:data:`NODE_VERSION`); :data:`NODE_STATUS`
    then says which. Layers then run :class:`_LinesTheta`: the same
    kernels and results, with torch's Python ``autograd.Function`` around them."""
    global _NODE, NODE_STATUS
    if _NODE is False:
        _NODE, NODE_STATUS = _load_node()
    return _NODE


def _load_node():
    if os.environ.get("ARMA_TORCH_NODE", "1") == "0":
        return None, "disabled by ARMA_TORCH_NODE=0"
    if not _lines.available():
        return None, "the compiled line solver is not installed"
    try:
        from . import _lines_torch  # type: ignore[attr-defined]
    except ImportError as e:  # not built, or built against another torch (undefined symbols)
        return None, f"not importable: {e}"
    if _lines_torch.TORCH_VERSION != torch.__version__:
        return None, f"built for torch {_lines_torch.TORCH_VERSION}, running {torch.__version__}: rebuild it"
    if _lines_torch.API_VERSION != _lines_torch.BUILT_API_VERSION:
        return None, "built for another version of the line solver: rebuild it"
    if getattr(_lines_torch, "NODE_VERSION", 1) != NODE_VERSION:
        return None, "built from another version of backends/_lines_torch.cpp: rebuild it"
    return _lines_torch, ""


def _node_args(t, theta, region, taps, boundary, dilation, adjoint, cache):
    """The compiled node's arguments after ``t`` and ``theta``: the plans of both directions and
    theta's Jacobian (as a tensor) from the filter's cache, made there first when missing."""
    k = taps.shape[1]
    spatial = tuple(t.shape[t.ndim - k :])
    plan, back = cache.get(("lines", spatial, adjoint)), cache.get(("lines", spatial, not adjoint))
    if plan is None or back is None:
        threads = torch.get_num_threads()
        plan = _lines.plan(taps.detach(), spatial, dilation, boundary, adjoint, cache, threads, both=True)
        back = _lines.plan(taps.detach(), spatial, dilation, boundary, not adjoint, cache, threads)
    key = (jacobian_key(region), "tensor")
    jac = cache.get(key)
    if jac is None:
        jac = cache[key] = torch.from_numpy(_host_jacobian(theta, region, cache))
    return plan, back, jac, k, adjoint


def _node_solve(node, t, theta, region, taps, boundary, dilation, adjoint, cache):
    """:class:`_LinesTheta`'s solve through the compiled node (:func:`_node_args`)."""
    return node.solve_theta(t, theta, *_node_args(t, theta, region, taps, boundary, dilation, adjoint, cache))


def _lines_shortcut(t, taps, *, boundary, dilation, adjoint, cache, theta):
    """``lines_kernel``'s solve of tensors like ``t`` (its dtype and shape) with autograd, as one
    callable ``run(t, own=False) -> y`` (``own``: the caller owns ``t``, which nothing else
    refers to, and the node may write the output into it): the compiled node called with the
    filter's plans and Jacobian bound (:class:`_LinesTheta` where the node is not loaded). The same node and results as
    :func:`lines_kernel`, without the filter's and the kernel's Python steps around it, which
    cost as much as a small solve right after a convolution (its code and data out of the
    caches: 90 us at 4x128x16x16, two threads). None when the kernel would not run the node:
    no ``theta`` or ``cache``, or ``t`` not a float32 / float64 CPU tensor.

    For callers that keep it while nothing it was made for changes (``theta``'s object and
    values, ``t``'s dtype and shape, the filter's options) and call it with grad mode on and
    ``theta[0].requires_grad``, as :class:`arma_core.nn.AR2d` does."""
    if theta is None or cache is None or t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
        return None
    param, region = theta
    adjoint = bool(adjoint)
    node = lines_node()
    if node is None:
        taps = taps.detach()

        def run_python(t, own=False):
            return _LinesTheta.apply(t, param, _LinesRun(taps, boundary, dilation, adjoint, region, cache))

        return run_python
    solve_theta = node.solve_theta
    plan, back, jac, k, _ = _node_args(t, param, region, taps, boundary, dilation, adjoint, cache)

    def run(t, own=False):
        return solve_theta(t, param, plan, back, jac, k, adjoint, own)

    return run


def _solve(method, xp, t, taps, boundary, dilation, adjoint, cache, theta=None):
    if torch.is_grad_enabled():
        if theta is not None and (t.requires_grad or theta[0].requires_grad):
            if method == "lines" and cache is not None:  # CPU tensors: theta on the CPU too
                node = _NODE if _NODE is not False else lines_node()
                if node is not None and (t.dtype == torch.float32 or t.dtype == torch.float64):
                    return _node_solve(node, t, theta[0], theta[1], taps, boundary, dilation, bool(adjoint), cache)
                return _LinesTheta.apply(t, theta[0], _LinesRun(taps, boundary, dilation, adjoint, theta[1], cache))
            return ARSolveTheta.apply(t, theta[0], xp, method, boundary, dilation, adjoint, cache, taps, theta[1])
        if t.requires_grad or taps.requires_grad:
            return ARSolve.apply(t, taps, xp, method, boundary, dilation, adjoint, cache)
    solver = _SOLVERS[method]
    with _no_autocast(t, solver):
        return solver.forward(xp, t, taps, boundary=boundary, dilation=dilation, adjoint=adjoint, cache=cache)


def lines_kernel(xp, t, taps, *, boundary, dilation, adjoint, cache=None, theta=None):
    """``method="lines"`` on CPU tensors, differentiable (w.r.t. ``theta = (parameters, region)``
    instead of the taps when given: the taps are then ``reparameterize``'s values)."""
    return _solve("lines", xp, t, taps, boundary, dilation, adjoint, cache, theta)


lines_kernel.shortcut = _lines_shortcut  # type: ignore[attr-defined]  # see ARFilter._shortcut


def fft_kernel(xp, t, taps, *, boundary, dilation, adjoint, cache=None, theta=None):
    """``method="fft"`` (circular) on any device, differentiable (``theta`` as :func:`lines_kernel`)."""
    return _solve("fft", xp, t, taps, boundary, dilation, adjoint, cache, theta)


def dense_kernel(xp, t, taps, *, boundary, dilation, adjoint, cache=None, theta=None):
    """``method="dense"`` on any device, differentiable (``theta`` as :func:`lines_kernel`)."""
    return _solve("dense", xp, t, taps, boundary, dilation, adjoint, cache, theta)


def conv_kernel(xp, x, weight, bias, spec):
    """The ``conv`` row for torch: ``torch.nn.functional.conv{k}d`` (autograd by torch)."""
    return conv_torch(
        x,
        weight,
        bias,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        groups=spec.groups,
        padding_mode=spec.padding_mode,
    )

"""Compiled ``O(N Q)`` line solvers for the AR system: the ``"lines"`` method (optional).

Each factor of one axis is an ``n x n`` matrix ``A_f = f_0 I + f_-1 S_{+d} + f_1 S_{-d}`` under
the boundary rule (``docs/math.md``). It is split as

    A_f = T + E,

``T`` the same factor with the ``zeros`` rule (a Toeplitz matrix whose only diagonals are
``0, +-d``: ``d`` interleaved tridiagonal chains) and ``E`` the boundary's correction, which
lives in the first and last ``d`` rows only (rank ``m <= 2 d``; ``E = 0`` for ``zeros``).

- ``T`` is solved by Thomas' algorithm without pivoting, which is safe on the whole stable
  strip ``|f_-1 + f_1| < f_0`` of Theorem 6: the pivots obey ``p_i = f_0 - f_-1 f_1 / p_{i-d}``;
  when ``f_-1 f_1 <= 0`` they stay ``>= f_0``, otherwise ``|f_-1| + |f_1| = |s| < f_0`` makes
  ``T`` strictly diagonally dominant and ``p_i > f_0 - |f_-1| > |f_1|``. The ``d`` chains run
  the same recurrence from the same start, and once a pivot repeats exactly every later one
  does: pivots and multipliers are stored up to that row and are constants after it.
- ``E = U V^T`` (``U`` the unit columns of the rows ``E`` touches) is handled exactly by the
  Sherman-Morrison-Woodbury identity: with ``z = T^{-1} t``,
  ``A_f^{-1} t = z - M z[cols]``, ``M = T^{-1} U (I + V^T T^{-1} U)^{-1} V^T[:, cols]``
  (``n x |cols|``, ``|cols| <= 2 d``). ``I + V^T T^{-1} U`` is invertible exactly when ``A_f``
  is (its inverse is ``I - V^T A_f^{-1} U``). This covers ``circular`` (cyclic Thomas),
  ``reflect`` and ``replicate`` for every dilation, including their chain couplings for
  ``d > 1``, without the zero pivots that eliminating the edge rows directly can hit (e.g.
  ``replicate``'s first pivot ``f_0 + f_1`` vanishes at ``f_1 = -1``, inside the strip). The
  correction is one more vector pass after the back substitution, over the rows where ``M``
  is not negligible: entries of ``M`` below ``2^-53`` of its largest are dropped (below
  float64's rounding) and only the rest is stored.

These operators depend on the taps and the sizes only: a :func:`plan` holds them for every
channel, axis and factor, and a filter keeps its plans between calls.

Work per sample and factor: one forward and one backward recurrence (plus the correction where
it is not negligible). They run in float64 (float32 recurrences lose up to
``cond(A_f) * 2^-24``), except for float32 signals with the ``circular`` or ``zeros`` rule,
last axes of 16 or more and 16 or more rows per block, whose channel's factors all have
``|f_0| + |f_-1| + |f_1| <= 8 (|f_0| - |f_-1 + f_1|)``: for those two rules that bounds
``cond(A_f)`` by 8, and the block runs in float32 (16 lanes per vector, half the bytes), within a
few float32 roundings of the float64 result (tested to 1e-6 of the float64 reference;
``_lines_c.set_work32(False)``, or ``ARMA_LINES_WORK32=0`` at import, keeps float64 for every
block). Every axis of a channel block is solved while the block is in cache, so the signal is
read once and written once: the outer axes first, on a work copy of the block, with recurrences
across rows vectorised along them; then the contiguous last axis in strips of rows, each
transposed into a small scratch, solved with the same vectorised recurrences and transposed into
the output (long last axes with one factor run four scalar recurrences in flight instead). 1-D
signals run four rows at a time, the rows of one channel together; a causal factor
(``f_-1 = 0``) with the ``zeros`` rule is a single pass. The backward pass (Theorem 4, Eq. 6)
runs in one pass per block too: the transposed solve and the taps' gradient
``-<(A_j^(1..q-1))^T left, E_tap A_j^(q+1..Q) B_j right>`` as dot products of shifted
contiguous slices, accumulated in float64.

Small 2-D planes (at most 8 rows of 4 or 8 samples, or 16 rows of 16, where the recurrences'
per-line and transpose costs and the latency of their chains dominate) are solved differently:
their plans hold, per channel and axis, the ``n x n`` inverse of the axis's operator (the
recurrences' solve of the identity; the transposed plan holds the same matrices transposed),
and a plane is ``G_H X G_W^T``: in float64 arithmetic, except for float32 rows of 16 of the
channels whose factors pass the float32 work rule (float32, sixteen lanes per vector)
(``_lines_c.set_dense_max(0)`` turns this off for the plans built next, ``8`` keeps the rows of
16 on the recurrences).

The loops are the C extension ``arma_core.backends._lines_c`` (``backends/_lines_c.c``), built
by the install step when a C compiler is present (x86-64 Linux builds carry AVX2 and AVX-512
clones of the hot loops, chosen at load time). It needs no compilation at run time. It splits a
call's blocks over ``threads`` threads (contiguous ranges, so the result does not depend on the
count) with the GIL released; calls too small to repay a thread run on the caller's thread.
Output buffers are advised onto transparent huge pages (:func:`advise_hugepages`).
:func:`available` says whether the extension is there; without it the generic array-API
methods run.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

__all__ = [
    "available",
    "accurate",
    "preferred",
    "default_threads",
    "MAX_SPREAD",
    "MIN_ROWS_1D",
    "BOUNDARY_CODES",
    "solve",
    "solve_vjp",
    "plan",
    "empty",
    "advise_hugepages",
]

#: the extension's codes of the boundary rules
BOUNDARY_CODES = {"circular": 0, "zeros": 1, "reflect": 2, "replicate": 3}


@functools.cache
def available() -> bool:
    """True when the compiled line solver (``arma_core.backends._lines_c``) is installed."""
    return importlib.util.find_spec("arma_core.backends._lines_c") is not None


_EXT = None


def _ext():
    global _EXT
    if _EXT is None:
        from . import _lines_c

        _EXT = _lines_c
    return _EXT


_HOST_FUNCS: dict = {}  # the extension's host helpers by name (None: missing), filled on first use


def _host_function(name: str, a: np.ndarray):
    """The extension's function ``name`` for the host array ``a``, or None when the extension
    is not installed (or is an older build without it) or ``a`` is not a C-contiguous float32 /
    float64 array: the caller then takes the NumPy path."""
    fn = _HOST_FUNCS.get(name, _HOST_FUNCS)
    if fn is _HOST_FUNCS:
        fn = _HOST_FUNCS[name] = getattr(_ext(), name, None) if available() else None
    dt = a.dtype
    if fn is None or (dt != np.float32 and dt != np.float64) or not a.flags.c_contiguous:
        return None
    return fn


def reparameterize_strip(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The strip reparameterization's taps ``(..., 3)`` and Jacobian ``(..., 3, 2)`` of a
    C-contiguous float32 / float64 ``theta`` ``(..., 2)`` in one compiled pass, bit for bit
    :func:`arma_core.filters.reparameterize_host`'s (``tanh`` stays NumPy's, the rest are the
    same IEEE operations in the same order); None when the extension is not installed (or is an
    older build without it) or ``theta`` is of another dtype or layout, so the caller takes the
    NumPy path."""
    fn = _host_function("reparam_strip", theta)
    if fn is None:
        return None
    dt = theta.dtype
    lead = theta.shape[:-1]
    taps = np.empty((*lead, 3), dtype=dt)
    jac = np.empty((*lead, 3, 2), dtype=dt)
    fn(theta, np.tanh(theta[..., 1]), taps, jac, dt == np.float32)
    return taps, jac


def taps_facts(taps: np.ndarray) -> tuple[bool, bool] | None:
    """``(finite, in_strip)`` of host taps ``(..., 3)`` in one compiled pass: every value finite,
    and every factor in the strip ``|f_-1 + f_1| < |f_0|`` evaluated in the taps' own dtype (the
    same IEEE operations as :func:`arma_core.filters.inside_strip` on them). None when the
    extension is not installed (or is an older build without it), or ``taps`` is not a
    C-contiguous float32 / float64 array: the caller then checks with NumPy."""
    fn = _host_function("taps_facts", taps)
    if fn is None:
        return None
    bits = fn(taps, taps.dtype == np.float32)
    return bool(bits & 1), bool(bits & 2)


def default_threads() -> int:
    """Threads of a call on numpy arrays: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: the extension splits a call on numpy arrays over threads of its own only from this much work
#: up (samples x factors; ``OWN_THREAD_WORK`` in ``_lines_c.c``): below it the call runs on one
#: thread whatever it is given (the torch node's calls, on torch's threads, split from 2^17 up).
#: The extension counts the dense inverses of small planes as 1.25-5x that (``solve_work``), so
#: a numpy call on them whose count here is a little under this bound stays on one thread where
#: the extension alone would have started a second one (about 40 us to start, against solves of
#: a few hundred us there)
PARALLEL_WORK = 1 << 19


def _threads(threads: int | None, work: int) -> int:
    """``threads``, or by default :func:`default_threads` (a system call, about a microsecond)
    where the extension would use them: for less work it runs on one thread anyway."""
    if threads:
        return threads
    return 1 if work < PARALLEL_WORK else default_threads()


# ---------------------------------------------------------------------------------------------
# when the solver is accurate, and when auto prefers it


#: largest ``|f_-1 - f_1| / |f_0|`` of any factor for which ``method="auto"`` sends the
#: ``circular``, ``reflect`` and ``replicate`` boundaries to this solver: their Woodbury edge
#: correction loses accuracy roughly like ``spread^2 * 2^-53`` (docs/performance.md), and the
#: strip of Theorem 6 bounds ``|f_-1 + f_1|`` only, so any spread can occur. Trained filters
#: sit far below the bound (the official diamond region has spread < 1); beyond it ``auto``
#: falls back to ``fft`` / ``dense``. ``zeros`` has no correction and no bound.
MAX_SPREAD = 16.0


def accurate(taps, boundary: str) -> bool:
    """Whether the line solver is accurate for ``taps`` (any array convertible to numpy,
    ``(..., 3)``) with ``boundary``: every factor in the strip ``|f_-1 + f_1| < |f_0|`` and,
    except for ``zeros``, ``|f_-1 - f_1| <= MAX_SPREAD * |f_0|``. ``taps=None`` (unknown)
    counts as accurate for ``zeros`` only."""
    if taps is None:
        return boundary == "zeros"
    a = np.ascontiguousarray(taps, dtype=np.float64)
    if available():  # one pass, without temporaries (the auto rule asks on every new filter)
        return _ext().accurate(a, boundary == "zeros", MAX_SPREAD)
    fm, f0, fp = a.reshape(-1, 3).T
    f0 = abs(f0)
    ok = abs(fm + fp) < f0  # outside the strip Thomas' pivots may vanish (only fft/dense solve those)
    if boundary != "zeros":
        ok &= abs(fm - fp) <= MAX_SPREAD * f0
    return bool(ok.all())


#: 1-D ``circular`` signals go to the line solver only with at least this many rows per channel
#: and factor: its operators cost a serial pass per channel and factor that a solve of a few
#: rows does not repay, while ``fft`` needs no per-channel work (docs/performance.md, "1-D
#: signals", has the measurements behind the rule).
MIN_ROWS_1D = 4


def preferred(shape, taps, boundary: str) -> bool:
    """Whether ``method="auto"`` should take the line solver for a signal of ``shape``.

    It must be accurate (:func:`accurate`); for 1-D ``circular`` signals it must also have at
    least ``MIN_ROWS_1D * Q`` rows per channel (otherwise ``fft`` is faster). ``taps``: array
    convertible to numpy ``(C, k, Q, 3)``, or None (unknown: preferred for ``zeros`` only, as
    :func:`accurate` says).
    """
    if taps is not None:
        taps = np.ascontiguousarray(taps, dtype=np.float64)  # once, for accurate and the shape
    if not accurate(taps, boundary):
        return False
    if boundary != "circular":  # taps may be None here (zeros)
        return True
    C, k, Q = taps.shape[:3]
    if k == 1:
        rows = int(np.prod(shape[:-1], dtype=np.int64)) // max(C, 1)
        return rows >= MIN_ROWS_1D * Q
    return True


# ---------------------------------------------------------------------------------------------
# output memory

#: buffers from this size up are advised (:func:`advise_hugepages`; the extension's ``HUGE_MIN``)
HUGE_MIN = 4 << 20


def advise_hugepages(ptr: int, nbytes: int) -> None:
    """Ask the kernel to back a fresh (untouched) buffer with transparent huge pages.

    Outputs of the solver are fresh allocations whose pages are first touched by the solver;
    with 4 KiB pages their page faults cost about as much as the solve itself at tens of MiB
    (docs/performance.md). This is what torch's ``THP_MEM_ALLOC_ENABLE=1`` does for its own
    allocations; it is a hint, harmless if ignored. Only the 2 MiB-aligned interior of buffers
    of at least ``HUGE_MIN`` bytes is advised, on Linux with transparent huge pages on request
    (the extension's ``advise_hugepages``, which the torch autograd node calls too).
    """
    if nbytes >= HUGE_MIN:
        _ext().advise_hugepages(ptr, nbytes)


def empty(shape, dtype) -> np.ndarray:
    """``np.empty`` whose large buffers are backed by huge pages (:func:`advise_hugepages`)."""
    a = np.empty(shape, dtype)
    if a.nbytes >= HUGE_MIN:
        advise_hugepages(a.__array_interface__["data"][0], a.nbytes)
    return a


# ---------------------------------------------------------------------------------------------
# host drivers


def plan(
    taps,
    spatial,
    dilation: int,
    boundary: str,
    transposed: bool,
    cache=None,
    threads: int | None = None,
    *,
    both: bool = False,
):
    """The solve operators of ``taps`` (any array numpy can read, ``(C, k, Q, 3)``) for signals
    with spatial sizes ``spatial``, kept in ``cache`` (a dict, or None) under
    ``("lines", spatial, transposed)``: an opaque ``bytes`` object for the extension.

    With ``both`` and a ``cache``, a missing plan is built together with the other direction's
    (one call to the extension; for a solve whose backward follows: a new filter's forward and
    backward then build their plans once)."""
    key = ("lines", tuple(spatial), bool(transposed))
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    taps64 = np.ascontiguousarray(taps, dtype=np.float64)
    C, k, Q = taps64.shape[:3]
    args = (taps64, C, k, Q, key[1], int(dilation), BOUNDARY_CODES[boundary])
    threads = threads or default_threads()
    if both and cache is not None:
        plans = _ext().plan(*args, 2, threads)
        cache[("lines", key[1], False)], cache[("lines", key[1], True)] = plans
        return plans[int(key[2])]
    out = _ext().plan(*args, int(transposed), threads)
    if cache is not None:
        cache[key] = out
    return out


def _signal(t) -> np.ndarray:
    t = np.ascontiguousarray(t)
    if t.dtype != np.float32 and t.dtype != np.float64:
        raise TypeError(f"the line solver supports float32 and float64, got {t.dtype}")
    return t


def _blocks(shape, k: int) -> int:
    """Number of blocks (batch x channel) of a signal ``(..., C, n_1, ..., n_k)``."""
    P = 1
    for s in shape[: len(shape) - k]:
        P *= int(s)
    return P


def solve(
    t, taps, *, boundary, dilation, adjoint=False, out=None, cache=None, threads=None, backward=False, kernels=None
):
    """``A^{-1} t`` (``A^{-T} t`` when ``adjoint``) with the compiled line solver.

    Parameters
    ----------
    t : ndarray ``(..., C, n_1, ..., n_k)``, float32 or float64 (validated by the caller).
    taps : array ``(C, k, Q, 3)`` numpy can read (a CPU tensor without autograd too: only a plan
        that ``cache`` lacks reads its values), in the strip (``C`` may be 1: every channel).
    out : optional C-contiguous ndarray like ``t`` to write into; ``t`` itself is allowed (each
        block is read into the solver's work copy before any of it is written).
    cache : dict, optional
        Where the plans are kept between calls (:func:`plan`).
    threads : int, optional
        Threads to split the blocks over (default :func:`default_threads`).
    backward : bool
        A backward (:func:`solve_vjp` with the same ``cache``) follows: a missing plan is built
        together with the backward's (``plan(both=True)``).
    kernels : module, optional
        Whose ``solve`` runs (the extension's by default): the torch node's, which runs the
        same kernel with its work on torch's threads (``arma_core.backends.torch``).

    Returns
    -------
    ndarray like ``t``.
    """
    t = _signal(t)
    k = taps.shape[1]
    pl = plan(taps, t.shape[t.ndim - k :], dilation, boundary, adjoint, cache, threads, both=backward)
    if out is None:
        out = empty(t.shape, t.dtype)
    if t.size:
        f32 = t.dtype == np.float32
        threads = _threads(threads, t.size * k * taps.shape[2])
        (kernels or _ext()).solve(t, out, pl, _blocks(t.shape, k), f32, out.dtype == np.float32, bool(adjoint), threads)
    return out


def solve_vjp(
    y, g, taps, *, boundary, dilation, adjoint=False, need_taps=True, out=None, cache=None, threads=None, kernels=None
):
    """Backward of ``y = A^{-1} t`` (of ``A^{-T} t`` when ``adjoint``), Theorem 4 in one pass
    (``kernels``: whose ``vjp`` runs, as :func:`solve`'s; ``out``: where ``grad_t`` goes, as
    :func:`solve`'s, ``g`` itself allowed).

    Returns
    -------
    grad_t : ndarray like ``g`` (``A^{-T} g``, or ``A^{-1} g`` for the adjoint solve).
    grad_taps : ndarray ``(C, k, Q, 3)`` float64, or None when not ``need_taps``.
    """
    g = _signal(g)
    y = np.ascontiguousarray(y, dtype=g.dtype)
    k = taps.shape[1]
    pl = plan(taps, g.shape[g.ndim - k :], dilation, boundary, not adjoint, cache, threads)
    if out is None:
        out = empty(g.shape, g.dtype)
    gtaps = np.zeros(tuple(taps.shape[:3]) + (3,))
    if g.size:
        P = _blocks(g.shape, k)
        threads = _threads(threads, g.size * k * taps.shape[2] * (3 if need_taps else 1))
        (kernels or _ext()).vjp(y, g, out, gtaps, pl, P, g.dtype == np.float32, bool(adjoint), bool(need_taps), threads)
    return out, (gtaps if need_taps else None)

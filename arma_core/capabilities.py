"""The capability table: what runs where, in one declaration.

Every way an operation can run is one :class:`Capability` row of :data:`TABLE`: the operation
(``solve``, ``apply``, ``conv``), the array library (``"*"``: any array-API library), the
method, the kernel that computes it, and what is exact where (boundaries, dilations, dtypes,
devices), the optional dependency it needs, whether it is differentiable, and its place in the
``method="auto"`` rule. Everything else reads this table:

- :func:`resolve` picks the row of a call (explicit ``method`` or ``"auto"``) and raises the
  errors that name what is missing;
- the public functions (:mod:`arma_core.operator`, :func:`arma_core.conv`) call the row's kernel;
- ``arma_core.testing.capability_cases`` parametrizes the tests (one case per row and
  boundary, skipped where the library, its device or the dependency is missing, with the
  stand-in tests named in :attr:`Capability.tested_by`);
- the asv benchmarks skip the cells the table does not have;
- ``docs/backends.md`` is generated from it (``python -m arma_core.capabilities``; a test
  fails when the file is stale).

Adding a method is adding a row (and its kernel). A kernel of ``solve``/``apply`` is called as
``kernel(xp, x, taps, boundary=..., dilation=..., adjoint=..., cache=...)`` on a signal in the
standard layout ``(..., C, n_1, ..., n_k)`` with ``taps (C, k, Q, 3)`` of the signal's real
dtype, already validated; ``cache`` is a dict the kernel may keep its taps-dependent
precomputation in between calls (:class:`arma_core.ARFilter` keeps one per filter). The core
names a backend may use are listed in ``arma_core.backends``' docstring.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._array import library_name
from ._typing import BOUNDARIES

__all__ = ["Capability", "TABLE", "METHODS", "resolve", "rows", "methods", "markdown", "main"]

REAL = ("float32", "float64")
#: the compiled line solver (C, built by the install step when a compiler is present)
LINES_EXTENSION = "arma_core.backends._lines_c"
CIRCULAR = ("circular",)
NO_GPU = "no GPU in CI: the same code runs on numpy, torch CPU and array_api_strict (also on its non-default devices)"


@dataclass(frozen=True)
class Capability:
    """One way an operation runs: a library, a method, its kernel and where it is exact.

    Attributes
    ----------
    operation : {"solve", "apply", "conv"}
        ``solve``: :func:`arma_core.ar_solve` and its adjoint; ``apply``: :func:`arma_core.ar_apply`
        and its adjoint; ``conv``: :func:`arma_core.conv` (the MA part).
    library : str
        ``"numpy"``, ``"torch"``, ``"cupy"``, ``"dask"``, ... or ``"*"`` for any array-API library
        (used where no row of the library itself has the method).
    method : str
        The name a caller passes as ``method=`` (``conv`` and ``apply`` have one each).
    kernel : str
        ``"module:function"`` of the kernel, imported on first use.
    boundaries : tuple of str
        Boundary rules (for ``conv``: padding modes) the method is exact for.
    dtypes : tuple of str
        Real dtypes the kernel computes in (integer and complex signals are promoted and split
        by the core before the kernel is called).
    devices : tuple of str
        ``"cpu"``, ``"cuda"`` or ``"any"`` (wherever the library's arrays live).
    dilations : str
        Which AR dilations are exact (``"any"``: every positive integer).
    requires : tuple of str
        Importable modules the row needs (an optional dependency).
    differentiable : bool
        Gradients flow through it (torch autograd), with the backward of Theorem 4.
    auto : int or None
        Rank in the ``method="auto"`` rule (lower is tried first); None: only when asked for.
    auto_when : str or None
        An extra condition of the auto rule (a key of :data:`AUTO_CONDITIONS`).
    lazy : bool
        The arrays are lazy (dask): the kernel also takes ``check_finite`` and ``name`` (the
        signal's argument name) and checks inside the graph, since values do not exist when
        the call is made.
    strip_only : bool
        Needs every factor in the strip ``|f_-1 + f_1| < |f_0|`` (winding number 0); rows
        without it also take circular factors with a nonzero response outside the strip.
    tested_by : str
        How the row is tested on a machine that cannot run it (no GPU, no optional library).
    note : str
        One line on the algorithm.

    Examples
    --------
    >>> from arma_core.capabilities import TABLE
    >>> row = next(r for r in TABLE if (r.operation, r.library, r.method) == ("solve", "*", "dense"))
    >>> row.boundaries, row.runs_on("cuda"), row.available()
    (('circular', 'zeros', 'reflect', 'replicate'), True, True)
    >>> row.load().__name__
    'dense_kernel'
    """

    operation: str
    library: str
    method: str
    kernel: str
    boundaries: tuple[str, ...] = BOUNDARIES
    dtypes: tuple[str, ...] = REAL
    devices: tuple[str, ...] = ("any",)
    dilations: str = "any"
    requires: tuple[str, ...] = ()
    differentiable: bool = False
    auto: int | None = None
    auto_when: str | None = None
    strip_only: bool = False
    lazy: bool = False
    tested_by: str = ""
    note: str = ""

    def available(self) -> bool:
        """Whether every module in :attr:`requires` can be imported here."""
        return all(_importable(m) for m in self.requires)

    def runs_on(self, device: str) -> bool:
        return "any" in self.devices or device in self.devices

    def load(self) -> Callable[..., Any]:
        """The kernel function (imported on first use)."""
        return _load(self.kernel)


@functools.cache
def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@functools.cache
def _load(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


_LIBRARIES: dict[Any, str] = {}


def _library(xp: Any) -> str:
    """:func:`arma_core._array.library_name`, memoised per namespace."""
    try:
        return _LIBRARIES[xp]
    except (KeyError, TypeError):
        name = library_name(xp)
    try:
        _LIBRARIES[xp] = name
    except TypeError:  # an unhashable namespace object
        pass
    return name


class _Once:
    """``taps()`` computed on the first call only (None when no callable is given)."""

    __slots__ = ("fn", "value", "done")

    def __init__(self, fn: Callable[[], Any] | None):
        self.fn, self.value, self.done = fn, None, fn is None

    def __call__(self) -> Any:
        if not self.done:
            self.value, self.done = self.fn(), True  # type: ignore[misc]
        return self.value


@functools.cache
def _lines_rule() -> Callable[..., bool]:
    # imported on first use (the backends import the core); an import statement in the
    # condition itself costs a microsecond per new filter
    from .backends._lines import preferred

    return preferred


def _lines_preferred(shape, taps, boundary) -> bool:
    return _lines_rule()(shape, taps(), boundary)


#: extra conditions of the auto rule: ``f(standard_shape, host_taps, boundary) -> bool`` where
#: ``host_taps()`` returns the taps as a float64 numpy array (computed once, only if asked)
AUTO_CONDITIONS: dict[str, Callable[..., bool]] = {"lines_preferred": _lines_preferred}

_LINES: dict[str, Any] = dict(
    method="lines",
    devices=("cpu",),
    requires=(LINES_EXTENSION,),
    auto=0,
    auto_when="lines_preferred",
    strip_only=True,
    note="compiled O(N Q) line solver: Thomas recurrences plus a Woodbury edge correction, "
    "one read and one write of the signal",
)
_FFT_NOTE = "one real FFT; the separable denominator built analytically in O(n_1 + ... + n_k)"
_DENSE_NOTE = (
    "per-axis dense inverses (circular: from the spectrum; the others: LU of the "
    "banded factor matrices), applied as batched matrix products"
)

TABLE: tuple[Capability, ...] = (
    # ---- solve: A^{-1} t and A^{-T} t
    Capability("solve", "numpy", kernel="arma_core.backends.numpy_scipy:lines_kernel", **_LINES),
    Capability(
        "solve",
        "numpy",
        "fft",
        "arma_core.backends.numpy_scipy:fft_kernel",
        CIRCULAR,
        devices=("cpu",),
        requires=("scipy",),
        auto=1,
        note=_FFT_NOTE + " with scipy.fft (float32 in single precision, honours set_workers)",
    ),
    Capability(
        "solve",
        "torch",
        kernel="arma_core.backends.torch:lines_kernel",
        differentiable=True,
        **{
            **_LINES,
            "note": _LINES["note"] + "; a layer's solve is one compiled autograd node where "
            "arma_core.backends._lines_torch is built (else the same kernels in a Python autograd.Function)",
        },
    ),
    Capability(
        "solve",
        "torch",
        "fft",
        "arma_core.backends.torch:fft_kernel",
        CIRCULAR,
        devices=("cpu", "cuda"),
        differentiable=True,
        auto=1,
        tested_by="CPU tensors (CUDA: " + NO_GPU + ")",
        note=_FFT_NOTE + "; backward in the Fourier domain",
    ),
    Capability(
        "solve",
        "torch",
        "dense",
        "arma_core.backends.torch:dense_kernel",
        devices=("cpu", "cuda"),
        differentiable=True,
        auto=2,
        tested_by="CPU tensors (CUDA: " + NO_GPU + ")",
        note=_DENSE_NOTE + "; backward of Theorem 4 by forward shifts",
    ),
    Capability(
        "solve",
        "dask",
        kernel="arma_core.backends.dask:solve_lines",
        lazy=True,
        **{**_LINES, "note": "the numpy line solver, chunk by chunk (dask.array.map_blocks)"},
    ),
    Capability(
        "solve",
        "dask",
        "fft",
        "arma_core.backends.dask:solve_fft",
        CIRCULAR,
        auto=1,
        lazy=True,
        note="the chunk library's fft, chunk by chunk",
    ),
    Capability(
        "solve",
        "dask",
        "dense",
        "arma_core.backends.dask:solve_dense",
        auto=2,
        lazy=True,
        note="the chunk library's dense solve, chunk by chunk",
    ),
    Capability(
        "solve",
        "cupy",
        "fft",
        "arma_core.solve:fft_kernel",
        CIRCULAR,
        devices=("cuda",),
        auto=1,
        tested_by=NO_GPU,
        note=_FFT_NOTE + " (cupy.fft)",
    ),
    Capability(
        "solve",
        "cupy",
        "dense",
        "arma_core.solve:dense_kernel",
        devices=("cuda",),
        auto=2,
        tested_by=NO_GPU,
        note=_DENSE_NOTE + " (cupy.linalg)",
    ),
    Capability(
        "solve",
        "*",
        "fft",
        "arma_core.solve:fft_kernel",
        CIRCULAR,
        auto=1,
        tested_by="array_api_strict (and jax where installed)",
        note=_FFT_NOTE,
    ),
    Capability(
        "solve",
        "*",
        "dense",
        "arma_core.solve:dense_kernel",
        auto=2,
        tested_by="array_api_strict (and jax where installed)",
        note=_DENSE_NOTE,
    ),
    # ---- apply: A y and A^T z
    Capability(
        "apply",
        "dask",
        "direct",
        "arma_core.backends.dask:apply_direct",
        auto=0,
        lazy=True,
        note="the generic shifts, chunk by chunk",
    ),
    Capability(
        "apply",
        "torch",
        "direct",
        "arma_core.apply:apply_kernel",
        differentiable=True,
        auto=0,
        tested_by="CPU tensors (" + NO_GPU + ")",
        note="shifted copies (roll / gather), differentiable by torch's autograd",
    ),
    Capability(
        "apply",
        "*",
        "direct",
        "arma_core.apply:apply_kernel",
        auto=0,
        tested_by="numpy, array_api_strict (and cupy, jax where present)",
        note="shifted copies (roll / gather by the boundary's index map)",
    ),
    # ---- conv: the MA part
    Capability(
        "conv",
        "torch",
        "native",
        "arma_core.backends.torch:conv_kernel",
        devices=("cpu", "cuda"),
        differentiable=True,
        auto=0,
        tested_by="CPU tensors (" + NO_GPU + ")",
        note="torch.nn.functional.conv1d/2d/3d (F.pad first for non-zero modes)",
    ),
    Capability(
        "conv",
        "*",
        "generic",
        "arma_core.conv:generic_kernel",
        auto=0,
        tested_by="numpy, array_api_strict (and cupy, jax where present)",
        note="pad once, then matmuls over chunks of kernel offsets",
    ),
)

#: the methods a caller may name, per operation
METHODS: dict[str, tuple[str, ...]] = {
    op: ("auto",) + tuple(dict.fromkeys(r.method for r in TABLE if r.operation == op))
    for op in ("solve", "apply", "conv")
}


def rows(operation: str, library: str | None = None) -> list[Capability]:
    """The rows of ``operation`` (of ``library`` and ``"*"`` when given), in table order.

    Examples
    --------
    >>> from arma_core.capabilities import rows
    >>> [(r.library, r.method) for r in rows("solve", "numpy")]
    [('numpy', 'lines'), ('numpy', 'fft'), ('*', 'fft'), ('*', 'dense')]
    """
    return [r for r in TABLE if r.operation == operation and (library is None or r.library in (library, "*"))]


def _candidates(operation: str, library: str) -> list[Capability]:
    """The library's available rows, then the generic rows of methods it does not have."""
    own = [r for r in TABLE if r.operation == operation and r.library == library and r.available()]
    have = {r.method for r in own}
    generic = [
        r for r in TABLE if r.operation == operation and r.library == "*" and r.method not in have and r.available()
    ]
    return own + generic


@functools.cache
def _auto_order(operation: str, library: str, importable: Callable[[str], bool]) -> tuple[Capability, ...]:
    """The candidates of the auto rule, by rank. What is installed does not change while a
    process runs; ``importable`` (the current :func:`_importable`) is part of the key so that
    a test that replaces it sees its own answer."""
    cands = [r for r in _candidates(operation, library) if r.auto is not None]
    return tuple(sorted(cands, key=lambda r: int(r.auto or 0)))


@functools.cache
def _auto_rows(
    operation: str, library: str, boundary: str | None, dtype: str | None, device: str, importable: Callable
) -> tuple[Capability, ...]:
    """The rows of :func:`_auto_order` that can run a call, before their conditions (which
    depend on the taps and the shape)."""
    order = _auto_order(operation, library, importable)
    return tuple(r for r in order if _check_row(r, boundary, dtype, device, operation) is None)


def methods(operation: str, library: str, boundary: str | None = None) -> tuple[str, ...]:
    """The methods ``library`` can run here for ``operation`` (exact for ``boundary`` if given).

    Examples
    --------
    >>> from arma_core.capabilities import methods
    >>> "dense" in methods("solve", "numpy", "reflect") and "fft" not in methods("solve", "numpy", "reflect")
    True
    """
    return tuple(
        dict.fromkeys(r.method for r in _candidates(operation, library) if boundary is None or boundary in r.boundaries)
    )


def _check_row(row: Capability, boundary: str | None, dtype: str | None, device: str, operation: str) -> str | None:
    """Why ``row`` cannot run this call, or None."""
    if not row.runs_on(device):
        return f"method={row.method!r} runs on {', '.join(row.devices)} only, got an array on {device}"
    if dtype is not None and dtype not in row.dtypes:
        return f"method={row.method!r} supports {', '.join(row.dtypes)}, got {dtype}"
    if boundary is not None and boundary not in row.boundaries:
        what = "padding_mode" if operation == "conv" else "boundary"
        return (
            f"method={row.method!r} is exact only for {what} in {row.boundaries}, "
            f"got {what}={boundary!r}; use method='dense' or 'auto'"
        )
    return None


def _missing(operation: str, method: str, library: str) -> str:
    """The error text for a method with no usable row for ``library``."""
    mine = [r for r in TABLE if r.operation == operation and r.method == method and r.library in (library, "*")]
    for r in mine:
        if not r.available():
            need = ", ".join(m for m in r.requires if not _importable(m))
            if LINES_EXTENSION in r.requires:
                return (
                    f"method={method!r} needs the compiled line solver ({LINES_EXTENSION}), which was "
                    "not built when arma-nets was installed (reinstall it with a C compiler present)"
                )
            return f"method={method!r} needs {need}, which is not installed"
    where = sorted({r.library for r in TABLE if r.operation == operation and r.method == method})
    return f"method={method!r} does not run on {library} arrays (it runs on: {', '.join(where)}); use method='auto'"


def resolve(
    operation: str,
    xp: Any,
    *,
    method: str = "auto",
    boundary: str | None = None,
    dtype: str | None = None,
    device: str = "cpu",
    shape: Sequence[int] = (),
    taps: Callable[[], Any] | None = None,
) -> Capability:
    """The row that runs one call.

    Parameters
    ----------
    operation : {"solve", "apply", "conv"}
    xp : namespace
        The signal's array namespace.
    method : str
        A method of :data:`METHODS` for the operation, or ``"auto"``.
    boundary : str, optional
        The boundary rule (``conv``: the padding mode).
    dtype : str, optional
        The real dtype the kernel computes in (``"float32"``, ``"float64"``).
    device : str
        ``"cpu"``, ``"cuda"``, ... (:func:`arma_core._array.device_kind`).
    shape : sequence of int
        The signal's standard-layout shape (for the auto rule's conditions).
    taps : callable, optional
        Returns the taps as a float64 numpy array (only called by conditions that need it).

    Raises
    ------
    ValueError
        Unknown method, a method without a row for this library, device or dtype, a missing
        optional dependency, or a boundary the method is not exact for (each message says which).

    Examples
    --------
    >>> import numpy as np
    >>> from array_api_compat import array_namespace
    >>> from arma_core.capabilities import resolve
    >>> xp = array_namespace(np.zeros(1))
    >>> row = resolve("solve", xp, method="fft", boundary="circular", dtype="float64")
    >>> row.library, row.kernel
    ('numpy', 'arma_core.backends.numpy_scipy:fft_kernel')
    >>> resolve("solve", xp, method="fft", boundary="reflect")    # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: method='fft' is exact only for boundary in ('circular',), got boundary='reflect'; ...
    """
    library = _library(xp)
    known = METHODS[operation]
    if not isinstance(method, str) or method not in known:
        raise ValueError(f"method={method!r} is not one of {', '.join(repr(m) for m in known)}")
    if method != "auto":
        cands = _candidates(operation, library)
        mine = [r for r in cands if r.method == method]
        if not mine:
            raise ValueError(_missing(operation, method, library))
        reasons = [_check_row(r, boundary, dtype, device, operation) for r in mine]
        for r, why in zip(mine, reasons):
            if why is None:
                return r
        raise ValueError(reasons[0])
    host = _Once(taps)
    try:
        runs = _auto_rows(operation, library, boundary, dtype, device, _importable)
    except TypeError:  # an unhashable argument: checked here
        runs = _auto_rows.__wrapped__(operation, library, boundary, dtype, device, _importable)
    for r in runs:
        if r.auto_when is None or AUTO_CONDITIONS[r.auto_when](tuple(shape), host, boundary):
            return r
    raise ValueError(
        f"no method runs {operation} for {library} arrays on {device} with dtype {dtype} and boundary {boundary!r}"
    )


# ---------------------------------------------------------------------------------------------
# docs/backends.md


def _cell(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "-"


def markdown() -> str:
    """``docs/backends.md``: the table, one section per operation.

    Returns
    -------
    str
        Markdown, one table per operation with one line per row of :data:`TABLE`.

    Examples
    --------
    >>> from arma_core.capabilities import markdown
    >>> text = markdown()
    >>> text.splitlines()[0]
    '# Backends: what runs where'
    >>> "| `*` | `dense` |" in text
    True
    """
    out = [
        "# Backends: what runs where",
        "",
        "Generated from `arma_core.capabilities.TABLE` by `python -m arma_core.capabilities "
        "> docs/backends.md`; a test fails when this file is stale. `*` is any array-API "
        "library (array-api-strict, jax, ...) for the methods its own rows do not cover. "
        '`auto` gives the rank in the `method="auto"` rule (lower first; a condition must '
        "hold too). Every row is exact (relative error below 1e-10 in float64, 1e-5 in float32, "
        "against `arma_core.reference`) for the boundaries it lists, for every dilation.",
        "",
    ]
    titles = {
        "solve": "## `ar_solve`, `ar_solve_adjoint`, `ARFilter.solve`",
        "apply": "## `ar_apply`, `ar_apply_adjoint`, `ARFilter.apply`",
        "conv": "## `conv` (the MA part of `arma`)",
    }
    head = [
        "library",
        "method",
        "boundaries",
        "dtypes",
        "devices",
        "dilations",
        "needs",
        "autograd",
        "auto",
        "tested here by",
        "algorithm",
    ]
    for op, title in titles.items():
        out += [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows(op):
            auto = "-" if r.auto is None else str(r.auto) + (f" if {r.auto_when}" if r.auto_when else "")
            if r.strip_only:
                auto += " (strip taps only)"
            cells = [
                f"`{r.library}`",
                f"`{r.method}`",
                _cell(r.boundaries),
                _cell(r.dtypes),
                _cell(r.devices),
                r.dilations,
                _cell(r.requires),
                "yes" if r.differentiable else "no",
                auto,
                r.tested_by or r.library,
                r.note,
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += [
        "Conditions of the auto rule:",
        "",
        "- `lines_preferred`: every factor in the strip, `|f_-1 - f_1| <= 16 |f_0|` for the "
        "boundaries with an edge correction (the line solver's accuracy bound), and for 1-D "
        "`circular` signals at least `4 Q` rows per channel (`arma_core.backends._lines.preferred`).",
        "",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print :func:`markdown` (``python -m arma_core.capabilities > docs/backends.md``).

    Parameters
    ----------
    argv : sequence of str, optional
        Unused (the command has no options).

    Returns
    -------
    int
        The exit status, 0.

    Examples
    --------
    >>> from arma_core.capabilities import main
    >>> main()    # doctest: +ELLIPSIS
    # Backends: what runs where
    ...
    0
    """
    print(markdown(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

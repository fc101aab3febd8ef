"""``arma erf``: effective receptive fields of linear ARMA networks (the paper's Figure 3).

Computes the exact 2-D ERF map (Definition 2, :func:`arma_core.erf.linear_erf`) of linear ARMA
networks for every depth ``L`` and AR coefficient ``a``, writes the grid of maps as a PNG and
prints a table of radii - measured (Eq. 3 and the variance form) against Theorem 3's Eq. 4 (or
the two-sided closed form of ``docs/erf.md``) and against a plain convolutional network of the
same depth.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from .erf import (
    axis_radii,
    linear_erf,
    radius,
    required_size,
    separable_radius,
    theorem3_radius,
    uniform_layer,
    variance_radius,
)

__all__ = ["compute", "format_table", "plot", "main", "DEFAULT_OUTPUT"]

#: where ``arma erf`` writes its figure unless ``--output`` says otherwise
DEFAULT_OUTPUT = os.path.join("out", "erf.png")

_DESCRIPTION = """\
Effective receptive fields of linear ARMA networks (Figure 3 of Su et al., NeurIPS 2020).

For every depth L and AR coefficient a this builds a one-channel 2-D linear network of L
layers, each a uniform KxK moving average (dilation d) followed by an AR solve with the same
length-3 factor along both axes, computes its exact ERF at the centre pixel (the gradient of
the output pixel w.r.t. the input, through arma_core.ar_solve_adjoint and arma_core.conv),
prints a table of radii and saves the grid of ERF maps as a PNG.

AR factor for coefficient a (--ar):
  causal     taps (f_-1, f_0, f_1) = (0, 1, -a), i.e. y[i] - a y[i-1], and a causal MA
             x[i], x[i-d], ..., x[i-d(K-1)] on both axes: Theorem 3's network per axis.
             Per-axis radius (Eq. 4): sqrt(L (d^2 (K^2-1)/12 + a/(1-a)^2)).
  symmetric  taps (-a/2, 1, -a/2) and a centred MA: the same stability margin 1 - a, an ERF
             centred on the pixel. Per-axis radius (docs/erf.md):
             sqrt(L (d^2 (K^2-1)/12 + a/(1-a))).
"""

_EPILOG = """\
table columns:
  size     side of the square map (auto: the size rule of arma_core.erf.required_size, so that
           truncation changes the radii by less than ~tol; at least --min-size)
  r_Eq3    Eq. 3 of the paper on the 2-D map: standard deviation of the distance |p|
  r_var    sqrt(Var_rows + Var_cols): Theorem 3's quantity summed over both axes
  r_axis   standard deviation along one axis (rows) of the measured map
  Eq.4     per-axis Theorem 3 (--ar causal; "closed" for --ar symmetric, docs/erf.md),
           to compare with r_axis; err = r_axis / Eq.4 - 1
  conv     the same measurements for L plain centred uniform KxK convolutions (no AR)
  gain     r_var / conv r_var

example:
  arma erf                                  # Figure 3: L = 1 3 5, a = 0 .6 .8 .9, 3x3, causal
  arma erf --ar symmetric -o out/erf_sym.png
  arma erf -L 1 2 4 -a 0 0.5 0.95 -k 5 -d 2 --boundary circular
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arma erf",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-L",
        "--depths",
        type=int,
        nargs="+",
        default=[1, 3, 5],
        metavar="L",
        help="network depths, one row of the figure each (default: 1 3 5)",
    )
    p.add_argument(
        "-a",
        "--coefficients",
        type=float,
        nargs="+",
        default=[0.0, 0.6, 0.8, 0.9],
        metavar="A",
        help="AR coefficients 0 <= a < 1, one column each (default: 0 0.6 0.8 0.9)",
    )
    p.add_argument("-k", "--kernel-size", type=int, default=3, metavar="K", help="odd MA kernel size K (default: 3)")
    p.add_argument("-d", "--dilation", type=int, default=1, metavar="D", help="MA dilation d (default: 1)")
    p.add_argument(
        "--ar",
        choices=("causal", "symmetric"),
        default="causal",
        help="AR factor for a coefficient a (see above; default: causal)",
    )
    p.add_argument(
        "--boundary",
        choices=("zeros", "circular", "reflect", "replicate"),
        default="zeros",
        help="boundary rule of the AR solves (the MA pads with zeros, or wraps for circular; default: zeros)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=None,
        metavar="N",
        help="side of every map (default: automatic per network, see 'size' below); a size "
        "below the rule truncates the ERF and the radii drop below the theory",
    )
    p.add_argument(
        "--min-size",
        type=int,
        default=65,
        metavar="N",
        help="smallest automatic size (default: 65, i.e. at least 64x64 as in the paper)",
    )
    p.add_argument(
        "--tol",
        type=float,
        default=1e-4,
        help="relative truncation allowed by the automatic size rule (default: 1e-4)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="PATH",
        help=f"PNG to write (default: {DEFAULT_OUTPUT})",
    )
    p.add_argument("--no-plot", action="store_true", help="print the table only (no matplotlib needed)")
    return p


def _check(args, p):
    if any(L < 1 for L in args.depths):
        p.error(f"--depths must be positive, got {args.depths}")
    if any(not (0.0 <= a < 1.0) or not math.isfinite(a) for a in args.coefficients):
        p.error(f"--coefficients must satisfy 0 <= a < 1 (Theorem 3), got {args.coefficients}")
    if args.kernel_size < 1 or args.kernel_size % 2 == 0:
        p.error(f"--kernel-size must be a positive odd integer, got {args.kernel_size}")
    if args.dilation < 1:
        p.error(f"--dilation must be positive, got {args.dilation}")
    if args.size is not None and args.size < 1:
        p.error(f"--size must be positive, got {args.size}")
    if not (0.0 < args.tol < 1.0):
        p.error(f"--tol must be in (0, 1), got {args.tol}")


def _taps(kind: str, a: float):
    return (0.0, 1.0, -a) if kind == "causal" else (-a / 2.0, 1.0, -a / 2.0)


def _theory(kind, K, d, a, L):
    if kind == "causal":
        return theorem3_radius(K, d, a, layers=L)
    return separable_radius(K, d, _taps(kind, a), layers=L)


def _measure(m):
    return {"r_eq3": radius(m), "r_var": variance_radius(m), "r_axis": axis_radii(m)[0]}


def compute(
    depths,
    coefficients,
    kernel_size=3,
    dilation=1,
    ar="causal",
    boundary="zeros",
    size=None,
    min_size=65,
    tol=1e-4,
):
    """ERF maps and radii for every depth ``L`` and coefficient ``a``, and of the plain conv networks.

    Parameters
    ----------
    depths, coefficients : sequence of int, sequence of float
        Network depths ``L`` and AR coefficients ``0 <= a < 1``.
    kernel_size, dilation : int
        Uniform MA kernel size ``K`` (odd) and dilation ``d`` of every layer.
    ar : {"causal", "symmetric"}
        AR factor ``(0, 1, -a)`` with a causal MA, or ``(-a/2, 1, -a/2)`` with a centred MA.
    boundary : {"zeros", "circular", "reflect", "replicate"}
        Boundary rule of the AR solves.
    size : int, optional
        Side of every map; default :func:`arma_core.erf.required_size` with ``tol``, at least
        ``min_size``.
    min_size : int
    tol : float

    Returns
    -------
    list of dict
        One row per ``(L, a)`` (depths outer): ``"L"``, ``"a"``, ``"size"``, ``"map"`` (numpy,
        shape ``(size, size)``), ``"theory"`` (Eq. 4 or the two-sided closed form), the measured
        ``"r_eq3"``, ``"r_var"``, ``"r_axis"``, and ``"conv"`` (the same three radii of ``L``
        plain convolutions).

    Examples
    --------
    >>> from arma_core.erf_cli import compute
    >>> rows = compute([1, 2], [0.0, 0.5], size=33)
    >>> [(r["L"], r["a"], r["map"].shape) for r in rows]
    [(1, 0.0, (33, 33)), (1, 0.5, (33, 33)), (2, 0.0, (33, 33)), (2, 0.5, (33, 33))]
    >>> row = rows[-1]
    >>> round(row["theory"], 3), round(row["r_var"] / row["conv"]["r_var"], 2)    # Eq. 4; gain
    (2.309, 1.99)
    """
    K, d = kernel_size, dilation
    rows = []
    conv = {}
    for L in depths:
        for a in coefficients:
            layers = [
                uniform_layer(K, 2, taps=_taps(ar, a), dilation=d, causal=ar == "causal", boundary=boundary)
                for _ in range(L)
            ]
            n = size if size is not None else max(required_size(layers, tol, minimum=min_size))
            m = np.asarray(linear_erf(layers, (n, n)))
            if L not in conv:
                plain = [uniform_layer(K, 2, dilation=d, boundary=boundary) for _ in range(L)]
                nc = size if size is not None else max(required_size(plain, tol, minimum=min_size))
                conv[L] = _measure(np.asarray(linear_erf(plain, (nc, nc))))
            row = {"L": L, "a": a, "size": n, "map": m, "theory": _theory(ar, K, d, a, L)}
            row.update(_measure(m))
            row["conv"] = conv[L]
            rows.append(row)
    return rows


def format_table(rows, args) -> str:
    """The table ``arma erf`` prints: radii per ``(L, a)`` against theory and plain convolutions.

    Parameters
    ----------
    rows : list of dict
        From :func:`compute`.
    args : argparse.Namespace
        The options the rows were computed with: ``kernel_size``, ``dilation``, ``ar`` and
        ``boundary``.

    Returns
    -------
    str
        A header, one line per row and a legend of the columns.

    Examples
    --------
    >>> from argparse import Namespace
    >>> from arma_core.erf_cli import compute, format_table
    >>> args = Namespace(kernel_size=3, dilation=1, ar="causal", boundary="zeros")
    >>> table = format_table(compute([1], [0.5], size=33), args)
    >>> print(table.splitlines()[3])
     L     a  size   r_Eq3   r_var  r_axis    Eq.4      err conv r_Eq3 conv r_var   gain
    >>> print(table.splitlines()[4])
     1  0.50    33   1.786   2.307   1.632   1.633  -0.085%      0.427      1.155  2.00x
    """
    kind = "Eq.4" if args.ar == "causal" else "closed"
    ma = "causal" if args.ar == "causal" else "centred"
    taps = "(0, 1, -a)" if args.ar == "causal" else "(-a/2, 1, -a/2)"
    lines = [
        f"ERF radii of linear ARMA networks: 2-D, one channel, MA uniform {args.kernel_size}x{args.kernel_size} "
        f"({ma}, dilation {args.dilation}),",
        f"AR taps (f_-1, f_0, f_1) = {taps} on both axes, boundary {args.boundary}",
        "",
        f"{'L':>2} {'a':>5} {'size':>5} {'r_Eq3':>7} {'r_var':>7} {'r_axis':>7} {kind:>7} {'err':>8}"
        f" {'conv r_Eq3':>10} {'conv r_var':>10} {'gain':>6}",
    ]
    for r in rows:
        err = r["r_axis"] / r["theory"] - 1.0 if r["theory"] > 0 else 0.0
        lines.append(
            f"{r['L']:>2} {r['a']:>5.2f} {r['size']:>5d} {r['r_eq3']:>7.3f} {r['r_var']:>7.3f} {r['r_axis']:>7.3f}"
            f" {r['theory']:>7.3f} {100 * err:>7.3f}% {r['conv']['r_eq3']:>10.3f} {r['conv']['r_var']:>10.3f}"
            f" {r['r_var'] / r['conv']['r_var']:>5.2f}x"
        )
    lines += [
        "",
        "r_Eq3: Eq. 3 (std of |p|); r_var: sqrt(Var_rows + Var_cols) (Theorem 3's quantity, both axes);",
        f"r_axis: std along rows; {kind}: per-axis closed form "
        + ("sqrt(L (d^2 (K^2-1)/12 + a/(1-a)^2))" if args.ar == "causal" else "sqrt(L (d^2 (K^2-1)/12 + a/(1-a)))")
        + "; err = r_axis / "
        + kind
        + " - 1;",
        "conv: L plain centred uniform KxK convolutions (no AR); gain = r_var / conv r_var.",
    ]
    return "\n".join(lines)


def _window(rows, mass=0.999):
    """Half-open offset box [lo, hi] (same for both axes) holding ``mass`` of every map."""
    lo, hi = -2, 2
    for r in rows:
        m = r["map"]
        c = m.shape[0] // 2
        for marg in (m.sum(axis=1), m.sum(axis=0)):
            cdf = np.cumsum(marg) / marg.sum()
            a = int(np.searchsorted(cdf, (1 - mass) / 2)) - c
            b = int(np.searchsorted(cdf, 1 - (1 - mass) / 2)) - c
            lo, hi = min(lo, a), max(hi, b)
    return lo - 1, hi + 1


def _crop(m, lo, hi):
    """Offsets ``lo..hi`` on both axes of a centred map, zero outside it."""
    n = m.shape[0]
    c = n // 2
    w = hi - lo + 1
    out = np.zeros((w, w))
    src = slice(max(0, c + lo), min(n, c + hi + 1))
    dst = slice(src.start - (c + lo), src.stop - (c + lo))
    out[dst, dst] = m[src, src]
    return out


def _draw_map(ax, r, lo, hi) -> None:
    """One panel: the map of row ``r`` on offsets ``lo..hi``, the output pixel and its radii."""
    img = _crop(r["map"], lo, hi)
    ax.imshow(
        img / img.max(),
        cmap="magma",
        vmin=0,
        vmax=1,
        interpolation="nearest",
        extent=(lo - 0.5, hi + 0.5, hi + 0.5, lo - 0.5),
    )
    ax.plot([0], [0], marker="+", color="cyan", markersize=7, markeredgewidth=1.2)
    ax.text(
        0.03,
        0.97,
        f"r_var {r['r_var']:.1f}\nEq.3 {r['r_eq3']:.1f}",
        transform=ax.transAxes,
        va="top",
        ha="left",
        color="white",
        fontsize=8,
    )
    ax.tick_params(labelsize=7)


def plot(rows, depths, coefficients, path, args):
    """Write the grid of ERF maps (rows: depths, columns: coefficients) to ``path`` (PNG).

    Parameters
    ----------
    rows : list of dict
        From :func:`compute`, one per ``(L, a)`` of ``depths`` x ``coefficients``.
    depths, coefficients : sequence
        Order of the grid's rows and columns.
    path : str
        The PNG to write (its folder is created).
    args : argparse.Namespace
        ``kernel_size``, ``dilation``, ``ar`` and ``boundary``, for the title.

    Examples
    --------
    >>> import os, tempfile
    >>> from argparse import Namespace
    >>> from arma_core.erf_cli import compute, plot
    >>> args = Namespace(kernel_size=3, dilation=1, ar="causal", boundary="zeros")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     plot(compute([1], [0.5], size=33), [1], [0.5], os.path.join(tmp, "erf.png"), args)
    ...     os.listdir(tmp)
    ['erf.png']
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lo, hi = _window(rows)
    nr, nc = len(depths), len(coefficients)
    fig = Figure(figsize=(2.6 * nc + 0.6, 2.6 * nr + 0.9), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nr, nc, squeeze=False, sharex=True, sharey=True)
    by_key = {(r["L"], r["a"]): r for r in rows}
    for i, L in enumerate(depths):
        for j, a in enumerate(coefficients):
            ax = axes[i][j]
            _draw_map(ax, by_key[(L, a)], lo, hi)
            if i == 0:
                ax.set_title(f"a = {a:g}", fontsize=10)
            if j == 0:
                ax.set_ylabel(f"L = {L}\ninput offset (rows)", fontsize=9)
            if i == nr - 1:
                ax.set_xlabel("input offset (cols)", fontsize=9)
    taps = "(0, 1, -a), causal MA" if args.ar == "causal" else "(-a/2, 1, -a/2), centred MA"
    fig.suptitle(
        f"ERF of linear ARMA networks: {args.kernel_size}x{args.kernel_size} uniform MA, dilation {args.dilation}, "
        f"AR taps {taps}, boundary {args.boundary}\n(each map scaled to its maximum; + marks the output pixel)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fig.savefig(path, format="png")


def main(argv=None) -> int:
    """Entry point of ``arma erf`` / ``python -m arma_core erf``: print the table, write the PNG.

    Parameters
    ----------
    argv : list of str, optional
        The command-line arguments (default ``sys.argv[1:]``); ``arma erf --help`` lists them.

    Returns
    -------
    int
        The exit status (0, or 2 for a usage error, which argparse has printed).

    Examples
    --------
    >>> from arma_core.erf_cli import main
    >>> main(["-L", "1", "-a", "0.5", "--size", "33", "--no-plot"])    # doctest: +ELLIPSIS
    ERF radii of linear ARMA networks: 2-D, one channel, MA uniform 3x3 (causal, dilation 1),
    ...
     1  0.50    33   1.786   2.307   1.632   1.633  -0.085%      0.427      1.155  2.00x
    ...
    0
    """
    p = _parser()
    try:
        args = p.parse_args(argv)
        _check(args, p)
    except SystemExit as exc:  # --help or a usage error: argparse has printed the message
        return int(exc.code or 0)
    depths = list(dict.fromkeys(args.depths))
    coefficients = list(dict.fromkeys(args.coefficients))
    t0 = time.perf_counter()
    rows = compute(
        depths,
        coefficients,
        args.kernel_size,
        args.dilation,
        args.ar,
        args.boundary,
        args.size,
        args.min_size,
        args.tol,
    )
    print(format_table(rows, args))
    if not args.no_plot:
        plot(rows, depths, coefficients, args.output, args)
        print(f"\nERF maps written to {args.output}")
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

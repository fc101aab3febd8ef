"""Issue 5's targets on large tensors, the forward methods side by side, 1-D signals and the
growth of the cost with the image size (``benchmarks/compare.py`` prints them).

Workloads: ``arma_core.nn.AR2d`` (theta drawn once from N(0, 0.5^2), a fixed seed: filters
with a noticeable receptive field and unequal taps, like trained ones), float32, forward and
backward with a random output gradient; ``method="auto"`` unless said. The official algorithm
is ``benchmarks/official_baseline.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from timing import Row, child_json, side_by_side, synchronizer

__all__ = [
    "SHAPES",
    "GOALS",
    "measure_targets",
    "measure_growth",
    "measure_algorithms",
    "measure_1d",
    "child_memory",
    "SIZES",
    "SHAPES_1D",
]

SHAPES = [(32, 64, 64, 64), (4, 16, 256, 256)]
GOALS = {1: 0.5, 2: 1.0, "3q1": 4.0, "3q3": 10.0, 4: 1.5, 5: 1.5, 6: 1.3, 7: 1.15}


# ---------------------------------------------------------------------------------------------
# workloads


def theta_like(m, seed=0):
    """``m.theta`` drawn from N(0, 0.5^2) with a fixed seed (in place); returns ``m``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.theta.copy_(0.5 * torch.randn(m.theta.shape, generator=g))
    return m


def ar_module(C, order=1, boundary="circular", device="cpu"):
    from arma_core.nn import AR2d

    return theta_like(AR2d(C, order=order, boundary=boundary)).to(device)


def layer_taps(C):
    """The float32 taps (C, 2, 1, 3), a NumPy array, of ``AR2d(C)`` with :func:`theta_like`'s
    parameters: what the layers hand the line solver (the kernel benchmarks' coefficients)."""
    import torch

    from arma_core.nn import AR2d

    return theta_like(AR2d(C))._filter(torch.float32).taps.detach().numpy()


def fwd_bwd(fn, x, g):
    """A callable running ``fn(x)`` forward and backward with output gradient ``g``."""

    def run():
        x.grad = None
        fn(x).backward(g)

    return run


def conv3x3(C, device="cpu"):
    import torch

    torch.manual_seed(0)
    return torch.nn.Conv2d(C, C, 3, padding=1, bias=False).to(device)


def auto_choice(x, taps, boundary):
    """The method ``method="auto"`` runs for ``x`` and ``taps`` (the capability table's rule)."""
    from array_api_compat import array_namespace

    from arma_core._array import device_kind, to_numpy
    from arma_core.capabilities import resolve

    dtype = str(x.dtype).replace("torch.", "")
    host = to_numpy(taps)
    row = resolve(
        "solve",
        array_namespace(x),
        boundary=boundary,
        dtype=dtype,
        device=device_kind(x),
        shape=tuple(x.shape),
        taps=lambda: host,
    )
    return row.method


def _no_grad(fn, x):
    import torch

    def run():
        with torch.no_grad():
            fn(x)

    return run


def _numpy_call(fn, x, threads):
    try:
        import scipy.fft as sfft
    except ImportError:
        return lambda: fn(x)

    def run():
        with sfft.set_workers(threads):  # the numpy fft path uses scipy.fft
            fn(x)

    return run


# ---------------------------------------------------------------------------------------------
# the targets of issue 5


def _row(target, shape, what, a, b, goal, clone, le=True, **extra):
    return Row(target=target, shape=shape, what=what, a=a, b=b, ratio=a / b, goal=goal, clone=clone, le=le, **extra)


def _target_ar_vs_conv(shape, tag, x, g, clone, repeats, device, sync):
    import torch

    C = shape[1]
    ar, conv = ar_module(C, device=device), conv3x3(C, device)
    t = side_by_side({"ar": fwd_bwd(ar, x, g), "conv": fwd_bwd(conv, x, g)}, repeats, sync=sync)
    with torch.no_grad():
        choice = auto_choice(x.detach(), ar.taps(), "circular")
    target = 1 if shape == SHAPES[0] else 2
    what = f"AR2d fwd+bwd (auto = {choice}) / conv3x3 fwd+bwd"
    return [_row(target, tag, what, t["ar"], t["conv"], GOALS[target], clone)], ar


def _target_official(shape, tag, x, g, clone, repeats, device, sync):
    from official_baseline import official_ar_solve

    import arma_core as ac

    rows = []
    for Q in (1, 3):
        taps = ar_module(shape[1], order=Q, device=device).taps().detach().requires_grad_(True)
        t3 = side_by_side(
            {
                "ours": fwd_bwd(lambda t, taps=taps: ac.ar_solve(t, taps), x, g),
                "official": fwd_bwd(lambda t, taps=taps: official_ar_solve(t, taps), x, g),
            },
            max(3, repeats // 2),
            sync=sync,
        )
        what = f"official (torch.fft, autograd) / ours, fwd+bwd, Q={Q}"
        goal = GOALS["3q1" if Q == 1 else "3q3"]
        rows.append(_row(3, tag, what, t3["official"], t3["ours"], goal, clone, le=False))
    return rows


def _target_boundaries(shape, tag, x, g, clone, repeats, device, sync):
    import arma_core as ac

    mods = {b: ar_module(shape[1], boundary=b, device=device) for b in ac.BOUNDARIES}
    t4 = side_by_side({b: fwd_bwd(mods[b], x, g) for b in ac.BOUNDARIES}, repeats, sync=sync)
    return [
        _row(4, tag, f"AR2d fwd+bwd {b} / circular", t4[b], t4["circular"], GOALS[4], clone)
        for b in ("zeros", "reflect", "replicate")
    ]


def _target_numpy(tag, ar, x, clone, repeats):
    import arma_core as ac

    taps_t = ar.taps().detach()
    taps_n, xd = taps_t.numpy(), x.detach()
    xn = xd.numpy()
    t5 = side_by_side({"numpy": lambda: ac.ar_solve(xn, taps_n), "torch": lambda: ac.ar_solve(xd, taps_t)}, repeats)
    what = "numpy ar_solve / torch ar_solve (forward, auto)"
    return [_row(5, tag, what, t5["numpy"], t5["torch"], GOALS[5], clone)]


def _target_memory(shape, tag, threads):
    mem = memory_ratio(shape, threads)
    a, b = mem["arma"]["peak_kib"] / 1024, mem["conv"]["peak_kib"] / 1024
    what = "peak memory ARMA2d / Conv2d (fwd+bwd, MiB over baseline)"
    return [_row(6, tag, what, a, b, GOALS[6], None, unit="MiB", tensor_mib=mem["conv"]["tensor_kib"] / 1024)]


def measure_targets(repeats: int, threads: int, device: str = "cpu") -> list[Row]:
    """Targets 1-6 of issue 5 at :data:`SHAPES` (target 5 and the memory of target 6 on the CPU)."""
    import torch

    sync = synchronizer(device)
    rows: list[Row] = []
    for shape in SHAPES:
        tag = "x".join(map(str, shape))
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(shape, generator=gen).to(device).requires_grad_(True)
        g = torch.randn(shape, generator=gen).to(device)
        xd = x.detach()
        clone = side_by_side({"clone": lambda xd=xd: xd.clone()}, max(repeats, 10), sync=sync)["clone"]
        new, ar = _target_ar_vs_conv(shape, tag, x, g, clone, repeats, device, sync)
        rows += new
        rows += _target_official(shape, tag, x, g, clone, repeats, device, sync)
        rows += _target_boundaries(shape, tag, x, g, clone, repeats, device, sync)
        if device == "cpu":
            rows += _target_numpy(tag, ar, x, clone, repeats)
            rows += _target_memory(shape, tag, threads)
        del x, g, xd
    return rows


# ---------------------------------------------------------------------------------------------
# memory (target 6): a child process per measurement


def _status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child_memory(kind: str, shape: tuple, threads: int) -> None:
    """Print the peak RSS increase (KiB) of one forward+backward of ``kind`` on ``shape``."""
    import torch

    from arma_core.nn import ARMA2d

    torch.set_num_threads(threads)
    B, C, H, W = shape
    torch.manual_seed(0)
    layer = conv3x3(C) if kind == "conv" else ARMA2d(C, C, 3, padding=1, bias=False)
    if kind != "conv":
        theta_like(layer.ar)
    # warm up on a small input: loads kernels, fills caches, allocates what is allocated once
    small = torch.randn(1, C, 16, 16, requires_grad=True)
    layer(small).backward(torch.ones(1, C, 16, 16))
    x = torch.randn(shape, requires_grad=True)
    g = torch.randn(shape)
    layer.zero_grad()
    # reset the peak (VmHWM) to the current size (Linux >= 4.0), then read it after the pass
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_kib("VmRSS")
    y = layer(x)
    y.backward(g)
    peak = _status_kib("VmHWM")
    print(json.dumps({"peak_kib": peak - base, "tensor_kib": x.numel() * 4 // 1024}))


# glibc adapts its mmap threshold when a large block is freed: later large buffers then come from
# the heap and stay resident after they are freed, so the peak RSS of one pass would vary by a
# whole tensor from run to run. A fixed threshold returns every large buffer to the system when
# it is freed: the peak RSS is then the peak of live memory, the same in every run.
_CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def memory_ratio(shape, threads) -> dict:
    out = {}
    env = {**os.environ, **_CHILD_ENV}
    script = str(Path(__file__).resolve().parent / "compare.py")
    for kind in ("conv", "arma"):
        args = [script, "--child-memory", kind, "x".join(map(str, shape)), "--threads", str(threads)]
        out[kind] = child_json(args, env)
    return out


# ---------------------------------------------------------------------------------------------
# cost growth (target 7)


SIZES = [64, 128, 256, 512, 1024]
BC = 16


def _growth_fns(n, methods, repeats, threads, dense_max, device):
    import torch
    from official_baseline import official_ar_solve

    import arma_core as ac

    shape = (1, BC, n, n)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(shape, generator=gen).to(device).requires_grad_(True)
    g = torch.randn(shape, generator=gen).to(device)
    xd = x.detach()
    taps = ar_module(BC, device=device).taps().detach().requires_grad_(True)
    taps_n = taps.detach().cpu().numpy()
    xn = xd.cpu().numpy()
    fns = {}
    for m in methods:
        if m == "dense" and n > dense_max:
            continue
        if m == "official":
            fns[("torch", m, "fwd+bwd")] = fwd_bwd(lambda t: official_ar_solve(t, taps), x, g)
            fns[("torch", m, "fwd")] = _no_grad(lambda t: official_ar_solve(t, taps), xd)
            continue
        fns[("torch", m, "fwd+bwd")] = fwd_bwd(lambda t, m=m: ac.ar_solve(t, taps, method=m), x, g)
        fns[("torch", m, "fwd")] = _no_grad(lambda t, m=m: ac.ar_solve(t, taps, method=m), xd)
        if device == "cpu":
            fns[("numpy", m, "fwd")] = _numpy_call(lambda t, m=m: ac.ar_solve(t, taps_n, method=m), xn, threads)
    fns[("torch", "clone", "fwd")] = lambda xd=xd: xd.clone()
    return fns


def measure_growth(repeats: int, threads: int, dense_max: int = 512, device: str = "cpu", sizes=None) -> dict:
    """Times ``{(backend, method, pass): [(H*W, seconds), ...]}`` at B*C = 16, Q = 1, circular."""
    from arma_core.capabilities import methods as available_methods

    lib_methods = available_methods("solve", "torch", "circular")
    methods = [m for m in ("lines", "fft", "dense") if m in lib_methods and (m != "lines" or device == "cpu")]
    methods += ["official", "auto"]
    out: dict = {}
    for n in sizes or SIZES:
        reps = max(3, repeats if n <= 256 else repeats // 2)
        t = side_by_side(
            _growth_fns(n, methods, repeats, threads, dense_max, device), reps, warmup=1, sync=synchronizer(device)
        )
        for key, s in t.items():
            out.setdefault(key, []).append((n * n, s))
    return out


# ---------------------------------------------------------------------------------------------
# the algorithm landscape: every exact forward solve at the two target shapes


def banded_scipy(t, taps):
    """Zero-boundary AR solve with ``scipy.linalg.solve_banded`` (LAPACK gbsv, pivoted banded LU),
    one call per channel, axis and factor with every line of that channel as right-hand sides.
    A benchmark baseline (numpy, dilation 1), not a library method."""
    from scipy.linalg import solve_banded

    B, C, H, W = t.shape
    y = np.array(t, dtype=t.dtype, copy=True)
    for c in range(C):
        for j, n in ((0, H), (1, W)):
            for q in range(taps.shape[2]):
                fm, f0, fp = (float(v) for v in taps[c, j, q])
                ab = np.zeros((3, n), dtype=t.dtype)
                ab[0, 1:] = fm  # a[i, i + 1] multiplies y[i + 1]
                ab[1, :] = f0
                ab[2, :-1] = fp  # a[i + 1, i] multiplies y[i]
                yc = y[:, c]
                if j == 1:  # lines along W: (W, B*H) is a Fortran-ordered view
                    rhs = yc.reshape(-1, W).T
                    y[:, c] = solve_banded((1, 1), ab, rhs, check_finite=False).T.reshape(B, H, W)
                else:
                    rhs = np.moveaxis(yc, 1, 0).reshape(H, -1)
                    sol = solve_banded((1, 1), ab, rhs, check_finite=False)
                    y[:, c] = np.moveaxis(sol.reshape(H, B, W), 0, 1)
    return y


def _algorithm_fns(boundary, xd, xn, taps, taps_n, threads):
    import arma_core as ac
    from arma_core.capabilities import methods as available_methods

    fns = {}
    for backend, lib in (("torch", "torch"), ("numpy", "numpy")):
        for m in available_methods("solve", lib, boundary):
            if backend == "torch":
                fns[(backend, m)] = _no_grad(lambda t, m=m: ac.ar_solve(t, taps, boundary=boundary, method=m), xd)
            else:
                fns[(backend, m)] = _numpy_call(
                    lambda t, m=m: ac.ar_solve(t, taps_n, boundary=boundary, method=m), xn, threads
                )
    if boundary == "zeros":
        ref = ac.ar_solve(xn.astype(np.float64), taps_n.astype(np.float64), boundary="zeros")
        got = banded_scipy(xn, taps_n)
        assert np.max(np.abs(got - ref)) < 1e-4 * np.max(np.abs(ref)), "solve_banded baseline is wrong"
        fns[("numpy", "scipy solve_banded")] = lambda: banded_scipy(xn, taps_n)
    return fns


def measure_algorithms(repeats: int, threads: int) -> list[tuple]:
    """``[(shape, boundary, backend, method, seconds, seconds / clone)]``: forward, Q = 1 (CPU)."""
    import torch

    out = []
    for shape in SHAPES:
        gen = torch.Generator().manual_seed(3)
        xd = torch.randn(shape, generator=gen)
        xn = xd.numpy()
        taps = ar_module(shape[1]).taps().detach()
        taps_n = taps.numpy()
        clone = side_by_side({"clone": lambda xd=xd: xd.clone()}, 10)["clone"]
        for boundary in ("circular", "zeros"):
            t = side_by_side(_algorithm_fns(boundary, xd, xn, taps, taps_n, threads), max(3, repeats // 3))
            for (backend, m), sec in t.items():
                out.append(("x".join(map(str, shape)), boundary, backend, m, sec, sec / clone))
    return out


#: 1-D signals for the table behind ``_lines.MIN_ROWS_1D``: (rows per channel, channels, n)
SHAPES_1D = [(b, 16, n) for n in (1024, 16384, 65536) for b in (1, 2, 4, 8)]


def measure_1d(repeats: int, threads: int) -> list[tuple]:
    """``[(shape, Q, lines seconds, fft seconds)]``: numpy, circular, float32, forward; empty
    without the compiled line solver."""
    import arma_core as ac
    from arma_core.backends import _lines

    out = []
    if not _lines.available():
        return out
    rng = np.random.default_rng(5)
    for shape in SHAPES_1D:
        B, C, n = shape
        x = rng.standard_normal(shape).astype(np.float32)
        for Q in (1, 3):
            taps = np.asarray(ac.reparameterize(0.5 * rng.standard_normal((C, 1, Q, 2)))).astype(np.float32)
            fns = {
                m: _numpy_call(lambda t, m=m: ac.ar_solve(t, taps, boundary="circular", method=m), x, threads)
                for m in ("lines", "fft")
            }
            t = side_by_side(fns, max(3, repeats // 3))
            out.append(("x".join(map(str, shape)), Q, t["lines"], t["fft"]))
    return out

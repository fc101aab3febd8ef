"""Side-by-side speed and memory of the AR solve against its baselines (issue 5, targets 1-7).

Run from the repository root::

    .venv/bin/python benchmarks/compare.py                      # the table (a few minutes)
    .venv/bin/python benchmarks/compare.py --plot docs/performance.png --markdown out/perf.md

Every ratio is measured in one process, the compared workloads timed in alternating blocks
(:func:`side_by_side`) and summarised by their medians; each time is also given as a multiple of one
``x.clone()`` of the same tensor (one read and one write: the limit an exact solve could
reach). Memory (target 6) is the peak resident set of a fresh subprocess over its baseline,
with glibc's mmap threshold fixed so that freed buffers leave the resident set (see
``_CHILD_ENV``).
The environment (versions, threads, load average, allocator variables) is printed first:
timings on a machine shared with other work are noisy, so measure when the load average is
low and read the ratios, not the absolute times.

Workloads: ``arma_core.nn.AR2d`` (theta drawn once from N(0, 0.5^2), a fixed seed: filters
with a noticeable receptive field and unequal taps, like trained ones), float32, forward and
backward with a random output gradient; ``method="auto"`` unless said. The official algorithm
is ``benchmarks/official_baseline.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SHAPES = [(32, 64, 64, 64), (4, 16, 256, 256)]
GOALS = {1: 0.5, 2: 1.0, "3q1": 4.0, "3q3": 10.0, 4: 1.5, 5: 1.5, 6: 1.3, 7: 1.15}


# ---------------------------------------------------------------------------------------------
# timing


def side_by_side(fns: dict, repeats: int, warmup: int = 1, rounds: int = 3) -> dict:
    """Median seconds of each callable, measured in alternating blocks in this process.

    ``rounds`` times, each callable in turn runs ``warmup`` untimed calls then about
    ``repeats / rounds`` timed calls in a row (a block), so slow drifts of the machine hit all
    of them alike while each block runs in the steady state of a training loop (its own
    allocations recycled, its caches warm) rather than right after another workload's.
    """
    per = max(1, -(-repeats // rounds))
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            for _ in range(warmup):
                f()
            for _ in range(per):
                t0 = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(v)) for name, v in times.items()}


def environment(threads: int) -> dict:
    import torch

    import arma_core
    from arma_core.backends import _lines

    env = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {_cpu_model()} ({os.cpu_count()} logical CPUs)",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "arma-nets": arma_core.__version__,
        "torch threads": torch.get_num_threads(),
        "numba": _version("numba") + (" (lines available)" if _lines.available() else " (lines unavailable)"),
        "scipy": _version("scipy"),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE", "(unset)"),
        "load average (1, 5, 15 min)": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
    if _lines.available():
        import numba

        env["numba threads"] = numba.get_num_threads()
        env["numba threading layer"] = _numba_layer()
    return env


def _version(name):
    try:
        return __import__(name).__version__
    except ImportError:
        return "not installed"


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _numba_layer():
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return "(not initialised)"


# ---------------------------------------------------------------------------------------------
# workloads


def _theta_like(m, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.theta.copy_(0.5 * torch.randn(m.theta.shape, generator=g))
    return m


def ar_module(C, order=1, boundary="circular"):
    from arma_core.nn import AR2d

    return _theta_like(AR2d(C, order=order, boundary=boundary))


def fwd_bwd(fn, x, g):
    """A callable running ``fn(x)`` forward and backward with output gradient ``g``."""

    def run():
        x.grad = None
        fn(x).backward(g)

    return run


def solve_auto(x, taps, boundary):
    import arma_core as ac

    return lambda t: ac.ar_solve(t, taps, boundary=boundary)


def official(taps):
    from official_baseline import official_ar_solve

    return lambda t: official_ar_solve(t, taps)


def taps_of(m):
    return m.taps()


def conv3x3(C):
    import torch

    torch.manual_seed(0)
    return torch.nn.Conv2d(C, C, 3, padding=1, bias=False)


def auto_choice(x, taps, boundary):
    from array_api_compat import array_namespace

    from arma_core.solve import choose_method

    return choose_method(array_namespace(x), x, taps, boundary, 1)


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
    layer = conv3x3(C) if kind == "conv" else _ar_in(ARMA2d(C, C, 3, padding=1, bias=False))
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


def _ar_in(m):
    _theta_like(m.ar)
    return m


# glibc adapts its mmap threshold when a large block is freed: later large buffers then come from
# the heap and stay resident after they are freed, so the peak RSS of one pass varied by a whole
# tensor from run to run (4x16x256x256: Conv2d 72 or 88 MiB, ARMA2d 90, 107 or 120 MiB). A fixed
# threshold returns every large buffer to the system when it is freed: the peak RSS is then the
# peak of live memory, the same in every run (73.4 / 89.7 MiB).
_CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def memory_ratio(shape, threads) -> dict:
    out = {}
    env = {**os.environ, **_CHILD_ENV}
    for kind in ("conv", "arma"):
        res = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child-memory",
                kind,
                "x".join(map(str, shape)),
                "--threads",
                str(threads),
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        out[kind] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# ---------------------------------------------------------------------------------------------
# the targets


def fmt_ms(s):
    return f"{s * 1e3:.1f} ms"


def measure_targets(repeats: int, threads: int) -> list[dict]:
    import torch

    import arma_core as ac

    rows = []
    for shape in SHAPES:
        B, C, H, W = shape
        tag = "x".join(map(str, shape))
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(shape, generator=gen).requires_grad_(True)
        g = torch.randn(shape, generator=gen)
        xd = x.detach()
        clone = side_by_side({"clone": lambda xd=xd: xd.clone()}, max(repeats, 10))["clone"]

        # 1, 2: AR2d fwd+bwd vs conv 3x3 fwd+bwd
        ar = ar_module(C)
        conv = conv3x3(C)
        t = side_by_side({"ar": fwd_bwd(ar, x, g), "conv": fwd_bwd(conv, x, g)}, repeats)
        with torch.no_grad():
            choice = auto_choice(xd, ar.taps(), "circular")
        rows.append(
            dict(
                target=1 if shape == SHAPES[0] else 2,
                shape=tag,
                what=f"AR2d fwd+bwd (auto = {choice}) / conv3x3 fwd+bwd",
                a=t["ar"],
                b=t["conv"],
                ratio=t["ar"] / t["conv"],
                goal=GOALS[1 if shape == SHAPES[0] else 2],
                clone=clone,
                le=True,
            )
        )

        # 3: official algorithm vs ours, Q = 1 and 3
        for Q in (1, 3):
            m = ar_module(C, order=Q)
            taps = m.taps().detach().requires_grad_(True)
            t3 = side_by_side(
                {
                    "ours": fwd_bwd(solve_auto(x, taps, "circular"), x, g),
                    "official": fwd_bwd(official(taps), x, g),
                },
                max(3, repeats // 2),
            )
            rows.append(
                dict(
                    target=3,
                    shape=tag,
                    what=f"official (torch.fft, autograd) / ours, fwd+bwd, Q={Q}",
                    a=t3["official"],
                    b=t3["ours"],
                    ratio=t3["official"] / t3["ours"],
                    goal=GOALS["3q1" if Q == 1 else "3q3"],
                    clone=clone,
                    le=False,
                )
            )

        # 4: other boundaries vs circular
        mods = {b: ar_module(C, boundary=b) for b in ac.BOUNDARIES}
        t4 = side_by_side({b: fwd_bwd(mods[b], x, g) for b in ac.BOUNDARIES}, repeats)
        for b in ("zeros", "reflect", "replicate"):
            rows.append(
                dict(
                    target=4,
                    shape=tag,
                    what=f"AR2d fwd+bwd {b} / circular",
                    a=t4[b],
                    b=t4["circular"],
                    ratio=t4[b] / t4["circular"],
                    goal=GOALS[4],
                    clone=clone,
                    le=True,
                )
            )

        # 5: numpy ar_solve vs torch forward on the same data
        taps_t = ar.taps().detach()
        taps_n = taps_t.numpy()
        xn = xd.numpy()
        t5 = side_by_side(
            {"numpy": lambda: ac.ar_solve(xn, taps_n), "torch": lambda xd=xd: ac.ar_solve(xd, taps_t)}, repeats
        )
        rows.append(
            dict(
                target=5,
                shape=tag,
                what="numpy ar_solve / torch ar_solve (forward, auto)",
                a=t5["numpy"],
                b=t5["torch"],
                ratio=t5["numpy"] / t5["torch"],
                goal=GOALS[5],
                clone=clone,
                le=True,
            )
        )

        # 6: memory
        mem = memory_ratio(shape, threads)
        rows.append(
            dict(
                target=6,
                shape=tag,
                what="peak memory ARMA2d / Conv2d (fwd+bwd, MiB over baseline)",
                a=mem["arma"]["peak_kib"] / 1024,
                b=mem["conv"]["peak_kib"] / 1024,
                ratio=mem["arma"]["peak_kib"] / mem["conv"]["peak_kib"],
                goal=GOALS[6],
                clone=None,
                le=True,
                unit="MiB",
                tensor_mib=mem["conv"]["tensor_kib"] / 1024,
            )
        )
        del x, g, xd
    return rows


# ---------------------------------------------------------------------------------------------
# cost growth (target 7) and the plot


SIZES = [64, 128, 256, 512, 1024]
BC = 16


def measure_growth(repeats: int, threads: int, dense_max: int = 512) -> dict:
    """Times ``{(backend, method, pass): [(H*W, seconds), ...]}`` at B*C = 16, Q = 1, circular."""
    import torch

    import arma_core as ac
    from arma_core.backends import _lines

    methods = (["lines"] if _lines.available() else []) + ["fft", "dense", "official", "auto"]
    out = {}
    for n in SIZES:
        shape = (1, BC, n, n)
        gen = torch.Generator().manual_seed(2)
        x = torch.randn(shape, generator=gen).requires_grad_(True)
        g = torch.randn(shape, generator=gen)
        xd = x.detach()
        xn = xd.numpy()
        ar = ar_module(BC)
        taps = ar.taps().detach().requires_grad_(True)
        taps_n = taps.detach().numpy()
        reps = max(3, repeats if n <= 256 else repeats // 2)
        fns = {}
        for m in methods:
            if m == "dense" and n > dense_max:
                continue
            if m == "official":
                fns[("torch", m, "fwd+bwd")] = fwd_bwd(official(taps), x, g)
                fns[("torch", m, "fwd")] = _no_grad(official(taps), xd)
                continue
            fns[("torch", m, "fwd+bwd")] = fwd_bwd(lambda t, m=m: ac.ar_solve(t, taps, method=m), x, g)
            fns[("torch", m, "fwd")] = _no_grad(lambda t, m=m: ac.ar_solve(t, taps, method=m), xd)
            fns[("numpy", m, "fwd")] = _numpy_call(lambda t, m=m: ac.ar_solve(t, taps_n, method=m), xn, threads)
        fns[("torch", "clone", "fwd")] = lambda xd=xd: xd.clone()
        t = side_by_side(fns, reps, warmup=1)
        for key, s in t.items():
            out.setdefault(key, []).append((n * n, s))
        del x, g, xd, xn
    return out


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


def exponent(points) -> float:
    hw, s = np.array(points).T
    return float(np.polyfit(np.log(hw), np.log(s), 1)[0])


def plot(growth: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    style = {"lines": "o-", "fft": "s-", "dense": "^-", "official": "x--", "clone": "k:", "auto": None}
    for ax, which in zip(axes, ["fwd", "fwd+bwd"]):
        for (backend, method, pas), pts in sorted(growth.items()):
            if pas != which and method != "clone":
                continue
            if method == "auto" or style.get(method) is None:
                continue
            hw, s = np.array(pts).T
            label = f"{backend} {method}" if method != "clone" else "torch x.clone() (one read + write)"
            ls = style[method] if backend == "torch" else style[method].replace("-", ":")
            ax.loglog(hw, s * 1e3, ls, label=f"{label} (slope {exponent(pts):.2f})", alpha=0.85)
        ax.set_xlabel("H * W  (B * C = 16, Q = 1, circular, float32)")
        ax.set_title("forward" if which == "fwd" else "forward + backward (torch autograd)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("time [ms] (median)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


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


def measure_algorithms(repeats: int, threads: int) -> list[tuple]:
    """``[(shape, boundary, backend, method, seconds, seconds / clone)]``: forward, Q = 1."""
    import torch

    import arma_core as ac
    from arma_core.backends import _lines

    out = []
    for shape in SHAPES:
        B, C, H, W = shape
        gen = torch.Generator().manual_seed(3)
        xd = torch.randn(shape, generator=gen)
        xn = xd.numpy()
        taps = ar_module(C).taps().detach()
        taps_n = taps.numpy()
        clone = side_by_side({"clone": lambda xd=xd: xd.clone()}, 10)["clone"]
        for boundary in ("circular", "zeros"):
            fns = {}
            for m in (["lines"] if _lines.available() else []) + ["fft", "dense"]:
                if m == "fft" and boundary != "circular":
                    continue
                fns[("torch", m)] = _no_grad(lambda t, m=m: ac.ar_solve(t, taps, boundary=boundary, method=m), xd)
                fns[("numpy", m)] = _numpy_call(
                    lambda t, m=m: ac.ar_solve(t, taps_n, boundary=boundary, method=m), xn, threads
                )
            if boundary == "zeros":
                ref = ac.ar_solve(xn.astype(np.float64), taps_n.astype(np.float64), boundary="zeros")
                got = banded_scipy(xn, taps_n)
                assert np.max(np.abs(got - ref)) < 1e-4 * np.max(np.abs(ref)), "solve_banded baseline is wrong"
                fns[("numpy", "scipy solve_banded")] = lambda: banded_scipy(xn, taps_n)
            t = side_by_side(fns, max(3, repeats // 3))
            for (backend, m), sec in t.items():
                out.append(("x".join(map(str, shape)), boundary, backend, m, sec, sec / clone))
    return out


#: 1-D signals for the table behind ``_lines.MIN_ROWS_1D``: (rows per channel, channels, n)
SHAPES_1D = [(b, 16, n) for n in (1024, 16384, 65536) for b in (1, 2, 4, 8)]


def measure_1d(repeats: int, threads: int) -> list[tuple]:
    """``[(shape, Q, lines seconds, fft seconds)]``: numpy, circular, float32, forward; empty
    without numba (no line solver to compare)."""
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


def table_1d(rows) -> str:
    from arma_core.backends import _lines

    lines = ["| shape (rows x C x n) | Q | lines | fft | fft / lines | auto |", "|---|---|---|---|---|---|"]
    for shape, Q, tl, tf in rows:
        B, C, n = (int(v) for v in shape.split("x"))
        taps = np.zeros((C, 1, Q, 3))
        taps[..., 1] = 1.0
        auto = "lines" if _lines.preferred((B, C, n), taps, "circular") else "fft"
        lines.append(f"| {shape} | {Q} | {fmt_ms(tl)} | {fmt_ms(tf)} | {tf / tl:.2f} | {auto} |")
    return "\n".join(lines)


def algorithms_table(rows) -> str:
    lines = ["| shape | boundary | backend | method | forward | x clone |", "|---|---|---|---|---|---|"]
    for shape, boundary, backend, m, sec, rel in rows:
        lines.append(f"| {shape} | {boundary} | {backend} | {m} | {fmt_ms(sec)} | {rel:.1f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# output


def table(rows: list[dict], growth: dict | None) -> str:
    lines = [
        "| # | shape | comparison | measured | ratio | goal | met | x clone |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("unit") == "MiB":
            measured = f"{r['a']:.0f} / {r['b']:.0f} MiB (one tensor: {r['tensor_mib']:.0f} MiB)"
            clone = "-"
        else:
            measured = f"{fmt_ms(r['a'])} / {fmt_ms(r['b'])}"
            clone = f"{r['a'] / r['clone']:.1f} / {r['b'] / r['clone']:.1f}"
        goal = f"<= {r['goal']}" if r["le"] else f">= {r['goal']}"
        met = (r["ratio"] <= r["goal"]) if r["le"] else (r["ratio"] >= r["goal"])
        lines.append(
            f"| {r['target']} | {r['shape']} | {r['what']} | {measured} | {r['ratio']:.2f} | {goal} | "
            f"{'yes' if met else 'NO'} | {clone} |"
        )
    if growth:
        for pas in ("fwd+bwd", "fwd"):
            pts = growth.get(("torch", "auto", pas))
            if pts:
                e = exponent(pts)
                lo, hi = pts[0], pts[-1]
                lines.append(
                    f"| 7 | 1x16xHxW, H=W={SIZES[0]}..{SIZES[-1]} | growth of auto (torch, {pas}) in H*W: "
                    f"{fmt_ms(lo[1])} -> {fmt_ms(hi[1])} | fitted exponent | {e:.3f} | <= {GOALS[7]} | "
                    f"{'yes' if e <= GOALS[7] else 'NO'} | - |"
                )
    return "\n".join(lines)


def growth_table(growth: dict) -> str:
    keys = sorted(k for k in growth if k[1] != "clone")
    lines = [
        "| backend | method | pass | " + " | ".join(f"{n}^2" for n in SIZES) + " | exponent |",
        "|---|---|---|" + "---|" * len(SIZES) + "---|",
    ]
    for key in keys:
        pts = dict(growth[key])
        cells = [f"{pts[n * n] * 1e3:.1f}" if n * n in pts else "-" for n in SIZES]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + f" | {exponent(growth[key]):.2f} |")
    pts = dict(growth[("torch", "clone", "fwd")])
    lines.append(
        "| torch | x.clone() | - | "
        + " | ".join(f"{pts[n * n] * 1e3:.2f}" for n in SIZES)
        + f" | {exponent(growth[('torch', 'clone', 'fwd')]):.2f} |"
    )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch (and numba) threads (default 2)")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per comparison (default 15)")
    p.add_argument("--quick", action="store_true", help="3 rounds, smaller growth sweep")
    p.add_argument("--no-growth", action="store_true", help="skip target 7 and the plot")
    p.add_argument(
        "--no-algorithms",
        action="store_true",
        help="skip the tables of every forward method and of 1-D signals",
    )
    p.add_argument("--plot", metavar="PNG", help="write the log-log plot of time vs H*W")
    p.add_argument("--markdown", metavar="MD", help="also write the tables to this file")
    p.add_argument("--child-memory", nargs=2, metavar=("KIND", "SHAPE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.child_memory:
        kind, shape = args.child_memory
        child_memory(kind, tuple(int(v) for v in shape.split("x")), args.threads)
        return
    repeats = 3 if args.quick else args.repeats
    env = environment(args.threads)
    head = "\n".join(f"- {k}: {v}" for k, v in env.items())
    print(head, flush=True)
    rows = measure_targets(repeats, args.threads)
    algos = None if args.no_algorithms else measure_algorithms(repeats, args.threads)
    ones = None if args.no_algorithms else measure_1d(repeats, args.threads)
    growth = None
    if not args.no_growth:
        global SIZES
        if args.quick:
            SIZES = SIZES[:3]
        growth = measure_growth(repeats, args.threads)
    env_after = os.getloadavg()
    out = [head, f"- load average after: {', '.join(f'{v:.2f}' for v in env_after)}", "", table(rows, growth)]
    if algos:
        out += ["", "Every exact forward solve (float32, Q = 1, no autograd):", "", algorithms_table(algos)]
    if ones:
        out += [
            "",
            "1-D circular signals, numpy, float32, forward (the rule `_lines.MIN_ROWS_1D`):",
            "",
            table_1d(ones),
        ]
    if growth:
        out += ["", "Times in ms (median), B*C = 16, Q = 1, circular, float32:", "", growth_table(growth)]
    text = "\n".join(out)
    print()
    print(text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text + "\n")
    if args.plot and growth:
        plot(growth, args.plot)


if __name__ == "__main__":
    main()

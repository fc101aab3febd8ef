"""Issue 13's targets: costs a user meets first (``benchmarks/compare.py`` prints them).

- the fixed cost of a call: ``AR2d`` forward + backward on 1x8x8x8 against a 3x3 convolution,
  and a NumPy ``ar_solve`` of that size in microseconds;
- the layer inside networks: ``ARMA2d`` against ``Conv2d`` (64 -> 128, 3x3), one training step
  of ARMA-LSTM against ConvLSTM at the video experiment's CPU size, and of the ARMA U-Net
  against the U-Net at the segmentation experiment's CPU size (when ``arma_core.nn.models``
  has ``UNet``);
- cold start: the first solve in a fresh process;
- SciPy's filters as baselines: ``scipy.signal.lfilter`` for a causal factor and
  ``scipy.linalg.solve_banded`` for a two-sided one, on 64 x 65,536 float64 samples laid out
  as 64 channels (one filter each) or as a batch of 64 signals of one channel.

AR parameters are drawn from N(0, 0.5^2) with a fixed seed (see ``large.theta_like``).
"""

from __future__ import annotations

import contextlib
import itertools
import os

import numpy as np
from large import conv3x3, fwd_bwd, theta_like
from timing import Row, child_json, side_by_side, synchronizer

__all__ = [
    "GOALS",
    "measure_call_overhead",
    "measure_layers",
    "measure_layers_kept",
    "keep_freed_here",
    "measure_recurrent",
    "measure_unet",
    "measure_cold_start",
    "measure_scipy",
]

#: glibc's settings that keep freed memory in the heap for the next allocation (see
#: :func:`measure_layers_kept`): no trimming of the heap's top below 4 GiB, and blocks below
#: 32 MiB from the heap instead of mappings of their own
KEEP_FREED = {"MALLOC_TRIM_THRESHOLD_": "4294967296", "MALLOC_MMAP_THRESHOLD_": "33554432"}


def keep_freed_here() -> bool:
    """Set :data:`KEEP_FREED`'s two heap settings in this process, through glibc's ``mallopt``
    (the environment variables are read only when a process starts): for benchmarks that
    run in a process of their own, as asv's do. True if glibc took both, False elsewhere
    (another C library, or a glibc without ``mallopt``).

    ``mallopt`` takes an ``int``: the trim threshold becomes 2 GiB - 1 instead of the
    variable's 4 GiB, no difference for tensors of a few MiB. Like the variables, an explicit
    setting also ends glibc's adjustment of the mmap threshold to the sizes it sees freed.
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    trim = min(int(KEEP_FREED["MALLOC_TRIM_THRESHOLD_"]), 2**31 - 1)
    mmap = int(KEEP_FREED["MALLOC_MMAP_THRESHOLD_"])
    return bool(mallopt(m_trim_threshold, trim)) and bool(mallopt(m_mmap_threshold, mmap))


GOALS = {"call": 3.0, "numpy_us": 30.0, "layer": 1.15, "network": 1.2, "cold_s": 2.0, "lfilter": 0.5, "banded": 0.3}


def _row(target, shape, what, a, b, goal, le=True, unit=None):
    ratio = a / b if unit is None else a
    return Row(target=target, shape=shape, what=what, a=a, b=b, ratio=ratio, goal=goal, clone=None, le=le, unit=unit)


def _randomize_ar(model):
    """theta ~ N(0, 0.5^2) in every AR layer of ``model`` (a trained-like receptive field)."""
    for i, m in enumerate(model.modules()):
        if hasattr(m, "theta"):
            theta_like(m, seed=i)
    return model


# ---------------------------------------------------------------------------------------------
# 1: the fixed cost of a call


def new_taps_every_call(x, taps):
    """A callable solving ``x`` with new coefficients on every call: 97 scalings of ``taps``
    in turn, more distinct taps than the functional API keeps (scaling all three taps keeps a
    factor in the strip)."""
    import arma_core as ac

    fresh = [taps * taps.dtype.type(1 - 1e-3 * i) for i in range(97)]
    count = itertools.count()
    return lambda: ac.ar_solve(x, fresh[next(count) % len(fresh)])


def measure_call_overhead(repeats: int, device: str = "cpu") -> list[Row]:
    """AR2d / conv3x3 forward + backward at 1x8x8x8 (theta as it is, and theta changed before
    every call as an optimizer step does), and NumPy ``ar_solve`` at 1x8x8x8 in microseconds."""
    import torch

    import arma_core as ac
    from arma_core.nn import AR2d

    sync = synchronizer(device)
    shape = (1, 8, 8, 8)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(4)).to(device).requires_grad_(True)
    g = torch.randn(shape).to(device)
    ar, conv = theta_like(AR2d(8)).to(device), conv3x3(8, device)

    def stepped():
        with torch.no_grad():
            ar.theta.mul_(-1.0)  # a new theta every call, as after an optimizer step
        fwd_bwd(ar, x, g)()

    n = max(repeats, 20) * 20
    t = side_by_side({"ar": fwd_bwd(ar, x, g), "stepped": stepped, "conv": fwd_bwd(conv, x, g)}, n, sync=sync)
    rows = [
        _row("13.1", "1x8x8x8", "AR2d fwd+bwd / conv3x3 fwd+bwd", t["ar"], t["conv"], GOALS["call"]),
        _row(
            "13.1",
            "1x8x8x8",
            "AR2d fwd+bwd, theta changed every call / conv3x3 fwd+bwd",
            t["stepped"],
            t["conv"],
            GOALS["call"],
        ),
    ]
    if device == "cpu":
        xn = x.detach().numpy()
        taps = ar.taps().detach().numpy()
        # absolute times of a few microseconds: the best of 10 blocks' medians (side_by_side)
        fns = {"numpy": lambda: ac.ar_solve(xn, taps), "fresh": new_taps_every_call(xn, taps)}
        tn = side_by_side(fns, n, rounds=10, best_block=True)
        for key, what in (
            ("numpy", "numpy ar_solve (float32, auto), microseconds"),
            ("fresh", "numpy ar_solve, new taps every call, microseconds"),
        ):
            rows.append(_row("13.1", "1x8x8x8", what, tn[key] * 1e6, 1.0, GOALS["numpy_us"], unit="us"))
    return rows


# ---------------------------------------------------------------------------------------------
# 2: the layer in networks

LAYER_SHAPES = [(4, 64, 16, 16), (16, 64, 32, 32), (8, 64, 64, 64)]


def measure_layers(repeats: int, device: str = "cpu") -> list[Row]:
    """ARMA2d(64, 128, 3) / Conv2d(64, 128, 3) forward + backward (inputs and parameters)."""
    import torch

    from arma_core.nn import ARMA2d

    sync = synchronizer(device)
    rows = []
    for shape in LAYER_SHAPES:
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(64, 128, 3, padding=1).to(device)
        arma = _randomize_ar(ARMA2d(64, 128, 3, padding=1)).to(device)
        x = torch.randn(shape).to(device).requires_grad_(True)
        g = torch.randn((shape[0], 128) + shape[2:]).to(device)

        def run(m):
            def step():
                x.grad = None
                m.zero_grad(set_to_none=True)
                m(x).backward(g)

            return step

        reps = repeats if shape[-1] < 64 else max(3, repeats // 2)
        t = side_by_side({"arma": run(arma), "conv": run(conv)}, reps, sync=sync)
        what = "ARMA2d(64, 128, 3) / Conv2d(64, 128, 3), fwd+bwd"
        rows.append(_row("13.2", "x".join(map(str, shape)), what, t["arma"], t["conv"], GOALS["layer"]))
    return rows


_LAYERS_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[3]))
import cost
print(json.dumps(cost.measure_layers(int(sys.argv[2]))))
"""


def layers_in_child(repeats: int, keep: bool, threads: int = 1) -> list[Row]:
    """:func:`measure_layers` in a fresh process (CPU), with :data:`KEEP_FREED` set when
    ``keep`` and removed otherwise, the rest of the environment as it is."""
    env = {k: v for k, v in os.environ.items() if k not in KEEP_FREED}
    if keep:
        env.update(KEEP_FREED)
    here = os.path.dirname(os.path.abspath(__file__))
    return [Row(r) for r in child_json(["-c", _LAYERS_CHILD, here, str(repeats), str(threads)], env)]


def measure_layers_kept(repeats: int, threads: int = 1) -> list[Row]:
    """:func:`measure_layers` with freed memory kept in the heap, both layers alike: the cost of
    the layers themselves, without glibc's page faults.

    With glibc's default settings the 8-16 MiB tensors of a step (the convolution's output and
    gradients, oneDNN's buffers, the AR solve's output and its input's gradient) are often
    returned to the kernel when freed and faulted in again at the next step, in both layers'
    steps, by amounts that depend on the process's history of allocations: 0 to 18,000 minor
    faults a step at 32x32 and 64x64 (docs/performance.md, seventeenth pass). The rows here run
    in a fresh process with :data:`KEEP_FREED` set, which changes nothing but glibc's heap (the
    remedy PyTorch's and Intel's CPU tuning guides give is another allocator, tcmalloc or
    jemalloc, for the same reason). The library itself leaves the allocator alone; the rows of
    :func:`measure_layers` are measured as the process is.
    """
    rows = layers_in_child(repeats, True, threads)
    for r in rows:
        r["what"] += ", freed memory kept"
    return rows


def _training_step(model, opt, loss):
    def step():
        opt.zero_grad(set_to_none=True)
        loss(model).backward()
        opt.step()

    return step


#: the video experiment's CPU preset: 4 blocks x 1 cell x 16 channels, skips every 2 blocks,
#: 3x3 gates, batches of 16 sequences of 10 + 10 frames of 32 x 32
VIDEO_CPU = dict(hidden=16, blocks=4, cells=1, skip=2, batch=16, canvas=32, frames=(10, 10))


def video_case(device: str = "cpu"):
    """The video CPU preset's network and loss: ``(make, loss)``, where ``make(gate=None)``
    builds the ConvLSTM network (``gate``: a gate-convolution factory such as
    ``arma2d_gate()``; None for ``nn.Conv2d``) on ``device`` and ``loss(net)`` is its BCE on a
    fixed batch of random frames."""
    import torch

    from arma_core.nn.models import ConvLSTMNet

    c = VIDEO_CPU
    kw = dict(hidden_channels=(c["hidden"],) * c["blocks"], cells_per_block=c["cells"], skip_stride=c["skip"])

    def make(gate=None):
        net = ConvLSTMNet(**kw) if gate is None else ConvLSTMNet(gate_conv=gate, **kw)
        return net.to(device)

    frames = torch.rand(
        c["batch"], sum(c["frames"]), 1, c["canvas"], c["canvas"], generator=torch.Generator().manual_seed(0)
    )
    frames = frames.to(device)

    def loss(net):
        pred = net(frames, *c["frames"])
        return torch.nn.functional.binary_cross_entropy(pred, frames[:, 1:])

    return make, loss


def network_steps(network: str, device: str = "cpu") -> dict:
    """One Adam step (lr 1e-3) of each network of a network row: ``{"plain": step, "arma":
    step}`` for ``network`` ``"video"`` (ConvLSTM and ARMA-LSTM, 3x3 gates, :func:`video_case`)
    or ``"unet"`` (U-Net and ARMA U-Net, :func:`unet_make`, :func:`unet_loss`); torch's global
    generator seeded with 0 first, the AR parameters drawn as :func:`_randomize_ar` does."""
    import torch

    from arma_core.nn.models import arma2d_gate

    torch.manual_seed(0)
    if network == "video":
        make, loss = video_case(device)
    elif network == "unet":
        make, loss = (lambda gate=None: unet_make(device, gate)), None
    else:
        raise ValueError(f"network must be 'video' or 'unet', got {network!r}")
    nets = {"plain": make(), "arma": _randomize_ar(make(arma2d_gate()))}
    if loss is None:  # the U-Net's data are drawn after the networks
        loss = unet_loss(device)
    return {k: _training_step(n, torch.optim.Adam(n.parameters(), 1e-3), loss) for k, n in nets.items()}


def measure_recurrent(repeats: int, device: str = "cpu") -> list[Row]:
    """One Adam step of ARMA-LSTM / ConvLSTM (3x3 gates) at the video experiment's CPU size."""
    c = VIDEO_CPU
    steps = network_steps("video", device)
    t = side_by_side(steps, max(3, repeats // 3), sync=synchronizer(device))
    shape = f"{c['batch']}x{sum(c['frames'])}x1x{c['canvas']}x{c['canvas']}"
    what = "ARMA-LSTM / ConvLSTM (size 3) training step, video CPU preset"
    return [_row("13.2", shape, what, t["arma"], t["plain"], GOALS["network"])]


#: the segmentation experiment's CPU preset: U-Nets of widths 8-128 on 64 x 64, batches of 16
UNET_CPU = dict(widths=(8, 16, 32, 64, 128), batch=16, size=64, in_channels=1, out_channels=11)


def unet_make(device: str = "cpu", gate=None):
    """The segmentation CPU preset's U-Net on ``device`` (``gate``: a convolution factory such as
    ``arma2d_gate()``; None for ``nn.Conv2d``)."""
    from arma_core.nn.models import UNet

    c = UNET_CPU
    kw = {} if gate is None else {"conv": gate}
    return UNet(c["in_channels"], c["out_channels"], c["widths"], **kw).to(device)


def unet_loss(device: str = "cpu"):
    """``loss(net)``: MSE of a U-Net's output on a batch of random inputs against random targets
    of the CPU preset's sizes (drawn now, from torch's global generator)."""
    import torch

    c = UNET_CPU
    x = torch.randn(c["batch"], c["in_channels"], c["size"], c["size"]).to(device)
    y = torch.randn(c["batch"], c["out_channels"], c["size"], c["size"]).to(device)
    return lambda net: torch.nn.functional.mse_loss(net(x), y)


def measure_unet(repeats: int, device: str = "cpu") -> list[Row]:
    """One Adam step of the ARMA U-Net / U-Net (MSE on random targets) at the segmentation
    experiment's CPU size; nothing when ``arma_core.nn.models`` has no ``UNet``."""
    from arma_core.nn import models

    if not hasattr(models, "UNet"):
        return []
    c = UNET_CPU
    steps = network_steps("unet", device)
    # 5 rounds of alternating blocks: the steps are short (about 0.1 s) and this host's speed drifts
    t = side_by_side(steps, max(15, 2 * repeats), rounds=5, sync=synchronizer(device))
    shape = f"{c['batch']}x{c['in_channels']}x{c['size']}x{c['size']}"
    return [
        _row(
            "13.2",
            shape,
            "ARMA U-Net / U-Net training step, segmentation CPU preset",
            t["arma"],
            t["plain"],
            GOALS["network"],
        )
    ]


# ---------------------------------------------------------------------------------------------
# 3: cold start

_COLD = """
import time, sys
t0 = time.perf_counter()
import numpy as np
import arma_core as ac
t1 = time.perf_counter()
k = int(sys.argv[1])
shape = {1: (4, 8, 256), 2: (2, 8, 32, 32), 3: (1, 4, 16, 16, 16)}[k]
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
taps = np.zeros((shape[-k - 1], k, 1, 3), np.float32) + np.array([-0.3, 1.0, -0.4], np.float32)
t2 = time.perf_counter()
y = ac.ar_solve(x, taps, boundary="reflect")
t3 = time.perf_counter()
row = ac.capabilities.resolve(
    "solve", np, boundary="reflect", dtype="float32", shape=x.shape, taps=lambda: taps.astype(np.float64)
)
print(json.dumps({"import": t1 - t0, "first": t3 - t2, "method": row.method}))
"""


def measure_cold_start() -> list[Row]:
    """The first ``ar_solve`` in a fresh process (1-D, 2-D and 3-D, ``reflect``: the line solver
    when it is built), and ``import arma_core`` before it."""
    rows = []
    for k in (1, 2, 3):
        r = child_json(["-c", "import json\n" + _COLD, str(k)])
        what = (
            f"first ar_solve in a fresh process, {k}-D, seconds "
            f"(method {r['method']}; import arma_core {r['import']:.2f} s)"
        )
        rows.append(_row("13.3", f"{k}-D", what, r["first"], 1.0, GOALS["cold_s"], unit="s"))
    return rows


# ---------------------------------------------------------------------------------------------
# 4: SciPy's filters


@contextlib.contextmanager
def _one_cpu():
    """This process on one CPU for the block (the line solver's default thread count follows
    the affinity); restored after."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _scipy_cases(rng, n, C):
    """(name, signal, taps, baseline) for the four comparisons; the baselines are checked."""
    import scipy.linalg
    import scipy.signal

    x = rng.standard_normal((C, n))
    a = np.linspace(0.5, 0.95, C)
    causal_c = np.stack([np.zeros(C), np.ones(C), -a], axis=-1).reshape(C, 1, 1, 3)
    causal_b = causal_c[:1]
    fm, fp = -0.3 - 0.2 * np.linspace(0, 1, C), -0.4 + 0.1 * np.linspace(0, 1, C)
    two_c = np.stack([fm, np.ones(C), fp], axis=-1).reshape(C, 1, 1, 3)
    two_b = two_c[:1]

    def banded(f):
        ab = np.zeros((3, n))
        ab[0, 1:], ab[1, :], ab[2, :-1] = f[0], f[1], f[2]
        return ab

    def lfilter_rows():
        return np.stack([scipy.signal.lfilter([1.0], [1.0, -a[c]], x[c]) for c in range(C)])

    def banded_rows():
        return np.stack([scipy.linalg.solve_banded((1, 1), banded(two_c[c, 0, 0]), x[c]) for c in range(C)])

    return [
        ("lfilter", "64 channels", x, causal_c, lfilter_rows),
        (
            "lfilter",
            "batch 64 of one channel",
            x,
            causal_b,
            lambda: scipy.signal.lfilter([1.0], [1.0, -a[0]], x, axis=-1),
        ),
        ("banded", "64 channels", x, two_c, banded_rows),
        (
            "banded",
            "batch 64 of one channel",
            x,
            two_b,
            lambda: scipy.linalg.solve_banded((1, 1), banded(two_b[0, 0, 0]), x.T).T,
        ),
    ]


def measure_scipy(repeats: int) -> list[Row]:
    """``ar_solve`` (zeros boundary) / the SciPy baseline on 64 x 65,536 float64, on one CPU and
    on every CPU of the process."""
    import arma_core as ac

    rows = []
    rng = np.random.default_rng(6)
    for kind, layout, x, taps, baseline in _scipy_cases(rng, 65536, 64):
        ours = lambda x=x, taps=taps: ac.ar_solve(x, taps, boundary="zeros")  # noqa: E731
        err = np.max(np.abs(ours() - baseline())) / np.max(np.abs(baseline()))
        assert err < 1e-10, (kind, layout, err)
        name = "scipy.signal.lfilter" if kind == "lfilter" else "scipy.linalg.solve_banded"
        for cpus in ("1 CPU", "all CPUs"):
            with _one_cpu() if cpus == "1 CPU" else contextlib.nullcontext():
                t = side_by_side({"ours": ours, "scipy": baseline}, max(3, repeats // 2))
            what = f"ar_solve / {name}, {'causal' if kind == 'lfilter' else 'two-sided'} factor, {layout}, {cpus}"
            rows.append(_row("13.4", "64x65536 float64", what, t["ours"], t["scipy"], GOALS[kind]))
    return rows

"""Training-grade behaviour of ``arma_core.nn``: autocast, torch.compile, DDP, huge learning rates.

Written the way a user would write them: ``torch.autocast("cpu", dtype=torch.bfloat16)``,
``torch.compile(model)``, ``DistributedDataParallel`` over the gloo backend in processes
started by ``torch.multiprocessing.spawn``, plain optimizers.
"""

from __future__ import annotations

import datetime
import gc
import os
import tempfile
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import arma_core
from arma_core.nn import AR1d, ARMA2d

BOUNDARIES = ("circular", "zeros", "reflect", "replicate")


def small_net(boundary="circular", region="strip", init=0.0, order=1):
    """Two ARMA layers with BatchNorm/ReLU and a linear head: the paper's VGG-style use."""
    kw = dict(padding=1, ar_boundary=boundary, ar_region=region, ar_init=init, ar_order=order)
    return nn.Sequential(
        ARMA2d(3, 8, 3, **kw),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        ARMA2d(8, 16, 3, **kw),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )


def _randomize_ar(model, scale=0.8, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ARMA2d) and m.ar is not None:
                m.ar.theta.copy_(scale * torch.randn(m.ar.theta.shape, generator=g))
    return model


# ------------------------------------------------------------------------------------------
# autocast
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_autocast_bfloat16(boundary, monkeypatch):
    torch.manual_seed(0)
    model = _randomize_ar(small_net(boundary, init=0.9, order=2))
    x = torch.randn(4, 3, 12, 10)
    labels = torch.randint(0, 4, (4,))
    ref = model(x)

    seen = []
    solve = arma_core.ARFilter.solve

    def spy(self, t, **kw):
        seen.append((t.dtype, self.taps.dtype))
        return solve(self, t, **kw)

    monkeypatch.setattr(arma_core.ARFilter, "solve", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first = model[0](x)
        out = model(x)
        loss = F.cross_entropy(out, labels)
    assert first.dtype == torch.bfloat16  # the ARMA layer returns the autocast dtype
    assert seen and all(d == (torch.float32, torch.float32) for d in seen)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    # bfloat16 convolutions, float32 solves: close to the float32 model, not blown up
    torch.testing.assert_close(out.float(), ref, rtol=0.1, atol=0.1)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p.grad).all(), name


def test_autocast_near_the_edge_of_the_strip():
    """|f_-1 + f_1| = 0.999: a gain of 10^6 that bfloat16 solves could not hold."""
    torch.manual_seed(1)
    layer = ARMA2d(2, 2, 3, padding=1, ar_init=0.999)
    x = torch.randn(1, 2, 16, 16)
    ref = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.05


# ------------------------------------------------------------------------------------------
# torch.compile
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("boundary", ["circular", "reflect"])
def test_compile_matches_eager(boundary):
    torch.manual_seed(2)
    model = _randomize_ar(small_net(boundary, init=0.5, order=2)).eval()
    x = torch.randn(2, 3, 12, 10, requires_grad=True)
    ref = model(x)
    (gx_ref,) = torch.autograd.grad(ref.sum(), x)
    compiled = torch.compile(model)
    out = compiled(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    (gx,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)
    # the compiled model trains: parameter gradients equal eager ones
    model.zero_grad()
    compiled(x).square().sum().backward()
    g_compiled = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).square().sum().backward()
    for a, b in zip(g_compiled, (p.grad for p in model.parameters())):
        # float32 sums of large terms: eager itself is this far from a float64 run
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


# ------------------------------------------------------------------------------------------
# DistributedDataParallel (gloo, 2 CPU processes)
# ------------------------------------------------------------------------------------------

DDP_STEPS = 4
DDP_BATCH = 8


def _ddp_data():
    g = torch.Generator().manual_seed(123)
    return torch.randn(DDP_BATCH, 3, 10, 10, generator=g), torch.randint(0, 4, (DDP_BATCH,), generator=g)


def _ddp_model():
    torch.manual_seed(7)
    # no BatchNorm: its batch statistics would differ between one process and two shards
    return nn.Sequential(
        ARMA2d(3, 6, 3, padding=1, ar_init=0.5, ar_boundary="reflect"),
        nn.ReLU(),
        ARMA2d(6, 6, 3, padding=1, ar_order=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 4),
    )


def _train(model, x, y, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def _ddp_worker(rank, world, init_file, out_file):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        model = _ddp_model()
        if rank == 1:  # DDP must broadcast rank 0's initial parameters
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1.0)
        ddp = DDP(model)
        x, y = _ddp_data()
        shard = slice(rank * DDP_BATCH // world, (rank + 1) * DDP_BATCH // world)
        _train(ddp, x[shard], y[shard], DDP_STEPS)
        # torch's gloo teardown can deadlock when the last reference to the process group goes
        # (with the GIL held) while a gloo thread still releases a finished collective's tensors
        # (which needs the GIL): seen on this loaded machine. The reducer goes first (the
        # default group still holds the process group), and a barrier plus a GIL-free pause
        # lets the gloo threads finish before destroy_process_group.
        del ddp
        gc.collect()  # DDP's hooks form reference cycles
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        if rank == 0:
            torch.save(torch.stack(gathered), out_file)
        dist.barrier()
        time.sleep(0.2)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gloo_two_processes():
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        out_file = os.path.join(tmp, "params.pt")
        ctx = mp.spawn(_ddp_worker, args=(2, init_file, out_file), nprocs=2, join=False)
        deadline = time.monotonic() + 180
        while not ctx.join(timeout=1):  # raises if a worker failed
            if time.monotonic() > deadline:
                for proc in ctx.processes:
                    proc.kill()
                pytest.fail("DDP workers did not finish within 180 s")
        params = torch.load(out_file)
    # identical replicas ...
    assert torch.equal(params[0], params[1])
    # ... equal to one process training on the whole batch (DDP averages the shard gradients)
    model = _ddp_model()
    before = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    x, y = _ddp_data()
    _train(model, x, y, DDP_STEPS)
    single = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert not torch.allclose(single, before)  # it did train
    torch.testing.assert_close(params[0], single, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------
# huge learning rates: the reparameterization's promise (paper Theorem 7, Figure 5)
# ------------------------------------------------------------------------------------------

# Learning rates 100x to 100,000x the usual ones. Larger SGD steps make a plain CNN's weights
# overflow float32 by themselves (the convolutions and BatchNorm diverge to 1e19 and the next
# layer's product to inf), which no AR parameterization can prevent.
OPTIMIZERS = {
    "adam-1": lambda ps: torch.optim.Adam(ps, lr=1.0),
    "adam-100": lambda ps: torch.optim.Adam(ps, lr=100.0),
    "sgd-10": lambda ps: torch.optim.SGD(ps, lr=10.0, momentum=0.9),
}
STEPS = 15


def _run(region, boundary, opt_name, seed):
    """Train for STEPS steps; the step at which training failed and how, or None."""
    torch.manual_seed(seed)
    model = small_net(boundary, region=region)
    x = torch.randn(8, 3, 12, 12)
    labels = torch.randint(0, 4, (8,))
    opt = OPTIMIZERS[opt_name](model.parameters())
    for step in range(STEPS):
        try:
            loss = F.cross_entropy(model(x), labels)
        except arma_core.UnstableFilterError:
            return step, "unstable"
        if not torch.isfinite(loss):
            return step, "nonfinite"
        opt.zero_grad()
        loss.backward()
        opt.step()
        stable = all(arma_core.is_stable(m.ar.taps().detach()) for m in model.modules() if isinstance(m, ARMA2d))
        if region == "raw" and not stable:
            return step + 1, "left the strip"
        assert stable
    return None


REPLICATE_ISSUE = (
    "replicate boundary: the strip leaves f_-1 - f_1 unbounded and the replicate factor's "
    "inverse grows with it (see test_strip_gain_bound_for_any_theta); SGD can drive it to ~1e10, "
    "where the float64 inverse becomes singular (LinAlgError). Whether these seeds get there "
    "within STEPS steps depends on rounding, hence not strict"
)


FAST = {("circular", "adam-100"), ("zeros", "sgd-10")}  # the rest is marked slow


def _strip_cases():
    for boundary in BOUNDARIES:
        for opt_name in OPTIMIZERS:
            marks = [pytest.mark.slow] if (boundary, opt_name) not in FAST else []
            if (boundary, opt_name) == ("replicate", "sgd-10"):
                marks.append(pytest.mark.xfail(raises=RuntimeError, strict=False, reason=REPLICATE_ISSUE))
            yield pytest.param(boundary, opt_name, marks=marks, id=f"{boundary}-{opt_name}")


@pytest.mark.parametrize("boundary,opt_name", list(_strip_cases()))
def test_huge_learning_rate_strip_never_fails(boundary, opt_name):
    for seed in range(2):
        assert _run("strip", boundary, opt_name, seed) is None


@pytest.mark.slow
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_huge_learning_rate_diamond_never_fails(opt_name):
    assert _run("diamond", "circular", opt_name, 0) is None


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("boundary", ["circular", "zeros"])
def test_huge_learning_rate_raw_taps_leave_the_stable_region(boundary, opt_name):
    """The same model with the taps as raw parameters leaves the stable strip within a few
    steps (after which the raw layer solves the system as it stands, as the official FFT
    division does: the Figure 5 experiment studies what training does from there)."""
    for seed in range(2):
        failed = _run("raw", boundary, opt_name, seed)
        assert failed is not None and failed[0] <= 5, failed


GAIN_ISSUE = (
    "reflect/replicate boundary rows break the symmetry of the factor matrix's Hermitian part, "
    "so its inverse is not bounded by 1 / (1 - |f_-1 + f_1|): the gain grows with "
    "|f_-1 - f_1| (n = 12, s = 0, d = 1e3: 2.45 for reflect, 1e3 for replicate), which the strip "
    "leaves unbounded"
)


@pytest.mark.parametrize(
    "boundary",
    [
        "circular",
        "zeros",
        pytest.param("reflect", marks=pytest.mark.xfail(strict=True, reason=GAIN_ISSUE)),
        pytest.param("replicate", marks=pytest.mark.xfail(strict=True, reason=GAIN_ISSUE)),
    ],
)
def test_strip_gain_bound_for_any_theta(boundary):
    """||A^{-1}||_2 <= 1 / (1 - |f_-1 + f_1|) for every strip factor, whatever its difference.

    Proof for circular and zeros: ``A = I + (s/2)(S + S^T) + (d/2)(S^T - S)`` has Hermitian part
    ``I + (s/2)(S + S^T) >= (1 - |s|) I``, and ``||A x|| ||x|| >= <A x, x> >= (1 - |s|) ||x||^2``.
    The inverse is computed by the layer, so this also checks that the solve stays accurate
    when the unbounded difference ``d`` is huge.
    """
    for n in (11, 12):
        for s_theta in (0.0, 0.5, -1.5):
            for d in (0.0, 3.0, 1e3, 1e8):
                m = AR1d(1, boundary=boundary, dtype=torch.float64)
                with torch.no_grad():
                    m.theta.copy_(torch.tensor([d, s_theta]).reshape(1, 1, 1, 2))
                taps = m.taps().detach()
                s = float(taps[0, 0, 0, 0] + taps[0, 0, 0, 2])
                eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, n)
                inverse = m(eye).detach().reshape(n, n)
                gain = float(torch.linalg.matrix_norm(inverse, ord=2))
                # a backward-stable solve is accurate to ~eps * cond, cond ~ |d| / (1 - |s|)
                tol = 1e-12 * max(1.0, abs(d))
                assert gain <= (1 + tol) / (1 - abs(s)), (n, s, d, gain)

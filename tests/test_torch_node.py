"""The compiled autograd node of the layers' line solves (``arma_core.backends._lines_torch``).

It must be ``_LinesTheta`` (the Python node, itself compared with the generic ``ARSolveTheta``
and the sparse reference in test_perf_paths.py) bit for bit: same kernels, plans and products.
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import arma_core as ac

torch = pytest.importorskip("torch")

from arma_core.backends import _lines
from arma_core.backends import torch as bt

node = bt.lines_node()
needs_node = pytest.mark.skipif(node is None, reason=f"the compiled torch node is not used: {bt.NODE_STATUS}")


def test_node_is_loaded_where_the_build_made_it():
    """``make test`` builds the node after installing torch and, where a C++ compiler is on
    PATH, sets ``ARMA_EXPECT_NODE=1``: a build or load failure there is an error, not a silent
    fall back to the Python node."""
    if os.environ.get("ARMA_EXPECT_NODE") != "1" or not _lines.available():
        pytest.skip("not asked for (ARMA_EXPECT_NODE=1), or no line solver")
    assert node is not None, bt.NODE_STATUS
    assert bt.NODE_STATUS == ""


def _solve(use_node, t, theta, taps, boundary, adjoint, cache, monkeypatch):
    monkeypatch.setattr(bt, "_NODE", node if use_node else None)
    return bt._solve("lines", None, t, taps, boundary, 1, adjoint, cache, theta=(theta, "strip"))


@needs_node
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
@pytest.mark.parametrize("shape", [(2, 3, 17), (2, 3, 7, 9), (1, 3, 16, 16), (2, 3, 4, 5, 6)])
def test_node_is_the_python_node_bit_for_bit(shape, boundary, dtype, monkeypatch):
    """Output, the input's and theta's gradients, forward and adjoint solves, in 1-D, 2-D (odd
    and vectorised plane sizes) and 3-D: equal to ``_LinesTheta``'s bit for bit; and the node is
    what runs (its grad_fn is not the Python node's)."""
    dt = getattr(torch, dtype)
    k = len(shape) - 2
    gen = torch.Generator().manual_seed(sum(shape))
    theta = (0.5 * torch.randn(shape[1], k, 1, 2, generator=gen, dtype=dt)).requires_grad_(True)
    taps, jac = ac.filters.reparameterize_host(theta.detach().numpy(), "strip")
    taps = torch.from_numpy(taps)
    x = torch.randn(*shape, generator=gen, dtype=dt, requires_grad=True)
    g = torch.randn(*shape, generator=gen, dtype=dt)
    for adjoint in (False, True):
        cache = {bt.jacobian_key("strip"): jac}
        ys, grads = [], []
        for use_node in (True, False):
            y = _solve(use_node, x, theta, taps, boundary, adjoint, cache, monkeypatch)
            name = y.grad_fn.name()
            assert name == ("torch::autograd::CppNode<arma::LinesTheta>" if use_node else "_LinesThetaBackward")
            ys.append(y)
            grads.append(torch.autograd.grad(y, (x, theta), g))
        assert torch.equal(ys[0], ys[1]), adjoint
        assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1]), adjoint
        assert grads[0][1].dtype == dt and grads[0][1].shape == theta.shape


@needs_node
def test_node_gradients_of_one_input_and_the_reference(monkeypatch):
    """Only theta or only the signal needing a gradient: the other gets none, and the values are
    the sparse reference's (the output and the input's gradient: the adjoint solve of g)."""
    from arma_core import reference as R

    gen = torch.Generator().manual_seed(3)
    theta = (0.5 * torch.randn(3, 2, 1, 2, generator=gen, dtype=torch.float64)).requires_grad_(True)
    taps, jac = ac.filters.reparameterize_host(theta.detach().numpy(), "strip")
    x = torch.randn(2, 3, 6, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 6, 8, generator=gen, dtype=torch.float64)
    cache = {bt.jacobian_key("strip"): jac}
    y = _solve(True, x, theta, torch.from_numpy(taps), "reflect", False, cache, monkeypatch)
    assert np.allclose(y.detach().numpy(), R.ar_solve(x.detach().numpy(), taps, boundary="reflect"), atol=1e-12)
    (gx,) = torch.autograd.grad(y, (x,), g, retain_graph=True)
    assert np.allclose(gx.numpy(), R.ar_solve(g.numpy(), taps, boundary="reflect", adjoint=True), atol=1e-12)
    y2 = _solve(True, x.detach(), theta, torch.from_numpy(taps), "reflect", False, cache, monkeypatch)
    (gth,) = torch.autograd.grad(y2, (theta,), g)
    gtheta_full = torch.autograd.grad(y, (x, theta), g)[1]
    assert torch.equal(gth, gtheta_full)


@needs_node
def test_node_keeps_its_plans_alive(monkeypatch):
    """The node holds the backward's plan and the Jacobian itself: dropping the filter's cache
    between forward and backward (a new theta before the backward) changes nothing."""
    gen = torch.Generator().manual_seed(4)
    theta = (0.5 * torch.randn(4, 2, 1, 2, generator=gen)).requires_grad_(True)
    taps, jac = ac.filters.reparameterize_host(theta.detach().numpy(), "strip")
    x = torch.randn(2, 4, 9, 8, generator=gen, requires_grad=True)
    g = torch.randn(2, 4, 9, 8, generator=gen)
    want = torch.autograd.grad(
        _solve(True, x, theta, torch.from_numpy(taps), "circular", False, {bt.jacobian_key("strip"): jac}, monkeypatch),
        (x, theta),
        g,
    )
    cache = {bt.jacobian_key("strip"): jac.copy()}
    y = _solve(True, x, theta, torch.from_numpy(taps), "circular", False, cache, monkeypatch)
    cache.clear()
    del cache
    gc.collect()
    got = torch.autograd.grad(y, (x, theta), g)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@needs_node
def test_node_under_create_graph_is_first_order_only(monkeypatch):
    """As the Python node (``once_differentiable``): a backward with ``create_graph`` gives the
    same gradients, and differentiating them again raises."""
    from arma_core.nn import AR2d

    m = AR2d(3)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    got = {}
    for use_node in (True, False):
        monkeypatch.setattr(bt, "_NODE", node if use_node else None)
        gx, gth = torch.autograd.grad(m(x).square().sum(), (x, m.theta), create_graph=True)
        with pytest.raises(RuntimeError, match="differentiate twice"):
            gx.sum().backward()
        got[use_node] = (gx.detach(), gth.detach())
    assert torch.equal(got[True][0], got[False][0]) and torch.equal(got[True][1], got[False][1])


@needs_node
def test_node_inputs_it_copies_and_plans_it_refuses(monkeypatch):
    """A non-contiguous signal is solved as its contiguous copy; a plan of another plane size is
    refused with the line solver's message (no memory is read past a buffer)."""
    gen = torch.Generator().manual_seed(5)
    theta = (0.5 * torch.randn(3, 2, 1, 2, generator=gen)).requires_grad_(True)
    taps, jac = ac.filters.reparameterize_host(theta.detach().numpy(), "strip")
    x = torch.randn(2, 3, 8, 6, generator=gen).transpose(-1, -2).requires_grad_(True)
    cache = {bt.jacobian_key("strip"): jac}
    y = _solve(True, x, theta, torch.from_numpy(taps), "zeros", False, cache, monkeypatch)
    y_ref = _solve(
        True,
        x.detach().contiguous().requires_grad_(True),
        theta,
        torch.from_numpy(taps),
        "zeros",
        False,
        cache,
        monkeypatch,
    )
    assert torch.equal(y, y_ref)
    other = _lines.plan(taps, (5, 5), 1, "zeros", False, None, 1)
    back = _lines.plan(taps, (5, 5), 1, "zeros", True, None, 1)
    with pytest.raises(ValueError, match="do not match the plan"):
        node.solve_theta(
            x.detach().contiguous().requires_grad_(True), theta, other, back, torch.from_numpy(jac), 2, False
        )


def _node_case(shape, boundary, seed):
    gen = torch.Generator().manual_seed(seed)
    k = len(shape) - 2
    theta = (0.5 * torch.randn(shape[1], k, 1, 2, generator=gen)).requires_grad_(True)
    taps, jac = ac.filters.reparameterize_host(theta.detach().numpy(), "strip")
    args = bt._node_args(torch.empty(shape), theta, "strip", torch.from_numpy(taps), boundary, 1, False, {})
    x = torch.randn(*shape, generator=gen)
    return theta, args, x


@needs_node
@pytest.mark.parametrize("boundary", ac.BOUNDARIES)
@pytest.mark.parametrize("shape", [(2, 3, 17), (2, 3, 7, 9), (1, 3, 16, 16), (2, 3, 4, 5, 6)])
def test_node_solves_into_an_input_it_owns(shape, boundary):
    """``own=True`` (a layer's convolution output, which nothing else refers to): the output is
    the input's buffer, marked as changed in place, with the bits of a fresh output and the same
    gradients. A non-contiguous input is solved into its contiguous copy and left as it is."""
    theta, args, x0 = _node_case(shape, boundary, sum(shape))
    x = x0.clone().requires_grad_(True)
    g = torch.randn(shape)
    want = node.solve_theta(x, theta, *args)
    want_grads = torch.autograd.grad(want, (x, theta), g)
    t = x * 1.0  # not a leaf: its own buffer
    version = t._version
    got = node.solve_theta(t, theta, *args, own=True)
    assert got.data_ptr() == t.data_ptr() and t._version > version
    assert torch.equal(got, want)
    grads = torch.autograd.grad(got, (x, theta), g)
    assert torch.equal(grads[0], want_grads[0]) and torch.equal(grads[1], want_grads[1])
    # a view, and a leaf that needs a gradient: not written into (a fresh output, same bits)
    base = x0.clone().unsqueeze(0).requires_grad_(True) * 1.0
    view = base.squeeze(0)
    got_v = node.solve_theta(view, theta, *args, own=True)
    assert got_v.data_ptr() != view.data_ptr() and torch.equal(view, x0) and torch.equal(got_v, want)
    leaf = x0.clone().requires_grad_(True)
    got_l = node.solve_theta(leaf, theta, *args, own=True)
    assert got_l.data_ptr() != leaf.data_ptr() and torch.equal(leaf.detach(), x0) and torch.equal(got_l, want)
    # a view with other strides: its contiguous copy holds the output, the input is unchanged
    if len(shape) == 4:
        xt = x0.transpose(-1, -2).contiguous().transpose(-1, -2).requires_grad_(True)
        tv = xt * 1.0
        before = tv.detach().clone()
        got_t = node.solve_theta(tv, theta, *args, own=True)
        assert got_t.data_ptr() != tv.data_ptr() and torch.equal(tv.detach(), before)
        assert torch.equal(got_t, want)


@needs_node
@pytest.mark.parametrize("boundary", ["circular", "reflect"])
def test_node_backward_reuses_only_a_gradient_nothing_else_holds(boundary):
    """The incoming gradient becomes the input's gradient when the node holds its only reference
    (a gradient from the next operator): same bits as a fresh buffer. A gradient the caller
    passes in keeps its values; one retained on the output (``retain_grad``: torch keeps a copy)
    too."""
    theta, args, x0 = _node_case((2, 3, 9, 8), boundary, 7)
    x = x0.clone().requires_grad_(True)
    three = torch.full((2, 3, 9, 8), 3.0)
    before = node.reused_gradients()
    want = torch.autograd.grad(node.solve_theta(x, theta, *args), (x, theta), three)
    assert torch.equal(three, torch.full((2, 3, 9, 8), 3.0))  # the caller's: unchanged
    assert node.reused_gradients() == before
    # (y * 3).sum(): the gradient arriving at the node is MulBackward's new tensor
    before = node.reused_gradients()
    y = node.solve_theta(x, theta, *args)
    (y * 3).sum().backward()
    assert node.reused_gradients() == before + 1
    assert torch.equal(x.grad, want[0]) and torch.equal(theta.grad, want[1])
    # retained on the output: the retained copy keeps its values
    x.grad, theta.grad = None, None
    y = node.solve_theta(x, theta, *args)
    y.retain_grad()
    (y * 3).sum().backward()
    assert torch.equal(y.grad, three) and x.grad.data_ptr() != y.grad.data_ptr()
    assert torch.equal(x.grad, want[0]) and torch.equal(theta.grad, want[1])
    # a hook that keeps the gradient: it is not taken
    kept = []
    x.grad, theta.grad = None, None
    before = node.reused_gradients()
    y = node.solve_theta(x, theta, *args)
    y.register_hook(kept.append)
    (y * 3).sum().backward()
    assert node.reused_gradients() == before and torch.equal(kept[0], three)
    assert torch.equal(x.grad, want[0])


def test_loader_refuses_another_torch_and_the_switch(monkeypatch):
    """The node is used only when built for the running torch and line solver; ``ARMA_TORCH_NODE=0``
    turns it off; each time ``NODE_STATUS`` says why."""
    monkeypatch.setenv("ARMA_TORCH_NODE", "0")
    assert bt._load_node() == (None, "disabled by ARMA_TORCH_NODE=0")
    monkeypatch.delenv("ARMA_TORCH_NODE")
    if node is None:
        pytest.skip(f"the compiled torch node is not used: {bt.NODE_STATUS}")
    assert bt._load_node() == (node, "")
    monkeypatch.setattr(node, "TORCH_VERSION", "0.0.1")
    mod, why = bt._load_node()
    assert mod is None and "built for torch 0.0.1" in why
    monkeypatch.setattr(node, "TORCH_VERSION", torch.__version__)
    monkeypatch.setattr(node, "API_VERSION", node.BUILT_API_VERSION + 1)
    mod, why = bt._load_node()
    assert mod is None and "line solver" in why
    monkeypatch.setattr(node, "API_VERSION", node.BUILT_API_VERSION)
    monkeypatch.setattr(node, "NODE_VERSION", bt.NODE_VERSION - 1)
    mod, why = bt._load_node()
    assert mod is None and "_lines_torch.cpp" in why


@pytest.fixture
def torch_threads():
    """Sets torch's thread count for a test and restores it after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@needs_node
def test_node_is_built_to_run_on_torch_threads():
    """With an OpenMP torch the node is compiled with OpenMP: otherwise ``at::parallel_for`` would
    run the kernels' parts one after the other, on one core (the build's flag, setup.py)."""
    if os.environ.get("ARMA_EXPECT_NODE") != "1" or not torch.backends.openmp.is_available():
        pytest.skip("not built here by setup.py (ARMA_EXPECT_NODE=1), or torch without OpenMP")
    assert node.ON_TORCH_THREADS is True


@needs_node
@pytest.mark.parametrize("boundary", ["circular", "zeros"])
@pytest.mark.parametrize("shape", [(4, 16, 64, 64), (16, 64, 8, 8), (16, 128, 4, 4)], ids=["64x64", "8x8", "4x4"])
def test_node_parts_on_torch_threads_give_the_same_bits(boundary, shape, torch_threads, monkeypatch):
    """The solve and its backward split their blocks over torch's threads (from 2 ** 18
    multiply-adds of work up, the line solver's count: the 64 x 64 planes have 2 ** 19 per
    solve; the U-Net's small planes, solved by dense inverses, count more per sample and split
    too): one and two threads, and the Python node on the solver's own threads, give the same
    output and gradients bit for bit."""
    gen = torch.Generator().manual_seed(11)
    theta = (0.5 * torch.randn(shape[1], 2, 1, 2, generator=gen)).requires_grad_(True)
    taps, jac = ac.filters.reparameterize_host(theta.detach().numpy(), "strip")
    taps = torch.from_numpy(taps)
    x = torch.randn(*shape, generator=gen, requires_grad=True)
    g = torch.randn(*shape, generator=gen)
    runs = []
    for use_node, threads in ((True, 1), (True, 2), (False, 2)):
        torch_threads(threads)
        cache = {bt.jacobian_key("strip"): jac}
        y = _solve(use_node, x, theta, taps, boundary, False, cache, monkeypatch)
        runs.append((y, *torch.autograd.grad(y, (x, theta), g)))
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


@needs_node
def test_node_solve_and_vjp_of_buffers_are_the_line_solvers(torch_threads):
    """``node.solve`` / ``node.vjp`` (what the torch backend's solves outside the node call) are
    ``_lines_c.solve`` / ``vjp`` with the work on torch's threads: the same bits, the same
    refusals of buffers that do not fit the plan, and no write into a read-only or
    non-contiguous buffer."""
    from arma_core.backends import _lines_c

    torch_threads(2)
    rng = np.random.default_rng(3)
    shape = (4, 16, 64, 64)
    taps = ac.filters.reparameterize_host(0.5 * rng.normal(size=(16, 2, 1, 2)), "strip")[0]
    x = rng.normal(size=shape).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    plan = _lines.plan(taps, shape[2:], 1, "reflect", False, None, 2)
    back = _lines.plan(taps, shape[2:], 1, "reflect", True, None, 2)
    P = shape[0] * shape[1]
    got, want = np.empty_like(x), np.empty_like(x)
    node.solve(x, got, plan, P, True, True, False, 2)
    _lines_c.solve(x, want, plan, P, 1, 1, 0, 2)
    assert np.array_equal(got, want)
    w1, w2 = np.empty_like(x), np.empty_like(x)
    t1, t2 = np.zeros((16, 2, 1, 3)), np.zeros((16, 2, 1, 3))
    node.vjp(got, g, w1, t1, back, P, True, False, True, 2)
    _lines_c.vjp(want, g, w2, t2, back, P, 1, 0, 1, 2)
    assert np.array_equal(w1, w2) and np.array_equal(t1, t2)
    with pytest.raises(ValueError, match="do not match the plan"):
        node.solve(x[:2], got[:2], plan, P, True, True, False, 2)
    with pytest.raises(ValueError, match="do not match the plan"):
        node.vjp(got, g[:2], w1, t1, back, P, True, False, True, 2)
    frozen = np.empty_like(x)
    frozen.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        node.solve(x, frozen, plan, P, True, True, False, 2)
    with pytest.raises((ValueError, BufferError)):
        node.solve(x, np.empty(shape[::-1], np.float32).T, plan, P, True, True, False, 2)

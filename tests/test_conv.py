"""The MA layer ``arma_core.conv`` (Eq. 5a) against ``torch.nn.ConvNd``.

The reference is torch's own module (``nn.Conv1d/2d/3d`` with the given ``padding`` and
``padding_mode``, float64), applied to the input with its batch axes flattened. The generic
array-API path is tested on numpy, torch and array-api-strict; the torch fast path against the
generic path, and its gradient with ``gradcheck``.
"""

from __future__ import annotations

import importlib
import math
import warnings

import array_api_strict
import numpy as np
import pytest
import torch

from arma_core.backends._torch_conv import conv_torch
from arma_core.capabilities import resolve
from arma_core.conv import PADDING_MODES, conv


def _generic(*args, **kwargs):
    """The array-API row of ``conv`` whatever the library (torch has a native row)."""
    return conv(*args, method="generic", **kwargs)


# ``arma_core.conv`` the attribute is the function (the package re-exports it); the module:
conv_module = importlib.import_module("arma_core.conv")

# (k, C_in, C_out, groups, spatial sizes, kernel size, stride, padding, dilation, bias, batch)
CASES = [
    (1, 3, 4, 1, (9,), (3,), 1, 1, 1, True, (2,)),
    (1, 2, 2, 1, (8,), (2,), 2, (1,), 2, False, ()),
    (1, 2, 3, 1, (10,), (4,), 1, "same", 1, True, (2, 3)),
    (1, 4, 4, 4, (6,), (3,), 1, "valid", 1, False, (3,)),
    (2, 4, 6, 2, (7, 8), (3, 2), (2, 1), (1, 0), (1, 2), True, (2,)),
    (2, 4, 8, 4, (6, 7), (3, 3), 1, "same", (2, 1), True, ()),
    (2, 3, 3, 3, (8, 6), (4, 3), 1, "same", 1, False, (1, 2)),
    (2, 2, 5, 1, (9, 7), (2, 3), 3, "valid", 1, True, (2,)),
    (2, 3, 2, 1, (5, 6), (1, 1), (1, 2), 2, 1, True, (2,)),
    (3, 2, 3, 1, (5, 6, 4), (3, 2, 3), 1, (1, 2, 1), 1, True, (2,)),
    (3, 4, 2, 2, (6, 5, 7), (3, 3, 2), (1, 2, 2), 1, (1, 2, 1), False, ()),
    (3, 2, 4, 2, (4, 5, 6), (2, 3, 2), 1, "same", (2, 1, 1), True, (1, 1)),
]
IDS = [f"{c[0]}d-g{c[3]}-s{c[6]}-p{c[7]}-d{c[8]}-b{len(c[10])}" for c in CASES]

NAMESPACES = ["numpy", "torch", "array_api_strict"]
DTYPES = {"float64": 1e-10, "float32": 1e-5}


def _to(name, a, dtype):
    """``a`` (numpy float64) as an array of library ``name`` and ``dtype``."""
    a = a.astype(dtype)
    if name == "numpy":
        return a
    if name == "torch":
        return torch.from_numpy(a)
    return array_api_strict.asarray(a)


def _np(a):
    if isinstance(a, torch.Tensor):
        return a.detach().numpy()
    return np.asarray(a)


def _reference(x, w, b, *, stride, padding, dilation, groups, padding_mode):
    """``torch.nn.Conv{k}d`` in float64 on numpy inputs with any leading batch axes."""
    k = w.ndim - 2
    module = getattr(torch.nn, f"Conv{k}d")(
        w.shape[1] * groups,
        w.shape[0],
        tuple(w.shape[2:]),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=b is not None,
        padding_mode=padding_mode,
        dtype=torch.float64,
    )
    with torch.no_grad(), warnings.catch_warnings():
        # torch warns that 'same' with an even kernel pads a copy; that is what we compare with
        warnings.simplefilter("ignore", UserWarning)
        module.weight.copy_(torch.from_numpy(w))
        if b is not None:
            module.bias.copy_(torch.from_numpy(b))
        batch = x.shape[: x.ndim - k - 1]
        xt = torch.from_numpy(x).reshape((math.prod(batch),) + x.shape[x.ndim - k - 1 :])
        out = module(xt).numpy()
    return out.reshape(batch + out.shape[1:])


def _random_case(case, seed=0):
    k, c_in, c_out, groups, sizes, ksize, stride, padding, dilation, bias, batch = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(batch + (c_in,) + sizes)
    w = rng.standard_normal((c_out, c_in // groups) + ksize)
    b = rng.standard_normal(c_out) if bias else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, w, b, kwargs


def _rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def _generic_params():
    """float64: every case x padding mode; float32: every case, the modes in rotation."""
    params = []
    for library in NAMESPACES:
        for i, (case, cid) in enumerate(zip(CASES, IDS)):
            for mode in PADDING_MODES:
                params.append(pytest.param(library, "float64", case, mode, id=f"{library}-float64-{cid}-{mode}"))
            mode = PADDING_MODES[i % len(PADDING_MODES)]
            params.append(pytest.param(library, "float32", case, mode, id=f"{library}-float32-{cid}-{mode}"))
    return params


@pytest.mark.parametrize("library, dtype, case, padding_mode", _generic_params())
def test_generic_matches_torch_nn(library, dtype, case, padding_mode):
    x, w, b, kwargs = _random_case(case)
    expected = _reference(x, w, b, padding_mode=padding_mode, **kwargs)
    bb = None if b is None else _to(library, b, dtype)
    out = _generic(_to(library, x, dtype), _to(library, w, dtype), bb, padding_mode=padding_mode, **kwargs)
    assert type(out) is type(_to(library, x, dtype))
    assert tuple(out.shape) == expected.shape
    assert str(out.dtype).endswith(dtype)
    assert _rel_err(_np(out).astype(np.float64), expected) < DTYPES[dtype]


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_torch_fast_path(case, padding_mode):
    """The fast path, called with the public arguments and through ``conv`` (resolved ones),
    against the reference and against the generic path (evaluated on the numpy arrays)."""
    x, w, b, kwargs = _random_case(case, seed=1)
    expected = _reference(x, w, b, padding_mode=padding_mode, **kwargs)
    generic = _generic(x, w, b, padding_mode=padding_mode, **kwargs)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    bt = None if b is None else torch.from_numpy(b)
    for out in (
        conv_torch(xt, wt, bt, padding_mode=padding_mode, **kwargs),
        conv(xt, wt, bt, padding_mode=padding_mode, **kwargs),
    ):
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
        assert tuple(out.shape) == expected.shape
        assert _rel_err(out.numpy(), expected) < 1e-10
        assert _rel_err(out.numpy(), generic) < 1e-10


def test_torch_dispatches_to_fast_path(monkeypatch):
    """On torch tensors ``conv`` calls the registered fast path with resolved arguments."""

    calls = []

    def spy(*args, **kw):
        calls.append(kw)
        return conv_torch(*args, **kw)

    import arma_core.backends.torch as torch_backend

    xp = conv_module.namespace(torch.zeros(1))
    assert resolve("conv", xp).method == "native"
    monkeypatch.setattr(torch_backend, "conv_torch", spy)
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    w = torch.randn(4, 3, 2, 3, dtype=torch.float64)
    out = conv(x, w, padding="same", padding_mode="reflect")
    assert calls == [dict(stride=(1, 1), padding=((0, 1), (1, 1)), dilation=(1, 1), groups=1, padding_mode="reflect")]
    assert _rel_err(out.numpy(), _generic(x, w, padding="same", padding_mode="reflect").numpy()) < 1e-12


def test_methods_of_conv_are_checked():
    x = torch.randn(3, 9, dtype=torch.float64)
    w = torch.randn(2, 3, 3, dtype=torch.float64)
    expected = _reference(
        x.numpy(), w.numpy(), None, stride=1, padding=1, dilation=1, groups=1, padding_mode="circular"
    )
    for method in ("auto", "native", "generic"):
        out = conv(x, w, padding=1, padding_mode="circular", method=method)
        assert _rel_err(out.numpy(), expected) < 1e-12
    with pytest.raises(ValueError, match="method='native' does not run on numpy"):
        conv(x.numpy(), w.numpy(), method="native")
    with pytest.raises(ValueError, match="method='fft' is not one of"):
        conv(x, w, method="fft")


@pytest.mark.parametrize(
    "k, padding, padding_mode, batch",
    [
        (1, 1, "zeros", ()),
        (2, "same", "reflect", (2,)),
        (2, (1, 2), "circular", (1, 2)),
        (3, 1, "replicate", (1,)),
    ],
)
def test_fast_path_gradcheck(k, padding, padding_mode, batch):
    g = torch.Generator().manual_seed(0)
    sizes = (5, 4, 3)[:k]
    x = torch.randn(batch + (2,) + sizes, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn((4, 1) + (2, 3, 2)[:k], dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)

    def f(x, w, b):
        return conv(x, w, b, padding=padding, padding_mode=padding_mode, groups=2)

    assert torch.autograd.gradcheck(f, (x, w, b), fast_mode=True)


def test_generic_torch_gradient_matches_fast_path():
    """The generic path is differentiable by autograd too, with the same gradient."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(6, 2, 3, 2, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(2, 6, 4, 8, dtype=torch.float64, generator=g)  # the output's shape
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2, padding_mode="reflect")
    grads = []
    for f in (_generic, conv):
        out = f(x, w, b, **kw)
        assert out.shape == v.shape
        grads.append(torch.autograd.grad((out * v).sum(), (x, w, b)))
    for ga, gb in zip(*grads):
        assert _rel_err(ga.numpy(), gb.numpy()) < 1e-12


@pytest.mark.parametrize("case", [CASES[2], CASES[4], CASES[9]], ids=[IDS[2], IDS[4], IDS[9]])
def test_torch_fast_path_float32(case):
    x, w, b, kwargs = _random_case(case, seed=4)
    expected = _reference(x, w, b, padding_mode="reflect", **kwargs)
    bt = None if b is None else torch.from_numpy(b.astype(np.float32))
    out = conv(
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(w.astype(np.float32)),
        bt,
        padding_mode="reflect",
        **kwargs,
    )
    assert out.dtype == torch.float32
    assert _rel_err(out.double().numpy(), expected) < 1e-5


@pytest.mark.parametrize("library", NAMESPACES)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_asymmetric_padding_pairs(library, padding_mode):
    """``padding`` as k (left, right) pairs equals padding first with torch's F.pad."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((2, 3, 2, 3))
    pads = ((0, 2), (3, 1))
    mode = "constant" if padding_mode == "zeros" else padding_mode
    xpad = torch.nn.functional.pad(torch.from_numpy(x), (3, 1, 0, 2), mode=mode)
    expected = torch.nn.functional.conv2d(xpad, torch.from_numpy(w)).numpy()
    out = conv(_to(library, x, "float64"), _to(library, w, "float64"), padding=pads, padding_mode=padding_mode)
    assert _rel_err(_np(out), expected) < 1e-12


def test_same_padding_puts_the_extra_sample_on_the_right():
    x = np.arange(6.0)[None]
    w = np.zeros((1, 1, 4))
    w[0, 0, 0] = 1.0  # out[i] = xpad[i] = x[i - left]
    out = conv(x, w, padding="same")
    np.testing.assert_array_equal(out[0], [0.0, 0.0, 1.0, 2.0, 3.0, 4.0])


def test_empty_batch_axis():
    x = np.zeros((0, 2, 5))
    w = np.ones((3, 2, 3))
    for library in NAMESPACES:
        out = conv(_to(library, x, "float64"), _to(library, w, "float64"), padding=1, padding_mode="reflect")
        assert tuple(out.shape) == (0, 3, 5)


# ------------------------------------------------------------------------------ bad input


def _xw(library="numpy", x_shape=(2, 4, 8, 8), w_shape=(6, 2, 3, 3), dtype="float64"):
    rng = np.random.default_rng(0)
    return (
        _to(library, rng.standard_normal(x_shape), dtype),
        _to(library, rng.standard_normal(w_shape), dtype),
    )


@pytest.mark.parametrize("library", NAMESPACES)
@pytest.mark.parametrize("fn", [conv, _generic])
def test_rejects_integer_and_complex_dtypes(library, fn):
    x, w = _xw(library)
    xp = {"numpy": np, "torch": torch, "array_api_strict": array_api_strict}[library]
    xi = xp.zeros((2, 4, 8, 8), dtype=xp.int64)
    with pytest.raises(TypeError, match=r"\bx\b.*dtype"):
        fn(xi, w, groups=2)
    wc = xp.zeros((6, 2, 3, 3), dtype=xp.complex128)
    with pytest.raises(TypeError, match="weight has complex dtype"):
        fn(x, wc, groups=2)
    with pytest.raises(TypeError, match="bias"):
        fn(x, w, xp.zeros((6,), dtype=xp.int32), groups=2)


@pytest.mark.parametrize("library", NAMESPACES)
def test_rejects_dtype_mismatch(library):
    x, _ = _xw(library)
    _, w32 = _xw(library, dtype="float32")
    with pytest.raises(TypeError, match="x has dtype .* but weight has dtype"):
        conv(x, w32, groups=2)
    x32, _ = _xw(library, dtype="float32")
    b64 = _to(library, np.zeros(6), "float64")
    with pytest.raises(TypeError, match="bias has dtype"):
        conv(x32, w32, b64, groups=2)


def test_rejects_mixed_libraries():
    x, _ = _xw("numpy")
    _, w = _xw("torch")
    with pytest.raises(TypeError, match="different or unsupported array libraries"):
        conv(x, w, groups=2)


@pytest.mark.parametrize(
    "kwargs, x_shape, w_shape, exc, pattern",
    [
        (dict(groups=1), (2, 4, 8, 8), (6, 2, 3, 3), ValueError, r"C_in=4.*weight expects.*= 2"),
        (dict(groups=2), (2, 4, 8, 8), (5, 2, 3, 3), ValueError, r"C_out=5.*groups=2"),
        (dict(groups=0), (2, 4, 8, 8), (6, 2, 3, 3), ValueError, r"groups"),
        (dict(groups=2.0), (2, 4, 8, 8), (6, 2, 3, 3), TypeError, r"groups"),
        (dict(groups=2, padding_mode="wrap"), (2, 4, 8, 8), (6, 2, 3, 3), ValueError, r"padding_mode='wrap'"),
        (dict(groups=2, padding="full"), (2, 4, 8, 8), (6, 2, 3, 3), ValueError, r"padding='full'"),
        (
            dict(groups=2, padding="same", stride=2),
            (2, 4, 8, 8),
            (6, 2, 3, 3),
            ValueError,
            r"padding='same'.*stride",
        ),
        (dict(groups=2, padding=-1), (2, 4, 8, 8), (6, 2, 3, 3), ValueError, r"padding"),
        (dict(groups=2, padding=(1, 1, 1)), (2, 4, 8, 8), (6, 2, 3, 3), ValueError, r"padding.*tuple of 2"),
        (dict(groups=2, stride=0), (2, 4, 8, 8), (6, 2, 3, 3), ValueError, r"stride"),
        (dict(groups=2, stride=(1, -2)), (2, 4, 8, 8), (6, 2, 3, 3), ValueError, r"stride"),
        (dict(groups=2, dilation=0), (2, 4, 8, 8), (6, 2, 3, 3), ValueError, r"dilation"),
        (dict(groups=2, dilation=1.5), (2, 4, 8, 8), (6, 2, 3, 3), TypeError, r"dilation"),
        (dict(groups=2), (2, 4, 8, 2), (6, 2, 3, 3), ValueError, r"axis 1 has size 2.*dilated kernel size 3"),
        (
            dict(groups=2, dilation=(4, 1)),
            (2, 4, 8, 8),
            (6, 2, 3, 3),
            ValueError,
            r"axis 0 has size 8.*dilated kernel size 9",
        ),
        (
            dict(groups=2, padding=8, padding_mode="reflect"),
            (2, 4, 8, 8),
            (6, 2, 3, 3),
            ValueError,
            r"padding=8.*'reflect'.*size 8",
        ),
        (
            dict(groups=2, padding=9, padding_mode="circular"),
            (2, 4, 8, 8),
            (6, 2, 3, 3),
            ValueError,
            r"padding=9.*'circular'.*size 8",
        ),
        (dict(groups=2), (4, 8), (6, 2, 3, 3), ValueError, r"x must have shape"),
        (dict(groups=2), (2, 4, 8, 8), (6, 2), ValueError, r"weight must have shape"),
        (dict(groups=2), (2, 4, 8, 8, 8, 8), (6, 2, 3, 3, 3, 3), ValueError, r"weight must have shape"),
        (dict(groups=2), (2, 4, 8, 8), (6, 2, 0, 3), ValueError, r"weight has an empty axis"),
    ],
)
@pytest.mark.parametrize("library", NAMESPACES)
def test_rejects_bad_arguments(library, kwargs, x_shape, w_shape, exc, pattern):
    x, w = _xw(library, x_shape, w_shape)
    with pytest.raises(exc, match=pattern):
        conv(x, w, **kwargs)


@pytest.mark.parametrize("library", NAMESPACES)
def test_rejects_bad_bias_shape(library):
    x, w = _xw(library)
    with pytest.raises(ValueError, match=r"bias must have shape \(C_out,\) = \(6,\)"):
        conv(x, w, _to(library, np.zeros((1, 6)), "float64"), groups=2)


def test_reflect_and_circular_limits_match_torch():
    """The largest pads torch accepts are accepted; one more is an error on every path."""
    x, w = _xw("torch", (1, 2, 4), (1, 2, 3))
    for mode, largest in (("reflect", 3), ("circular", 4)):
        ref = _reference(x.numpy(), w.numpy(), None, stride=1, padding=largest, dilation=1, groups=1, padding_mode=mode)
        assert _rel_err(conv(x, w, padding=largest, padding_mode=mode).numpy(), ref) < 1e-12
        assert _rel_err(_np(conv(x.numpy(), w.numpy(), padding=largest, padding_mode=mode)), ref) < 1e-12
        with pytest.raises(ValueError, match=mode):
            conv(x, w, padding=largest + 1, padding_mode=mode)
    # replicate has no limit in torch
    ref = _reference(x.numpy(), w.numpy(), None, stride=1, padding=7, dilation=1, groups=1, padding_mode="replicate")
    assert _rel_err(_np(conv(x.numpy(), w.numpy(), padding=7, padding_mode="replicate")), ref) < 1e-12

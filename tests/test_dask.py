"""The dask backend: lazy, chunk-by-chunk AR operators equal to the numpy path."""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

from conftest import random_taps

import arma_core as ac
from arma_core._array import library_name
from arma_core.capabilities import TABLE, Capability, methods

FUNCTIONS = [ac.ar_solve, ac.ar_solve_adjoint, ac.ar_apply, ac.ar_apply_adjoint]
IDS = [f.__name__ for f in FUNCTIONS]


def _methods(fn, boundary):
    if fn in (ac.ar_apply, ac.ar_apply_adjoint):
        return [None]
    return ["auto"] + list(methods("solve", "dask", boundary))


def _call(fn, x, taps, boundary, d, method):
    kw = dict(boundary=boundary, dilation=d)
    if method is not None:
        kw["method"] = method
    return fn(x, taps, **kw)


# (batch + channel + spatial shape, chunks along batch and channel axes)
CHUNKINGS = {
    "batch": ((4, 3, 6, 5), (1, 3, -1, -1)),
    "channel": ((4, 3, 6, 5), (4, 1, -1, -1)),
    "both-uneven": ((5, 3, 6, 5), ((2, 3), (1, 2), -1, -1)),
    "two-batch-axes": ((2, 3, 3, 7, 4), (1, 2, (2, 1), -1, -1)),
    "no-batch": ((4, 9, 7), ((1, 3), -1, -1)),
    "1d": ((3, 4, 11), (2, (3, 1), -1)),
    "3d": ((2, 3, 4, 5, 3), (1, (1, 2), -1, -1, -1)),
}


@pytest.mark.parametrize("fn", FUNCTIONS, ids=IDS)
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_equals_numpy_path(fn, chunking):
    shape, chunks = CHUNKINGS[chunking]
    k = 1 if chunking == "1d" else 3 if chunking == "3d" else 2
    C = shape[-k - 1]
    rng = np.random.default_rng(len(chunking))
    taps = random_taps(rng, C, k, 2, edge=1e-2)
    t = rng.normal(size=shape)
    x = da.from_array(t, chunks=chunks)
    dask_taps = da.from_array(taps, chunks=(1, k, 1, 3))
    for i, boundary in enumerate(ac.BOUNDARIES):
        for d in ((1, 3), (2,), (2,), (1,))[i]:  # circular, zeros, reflect, replicate
            for method in _methods(fn, boundary):
                # numpy taps everywhere, dask taps on a rotating subset (same code after reading)
                for taps_in in (taps, dask_taps)[: 1 + (i + d) % 2]:
                    if boundary == "reflect" and min(t.shape[-k:]) <= d:
                        continue
                    y = _call(fn, x, taps_in, boundary, d, method)
                    assert isinstance(y, da.Array)
                    assert y.chunks == x.chunks and y.dtype == x.dtype
                    expect = _call(fn, t, taps, boundary, d, method)
                    got = y.compute(scheduler="synchronous")
                    assert type(got) is np.ndarray
                    assert np.max(np.abs(got - expect)) <= 1e-12 * np.max(np.abs(expect)), (
                        boundary,
                        d,
                        method,
                    )


@pytest.mark.parametrize("fn", FUNCTIONS, ids=IDS)
def test_float32(fn):
    rng = np.random.default_rng(1)
    taps = random_taps(rng, 3, 2, 1).astype(np.float32)
    t = rng.normal(size=(4, 3, 8, 6)).astype(np.float32)
    x = da.from_array(t, chunks=(2, 1, -1, -1))
    y = fn(x, taps, boundary="reflect")
    assert y.dtype == np.float32
    got = y.compute()
    assert got.dtype == np.float32
    assert np.array_equal(got, fn(t, taps, boundary="reflect"))  # the same numpy code per block


class _Counter:
    """A dask source that counts how many of its blocks were computed."""

    def __init__(self, t, chunks):
        self.n = 0
        base = da.from_array(t, chunks=chunks)

        def load(b):
            self.n += 1
            return b

        # meta given: dask does not call ``load`` to infer the output
        self.array = base.map_blocks(load, dtype=t.dtype, meta=np.empty((0,) * t.ndim, t.dtype))


def test_graph_is_lazy(monkeypatch):
    """Validation and graph construction compute nothing; compute runs each block once."""
    rng = np.random.default_rng(2)
    taps = random_taps(rng, 3, 2, 2)
    t = rng.normal(size=(4, 3, 6, 5))
    src = _Counter(t, (2, 1, -1, -1))  # 6 blocks
    calls = {"solve": 0, "apply": 0}
    load = Capability.load

    def counting(row):
        kernel = load(row)

        def wrapper(xp, *a, **kw):
            if library_name(xp) != "dask":  # a block's kernel, not the graph builder
                calls[row.operation] += 1
            return kernel(xp, *a, **kw)

        return wrapper

    # the dask kernels hand every block to the kernel of the block's library: count those
    monkeypatch.setattr(Capability, "load", counting)
    outs = [fn(src.array, taps, boundary="zeros") for fn in FUNCTIONS]
    outs.append(FUNCTIONS[0](src.array, da.from_array(taps), method="fft"))
    assert src.n == 0 and sum(calls.values()) == 0
    # errors found from metadata only, still without computing the signal
    bad = taps.copy()
    bad[2, 1, 0] = [0.5, 1.0, 0.5]
    with pytest.raises(ac.UnstableFilterError):
        FUNCTIONS[0](src.array, bad)
    with pytest.raises(ValueError, match="channels"):
        FUNCTIONS[2](src.array, taps[:2])
    assert src.n == 0 and sum(calls.values()) == 0
    got = [o.compute() for o in outs]
    assert src.n == 6 * len(outs)
    assert calls == {"solve": 18, "apply": 12}
    assert np.array_equal(got[0], FUNCTIONS[0](t, taps, boundary="zeros"))


def test_dask_taps_are_computed_when_the_graph_is_built():
    """Taps given as dask are read once at construction; computing the result does not redo them."""
    rng = np.random.default_rng(3)
    taps = random_taps(rng, 3, 2, 1)
    t = rng.normal(size=(2, 3, 5, 5))
    src = _Counter(taps, (1, 2, 1, 3))  # 3 blocks
    y = ac.ar_solve(da.from_array(t, chunks=(1, 1, -1, -1)), src.array)
    n = src.n
    assert n > 0  # validation read the (tiny) taps
    y.compute()
    y.compute()
    assert src.n == n
    assert np.allclose(y.compute(), ac.ar_solve(t, taps), rtol=0, atol=1e-13)


def test_numpy_signal_with_dask_taps_is_eager():
    rng = np.random.default_rng(4)
    taps = random_taps(rng, 2, 1, 1)
    t = rng.normal(size=(2, 9))
    for fn in FUNCTIONS:
        y = fn(t, da.from_array(taps))
        assert type(y) is np.ndarray
        assert np.array_equal(y, fn(t, taps))


@pytest.mark.parametrize("fn", FUNCTIONS, ids=IDS)
def test_split_spatial_axis_is_a_clear_error(fn):
    rng = np.random.default_rng(5)
    name = "y" if fn is ac.ar_apply else "z" if fn is ac.ar_apply_adjoint else "t"
    cases = [
        ((2, 3, 8, 6), (1, 3, 4, -1), 2, "spatial axis -2", "{-2: -1, -1: -1}"),
        ((2, 3, 8, 6), (1, 3, -1, 3), 2, "spatial axis -1", "{-2: -1, -1: -1}"),
        ((2, 3, 8, 6), (1, 3, 4, 3), 2, "spatial axis -2, -1", "{-2: -1, -1: -1}"),
        ((3, 10), (1, 5), 1, "spatial axis -1", "{-1: -1}"),
        ((2, 4, 4, 4), (1, 2, -1, -1), 3, "spatial axis -3", "{-3: -1, -2: -1, -1: -1}"),
    ]
    for shape, chunks, k, where, fix in cases:
        taps = random_taps(rng, shape[-k - 1], k, 1)
        t = rng.normal(size=shape)
        x = da.from_array(t, chunks=chunks)
        with pytest.raises(ValueError) as info:
            fn(x, taps)
        msg = str(info.value)
        assert f"{name} is a dask array" in msg and where in msg, msg
        assert f"{name}.rechunk({fix})" in msg, msg
        # the advice works
        rechunked = eval(f"x.rechunk({fix})")
        assert np.allclose(fn(rechunked, taps).compute(), fn(t, taps), rtol=0, atol=1e-12)


def test_generic_validation_applies_to_dask():
    rng = np.random.default_rng(6)
    taps = random_taps(rng, 2, 2, 1)
    x = da.from_array(rng.normal(size=(3, 2, 5, 5)), chunks=(1, 1, -1, -1))
    # dtypes promote from metadata, lazily (float32 with float64 taps, integers: float64)
    assert ac.ar_solve(x.astype(np.float32), taps).dtype == np.float64
    assert ac.ar_solve(x.astype(np.int64), taps).dtype == np.float64
    with pytest.raises(TypeError, match="taps has dtype int64"):
        ac.ar_solve(x, taps.astype(np.int64))
    with pytest.raises(ValueError, match="boundary="):
        ac.ar_apply(x, taps, boundary="wrap")
    with pytest.raises(ValueError, match="method='fft'"):
        ac.ar_solve(x, taps, method="fft", boundary="reflect")
    with pytest.raises(ValueError, match="taps contains NaN or inf"):
        ac.ar_solve(x, np.where(taps > 0.5, np.inf, taps))
    with pytest.raises(ValueError, match="needs at least 6 samples"):
        ac.ar_solve(x, taps, boundary="reflect", dilation=5)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="different"):
        ac.ar_solve(x, torch.asarray(taps))


def test_table_has_dask_rows_for_every_method():
    """Every solve method of numpy has a dask row (chunk by chunk), and so has apply."""
    dask_rows = {(r.operation, r.method) for r in TABLE if r.library == "dask"}
    assert {("solve", m) for m in methods("solve", "numpy")} <= dask_rows
    assert ("apply", "direct") in dask_rows
    assert all(r.lazy for r in TABLE if r.library == "dask")


def test_nonfinite_is_checked_inside_the_graph():
    t = np.ones((2, 3, 5, 5))
    t[1, 2, 3, 3] = np.nan
    x = da.from_array(t, chunks=(1, 1, -1, -1))
    taps = np.tile([0.0, 1.0, -0.5], (3, 2, 1, 1))
    y = ac.ar_solve(x, taps, boundary="zeros")  # lazy: nothing is read yet
    with pytest.raises(ValueError, match="t contains NaN or inf"):
        y.compute()
    got = ac.ar_solve(x, taps, boundary="zeros", check_finite=False).compute()
    assert np.array_equal(np.isnan(got), np.isnan(ac.ar_solve(t, taps, boundary="zeros", check_finite=False)))

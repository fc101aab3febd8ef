"""``arma demo``: solve a random stable 2-D AR system on every available backend.

Prints one row per (backend, boundary, method): the relative error against the exact
scipy.sparse reference and the median solve time. Backends that are not installed (or, for
CuPy, have no GPU) are listed as skipped with the reason.
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import Any, cast

import numpy as np

import arma_core as ac
from arma_core._typing import Method
from arma_core.capabilities import methods


def _namespaces() -> list[tuple[str, Any, str]]:
    """(name, module or None, reason) for every backend this demo knows."""
    out: list[tuple[str, Any, str]] = [("numpy", np, "")]
    for name in ("torch", "array_api_strict", "dask.array", "cupy"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            out.append((name, None, "not installed"))
            continue
        if name == "cupy":
            try:
                if mod.cuda.runtime.getDeviceCount() < 1:
                    raise RuntimeError
            except Exception:
                out.append((name, None, "no GPU"))
                continue
        out.append((name, mod, ""))
    return out


def _convert(mod, name, a):
    if name == "dask.array":
        return mod.from_array(a, chunks=(1,) + a.shape[1:])
    if name == "torch":
        return mod.asarray(a)
    return mod.asarray(a)


def _finish(name, y):
    if name == "dask.array":
        return y.compute()
    return y


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="arma demo",
        description="Solve a random stable separable 2-D AR system A*y = t on every available "
        "array library and compare with the exact scipy.sparse reference.",
    )
    p.add_argument("--shape", type=int, nargs=4, default=(4, 8, 48, 64), metavar=("B", "C", "H", "W"))
    p.add_argument("--order", type=int, default=2, help="factors per axis (Q)")
    p.add_argument("--dilation", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5, help="timing repeats (median)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from arma_core import reference as R

    rng = np.random.default_rng(args.seed)
    B, C, H, W = args.shape
    theta = rng.normal(scale=1.5, size=(C, 2, args.order, 2))
    taps = np.asarray(ac.reparameterize(theta))
    t = rng.normal(size=(B, C, H, W))
    margin = float(np.min(ac.stability_margin(taps)))
    print(
        f"A*y = t with t of shape {(B, C, H, W)}, Q = {args.order} factors per axis, "
        f"dilation {args.dilation}, smallest stability margin {margin:.3g}"
    )
    print(f"{'backend':<17}{'boundary':<11}{'method':<8}{'dtype':<9}{'rel. error':>12}{'time [ms]':>11}")
    for boundary in ac.BOUNDARIES:
        ref = R.ar_solve(t, taps, boundary, args.dilation)
        scale = np.max(np.abs(ref))
        for name, mod, why in _namespaces():
            if mod is None:
                if boundary == ac.BOUNDARIES[0]:
                    print(f"{name:<17}{'-':<11}{'-':<8}{'-':<9}{'skipped: ' + why:>23}")
                continue
            library = "dask" if name == "dask.array" else name
            for method in cast("list[Method]", list(methods("solve", library, boundary))):
                for dtype in ("float64", "float32"):
                    tx = _convert(mod, name, t.astype(dtype))
                    kx = taps.astype(dtype)
                    kx = mod.from_array(kx) if name == "dask.array" else mod.asarray(kx)
                    times = []
                    for _ in range(args.repeat):
                        t0 = time.perf_counter()
                        y = _finish(
                            name,
                            ac.ar_solve(tx, kx, boundary=boundary, dilation=args.dilation, method=method),
                        )
                        times.append(time.perf_counter() - t0)
                    err = np.max(np.abs(R.to_numpy(y) - ref)) / scale
                    print(
                        f"{name:<17}{boundary:<11}{method:<8}{dtype:<9}{err:>12.2e}"
                        f"{1e3 * float(np.median(times)):>11.2f}"
                    )
    print("errors are max|y - y_ref| / max|y_ref| against arma_core.reference (float64 sparse LU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

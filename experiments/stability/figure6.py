"""``arma figure6``: the paper's Figure 6, histograms of learned AR coefficients across tasks.

Reads trained models of any experiment -- a ``checkpoint.pt`` (or a ``.pt`` file) or a run
directory, or a folder of run directories, or a glob pattern of them (every checkpoint with AR
parameters found is pooled, e.g. all seeds) -- takes every ARMA layer's parameters ``ar.theta`` of shape
``(C, k, Q, 2)`` from the saved state dict, maps them to the taps ``(f_-1, f_0 = 1, f_1)``
with the layer's re-parameterization, and draws one row of histograms per model (``f_-1``,
``f_1``, ``f_-1 + f_1``) with the mean ``|f_-1 + f_1|`` and the share of factors with
``|f_-1 + f_1| > 0.5``. ``|f_-1 + f_1|`` sets a factor's reach: its gain at frequency 0 or pi
is ``1 / (1 - |f_-1 + f_1|)``.

The re-parameterization is read from the checkpoint's config (``ar_region``, ``region``, or
the arm of an ``arma classify`` / ``arma stability`` run), else it is the library default
"strip"; ``--region LABEL=REGION`` overrides it. Checkpoints are unpickled with
``torch.load(weights_only=False)``: load only files you trust.

Examples
--------
``arma figure6 --classify classify-runs/quick --video video-runs/quick/arma-lstm-speed3``
``arma figure6 --segment segment-runs/quick/arma-unet-seed0/checkpoint.pt --out fig6.png``
``arma figure6 "my model=path/to/checkpoint.pt"``
``arma figure6 "ResNet-18=classify-runs/quick/resnet18-strip-seed*"``
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

import arma_core

__all__ = ["coefficients", "main", "plot_figure6", "summarize", "theta_from_checkpoint"]

_STATE_KEYS = ("best_model", "model", "state_dict", "model_state_dict")


def _state_dicts(ckpt) -> list[Mapping]:
    """Candidate state dicts of a loaded checkpoint, best-validation weights first."""
    out = []
    if isinstance(ckpt, Mapping):
        for key in _STATE_KEYS:
            if isinstance(ckpt.get(key), Mapping):
                out.append(ckpt[key])
        task = ckpt.get("task")
        if isinstance(task, Mapping):  # a Task's own state: best-validation weights
            best = task.get("best")
            for cand in (task.get("best_model"), best.get("weights") if isinstance(best, Mapping) else None):
                if isinstance(cand, Mapping):
                    out.insert(0, cand)
        out.append(ckpt)
    return out


def _region(ckpt) -> str | None:
    config = ckpt.get("config") if isinstance(ckpt, Mapping) else None
    if not isinstance(config, Mapping):
        return None
    for key in ("ar_region", "region", "kind"):
        if config.get(key) in ("strip", "diamond", "raw"):
            return config[key]
    from .task import ARMS

    if config.get("arm") in ARMS:
        return ARMS[config["arm"]][0]
    return None


def theta_from_checkpoint(path: str | Path) -> tuple[list[torch.Tensor], str | None]:
    """The ``ar.theta`` tensors of a checkpoint and its re-parameterization (None if unknown).

    Raises
    ------
    ValueError
        When the file holds no AR parameters (e.g. a plain convolutional model).
    """
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=False)
    for state in _state_dicts(ckpt):
        thetas = [
            v for k, v in state.items() if isinstance(k, str) and k.endswith("ar.theta") and isinstance(v, torch.Tensor)
        ]
        if thetas:
            return [t.detach().double() for t in thetas], _region(ckpt)
    raise ValueError(f"{path}: no AR parameters (no state-dict key ending in 'ar.theta')")


def _checkpoints(source: Path) -> list[Path]:
    if not source.exists() and any(c in str(source) for c in "*?["):
        import glob

        found = [p for match in sorted(glob.glob(str(source))) for p in _checkpoints(Path(match))]
        if found:
            return found
    if source.is_file():
        return [source]
    if (source / "checkpoint.pt").is_file():
        return [source / "checkpoint.pt"]
    if source.is_dir():
        return sorted(source.rglob("checkpoint.pt"))
    raise FileNotFoundError(f"{source}: no such file or directory")


def coefficients(source: str | Path, region: str | None = None) -> dict:
    """All AR taps found at ``source`` (a checkpoint, a run directory or a folder of runs).

    Returns
    -------
    dict
        ``f_minus``, ``f_plus``, ``sum``: 1-D float64 arrays over every factor of every AR layer
        of every checkpoint with AR parameters; ``checkpoints``: how many; ``layers``: AR layers
        in all; ``region``: the re-parameterization(s) used.
    """
    found, regions, layers, used = [], set(), 0, 0
    for path in _checkpoints(Path(source)):
        try:
            thetas, saved_region = theta_from_checkpoint(path)
        except ValueError:
            continue  # e.g. the plain-convolution runs of a comparison
        use = region or saved_region or "strip"
        regions.add(use)
        used += 1
        for theta in thetas:
            taps = (
                arma_core.reparameterize(theta, use)
                if use != "raw"
                else torch.cat([theta[..., :1], torch.ones_like(theta[..., :1]), theta[..., 1:]], dim=-1)
            )
            found.append(taps.reshape(-1, 3))
        layers += len(thetas)
    if not found:
        raise ValueError(f"{source}: no checkpoint with AR parameters found")
    t = torch.cat(found).numpy()
    return {
        "f_minus": t[:, 0],
        "f_plus": t[:, 2],
        "sum": t[:, 0] + t[:, 2],
        "checkpoints": used,
        "layers": layers,
        "region": "/".join(sorted(regions)),
    }


def summarize(coef: Mapping) -> dict:
    """Mean, max, share above 0.5 of ``|f_-1 + f_1|`` and the mean taps.

    Examples
    --------
    >>> summarize({"f_minus": np.array([0.1, -0.4]), "f_plus": np.array([0.0, -0.3]),
    ...            "sum": np.array([0.1, -0.7])})["share_abs_sum_gt_0.5"]
    0.5
    """
    s = np.abs(np.asarray(coef["sum"], dtype=float))
    return {
        "factors": int(s.size),
        "mean_abs_sum": float(s.mean()),
        "max_abs_sum": float(s.max()),
        "share_abs_sum_gt_0.5": float((s > 0.5).mean()),
        "mean_f_minus": float(np.mean(coef["f_minus"])),
        "mean_f_plus": float(np.mean(coef["f_plus"])),
    }


def plot_figure6(rows: list[tuple[str, dict]], path: str | Path) -> Path:
    """One row of three histograms per ``(label, coefficients)``; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 3, figsize=(11, 2.7 * len(rows)), squeeze=False)
    for r, (label, coef) in enumerate(rows):
        info = summarize(coef)
        lim = max(1.0, float(np.max(np.abs(coef["sum"]))))
        for c, (key, name) in enumerate((("f_minus", "$f_{-1}$"), ("f_plus", "$f_{1}$"), ("sum", "$f_{-1} + f_{1}$"))):
            ax = axes[r, c]
            ax.hist(coef[key], bins=80, range=(-lim, lim), color="tab:blue")
            ax.set_xlim(-lim, lim)
            ax.set_xlabel(name, fontsize=9)
            ax.tick_params(labelsize=7)
            ax.axvline(0, color="k", lw=0.5)
        axes[r, 2].set_title(
            f"mean |s| {info['mean_abs_sum']:.3f}, share |s|>0.5: {info['share_abs_sum_gt_0.5']:.1%}", fontsize=9
        )
        axes[r, 0].set_title(f"{label} ({info['factors']} factors)", fontsize=9, loc="left")
        axes[r, 0].set_ylabel("count", fontsize=8)
    fig.suptitle("Learned AR coefficients (s = f_-1 + f_1)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arma figure6", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("models", nargs="*", metavar="LABEL=PATH", help="any trained model, labelled")
    p.add_argument("--classify", help="a trained classification model (e.g. classify-runs/quick)")
    p.add_argument("--video", help="a trained video model (e.g. video-runs/quick/arma-lstm-speed3)")
    p.add_argument("--segment", help="a trained segmentation model")
    p.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="LABEL=REGION",
        help="override the re-parameterization of one model (strip, diamond or raw)",
    )
    p.add_argument("--out", default="figure6.png", help="the PNG to write (default figure6.png)")
    return p


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        label, sep, value = item.partition("=")
        if not sep or not label or not value:
            raise ValueError(f"{what} must be LABEL=VALUE, got {item!r}")
        out[label] = value
    return out


def main(argv=None) -> int:
    """Entry point of ``arma figure6``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        sources = {"classification": args.classify, "video prediction": args.video, "segmentation": args.segment}
        sources = {k: v for k, v in sources.items() if v}
        sources.update(_pairs(args.models, "a model"))
        regions = _pairs(args.region, "--region")
        if not sources:
            raise ValueError("give at least one trained model (--classify, --video, --segment or LABEL=PATH)")
        unknown = set(regions) - set(sources)
        if unknown:
            raise ValueError(f"--region names unknown labels {sorted(unknown)}; labels: {sorted(sources)}")
        rows = [(label, coefficients(path, regions.get(label))) for label, path in sources.items()]
    except (ValueError, FileNotFoundError) as exc:
        print(f"arma figure6: {exc}", file=sys.stderr)
        return 2
    path = plot_figure6(rows, args.out)
    table = {
        label: {
            **summarize(c),
            "checkpoints": c["checkpoints"],
            "layers": c["layers"],
            "region": c["region"],
            "source": str(sources[label]),
        }
        for label, c in rows
    }
    Path(path).with_suffix(".json").write_text(json.dumps(table, indent=2) + "\n")
    print(json.dumps(table, indent=2))
    print(f"wrote {path} and {Path(path).with_suffix('.json')}")
    return 0

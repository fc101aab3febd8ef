"""Figures of ``arma video``: per-frame curves, predicted sequences, and Figure 6 over seeds.

Each function takes the output directory and the runs' ``results.json`` records
(:func:`arma_experiments.video.report.load_runs`) and returns the paths it wrote.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

from .. import results as R
from .models import VIDEO_MODELS
from .train import BASELINES, run_directory

__all__ = ["comparison_figures", "curves_figure", "fig6_figure"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _speeds(runs: list[dict]) -> list:
    return sorted({r["speed"] for r in runs})


def curves_figure(out_dir: Path, runs: list[dict]) -> Path:
    """``curves.png``: PSNR and SSIM against the predicted frame's index, one column per speed.

    Models: mean over seeds with a band of +- one standard deviation; baselines dashed.
    """
    plt = _pyplot()
    speeds = _speeds(runs)
    fig, axes = plt.subplots(2, len(speeds), figsize=(4.2 * len(speeds), 6.4), squeeze=False)
    models = list(dict.fromkeys(r["model"] for r in runs))
    colors = plt.get_cmap("tab10")
    for j, speed in enumerate(speeds):
        here = [r for r in runs if r["speed"] == speed]
        for i, metric in enumerate(("psnr", "ssim")):
            ax = axes[i, j]
            for k, name in enumerate(models):
                curves = np.array([r["metrics"][f"{metric}_per_frame"] for r in here if r["model"] == name])
                if not len(curves):
                    continue
                t = np.arange(1, curves.shape[1] + 1)
                mean = curves.mean(0)
                std = curves.std(0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
                ax.plot(t, mean, color=colors(k), label=f"{VIDEO_MODELS[name].label} (n={len(curves)})")
                ax.fill_between(t, mean - std, mean + std, color=colors(k), alpha=0.2)
            for key, style in zip(BASELINES, (":", "-.", "--")):
                values = here[0]["baselines"][key][f"{metric}_per_frame"]
                ax.plot(np.arange(1, len(values) + 1), values, "k" + style, lw=1, label=BASELINES[key])
            ax.set_title(f"speed {speed:g}x")
            ax.set_xlabel("predicted frame")
            ax.set_ylabel("PSNR (dB)" if metric == "psnr" else "SSIM (data range 1)")
            ax.grid(alpha=0.3)
    for ax in axes[0]:  # one legend per speed: the models and their seed counts differ by speed
        ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    path = out_dir / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def comparison_figures(out_dir: Path, runs: list[dict], seed: int | None = None) -> list[Path]:
    """``comparison-speed<S>.png``: inputs, truth and each model's prediction of test sequence 0.

    One run per model: ``seed``, or the smallest seed present.
    """
    plt = _pyplot()
    paths = []
    for speed in _speeds(runs):
        chosen: dict[str, dict] = {}
        for r in runs:
            if r["speed"] == speed and (seed is None or r["seed"] == seed):
                chosen.setdefault(r["model"], r)
        saved = [
            (
                VIDEO_MODELS[r["model"]].label,
                np.load(run_directory(out_dir, r["model"], speed, r["seed"]) / "prediction.npz"),
            )
            for r in chosen.values()
        ]
        if not saved:
            continue
        first = saved[0][1]
        panels = [("input", first["input"]), ("truth", first["truth"])]
        panels += [(label, z["predicted"]) for label, z in saved]
        cols = max(len(first["input"]), len(first["truth"]))
        fig, axes = plt.subplots(len(panels), cols, figsize=(1.1 * cols, 1.15 * len(panels) + 0.4), squeeze=False)
        for i, (label, seq) in enumerate(panels):
            for c in range(cols):
                ax = axes[i, c]
                ax.set_xticks([]), ax.set_yticks([])
                if c < len(seq):
                    ax.imshow(seq[c], cmap="gray", vmin=0, vmax=1)
                else:
                    ax.axis("off")
            # long labels ("Non-local Conv-LSTM (size 3)") overran a row's height on one line
            axes[i, 0].set_ylabel(textwrap.fill(label, 18, break_on_hyphens=False), fontsize=6)
        seeds = sorted({r["seed"] for r in chosen.values()})
        fig.suptitle(f"Moving-MNIST-2, speed {speed:g}x, test sequence 0 (seed {seeds[0]})")
        fig.tight_layout()
        path = out_dir / f"comparison-speed{speed:g}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def fig6_figure(out_dir: Path, runs: list[dict]) -> list[Path]:
    """``fig6.png`` and ``fig6.json``: the learned AR coefficients of every ARMA run.

    Per ARMA model, histograms (pooled over seeds, one line per speed) of ``f_-1``, ``f_1`` and
    ``f_-1 + f_1``; the JSON holds per model and speed the mean +- std over seeds of the mean and
    max of ``|f_-1 + f_1|`` and of the share above 0.5. Each run's coefficients come from its
    record (``ar_coefficients.npz``, written by the run) or else from its checkpoint (the record
    is then written, so that it outlives the checkpoint); runs with neither are left out of the
    figure, and a model and speed none of whose runs has coefficients keeps its entry of an
    earlier ``fig6.json``. Nothing is written without any ARMA run to show.
    """
    from .histogram import AR_COEFFICIENTS, ar_coefficients, load_ar_coefficients, save_ar_coefficients
    from .train import CHECKPOINT, load_checkpoint, model_from_checkpoint

    coef: dict[tuple, list[dict]] = {}
    for r in runs:
        if not VIDEO_MODELS[r["model"]].arma:
            continue
        run_dir = run_directory(out_dir, r["model"], r["speed"], r["seed"])
        if (run_dir / AR_COEFFICIENTS).is_file():
            c = load_ar_coefficients(run_dir / AR_COEFFICIENTS)
        elif (run_dir / CHECKPOINT).is_file():
            model, _ = model_from_checkpoint(load_checkpoint(run_dir))
            c = ar_coefficients(model)
            save_ar_coefficients(c, run_dir / AR_COEFFICIENTS)
        else:
            continue
        coef.setdefault((r["model"], r["speed"]), []).append(c)
    if not coef:
        return []
    summary = []
    for (name, speed), items in coef.items():
        s = [np.abs(c["sum"]) for c in items]
        summary.append(
            {
                "model": name,
                "speed": speed,
                "runs": len(items),
                **{
                    key: list(_stat(f(x) for x in s))
                    for key, f in (
                        ("mean_abs_sum", np.mean),
                        ("max_abs_sum", np.max),
                        ("frac_gt_half", lambda x: np.mean(x > 0.5)),
                    )
                },
            }
        )
    # a model and speed whose runs have no coefficients here (checkpoints and records gone)
    # keeps its summary from the earlier fig6.json: the numbers outlive the runs; the figure
    # shows what can be plotted
    earlier = out_dir / "fig6.json"
    if earlier.is_file():
        done = set(coef)
        summary += [e for e in json.loads(earlier.read_text()) if (e["model"], e["speed"]) not in done]
    earlier.write_text(json.dumps(summary, indent=2) + "\n")
    return [_plot_fig6(out_dir, coef)]


def _stat(values) -> tuple[float, float, int]:
    s = R.stat(float(v) for v in values)
    return s.mean, s.std, s.n


def _plot_fig6(out_dir: Path, coef: dict) -> Path:
    plt = _pyplot()
    models = list(dict.fromkeys(name for name, _ in coef))
    fig, axes = plt.subplots(len(models), 3, figsize=(11, 3.0 * len(models)), squeeze=False)
    bins = np.linspace(-1, 1, 81)
    for i, name in enumerate(models):
        for speed in sorted(s for n, s in coef if n == name):
            items = coef[(name, speed)]
            for j, key in enumerate(("f_minus", "f_plus", "sum")):
                values = np.concatenate([c[key] for c in items])
                axes[i, j].hist(values, bins=bins, histtype="step", lw=1.5, label=f"{speed:g}x ({len(items)} seeds)")
        for j, label in enumerate(("$f_{-1}$", "$f_{1}$", "$f_{-1} + f_{1}$")):
            axes[i, j].set_xlabel(label)
            axes[i, j].set_yscale("log")
        axes[i, 0].set_ylabel(f"{VIDEO_MODELS[name].label}\ncount")
        axes[i, 2].legend(fontsize=7)
    fig.suptitle("Learned AR coefficients (every cell, gate channel and axis; f_0 = 1)")
    fig.tight_layout()
    path = out_dir / "fig6.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
